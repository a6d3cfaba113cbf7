"""A rollback as a person asks for it through the rollback API (`POST /rollback`, `Authorizer: AWS_IAM`).

What is asked (the target version, a note) comes from the body; who asks comes only from API Gateway's
request context (`requestContext.identity.userArn`, the ARN of the SigV4-signed caller API Gateway verified).
A body that names an identity, or any other field, is refused: a self-declared name is never recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from loopline_runtime.errors import InvalidRequest, UnauthenticatedCaller
from loopline_runtime.orchestration import execution_name

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

REQUEST_FIELDS = ("to_version", "note")
MAX_NOTE_CHARS = 1000
MAX_VERSION_CHARS = 200


@dataclass(frozen=True)
class RollbackRequest:
    """A verified request: `requested_by` is the caller API Gateway authenticated."""

    to_version: str | None
    note: str
    requested_by: str

    @classmethod
    def from_api(cls, body: Any, caller_arn: str | None) -> RollbackRequest:
        """The request of an API call: `body` as decoded JSON (None: empty), `caller_arn` from the request context.

        Raises:
            UnauthenticatedCaller: no IAM-authenticated caller in the request context.
            InvalidRequest: the body is not an object of `to_version` and `note` strings.
        """
        if not caller_arn:
            raise UnauthenticatedCaller("the rollback API records who asks from the request's IAM signature, and "
                                        "this request has no authenticated caller; the route needs "
                                        "`Authorizer: AWS_IAM` and the request a SigV4 signature")
        body = {} if body is None else body
        if not isinstance(body, dict):
            raise InvalidRequest('the rollback request must be a JSON object like {"to_version": "m-...", '
                                 '"note": "why"}')
        if unknown := sorted(set(body) - set(REQUEST_FIELDS)):
            raise InvalidRequest(
                f"the rollback request has unknown field(s) {', '.join(map(repr, unknown[:5]))}: send only "
                "to_version and note; who asks is taken from the request's SigV4 signature, never from the body")
        to_version, note = body.get("to_version"), body.get("note") or ""
        if to_version is not None and not (isinstance(to_version, str) and 0 < len(to_version) <= MAX_VERSION_CHARS):
            raise InvalidRequest("to_version must be a model version (`loopline models` lists them) or null for the "
                                 "champion's previous version")
        if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
            raise InvalidRequest(f"note must be text of at most {MAX_NOTE_CHARS} characters")
        return cls(to_version, note, caller_arn)

    def start(self, sfn: SFNClient, state_machine_arn: str) -> str:
        """Start the rollback state machine for this request; its execution ARN."""
        requested = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        # each request is its own execution (a second rollback to the same version is a new request)
        name = execution_name("rollback", f"{self.to_version or 'previous'}-{requested}")
        started = sfn.start_execution(stateMachineArn=state_machine_arn, name=name, input=self.to_json())
        return started["executionArn"]

    def to_json(self) -> str:
        return json.dumps({"to_version": self.to_version, "note": self.note, "requested_by": self.requested_by})
