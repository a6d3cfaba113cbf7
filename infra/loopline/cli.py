"""The `loopline` command: one function per subcommand, registered on argparse subparsers.

Add a subcommand by writing `_cmd_<name>(args) -> int` and registering it in `build_parser`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from loopline.invocation import command
from loopline.operate.commands import add_operate_commands
from loopline.operate.stack_memory import DEFAULT_STACK_NAME, STACK_VARIABLE
from loopline_runtime.errors import LooplineError

# Subcommands raise a LooplineError (InvalidConfig, UnparseableCsv, InitRefused...) whose message is written for
# the user: main() prints it on one stderr line and exits with the command's error code, without a traceback.
EXIT_REFUSED = 1
EXIT_INVALID_CONFIG = 2


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


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
    up.add_argument("--stack-name", default=os.environ.get(STACK_VARIABLE) or DEFAULT_STACK_NAME,
                    help="CloudFormation stack name (default $LOOPLINE_STACK, else loopline); the other commands find "
                         "the running stack without it")
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


def _cmd_init(args: argparse.Namespace) -> int:
    """Write a commented pipeline config for a CSV."""
    from loopline.init_config import (
        InitRefused,
        check_pipeline_name,
        pipeline_name_for,
        profile_data,
        refuse_to_overwrite,
        render_config,
        render_model_code,
        sniff_delimiter,
        summary,
        write_config,
    )
    from loopline_runtime.config import load_config
    from loopline_runtime.schema import read_csv

    data, output = Path(args.data), Path(args.output)
    name = check_pipeline_name(args.name) if args.name else pipeline_name_for(data)
    code_file = output.parent / "model.py" if args.code else None
    refuse_to_overwrite(output, force=args.force)  # before the (possibly slow) read: fail fast
    if code_file is not None:
        refuse_to_overwrite(code_file, force=args.force)
    try:
        body = data.read_bytes()
    except OSError as exc:
        raise InitRefused(f"cannot read {data}: {exc.strerror or exc}") from None
    delimiter = sniff_delimiter(body)
    profile = replace(profile_data(read_csv(body, source=str(data), delimiter=delimiter), args.target,
                                   source=str(data)), delimiter=delimiter)
    init_command = shlex.join(["loopline", "init", str(data), "--target", args.target,
                               *(["--code"] if args.code else [])])
    code = f"{code_file.name}:build" if code_file is not None else None
    if code_file is not None:
        write_config(render_model_code(profile), code_file, force=args.force)
    write_config(render_config(profile, name, command=init_command, code=code), output, force=args.force)
    load_config(output)  # the file must load as written; a failure here is a bug, and says so loudly
    print(summary(profile, output))
    if code_file is not None:
        print(f"Wrote {code_file}: a starter build(schema) for your own Pipeline (candidate `mine`). Prove it with: "
              f"{command('validate', '--config', str(output), '--data', str(data))}")
    return 0


def _add_init(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = subparsers.add_parser(
        "init",
        help="write a commented pipeline config for your CSV",
        description="Read DATA.csv, infer each column's type, the task and a default metric with the same rules "
        "the pipeline applies, and write a commented pipeline config (every setting, what it does, its allowed "
        "values) for you to review and edit. Id-like columns are listed under `ignore`. The gate and alarm "
        "thresholds are set just above a trivial baseline measured on the data (majority class or mean): raise "
        "them after your first run.",
        epilog=_examples(
            "loopline example wine --output wine.csv",
            "loopline init wine.csv --target cultivar",
            "loopline init data/churn.csv --target churned --name churn --output churn.yaml",
            "loopline init data/churn.csv --target churned --force     # replace an existing pipeline.yaml",
            "loopline init wine.csv --target cultivar --code     # also a starter model.py of your own Pipeline",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    init.add_argument("data", metavar="DATA.csv", help="a labeled CSV (UTF-8, header row)")
    init.add_argument("--target", required=True, metavar="COLUMN", help="the column to predict")
    init.add_argument("--output", default="pipeline.yaml", metavar="FILE",
                      help="file to write (default pipeline.yaml)")
    init.add_argument("--name", help="pipeline name (default: from the CSV's file name)")
    init.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    init.add_argument("--code", action="store_true",
                      help="also write a commented starter model.py beside FILE (your own scikit-learn Pipeline, "
                           "candidate `mine` in the config)")
    init.set_defaults(handler=_cmd_init, error_code=EXIT_REFUSED)


def _cmd_params(args: argparse.Namespace) -> int:
    """Print the stack parameters for `sam deploy --parameter-overrides`."""
    from loopline.params import stack_parameters
    from loopline_runtime.config import load_config

    parameters = stack_parameters(load_config(args.config))
    # one argument for sam's --parameter-overrides, which reads Key="value with spaces" itself (a schedule)
    print(" ".join(f'{key}="{value}"' if shlex.quote(value) != value else f"{key}={value}"
                   for key, value in parameters.items()))
    return 0


def _add_params(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    params = subparsers.add_parser(
        "params",
        help="print template parameters from a pipeline config (for sam deploy --parameter-overrides)",
        description="Validate the pipeline config and print template.yaml's Parameters derived from it "
        "(pipeline name, quality metric, alarm threshold and settings) as space-separated Key=Value pairs, "
        "shell-quoted where needed. `make deploy` passes them to `sam deploy --parameter-overrides`.",
        epilog=_examples(
            "loopline params",
            "loopline params --config wine.yaml",
            'sam deploy --parameter-overrides "$(loopline params --config wine.yaml)"',
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    params.add_argument("--config", default="pipeline.yaml", help="pipeline config (default pipeline.yaml)")
    params.set_defaults(handler=_cmd_params, error_code=EXIT_INVALID_CONFIG)


def _cmd_validate(args: argparse.Namespace) -> int:
    """Validate a pipeline config, and prove the model code it names."""
    from loopline.code_validation import validate_model_code
    from loopline_runtime.config import load_config

    config = load_config(args.config)
    if config.code_files():
        for line in validate_model_code(config, Path(args.config).parent, Path(args.data) if args.data else None):
            print(line)
    print("ok")
    return 0


def _add_validate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = subparsers.add_parser(
        "validate",
        help="check a pipeline config",
        description="Validate a pipeline config with the same rules as `sam build`, `loopline local up` and the "
        "Lambdas. A candidate with its own code (`code: model.py:build`) is imported and built; with --data it is "
        "also fitted on a sample (twice: it must be seeded), timed against the search budget, compiled to ONNX "
        "and checked for parity, as training does before its search. Prints `ok`, or the first problem with "
        "exit code 2.",
        epilog=_examples("loopline validate", "loopline validate --config wine.yaml",
                         "loopline validate --data wine.csv     # also fit, compile and check model.py"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    validate.add_argument("--config", default="pipeline.yaml", help="pipeline config (default pipeline.yaml)")
    validate.add_argument("--data", metavar="DATA.csv", help="a labeled CSV to prove the config's model code on")
    validate.set_defaults(handler=_cmd_validate, error_code=EXIT_INVALID_CONFIG)


def _cmd_example(args: argparse.Namespace) -> int:
    """Write a bundled example data set as CSV."""
    from loopline.examples import example_datasets
    from loopline.init_config import InitRefused, refuse_to_overwrite

    example = example_datasets()[args.name]
    output = Path(args.output or f"{example.name}.csv")
    refuse_to_overwrite(output, force=args.force)
    frame = example.load()
    try:
        frame.to_csv(output, index=False)
    except OSError as exc:
        raise InitRefused(f"cannot write {output}: {exc.strerror or exc}") from None
    print(f"Wrote {output}: {example.description} ({len(frame)} rows; label column {example.target!r}).")
    print(f"Next: {command('init', str(output), '--target', example.target)}")
    return 0


def _add_example(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from loopline.examples import example_datasets

    examples = example_datasets()
    example = subparsers.add_parser(
        "example",
        help="write a bundled example data set as CSV (to try `loopline init` on)",
        description="Write one of scikit-learn's bundled data sets (offline) as a labeled CSV:\n"
        + "\n".join(f"  {e.name:<14} {e.description}; label column {e.target!r}" for e in examples.values()),
        epilog=_examples(
            "loopline example wine --output wine.csv",
            "loopline init wine.csv --target cultivar",
            "loopline example diabetes     # writes diabetes.csv (a regression target)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    example.add_argument("name", metavar="NAME", choices=list(examples), help=f"one of: {', '.join(examples)}")
    example.add_argument("--output", metavar="FILE", help="CSV to write (default NAME.csv)")
    example.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    example.set_defaults(handler=_cmd_example, error_code=EXIT_REFUSED)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="loopline", description="Deploy the pipeline, not the model.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_local(subparsers)
    _add_demo(subparsers)
    _add_init(subparsers)
    _add_example(subparsers)
    _add_validate(subparsers)
    _add_params(subparsers)
    add_operate_commands(subparsers)
    from loopline.score_command import add_score

    add_score(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `loopline` script."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, EndpointConnectionError

    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except LooplineError as exc:
        return _fail(args, str(exc))
    except (EndpointConnectionError, ConnectTimeoutError) as exc:  # the endpoint went away during the command
        return _fail(args, f"{exc}. Fix: check that the stack's endpoint still runs (`loopline local up`), then "
                           "run the command again")
    except (ClientError, BotoCoreError) as exc:  # AWS refused a call: its own message says why
        return _fail(args, str(exc))
    except TimeoutError as exc:
        return _fail(args, f"{exc}; it may still finish: see `loopline status`")
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _fail(args: argparse.Namespace, message: str) -> int:
    """One stderr line: what went wrong and the fix (never a traceback for a condition a user can meet)."""
    print(f"loopline {args.command}: error: {message}", file=sys.stderr)
    return int(getattr(args, "error_code", EXIT_REFUSED))


if __name__ == "__main__":
    sys.exit(main())
