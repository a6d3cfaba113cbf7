"""Benchmarks of prediction capture: what it costs the predict handler, and how many captured rows per second the
capture path carries end to end.

- capture_overhead: functions/predict/app.py as deployed, on the model the train case registered, single-record
  requests through the bare handler (no HTTP), capture on and off interleaved request by request in one process
  (so a shared machine's load falls on both alike); p50 and p99 of each. The capture lines go to a file, as
  Lambda's stdout goes to its log pipe.
- shadow_overhead: the same handler and requests with a challenger in shadow (gate.shadow: a second ONNX session
  scoring each request, its answer added to the capture line) and without, interleaved request by request, capture
  on in both (as deployed); p50 and p99 of each. The shadow is the same registered model loaded a second time by
  its pins (its own onnxruntime session) under another version name, so both sides score a model of the same size.
- capture_delivery: rows formatted by the predict side (PredictionCapture, 1,000-record responses), shipped as log
  events to the predict log group, through the subscription filter and Firehose (the emulator's delivery:
  firehose_capture_delivery) into gzipped objects under capture/predictions/, and read back by the join/drift
  reader (labels.capture_records): rows per second of each stage and end to end, on moto in this process. On AWS
  the delivery stages are the services' own (not measured here); the predict-side and reader rates are this code's.

Like the rest of the package, this module imports only the standard library at top level.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CASES = ("capture_overhead", "shadow_overhead", "capture_delivery")
OVERHEAD_REQUESTS = 2000  # per setting
DELIVERY_ROWS = 50_000
LOG_EVENTS_PER_PUT = 10_000  # PutLogEvents' limit per call


def child_capture_overhead(workdir: Path) -> dict[str, Any]:
    from loopline.bench import cases, serving
    from loopline.bench.limits import FunctionLimits

    plan = json.loads((workdir / "plan.json").read_text())
    cases._aws_environment(FunctionLimits(**plan["predict_limits"]))
    os.environ.update(CAPTURE_ENABLED="true", CAPTURE_SAMPLE_RATE="1", CAPTURE_EXCLUDE_COLUMNS="")
    import boto3
    from moto import mock_aws

    from loopline_runtime.capture import CaptureSettings, PredictionCapture

    manifest = json.loads((workdir / "manifest.json").read_text())
    records = json.loads((workdir / "records.json").read_text())
    with mock_aws(), tempfile.TemporaryFile("w") as log, contextlib.redirect_stdout(log):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=cases.BUCKET)
        cases.stage_champion(s3, workdir, manifest)
        context = cases._context(FunctionLimits(**plan["predict_limits"]))
        handler = serving.load_onnx_handler()
        import sys

        app: Any = sys.modules["loopline_bench_serving_app"]
        on, off = app.capture, PredictionCapture(CaptureSettings(enabled=False))
        for i in range(50):  # warm both paths
            app.capture = on if i % 2 else off
            serving._request(handler, [records[i % len(records)]], context)
        timings: dict[bool, list[float]] = {True: [], False: []}
        for i in range(2 * OVERHEAD_REQUESTS):
            enabled = i % 2 == 0
            app.capture = on if enabled else off
            record = records[(i // 2) % len(records)]
            t0 = time.perf_counter()
            serving._request(handler, [record], context)
            timings[enabled].append(time.perf_counter() - t0)
        lines: list[str] = []
        one = serving._request(handler, [records[0]], context)
        PredictionCapture(CaptureSettings(), write=lines.append).capture("r", [records[0]], json.loads(one["body"]))

    def quantiles(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"p50_s": statistics.median(ordered), "p99_s": ordered[int(0.99 * (len(ordered) - 1))]}

    return {"requests_per_setting": OVERHEAD_REQUESTS, "on": quantiles(timings[True]),
            "off": quantiles(timings[False]), "capture_line_bytes": len("".join(lines))}


def child_shadow_overhead(workdir: Path) -> dict[str, Any]:
    import dataclasses

    from loopline.bench import cases, serving
    from loopline.bench.limits import FunctionLimits

    plan = json.loads((workdir / "plan.json").read_text())
    cases._aws_environment(FunctionLimits(**plan["predict_limits"]))
    os.environ.update(CAPTURE_ENABLED="true", CAPTURE_SAMPLE_RATE="1", CAPTURE_EXCLUDE_COLUMNS="")
    import boto3
    from moto import mock_aws

    manifest = json.loads((workdir / "manifest.json").read_text())
    records = json.loads((workdir / "records.json").read_text())
    with mock_aws(), tempfile.TemporaryFile("w") as log, contextlib.redirect_stdout(log):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=cases.BUCKET)
        cases.stage_champion(s3, workdir, manifest)
        context = cases._context(FunctionLimits(**plan["predict_limits"]))
        handler = serving.load_onnx_handler()
        import sys

        app: Any = sys.modules["loopline_bench_serving_app"]
        serving._request(handler, [records[0]], context)  # loads the champion
        # a second session of the registered model, by its pins, under another version: what a shadow is
        loaded = app.registry.load_champion(app.champion.pointer)
        shadow_model = dataclasses.replace(loaded, version=f"{loaded.version}-shadow")
        with_shadow, without = _FixedShadow(shadow_model), _FixedShadow(None)
        for i in range(50):  # warm both paths
            app.shadow = with_shadow if i % 2 else without
            serving._request(handler, [records[i % len(records)]], context)
        timings: dict[bool, list[float]] = {True: [], False: []}
        for i in range(2 * OVERHEAD_REQUESTS):
            shadowed = i % 2 == 0
            app.shadow = with_shadow if shadowed else without
            record = records[(i // 2) % len(records)]
            t0 = time.perf_counter()
            serving._request(handler, [record], context)
            timings[shadowed].append(time.perf_counter() - t0)
        answered = json.loads(serving._request(handler, [records[0]], context)["body"])

    def quantiles(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"p50_s": statistics.median(ordered), "p99_s": ordered[int(0.99 * (len(ordered) - 1))]}

    return {"requests_per_setting": OVERHEAD_REQUESTS, "with": quantiles(timings[True]),
            "without": quantiles(timings[False]), "answered_by": answered["model_version"],
            "shadow_version": shadow_model.version}


class _FixedShadow:
    """The predict function's ShadowCache, with the shadow already loaded (or none)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def get(self) -> Any:
        return self.model


