"""The pipeline settings the monitor function reads, without pydantic (it runs on the serving layer): from the
bundled pipeline.json, which the build validated with the full config (config.py), or through that config when
$LOOPLINE_PIPELINE_CONFIG names a file (tests, local runs, which have pydantic)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loopline_runtime.bundled_config import bundled_config_data, config_override


@dataclass(frozen=True)
class AlarmSettings:
    """alarm.max_drop / alarm.threshold: exactly one is set (the config checks it)."""

    max_drop: float | None
    threshold: float | None


@dataclass(frozen=True)
class LiveDriftSettings:
    every_minutes: int
    max_drifted_share: float
    min_rows: int
    retrain: bool


@dataclass(frozen=True)
class MonitorSettings:
    name: str
    alarm: AlarmSettings
    live_drift: LiveDriftSettings

    @classmethod
    def from_config_data(cls, data: Mapping[str, Any]) -> MonitorSettings:
        """From a validated config's JSON form (every default filled in, as bundle_config writes it)."""
        alarm, live = data["alarm"], data["live_drift"]
        return cls(name=str(data["name"]),
                   alarm=AlarmSettings(max_drop=alarm.get("max_drop"), threshold=alarm.get("threshold")),
                   live_drift=LiveDriftSettings(every_minutes=int(live["every_minutes"]),
                                                max_drifted_share=float(live["max_drifted_share"]),
                                                min_rows=int(live["min_rows"]), retrain=bool(live["retrain"])))


def monitor_settings() -> MonitorSettings:
    """The settings of the config the function runs with."""
    if config_override():
        from loopline_runtime.config import runtime_config

        return MonitorSettings.from_config_data(runtime_config().model_dump(mode="json"))
    return MonitorSettings.from_config_data(bundled_config_data())
