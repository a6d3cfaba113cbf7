"""The rollback API's request: what to roll back to from the body, who asks only from API Gateway's
IAM-authenticated request context."""

from __future__ import annotations

import json

import pytest

from loopline_runtime.errors import InvalidRequest, UnauthenticatedCaller
from loopline_runtime.rollback_request import RollbackRequest

CALLER = "arn:aws:sts::123456789012:assumed-role/operator/jo"


def test_who_asks_is_the_authenticated_caller() -> None:
    # when
    request = RollbackRequest.from_api({"to_version": "m-1", "note": "complaints"}, CALLER)

    # then
    assert request == RollbackRequest("m-1", "complaints", CALLER)
    assert json.loads(request.to_json()) == {"to_version": "m-1", "note": "complaints", "requested_by": CALLER}


@pytest.mark.parametrize("claim", ["requested_by", "approved_by", "user", "caller"])
def test_a_body_claiming_an_identity_is_refused_and_names_the_field(claim: str) -> None:
    # when / then
    with pytest.raises(InvalidRequest, match=f"'{claim}'.*SigV4 signature, never from the body"):
        RollbackRequest.from_api({"to_version": "m-1", claim: "alice"}, CALLER)


@pytest.mark.parametrize("caller", [None, ""])
def test_a_request_without_an_authenticated_caller_is_refused(caller: str | None) -> None:
    # when / then
    with pytest.raises(UnauthenticatedCaller, match="AWS_IAM"):
        RollbackRequest.from_api({"to_version": "m-1"}, caller)


@pytest.mark.parametrize("body", [["m-1"], {"to_version": 7}, {"to_version": ""}, {"note": "x" * 1001}])
def test_a_malformed_body_is_refused(body: object) -> None:
    # when / then
    with pytest.raises(InvalidRequest):
        RollbackRequest.from_api(body, CALLER)


def test_an_empty_body_asks_for_the_previous_champion() -> None:
    # when
    request = RollbackRequest.from_api(None, CALLER)

    # then
    assert (request.to_version, request.note) == (None, "")
