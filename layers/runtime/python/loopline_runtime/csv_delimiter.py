"""The field delimiter of an uploaded CSV: comma by default, `csv.delimiter` in the pipeline config otherwise; an
upload read as a single column names the delimiter its header holds, so the fix is one setting away."""

from __future__ import annotations

from loopline_runtime.bundled_config import bundled_config_data, config_override

DELIMITER_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}


def detected_delimiter(header_line: str, configured: str) -> str | None:
    """Another known delimiter that splits the header line into at least two names (the most frequent one)."""
    counts = {d: header_line.count(d) for d in DELIMITER_NAMES if d != configured}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else None


def single_column_message(source: str, column: str, header_line: str, configured: str) -> str:
    """Why an upload read as one column, naming the delimiter found and the setting that reads it."""
    expected = DELIMITER_NAMES[configured]
    found = detected_delimiter(header_line, configured)
    if found is None:
        return (f"{source} has a single column ({column!r}); a training CSV needs feature columns and a target "
                f"column, separated by {expected}")
    shown = "\\t" if found == "\t" else found
    preview = column[:30] + ("…" if len(column) > 30 else "")
    return (f"{source} has a single column ({preview!r}): its header has {DELIMITER_NAMES[found]} ({shown!r}) "
            f"where {expected} were expected. Export it with {expected}, or set `csv: {{delimiter: \"{shown}\"}}` "
            f"in the pipeline config")


def configured_delimiter() -> str:
    """csv.delimiter of the pipeline config the function runs with, read without pydantic (the batch function runs
    on the serving layer): from the bundled pipeline.json, which the build validated; an override file goes through
    the full config loader (the dev and test environments, which have it)."""
    if config_override():
        from loopline_runtime.config import runtime_config

        return runtime_config().csv.delimiter
    return str(bundled_config_data()["csv"]["delimiter"])
