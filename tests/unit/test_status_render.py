"""`loopline status` on recorded values: what a user sees about quarantines, ignored objects and approvals."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from loopline.operate.status import StackStatus, known_top_prefixes, render_status

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
