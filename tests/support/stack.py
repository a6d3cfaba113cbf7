"""template.yaml resolved for one stack, as CloudFormation would resolve it (names, ARNs, environments)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = "loopline-test"  # ours to choose, like `sam deploy --stack-name`
REGION = "us-east-1"


@dataclass
class Stack:
    """template.yaml resolved for one stack: parameters, physical names, function environments."""

    template: dict[str, Any]
    parameters: dict[str, str]
    name: str = STACK_NAME
    region: str = REGION
    account: str = DEFAULT_ACCOUNT_ID
    physical_ids: dict[str, str] = field(default_factory=dict)
    role_credentials: dict[str, Any] = field(default_factory=dict)  # function logical id -> RoleCredentials

    def __post_init__(self) -> None:
        for logical_id, resource in self.template["Resources"].items():
            kind = resource["Type"]
            properties = resource.get("Properties", {})
            if kind == "AWS::Serverless::Function":
                self.physical_ids[logical_id] = f"{self.name}-{logical_id}"
            elif kind == "AWS::Serverless::StateMachine":
                machine = self.resolve(properties["Name"])
                self.physical_ids[logical_id] = f"arn:aws:states:{self.region}:{self.account}:stateMachine:{machine}"
            elif kind == "AWS::S3::Bucket":
                self.physical_ids[logical_id] = self.resolve(properties["BucketName"])
            elif kind == "AWS::IAM::Role":  # Ref of a role is its name
                self.physical_ids[logical_id] = f"{self.name}-{logical_id}"
            elif kind == "AWS::CloudWatch::Alarm":  # Ref of an alarm is its name
                self.physical_ids[logical_id] = self.resolve(properties["AlarmName"])
            elif kind == "AWS::SNS::Topic":  # Ref of a topic is its ARN
                topic = self.resolve(properties["TopicName"])
                self.physical_ids[logical_id] = f"arn:aws:sns:{self.region}:{self.account}:{topic}"

    @property
    def bucket(self) -> str:
        return self.physical_ids["ArtifactBucket"]

    def resources_of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == kind}

    def resolve(self, value: Any) -> Any:
        """The value CloudFormation would substitute for Ref / Fn::Sub / Fn::GetAtt (the ones the template uses)."""
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, dict) and "Ref" in value:
            return self._ref(value["Ref"])
        if isinstance(value, dict) and "Fn::Sub" in value:
            text = value["Fn::Sub"]
            return re.sub(r"\$\{([^}]+)\}", lambda m: self._ref(m.group(1)), text)
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            if attribute == "Arn" and self.template["Resources"][logical_id]["Type"] == "AWS::IAM::Role":
                return f"arn:aws:iam::{self.account}:role/{self.physical_ids[logical_id]}"
            if attribute == "Arn":
                return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.physical_ids[logical_id]}"
            if attribute == "Name":
                return self.physical_ids[logical_id].rsplit(":", 1)[-1]
        raise NotImplementedError(f"cannot resolve {value!r}")

    def _ref(self, name: str) -> str:
        pseudo = {"AWS::StackName": self.name, "AWS::Region": self.region, "AWS::AccountId": self.account,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        return self.physical_ids[name]

    def function_logical_id(self, code_dir: str) -> str:
        """The function resource whose CodeUri is functions/<code_dir>/."""
        for logical_id, resource in self.resources_of_type("AWS::Serverless::Function").items():
            if resource["Properties"]["CodeUri"].rstrip("/") == f"functions/{code_dir}":
                return logical_id
        raise KeyError(code_dir)

    def function_environment(self, code_dir: str) -> dict[str, str]:
        """Globals + the function's own environment variables, resolved."""
        variables = dict(self.template["Globals"]["Function"]["Environment"]["Variables"])
        own = self.template["Resources"][self.function_logical_id(code_dir)]["Properties"]
        variables.update(own.get("Environment", {}).get("Variables", {}))
        return {name: self.resolve(value) for name, value in variables.items()}

    def state_machine_definition(self, logical_id: str) -> str:
        """The ASL file with its DefinitionSubstitutions applied, as SAM deploys it."""
        properties = self.template["Resources"][logical_id]["Properties"]
        text = (REPO_ROOT / properties["DefinitionUri"]).read_text(encoding="utf-8")
        for key, value in properties.get("DefinitionSubstitutions", {}).items():
            text = text.replace("${" + key + "}", self.resolve(value))
        return text
