"""moto gap: requirement-only layers are not pip-installed. The emulator gives each one a view of exactly the venv
distributions it names, and workers run without the venv's site-packages: a function sees what its layers hold,
as on AWS. The predict, batch and monitor functions, on ServingLayer, cannot import scikit-learn, pandas or pydantic,
nor ingest, on ServingLayer and DataLayer, scikit-learn."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from loopline.emulator.lambda_workers import Worker, WorkerSpec
from loopline.emulator.layer_sites import requirement_names, runtime_site, stage_requirements_layer
from loopline.emulator.template_loading import load_template
from loopline_runtime.config import bundle_config, load_config

REPO = Path(__file__).resolve().parents[3]
TRAINING_ONLY = ("sklearn", "pandas", "scipy", "joblib", "skl2onnx", "onnx", "pydantic", "yaml")


def _staged_layer(name: str, tmp_path: Path) -> Path:
    staged = tmp_path / "layers" / name
    shutil.copytree(REPO / "layers" / name, staged, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    stage_requirements_layer(staged)
    return staged


def _run(tmp_path: Path, code: str, layers: tuple[Path, ...], event: dict[str, object],
         environment: tuple[tuple[str, str], ...] = ()) -> dict[str, object]:
    code_dir = tmp_path / "code"
    code_dir.mkdir(exist_ok=True)
    (code_dir / "probe.py").write_text(textwrap.dedent(code), encoding="utf-8")
    spec = WorkerSpec(function_name="probe", function_arn="arn:aws:lambda:us-east-1:123456789012:function:probe",
                      handler="probe.lambda_handler", code_dir=code_dir, layer_dirs=layers,
                      environment=environment, timeout_seconds=60, memory_mb=256, region="us-east-1",
                      aws_endpoint_url="http://127.0.0.1:9", runtime_site=runtime_site(tmp_path / "runtime"))
    worker = Worker(spec)
    try:
        result = worker.invoke(event, "request-1")
    finally:
        worker.kill()
    assert not result.errored, result.payload + result.logs
    payload: dict[str, object] = json.loads(result.payload)
    return payload


PROBE = """
    import importlib.util
    def lambda_handler(event, context):
        return {name: importlib.util.find_spec(name) is not None for name in event["modules"]}
