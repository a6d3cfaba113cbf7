"""Benchmark cases for batch scoring: the whole synthetic file scored end to end on
the local emulator (`loopline local up`: upload, split, Distributed Map over the chunks, predictions written),
next to one process that reads the same file and predicts it in one call.

Both use the model the train case registered. Imports only the standard library at top level.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def child_batch(workdir: Path) -> dict[str, Any]:
    """Score data.csv through the batch scoring state machine of a fresh local stack."""
    from loopline.bench.cases import stage_champion
    from loopline.client import StackClient
    from loopline.demo import free_port, local_stack
    from loopline.score_command import follow, submit

    manifest = json.loads((workdir / "manifest.json").read_text())
    stacks = workdir / "stacks"
    aws_port = free_port()
    with local_stack("bench-batch", config=workdir / "config.yaml", workdir=stacks, aws_port=aws_port,
                     api_port=free_port()):
        stack = StackClient("bench-batch", endpoint_url=f"http://127.0.0.1:{aws_port}")
        # the champion the train case registered, put where a promotion puts it (pinned), by the roles that write
        # there (the bucket policy denies everyone else, the account's administrator too)
        stage_champion(_s3_as(stack, "TrainFunction"), workdir, manifest, bucket=stack.bucket,
                       pointer_s3=_s3_as(stack, "EvaluateFunction"))
        t0 = time.perf_counter()
        _, candidates = submit(stack, workdir / "data.csv", name="bench.csv")
        upload_s = time.perf_counter() - t0
        lines: list[str] = []
        summary = follow(stack, candidates, timeout=3600, on_progress=lines.append)
        wall_s = time.perf_counter() - t0
        map_runs = stack.sfn.list_map_runs(executionArn=stack.outputs["BatchScoringStateMachineArn"].replace(
            ":stateMachine:", ":execution:") + ":" + summary["run_id"])["mapRuns"]
        max_concurrency = (stack.sfn.describe_map_run(mapRunArn=map_runs[0]["mapRunArn"])["maxConcurrency"]
                           if map_runs else None)
    return {"wall_s": wall_s, "upload_s": upload_s, "summary": summary, "last_progress": lines[-1] if lines else "",
            "max_concurrency": max_concurrency}


def _s3_as(stack: Any, function: str) -> Any:
    """An S3 client with the credentials of the local stack's role of `function` (a CloudFormation-style role
    name holds -<Function>Role-)."""
    import boto3

    iam = stack.client("iam")
    arn = next(role["Arn"] for page in iam.get_paginator("list_roles").paginate() for role in page["Roles"]
               if f"-{function}Role-" in role["RoleName"])
    assumed = stack.client("sts").assume_role(RoleArn=arn, RoleSessionName="bench-staging")["Credentials"]
    return boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=assumed["AccessKeyId"], aws_secret_access_key=assumed["SecretAccessKey"],
                        aws_session_token=assumed["SessionToken"])


def child_batch_baseline(workdir: Path) -> dict[str, Any]:
    """One process: read the file and predict every row with the same model in one call."""
    from loopline.bench.cases import vm_hwm_kib

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "layers" / "runtime" / "python"))
    t0 = time.perf_counter()
    import joblib
    import pandas as pd

    from loopline_runtime.prediction import predict_with_probabilities

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipeline = joblib.load(workdir / "model.joblib")
    frame = pd.read_csv(workdir / "data.csv", dtype=str)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    predictions, _, _ = predict_with_probabilities(pipeline, frame)
    predict_s = time.perf_counter() - t0
    return {"import_s": import_s, "read_s": read_s, "predict_s": predict_s, "rows": len(predictions),
            "hwm_kib": vm_hwm_kib()}


def batch_section(runs: dict[str, Any], rows: int) -> list[str]:
    """docs/benchmarks.md: batch scoring throughput on the emulator next to one process."""
    from loopline.bench.report import format_table, megabytes, seconds

    batch, base = runs.get("batch"), runs.get("batch_baseline")
    if batch is None:
        return []
    lines = ["## Batch scoring", ""]
    if not batch.ok:
        return [*lines, f"Batch scoring DID NOT COMPLETE (exit {batch.exit_code}; log {batch.log}).", ""]
    r, s = batch.result, batch.result["summary"]
    t = s["timings"]
    b = base.result if base is not None and base.ok else None
    base_total = (b["read_s"] + b["predict_s"]) if b else None
    lines += [
        f"The synthetic file ({rows:,} rows) uploaded with `loopline score`'s client code to a fresh local stack "
        f"(`loopline local up`: moto in server mode, Lambda workers as local processes, at most "
        f"{r.get('max_concurrency')} chunks at a time in the Distributed Map, the emulator's pool of 3 workers per "
        f"function), with the model registered by the train case as champion; timed from the start of the upload "
        f"to summary.json. Baseline: one process reads the same CSV and calls the pipeline's predict path once.",
        "",
        format_table(["", "batch scoring on the emulator", "baseline: one process"], [
            ["rows in / scored / rejected", f"{s['rows_in']:,} / {s['rows_out']:,} / {s['rows_rejected']:,}",
             f"{b['rows']:,} / {b['rows']:,} / 0" if b else "n/a"],
            ["chunks (rows each)", f"{s['chunks']:,} ({s['chunk_rows']:,})", ""],
            ["wall time", f"{seconds(r['wall_s'])} (upload {seconds(r['upload_s'])}, split "
             f"{seconds(t['split_seconds'])}, chunks {seconds(t['chunk_seconds_total'])} of Lambda time, final "
             f"step {seconds(t['finalize_seconds'])})",
             f"{seconds(base_total)} (read {seconds(b['read_s'])}, predict {seconds(b['predict_s'])})"
             if b and base_total else "n/a"],
            ["throughput", f"{s['rows_in'] / r['wall_s']:,.0f} rows/s end to end",
             f"{b['rows'] / base_total:,.0f} rows/s" if b and base_total else "n/a"],
            ["peak RSS", "(several processes)", megabytes(base.peak_kib) if base else "n/a"],
        ]),
        "",
        f"Status {s['status']}, one model version for the run: {s['model_version']}. On AWS the chunks run "
        "in parallel Lambdas (MaxConcurrency in the ASL); here they share this machine's cores with the emulator.",
        "",
    ]
    return lines
