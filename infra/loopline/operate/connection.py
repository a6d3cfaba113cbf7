"""Connecting a command to its stack, with one-line answers for the expected failures: no such stack (naming the
stacks that exist), nothing answering at the endpoint, no credentials."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from loopline.client import StackClient
from loopline.invocation import command
from loopline.operate.stack_memory import STACK_VARIABLE, StackTarget, last_stopped_stack, running_stacks
from loopline_runtime.errors import LooplineError

UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError)


class UnknownStack(LooplineError):
    """The endpoint answers but holds no stack of that name."""


class StackUnreachable(LooplineError):
    """Nothing answers at the endpoint the command would use."""


class NoCredentials(LooplineError):
    """AWS needs credentials and none are configured."""


def connect(target: StackTarget) -> StackClient:
    """A client of the target stack, or a typed error whose message says what is wrong and the fix."""
    probe = StackClient.cloudformation_client(target.endpoint_url, target.region, attempts=1)
    try:
        probe.describe_stacks(StackName=target.stack_name)
        return StackClient(target.stack_name, endpoint_url=target.endpoint_url, region=target.region)
    except UNREACHABLE:
        raise StackUnreachable(unreachable_message(target)) from None
    except (NoCredentialsError, PartialCredentialsError, NoRegionError):
        raise NoCredentials(no_credentials_message(target)) from None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ValidationError":
            raise
        raise UnknownStack(unknown_stack_message(target, _stack_names(target))) from None


def no_credentials_message(target: StackTarget) -> str:
    """The stack is not a running local one, so the command would go to AWS, which has no credentials here."""
    local = [r.stack_name for r in running_stacks()]
    start = f"`{command('local', 'up', *_local_up_flags(target))}`"
    if local:
        return (f"no local stack {target.stack_name!r} is running (the local emulator runs {', '.join(local)}) and "
                f"there are no AWS credentials to reach it on AWS ({target.region}). Fix: add --stack-name "
                f"{local[0]} to the command, or start it with {start}, or `aws configure` for AWS")
    last = last_stopped_stack()
    if last is not None and target.name_from == "default":
        start = f"`{command('local', 'up', '--stack-name', last.stack_name)}`"
        return (f"no local stack is running (the last one, {last.stack_name!r}, has stopped) and there are no AWS "
                f"credentials to reach stack {target.stack_name!r} on AWS ({target.region}). Fix: start it again "
                f"with {start} (commands then find it), or `aws configure` for AWS")
    return (f"no local stack is running and there are no AWS credentials to reach stack {target.stack_name!r} on "
            f"AWS ({target.region}). Fix: start the local emulator with {start} (commands then find it), or "
            "`aws configure` for AWS")


def unreachable_message(target: StackTarget) -> str:
    endpoint = target.endpoint_url
    if endpoint is None:
        return (f"cannot reach AWS in {target.region} for stack {target.stack_name!r} (offline?). "
                f"Fix: check the network, or for the local emulator run `{command('local', 'up')}`")
    origin = {"flag": "--endpoint-url", "env": "$AWS_ENDPOINT_URL", "local up": "the running `loopline local up`"}
    fix = f"start the emulator with `{command('local', 'up', *_local_up_flags(target))}`"
    if target.endpoint_from == "env":
        fix += " or `unset AWS_ENDPOINT_URL` to use AWS"
    elif target.endpoint_from == "flag":
        fix += " or pass the --endpoint-url it prints"
    return (f"nothing answers at {endpoint} ({origin.get(target.endpoint_from, 'endpoint')}) for stack "
            f"{target.stack_name!r}. Fix: {fix}")


def _local_up_flags(target: StackTarget) -> list[str]:
    """`local up` flags that serve the target where the command looks for it."""
    flags = ["--stack-name", target.stack_name]
    url = urlsplit(target.endpoint_url or "")
    if url.hostname in ("127.0.0.1", "localhost") and url.port:
        flags += ["--aws-port", str(url.port)]
    return flags


def unknown_stack_message(target: StackTarget, existing: list[str]) -> str:
    where = target.where()
    if existing:
        other = existing[0]
        return (f"no stack {target.stack_name!r} at {where}; stacks there: {', '.join(existing)}. "
                f"Fix: add --stack-name {other} to the command, or `export {STACK_VARIABLE}={other}`")
    local = [r.stack_name for r in running_stacks()]
    fix = (f"the local emulator runs {', '.join(local)}: add --stack-name {local[0]}" if local
           else f"start it with `{command('local', 'up', *_local_up_flags(target))}`"
           if target.endpoint_url else "deploy it with `make deploy`")
    return f"no stack {target.stack_name!r} at {where} (no stacks there). Fix: {fix}"


def _stack_names(target: StackTarget) -> list[str]:
    """The stacks that exist at the target's endpoint (deleted ones left out)."""
    client: Any = StackClient.cloudformation_client(target.endpoint_url, target.region, attempts=1)
    try:
        pages = client.get_paginator("list_stacks").paginate()
        return sorted({s["StackName"] for page in pages for s in page["StackSummaries"]
                       if s["StackStatus"] != "DELETE_COMPLETE"})
    except (ClientError, *UNREACHABLE):  # the list only helps the message; its absence must not hide the error
        return []
