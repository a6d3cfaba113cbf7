"""A client of a deployed Loopline stack (local emulator or AWS): only public AWS APIs and HTTP.

Used by `loopline demo` and the end-to-end tests, so both exercise the stack exactly as a user would.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pandas as pd
from botocore.config import Config
from botocore.credentials import Credentials

from loopline.emulator.local_access import DUMMY_SECRET
from loopline_runtime.bucket_layout import INCOMING_PREFIX

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any
    text: str


def _session(endpoint_url: str | None, region: str) -> tuple[Any, dict[str, Any]]:
    session: Any = boto3.session.Session(region_name=region)  # Any: clients are used as plain dict APIs
    kwargs: dict[str, Any] = {"endpoint_url": endpoint_url} if endpoint_url else {}
    if endpoint_url:  # the emulator account's administrator key; never the user's profile
        kwargs.update(aws_access_key_id=DUMMY_SECRET, aws_secret_access_key=DUMMY_SECRET)
    return session, kwargs


class StackClient:
    """Reads the stack's Outputs, uploads data, follows executions and calls the prediction API."""

    def __init__(self, stack_name: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> None:
        self.stack_name = stack_name
        self.endpoint_url = endpoint_url
        session, kwargs = _session(endpoint_url, region)
        self._session, self._client_kwargs = session, kwargs
        self.cloudformation = session.client("cloudformation", **kwargs)
        self.s3 = session.client("s3", **kwargs)
        self.sfn = session.client("stepfunctions", **kwargs)
        self.cloudwatch = session.client("cloudwatch", **kwargs)
        self.apigateway = session.client("apigateway", **kwargs)
        self.outputs = {
            o["OutputKey"]: o["OutputValue"]
            for o in self.cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])
        }
        self._api_key: str | None = None

    @staticmethod
    def cloudformation_client(endpoint_url: str | None, region: str, *, attempts: int | None = None) -> Any:
        """A CloudFormation client for the endpoint without a stack (to check and list the stacks there);
        `attempts` limits retries (a refused connection should be reported at once, not after backoffs)."""
        session, kwargs = _session(endpoint_url, region)
        if attempts is not None:
            kwargs["config"] = Config(retries={"total_max_attempts": attempts, "mode": "standard"},
                                      connect_timeout=5)
        return session.client("cloudformation", **kwargs)

    def client(self, service: str) -> Any:
        """A boto3 client for any other service, on the same endpoint and credentials."""
        return self._session.client(service, **self._client_kwargs)

    def credentials(self) -> Any:
        """The credentials the clients sign with (the emulator's administrator key, or the user's on AWS), for
        requests signed outside boto3 (SigV4 to an AWS_IAM API route); None when there are none."""
        if "aws_access_key_id" in self._client_kwargs:
            return Credentials(self._client_kwargs["aws_access_key_id"], self._client_kwargs["aws_secret_access_key"])
        found = self._session.get_credentials()
        return None if found is None else found.get_frozen_credentials()

    @property
    def region(self) -> str:
        return str(self._session.region_name)

    @property
    def bucket(self) -> str:
        return self.outputs["ArtifactBucketName"]

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["TrainingStateMachineArn"]

    # ------------------------------------------------------------------ data
    def upload_csv(self, frame: pd.DataFrame | bytes, name: str) -> str:
        """Upload a CSV under incoming/ (which starts ingestion); returns the key."""
        body = frame if isinstance(frame, bytes) else frame.to_csv(index=False).encode("utf-8")
        key = f"{INCOMING_PREFIX}{name}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="text/csv")
        return key

    def read_json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def wait_for_keys(self, prefix: str, count: int, *, timeout: float = 120) -> list[str]:
        """Wait until at least `count` objects exist under prefix."""
        deadline = time.monotonic() + timeout
        while True:
            keys = self.keys(prefix)
            if len(keys) >= count or time.monotonic() > deadline:
                return keys
            time.sleep(0.5)

    # ------------------------------------------------------------------ executions
    def executions(self) -> list[dict[str, Any]]:
        pages = self.sfn.get_paginator("list_executions").paginate(stateMachineArn=self.state_machine_arn)
        return [e for page in pages for e in page["executions"]]

    def wait_for_new_execution(self, known: set[str], *, timeout: float = 120) -> dict[str, Any]:
        """The first execution whose ARN is not in `known`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for execution in sorted(self.executions(), key=lambda e: e["startDate"]):
                if execution["executionArn"] not in known:
                    return execution
            time.sleep(0.5)
        raise TimeoutError(f"no new training execution started within {timeout:.0f}s")

    def wait_for_execution(
        self, execution_arn: str, *, timeout: float = 600, on_state: Callable[[str, float], None] | None = None
    ) -> dict[str, Any]:
        """Follow an execution to its end; `on_state(name, seconds)` is called as each state is entered, with the
        seconds from the execution's start to that state (from the history's timestamps, so states that were
        entered before the call are replayed at their real times)."""
        start = time.monotonic()
        reported = 0  # states already passed to on_state (history only grows)

        def report_new_states(started: Any) -> None:
            nonlocal reported
            if on_state:
                entered = self.entered_state_times(execution_arn)
                for name, moment in entered[reported:]:
                    on_state(name, (moment - started).total_seconds())
                reported = len(entered)

        while True:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            report_new_states(described["startDate"])  # after describe: terminal status means a complete history
            if described["status"] in TERMINAL:
                return described
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"execution {execution_arn} still {described['status']} after {timeout:.0f}s")
            time.sleep(0.5)

    def entered_state_times(self, execution_arn: str) -> list[tuple[str, Any]]:
        """(state name, datetime entered) in order."""
        history = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        return [(e["stateEnteredEventDetails"]["name"], e["timestamp"]) for e in history
                if "stateEnteredEventDetails" in e]

    def entered_states(self, execution_arn: str) -> list[str]:
        history = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]

    # ------------------------------------------------------------------ alarm
    def alarm(self) -> dict[str, Any]:
        name = self.outputs["ModelQualityAlarmName"]
        return self.cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]

    def wait_for_alarm_state(self, state: str, *, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            alarm = self.alarm()
            if alarm["StateValue"] == state:
                return alarm
            if time.monotonic() > deadline:
                raise TimeoutError(f"alarm is {alarm['StateValue']}, not {state}, after {timeout:.0f}s")
            time.sleep(0.5)

    # ------------------------------------------------------------------ API
    def api_key(self) -> str:
        """The prediction API key's value, fetched the way an AWS user does (apigateway get-api-key)."""
        if self._api_key is None:
            key_id = self.outputs["PredictApiKeyId"]
            self._api_key = self.apigateway.get_api_key(apiKey=key_id, includeValue=True)["value"]
        return self._api_key

    def http(
        self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, api_key: str | None = "default",
        headers: dict[str, str] | None = None,
    ) -> HttpResponse:
        """Call the prediction API; `path` is relative to PredictApiUrl (e.g. "predict")."""
        url = self.outputs["PredictApiUrl"].rstrip("/") + "/" + path.lstrip("/")
        data = raw if raw is not None else (json.dumps(body).encode("utf-8") if body is not None else None)
        headers = {"content-type": "application/json", **(headers or {})}
        if api_key == "default":
            api_key = self.api_key()
        if api_key:
            headers["x-api-key"] = api_key
        return send(urllib.request.Request(url, data=data, method=method, headers=headers), timeout=120)

    def predict(self, records: list[dict[str, Any]]) -> HttpResponse:
        return self.http("POST", "predict", {"records": records})


def send(request: urllib.request.Request, *, timeout: float) -> HttpResponse:
    """Send `request`; an HTTP error status is an answer like any other (its JSON body parsed when it is JSON)."""
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode("utf-8")
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    return HttpResponse(status, parsed, text)
