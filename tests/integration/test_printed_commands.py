"""The next steps `loopline example` and `loopline init` print run as printed, from any directory, with the venv
not activated (no `loopline` on PATH)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.support.user_shell import LOOPLINE, run_as_printed, user_env


def test_the_next_steps_of_example_and_init_run_as_printed(tmp_path: Path):
    # given a fresh directory
    # when the person runs `example`, then the command it prints, then the validation `init` prints
    example = run_as_printed(f"{LOOPLINE} example iris", tmp_path)
    next_line = example.stdout.split("Next: ", 1)[1].strip()
    init = run_as_printed(next_line, tmp_path)
    steps = {line.strip()[:2]: line.split(": ", 1)[1].strip() for line in init.stdout.splitlines()
             if line.strip()[:2] in ("1.", "2.", "3.")}
    validate = run_as_printed(steps["1."], tmp_path)

    # then each ran, and the local up step names the template (this directory has none)
    assert example.returncode == 0, example.stderr
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "pipeline.yaml").exists()
    assert validate.returncode == 0 and validate.stdout == "ok\n", validate.stderr
    assert f"local up --config pipeline.yaml --template {Path.cwd() / 'template.yaml'}" in steps["2."]
    assert steps["3."] == f"{LOOPLINE} upload iris.csv"


def test_printed_commands_say_loopline_when_it_is_on_path(tmp_path: Path):
    # given the venv activated (its bin on PATH)
    env = {**user_env(), "PATH": f"{LOOPLINE.parent}{os.pathsep}{user_env()['PATH']}"}

    # when
    done = subprocess.run(["loopline", "example", "wine"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)

    # then
    assert done.stdout.splitlines()[-1] == "Next: loopline init wine.csv --target cultivar"
