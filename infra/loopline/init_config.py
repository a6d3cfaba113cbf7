"""`loopline init`: a commented pipeline config for a user's CSV, proposed by the runtime's own schema inference.

The types, the ignored columns and the task come from `loopline_runtime.schema.infer_schema` (the rules the
Lambdas apply to a config without `features`); this module only describes the data around them (levels, missing
values, ranges) and turns the result into a YAML file a person can read and edit.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import annotated_types
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel

from loopline.invocation import command
from loopline_runtime.config import (
    BUILT_IN_CANDIDATES,
    DEFAULT_METRIC,
    PIPELINE_NAME_PATTERN,
    AlarmConfig,
    CaptureConfig,
    FeatureType,
    GateConfig,
    IngestConfig,
    LabelsConfig,
    LiveDriftConfig,
    PipelineConfig,
    Task,
    TrainingConfig,
    higher_is_better,
)
from loopline_runtime.csv_delimiter import DELIMITER_NAMES, detected_delimiter
from loopline_runtime.errors import LooplineError
from loopline_runtime.feature_schema import model_input_columns
from loopline_runtime.features import DATE_PARTS
from loopline_runtime.metrics import REGISTRY, score
from loopline_runtime.schema import ambiguous_dates, coerce_target, infer_schema, near_miss

# a numeric column of at most this many distinct integers may be codes rather than quantities
LOW_CARDINALITY_INTEGERS = 10
# a text column with more distinct values than this share of its rows is more like free text than a category
FREE_TEXT_SHARE = 0.5
LEVELS_SHOWN = 5
COMMENT_COLUMN = 36
NAME_PATTERN = re.compile(PIPELINE_NAME_PATTERN)
# Labeled batches arrive irregularly: a period without one keeps the alarm's state instead of clearing it.
TREAT_MISSING_DATA = "ignore"
# a binary target whose rarer class has less than this share of the rows is imbalanced: see choose_metric
IMBALANCED_SHARE = 0.25


def max_drop_note(metric: str, max_drop: float) -> str:
    """What max_drop means for `metric`, in one phrase."""
    if higher_is_better(metric):
        return f"{metric} more than {max_drop:g} below its own holdout {metric}"
    return f"{metric} more than {max_drop:.0%} above its own holdout {metric}"


class InitRefused(LooplineError):
    """`loopline init` cannot write a config for this data or to this file; the message says why."""


@dataclass(frozen=True)
class ColumnProfile:
    """One non-target column: its inferred type (None: ignored as id-like) and what a person should know."""

    name: str
    kind: FeatureType | None
    note: str


@dataclass(frozen=True)
class Baseline:
    """The score of a model that learned nothing (majority class / mean), measured on the data itself."""

    metric: str
    score: float
    predictor: str


@dataclass(frozen=True)
class DataProfile:
    """What `loopline init` learned about a CSV."""

    source: str
    rows: int
    target: str
    task: Task
    task_note: str
    columns: list[ColumnProfile]
    baseline: Baseline
    warnings: list[str] = field(default_factory=list)
    delimiter: str = ","
    metric_note: str = ""  # why `loopline init` chose this metric for this target

    @property
    def features(self) -> dict[str, FeatureType]:
        return {c.name: c.kind for c in self.columns if c.kind is not None}

    @property
    def ignored(self) -> list[ColumnProfile]:
        return [c for c in self.columns if c.kind is None]

    @property
    def metric(self) -> str:
        return self.baseline.metric


def profile_data(df: pd.DataFrame, target: str, *, source: str = "the data") -> DataProfile:
    """Infer the schema of `df` (runtime rules) and describe every column.

    Raises:
        InitRefused: the target is not a column, has no values, or no feature column is left.
    """
    if target not in df.columns:
        raise InitRefused(_missing_target_message(target, list(df.columns), source))
    labels = df[target].dropna()
    if labels.empty:
        raise InitRefused(f"the target column {target!r} in {source} has no values; every training row needs a label")
    schema = infer_schema(df, _inference_config(target))
    columns = [
        ColumnProfile(name, schema.features.get(name), _column_note(name, df[name], schema.features.get(name)))
        for name in df.columns
        if name != target
    ]
    if not any(c.kind for c in columns):
        raise InitRefused(f"{source} has no feature column besides the target {target!r} (ids are not features)")
    metric, metric_note = choose_metric(labels, schema.task)
    warnings = []
    if schema.task is Task.CLASSIFICATION and labels.nunique() < 2:
        warnings.append(f"the target {target!r} holds a single class; uploads need at least two classes")
    warnings += [w for name, kind in schema.features.items() if kind is FeatureType.DATE
                 if (w := ambiguous_dates(name, df[name]))]
    minimum = TrainingConfig().min_rows
    if len(labels) < minimum:
        warnings.append(f"{len(labels)} labeled rows; uploads need at least training.min_rows ({minimum})")
    return DataProfile(
        source=source,
        rows=len(df),
        target=target,
        task=schema.task,
        task_note=_task_note(labels, schema.task),
        columns=columns,
        baseline=trivial_baseline(labels, schema.task, metric=metric),
        warnings=warnings,
        metric_note=metric_note,
    )


def choose_metric(labels: pd.Series, task: Task) -> tuple[str, str]:
    """The metric that suits the target, and why, in a sentence.

    An imbalanced binary target (rarer class under IMBALANCED_SHARE) is not judged by macro F1 or accuracy: the
    majority class dominates both, so a model that stops finding the rare class (churners, frauds) barely moves
    them, and a drift can even raise macro F1 while the rare class is missed. F1 of the positive class watches what
    such a model is for; it needs the rare class to be the positive one (sorted second, as `yes` of no/yes or 1 of
    0/1). Otherwise ROC AUC, which does not depend on which class is positive.
    """
    if task is not Task.CLASSIFICATION:
        return DEFAULT_METRIC[task], REGISTRY[DEFAULT_METRIC[task]].note
    y = coerce_target(labels, task)
    shares = y.value_counts(normalize=True)
    if len(shares) != 2 or shares.min() >= IMBALANCED_SHARE:
        return DEFAULT_METRIC[task], REGISTRY[DEFAULT_METRIC[task]].note
    classes = sorted(shares.index)
    rare = shares.idxmin()
    why = (f"{rare!r} is only {shares.min():.0%} of the rows: accuracy and macro f1 hardly move when the model "
           f"stops finding {rare!r}")
    if rare == classes[1]:
        return "f1_positive", f"f1_positive: F1 of the positive class {rare!r}, because {why} (higher is better)."
    return "roc_auc", (f"roc_auc: ranking quality, because {why}; {rare!r} sorts first, so it is not the positive "
                       "class f1_positive would watch (rename the labels to make it sort second) (higher is better).")


def trivial_baseline(labels: pd.Series, task: Task, *, metric: str | None = None) -> Baseline:
    """`metric` (default: the task's default) for always predicting the most frequent class (or the mean)."""
    metric = metric or DEFAULT_METRIC[task]
    y = coerce_target(labels, task)
    if task is Task.CLASSIFICATION:
        constant: Any = y.mode().iloc[0]
        predictor = f"always predicting {constant!r}"
        classes = sorted(y.unique())
        uniform = np.full((len(y), len(classes)), 1 / max(len(classes), 1))  # a model that ranks nothing
        value = score(metric, y, [constant] * len(y), uniform, classes)
    else:
        constant = float(y.mean())
        predictor = f"always predicting the mean ({constant:.4g})"
        value = score(metric, y, [constant] * len(y))
    return Baseline(metric=metric, score=value, predictor=predictor)


def suggested_threshold(baseline: Baseline) -> float:
    """The next hundredth beyond the trivial baseline: rejects only models that learned nothing."""
    if higher_is_better(baseline.metric):
        return round(min(1.0, math.floor(baseline.score * 100 + 1e-9) / 100 + 0.01), 2)
    return round(max(0.0, math.ceil(baseline.score * 100 - 1e-9) / 100 - 0.01), 2)


def pipeline_name_for(path: Path) -> str:
    """A valid pipeline name from a file name: 'My Sales 2024.csv' -> 'my-sales-2024'."""
    name = re.sub(r"[^a-z0-9]+", "-", path.stem.lower()).strip("-")[:40].rstrip("-")
    return name or "pipeline"


def check_pipeline_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InitRefused(
            f"--name {name!r} is not a valid pipeline name: use 1-40 lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    return name


def sniff_delimiter(body: bytes) -> str:
    """The delimiter of a CSV's header line: a comma unless the line has none and another known delimiter."""
    first = body[:65536].decode("utf-8-sig", errors="replace").split("\n", 1)[0]
    if "," in first:
        return ","
    return detected_delimiter(first, ",") or ","


def render_config(profile: DataProfile, name: str, *, command: str = "loopline init", code: str | None = None) -> str:
    """The pipeline config as commented YAML: every setting, what it does and its allowed values."""
    check_pipeline_name(name)
    threshold = suggested_threshold(profile.baseline)
    metric = profile.metric
    max_drop = REGISTRY[metric].default_max_drop  # the champion-relative alarm's default
    training, alarm, ingest = TrainingConfig(), AlarmConfig(max_drop=max_drop), IngestConfig()
    lines = [
        f"# Loopline pipeline config, written by `{command}` from {profile.rows} rows of {profile.source}.",
        "# Review it (types, ignored columns, thresholds), then check it: loopline validate --config <this file>.",
        "# It is validated again at `loopline local up`, `sam build` and in every Lambda.",
        "",
        "# Names the pipeline (the CloudWatch metric dimension and the alarm carry it): 1-40 of a-z, 0-9, '-'.",
        _entry("name", name),
        "",
        "# The column to predict.",
        _entry("target", profile.target),
        f"# {' | '.join(Task)}. Inferred from the target: {profile.task_note}.",
        _entry("task", profile.task.value),
        "",
        f"# Feature columns and their types ({' | '.join(FeatureType)}). Every upload must have these",
        "# columns (empty cells are imputed). Change a type, or move a column to `ignore`.",
        "features:",
        *_aligned(("  " + _entry(c.name, c.kind.value), c.note) for c in profile.columns if c.kind is not None),
        "",
        "# Columns never used as features (ids, free text, leakage); uploads and prediction requests may carry them.",
        *(["ignore:", *_aligned(("  " + _item(c.name), c.note) for c in profile.ignored)]
          if profile.ignored else ["ignore: []"]),
        "",
        "# Quality metric: " + "; ".join(
            f"{' | '.join(m.name for m in REGISTRY.values() if m.task is task)} for {task.value}" for task in Task
        ) + ".",
        *(f"# {line}" for line in textwrap.wrap(profile.metric_note or REGISTRY[metric].note, 110)),
        _entry("metric", metric),
        "",
        "gate:",
        f"  # A challenger is promoted only if its holdout {metric} reaches this and is not worse than the champion.",
        f"  # Not measured on a model: {profile.baseline.predictor} scores {metric} {profile.baseline.score:.3f}",
        f"  # on these rows, so {threshold} only rejects a model that learned nothing. Set it after your first run",
        "  # (GET /model shows the champion's holdout score); 0.0 accepts any model.",
        f"  threshold: {threshold}",
        "  # How much worse than the champion (on the same holdout rows) a challenger may score and still win"
        f"{_bounds(GateConfig, 'tolerance')}.",
        f"  tolerance: {GateConfig.model_fields['tolerance'].default}",
        "  # After the alarm started a retraining: the challenger must score at least as well as the champion on the",
        "  # batches that breached, and may be worse by at most this on the rest of the holdout (the older data)"
        f"{_bounds(GateConfig, 'older_data_margin')}.",
        f"  older_data_margin: {GateConfig.model_fields['older_data_margin'].default}",
        "  # none: promote as soon as the gate passes. manual: wait for a person after the gate",
        "  # (`loopline approve VERSION`, or `loopline reject VERSION --reason TEXT`; the wait is notified).",
        f"  approval: {GateConfig.model_fields['approval'].default}",
        f"  # With manual approval: no answer within this many seconds rejects the challenger"
        f"{_bounds(GateConfig, 'approval_timeout_seconds')}.",
        f"  approval_timeout_seconds: {GateConfig.model_fields['approval_timeout_seconds'].default}",
        "  # Off (null): a challenger that passes serves at once. Or run it in shadow on live traffic first, promoted",
        "  # only if live labels say it is better (docs/shadow.md): {min_rows: 100, max_days: 7}",
        "  shadow: null",
        "  # Off (null): a promotion serves every caller at once. Or a share of the callers first, rolled back if an",
        "  # alarm fires in the window (docs/shadow.md#canary): {share: 0.1, window_minutes: 60}",
        "  canary: null",
        "",
        "alarm:",
        "  # Champion-relative: retraining starts when the champion scores, on a fresh labeled batch,",
        f"  # {max_drop_note(metric, max_drop)}. The reference moves with every promotion:",
        "  # no threshold to guess before the first model, no redeploy after it.",
        f"  max_drop: {max_drop}",
        f"  # Or an absolute floor: the {metric} on a fresh batch at which the alarm fires (below it; above it for",
        "  # rmse/mae). Set exactly one of max_drop and threshold (the other null).",
        "  threshold: null",
        "  # Optional: notify (never retrain) when the quality estimated without labels, from the champion's",
        f"  # calibrated probabilities, falls this far below its holdout {metric}; null: no alarm on the estimate.",
        f"  estimated_max_drop: {_yaml_scalar(alarm.estimated_max_drop)}",
        f"  # Length of one alarm evaluation period, in seconds{_bounds(AlarmConfig, 'period_seconds')}.",
        f"  period_seconds: {alarm.period_seconds}",
        f"  # How many recent periods the alarm looks at{_bounds(AlarmConfig, 'evaluation_periods')}.",
        f"  evaluation_periods: {alarm.evaluation_periods}",
        f"  # How many of them must be bad to raise the alarm{_bounds(AlarmConfig, 'datapoints_to_alarm')}, "
        "at most evaluation_periods.",
        f"  datapoints_to_alarm: {alarm.datapoints_to_alarm}",
        f"  # Periods without a measurement: {' | '.join(_literal_values(AlarmConfig, 'treat_missing_data'))}. "
        "Labeled batches arrive",
        "  # irregularly, so `ignore` keeps the alarm's state until the next measurement.",
        f"  treat_missing_data: {TREAT_MISSING_DATA}",
        "",
        "training:",
        f"  # Train on the newest N accepted dataset versions (uploads){_bounds(TrainingConfig, 'window')}.",
        f"  window: {training.window}",
        "  # Also skip versions received more than this many days ago (the newest is always used)"
        f"{_bounds(TrainingConfig, 'window_days')}; null: no age limit.",
        f"  window_days: {_yaml_scalar(training.window_days)}",
        f"  # Share of rows held out to measure and gate the model{_bounds(TrainingConfig, 'holdout_fraction')}.",
        f"  holdout_fraction: {training.holdout_fraction}",
        "  # Random seed of the split and the model search: same data and seed, same model.",
        f"  seed: {training.seed}",
        f"  # Uploads with fewer labeled rows are rejected{_bounds(TrainingConfig, 'min_rows')}.",
        f"  min_rows: {training.min_rows}",
        f"  # Model search budget in seconds{_bounds(TrainingConfig, 'time_budget_seconds')}; "
        "the train Lambda's timeout is 900 s.",
        f"  time_budget_seconds: {training.time_budget_seconds}",
        "  # Also retrain on a schedule, an EventBridge expression such as rate(7 days) or cron(0 3 ? * MON *);",
        "  # null: only new data and the alarm start training.",
        f"  schedule: {_yaml_scalar(training.schedule)}",
        f"  # Where training runs: {' | '.join(_literal_values(TrainingConfig, 'engine'))}. auto: a SageMaker training "
        "job only for",
        "  # windows larger than the train Lambda is measured to train (docs/training-past-one-lambda.md).",
        f"  engine: {training.engine}",
        "  # The training job's instance type (ml.m5.large ... ml.r5.24xlarge); null: the smallest that fits.",
        f"  instance_type: {_yaml_scalar(training.instance_type)}",
        "  # A training job running longer is stopped and the run fails"
        f"{_bounds(TrainingConfig, 'job_max_runtime_seconds')}.",
        f"  job_max_runtime_seconds: {training.job_max_runtime_seconds}",
        "  # The training image's URI (make training-image pushes it to ECR); a training job needs it.",
        f"  image: {_yaml_scalar(training.image)}",
        "",
        "ingest:",
        "  # Caps checked before an upload is parsed; over one, the upload is quarantined with its own reason.",
        f"  # Uploads larger than this many MB: too_large (split the file){_bounds(IngestConfig, 'max_upload_mb')}.",
        f"  max_upload_mb: {ingest.max_upload_mb}",
        f"  # More header columns than this: too_many_columns{_bounds(IngestConfig, 'max_columns')}.",
        f"  max_columns: {ingest.max_columns}",
        f"  # A line longer than this many KB: line_too_long{_bounds(IngestConfig, 'max_line_kb')}.",
        f"  max_line_kb: {ingest.max_line_kb}",
        "",
        "csv:",
        f"  # The field delimiter of uploads under incoming/: one of {', '.join(map(repr, DELIMITER_NAMES))}.",
        f"  delimiter: {json.dumps(profile.delimiter)}",
        "",
        *_production_sections(),
        "",
        "# Model candidates and their search spaces; omitted: the defaults, "
        f"{', '.join(BUILT_IN_CANDIDATES)}.",
        "# Your own: `code: FILE.py:FUNCTION` beside this file returns an unfitted scikit-learn Pipeline",
        "# (`loopline init ... --code` writes a starter model.py; `loopline validate --data DATA.csv` proves it).",
        *(_code_models(code) if code else [
            "# models:",
            "#   - name: hist_gradient_boosting",
            "#     params: {learning_rate: [0.05, 0.1], max_leaf_nodes: [15, 31]}",
        ]),
    ]
    return "\n".join(lines) + "\n"


def _code_models(code: str) -> list[str]:
    return [
        "models:",
        "  - name: mine",
        f"    code: {code}",
        "    # params: {model__C: [0.1, 1.0, 10.0]}   # set_params names of what build() returns",
        "    # helpers: [my_features.py]              # pure-Python files beside this one that it imports",
        "    # serving: scikit-learn                  # only for a step that cannot be compiled to ONNX",
        "  - name: hist_gradient_boosting             # a built-in candidate to compete with",
    ]


def render_model_code(profile: DataProfile) -> str:
    """A commented starter model.py for the profiled data: a function returning an unfitted Pipeline over the
    model-input columns the schema gives it (what `code: model.py:build` names)."""
    numeric, categorical = model_input_columns(profile.features)
    classifier = profile.task is Task.CLASSIFICATION
    estimator = ("LogisticRegression(max_iter=2000, random_state=42)" if classifier
                 else "Ridge(alpha=1.0, random_state=42)")
    estimator_import = ("from sklearn.linear_model import LogisticRegression" if classifier
                        else "from sklearn.linear_model import Ridge")
    return "\n".join([
        f'"""Model code for {profile.source} ({profile.task.value} of {profile.target!r}), written by '
        '`loopline init --code`.',
        "",
        "`build(schema)` returns an UNFITTED scikit-learn Pipeline. Loopline fits it in its model search, scores it",
        "on the same holdout and gate as the built-in candidates, compiles it to ONNX and serves that. Rules:",
        "- seeded: give every step that has a random_state one (two fits on the same rows must agree);",
        "- compilable: every step needs an skl2onnx converter; for your own transformer register one here",
        "  (skl2onnx.update_registered_converter, see README \"Bring your own model\"), or set",
        "  `serving: scikit-learn` for this candidate in the config;",
        "- imports: scikit-learn, numpy, pandas, skl2onnx, and pure-Python helpers listed under `helpers:`.",
        "Prove it before deploying: `loopline validate --data DATA.csv`.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from sklearn.compose import ColumnTransformer",
        "from sklearn.impute import SimpleImputer",
        estimator_import,
        "from sklearn.pipeline import Pipeline",
        "from sklearn.preprocessing import OneHotEncoder, StandardScaler",
        "",
        "",
        "def build(schema):",
        '    """schema.numeric: float columns (NaN for gaps; booleans 0/1; dates as `<name>__<part>`);',
        '    schema.categorical: string columns (gaps and rare levels grouped); schema.task: "classification" or',
        '    "regression"; schema.features: each feature\'s declared type."""',
        f"    # here: numeric {numeric}",
        f"    #       categorical {categorical}",
        "    transformers = [",
        '        ("numeric", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),',
        "         schema.numeric),",
        "    ]",
        "    if schema.categorical:",
        '        transformers.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),',
        "                             schema.categorical))",
        "    return Pipeline([",
        '        ("columns", ColumnTransformer(transformers)),',
        f'        ("model", {estimator}),',
        "    ])",
        "",
    ])


def _production_sections() -> list[str]:
    """capture, labels and live_drift (docs/capture.md), with their defaults."""
    capture, labels, live = CaptureConfig(), LabelsConfig(), LiveDriftConfig()
    return [
        "capture:",
        "  # Record every prediction (request id, inputs, outputs) under capture/ (docs/capture.md).",
        f"  enabled: {json.dumps(capture.enabled)}",
        f"  # Share of requests recorded{_bounds(CaptureConfig, 'sample_rate')}.",
        f"  sample_rate: {capture.sample_rate}",
        "  # Input columns never recorded, e.g. [email, phone] (personal data).",
        f"  exclude_columns: {json.dumps(capture.exclude_columns)}",
        f"  # Days captured predictions are kept{_bounds(CaptureConfig, 'retention_days')}.",
        f"  retention_days: {capture.retention_days}",
        "",
        "labels:",
        "  # request_id,<target> CSVs under incoming/labels/ are joined to the predictions captured this many days "
        f"back{_bounds(LabelsConfig, 'window_days')}.",
        f"  window_days: {labels.window_days}",
        "",
        "live_drift:",
        "  # The captured inputs of the last this many minutes are checked for drift, this often"
        f"{_bounds(LiveDriftConfig, 'every_minutes')}.",
        f"  every_minutes: {live.every_minutes}",
        "  # The drift alarm notifies above this share of drifted features"
        f"{_bounds(LiveDriftConfig, 'max_drifted_share')}.",
        f"  max_drifted_share: {live.max_drifted_share}",
        f"  # Windows with fewer captured rows are reported, not measured{_bounds(LiveDriftConfig, 'min_rows')}.",
        f"  min_rows: {live.min_rows}",
        "  # Also retrain when the window drifts (off: without new labels a retraining learns the same data).",
        f"  retrain: {json.dumps(live.retrain)}",
    ]


def refuse_to_overwrite(output: Path, *, force: bool) -> None:
    """An existing `output` is replaced only with `force` (the CLI's --force)."""
    if output.exists() and not force:
        raise InitRefused(f"{output} already exists; pass --force to overwrite it or --output to write elsewhere")


def write_config(text: str, output: Path, *, force: bool) -> None:
    """Write `text` to `output`; an existing file is replaced only with `force`."""
    refuse_to_overwrite(output, force=force)
    if output.is_dir():
        raise InitRefused(f"{output} is a directory; pass --output with a file name")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InitRefused(f"cannot write {output}: {exc.strerror or exc}") from None


def summary(profile: DataProfile, output: Path) -> str:
    """What was written and what to do next, for the terminal."""
    by_type = {kind: [n for n, k in profile.features.items() if k is kind] for kind in FeatureType}
    counts = ", ".join(f"{len(names)} {kind.value}" for kind, names in by_type.items() if names)
    ignored = ", ".join(f"{c.name} ({c.note})" for c in profile.ignored) or "none"
    threshold = suggested_threshold(profile.baseline)
    lines = [
        f"Wrote {output} from {profile.source}: {profile.rows} rows.",
        f"  target    {profile.target} ({profile.task.value}; {profile.task_note})",
        f"  features  {len(profile.features)}: {counts}",
        *(f"            {kind.value}: {_shorten(', '.join(names), 90)}"
          for kind, names in by_type.items() if names and kind is not FeatureType.NUMERIC),
        f"  ignored   {ignored}",
        f"  metric    {profile.metric}; gate threshold {threshold} "
        f"(trivial baseline {profile.baseline.score:.3f}: raise it after your first run)",
        f"  alarm     retrains when the champion scores, on a fresh labeled batch, "
        f"{max_drop_note(profile.metric, REGISTRY[profile.metric].default_max_drop)} (alarm.max_drop)",
        *([f"  why       {profile.metric_note}"] if profile.metric_note.startswith(
            ("f1_positive", "roc_auc: ranking quality, because")) else []),
        *([f"  delimiter {DELIMITER_NAMES[profile.delimiter]} ({profile.delimiter!r}, detected; csv.delimiter)"]
          if profile.delimiter != "," else []),
        *(f"  warning   {w}" for w in profile.warnings),
        "Next steps (each runs as printed; 2 runs until Ctrl+C, so give 3 its own terminal):",
        f"  1. Review and edit {output}, then: {command('validate', '--config', str(output))}",
        f"  2. Run it locally:  {command('local', 'up', '--config', str(output), *_template_flag())}",
        f"  3. Upload the data: {command('upload', profile.source)}",
        f"     (on AWS: make deploy PIPELINE_CONFIG={output}; see README, 'Bring your own data')",
    ]
    return "\n".join(lines)


def _template_flag() -> list[str]:
    """`local up` reads ./template.yaml: from elsewhere, name the template of this installation."""
    if Path("template.yaml").exists():
        return []
    bundled = Path(__file__).resolve().parents[2] / "template.yaml"  # the repository of an editable install
    return ["--template", str(bundled)] if bundled.exists() else []


def _inference_config(target: str) -> PipelineConfig:
    # infer_schema takes a config; one without features/task/ignore asks it to infer everything
    return PipelineConfig.model_construct(
        name="init", target=target, task=None, features=None, ignore=[], metric=None,
        gate=GateConfig(threshold=0.0), alarm=AlarmConfig(threshold=0.0), training=TrainingConfig(), models=None,
    )  # fmt: skip


def _missing_target_message(target: str, columns: list[str], source: str) -> str:
    close = near_miss(target, columns)
    hint = f"; did you mean {close!r}?" if close else ""
    shown = ", ".join(map(repr, columns[:30])) + (f" and {len(columns) - 30} more" if len(columns) > 30 else "")
    return f"--target {target!r} is not a column of {source}{hint} (columns: {shown})"


def _task_note(labels: pd.Series, task: Task) -> str:
    distinct = labels.nunique()
    if task is Task.CLASSIFICATION:
        classes = sorted(map(str, labels.unique()))
        return f"{distinct} classes ({_shorten(', '.join(classes), 60)})"
    return f"numbers with {distinct} distinct values ({_number(labels.min())} to {_number(labels.max())})"


def _column_note(name: str, series: pd.Series, kind: FeatureType | None) -> str:
    """The trailing comment for one column: the facts behind its type and what a person may want to change."""
    values = series.dropna()
    notes: list[str] = []
    if values.empty:
        return "every value is missing: consider ignoring it"
    distinct = values.nunique()
    if kind is None:
        notes.append(f"a distinct value on every row (e.g. {_shorten(str(values.iloc[0]), 20)!r}): looks like an id")
    elif distinct == 1:
        notes.append(f"a single value ({_shorten(str(values.iloc[0]), 20)!r}): carries no information, consider ignore")
    elif kind is FeatureType.CATEGORICAL:
        levels = [str(v) for v in values.value_counts().index[:LEVELS_SHOWN]]
        more = ", ..." if distinct > LEVELS_SHOWN else ""
        notes.append(f"{distinct} levels: {_shorten(', '.join(levels), 50)}{more}")
        if distinct > FREE_TEXT_SHARE * len(values) and distinct > LEVELS_SHOWN:
            notes.append("mostly distinct: free text? consider ignore")
    elif kind is FeatureType.BOOLEAN:
        notes.append("values " + "/".join(sorted(map(str, values.unique()))))
    elif kind is FeatureType.DATE:
        parsed = pd.to_datetime(values.astype(str), errors="coerce", format="mixed").dropna()
        span = f" ({parsed.min():%Y-%m-%d} to {parsed.max():%Y-%m-%d})" if len(parsed) else ""
        notes.append(f"looks like a date{span}: expanded to {'/'.join(DATE_PARTS)}")
    else:
        numbers = pd.to_numeric(values, errors="coerce").dropna()
        integral = bool(len(numbers)) and bool((numbers % 1 == 0).all())
        if integral and distinct <= LOW_CARDINALITY_INTEGERS:
            shown = ", ".join(_number(v) for v in sorted(numbers.unique()))
            notes.append(f"low-cardinality integer ({shown}): consider categorical if these are codes")
        elif len(numbers):
            notes.append(f"{_number(numbers.min())} to {_number(numbers.max())}")
    missing = series.isna().mean()
    if missing > 0:
        notes.append(f"{_percent(missing)} missing (imputed)")
    return "; ".join(notes)


def _entry(key: str, value: Any) -> str:
    """`key: value` as YAML writes it (quoting names like 'yes', '1' or 'a: b' so they load back as written)."""
    return yaml.safe_dump({key: value}, allow_unicode=True, width=10**6, sort_keys=False).rstrip("\n")


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value).removesuffix("\n...\n").strip()


def _item(value: str) -> str:
    return yaml.safe_dump([value], allow_unicode=True, width=10**6).rstrip("\n")


def _aligned(rows: Iterable[tuple[str, str]]) -> list[str]:
    """YAML lines with their notes as trailing comments, aligned while the lines are short."""
    rows = list(rows)
    width = max((len(line) for line, _ in rows if len(line) < COMMENT_COLUMN), default=0)
    out = []
    for line, note in rows:
        comment = _comment_text(note)
        if "\n" in line:  # a very long key is written as a YAML complex key: keep the note on its own line
            out.extend([f"  # {comment}", line])
        else:
            out.append(f"{line.ljust(width)}  # {comment}" if comment else line)
    return out


def _comment_text(text: str) -> str:
    # a level or a value may hold a line break: a comment must stay on one line
    return " ".join(text.split())


def _bounds(model: type[BaseModel], name: str) -> str:
    """The field's allowed range as validated by the model, e.g. '; > 0.05 and < 0.5'."""
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = []
    for constraint in model.model_fields[name].metadata:
        if isinstance(constraint, annotated_types.Ge | annotated_types.Gt | annotated_types.Le | annotated_types.Lt):
            attribute = next(a for a in symbols if hasattr(constraint, a))
            parts.append(f"{symbols[attribute]} {getattr(constraint, attribute)}")
    return f"; {' and '.join(parts)}" if parts else ""


def _literal_values(model: type[BaseModel], name: str) -> list[str]:
    annotation = model.model_fields[name].annotation
    return [str(v) for v in get_args(annotation)] if getattr(annotation, "__origin__", None) is Literal else []


def _shorten(text: str, limit: int) -> str:
    text = _comment_text(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(value: Any) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.4g}"


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.01 else "<1%"
