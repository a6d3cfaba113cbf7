"""Upload -> ingest -> train -> gate -> promote -> predict, driven purely as a client of `loopline local up`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from loopline_runtime.bucket_layout import CHAMPION_KEY, HISTORY_PREFIX, QUARANTINE_PREFIX, model_prefix

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def batches() -> list[Any]:
    return split_batches(breast_cancer(), [250, 100])


@pytest.fixture(scope="module")
def trained(start_stack: Callable[..., StackClient], batches: list[Any]) -> StackClient:
    """A stack whose first upload has been trained and promoted."""
    stack = start_stack()
    stack.upload_csv(batches[0], "first.csv")
    execution = stack.wait_for_new_execution(set(), timeout=180)
    described = stack.wait_for_execution(execution["executionArn"], timeout=600)
    assert described["status"] == "SUCCEEDED", described
    return stack


def _records(frame: Any, n: int = 3) -> list[dict[str, Any]]:
    return frame.drop(columns=[TARGET]).head(n).to_dict(orient="records")


def test_upload_trains_promotes_and_serves_with_the_version(trained: StackClient, batches: list[Any]) -> None:
    # given a stack whose first upload went through the state machine (fixture)
    # when a client asks for predictions over HTTP
    response = trained.predict(_records(batches[1]))
    model = trained.http("GET", "model")

    # then they come from the promoted champion, with the user's class labels and probabilities
    assert response.status == 200, response.text
    pointer = trained.read_json(CHAMPION_KEY)
    assert response.body["model_version"] == pointer["version"] == model.body["model_version"]
    assert set(response.body["predictions"]) <= {"benign", "malignant"}
    assert len(response.body["probabilities"]) == 3
    assert model.body["holdout_score"] >= trained.read_json(
        f"{model_prefix(pointer['version'])}evaluation.json")["gate_threshold"]
    history = trained.keys(HISTORY_PREFIX)
    assert len(history) == 1


def test_training_states_are_the_templates_state_machine(trained: StackClient) -> None:
    # given the first training execution
    execution = trained.executions()[0]

    # when its history is read
    states = trained.entered_states(execution["executionArn"])

    # then it went plan -> Train (on the TrainFunction: a small window) -> Evaluate -> gate -> promote
    assert states[:5] == ["Plan training", "Choose where to train", "Train challenger",
                          "Evaluate challenger and champion", "Quality gate"]
    assert states[-1] == "Promoted"


# case -> (request body built from a valid record and the batch limit, text the 400 message must contain)
BAD_REQUESTS: dict[str, tuple[Callable[[dict[str, Any], int], Any], str]] = {
    "missing-field": (lambda record, _: {"records": [{"mean radius": record["mean radius"]}]}, "missing field"),
    "extra-field": (lambda record, _: {"records": [{**record, "patient_name": "x"}]}, "unknown field(s) patient_name"),
    "wrong-type": (lambda record, _: {"records": [{**record, "mean radius": "large"}]}, "must be a number"),
    "empty-batch": (lambda record, _: {"records": []}, "empty"),
    "oversized-batch": (lambda record, limit: {"records": [record] * (limit + 1)}, "send at most"),
    "no-records-key": (lambda record, _: {"rows": [record]}, '"records"'),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_prediction_requests_get_400_with_the_problem(trained: StackClient, batches: list[Any], case: str,
                                                          template: dict[str, Any]) -> None:
    # given a valid record to start from, made invalid in one way (the batch limit is template.yaml's)
    variables = template["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]
    build, needle = BAD_REQUESTS[case]
    body = build(_records(batches[1], 1)[0], int(variables["MAX_BATCH_RECORDS"]))

    # when it is sent
    response = trained.http("POST", "predict", body)

    # then the client gets a 400 naming the problem, never a 5xx
    assert response.status == 400, response.text
    assert needle in response.body["message"]


def test_non_json_body_gets_400(trained: StackClient) -> None:
    response = trained.http("POST", "predict", raw=b"{not json")
    assert response.status == 400
    assert "not valid JSON" in response.body["message"]


def test_requests_without_the_api_key_are_refused(trained: StackClient, batches: list[Any]) -> None:
    response = trained.http("POST", "predict", {"records": _records(batches[1], 1)}, api_key=None)
    assert response.status == 403


def test_bad_uploads_are_quarantined_and_the_champion_is_unchanged(trained: StackClient) -> None:
    # given the serving champion
    before = trained.read_json(CHAMPION_KEY)
    executions_before = len(trained.executions())

    # when an unparseable CSV and a CSV without the target are uploaded
    trained.upload_csv(b"\x89PNG\r\n\x1a\n\x00\x00binary", "scan.csv")
    trained.upload_csv(b"mean radius,mean texture\n1,2\n3,4\n", "no-target.csv")
    reasons = trained.wait_for_keys(QUARANTINE_PREFIX, 4, timeout=120)

    # then both are kept with a reason a person can act on, the originals stay, and nothing was retrained
    by_source = {}
    for key in [k for k in reasons if k.endswith("reason.json")]:
        reason = trained.read_json(key)
        by_source[reason["source_key"]] = reason
        assert reason["quarantined_copy"] in reasons
    assert by_source["incoming/scan.csv"]["reason_code"] == "unparseable_csv"
    assert by_source["incoming/no-target.csv"]["reason_code"] == "missing_target"
    assert "diagnosis" in by_source["incoming/no-target.csv"]["message"]
    assert {"incoming/scan.csv", "incoming/no-target.csv"} <= set(trained.keys("incoming/"))
    assert trained.read_json(CHAMPION_KEY) == before
    assert len(trained.executions()) == executions_before


def test_a_failing_train_task_is_caught_and_the_champion_stays(trained: StackClient) -> None:
    # given the serving champion, and a train function that now times out (fault injected via the Lambda API)
    before = trained.read_json(CHAMPION_KEY)
    resources = trained.cloudformation.describe_stack_resources(StackName=trained.stack_name)["StackResources"]
    train_name = next(r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == "TrainFunction")
    aws = trained.client("lambda")
    original = aws.get_function_configuration(FunctionName=train_name)["Timeout"]
    aws.update_function_configuration(FunctionName=train_name, Timeout=1)
    try:
        # when a training run is started by hand
        arn = trained.sfn.start_execution(stateMachineArn=trained.state_machine_arn, name=f"manual-{time.time_ns()}",
                                          input='{"reason": "manual"}')["executionArn"]
        described = trained.wait_for_execution(arn, timeout=300)
    finally:
        aws.update_function_configuration(FunctionName=train_name, Timeout=original)

    # then the failure is caught by the state machine's Catch and the champion is untouched
    assert described["status"] == "FAILED"
    assert described.get("error") == "TrainingFailed"
    assert "Training failed" in trained.entered_states(arn)
    assert trained.read_json(CHAMPION_KEY) == before
    assert trained.http("GET", "model").body["model_version"] == before["version"]


def test_no_champion_yet_answers_503(start_stack: Callable[..., StackClient], batches: list[Any]) -> None:
    # given a fresh stack with nothing trained
    stack = start_stack()

    # when a client asks for a prediction and the model
    predict = stack.predict(_records(batches[1], 1))
    model = stack.http("GET", "model")

    # then both say there is no champion yet
    assert predict.status == model.status == 503
    assert "no model has been promoted yet" in predict.body["message"]
