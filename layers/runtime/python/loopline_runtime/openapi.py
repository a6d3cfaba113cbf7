"""An OpenAPI 3 description of the prediction API, generated from the serving model's feature schema."""

from __future__ import annotations

from typing import Any

from loopline_runtime.compiled_model import CompiledModel
from loopline_runtime.feature_schema import FeatureType, Task

_FIELD_TYPES: dict[FeatureType, dict[str, Any]] = {
    FeatureType.NUMERIC: {"type": ["number", "null"]},
    FeatureType.BOOLEAN: {"type": ["boolean", "null"]},
    FeatureType.DATE: {"type": ["string", "null"], "format": "date"},
    FeatureType.CATEGORICAL: {"type": ["string", "number", "null"]},
}


def openapi_document(model: CompiledModel, *, max_records: int) -> dict[str, Any]:
    schema = model.schema
    properties = {}
    for name, kind in schema.features.items():
        prop = dict(_FIELD_TYPES[kind])
        if kind is FeatureType.CATEGORICAL and schema.levels.get(name):
            prop["examples"] = schema.levels[name][:10]
        properties[name] = prop
    record = {"type": "object", "properties": properties, "required": list(schema.features),
              "additionalProperties": False}
    prediction: dict[str, Any] = {"type": "object", "required": ["model_version", "predictions"],
                                  "properties": {"model_version": {"type": "string"}}}
    classes = model.manifest.get("classes") or []
    if schema.task is Task.CLASSIFICATION:
        prediction["properties"]["predictions"] = {"type": "array", "items": {"enum": classes}}
        prediction["properties"]["classes"] = {"type": "array"}
        prediction["properties"]["probabilities"] = {
            "type": "array", "items": {"type": "object", "additionalProperties": {"type": "number"}}}
    else:
        prediction["properties"]["predictions"] = {"type": "array", "items": {"type": "number"}}
    error = {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}
    json_error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Loopline prediction API: {model.manifest.get('pipeline')}",
                 "version": model.version,
                 "description": f"Predicts {schema.target!r} ({schema.task.value}) with the current champion."},
        "paths": {
            "/predict": {"post": {
                "summary": "Predict for a batch of records",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["records"], "properties": {"records": {
                        "type": "array", "minItems": 1, "maxItems": max_records,
                        "items": {"$ref": "#/components/schemas/Record"}}}}}}},
                "responses": {"200": {"description": "Predictions", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Prediction"}}}},
                              "400": {"description": "Invalid request", **json_error},
                              "503": {"description": "No champion yet", **json_error}},
            }},
            "/model": {"get": {"summary": "The serving model's manifest summary",
                               "responses": {"200": {"description": "Model summary"},
                                             "503": {"description": "No champion yet", **json_error}}}},
        },
        "components": {
            "schemas": {"Record": record, "Prediction": prediction, "Error": error},
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{"ApiKey": []}],
    }
