"""What the monitoring report and `loopline status` say about a measurement: the alarm line (for max_drop, the
holdout minus the drop), whether it fired, the retraining it started and its outcome, every metric next to its
holdout value, the label-free estimate, and the features not checked for drift with why."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from loopline.operate.report.page import render_monitoring_page
from loopline.operate.report.sources import MonitoringReportInputs
from loopline.operate.status import StackStatus, latest_measurement_lines, render_status
from loopline_runtime.config import AlarmConfig
from loopline_runtime.monitoring import alarm_line, distance_to_alarm

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def _run(value: float, *, breached: bool) -> dict[str, Any]:
    line = 0.73 - 0.15
    return {
        "pipeline": "churn", "champion_version": "m-20261205T110000-aaaaaa", "dataset_version": "ds-1", "rows": 1000,
        "metric": "f1_positive", "value": value, "reference_score": 0.73, "quality_drop": 0.73 - value,
        "alarm_threshold": None, "alarm_max_drop": 0.15, "alarm_breached": breached, "alarm_state_before": "OK",
        "alarm_line": line, "distance_to_alarm": value - line, "retraining_execution": None,
        "scores": {"f1_positive": value, "accuracy": 0.91},
        "metrics": {"f1_positive": {"value": value, "holdout": 0.73, "drop": 0.73 - value},
                    "accuracy": {"value": 0.91, "holdout": 0.93, "drop": 0.02}},
        "estimate": {"metrics": {"f1_positive": 0.69}, "rows": 1000, "trusted": True, "reasons": []},
        "estimated_value": 0.69, "champion_holdout_score": 0.73, "drift": {"features": [], "drifted": []},
        "distributions": {}, "reason": "new_data", "measured_at": "2026-12-05T11:59:00+00:00",
    }


def _page(run: dict[str, Any], retraining: dict[str, Any] | None = None) -> str:
    manifest = {"training_profile": {"skipped": {"signup": "date features are not profiled: a new batch is later"}}}
    return html.unescape(render_monitoring_page(MonitoringReportInputs("monitoring/x.json", run, [run], manifest,
                                                                       retraining)))


@pytest.mark.parametrize(("alarm", "metric", "reference", "line"), [
    (AlarmConfig(max_drop=0.15), "f1_positive", 0.73, 0.58),
    (AlarmConfig(max_drop=0.25), "rmse", 10.0, 12.5),
    (AlarmConfig(threshold=0.6), "accuracy", 0.9, 0.6),
])
def test_the_alarm_line_is_the_holdout_minus_the_drop_or_the_threshold(alarm: AlarmConfig, metric: str,
                                                                         reference: float, line: float) -> None:
    # when / then
    assert alarm_line(alarm, metric, reference) == pytest.approx(line)


def test_the_distance_to_the_alarm_is_positive_on_the_good_side_whatever_the_metric() -> None:
    # then
    assert distance_to_alarm("f1_positive", 0.65, 0.58) == pytest.approx(0.07)
    assert distance_to_alarm("f1_positive", 0.50, 0.58) == pytest.approx(-0.08)
    assert distance_to_alarm("rmse", 11.0, 12.5) == pytest.approx(1.5)


def test_the_report_shows_the_alarm_line_every_metric_the_estimate_and_skipped_features() -> None:
    # when a measurement that stayed within the line is rendered
    page = _page(_run(0.65, breached=False))

    # then
    assert "f1_positive 0.5800 (holdout 0.7300 - max_drop 0.1500)" in page
    assert "not breached (0.0700 from the alarm line)" in page
    assert re.search(r"accuracy</td><td>0.9100</td><td>0.9300</td><td>0.0200</td><td>recorded", page)
    assert re.search(r"f1_positive</td><td>0.6500</td><td>0.7300</td><td>0.0800</td><td>decides the alarm", page)
    assert "0.6900 estimated from the probabilities vs 0.6500 measured with the labels (trusted)" in page
    assert "signup</td><td>date features are not profiled" in page
    assert "none (the alarm line was not crossed)" in page


def test_the_report_shows_that_the_alarm_fired_and_what_the_retraining_it_started_became() -> None:
    # given a breach, and the challenger the alarm trained, promoted after winning on the breached batch
    retraining = {"version": "m-20261205T120500-bbbbbb", "reason": "alarm", "outcome": "promoted", "reasons": [],
                  "regime": {"challenger_recent": 0.52, "champion_recent": 0.40, "challenger_rest": 0.71,
                             "champion_rest": 0.73, "margin": 0.05}}

    # when
    page = _page(_run(0.45, breached=True), retraining)

    # then
    assert "breached: the alarm goes to ALARM and its EventBridge rule starts a retraining (0.1300 past the alarm " \
           "line)" in page
    assert ("m-20261205T120500-bbbbbb (alarm): PROMOTED; on the batches that breached 0.5200 vs the old champion's "
            "0.4000, on the rest 0.7100 vs 0.7300 (margin 0.0500)") in page


def test_a_rejected_retraining_is_shown_with_the_gates_reasons() -> None:
    # given
    retraining = {"version": "m-2", "reason": "alarm", "outcome": "rejected", "regime": None,
                  "reasons": ["on the batches that breached the alarm the challenger scores 0.4 ..."]}

    # when
    page = _page(_run(0.45, breached=True), retraining)

    # then
    assert "m-2 (alarm): REJECTED; on the batches that breached the alarm the challenger scores 0.4" in page


def test_status_shows_the_last_measurement_against_the_alarm_line_and_the_other_metrics() -> None:
    # given
    status = StackStatus("loopline-churn", None, None, None, [_run(0.65, breached=False)], [], {}, now=NOW,
                         live=[("Live drift", "2 of 5 features drifted in the last hour")])

    # when
    text = render_status(status)

    # then
    assert "alarm line f1_positive 0.5800: within, 0.0700 from the alarm line" in text
    assert "estimated without labels 0.6900" in text
    assert "also accuracy 0.9100 (holdout 0.9300)" in text
    assert re.search(r"Live drift +2 of 5 features drifted in the last hour", text), text


def test_status_says_when_the_last_measurement_is_past_the_line() -> None:
    # when
    lines = latest_measurement_lines(_run(0.45, breached=True))

    # then
    assert lines[0] == "alarm line f1_positive 0.5800: BREACHED, 0.1300 past the alarm line"


def test_a_models_report_shows_the_gate_after_an_alarm_with_both_numbers() -> None:
    # given the evaluation of a challenger gated after an alarm
    from loopline.operate.report.page import render_model_page
    from loopline.operate.report.sources import ModelReportInputs

    evaluation = {"promote": True, "reasons": ["ok"], "metric": "f1_positive",
                  "regime": {"breached_versions": ["ds-drifted"], "recent_rows": 200, "rest_rows": 1000,
                             "challenger_recent": 0.564, "champion_recent": 0.486, "challenger_rest": 0.747,
                             "champion_rest": 0.773, "margin": 0.05, "passes": True, "reasons": []}}
    inputs = ModelReportInputs("m-1", {"version": "m-1", "metric": "f1_positive", "task": "classification"},
                               evaluation, None, None, [{"version": "m-1"}])

    # when
    page = html.unescape(render_model_page(inputs))

    # then
    assert "batches that breached the alarm</dt><dd>ds-drifted" in page
    assert "challenger 0.5640 vs champion 0.4860 (200 rows)" in page
    assert "challenger 0.7470 vs champion 0.7730 (1000 rows, margin 0.0500)" in page
