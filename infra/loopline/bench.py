"""Benchmarks: the train handler on a 100k-row table, and the predict path's cold and warm latency, each next
to a plain baseline measured in the same run.

    python -m loopline.bench [--rows 100000] [--seed 7] [--warm-requests 200] [--output docs/benchmarks.md]

Every measured case runs in a fresh Python subprocess (`--child CASE`), so imports count as in a Lambda cold
start, and its peak memory is the child's RSS high-water mark (VmHWM; the parent also reads the child's
`ru_maxrss` through wait4). The cases:

- train: the REAL train handler (functions/train/app.py) on moto S3 (in-process, `moto.mock_aws`), on a dataset
  version written by the runtime's own ingest path, with the repo's pipeline config adapted to the synthetic
  table (window 1, the default candidates and time budget from loopline_runtime.config). The handler's context
  counts down from TrainFunction's Timeout in template.yaml, and the child is killed (SIGALRM) when it runs out,
  as Lambda would. Timing probes record where the time goes (load, each candidate's cross-validation, refit,
  holdout scoring, registration) into a progress file, so even a killed run says which phase it was in.
- baseline: plain scikit-learn, one HistGradientBoostingClassifier on the same rows and the same seeded split.
- imports: `import sklearn, pandas` alone (the floor of any predict cold start).
- predict: functions/predict/app.py imported fresh, serving the model the train case registered: the imports,
  the first request (champion load + prediction), then warm single-record requests (median of N).

The module imports only the standard library at top level: a child's import timings start from a bare interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from loopline_runtime.config import PipelineConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDA_MAX_TIMEOUT_S = 900  # 15 minutes
LAMBDA_MAX_MEMORY_MB = 10_240
TARGET = "churned"
BUCKET = "loopline-bench-artifacts"
UPLOAD_KEY = "incoming/bench.csv"
CASES = ("train", "baseline", "imports", "predict", "train_full_search")

# ---------------------------------------------------------------- synthetic data (pure)

NUMERIC_COLUMNS = [f"num_{i:02d}" for i in range(20)]
# name -> number of levels: low to high cardinality (the pipeline one-hot encodes at most 50 per column)
CATEGORICAL_LEVELS = {"region": 5, "plan": 3, "channel": 8, "device": 12, "city": 200, "product": 1500}
BOOLEAN_COLUMNS = ["is_active", "has_promo"]
DATE_COLUMN = "signup_date"


def generate_dataset(rows: int, seed: int) -> pd.DataFrame:
    """A seeded synthetic classification table: 20 numeric, 6 categorical, 2 boolean, 1 date column + target.

    Numeric columns mix distributions and carry noise and missing values; the target depends non-linearly on
    several numeric columns, on two categoricals, a boolean and the date's month, so models have something to
    learn (and a tree ensemble has an edge over a linear model).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for index, name in enumerate(NUMERIC_COLUMNS):
        kind = index % 4
        if kind == 0:
            column = rng.normal(0.0, 1.0, rows)
        elif kind == 1:
            column = rng.lognormal(3.0, 0.8, rows)  # skewed, like amounts
        elif kind == 2:
            column = rng.uniform(-2.0, 2.0, rows)
        else:
            column = rng.poisson(4.0, rows).astype(float)  # counts
        data[name] = column
    for name, levels in CATEGORICAL_LEVELS.items():
        weights = rng.dirichlet(np.full(levels, 0.7))  # uneven level frequencies, some rare levels
        data[name] = np.asarray([f"{name}_{i:04d}" for i in range(levels)], dtype=object)[
            rng.choice(levels, size=rows, p=weights)]
    data["is_active"] = rng.random(rows) < 0.7
    data["has_promo"] = rng.random(rows) < 0.25
    start = np.datetime64("2020-01-01")
    dates = start + rng.integers(0, 5 * 365, rows).astype("timedelta64[D]")
    frame = pd.DataFrame(data)
    frame[DATE_COLUMN] = pd.to_datetime(dates)

    # the signal: interactions, thresholds, periodic terms and level effects
    effect_city = rng.normal(0.0, 0.8, CATEGORICAL_LEVELS["city"])
    effect_plan = np.array([-0.8, 0.0, 0.9])
    city_index = frame["city"].str[-4:].astype(int).to_numpy()
    plan_index = frame["plan"].str[-4:].astype(int).to_numpy()
    month = frame[DATE_COLUMN].dt.month.to_numpy()
    x = {name: frame[name].to_numpy() for name in NUMERIC_COLUMNS}
    logit = (
        1.4 * np.sin(1.7 * x["num_00"])
        + 0.9 * (x["num_04"] ** 2 - 1.0)
        - 0.8 * x["num_02"] * x["num_06"]
        + 1.1 * (np.log(x["num_01"]) > 3.4)
        + 0.35 * (x["num_03"] - 4.0)
        + effect_city[city_index]
        + effect_plan[plan_index]
        + 0.9 * frame["has_promo"].to_numpy() * (x["num_08"] > 0)
        + 0.7 * np.cos(2 * np.pi * month / 12.0)
        + rng.normal(0.0, 0.8, rows)  # irreducible noise
    )
    logit -= np.quantile(logit, 0.62)  # about 38% positives
    frame[TARGET] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-2.0 * logit))).astype("int64")

    # missing values after the target is drawn, as in collected data; noise on a few numeric columns
    for index, name in enumerate(NUMERIC_COLUMNS):
        if index % 3 == 0:
            frame.loc[rng.random(rows) < 0.02 + 0.01 * (index % 5), name] = np.nan
        if index % 5 == 4:
            frame[name] = frame[name] + rng.normal(0.0, 0.1, rows)
    for name in ("channel", "device"):
        frame.loc[rng.random(rows) < 0.03, name] = None
    return frame


