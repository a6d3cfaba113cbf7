"""Gap: moto's Distributed Map parses `ToleratedFailureCount`/`ToleratedFailurePercentage` but never applies them:
a child execution that fails is counted as failed and the Map run succeeds whatever the share of failures. In
AWS the Map run fails with `States.ExceedToleratedFailureThreshold` (which a Catch can route) once the failures
exceed both thresholds (unset thresholds are 0: no failure tolerated). Apply that rule when the run's items are
done. moto also rejects an integer `ToleratedFailurePercentage` at parse time, so ASL written for the emulator
spells it as a float (`5.0`), which AWS accepts too."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

_original_map_run = DistributedIterationComponent._map_run


def exceeds_tolerance(failed: int, total: int, *, tolerated_count: int, tolerated_percentage: float) -> bool:
    """AWS's rule: the run fails when its failures exceed the tolerated count and the tolerated percentage."""
    if failed == 0:
        return False
    share = 100.0 * failed / total if total else 100.0
    return failed > tolerated_count and share > tolerated_percentage


def apply_tolerated_failure_thresholds() -> AbstractContextManager[object]:
    """A patch of moto's Distributed Map run that fails it as AWS does when too many children failed."""

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        _original_map_run(self, env=env, eval_input=eval_input)
        record = eval_input.map_run_record
        items = record.item_counter
        failed = items.failed.get() + items.timed_out.get()
        if not exceeds_tolerance(failed, items.total.get(), tolerated_count=record.tolerated_failure_count,
                                 tolerated_percentage=record.tolerated_failure_percentage):
            return
        env.stack.pop()  # the children's outputs: the state fails instead
        error = StatesErrorNameType.StatesExceedToleratedFailureThreshold.to_name()
        cause = (f"{failed} of {items.total.get()} items failed, more than the tolerated "
                 f"{record.tolerated_failure_count} items / {record.tolerated_failure_percentage}%")
        raise FailureEventException(failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
            event_type=HistoryEventType.MapRunFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]
                mapRunFailedEventDetails=MapRunFailedEventDetails(error=error, cause=cause)),
        ))

    return mock.patch.object(DistributedIterationComponent, "_map_run", _map_run)
