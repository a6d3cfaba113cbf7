"""The benchmark's pure parts: the synthetic table, the adapted config, template facts, phases and the report.

Nothing here times anything: the figures live in docs/benchmarks.md, measured by `make bench`.
"""

from __future__ import annotations

import io
import signal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline.bench import cases, data, report
from loopline.bench import limits as bench_limits
from loopline.bench import phases as bench_phases
from loopline_runtime.config import FeatureType, PipelineConfig, Task, TrainingConfig
from loopline_runtime.schema import infer_schema, read_csv


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return data.generate_dataset(2_000, seed=3)


def test_synthetic_table_has_the_promised_shape_and_dtypes(table: pd.DataFrame) -> None:
    assert table.shape == (2_000, 30)
    numeric = table[data.NUMERIC_COLUMNS]
    assert len(data.NUMERIC_COLUMNS) == 20 and all(pd.api.types.is_float_dtype(t) for t in numeric.dtypes)
    assert len(data.CATEGORICAL_LEVELS) == 6
    for name, levels in data.CATEGORICAL_LEVELS.items():
        assert pd.api.types.is_string_dtype(table[name]) or table[name].dtype == object
        assert 1 < table[name].nunique() <= levels
    assert [str(table[name].dtype) for name in data.BOOLEAN_COLUMNS] == ["bool", "bool"]
    assert pd.api.types.is_datetime64_any_dtype(table[data.DATE_COLUMN])
    assert str(table[data.TARGET].dtype) == "int64" and set(table[data.TARGET].unique()) == {0, 1}


def test_synthetic_table_is_realistic_missing_values_and_both_classes(table: pd.DataFrame) -> None:
    assert table[data.NUMERIC_COLUMNS].isna().any().sum() >= 5
    assert table[["channel", "device"]].isna().any().all()
    assert table[data.TARGET].notna().all()
    assert 0.25 < table[data.TARGET].mean() < 0.5
    cardinalities = sorted(table[list(data.CATEGORICAL_LEVELS)].nunique())
    assert cardinalities[0] <= 5 and cardinalities[-1] > 100  # low and high cardinality


