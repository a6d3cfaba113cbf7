"""The inside of one emulated Lambda execution environment (a child process; stdlib-only imports).

The parent starts it with the function's environment and PYTHONPATH (code dir, then layer `python/` dirs,
both before site-packages) and a socket fd. The handler module is imported once, so module-level state
(clients, a loaded model) survives across invocations like in a warm Lambda. Each request names a file that
receives the invocation's stdout/stderr at the fd level: loggers that bound sys.stdout at import are captured.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any


class LambdaContext:
    """The attributes and method of the Lambda Python context object that handlers and Powertools use."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name: str = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version: str = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn: str = request["invoked_function_arn"]
        self.memory_limit_in_mb: int = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id: str = request["request_id"]
        self.log_group_name: str = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name: str = request.get("log_stream_name", "")
        self.identity = None
        self.client_context = None
        self._deadline: float = request["deadline"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _load_handler() -> tuple[Any, dict[str, Any] | None]:
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the init error is what every invocation of a broken Lambda reports
        traceback.print_exc()
        return None, {
            **_error(exc, "Runtime.ImportModuleError"),
            "errorMessage": f"Unable to import module '{module_name}': {exc}",
        }
    handler = getattr(module, function_name, None)
    if handler is None:
        message = f"Handler '{function_name}' missing on module '{module_name}'"
        return None, {"errorType": "Runtime.HandlerNotFound", "errorMessage": message, "stackTrace": []}
    return handler, None


def _invoke(handler: Any, request: dict[str, Any]) -> tuple[bool, str]:
    try:
        result = handler(request["event"], LambdaContext(request))
    except Exception as exc:
        # Lambda's python runtime logs the error as a JSON-ish [ERROR] line, then returns it
        error = _error(exc)
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
        traceback.print_exc()
        return False, json.dumps(error)
    try:
        return True, json.dumps(result)
    except (TypeError, ValueError) as exc:
        return False, json.dumps(_error(exc, "Runtime.MarshalError"))


class _CapturedOutput:
    """Point fds 1 and 2 at a file for the duration of a block (flushing Python's buffers around it)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._saved: list[int] = []

    def __enter__(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        target = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._saved = [os.dup(1), os.dup(2)]
        os.dup2(target, 1)
        os.dup2(target, 2)
        os.close(target)

    def __exit__(self, *exc_info: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self._saved, strict=True):
            os.dup2(saved, fd)
            os.close(saved)


def main() -> None:
    """Serve invocations from the parent until it closes the socket."""
    connection = Connection(socket.socket(fileno=int(sys.argv[1])).detach())
    handler = init_error = None
    initialised = False
    while True:
        try:
            request = json.loads(connection.recv_bytes())
        except (EOFError, OSError):
            return
        with _CapturedOutput(request["log_path"]):
            if not initialised:
                # init runs inside the first invocation's capture, so import-time output lands in its logs
                handler, init_error = _load_handler()
                initialised = True
            if init_error is not None:
                ok, payload = False, json.dumps(init_error)
            else:
                ok, payload = _invoke(handler, request)
        connection.send_bytes(json.dumps({"ok": ok, "payload": payload}).encode("utf-8"))


if __name__ == "__main__":
    main()
