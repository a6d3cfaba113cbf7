"""A generated churn table like a subscription business's (about 12% churners), and the drifts the tests apply.

Churn depends mostly on tenure (new customers leave), on the monthly charge, the contract and support calls; the
relation is fixed by `churn_probability`, so a test knows which drift hurts: a batch whose `tenure_months` is
reported in another unit (x 2.5) keeps each customer's real churn risk but shows the model longer tenures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TARGET = "churned"
CONTRACTS = ("month-to-month", "one-year", "two-year")


def churn_probability(tenure: np.ndarray, charges: np.ndarray, contract: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """The true churn risk of each customer (the generator's relation; drifted batches keep it)."""
    contract_effect = np.select([contract == "one-year", contract == "two-year"], [-1.0, -2.0], 0.0)
    logit = 3.0 - 0.3 * tenure + 0.02 * (charges - 65) + contract_effect + 0.4 * (calls - 1.5)
    return 1 / (1 + np.exp(-logit))


def churn_table(rows: int = 5000, *, seed: int = 0) -> pd.DataFrame:
    """`rows` customers with a `churned` yes/no label, about 12% yes."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 73, rows).astype(float)
    charges = rng.normal(65, 20, rows).clip(18, 120).round(2)
    contract = rng.choice(np.array(CONTRACTS), rows, p=[0.55, 0.25, 0.2])
    calls = rng.poisson(1.5, rows).astype(float)
    churned = rng.random(rows) < churn_probability(tenure, charges, contract, calls)
    return pd.DataFrame({
        "customer_id": [f"C{seed:02d}{i:06d}" for i in range(rows)],
        "tenure_months": tenure.astype(int),
        "monthly_charges": charges,
        "contract": contract,
        "support_calls": calls.astype(int),
        "paperless_billing": rng.choice(np.array(["yes", "no"]), rows),
        TARGET: np.where(churned, "yes", "no"),
    })


def scaled(frame: pd.DataFrame, column: str, factor: float) -> pd.DataFrame:
    """The same customers (and labels) with `column` reported `factor` times larger (e.g. a unit change)."""
    drifted = frame.copy()
    drifted[column] = (drifted[column] * factor).round(2)
    return drifted
