"""IAM against the bucket layout: what each function's and state machine's role may read and write in the artifact
bucket, derived from the translated template, is exactly what loopline_runtime.bucket_layout.ROLE_ACCESS says; and
the bucket policy denies writes under each of those prefixes to every principal but the roles that write it.

moto does not enforce IAM, so without this test a renamed prefix or a new writer would pass every other test and
fail only in AWS (AccessDenied)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from loopline.params import stack_parameters
from loopline_runtime import bucket_layout
from loopline_runtime.bucket_layout import ROLE_ACCESS, Access
from loopline_runtime.config import PipelineConfig
from tests.support.stack import REGION
from tests.support.translated import translated_template

READ_ACTIONS = {"s3:GetObject", "s3:GetObjectVersion"}  # the second: a pinned artifact, by VersionId
WRITE_ACTIONS = {"s3:PutObject"}
OWNER_TYPES = {"AWS::Serverless::Function", "AWS::Serverless::StateMachine"}


@pytest.fixture(scope="module")
def translated(template: dict[str, Any], pipeline_config: PipelineConfig) -> dict[str, Any]:
    parameters = {name: str(spec["Default"]) for name, spec in template["Parameters"].items() if "Default" in spec}
    parameters.update(stack_parameters(pipeline_config))
    return translated_template(template, parameters, REGION)


def _artifact_objects_arn(template: dict[str, Any]) -> str:
    """The ARN text an object of the artifact bucket starts with, as the policies write it (Fn::Sub form)."""
    bucket_name = template["Resources"]["ArtifactBucket"]["Properties"]["BucketName"]["Fn::Sub"]
    return f"arn:${{AWS::Partition}}:s3:::{bucket_name}/"


def _resources(statement: dict[str, Any]) -> Iterator[str]:
    resources = statement["Resource"]
    for resource in resources if isinstance(resources, list) else [resources]:
        yield resource["Fn::Sub"] if isinstance(resource, dict) and "Fn::Sub" in resource else json.dumps(resource)


def _actions(statement: dict[str, Any]) -> set[str]:
    actions = statement.get("Action", [])
    return set(actions if isinstance(actions, list) else [actions])


def s3_access(translated: dict[str, Any], owner: str, objects_arn: str) -> Access:
    """The artifact-bucket prefixes `owner`'s role may read and write, from its policies' statements."""
    role = translated["Resources"][f"{owner}Role"]
    reads: set[str] = set()
    writes: set[str] = set()
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = _actions(statement)
            if statement.get("Effect") != "Allow" or not actions & (READ_ACTIONS | WRITE_ACTIONS | {"s3:*"}):
                continue
            assert "s3:*" not in actions, f"{owner}: s3:* is broader than the layout can check"
            for resource in _resources(statement):
                assert resource.startswith(objects_arn) and resource.endswith("*"), (
                    f"{owner} may {sorted(actions)} on {resource}, which is not a prefix of the artifact bucket")
                prefix = resource[len(objects_arn):-1]
                if actions & READ_ACTIONS:
                    reads.add(prefix)
                if actions & WRITE_ACTIONS:
                    writes.add(prefix)
    return Access(frozenset(reads), frozenset(writes))


def test_every_role_reads_and_writes_exactly_what_the_layout_says(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    # given every function and state machine of the template, and the role SAM made for each
    owners = sorted(k for k, r in template["Resources"].items() if r["Type"] in OWNER_TYPES)
    objects_arn = _artifact_objects_arn(template)

    # when their S3 object permissions are read from the translated policies
    granted = {owner: s3_access(translated, owner, objects_arn) for owner in owners}

    # then each is what the layout says that role may read and write, no more and no less
    assert sorted(ROLE_ACCESS) == owners, "a function or state machine was added or removed: say in " \
        "loopline_runtime/bucket_layout.py ROLE_ACCESS which prefixes its role may read and write"
    for owner in owners:
        assert granted[owner] == ROLE_ACCESS[owner], (
            f"{owner}: template.yaml grants reads {sorted(granted[owner].reads)}, writes "
            f"{sorted(granted[owner].writes)}; bucket_layout.ROLE_ACCESS says reads "
            f"{sorted(ROLE_ACCESS[owner].reads)}, writes {sorted(ROLE_ACCESS[owner].writes)}")


def test_the_layout_grants_only_its_own_prefixes() -> None:
    # given the layout's named prefixes
    prefixes = {value for name, value in vars(bucket_layout).items() if name.endswith("_PREFIX")}

    # then every role's access is in terms of them
    for owner, access in ROLE_ACCESS.items():
        assert access.reads | access.writes <= prefixes, owner


def _strings(node: Any, key: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for name, value in node.items():
            yield from _strings(value, name)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item, key)
    elif isinstance(node, str):
        yield key, node


def test_state_machines_take_their_keys_from_definition_substitutions(
    template: dict[str, Any], pipeline_config: PipelineConfig
) -> None:
    # given every state machine's ASL file and the layout's prefixes
    from tests.support.stack import REPO_ROOT

    prefixes = {value for name, value in vars(bucket_layout).items() if name.endswith("_PREFIX")}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::StateMachine":
            continue
        properties = resource["Properties"]
        definition = json.loads((REPO_ROOT / properties["DefinitionUri"]).read_text(encoding="utf-8"))

        # then no state's parameters spell a key of the bucket (comments may name them)
        literal = [(key, text) for key, text in _strings(definition) if key != "Comment"
                   and any(prefix in text for prefix in prefixes)]
        assert literal == [], (f"{logical_id}: bucket keys written in the ASL {literal}; name them in "
                               "bucket_layout and pass them in through the state machine's DefinitionSubstitutions")
        # and every substitution that names a key is the layout's own value
        for name, value in properties.get("DefinitionSubstitutions", {}).items():
            if isinstance(value, str) and any(value.startswith(prefix) for prefix in prefixes):
                names = {v for v in vars(bucket_layout).values() if isinstance(v, str)}  # (a module has unhashables)
                assert value in names, f"{logical_id}: {name}={value!r}"


def _write_denies(template: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Per prefix: the roles (logical ids of their owners) the bucket policy exempts from its Deny on writes."""
    document = template["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]
    objects = "arn:${AWS::Partition}:s3:::${ArtifactBucket}/"
    denies: dict[str, frozenset[str]] = {}
    for statement in document["Statement"]:
        resource = statement.get("Resource")
        if statement["Effect"] != "Deny" or not _actions(statement) >= WRITE_ACTIONS or not isinstance(resource, dict):
            continue
        text = resource["Fn::Sub"]
        if not text.startswith(objects) or not text.endswith("/*") or "*" in text[len(objects):-1]:
            continue  # narrower statements (a model's own files) add to these, they do not replace them
        exempt = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
        roles = [getatt["Fn::GetAtt"][0] for getatt in (exempt if isinstance(exempt, list) else [exempt])]
        assert all(role.endswith("Role") for role in roles), statement["Sid"]
        denies[text[len(objects):-1]] = frozenset(role.removesuffix("Role") for role in roles)
    return denies


def test_the_bucket_policy_lets_only_each_prefixs_writer_roles_write_under_it(template: dict[str, Any]) -> None:
    # given the bucket policy's Deny statements on writes, by prefix
    denies = _write_denies(template)

    # then every prefix a role writes is denied to every principal but exactly the roles that write it
    assert denies == bucket_layout.writers(), (
        "template.yaml ArtifactBucketPolicy must deny s3:PutObject/DeleteObject under each prefix of "
        "bucket_layout.writers() with ArnNotEquals aws:PrincipalArn = the GetAtt <Owner>Role.Arn of its writers")


def test_every_prefix_of_the_layout_is_guarded_or_an_upload_prefix() -> None:
    # given the layout's named prefixes, those a role writes and those people upload to
    prefixes = {value for name, value in vars(bucket_layout).items() if name.endswith("_PREFIX")}
    guarded = set(bucket_layout.writers()) | bucket_layout.UPLOAD_PREFIXES

    # then each is under one of them, or only a parent of some (batch/)
    for prefix in prefixes:
        assert any(prefix.startswith(g) for g in guarded) or any(g.startswith(prefix) for g in guarded), prefix
    assert not bucket_layout.UPLOAD_PREFIXES & set(bucket_layout.writers()), "an upload prefix no role writes"
