"""Gap: moto's CloudFormation does not support `AWS::SNS::TopicPolicy` (it warns at every start-up and skips the
resource, so each topic keeps moto's default policy).

The policies are taken out of the template and set as each topic's `Policy` attribute once the stack exists (their
references resolved against the created stack), as CloudFormation does. moto stores a topic policy but never reads
it; iam_enforcement evaluates it with the caller's identity policies on every SNS request, and alarm_actions asks it
whether CloudWatch may publish an alarm's state change (on AWS an alarm whose topic policy does not allow
`cloudwatch.amazonaws.com` fails its action and nobody is told).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from moto.sns.models import sns_backends
from moto.utilities.arns import parse_arn

from loopline.emulator.bucket_policies import plain_text
from loopline.emulator.iam_policy import Decision, Request, evaluate
from loopline.emulator.template_references import remove_resources, replace_references

TOPIC_POLICY = "AWS::SNS::TopicPolicy"
CLOUDWATCH = "cloudwatch.amazonaws.com"

# (logical id, attribute or None for Ref) -> the literal of a created resource
LiteralOf = Callable[[str, str | None], str]


def extract_topic_policies(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Remove every AWS::SNS::TopicPolicy (in place) and return their properties (Topics, PolicyDocument)."""
    found = {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource.get("Type") == TOPIC_POLICY
    }
    remove_resources(template, set(found))
    return list(found.values())


def apply_topic_policies(sns_client: Any, policies: list[dict[str, Any]], literal_of: LiteralOf,
                         static_values: dict[str, str]) -> None:
    """SetTopicAttributes(Policy) on each topic a policy names, every reference resolved."""
    for properties in policies:

        def literal_for(logical_id: str, attribute: str | None) -> str | None:
            if attribute is None and logical_id in static_values:
                return static_values[logical_id]
            return literal_of(logical_id, attribute)

        resolved = plain_text(replace_references(properties, literal_for))
        document = json.dumps(resolved["PolicyDocument"])
        for topic_arn in resolved["Topics"]:
            sns_client.set_topic_attributes(TopicArn=topic_arn, AttributeName="Policy", AttributeValue=document)


def topic_policy(topic_arn: str) -> list[dict[str, Any]]:
    """The topic's policy as a resource policy to evaluate (none for a topic that does not exist)."""
    arn = parse_arn(topic_arn)
    topic = sns_backends[arn.account][arn.region].topics.get(topic_arn)
    return [json.loads(topic.policy)] if topic is not None else []


def cloudwatch_may_publish(topic_arn: str, alarm_arn: str, account_id: str) -> bool:
    """Whether the topic's policy lets CloudWatch publish this alarm's state changes (service principals have no
    identity policy: the topic policy alone decides)."""
    request = Request("sns:Publish", topic_arn, CLOUDWATCH, {
        "aws:sourcearn": alarm_arn,
        "aws:sourceaccount": account_id,
        "aws:sourceowner": account_id,
    })
    return evaluate(request, [], topic_policy(topic_arn)) is Decision.ALLOW
