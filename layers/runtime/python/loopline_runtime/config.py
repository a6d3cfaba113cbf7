"""The pipeline config: one small declarative file per deployed pipeline (default `pipeline.yaml`).

It is validated here, once, with pydantic; the same model is used by the CLI, the build and the Lambdas,
so an invalid file fails everywhere with the same message naming the field and the fix.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loopline_runtime.errors import InvalidConfig
from loopline_runtime.feature_schema import FeatureType, Task

CONFIG_ENV_VAR = "LOOPLINE_PIPELINE_CONFIG"
BUNDLED_CONFIG_NAME = "pipeline.json"


# metric name -> (task, higher_is_better)
METRICS: dict[str, tuple[Task, bool]] = {
    "accuracy": (Task.CLASSIFICATION, True),
    "f1": (Task.CLASSIFICATION, True),
    "f1_positive": (Task.CLASSIFICATION, True),
    "roc_auc": (Task.CLASSIFICATION, True),
    "average_precision": (Task.CLASSIFICATION, True),
    "rmse": (Task.REGRESSION, False),
    "mae": (Task.REGRESSION, False),
    "r2": (Task.REGRESSION, True),
}
DEFAULT_METRIC = {Task.CLASSIFICATION: "f1", Task.REGRESSION: "r2"}
# also template.yaml's PipelineName AllowedPattern (a test compares them): it names stack resources
PIPELINE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GateConfig(_Strict):
    threshold: float = Field(description="The challenger's holdout metric must reach this to be promoted.")
    # a challenger must not be worse than the champion by more than this on the same holdout rows
    tolerance: float = Field(default=0.0, ge=0)
    # after an alarm the challenger must match or beat the champion on the holdout rows of the batches that
    # breached, and may be worse than the champion by at most this on the rest of the holdout (the older regime)
    older_data_margin: float = Field(default=0.05, ge=0, le=1)
    # manual: a challenger that passes waits for `loopline approve VERSION` / `loopline reject VERSION`
    approval: Literal["none", "manual"] = "none"
    # no answer within this many seconds rejects the challenger (Step Functions waits at most a year)
    approval_timeout_seconds: int = Field(default=86_400, ge=1, le=31_536_000)


class AlarmConfig(_Strict):
    # champion-relative (the default `loopline init` writes): how far the champion may fall below its own holdout
    # score on fresh labeled data; points for accuracy/f1/roc_auc/r2, a fraction of the holdout error for rmse/mae
    max_drop: float | None = Field(
        default=None, gt=0, description="The drop below the champion's own holdout score that raises the alarm."
    )
    # absolute floor: the champion's metric on fresh labeled data at which the alarm fires
    threshold: float | None = Field(
        default=None, description="The champion's metric on fresh labeled data that raises the alarm."
    )
    # optional, off by default: notify (never retrain) when the quality estimated without labels (from the
    # champion's calibrated probabilities) falls this far below its holdout score, in the unit of max_drop
    estimated_max_drop: float | None = Field(
        default=None, gt=0, description="Notify when the label-free estimate falls this far below the holdout score."
    )
    period_seconds: int = Field(default=60, ge=10)
    evaluation_periods: int = Field(default=1, ge=1)
    datapoints_to_alarm: int = Field(default=1, ge=1)
    # measurements arrive once per labeled batch: periods without one keep the alarm state
    treat_missing_data: Literal["missing", "notBreaching", "breaching", "ignore"] = "ignore"

    @model_validator(mode="after")
    def _m_of_n(self) -> AlarmConfig:
        if (self.max_drop is None) == (self.threshold is None):
            raise ValueError(
                "set exactly one of alarm.max_drop (how far below the champion's own holdout score, e.g. 0.1) "
                "and alarm.threshold (an absolute floor of the metric, e.g. 0.75)"
            )
        if self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError(
                f"alarm.datapoints_to_alarm ({self.datapoints_to_alarm}) cannot exceed "
                f"alarm.evaluation_periods ({self.evaluation_periods})"
            )
        return self


class TrainingConfig(_Strict):
    window: int = Field(default=5, ge=1, description="How many of the newest dataset versions to train on.")
    window_days: int | None = Field(
        default=None, ge=1, description="Also drop versions received more than this many days ago (newest kept)."
    )
    holdout_fraction: float = Field(default=0.2, gt=0.05, lt=0.5)
    seed: int = 42
    min_rows: int = Field(default=30, ge=10, description="Uploads with fewer rows are rejected.")
    time_budget_seconds: int = Field(default=300, ge=5, le=780)
    # optional, off by default: also retrain on a schedule (an EventBridge expression); a run without new data
    # since the last one stands aside as "already trained on this data"
    schedule: str | None = Field(default=None, pattern=r"^(rate|cron)\(.+\)$",
                                 description="Retrain on this schedule, e.g. rate(7 days) or cron(0 3 ? * MON *).")


class IngestConfig(_Strict):
    """Caps on an upload, checked before it is parsed; over a cap it is quarantined with its own reason code."""

    # Ingest streams the upload in bounded memory, so the cap is set by time: 17 MB per CPU second measured
    # (make bench --rows 1000000), about 10 MB/s on the IngestFunction's 0.6 vCPU; 2,000 MB fits its 900 s.
    max_upload_mb: int = Field(default=2000, ge=1, le=50_000,
                               description="Uploads larger than this (MB) are quarantined as too_large, unread.")
    max_columns: int = Field(default=1000, ge=2, le=100_000,
                             description="Uploads with more header columns are quarantined as too_many_columns.")
    max_line_kb: int = Field(default=1024, ge=1, le=100_000,
                             description="Uploads with a longer line (KB) are quarantined as line_too_long.")


class CsvConfig(_Strict):
    """How uploads under incoming/ are read."""

    delimiter: Literal[",", ";", "\t", "|"] = Field(
        default=",", description="The field delimiter of training uploads (semicolon exports: \";\").")


class ModelCandidate(_Strict):
    name: Literal["linear", "random_forest", "hist_gradient_boosting"]
    params: dict[str, list[Any]] = Field(default_factory=dict, description="Search space: parameter -> values.")


class PipelineConfig(_Strict):
    name: str = Field(pattern=PIPELINE_NAME_PATTERN)
    target: str = Field(min_length=1)
    task: Task | None = None
    features: dict[str, FeatureType] | None = None
    ignore: list[str] = Field(default_factory=list)
    metric: str | None = None
    gate: GateConfig
    alarm: AlarmConfig
    training: TrainingConfig = TrainingConfig()
    ingest: IngestConfig = IngestConfig()
    csv: CsvConfig = CsvConfig()
    models: list[ModelCandidate] | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str | None) -> str | None:
        if value is not None and value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; use one of {', '.join(METRICS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        if self.metric and self.task and METRICS[self.metric][0] != self.task:
            usable = ", ".join(name for name, (task, _) in METRICS.items() if task is self.task)
            raise ValueError(f"metric {self.metric!r} does not apply to a {self.task.value} task; use one of {usable}, "
                             "or change `task`")
        if self.features and self.target in self.features:
            raise ValueError(f"the target {self.target!r} must not also be listed under features; remove it from "
                             "`features` (it is what the model predicts)")
        if self.target in self.ignore:
            raise ValueError(f"the target {self.target!r} must not be listed under ignore")
        return self

    def metric_for(self, task: Task) -> str:
        """The quality metric for `task`: the configured one, else the task's default."""
        return self.metric or DEFAULT_METRIC[task]


