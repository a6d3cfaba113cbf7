"""The loop with the config exactly as `loopline init` writes it (no edits), on a classification and a regression
data set: a drifted batch that hurts quality -> ALARM -> retraining -> a new champion; a drifted batch that does
not hurt quality -> no retraining. The alarm is champion-relative (alarm.max_drop), so no threshold is tuned.

The data are generated so that which drift hurts is known: the target depends on two sensors, and on the
temperature only above 2 degrees (a regime the first upload never saw). A warmer batch below 2 degrees drifts
(the temperature's distribution moves) but keeps the relation; a batch above 2 degrees changes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline.cli import main
from loopline.client import StackClient
from loopline_runtime.bucket_layout import CHAMPION_KEY, MONITORING_PREFIX
from loopline_runtime.config import load_config

pytestmark = pytest.mark.e2e

REGIME_EDGE = 2.0


def _readings(rows: int, temperature: tuple[float, float], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "sensor_a": rng.normal(0, 1, rows).round(4),
        "sensor_b": rng.normal(0, 1, rows).round(4),
        "temperature": rng.normal(*temperature, rows).round(4),
    })


def classification(rows: int, temperature: tuple[float, float], seed: int) -> pd.DataFrame:
    frame = _readings(rows, temperature, seed)
    above = (frame["sensor_a"] + frame["sensor_b"]) > 0
    flipped = frame["temperature"] >= REGIME_EDGE
    frame["outcome"] = np.where(above != flipped, "pass", "fail")
    return frame


def regression(rows: int, temperature: tuple[float, float], seed: int) -> pd.DataFrame:
    frame = _readings(rows, temperature, seed)
    noise = np.random.default_rng(seed + 1).normal(0, 0.5, rows)
    shift = np.where(frame["temperature"] >= REGIME_EDGE, 15.0, 0.0)
    frame["yield_kg"] = (3 * frame["sensor_a"] - 2 * frame["sensor_b"] + shift + noise).round(4)
    return frame


COOL, WARMER_SAME_REGIME, HOT = (0.0, 0.5), (0.8, 0.3), (3.0, 0.3)
CASES = {"classification": (classification, "outcome"), "regression": (regression, "yield_kg")}


def _measure(stack: StackClient, frame: pd.DataFrame, name: str) -> dict[str, Any]:
    before = len(stack.keys(MONITORING_PREFIX))
    stack.upload_csv(frame, name)
    keys = stack.wait_for_keys(MONITORING_PREFIX, before + 1, timeout=180)
    assert len(keys) == before + 1, "the champion was not measured on the new labeled batch"
    return dict(stack.read_json(sorted(keys)[-1]))


@pytest.mark.parametrize("case", list(CASES))
def test_the_config_loopline_init_writes_retrains_when_drift_hurts_and_only_then(
        case: str, start_stack: Callable[..., StackClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given the config `loopline init` writes for this data, used as written
    make, target = CASES[case]
    first_upload = make(300, COOL, seed=1)
    csv = tmp_path / f"{case}.csv"
    first_upload.to_csv(csv, index=False)
    config_path = tmp_path / f"{case}.yaml"
    assert main(["init", str(csv), "--target", target, "--output", str(config_path)]) == 0
    assert "alarm.max_drop" in capsys.readouterr().out
    config = load_config(config_path)
    assert config.alarm.max_drop is not None and config.alarm.threshold is None

    # and a stack with a first champion trained on it
    stack = start_stack(config_path)
    stack.upload_csv(first_upload, "first.csv")
    first_run = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(first_run["executionArn"], timeout=900)["status"] == "SUCCEEDED"
    first = stack.read_json(CHAMPION_KEY)["version"]
    known = {e["executionArn"] for e in stack.executions()}

    # when a warmer batch arrives that keeps the relation (drift that does not hurt)
    harmless = _measure(stack, make(120, WARMER_SAME_REGIME, seed=2), "warmer.csv")

    # then the drift is seen, the drop stays within max_drop, and nothing retrains
    assert harmless["drift"]["drifted_share"] > 0
    assert harmless["quality_drop"] <= config.alarm.max_drop
    time.sleep(5)  # more than two alarm evaluation ticks of the emulator
    assert stack.alarm()["StateValue"] != "ALARM"
    assert {e["executionArn"] for e in stack.executions()} == known

    # when a batch from the hot regime arrives (drift that hurts)
    harmful = _measure(stack, make(120, HOT, seed=3), "hot.csv")

    # then the champion fell further than max_drop below its own holdout score, the alarm fires, and the
    # retraining it starts promotes a new champion
    assert harmful["quality_drop"] > config.alarm.max_drop
    assert stack.wait_for_alarm_state("ALARM", timeout=120)["StateValue"] == "ALARM"
    execution = stack.wait_for_new_execution(known, timeout=120)
    assert stack.wait_for_execution(execution["executionArn"], timeout=900)["status"] == "SUCCEEDED"
    assert stack.entered_states(execution["executionArn"])[-1] == "Promoted"
    model = stack.http("GET", "model").body
    assert model["model_version"] != first
    assert model["promotion_reason"] == "alarm"
