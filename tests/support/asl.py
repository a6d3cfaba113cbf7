"""A state's Parameters (or a Map's ItemSelector) applied to a state and a context object, as Step Functions
does it: tests hand a Lambda exactly the event its state machine would, from the ASL file itself."""

from __future__ import annotations

from typing import Any


def resolve(parameters: dict[str, Any], state: Any, context: dict[str, Any]) -> dict[str, Any]:
    """`parameters` with every `name.$` path read from `state` ($...) or `context` ($$...)."""
    resolved: dict[str, Any] = {}
    for name, value in parameters.items():
        if name.endswith(".$"):
            resolved[name[:-2]] = _read(context, value[2:]) if value.startswith("$$") else _read(state, value[1:])
        elif isinstance(value, dict):
            resolved[name] = resolve(value, state, context)
        else:
            resolved[name] = value
    return resolved


def _read(node: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        node = node[part]
    return node
