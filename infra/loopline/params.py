"""Map the pipeline config onto template.yaml's Parameters (one source of truth: pipeline.yaml)."""

from __future__ import annotations

from loopline_runtime.config import PipelineConfig, Task, higher_is_better
from loopline_runtime.monitoring import QUALITY_DROP_METRIC_NAME, QUALITY_METRIC_NAME


def quality_metric(config: PipelineConfig) -> str:
    """The metric the champion is measured and alarmed on.

    The configured `metric`; else the default for the configured task; else 'f1', because a pipeline whose
    task is inferred from the data at training time is classification unless the target says otherwise.
    """
    return config.metric_for(Task(config.task) if config.task is not None else Task.CLASSIFICATION)


def stack_parameters(config: PipelineConfig) -> dict[str, str]:
    """The template Parameters for `config`, as CloudFormation wants them (all strings).

    With `alarm.max_drop` (champion-relative) the alarm watches ModelQualityDrop, how far the champion fell below
    its own holdout score (positive is worse for every metric), and fires above max_drop. With `alarm.threshold`
    (absolute floor) it watches ModelQuality: below the threshold for higher-is-better metrics (f1, r2...), above
    it for error metrics (rmse, mae).
    """
    metric = quality_metric(config)
    alarm = config.alarm
    if alarm.max_drop is not None:
        watched, threshold, operator = QUALITY_DROP_METRIC_NAME, alarm.max_drop, "GreaterThanThreshold"
    else:
        assert alarm.threshold is not None  # the config allows exactly one of max_drop and threshold
        watched, threshold = QUALITY_METRIC_NAME, alarm.threshold
        operator = "LessThanThreshold" if higher_is_better(metric) else "GreaterThanThreshold"
    return {
        "PipelineName": config.name,
        "QualityMetric": metric,
        "AlarmMetricName": watched,
        "AlarmThreshold": _number(threshold),
        "AlarmComparisonOperator": operator,
        "AlarmPeriodSeconds": str(alarm.period_seconds),
        "AlarmEvaluationPeriods": str(alarm.evaluation_periods),
        "AlarmDatapointsToAlarm": str(alarm.datapoints_to_alarm),
        "AlarmTreatMissingData": alarm.treat_missing_data,
        # a candidate that serves in the scikit-learn form needs the predict variant with the dependencies layer
        "ServingForm": "scikit-learn" if any(c.serving == "scikit-learn" for c in config.models or []) else "onnx",
        "CaptureEnabled": "true" if config.capture.enabled else "false",
        "CaptureSampleRate": _number(config.capture.sample_rate),
        "CaptureRetentionDays": str(config.capture.retention_days),
        "LiveDriftMinutes": str(config.live_drift.every_minutes),
        "LiveDriftMaxDriftedShare": _number(config.live_drift.max_drifted_share),
        # none excluded: the template's default (an empty value would need quoting on sam's command line)
        **({"CaptureExcludeColumns": ",".join(config.capture.exclude_columns)}
           if config.capture.exclude_columns else {}),
        # 0: no alarm on the label-free estimate (the template's condition)
        "EstimatedQualityMaxDrop": _number(alarm.estimated_max_drop or 0),
        # gate.canary's error-rate and latency alarms (they exist either way: they notify outside a canary too)
        **({"PredictErrorRateThreshold": _number(config.gate.canary.max_error_rate),
            "PredictLatencyThresholdMs": _number(config.gate.canary.max_latency_ms)} if config.gate.canary else {}),
        "RetrainingScheduleState": "ENABLED" if config.training.schedule else "DISABLED",
        # the rule exists either way (SAM needs an expression; the template's default when off)
        **({"RetrainingSchedule": config.training.schedule} if config.training.schedule else {}),
    }


def _number(value: float) -> str:
    # repr keeps 0.9 as "0.9" (not "0.90000001"); integral floats print without ".0" like the template default
    return str(int(value)) if float(value).is_integer() else repr(float(value))
