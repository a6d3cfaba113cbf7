"""Rewrite references to template resources (Ref, Fn::GetAtt, `${...}` in Fn::Sub) into literals.

Used when the emulator takes a resource out of the CloudFormation template (moto cannot create it) and
provides it itself: everything that pointed at it must then name the real thing literally.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# (logical id, attribute or None for Ref) -> the literal, or None to leave the reference alone
LiteralFor = Callable[[str, str | None], str | None]

_SUB_TOKEN = re.compile(r"\$\{([^!}][^}]*)\}")


def replace_references(node: Any, literal_for: LiteralFor) -> Any:
    """Return a copy of `node` with every reference `literal_for` knows replaced by its literal."""
    if isinstance(node, list):
        return [replace_references(item, literal_for) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, value),) = node.items()
        if key == "Ref" and isinstance(value, str):
            literal = literal_for(value, None)
            return node if literal is None else literal
        if key == "Fn::GetAtt":
            logical_id, attribute = value.split(".", 1) if isinstance(value, str) else value
            literal = literal_for(logical_id, attribute)
            return node if literal is None else literal
        if key == "Fn::Sub":
            return {"Fn::Sub": _replace_in_sub(value, literal_for)}
    return {key: replace_references(value, literal_for) for key, value in node.items()}


def _replace_in_sub(value: Any, literal_for: LiteralFor) -> Any:
    if isinstance(value, str):
        return substitute_tokens(value, literal_for)
    text, mapping = value
    variables = {key: replace_references(item, literal_for) for key, item in mapping.items()}
    return [substitute_tokens(text, lambda ref, attr: None if ref in variables else literal_for(ref, attr)), variables]


def substitute_tokens(text: str, literal_for: LiteralFor) -> str:
    """Replace `${Res}` / `${Res.Attr}` tokens in a Fn::Sub string; `${!Literal}` and unknown tokens stay."""

    def replace(match: re.Match[str]) -> str:
        logical_id, _, attribute = match.group(1).partition(".")
        literal = literal_for(logical_id, attribute or None)
        return match.group(0) if literal is None else literal

    return _SUB_TOKEN.sub(replace, text)


def remove_resources(template: dict[str, Any], logical_ids: set[str]) -> None:
    """Delete resources and every DependsOn entry naming them (in place)."""
    resources = template["Resources"]
    for logical_id in logical_ids:
        resources.pop(logical_id, None)
    for resource in resources.values():
        depends_on = resource.get("DependsOn")
        if depends_on is None:
            continue
        remaining = [d for d in ([depends_on] if isinstance(depends_on, str) else depends_on) if d not in logical_ids]
        if remaining:
            resource["DependsOn"] = remaining
        else:
            del resource["DependsOn"]