"""


@pytest.mark.slow
def test_the_serving_layer_alone_has_no_scikit_learn_and_runs_onnx(tmp_path: Path) -> None:
    # given a worker with the runtime layer and the serving layer, as the predict function is deployed
    layers = (REPO / "layers" / "runtime", _staged_layer("serving", tmp_path))

    # when it looks for packages
    found = _run(tmp_path, PROBE, layers, {"modules": [*TRAINING_ONLY, "onnxruntime", "numpy",
                                                       "aws_lambda_powertools", "boto3", "loopline_runtime"]})

    # then the training stack is not importable, and what serving needs is
    assert {name: found[name] for name in TRAINING_ONLY} == dict.fromkeys(TRAINING_ONLY, False)
    assert found["onnxruntime"] and found["numpy"] and found["aws_lambda_powertools"] and found["boto3"]
    assert found["loopline_runtime"]


@pytest.mark.slow
@pytest.mark.parametrize("function", ["predict", "batch"])
def test_the_handler_initialises_on_the_serving_layer_without_training_modules(function: str, tmp_path: Path) -> None:
    # given the function's code next to a probe, on its deployed layers (runtime + serving, as template.yaml says)
    assert _template_layers(function) == ["RuntimeLayer", "ServingLayer"]
    layers = (REPO / "layers" / "runtime", _staged_layer("serving", tmp_path))
    probe = """
        import sys
        def lambda_handler(event, context):
            import app  # the function's init: every import it makes, as at a cold start
            return {"loaded": sorted({m.split(".")[0] for m in sys.modules})}
    """
    (tmp_path / "code").mkdir()
    shutil.copy(REPO / "functions" / function / "app.py", tmp_path / "code" / "app.py")

    # when its module is imported
    loaded = _run(tmp_path, probe, layers, {}, environment=(("ARTIFACT_BUCKET", "bucket"),))["loaded"]

    # then it imported onnxruntime (the compiled model) and nothing of the training stack
    assert isinstance(loaded, list)
    assert "onnxruntime" in loaded
    assert not set(TRAINING_ONLY) & set(loaded)


@pytest.mark.slow
def test_the_monitor_handler_measures_on_the_serving_layer_without_pandas_scipy_or_scikit_learn(tmp_path: Path) -> None:
    # given the monitor function's code on its deployed layers (runtime + serving), the runtime layer holding the
    # bundled config as a build leaves it (the function reads it without pydantic)
    assert _template_layers("monitor") == ["RuntimeLayer", "ServingLayer"]
    runtime = tmp_path / "layers" / "runtime"
    shutil.copytree(REPO / "layers" / "runtime", runtime, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    bundle_config(load_config(REPO / "pipeline.yaml"), runtime / "python" / "loopline_runtime")
    layers = (runtime, _staged_layer("serving", tmp_path))
    probe = """
        import sys
        def lambda_handler(event, context):
            import app  # the function's init, as at a cold start
            # and what measuring a labeled batch and the captured inputs imports
            from loopline_runtime import column_drift, datasets, labeled_columns, live_drift, monitoring
            return {"loaded": sorted({m.split(".")[0] for m in sys.modules})}
    """
    (tmp_path / "code").mkdir()
    shutil.copy(REPO / "functions" / "monitor" / "app.py", tmp_path / "code" / "app.py")

    # when its module is imported
    loaded = _run(tmp_path, probe, layers, {}, environment=(("ARTIFACT_BUCKET", "bucket"),))["loaded"]

    # then it scores with onnxruntime and imports nothing of the training stack
    assert isinstance(loaded, list)
    assert {"onnxruntime", "numpy"} <= set(loaded)
    assert not set(TRAINING_ONLY) & set(loaded)


@pytest.mark.slow
def test_the_ingest_handler_initialises_on_its_layers_without_scikit_learn_or_scipy(tmp_path: Path) -> None:
    # given the ingest function's code on its deployed layers: runtime + serving + data (pandas, pydantic)
    assert _template_layers("ingest") == ["RuntimeLayer", "ServingLayer", "DataLayer"]
    layers = (REPO / "layers" / "runtime", _staged_layer("serving", tmp_path), _staged_layer("data", tmp_path))
    probe = """
        import sys
        def lambda_handler(event, context):
            import app  # the function's init, as at a cold start
            from loopline_runtime import drift, ingest  # and what processing an upload imports
            return {"loaded": sorted({m.split(".")[0] for m in sys.modules})}
    """
    (tmp_path / "code").mkdir()
    shutil.copy(REPO / "functions" / "ingest" / "app.py", tmp_path / "code" / "app.py")
    environment = (("ARTIFACT_BUCKET", "bucket"), ("STATE_MACHINE_ARN", "arn"), ("MONITOR_FUNCTION_NAME", "monitor"),
                   ("LOOPLINE_PIPELINE_CONFIG", str(REPO / "pipeline.yaml")))

    # when its module is imported
    loaded = _run(tmp_path, probe, layers, {}, environment=environment)["loaded"]

    # then it has pandas and pydantic, and nothing of the model-building stack
    assert isinstance(loaded, list)
    assert {"pandas", "pydantic", "numpy"} <= set(loaded)
    assert not {"sklearn", "scipy", "joblib", "skl2onnx", "onnx"} & set(loaded)


def _template_layers(function: str) -> list[str]:
    """The logical ids of the layers template.yaml gives the function whose CodeUri is functions/<function>/."""
    resources = load_template(REPO / "template.yaml")["Resources"]
    props = next(r["Properties"] for r in resources.values()
                 if (r.get("Properties") or {}).get("CodeUri") == f"functions/{function}/")
    layers = props["Layers"]
    if isinstance(layers, dict) and "Fn::If" in layers:  # predict: the default (compiled) form is the else branch
        layers = layers["Fn::If"][2]
    return [layer["Ref"] for layer in layers]


def test_the_layers_agree_on_the_pins_they_share() -> None:
    # given the serving, data and dependencies layers' requirements
    serving = _pins(REPO / "layers" / "serving" / "requirements.txt")
    data = _pins(REPO / "layers" / "data" / "requirements.txt")
    dependencies = _pins(REPO / "layers" / "dependencies" / "requirements.txt")

    # when / then a package listed twice has one version
    for one, other in ((serving, dependencies), (serving, data), (data, dependencies)):
        shared = one.keys() & other.keys()
        assert {name: one[name] for name in shared} == {name: other[name] for name in shared}
    # and each layer removes exactly what a layer it is used with provides
    assert _provided("dependencies", "SERVING") == serving.keys() & dependencies.keys()
    assert _provided("dependencies", "DATA") == (data.keys() & dependencies.keys()) - serving.keys()
    assert _provided("data", "SERVING") == serving.keys() & data.keys()


def _provided(layer: str, by: str) -> set[str]:
    makefile = (REPO / "layers" / layer / "Makefile").read_text(encoding="utf-8")
    line = next(line for line in makefile.splitlines() if line.startswith(f"PROVIDED_BY_{by}_LAYER"))
    return {_normal(name) for name in line.split(":=")[1].split()}


def _normal(name: str) -> str:
    return name.lower().replace("_", "-")


def _pins(requirements: Path) -> dict[str, str]:
    names = requirement_names(requirements)
    lines = [line.split("#")[0].strip() for line in requirements.read_text(encoding="utf-8").splitlines()]
    versions = [line.split("==")[1] for line in lines if "==" in line]
    return {_normal(name): version for name, version in zip(names, versions, strict=True)}
