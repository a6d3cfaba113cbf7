"""Compile at registration: the fitted scikit-learn Pipeline -> ONNX (skl2onnx), checked for parity on the holdout.

What is converted is the Pipeline after its `TabularCoercer` (ColumnTransformer + estimator): one ONNX input
per model-input column, float32 for numbers (onnxruntime's Imputer has no double kernel) and strings for
categories. The coercion itself is done in numpy at serving (`model_inputs`), so the parity check runs the
holdout through that same numpy coercion: it checks the whole serving path against scikit-learn, not just the
converter.

Parity, as stated in the manifest and the docs: every label agrees (except on rows where scikit-learn's two most
probable classes are within 2 x PROBABILITY_TOLERANCE, a tie at float32 precision), every class probability is
within PROBABILITY_TOLERANCE, every regression output within REGRESSION_TOLERANCE x max(1, |value|).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version as installed_version
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
from skl2onnx import convert_sklearn, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from skl2onnx.common.exceptions import MissingConverter, MissingShapeCalculator
from skl2onnx.operator_converters import random_forest as random_forest_converter
from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
from sklearn.pipeline import Pipeline

from loopline_runtime.compiled_model import FORM, METADATA_KEY, CompiledGraph
from loopline_runtime.feature_schema import FeatureSchema, Task, model_input_columns
from loopline_runtime.features import Float32MedianImputer
from loopline_runtime.model_inputs import InputSpec, columns_to_inputs
from loopline_runtime.prediction import predict_with_probabilities
from loopline_runtime.schema import frame_columns

PROBABILITY_TOLERANCE = 1e-4
REGRESSION_TOLERANCE = 1e-4
# ONNX opsets the graph is written for (onnxruntime 1.32 runs both; ai.onnx.ml 3 has the tree ensembles)
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}

# a SimpleImputer with rounded fill values converts as one
update_registered_converter(Float32MedianImputer, "SklearnImputer", calculate_sklearn_imputer_output_shapes,
                            convert_sklearn_imputer)


@dataclass
class Compilation:
    """The result of compiling one pipeline: the ONNX bytes when it converted, and the manifest's record."""

    onnx_bytes: bytes | None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def servable(self) -> bool:
        return self.onnx_bytes is not None and bool(self.record.get("parity", {}).get("passed"))


def compile_and_check(pipeline: Pipeline, schema: FeatureSchema, holdout: pd.DataFrame) -> Compilation:
    """Convert `pipeline` and check parity on `holdout`; never raises for a model that does not convert."""
    record: dict[str, Any] = {"form": FORM, "converter": converter_versions(), "target_opset": TARGET_OPSET}
    try:
        onnx_bytes = compile_pipeline(pipeline, schema)
        graph = CompiledGraph(onnx_bytes)
    except Exception as exc:  # any converter failure is recorded; the gate then rejects the challenger
        record["error"] = unconvertible_step_message(pipeline, exc) or f"{type(exc).__name__}: {exc}"[:500]
        return Compilation(None, record)
    record["parity"] = check_parity(pipeline, graph, schema, holdout)
    return Compilation(onnx_bytes, record)


def compile_pipeline(pipeline: Pipeline, schema: FeatureSchema) -> bytes:
    """ONNX bytes of `pipeline` without its coercion step, with the metadata serving needs."""
    coercer = pipeline.named_steps["coerce"]
    model = pipeline.named_steps["model"]
    if "columns" in pipeline.named_steps:  # a built-in candidate
        columns = pipeline.named_steps["columns"]
        categorical = {column for name, _, cols in columns.transformers_ if name == "categorical" for column in cols}
        converted = Pipeline([("columns", columns), ("model", model)])
    else:  # the user's own estimator after the coercion (modeling.build_code_pipeline)
        categorical = set(model_input_columns(schema.features)[1])
        converted = model
    kinds = [(column, "string" if column in categorical else "float") for column in coercer.feature_names_out_]
    initial_types = [(column, StringTensorType([None, 1]) if kind == "string" else FloatTensorType([None, 1]))
                     for column, kind in kinds]
    final = _final_estimator(model)
    options = {id(final): {"zipmap": False}} if schema.task is Task.CLASSIFICATION else None
    with _hist_gradient_boosting_cast():
        onnx_model = convert_sklearn(converted, initial_types=initial_types, options=options,
                                     target_opset=TARGET_OPSET)
    # skl2onnx makes input names safe ("a/b c" -> "a_b_c"); the order is that of initial_types
    names = [graph_input.name for graph_input in onnx_model.graph.input]
    classes = [_plain(c) for c in getattr(model, "classes_", [])] if schema.task is Task.CLASSIFICATION else None
    meta = {
        "task": schema.task.value,
        "inputs": [[column, name, kind] for (column, kind), name in zip(kinds, names, strict=True)],
        "levels": getattr(coercer, "levels_", {}),
        "classes": classes,
    }
    entry = onnx_model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    return onnx_model.SerializeToString()


