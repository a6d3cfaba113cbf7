"""Background work for the asynchronous AWS behaviours the emulator adds: fire-and-forget tasks (S3 notifications,
async invokes) and periodic ones (alarm evaluation, queue metrics, Firehose buffers)."""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def ticking(name: str, interval_seconds: float, work: Callable[[], object]) -> Iterator[None]:
    """Run `work()` every `interval_seconds` on a daemon thread until the context exits; a failing run is printed
    (as `loopline: <name> failed: ...`) and the next one still runs."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(interval_seconds):
            try:
                work()
            except Exception as exc:
                print(f"loopline: {name} failed: {exc!r}", file=sys.stderr)

    threading.Thread(target=tick, name=f"loopline-{name.replace(' ', '-')}-tick", daemon=True).start()
    try:
        yield
    finally:
        stop.set()
