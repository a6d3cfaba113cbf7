"""The measured cases, each run in a fresh interpreter (`python -m loopline.bench --child CASE`), and the parent's
side of running one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopline.bench import batch, capture, chunk_scoring, ingest, monitoring, serving, training_job
from loopline.bench.data import CATEGORICAL_LEVELS, DATE_COLUMN, TARGET
from loopline.bench.limits import FunctionLimits
from loopline.bench.phases import Probes
from loopline.emulator.local_access import CREDENTIALS
from loopline.local_lambda import LocalLambdaContext, import_function_app
from loopline_runtime.bucket_layout import CHAMPION_KEY, INCOMING_PREFIX, model_prefix  # standard library only

if TYPE_CHECKING:
    import pandas as pd


REPO_ROOT = Path(__file__).resolve().parents[3]
BUCKET = "loopline-bench-artifacts"
UPLOAD_KEY = f"{INCOMING_PREFIX}bench.csv"
CASES = ("train", "train_job", "baseline", "imports", "predict", "train_full_search", "ingest", "ingest_baseline",
         "batch", "batch_baseline", *serving.CASES, *chunk_scoring.CASES, *monitoring.CASES, *capture.CASES)


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


def _context(limits: FunctionLimits) -> LocalLambdaContext:
    """A context whose remaining time counts down from the function's Timeout."""
    return LocalLambdaContext(f"bench-{limits.name}", memory_limit_in_mb=limits.memory_mb,
                              timeout_seconds=limits.timeout_s, aws_request_id="00000000-0000-4000-8000-000000000000")


def _aws_environment(limits: FunctionLimits, config_path: Path | None = None) -> None:
    os.environ.update({"AWS_DEFAULT_REGION": "us-east-1", **CREDENTIALS})
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(limits.environment)
    os.environ["ARTIFACT_BUCKET"] = BUCKET
    os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the handlers' INFO lines are not what is measured
    if config_path is not None:
        os.environ["LOOPLINE_PIPELINE_CONFIG"] = str(config_path)


