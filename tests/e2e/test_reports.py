"""`loopline report` on the bundled examples: a classifier (breast-cancer), a regressor (diabetes) and a
monitoring run, each with every section and figure, every figure drawn from the numbers the functions recorded,
and every figure rendered by a real headless Chromium.

Screenshots for docs/: LOOPLINE_REPORT_SCREENSHOTS=docs .venv/bin/pytest tests/e2e/test_reports.py
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from loopline.cli import main
from loopline.client import StackClient
from loopline.examples import breast_cancer, recalibrated_sensors, split_batches
from loopline.operate.report.browser import find_chromium, rendered_dom, screenshot
from loopline.operate.report.page import model_figures, monitoring_figures
from loopline.operate.report.sources import model_inputs, monitoring_inputs
from loopline_runtime.bucket_layout import CHAMPION_KEY, MONITORING_PREFIX, model_prefix
from loopline_runtime.storage import ObjectStore

pytestmark = pytest.mark.e2e

MODEL_SECTIONS = ["summary", "gate", "figures", "importance", "leaderboard", "lineage", "history"]
SCREENSHOTS = os.environ.get("LOOPLINE_REPORT_SCREENSHOTS")


def _train(stack: StackClient, frame: Any, name: str) -> str:
    stack.upload_csv(frame, name)
    execution = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(execution["executionArn"], timeout=600)["status"] == "SUCCEEDED"
    return str(stack.read_json(CHAMPION_KEY)["version"])


@pytest.fixture(scope="module")
def classifier(start_stack: Callable[..., StackClient]) -> tuple[StackClient, str]:
    """breast-cancer: a champion, then a labeled batch from recalibrated sensors (a monitoring run with drift)."""
    stack = start_stack()
    initial, drifted = split_batches(breast_cancer(), [300, 150])
    version = _train(stack, initial, "initial.csv")
    stack.upload_csv(recalibrated_sensors(drifted), "recalibrated.csv")
    stack.wait_for_keys(MONITORING_PREFIX, 1, timeout=180)
    return stack, version


@pytest.fixture(scope="module")
def regressor(start_stack: Callable[..., StackClient], tmp_path_factory: pytest.TempPathFactory
              ) -> tuple[StackClient, str]:
    """diabetes, configured the way a user does it: `loopline example`, `loopline init` (a smaller search)."""
    folder = tmp_path_factory.mktemp("diabetes")
    csv, config = folder / "diabetes.csv", folder / "diabetes.yaml"
    assert main(["example", "diabetes", "--output", str(csv)]) == 0
    assert main(["init", str(csv), "--target", "progression", "--output", str(config)]) == 0
    settings = yaml.safe_load(config.read_text())
    settings["training"]["time_budget_seconds"] = 5
    settings["models"] = [{"name": "linear", "params": {"alpha": [1.0]}}]
    config.write_text(yaml.safe_dump(settings))
    stack = start_stack(config)
    import pandas as pd

    return stack, _train(stack, pd.read_csv(csv), "diabetes.csv")


def _report(stack: StackClient, output: Path, *args: str) -> str:
    endpoint = stack.s3.meta.endpoint_url
    assert main(["report", *args, "--output", str(output), "--stack-name", stack.stack_name,
                 "--endpoint-url", endpoint]) == 0
    return output.read_text()


def _figures(page: str) -> list[str]:
    return re.findall(r'data-figure="([^"]+)"><img alt="[^"]*" src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"',
                      page)


def _recorded(page: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/json" id="recorded-numbers">(.*?)</script>', page, re.S)
    assert match
    return dict(json.loads(match.group(1).replace("<\\/", "</")))


def _in_browser(page_path: Path, figures: int, name: str) -> None:
    if find_chromium() is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium)")
    dom = rendered_dom(page_path)
    assert f'data-figures-rendered="{figures}/{figures}"' in dom
    if SCREENSHOTS:
        screenshot(page_path, Path(SCREENSHOTS) / f"report-{name}.png", height=2600)


def test_classifier_report(classifier: tuple[StackClient, str], tmp_path: Path) -> None:
    # given a breast-cancer champion and what the gate recorded for it
    stack, version = classifier
    store = ObjectStore(stack.bucket, client=stack.s3)
    recorded = stack.read_json(f"{model_prefix(version)}report.json")

    # when
    page = _report(stack, tmp_path / "classifier.html")

    # then every section and every classifier figure is in the page, with the recorded numbers embedded
    for section in MODEL_SECTIONS:
        assert f'<section id="{section}">' in page
    assert _figures(page) == ["confusion-matrix", "roc", "precision-recall", "calibration", "permutation-importance"]
    assert _recorded(page)["numbers"] == recorded
    assert "PROMOTED" in page and "passes the gate" in page
    assert all(entry["candidate"] in page for entry in stack.read_json(f"{model_prefix(version)}manifest.json")
               ["leaderboard"])
    # and each figure plots exactly the recorded numbers
    drawn = {d.name: d.figure for d in model_figures(model_inputs(store, version))}
    numbers = recorded["classification"]
    assert drawn["confusion-matrix"].axes[0].images[0].get_array().tolist() == numbers["confusion_matrix"]
    [curve] = numbers["curves"]  # two classes: the positive class's curves
    roc = drawn["roc"].axes[0].lines[0]
    assert list(roc.get_xdata()) == curve["roc"]["fpr"] and list(roc.get_ydata()) == curve["roc"]["tpr"]
    pr = drawn["precision-recall"].axes[0].lines[0]
    assert list(pr.get_xdata()) == curve["pr"]["recall"] and list(pr.get_ydata()) == curve["pr"]["precision"]
    calibration = drawn["calibration"].axes[0].lines[0]
    assert list(calibration.get_ydata()) == curve["calibration"]["fraction_positive"]
    bars = drawn["permutation-importance"].axes[0].patches
    importance = recorded["permutation_importance"]
    assert [b.get_width() for b in bars] == importance["mean"][: len(bars)]
    assert len(importance["features"]) == len(stack.read_json(f"{model_prefix(version)}manifest.json")["schema"]
                                               ["features"])
    # and a real browser renders every figure
    _in_browser(tmp_path / "classifier.html", 5, "classifier")


def test_regressor_report(regressor: tuple[StackClient, str], tmp_path: Path) -> None:
    # given a diabetes champion
    stack, version = regressor
    store = ObjectStore(stack.bucket, client=stack.s3)
    recorded = stack.read_json(f"{model_prefix(version)}report.json")

    # when
    page = _report(stack, tmp_path / "regressor.html", version)

    # then the regressor's figures replace the classifier's, drawn from the recorded numbers
    for section in MODEL_SECTIONS:
        assert f'<section id="{section}">' in page
    assert _figures(page) == ["predicted-vs-actual", "residuals", "permutation-importance"]
    assert _recorded(page)["numbers"] == recorded
    drawn = {d.name: d.figure for d in model_figures(model_inputs(store, version))}
    numbers = recorded["regression"]
    points = drawn["predicted-vs-actual"].axes[0].collections[0].get_offsets()
    assert np.allclose(points[:, 0], numbers["actual"]) and np.allclose(points[:, 1], numbers["predicted"])
    residuals = drawn["residuals"].axes[0].collections[0].get_offsets()
    assert np.allclose(residuals[:, 1], numbers["residuals"])
    assert np.allclose(np.asarray(numbers["actual"]) - numbers["predicted"], numbers["residuals"], atol=1e-5)
    _in_browser(tmp_path / "regressor.html", 3, "regressor")


def test_monitoring_report(classifier: tuple[StackClient, str], tmp_path: Path) -> None:
    # given a monitoring run of the champion on a drifted batch
    stack, version = classifier
    store = ObjectStore(stack.bucket, client=stack.s3)
    [key] = stack.keys(MONITORING_PREFIX)
    run = stack.read_json(key)

    # when
    page = _report(stack, tmp_path / "monitoring.html", "--monitoring")

    # then: the metric against the champion's holdout score, the drift table, and per-feature distributions
    for section in ["summary", "metric", "drift", "distributions"]:
        assert f'<section id="{section}">' in page
    figures = _figures(page)
    assert figures[0] == "metric-vs-champion"
    assert len(figures) > 1 and all(f.startswith("distribution-") for f in figures[1:])
    assert _recorded(page)["run"] == run
    assert run["champion_holdout_score"] == stack.read_json(f"{model_prefix(version)}manifest.json")["holdout_score"]
    drawn = monitoring_figures(monitoring_inputs(store, key))
    metric = drawn[0].figure.axes[0]
    assert list(metric.lines[0].get_ydata()) == [run["value"]]
    assert [line.get_ydata()[0] for line in metric.lines[2:4]] == [run["champion_holdout_score"],
                                                                  run["alarm_line"]]
    # and the quality estimated without labels, next to the measured one
    assert list(metric.lines[4].get_ydata()) == [run["estimated_value"]]
    first_drifted = next(f["name"] for f in run["drift"]["features"] if f["drifted"])
    distribution = next(d for d in drawn if d.caption.startswith(f"{first_drifted}:")).figure.axes[0]
    bars = [p.get_height() for p in distribution.patches]
    expected = run["distributions"][first_drifted]
    assert bars == expected["reference"] + expected["batch"]
    _in_browser(tmp_path / "monitoring.html", len(figures), "monitoring")
