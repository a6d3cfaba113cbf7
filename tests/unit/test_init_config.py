"""`loopline init`: the written config loads, carries the runtime's inferred schema and tells a person why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from loopline.cli import main
from loopline.init_config import (
    Baseline,
    InitRefused,
    pipeline_name_for,
    profile_data,
    suggested_threshold,
)
from loopline.params import stack_parameters
from loopline_runtime.config import (
    AlarmConfig,
    FeatureType,
    GateConfig,
    PipelineConfig,
    Task,
    TrainingConfig,
    load_config,
    parse_config,
)
from loopline_runtime.features import DATE_PARTS
from loopline_runtime.metrics import REGISTRY
from loopline_runtime.schema import infer_schema, read_csv

ROWS = 60


def _rng() -> np.random.Generator:
    return np.random.default_rng(3)


def numeric_only() -> pd.DataFrame:
    rng = _rng()
    return pd.DataFrame(
        {"x1": rng.normal(size=ROWS), "x2": rng.uniform(0, 100, ROWS), "label": rng.integers(0, 2, ROWS)}
    )


def mixed_types() -> pd.DataFrame:
    rng = _rng()
    frame = pd.DataFrame({
        "plan": rng.choice(["basic", "pro", "team"], ROWS),
        "is_annual": rng.choice(["yes", "no"], ROWS),
        "signup": pd.date_range("2024-01-01", periods=ROWS, freq="D").strftime("%Y-%m-%d"),
        "fee": rng.normal(30, 5, ROWS).round(2),
        "calls": rng.integers(0, 4, ROWS),
        "churned": rng.choice(["stayed", "left"], ROWS),
    })  # fmt: skip
    frame.loc[: ROWS // 4 - 1, "fee"] = np.nan  # 25% missing
    frame.loc[::5, "plan"] = None
    return frame


def regression() -> pd.DataFrame:
    rng = _rng()
    x = rng.uniform(0, 10, ROWS)
    return pd.DataFrame({"x": x, "kind": rng.choice(["a", "b"], ROWS), "price": 3.5 * x + rng.normal(size=ROWS)})


def string_classes() -> pd.DataFrame:
    rng = _rng()
    return pd.DataFrame({"width": rng.normal(size=ROWS), "species": rng.choice(["setosa", "versicolor", "virginica"],
                                                                              ROWS)})


def with_id() -> pd.DataFrame:
    frame = numeric_only()
    frame.insert(0, "customer_id", [f"C-{i:04d}" for i in range(ROWS)])
    return frame


def odd_column_names() -> pd.DataFrame:
    rng = _rng()
    return pd.DataFrame({"yes": rng.normal(size=ROWS), "1": rng.normal(size=ROWS), "a: b #c": rng.normal(size=ROWS),
                         "größe": rng.normal(size=ROWS), "target": rng.choice(["on", "off"], ROWS)})


FRAMES = {
    "numeric only": (numeric_only, "label"),
    "categoricals, booleans, dates, missing values": (mixed_types, "churned"),
    "regression": (regression, "price"),
    "string class labels": (string_classes, "species"),
    "an id column": (with_id, "label"),
    "odd column names": (odd_column_names, "target"),
}


def write_csv(frame: pd.DataFrame, path: Path, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + frame.to_csv(index=False).encode("utf-8"))
    return path


def run_init(csv: Path, target: str, output: Path, *extra: str) -> int:
    return main(["init", str(csv), "--target", target, "--output", str(output), *extra])


@pytest.mark.parametrize("bom", [False, True], ids=["utf-8", "utf-8 with BOM"])
@pytest.mark.parametrize("case", list(FRAMES))
def test_the_written_config_loads_and_holds_the_runtime_inferred_schema(case: str, bom: bool, tmp_path: Path):
    # given
    make, target = FRAMES[case]
    csv = write_csv(make(), tmp_path / "data.csv", bom=bom)
    expected = infer_schema(read_csv(csv.read_bytes()), _bare_config(target))

    # when
    code = run_init(csv, target, tmp_path / "pipeline.yaml")

    # then
    config = load_config(tmp_path / "pipeline.yaml")
    assert code == 0
    assert config.target == target
    assert config.task is expected.task
    assert config.features == expected.features
    assert config.ignore == expected.ignored
    assert config.metric == {Task.CLASSIFICATION: "f1", Task.REGRESSION: "r2"}[expected.task]


def test_types_and_notes_of_a_mixed_frame_are_written_as_trailing_comments(tmp_path: Path):
    # given
    csv = write_csv(mixed_types(), tmp_path / "churn.csv")

    # when
    run_init(csv, "churned", tmp_path / "pipeline.yaml")

    # then
    lines = _feature_lines(tmp_path / "pipeline.yaml")
    assert lines["plan"].startswith("plan: categorical")
    assert "3 levels:" in lines["plan"] and "20% missing" in lines["plan"]
    assert lines["is_annual"].startswith("is_annual: boolean") and "no/yes" in lines["is_annual"]
    assert lines["signup"].startswith("signup: date")
    assert f"looks like a date (2024-01-01 to 2024-02-29): expanded to {'/'.join(DATE_PARTS)}" in lines["signup"]
    assert lines["fee"].startswith("fee: numeric") and "25% missing (imputed)" in lines["fee"]
    assert "low-cardinality integer (0, 1, 2, 3): consider categorical" in lines["calls"]


def test_an_id_like_column_is_ignored_with_the_reason(tmp_path: Path):
    # given
    csv = write_csv(with_id(), tmp_path / "data.csv")

    # when
    run_init(csv, "label", tmp_path / "pipeline.yaml")

    # then
    text = (tmp_path / "pipeline.yaml").read_text(encoding="utf-8")
    assert "ignore:\n  - customer_id  # a distinct value on every row (e.g. 'C-0000'): looks like an id" in text
    assert "customer_id" not in (load_config(tmp_path / "pipeline.yaml").features or {})


def test_every_setting_is_written_with_a_comment_and_training_defaults_come_from_the_model(tmp_path: Path):
    # given
    csv = write_csv(numeric_only(), tmp_path / "data.csv")

    # when
    run_init(csv, "label", tmp_path / "pipeline.yaml")

    # then
    text = (tmp_path / "pipeline.yaml").read_text(encoding="utf-8")
    written = yaml.safe_load(text)
    assert set(written) == set(PipelineConfig.model_fields) - {"models"}  # models: commented out, defaults apply
    for section, model in (("training", TrainingConfig), ("alarm", AlarmConfig), ("gate", GateConfig)):
        fields = model.model_fields
        assert set(written[section]) == set(fields)
        for key in written[section]:
            previous = text.splitlines()[text.splitlines().index(f"  {key}: {_yaml_value(written[section][key])}") - 1]
            assert previous.lstrip().startswith("#"), f"{section}.{key} has no comment above it"
    assert written["training"] == TrainingConfig().model_dump()
    assert "> 0.05 and < 0.5" in text  # holdout_fraction's bounds, read from the model
    assert "# models:" in text


def test_thresholds_sit_just_above_the_trivial_baseline_and_say_so(tmp_path: Path):
    # given: 75% of one class; always predicting it scores macro f1 = (2*0.75/1.75)/2 = 0.4286
    frame = numeric_only()
    frame["label"] = ["a"] * 45 + ["b"] * 15
    csv = write_csv(frame, tmp_path / "data.csv")

    # when
    run_init(csv, "label", tmp_path / "pipeline.yaml")

    # then
    config = load_config(tmp_path / "pipeline.yaml")
    text = (tmp_path / "pipeline.yaml").read_text(encoding="utf-8")
    assert config.gate.threshold == 0.43
    assert "always predicting 'a' scores f1 0.429" in text
    assert "0.0 accepts any model" in text


def test_the_alarm_is_champion_relative_by_default_and_says_what_the_drop_means(tmp_path: Path):
    # given a classification and a regression CSV
    classification = write_csv(numeric_only(), tmp_path / "classes.csv")
    numbers = write_csv(regression(), tmp_path / "numbers.csv")

    # when loopline init writes a config for each, once with an error metric
    run_init(classification, "label", tmp_path / "classes.yaml")
    run_init(numbers, "price", tmp_path / "numbers.yaml")
    text = (tmp_path / "numbers.yaml").read_text(encoding="utf-8")
    (tmp_path / "rmse.yaml").write_text(text.replace("metric: r2", "metric: rmse"), encoding="utf-8")

    # then the alarm watches the drop below the champion's own holdout score, not an absolute floor
    for name in ("classes", "numbers"):
        config = load_config(tmp_path / f"{name}.yaml")
        assert config.alarm.threshold is None
        assert config.alarm.max_drop == REGISTRY[config.metric or ""].default_max_drop
        assert stack_parameters(config)["AlarmMetricName"] == "ModelQualityDrop"
    # and the comment says what the drop means for the metric; an absolute floor is one edit away
    assert "r2 more than 0.1 below its own holdout r2" in text
    assert "Or an absolute floor" in text and "threshold: null" in text


def test_a_regression_baseline_is_the_mean_predictor():
    # given
    frame = regression()

    # when
    profile = profile_data(frame, "price")

    # then
    assert profile.task is Task.REGRESSION
    assert profile.baseline.metric == "r2"
    assert profile.baseline.score == pytest.approx(0.0)
    assert profile.baseline.predictor.startswith("always predicting the mean")
    assert suggested_threshold(profile.baseline) == 0.01


def test_an_error_metric_threshold_sits_just_below_the_baseline():
    assert suggested_threshold(Baseline(metric="rmse", score=12.345, predictor="mean")) == 12.34


def test_an_existing_file_is_not_overwritten_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # given
    csv = write_csv(numeric_only(), tmp_path / "data.csv")
    output = tmp_path / "pipeline.yaml"
    output.write_text("mine\n", encoding="utf-8")

    # when
    refused = run_init(csv, "label", output)
    error = capsys.readouterr().err
    forced = run_init(csv, "label", output, "--force")

    # then
    assert refused == 1
    assert "already exists; pass --force" in error and "Traceback" not in error
    assert forced == 0
    assert load_config(output).target == "label"


def test_the_default_output_is_pipeline_yaml_in_the_current_directory(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    # given
    csv = write_csv(numeric_only(), tmp_path / "My Sales 2024.csv")
    monkeypatch.chdir(tmp_path)

    # when
    code = main(["init", str(csv), "--target", "label"])

    # then
    assert code == 0
    assert load_config(tmp_path / "pipeline.yaml").name == "my-sales-2024"


def test_a_target_absent_from_the_csv_is_refused_with_the_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # given
    csv = write_csv(numeric_only(), tmp_path / "data.csv")

    # when
    code = run_init(csv, "Label", tmp_path / "pipeline.yaml")

    # then
    error = capsys.readouterr().err.strip()
    assert code == 1
    assert error.count("\n") == 0
    assert "'Label' is not a column" in error and "did you mean 'label'?" in error
    assert "columns: 'x1', 'x2', 'label'" in error
    assert not (tmp_path / "pipeline.yaml").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"", "is empty"), (b"\xff\xfe\x00a", "not UTF-8"), (b"only_one_column\n1\n2\n", "single column")],
    ids=["empty", "not utf-8", "one column"],
)
def test_an_unreadable_csv_is_refused_with_the_reason(body: bytes, message: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    # given
    csv = tmp_path / "data.csv"
    csv.write_bytes(body)

    # when
    code = run_init(csv, "label", tmp_path / "pipeline.yaml")

    # then
    error = capsys.readouterr().err
    assert code == 1
    assert message in error and "Traceback" not in error


def test_a_missing_csv_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # when
    code = run_init(tmp_path / "nope.csv", "label", tmp_path / "pipeline.yaml")

    # then
    assert code == 1
    assert "cannot read" in capsys.readouterr().err


def test_an_invalid_name_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # given
    csv = write_csv(numeric_only(), tmp_path / "data.csv")

    # when
    code = run_init(csv, "label", tmp_path / "pipeline.yaml", "--name", "My Pipeline")

    # then
    assert code == 1
    assert "not a valid pipeline name" in capsys.readouterr().err


def test_a_frame_with_only_an_id_besides_the_target_is_refused():
    # given
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(ROWS)], "y": [0, 1] * (ROWS // 2)})

    # when / then
    with pytest.raises(InitRefused, match="no feature column"):
        profile_data(frame, "y")


def test_the_summary_names_features_by_type_the_ignored_columns_and_next_steps(tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str]):
    # given
    frame = mixed_types()
    frame.insert(0, "account_id", [f"A{i}" for i in range(ROWS)])
    csv = write_csv(frame, tmp_path / "churn.csv")
    output = tmp_path / "churn.yaml"

    # when
    run_init(csv, "churned", output)

    # then
    out = capsys.readouterr().out
    assert f"{ROWS} rows" in out
    assert "5: 2 numeric, 1 categorical, 1 boolean, 1 date" in out
    assert "account_id" in out.split("ignored", 1)[1].splitlines()[0]
    assert "metric    f1" in out
    assert f"local up --config {output}" in out


def test_pipeline_names_from_file_names():
    assert pipeline_name_for(Path("My Sales 2024.csv")) == "my-sales-2024"
    assert pipeline_name_for(Path("___.csv")) == "pipeline"
    assert len(pipeline_name_for(Path("x" * 80 + ".csv"))) == 40


def _bare_config(target: str) -> PipelineConfig:
    return parse_config({"name": "t", "target": target, "gate": {"threshold": 0}, "alarm": {"threshold": 0}})


def _feature_lines(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").split("features:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return {line.strip().split(":", 1)[0]: line.strip() for line in lines}


def _yaml_value(value: object) -> str:
    return yaml.safe_dump(value).removesuffix("\n...\n").strip()


def test_feature_types_are_the_runtime_types():
    # given
    profile = profile_data(mixed_types(), "churned")

    # then
    assert profile.features == {"plan": FeatureType.CATEGORICAL, "is_annual": FeatureType.BOOLEAN,
                                "signup": FeatureType.DATE, "fee": FeatureType.NUMERIC, "calls": FeatureType.NUMERIC}


def test_a_semicolon_csv_is_detected_named_and_written_as_csv_delimiter(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]):
    # given a semicolon export (decimal points kept: the delimiter is the only difference)
    csv = tmp_path / "churn.csv"
    csv.write_text(mixed_types().to_csv(index=False, sep=";"), encoding="utf-8")
    output = tmp_path / "churn.yaml"

    # when
    code = run_init(csv, "churned", output)

    # then
    assert code == 0
    assert "delimiter semicolons (';', detected; csv.delimiter)" in capsys.readouterr().out
    config = load_config(output)
    assert config.csv.delimiter == ";"
    assert set(config.features or {}) == set(mixed_types().columns) - {"churned"}


def test_day_month_dates_that_read_either_way_are_warned(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # given dates written day/month/year whose days never pass 12
    frame = mixed_types()
    frame["signup"] = [f"{(i % 12) + 1:02d}/{(i % 11) + 1:02d}/2023" for i in range(ROWS)]
    csv = write_csv(frame, tmp_path / "churn.csv")

    # when
    run_init(csv, "churned", tmp_path / "churn.yaml")

    # then
    out = capsys.readouterr().out
    assert "warning   the dates of 'signup' read either way ('01/01/2023'" not in out  # equal parts are not ambiguous
    assert "the dates of 'signup' read either way" in out and "read month first" in out
    assert "YYYY-MM-DD" in out


def test_a_near_miss_target_asks_did_you_mean(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # given
    csv = write_csv(mixed_types(), tmp_path / "churn.csv")

    # when
    code = run_init(csv, "churn", tmp_path / "churn.yaml")

    # then
    assert code == 1
    assert "did you mean 'churned'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("labels", "metric"),
    [
        (["no"] * 88 + ["yes"] * 12, "f1_positive"),  # the rare class sorts second: it is the positive class
        (["stayed"] * 88 + ["left"] * 12, "roc_auc"),  # the rare class sorts first: a metric blind to which is
        (["no"] * 60 + ["yes"] * 40, "f1"),  # balanced enough: every class counts equally
        ([0] * 88 + [1] * 12, "f1_positive"),
    ],
    ids=["rare yes", "rare left", "balanced", "rare 1"],
)
def test_init_picks_a_metric_that_suits_the_target_and_says_why(labels: list[object], metric: str, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]):
    # given a binary target with this balance
    rng = _rng()
    frame = pd.DataFrame({"x1": rng.normal(size=100), "label": labels})
    csv = write_csv(frame, tmp_path / "data.csv")

    # when
    run_init(csv, "label", tmp_path / "pipeline.yaml")

    # then the metric suits it, the threshold and alarm follow it, and an imbalanced choice says why
    config = load_config(tmp_path / "pipeline.yaml")
    text = (tmp_path / "pipeline.yaml").read_text(encoding="utf-8")
    out = capsys.readouterr().out
    assert config.metric == metric
    assert config.alarm.max_drop == REGISTRY[metric].default_max_drop
    if metric != "f1":
        assert "12% of the rows" in text and "hardly move" in text
        assert "why" in out and "12% of the rows" in out
    else:
        assert "every class counts equally" in text


def test_the_imbalanced_baseline_finds_no_positive_so_its_threshold_only_rejects_a_model_that_learned_nothing(
        tmp_path: Path):
    # given 12% positives: always predicting "no" has an F1 of 0 for "yes"
    rng = _rng()
    csv = write_csv(pd.DataFrame({"x1": rng.normal(size=100), "label": ["no"] * 88 + ["yes"] * 12}),
                    tmp_path / "data.csv")

    # when
    run_init(csv, "label", tmp_path / "pipeline.yaml")

    # then
    config = load_config(tmp_path / "pipeline.yaml")
    assert config.gate.threshold == 0.01
    assert "always predicting 'no' scores f1_positive 0.000" in (tmp_path / "pipeline.yaml").read_text("utf-8")
