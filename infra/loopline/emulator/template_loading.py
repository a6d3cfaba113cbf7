"""Read a SAM/CloudFormation YAML template with its short-form intrinsics (`!Ref`, `!Sub`, `!GetAtt`...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_SHORT_FORMS = (
    "Base64",
    "Cidr",
    "FindInMap",
    "GetAtt",
    "GetAZs",
    "ImportValue",
    "Join",
    "Select",
    "Split",
    "Sub",
    "Transform",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "Condition",
)


class _TemplateLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Tag value` into the long form `{"Fn::Tag": value}` like CloudFormation does."""


def _intrinsic(name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if name == "GetAtt" and isinstance(value, str):
            # `!GetAtt Res.Attr` is the dotted short form of ["Res", "Attr"]
            value = value.split(".", 1)
        key = name if name in ("Ref", "Condition") else f"Fn::{name}"
        return {key: value}

    return construct


_TemplateLoader.add_constructor("!Ref", _intrinsic("Ref"))
for _name in _SHORT_FORMS:
    _TemplateLoader.add_constructor(f"!{_name}", _intrinsic(_name))


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a template file (YAML or JSON) into plain dicts with long-form intrinsics."""
    data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_TemplateLoader)
    if not isinstance(data, dict) or "Resources" not in data:
        raise ValueError(f"{path}: not a CloudFormation/SAM template (no Resources)")
    return data
