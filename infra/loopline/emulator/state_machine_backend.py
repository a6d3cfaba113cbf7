"""Gap: moto's CloudFormation creates state machines in the plain Step Functions backend, while the API serves
the executing (parser) backend once `stepfunctions.execute_state_machine` is on: the stack's state machine
would be invisible to `start_execution`. Point the CloudFormation handlers at the parser backend."""

from __future__ import annotations

from contextlib import AbstractContextManager
from unittest import mock

import moto.stepfunctions.models as stepfunctions_models

# imported before the patch below: it binds `stepfunctions_backends` by name at import time, and must keep the
# plain backend (it picks the executing one itself from the `execute_state_machine` config)
import moto.stepfunctions.responses  # noqa: F401
from moto.stepfunctions.parser.models import stepfunctions_parser_backends


def route_cloudformation_to_executing_backend() -> AbstractContextManager[object]:
    """Make `AWS::StepFunctions::StateMachine` resources live where StartExecution looks for them."""
    # the module global is only read by the CloudFormation create/update/delete classmethods of StateMachine
    return mock.patch.object(stepfunctions_models, "stepfunctions_backends", stepfunctions_parser_backends)
