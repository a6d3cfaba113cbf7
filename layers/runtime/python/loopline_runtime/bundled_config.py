"""Where a Lambda finds its pipeline config, and the bundled copy read as plain JSON.

The build validates pipeline.yaml (config.py, pydantic) and bundles it as pipeline.json next to this package. The
functions on the serving layer (batch scoring), which has no pydantic, read the few settings they need from that
validated copy with the json module alone."""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Any

from loopline_runtime.errors import InvalidConfig

CONFIG_ENV_VAR = "LOOPLINE_PIPELINE_CONFIG"
BUNDLED_CONFIG_NAME = "pipeline.json"


def config_override() -> str | None:
    """$LOOPLINE_PIPELINE_CONFIG: a config file to use instead of the bundled one (tests, benchmarks, local runs)."""
    return os.environ.get(CONFIG_ENV_VAR) or None


def bundled_config_data() -> dict[str, Any]:
    """The bundled, already validated config as a dict."""
    bundled = resources.files("loopline_runtime").joinpath(BUNDLED_CONFIG_NAME)
    if not bundled.is_file():
        raise InvalidConfig(
            f"no pipeline config bundled in the runtime layer ({BUNDLED_CONFIG_NAME}); build with `sam build` "
            f"or `loopline local up`, which validate and bundle pipeline.yaml"
        )
    data: dict[str, Any] = json.loads(bundled.read_text(encoding="utf-8"))
    return data
