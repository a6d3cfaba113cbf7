"""Operating the stack as a person does: rollback through the promotion path, `loopline status`, `loopline models`.

Driven through the `loopline` command itself (its main()), against a local stack, like a user in a shell.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline.cli import main
from loopline.client import StackClient
from loopline.emulator.template_loading import load_template
from loopline.examples import breast_cancer, split_batches
from loopline.operate.events import notifications, subscribed_queue
from loopline.operate.rollback import ask_for_rollback
from loopline_runtime.bucket_layout import CHAMPION_KEY, HISTORY_PREFIX, MONITORING_PREFIX, model_prefix
from tests.support.bucket_policy import remove_bucket_policy
from tests.support.roles import person_credentials
from tests.support.stack import REPO_ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_champions(start_stack: Callable[..., StackClient], local_stack_config_path: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[StackClient, str, str]:
    """A stack whose champion B replaced a first champion A (the gate's tolerance lets any B through)."""
    config = yaml.safe_load(local_stack_config_path.read_text())
    config["gate"]["tolerance"] = 1.0
    path = tmp_path_factory.mktemp("operate") / "tolerant.yaml"
    path.write_text(yaml.safe_dump(config))
    stack = start_stack(path)
    first, second = split_batches(breast_cancer(), [250, 150])
    stack.upload_csv(first, "first.csv")
    execution = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(execution["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    a = stack.read_json(CHAMPION_KEY)["version"]
    before = len(stack.keys(MONITORING_PREFIX))
    stack.upload_csv(second, "second.csv")  # measured by the champion, then part of the training window
    stack.wait_for_keys(MONITORING_PREFIX, before + 1, timeout=180)
    known = {e["executionArn"] for e in stack.executions()}
    stack.sfn.start_execution(stateMachineArn=stack.state_machine_arn, name="manual-retrain",
                              input=json.dumps({"reason": "manual"}))
    execution = stack.wait_for_new_execution(known, timeout=60)
    assert stack.wait_for_execution(execution["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    b = stack.read_json(CHAMPION_KEY)["version"]
    assert b != a
    return stack, a, b


def _loopline(stack: StackClient, *args: str) -> list[str]:
    endpoint = stack.s3.meta.endpoint_url
    return [*args, "--stack-name", stack.stack_name, "--endpoint-url", endpoint]


def test_rollback_serves_the_previous_champion_and_records_who_and_why(
        two_champions: tuple[StackClient, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # given champion B serving, A before it
    stack, a, b = two_champions
    assert stack.predict([_row()]).body["model_version"] == b
    history_before = stack.keys(HISTORY_PREFIX)

    # when a person rolls back
    code = main(_loopline(stack, "rollback", "--reason", "complaints since B"))

    # then A serves again, within the predict function's documented staleness, and the history says who did it
    # (the caller the rollback API authenticated: this client signs with the account's administrator key) and why
    assert code == 0
    out = capsys.readouterr().out
    assert f"champion is now {a} (was {b})" in out
    assert "recorded as requested by arn:aws:iam::123456789012:root" in out
    assert _served_within_staleness(stack) == a
    [new] = sorted(set(stack.keys(HISTORY_PREFIX)) - set(history_before))
    record = stack.read_json(new)
    assert record["version"] == a
    assert record["previous_version"] == b
    assert record["reason"] == "rollback"
    assert record["note"] == "complaints since B"
    assert record["requested_by"] == "arn:aws:iam::123456789012:root"
    pointer = stack.read_json(CHAMPION_KEY)
    assert pointer == record  # the pointer holds the same record, written by the same states as a promotion

    # and rolling forward again by name goes through the same path
    assert main(_loopline(stack, "rollback", "--to", b, "--reason", "fixed upstream")) == 0
    assert _served_within_staleness(stack) == b


def test_rollback_refuses_unknown_never_promoted_and_serving_versions(
        two_champions: tuple[StackClient, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # given a champion, and two versions written into the registry that were never promoted (one with an
    # overwritten artifact, one trained on other columns)
    stack, a, b = two_champions
    serving = stack.read_json(CHAMPION_KEY)["version"]
    other = a if serving == b else b
    manifest = stack.read_json(f"{model_prefix(other)}manifest.json")
    artifact = stack.s3.get_object(Bucket=stack.bucket, Key=manifest["artifact"]["key"])["Body"].read()
    remove_bucket_policy(stack)  # registering by hand: a principal the bucket policy would refuse models/
    narrow = {**manifest, "version": "m-narrow",
              "schema": {**manifest["schema"], "features": {"mean radius": "numeric"}}}
    stack.s3.put_object(Bucket=stack.bucket, Key=f"{model_prefix('m-narrow')}manifest.json",
                        Body=json.dumps(narrow).encode())
    tampered = {**manifest, "version": "m-tampered", "artifact": {**manifest["artifact"],
                                                                 "key": f"{model_prefix('m-tampered')}model.joblib"}}
    stack.s3.put_object(Bucket=stack.bucket, Key=f"{model_prefix('m-tampered')}manifest.json",
                        Body=json.dumps(tampered).encode())
    stack.s3.put_object(Bucket=stack.bucket, Key=f"{model_prefix('m-tampered')}model.joblib",
                        Body=artifact[:-16] + b"\0" * 16)
    history = stack.keys(HISTORY_PREFIX)

    # (a version that served before and has another schema or changed pinned bytes: test_promotion_trust.py)
    for target, expected in [
        ("m-does-not-exist", "is not in the registry"),
        ("m-tampered", "was never promoted"),
        ("m-narrow", "was never promoted"),
        (serving, "is already the champion"),
    ]:
        # when a person asks to roll back to it
        code = main(_loopline(stack, "rollback", "--to", target))

        # then it is refused with the reason, and nothing moved
        assert code == 1, target
        assert expected in capsys.readouterr().err, target
        assert stack.read_json(CHAMPION_KEY)["version"] == serving
        assert stack.keys(HISTORY_PREFIX) == history
        assert stack.predict([_row()]).body["model_version"] == serving


def test_the_rollback_api_records_the_signed_caller_and_refuses_unsigned_unallowed_and_self_declared_callers(
        two_champions: tuple[StackClient, str, str]) -> None:
    # given a champion, the version before it, and two people: one allowed to invoke the rollback route, one not
    stack, a, b = two_champions
    serving = stack.read_json(CHAMPION_KEY)["version"]
    other = a if serving == b else b
    route = f"arn:aws:execute-api:{stack.region}:123456789012:*/Prod/POST/rollback"
    iam, sts = stack.client("iam"), stack.client("sts")
    operator = person_credentials(iam, sts, "rollback-operator",
                                  [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": route}])
    bystander = person_credentials(iam, sts, "rollback-bystander",
                                   [{"Effect": "Allow", "Action": "execute-api:Invoke",
                                     "Resource": route.replace("POST/rollback", "POST/predict")}])
    history = stack.keys(HISTORY_PREFIX)
    executions = stack.sfn.list_executions(stateMachineArn=stack.outputs["RollbackStateMachineArn"])["executions"]

    # when an unsigned request, a caller without execute-api:Invoke, and an allowed caller claiming another
    # identity in the body ask to roll back
    unsigned = ask_for_rollback(stack, to_version=other, note="x", credentials=None)
    unallowed = ask_for_rollback(stack, to_version=other, note="x", credentials=bystander)
    self_declared = ask_for_rollback(stack, to_version=other, note="x", credentials=operator,
                                     extra={"requested_by": "alice (arn:aws:iam::123456789012:user/alice)"})

    # then API Gateway refuses the first two, the function the third, and nothing started or moved
    assert (unsigned.status, unsigned.body) == (403, {"message": "Missing Authentication Token"})
    assert unallowed.status == 403
    assert "assumed-role/rollback-bystander/" in unallowed.body["Message"]
    assert "execute-api:Invoke" in unallowed.body["Message"]
    assert self_declared.status == 400 and "requested_by" in self_declared.body["message"]
    assert stack.sfn.list_executions(
        stateMachineArn=stack.outputs["RollbackStateMachineArn"])["executions"] == executions
    assert stack.read_json(CHAMPION_KEY)["version"] == serving
    assert stack.keys(HISTORY_PREFIX) == history

    # when the allowed caller asks without naming anyone
    with subscribed_queue(stack) as inbox:
        answer = ask_for_rollback(stack, to_version=other, note="signed", credentials=operator)
        assert answer.status == 202, answer.text
        assert stack.wait_for_execution(answer.body["execution_arn"], timeout=120)["status"] == "SUCCEEDED"
        promoted = next(json.loads(envelope["Message"]) for envelope in notifications(stack, inbox, timeout=30)
                        if json.loads(envelope["Message"]).get("event") == "promoted")

    # then the history record, the pointer and the notification name the caller API Gateway authenticated
    signed_arn = "arn:aws:sts::123456789012:assumed-role/rollback-operator/rollback-operator"
    assert answer.body["requested_by"] == signed_arn
    [new] = sorted(set(stack.keys(HISTORY_PREFIX)) - set(history))
    assert stack.read_json(new)["requested_by"] == signed_arn
    assert stack.read_json(CHAMPION_KEY)["version"] == other
    assert (promoted["model_version"], promoted["requested_by"]) == (other, signed_arn)


def test_status_and_models_show_the_loop_at_a_glance(
        two_champions: tuple[StackClient, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    # given a stack with two promoted models, a monitoring run and finished executions
    stack, _, _ = two_champions
    serving = stack.read_json(CHAMPION_KEY)["version"]

    # when
    assert main(_loopline(stack, "status")) == 0
    status = capsys.readouterr().out
    assert main(_loopline(stack, "models")) == 0
    models = capsys.readouterr().out

    # then status names the champion, the alarm state, the last measurement and the executions' outcomes
    assert status.splitlines()[1].startswith("Champion") and serving in status.splitlines()[1]
    assert "Alarm" in status and stack.alarm()["StateValue"] in status
    assert "Measured" in status and "drift" in status
    assert "SUCCEEDED" in status and "Promoted" in status
    print(status)  # quoted in the README
    # and models marks the serving version and shows each gate decision
    line = next(row for row in models.splitlines() if serving in row)
    assert line.startswith("*")
    assert "passed" in models


def _served_within_staleness(stack: StackClient) -> str:
    """The version the API serves once the champion pointer's current version is picked up: the predict function
    checks the pointer at most every CHAMPION_CHECK_SECONDS (template.yaml), so it may answer with the previous
    champion until then."""
    template = load_template(REPO_ROOT / "template.yaml")  # the one source of the staleness bound
    variables = template["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]
    deadline = time.monotonic() + float(variables["CHAMPION_CHECK_SECONDS"]) + 2.0
    expected = stack.read_json(CHAMPION_KEY)["version"]
    served = stack.predict([_row()]).body["model_version"]
    while served != expected and time.monotonic() < deadline:
        time.sleep(0.25)
        served = stack.predict([_row()]).body["model_version"]
    return str(served)


def _row() -> dict[str, Any]:
    frame = breast_cancer()
    return {k: (None if v != v else v) for k, v in frame.drop(columns=["diagnosis"]).iloc[0].to_dict().items()}
