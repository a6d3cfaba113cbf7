"""Scoring models: the gate (challenger vs champion on the same holdout) and monitoring (champion on fresh data).

Both score the compiled (ONNX) model, the form that serves, through the same numpy coercion as a prediction
request: what is measured is what users get. A challenger without a compiled form that passed its parity check
does not pass the gate.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from loopline_runtime.bucket_layout import FINGERPRINT_PREFIX
from loopline_runtime.compiled_model import CompiledModel
from loopline_runtime.config import PipelineConfig
from loopline_runtime.errors import LooplineError
from loopline_runtime.labeled_columns import score_columns
from loopline_runtime.metrics import all_scores, at_least_as_good, meets
from loopline_runtime.orchestration import REGIME_REASONS
from loopline_runtime.prediction import predict_with_probabilities
from loopline_runtime.registry import LoadedModel, ModelRegistry, serves_scikit_learn
from loopline_runtime.report_numbers import REPORT_FILE, model_report_numbers
from loopline_runtime.schema import FeatureSchema, coerce_target, frame_columns


@dataclass(frozen=True)
class GateDecision:
    model_version: str
    metric: str
    challenger_score: float
    gate_threshold: float
    passes_gate: bool
    beats_champion: bool
    champion_version: str | None = None
    # the ETag of the champion pointer compared against: the promotion moves the pointer only if it still has it
    champion_etag: str | None = None
    champion_score: float | None = None
    challenger_scores: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    # the form the challenger was scored in: "onnx" (what would serve) or "scikit-learn" (it did not compile)
    scored_form: str = "onnx"
    compiled: dict[str, Any] = field(default_factory=dict)  # the manifest's compilation record (parity etc.)
    # the S3 versions and sha256 of the manifest and compiled artifact the gate scored: what a promotion pins
    pins: dict[str, Any] | None = None
    approval_required: bool = False  # gate.approval: manual (the state machine waits for a person)
    approval_timeout_seconds: int = 0
    # after an alarm: the comparison on the batches that breached and on the rest of the holdout (regime_decision)
    regime: dict[str, Any] | None = None
    # gate.shadow with a champion to compare against: it runs in shadow on live traffic before it is promoted
    shadow_required: bool = False

    @property
    def promote(self) -> bool:
        return self.passes_gate and self.beats_champion

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "promote": self.promote}


def score_model(model: CompiledModel | LoadedModel, frame: pd.DataFrame, schema: FeatureSchema) -> dict[str, float]:
    """Every metric of the task for `model` on labeled rows of `frame` (the target named by `schema`)."""
    return score_and_probabilities(model, frame, schema)[0]


def score_and_probabilities(model: CompiledModel | LoadedModel, frame: pd.DataFrame, schema: FeatureSchema
                            ) -> tuple[dict[str, float], np.ndarray | None]:
    """`score_model`, and the class probabilities the model returned for those rows (None for a regressor)."""
    if isinstance(model, CompiledModel):  # as monitoring scores a labeled batch
        scores, probabilities, _ = score_columns(model, frame_columns(frame), schema)
        return scores, probabilities
    labeled = frame[frame[schema.target].notna()]
    y = coerce_target(labeled[schema.target], schema.task)
    X = labeled.reindex(columns=list(model.schema.features))  # a feature the rows lack is missing (imputed)
    predictions, proba, classes = predict_with_probabilities(model.pipeline, X)
    return all_scores(model.schema.task, y, predictions, proba, classes), proba


def regime_decision(metric: str, *, challenger_recent: float, champion_recent: float, challenger_rest: float | None,
                    champion_rest: float | None, margin: float) -> tuple[bool, list[str]]:
    """The gate after an alarm: the challenger must score at least as well as the champion on the rows of the
    batches that breached (the new regime; a tie passes, as both may be perfect on a small batch's few holdout
    rows), and not worse than `margin` on the rest of the holdout (the old one; no rest rows: no condition).
    Returns (passes, reasons it does not)."""
    reasons = []
    if not at_least_as_good(metric, challenger_recent, champion_recent):
        reasons.append(f"on the batches that breached the alarm the challenger scores {challenger_recent:.4f} "
                       f"{metric}, worse than the champion's {champion_recent:.4f}")
    if challenger_rest is not None and champion_rest is not None \
            and not at_least_as_good(metric, challenger_rest, champion_rest, margin):
        reasons.append(f"on the rest of the holdout the challenger scores {challenger_rest:.4f} {metric}, worse than "
                       f"the champion's {champion_rest:.4f} by more than gate.older_data_margin {margin}")
    return not reasons, reasons


def gate_challenger(registry: ModelRegistry, config: PipelineConfig, model_version: str,
                    holdout_key: str, fingerprint: str | None = None, reason: str | None = None) -> GateDecision:
    """Score the challenger and the champion on the same holdout rows and decide whether to promote.

    A run started by the alarm (`reason` in REGIME_REASONS) is judged on the new regime: the holdout rows of the
    batches that breached against the rest (regime_decision); without such rows, on the whole holdout.

    The decision goes to models/<version>/evaluation.json; then, and only then, the training fingerprint is
    marked as decided, so a challenger whose evaluation failed is gated by the next trigger instead of skipped.
    """
    manifest = registry.verify(model_version)  # every artifact against its sha256 before anything is loaded
    compiled = manifest.get("compiled") or {}
    holdout = pd.read_csv(io.BytesIO(registry.store.get_bytes(holdout_key)), dtype=str)
    reasons: list[str] = []
    challenger: CompiledModel | LoadedModel
    pins: dict[str, Any] | None = None
    if serves_scikit_learn(manifest) or ("artifact" in compiled and compiled.get("parity", {}).get("passed")):
        # what is scored is what a promotion pins: the ONNX graph, or the pinned pipeline where the config chose
        # the scikit-learn serving form
        challenger, pins = registry.load_for_promotion(model_version)
    else:
        reasons.append(_not_servable_reason(compiled))
        challenger = registry.load(model_version)  # scored as trained, for the record; it cannot be promoted
    schema = challenger.schema
    metric = challenger.manifest["metric"]
    challenger_scores = score_model(challenger, holdout, schema)
    challenger_score = challenger_scores[metric]
    threshold = config.gate.threshold
    passes = meets(metric, challenger_score, threshold)
    if not passes:
        reasons.append(f"{metric} {challenger_score:.4f} does not meet the gate threshold {threshold}")
    passes = passes and not reasons

    pointer, champion_etag = registry.champion_pointer_and_etag()
    champion_version = pointer["version"] if pointer else None
    champion_score: float | None = None
    beats = True
    regime: dict[str, Any] | None = None
    if pointer is not None and champion_version != model_version:
        champion: CompiledModel | None = None
        try:
            champion = registry.load_champion(pointer)
            champion_score = score_model(champion, holdout, schema).get(metric)
        except (LooplineError, KeyError, ValueError) as exc:
            # a champion that cannot score these rows (changed schema, failed verification) cannot block
            reasons.append(f"champion {champion_version} could not be scored on this holdout: {exc}")
        if champion is not None and champion_score is not None and reason in REGIME_REASONS:
            regime = _compare_on_new_regime(registry, config, challenger, champion, holdout, manifest)
        if regime is not None and "passes" in regime:
            beats = bool(regime["passes"])
            reasons.extend(regime["reasons"])
        elif champion_score is not None:
            beats = at_least_as_good(metric, challenger_score, champion_score, config.gate.tolerance)
            if not beats:
                reasons.append(
                    f"champion {champion_version} scores {champion_score:.4f} {metric} on the same holdout, better "
                    f"than the challenger's {challenger_score:.4f}"
                )
    decision = GateDecision(
        model_version=model_version,
        metric=metric,
        challenger_score=challenger_score,
        gate_threshold=threshold,
        passes_gate=passes,
        beats_champion=beats,
        champion_version=champion_version,
        champion_etag=champion_etag,
        champion_score=champion_score,
        challenger_scores=challenger_scores,
        reasons=reasons or [_passing_reason(regime)],
        scored_form=challenger.form if isinstance(challenger, CompiledModel) else "scikit-learn",
        compiled={key: value for key, value in compiled.items() if key in ("parity", "error", "artifact")},
        pins=pins,
        approval_required=config.gate.approval == "manual",
        approval_timeout_seconds=config.gate.approval_timeout_seconds,
        regime=regime,
        shadow_required=config.gate.shadow is not None and champion_version is not None
        and champion_version != model_version,
    )
    registry.store.put_json(registry.prefix(model_version) + "evaluation.json",
                            {**decision.to_dict(), "evaluated_at": datetime.now(UTC).isoformat()})
    if fingerprint:
        registry.store.put_json(f"{FINGERPRINT_PREFIX}{fingerprint}",
                                {"model_version": model_version, "promote": decision.promote})
    # the report's numbers (permutation importance, curves) come from the trained Pipeline, not the serving form
    trained = challenger if isinstance(challenger, LoadedModel) else registry.load(model_version)
    record_report_numbers(registry, trained, holdout, seed=config.training.seed)
    return decision


def _compare_on_new_regime(registry: ModelRegistry, config: PipelineConfig, challenger: CompiledModel | LoadedModel,
                           champion: CompiledModel, holdout: pd.DataFrame, manifest: dict[str, Any]
                           ) -> dict[str, Any]:
    """Both models on the holdout rows of the batches that breached the alarm and on the rest (holdout.csv is
    grouped by dataset version, as the manifest's `holdout_origins` says). Without such rows: a note why, and the
    caller falls back to the whole holdout."""
    metric = manifest["metric"]
    breached = registry.breached_versions(champion.version)
    recent = np.zeros(len(holdout), dtype=bool)
    start = 0
    for origin in manifest.get("holdout_origins") or []:
        if origin["dataset_version"] in breached:
            recent[start:start + int(origin["rows"])] = True
        start += int(origin["rows"])
    record: dict[str, Any] = {"breached_versions": breached, "recent_rows": int(recent.sum()),
                              "rest_rows": int((~recent).sum()), "margin": config.gate.older_data_margin}
    if start != len(holdout) or not recent.any():
        record["note"] = ("the holdout holds no rows of the batches that breached the alarm; compared on the whole "
                          "holdout")
        return record
    schema = challenger.schema
    scores = {}
    for name, rows in (("recent", recent), ("rest", ~recent)):
        part = holdout[rows]
        for who, model in (("challenger", challenger), ("champion", champion)):
            value = score_model(model, part, schema).get(metric) if rows.any() else None
            scores[f"{who}_{name}"] = value
    if scores["challenger_recent"] is None or scores["champion_recent"] is None:
        record["note"] = f"{metric} is not defined on the rows of the batches that breached; compared on the whole " \
                         "holdout"
        return record
    passes, reasons = regime_decision(metric, challenger_recent=scores["challenger_recent"],
                                      champion_recent=scores["champion_recent"],
                                      challenger_rest=scores["challenger_rest"], champion_rest=scores["champion_rest"],
                                      margin=config.gate.older_data_margin)
    return {**record, **scores, "passes": passes, "reasons": reasons}


def reject_promotion(registry: ModelRegistry, model_version: str, reason: str) -> dict[str, Any]:
    """Record on the challenger's evaluation why a promotion the gate allowed did not happen; returns it."""
    key = registry.prefix(model_version) + "evaluation.json"
    evaluation: dict[str, Any] = registry.store.get_json(key)
    evaluation.update(promote=False, promotion_rejected_at=datetime.now(UTC).isoformat(),
                      reasons=[*evaluation.get("reasons", []), reason])
    registry.store.put_json(key, evaluation)
    return evaluation


def record_report_numbers(registry: ModelRegistry, model: LoadedModel, holdout: pd.DataFrame, *, seed: int) -> None:
    """Write the numbers `loopline report` draws (models/<version>/report.json). A report is for people: when
    its numbers cannot be computed the file says why, and the gate's decision stands."""
    schema = model.schema
    labeled = holdout[holdout[schema.target].notna()]
    try:
        numbers = model_report_numbers(model.pipeline, labeled.reindex(columns=list(schema.features)),
                                       coerce_target(labeled[schema.target], schema.task), task=schema.task,
                                       metric=model.manifest["metric"], seed=seed)
    except Exception as exc:  # a report is never a reason for the gate's task to fail
        numbers = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    registry.store.put_json(registry.prefix(model.version) + REPORT_FILE, numbers)


def _passing_reason(regime: dict[str, Any] | None) -> str:
    if regime is not None and regime.get("passes"):
        return ("passes the gate, beats the champion on the batches that breached the alarm and is within "
                "gate.older_data_margin of it on the rest of the holdout")
    return "passes the gate and is at least as good as the champion"


def _not_servable_reason(compiled: dict[str, Any]) -> str:
    if "error" in compiled:
        return f"the model did not compile to ONNX ({compiled['error']}); it cannot serve"
    parity = compiled.get("parity")
    if not parity:
        return "the model has no compiled (ONNX) form; it cannot serve"
    return (f"the compiled (ONNX) model does not agree with scikit-learn on the holdout ({_parity_summary(parity)}); "
            "it cannot serve")


def _parity_summary(parity: dict[str, Any]) -> str:
    if "max_relative_diff" in parity:
        return f"max relative difference {parity['max_relative_diff']:.3g} > tolerance {parity['tolerance']}"
    return (f"{parity.get('label_mismatches')} label(s) differ, max probability difference "
            f"{parity.get('max_probability_diff', 0.0):.3g} (tolerance {parity.get('tolerance')})")
