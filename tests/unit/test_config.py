"""The pipeline config: the project's file is valid, and every invalid setting is named in the error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from loopline_runtime.config import (
    CONFIG_ENV_VAR,
    METRICS,
    PIPELINE_NAME_PATTERN,
    Task,
    bundle_config,
    load_config,
    parse_config,
    runtime_config,
)
from loopline_runtime.errors import InvalidConfig


@pytest.fixture
def raw_config(pipeline_config_path: Path) -> dict[str, Any]:
    """pipeline.yaml as plain data, to be broken one field at a time."""
    return yaml.safe_load(pipeline_config_path.read_text(encoding="utf-8"))


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(data)
    *parents, leaf = dotted.split(".")
    node = changed
    for part in parents:
        node = node.setdefault(part, {}) if not part.isdigit() else node[int(part)]
    node[leaf] = value
    return changed


def test_project_pipeline_file_is_valid(pipeline_config_path: Path, raw_config: dict[str, Any]) -> None:
    # given the project's pipeline.yaml

    # when
    config = load_config(pipeline_config_path)

    # then every setting is read as written
    assert config.name == raw_config["name"]
    assert config.target == raw_config["target"]
    assert config.metric == raw_config["metric"]
    assert config.gate.threshold == raw_config["gate"]["threshold"]
    assert config.alarm.threshold == raw_config["alarm"]["threshold"]
    assert config.alarm.treat_missing_data == raw_config["alarm"]["treat_missing_data"]
    assert config.training.window == raw_config["training"]["window"]
    assert config.training.time_budget_seconds == raw_config["training"]["time_budget_seconds"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("name", "Breast Cancer!", id="name-pattern"),
        pytest.param("target", "", id="target-empty"),
        pytest.param("task", "clustering", id="task-unknown"),
        pytest.param("features", {"mean radius": "text"}, id="features-type"),
        pytest.param("metric", "specificity", id="metric-unknown"),
        pytest.param("gate.threshold", "high", id="gate-threshold"),
        pytest.param("gate.tolerance", -0.1, id="gate-tolerance"),
        pytest.param("alarm.period_seconds", 5, id="alarm-period"),
        pytest.param("alarm.evaluation_periods", 0, id="alarm-evaluation-periods"),
        pytest.param("alarm.treat_missing_data", "sometimes", id="alarm-missing-data"),
        pytest.param("training.window", 0, id="training-window"),
        pytest.param("training.holdout_fraction", 0.9, id="training-holdout"),
        pytest.param("training.min_rows", 3, id="training-min-rows"),
        pytest.param("training.time_budget_seconds", 3600, id="training-budget"),
        pytest.param("models", [{"name": "svm"}], id="models-name"),
        pytest.param("trainng", {"window": 2}, id="unknown-key"),
    ],
)
def test_invalid_field_is_named_in_the_error(raw_config: dict[str, Any], field: str, value: Any) -> None:
    # given the project's config with one bad setting
    data = _set(raw_config, field, value)

    # when
    with pytest.raises(InvalidConfig) as caught:
        parse_config(data, source="pipeline.yaml")

    # then the message names the file and the field (dotted path)
    message = str(caught.value)
    assert message.startswith("pipeline.yaml is invalid")
    expected_location = "models.0.name" if field == "models" else field
    assert f"- {expected_location}" in message


def test_unknown_metric_lists_the_known_ones(raw_config: dict[str, Any]) -> None:
    # given
    data = _set(raw_config, "metric", "specificity")

    # when
    with pytest.raises(InvalidConfig) as caught:
        parse_config(data)

    # then the fix is in the message
    for metric in METRICS:
        assert metric in str(caught.value)


@pytest.mark.parametrize(
    ("task", "metric"),
    [(Task.REGRESSION, name) for name, (task, _) in METRICS.items() if task is Task.CLASSIFICATION]
    + [(Task.CLASSIFICATION, name) for name, (task, _) in METRICS.items() if task is Task.REGRESSION],
)
def test_metric_of_another_task_is_rejected(raw_config: dict[str, Any], task: Task, metric: str) -> None:
    # given a metric that does not apply to the task
    data = _set(_set(raw_config, "task", task.value), "metric", metric)

    # when
    with pytest.raises(InvalidConfig) as caught:
        parse_config(data)

    # then
    assert f"metric {metric!r} does not apply to a {task.value} task" in str(caught.value)


def test_metric_is_optional_and_defaults_by_task(raw_config: dict[str, Any]) -> None:
    # given a config without a metric
    data = copy.deepcopy(raw_config)
    del data["metric"]

    # when
    config = parse_config(data)

    # then each task gets a metric of its own kind
    assert METRICS[config.metric_for(Task.CLASSIFICATION)][0] is Task.CLASSIFICATION
    assert METRICS[config.metric_for(Task.REGRESSION)][0] is Task.REGRESSION


def test_more_datapoints_to_alarm_than_evaluation_periods_is_rejected(raw_config: dict[str, Any]) -> None:
    # given 3 datapoints out of 2 periods
    data = _set(_set(raw_config, "alarm.evaluation_periods", 2), "alarm.datapoints_to_alarm", 3)

    # when
    with pytest.raises(InvalidConfig) as caught:
        parse_config(data)

    # then
    message = str(caught.value)
    assert "alarm.datapoints_to_alarm (3) cannot exceed alarm.evaluation_periods (2)" in message


def test_target_listed_as_feature_is_rejected(raw_config: dict[str, Any]) -> None:
    # given
    data = _set(raw_config, "features", {raw_config["target"]: "categorical", "mean radius": "numeric"})

    # when
    with pytest.raises(InvalidConfig) as caught:
        parse_config(data)

    # then
    assert f"the target {raw_config['target']!r} must not also be listed under features" in str(caught.value)


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    # given
    path = tmp_path / "nope.yaml"

    # when
    with pytest.raises(InvalidConfig) as caught:
        load_config(path)

    # then
    assert "no such file" in str(caught.value)
    assert "loopline init" in str(caught.value)


def test_file_that_is_not_yaml_is_rejected(tmp_path: Path) -> None:
    # given
    path = tmp_path / "pipeline.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")

    # when
    with pytest.raises(InvalidConfig) as caught:
        load_config(path)

    # then
    assert "not valid YAML" in str(caught.value)


def test_top_level_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    # given
    path = tmp_path / "pipeline.yaml"
    path.write_text("- name: x\n", encoding="utf-8")

    # when
    with pytest.raises(InvalidConfig) as caught:
        load_config(path)

    # then
    assert "expected a mapping of settings at the top level, got list" in str(caught.value)


def test_bundled_config_reads_back_the_same(pipeline_config_path: Path, tmp_path: Path) -> None:
    # given the config as the runtime layer bundles it
    config = load_config(pipeline_config_path)

    # when
    bundled = bundle_config(config, tmp_path)

    # then
    assert parse_config(json.loads(bundled.read_text(encoding="utf-8"))) == config


def test_runtime_config_follows_the_environment_override(
    fast_pipeline_config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setenv(CONFIG_ENV_VAR, str(fast_pipeline_config_path))

    # when
    config = runtime_config()

    # then
    assert config == load_config(fast_pipeline_config_path)
    assert config.models is not None and [m.name for m in config.models] == ["linear"]


def test_a_lambda_with_an_invalid_config_fails_at_start_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a config a person broke after the build (the Lambda reads it at import, before any event)
    broken = tmp_path / "pipeline.yaml"
    broken.write_text("name: churn\ntarget: y\ngate: {threshold: high}\nalarm: {threshold: 0.7}\n", encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(broken))

    # when the runtime loads it
    with pytest.raises(InvalidConfig) as caught:
        runtime_config()

    # then the error names the field and shows the fix
    assert "gate.threshold" in str(caught.value)
    assert "gate: {threshold: 0.8}" in str(caught.value)


def test_the_template_allows_exactly_the_pipeline_names_the_config_allows(template: dict[str, Any]) -> None:
    # given the stack parameter that carries the pipeline name into resource names
    allowed = template["Parameters"]["PipelineName"]["AllowedPattern"]

    # then it is the config's own pattern
    assert allowed == PIPELINE_NAME_PATTERN
