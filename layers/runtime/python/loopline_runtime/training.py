"""The train step: newest dataset versions -> seeded holdout split -> model search -> registered challenger."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from sklearn.model_selection import train_test_split

from loopline_runtime.bucket_layout import FINGERPRINT_PREFIX, TRAINED_PREFIX
from loopline_runtime.compilation import compile_and_check
from loopline_runtime.config import PipelineConfig, Task, model_code_dir
from loopline_runtime.datasets import DatasetCatalog, DatasetVersion
from loopline_runtime.drift import build_profile
from loopline_runtime.errors import TrainingFailed, TrainingUpToDate
from loopline_runtime.metrics import all_scores
from loopline_runtime.model_code import load_candidates_code
from loopline_runtime.model_code_check import prove_model_code
from loopline_runtime.modeling import SEARCH_MAX_ROWS, search_model
from loopline_runtime.orchestration import REGIME_REASONS
from loopline_runtime.prediction import predict_with_probabilities
from loopline_runtime.progress import PhaseObserver, ignore_phases
from loopline_runtime.quality_estimate import fit_calibration
from loopline_runtime.registry import ModelRegistry, new_model_version
from loopline_runtime.schema import FeatureSchema, coerce_target
from loopline_runtime.storage import ObjectNotFound

# keep this much of the Lambda's time for compiling and registering the model after the search
REGISTER_MARGIN_SECONDS = 60
# The largest training table measured within the TrainFunction's memory (make bench --rows 1000000): model-input
# cells (rows x (features + target)) and the memory it ran in. check_training_size scales it to other sizes.
MEASURED_CELLS = 1_000_000 * 30
MEASURED_MEMORY_MB = 3008
# set by a SageMaker training job's entry point to its instance's memory (loopline_runtime.training_job)
TRAINING_MEMORY_ENV = "LOOPLINE_TRAINING_MEMORY_MB"


@dataclass(frozen=True)
class TrainingResult:
    model_version: str
    holdout_key: str
    metric: str
    cv_score: float
    candidate: str
    fingerprint: str = ""
    resumed: bool = False  # an earlier run's challenger that was never gated

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "holdout_key": self.holdout_key,
            "metric": self.metric,
            "cv_score": self.cv_score,
            "candidate": self.candidate,
            "fingerprint": self.fingerprint,
            "resumed": self.resumed,
        }


def train_challenger(
    catalog: DatasetCatalog,
    registry: ModelRegistry,
    config: PipelineConfig,
    *,
    trigger: dict[str, Any],
    remaining_seconds: Callable[[], float] | None = None,
    max_search_rows: int = SEARCH_MAX_ROWS,
    on_phase: PhaseObserver = ignore_phases,
    code_dir: Path | None = None,
) -> TrainingResult:
    """Train on the configured window of dataset versions and register the result as a challenger.

    `on_phase` sees the phases (load, search and each candidate's cross-validation, holdout, register) begin and end.
    Candidates with their own code are loaded from `code_dir` (default: the copy packaged with the config) and
    proven on a sample before the search; bad code stops the run with InvalidModelCode, before anything is written.
    """
    started = datetime.now(UTC)
    clock_start = time.monotonic()
    code = load_candidates_code(config.models, code_dir or model_code_dir()) if config.code_files() else {}
    datasets = catalog.newest(config.training.window, max_age_days=config.training.window_days)
    code_sha256 = {name: sha for loaded in code.values() for name, sha in loaded.files.items()}
    fingerprint = training_fingerprint([d.version for d in datasets], config, code_sha256)
    try:
        decided = registry.store.get_json(f"{FINGERPRINT_PREFIX}{fingerprint}")
    except ObjectNotFound:
        decided = None
    if decided is not None:
        raise TrainingUpToDate(
            f"model {decided['model_version']} was already trained on dataset versions "
            f"{', '.join(d.version for d in datasets)} with this config and gated; a seeded rerun would reproduce it"
        )
    with contextlib.suppress(ObjectNotFound):
        orphan = registry.store.get_json(f"{TRAINED_PREFIX}{fingerprint}")
        return TrainingResult(**{**orphan, "fingerprint": fingerprint, "resumed": True})
    schema = FeatureSchema.from_dict(datasets[-1].manifest["schema"])
    check_training_size(datasets, schema)
    on_phase("load_start", "load dataset CSV from S3")
    frames = [catalog.load(dataset, compact=True) for dataset in datasets]
    on_phase("load_end", "load dataset CSV from S3")
    labeled_rows = [int(f[schema.target].notna().sum()) if schema.target in f.columns else 0 for f in frames]
    frame = _concat([f[[c for c in f.columns if c in (*schema.features, schema.target)]] for f in frames])
    del frames
    frame = frame[frame[schema.target].notna()].reset_index(drop=True)
    y = coerce_target(frame[schema.target].astype(object), schema.task)
    X = frame[list(schema.features)]
    versions = [(d.version, rows) for d, rows in zip(datasets, labeled_rows, strict=True)]
    X_train, X_holdout, y_train, y_holdout, holdout_origins = _split_per_version(X, y, schema.task, config, versions)
    metric = config.metric_for(schema.task)

    budget = float(config.training.time_budget_seconds)
    if remaining_seconds is not None:
        budget = max(5.0, min(budget, remaining_seconds() - REGISTER_MARGIN_SECONDS))
    candidates = {candidate.name: candidate for candidate in config.models or []}
    for name, loaded in code.items():
        on_phase("code_check_start", name)
        prove_model_code(loaded, candidates[name], schema, X_train, y_train, seed=config.training.seed,
                         time_budget_seconds=budget)
        on_phase("code_check_end", name)
    weighting = _new_regime_weighting(registry, trigger, X_train.index.to_numpy(), versions)
    on_phase("search_start", "search")
    result = search_model(schema, X_train, y_train, metric=metric, seed=config.training.seed,
                          time_budget_seconds=budget, candidates=list(config.models) if config.models else None,
                          max_search_rows=max_search_rows, on_phase=on_phase, code=code,
                          sample_weight=weighting.pop("sample_weight", None))
    on_phase("search_end", "search")
    on_phase("holdout_start", "score the holdout")
    predictions, proba, classes_seen = predict_with_probabilities(result.pipeline, X_holdout)
    # every metric of the task on the holdout: monitoring compares each one on fresh data with these
    holdout_scores = all_scores(schema.task, y_holdout, predictions, proba, classes_seen)
    holdout_score = holdout_scores[metric]
    on_phase("holdout_end", "score the holdout")
    # compiled at registration and checked on the same holdout; a model that fails is registered, never served
    on_phase("compile_start", "compile to ONNX + parity check")
    compilation = compile_and_check(result.pipeline, schema, X_holdout)
    on_phase("compile_end", "compile to ONNX + parity check")

    version = new_model_version()
    holdout = _as_uploaded(X_holdout)
    holdout[schema.target] = y_holdout.to_numpy()
    buffer = io.StringIO()
    holdout.to_csv(buffer, index=False)
    holdout_key = registry.prefix(version) + "holdout.csv"
    registry.store.put_bytes(holdout_key, buffer.getvalue().encode("utf-8"), content_type="text/csv")

    features = {name: kind.value for name, kind in schema.features.items()}
    classes = [c.item() if hasattr(c, "item") else c for c in getattr(result.pipeline, "classes_", [])]
    on_phase("register_start", "register (joblib dump + S3)")
    registry.register(version, result.pipeline, {
        "pipeline": config.name,
        "task": schema.task.value,
        "target": schema.target,
        "schema": schema.to_dict(),
        "classes": classes,
        "metric": metric,
        "estimator": result.candidate,
        "params": result.params,
        "cv_score": result.cv_score,
        "holdout_score": holdout_score,
        "holdout_scores": holdout_scores,
        # the holdout's rows by dataset version, in holdout.csv's order: the gate tells new regime from old by it
        "holdout_origins": holdout_origins,
        # the probabilities' calibration on the holdout: what quality_estimate needs to estimate without labels
        "calibration": _calibration(proba, y_holdout, classes),
        # after an alarm: the breached batches' training rows weigh as much as the rest of the window
        "new_regime_weighting": weighting or None,
        "leaderboard": result.leaderboard,
        "search_budget_seconds": budget,
        "search_budget_exhausted": result.budget_exhausted,
        "search_rows": result.search_rows,
        "search_method": result.method,
        "seed": config.training.seed,
        "dataset_versions": [d.version for d in datasets],
        "training_rows": len(X_train),
        "holdout_rows": len(X_holdout),
        "holdout_key": holdout_key,
        "training_profile": build_profile(X_train, features),
        "trigger": trigger,
        "started_at": started.isoformat(),
        "training_seconds": round(time.monotonic() - clock_start, 3),
        "compiled": compilation.record,
        # the user's code the winner was built from (files and sha256, as packaged with the config), and the form
        # it serves in: onnx, or scikit-learn where the config chose it for a step that does not compile
        "code": code[result.candidate].record() if result.candidate in code else None,
        "serving_form": candidates[result.candidate].serving if result.candidate in candidates else "onnx",
        # the process's RSS high-water mark so far (Lambda reuses warm environments: an upper bound for this run)
        "peak_memory_mb": peak_memory_mb(),
    }, compiled=compilation.onnx_bytes)
    on_phase("register_end", "register (joblib dump + S3)")
    trained = TrainingResult(version, holdout_key, metric, result.cv_score, result.candidate, fingerprint)
    # the "already trained on this data" fingerprint is written by the gate once it has decided
    registry.store.put_json(f"{TRAINED_PREFIX}{fingerprint}",
                            {k: v for k, v in trained.to_dict().items() if k not in {"fingerprint", "resumed"}})
    return trained


def check_training_size(datasets: list[DatasetVersion], schema: FeatureSchema, *,
                        memory_mb: int | None = None) -> None:
    """Refuse, before any data is loaded, a window larger than this function's memory is measured to train.

    The limit scales the largest table measured (MEASURED_CELLS cells trained within MEASURED_MEMORY_MB, see
    docs/benchmarks.md) by the memory training runs in (the function's, or a training job instance's): above it, a
    clear error instead of an out-of-memory kill after minutes of work.
    """
    memory = memory_mb or training_memory_mb()
    rows, columns = window_size(datasets, schema)
    limit = cells_limit(memory)
    if rows * columns > limit:
        raise TrainingFailed(
            f"the training window holds {rows:,} rows x {columns} columns ({rows * columns:,} cells); this train "
            f"function ({memory:,} MB) is measured to train at most {limit:,} cells within its memory. Lower "
            f"training.window (or window_days), raise the TrainFunction's MemorySize (Lambda allows 10,240 MB), "
            f"set training.engine: auto or sagemaker (a SageMaker training job), or sample the uploads"
        )


def training_memory_mb() -> int:
    """The memory training runs in: a training job's instance (set by its entry point), else the Lambda's."""
    return int(os.environ.get(TRAINING_MEMORY_ENV) or os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
               or MEASURED_MEMORY_MB)


def window_size(datasets: list[DatasetVersion], schema: FeatureSchema) -> tuple[int, int]:
    """The window's rows and model-input columns (features + target), from the manifests alone."""
    return sum(int(d.manifest.get("rows", 0)) for d in datasets), len(schema.features) + 1


def cells_limit(memory_mb: int) -> int:
    """The most cells measured to train within `memory_mb` (MEASURED_CELLS scaled linearly)."""
    return int(MEASURED_CELLS * memory_mb / MEASURED_MEMORY_MB)


def _as_uploaded(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as they are written to holdout.csv: numeric columns of whole numbers as integers (a compact load
    reads them as floats; written as `3.0` they would no longer be the user's `3`)."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if pd.api.types.is_float_dtype(column.dtype):
            present = column.dropna().to_numpy()
            if present.size and np.all(np.isfinite(present)) and np.all(np.mod(present, 1) == 0) \
                    and np.all(np.abs(present) < 2**53):
                out[name] = column.astype("Int64")
    return out


def peak_memory_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate compact frames, keeping text columns categorical (plain pd.concat turns Categoricals with
    different levels into object columns, one Python string per cell)."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    columns: dict[str, Any] = {}
    for name in frames[-1].columns:
        pieces = [f[name] if name in f.columns else pd.Series([None] * len(f), dtype=object) for f in frames]
        if all(isinstance(p.dtype, pd.CategoricalDtype) or p.isna().all() for p in pieces):
            columns[name] = union_categoricals([pd.Categorical(p) for p in pieces], sort_categories=True)
        else:
            columns[name] = pd.concat(pieces, ignore_index=True)
    return pd.DataFrame(columns)


def training_fingerprint(dataset_versions: list[str], config: PipelineConfig,
                         code_sha256: dict[str, str] | None = None) -> str:
    """What determines a trained model: the data window, the settings that shape training and the model code."""
    shaping = config.model_dump(mode="json", include={"target", "task", "features", "ignore", "metric", "training",
                                                      "models"})
    content: dict[str, Any] = {"datasets": dataset_versions, "config": shaping}
    if code_sha256:  # absent for built-in candidates: their fingerprints stay what they were
        content["code"] = code_sha256
    payload = json.dumps(content, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


def _new_regime_weighting(registry: ModelRegistry, trigger: dict[str, Any], train_rows: np.ndarray,
                          versions: list[tuple[str, int]]) -> dict[str, Any]:
    """After an alarm, the training rows of the batches that breached it get one weight that makes them weigh as
    much as the rest of the window (the refit only; never less than 1): a first retraining, while the old regime
    is still most of the window, then learns the new regime instead of averaging it away. Otherwise {}.

    Returns {"versions", "weight", "rows", "sample_weight"} (`train_rows`: each training row's position in the
    window, versions in window order with their row counts)."""
    if trigger.get("reason") not in REGIME_REASONS:
        return {}
    pointer = registry.champion_pointer()
    if pointer is None:
        return {}
    breached = set(registry.breached_versions(str(pointer["version"])))
    ends = np.cumsum([rows for _, rows in versions])
    origin = np.searchsorted(ends, train_rows, side="right")
    recent = np.isin(origin, [i for i, (version, _) in enumerate(versions) if version in breached])
    if not recent.any() or recent.all():
        return {}
    weight = max(1.0, float((~recent).sum() / recent.sum()))
    return {"versions": [v for v, _ in versions if v in breached], "weight": round(weight, 6),
            "rows": int(recent.sum()), "sample_weight": np.where(recent, weight, 1.0)}


def _calibration(proba: np.ndarray | None, y_holdout: pd.Series, classes: list[Any]) -> dict[str, Any] | None:
    if proba is None or len(classes) < 2:
        return None
    return fit_calibration(proba, y_holdout.to_numpy(), classes)


def _split_per_version(X: pd.DataFrame, y: pd.Series, task: Task, config: PipelineConfig,
                       versions: list[tuple[str, int]]) -> Any:
    """The seeded holdout split, made within each dataset version (rows in window order, `versions` = each
    version's row count), so a version's holdout rows are the same in every training run that uses it: a later
    gate scores the champion only on rows it never trained on. Returns X_train, X_holdout, y_train, y_holdout and
    the holdout's origins [{"dataset_version", "rows"}] in holdout order."""
    if task is Task.CLASSIFICATION and y.nunique() < 2:
        raise TrainingFailed(f"the training data holds a single class ({y.iloc[0]!r})")
    train_parts, holdout_parts, origins, start = [], [], [], 0
    for version, rows in versions:
        index = np.arange(start, start + rows)
        start += rows
        if rows < 2:
            train_parts.append(index)
            continue
        train_index, holdout_index = _split(index, y.iloc[index], task, config)
        train_parts.append(train_index)
        holdout_parts.append(holdout_index)
        origins.append({"dataset_version": version, "rows": len(holdout_index)})
    train = np.concatenate(train_parts)
    holdout = np.concatenate(holdout_parts) if holdout_parts else np.array([], dtype=int)
    return X.iloc[train], X.iloc[holdout], y.iloc[train], y.iloc[holdout], origins


def _split(X: Any, y: pd.Series, task: Task, config: PipelineConfig) -> Any:
    stratify = None
    if task is Task.CLASSIFICATION:
        counts = y.value_counts()
        if len(counts) >= 2 and counts.min() >= 2:
            stratify = y
    try:
        return train_test_split(X, test_size=config.training.holdout_fraction, random_state=config.training.seed,
                                stratify=stratify)
    except ValueError:  # too few rows per class for a stratified holdout: fall back to a plain seeded split
        return train_test_split(X, test_size=config.training.holdout_fraction, random_state=config.training.seed)
