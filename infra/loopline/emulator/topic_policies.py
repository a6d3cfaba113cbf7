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
from typing import Any

from moto.sns.models import sns_backends
from moto.utilities.arns import parse_arn

from loopline.emulator.bucket_policies import LiteralOf, extract_policies, resolved_properties
from loopline.emulator.iam_policy import Decision, Request, evaluate

TOPIC_POLICY = "AWS::SNS::TopicPolicy"
CLOUDWATCH = "cloudwatch.amazonaws.com"



def extract_topic_policies(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Remove every AWS::SNS::TopicPolicy (in place) and return their properties (Topics, PolicyDocument)."""
    return extract_policies(template, TOPIC_POLICY)


def apply_topic_policies(sns_client: Any, policies: list[dict[str, Any]], literal_of: LiteralOf,
                         static_values: dict[str, str]) -> None:
    """SetTopicAttributes(Policy) on each topic a policy names, every reference resolved."""
    for properties in policies:
        resolved = resolved_properties(properties, literal_of, static_values)
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
