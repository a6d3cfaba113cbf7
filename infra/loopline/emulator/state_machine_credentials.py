"""Gap: moto's ASL interpreter calls AWS for its tasks (Lambda invoke, aws-sdk integrations, SNS, the Distributed
Map's S3 reader) through `boto_client_for`, always with the key "ak": with IAM enforced, no task would be allowed,
and without it every task would run as anybody.

Give each such client the temporary credentials of the role the task runs under (`StateCredentials.role_arn`:
the state machine's role, or the state's `Credentials` role), assumed as `states.amazonaws.com` would, so every
task is authorised as on AWS. `boto_client_for` is imported by name into each interpreter module that uses it;
each of those names is patched.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any
from unittest import mock

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from moto.settings import moto_server_port
from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.stepfunctions.parser.asl.utils import boto_client

from loopline.emulator.role_sessions import RoleSessions

_ORIGINAL = boto_client.boto_client_for
_INTERPRETER_PACKAGE = "moto.stepfunctions.parser"


def run_tasks_as_state_machine_role(roles: RoleSessions) -> AbstractContextManager[object]:
    """Patch every module-level `boto_client_for` of moto's ASL interpreter (see the module docstring)."""

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> BaseClient:
        role_arn = getattr(state_credentials, "role_arn", None)
        if not role_arn:
            return _ORIGINAL(region, service, state_credentials)
        credentials = roles.credentials(str(role_arn), "states.amazonaws.com", "StepFunctions")
        client: BaseClient = boto3.client(  # type: ignore[call-overload]  # any service the ASL names
            service_name=service,
            region_name=region,
            endpoint_url=f"http://localhost:{moto_server_port()}",
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
        )
        return client

    return _patch_every_import(boto_client_for)


def importers_of_boto_client_for() -> list[Any]:
    """The interpreter modules holding moto's `boto_client_for` under that name (the canary test lists them)."""
    return [
        module for name, module in sorted(sys.modules.items())
        if name.startswith(_INTERPRETER_PACKAGE) and getattr(module, "boto_client_for", None) is _ORIGINAL
    ]


@contextmanager
def _patch_every_import(replacement: Any) -> Iterator[None]:
    _import_interpreter()
    with ExitStack() as stack:
        for module in importers_of_boto_client_for():
            stack.enter_context(mock.patch.object(module, "boto_client_for", replacement))
        yield


def _import_interpreter() -> None:
    # the task modules are imported when moto's ASL parser loads; make sure they are before patching
    import importlib
    import pkgutil

    import moto.stepfunctions.parser.asl.component.state.exec as tasks

    for info in pkgutil.walk_packages(tasks.__path__, tasks.__name__ + "."):
        importlib.import_module(info.name)
