"""`loopline report`: read the recorded numbers, draw, write one HTML file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from loopline.client import StackClient
from loopline.operate.report.page import render_model_page, render_monitoring_page
from loopline.operate.report.sources import model_inputs, monitoring_inputs
from loopline_runtime.storage import ObjectStore


def write_report(stack: StackClient, *, version: str | None, monitoring: str | None, output: Path | None,
                 progress: Callable[[str], None] = lambda _: None) -> Path:
    """Write the report of `version` (None: the champion) or of a monitoring run ('latest' or its key)."""
    store = ObjectStore(stack.bucket, client=stack.s3)
    progress(f"reading the records in s3://{stack.bucket}")
    if monitoring is not None:
        inputs = monitoring_inputs(store, None if monitoring == "latest" else monitoring)
        page = render_monitoring_page(inputs, progress=progress)
        default = Path(f"report-{Path(inputs.key).stem}.html")
    else:
        model = model_inputs(store, version)
        page = render_model_page(model, progress=progress)
        default = Path(f"report-{model.version}.html")
    output = output or default
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
