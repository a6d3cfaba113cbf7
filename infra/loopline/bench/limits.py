"""Lambda's limits and each function's own, as template.yaml sets them (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LAMBDA_MAX_TIMEOUT_S = 900  # 15 minutes
LAMBDA_MAX_MEMORY_MB = 10_240


@dataclass(frozen=True)
class FunctionLimits:
    name: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str] = field(default_factory=dict)


def function_limits(template: dict[str, Any], logical_id: str) -> FunctionLimits:
    """A function's Timeout, MemorySize and literal environment (Globals first, then its own) from the template."""
    globals_ = template.get("Globals", {}).get("Function", {})
    properties = template["Resources"][logical_id]["Properties"]
    environment: dict[str, str] = {}
    for source in (globals_, properties):
        for name, value in source.get("Environment", {}).get("Variables", {}).items():
            if isinstance(value, str | int | float):
                environment[name] = str(value)
    return FunctionLimits(
        name=logical_id,
        timeout_s=int(properties.get("Timeout", globals_.get("Timeout", 3))),
        memory_mb=int(properties.get("MemorySize", globals_.get("MemorySize", 128))),
        environment=environment,
    )
