"""Model code files as a data scientist writes them (`code: FILE.py:build`), copied beside a test's config."""

from __future__ import annotations

import shutil
from pathlib import Path

MODEL_CODE_DIR = Path(__file__).parent


def copy_model_code(name: str, directory: Path, as_name: str | None = None) -> Path:
    """Copy tests/support/model_code/<name> into `directory` (as `as_name`); returns the copy's path."""
    directory.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(MODEL_CODE_DIR / name, directory / (as_name or name)))
