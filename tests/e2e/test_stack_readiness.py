"""CREATE_COMPLETE means ready, as on AWS: a client that uploads the instant the stack reports complete (a script,
CI) is never ahead of the bucket's notifications, policy or alarms (gap module stack_completion)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
from botocore.config import Config

from loopline.client import StackClient
from loopline.emulator.local_access import DUMMY_SECRET, free_port
from loopline.examples import breast_cancer
from loopline_runtime.bucket_layout import DATASET_INDEX_PREFIX


def test_an_upload_in_the_instant_the_stack_turns_complete_is_ingested(
        local_stack_config_path: Path, tmp_path: Path) -> None:
    # given `loopline local up` starting, and a client polling describe_stacks as fast as it can (one attempt per
    # call: botocore's retry back-off on a refused connection can sleep through the whole creation)
    name, port = f"ready-{os.getpid()}", free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "loopline.cli", "local", "up", "--stack-name", name, "--aws-port", str(port),
               "--api-port", str(free_port()), "--config", str(local_stack_config_path)]
    with (tmp_path / "emulator.log").open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    cloudformation = boto3.client("cloudformation", endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id=DUMMY_SECRET, aws_secret_access_key=DUMMY_SECRET,
                                  config=Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=30))
    try:
        statuses = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "emulator.log").read_text()[-3000:]
            try:
                status = cloudformation.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
            except Exception:  # the server is not up yet, or the stack not created yet
                time.sleep(0.01)
                continue
            statuses.append(status)
            if status == "CREATE_COMPLETE":
                break

        # when it uploads a labeled CSV in that same instant
        stack = StackClient(name, endpoint_url=endpoint)
        stack.upload_csv(breast_cancer().head(120), "first.csv")
        notifications = stack.s3.get_bucket_notification_configuration(Bucket=stack.bucket)

        # then everything was in place when the stack said so, and the upload became a dataset version
        assert statuses[-1] == "CREATE_COMPLETE"
        assert "CREATE_IN_PROGRESS" in statuses, "the client never saw the stack being created"
        assert notifications.get("LambdaFunctionConfigurations"), "complete before the notifications existed"
        assert stack.s3.get_bucket_policy(Bucket=stack.bucket)["Policy"]
        assert stack.wait_for_keys(DATASET_INDEX_PREFIX, 1, timeout=120), "the upload was not ingested"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)

