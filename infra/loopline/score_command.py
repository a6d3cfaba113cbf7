"""`loopline score FILE`: upload a CSV under batch/incoming/ (which starts a batch scoring run) and follow the run
with a progress line until predictions/<run>/ is written. A client of the stack's public APIs (S3, Step Functions)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline_runtime.batch_layout import CHUNK_ROWS_METADATA, run_id_for, run_prefix, summary_key
from loopline_runtime.bucket_layout import BATCH_INCOMING_PREFIX
from loopline_runtime.errors import LooplineError
from loopline_runtime.storage import ObjectNotFound, ObjectStore

if TYPE_CHECKING:
    from loopline.client import StackClient

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class BatchRunFailed(LooplineError):
    """The batch scoring execution did not succeed."""


def submit(stack: StackClient, path: Path, *, chunk_rows: int | None = None, name: str | None = None
           ) -> tuple[str, list[str]]:
    """Upload `path` under batch/incoming/; returns its key and the names its run may have (S3 events name the
    object version; an emulator without versions names the ETag)."""
    key = BATCH_INCOMING_PREFIX + (name or path.name)
    extra: dict[str, Any] = {"ContentType": "text/csv"}
    if chunk_rows:
        extra["Metadata"] = {CHUNK_ROWS_METADATA: str(chunk_rows)}
    stack.s3.upload_file(str(path), stack.bucket, key, ExtraArgs=extra)  # multipart: any size, bounded memory
    head = stack.s3.head_object(Bucket=stack.bucket, Key=key)
    candidates = [run_id_for(key, head.get("VersionId")), run_id_for(key, head["ETag"].strip('"'))]
    return key, candidates


def follow(stack: StackClient, candidates: list[str], *, timeout: float = 3600,
           on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Wait for the run's execution to start and end; returns the run's summary.json."""
    arn_prefix = stack.outputs["BatchScoringStateMachineArn"].replace(":stateMachine:", ":execution:") + ":"
    store = ObjectStore(stack.bucket, stack.s3)
    start = time.monotonic()
    execution: dict[str, Any] | None = None
    run_id = candidates[0]
    while time.monotonic() - start < timeout:
        if execution is None:
            for candidate in candidates:
                try:
                    execution = stack.sfn.describe_execution(executionArn=arn_prefix + candidate)
                    run_id = candidate
                    break
                except stack.sfn.exceptions.ExecutionDoesNotExist:
                    continue
        else:
            execution = stack.sfn.describe_execution(executionArn=execution["executionArn"])
        if on_progress:
            on_progress(progress_line(store, run_id, execution, time.monotonic() - start))
        if execution is not None and execution["status"] in TERMINAL:
            break
        time.sleep(1.0)
    else:
        raise TimeoutError(f"batch run {run_id} did not finish within {timeout:.0f}s")
    assert execution is not None
    try:
        summary: dict[str, Any] = store.get_json(summary_key(run_id))
    except ObjectNotFound:
        raise BatchRunFailed(f"batch run {run_id} ended {execution['status']}: {execution.get('error', '')} "
                             f"{execution.get('cause', '')}".strip()) from None
    return summary


def progress_line(store: ObjectStore, run_id: str, execution: dict[str, Any] | None, seconds: float) -> str:
    if execution is None:
        return f"waiting for the run to start ({seconds:.0f} s)"
    try:
        run = store.get_json(f"{run_prefix(run_id)}run.json")
    except ObjectNotFound:
        return f"{run_id}: splitting the file into chunks ({seconds:.0f} s)"
    done = sum(1 for _ in store.list_keys(f"{run_prefix(run_id)}results/"))
    total = max(int(run["chunks"]), 1)
    return (f"{run_id}: {done:,}/{run['chunks']:,} chunks scored ({done / total:.0%}), {run['rows_in']:,} rows, "
            f"model {run['model_version']}, {execution['status'].lower()} ({seconds:.0f} s)")


def describe(summary: dict[str, Any], bucket: str) -> str:
    """What the user needs from summary.json, in a few lines; objects as s3:// URLs (`aws s3 cp` takes them)."""
    reasons = ", ".join(f"{code} {count:,}" for code, count in summary["rejected_by_reason"].items()) or "none"

    def url(key: str) -> str:
        return f"s3://{bucket}/{key}"

    return "\n".join([
        f"run {summary['run_id']}: {summary['status']}, model {summary['model_version']}",
        f"rows in {summary['rows_in']:,}, scored {summary['rows_out']:,}, rejected {summary['rows_rejected']:,} "
        f"({reasons})",
        f"predictions: {', '.join(url(part) for part in summary['parts'])}",
        f"rejected rows: {url(summary['rejected_key'])}",
        f"summary: {url(summary_key(summary['run_id']))} "
        f"({summary['timings']['wall_seconds']:.1f} s)",
    ])


def _cmd_score(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise LooplineError(f"{path}: no such file")
    from loopline.operate.commands import stack_from

    stack = stack_from(args)
    key, candidates = submit(stack, path, chunk_rows=args.chunk_rows)
    print(f"uploaded {path} to s3://{stack.bucket}/{key}", file=sys.stderr)
    tty = sys.stderr.isatty()

    def show(line: str) -> None:
        print(("\r\x1b[K" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    summary = follow(stack, candidates, timeout=args.timeout, on_progress=show)
    if tty:
        print(file=sys.stderr)
    print(describe(summary, stack.bucket))
    return 0 if summary["status"] == "complete" else 1


def add_score(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from loopline.operate.commands import add_stack_arguments

    score = subparsers.add_parser(
        "score",
        help="score a CSV of any size with the champion (batch scoring state machine)",
        description="Upload FILE under batch/incoming/ of the stack's bucket, which starts a batch scoring run "
        "(one champion version for the whole run), follow it with a progress line, and print where the "
        "predictions are (s3:// URLs). The stack is found like `loopline status` finds it.",
        epilog="examples:\n  loopline score customers.csv\n  loopline score big.csv --stack-name loopline-wine\n"
        "  loopline score s.csv --endpoint-url http://127.0.0.1:5000 --stack-name loopline-wine",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.add_argument("file", metavar="FILE", help="the CSV to score (the model's feature columns; others are kept)")
    add_stack_arguments(score)
    score.add_argument("--chunk-rows", type=int, help="rows per chunk object (default: the function's, 10000)")
    score.add_argument("--timeout", type=float, default=3600, help="seconds to follow the run (default 3600)")
    score.set_defaults(handler=_cmd_score)
