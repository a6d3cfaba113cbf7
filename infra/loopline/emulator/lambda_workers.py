"""Emulated Lambda execution environments: a small pool of worker processes per function version.

A worker is a child process of the venv's python (lambda_worker_main) with the function's environment and
sys.path: with `runtime_site` set (as LambdaRuntime does) it runs `python -S`, without the venv's site-packages,
and sees only its code, its layers and what the Lambda runtime provides (layer_sites). It is reused across
invocations (warm start), replaced when it crashes, and killed when an invocation outlives the function's Timeout.
Nothing a handler does can take the emulator down.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from loopline.emulator.local_access import CREDENTIALS
from loopline.emulator.worker_limits import POLL_SECONDS, EphemeralStorage, over_memory

MAX_WORKERS_PER_FUNCTION = 3
_WORKER_MODULE = "loopline.emulator.lambda_worker_main"
_WORKER_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `loopline` package


@dataclass(frozen=True)
class WorkerSpec:
    """Everything that defines a function's execution environment."""

    function_name: str
    function_arn: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: tuple[tuple[str, str], ...]  # the function's own variables
    timeout_seconds: int
    memory_mb: int
    region: str
    aws_endpoint_url: str
    # the Lambda runtime's own packages (boto3...); set: the worker does not see the venv's site-packages
    runtime_site: Path | None = None
    # the function role's temporary credentials (AWS_ACCESS_KEY_ID...); empty: the emulator's administrator key
    credentials: tuple[tuple[str, str], ...] = ()
    ephemeral_storage_mb: int = 512

    def python_command(self) -> list[str]:
        """The interpreter and flags of the worker process (-S: no site-packages, as /opt/python alone)."""
        return [sys.executable, "-S"] if self.runtime_site is not None else [sys.executable]

    def process_environment(self) -> dict[str, str]:
        """The child's environment: like Lambda's, with its role's credentials, pointed at the emulator."""
        inherited = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR", "SYSTEMROOT") if k in os.environ}
        python_path = [str(self.code_dir)] + [str(d / "python") for d in self.layer_dirs]
        if self.runtime_site is not None:
            # last: the worker's own module (stdlib only), found without exposing the rest of the venv
            python_path += [str(self.runtime_site), str(_WORKER_ROOT)]
        return {
            **inherited,
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "_HANDLER": self.handler,
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout_seconds),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **CREDENTIALS,
            **dict(self.credentials),
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            # X-Ray has no local daemon; Powertools' Tracer would only warn on every segment
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "TZ": "UTC",
            **dict(self.environment),
            # before site-packages (which stands in for the dependencies layer), like /var/task and /opt/python
            "PYTHONPATH": os.pathsep.join(python_path),
        }


@dataclass
class InvocationResult:
    """What an invocation returned: the JSON payload, whether it is an error, and its captured output."""

    payload: str
    errored: bool
    logs: str
    duration_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class Worker:
    """One execution environment: a child process serving invocations over a socket."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.tmp = EphemeralStorage.create(spec.function_name, spec.ephemeral_storage_mb)
        parent_socket, child_socket = socket.socketpair()
        self._process = subprocess.Popen(
            [*spec.python_command(), "-c", f"from {_WORKER_MODULE} import main; main()", str(child_socket.fileno())],
            env={**spec.process_environment(), "TMPDIR": str(self.tmp.path)},
            cwd=spec.code_dir,
            pass_fds=(child_socket.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        child_socket.close()
        self._connection = Connection(parent_socket.detach())

    @property
    def alive(self) -> bool:
        return self._process.poll() is None

    def invoke(self, event: Any, request_id: str, log_stream_name: str = "") -> InvocationResult:
        """Run one invocation; a timeout or crash kills the worker and is reported like Lambda does."""
        timeout = self.spec.timeout_seconds
        started = time.time()
        with tempfile.NamedTemporaryFile(prefix="loopline-invoke-", suffix=".log", delete=False) as log_file:
            log_path = log_file.name
        request = {
            "event": event,
            "request_id": request_id,
            "invoked_function_arn": self.spec.function_arn,
            "deadline": started + timeout,
            "log_path": log_path,
            "log_stream_name": log_stream_name,
        }
        try:
            self._connection.send_bytes(json.dumps(request).encode("utf-8"))
            limit = self._wait(started + timeout)
            if limit == "timeout":
                self.kill()
                message = f"{_timestamp()} {request_id} Task timed out after {timeout:.2f} seconds"
                return self._result(_error("Sandbox.Timedout", message), True, log_path, started, message)
            if limit is None and over_memory(self._process.pid, self.spec.memory_mb, "VmHWM"):
                limit = "memory"  # a peak between two readings
            if limit == "memory":
                self.kill()
                message = f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
                note = f"{message}\nRuntime.OutOfMemory (MemorySize {self.spec.memory_mb} MB)"
                return self._result(_error("Runtime.OutOfMemory", message), True, log_path, started, note)
            if limit == "tmp":
                self.kill()
                message = (f"[Errno 28] No space left on device: /tmp holds {self.spec.ephemeral_storage_mb} MB "
                           "(EphemeralStorage)")
                return self._result(_error("OSError", message), True, log_path, started, message)
            reply = json.loads(self._connection.recv_bytes())
            return self._result(reply["payload"], not reply["ok"], log_path, started)
        except (EOFError, OSError):
            code = self._process.wait()
            message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"
            return self._result(_error("Runtime.ExitError", message), True, log_path, started, message)
        finally:
            Path(log_path).unlink(missing_ok=True)

    def _wait(self, deadline: float) -> str | None:
        """Wait for the reply, watching the environment's limits: None (replied), "timeout", "memory" or "tmp"."""
        while not self._connection.poll(min(POLL_SECONDS, max(0.0, deadline - time.time()))):
            if time.time() >= deadline:
                return "timeout"
            if over_memory(self._process.pid, self.spec.memory_mb):
                return "memory"
            if self.tmp.over_cap():
                return "tmp"
        return None

    def _result(self, payload: str, errored: bool, log_path: str, started: float, note: str = "") -> InvocationResult:
        logs = Path(log_path).read_text(encoding="utf-8", errors="replace")
        if note:
            logs += note + "\n"
        return InvocationResult(payload, errored, logs, (time.time() - started) * 1000)

    def kill(self) -> None:
        """Stop the process now (a timed-out or abandoned environment)."""
        if self.alive:
            self._process.kill()
        self._process.wait()
        self._connection.close()
        self.tmp.remove()


class WorkerPool:
    """Up to MAX_WORKERS_PER_FUNCTION workers for one WorkerSpec; an invocation waits when all are busy."""

    def __init__(self, spec: WorkerSpec, max_workers: int = MAX_WORKERS_PER_FUNCTION) -> None:
        self.spec = spec
        self._idle: list[Worker] = []
        self._slots = threading.BoundedSemaphore(max_workers)
        self._lock = threading.Lock()
        self._closed = False

    def invoke(self, event: Any, request_id: str, log_stream_name: str = "") -> InvocationResult:
        """Invoke on an idle warm worker, or on a new one when none is idle."""
        with self._slots:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None or not worker.alive:
                worker = Worker(self.spec)
            result = worker.invoke(event, request_id, log_stream_name)
            with self._lock:
                if worker.alive and not self._closed:
                    self._idle.append(worker)
                else:
                    worker.kill()
            return result

    def close(self) -> None:
        """Kill the idle workers; busy ones are killed when their invocation ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


def _error(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message})


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
