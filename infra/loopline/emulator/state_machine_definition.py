"""Gap: moto's CloudFormation ignores a state machine's `DefinitionS3Location` and `DefinitionSubstitutions`.

The packaged definition is read back from S3 and inlined as `DefinitionString`. Substitutions become tokens of
the plain `Fn::Sub` string form (`${TrainFunction.Arn}`), not the `[template, mapping]` form: moto implements
that form with `string.Template`, which turns the ASL's `$$.Execution.Id` into `$.Execution.Id`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loopline.emulator.template_references import substitute_tokens

ReadObject = Callable[[str, str], bytes]


def inline_state_machine_definitions(template: dict[str, Any], read_object: ReadObject) -> dict[str, Any]:
    """Replace DefinitionS3Location (+ DefinitionSubstitutions) by an equivalent DefinitionString (in place)."""
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::StepFunctions::StateMachine":
            continue
        properties = resource["Properties"]
        location = properties.pop("DefinitionS3Location", None)
        substitutions = properties.pop("DefinitionSubstitutions", None) or {}
        if location is not None:
            text = read_object(location["Bucket"], location["Key"]).decode("utf-8")
        elif isinstance(properties.get("DefinitionString"), str):
            text = properties["DefinitionString"]
        else:
            if substitutions:
                raise ValueError("DefinitionSubstitutions are only supported with DefinitionUri or a string Definition")
            continue
        properties["DefinitionString"] = {"Fn::Sub": _as_sub_string(text, substitutions)} if substitutions else text
    return template


def _as_sub_string(text: str, substitutions: dict[str, Any]) -> str:
    def token_for(name: str, attribute: str | None) -> str | None:
        if attribute is not None or name not in substitutions:
            return None
        return _token(name, substitutions[name])

    return substitute_tokens(text, token_for)


def _token(name: str, value: Any) -> str:
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        attribute = value["Fn::GetAtt"]
        return "${" + (attribute if isinstance(attribute, str) else ".".join(attribute)) + "}"
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    raise ValueError(f"DefinitionSubstitutions.{name}: only literals, Ref, Fn::GetAtt and string Fn::Sub are supported")
