"""Every patch the emulator makes to moto, installed and undone in one place.

Each gap-filler module returns its patch (`unittest.mock.patch.object(...)`) without applying it; `patched_moto`
enters them all on one ExitStack, so leaving the context restores moto exactly. This is the only list of them:
a new gap filler is one more line in `_gap_fillers`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from unittest import mock

from moto.core.config import default_user_config

from loopline.emulator.alarm_evaluation import AlarmEvaluator
from loopline.emulator.alarm_state_change_events import emit_events_on_set_alarm_state
from loopline.emulator.distributed_map_listing import read_every_listing_page
from loopline.emulator.distributed_map_tolerance import apply_tolerated_failure_thresholds
from loopline.emulator.eventbridge_targets import deliver_to_states_and_lambda_targets
from loopline.emulator.firehose_capture_delivery import CaptureDelivery
from loopline.emulator.iam_enforcement import enforce_iam
from loopline.emulator.lambda_async_invocation import invoke_event_type_asynchronously
from loopline.emulator.lambda_invocation import LambdaRuntime, install_lambda_runtime
from loopline.emulator.lambda_limits import keep_ephemeral_storage, refuse_large_environments
from loopline.emulator.queue_metrics import queue_metrics_published
from loopline.emulator.s3_async_notifications import (
    add_version_ids_to_s3_events,
    deliver_s3_notifications_asynchronously,
)
from loopline.emulator.s3_conditional_writes import make_conditional_writes_atomic
from loopline.emulator.sagemaker_training_jobs import TrainingJobs
from loopline.emulator.stack_completion import complete_only_when_released
from loopline.emulator.stack_resource_listing import list_created_resources_only
from loopline.emulator.state_machine_backend import route_cloudformation_to_executing_backend
from loopline.emulator.state_machine_credentials import run_tasks_as_state_machine_role
from loopline.emulator.state_machine_parse_cache import cache_parse_trees
from loopline.emulator.task_failure_cause import pass_task_failure_cause


def _gap_fillers(runtime: LambdaRuntime, alarm_tick_seconds: float) -> list[AbstractContextManager[object]]:
    return [
        enforce_iam(),
        run_tasks_as_state_machine_role(runtime.roles),
        route_cloudformation_to_executing_backend(),
        list_created_resources_only(),
        complete_only_when_released(),
        cache_parse_trees(),
        pass_task_failure_cause(),
        install_lambda_runtime(runtime),
        refuse_large_environments(),
        keep_ephemeral_storage(),
        invoke_event_type_asynchronously(),
        deliver_s3_notifications_asynchronously(),
        add_version_ids_to_s3_events(),
        make_conditional_writes_atomic(),
        deliver_to_states_and_lambda_targets(),
        emit_events_on_set_alarm_state(),
        read_every_listing_page(),
        apply_tolerated_failure_thresholds(),
        AlarmEvaluator().installed(alarm_tick_seconds),
        queue_metrics_published(alarm_tick_seconds),
        CaptureDelivery().installed(),
        TrainingJobs(runtime.roles, lambda: runtime.package_dir("loopline_runtime"), runtime.echo).installed(),
    ]


@contextmanager
def patched_moto(runtime: LambdaRuntime, alarm_tick_seconds: float) -> Iterator[None]:
    """moto (in this process) with every behaviour the emulator adds, until the context exits.

    Also restores moto's user config on exit: `enable_state_machine_execution` turns on its ASL interpreter there.
    """
    with ExitStack() as stack:
        stack.enter_context(mock.patch.dict(default_user_config))
        for patch in _gap_fillers(runtime, alarm_tick_seconds):
            stack.enter_context(patch)
        yield
