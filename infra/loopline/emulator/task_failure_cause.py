"""Gap: moto's SendTaskFailure drops `cause` (its response handler passes only the error), so a state that
catches the failure sees no Cause. Pass it on to the ASL interpreter, which accepts it."""

from __future__ import annotations

import inspect
from contextlib import AbstractContextManager
from unittest import mock

from moto.core.responses import ActionResult, EmptyResult
from moto.stepfunctions.responses import StepFunctionResponse


def _send_task_failure(self: StepFunctionResponse) -> ActionResult:
    backend = self.stepfunction_backend
    arguments = {"error": self._get_param("error")}
    if "cause" in inspect.signature(backend.send_task_failure).parameters:  # the executing backend takes it
        arguments["cause"] = self._get_param("cause")
    backend.send_task_failure(self._get_param("taskToken"), **arguments)
    return EmptyResult()


def pass_task_failure_cause() -> AbstractContextManager[object]:
    """The patch (not applied): SendTaskFailure with its cause."""
    return mock.patch.object(StepFunctionResponse, "send_task_failure", _send_task_failure)
