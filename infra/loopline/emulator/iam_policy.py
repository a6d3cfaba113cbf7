"""IAM policy evaluation as AWS documents it for requests within one account (the pure rule, no moto).

A request is allowed when some statement of an identity policy or of the resource's policy allows it and no
statement of either denies it; everything else is an implicit deny. Statements match on Action/NotAction,
Resource/NotResource, Principal/NotPrincipal (resource policies) and Condition, with the condition operators
template.yaml and Lambda permissions use (String*, Arn*, Bool, Null, Numeric*, each with `IfExists` and the
`ForAnyValue:`/`ForAllValues:` set prefixes). A condition key the request does not carry is absent, as on AWS.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Policy = Mapping[str, Any]


class Decision(Enum):
    """The outcome of evaluating every applicable policy."""

    ALLOW = "allow"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Request:
    """One authorisation question: may `principal_arn` do `action` on `resource`, given `context`."""

    action: str  # "s3:GetObject"
    resource: str  # an ARN, or "*" for actions without a resource type
    principal_arn: str  # the role ARN (not the session ARN), or a service principal such as "s3.amazonaws.com"
    context: Mapping[str, str | list[str]] = field(default_factory=dict)  # condition keys, lower-cased


def evaluate(
    request: Request, identity_policies: Iterable[Policy], resource_policies: Iterable[Policy] = ()
) -> Decision:
    """AWS's same-account evaluation: an explicit deny wins, then any allow, else an implicit deny."""
    allowed = False
    # a resource policy's statements name their principal; an identity policy's apply to its holder
    sources = [(p, False) for p in identity_policies] + [(p, True) for p in resource_policies]
    for policy, principal_required in sources:
        for statement in _statements(policy):
            if _applies(statement, request, principal_required):
                if statement["Effect"] == "Deny":
                    return Decision.EXPLICIT_DENY
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def _statements(policy: Policy) -> list[Mapping[str, Any]]:
    statements = policy.get("Statement", [])
    return [statements] if isinstance(statements, Mapping) else list(statements)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _applies(statement: Mapping[str, Any], request: Request, principal_required: bool) -> bool:
    if "Action" in statement:
        if not _any_match(statement["Action"], request.action, case_sensitive=False):
            return False
    elif _any_match(statement.get("NotAction", []), request.action, case_sensitive=False):
        return False
    if "Resource" in statement:
        if not _resource_matches(statement["Resource"], request.resource):
            return False
    elif "NotResource" in statement and _resource_matches(statement["NotResource"], request.resource):
        return False
    if principal_required:
        if "Principal" in statement:
            if not _principal_matches(statement["Principal"], request.principal_arn):
                return False
        elif "NotPrincipal" in statement:
            if _principal_matches(statement["NotPrincipal"], request.principal_arn):
                return False
        else:  # a resource policy statement without a principal is invalid; AWS would not store it
            return False
    return conditions_hold(statement.get("Condition", {}), request.context)


def _any_match(patterns: Any, value: str, case_sensitive: bool = True) -> bool:
    return any(wildcard_match(str(p), value, case_sensitive) for p in _as_list(patterns))


def _resource_matches(patterns: Any, resource: str) -> bool:
    # an action without a resource type is authorised against "*": only a "*" grant covers it
    if resource == "*":
        return any(str(p) == "*" for p in _as_list(patterns))
    return _any_match(patterns, resource)


def _principal_matches(principal: Any, principal_arn: str) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, Mapping):
        return False
    candidates = [str(v) for values in principal.values() for v in _as_list(values)]
    account = _account_of(principal_arn)
    for candidate in candidates:
        if candidate == "*" or candidate == principal_arn:
            return True
        # an account (id or root ARN) as principal delegates to that account's own identity policies
        if account and candidate in (account, f"arn:aws:iam::{account}:root"):
            return True
    return False


def _account_of(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else ""


def wildcard_match(pattern: str, value: str, case_sensitive: bool = True) -> bool:
    """IAM's `*` (any run, `/` included) and `?` (one character); nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case_sensitive else re.IGNORECASE) is not None


# ---- conditions

def conditions_hold(conditions: Mapping[str, Mapping[str, Any]], context: Mapping[str, str | list[str]]) -> bool:
    """Every operator block holds (AND), every key in a block holds (AND), any listed value matches (OR)."""
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, block in conditions.items():
        for key, expected in block.items():
            if not _condition_holds(operator, lowered.get(key.lower()), [str(v) for v in _as_list(expected)]):
                return False
    return True


def _condition_holds(operator: str, actual: str | list[str] | None, expected: list[str]) -> bool:
    set_prefix, _, name = operator.rpartition(":")
    if_exists = name.endswith("IfExists")
    name = name.removesuffix("IfExists")
    if name == "Null":  # "true": the key is absent; "false": present
        return (actual is None) == (expected[0].lower() == "true")
    if actual is None:
        # a missing key: IfExists and negated operators hold; ForAllValues over no values holds
        return if_exists or set_prefix == "ForAllValues" or name.startswith(("StringNot", "ArnNot", "NumericNot"))
    values = _as_list(actual)
    compare = _COMPARISONS.get(name)
    if compare is None:
        raise UnsupportedCondition(f"condition operator {operator!r} is not evaluated by the emulator")
    negated = name in _NEGATED

    def holds(value: str) -> bool:
        matched = any(compare(value, e) for e in expected)
        return not matched if negated else matched

    if set_prefix == "ForAllValues":
        return all(holds(v) for v in values)
    if set_prefix == "ForAnyValue":
        return any(holds(v) for v in values)
    matched = any(compare(v, e) for v in values for e in expected)
    return not matched if negated else matched


class UnsupportedCondition(ValueError):
    """A policy uses a condition operator the emulator does not evaluate (it refuses rather than guess)."""


def _numeric(op: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def compare(actual: str, expected: str) -> bool:
        try:
            return op(float(actual), float(expected))
        except ValueError:
            return False

    return compare


_COMPARISONS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda a, e: a == e,
    "StringNotEquals": lambda a, e: a == e,
    "StringEqualsIgnoreCase": lambda a, e: a.lower() == e.lower(),
    "StringNotEqualsIgnoreCase": lambda a, e: a.lower() == e.lower(),
    "StringLike": lambda a, e: wildcard_match(e, a),
    "StringNotLike": lambda a, e: wildcard_match(e, a),
    "ArnEquals": lambda a, e: wildcard_match(e, a),
    "ArnLike": lambda a, e: wildcard_match(e, a),
    "ArnNotEquals": lambda a, e: wildcard_match(e, a),
    "ArnNotLike": lambda a, e: wildcard_match(e, a),
    "Bool": lambda a, e: a.lower() == e.lower(),
    "NumericEquals": _numeric(lambda a, e: a == e),
    "NumericNotEquals": _numeric(lambda a, e: a == e),
    "NumericLessThan": _numeric(lambda a, e: a < e),
    "NumericLessThanEquals": _numeric(lambda a, e: a <= e),
    "NumericGreaterThan": _numeric(lambda a, e: a > e),
    "NumericGreaterThanEquals": _numeric(lambda a, e: a >= e),
}
# these hold when no listed value matches (the comparison above is the positive one)
_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike",
            "NumericNotEquals"}

