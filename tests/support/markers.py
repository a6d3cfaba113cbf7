"""Markers by folder: every test under a folder gets the folder's marker (so `-m "not e2e"` can skip them)."""

from __future__ import annotations

from pathlib import Path

import pytest


def mark_tests_under(folder: Path, marker: pytest.MarkDecorator, items: list[pytest.Item]) -> None:
    """Add `marker` to every collected item whose file is below `folder`."""
    for item in items:
        if folder in Path(str(item.fspath)).parents:
            item.add_marker(marker)
