"""template.yaml as CloudFormation sees it after the SAM transform (samtranslator, offline), for tests that check
what SAM generates: roles and their policies."""

from __future__ import annotations

import copy
from typing import Any

from loopline.emulator.sam_translation import translate

_LOCAL_PATHS = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
}


def translated_template(sam_template: dict[str, Any], parameters: dict[str, str], region: str) -> dict[str, Any]:
    """The translated template; local code and definition paths stand in as S3 URIs (nothing is uploaded)."""
    packaged = copy.deepcopy(sam_template)
    for logical_id, resource in packaged["Resources"].items():
        path_property = _LOCAL_PATHS.get(resource["Type"])
        if path_property and isinstance(resource.get("Properties", {}).get(path_property), str):
            resource["Properties"][path_property] = f"s3://loopline-test-staging/{logical_id}"
    return translate(packaged, parameters, region)
