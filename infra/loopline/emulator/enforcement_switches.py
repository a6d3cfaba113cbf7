"""The one switch that turns an emulator enforcement off, for debugging only.

`LOOPLINE_UNENFORCED=iam,memory` (comma-separated, read on every check so it applies to a running emulator's
new requests and new workers) turns off the named enforcements; everything is enforced by default. The names:
"""

from __future__ import annotations

import os

SWITCH_VARIABLE = "LOOPLINE_UNENFORCED"
ENFORCEMENTS = {
    "iam": "identity policies, bucket policy and invoke permissions on every request",
    "api-iam": "an AWS_IAM route of the local API needs a valid SigV4 signature and execute-api:Invoke",
    "memory": "a worker above its function's MemorySize is stopped (Runtime.OutOfMemory)",
    "ephemeral-storage": "/tmp of a worker is capped at its function's EphemeralStorage",
    "payload-size": "Lambda's 6 MB / 256 KB payload limits and Step Functions' 256 KB state limit",
    "concurrency": "ReservedConcurrentExecutions throttles invocations (TooManyRequestsException)",
    "environment-size": "a function's environment variables over 4 KB are refused at deploy",
}
__doc__ = (__doc__ or "") + "".join(f"\n- `{name}`: {what}" for name, what in ENFORCEMENTS.items())


class UnknownEnforcement(ValueError):
    """LOOPLINE_UNENFORCED names something the emulator does not enforce."""


def unenforced() -> set[str]:
    """The enforcements switched off in this process's environment."""
    names = {n.strip() for n in os.environ.get(SWITCH_VARIABLE, "").split(",") if n.strip()}
    unknown = names - set(ENFORCEMENTS)
    if unknown:
        raise UnknownEnforcement(
            f"{SWITCH_VARIABLE} names {', '.join(sorted(unknown))}: the emulator enforces "
            f"{', '.join(ENFORCEMENTS)}"
        )
    return names


def enforced(name: str) -> bool:
    """Whether enforcement `name` is on (the default)."""
    if name not in ENFORCEMENTS:
        raise UnknownEnforcement(f"no enforcement named {name!r}")
    return name not in unenforced()
