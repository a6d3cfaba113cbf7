"""Handlers tested in this process run as their function's role, as in their Lambda environment: the role is
made from template.yaml's translated policies, and boto3 clients created while a handler runs (at import, or
lazily in a call) carry its temporary credentials. With the emulator's IAM enforcement installed on moto, a call
the role is not granted is AccessDenied, as on AWS."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3

from loopline.emulator.role_sessions import RoleCredentials
from loopline.emulator.template_references import replace_references
from tests.support.stack import Stack

LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}

_running_as = threading.local()  # the role credentials of the handler this thread is running
_session_client = boto3.session.Session.client


def client_as_running_role(self: boto3.session.Session, *args: Any, **kwargs: Any) -> Any:
    """`boto3.session.Session.client`, with the running handler's role credentials when none are given."""
    credentials = getattr(_running_as, "credentials", None)
    if credentials is not None and "aws_access_key_id" not in kwargs:
        kwargs.update(aws_access_key_id=credentials.access_key_id,
                      aws_secret_access_key=credentials.secret_access_key,
                      aws_session_token=credentials.session_token)
    return _session_client(self, *args, **kwargs)


@contextlib.contextmanager
def running_as(credentials: RoleCredentials | None) -> Iterator[None]:
    """Clients created in this thread within the block carry `credentials` (patch Session.client first)."""
    previous = getattr(_running_as, "credentials", None)
    _running_as.credentials = credentials
    try:
        yield
    finally:
        _running_as.credentials = previous


def as_role(module: ModuleType, credentials: RoleCredentials) -> ModuleType:
    """The handler module with its `lambda_handler` running as the role."""
    handler = module.lambda_handler

    @functools.wraps(handler)
    def lambda_handler(event: Any, context: Any) -> Any:
        with running_as(credentials):
            return handler(event, context)

    module.lambda_handler = lambda_handler
    return module


def create_function_roles(stack: Stack, translated: dict[str, Any], iam: Any, sts: Any) -> dict[str, RoleCredentials]:
    """Each function's role with its template policies (references resolved for `stack`), assumed: logical id of
    the function -> its credentials. Role names carry `-<Function>Role-` as CloudFormation's do."""
    credentials = {}
    for logical_id in stack.resources_of_type("AWS::Serverless::Function"):
        role = translated["Resources"].get(f"{logical_id}Role")
        if role is None:
            continue
        name = f"{stack.name}-{logical_id}Role-local"[:64]
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"]["Arn"]
        for policy in role["Properties"].get("Policies", []):
            document = _plain(replace_references(policy["PolicyDocument"], _literal_for(stack, translated)), stack)
            document.setdefault("Version", "2012-10-17")  # IAM accepts none; moto's PutRolePolicy insists
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
        assumed = sts.assume_role(RoleArn=arn, RoleSessionName=logical_id)["Credentials"]
        credentials[logical_id] = RoleCredentials(assumed["AccessKeyId"], assumed["SecretAccessKey"],
                                                  assumed["SessionToken"])
    return credentials


def _literal_for(stack: Stack, translated: dict[str, Any]) -> Callable[[str, str | None], str | None]:
    def literal_for(logical_id: str, attribute: str | None) -> str | None:
        resource = translated["Resources"].get(logical_id)
        if resource is None:
            return None  # a parameter or pseudo parameter: _plain resolves it
        kind, properties = resource["Type"], resource.get("Properties", {})
        if kind == "AWS::SQS::Queue":
            queue = _plain(properties["QueueName"], stack)
            return f"arn:aws:sqs:{stack.region}:{stack.account}:{queue}" if attribute == "Arn" else queue
        if kind == "AWS::SNS::Topic" and attribute == "TopicName":
            return str(_plain(properties["TopicName"], stack))
        if kind == "AWS::StepFunctions::StateMachine":
            name = str(_plain(properties["StateMachineName"], stack))
            arn = f"arn:aws:states:{stack.region}:{stack.account}:stateMachine:{name}"
            return name if attribute == "Name" else arn
        if kind == "AWS::Lambda::Function":
            name = stack.physical_ids.get(logical_id, f"{stack.name}-{logical_id}")
            arn = f"arn:aws:lambda:{stack.region}:{stack.account}:function:{name}"
            return arn if attribute == "Arn" else name
        if kind == "AWS::CloudWatch::Alarm":
            name = str(_plain(properties["AlarmName"], stack))
            return f"arn:aws:cloudwatch:{stack.region}:{stack.account}:alarm:{name}" if attribute == "Arn" else name
        try:
            return str(stack.resolve({"Fn::GetAtt": [logical_id, attribute]} if attribute else {"Ref": logical_id}))
        except (KeyError, NotImplementedError):
            return None

    return literal_for


def _plain(node: Any, stack: Stack) -> Any:
    """Fn::Sub / Fn::Join / Ref of parameters and pseudo parameters, as CloudFormation resolves them."""
    if isinstance(node, list):
        return [_plain(item, stack) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::Sub"}:
        text, mapping = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
        values = {k: str(_plain(v, stack)) for k, v in mapping.items()}
        return re.sub(r"\$\{([^}!]+)\}", lambda m: values.get(m.group(1)) or stack._ref(m.group(1)), text)
    if set(node) == {"Fn::Join"}:
        separator, parts = node["Fn::Join"]
        return separator.join(str(_plain(p, stack)) for p in parts)
    if set(node) == {"Ref"}:
        return stack._ref(node["Ref"])
    return {k: _plain(v, stack) for k, v in node.items()}


def person_credentials(iam: Any, sts: Any, name: str, statements: list[dict[str, Any]]) -> Any:
    """A person's temporary credentials (botocore Credentials): a role the account may assume, allowed
    `statements` (none: allowed nothing), assumed with session name `name`."""
    from botocore.credentials import Credentials

    account = sts.get_caller_identity()["Account"]
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    if statements:
        iam.put_role_policy(RoleName=name, PolicyName="grants",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    assumed = sts.assume_role(RoleArn=role["Arn"], RoleSessionName=name)["Credentials"]
    return Credentials(assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"])
