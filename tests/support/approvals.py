"""Manual approval in tests: a config that waits for a person, and waiting for the execution that asks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from loopline.client import StackClient
from loopline.operate.approval import pending_approvals


def manual_approval_config(config_path: Path, folder: Path, timeout_seconds: int) -> Path:
    """`config_path` with `gate.approval: manual` (every challenger passes the gate: tolerance 1.0)."""
    config = yaml.safe_load(config_path.read_text())
    config["gate"].update(approval="manual", approval_timeout_seconds=timeout_seconds, tolerance=1.0)
    path = folder / f"manual-{timeout_seconds}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for_pending_approval(stack: StackClient, *, timeout: float = 240) -> Any:
    """The first execution waiting for approval, once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pending := pending_approvals(stack):
            return pending[0]
        time.sleep(0.5)
    raise TimeoutError("no execution is waiting for approval")
