"""Distributed Map on the emulator as batch scoring uses it: every object of a long listing is an item, and the
tolerated failure rate decides whether the Map run fails (gap modules distributed_map_listing/_tolerance)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from loopline.emulator.distributed_map_tolerance import exceeds_tolerance


def _definition(bucket: str, prefix: str) -> dict[str, Any]:
    """A Distributed Map over the objects under prefix; a child fails when its key contains "bad"."""
    return {
        "StartAt": "Each object",
        "States": {
            "Each object": {
                "Type": "Map",
                "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2",
                               "Parameters": {"Bucket": bucket, "Prefix": prefix}},
                "ItemSelector": {"key.$": "$$.Map.Item.Value.Key"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Is it bad?",
                    "States": {
                        "Is it bad?": {"Type": "Choice", "Choices": [
                            {"Variable": "$.key", "StringMatches": "*bad*", "Next": "Bad"}], "Default": "Good"},
                        "Bad": {"Type": "Fail", "Error": "BadItem"},
                        "Good": {"Type": "Succeed"},
                    },
                },
                "MaxConcurrency": 20,
                "ToleratedFailurePercentage": 5.0,
                "ResultPath": None,
                "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "ResultPath": "$.error",
                           "Next": "Too many failed"}],
                "End": True,
            },
            "Too many failed": {"Type": "Pass", "End": True},
        },
    }


@pytest.fixture
def run_map(aws: Callable[[str], Any], make_role: Callable[..., str]
            ) -> Callable[[list[str]], tuple[dict[str, Any], dict[str, Any]]]:
    """Put objects with these names under a fresh prefix, run the Map over them; (execution, map run item counts)."""
    s3, sfn = aws("s3"), aws("stepfunctions")
    bucket = f"map-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    # the Map's item reader lists the bucket as the state machine's role
    role = make_role("states.amazonaws.com", [{"Effect": "Allow", "Action": "s3:ListBucket",
                                               "Resource": f"arn:aws:s3:::{bucket}"}])

    def run(names: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        prefix = f"items-{uuid.uuid4().hex[:6]}/"
        for name in names:
            s3.put_object(Bucket=bucket, Key=prefix + name, Body=b"")
        arn = sfn.create_state_machine(name=f"map-{uuid.uuid4().hex[:8]}", roleArn=role,
                                       definition=json.dumps(_definition(bucket, prefix)))["stateMachineArn"]
        execution_arn = sfn.start_execution(stateMachineArn=arn)["executionArn"]
        deadline = time.monotonic() + 300
        while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the map did not finish"
            time.sleep(0.5)
        (map_run,) = sfn.list_map_runs(executionArn=execution_arn)["mapRuns"]
        return described, sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["itemCounts"]

    return run


def test_every_object_of_a_listing_longer_than_one_page_is_an_item(run_map: Callable[..., Any]) -> None:
    # given 1,005 objects under the prefix (S3 lists at most 1,000 per page)
    names = [f"{i:05d}" for i in range(1_005)]

    # when the Map runs over them
    execution, counts = run_map(names)

    # then every one became an item, as in AWS
    assert execution["status"] == "SUCCEEDED"
    assert counts["total"] == counts["succeeded"] == 1_005


def test_failures_within_the_tolerated_percentage_let_the_map_succeed(run_map: Callable[..., Any]) -> None:
    # given 1 failing item in 20 (5%, tolerated: 5.0%)
    execution, counts = run_map([*(f"{i:02d}" for i in range(19)), "19-bad"])

    # then the map run succeeds, with the failure counted
    assert execution["status"] == "SUCCEEDED"
    assert "error" not in json.loads(execution["output"])
    assert (counts["failed"], counts["succeeded"]) == (1, 19)


def test_failures_beyond_the_tolerated_percentage_fail_the_map_with_the_states_error(
    run_map: Callable[..., Any],
) -> None:
    # given 2 failing items in 20 (10% > 5.0%)
    execution, counts = run_map([*(f"{i:02d}" for i in range(18)), "18-bad", "19-bad"])

    # then the Map fails with States.ExceedToleratedFailureThreshold, which its Catch routes
    output = json.loads(execution["output"])
    assert output["error"]["Error"] == "States.ExceedToleratedFailureThreshold"
    assert counts["failed"] == 2


@pytest.mark.parametrize(("failed", "total", "count", "percentage", "fails"), [
    (0, 10, 0, 0.0, False), (1, 10, 0, 0.0, True), (1, 20, 0, 5.0, False), (2, 20, 0, 5.0, True),
    (3, 10, 3, 0.0, False), (4, 10, 3, 0.0, True),
])
def test_the_aws_rule_for_tolerated_failures(failed: int, total: int, count: int, percentage: float,
                                             fails: bool) -> None:
    assert exceeds_tolerance(failed, total, tolerated_count=count, tolerated_percentage=percentage) is fails
