"""Benchmark cases for one batch chunk scorer (a Distributed Map child of the batch scoring state machine), on the
model the train case registered, each in a fresh Python process (cases.run_case):

- chunk_cold: functions/batch/app.py as deployed; cold start = process start -> the first chunk's answer (the
  `score` action on CHUNK_COLD_ROWS rows, the model loaded from (moto) S3 by its pins), minus the moto setup,
  which is not part of a Lambda cold start. The result lists which training-stack modules the process imported.
- chunk_naive: the naive baseline, measured the same way: import pandas and scikit-learn, unpickle the Pipeline,
  read the chunk with pandas and predict it (what a chunk scorer written the obvious way does).
- chunk_throughput: one warm scorer: every row of the synthetic file through `score_chunk`, in chunks of the
  largest size a run allows (CHUNK_ROWS_RANGE), the model already loaded; rows per second of scoring.

The before figures of these rows come from running the same cases against an earlier loopline_runtime (put it
first on PYTHONPATH). Like the rest of the package, this module imports only the standard library at top level.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

CASES = ("chunk_cold", "chunk_naive", "chunk_throughput")
CHUNK_COLD_ROWS = 1_000
RUN_ID = "bench-run"
TRAINING_STACK = ("pandas", "sklearn", "scipy", "pydantic", "yaml", "joblib")


def _chunk_rows(workdir: Path, start: int, count: int) -> tuple[list[str], list[list[str]]]:
    """Rows [start, start + count) of data.csv as a chunk file holds them: input_row first."""
    with (workdir / "data.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows: list[list[str]] = []
        for number, row in enumerate(reader, start=1):
            if number <= start:
                continue
            if len(rows) == count:
                break
            rows.append([str(number), *row])
    return ["input_row", *header], rows


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _staged(workdir: Path, limits_key: str = "predict_limits") -> tuple[Any, dict[str, Any], Any]:
    """Moto on, the champion staged, the environment of a function set; (mock, pointer, s3 client)."""
    from loopline.bench import cases
    from loopline.bench.limits import FunctionLimits

    plan = json.loads((workdir / "plan.json").read_text())
    cases._aws_environment(FunctionLimits(**plan[limits_key]))
    import boto3
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=cases.BUCKET)
    manifest = json.loads((workdir / "manifest.json").read_text())
    cases.stage_champion(s3, workdir, manifest)
    from loopline_runtime.bucket_layout import CHAMPION_KEY

    pointer = json.loads(s3.get_object(Bucket=cases.BUCKET, Key=CHAMPION_KEY)["Body"].read())
    return mock, pointer, s3


def _loaded_training_stack(before: set[str]) -> list[str]:
    """The training-stack packages imported since `before` (the harness's own imports, moto's, do not count)."""
    return sorted({name.split(".")[0] for name in set(sys.modules) - before} & set(TRAINING_STACK))


def child_chunk_cold(workdir: Path) -> dict[str, Any]:
    """The batch function's first `score` invocation in a fresh process (see the module docstring)."""
    from loopline.bench import cases, serving

    spawned_at = float(os.environ[serving.SPAWNED_AT_ENV])
    setup_started = time.time()
    mock, pointer, s3 = _staged(workdir)
    from loopline_runtime.batch_layout import chunk_prefix

    chunk_key = f"{chunk_prefix(RUN_ID)}000001.csv"
    s3.put_object(Bucket=cases.BUCKET, Key=chunk_key, Body=_csv(*_chunk_rows(workdir, 0, CHUNK_COLD_ROWS)))
    setup_s = time.time() - setup_started
    try:
        from loopline.local_lambda import import_function_app

        before = set(sys.modules)
        import_started = time.time()
        app = import_function_app("batch", "loopline_bench_batch_app")
        import_s = time.time() - import_started
        from loopline.bench.limits import FunctionLimits

        plan = json.loads((workdir / "plan.json").read_text())
        event = {"action": "score", "run_id": RUN_ID, "chunk_key": chunk_key, "model_version": pointer["version"],
                 "pins": pointer["pins"]}
        answer = app.lambda_handler(event, cases._context(FunctionLimits(**plan["predict_limits"])))
        answered_at = time.time()
    finally:
        mock.stop()
    return {"cold_s": answered_at - spawned_at - setup_s, "import_s": import_s, "setup_s": setup_s,
            "answer": answer, "training_stack_loaded": _loaded_training_stack(before), "hwm_kib": cases.vm_hwm_kib()}