def adapted_config(config: PipelineConfig, *, target: str = TARGET) -> PipelineConfig:
    """The repo's pipeline config for the synthetic table: its target, features inferred at ingest, a window
    of one dataset version, and the default candidates and time budget (read from loopline_runtime.config)."""
    from loopline_runtime.config import PipelineConfig, TrainingConfig, parse_config

    data = config.model_dump(mode="json")
    data.update(
        name="bench",
        target=target,
        features=PipelineConfig.model_fields["features"].default,
        ignore=[],
        models=PipelineConfig.model_fields["models"].default,
    )
    data["training"] = {**data["training"], "window": 1,
                        "time_budget_seconds": TrainingConfig.model_fields["time_budget_seconds"].default}
    return parse_config(data, source="benchmark config")


# ---------------------------------------------------------------- template facts (pure)


@dataclass(frozen=True)
class FunctionLimits:
    name: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str] = field(default_factory=dict)


def function_limits(template: dict[str, Any], logical_id: str) -> FunctionLimits:
    """A function's Timeout, MemorySize and literal environment (Globals first, then its own) from the template."""
    globals_ = template.get("Globals", {}).get("Function", {})
    properties = template["Resources"][logical_id]["Properties"]
    environment: dict[str, str] = {}
    for source in (globals_, properties):
        for name, value in source.get("Environment", {}).get("Variables", {}).items():
            if isinstance(value, str | int | float):
                environment[name] = str(value)
    return FunctionLimits(
        name=logical_id,
        timeout_s=int(properties.get("Timeout", globals_.get("Timeout", 3))),
        memory_mb=int(properties.get("MemorySize", globals_.get("MemorySize", 128))),
        environment=environment,
    )


# ---------------------------------------------------------------- where the time went (pure)


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    finished: bool = True
    load: float | None = None  # 1-min load average when the phase ended (the last of its parts)


def phases_from_events(events: Sequence[dict[str, Any]], end: float | None = None) -> list[Phase]:
    """Turn the train probes' start/end events (t = seconds since the handler was invoked) into phases.

    CV time is summed per candidate family; "refit" is the search's tail after its last cross-validation (the
    winner refit on all training rows). A phase that started but never ended (the run was killed) is reported
    up to `end` as unfinished. Gaps between probes are reported as "other".
    """
    phases: list[Phase] = []
    open_: dict[str, tuple[float, str]] = {}
    cv_totals: dict[str, float] = {}
    cv_load: dict[str, float | None] = {}
    last_cv_end: float | None = None
    search_start: float | None = None
    for event in events:
        kind, t = event["event"], float(event["t"])
        label = event.get("label", kind)
        load = event.get("load")
        if kind.endswith("_start"):
            open_[kind[: -len("_start")]] = (t, label)
            if kind == "search_start":
                search_start = t
            continue
        if not kind.endswith("_end"):
            continue
        base = kind[: -len("_end")]
        started, label = open_.pop(base, (t, label))
        if base == "cv":
            cv_totals[label] = cv_totals.get(label, 0.0) + (t - started)
            cv_load[label] = load
            last_cv_end = t
        elif base == "search":
            for name, seconds in cv_totals.items():
                phases.append(Phase(f"search: cross-validate {name}", seconds, load=cv_load[name]))
            cv_totals = {}
            tail_from = last_cv_end if last_cv_end is not None else started
            phases.append(Phase("search: refit winner on all training rows", t - tail_from, load=load))
        else:
            phases.append(Phase(label, t - started, load=load))
    for name, seconds in cv_totals.items():  # the search never ended
        phases.append(Phase(f"search: cross-validate {name}", seconds, load=cv_load[name]))
    if end is not None:
        for base, (started, label) in open_.items():
            if base == "search":
                tail_from = last_cv_end if last_cv_end is not None else started
                if "cv" not in open_:
                    phases.append(Phase("search: refit winner on all training rows", end - tail_from, False))
                continue
            if base == "cv":
                phases.append(Phase(f"search: cross-validate {label}", end - started, False))
            else:
                phases.append(Phase(label, end - started, False))
        accounted = sum(p.seconds for p in phases)
        if search_start is not None and end - accounted > 0.05:
            phases.append(Phase("other (split, holdout CSV, profile, S3)", end - accounted))
    return phases


# ---------------------------------------------------------------- formatting (pure)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (pipes aligned, so it reads the same printed and rendered)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells[1:]]
    return "\n".join(lines)


def seconds(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.1f} s"


