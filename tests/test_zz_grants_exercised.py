"""The grants are exactly what the code uses: every permission template.yaml gives a function's or state
machine's role was exercised by this session's emulator tests (the emulator records each grant a role uses), or
is listed with its reason in docs/iam.md. Runs after the e2e, fault and integration tests (its name and place),
over what they exercised; an e2e test itself, so `make test-fast` (no emulator) leaves it out."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from loopline.emulator.iam_policy import wildcard_match
from loopline.params import stack_parameters
from loopline_runtime.config import PipelineConfig
from tests.support.stack import REGION, REPO_ROOT
from tests.support.translated import translated_template

OWNER_TYPES = {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}
# roles an AWS service works with that the emulator runs too (<owner>Role): SageMaker's training jobs
SERVICE_ROLE_OWNERS = ["TrainingJob"]
pytestmark = pytest.mark.e2e
DOC = REPO_ROOT / "docs" / "iam.md"


def _granted(translated: dict[str, Any], owner: str) -> Iterator[tuple[str, str]]:
    """(action, resource pattern with the stack's names as `*`) of each Allow in the owner's own policies."""
    role = translated["Resources"].get(f"{owner}Role")
    if role is None:
        return
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement.get("Resource", "*")
            for action in actions:
                for resource in resources if isinstance(resources, list) else [resources]:
                    yield action, _pattern(resource)


def _pattern(resource: Any) -> str:
    """A resource as a wildcard pattern: every `${...}` and intrinsic becomes `*`."""
    if isinstance(resource, str):
        return resource
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        text = resource["Fn::Sub"] if isinstance(resource["Fn::Sub"], str) else resource["Fn::Sub"][0]
        return re.sub(r"\$\{[^}]+\}", "*", text)
    if isinstance(resource, dict) and "Fn::Join" in resource:
        return "".join(p if isinstance(p, str) else "*" for p in resource["Fn::Join"][1])
    return "*"


def _owner(role_arn: str, owners: list[str]) -> str | None:
    name = role_arn.rsplit("/", 1)[-1]
    return next((o for o in sorted(owners, key=len, reverse=True) if f"-{o}Role-" in name), None)


def test_every_grant_of_the_template_was_exercised_or_is_listed_with_its_reason(
        iam_audit_log: Path, template: dict[str, Any], pipeline_config: PipelineConfig) -> None:
    # given what the roles used on this session's emulators
    used = [json.loads(line) for line in iam_audit_log.read_text().splitlines()] if iam_audit_log.exists() else []
    if not any(entry["role"].rsplit("/", 1)[-1].startswith("e2e-") for entry in used):
        pytest.skip("no e2e stack ran before this one in this session (run the whole suite: make test)")
    owners = sorted([k for k, r in template["Resources"].items() if r["Type"] in OWNER_TYPES] + SERVICE_ROLE_OWNERS)
    parameters = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}
    parameters.update(stack_parameters(pipeline_config))
    translated = translated_template(template, parameters, REGION)
    exercised: dict[str, list[tuple[str, str]]] = {owner: [] for owner in owners}
    for entry in used:
        owner = _owner(entry["role"], owners)
        if owner is not None:
            exercised[owner].append((entry["action"], entry["resource"]))

    # when each grant is looked for among them
    unexercised = sorted(
        (owner, action, resource)
        for owner in owners
        for action, resource in set(_granted(translated, owner))
        if not any(wildcard_match(action, a, case_sensitive=False) and wildcard_match(resource, r)
                   for a, r in exercised[owner])
    )

    # then each grant nothing used is listed in docs/iam.md with its reason
    listed = DOC.read_text(encoding="utf-8")
    missing = [f"| {owner} | `{action}` | `{resource}` |" for owner, action, resource in unexercised
               if f"| {owner} | `{action}` | `{resource}` |" not in listed]
    assert not missing, ("grants no test exercised: remove them from template.yaml, exercise them, or list them "
                         "in docs/iam.md with why they are kept:\n" + "\n".join(missing))
