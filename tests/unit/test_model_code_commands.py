"""`loopline validate` proves the config's model code before anything is deployed; `loopline init --code` writes a
starter that passes it; the runtime layer packages exactly the declared files."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from loopline.cli import main
from loopline_runtime.config import BUNDLED_CODE_DIR, PipelineConfig, bundle_config, load_config
from loopline_runtime.errors import InvalidConfig
from tests.support.configs import write_fast_config
from tests.support.model_code import copy_model_code


@pytest.fixture
def data_csv(breast_cancer: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "data" / "cancer.csv"
    path.parent.mkdir()
    breast_cancer.to_csv(path, index=False)
    return path


def _config(pipeline_config: PipelineConfig, directory: Path, candidate: dict[str, object]) -> Path:
    path = write_fast_config(pipeline_config, directory / "pipeline.yaml")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["models"] = [candidate]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_validate_with_data_proves_the_model_code_and_says_what_it_checked(
    pipeline_config: PipelineConfig, tmp_path: Path, data_csv: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # given a config naming the ratio example beside it
    copy_model_code("ratio_model.py", tmp_path, "model.py")
    config = _config(pipeline_config, tmp_path, {"name": "mine", "code": "model.py:build"})

    # when it is validated on the user's CSV
    code = main(["validate", "--config", str(config), "--data", str(data_csv)])

    # then it was built, fitted twice, timed, compiled and parity-checked
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("mine: built, fitted on ")
    assert "compiled to ONNX, parity on" in out[0]
    assert out[-1] == "ok"


@pytest.mark.parametrize(("source", "expected"), [
    ("def build(schema):\n    raise ValueError('no ratio column')\n",
     "loopline validate: error: model.py:build raised ValueError: no ratio column (model.py line 2)\n"),
    ("import not_installed_anywhere\n",
     "loopline validate: error: model.py:build: model.py imports 'not_installed_anywhere', which is neither "),
])
def test_validate_refuses_bad_code_on_one_line_with_exit_code_2(
    pipeline_config: PipelineConfig, tmp_path: Path, data_csv: Path, capsys: pytest.CaptureFixture[str],
    source: str, expected: str,
) -> None:
    # given model code that cannot be used
    (tmp_path / "model.py").write_text(source, encoding="utf-8")
    config = _config(pipeline_config, tmp_path, {"name": "mine", "code": "model.py:build"})

    # when it is validated
    code = main(["validate", "--config", str(config), "--data", str(data_csv)])

    # then one stderr line says what is wrong, no traceback
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(expected)
    assert err.count("\n") == 1 and "Traceback" not in err


def test_validate_names_the_step_that_cannot_be_compiled(
    pipeline_config: PipelineConfig, tmp_path: Path, data_csv: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # given model code with an unconvertible step, to be served as ONNX (the default)
    copy_model_code("clipped_model.py", tmp_path)
    config = _config(pipeline_config, tmp_path, {"name": "mine", "code": "clipped_model.py:build"})

    # when it is validated
    code = main(["validate", "--config", str(config), "--data", str(data_csv)])

    # then the user sees which step and the ways out
    err = capsys.readouterr().err
    assert code == 2
    assert "step 'model__clip' (Clipped) cannot be compiled to ONNX" in err
    assert "update_registered_converter" in err and "`serving: scikit-learn`" in err


def test_init_code_writes_a_starter_model_that_validates(
    tmp_path: Path, data_csv: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # given a labeled CSV
    config = tmp_path / "project" / "pipeline.yaml"

    # when init writes a config with a starter model.py, and validate proves it on the CSV
    init_code = main(["init", str(data_csv), "--target", "diagnosis", "--output", str(config), "--code"])
    validate_code = main(["validate", "--config", str(config), "--data", str(data_csv)])

    # then the config names the starter beside it, and the starter builds, fits, compiles and agrees
    out = capsys.readouterr().out
    assert (init_code, validate_code) == (0, 0)
    assert next((c.name, c.code) for c in load_config(config).models or []) == ("mine", "model.py:build")
    assert "def build(schema):" in (config.parent / "model.py").read_text(encoding="utf-8")
    assert "mine: built, fitted on" in out and "parity on" in out


def test_the_runtime_layer_packages_exactly_the_declared_code(pipeline_config: PipelineConfig, tmp_path: Path) -> None:
    # given a config naming model.py and one helper, beside an undeclared file
    source = tmp_path / "project"
    for name in ("model.py", "ratios.py", "notes_and_secrets.py"):
        (source / name).parent.mkdir(exist_ok=True)
        (source / name).write_text(f"# {name}\n", encoding="utf-8")
    config = load_config(_config(pipeline_config, source,
                                 {"name": "mine", "code": "model.py:build", "helpers": ["ratios.py"]}))

    # when the runtime package is bundled
    package = tmp_path / "layer" / "loopline_runtime"
    package.mkdir(parents=True)
    bundle_config(config, package, config_dir=source)

    # then only the declared files are packaged, next to the config that names them
    assert sorted(p.name for p in (package / BUNDLED_CODE_DIR).iterdir()) == ["model.py", "ratios.py"]
    assert json.loads((package / "pipeline.json").read_text())["models"][0]["code"] == "model.py:build"


def test_bundling_refuses_a_config_whose_code_file_is_missing(pipeline_config: PipelineConfig, tmp_path: Path) -> None:
    # given a config naming a model file that is not beside it
    config = load_config(_config(pipeline_config, tmp_path, {"name": "mine", "code": "model.py:build"}))

    # when it is bundled
    with pytest.raises(InvalidConfig, match=r"model\.py: no such file beside the pipeline config"):
        bundle_config(config, tmp_path, config_dir=tmp_path)
