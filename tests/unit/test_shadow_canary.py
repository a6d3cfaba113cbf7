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
    ({"canary": {"share": 1.0}}, "gate.canary.share"),
    ({"canary": {"window_minutes": 30}}, "gate.canary.share"),
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
