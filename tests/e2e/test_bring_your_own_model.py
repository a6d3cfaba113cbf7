"""Bring your own model: a data scientist's model.py beside the config is packaged with it, trained, gated,
compiled and served by the same loop; a step that cannot be compiled is served in the scikit-learn form the config
chose. Driven as a client of `loopline local up` (boto3 + HTTP)."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml

from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from loopline_runtime.config import PipelineConfig
from loopline_runtime.model_code import load_model_code
from loopline_runtime.prediction import predict_with_probabilities
from loopline_runtime.registry import CHAMPION_KEY
from tests.support.configs import write_fast_config
from tests.support.model_code import copy_model_code

pytestmark = pytest.mark.e2e


def _config_with_code(pipeline_config: PipelineConfig, directory: Path, source: str, candidate: dict[str, Any]
                      ) -> Path:
    """The fast e2e config with one candidate of the user's own code, `source` copied beside it."""
    path = write_fast_config(pipeline_config, directory / "pipeline.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["models"] = [candidate]
    data["training"]["time_budget_seconds"] = 60
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    copy_model_code(source, directory, str(candidate["code"]).split(":")[0])
    return path


def _champion(stack: StackClient, rows: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    stack.upload_csv(rows, "first.csv")
    execution = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(execution["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    pointer = stack.read_json(CHAMPION_KEY)
    return pointer, stack.read_json(pointer["pins"]["manifest"]["key"])


def _trained_pipeline(stack: StackClient, manifest: dict[str, Any], code_dir: Path) -> Any:
    """The registered scikit-learn pipeline, checked against its sha256, with the user's code loaded to unpickle."""
    body = stack.s3.get_object(Bucket=stack.bucket, Key=manifest["artifact"]["key"])["Body"].read()
    assert hashlib.sha256(body).hexdigest() == manifest["artifact"]["sha256"]
    from loopline_runtime.config import ModelCandidate

    load_model_code(ModelCandidate(name=manifest["code"]["candidate"], code=manifest["code"]["code"]), code_dir)
    return joblib.load(io.BytesIO(body))


def _assert_served_like_trained(stack: StackClient, pipeline: Any, rows: Any) -> dict[str, Any]:
    response = stack.predict(rows.drop(columns=[TARGET]).to_dict(orient="records"))
    assert response.status == 200, response.body
    served = response.body
    labels, proba, classes = predict_with_probabilities(pipeline, rows.drop(columns=[TARGET]))
    assert served["predictions"] == [str(label) for label in labels]
    got = np.array([[row[str(c)] for c in classes] for row in served["probabilities"]])
    assert np.abs(got - proba).max() <= 1e-4
    return served


def _predict_function_logs(stack: StackClient) -> str:
    """The predict function's last log lines: what a failed request's assertion shows."""
    logs = stack.client("logs")
    out = []
    for group in logs.describe_log_groups()["logGroups"]:
        if "Predict" not in group["logGroupName"]:
            continue
        for log_stream in logs.describe_log_streams(logGroupName=group["logGroupName"])["logStreams"]:
            events = logs.get_log_events(logGroupName=group["logGroupName"],
                                         logStreamName=log_stream["logStreamName"])["events"]
            out += [e["message"] for e in events][-40:]
    return "\n".join(out)


@pytest.fixture(scope="module")
def batches() -> list[Any]:
    return split_batches(breast_cancer(), [300, 60])


def test_a_ratio_transformer_with_its_converter_is_trained_compiled_promoted_and_served(
    start_stack: Callable[..., StackClient], pipeline_config: PipelineConfig, batches: list[Any], tmp_path: Path,
) -> None:
    # given model.py with a ratio feature through a custom transformer and its skl2onnx converter, and a small
    # grid for its estimator, beside the config
    config = _config_with_code(pipeline_config, tmp_path / "ratio", "ratio_model.py",
                               {"name": "mine", "code": "model.py:build", "params": {"model__C": [0.5, 2.0]}})
    stack = start_stack(config)

    # when a labeled upload is trained on
    pointer, manifest = _champion(stack, batches[0])

    # then the user's model was chosen, compiled with parity, promoted, and recorded with its code's sha256
    model_py = (tmp_path / "ratio" / "model.py").read_bytes()
    assert manifest["estimator"] == "mine"
    assert manifest["code"]["sha256"] == {"model.py": hashlib.sha256(model_py).hexdigest()}
    assert manifest["serving_form"] == "onnx" and manifest["compiled"]["parity"]["passed"] is True
    assert pointer["pins"]["compiled"]["key"] == manifest["compiled"]["artifact"]["key"]
    # and the API serves its compiled form with the trained pipeline's answers
    summary = stack.http("GET", "model")
    assert summary.status == 200, _predict_function_logs(stack)
    assert summary.body["serving_form"] == "onnx" and summary.body["estimator"] == "mine"
    _assert_served_like_trained(stack, _trained_pipeline(stack, manifest, tmp_path / "ratio"), batches[1])


def test_an_uncompilable_step_is_served_in_the_scikit_learn_form_the_config_chose(
    start_stack: Callable[..., StackClient], pipeline_config: PipelineConfig, batches: list[Any], tmp_path: Path,
) -> None:
    # given model code with a step skl2onnx cannot convert, and `serving: scikit-learn` in the config
    config = _config_with_code(pipeline_config, tmp_path / "clipped", "clipped_model.py",
                               {"name": "mine", "code": "clipped_model.py:build", "serving": "scikit-learn"})
    stack = start_stack(config)

    # when a labeled upload is trained on
    pointer, manifest = _champion(stack, batches[0])

    # then the gate scored and pinned the verified joblib artifact, which the API serves
    assert manifest["serving_form"] == "scikit-learn" and "Clipped" in manifest["compiled"]["error"]
    assert pointer["pins"]["compiled"]["key"] == manifest["artifact"]["key"]
    assert pointer["pins"]["compiled"]["sha256"] == manifest["artifact"]["sha256"]
    summary = stack.http("GET", "model")
    assert summary.status == 200, summary.text
    assert summary.body["serving_form"] == "scikit-learn"
    _assert_served_like_trained(stack, _trained_pipeline(stack, manifest, tmp_path / "clipped"), batches[1])