def megabytes(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:,.0f} MB"


def margin(used: float | None, limit: float, unit: str) -> str:
    """`limit - used`, with the share of the limit that is used ("OVER" when past it)."""
    if used is None:
        return "n/a"
    left = limit - used
    share = used / limit
    if left < 0:
        return f"OVER by {-left:,.0f} {unit} ({share:.0%} of {limit:,.0f} {unit})"
    return f"{left:,.0f} {unit} left ({share:.0%} of {limit:,.0f} {unit} used)"


def score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# ---------------------------------------------------------------- measurement helpers (children)


def vm_hwm_kib() -> int | None:
    """This process's RSS high-water mark (VmHWM, KiB), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to /proc/self/clear_refs); False when not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class LambdaContext:
    """What the handlers read from a Lambda context; the remaining time counts down from the function's Timeout."""

    def __init__(self, limits: FunctionLimits) -> None:
        self.function_name = f"bench-{limits.name}"
        self.memory_limit_in_mb = limits.memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:bench-{limits.name}"
        self.aws_request_id = "00000000-0000-4000-8000-000000000000"
        self._deadline = time.monotonic() + limits.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_function(name: str) -> ModuleType:
    """Import functions/<name>/app.py as Lambda does (its module-level code runs: clients, config)."""
    module_name = f"loopline_bench_{name}_app"
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _aws_environment(limits: FunctionLimits, config_path: Path | None = None) -> None:
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"})
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(limits.environment)
    os.environ["ARTIFACT_BUCKET"] = BUCKET
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the handlers' INFO lines are not what is measured
    if config_path is not None:
        os.environ["LOOPLINE_PIPELINE_CONFIG"] = str(config_path)


