"""Gap: moto's CloudFormation ignores a function's `Layers`.

The emulator keeps its own map, read from the template: function -> the staged directories of its layers,
whose `python/` folders the function's workers put on sys.path (as Lambda does with /opt/python). A `Layers`
list chosen by `Fn::If` (PredictFunction's ServeScikitLearn) is resolved with the stack's parameter values.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def function_layer_dirs(template: dict[str, Any], layer_dirs_by_key: dict[str, Path],
                        parameters: Mapping[str, str] | None = None) -> dict[str, list[Path]]:
    """Function logical id -> its layers' staged dirs, in the template's order (later layers shadow nothing).

    Args:
        template: the translated CloudFormation template (layers referenced by `Ref` to AWS::Lambda::LayerVersion).
        layer_dirs_by_key: S3 key of a packaged layer zip -> the dir it was made from (see packaging).
        parameters: the stack's parameter values, for the conditions of an `Fn::If` list of layers.
    """
    resources = template["Resources"]
    result: dict[str, list[Path]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        dirs = []
        layers = (resource.get("Properties") or {}).get("Layers", [])
        if isinstance(layers, dict) and set(layers) == {"Fn::If"}:
            condition, when_true, when_false = layers["Fn::If"]
            layers = when_true if condition_holds(template, condition, parameters or {}) else when_false
        for layer in layers:
            layer_id = layer.get("Ref") if isinstance(layer, dict) else None
            content = resources.get(layer_id, {}).get("Properties", {}).get("Content", {}) if layer_id else {}
            staged = layer_dirs_by_key.get(content.get("S3Key", ""))
            if staged is not None:
                dirs.append(staged)
        result[logical_id] = dirs
    return result


def condition_holds(template: dict[str, Any], name: str, parameters: Mapping[str, str]) -> bool:
    """A template condition built from Fn::Equals / Fn::Not / Fn::And / Fn::Or / Condition over parameters."""
    defaults = {key: str(spec.get("Default", "")) for key, spec in (template.get("Parameters") or {}).items()}

    def value(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"Ref"}:
            return parameters.get(node["Ref"], defaults.get(node["Ref"]))
        return node

    def holds(node: Any) -> bool:
        (function, arguments), = node.items()
        if function == "Fn::Equals":
            return str(value(arguments[0])) == str(value(arguments[1]))
        if function == "Fn::Not":
            return not holds(arguments[0])
        if function == "Fn::And":
            return all(holds(argument) for argument in arguments)
        if function == "Fn::Or":
            return any(holds(argument) for argument in arguments)
        if function == "Condition":
            return holds(template["Conditions"][arguments])
        raise ValueError(f"unsupported condition function {function}")

    return holds(template["Conditions"][name])
