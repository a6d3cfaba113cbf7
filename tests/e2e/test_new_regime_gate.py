"""The issue's churn case, with the config `loopline init` writes (only its search budget shortened): one batch
whose `tenure_months` is reported 2.5x larger breaches the alarm while the old regime is still most of the training
window, and the FIRST retraining promotes a champion that scores better on the drifted data (it is trained with the
breached batch weighted up and gated on that batch's holdout rows)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from loopline.cli import main
from loopline.client import StackClient
from loopline_runtime.bucket_layout import CHAMPION_KEY, MONITORING_PREFIX, model_prefix
from loopline_runtime.config import load_config
from loopline_runtime.metrics import score
from tests.support.churn import TARGET, churn_table, scaled

pytestmark = pytest.mark.e2e
SEARCH_SECONDS = 20


def test_one_drifted_batch_that_breaches_gets_a_better_champion_with_the_first_retraining(
        start_stack: Callable[..., StackClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given a churn table (5,000 rows, about 12% churners) and the config `loopline init` writes for it
    history = churn_table(5000, seed=0)
    csv = tmp_path / "churn.csv"
    history.to_csv(csv, index=False)
    config_path = tmp_path / "churn.yaml"
    assert main(["init", str(csv), "--target", TARGET, "--output", str(config_path)]) == 0
    assert "f1_positive" in capsys.readouterr().out
    # as written, but a shorter model search: the case is about the metric, the alarm and the gate, and the
    # default 300 s budget would make this test minutes longer on a shared machine
    written = config_path.read_text(encoding="utf-8")
    config_path.write_text(written.replace("time_budget_seconds: 300", f"time_budget_seconds: {SEARCH_SECONDS}"),
                           encoding="utf-8")
    config = load_config(config_path)
    assert config.metric == "f1_positive" and config.alarm.max_drop is not None
    assert config.training.time_budget_seconds == SEARCH_SECONDS

    # and a stack whose first champion was trained on it
    stack = start_stack(config_path)
    stack.upload_csv(history, "history.csv")
    first_run = stack.wait_for_new_execution(set(), timeout=180)
    assert stack.wait_for_execution(first_run["executionArn"], timeout=900)["status"] == "SUCCEEDED"
    first = stack.read_json(CHAMPION_KEY)["version"]
    known = {e["executionArn"] for e in stack.executions()}

    # when one batch of 1,000 customers arrives with tenure reported 2.5x larger (labels still true)
    drifted = scaled(churn_table(1000, seed=5), "tenure_months", 2.5)
    stack.upload_csv(drifted, "drifted.csv")
    report = stack.read_json(sorted(stack.wait_for_keys(MONITORING_PREFIX, 1, timeout=180))[-1])

    # then it breaches the alarm line, and the report shows the line, every metric and the estimate
    assert report["alarm_breached"] and report["quality_drop"] > config.alarm.max_drop
    assert report["value"] < report["alarm_line"] == pytest.approx(report["reference_score"] - config.alarm.max_drop)
    assert set(report["metrics"]) >= {"accuracy", "f1", "f1_positive", "roc_auc", "average_precision"}
    assert all(entry["holdout"] is not None for entry in report["metrics"].values())
    assert report["estimated_value"] is not None

    # and the first retraining, started by the alarm, promotes a new champion
    assert stack.wait_for_alarm_state("ALARM", timeout=120)["StateValue"] == "ALARM"
    retraining = stack.wait_for_new_execution(known, timeout=120)
    assert stack.wait_for_execution(retraining["executionArn"], timeout=900)["status"] == "SUCCEEDED"
    assert stack.entered_states(retraining["executionArn"])[-1] == "Promoted"
    champion = stack.read_json(CHAMPION_KEY)["version"]
    assert champion != first

    # which won on the holdout rows of the batch that breached, within the margin on the older rows
    evaluation = stack.read_json(model_prefix(champion) + "evaluation.json")
    regime = evaluation["regime"]
    assert regime["breached_versions"] and regime["recent_rows"] > 0 and regime["rest_rows"] > regime["recent_rows"]
    assert regime["challenger_recent"] > regime["champion_recent"]
    assert regime["challenger_rest"] >= regime["champion_rest"] - config.gate.older_data_margin

    # and, served through the API, it scores better on fresh drifted customers than the old champion did on the
    # drifted batch
    fresh = scaled(churn_table(1000, seed=11), "tenure_months", 2.5)
    answer = stack.predict(fresh.drop(columns=[TARGET]).to_dict(orient="records")).body
    served = score("f1_positive", fresh[TARGET].to_numpy(), answer["predictions"], classes=answer["classes"])
    assert served > report["value"]
    print(f"\nchurn case: holdout {report['reference_score']:.4f}, breached batch {report['value']:.4f} (line "
          f"{report['alarm_line']:.4f}, estimated {report['estimated_value']:.4f}); gate on breached rows "
          f"{regime['challenger_recent']:.4f} vs {regime['champion_recent']:.4f}, rest {regime['challenger_rest']:.4f}"
          f" vs {regime['champion_rest']:.4f}; new champion on fresh drifted rows {served:.4f}")
