"""The synthetic churn table the benchmarks train on (pure, seeded) and the pipeline config adapted to it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from loopline_runtime.config import PipelineConfig


TARGET = "churned"


NUMERIC_COLUMNS = [f"num_{i:02d}" for i in range(20)]
# name -> number of levels: low to high cardinality (the pipeline one-hot encodes at most 50 per column)
CATEGORICAL_LEVELS = {"region": 5, "plan": 3, "channel": 8, "device": 12, "city": 200, "product": 1500}
BOOLEAN_COLUMNS = ["is_active", "has_promo"]
DATE_COLUMN = "signup_date"


def generate_dataset(rows: int, seed: int) -> pd.DataFrame:
    """A seeded synthetic classification table: 20 numeric, 6 categorical, 2 boolean, 1 date column + target.

    Numeric columns mix distributions and carry noise and missing values; the target depends non-linearly on
    several numeric columns, on two categoricals, a boolean and the date's month, so models have something to
    learn (and a tree ensemble has an edge over a linear model).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for index, name in enumerate(NUMERIC_COLUMNS):
        kind = index % 4
        if kind == 0:
            column = rng.normal(0.0, 1.0, rows)
        elif kind == 1:
            column = rng.lognormal(3.0, 0.8, rows)  # skewed, like amounts
        elif kind == 2:
            column = rng.uniform(-2.0, 2.0, rows)
        else:
            column = rng.poisson(4.0, rows).astype(float)  # counts
        data[name] = column
    for name, levels in CATEGORICAL_LEVELS.items():
        weights = rng.dirichlet(np.full(levels, 0.7))  # uneven level frequencies, some rare levels
        data[name] = np.asarray([f"{name}_{i:04d}" for i in range(levels)], dtype=object)[
            rng.choice(levels, size=rows, p=weights)]
    data["is_active"] = rng.random(rows) < 0.7
    data["has_promo"] = rng.random(rows) < 0.25
    start = np.datetime64("2020-01-01")
    dates = start + rng.integers(0, 5 * 365, rows).astype("timedelta64[D]")
    frame = pd.DataFrame(data)
    frame[DATE_COLUMN] = pd.to_datetime(dates)

    # the signal: interactions, thresholds, periodic terms and level effects
    effect_city = rng.normal(0.0, 0.8, CATEGORICAL_LEVELS["city"])
    effect_plan = np.array([-0.8, 0.0, 0.9])
    city_index = frame["city"].str[-4:].astype(int).to_numpy()
    plan_index = frame["plan"].str[-4:].astype(int).to_numpy()
    month = frame[DATE_COLUMN].dt.month.to_numpy()
    x = {name: frame[name].to_numpy() for name in NUMERIC_COLUMNS}
    logit = (
        1.4 * np.sin(1.7 * x["num_00"])
        + 0.9 * (x["num_04"] ** 2 - 1.0)
        - 0.8 * x["num_02"] * x["num_06"]
        + 1.1 * (np.log(x["num_01"]) > 3.4)
        + 0.35 * (x["num_03"] - 4.0)
        + effect_city[city_index]
        + effect_plan[plan_index]
        + 0.9 * frame["has_promo"].to_numpy() * (x["num_08"] > 0)
        + 0.7 * np.cos(2 * np.pi * month / 12.0)
        + rng.normal(0.0, 0.8, rows)  # irreducible noise
    )
    logit -= np.quantile(logit, 0.62)  # about 38% positives
    frame[TARGET] = (rng.random(rows) < 1.0 / (1.0 + np.exp(-2.0 * logit))).astype("int64")

    # missing values after the target is drawn, as in collected data; noise on a few numeric columns
    for index, name in enumerate(NUMERIC_COLUMNS):
        if index % 3 == 0:
            frame.loc[rng.random(rows) < 0.02 + 0.01 * (index % 5), name] = np.nan
        if index % 5 == 4:
            frame[name] = frame[name] + rng.normal(0.0, 0.1, rows)
    for name in ("channel", "device"):
        frame.loc[rng.random(rows) < 0.03, name] = None
    return frame


def adapted_config(config: PipelineConfig, *, target: str = TARGET) -> PipelineConfig:
    """The repo's pipeline config for the synthetic table: its target, features inferred at ingest, a window
    of one dataset version, and the default candidates and time budget (read from loopline_runtime.config)."""
    from loopline_runtime.config import PipelineConfig, TrainingConfig, parse_config

    data = config.model_dump(mode="json")
    data.update(
        name="bench",
        target=target,
        features=PipelineConfig.model_fields["features"].default,
        ignore=[],
        models=PipelineConfig.model_fields["models"].default,
    )
    data["training"] = {**data["training"], "window": 1,
                        "time_budget_seconds": TrainingConfig.model_fields["time_budget_seconds"].default}
    return parse_config(data, source="benchmark config")