def child_train(workdir: Path, *, full_search: bool = False) -> dict[str, Any]:
    """The train handler; with full_search, as before modeling.SEARCH_MAX_ROWS: candidates cross-validated on
    every training row (a comparison case: its model is not kept)."""
    plan = json.loads((workdir / "plan.json").read_text())
    limits = FunctionLimits(**plan["train_limits"])
    _aws_environment(limits, workdir / "config.yaml")
    t0 = time.perf_counter()
    import boto3

    boto3_import_s = time.perf_counter() - t0
    from loopline.bench.ingest import moto_server

    result: dict[str, Any] = {"boto3_import_s": boto3_import_s}
    # S3 in another process (as in AWS): the uploaded and stored CSVs do not count in this process's memory
    with moto_server() as endpoint:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        t0 = time.perf_counter()
        app = import_function_app("train", "loopline_bench_train_app")
        result["handler_import_s"] = time.perf_counter() - t0

        from loopline_runtime import modeling
        from loopline_runtime.datasets import DatasetCatalog
        from loopline_runtime.ingest import ingest_upload
        from loopline_runtime.registry import ModelRegistry

        t0 = time.perf_counter()
        app.store.put_file(UPLOAD_KEY, workdir / "data.csv", content_type="text/csv")
        outcome = ingest_upload(app.store, UPLOAD_KEY, app.config)
        if outcome.status != "accepted":
            raise RuntimeError(f"the synthetic upload was not accepted: {outcome.to_dict()}")
        result["ingest_s"] = time.perf_counter() - t0
        result["csv_bytes"] = (workdir / "data.csv").stat().st_size
        schema = DatasetCatalog(app.store).latest().manifest["schema"]
        result["features"] = schema["features"]

        import gc

        gc.collect()
        result["setup_hwm_kib"] = vm_hwm_kib()
        result["hwm_reset"] = reset_hwm()
        result["rss_before_handler_kib"] = vm_hwm_kib()

        from loopline_runtime.training import train_challenger

        probes = Probes(workdir / ("train_full_search_progress.jsonl" if full_search else "train_progress.jsonl"))
        context = _context(limits)
        probes.mark("invoke")
        signal.alarm(limits.timeout_s)  # default action: the process dies, as Lambda ends a timed-out invoke
        t0, cpu0 = time.perf_counter(), time.process_time()
        # what the handler does, with the phases observed (the handler adds a log line and the trigger's reason)
        trained = train_challenger(
            DatasetCatalog(app.store), ModelRegistry(app.store), app.config,
            trigger={"reason": "benchmark", "execution_arn": None},
            remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
            max_search_rows=sys.maxsize if full_search else modeling.SEARCH_MAX_ROWS, on_phase=probes.observe)
        response = {**trained.to_dict(), "reason": "benchmark"}
        result["handler_s"] = time.perf_counter() - t0
        # CPU seconds of all the process's threads: less sensitive than wall time to other work on the machine
        result["handler_cpu_s"] = time.process_time() - cpu0
        signal.alarm(0)
        probes.mark("return")
        result["train_hwm_kib"] = vm_hwm_kib()
        result["cv_folds"] = modeling.CV_FOLDS
        registry = ModelRegistry(app.store)
        manifest = registry.manifest(response["model_version"])
        if not full_search:
            (workdir / "model.joblib").write_bytes(app.store.get_bytes(manifest["artifact"]["key"]))
            if "artifact" in manifest.get("compiled", {}):
                (workdir / "model.onnx").write_bytes(app.store.get_bytes(manifest["compiled"]["artifact"]["key"]))
            (workdir / "manifest.json").write_text(json.dumps(manifest, default=str))
        result["response"] = response
        result["search_rows"] = [manifest["search_rows"]]
        result["manifest"] = {k: manifest[k] for k in (
            "estimator", "params", "cv_score", "holdout_score", "leaderboard", "search_method", "search_budget_seconds",
            "search_budget_exhausted", "training_rows", "holdout_rows", "training_seconds", "artifact", "metric",
            "peak_memory_mb")}
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


def stage_champion(s3: Any, workdir: Path, manifest: dict[str, Any], bucket: str = BUCKET, *,
                   serving_form: str = "onnx", pointer_s3: Any = None) -> None:
    """Put the model the train case registered into the (moto) bucket as the champion, the way a promotion leaves
    it: a versioned bucket, the artifacts and manifest, and a pointer that pins the manifest's and the compiled
    artifact's S3 VersionId and sha256 (the predict function refuses a pointer without pins). Boto3 and hashlib
    only, so a case's measured imports stay its own. `serving_form="scikit-learn"`: the same pipeline as a model
    whose config chose the scikit-learn serving form (the pointer pins the joblib artifact). `pointer_s3`: another
    client for the pointer (on a local stack the bucket policy lets only the train role write models/ and only the
    evaluate role the registry; the bucket is versioned there already)."""
    import hashlib

    if serving_form == "scikit-learn":
        manifest = {**manifest, "serving_form": "scikit-learn"}
    if pointer_s3 is None:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    version = manifest["version"]

    def put(key: str, body: bytes) -> dict[str, Any]:
        response = s3.put_object(Bucket=bucket, Key=key, Body=body)
        return {"key": key, "version_id": response.get("VersionId"), "sha256": hashlib.sha256(body).hexdigest()}

    artifact = put(manifest["artifact"]["key"], (workdir / "model.joblib").read_bytes())
    compiled = put(manifest["compiled"]["artifact"]["key"], (workdir / "model.onnx").read_bytes())
    if serving_form == "scikit-learn":
        compiled = artifact
    pinned_manifest = put(f"{model_prefix(version)}manifest.json", json.dumps(manifest).encode())
    pointer = {"version": version, "previous_version": None,
               "pins": {"manifest": pinned_manifest, "compiled": compiled}}
    (pointer_s3 or s3).put_object(Bucket=bucket, Key=CHAMPION_KEY, Body=json.dumps(pointer).encode())


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
        stage_champion(s3, workdir, manifest)
        t0 = time.perf_counter()
        app = import_function_app("predict", "loopline_bench_predict_app")
        app_import_s = time.perf_counter() - t0

        def request(record: dict[str, Any]) -> dict[str, Any]:
            event = {"resource": "/predict", "path": "/predict", "httpMethod": "POST", "isBase64Encoded": False,
                     "headers": {"Content-Type": "application/json"}, "body": json.dumps({"records": [record]}),
                     "requestContext": {"requestId": "bench", "stage": "prod"}}
            response = app.lambda_handler(event, _context(limits))
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
    "train_full_search": lambda workdir: child_train(workdir, full_search=True),
    "ingest": ingest.child_ingest, "ingest_baseline": ingest.child_ingest_baseline,
    "batch": batch.child_batch, "batch_baseline": batch.child_batch_baseline,
    "train_job": training_job.child_train_job,
    "chunk_cold": chunk_scoring.child_chunk_cold, "chunk_naive": chunk_scoring.child_chunk_naive,
    "chunk_throughput": chunk_scoring.child_chunk_throughput,
    "monitor_cold": monitoring.child_monitor_cold, "monitor_naive": monitoring.child_monitor_naive,
    **serving.CHILDREN, **capture.CHILDREN}


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
    memory_mb: int | None = None  # the function's MemorySize, enforced as the emulator enforces it
    out_of_memory: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and bool(self.result) and not self.out_of_memory

    @property
    def peak_kib(self) -> int:
        """The case process's own peak RSS: the VmHWM it read at its end (an exec starts a new one), else wait4's
        ru_maxrss, which Linux carries across exec, so a child of a large parent reports at least the parent's
        size at the fork (the parent holds the generated table: 528 MB at a million rows)."""
        own = self.result.get("hwm_kib")
        return int(own) if own else self.maxrss_kib


