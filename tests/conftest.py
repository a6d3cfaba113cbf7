"""Shared fixtures: the project's own sources of truth (template.yaml, pipeline.yaml), sample data and events.

Names and thresholds are read from template.yaml and pipeline.yaml here, never retyped in a test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from loopline.emulator.iam_enforcement import AUDIT_LOG_VARIABLE
from loopline.emulator.template_loading import load_template
from loopline.local_lambda import LocalLambdaContext
from loopline_runtime.config import PipelineConfig, load_config
from tests.support.configs import write_fast_config

REPO_ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = Path(__file__).resolve().parent / "events"

# A few informative columns of scikit-learn's bundled breast cancer data (offline, the demo's data set).
SAMPLE_FEATURES = ["mean radius", "mean texture", "worst concave points", "worst area", "worst smoothness"]


@pytest.fixture(scope="session", autouse=True)
def iam_audit_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every grant a role used on an emulator in this session (the emulators started here inherit the variable):
    tests/test_zz_grants_exercised.py compares them with what template.yaml grants. A log named by the
    environment is kept (make test: the parallel workers and the grants check that runs after them share it)."""
    named = os.environ.get(AUDIT_LOG_VARIABLE)
    path = Path(named) if named else tmp_path_factory.mktemp("iam") / "audit.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AUDIT_LOG_VARIABLE, str(path))
        yield path


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """template.yaml as a mapping (intrinsics in long form)."""
    return load_template(REPO_ROOT / "template.yaml")


@pytest.fixture(scope="session")
def pipeline_config_path() -> Path:
    return REPO_ROOT / "pipeline.yaml"


@pytest.fixture(scope="session")
def pipeline_config(pipeline_config_path: Path) -> PipelineConfig:
    """The project's pipeline.yaml, validated."""
    return load_config(pipeline_config_path)


@pytest.fixture
def fast_pipeline_config_path(pipeline_config: PipelineConfig, tmp_path: Path) -> Path:
    """pipeline.yaml with a tiny model search (one candidate, one setting, the smallest budget): fast tests."""
    return write_fast_config(pipeline_config, tmp_path / "pipeline.yaml")


@pytest.fixture(scope="session")
def breast_cancer(pipeline_config: PipelineConfig) -> pd.DataFrame:
    """Labeled rows (features + the pipeline's target column with text labels), shuffled once with a fixed seed."""
    from sklearn.datasets import load_breast_cancer

    target = pipeline_config.target
    data = load_breast_cancer(as_frame=True)
    frame = data.frame[SAMPLE_FEATURES].copy()
    frame[target] = [str(data.target_names[i]) for i in data.target]
    return frame.sample(frac=1.0, random_state=7).reset_index(drop=True)


@pytest.fixture
def load_event() -> Callable[[str], dict[str, Any]]:
    """A fresh copy of a sample event from tests/events/."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))

    return load


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext()


@pytest.fixture(scope="session", autouse=True)
def _own_stack_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Stacks the tests start are recorded in a folder of the session (inherited by `loopline local up`
    subprocesses), never in the user's state dir, and stacks the user runs are not seen by the tests."""
    from loopline.operate.stack_memory import STATE_DIR_VARIABLE

    folder = tmp_path_factory.mktemp("loopline-state")
    before = os.environ.get(STATE_DIR_VARIABLE)
    os.environ[STATE_DIR_VARIABLE] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(STATE_DIR_VARIABLE, None)
    else:
        os.environ[STATE_DIR_VARIABLE] = before


@pytest.fixture
def stack_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty state dir of the test's own, and no stack chosen by the environment."""
    from loopline.operate.stack_memory import STACK_VARIABLE, STATE_DIR_VARIABLE

    folder = tmp_path / "state"
    monkeypatch.setenv(STATE_DIR_VARIABLE, str(folder))
    monkeypatch.delenv(STACK_VARIABLE, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return folder
