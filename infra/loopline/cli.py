"""The `loopline` command: one function per subcommand, registered on argparse subparsers.

Add a subcommand by writing `_cmd_<name>(args) -> int` and registering it in `build_parser`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_local_up(args: argparse.Namespace) -> int:
    """Run template.yaml offline on moto until Ctrl+C."""
    from loopline.emulator.local_up import LocalUpOptions, run_local_up

    return run_local_up(
        LocalUpOptions(
            aws_port=args.aws_port,
            api_port=args.api_port,
            stack_name=args.stack_name,
            template=Path(args.template),
            config=Path(args.config),
            region=args.region,
            ready_file=Path(args.ready_file) if args.ready_file else None,
            alarm_tick_seconds=args.alarm_tick,
            verbose=args.verbose,
        )
    )


def _add_local(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    local = subparsers.add_parser("local", help="the offline AWS emulator")
    local_commands = local.add_subparsers(dest="local_command", required=True, metavar="COMMAND")
    up = local_commands.add_parser(
        "up",
        help="run template.yaml on a local AWS emulator (moto) until Ctrl+C",
        description="Package and deploy template.yaml to an in-process moto server, run the Lambda handlers "
        "for real, serve the API, and wait. Any AWS client can then drive the stack.",
    )
    up.add_argument("--aws-port", type=int, default=5000, help="port of the AWS endpoint (default 5000)")
    up.add_argument("--api-port", type=int, default=3000, help="port of the API Gateway stand-in (default 3000)")
    up.add_argument("--stack-name", default="loopline", help="CloudFormation stack name (default loopline)")
    up.add_argument("--template", default="template.yaml", help="SAM template (default template.yaml)")
    up.add_argument("--config", default="pipeline.yaml", help="pipeline config (default pipeline.yaml)")
    up.add_argument("--region", default="us-east-1", help="AWS region (default us-east-1)")
    up.add_argument("--ready-file", help="write the endpoints and stack outputs as JSON here once ready")
    up.add_argument("--alarm-tick", type=float, default=5.0, help="seconds between alarm evaluations (default 5)")
    up.add_argument("--verbose", action="store_true", help="echo Lambda output and HTTP access logs to stderr")
    up.set_defaults(handler=_cmd_local_up)


def _cmd_demo(args: argparse.Namespace) -> int:
    """The whole loop offline: first champion, drift, alarm, retraining."""
    from loopline.demo import run_demo

    return run_demo(config=Path(args.config), workdir=Path(args.workdir), stack_name=args.stack_name)


def _add_demo(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the whole loop locally and show it (what `make demo` runs)",
        description="Start `loopline local up` on free ports, upload the bundled breast-cancer data, follow "
        "training, print the champion and HTTP predictions; then upload drifted batches and show the alarm, "
        "the retraining and the recovery.",
    )
    demo.add_argument("--config", default="pipeline.yaml", help="pipeline config (default pipeline.yaml)")
    demo.add_argument("--stack-name", default="loopline-demo", help="stack name (default loopline-demo)")
    demo.add_argument("--workdir", default=".loopline", help="where the emulator log goes (default .loopline)")
    demo.set_defaults(handler=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="loopline", description="Deploy the pipeline, not the model.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_local(subparsers)
    _add_demo(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `loopline` script."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