def child_chunk_naive(workdir: Path) -> dict[str, Any]:
    """The naive chunk scorer's first chunk in a fresh process: pandas + scikit-learn + the unpickled Pipeline."""
    from loopline.bench import cases, serving

    spawned_at = float(os.environ[serving.SPAWNED_AT_ENV])
    chunk = _csv(*_chunk_rows(workdir, 0, CHUNK_COLD_ROWS))
    sys.path.insert(0, str(cases.REPO_ROOT / "layers" / "runtime" / "python"))
    before = set(sys.modules)
    import_started = time.time()
    import io

    import joblib
    import pandas as pd

    from loopline_runtime.prediction import predict_with_probabilities

    import_s = time.time() - import_started
    pipeline = joblib.load(workdir / "model.joblib")
    frame = pd.read_csv(io.BytesIO(chunk), dtype=str)
    predictions, _, _ = predict_with_probabilities(pipeline, frame.drop(columns=["input_row"]))
    answered_at = time.time()
    return {"cold_s": answered_at - spawned_at, "import_s": import_s, "rows": len(predictions),
            "training_stack_loaded": _loaded_training_stack(before), "hwm_kib": cases.vm_hwm_kib()}


def child_chunk_throughput(workdir: Path) -> dict[str, Any]:
    """Every row of data.csv through score_chunk in one warm scorer, chunks of the largest allowed size."""
    from loopline.bench import cases

    mock, pointer, s3 = _staged(workdir)
    before = set(sys.modules)
    try:
        from loopline_runtime.batch import CHUNK_ROWS_RANGE, ModelCache, score_chunk
        from loopline_runtime.batch_layout import chunk_prefix
        from loopline_runtime.registry import ModelRegistry
        from loopline_runtime.storage import ObjectStore

        store = ObjectStore.from_env()
        models = ModelCache(ModelRegistry(store))
        models.get(pointer["version"], pointer["pins"])  # the model is loaded once per warm scorer, not timed
        size = CHUNK_ROWS_RANGE[1]
        keys: list[tuple[str, int]] = []
        start = 0
        while True:
            header, rows = _chunk_rows(workdir, start, size)
            if not rows:
                break
            key = f"{chunk_prefix(RUN_ID)}{len(keys) + 1:06d}.csv"
            s3.put_object(Bucket=cases.BUCKET, Key=key, Body=_csv(header, rows))
            keys.append((key, len(rows)))
            start += len(rows)
        started = time.perf_counter()
        scored = rejected = 0
        for key, _ in keys:
            result = score_chunk(store, models, RUN_ID, key, pointer["version"], pointer["pins"])
            scored += result["scored"]
            rejected += result["rejected"]
        seconds = time.perf_counter() - started
    finally:
        mock.stop()
    rows_total = sum(count for _, count in keys)
    return {"rows": rows_total, "chunks": len(keys), "chunk_rows": size, "seconds": seconds,
            "rows_per_s": rows_total / seconds, "scored": scored, "rejected": rejected,
            "training_stack_loaded": _loaded_training_stack(before), "hwm_kib": cases.vm_hwm_kib()}


def chunk_section(runs: dict[str, Any]) -> list[str]:
    """docs/benchmarks.md: a chunk scorer's cold start next to the naive one, and its warm throughput."""
    from loopline.bench.report import format_table, seconds

    cold, naive, throughput = (runs.get(case) for case in CASES)
    if cold is None and naive is None and throughput is None:
        return []
    lines = ["## Batch chunk scorer", "",
             f"One Distributed Map child's first `score` invocation ({CHUNK_COLD_ROWS:,} rows) in a fresh process "
             "(moto setup excluded), next to a naive pandas + scikit-learn scorer; and one warm scorer's rows per "
             "second over the whole file.", ""]
    rows = []
    for name, run in (("chunk scorer (functions/batch, as deployed)", cold), ("naive: pandas + scikit-learn", naive)):
        if run is None:
            continue
        if not run.ok:
            rows.append([name, f"FAILED (exit {run.exit_code})", "", ""])
            continue
        r = run.result
        rows.append([name, seconds(r["cold_s"]), seconds(r["import_s"]), ", ".join(r["training_stack_loaded"]) or
                     "none"])
    if rows:
        lines.append(format_table(["case", "cold start", "imports", "training modules imported"], rows))
    if throughput is not None and throughput.ok:
        r = throughput.result
        lines += ["", f"Warm scorer: {r['rows']:,} rows in {r['chunks']} chunk(s) of up to {r['chunk_rows']:,} rows "
                      f"in {r['seconds']:.2f} s: **{r['rows_per_s']:,.0f} rows/s** "
                      f"(training modules imported: {', '.join(r['training_stack_loaded']) or 'none'})."]
    return [*lines, ""]
