"""moto gaps: CloudFormation ignores DefinitionS3Location/DefinitionSubstitutions, and puts state machines where
StartExecution (with ASL execution on) does not look. Also: Retry/Catch route on a handler's errorType."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from loopline.emulator.state_machine_definition import inline_state_machine_definitions

DEFINITION = {
    "StartAt": "Work",
    "States": {
        "Work": {
            "Type": "Task",
            "Resource": "${WorkFunctionArn}",
            "Parameters": {"execution.$": "$$.Execution.Id", "fail.$": "$.fail"},
            "Catch": [{"ErrorEquals": ["GateFailed"], "ResultPath": "$.error", "Next": "Rejected"}],
            "End": True,
        },
        "Rejected": {"Type": "Pass", "Result": {"label": "${Label}"}, "ResultPath": "$.rejected", "End": True},
    },
}
HANDLER = """
class GateFailed(Exception):
    pass
def lambda_handler(event, context):
    if event["fail"]:
        raise GateFailed("below the gate")
    return {"execution": event["execution"]}
"""


def wait_for_execution(sfn: Any, arn: str) -> dict[str, Any]:
    deadline = time.time() + 30
    while time.time() < deadline:
        execution = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        time.sleep(0.3)
    raise AssertionError(f"{arn} still running")


def create_stack_with_state_machine(aws: Callable[[str], Any], function_name: str,
                                    make_role: Callable[..., str]) -> str:
    bucket = f"defs-{uuid.uuid4().hex[:8]}"
    aws("s3").create_bucket(Bucket=bucket)
    aws("s3").put_object(Bucket=bucket, Key="def.json", Body=json.dumps(DEFINITION))
    function_arn = aws("lambda").get_function(FunctionName=function_name)["Configuration"]["FunctionArn"]
    role = make_role("states.amazonaws.com", [{"Effect": "Allow", "Action": "lambda:InvokeFunction",
                                               "Resource": function_arn}])
    template = {
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "StateMachineName": f"sm-{uuid.uuid4().hex[:8]}",
                    "RoleArn": role,
                    "DefinitionS3Location": {"Bucket": bucket, "Key": "def.json"},
                    "DefinitionSubstitutions": {"WorkFunctionArn": function_arn, "Label": {"Ref": "AWS::StackName"}},
                },
            }
        },
        "Outputs": {"Arn": {"Value": {"Ref": "Machine"}}},
    }
    inline_state_machine_definitions(template, lambda b, k: aws("s3").get_object(Bucket=b, Key=k)["Body"].read())
    stack_name = f"stack-{uuid.uuid4().hex[:8]}"
    aws("cloudformation").create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    outputs = aws("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]
    return str(outputs[0]["OutputValue"])


def test_a_packaged_definition_with_substitutions_runs_from_a_cloudformation_stack(aws, create_function, make_role):
    # given
    state_machine_arn = create_stack_with_state_machine(aws, create_function(HANDLER), make_role)
    sfn = aws("stepfunctions")

    # when
    started = sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps({"fail": False}))
    execution = wait_for_execution(sfn, started["executionArn"])

    # then ($$.Execution.Id survived the substitution)
    assert execution["status"] == "SUCCEEDED", execution
    assert json.loads(execution["output"]) == {"execution": started["executionArn"]}


def test_catch_routes_on_the_handler_exception_class_name(aws, create_function, make_role):
    # given
    state_machine_arn = create_stack_with_state_machine(aws, create_function(HANDLER), make_role)
    sfn = aws("stepfunctions")

    # when
    started = sfn.start_execution(stateMachineArn=state_machine_arn, input=json.dumps({"fail": True}))
    execution = wait_for_execution(sfn, started["executionArn"])

    # then
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["error"]["Error"] == "GateFailed"
    assert output["rejected"]["label"].startswith("stack-")  # substituted with the stack name
