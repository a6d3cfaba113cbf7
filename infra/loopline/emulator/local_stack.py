"""Deploy template.yaml to moto: package, translate, fill moto's CloudFormation gaps, create, finish."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.emulator.api_gateway_resources import LocalApi, drop_api_gateway_resources
from loopline.emulator.api_server import ApiRoute, routes_from_sam_template
from loopline.emulator.bucket_notifications import apply_bucket_notifications, extract_bucket_notifications
from loopline.emulator.bucket_policies import apply_bucket_policies, extract_bucket_policies
from loopline.emulator.bucket_versioning import apply_bucket_versioning, extract_bucket_versioning
from loopline.emulator.capture_delivery_resources import create_capture_resources, extract_capture_resources
from loopline.emulator.cloudwatch_alarm_resources import create_alarms, extract_cloudwatch_alarms
from loopline.emulator.function_layers import function_layer_dirs
from loopline.emulator.lambda_aliases import replace_lambda_aliases
from loopline.emulator.lambda_invocation import LambdaRuntime
from loopline.emulator.on_failure_destinations import apply_event_invoke_configs, extract_event_invoke_configs
from loopline.emulator.packaging import package_template
from loopline.emulator.sam_translation import translate
from loopline.emulator.stack_completion import hold_completion, release_completion, resources_created
from loopline.emulator.state_machine_definition import inline_state_machine_definitions
from loopline.emulator.static_intrinsics import parameter_values, pseudo_parameters
from loopline.emulator.template_loading import load_template
from loopline.emulator.topic_policies import apply_topic_policies, extract_topic_policies
from loopline.params import stack_parameters
from loopline_runtime.config import load_config

Progress = Callable[[str], None]


class StackCreationFailed(RuntimeError):
    """CloudFormation (moto) could not create the stack; the message lists the failed resources."""


@dataclass(frozen=True)
class StackSettings:
    """Where the stack comes from and where it is served."""

    stack_name: str
    template_path: Path
    config_path: Path
    region: str
    aws_endpoint_url: str
    api_base_url: str  # the local API server, e.g. http://127.0.0.1:3000/
    workdir: Path


@dataclass
class DeployedStack:
    """The created stack as the emulator serves it."""

    outputs: dict[str, str]
    physical_ids: dict[str, str]
    routes: list[ApiRoute] = field(default_factory=list)
    rest_api_id: str = ""
    api_key_id: str | None = None


def deploy_stack(settings: StackSettings, session: Any, runtime: LambdaRuntime, progress: Progress) -> DeployedStack:
    """Create the stack on the running moto server and return its outputs and API routes.

    Raises:
        InvalidConfig: the pipeline config is invalid (nothing is created).
        StackCreationFailed: moto's CloudFormation failed; the message names the resources and reasons.
    """
    config = load_config(settings.config_path)
    clients = _Clients(session, settings.aws_endpoint_url)
    sam_template = load_template(settings.template_path)
    staging_bucket = f"{settings.stack_name}-local-packages"
    progress(f"packaging {settings.template_path.parent} to s3://{staging_bucket}")
    packaged = package_template(
        sam_template, settings.template_path.parent, settings.workdir / "staging", clients.s3, staging_bucket, config,
        settings.config_path.parent,
    )
    overrides = {k: v for k, v in stack_parameters(config).items() if k in sam_template.get("Parameters", {})}
    progress("translating SAM to CloudFormation (" + ", ".join(f"{k}={v}" for k, v in overrides.items()) + ")")
    template = translate(packaged.template, overrides, settings.region)
    replace_lambda_aliases(template)

    account_id = clients.sts.get_caller_identity()["Account"]
    values = {
        **parameter_values(template, overrides),
        **pseudo_parameters(settings.stack_name, settings.region, account_id),
    }
    inline_state_machine_definitions(template, lambda b, k: clients.s3.get_object(Bucket=b, Key=k)["Body"].read())
    local_api = _create_local_api(template, settings.stack_name, settings.api_base_url, clients.apigateway)
    drop_api_gateway_resources(template, local_api)
    alarms = extract_cloudwatch_alarms(template, values, settings.region, account_id)
    capture = extract_capture_resources(template, values, settings.region, account_id)
    notifications = extract_bucket_notifications(template)
    invoke_configs = extract_event_invoke_configs(template)
    versioning = extract_bucket_versioning(template)
    bucket_policies = extract_bucket_policies(template)
    topic_policies = extract_topic_policies(template)
    layers = function_layer_dirs(template, packaged.layer_dirs_by_key, values)

    progress(f"creating stack {settings.stack_name} ({len(template['Resources'])} resources)")
    # the stack reports CREATE_COMPLETE only once everything below is applied (stack_completion)
    hold_completion(settings.stack_name)
    _create_and_wait(clients.cloudformation, settings.stack_name, template, values, account_id, settings.region)
    # moto reports no physical id for some resources (Lambda permissions, layer versions)
    physical_ids = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in clients.cloudformation.describe_stack_resources(StackName=settings.stack_name)["StackResources"]
        if r.get("PhysicalResourceId")
    }
    for logical_id, dirs in layers.items():
        runtime.set_layers(physical_ids[logical_id], dirs)
    create_alarms(clients.cloudwatch, alarms)
    apply_bucket_versioning(clients.s3, versioning, physical_ids)
    apply_bucket_notifications(clients.s3, notifications, physical_ids, _resolver(physical_ids, clients))
    apply_event_invoke_configs(clients.lambda_, invoke_configs, _resolver(physical_ids, clients))
    resolve = _resolver(physical_ids, clients, {k: r["Type"] for k, r in template["Resources"].items()})
    create_capture_resources(clients, capture, resolve)
    def literal_of(logical_id: str, attribute: str | None) -> str:
        return resolve({"Fn::GetAtt": [logical_id, attribute]} if attribute else {"Ref": logical_id})

    apply_bucket_policies(clients.s3, bucket_policies, literal_of, values)
    apply_topic_policies(clients.sns, topic_policies, literal_of, values)
    release_completion(account_id, settings.region, settings.stack_name)
    stack = clients.cloudformation.describe_stacks(StackName=settings.stack_name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    function_names = {
        k: v for k, v in physical_ids.items() if template["Resources"][k]["Type"] == "AWS::Lambda::Function"
    }
    return DeployedStack(
        outputs=outputs,
        physical_ids=physical_ids,
        routes=routes_from_sam_template(sam_template, function_names),
        rest_api_id=local_api.rest_api_id,
        api_key_id=local_api.api_key_id or None,
    )


class _Clients:
    def __init__(self, session: Any, endpoint_url: str) -> None:
        for service in ("s3", "sts", "cloudformation", "cloudwatch", "apigateway", "lambda", "sqs", "iam",
                        "firehose", "logs", "glue", "sns"):
            setattr(self, service.replace("lambda", "lambda_"), session.client(service, endpoint_url=endpoint_url))

    s3: Any
    sts: Any
    cloudformation: Any
    cloudwatch: Any
    apigateway: Any
    lambda_: Any
    sqs: Any
    iam: Any
    firehose: Any
    logs: Any
    glue: Any
    sns: Any


def _create_local_api(template: dict[str, Any], stack_name: str, base_url: str, apigateway: Any) -> LocalApi:
    """Create, in moto's API Gateway, the RestApi id and API key that stand in for the dropped resources."""
    kinds = {r.get("Type") for r in template["Resources"].values()}
    if "AWS::ApiGateway::RestApi" not in kinds:
        return LocalApi(rest_api_id="", api_key_id="", base_url=base_url)
    rest_api_id = apigateway.create_rest_api(name=stack_name, description="served by loopline local")["id"]
    api_key_id = ""
    if "AWS::ApiGateway::ApiKey" in kinds:
        # a generated value, as API Gateway does: clients read it with get_api_key(includeValue=True)
        key = apigateway.create_api_key(name=f"{stack_name}-api-key", enabled=True, value=secrets.token_urlsafe(30))
        api_key_id = key["id"]
    return LocalApi(rest_api_id=rest_api_id, api_key_id=api_key_id, base_url=base_url)


