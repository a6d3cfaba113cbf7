"""Benchmark cases for the monitor function's cold start (its `monitor` action on a labeled batch), on the model the
train case registered, each in a fresh Python process (cases.run_case):

- monitor_cold: functions/monitor/app.py as deployed: the runtime package with the config bundled as a build
  leaves it (no $LOOPLINE_PIPELINE_CONFIG), the champion pinned in (moto) S3 and a labeled dataset version of
  MONITOR_ROWS rows; cold start = process start -> the report, minus the moto setup. The result lists which
  training-stack modules the process imported.
- monitor_naive: the naive baseline, measured the same way: import pandas, scikit-learn and scipy, unpickle the
  Pipeline, read the batch with pandas, predict it, scikit-learn's f1 and scipy's ks_2samp per numeric feature
  against the profile's sample (what a monitor written the obvious way does).

Before/after: `LOOPLINE_BENCH_SOURCE=<a checkout>` measures monitor_cold on that checkout's layers/runtime and
functions/monitor (e.g. `git archive <commit> layers/runtime functions | tar -x -C /tmp/before`).
Like the rest of the package, this module imports only the standard library at top level.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

CASES = ("monitor_cold", "monitor_naive")
MONITOR_ROWS = 5_000
DATASET_VERSION = "ds-bench-monitor"
SOURCE_ENV = "LOOPLINE_BENCH_SOURCE"


def _batch(workdir: Path) -> bytes:
    """The first MONITOR_ROWS rows of data.csv (labeled), as a dataset version holds them."""
    with (workdir / "data.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        rows = [next(reader)]
        for row in reader:
            if len(rows) > MONITOR_ROWS:
                break
            rows.append(row)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _overlay_runtime(workdir: Path) -> Path:
    """The runtime package of the measured source, with the bundled config, first on sys.path (the harness's own
    loopline_runtime imports are dropped, so the function imports it as at a cold start); its monitor app.py."""
    from loopline.bench.cases import REPO_ROOT

    source = Path(os.environ.get(SOURCE_ENV) or REPO_ROOT)
    site = workdir / "monitor_site"
    shutil.rmtree(site, ignore_errors=True)
    shutil.copytree(source / "layers" / "runtime" / "python" / "loopline_runtime", site / "loopline_runtime",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "pipeline.json"))
    shutil.copy(workdir / "config.json", site / "loopline_runtime" / "pipeline.json")
    for name in [m for m in sys.modules if m == "loopline_runtime" or m.startswith("loopline_runtime.")]:
        del sys.modules[name]
    sys.path.insert(0, str(site))
    os.environ.pop("LOOPLINE_PIPELINE_CONFIG", None)
    return source / "functions" / "monitor" / "app.py"


def child_monitor_cold(workdir: Path) -> dict[str, Any]:
    """The monitor function's first `monitor` invocation in a fresh process (see the module docstring)."""
    import importlib.util

    from loopline.bench import cases, serving
    from loopline.bench.chunk_scoring import _loaded_training_stack, _staged
    from loopline.bench.limits import FunctionLimits

    spawned_at = float(os.environ[serving.SPAWNED_AT_ENV])
    setup_started = time.time()
    mock, _, s3 = _staged(workdir, "monitor_limits")
    from loopline_runtime.bucket_layout import dataset_prefix

    prefix = dataset_prefix(DATASET_VERSION)
    batch = _batch(workdir)
    s3.put_object(Bucket=cases.BUCKET, Key=f"{prefix}data.csv", Body=batch)
    s3.put_object(Bucket=cases.BUCKET, Key=f"{prefix}manifest.json", Body=json.dumps({"version": DATASET_VERSION}))
    app_path = _overlay_runtime(workdir)
    setup_s = time.time() - setup_started
    try:
        before = set(sys.modules)
        import_started = time.time()
        spec = importlib.util.spec_from_file_location("loopline_bench_monitor_app", app_path)
        assert spec is not None and spec.loader is not None
        app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(app)
        import_s = time.time() - import_started
        plan = json.loads((workdir / "plan.json").read_text())
        answer = app.lambda_handler({"action": "monitor", "dataset_version": DATASET_VERSION, "reason": "bench"},
                                    cases._context(FunctionLimits(**plan["monitor_limits"])))
        answered_at = time.time()
    finally:
        mock.stop()
    return {"cold_s": answered_at - spawned_at - setup_s, "import_s": import_s, "setup_s": setup_s,
            "source": os.environ.get(SOURCE_ENV) or "this checkout", "rows": batch.count(b"\n") - 1,
            "answer": {k: answer.get(k) for k in ("status", "metric", "value", "drifted_share")},
            "training_stack_loaded": _loaded_training_stack(before), "hwm_kib": cases.vm_hwm_kib()}


def child_monitor_naive(workdir: Path) -> dict[str, Any]:
    """The naive monitor's first batch in a fresh process: pandas + scikit-learn + scipy and the unpickled Pipeline."""
    from loopline.bench import cases, serving
    from loopline.bench.chunk_scoring import _loaded_training_stack
    from loopline.bench.data import TARGET

    spawned_at = float(os.environ[serving.SPAWNED_AT_ENV])
    batch = _batch(workdir)
    profile = json.loads((workdir / "manifest.json").read_text())["training_profile"]
    sys.path.insert(0, str(cases.REPO_ROOT / "layers" / "runtime" / "python"))
    before = set(sys.modules)
    import_started = time.time()
    import joblib
    import pandas as pd
    from scipy.stats import ks_2samp
    from sklearn.metrics import f1_score

    import_s = time.time() - import_started
    pipeline = joblib.load(workdir / "model.joblib")
    frame = pd.read_csv(io.BytesIO(batch), dtype=str)
    labels = frame.pop(TARGET)
    from loopline_runtime.prediction import predict_with_probabilities

    predictions, _, _ = predict_with_probabilities(pipeline, frame)
    f1 = f1_score(pd.to_numeric(labels), predictions, average="macro")
    p_values = {name: float(ks_2samp(pd.to_numeric(frame[name], errors="coerce").dropna(), spec["ks_sample"]).pvalue)
                for name, spec in profile["features"].items() if spec["kind"] == "numeric"}
    answered_at = time.time()
    return {"cold_s": answered_at - spawned_at, "import_s": import_s, "rows": len(predictions), "f1": float(f1),
            "features_tested": len(p_values), "training_stack_loaded": _loaded_training_stack(before),
            "hwm_kib": cases.vm_hwm_kib()}


def monitor_section(runs: dict[str, Any]) -> list[str]:
    """docs/benchmarks.md: the monitor function's cold start next to the naive one."""
    from loopline.bench.report import format_table, seconds

    cold, naive = (runs.get(case) for case in CASES)
    if cold is None and naive is None:
        return []
    lines = ["## Monitor", "",
             f"The monitor function's first `monitor` invocation (a labeled batch of {MONITOR_ROWS:,} rows: score, "
             "metrics, drift, report) in a fresh process (moto setup excluded), next to a naive pandas + "
             "scikit-learn + scipy monitor.", ""]
    rows = []
    for name, run in (("monitor (functions/monitor, as deployed)", cold), ("naive: pandas + scikit-learn + scipy",
                                                                           naive)):
        if run is None:
            continue
        if not run.ok:
            rows.append([name, f"FAILED (exit {run.exit_code})", "", ""])
            continue
        r = run.result
        rows.append([name, seconds(r["cold_s"]), seconds(r["import_s"]),
                     ", ".join(r["training_stack_loaded"]) or "none"])
    lines.append(format_table(["case", "cold start", "imports", "training modules imported"], rows))
    return [*lines, ""]
