"""IAM's evaluation rules as the emulator applies them (iam_policy, the pure part of iam_enforcement)."""

from __future__ import annotations

import pytest

from loopline.emulator.iam_policy import Decision, Request, UnsupportedCondition, evaluate, wildcard_match

ROLE = "arn:aws:iam::123456789012:role/train"
OBJECT = "arn:aws:s3:::bucket/models/m-1/model.onnx"


def allow(action: str, resource: str, **extra: object) -> dict[str, object]:
    return {"Statement": [{"Effect": "Allow", "Action": action, "Resource": resource, **extra}]}


def test_an_allow_matching_action_and_resource_allows():
    assert evaluate(Request("s3:GetObject", OBJECT, ROLE), [allow("s3:GetObject", "arn:aws:s3:::bucket/models/*")]) \
        is Decision.ALLOW


def test_nothing_allowing_is_an_implicit_deny():
    assert evaluate(Request("s3:GetObject", OBJECT, ROLE), [allow("s3:GetObject", "arn:aws:s3:::bucket/data/*")]) \
        is Decision.IMPLICIT_DENY


def test_an_explicit_deny_in_a_resource_policy_beats_an_identity_allow():
    deny = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                           "Resource": "arn:aws:s3:::bucket/models/*",
                           "Condition": {"ArnNotEquals": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/x"}}}]}
    request = Request("s3:PutObject", OBJECT, ROLE, {"aws:principalarn": ROLE})
    assert evaluate(request, [allow("s3:*", "*")], [deny]) is Decision.EXPLICIT_DENY


def test_the_deny_does_not_bind_the_principal_its_condition_excepts():
    deny = {"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                           "Resource": "arn:aws:s3:::bucket/models/*",
                           "Condition": {"ArnNotEquals": {"aws:PrincipalArn": ROLE}}}]}
    request = Request("s3:PutObject", OBJECT, ROLE, {"aws:principalarn": ROLE})
    assert evaluate(request, [allow("s3:PutObject", "arn:aws:s3:::bucket/*")], [deny]) is Decision.ALLOW


def test_an_action_without_a_resource_type_needs_a_star_grant():
    request = Request("cloudwatch:PutMetricData", "*", ROLE, {"cloudwatch:namespace": "Loopline"})
    scoped = allow("cloudwatch:PutMetricData", "arn:aws:cloudwatch:*:*:alarm:x")
    star = allow("cloudwatch:PutMetricData", "*", Condition={"StringEquals": {"cloudwatch:namespace": "Loopline"}})
    assert evaluate(request, [scoped]) is Decision.IMPLICIT_DENY
    assert evaluate(request, [star]) is Decision.ALLOW


@pytest.mark.parametrize(("operator", "expected", "actual", "holds"), [
    ("StringEquals", "a", "a", True), ("StringEquals", "a", "b", False), ("StringEquals", "a", None, False),
    ("StringNotEquals", "a", None, True), ("StringEqualsIfExists", "a", None, True),
    ("StringLike", "models/*", "models/x", True), ("StringLike", "models/*", "data/x", False),
    ("Bool", "false", "true", False), ("Null", "true", None, True), ("Null", "false", None, False),
    ("NumericLessThan", "5", "3", True), ("ArnLike", "arn:aws:s3:::b", "arn:aws:s3:::b", True),
])
def test_condition_operators(operator, expected, actual, holds):
    context = {} if actual is None else {"k": actual}
    request = Request("s3:GetObject", OBJECT, ROLE, context)
    decision = evaluate(request, [allow("s3:GetObject", "*", Condition={operator: {"k": expected}})])
    assert (decision is Decision.ALLOW) is holds


def test_an_unknown_condition_operator_is_refused_not_guessed():
    with pytest.raises(UnsupportedCondition):
        evaluate(Request("s3:GetObject", OBJECT, ROLE, {"k": "v"}),
                 [allow("s3:GetObject", "*", Condition={"DateGreaterThan": {"k": "v"}})])


def test_not_action_allows_everything_else():
    policy = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    assert evaluate(Request("s3:GetObject", OBJECT, ROLE), [policy]) is Decision.ALLOW
    assert evaluate(Request("iam:CreateUser", "*", ROLE), [policy]) is Decision.IMPLICIT_DENY


def test_a_service_principal_matches_a_trust_policy():
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole"}]}
    assert evaluate(Request("sts:AssumeRole", "*", "lambda.amazonaws.com"), [], [trust]) is Decision.ALLOW
    assert evaluate(Request("sts:AssumeRole", "*", "states.amazonaws.com"), [], [trust]) is Decision.IMPLICIT_DENY


def test_wildcards_are_iams_not_globs():
    assert wildcard_match("arn:aws:s3:::b/models/*", "arn:aws:s3:::b/models/a/b.json")
    assert not wildcard_match("arn:aws:s3:::b/[a]*", "arn:aws:s3:::b/a")
    assert wildcard_match("s3:Get*", "S3:GETOBJECT", case_sensitive=False)
