"""Gap: moto's CloudFormation has no AWS::Lambda::Alias (SAM's `AutoPublishAlias`, which SnapStart needs).

The emulator runs every function as $LATEST (it has no snapshots to restore either): each alias resource is
removed and every reference to it — `{"Ref": alias}` and `${alias}` inside `Fn::Sub` — becomes a reference to
the alias's function. The published AWS::Lambda::Version stays (moto creates it).
"""

from __future__ import annotations

import re
from typing import Any


def replace_lambda_aliases(template: dict[str, Any]) -> dict[str, str]:
    """Drop AWS::Lambda::Alias resources and point their references at their functions; alias -> function."""
    resources = template["Resources"]
    aliases = {
        logical_id: resource["Properties"]["FunctionName"]["Ref"]
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Lambda::Alias" and "Ref" in resource["Properties"].get("FunctionName", {})
    }
    for logical_id in aliases:
        del resources[logical_id]
    if aliases:
        template["Resources"] = _replace(resources, aliases)
        template["Outputs"] = _replace(template.get("Outputs", {}), aliases)
    return aliases


def _replace(node: Any, aliases: dict[str, str]) -> Any:
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in aliases:
            return {"Ref": aliases[node["Ref"]]}
        if "Fn::Sub" in node and len(node) == 1:
            sub = node["Fn::Sub"]
            if isinstance(sub, str):
                return {"Fn::Sub": _substitute(sub, aliases)}
            if isinstance(sub, list) and sub and isinstance(sub[0], str):
                return {"Fn::Sub": [_substitute(sub[0], aliases), *_replace(sub[1:], aliases)]}
        return {key: _replace(value, aliases) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace(item, aliases) for item in node]
    return node


def _substitute(text: str, aliases: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Za-z0-9]+)\}", lambda m: "${" + aliases.get(m.group(1), m.group(1)) + "}", text)
