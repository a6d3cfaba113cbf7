"""A newcomer's session, command by command in processes of their own and without stack flags: the CLI finds the
stack `loopline local up` runs, every command it prints runs as printed, and nothing uploaded goes unanswered
(quarantines and ignored objects in `status`, notifications in `loopline events`)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from loopline.client import StackClient
from loopline.examples import TARGET, breast_cancer, split_batches
from tests.support.approvals import manual_approval_config, wait_for_pending_approval
from tests.support.user_shell import LOOPLINE, run_as_printed, user_env


def test_a_newcomer_uploads_follows_and_approves_with_the_commands_the_cli_prints(
        start_stack: Callable[..., StackClient], local_stack_config_path: Path, tmp_path: Path) -> None:
    # given a running local stack with manual approval, and a person in a directory of their own
    stack = start_stack(manual_approval_config(local_stack_config_path, tmp_path, 600))
    initial, _ = split_batches(breast_cancer(), [250, 50])
    initial.to_csv(tmp_path / "labeled.csv", index=False)
    initial.drop(columns=[TARGET]).to_csv(tmp_path / "unlabeled.csv", index=False)
    events = subprocess.Popen([str(LOOPLINE), "events", "--count", "2", "--timeout", "400"], cwd=tmp_path,
                              env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert events.stderr is not None and "listening to" in events.stderr.readline()

    # when they upload a file without the label, and drop files where nothing reads them
    unlabeled = run_as_printed(f"{LOOPLINE} upload unlabeled.csv", tmp_path)
    stack.s3.put_object(Bucket=stack.bucket, Key="Incoming/labeled.csv", Body=b"a,b\n1,2\n")
    stack.s3.put_object(Bucket=stack.bucket, Key="labeled.csv", Body=b"a,b\n1,2\n")

    # then the upload says where it went and what to run next, and that runs as printed
    assert unlabeled.returncode == 0, unlabeled.stderr
    assert f"s3://{stack.bucket}/incoming/unlabeled.csv" in unlabeled.stdout
    follow_status = unlabeled.stdout.rsplit("  or  ", 1)[1].strip()
    status = run_as_printed(follow_status, tmp_path)
    assert status.returncode == 0, status.stderr
    assert f"Loopline stack {stack.stack_name}" in status.stdout

    # when they upload the labeled data and the challenger waits for approval
    assert run_as_printed(f"{LOOPLINE} upload labeled.csv", tmp_path).returncode == 0
    waiting = wait_for_pending_approval(stack)
    status = run_as_printed(str(LOOPLINE) + " status", tmp_path)

    # then status shows the quarantine with its reason, the ignored objects, and the approval commands
    assert status.returncode == 0, status.stderr
    assert re.search(r"Quarantined\s+.*incoming/unlabeled\.csv\s+missing_target", status.stdout), status.stdout
    assert re.search(r"Ignored\s+Incoming/\n\s+labeled\.csv\n", status.stdout), status.stdout
    [approval_line] = [line for line in status.stdout.splitlines() if f"{waiting.model_version} waiting" in line]
    approve = approval_line.split(": ", 1)[1].split("  |  ")[0]

    # when they paste the approve command as printed
    approved = run_as_printed(approve, tmp_path)

    # then it is promoted, and the replayed states carry their real times (not all at 0.0 s)
    assert approved.returncode == 0, approved.stderr
    assert stack.read_json("registry/champion.json")["version"] == waiting.model_version
    times = [float(t) for t in re.findall(r"\[\s*([\d.]+)s\]", approved.stderr)]
    assert len(times) >= 3 and times == sorted(times) and times[-1] > times[0], approved.stderr

    # and `loopline events` printed the quarantine and the approval request as they arrived
    out, _ = events.communicate(timeout=120)
    lines = out.splitlines()
    assert events.returncode == 0 and len(lines) == 2, out
    assert "incoming/unlabeled.csv quarantined (missing_target)" in lines[0]
    assert f"approve or reject {waiting.model_version}" in lines[1]
