"""Gap: moto runs Lambda code only in Docker. Replace `LambdaFunction._invoke_lambda` — the single path of
Invoke, S3 notifications and Step Functions tasks — with real handler runs in local worker processes.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import threading
import uuid
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from unittest import mock

from moto.awslambda.models import LambdaFunction

from loopline.emulator.lambda_workers import InvocationResult, WorkerPool, WorkerSpec
from loopline.emulator.layer_sites import runtime_site
from loopline.emulator.role_sessions import RoleSessions

Echo = Callable[[str, str], None]  # (function name, captured output)


class LambdaRuntime:
    """Runs moto's Lambda functions: extracts their code, keeps a worker pool per function version."""

    def __init__(self, aws_endpoint_url: str, workdir: Path, echo: Echo | None = None) -> None:
        self.aws_endpoint_url = aws_endpoint_url
        self.workdir = workdir
        self.echo = echo
        self._layer_dirs: dict[str, tuple[Path, ...]] = {}
        self._runtime_site = runtime_site(workdir)
        self.roles = RoleSessions()
        self._pools: dict[WorkerSpec, WorkerPool] = {}
        self._lock = threading.Lock()

    def set_layers(self, function_name: str, layer_dirs: list[Path]) -> None:
        """Record a function's layer dirs (moto's CloudFormation drops `Layers`; see function_layers)."""
        self._layer_dirs[function_name] = tuple(layer_dirs)

    def package_dir(self, package: str) -> Path | None:
        """The `python/` folder of a stack layer holding `package` (a training job's code: see
        sagemaker_training_jobs), or None before a stack with it is created."""
        for layer_dirs in list(self._layer_dirs.values()):
            for layer_dir in layer_dirs:
                if (layer_dir / "python" / package).is_dir():
                    return layer_dir / "python"
        return None

    def invoke(self, function: LambdaFunction, event: Any) -> InvocationResult:
        """Run `event` through the function's handler and save the output to its CloudWatch log group."""
        request_id = str(uuid.uuid4())
        pool = self._pool_for(function)
        result = pool.invoke(event, request_id)
        report = (
            f"START RequestId: {request_id} Version: $LATEST\n{result.logs}"
            f"END RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {result.duration_ms:.2f} ms\t"
            f"Memory Size: {function.memory_size} MB\n"
        )
        function.save_logs(report)
        if self.echo is not None and result.logs:
            self.echo(function.function_name, result.logs)
        return result

    def close(self) -> None:
        """Stop every worker."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()

    def _pool_for(self, function: LambdaFunction) -> WorkerPool:
        spec = self._spec_for(function)
        with self._lock:
            pool = self._pools.get(spec)
            if pool is None:
                # a new version (code or configuration changed) retires the old environments
                for old in [s for s in self._pools if s.function_arn == spec.function_arn]:
                    self._pools.pop(old).close()
                pool = self._pools[spec] = WorkerPool(spec)
            return pool

    def _spec_for(self, function: LambdaFunction) -> WorkerSpec:
        return WorkerSpec(
            function_name=function.function_name,
            function_arn=function.function_arn,
            handler=function.handler or "app.lambda_handler",
            code_dir=self._extract_code(function),
            layer_dirs=self._layer_dirs.get(function.function_name, ()),
            environment=tuple(sorted((k, str(v)) for k, v in (function.environment_vars or {}).items())),
            timeout_seconds=int(function.timeout or 3),
            memory_mb=int(function.memory_size or 128),
            region=function.region,
            aws_endpoint_url=self.aws_endpoint_url,
            runtime_site=self._runtime_site,
            credentials=tuple(sorted(self._role_credentials(function).items())),
            ephemeral_storage_mb=int(function.ephemeral_storage or 512),
        )

    def _role_credentials(self, function: LambdaFunction) -> dict[str, str]:
        # what the Lambda service does: assume the function's execution role (its trust policy must allow it)
        if not function.role:
            return {}
        session = f"{function.function_name}"
        return self.roles.credentials(function.role, "lambda.amazonaws.com", session).as_environment()

    def _extract_code(self, function: LambdaFunction) -> Path:
        code = function.code_bytes
        digest = hashlib.sha256(code).hexdigest()[:16]
        target = self.workdir / "functions" / f"{function.function_name}-{digest}"
        with self._lock:
            if not target.is_dir():
                staging = target.with_name(target.name + ".partial")
                with zipfile.ZipFile(io.BytesIO(code)) as archive:
                    archive.extractall(staging)
                staging.rename(target)
        return target


def install_lambda_runtime(runtime: LambdaRuntime) -> AbstractContextManager[object]:
    """Route every moto Lambda invocation to `runtime`."""

    def _invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
        self.logs_backend.ensure_log_group(self.logs_group_name)
        if event is None or (isinstance(event, str) and event.strip() in ("", "{}")):
            event = {}
        try:
            result = runtime.invoke(self, event)
        except Exception as exc:  # the emulator itself failed: report it as Lambda's service error
            print(f"loopline: invoking {self.function_name} failed: {exc!r}", file=sys.stderr)
            payload = json.dumps({"errorType": "Lambda.ServiceException", "errorMessage": str(exc)})
            return payload, True, ""
        return result.payload, result.errored, result.logs

    return mock.patch.object(LambdaFunction, "_invoke_lambda", _invoke_lambda)
