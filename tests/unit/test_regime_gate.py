"""The gate after an alarm: the challenger must beat the champion on the batches that breached, and stay within
gate.older_data_margin on the rest of the holdout; the holdout keeps each dataset version's rows apart for it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loopline_runtime.config import GateConfig, PipelineConfig, Task
from loopline_runtime.evaluation import regime_decision
from loopline_runtime.training import _new_regime_weighting, _split_per_version

MARGIN = GateConfig(threshold=0.0).older_data_margin


def test_a_challenger_better_on_the_new_regime_and_close_on_the_old_passes() -> None:
    # given / when
    passes, reasons = regime_decision("f1_positive", challenger_recent=0.50, champion_recent=0.40,
                                      challenger_rest=0.70, champion_rest=0.70 + MARGIN / 2, margin=MARGIN)

    # then
    assert passes and reasons == []


def test_a_challenger_worse_on_the_batches_that_breached_is_rejected() -> None:
    # given worse on the new regime (better on the old one does not make up for it)
    passes, reasons = regime_decision("f1_positive", challenger_recent=0.39, champion_recent=0.40,
                                      challenger_rest=0.90, champion_rest=0.70, margin=MARGIN)

    # then
    assert not passes
    assert reasons == ["on the batches that breached the alarm the challenger scores 0.3900 f1_positive, worse "
                       "than the champion's 0.4000"]


def test_a_tie_on_the_batches_that_breached_passes() -> None:
    # given both perfect on the few holdout rows of a small breached batch
    passes, _ = regime_decision("accuracy", challenger_recent=1.0, champion_recent=1.0, challenger_rest=0.9,
                                champion_rest=0.9, margin=MARGIN)

    # then
    assert passes


def test_a_challenger_that_gives_up_the_old_regime_beyond_the_margin_is_rejected() -> None:
    # given much better on the new regime, but worse than the margin allows on the rest
    passes, reasons = regime_decision("f1_positive", challenger_recent=0.60, champion_recent=0.40,
                                      challenger_rest=0.70 - MARGIN - 0.01, champion_rest=0.70, margin=MARGIN)

    # then
    assert not passes
    assert len(reasons) == 1 and "gate.older_data_margin" in reasons[0]


def test_an_error_metric_is_compared_in_its_own_direction() -> None:
    # given rmse: lower is better
    better, _ = regime_decision("rmse", challenger_recent=8.0, champion_recent=10.0, challenger_rest=5.0,
                                champion_rest=5.0, margin=0.5)
    worse, _ = regime_decision("rmse", challenger_recent=11.0, champion_recent=10.0, challenger_rest=5.0,
                               champion_rest=5.0, margin=0.5)

    # then
    assert better and not worse


def test_without_older_rows_only_the_new_regime_decides() -> None:
    # given / when
    passes, reasons = regime_decision("accuracy", challenger_recent=0.9, champion_recent=0.8, challenger_rest=None,
                                      champion_rest=None, margin=MARGIN)

    # then
    assert passes and reasons == []


def _config() -> PipelineConfig:
    return PipelineConfig.model_validate({"name": "p", "target": "y", "gate": {"threshold": 0.0},
                                          "alarm": {"max_drop": 0.1}})


def test_a_dataset_versions_holdout_rows_are_the_same_whatever_comes_after_it() -> None:
    # given an old version of 500 rows, trained alone and then with a newer version of 200 rows
    rng = np.random.default_rng(0)
    old = pd.DataFrame({"x": rng.normal(size=500), "y": rng.choice(["a", "b"], 500, p=[0.8, 0.2])})
    new = pd.DataFrame({"x": rng.normal(size=200), "y": rng.choice(["a", "b"], 200)})
    both = pd.concat([old, new], ignore_index=True)

    # when the holdout is split for each window
    *_, alone_holdout_y, alone_origins = _split_per_version(old[["x"]], old["y"], Task.CLASSIFICATION, _config(),
                                                            [("v-old", 500)])
    _, X_holdout, _, _, origins = _split_per_version(both[["x"]], both["y"], Task.CLASSIFICATION, _config(),
                                                     [("v-old", 500), ("v-new", 200)])

    # then the old version's holdout rows are the same rows, first, and the origins say where each version's are
    assert origins == [{"dataset_version": "v-old", "rows": 100}, {"dataset_version": "v-new", "rows": 40}]
    assert alone_origins == origins[:1]
    assert list(X_holdout.index[:100]) == list(alone_holdout_y.index)
    assert (X_holdout.index[100:] >= 500).all()


def test_a_window_with_one_class_is_refused() -> None:
    # given
    frame = pd.DataFrame({"x": range(50), "y": ["a"] * 50})

    # when / then
    with pytest.raises(Exception, match="single class"):
        _split_per_version(frame[["x"]], frame["y"], Task.CLASSIFICATION, _config(), [("v", 50)])


class _Registry:
    """The two registry reads the weighting makes: the champion pointer and its breached batches."""

    def __init__(self, breached: list[str]) -> None:
        self.breached = breached

    def champion_pointer(self) -> dict[str, str]:
        return {"version": "m-champion"}

    def breached_versions(self, champion_version: str) -> list[str]:
        assert champion_version == "m-champion"
        return self.breached


@pytest.mark.parametrize("reason", ["alarm", "alarm_persists"])
def test_after_an_alarm_the_breached_batch_weighs_as_much_as_the_rest_of_the_window(reason: str) -> None:
    # given a window of 400 old rows and 100 rows of the batch that breached, 80% of each in training
    versions = [("v-old", 400), ("v-new", 100)]
    train_rows = np.r_[np.arange(0, 320), np.arange(400, 480)]

    # when
    weighting = _new_regime_weighting(_Registry(["v-new"]), {"reason": reason}, train_rows, versions)  # type: ignore[arg-type]

    # then the 80 new rows weigh 4 each: 320 in all, as much as the 320 old ones
    assert weighting["versions"] == ["v-new"] and weighting["weight"] == 4.0 and weighting["rows"] == 80
    assert weighting["sample_weight"][:320].sum() == weighting["sample_weight"][320:].sum() == 320


def test_training_for_new_data_is_not_weighted() -> None:
    # given / when
    weighting = _new_regime_weighting(_Registry(["v-new"]), {"reason": "new_data"}, np.arange(10),  # type: ignore[arg-type]
                                      [("v-old", 5), ("v-new", 5)])

    # then
    assert weighting == {}
