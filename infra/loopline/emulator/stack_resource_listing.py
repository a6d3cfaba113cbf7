"""Gap: moto lists a resource it did not create. `Stack.stack_resources` is the resource map's `values()`, which
answers None for a resource whose Condition is false (or whose type moto's CloudFormation does not implement),
and DescribeStackResources renders that None as an entry without LogicalResourceId, PhysicalResourceId or type.
AWS lists only what the stack created: a client looking a resource up by its logical id meets a KeyError here
and nothing there. In template.yaml this is the e-mail subscription (`Condition: HasNotificationEmail`)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any
from unittest import mock

from moto.cloudformation.models import Stack


def _created_resources(self: Stack) -> Iterable[Any]:
    return [resource for resource in self.resource_map.values() if resource is not None]


def list_created_resources_only() -> AbstractContextManager[object]:
    """The patch (not applied): a stack's resources are the ones moto created."""
    return mock.patch.object(Stack, "stack_resources", property(_created_resources))
