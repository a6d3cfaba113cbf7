"""Shadow and canary decisions that need no stack: the live comparison, the sticky split, the config's bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopline.params import stack_parameters
from loopline_runtime.canary import canary_active, routing_share
from loopline_runtime.config import PipelineConfig, parse_config
from loopline_runtime.errors import InvalidConfig
from loopline_runtime.feature_schema import Task
from loopline_runtime.shadow import live_scores


def _row(label: str, champion: str, shadow: str) -> dict[str, Any]:
    def answer(value: str) -> dict[str, Any]:
        return {"prediction": value, "probabilities": {"no": 0.9 if value == "no" else 0.1,
                                                       "yes": 0.1 if value == "no" else 0.9}}
    return {"label": label, "champion": answer(champion), "shadow": answer(shadow)}


def test_live_scores_compare_both_models_on_the_same_rows() -> None:
    rows = [_row("yes", "yes", "yes"), _row("no", "no", "yes"), _row("no", "no", "no"), _row("yes", "yes", "no")]
    champion, shadow = live_scores("accuracy", Task.CLASSIFICATION, rows)
    assert (champion, shadow) == (1.0, 0.5)
    assert live_scores("roc_auc", Task.CLASSIFICATION, rows) == (1.0, 0.5)


def test_live_scores_of_a_regressor() -> None:
    rows = [{"label": "3.0", "champion": {"prediction": 3.0}, "shadow": {"prediction": 5.0}},
            {"label": "1", "champion": {"prediction": 2.0}, "shadow": {"prediction": 1.0}}]
    assert live_scores("mae", Task.REGRESSION, rows) == (0.5, 1.0)


def test_the_canary_split_is_sticky_and_even() -> None:
    keys = [f"caller:{n}" for n in range(20_000)]
    assert [routing_share(k) for k in keys[:50]] == [routing_share(k) for k in keys[:50]]
    share = sum(routing_share(k) < 0.1 for k in keys) / len(keys)
    assert 0.09 < share < 0.11


def test_a_canary_is_active_until_its_window_ends() -> None:
    now = datetime.now(UTC)
    canary = {"until": (now + timedelta(seconds=30)).isoformat()}
    assert canary_active(canary, now) and not canary_active(canary, now + timedelta(seconds=31))
    assert not canary_active(None, now)


def _config(pipeline_config: PipelineConfig, **gate: Any) -> PipelineConfig:
    data = pipeline_config.model_dump(mode="json")
    data["gate"].update(gate)
    return parse_config(data)


@pytest.mark.parametrize(("gate", "field"), [
    ({"shadow": {"min_rows": 5}}, "gate.shadow.min_rows"),
    ({"shadow": {"max_days": 31}}, "gate.shadow.max_days"),
    ({"shadow": {"max_days": 30, "check_seconds": 60}}, "gate.shadow"),
    ({"canary": {"share": 1.0}}, "gate.canary.share"),
    ({"canary": {"window_minutes": 30}}, "gate.canary.share"),
    ({"canary": {"share": 0.1, "window_minutes": 10_080, "check_seconds": 60}}, "gate.canary"),
])
def test_out_of_range_shadow_and_canary_settings_name_the_field(
        pipeline_config: PipelineConfig, gate: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidConfig, match=field.replace(".", r"\.")):
        _config(pipeline_config, **gate)


def test_canary_alarm_lines_reach_the_stack(pipeline_config: PipelineConfig) -> None:
    config = _config(pipeline_config, canary={"share": 0.2, "max_error_rate": 0.01, "max_latency_ms": 250})
    parameters = stack_parameters(config)
    assert (parameters["PredictErrorRateThreshold"], parameters["PredictLatencyThresholdMs"]) == ("0.01", "250")
    assert "PredictErrorRateThreshold" not in stack_parameters(pipeline_config)


def test_status_shows_the_canary_window_then_its_end() -> None:
    from loopline.operate.status import canary_lines

    now = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    canary = {"share": 0.1, "until": "2026-12-05T14:05:00+00:00", "previous": {"version": "m-old"}}
    assert canary_lines(canary, now) == ["canary: answers 10% of callers until 14:05:00 UTC (300 s left), m-old the "
                                         "rest; an alarm rolls it back"]
    assert canary_lines(canary, now + timedelta(minutes=6))[0].startswith("canary window ended 14:05:00")
    assert canary_lines(None, now) == []


def test_status_shows_the_last_shadow_decision_with_both_live_scores() -> None:
    from loopline.operate.status import shadow_lines

    now = datetime(2026, 12, 5, 14, 0, tzinfo=UTC)
    shadow = {"version": "m-new", "status": "rejected", "ended_at": "2026-12-05T13:59:00+00:00",
              "decided_by": "live labels", "metric": "f1", "shadow_live_score": 0.9, "champion_live_score": 1.0,
              "rows": 150}
    assert shadow_lines(shadow, now, lambda *a: " ".join(a)) == [
        ("Shadow", "last: m-new rejected 13:59:00 (60 s ago) by live labels  live f1 0.9000 vs champion 1.0000 "
                   "on 150 rows")]


def test_a_shadow_needs_capture(pipeline_config: PipelineConfig) -> None:
    data = pipeline_config.model_dump(mode="json")
    data["gate"]["shadow"] = {"min_rows": 50}
    data["capture"]["enabled"] = False
    with pytest.raises(InvalidConfig, match=r"capture\.enabled is false"):
        parse_config(data)
