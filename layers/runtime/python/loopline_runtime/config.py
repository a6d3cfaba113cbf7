"""The pipeline config: one small declarative file per deployed pipeline (default `pipeline.yaml`).

It is validated here, once, with pydantic; the same model is used by the CLI, the build and the Lambdas,
so an invalid file fails everywhere with the same message naming the field and the fix.
"""

from __future__ import annotations

import json
import re
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from loopline_runtime.bundled_config import (  # noqa: F401  (CONFIG_ENV_VAR: imported from here by callers)
    BUNDLED_CONFIG_NAME,
    CONFIG_ENV_VAR,
    bundled_config_data,
    config_override,
)
from loopline_runtime.errors import InvalidConfig
from loopline_runtime.feature_schema import FeatureType, Task
from loopline_runtime.metrics import (  # noqa: F401  (imported from here by callers on the data layer)
    DEFAULT_METRIC,
    METRICS,
    higher_is_better,
)
from loopline_runtime.training_instances import INSTANCE_MEMORY_MB

# the user's model code, copied next to pipeline.json by bundle_config (loaded from there by path in Lambda)
BUNDLED_CODE_DIR = "model_code"


# also template.yaml's PipelineName AllowedPattern (a test compares them): it names stack resources
PIPELINE_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# checks of one shadow's live labels: 13 history events each (measured, tests/e2e/test_shadow.py), 19,500 of the
# 25,000 Step Functions keeps per execution
MAX_SHADOW_CHECKS = 1_500


