"""Gap: moto marks a stack `CREATE_COMPLETE` as soon as its own resources exist, but the emulator still has to
apply what moto's CloudFormation skips (bucket notifications, versioning and policy, alarms, event invoke
configs). A client that uploads the instant the status turns complete could beat the notifications and its
upload would never be ingested. On AWS, `CREATE_COMPLETE` means every resource of the template is in place.

A stack the emulator deploys is held: when moto would mark it complete it stays `CREATE_IN_PROGRESS` (to
DescribeStacks, waiters and the aws CLI) and is only marked created; the deployer applies the rest and then
releases it, which sets `CREATE_COMPLETE` and adds the stack's `CREATE_COMPLETE` event.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from unittest import mock

from moto.cloudformation.models import Stack, cloudformation_backends

_held: set[str] = set()
_lock = threading.Lock()
_moto_mark_creation_complete = Stack.mark_creation_complete


def hold_completion(stack_name: str) -> None:
    """Keep `stack_name` (about to be created) in CREATE_IN_PROGRESS until `release_completion`."""
    with _lock:
        _held.add(stack_name)


def resources_created(account_id: str, region: str, stack_name: str) -> bool:
    """Whether moto has created every resource of the stack (held or not)."""
    stack = cloudformation_backends[account_id][region].get_stack(stack_name)
    return stack.status == "CREATE_COMPLETE" or bool(getattr(stack, "loopline_resources_created", False))


def release_completion(account_id: str, region: str, stack_name: str) -> None:
    """Everything is applied: report the stack complete, as CloudFormation would have at this point."""
    with _lock:
        was_held = stack_name in _held
        _held.discard(stack_name)
    stack = cloudformation_backends[account_id][region].get_stack(stack_name)
    if was_held and getattr(stack, "loopline_resources_created", False):
        _moto_mark_creation_complete(stack)


def complete_only_when_released() -> AbstractContextManager[object]:
    """The patch (not applied): a held stack is marked created instead of complete."""

    def mark_creation_complete(self: Stack) -> None:
        with _lock:
            held = self.name in _held
        if not held:
            _moto_mark_creation_complete(self)
            return
        self.loopline_resources_created = True  # type: ignore[attr-defined]  # our mark on moto's object

    return mock.patch.object(Stack, "mark_creation_complete", mark_creation_complete)
