"""Fire-and-forget work for the asynchronous AWS behaviours the emulator adds (S3 notifications, async invokes)."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any


def run_in_background(name: str, target: Callable[..., Any], *args: Any) -> threading.Thread:
    """Run `target(*args)` on a daemon thread; an exception is printed, never raised to the caller."""

    def guarded() -> None:
        try:
            target(*args)
        except Exception:
            print(f"loopline: background {name} failed:\n{traceback.format_exc()}", file=sys.stderr)

    thread = threading.Thread(target=guarded, name=f"loopline-{name}", daemon=True)
    thread.start()
    return thread