class Probes:
    """Timing probes around the train path's phases, appended (and flushed) to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.origin = time.perf_counter()
        self._file = path.open("a", encoding="utf-8")

    def mark(self, event: str, **extra: Any) -> None:
        record = {"event": event, "t": round(time.perf_counter() - self.origin, 4),
                  "load": round(os.getloadavg()[0], 2), **extra}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def wrap(self, owner: Any, attribute: str, name: str, label: Callable[..., str] | None = None) -> None:
        original = getattr(owner, attribute)

        def probed(*args: Any, **kwargs: Any) -> Any:
            text = label(*args, **kwargs) if label else name
            self.mark(f"{name}_start", label=text)
            try:
                return original(*args, **kwargs)
            finally:
                self.mark(f"{name}_end", label=text)

        setattr(owner, attribute, probed)


# ---------------------------------------------------------------- the children


def child_train(workdir: Path, *, full_search: bool = False) -> dict[str, Any]:
    """The train handler; with full_search, as before modeling.SEARCH_MAX_ROWS: candidates cross-validated on
    every training row (a comparison case: its model is not kept)."""
    plan = json.loads((workdir / "plan.json").read_text())
    limits = FunctionLimits(**plan["train_limits"])
    _aws_environment(limits, workdir / "config.yaml")
    t0 = time.perf_counter()
    import boto3

    boto3_import_s = time.perf_counter() - t0
    from moto import mock_aws

    result: dict[str, Any] = {"boto3_import_s": boto3_import_s}
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        t0 = time.perf_counter()
        app = load_function("train")
        result["handler_import_s"] = time.perf_counter() - t0

        from loopline_runtime import modeling, training
        from loopline_runtime.datasets import DatasetCatalog
        from loopline_runtime.ingest import ingest_upload
        from loopline_runtime.registry import ModelRegistry

        t0 = time.perf_counter()
        body = (workdir / "data.csv").read_bytes()
        app.store.put_bytes(UPLOAD_KEY, body, content_type="text/csv")
        outcome = ingest_upload(app.store, UPLOAD_KEY, app.config)
        if outcome.status != "accepted":
            raise RuntimeError(f"the synthetic upload was not accepted: {outcome.to_dict()}")
        result["ingest_s"] = time.perf_counter() - t0
        result["csv_bytes"] = len(body)
        del body
        schema = DatasetCatalog(app.store).latest().manifest["schema"]
        result["features"] = schema["features"]

        import gc

        gc.collect()
        result["setup_hwm_kib"] = vm_hwm_kib()
        result["hwm_reset"] = reset_hwm()
        result["rss_before_handler_kib"] = vm_hwm_kib()

        if full_search:
            import functools

            training.search_model = functools.partial(modeling.search_model, max_search_rows=sys.maxsize)
        probes = Probes(workdir / ("train_full_search_progress.jsonl" if full_search else "train_progress.jsonl"))
        probes.wrap(DatasetCatalog, "load", "load", lambda *_a, **_k: "load dataset CSV from S3")
        probes.wrap(training, "search_model", "search")
        search_rows: set[int] = set()

        def candidate(_schema: Any, name: str, _params: Any, X: Any, *_a: Any, **_k: Any) -> str:
            search_rows.add(len(X))
            return name

        probes.wrap(modeling, "_cross_validate", "cv", candidate)
        probes.wrap(training, "evaluate_pipeline", "holdout", lambda *_a, **_k: "score the holdout")
        probes.wrap(ModelRegistry, "register", "register", lambda *_a, **_k: "register (joblib dump + S3)")
        context = LambdaContext(limits)
        probes.mark("invoke")
        signal.alarm(limits.timeout_s)  # default action: the process dies, as Lambda ends a timed-out invoke
        t0 = time.perf_counter()
        response = app.lambda_handler({"trigger": {"reason": "benchmark"}}, context)
        result["handler_s"] = time.perf_counter() - t0
        signal.alarm(0)
        probes.mark("return")
        result["train_hwm_kib"] = vm_hwm_kib()
        result["search_rows"] = sorted(search_rows)
        result["cv_folds"] = modeling.CV_FOLDS
        registry = ModelRegistry(app.store)
        manifest = registry.manifest(response["model_version"])
        if not full_search:
            (workdir / "model.joblib").write_bytes(app.store.get_bytes(manifest["artifact"]["key"]))
            (workdir / "manifest.json").write_text(json.dumps(manifest, default=str))
        result["response"] = response
        result["manifest"] = {k: manifest[k] for k in (
            "estimator", "params", "cv_score", "holdout_score", "leaderboard", "search_budget_seconds",
            "search_budget_exhausted", "training_rows", "holdout_rows", "training_seconds", "artifact", "metric")}
    return result


def child_baseline(workdir: Path) -> dict[str, Any]:
    plan = json.loads((workdir / "plan.json").read_text())
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import OrdinalEncoder

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = pd.read_csv(workdir / "data.csv")
    y = frame.pop(TARGET)
    X = frame
    seed, holdout = plan["seed"], plan["holdout_fraction"]
    # the same split as the train step: same rows, same order, same seed and stratification
    X_train, X_holdout, y_train, y_holdout = train_test_split(X, y, test_size=holdout, random_state=seed,
                                                              stratify=y)
    categorical = list(CATEGORICAL_LEVELS)
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    encoder.fit(X_train[categorical])

    def encode(part: pd.DataFrame) -> np.ndarray:
        out = part.drop(columns=[*categorical, DATE_COLUMN]).astype(float)
        out[categorical] = encoder.transform(part[categorical])
        out[DATE_COLUMN] = (pd.to_datetime(part[DATE_COLUMN]) - pd.Timestamp("2000-01-01")).dt.days.astype(float)
        return out.to_numpy()

    train_matrix = encode(X_train)
    prepare_s = time.perf_counter() - t0
    model = HistGradientBoostingClassifier(random_state=seed)
    t0 = time.perf_counter()
    model.fit(train_matrix, y_train)
    fit_s = time.perf_counter() - t0
    holdout_score = float(f1_score(y_holdout, model.predict(encode(X_holdout)), average="macro"))
    latencies = []
    for i in range(plan["warm_requests"]):
        row = X_holdout.iloc[[i % len(X_holdout)]]
        t0 = time.perf_counter()
        model.predict_proba(encode(row))
        latencies.append(time.perf_counter() - t0)
    return {"import_s": import_s, "prepare_s": prepare_s, "fit_s": fit_s, "holdout_score": holdout_score,
            "warm_median_s": statistics.median(latencies), "train_rows": len(X_train), "holdout_rows": len(X_holdout),
            "hwm_kib": vm_hwm_kib()}


def child_imports(workdir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    import pandas  # noqa: F401
    import sklearn  # noqa: F401

    return {"import_s": time.perf_counter() - t0, "hwm_kib": vm_hwm_kib()}


def child_predict(workdir: Path) -> dict[str, Any]:
    plan = json.loads((workdir / "plan.json").read_text())
    limits = FunctionLimits(**plan["predict_limits"])
    _aws_environment(limits)
    t0 = time.perf_counter()
    import boto3

    boto3_import_s = time.perf_counter() - t0
    from moto import mock_aws

    manifest = json.loads((workdir / "manifest.json").read_text())
    records = json.loads((workdir / "records.json").read_text())
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        version = manifest["version"]
        s3.put_object(Bucket=BUCKET, Key=manifest["artifact"]["key"], Body=(workdir / "model.joblib").read_bytes())
        s3.put_object(Bucket=BUCKET, Key=f"models/{version}/manifest.json", Body=json.dumps(manifest).encode())
        s3.put_object(Bucket=BUCKET, Key="registry/champion.json",
                      Body=json.dumps({"version": version, "previous_version": None}).encode())
        t0 = time.perf_counter()
        app = load_function("predict")
        app_import_s = time.perf_counter() - t0

        def request(record: dict[str, Any]) -> dict[str, Any]:
            event = {"resource": "/predict", "path": "/predict", "httpMethod": "POST", "isBase64Encoded": False,
                     "headers": {"Content-Type": "application/json"}, "body": json.dumps({"records": [record]}),
                     "requestContext": {"requestId": "bench", "stage": "prod"}}
            response = app.lambda_handler(event, LambdaContext(limits))
            if response["statusCode"] != 200:
                raise RuntimeError(f"predict answered {response['statusCode']}: {response['body']}")
            return response

        # the EMF metric lines Powertools prints per request are not what is measured
        with Path(os.devnull).open("w") as sink, contextlib.redirect_stdout(sink):
            t0 = time.perf_counter()
            request(records[0])
            first_request_s = time.perf_counter() - t0
            latencies = []
            for i in range(plan["warm_requests"]):
                t0 = time.perf_counter()
                request(records[i % len(records)])
                latencies.append(time.perf_counter() - t0)
    latencies.sort()
    return {"boto3_import_s": boto3_import_s, "app_import_s": app_import_s, "first_request_s": first_request_s,
            "warm_median_s": statistics.median(latencies), "warm_p95_s": latencies[int(0.95 * (len(latencies) - 1))],
            "warm_requests": len(latencies), "hwm_kib": vm_hwm_kib()}


CHILDREN: dict[str, Callable[[Path], dict[str, Any]]] = {
    "train": child_train, "baseline": child_baseline, "imports": child_imports, "predict": child_predict,
    "train_full_search": lambda workdir: child_train(workdir, full_search=True)}


# ---------------------------------------------------------------- the parent


@dataclass
class CaseRun:
    case: str
    exit_code: int
    wall_s: float
    maxrss_kib: int
    result: dict[str, Any]
    log: Path
    load_before: float = 0.0
    load_after: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and bool(self.result)


def run_case(case: str, workdir: Path, *, kill_after_s: float | None = None) -> CaseRun:
    """Run one case in a fresh interpreter; its own rusage (wait4) gives its peak RSS."""
    log = workdir / f"{case}.log"
    out = workdir / f"{case}.json"
    out.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    with log.open("w") as sink:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "loopline.bench", "--child", case, "--workdir", str(workdir)],
                                stdout=sink, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        timer = threading.Timer(kill_after_s, proc.kill) if kill_after_s else None
        if timer:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            if timer:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
    result = json.loads(out.read_text()) if out.is_file() else {}
    return CaseRun(case, proc.returncode, wall, usage.ru_maxrss, result, log, load_before, os.getloadavg()[0])


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def machine_facts() -> dict[str, str]:
    import moto
    import numpy
    import pandas
    import sklearn

    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    memory = ""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                       if line.startswith("MemTotal:")))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {"nproc": str(os.cpu_count()), "cpu": cpu or platform.processor(), "memory": memory,
            "python": platform.python_version(), "scikit-learn": sklearn.__version__, "pandas": pandas.__version__,
            "numpy": numpy.__version__, "moto": moto.__version__, "platform": platform.platform()}


@dataclass
class Report:
    command: str
    date: str
    facts: dict[str, str]
    rows: int
    columns: int
    seed: int
    train_limits: FunctionLimits
    predict_limits: FunctionLimits
    config_summary: str
    runs: dict[str, CaseRun]
    phases: list[Phase]
    events: list[dict[str, Any]]
    handler_s: float | None  # the train handler's wall time; its Timeout when Lambda's timeout killed it


def handler_seconds(run: CaseRun, events: Sequence[dict[str, Any]], limits: FunctionLimits) -> float | None:
    """The train handler's wall time: measured; or its Timeout when the child died of the Lambda timeout
    (SIGALRM); or, when it died otherwise, the last probe's time (None when there is none)."""
    if run.ok and run.result.get("handler_s") is not None:
        return float(run.result["handler_s"])
    if run.exit_code == -signal.SIGALRM:
        return float(limits.timeout_s)
    return max((float(e["t"]) for e in events), default=None)


