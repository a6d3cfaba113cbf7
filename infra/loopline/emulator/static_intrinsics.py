"""Resolve the intrinsics that need no created resource: Ref to Parameters / pseudo parameters and Fn::Sub."""

from __future__ import annotations

from typing import Any

from loopline.emulator.template_references import substitute_tokens


def pseudo_parameters(stack_name: str, region: str, account_id: str) -> dict[str, str]:
    """The AWS:: pseudo parameters CloudFormation defines for a stack."""
    return {
        "AWS::StackName": stack_name,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local",
        "AWS::NoValue": "",
    }


def parameter_values(template: dict[str, Any], overrides: dict[str, str]) -> dict[str, str]:
    """Every template Parameter's value: the override, else its Default."""
    values = {}
    for name, spec in template.get("Parameters", {}).items():
        if name in overrides:
            values[name] = str(overrides[name])
        elif "Default" in spec:
            values[name] = str(spec["Default"])
    return values


def resolve_static(node: Any, values: dict[str, str]) -> Any:
    """Resolve Ref/Fn::Sub over `values` (parameters + pseudo parameters); raise ValueError on anything else."""
    if isinstance(node, list):
        return [resolve_static(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        if node["Ref"] not in values:
            raise ValueError(f"cannot resolve Ref {node['Ref']} without creating the stack")
        return values[node["Ref"]]
    if set(node) == {"Fn::Sub"}:
        text, mapping = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
        scope = {**values, **{k: str(resolve_static(v, values)) for k, v in mapping.items()}}

        def literal_for(name: str, attribute: str | None) -> str:
            if attribute is not None or name not in scope:
                raise ValueError(f"cannot resolve ${{{name}}} without creating the stack")
            return scope[name]

        return substitute_tokens(text, literal_for).replace("${!", "${")
    if any(key.startswith("Fn::") for key in node):
        raise ValueError(f"unsupported intrinsic {next(iter(node))} here")
    return {key: resolve_static(value, values) for key, value in node.items()}
