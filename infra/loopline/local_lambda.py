"""A function's handler run in this process, as Lambda runs it: functions/<name>/app.py imported (its module-level
code runs: clients, config), and a context object whose remaining time counts down from the function's timeout.

Used by the benchmarks and the tests; the emulator's workers build their own context from the invocation."""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
ACCOUNT_ID = "123456789012"


class LocalLambdaContext:
    """The attributes and method of a Lambda context that the handlers and Powertools read."""

    def __init__(
        self,
        function_name: str = "loopline-test",
        *,
        memory_limit_in_mb: int = 1024,
        timeout_seconds: float = 900.0,
        aws_request_id: str = "da658bd3-2d6f-4e7b-8ec2-937234644fdc",
        region: str = "us-east-1",
    ) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = memory_limit_in_mb
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{function_name}"
        self.aws_request_id = aws_request_id
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def import_function_app(function: str, module_name: str | None = None) -> ModuleType:
    """Import functions/<function>/app.py under `module_name` (default: a unique name), registered in sys.modules."""
    module_name = module_name or f"loopline_{function}_app_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS_DIR / function / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