def check_parity(pipeline: Pipeline, graph: CompiledGraph, schema: FeatureSchema,
                 frame: pd.DataFrame) -> dict[str, Any]:
    """Compare scikit-learn and the compiled model on `frame` (raw feature values, as stored)."""
    X = frame.reindex(columns=list(schema.features))
    expected = predict_with_probabilities(pipeline, X)
    actual = graph.run(columns_to_inputs(frame_columns(X), InputSpec(schema, graph.inputs, graph.levels)))
    report: dict[str, Any] = {"rows": len(X)}
    if schema.task is Task.REGRESSION:
        want = np.asarray(expected[0], dtype=np.float64)
        diff = np.abs(actual.predictions - want)
        report.update({
            "max_abs_diff": float(diff.max(initial=0.0)),
            "max_relative_diff": float((diff / np.maximum(1.0, np.abs(want))).max(initial=0.0)),
            "tolerance": REGRESSION_TOLERANCE,
        })
        report["passed"] = bool(report["max_relative_diff"] <= REGRESSION_TOLERANCE)
        return report
    want_proba = np.asarray(expected[1], dtype=np.float64)
    got_proba = actual.probabilities if actual.probabilities is not None else np.zeros_like(want_proba)
    proba_diff = float(np.abs(got_proba - want_proba).max(initial=0.0)) if got_proba.shape == want_proba.shape \
        else float("inf")
    disagree = np.asarray(expected[0], dtype=object) != actual.predictions
    top_two = np.sort(want_proba, axis=1)[:, -2:] if want_proba.shape[1] > 1 else np.ones((len(X), 2))
    tied = (top_two[:, 1] - top_two[:, 0]) <= 2 * PROBABILITY_TOLERANCE
    report.update({
        "label_mismatches": int((disagree & ~tied).sum()),
        "tied_label_mismatches": int((disagree & tied).sum()),
        "max_probability_diff": proba_diff,
        "tolerance": PROBABILITY_TOLERANCE,
    })
    report["passed"] = report["label_mismatches"] == 0 and proba_diff <= PROBABILITY_TOLERANCE
    return report


def unconvertible_step_message(pipeline: Any, exc: Exception) -> str | None:
    """For skl2onnx's "no converter for this type": which step of the pipeline it is and what to do; else None."""
    if not isinstance(exc, MissingShapeCalculator | MissingConverter):
        return None
    found = re.search(r"type '<class '([^']+)'>'", str(exc))
    type_name = found.group(1) if found else "?"
    short = type_name.rsplit(".", 1)[-1]
    where = next((path for path, step in _steps(pipeline, "") if f"{type(step).__module__}.{type(step).__qualname__}"
                  == type_name), None)
    step = f"step {where!r} ({short})" if where else short
    return (f"{step} cannot be compiled to ONNX: skl2onnx has no converter for {short}. Register one next to the "
            f"class (skl2onnx.update_registered_converter({short}, ..., shape_calculator, converter); see README "
            "\"Bring your own model\"), replace the step with a convertible equivalent, or choose the scikit-learn "
            "serving form for this candidate (`serving: scikit-learn`)")


def _steps(estimator: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """Every step inside a fitted pipeline, named by its set_params path (`model__ratio`)."""
    children: list[tuple[str, Any]] = []
    if isinstance(estimator, Pipeline):
        children = list(estimator.steps)
    elif hasattr(estimator, "transformers_"):
        children = [(name, step) for name, step, _ in estimator.transformers_]
    elif hasattr(estimator, "transformer_list"):
        children = list(estimator.transformer_list)
    for name, child in children:
        path = f"{prefix}__{name}" if prefix else name
        yield path, child
        yield from _steps(child, path)


def _final_estimator(model: Any) -> Any:
    while isinstance(model, Pipeline):
        model = model.steps[-1][1]
    return model


def converter_versions() -> dict[str, str]:
    return {name: installed_version(name) for name in ("skl2onnx", "onnx", "onnxruntime")}


@contextlib.contextmanager
def _hist_gradient_boosting_cast() -> Iterator[None]:
    """Two fixes to skl2onnx 1.20's HistGradientBoosting converter while a conversion runs (undone after):

    - it builds the tree attribute lists from numpy scalars (uint32 node and feature ids, uint8 flags) mixed with
      Python ints and bools, which `make_attribute` rejects (ValueError): each tree's new entries are cast to int;
    - it rounds each float64 threshold to the nearest float32, which can land on a value just above it (a
      percentile threshold sits within one float32 step of a data value): the threshold is adjusted as the
      converter does for RandomForest, to the float32 w with (float)x <= t <=> (float)x <= w.
    """
    original = random_forest_converter.add_tree_to_attribute_pairs_hist_gradient_boosting

    def add_tree(attr_pairs: dict[str, list[Any]], *args: Any, **kwargs: Any) -> None:
        before = {key: len(attr_pairs[key]) for key in _INTEGER_ATTRIBUTES if key in attr_pairs}
        # (attr_pairs, is_classifier, tree, tree_id, tree_weight, weight_id_bias, leaf_weights_are_counts,
        #  adjust_threshold_for_sklearn, dtype): the converter passes the flag as the 7th of *args
        if len(args) >= 7:
            args = (*args[:6], True, *args[7:])
        else:
            kwargs["adjust_threshold_for_sklearn"] = True
        original(attr_pairs, *args, **kwargs)
        for key, start in before.items():
            attr_pairs[key][start:] = [int(value) for value in attr_pairs[key][start:]]

    with mock.patch.object(random_forest_converter, "add_tree_to_attribute_pairs_hist_gradient_boosting", add_tree):
        yield


_INTEGER_ATTRIBUTES = ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_truenodeids",
                       "nodes_falsenodeids", "nodes_missing_value_tracks_true", "class_treeids", "class_nodeids",
                       "class_ids", "target_treeids", "target_nodeids", "target_ids")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
