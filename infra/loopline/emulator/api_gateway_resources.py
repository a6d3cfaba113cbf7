"""Gap: SAM's `AWS::ApiGateway::*` resources (RestApi with a Body, Deployment, Stage, UsagePlan...) fail in moto.

They are dropped from the CloudFormation template and the emulator serves the API itself (api_server.py).
References to them become literals: the RestApi id and the API key id of objects the emulator creates in
moto's API Gateway, and the stage URL `https://<api>.execute-api.<region>.amazonaws.com/` of the local server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from loopline.emulator.template_references import remove_resources, replace_references

_API_GATEWAY_PREFIX = "AWS::ApiGateway::"


@dataclass(frozen=True)
class LocalApi:
    """What stands in for the dropped resources."""

    rest_api_id: str
    api_key_id: str
    base_url: str  # e.g. http://127.0.0.1:3000/ (the stage name follows, as in AWS)


def drop_api_gateway_resources(template: dict[str, Any], local_api: LocalApi) -> set[str]:
    """Remove every AWS::ApiGateway::* resource and rewrite references to them (in place); return their ids."""
    resources = template["Resources"]
    dropped = {logical_id for logical_id, r in resources.items() if r.get("Type", "").startswith(_API_GATEWAY_PREFIX)}
    kinds = {logical_id: resources[logical_id]["Type"].removeprefix(_API_GATEWAY_PREFIX) for logical_id in dropped}
    remove_resources(template, dropped)
    rest_apis = [logical_id for logical_id, kind in kinds.items() if kind == "RestApi"]
    # the execute-api host of a dropped RestApi is the local server (before the generic token rewrite)
    for logical_id in rest_apis:
        template["Outputs"] = _replace_stage_url(template.get("Outputs", {}), logical_id, local_api.base_url)

    def literal_for(logical_id: str, attribute: str | None) -> str | None:
        kind = kinds.get(logical_id)
        if kind is None:
            return None
        if kind == "RestApi":
            return "root" if attribute == "RootResourceId" else local_api.rest_api_id
        if kind == "ApiKey":
            return local_api.api_key_id
        if kind == "Stage":
            return "Prod"
        return f"local-{logical_id}"

    for section in ("Resources", "Outputs"):
        template[section] = replace_references(template.get(section, {}), literal_for)
    return dropped


def _replace_stage_url(node: Any, logical_id: str, base_url: str) -> Any:
    pattern = re.compile(r"https://\$\{" + re.escape(logical_id) + r"\}\.execute-api\.[^/]*/")
    if isinstance(node, str):
        return pattern.sub(base_url, node)
    if isinstance(node, list):
        return [_replace_stage_url(item, logical_id, base_url) for item in node]
    if isinstance(node, dict):
        return {key: _replace_stage_url(value, logical_id, base_url) for key, value in node.items()}
    return node
