"""Gap: moto's CloudFormation ignores a function's `Layers`.

The emulator keeps its own map, read from the template: function -> the staged directories of its layers,
whose `python/` folders the function's workers put on sys.path (as Lambda does with /opt/python).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def function_layer_dirs(template: dict[str, Any], layer_dirs_by_key: dict[str, Path]) -> dict[str, list[Path]]:
    """Function logical id -> its layers' staged dirs, in the template's order (later layers shadow nothing).

    Args:
        template: the translated CloudFormation template (layers referenced by `Ref` to AWS::Lambda::LayerVersion).
        layer_dirs_by_key: S3 key of a packaged layer zip -> the dir it was made from (see packaging).
    """
    resources = template["Resources"]
    result: dict[str, list[Path]] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        dirs = []
        for layer in (resource.get("Properties") or {}).get("Layers", []):
            layer_id = layer.get("Ref") if isinstance(layer, dict) else None
            content = resources.get(layer_id, {}).get("Properties", {}).get("Content", {}) if layer_id else {}
            staged = layer_dirs_by_key.get(content.get("S3Key", ""))
            if staged is not None:
                dirs.append(staged)
        result[logical_id] = dirs
    return result
