"""`loopline demo`: the whole loop, offline, shown step by step.

Act 1: start the emulator, upload the bundled breast-cancer data, follow the training state machine, print the
champion's metrics and HTTP predictions, and measure the champion on a fresh batch (alarm OK).
Act 2: the imaging software is recalibrated; labeled batches now drift; the champion's measured quality falls,
the CloudWatch alarm fires, EventBridge starts retraining, a new champion is promoted and the alarm recovers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopline.client import StackClient
from loopline.emulator.local_access import free_port
from loopline.examples import TARGET, breast_cancer, recalibrated_sensors, split_batches
from loopline_runtime.bucket_layout import MONITORING_PREFIX


@dataclass
class Timeline:
    start: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str]] = field(default_factory=list)

    def say(self, message: str, *, record: bool = False) -> None:
        elapsed = time.monotonic() - self.start
        print(f"[{elapsed:6.1f}s] {message}", flush=True)
        if record:
            self.events.append((elapsed, message))


@contextlib.contextmanager
def local_stack(
    stack_name: str, *, config: Path, workdir: Path, aws_port: int, api_port: int, timeout: float = 300,
    template: Path | None = None,
) -> Iterator[dict[str, Any]]:
    """Run `loopline local up` in the background until the stack is ready; stop it afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready_file = workdir / f"{stack_name}.ready.json"
    ready_file.unlink(missing_ok=True)
    log_path = workdir / f"{stack_name}.log"
    command = [
        sys.executable,
        "-m",
        "loopline.cli",
        "local",
        "up",
        "--stack-name",
        stack_name,
        "--aws-port",
        str(aws_port),
        "--api-port",
        str(api_port),
        "--config",
        str(config),
        "--ready-file",
        str(ready_file),
        "--alarm-tick",
        "2",
        *(["--template", str(template)] if template is not None else []),
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not ready_file.exists():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the emulator exited early ({process.returncode}); see {log_path}:\n"
                        + log_path.read_text()[-3000:]
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the emulator was not ready after {timeout:.0f}s; see {log_path}")
                time.sleep(0.3)
            yield json.loads(ready_file.read_text())
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def run_demo(
    *, config: Path = Path("pipeline.yaml"), workdir: Path = Path(".loopline"), stack_name: str = "loopline-demo"
) -> int:
    timeline = Timeline()
    aws_port, api_port = free_port(), free_port()
    print("Loopline demo: deploy the pipeline, not the model (everything runs offline on this machine)\n")
    timeline.say(f"Starting the local AWS emulator: loopline local up --aws-port {aws_port} --api-port {api_port}")
    with local_stack(stack_name, config=config, workdir=workdir, aws_port=aws_port, api_port=api_port):
        stack = StackClient(stack_name, endpoint_url=f"http://127.0.0.1:{aws_port}")
        timeline.say(f"Stack {stack_name!r} is up (template.yaml on the emulator). Outputs:", record=True)
        for key, value in sorted(stack.outputs.items()):
            print(f"           {key:26} {value}")
        initial, fresh, drift_a, drift_b = split_batches(breast_cancer(), [250, 100, 100, 100])
        first = act_one(stack, timeline, initial, fresh)
        second = act_two(stack, timeline, recalibrated_sensors(drift_a), recalibrated_sensors(drift_b))
        report = write_champion_report(stack, timeline, workdir)
    print("\nTimeline")
    for elapsed, message in timeline.events:
        print(f"  {elapsed:6.1f}s  {message}")
    total = time.monotonic() - timeline.start
    print(
        f"\nSummary: champion {first} was replaced by {second} after the alarm fired on drifted data; "
        f"whole demo {total:.0f}s wall time. Emulator log: {workdir / (stack_name + '.log')}"
    )
    print(f"Champion's report: {report.resolve()}")
    return 0


def write_champion_report(stack: StackClient, timeline: Timeline, workdir: Path) -> Path:
    """`loopline report` for the champion: figures from the numbers the gate recorded, in one HTML file."""
    from loopline.operate.report.build import write_report  # local: matplotlib only when the demo gets here

    report = write_report(stack, version=None, monitoring=None, output=workdir / "champion-report.html")
    timeline.say(f"Wrote the champion's report (loopline report): {report}", record=True)
    return report


def follow_training(stack: StackClient, timeline: Timeline, known: set[str]) -> dict[str, Any]:
    execution = stack.wait_for_new_execution(known, timeout=180)
    timeline.say(f"Training execution {execution['name']} started", record=True)
    described = stack.wait_for_execution(
        execution["executionArn"],
        timeout=900,
        on_state=lambda name, seconds: print(f"           +{seconds:5.1f}s  {name}", flush=True),
    )
    timeline.say(f"Training execution {described['status']}", record=True)
    if described["status"] != "SUCCEEDED":
        raise RuntimeError(f"training execution ended {described['status']}: {described.get('cause', '')}")
    return described


def show_champion(stack: StackClient, timeline: Timeline) -> dict[str, Any]:
    response = stack.http("GET", "model")
    if response.status != 200:
        raise RuntimeError(f"GET /model answered {response.status}: {response.text}")
    model = response.body
    timeline.say(
        f"Champion {model['model_version']}: {model['estimator']}, holdout {model['metric']} "
        f"{model['holdout_score']:.3f} (cv {model['cv_score']:.3f}), trained on "
        f"{len(model['dataset_versions'])} dataset version(s)",
        record=True,
    )
    parity = model.get("parity") or {}
    if "max_probability_diff" in parity:
        agreement = f"max probability difference {parity['max_probability_diff']:.1e}"
    else:
        agreement = f"max relative difference {parity.get('max_relative_diff', 0):.1e}"
    print(f"           serving form: {model.get('serving_form')} (no scikit-learn, no pickle in the predict function); "
          f"parity with scikit-learn on {parity.get('rows')} holdout rows: {agreement}, "
          f"{'passed' if parity.get('passed') else 'FAILED'}")
    return model


def measure(stack: StackClient, timeline: Timeline, frame: Any, name: str, reports_before: int) -> dict[str, Any]:
    """Upload a labeled batch; wait for the champion's measurement on it."""
    key = stack.upload_csv(frame, name)
    timeline.say(f"Uploaded labeled batch {key} ({len(frame)} rows)")
    keys = stack.wait_for_keys(MONITORING_PREFIX, reports_before + 1, timeout=180)
    if len(keys) <= reports_before:
        raise TimeoutError("the champion was not measured on the new batch within 180s")
    report = stack.read_json(sorted(keys)[-1])
    drift = report["drift"]
    timeline.say(
        f"Champion {report['champion_version']} measured on it: {report['metric']} {report['value']:.3f} "
        f"(alarm threshold {report['alarm_threshold']}); drifted features "
        f"{drift['drifted_share']:.0%}, max PSI {drift['max_psi']:.2f}",
        record=True,
    )
    return report


def wait_for_next_alarm_period(stack: StackClient, timeline: Timeline) -> None:
    """CloudWatch averages each period's datapoints: start a new period so the next batch is judged alone."""
    period = int(stack.alarm()["Period"])
    pause = period - time.time() % period + 0.5
    timeline.say(f"(waiting {pause:.0f}s for the alarm's next {period}s period, so this batch is judged alone)")
    time.sleep(pause)


def act_one(stack: StackClient, timeline: Timeline, initial: Any, fresh: Any) -> str:
    print("\nAct 1: a CSV in S3 becomes a served, versioned model")
    key = stack.upload_csv(initial, "breast-cancer-initial.csv")
    timeline.say(f"Uploaded s3://{stack.bucket}/{key} ({len(initial)} rows)", record=True)
    follow_training(stack, timeline, known=set())
    model = show_champion(stack, timeline)

    sample = fresh.head(5)
    response = stack.predict(sample.drop(columns=[TARGET]).to_dict(orient="records"))
    if response.status != 200:
        raise RuntimeError(f"POST /predict answered {response.status}: {response.text}")
    print(
        f"           POST {stack.outputs['PredictApiUrl']}predict (x-api-key) -> {response.status}, "
        f"model_version {response.body['model_version']}"
    )
    print(f"           {'actual':>10}  {'predicted':>10}  probabilities")
    for actual, predicted, proba in zip(
        sample[TARGET], response.body["predictions"], response.body["probabilities"], strict=True
    ):
        shown = ", ".join(f"{k} {v:.3f}" for k, v in proba.items())
        print(f"           {actual:>10}  {predicted:>10}  {shown}")

    measure(stack, timeline, fresh, "breast-cancer-week-2.csv", len(stack.keys(MONITORING_PREFIX)))
    alarm = stack.wait_for_alarm_state("OK", timeout=60)
    timeline.say(f"Alarm {alarm['AlarmName']}: {alarm['StateValue']}", record=True)
    return str(model["model_version"])


def act_two(stack: StackClient, timeline: Timeline, drift_a: Any, drift_b: Any) -> str:
    print("\nAct 2: the imaging software is recalibrated (sizes read 1.5x larger); labels stay correct")
    known = {e["executionArn"] for e in stack.executions()}
    wait_for_next_alarm_period(stack, timeline)
    report = measure(stack, timeline, drift_a, "breast-cancer-recalibrated-1.csv", len(stack.keys(MONITORING_PREFIX)))
    if report["value"] >= report["alarm_threshold"]:
        print("           (the drift did not hurt this champion enough to cross the threshold)")
    alarm = stack.wait_for_alarm_state("ALARM", timeout=120)
    timeline.say(f"Alarm {alarm['AlarmName']}: ALARM ({alarm['StateReason']})", record=True)
    timeline.say("EventBridge rule 'CloudWatch Alarm State Change' -> training state machine (reason: alarm)")
    follow_training(stack, timeline, known)
    model = show_champion(stack, timeline)
    wait_for_next_alarm_period(stack, timeline)
    measure(stack, timeline, drift_b, "breast-cancer-recalibrated-2.csv", len(stack.keys(MONITORING_PREFIX)))
    alarm = stack.wait_for_alarm_state("OK", timeout=120)
    timeline.say(f"Alarm {alarm['AlarmName']}: {alarm['StateValue']} again", record=True)
    return str(model["model_version"])
