"""A state's Parameters (or a Map's ItemSelector) applied to a state and a context object, as Step Functions
does it: tests hand a Lambda exactly the event its state machine would, from the ASL file itself."""

from __future__ import annotations

import re
from typing import Any

_FORMAT = re.compile(r"States\.Format\('(?P<template>[^']*)'(?P<args>(?:\s*,\s*\$[^,)]*)*)\)")


def resolve(parameters: dict[str, Any], state: Any, context: dict[str, Any]) -> dict[str, Any]:
    """`parameters` with every `name.$` path read from `state` ($...) or `context` ($$...)."""
    resolved: dict[str, Any] = {}
    for name, value in parameters.items():
        if name.endswith(".$"):
            resolved[name[:-2]] = _value(value, state, context)
        elif isinstance(value, dict):
            resolved[name] = resolve(value, state, context)
        else:
            resolved[name] = value
    return resolved


def _value(path: str, state: Any, context: dict[str, Any]) -> Any:
    if formatted := _FORMAT.fullmatch(path):  # States.Format('...{}...', $.a, ...): the one intrinsic we use
        args = [_value(arg.strip(), state, context) for arg in formatted["args"].split(",") if arg.strip()]
        return formatted["template"].format(*args)
    return _read(context, path[2:]) if path.startswith("$$") else _read(state, path[1:])


def _read(node: Any, path: str) -> Any:
    for part in filter(None, path.split(".")):
        node = node[part]
    return node
