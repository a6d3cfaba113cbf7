"""Predict: the champion behind API Gateway. POST /predict, GET /model, GET /openapi.json.

Runs on the slim serving layer (onnxruntime, numpy, Powertools): the champion is served in its compiled (ONNX)
form, no scikit-learn, pandas or pickle. With SnapStart, everything below is imported before the snapshot and the
champion is loaded after restore (never baked into the snapshot, so a restored environment serves the current one).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from snapshot_restore_py import register_after_restore

from loopline_runtime.capture import CaptureSettings, PredictionCapture, new_request_id, prediction_ids
from loopline_runtime.errors import ArtifactIntegrityError, InvalidRequest, ModelNotCompiled, NoChampion
from loopline_runtime.openapi import openapi_document
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.request_body import parse_json_body
from loopline_runtime.serving import ChampionCache, ShadowCache, model_summary, predict_records
from loopline_runtime.storage import ObjectStore

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()
registry = ModelRegistry(ObjectStore.from_env())


def keep_serving_last_champion(pointer: dict[str, Any], error: Exception) -> None:
    """A promoted champion failed to load: the last good one keeps serving; count it (an alarm watches this)."""
    logger.error("new champion could not be loaded; the previous one keeps serving",
                 extra={"version": pointer.get("version"), "error": f"{type(error).__name__}: {error}"})
    metrics.add_metric(name="ChampionLoadFailures", unit=MetricUnit.Count, value=1)


champion = ChampionCache(registry, check_interval=float(os.environ.get("CHAMPION_CHECK_SECONDS", "0")),
                         on_load_failure=keep_serving_last_champion)


def shadow_not_loaded(pointer: dict[str, Any], error: Exception) -> None:
    """A shadow failed to load: the champion answers alone (the shadow gets no live rows); count it."""
    logger.error("shadow model could not be loaded; not scored",
                 extra={"version": pointer.get("version"), "error": f"{type(error).__name__}: {error}"})
    metrics.add_metric(name="ShadowLoadFailures", unit=MetricUnit.Count, value=1)


# gate.shadow: a challenger scored on every request next to the champion, its answer captured, never returned
shadow = ShadowCache(registry, check_interval=float(os.environ.get("CHAMPION_CHECK_SECONDS", "0")),
                     on_load_failure=shadow_not_loaded)
MAX_BATCH_RECORDS = int(os.environ.get("MAX_BATCH_RECORDS", "1000"))
capture = PredictionCapture(CaptureSettings.from_env())


@register_after_restore
def load_champion_after_restore() -> None:
    """SnapStart: load the champion as soon as the environment is restored (before its first request)."""
    try:
        champion.get()
    except (NoChampion, ModelNotCompiled, ArtifactIntegrityError) as exc:  # the first request answers 503
        logger.warning("no champion loaded after restore", extra={"error": str(exc)})


@app.post("/predict")
def predict() -> Response:
    try:
        body = app.current_event.decoded_body  # API Gateway base64-encodes bodies of binary media types
    except ValueError:
        raise InvalidRequest("the request body is flagged base64 but is not base64-encoded UTF-8 text") from None
    payload = parse_json_body(body)
    if not isinstance(payload, dict) or "records" not in payload:
        raise InvalidRequest('the request body must be a JSON object with a "records" list')
    request_id = new_request_id()
    model = champion.for_caller(caller_key(request_id))
    predicted = predict_records(model, payload["records"], max_records=MAX_BATCH_RECORDS)
    response = {"request_id": request_id, "prediction_ids": prediction_ids(request_id, len(predicted["predictions"])),
                **predicted}
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(response["predictions"]))
    record_capture(request_id, payload["records"], response, shadow_answer(model.version, payload["records"]))
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=json.dumps(response),
                    headers={"X-Request-Id": request_id})


def caller_key(request_id: str) -> str:
    """Who is asking, for a canary's sticky split: the X-Loopline-Caller header (a customer or session id of the
    caller's choosing), else the caller's source IP, else the request (not sticky)."""
    event = app.current_event
    key = event.headers.get("X-Loopline-Caller") or event.headers.get("x-loopline-caller")
    if key:
        return f"caller:{key}"
    source_ip = ((event.get("requestContext") or {}).get("identity") or {}).get("sourceIp")
    return f"ip:{source_ip}" if source_ip else f"request:{request_id}"


def shadow_answer(champion_version: str, records: list[Any]) -> dict[str, Any] | None:
    """The shadow's answer to the records the champion answered (None without a shadow). Never fails the request:
    an error is counted (ShadowErrors) and logged without the payload."""
    try:
        model = shadow.get()
        if model is None or model.version == champion_version:
            return None
        return predict_records(model, records, max_records=MAX_BATCH_RECORDS)
    except Exception as exc:  # whatever went wrong, the caller gets the champion's prediction
        logger.warning("shadow not scored", extra={"error": type(exc).__name__})
        metrics.add_metric(name="ShadowErrors", unit=MetricUnit.Count, value=1)
        return None


def record_capture(request_id: str, records: list[Any], response: dict[str, Any],
                   shadow_predicted: dict[str, Any] | None = None) -> None:
    """Capture never fails a prediction: an error is counted (CaptureErrors) and logged without the payload."""
    try:
        captured = capture.capture(request_id, records, response, shadow=shadow_predicted)
    except Exception as exc:  # whatever went wrong, the caller gets the prediction
        logger.warning("prediction not captured", extra={"request_id": request_id, "error": type(exc).__name__})
        metrics.add_metric(name="CaptureErrors", unit=MetricUnit.Count, value=1)
        return
    if captured:
        metrics.add_metric(name="CapturedPredictions", unit=MetricUnit.Count, value=captured)


@app.get("/model")
def model() -> dict[str, Any]:
    return model_summary(champion.get(), champion.pointer)


@app.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return openapi_document(champion.get(), max_records=MAX_BATCH_RECORDS)


def _error(status: int, message: str) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON,
                    body=json.dumps({"message": message}))


@app.exception_handler(InvalidRequest)
def bad_request(exc: InvalidRequest) -> Response:
    return _error(400, str(exc))


@app.exception_handler(NoChampion)
def no_champion(exc: NoChampion) -> Response:
    return _error(503, str(exc))


@app.exception_handler(ModelNotCompiled)
def not_compiled(exc: ModelNotCompiled) -> Response:
    # the details go to the log, not to callers
    logger.error("champion has no compiled form", extra={"error": str(exc)})
    return _error(503, "the serving model cannot be loaded; try again later")


@app.exception_handler(ArtifactIntegrityError)
def unverifiable_model(exc: ArtifactIntegrityError) -> Response:
    # the details (keys, hashes, versions) go to the log, not to callers
    logger.error("champion failed verification", extra={"error": str(exc)})
    return _error(503, "the serving model cannot be loaded safely; try again later")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId")
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_dimension(name="Pipeline", value=os.environ.get("PIPELINE_NAME", "default"))
    return app.resolve(event, context)
