"""Benchmarks of the serving path: the compiled (ONNX) predict function next to the scikit-learn path it replaced,
side by side in one run of `make bench`, on the model the train case registered.

Each case runs in a fresh Python process (cases.run_case), with the champion in (moto) S3:

- serving_onnx: functions/predict/app.py as deployed (onnxruntime + numpy; the process never imports
  scikit-learn, which the result checks);
- serving_sklearn_form: functions/predict/app.py as deployed with `ServingForm=scikit-learn` (the predict variant
  with the dependencies layer), serving the same pipeline as a model whose config chose `serving: scikit-learn`:
  the pinned joblib artifact verified and unpickled, requests through the same numpy coercion;
- serving_sklearn: the scikit-learn path as it was before compiled serving (functions/predict/app.py at
  f23f9be): the same Powertools resolver, the champion pointer checked with an S3 HEAD on every request, the
  artifact verified and unpickled with joblib, records validated into a DataFrame, one predict_proba pass.

Measured per case: cold start = process start -> first answer, minus the moto setup (starting moto and putting
the champion in S3 is not part of a Lambda cold start); the warm single-record handler median (the API event
through the handler: Powertools resolver, JSON, validation, prediction), next to the bare model call alone
(onnxruntime's session.run / the Pipeline's predict_proba on already-coerced input); and the throughput of
1,000-record requests through the handler. Like the rest of the package, this module imports only the standard
library at top level.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CASES = ("serving_sklearn", "serving_onnx", "serving_sklearn_form")
SPAWNED_AT_ENV = "LOOPLINE_BENCH_SPAWNED_AT"  # the parent's time.time() just before it started the child
BATCH_RECORDS = 1000
BATCH_REPEATS = 5
BARE_REPEATS = 500

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def child_serving(workdir: Path, form: str) -> dict[str, Any]:
    """One serving case (form: "onnx", "sklearn_form" or "sklearn"); see the module docstring."""
    from loopline.bench import cases
    from loopline.bench.limits import FunctionLimits

    spawned_at = float(os.environ[SPAWNED_AT_ENV])
    plan = json.loads((workdir / "plan.json").read_text())
    limits = FunctionLimits(**plan["predict_limits"])
    cases._aws_environment(limits)
    setup_started = time.time()
    import boto3
    from moto import mock_aws

    manifest = json.loads((workdir / "manifest.json").read_text())
    records = json.loads((workdir / "records.json").read_text())
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=cases.BUCKET)
        cases.stage_champion(s3, workdir, manifest,
                             serving_form="scikit-learn" if form == "sklearn_form" else "onnx")
        setup_s = time.time() - setup_started
        context = cases._context(limits)

        with Path(os.devnull).open("w") as sink, contextlib.redirect_stdout(sink):  # Powertools' EMF lines
            t0 = time.perf_counter()
            handler = load_onnx_handler() if form in ("onnx", "sklearn_form") else sklearn_handler()
            import_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            _request(handler, records[:1], context)
            first_request_s = time.perf_counter() - t0
            cold_start_s = time.time() - spawned_at - setup_s

            warm = [_timed(lambda i: _request(handler, [records[i % len(records)]], context), i)
                    for i in range(plan["warm_requests"])]
            bare = bare_model_call(form, records[0])
            batch = [records[i % len(records)] for i in range(BATCH_RECORDS)]
            batch_s = [_timed(lambda _i: _request(handler, batch, context), i) for i in range(BATCH_REPEATS)]
    warm.sort()
    return {
        "form": form, "setup_s": setup_s, "import_s": import_s, "first_request_s": first_request_s,
        "cold_start_s": cold_start_s, "warm_median_s": statistics.median(warm),
        "warm_p95_s": warm[int(0.95 * (len(warm) - 1))], "warm_requests": len(warm),
        "bare_median_s": bare, "batch_records": BATCH_RECORDS, "batch_median_s": statistics.median(batch_s),
        "batch_records_per_s": BATCH_RECORDS / statistics.median(batch_s),
        "sklearn_imported": "sklearn" in sys.modules, "hwm_kib": cases.vm_hwm_kib(),
    }


def load_onnx_handler() -> Handler:
    from loopline.local_lambda import import_function_app

    handler: Handler = import_function_app("predict", "loopline_bench_serving_app").lambda_handler
    return handler


def bare_model_call(form: str, record: dict[str, Any]) -> float:
    """Median seconds of the model call alone on one already-coerced record (what the handler adds is the rest)."""
    if form == "sklearn_form":
        from loopline_runtime.model_inputs import records_to_inputs

        model = sys.modules["loopline_bench_serving_app"].champion.get()
        feeds = records_to_inputs([record], model.input_spec, max_records=1)
        return statistics.median(_timed(lambda _i: model.graph.run(feeds), i) for i in range(BARE_REPEATS))
    if form == "onnx":
        from loopline_runtime.model_inputs import records_to_inputs

        app = sys.modules["loopline_bench_serving_app"]
        model = app.champion.get()
        feeds = records_to_inputs([record], model.input_spec, max_records=1)
        outputs = [output.name for output in model.graph.session.get_outputs()]
        return statistics.median(_timed(lambda _i: model.graph.session.run(outputs, feeds), i)
                                 for i in range(BARE_REPEATS))
    model = _SKLEARN_STATE["model"]
    from loopline_runtime.schema import records_to_frame

    frame = records_to_frame([record], model.schema, max_records=1)
    return statistics.median(_timed(lambda _i: model.pipeline.predict_proba(frame), i) for i in range(BARE_REPEATS))


_SKLEARN_STATE: dict[str, Any] = {}


def sklearn_handler() -> Handler:
    """The scikit-learn serving path as it was before compiled serving (functions/predict/app.py at f23f9be,
    with its default CHAMPION_CHECK_SECONDS=0: an S3 HEAD on every request)."""
    import numpy as np
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.metrics import MetricUnit

    from loopline_runtime.prediction import predict_with_probabilities
    from loopline_runtime.registry import CHAMPION_KEY, ModelRegistry
    from loopline_runtime.schema import records_to_frame
    from loopline_runtime.storage import ObjectStore

    logger, metrics, app = Logger(), Metrics(), APIGatewayRestResolver()
    registry = ModelRegistry(ObjectStore.from_env())

    def champion() -> Any:
        etag = registry.store.etag(CHAMPION_KEY)
        if etag != _SKLEARN_STATE.get("etag"):
            pointer = registry.champion_pointer()
            assert pointer is not None
            _SKLEARN_STATE.update(model=registry.load(pointer["version"]), etag=etag)
        return _SKLEARN_STATE["model"]

    def plain(value: Any) -> Any:
        return value.item() if isinstance(value, np.generic) else value

    @app.post("/predict")
    def predict() -> dict[str, Any]:
        payload = json.loads(app.current_event.decoded_body or "{}")
        model = champion()
        frame = records_to_frame(payload["records"], model.schema, max_records=1000)
        predictions, proba, classes = predict_with_probabilities(model.pipeline, frame)
        response: dict[str, Any] = {"model_version": model.version, "predictions": [plain(v) for v in predictions]}
        if proba is not None and classes is not None:
            labels = [plain(c) for c in classes]
            response["classes"] = labels
            response["probabilities"] = [{str(c): round(float(p), 6) for c, p in zip(labels, row, strict=True)}
                                         for row in proba]
        metrics.add_dimension(name="Pipeline", value="bench")
        metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(response["predictions"]))
        return response

    @logger.inject_lambda_context
    @metrics.log_metrics
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return lambda_handler


def _request(handler: Handler, records: list[dict[str, Any]], context: Any) -> dict[str, Any]:
    event = {"resource": "/predict", "path": "/predict", "httpMethod": "POST", "isBase64Encoded": False,
             "headers": {"Content-Type": "application/json"}, "body": json.dumps({"records": records}),
             "requestContext": {"requestId": "bench", "stage": "prod"}}
    response = handler(event, context)
    if response["statusCode"] != 200:
        raise RuntimeError(f"predict answered {response['statusCode']}: {response['body']}")
    return response


def _timed(call: Callable[[int], Any], i: int) -> float:
    t0 = time.perf_counter()
    call(i)
    return time.perf_counter() - t0


CHILDREN: dict[str, Callable[[Path], dict[str, Any]]] = {
    "serving_sklearn": lambda workdir: child_serving(workdir, "sklearn"),
    "serving_onnx": lambda workdir: child_serving(workdir, "onnx"),
    "serving_sklearn_form": lambda workdir: child_serving(workdir, "sklearn_form"),
}


def render_section(runs: dict[str, Any], sizes_note: str = "") -> list[str]:
    """The side-by-side table (markdown lines); `runs` maps case -> bench.CaseRun."""
    from loopline.bench.report import format_table, megabytes, seconds

    onnx, sk = runs.get("serving_onnx"), runs.get("serving_sklearn")
    lines = ["## Compiled serving (ONNX) next to the scikit-learn path", ""]
    if not (onnx and onnx.ok and sk and sk.ok):
        return [*lines, "Not measured: the train case registered no compiled model, or a serving case failed."]
    o, s = onnx.result, sk.result

    def ms(value: float) -> str:
        return f"{value * 1000:.3f} ms"

    ratio = o["cold_start_s"] / s["cold_start_s"]
    lines += [
        "Both in a fresh process with the champion in (moto) S3, on the model registered above. scikit-learn path: "
        "the predict handler before compiled serving (HEAD on the pointer per request, joblib, pandas); ONNX: "
        "functions/predict/app.py as deployed (onnxruntime + numpy; scikit-learn imported by the process: "
        f"{o['sklearn_imported']}).",
        "",
        format_table(["", "ONNX (serving now)", "scikit-learn path (before)", "ONNX / scikit-learn"], [
            ["cold start: process start -> first answer (moto setup excluded)", seconds(o["cold_start_s"]),
             seconds(s["cold_start_s"]), f"{ratio:.2f}x"],
            ["  of which handler imports", seconds(o["import_s"]), seconds(s["import_s"]), ""],
            ["  of which first request (pointer, load + verify, predict)", seconds(o["first_request_s"]),
             seconds(s["first_request_s"]), ""],
            [f"warm single-record request through the handler, median of {o['warm_requests']} (p95)",
             f"{ms(o['warm_median_s'])} ({ms(o['warm_p95_s'])})", f"{ms(s['warm_median_s'])} "
             f"({ms(s['warm_p95_s'])})", f"{o['warm_median_s'] / s['warm_median_s']:.2f}x"],
            ["bare model call on one coerced record (session.run / predict_proba), median",
             ms(o["bare_median_s"]), ms(s["bare_median_s"]), ""],
            ["handler overhead around the model call (warm median - bare)",
             ms(o["warm_median_s"] - o["bare_median_s"]), ms(s["warm_median_s"] - s["bare_median_s"]), ""],
            [f"{o['batch_records']:,}-record request, median of {BATCH_REPEATS}", seconds(o["batch_median_s"]),
             seconds(s["batch_median_s"]), f"{o['batch_median_s'] / s['batch_median_s']:.2f}x"],
            ["  throughput", f"{o['batch_records_per_s']:,.0f} records/s", f"{s['batch_records_per_s']:,.0f} "
             "records/s", ""],
            ["peak RSS of the process (moto included)", megabytes(onnx.peak_kib), megabytes(sk.peak_kib), ""],
        ]),
        "",
        "SnapStart (template.yaml: PredictFunction `SnapStart: ApplyOn: PublishedVersions`, alias `live`) cannot be "
        "measured offline: the emulator and this benchmark run $LATEST without snapshots. On AWS a restored "
        "environment skips the imports above; the champion is loaded after restore.",
    ]
    if sizes_note:
        lines += ["", sizes_note]
    return lines


def render_sklearn_form_rows(runs: dict[str, Any]) -> list[str]:
    """The scikit-learn serving form (`serving: scikit-learn`, predict with the dependencies layer) next to ONNX."""
    from loopline.bench.report import format_table, megabytes, seconds

    form = runs.get("serving_sklearn_form")
    lines = ["## The scikit-learn serving form (a candidate with `serving: scikit-learn`)", ""]
    if not (form and form.ok):
        return [*lines, "Not measured: the train case registered no model, or the case failed."]
    f = form.result
    onnx = runs.get("serving_onnx")
    o = onnx.result if onnx is not None and onnx.ok else None

    def ms(value: float) -> str:
        return f"{value * 1000:.3f} ms"

    rows = [
        ["cold start: process start -> first answer (moto setup excluded)", seconds(f["cold_start_s"])],
        ["  of which handler imports", seconds(f["import_s"])],
        ["  of which first request (pointer, verify, unpickle, predict)", seconds(f["first_request_s"])],
        [f"warm single-record request, median of {f['warm_requests']} (p95)",
         f"{ms(f['warm_median_s'])} ({ms(f['warm_p95_s'])})"],
        [f"{f['batch_records']:,}-record request, median of {BATCH_REPEATS}", seconds(f["batch_median_s"])],
        ["peak RSS of the process (moto included)", megabytes(form.peak_kib)],
    ]
    headers = ["", "scikit-learn form"]
    if o is not None:
        headers.append("ONNX (same model)")
        values = [seconds(o["cold_start_s"]), seconds(o["import_s"]), seconds(o["first_request_s"]),
                  f"{ms(o['warm_median_s'])} ({ms(o['warm_p95_s'])})", seconds(o["batch_median_s"]),
                  megabytes(onnx.peak_kib)]  # type: ignore[union-attr]
        rows = [[*row, value] for row, value in zip(rows, values, strict=True)]
    return [*lines, format_table(headers, rows)]
