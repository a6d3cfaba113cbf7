"""The next steps `loopline example` and `loopline init` print run as printed, from any directory, with the venv
not activated (no `loopline` on PATH)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LOOPLINE = Path(sys.executable).with_name("loopline")


def _user_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "LOOPLINE_STACK")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if Path(p).resolve() != LOOPLINE.parent.resolve())
    return env


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], cwd=cwd, env=_user_env(), capture_output=True, text=True,
                          timeout=300)


def test_the_next_steps_of_example_and_init_run_as_printed(tmp_path: Path):
    # given a fresh directory
    # when the person runs `example`, then the command it prints, then the validation `init` prints
    example = _run(f"{LOOPLINE} example iris", tmp_path)
    next_line = example.stdout.split("Next: ", 1)[1].strip()
    init = _run(next_line, tmp_path)
    steps = {line.strip()[:2]: line.split(": ", 1)[1].strip() for line in init.stdout.splitlines()
             if line.strip()[:2] in ("1.", "2.", "3.")}
    validate = _run(steps["1."], tmp_path)

    # then each ran, and the local up step names the template (this directory has none)
    assert example.returncode == 0, example.stderr
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "pipeline.yaml").exists()
    assert validate.returncode == 0 and validate.stdout == "ok\n", validate.stderr
    assert f"local up --config pipeline.yaml --template {Path.cwd() / 'template.yaml'}" in steps["2."]
    assert steps["3."] == f"{LOOPLINE} upload iris.csv"


def test_printed_commands_say_loopline_when_it_is_on_path(tmp_path: Path):
    # given the venv activated (its bin on PATH)
    env = {**_user_env(), "PATH": f"{LOOPLINE.parent}{os.pathsep}{_user_env()['PATH']}"}

    # when
    done = subprocess.run(["loopline", "example", "wine"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)

    # then
    assert done.stdout.splitlines()[-1] == "Next: loopline init wine.csv --target cultivar"
