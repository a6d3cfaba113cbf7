"""Temporary credentials of a role, as the Lambda and Step Functions services get them: STS AssumeRole, allowed
only when the role's trust policy names the service (`lambda.amazonaws.com`, `states.amazonaws.com`).

The emulator's Lambda workers run with their function role's credentials and state machine tasks call AWS with
their state machine role's, so iam_enforcement authorises every call they make as the role.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from moto.iam.models import iam_backends
from moto.sts.models import sts_backends

from loopline.emulator.iam_policy import Decision, Request, evaluate

PARTITION = "aws"


class RoleCannotBeAssumed(RuntimeError):
    """The role does not exist or its trust policy does not let the service assume it."""


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str

    def as_environment(self) -> dict[str, str]:
        """The variables the Lambda service sets in a function's environment."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


class RoleSessions:
    """One session per (role, service), made on first use and reused (AWS refreshes them; moto's do not expire)."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], RoleCredentials] = {}
        self._lock = threading.Lock()

    def credentials(self, role_arn: str, service: str, session_name: str) -> RoleCredentials:
        """Credentials of `role_arn` as assumed by `service` (e.g. "lambda.amazonaws.com").

        Raises:
            RoleCannotBeAssumed: no such role, or its trust policy does not allow `service`.
        """
        with self._lock:
            cached = self._sessions.get((role_arn, service))
            if cached is not None:
                return cached
            account_id = role_arn.split(":")[4]
            try:
                role = iam_backends[account_id][PARTITION].get_role_by_arn(role_arn)
            except Exception as exc:
                raise RoleCannotBeAssumed(f"role {role_arn} does not exist") from exc
            trust = json.loads(role.assume_role_policy_document)
            if evaluate(Request("sts:AssumeRole", "*", service), [], [trust]) is not Decision.ALLOW:
                raise RoleCannotBeAssumed(f"the trust policy of {role_arn} does not allow {service} to assume it")
            assumed = sts_backends[account_id][PARTITION].assume_role(
                region_name="us-east-1", role_session_name=session_name[:64], role_arn=role_arn,
                policy="", duration=43200, external_id="",
            )
            credentials = RoleCredentials(assumed.access_key_id, assumed.secret_access_key, assumed.session_token)
            self._sessions[(role_arn, service)] = credentials
            return credentials
