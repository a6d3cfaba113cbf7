"""The train function with the user's own model code: bad code stops the run before anything is written (the
champion serves on, and the state machine's catch notifies as for any training failure); good code is trained,
recorded with its sha256, and a model served in the scikit-learn form is loaded only with the code it was trained
with."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from loopline_runtime.config import PipelineConfig
from loopline_runtime.errors import ArtifactIntegrityError, InvalidModelCode
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.storage import ObjectStore
from tests.support.configs import write_fast_config
from tests.support.model_code import copy_model_code

RAISES_IN_BUILD = "def build(schema):\n    raise KeyError('ratio')\n"
UNSEEDED = """
from sklearn.ensemble import RandomForestClassifier

def build(schema):
    return RandomForestClassifier(n_estimators=5, max_depth=3)
"""
RETURNS_A_REGRESSOR = "from sklearn.linear_model import Ridge\n\ndef build(schema):\n    return Ridge()\n"


@pytest.fixture
def code_config(pipeline_config: PipelineConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                ) -> Callable[..., Path]:
    """Write the fast config with one candidate of the user's code beside it; the train function runs with it."""

    def write(model_py: str | None = None, *, source: str | None = None, serving: str = "onnx") -> Path:
        path = write_fast_config(pipeline_config, tmp_path / "project" / "pipeline.yaml")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["models"] = [{"name": "mine", "code": "model.py:build", "serving": serving}]
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        if source is not None:
            copy_model_code(source, path.parent, "model.py")
        else:
            (path.parent / "model.py").write_text(textwrap.dedent(model_py or ""), encoding="utf-8")
        monkeypatch.setenv("LOOPLINE_PIPELINE_CONFIG", str(path))
        return path

    return write


@pytest.fixture
def champion_and_upload(register_model: Callable[..., str], promote: Callable[[str], dict[str, Any]],
                        ingest: Callable[..., dict[str, Any]], training_rows: pd.DataFrame) -> str:
    """A serving champion and an accepted upload to train on; the champion's version."""
    champion = register_model()
    promote(champion)
    ingest("incoming/breast-cancer.csv", training_rows)
    return champion


@pytest.mark.parametrize(("model_py", "source", "expected"), [
    (RAISES_IN_BUILD, None, r"^model\.py:build raised KeyError: 'ratio' \(model\.py line 2\)$"),
    (UNSEEDED, None, r"two fits on the same rows predict differently"),
    (RETURNS_A_REGRESSOR, None, r"Ridge, which is not a classifier"),
    ("import not_installed_anywhere\n", None, r"imports 'not_installed_anywhere'"),
    (None, "clipped_model.py", r"step 'model__clip' \(Clipped\) cannot be compiled to ONNX"),
])
def test_bad_model_code_fails_training_cleanly_and_the_champion_is_untouched(
    champion_and_upload: str, code_config: Callable[..., Path], load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], registry: ModelRegistry, store: ObjectStore, lambda_context: Any,
    model_py: str | None, source: str | None, expected: str,
) -> None:
    # given a champion, an upload and a config whose model code cannot be used
    code_config(model_py, source=source)
    before = sorted(store.list_keys("models/"))

    # when the train function runs
    event = {"trigger": load_event("train_task.json")["trigger"]}
    with pytest.raises(InvalidModelCode, match=expected) as raised:
        load_handler("train").lambda_handler(event, lambda_context)

    # then the error is one line, nothing was registered, and the champion still serves
    assert "\n" not in str(raised.value)
    assert sorted(store.list_keys("models/")) == before
    assert registry.champion_version() == champion_and_upload


def test_good_model_code_is_trained_and_recorded_with_its_sha256(
    champion_and_upload: str, code_config: Callable[..., Path], load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], registry: ModelRegistry, lambda_context: Any,
) -> None:
    # given the ratio example beside the config
    config = code_config(source="ratio_model.py")

    # when the train function runs
    result = load_handler("train").lambda_handler({"trigger": load_event("train_task.json")["trigger"]},
                                                  lambda_context)

    # then the challenger is the user's model, compiled with parity, its code's sha256 recorded
    import hashlib

    manifest = registry.manifest(result["model_version"])
    assert manifest["estimator"] == "mine"
    assert manifest["code"]["sha256"]["model.py"] == hashlib.sha256((config.parent / "model.py").read_bytes()
                                                                    ).hexdigest()
    assert manifest["compiled"]["parity"]["passed"] is True


def test_a_scikit_learn_form_model_is_not_loaded_with_other_code_than_it_was_trained_with(
    champion_and_upload: str, code_config: Callable[..., Path], load_handler: Callable[[str], Any],
    load_event: Callable[[str], dict[str, Any]], registry: ModelRegistry, lambda_context: Any,
) -> None:
    # given a challenger served in the scikit-learn form, which loads with its packaged code
    config = code_config(source="clipped_model.py", serving="scikit-learn")
    version = load_handler("train").lambda_handler({"trigger": load_event("train_task.json")["trigger"]},
                                                   lambda_context)["model_version"]
    assert registry.load_for_promotion(version)[0].form == "scikit-learn"

    # when the packaged model.py is changed afterwards
    model_py = config.parent / "model.py"
    model_py.write_text(model_py.read_text(encoding="utf-8") + "\n# changed\n", encoding="utf-8")

    # then the pinned artifact is refused before anything is unpickled
    with pytest.raises(ArtifactIntegrityError, match=r"was trained with model\.py sha256"):
        registry.load_for_promotion(version)

