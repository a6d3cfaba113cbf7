"""`loopline status` on recorded values: what a user sees about quarantines, ignored objects and approvals."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from loopline.operate.status import (
    StackStatus,
    known_top_prefixes,
    labeled_measurement_keys,
    production_lines,
    render_status,
)

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def _status(**changes: object) -> StackStatus:
    status = StackStatus("loopline-wine", None, None, None, [], [], {}, now=NOW)
    for name, value in changes.items():
        setattr(status, name, value)
    return status


def test_a_quarantined_upload_is_listed_with_its_reason_code_and_message():
    # given
    reason = {"source_key": "incoming/march.csv", "reason_code": "missing_target", "received_at":
              "2026-12-05T11:59:00+00:00", "message": "the target column 'churned' is not in the upload"}

    # when
    text = render_status(_status(quarantines=[reason]))

    # then
    assert re.search(r"Quarantined +11:59:00 \(60 s ago\)  incoming/march.csv  missing_target: the target column "
                     r"'churned' is not in the upload", text), text
    assert "reason.json next to each copy under quarantine/" in text


def test_objects_nothing_reads_are_listed_with_where_they_belong():
    # when
    text = render_status(_status(strays=["Incoming/", "uploads/", "data.csv"]),
                         follow_up=lambda *a: " ".join([".venv/bin/loopline", *a, "--stack-name", "loopline-wine"]))

    # then
    assert re.search(r"Ignored +Incoming/\n +uploads/\n +data.csv\n", text), text
    assert "labeled CSVs go under incoming/ (.venv/bin/loopline upload FILE --stack-name loopline-wine)" in text
    assert "under batch/incoming/ (.venv/bin/loopline score FILE --stack-name loopline-wine)" in text


def test_pending_approvals_print_commands_that_reach_the_same_stack():
    # given
    approval = {"model_version": "m-1", "requested_at": "2026-12-05T11:59:00+00:00"}

    # when
    text = render_status(_status(pending_approvals=[approval]),
                         follow_up=lambda *a: " ".join([".venv/bin/loopline", *a, "--stack-name", "loopline-wine"]))

    # then
    assert (".venv/bin/loopline approve m-1 --stack-name loopline-wine  |  "
            ".venv/bin/loopline reject m-1 --reason TEXT --stack-name loopline-wine") in text


def test_the_folders_of_the_bucket_layout_are_known_and_near_misses_are_not():
    # when
    known = known_top_prefixes()

    # then
    assert {"incoming/", "quarantine/", "datasets/", "models/", "registry/", "monitoring/", "batch/",
            "predictions/"} <= known
    assert not {"Incoming/", "uploads/", "input/"} & known


def test_live_drift_runs_are_not_taken_for_labeled_measurements():
    # given monitoring/ with a labeled batch's report and, later, live drift runs in their own folder
    keys = ["monitoring/20261205T100000Z-d-1.json", "monitoring/live/20261205T110000Z.json",
            "monitoring/live/20261205T120000Z.json"]

    # when / then only the labeled batch's report is a measurement
    assert labeled_measurement_keys(keys) == ["monitoring/20261205T100000Z-d-1.json"]


def test_status_shows_the_last_live_run_against_the_drift_alarm_line_and_the_labels_joined():
    # given a live drift run that crossed the drift alarm's line, and a labels file partly joined
    now = datetime(2026, 12, 5, 12, 10, tzinfo=UTC)
    live = {"measured_at": "2026-12-05T12:00:00+00:00", "status": "measured", "captured_rows": 150,
            "drifted_share": 0.8, "max_drifted_share": 0.3, "metric": "f1", "estimated_value": 0.746,
            "holdout_score": 0.973}
    labels = {"window": {"end": "2026-12-05T11:00:00+00:00"}, "matched": 100, "unmatched": 3,
              "unmatched_key": "labels/reports/r1/unmatched.csv"}

    # when
    rows = dict(production_lines(live, labels, now))

    # then capture volume, the distance to the drift alarm, the estimate and the join are each one line
    assert "150 predictions captured" in rows["Live"]
    assert "drifted share 0.80 (alarm line 0.30, above: the drift alarm fires)" in rows["Live"]
    assert "estimated f1 0.7460 (holdout 0.9730)" in rows["Live"]
    assert "100 joined, 3 unmatched (labels/reports/r1/unmatched.csv)" in rows["Labels"]


def test_status_says_when_no_live_drift_run_happened_yet_or_the_window_was_too_small():
    now = datetime(2026, 12, 5, 12, 10, tzinfo=UTC)
    assert dict(production_lines(None, None, now))["Live"].startswith("no live drift run yet")
    small = {"measured_at": "2026-12-05T12:00:00+00:00", "status": "too_few_rows", "captured_rows": 4,
             "note": "4 captured rows in the window; live_drift.min_rows is 100"}
    assert "not measured: 4 captured rows" in dict(production_lines(small, None, now))["Live"]