def _create_and_wait(cloudformation: Any, stack_name: str, template: dict[str, Any], values: dict[str, str],
                     account_id: str, region: str) -> None:
    parameters = [
        {"ParameterKey": name, "ParameterValue": values[name]}
        for name in template.get("Parameters", {})
        if name in values
    ]
    cloudformation.create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(template),
        Parameters=parameters,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    while True:
        if resources_created(account_id, region, stack_name):
            return
        status = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        if not status.endswith("IN_PROGRESS"):
            break
        time.sleep(0.2)
    if status != "CREATE_COMPLETE":
        events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
        failures = [
            f"  - {e['LogicalResourceId']} ({e.get('ResourceType')}): {e.get('ResourceStatusReason', 'no reason')}"
            for e in events
            if e.get("ResourceStatus", "").endswith("FAILED")
        ]
        raise StackCreationFailed(
            f"stack {stack_name} is {status}:\n" + "\n".join(failures or ["  (no failed events)"])
        )


def _resolver(physical_ids: dict[str, str], clients: _Clients, template_types: dict[str, str] | None = None
              ) -> Callable[[Any], str]:
    template_types = template_types or {}

    def resolve(value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "Ref" in value:
            return physical_ids[value["Ref"]]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            logical_id, attribute = value["Fn::GetAtt"]
            physical_id = physical_ids[logical_id]
            if attribute == "Arn" and physical_id.startswith("http"):  # an SQS queue's physical id is its URL
                attributes = clients.sqs.get_queue_attributes(QueueUrl=physical_id, AttributeNames=["QueueArn"])
                return str(attributes["Attributes"]["QueueArn"])
            kind = template_types.get(logical_id, "")
            if attribute == "Arn" and kind == "AWS::IAM::Role":
                role_arn: str = clients.iam.get_role(RoleName=physical_id)["Role"]["Arn"]
                return role_arn
            if attribute == "Arn":
                arn: str = clients.lambda_.get_function(FunctionName=physical_id)["Configuration"]["FunctionArn"]
                return arn
        raise ValueError(f"cannot resolve {value!r} after creating the stack")

    return resolve