def child_capture_delivery(workdir: Path) -> dict[str, Any]:
    from datetime import UTC, datetime, timedelta

    from loopline.bench import cases
    from loopline.bench.limits import FunctionLimits

    plan = json.loads((workdir / "plan.json").read_text())
    cases._aws_environment(FunctionLimits(**plan["predict_limits"]))
    os.environ["LOOPLINE_UNENFORCED"] = "iam"  # no roles here: the path's IAM checks are tested, not timed
    import boto3
    from moto import mock_aws

    from loopline.emulator.firehose_capture_delivery import CaptureDelivery
    from loopline_runtime.capture import CaptureSettings, PredictionCapture
    from loopline_runtime.labels import capture_keys, capture_records
    from loopline_runtime.storage import ObjectStore

    records = json.loads((workdir / "records.json").read_text())
    batch = [records[i % len(records)] for i in range(1000)]
    response = {"model_version": "bench", "predictions": ["no"] * 1000,
                "probabilities": [{"no": 0.9, "yes": 0.1}] * 1000}
    delivery = CaptureDelivery(max_buffer_seconds=3600.0)  # flushed by size (5 MB) and once at the end
    with mock_aws(), delivery.installed():
        stream = "bench-capture"
        boto3.client("s3").create_bucket(Bucket=cases.BUCKET)
        boto3.client("firehose").create_delivery_stream(
            DeliveryStreamName=stream, ExtendedS3DestinationConfiguration=_destination())
        logs = boto3.client("logs")
        logs.create_log_group(logGroupName="/aws/lambda/predict")
        logs.create_log_stream(logGroupName="/aws/lambda/predict", logStreamName="s")
        logs.put_subscription_filter(logGroupName="/aws/lambda/predict", filterName="capture",
                                     filterPattern='{ $.capture = "prediction/1" }', roleArn="arn:aws:iam::x:role/l",
                                     destinationArn=f"arn:aws:firehose:us-east-1:123456789012:deliverystream/{stream}")
        lines: list[str] = []
        capture = PredictionCapture(CaptureSettings(), write=lambda text: lines.extend(text.splitlines()))
        started = time.perf_counter()
        for n in range(DELIVERY_ROWS // 1000):
            capture.capture(f"req{n}", batch, response)
        formatted = time.perf_counter()
        now = int(time.time() * 1000)
        for start in range(0, len(lines), LOG_EVENTS_PER_PUT):
            events = [{"timestamp": now, "message": m} for m in lines[start:start + LOG_EVENTS_PER_PUT]]
            logs.put_log_events(logGroupName="/aws/lambda/predict", logStreamName="s", logEvents=events)
        delivery.flush_due(now=time.time() + 7200)
        delivered = time.perf_counter()
        store = ObjectStore(cases.BUCKET, boto3.client("s3"))
        moment = datetime.now(UTC)
        keys = list(capture_keys(store, moment - timedelta(hours=1), moment))
        read = sum(1 for key in keys for _ in capture_records(store, key))
        finished = time.perf_counter()
    return {"rows": DELIVERY_ROWS, "read_back": read, "objects": len(keys),
            "format_rows_per_s": DELIVERY_ROWS / (formatted - started),
            "delivery_rows_per_s": DELIVERY_ROWS / (delivered - formatted),
            "read_rows_per_s": read / (finished - delivered),
            "end_to_end_rows_per_s": read / (finished - started), "hwm_kib": cases.vm_hwm_kib()}


def _destination() -> dict[str, Any]:
    """The template's CaptureDeliveryStream destination (prefix, buffering, GZIP, processors)."""
    from loopline.bench.cases import BUCKET, REPO_ROOT
    from loopline.emulator.template_loading import load_template

    template = load_template(REPO_ROOT / "template.yaml")
    destination = dict(template["Resources"]["CaptureDeliveryStream"]["Properties"][
        "ExtendedS3DestinationConfiguration"])
    destination.update(BucketARN=f"arn:aws:s3:::{BUCKET}", RoleARN="arn:aws:iam::123456789012:role/firehose",
                       BufferingHints={"IntervalInSeconds": 60, "SizeInMBs": 5})
    return destination


CHILDREN: dict[str, Callable[[Path], dict[str, Any]]] = {
    "capture_overhead": child_capture_overhead, "shadow_overhead": child_shadow_overhead,
    "capture_delivery": child_capture_delivery}


def render_section(runs: dict[str, Any]) -> list[str]:
    """The capture section of the report (markdown lines); `runs` maps case -> bench.CaseRun."""
    lines = ["## Prediction capture", ""]
    overhead, delivery = runs.get("capture_overhead"), runs.get("capture_delivery")
    if overhead and overhead.ok:
        r = overhead.result

        def ms(value: float) -> str:
            return f"{value * 1000:.3f} ms"

        lines += [
            f"Single-record requests through the bare predict handler, capture on and off interleaved "
            f"({r['requests_per_setting']:,} each; load average {overhead.load_before:.2f} before, "
            f"{overhead.load_after:.2f} after):", "",
            "| capture | p50 | p99 |", "| --- | --- | --- |",
            f"| off | {ms(r['off']['p50_s'])} | {ms(r['off']['p99_s'])} |",
            f"| on | {ms(r['on']['p50_s'])} | {ms(r['on']['p99_s'])} |",
            f"| on - off | {ms(r['on']['p50_s'] - r['off']['p50_s'])} | "
            f"{ms(r['on']['p99_s'] - r['off']['p99_s'])} |", "",
            f"The capture line of one record of this table: {r['capture_line_bytes']:,} bytes.", ""]
    else:
        lines += ["Capture overhead not measured (the train case registered no compiled model, or the case failed).",
                  ""]
    shadow = runs.get("shadow_overhead")
    if shadow and shadow.ok:
        r = shadow.result

        def ms(value: float) -> str:
            return f"{value * 1000:.3f} ms"

        lines += [
            "### Predict with a shadow model (gate.shadow)", "",
            f"Single-record requests through the bare predict handler, with a challenger in shadow (a second ONNX "
            f"session scoring each request, its answer in the capture line) and without, interleaved, capture on in "
            f"both ({r['requests_per_setting']:,} each; load average {shadow.load_before:.2f} before, "
            f"{shadow.load_after:.2f} after); the champion answered ({r['answered_by']}):", "",
            "| shadow | p50 | p99 |", "| --- | --- | --- |",
            f"| without | {ms(r['without']['p50_s'])} | {ms(r['without']['p99_s'])} |",
            f"| with | {ms(r['with']['p50_s'])} | {ms(r['with']['p99_s'])} |",
            f"| with - without | {ms(r['with']['p50_s'] - r['without']['p50_s'])} | "
            f"{ms(r['with']['p99_s'] - r['without']['p99_s'])} |", ""]
    else:
        lines += ["Shadow overhead not measured (the train case registered no compiled model, or the case failed).",
                  ""]
    if delivery and delivery.ok:
        r = delivery.result
        lines += [
            f"{r['rows']:,} captured rows (1,000-record responses) through the capture path on moto in one process "
            f"(load average {delivery.load_before:.2f} before, {delivery.load_after:.2f} after); "
            f"{r['read_back']:,} read back from {r['objects']} objects:", "",
            "| stage | rows/s |", "| --- | --- |",
            f"| predict side: capture lines formatted | {r['format_rows_per_s']:,.0f} |",
            f"| log events -> subscription filter -> Firehose -> S3 (emulated) | {r['delivery_rows_per_s']:,.0f} |",
            f"| read back by the join / live drift reader | {r['read_rows_per_s']:,.0f} |",
            f"| end to end | {r['end_to_end_rows_per_s']:,.0f} |", ""]
    else:
        lines += ["Capture delivery not measured (the case failed).", ""]
    return lines