class ShadowConfig(_Strict):
    """A challenger that passes the gate first runs in shadow: scored on every live request next to the champion
    (whose answer alone is returned), and promoted only if it is at least as good on live labeled rows."""

    min_rows: int = Field(default=100, ge=10, description="Live labeled rows both models scored before deciding.")
    max_days: float = Field(default=7, gt=0, le=30, description="A shadow without enough live labels by then is "
                                                                "rejected (SageMaker: 7 days by default, up to 30).")
    # how often the waiting execution counts the live labels (each check is a few state transitions)
    check_seconds: int = Field(default=3600, ge=1, le=86_400)
    # on the live rows the shadow may be worse than the champion by at most this (0: at least as good; the gate's
    # own gate.tolerance is about the holdout)
    tolerance: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _fits_one_execution(self) -> ShadowConfig:
        # each check adds 13 events to the waiting execution's history, which Step Functions caps at 25,000
        checks = self.max_days * 86_400 / self.check_seconds
        if checks > MAX_SHADOW_CHECKS:
            least = int(-(-self.max_days * 86_400 // MAX_SHADOW_CHECKS))
            raise ValueError(f"gate.shadow.check_seconds {self.check_seconds} over gate.shadow.max_days "
                             f"{self.max_days} makes {checks:,.0f} checks, more than one execution's history holds "
                             f"({MAX_SHADOW_CHECKS:,}); set check_seconds to at least {least}")
        return self


# looks at the alarms in one canary window: 9 history events each (measured, tests/e2e/test_canary.py), 18,000 of
# the 25,000 Step Functions keeps per execution
MAX_CANARY_CHECKS = 2_000


class CanaryConfig(_Strict):
    """A promoted challenger first answers `share` of the requests (sticky per caller) for `window_minutes`; an alarm
    in that window (quality, predict error rate, predict latency) rolls the champion pointer back."""

    share: float = Field(gt=0, lt=1, description="The share of requests the new champion answers in the window.")
    window_minutes: float = Field(default=60, gt=0, le=10_080)
    # how often the promoting execution looks at the alarms during the window
    check_seconds: int = Field(default=60, ge=1, le=3600)
    # the predict error-rate and latency alarms (API Gateway's 5XXError average and p99 Latency over a minute)
    max_error_rate: float = Field(default=0.05, gt=0, lt=1)
    max_latency_ms: float = Field(default=1000, gt=0)

    @model_validator(mode="after")
    def _fits_one_execution(self) -> CanaryConfig:
        checks = self.window_minutes * 60 / self.check_seconds
        if checks > MAX_CANARY_CHECKS:
            least = int(-(-self.window_minutes * 60 // MAX_CANARY_CHECKS))
            raise ValueError(f"gate.canary.check_seconds {self.check_seconds} over gate.canary.window_minutes "
                             f"{self.window_minutes} makes {checks:,.0f} checks, more than one execution's history "
                             f"holds ({MAX_CANARY_CHECKS:,}); set check_seconds to at least {least}")
        return self


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
    # optional: prove a challenger on live traffic before it serves (docs/shadow.md)
    shadow: ShadowConfig | None = None
    # optional: a promotion serves a share of the traffic first and rolls back on an alarm (docs/shadow.md#canary)
    canary: CanaryConfig | None = None


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
    # where the challenger trains (docs/training-past-one-lambda.md): auto sends windows larger than the
    # TrainFunction is measured to train to a SageMaker training job, which needs `image`
    engine: Literal["auto", "lambda", "sagemaker"] = Field(
        default="auto", description="Where training runs: auto (a SageMaker training job only for windows too "
        "large for the TrainFunction), lambda, or sagemaker.")
    instance_type: str | None = Field(
        default=None, description="The training job's instance type; null: the smallest that fits the window.")
    job_max_runtime_seconds: int = Field(
        default=3600, ge=1, le=2_419_200,
        description="A training job running longer is stopped (MaxRuntimeInSeconds) and the run fails.")
    image: str | None = Field(
        default=None, pattern=r"^\S+$",
        description="The training image's URI (make training-image); the sagemaker engine needs it.")

    @model_validator(mode="after")
    def _engine_settings(self) -> TrainingConfig:
        if self.instance_type is not None and self.instance_type not in INSTANCE_MEMORY_MB:
            raise ValueError(f"training.instance_type {self.instance_type!r} is not one of "
                             f"{', '.join(INSTANCE_MEMORY_MB)}; pick one, or null to size it from the window")
        if self.engine == "sagemaker" and not self.image:
            raise ValueError("training.engine: sagemaker needs training.image, the URI of the training image "
                             "(`make training-image` builds and pushes it); or set engine: auto or lambda")
        return self


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


class CaptureConfig(_Strict):
    """Prediction capture (loopline_runtime.capture): what the predict function records, and for how long."""

    enabled: bool = True
    sample_rate: float = Field(default=1.0, gt=0.0, le=1.0,
                               description="Share of requests captured (all rows of a sampled request).")
    exclude_columns: list[str] = Field(default_factory=list,
                                       description="Input columns never written to the capture (personal data).")
    retention_days: int = Field(default=90, ge=1, description="Days captured predictions are kept under capture/.")

    @field_validator("exclude_columns")
    @classmethod
    def _plain_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or "," in name:
                raise ValueError(f"exclude_columns: {name!r} is not a column name (empty, or holds a comma)")
        return value


class LabelsConfig(_Strict):
    """Late labels (loopline_runtime.labels): how far back a labels file is joined to the captures."""

    window_days: int = Field(default=30, ge=1, le=3653,
                             description="Captured predictions of this many days back are joined to a labels file.")


class LiveDriftConfig(_Strict):
    """Drift of the captured inputs against the champion's training profile, on a schedule."""

    every_minutes: int = Field(default=60, ge=2, le=24 * 60 * 31,
                               description="Measure the captures of the last this many minutes, this often "
                                           "(EventBridge rate(N minutes); 60 = hourly).")
    max_drifted_share: float = Field(default=0.3, ge=0.0, le=1.0,
                                     description="The drift alarm fires above this share of drifted features.")
    min_rows: int = Field(default=100, ge=1, description="Windows with fewer captured rows are not measured.")
    retrain: bool = Field(default=False, description="Also start a retraining when the window drifts.")


BUILT_IN_CANDIDATES = ("linear", "random_forest", "hist_gradient_boosting")
SERVING_FORMS = ("onnx", "scikit-learn")
# `code: model.py:build`: a Python file beside the config (no folders) and a function in it
_CODE_PATTERN = re.compile(r"^(?P<file>[A-Za-z_][A-Za-z0-9_]*\.py):(?P<function>[A-Za-z_][A-Za-z0-9_]*)$")
_HELPER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.py$")


class ModelCandidate(_Strict):
    """A built-in candidate (`name` only) or the user's own code (`name` of their choosing plus `code`)."""

    # before `name`: the name's check depends on whether the candidate has code
    code: str | None = Field(default=None, description="model.py:build, a function returning an unfitted "
                                                       "scikit-learn estimator or Pipeline.")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    params: dict[str, list[Any]] = Field(default_factory=dict, description="Search space: parameter -> values.")
    # pure-Python files beside the model file that it imports (packaged with it; nothing else is)
    helpers: list[str] = Field(default_factory=list)
    # scikit-learn: serve the pinned joblib artifact on the predict variant with the dependencies layer, for a
    # pipeline with a step that cannot be compiled to ONNX (chosen explicitly: that path unpickles)
    serving: Literal["onnx", "scikit-learn"] = "onnx"

    @field_validator("code")
    @classmethod
    def _code_reference(cls, value: str | None) -> str | None:
        if value is not None and not _CODE_PATTERN.match(value):
            raise ValueError(f"{value!r} must read FILE.py:FUNCTION, a Python file beside the config (no folders) "
                             "and the function in it, e.g. `code: model.py:build`")
        return value

    @field_validator("name")
    @classmethod
    def _built_in_or_named(cls, value: str, info: ValidationInfo) -> str:
        has_code = info.data.get("code") is not None
        if not has_code and value not in BUILT_IN_CANDIDATES:
            raise ValueError(f"unknown model candidate {value!r}: use 'linear', 'random_forest' or "
                             "'hist_gradient_boosting', or name your own and add `code: model.py:build`")
        if has_code and value in BUILT_IN_CANDIDATES:
            raise ValueError(f"a candidate with `code` must not reuse the built-in name {value!r}; call it e.g. "
                             "`mine`")
        return value

    @model_validator(mode="after")
    def _code_settings(self) -> ModelCandidate:
        if self.code is None:
            if self.helpers or self.serving != "onnx":
                raise ValueError(f"candidate {self.name!r}: helpers and serving apply only to a candidate with `code`")
            return self
        for helper in self.helpers:
            if not _HELPER_PATTERN.match(helper) or helper == self.code_file:
                raise ValueError(f"candidate {self.name!r}: helper {helper!r} must be another FILE.py beside the "
                                 "config (no folders), e.g. `helpers: [ratios.py]`")
        return self

    @property
    def code_file(self) -> str | None:
        """The model file's name, beside the config (None for a built-in candidate)."""
        return self.code.split(":", 1)[0] if self.code else None

    @property
    def code_function(self) -> str | None:
        return self.code.split(":", 1)[1] if self.code else None


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
    capture: CaptureConfig = CaptureConfig()
    labels: LabelsConfig = LabelsConfig()
    live_drift: LiveDriftConfig = LiveDriftConfig()
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
        if self.gate.shadow is not None and not self.capture.enabled:
            raise ValueError("gate.shadow judges the challenger on captured predictions, and capture.enabled is false; "
                             "set capture.enabled: true, or remove gate.shadow")
        names = [candidate.name for candidate in self.models or []]
        if len(set(names)) != len(names):
            raise ValueError("each entry under `models` needs its own name")
        return self

    def code_files(self) -> list[str]:
        """The user's files the candidates name (model files and declared helpers), each once, in order."""
        files: list[str] = []
        for candidate in self.models or []:
            for name in ([candidate.code_file] if candidate.code_file else []) + candidate.helpers:
                if name not in files:
                    files.append(name)
        return files

    def metric_for(self, task: Task) -> str:
        """The quality metric for `task`: the configured one, else the task's default."""
        return self.metric or DEFAULT_METRIC[task]


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


def bundle_config(config: PipelineConfig, package_dir: Path, *, config_dir: Path | None = None) -> Path:
    """Write the validated config next to the runtime package, as the Lambda layer ships it, with the model code
    files it names (copied from `config_dir`, the config file's folder: only those files, nothing else there)."""
    dest = Path(package_dir) / BUNDLED_CONFIG_NAME
    dest.write_text(json.dumps(config.model_dump(mode="json"), indent=2), encoding="utf-8")
    code_dest = Path(package_dir) / BUNDLED_CODE_DIR
    shutil.rmtree(code_dest, ignore_errors=True)
    files = config.code_files()
    if files:
        if config_dir is None:
            raise InvalidConfig("the config names model code; bundle it with the folder it sits in (config_dir)")
        code_dest.mkdir(parents=True)
        for name in files:
            source = Path(config_dir) / name
            if not source.is_file():
                raise InvalidConfig(f"{name}: no such file beside the pipeline config ({config_dir}); the models "
                                    "section names it under `code` or `helpers`")
            shutil.copyfile(source, code_dest / name)
    return dest


def model_code_dir() -> Path:
    """Where a Lambda finds the model code: beside `$LOOPLINE_PIPELINE_CONFIG`, else the copy bundled in the
    layer (never anywhere another role can write)."""
    override = config_override()
    if override:
        return Path(override).parent
    return Path(str(resources.files("loopline_runtime").joinpath(BUNDLED_CODE_DIR)))


def runtime_config() -> PipelineConfig:
    """The config a Lambda runs with: `$LOOPLINE_PIPELINE_CONFIG`, else the copy bundled in the layer."""
    override = config_override()
    if override:
        return load_config(override)
    return parse_config(bundled_config_data(), source="bundled pipeline config")
