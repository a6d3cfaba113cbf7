"""Bundled example data: scikit-learn's breast-cancer set as labeled CSV batches, and a realistic drift of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

TARGET = "diagnosis"


def breast_cancer() -> pd.DataFrame:
    """The 569 Wisconsin diagnostic rows, with string labels (malignant / benign) as a user's CSV would have."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns=["target"]).copy()
    frame[TARGET] = np.where(data.frame["target"] == 1, "benign", "malignant")
    return frame


def split_batches(frame: pd.DataFrame, sizes: list[int], *, seed: int = 7) -> list[pd.DataFrame]:
    """Disjoint random batches of the given sizes (the remainder is dropped)."""
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    batches, start = [], 0
    for size in sizes:
        batches.append(shuffled.iloc[start : start + size].reset_index(drop=True))
        start += size
    return batches


def recalibrated_sensors(frame: pd.DataFrame, *, factor: float = 1.5) -> pd.DataFrame:
    """A realistic drift: the imaging software is recalibrated and every size measurement (radius, perimeter,
    area) now reads `factor` times larger. Labels are unchanged and correct; the champion, trained on the old
    calibration, mistakes large-looking benign cells for malignant ones."""
    drifted = frame.copy()
    size_columns = [c for c in drifted.columns if any(w in c for w in ("radius", "perimeter", "area"))]
    for column in size_columns:
        power = 2 if "area" in column else 1
        drifted[column] = (drifted[column] * factor**power).round(4)
    return drifted
