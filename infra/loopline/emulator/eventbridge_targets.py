"""Gap: moto's EventBridge cannot deliver to Step Functions or Lambda targets (it raises NotImplementedError).

A matching rule's `states` target starts an execution (unique name) and a `lambda` target is invoked, both
asynchronously (after PutEvents has answered, as EventBridge delivers), each with the target's input: Input,
InputPath, InputTransformer, or the whole event. A `states` target needs a RoleArn allowed to start it, a `lambda`
target a Lambda permission for the rule. Other targets (SQS, logs, buses...) keep moto's delivery. Disabled rules
deliver nothing, as in AWS.
"""

from __future__ import annotations

import copy
import json
import sys
import uuid
from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

from moto.events.models import Rule
from moto.events.utils import EventTemplateParser
from moto.utilities.arns import parse_arn

from loopline.emulator.background import run_in_background
from loopline.emulator.iam_enforcement import role_may, service_may_invoke
from loopline.emulator.on_failure_destinations import invoke_asynchronously

_moto_send_to_targets = Rule.send_to_targets
_OUR_SERVICES = ("states", "lambda")


def target_input(target: dict[str, Any], event: dict[str, Any]) -> str:
    """The JSON text EventBridge sends to `target` for `event`."""
    if target.get("Input") is not None:
        return str(target["Input"])
    if target.get("InputPath"):
        from jsonpath_ng.ext import parse

        matches = parse(target["InputPath"]).find(event)
        return json.dumps(matches[0].value if matches else None)
    transformer = target.get("InputTransformer")
    if transformer:
        return json.dumps(
            EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event=event,  # type: ignore[arg-type]
            )
        )
    return json.dumps(event, default=str)


def start_state_machine_execution(state_machine_arn: str, execution_input: str) -> str:
    """StartExecution in the backend the API uses (the executing one when ASL execution is on)."""
    from moto.stepfunctions.responses import get_backend

    arn = parse_arn(state_machine_arn)
    backend = get_backend(arn.account, arn.region)
    # a unique name: moto refuses a second execution with a reused name
    execution = backend.start_execution(
        state_machine_arn, name=f"events-{uuid.uuid4()}", execution_input=execution_input
    )
    return str(execution.execution_arn)


def _function(function_arn: str) -> Any:
    from moto.awslambda.utils import get_backend

    arn = parse_arn(function_arn)
    return get_backend(arn.account, arn.region).get_function(function_arn)


def _dropped(rule: Rule, target: dict[str, Any], why: str) -> None:
    # AWS counts a FailedInvocations metric; the emulator says it on stderr
    print(f"loopline: EventBridge rule {rule.name} did not deliver to {target['Arn']}: {why}", file=sys.stderr)


def invoke_lambda_asynchronously(function_arn: str, payload: str) -> None:
    """Invoke like EventBridge does (InvocationType=Event): in the background."""
    function = _function(function_arn)
    run_in_background(f"events-{function.function_name}", invoke_asynchronously, function, payload)


def deliver_to_states_and_lambda_targets() -> AbstractContextManager[object]:
    """Patch moto's rule delivery to handle `states` and `lambda` targets."""

    def send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
        if self.state != "ENABLED" or not self.event_pattern.matches_event(original_event):
            return
        # a schedule rule (no event pattern) runs on its schedule only; moto's empty pattern matches every event
        if self.scheduled_expression and not self.event_pattern.dump():
            return
        ours = [t for t in self.targets if parse_arn(t["Arn"]).service in _OUR_SERVICES]
        others = [t for t in self.targets if t not in ours]
        if others:
            # moto delivers the rest; a shallow copy keeps the rule's own target list untouched
            rest = copy.copy(self)
            rest.targets = others
            _moto_send_to_targets(rest, original_event, transform_input)
        for target in ours:
            payload = target_input(target, original_event)
            if parse_arn(target["Arn"]).service == "states":
                # EventBridge starts the execution as the target's role, which must allow it
                if not role_may(str(target.get("RoleArn", "")), "states:StartExecution", target["Arn"]):
                    _dropped(self, target, "its RoleArn may not states:StartExecution on it")
                    continue
                # after PutEvents has answered, as EventBridge delivers
                run_in_background(f"events-{self.name}", start_state_machine_execution, target["Arn"], payload)
            else:
                function = _function(target["Arn"])
                if not service_may_invoke(function, "events.amazonaws.com", self.arn, parse_arn(self.arn).account):
                    _dropped(self, target, "no Lambda permission lets events.amazonaws.com invoke it for this rule")
                    continue
                invoke_lambda_asynchronously(target["Arn"], payload)

    return mock.patch.object(Rule, "send_to_targets", send_to_targets)