def train_peak_kib(run: CaseRun) -> int | None:
    """The train child's peak: the handler's own high-water mark if it could be reset after setup, else the
    whole process's (which then includes generating nothing, but parsing and ingesting the upload)."""
    if run.result.get("hwm_reset") and run.result.get("train_hwm_kib"):
        return int(run.result["train_hwm_kib"])
    return run.maxrss_kib


def render(report: Report) -> str:
    """docs/benchmarks.md: the figures, the baseline next to them, where the train time went, and the facts."""
    train, base = report.runs["train"], report.runs["baseline"]
    imports, predict = report.runs["imports"], report.runs.get("predict")
    tl, pl = report.train_limits, report.predict_limits
    manifest = train.result.get("manifest", {})
    handler_s = report.handler_s
    peak = train_peak_kib(train)
    peak_mb = None if peak is None else peak / 1024
    status = "completed" if train.ok else f"DID NOT COMPLETE (exit {train.exit_code}; see below)"

    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m loopline.bench`); do not edit by hand. Every case runs in a fresh",
        "Python process (imports count, as in a Lambda cold start); peak memory is that process's RSS high-water",
        "mark. S3 is moto, in-process: S3 latency is not measured and the stored objects live in the process.",
        "",
        f"- Command: `{report.command}`",
        f"- Date: {report.date}",
        f"- Machine: nproc={report.facts['nproc']}, {report.facts['cpu']}, {report.facts['memory']} RAM, "
        f"{report.facts['platform']}",
        f"- Python {report.facts['python']}, scikit-learn {report.facts['scikit-learn']}, pandas "
        f"{report.facts['pandas']}, numpy {report.facts['numpy']}, moto {report.facts['moto']}",
        "- Machine load, 1-min load average before -> after each case (other work shares these cores, so wall "
        "times are upper bounds): " + ", ".join(
            f"{run.case} {run.load_before:.1f} -> {run.load_after:.1f}" for run in report.runs.values()),
        f"- Data: synthetic, seeded ({report.seed}): {report.rows:,} rows x {report.columns} columns "
        f"(20 numeric with noise and missing values, 6 categorical of 3-1,500 levels, 2 boolean, 1 date, "
        f"binary target `{TARGET}`), {train.result.get('csv_bytes', 0) / 1e6:.1f} MB of CSV",
        f"- Train config: {report.config_summary}",
        "",
        "## Train handler vs limits",
        "",
        f"The real train handler (functions/train/app.py -> `train_challenger`) on one dataset version written by "
        f"the ingest path: **{status}**.",
        "",
        format_table(["", "measured", f"TrainFunction ({tl.timeout_s} s, {tl.memory_mb:,} MB)",
                      f"Lambda max ({LAMBDA_MAX_TIMEOUT_S} s, {LAMBDA_MAX_MEMORY_MB:,} MB)"], [
            ["handler wall time", seconds(handler_s) + ("" if train.ok else " (killed)"),
             margin(handler_s, tl.timeout_s, "s"), margin(handler_s, LAMBDA_MAX_TIMEOUT_S, "s")],
            ["peak RSS (incl. imports)", megabytes(peak), margin(peak_mb, tl.memory_mb, "MB"),
             margin(peak_mb, LAMBDA_MAX_MEMORY_MB, "MB")],
        ]),
        "",
        f"Outside the handler (same process, not counted above): handler imports "
        f"{seconds(train.result.get('handler_import_s'))} (+ boto3 {seconds(train.result.get('boto3_import_s'))}), "
        f"ingest of the upload {seconds(train.result.get('ingest_s'))}; process peak during setup "
        f"{megabytes(train.result.get('setup_hwm_kib'))}, whole process (wait4 ru_maxrss) "
        f"{megabytes(train.maxrss_kib)}.",
        "",
        "## Side by side: Loopline vs a plain scikit-learn baseline",
        "",
        f"Same rows, same seeded {manifest.get('holdout_rows') or base.result.get('holdout_rows', 'n/a')}-row "
        f"holdout. Baseline: one `HistGradientBoostingClassifier()` (defaults), categoricals ordinal-encoded, "
        f"the date as a day number, missing values left to the model.",
        "",
    ]
    metric = manifest.get("metric", "f1")
    chosen = manifest.get("estimator")
    lines += [format_table(
        ["", "Loopline train handler", "baseline: one HGB fit"],
        [
            ["wall time", seconds(handler_s), f"{seconds(base.result.get('fit_s'))} fit "
             f"(+ {seconds(base.result.get('prepare_s'))} read/encode)"],
            ["peak RSS (incl. imports)", megabytes(peak), megabytes(base.maxrss_kib)],
            [f"holdout {metric} (macro)" if metric == "f1" else f"holdout {metric}",
             score(manifest.get("holdout_score")), score(base.result.get("holdout_score"))],
            ["model", f"{chosen} {json.dumps(manifest.get('params', {}))}" if chosen else "n/a",
             "hist_gradient_boosting (defaults)"],
            ["model artifact", f"{manifest['artifact']['bytes'] / 1e6:.1f} MB (joblib, compress=3)"
             if manifest.get("artifact") else "n/a", ""],
        ])]
    lines += ["", "## Where the train time went", ""]
    rows_searched = train.result.get("search_rows")
    if rows_searched and manifest.get("training_rows"):
        searched = ", ".join(f"{r:,}" for r in rows_searched)
        lines += [f"Candidates were cross-validated ({train.result.get('cv_folds')}-fold) on {searched} "
                  f"rows; the winner was refit on all {manifest['training_rows']:,} training rows.", ""]
    if report.phases:
        lines.append(format_table(["phase", "seconds", "share", "load at its end"], [
            [p.name + ("" if p.finished else " (unfinished: killed here)"), f"{p.seconds:.1f}",
             f"{p.seconds / handler_s:.0%}" if handler_s else "", "" if p.load is None else f"{p.load:.1f}"]
            for p in report.phases]))
    board = manifest.get("leaderboard") or []
    if board:
        lines += ["", f"Search leaderboard (CV {metric}; elapsed = seconds since the search started; budget "
                      f"{manifest.get('search_budget_seconds')} s, exhausted: "
                      f"{manifest.get('search_budget_exhausted')}):",
                  "",
                  format_table(["candidate", "params", f"CV {metric}", "elapsed"], [
                      [e["candidate"], json.dumps(e["params"]), score(e.get("cv_score")) if "cv_score" in e
                       else e.get("error", ""), f"{e.get('elapsed_seconds', 0):.1f} s"] for e in board])]
    full = report.runs.get("train_full_search")
    if full is not None:
        lines += ["", *full_search_section(report, full)]
    lines += ["", "## Predict path", ""]
    if predict is not None and predict.ok:
        p = predict.result
        cold = p["boto3_import_s"] + p["app_import_s"] + p["first_request_s"]
        lines += [
            f"functions/predict/app.py imported in a fresh process, serving the model registered above "
            f"(PredictFunction: {pl.timeout_s} s, {pl.memory_mb:,} MB).",
            "",
            format_table(["", "predict handler", "baseline: `import sklearn, pandas` alone"], [
                ["imports", f"{seconds(p['boto3_import_s'] + p['app_import_s'])} (boto3 "
                 f"{seconds(p['boto3_import_s'])} + app {seconds(p['app_import_s'])})", seconds(imports.result.get(
                     "import_s"))],
                ["first request (load champion from S3, verify, unpickle, predict)", seconds(p["first_request_s"]),
                 ""],
                ["cold start total (imports + first request)", seconds(cold), seconds(imports.result.get("import_s"))],
                ["peak RSS", megabytes(predict.maxrss_kib), megabytes(imports.maxrss_kib)],
                [f"warm single-record request, median of {p['warm_requests']} (p95)",
                 f"{seconds(p['warm_median_s'])} ({seconds(p['warm_p95_s'])})",
                 f"{seconds(base.result.get('warm_median_s'))} (baseline HGB, encode + predict_proba)"],
            ]),
        ]
    else:
        lines.append("Not measured: the train case registered no model.")
    lines += ["", "## Reading it", "", *report_notes(report, handler_s, peak_mb), ""]
    return "\n".join(lines)


def full_search_section(report: Report, full: CaseRun) -> list[str]:
    """The train handler with the search on every training row (as before SEARCH_MAX_ROWS), next to the default."""
    train = report.runs["train"]
    limits = report.train_limits
    events = read_events(full.log.parent / "train_full_search_progress.jsonl")
    invoke = next((e["t"] for e in events if e["event"] == "invoke"), 0.0)
    relative = [{**e, "t": e["t"] - invoke} for e in events if e["event"] not in ("invoke", "return")]
    full_s = handler_seconds(full, relative, limits)
    rows = []
    for label, run, handler_s in (("search on a sample (default)", train, report.handler_s),
                                  ("search on every training row", full, full_s)):
        manifest = run.result.get("manifest", {})
        board = manifest.get("leaderboard") or []
        searched = run.result.get("search_rows") or []
        rows.append([
            label, ", ".join(f"{r:,}" for r in searched) or "n/a",
            seconds(handler_s) + ("" if run.ok else " (killed)"),
            f"{max((e.get('elapsed_seconds', 0) for e in board), default=0):.0f} s / "
            f"{manifest.get('search_budget_seconds', 0):.0f} s" if board else "n/a",
            f"{len(board)}", megabytes(train_peak_kib(run)), score(manifest.get("holdout_score")),
            manifest.get("estimator", "n/a") + (f" {json.dumps(manifest.get('params'))}" if manifest.get("params")
                                                else ""),
        ])
    return ["## The search on a sample vs on every row", "",
            "The same handler, run again with `search_model(..., max_search_rows=<all rows>)` (the behaviour before "
            "modeling.SEARCH_MAX_ROWS); load at the start and end of each: train "
            f"{train.load_before:.1f} -> {train.load_after:.1f}, full search {full.load_before:.1f} -> "
            f"{full.load_after:.1f}.", "",
            format_table(["", "CV rows", "handler wall time", "search time / budget", "settings tried",
                          "peak RSS", "holdout score", "chosen"], rows)]


def report_notes(report: Report, handler_s: float | None, peak_mb: float | None) -> list[str]:
    train, base = report.runs["train"], report.runs["baseline"]
    manifest = train.result.get("manifest", {})
    notes = []
    tl = report.train_limits
    if handler_s is not None:
        verdict = "within" if train.ok and handler_s <= tl.timeout_s else "beyond"
        notes.append(f"- The train handler ran {handler_s:.0f} s: {verdict} TrainFunction's {tl.timeout_s} s Timeout "
                     f"(Lambda's maximum is {LAMBDA_MAX_TIMEOUT_S} s).")
    budget = manifest.get("search_budget_seconds")
    board = manifest.get("leaderboard") or []
    if board and budget:
        search_elapsed = max(e.get("elapsed_seconds", 0) for e in board)
        if search_elapsed > budget:
            notes.append(f"- The search's {budget:.0f} s budget is checked only between fits, and the first round "
                         f"(every family's default setting) always runs in full: the search's cross-validation took "
                         f"{search_elapsed:.0f} s.")
    if base.ok and manifest.get("holdout_score") is not None and handler_s:
        notes.append(f"- The baseline's single fit took {base.result['fit_s']:.0f} s for a holdout score of "
                     f"{base.result['holdout_score']:.4f}; Loopline's search took {handler_s:.0f} s for "
                     f"{manifest['holdout_score']:.4f}.")
    if peak_mb is not None:
        notes.append(f"- Peak memory {peak_mb:,.0f} MB is {peak_mb / tl.memory_mb:.0%} of TrainFunction's "
                     f"{tl.memory_mb:,} MB. Lambda allots CPU in proportion to memory (1 vCPU per 1,769 MB), so "
                     f"{tl.memory_mb:,} MB is about {tl.memory_mb / 1769:.1f} vCPU; this machine has "
                     f"{report.facts['nproc']}, and the estimators run single-threaded except "
                     f"HistGradientBoosting (OpenMP).")
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loopline.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the synthetic table (default 100000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic table (default 7)")
    parser.add_argument("--warm-requests", type=int, default=200, help="warm predict requests timed (default 200)")
    parser.add_argument("--config", default=os.environ.get("PIPELINE_CONFIG", "pipeline.yaml"),
                        help="the pipeline config to adapt (default $PIPELINE_CONFIG or pipeline.yaml)")
    parser.add_argument("--template", default="template.yaml")
    parser.add_argument("--output", default="docs/benchmarks.md", help="where to write the report ('-': nowhere)")
    parser.add_argument("--with-full-search", action="store_true",
                        help="also run the train handler with the search on every training row (as before "
                             "SEARCH_MAX_ROWS), side by side")
    parser.add_argument("--workdir", help="keep the cases' data, logs and results here (default: a temp dir)")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        workdir = Path(args.workdir)
        result = CHILDREN[args.child](workdir)
        (workdir / f"{args.child}.json").write_text(json.dumps(result, default=str, indent=2))
        return 0

    with contextlib.ExitStack() as stack:
        workdir = Path(args.workdir) if args.workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(
            prefix="loopline-bench-")))
        workdir.mkdir(parents=True, exist_ok=True)
        return _run(args, workdir)


def _run(args: argparse.Namespace, workdir: Path) -> int:
    import yaml

    from loopline.emulator.template_loading import load_template
    from loopline_runtime.config import load_config

    template = load_template(REPO_ROOT / args.template)
    train_limits = function_limits(template, "TrainFunction")
    predict_limits = function_limits(template, "PredictFunction")
    config = adapted_config(load_config(REPO_ROOT / args.config))
    (workdir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    print(f"generating {args.rows:,} synthetic rows (seed {args.seed}) in {workdir}", flush=True)
    frame = generate_dataset(args.rows, args.seed)
    frame.to_csv(workdir / "data.csv", index=False)
    sample = frame.drop(columns=[TARGET]).head(max(1, min(args.warm_requests, 500)))
    sample[DATE_COLUMN] = sample[DATE_COLUMN].dt.strftime("%Y-%m-%d")
    records = json.loads(sample.to_json(orient="records"))  # NaN -> null, as a client sends it
    (workdir / "records.json").write_text(json.dumps(records))
    (workdir / "plan.json").write_text(json.dumps({
        "train_limits": train_limits.__dict__, "predict_limits": predict_limits.__dict__,
        "seed": config.training.seed, "holdout_fraction": config.training.holdout_fraction,
        "warm_requests": args.warm_requests}))
    (workdir / "train_progress.jsonl").unlink(missing_ok=True)
    (workdir / "train_full_search_progress.jsonl").unlink(missing_ok=True)
    for stale in ("model.joblib", "manifest.json"):
        (workdir / stale).unlink(missing_ok=True)
    columns = len(frame.columns)
    del frame, sample

    runs: dict[str, CaseRun] = {}
    # the handler is killed at its Timeout (SIGALRM in the child); the parent's limit only guards a hung setup
    for case in ("train", "baseline", "imports", "predict", *(["train_full_search"] if args.with_full_search else [])):
        if case == "predict" and not (workdir / "model.joblib").is_file():
            print("predict: skipped (the train case registered no model)", flush=True)
            continue
        print(f"{case}: running ...", flush=True)
        run = run_case(case, workdir,
                       kill_after_s=train_limits.timeout_s + 600 if case.startswith("train") else 900)
        runs[case] = run
        state = "ok" if run.ok else f"FAILED (exit {run.exit_code}; log {run.log})"
        print(f"{case}: {state} in {run.wall_s:.1f} s, peak RSS {run.maxrss_kib / 1024:,.0f} MB", flush=True)
        if not run.ok:
            print(run.log.read_text()[-3000:], file=sys.stderr)

    events = read_events(workdir / "train_progress.jsonl")
    invoke = next((e["t"] for e in events if e["event"] == "invoke"), 0.0)
    relative = [{**e, "t": e["t"] - invoke} for e in events if e["event"] not in ("invoke", "return")]
    end = handler_seconds(runs["train"], relative, train_limits)
    phases = phases_from_events(relative, end=end)
    training = config.training
    report = Report(
        command="make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'" if sys.argv[1:] else ""),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        facts=machine_facts(), rows=args.rows, columns=columns, seed=args.seed,
        train_limits=train_limits, predict_limits=predict_limits,
        config_summary=(f"{args.config} adapted: target `{TARGET}`, features inferred at ingest, window "
                        f"{training.window}, holdout {training.holdout_fraction}, seed {training.seed}, metric "
                        f"{config.metric}, default candidates, default time budget "
                        f"{training.time_budget_seconds} s"),
        runs=runs, phases=phases, events=relative, handler_s=end)
    text = render(report)
    print()
    print(text)
    if args.output != "-":
        output = REPO_ROOT / args.output
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"\nwrote {output}")
    return 0 if all(run.ok for run in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
