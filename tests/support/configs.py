"""Pipeline configs for tests: the project's pipeline.yaml with a tiny model search, so training takes seconds."""

from __future__ import annotations

from pathlib import Path

import yaml

from loopline_runtime.config import PipelineConfig


def write_fast_config(config: PipelineConfig, path: Path) -> Path:
    """Write `config` with one candidate, one setting and the smallest time budget to `path`; returns `path`."""
    data = config.model_dump(mode="json")
    data["training"]["time_budget_seconds"] = 5
    data["models"] = [{"name": "linear", "params": {"C": [1.0]}}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
