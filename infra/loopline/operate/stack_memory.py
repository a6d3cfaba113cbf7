"""Which stack a command talks to: `--stack-name`, else `LOOPLINE_STACK`, else the stack `loopline local up` runs.

`loopline local up` records the stack it serves (name, region, endpoints, its process id) in
`<state dir>/stacks/<name>.json` and removes the record when it stops. The state dir is `$LOOPLINE_STATE_DIR`, else
`$XDG_STATE_HOME/loopline`, else `~/.local/state/loopline`: one place per user, so the commands work from any
directory. A record whose process is gone (the emulator was killed) is ignored.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

STATE_DIR_VARIABLE = "LOOPLINE_STATE_DIR"
STACK_VARIABLE = "LOOPLINE_STACK"
DEFAULT_STACK_NAME = "loopline"


@dataclass(frozen=True)
class StackRecord:
    """A stack served by `loopline local up` on this machine."""

    stack_name: str
    region: str
    aws_endpoint_url: str
    api_url: str
    pid: int
    started_at: str


def state_dir() -> Path:
    """Where the CLI keeps what it remembers between commands."""
    if os.environ.get(STATE_DIR_VARIABLE):
        return Path(os.environ[STATE_DIR_VARIABLE])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "loopline"


def _record_path(stack_name: str) -> Path:
    return state_dir() / "stacks" / f"{stack_name}.json"


def remember_stack(record: StackRecord) -> Path:
    """Record a running local stack (atomically: a command reading it never sees half a file)."""
    path = _record_path(record.stack_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
    temporary.replace(path)
    return path


def forget_stack(stack_name: str, pid: int) -> None:
    """Remove the record of a stack this process served (not one a later `local up` of the same name wrote), and
    remember it as the last stopped one, so a command run after it can say how to start it again."""
    path = _record_path(stack_name)
    record = _read(path)
    if record is not None and record.pid == pid:
        _last_stopped_path().write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
        path.unlink(missing_ok=True)


def last_stopped_stack() -> StackRecord | None:
    """The stack the last `loopline local up` that stopped cleanly served (None if there was none)."""
    return _read(_last_stopped_path())


def _last_stopped_path() -> Path:
    return state_dir() / "last-stopped.json"


def running_stacks() -> list[StackRecord]:
    """The recorded stacks whose `loopline local up` still runs, most recently started first."""
    folder = state_dir() / "stacks"
    records = [r for r in (_read(p) for p in sorted(folder.glob("*.json"))) if r and _alive(r.pid)]
    return sorted(records, key=lambda r: r.started_at, reverse=True)


def new_record(stack_name: str, region: str, aws_endpoint_url: str, api_url: str) -> StackRecord:
    return StackRecord(stack_name, region, aws_endpoint_url, api_url, os.getpid(),
                       datetime.now(UTC).isoformat(timespec="seconds"))


def _read(path: Path) -> StackRecord | None:
    try:
        return StackRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):  # gone, half-written by another tool or an older layout: not a stack
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


@dataclass(frozen=True)
class StackTarget:
    """The stack a command talks to and where each part of that choice came from (flag, env, local up, default)."""

    stack_name: str
    endpoint_url: str | None
    region: str
    name_from: str
    endpoint_from: str
    region_from: str = "default"

    def flags(self) -> list[str]:
        """The flags a printed follow-up command needs to reach this stack from the same shell."""
        flags = []
        if self.name_from == "flag":
            flags += ["--stack-name", self.stack_name]
        if self.endpoint_from == "flag" and self.endpoint_url:
            flags += ["--endpoint-url", self.endpoint_url]
        if self.region_from == "flag":
            flags += ["--region", self.region]
        return flags

    def where(self) -> str:
        return self.endpoint_url or f"AWS ({self.region})"


def resolve_target(stack_name: str | None, endpoint_url: str | None, region: str | None) -> StackTarget:
    """The stack for a command's `--stack-name/--endpoint-url/--region` (None: not given).

    Name: the flag, else $LOOPLINE_STACK, else the most recently started running local stack, else `loopline`.
    Endpoint: the flag, else $AWS_ENDPOINT_URL, else the running local stack of that name, else AWS.
    """
    running = running_stacks()
    if stack_name:
        name, name_from = stack_name, "flag"
    elif os.environ.get(STACK_VARIABLE):
        name, name_from = os.environ[STACK_VARIABLE], "env"
    elif running:
        name, name_from = running[0].stack_name, "local up"
    else:
        name, name_from = DEFAULT_STACK_NAME, "default"
    local = next((r for r in running if r.stack_name == name), None)
    if endpoint_url:
        endpoint, endpoint_from = endpoint_url, "flag"
    elif os.environ.get("AWS_ENDPOINT_URL"):
        endpoint, endpoint_from = os.environ["AWS_ENDPOINT_URL"], "env"
    elif local:
        endpoint, endpoint_from = local.aws_endpoint_url, "local up"
    else:
        endpoint, endpoint_from = None, "default"
    if region:
        chosen_region, region_from = region, "flag"
    elif local and endpoint == local.aws_endpoint_url:
        chosen_region, region_from = local.region, "local up"
    else:
        chosen_region, region_from = os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), "env"
    return StackTarget(name, endpoint, chosen_region, name_from, endpoint_from, region_from)
