"""Registration of the operating subcommands (status, models, rollback, report, approve, reject) on the
`loopline` parser."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from loopline.client import StackClient
from loopline.invocation import command
from loopline.operate.connection import connect
from loopline.operate.stack_memory import StackTarget, resolve_target


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """--stack-name / --endpoint-url / --region; unset, they come from the environment or `loopline local up`."""
    parser.add_argument("--stack-name", help="CloudFormation stack name (default: $LOOPLINE_STACK, else the stack "
                                             "`loopline local up` runs, else loopline)")
    parser.add_argument("--endpoint-url",
                        help="AWS endpoint, e.g. the local emulator's http://127.0.0.1:5000 (default: "
                             "$AWS_ENDPOINT_URL, else the endpoint of the running `loopline local up` stack of that "
                             "name, else AWS)")
    parser.add_argument("--region", help="AWS region (default: $AWS_DEFAULT_REGION or us-east-1)")


def target_of(args: argparse.Namespace) -> StackTarget:
    """The stack the command's flags, the environment and `loopline local up` point at (kept on `args`)."""
    if getattr(args, "target", None) is None:
        args.target = resolve_target(args.stack_name, args.endpoint_url, args.region)
    target: StackTarget = args.target
    return target


def stack_from(args: argparse.Namespace) -> StackClient:
    return connect(target_of(args))


def follow_up(args: argparse.Namespace, *arguments: str) -> str:
    """A command to run next on the same stack, runnable as printed in the same shell."""
    return command(*arguments, *target_of(args).flags())


def progress(message: str) -> None:
    """Progress of a long command, on stderr so stdout stays the result."""
    print(message, file=sys.stderr, flush=True)


