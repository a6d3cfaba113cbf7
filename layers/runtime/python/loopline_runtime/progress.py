"""Phase events of a long step (training), for whoever wants to see where its time goes (the benchmarks).

An observer is called with `<phase>_start` / `<phase>_end` and a label, like the injected `clock`: the library
says when a phase begins and ends, the caller decides what to record. The default records nothing.
"""

from __future__ import annotations

from collections.abc import Callable

PhaseObserver = Callable[[str, str], None]  # (event: "<phase>_start" | "<phase>_end", label)


def ignore_phases(event: str, label: str) -> None:
    """The default observer: nothing is recorded."""
