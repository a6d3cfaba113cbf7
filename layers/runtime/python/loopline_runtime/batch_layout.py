"""Where batch scoring keeps its objects within the prefixes of bucket_layout (the state machine and the CLI use
these too)."""

from __future__ import annotations

import hashlib

from loopline_runtime.bucket_layout import BATCH_RUNS_PREFIX, PREDICTIONS_PREFIX

ROW_COLUMN = "input_row"  # the 1-based number of the data row in the uploaded file
DEFAULT_CHUNK_ROWS = 10_000
PART_ROWS = 500_000  # rows per predictions part
CHUNK_ROWS_METADATA = "chunk-rows"  # x-amz-meta-chunk-rows on an upload overrides the chunk size for its run


def run_id_for(key: str, version_id: str | None) -> str:
    """The run (and execution) name of one upload: the same for a redelivered S3 event, new for a new upload."""
    return "batch-" + hashlib.sha256(f"{key}\n{version_id or ''}".encode()).hexdigest()[:20]


def run_prefix(run_id: str) -> str:
    return f"{BATCH_RUNS_PREFIX}{run_id}/"


def chunk_prefix(run_id: str) -> str:
    return f"{run_prefix(run_id)}chunks/"


def output_prefix(run_id: str) -> str:
    """Where a run's predictions parts, rejected.csv and summary.json go."""
    return f"{PREDICTIONS_PREFIX}{run_id}/"


def summary_key(run_id: str) -> str:
    return f"{output_prefix(run_id)}summary.json"