def test_synthetic_table_is_seeded(table: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(table, data.generate_dataset(2_000, seed=3))
    assert not table.equals(data.generate_dataset(2_000, seed=4))


def test_target_depends_on_the_features(table: pd.DataFrame) -> None:
    # the non-linear term sin(1.7 * num_00) separates the classes; a label independent of it would not
    signal = table["num_00"].pipe(lambda s: (s * 1.7).map(__import__("math").sin))
    positive = table[data.TARGET] == 1
    assert signal[positive].mean() - signal[~positive].mean() > 0.2


def test_the_ingest_path_reads_each_column_as_the_intended_type(
        table: pd.DataFrame, pipeline_config: PipelineConfig) -> None:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    frame = read_csv(buffer.getvalue().encode("utf-8"), source="bench.csv")
    schema = infer_schema(frame, data.adapted_config(pipeline_config))
    kinds: dict[str, FeatureType] = dict(schema.features)
    assert schema.task is Task.CLASSIFICATION and schema.ignored == []
    assert {kinds[name] for name in data.NUMERIC_COLUMNS} == {FeatureType.NUMERIC}
    assert {kinds[name] for name in data.CATEGORICAL_LEVELS} == {FeatureType.CATEGORICAL}
    assert {kinds[name] for name in data.BOOLEAN_COLUMNS} == {FeatureType.BOOLEAN}
    assert kinds[data.DATE_COLUMN] is FeatureType.DATE


def test_adapted_config_keeps_the_repo_settings_but_window_one_and_the_defaults(
        pipeline_config: PipelineConfig) -> None:
    adapted = data.adapted_config(pipeline_config)
    assert adapted.target == data.TARGET and adapted.features is None and adapted.models is None
    assert adapted.training.window == 1
    assert adapted.training.time_budget_seconds == TrainingConfig().time_budget_seconds
    assert adapted.training.seed == pipeline_config.training.seed
    assert adapted.training.holdout_fraction == pipeline_config.training.holdout_fraction
    assert adapted.metric == pipeline_config.metric and adapted.task == pipeline_config.task


def test_function_limits_come_from_the_template(template: dict[str, Any]) -> None:
    properties = template["Resources"]["TrainFunction"]["Properties"]
    limits = bench_limits.function_limits(template, "TrainFunction")
    assert (limits.timeout_s, limits.memory_mb) == (properties["Timeout"], properties["MemorySize"])
    # literal Globals variables are kept, intrinsics (which need a stack) are not
    assert limits.environment["POWERTOOLS_SERVICE_NAME"] == "loopline"
    assert "ARTIFACT_BUCKET" not in limits.environment
    predict = bench_limits.function_limits(template, "PredictFunction")
    assert predict.environment["MAX_BATCH_RECORDS"] == "1000"


def test_function_limits_fall_back_to_globals_then_lambda_defaults() -> None:
    template = {"Globals": {"Function": {"Timeout": 60}}, "Resources": {"F": {"Properties": {}}}}
    limits = bench_limits.function_limits(template, "F")
    assert (limits.timeout_s, limits.memory_mb) == (60, 128)


def _events(*spec: tuple[str, float, str]) -> list[dict[str, Any]]:
    return [{"event": event, "t": t, "label": label} for event, t, label in spec]


def test_phases_of_a_completed_run() -> None:
    events = _events(("load_start", 0.0, "load"), ("load_end", 2.0, "load"), ("search_start", 3.0, "search"),
                     ("cv_start", 3.0, "linear"), ("cv_end", 5.0, "linear"), ("cv_start", 5.0, "forest"),
                     ("cv_end", 45.0, "forest"), ("cv_start", 45.0, "linear"), ("cv_end", 46.0, "linear"),
                     ("search_end", 56.0, "search"), ("holdout_start", 56.0, "score"),
                     ("holdout_end", 57.0, "score"), ("register_start", 58.0, "reg"), ("register_end", 60.0, "reg"))
    phases = {p.name: p for p in bench_phases.phases_from_events(events, end=61.0)}
    assert phases["load"].seconds == 2.0
    assert phases["search: score linear"].seconds == 3.0
    assert phases["search: score forest"].seconds == 40.0
    assert phases["search: refit winner on all training rows"].seconds == 10.0
    assert phases["score"].seconds == 1.0 and phases["reg"].seconds == 2.0
    assert phases["other (split, holdout CSV, profile, S3)"].seconds == pytest.approx(3.0)
    assert all(p.finished for p in phases.values())


def test_phases_of_a_run_killed_inside_a_fit_name_the_candidate() -> None:
    events = _events(("load_start", 0.0, "load"), ("load_end", 1.0, "load"), ("search_start", 1.0, "search"),
                     ("cv_start", 1.0, "linear"), ("cv_end", 11.0, "linear"), ("cv_start", 11.0, "forest"))
    phases = bench_phases.phases_from_events(events, end=900.0)
    unfinished = [p for p in phases if not p.finished]
    assert [(p.name, p.seconds) for p in unfinished] == [("search: score forest", 889.0)]


def test_phases_of_a_run_killed_in_the_refit() -> None:
    events = _events(("search_start", 0.0, "search"), ("cv_start", 0.0, "hgb"), ("cv_end", 30.0, "hgb"))
    phases = bench_phases.phases_from_events(events, end=900.0)
    assert ("search: refit winner on all training rows", 870.0, False) in [
        (p.name, p.seconds, p.finished) for p in phases]


def test_format_table_is_an_aligned_markdown_table() -> None:
    text = report.format_table(["case", "seconds"], [["train", "12.5"], ["baseline", None]])
    lines = text.splitlines()
    assert lines[0] == "| case     | seconds |"
    assert lines[1] == "|----------|---------|"
    assert lines[3] == "| baseline |         |"
    assert len({len(line) for line in lines}) == 1


@pytest.mark.parametrize(("used", "expected"), [
    (450.0, "450 s left (50% of 900 s used)"),
    (1000.0, "OVER by 100 s (111% of 900 s)"),
    (None, "n/a"),
])
def test_margin(used: float | None, expected: str) -> None:
    assert report.margin(used, 900, "s") == expected


def test_units() -> None:
    assert report.seconds(0.0123) == "12.3 ms" and report.seconds(75.04) == "75.0 s" and report.seconds(None) == "n/a"
    assert report.megabytes(2048 * 1024) == "2,048 MB" and report.megabytes(None) == "n/a"


def _report(train: cases.CaseRun, runs: dict[str, cases.CaseRun], events: list[dict[str, Any]],
            handler_s: float | None) -> report.Report:
    facts = {k: "x" for k in ("nproc", "cpu", "memory", "python", "scikit-learn", "pandas", "numpy", "moto",
                              "platform")}
    facts["nproc"] = "2"
    return report.Report(
        command="make bench", date="2025-01-01 00:00 UTC", facts=facts, rows=100_000, columns=30, seed=7,
        train_limits=bench_limits.FunctionLimits("TrainFunction", 900, 3008),
        predict_limits=bench_limits.FunctionLimits("PredictFunction", 30, 2048), config_summary="adapted",
        runs={"train": train, **runs}, phases=bench_phases.phases_from_events(events, end=handler_s), events=events,
        handler_s=handler_s)


def test_report_of_a_killed_train_run_says_so_and_where(tmp_path: Path) -> None:
    events = _events(("load_start", 0.0, "load"), ("load_end", 2.0, "load"), ("search_start", 2.0, "search"),
                     ("cv_start", 2.0, "random_forest"))
    train = cases.CaseRun("train", -signal.SIGALRM, 905.0, 4_000_000, {}, tmp_path / "train.log")
    limits = bench_limits.FunctionLimits("TrainFunction", 900, 3008)
    handler_s = report.handler_seconds(train, events, limits)
    assert handler_s == 900.0
    baseline = cases.CaseRun("baseline", 0, 20.0, 500_000,
                             {"fit_s": 9.0, "prepare_s": 1.0, "holdout_score": 0.81, "warm_median_s": 0.004,
                              "holdout_rows": 25_000}, tmp_path / "b.log")
    imports = cases.CaseRun("imports", 0, 3.0, 140_000, {"import_s": 2.5}, tmp_path / "i.log")
    text = report.render(_report(train, {"baseline": baseline, "imports": imports}, events, handler_s))
    assert "DID NOT COMPLETE" in text
    assert "search: score random_forest (unfinished: killed here)" in text
    assert "search: score random_forest (unfinished: killed here) | 898.0" in text
    assert "| handler wall time        | 900.0 s (killed)" in text
    assert "0.8100" in text
    assert "Not measured: the train case registered no model." in text


def test_handler_seconds_of_a_run_that_failed_otherwise_is_its_last_probe(tmp_path: Path) -> None:
    crashed = cases.CaseRun("train", 1, 50.0, 1, {}, tmp_path / "train.log")
    events = _events(("load_start", 0.0, "load"), ("load_end", 2.5, "load"))
    assert report.handler_seconds(crashed, events, bench_limits.FunctionLimits("TrainFunction", 900, 3008)) == 2.5
    assert report.handler_seconds(crashed, [], bench_limits.FunctionLimits("TrainFunction", 900, 3008)) is None


def test_the_full_search_comparison_sits_next_to_the_default(tmp_path: Path) -> None:
    board = [{"candidate": "hist_gradient_boosting", "params": {}, "cv_score": 0.8, "elapsed_seconds": 400.0}]
    manifest = {"leaderboard": board, "search_budget_seconds": 300.0, "holdout_score": 0.8014,
                "estimator": "hist_gradient_boosting", "params": {}}
    train = cases.CaseRun("train", 0, 70.0, 700_000, {"handler_s": 64.5, "search_rows": [20_000],
                                                      "manifest": {**manifest, "leaderboard": board * 9}},
                          tmp_path / "train.log")
    full = cases.CaseRun("train_full_search", 0, 450.0, 760_000, {"handler_s": 438.8, "search_rows": [50_000],
                                                                  "manifest": manifest},
                         tmp_path / "train_full_search.log")
    both = _report(train, {"train_full_search": full}, [], 64.5)
    text = "\n".join(report.full_search_section(both, full))
    assert "| search on a sample (default) | 20,000  | 64.5 s" in text
    assert "| search on every training row | 50,000  | 438.8 s" in text
    assert "400 s / 300 s" in text