def run_case(case: str, workdir: Path, *, kill_after_s: float | None = None, memory_mb: int | None = None) -> CaseRun:
    """Run one case in a fresh interpreter; its own rusage (wait4) gives its peak RSS. With `memory_mb`, the
    emulator's memory enforcement (worker_limits) watches it: past that much, it is stopped as Lambda would."""
    log = workdir / f"{case}.log"
    out = workdir / f"{case}.json"
    out.unlink(missing_ok=True)
    load_before = os.getloadavg()[0]
    with log.open("w") as sink:
        started = time.perf_counter()
        environment = {**os.environ, serving.SPAWNED_AT_ENV: repr(time.time())}  # cold starts count from here
        proc = subprocess.Popen([sys.executable, "-m", "loopline.bench", "--child", case, "--workdir", str(workdir)],
                                stdout=sink, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=environment)
        timer = threading.Timer(kill_after_s, proc.kill) if kill_after_s else None
        if timer:
            timer.start()
        stopped = threading.Event()
        killed_for_memory = threading.Event()
        if memory_mb is not None:
            threading.Thread(target=_watch_memory, args=(proc, memory_mb, stopped, killed_for_memory),
                             daemon=True).start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            stopped.set()
            if timer:
                timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
    result = json.loads(out.read_text()) if out.is_file() else {}
    run = CaseRun(case, proc.returncode, wall, usage.ru_maxrss, result, log, load_before, os.getloadavg()[0],
                  memory_mb=memory_mb)
    # a peak between two readings: the case's own VmHWM, read at its end
    run.out_of_memory = killed_for_memory.is_set() or (memory_mb is not None and run.peak_kib > memory_mb * 1024)
    return run


def _watch_memory(proc: subprocess.Popen[bytes], memory_mb: int, stopped: threading.Event,
                  killed: threading.Event) -> None:
    from loopline.emulator.worker_limits import POLL_SECONDS, over_memory

    while not stopped.wait(POLL_SECONDS):
        # the case's own memory: its child is the S3 server standing in for AWS (holding the uploaded bytes)
        if over_memory(proc.pid, memory_mb, children=False):
            killed.set()
            proc.kill()
            return
