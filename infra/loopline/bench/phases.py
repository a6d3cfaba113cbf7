"""Where the train handler's time went: phase events written by the child, read into phases by the parent."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    finished: bool = True
    load: float | None = None  # 1-min load average when the phase ended (the last of its parts)


def phases_from_events(events: Sequence[dict[str, Any]], end: float | None = None) -> list[Phase]:
    """Turn the train path's phase events (t = seconds since the handler was invoked) into phases.

    Scoring time (cross-validation or halving rungs) is summed per candidate family; "refit" is the search's
    tail after its last scoring (the winner refit on all training rows). A phase that started but never ended
    (the run was killed) is reported up to `end` as unfinished. Gaps between phases are reported as "other".
    """
    phases: list[Phase] = []
    open_: dict[str, tuple[float, str]] = {}
    cv_totals: dict[str, float] = {}
    cv_load: dict[str, float | None] = {}
    last_cv_end: float | None = None
    search_start: float | None = None
    for event in events:
        kind, t = event["event"], float(event["t"])
        label = event.get("label", kind)
        load = event.get("load")
        if kind.endswith("_start"):
            open_[kind[: -len("_start")]] = (t, label)
            if kind == "search_start":
                search_start = t
            continue
        if not kind.endswith("_end"):
            continue
        base = kind[: -len("_end")]
        started, label = open_.pop(base, (t, label))
        if base == "cv":
            cv_totals[label] = cv_totals.get(label, 0.0) + (t - started)
            cv_load[label] = load
            last_cv_end = t
        elif base == "search":
            for name, seconds in cv_totals.items():
                phases.append(Phase(f"search: score {name}", seconds, load=cv_load[name]))
            cv_totals = {}
            tail_from = last_cv_end if last_cv_end is not None else started
            phases.append(Phase("search: refit winner on all training rows", t - tail_from, load=load))
        else:
            phases.append(Phase(label, t - started, load=load))
    for name, seconds in cv_totals.items():  # the search never ended
        phases.append(Phase(f"search: score {name}", seconds, load=cv_load[name]))
    if end is not None:
        for base, (started, label) in open_.items():
            if base == "search":
                tail_from = last_cv_end if last_cv_end is not None else started
                if "cv" not in open_:
                    phases.append(Phase("search: refit winner on all training rows", end - tail_from, False))
                continue
            if base == "cv":
                phases.append(Phase(f"search: score {label}", end - started, False))
            else:
                phases.append(Phase(label, end - started, False))
        accounted = sum(p.seconds for p in phases)
        if search_start is not None and end - accounted > 0.05:
            phases.append(Phase("other (split, holdout CSV, profile, S3)", end - accounted))
    return phases


class Probes:
    """The train path's phase events, timed and appended (and flushed) to a JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.origin = time.perf_counter()
        self._file = path.open("a", encoding="utf-8")

    def mark(self, event: str, **extra: Any) -> None:
        record = {"event": event, "t": round(time.perf_counter() - self.origin, 4),
                  "load": round(os.getloadavg()[0], 2), **extra}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def observe(self, event: str, label: str) -> None:
        """The train path's phase observer (loopline_runtime.progress): each phase event, labelled."""
        self.mark(event, label=label)

def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
