"""Bundled example data: scikit-learn's breast-cancer set as labeled CSV batches, and a realistic drift of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine

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


# ---------------------------------------------------------------- `loopline example`: data to try `loopline init` on


def iris() -> pd.DataFrame:
    """Fisher's 150 iris flowers: four measurements in cm and the species as text (3 classes)."""
    data = load_iris(as_frame=True)
    frame = data.frame.drop(columns=["target"]).copy()
    frame["species"] = [str(data.target_names[i]) for i in data.target]
    return frame


def wine() -> pd.DataFrame:
    """178 Italian wines: 13 chemical measurements and the cultivar as text (class_0, class_1, class_2)."""
    data = load_wine(as_frame=True)
    frame = data.frame.drop(columns=["target"]).copy()
    frame["cultivar"] = [str(data.target_names[i]) for i in data.target]
    return frame


def diabetes() -> pd.DataFrame:
    """442 diabetes patients in original units (age, sex, bmi, blood pressure, six serum measurements) and a
    quantitative measure of disease progression one year later (a regression target)."""
    data = load_diabetes(as_frame=True, scaled=False)
    return data.frame.rename(columns={"target": "progression"})


@dataclass(frozen=True)
class ExampleDataset:
    """A bundled data set `loopline example NAME` writes as CSV (scikit-learn's copies: no network)."""

    name: str
    target: str
    description: str
    load: Callable[[], pd.DataFrame]


def example_datasets() -> dict[str, ExampleDataset]:
    """The data sets `loopline example` offers, by name."""
    examples = [
        ExampleDataset("breast-cancer", TARGET, "569 tumours, 30 measurements, benign/malignant", breast_cancer),
        ExampleDataset("iris", "species", "150 flowers, 4 measurements, 3 species", iris),
        ExampleDataset("wine", "cultivar", "178 wines, 13 chemical measurements, 3 cultivars", wine),
        ExampleDataset("diabetes", "progression", "442 patients, 10 measurements, disease progression (regression)",
                       diabetes),
    ]
    return {example.name: example for example in examples}
