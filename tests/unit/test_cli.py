"""The `loopline` command line: params, validate, example, help texts and error output."""

from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd
import pytest
import yaml

from loopline.cli import build_parser, main
from loopline.examples import example_datasets
from loopline.params import stack_parameters
from loopline_runtime.config import PipelineConfig, Task, load_config
from loopline_runtime.schema import infer_task, read_csv

SUBCOMMANDS = [["init"], ["example"], ["validate"], ["params"], ["demo"], ["local", "up"]]


def test_params_prints_the_stack_parameters_of_the_config(pipeline_config_path: Path, pipeline_config: PipelineConfig,
                                                          capsys: pytest.CaptureFixture[str]):
    # when
    code = main(["params", "--config", str(pipeline_config_path)])

    # then
    printed = dict(pair.split("=", 1) for pair in shlex.split(capsys.readouterr().out))
    assert code == 0
    assert printed == stack_parameters(pipeline_config)
    assert float(printed["AlarmThreshold"]) == pipeline_config.alarm.threshold
    assert printed["PipelineName"] == pipeline_config.name


def test_params_quotes_nothing_for_a_valid_config_so_make_deploy_can_split_it(pipeline_config_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]):
    # given a config without a schedule: plain Key=value words, whichever way a shell passes them on

    # when
    main(["params", "--config", str(pipeline_config_path)])

    # then
    out = capsys.readouterr().out
    assert "'" not in out and '"' not in out
    assert out.split() == shlex.split(out)


@pytest.mark.parametrize("command", ["params", "validate"])
def test_an_invalid_config_exits_2_with_the_message_and_no_traceback(command: str, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]):
    # given
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"name": "Bad Name", "target": "y", "gate": {"threshold": 0.5}}), "utf-8")

    # when
    code = main([command, "--config", str(config)])

    # then
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert f"{config} is invalid" in captured.err
    assert "name: String should match pattern" in captured.err and "alarm: Field required" in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("command", ["params", "validate"])
def test_a_missing_config_exits_2_pointing_at_init(command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # when
    code = main([command, "--config", str(tmp_path / "nope.yaml")])

    # then
    assert code == 2
    assert "loopline init DATA.csv --target COLUMN" in capsys.readouterr().err


def test_validate_prints_ok_for_a_valid_config(pipeline_config_path: Path, capsys: pytest.CaptureFixture[str]):
    # when
    code = main(["validate", "--config", str(pipeline_config_path)])

    # then
    assert code == 0
    assert capsys.readouterr().out == "ok\n"


@pytest.mark.parametrize("name", list(example_datasets()))
def test_example_writes_a_labeled_csv_that_init_turns_into_a_config(name: str, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]):
    # given
    example = example_datasets()[name]
    csv, config_path = tmp_path / f"{name}.csv", tmp_path / "pipeline.yaml"

    # when
    written = main(["example", name, "--output", str(csv)])
    printed = capsys.readouterr().out
    initialised = main(["init", str(csv), "--target", example.target, "--output", str(config_path)])

    # then
    frame = read_csv(csv.read_bytes())
    config = load_config(config_path)
    assert (written, initialised) == (0, 0)
    assert f" init {csv} --target {example.target}\n" in printed
    assert config.target == example.target
    assert config.task is infer_task(frame[example.target])
    assert set(config.features or {}) == set(frame.columns) - {example.target}


def test_text_class_names_of_iris_and_wine_and_a_numeric_diabetes_target():
    # when
    examples = example_datasets()
    iris, wine, diabetes = (examples[n].load() for n in ("iris", "wine", "diabetes"))

    # then
    assert sorted(iris["species"].unique()) == ["setosa", "versicolor", "virginica"]
    assert sorted(wine["cultivar"].unique()) == ["class_0", "class_1", "class_2"]
    assert infer_task(diabetes["progression"]) is Task.REGRESSION
    assert (len(iris), len(wine), len(diabetes)) == (150, 178, 442)


def test_example_defaults_to_name_csv_and_does_not_overwrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]):
    # given
    monkeypatch.chdir(tmp_path)
    (tmp_path / "iris.csv").write_text("mine\n", encoding="utf-8")

    # when
    refused = main(["example", "iris"])
    error = capsys.readouterr().err
    forced = main(["example", "iris", "--force"])

    # then
    assert refused == 1 and "iris.csv already exists" in error
    assert forced == 0
    assert list(pd.read_csv(tmp_path / "iris.csv").columns)[-1] == "species"


def test_an_unknown_example_is_a_usage_error_listing_the_names(capsys: pytest.CaptureFixture[str]):
    # when
    with pytest.raises(SystemExit) as exit_:
        main(["example", "titanic"])

    # then
    assert exit_.value.code == 2
    assert "breast-cancer" in capsys.readouterr().err


@pytest.mark.parametrize("words", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help_with_a_description(words: list[str], capsys: pytest.CaptureFixture[str]):
    # when
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*words, "--help"])

    # then
    text = capsys.readouterr().out
    assert exit_.value.code == 0
    assert text.startswith(f"usage: loopline {' '.join(words)}")
    assert len(text.split("\n\n")) >= 3  # usage, description, options


@pytest.mark.parametrize("words", [["init"], ["example"], ["validate"], ["params"]], ids=" ".join)
def test_new_subcommands_show_examples_in_their_help(words: list[str], capsys: pytest.CaptureFixture[str]):
    # when
    with pytest.raises(SystemExit):
        build_parser().parse_args([*words, "--help"])

    # then
    examples = capsys.readouterr().out.split("examples:\n", 1)[1]
    assert f"loopline {words[0]}" in examples


def test_a_retraining_schedule_with_spaces_reaches_sam_as_one_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    # given a config that retrains every Monday at 03:00 (a cron expression holds spaces)
    from samcli.cli.types import CfnParameterOverridesType

    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"name": "p", "target": "y", "gate": {"threshold": 0.5},
                                      "alarm": {"max_drop": 0.1}, "training": {"schedule": "cron(0 3 ? * MON *)"}}),
                      "utf-8")

    # when its parameters are printed and passed to sam deploy as one argument, as the Makefile does
    main(["params", "--config", str(config)])
    parsed = CfnParameterOverridesType().convert((capsys.readouterr().out.strip(),), None, None)

    # then sam reads the whole expression, and the schedule is enabled
    assert parsed["RetrainingSchedule"] == "cron(0 3 ? * MON *)"
    assert parsed["RetrainingScheduleState"] == "ENABLED"
