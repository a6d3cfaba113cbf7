"""A user's shell for running commands exactly as the CLI prints them: the venv not activated (`loopline` is not
on PATH) and no stack or endpoint exported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOOPLINE = Path(sys.executable).with_name("loopline")  # the venv's script, as a fresh clone has it


def user_env() -> dict[str, str]:
    """This process's environment without the venv on PATH and without AWS_ENDPOINT_URL / LOOPLINE_STACK."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "LOOPLINE_STACK")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != LOOPLINE.parent.resolve())
    return env


def run_as_printed(line: str, cwd: Path, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """A command line exactly as printed, through bash, in the user's shell."""
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=user_env(), capture_output=True, text=True,
                          timeout=timeout)