def _cmd_status(args: argparse.Namespace) -> int:
    from loopline.operate.status import gather_status, render_status

    print(render_status(gather_status(stack_from(args)), follow_up=lambda *arguments: follow_up(args, *arguments)))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from loopline.operate.status import gather_models, render_models

    print(render_models(*gather_models(stack_from(args))))
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from loopline.operate.rollback import request_rollback

    stack = stack_from(args)
    started = time.monotonic()
    target = args.to or "the previous champion"
    progress(f"rolling back to {target} through the rollback API (SigV4-signed POST {stack.outputs['RollbackApiUrl']})"
             " ...")
    outcome = request_rollback(stack, to_version=args.to, note=args.reason,
                               on_state=lambda name, seconds: progress(f"  [{seconds:5.1f}s] {name}"))
    pointer = outcome.pointer
    print(f"champion is now {pointer['version']} (was {pointer.get('previous_version')}); "
          f"rolled back in {time.monotonic() - started:.1f} s; recorded as requested by {pointer.get('requested_by')} "
          "(the caller the API authenticated)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from loopline.operate.report.build import write_report

    stack = stack_from(args)
    started = time.monotonic()
    output = write_report(stack, version=args.version, monitoring=args.monitoring,
                          output=Path(args.output) if args.output else None, progress=progress)
    if args.screenshot:
        from loopline.operate.report.browser import screenshot

        progress(f"screenshot with headless Chromium -> {args.screenshot}")
        screenshot(output, Path(args.screenshot))
    print(f"report: {output.resolve()} ({output.stat().st_size / 1024:.0f} KB, {time.monotonic() - started:.1f} s)")
    return 0


def _cmd_answer(args: argparse.Namespace) -> int:
    from loopline.operate.approval import answer, end_shadow, find_in_shadow
    from loopline.operate.rollback import requester

    stack = stack_from(args)
    approve = args.command == "approve"
    if args.command == "promote-now" or (args.command == "reject" and find_in_shadow(stack, args.version)):
        promote = args.command == "promote-now"
        progress(f"ending the shadow of {args.version}: {'promote' if promote else 'reject'} ...")
        shadow = end_shadow(stack, args.version, promote=promote, by=requester(stack), reason=args.reason)
        print(f"{args.version}: {shadow.get('status', 'not decided yet')} from shadow by {shadow.get('decided_by')}"
              f" ({'; '.join(shadow.get('reasons') or [])})")
        return 0
    progress(f"{'approving' if approve else 'rejecting'} {args.version} ...")
    described = answer(stack, args.version, approve=approve, by=requester(stack), reason=args.reason,
                       on_state=lambda name, seconds: progress(f"  [{seconds:5.1f}s] {name}"))
    final = stack.entered_states(described["executionArn"])[-1]
    print(f"{args.version}: {final} ({described['status']})")
    return 0


def _cmd_upload(args: argparse.Namespace) -> int:
    from loopline_runtime.bucket_layout import INCOMING_PREFIX
    from loopline_runtime.errors import LooplineError

    path = Path(args.file)
    if not path.is_file():
        raise LooplineError(f"{path}: no such file")
    stack = stack_from(args)
    key = INCOMING_PREFIX + (args.name or path.name)
    stack.s3.upload_file(str(path), stack.bucket, key, ExtraArgs={"ContentType": "text/csv"})
    print(f"uploaded {path} to s3://{stack.bucket}/{key}: ingestion starts now (training when there is no champion "
          f"yet, else monitoring). Follow it: {follow_up(args, 'events')}  or  {follow_up(args, 'status')}")
    return 0


def _cmd_events(args: argparse.Namespace) -> int:
    from loopline.operate.events import follow_events

    stack = stack_from(args)
    printed = follow_events(
        stack, lambda line: print(line, flush=True), count=args.count, timeout=args.timeout,
        on_ready=lambda: progress(f"listening to {stack.outputs['NotificationTopicArn'].rsplit(':', 1)[-1]} "
                                  f"(stack {stack.stack_name}); Ctrl+C to stop"))
    progress(f"{printed} notification{'s' if printed != 1 else ''}")
    return 0


def add_operate_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register status, models and rollback."""
    status = subparsers.add_parser(
        "status", help="the state of the loop: champion, alarm, measurements, executions, queues",
        description="One screen: the champion and its score, the quality alarm's state and the last measurements, "
        "running and recent training executions with where they ended, pending approvals, and the depth of the "
        "stack's SQS queues (failed events).",
        epilog=_examples("loopline status --endpoint-url http://127.0.0.1:5000 --stack-name loopline-demo",
                         "loopline status --stack-name loopline-wine     # on AWS"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(status)
    status.set_defaults(handler=_cmd_status)

    models = subparsers.add_parser(
        "models", help="list model versions with scores, gate decisions and which one serves",
        description="Every registered model version, newest first: estimator, metric, cross-validated and holdout "
        "score, the gate's decision with its reasons; `*` marks the champion.",
        epilog=_examples("loopline models --stack-name loopline-demo"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(models)
    models.set_defaults(handler=_cmd_models)

    rollback = subparsers.add_parser(
        "rollback", help="serve the previous champion (or --to VERSION) again, through the promotion path",
        description="POST the request, signed with SigV4, to the stack's rollback API (AWS_IAM: your AWS identity "
        "needs execute-api:Invoke on it, and is what the history records as requested_by), which starts the rollback "
        "state machine: the evaluate function verifies the target (promoted before, its pins as recorded then, "
        "parity passed, same feature schema as the champion), then moves the champion pointer with "
        "the promotion's own action (If-Match on the pointer, history record with who and why). The API serves "
        "the target within CHAMPION_CHECK_SECONDS (5 s) of the pointer move. Without --to, the target is the "
        "champion's previous version.",
        epilog=_examples("loopline rollback --reason 'complaints since the last promotion'",
                         "loopline rollback --to m-20261129T184001-1a2b3c --reason 'back to the audited model'"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(rollback)
    rollback.add_argument("--to", metavar="VERSION", help="model version to serve (default: the previous champion)")
    rollback.add_argument("--reason", default="", metavar="TEXT", help="why, for the history record")
    rollback.set_defaults(handler=_cmd_rollback)

    report = subparsers.add_parser(
        "report", help="write a self-contained HTML report of a model version or a monitoring run",
        description="Draw the numbers the functions recorded into one HTML file (figures inline): for a model "
        "version (default: the champion) the gate's decision and reasons, holdout figures (classifiers: confusion "
        "matrix, ROC, precision-recall, calibration; regressors: predicted vs actual, residuals), permutation "
        "importance, the search leaderboard, lineage and champion history; for a monitoring run (--monitoring) "
        "the metric against the champion's holdout score and per-feature drift with both distributions.",
        epilog=_examples("loopline report                                 # the champion",
                         "loopline report m-20261129T184001-1a2b3c --output model.html",
                         "loopline report --monitoring                    # the latest monitoring run",
                         "loopline report --screenshot report.png         # also a PNG from headless Chromium"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(report)
    report.add_argument("version", nargs="?", metavar="VERSION", help="model version (default: the champion)")
    report.add_argument("--monitoring", nargs="?", const="latest", metavar="KEY",
                        help="report a monitoring run instead: its key under monitoring/ (default: the latest)")
    report.add_argument("--output", metavar="FILE", help="HTML file (default: report-<version or run>.html)")
    report.add_argument("--screenshot", metavar="PNG", help="also save a screenshot taken with headless Chromium")
    report.set_defaults(handler=_cmd_report)

    upload = subparsers.add_parser(
        "upload", help="upload a labeled CSV under incoming/ (ingestion, then training or monitoring)",
        description="Put FILE under incoming/ of the stack's bucket, which S3 announces to the ingest function: "
        "the file becomes a dataset version (or is quarantined with a reason; `loopline events` shows it), then "
        "trains a first champion or measures the champion on it. For unlabeled rows use `loopline score`.",
        epilog=_examples("loopline upload wine.csv", "loopline upload march.csv --name 2026-03.csv"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(upload)
    upload.add_argument("file", metavar="FILE", help="a labeled CSV (the target column and the features)")
    upload.add_argument("--name", metavar="NAME", help="object name under incoming/ (default: FILE's name)")
    upload.set_defaults(handler=_cmd_upload)

    events = subparsers.add_parser(
        "events", help="print the stack's notifications as they arrive (promoted, rejected, quarantined, alarm, ...)",
        description="Subscribe a temporary SQS queue to the stack's notification topic and print one line per "
        "notification (local time, subject, details) until Ctrl+C; the queue is removed when the command stops.",
        epilog=_examples("loopline events", "loopline events --count 1 --timeout 300   # wait for the next one"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stack_arguments(events)
    events.add_argument("--count", type=int, metavar="N", help="stop after N notifications")
    events.add_argument("--timeout", type=float, metavar="SECONDS", help="stop after SECONDS")
    events.set_defaults(handler=_cmd_events)

    for name, verb in (("approve", "promote"), ("reject", "reject"), ("promote-now", "promote")):
        shadow = ("With gate.shadow, `reject` also ends a challenger's shadow at once, and `promote-now` promotes it "
                  "without waiting for its live labels (recorded with who did it). ")
        command = subparsers.add_parser(
            name, help=(f"{name} a challenger waiting for approval (gate.approval: manual): {verb} it"
                        if name != "promote-now" else "end a challenger's shadow (gate.shadow) now: promote it"),
            description=(f"With gate.approval: manual, a challenger that passes the gate waits for a person. This "
                         f"answers the training execution waiting for VERSION (its task token is found in the "
                         f"execution's history); the state machine then goes on to {verb} it. {shadow}`loopline "
                         "status` lists what is waiting.") if name != "promote-now" else (
                "With gate.shadow, a challenger that passes the gate runs in shadow until its live labels decide. "
                "This ends the shadow of VERSION now and promotes it (with gate.approval: manual, after "
                "`loopline approve`), recorded with who did it and --reason on its evaluation.json and the "
                "promotion record (docs/shadow.md). `loopline status` lists what is in shadow."),
            epilog=_examples(f"loopline {name} m-20261129T184001-1a2b3c --reason 'report reviewed'"),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        add_stack_arguments(command)
        command.add_argument("version", metavar="VERSION", help="the model version waiting for approval"
                             + (" or in shadow" if name != "approve" else ""))
        command.add_argument("--reason", required=name == "reject", default="", metavar="TEXT",
                             help="why (recorded with the decision" + ("; required)" if name == "reject" else ")"))
        command.set_defaults(handler=_cmd_answer)
