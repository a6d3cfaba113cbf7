"""The training window: the newest N dataset versions, optionally only those received in the last D days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from loopline_runtime.datasets import DatasetCatalog
from loopline_runtime.storage import ObjectStore


def _write_versions(store: ObjectStore, count: int) -> list[str]:
    catalog = DatasetCatalog(store)
    versions = []
    for index in range(count):
        version = f"ds-test{index}"
        assert catalog.write(version, pd.DataFrame({"x": [index], "y": [index]}), {"rows": 1})
        versions.append(version)
    return versions


def test_the_window_is_the_newest_versions_oldest_first(store: ObjectStore) -> None:
    # given four versions received one after the other
    versions = _write_versions(store, 4)

    # when a window of three is taken
    window = DatasetCatalog(store).newest(3)

    # then it is the three newest, in arrival order
    assert [d.version for d in window] == versions[1:]


def test_window_days_drops_old_versions_but_keeps_the_newest(store: ObjectStore) -> None:
    # given versions received today
    versions = _write_versions(store, 3)
    catalog = DatasetCatalog(store)

    # when the window is read as if two days had passed, with a one-day limit
    later = datetime.now(UTC) + timedelta(days=2)
    window = catalog.newest(5, max_age_days=1, now=later)

    # then only the newest remains (there is always something to train on); with a wider limit all are used
    assert [d.version for d in window] == versions[-1:]
    assert [d.version for d in catalog.newest(5, max_age_days=3, now=later)] == versions


def test_writing_the_same_version_twice_is_a_no_op(store: ObjectStore) -> None:
    catalog = DatasetCatalog(store)
    frame = pd.DataFrame({"x": [1], "y": [2]})
    assert catalog.write("ds-same", frame, {"rows": 1})
    assert not catalog.write("ds-same", frame, {"rows": 1})
    assert [d.version for d in catalog.newest(5)] == ["ds-same"]