def higher_is_better(metric: str) -> bool:
    return METRICS[metric][1]


def parse_config(data: Any, source: str = "pipeline config") -> PipelineConfig:
    """Validate a parsed config mapping; raise InvalidConfig naming each bad field and the fix."""
    if not isinstance(data, dict):
        raise InvalidConfig(f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            problems.append(f"  - {field}: {err['msg']}{_fix_hint(err)}")
        raise InvalidConfig(f"{source} is invalid:\n" + "\n".join(problems)) from None


_EXAMPLES = {
    "name": "name: my-pipeline  (lowercase letters, digits and dashes, at most 40 characters)",
    "target": "target: the_label_column",
    "gate": "gate: {threshold: 0.8}",
    "gate.threshold": "gate: {threshold: 0.8}",
    "alarm": "alarm: {max_drop: 0.1}",
    "alarm.threshold": "alarm: {threshold: 0.75}",
    "alarm.max_drop": "alarm: {max_drop: 0.1}",
}


def _fix_hint(err: Any) -> str:
    """How to fix one pydantic error, in the config's own terms."""
    field = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "missing":
        return f"; add it, e.g. `{_EXAMPLES.get(field, field + ': ...')}`"
    if kind == "extra_forbidden":
        return "; remove it or fix its spelling (see `loopline init --help` for a commented example)"
    if kind == "enum" or kind == "literal_error":
        return ""  # pydantic already lists the allowed values
    if field in _EXAMPLES and kind != "value_error":  # a cross-field check's own message says what to change
        return f"; e.g. `{_EXAMPLES[field]}`"
    return ""


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a YAML (or JSON) pipeline config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidConfig(f"{path}: no such file; create one with `loopline init DATA.csv --target COLUMN`") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidConfig(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        raise InvalidConfig(f"{path} is empty; a pipeline config needs at least name, target, gate.threshold and "
                            "alarm.max_drop (`loopline init DATA.csv --target COLUMN` writes one)")
    return parse_config(data, source=str(path))


def bundle_config(config: PipelineConfig, package_dir: Path) -> Path:
    """Write the validated config next to the runtime package, as the Lambda layer ships it."""
    dest = Path(package_dir) / BUNDLED_CONFIG_NAME
    dest.write_text(json.dumps(config.model_dump(mode="json"), indent=2), encoding="utf-8")
    return dest


def runtime_config() -> PipelineConfig:
    """The config a Lambda runs with: `$LOOPLINE_PIPELINE_CONFIG`, else the copy bundled in the layer."""
    override = os.environ.get(CONFIG_ENV_VAR)
    if override:
        return load_config(override)
    bundled = resources.files("loopline_runtime").joinpath(BUNDLED_CONFIG_NAME)
    if not bundled.is_file():
        raise InvalidConfig(
            f"no pipeline config bundled in the runtime layer ({BUNDLED_CONFIG_NAME}); build with `sam build` "
            f"or `loopline local up`, which validate and bundle pipeline.yaml"
        )
    return parse_config(json.loads(bundled.read_text(encoding="utf-8")), source="bundled pipeline config")
