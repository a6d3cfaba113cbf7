"""Batch scoring: a CSV under batch/incoming/ is scored by the champion of the moment, whatever its size.

The batch scoring state machine runs three steps of this module (the BatchFunction):

    split     pin the champion (its version and the pointer's verified S3 versions and sha256 of the compiled
              model), stream the file into chunk objects (input row numbers added)
    score     one chunk, with the pinned compiled model (a Distributed Map child per chunk): the same ONNX graph
              and request validation as POST /predict, loaded by the pins the state machine carries from the
              split's result (never from run.json, which is a record, not a source of trust), never unpickled
    finalize  predictions/<run>/part-*.csv, rejected.csv and summary.json

Layout in the artifact bucket:
    batch/incoming/<file>.csv                   uploads (each starts a run)
    batch/runs/<run>/run.json                   a record of the pinned model (version + pins), chunks, counts,
                                                split times (finalize reads the counts; no step reads the pins)
    batch/runs/<run>/chunks/<n>.csv             the input rows, `input_row` first (what the Distributed Map reads)
    batch/runs/<run>/scored/<n>.csv             predictions of chunk n
    batch/runs/<run>/rejected/<n>.csv           rows of chunk n that could not be scored, with reasons
    batch/runs/<run>/results/<n>.json           chunk n's counts (written last: its presence means "chunk done")
    predictions/<run>/part-<k>.csv, rejected.csv, summary.json   the run's output

Every input row ends up exactly once in a part or in rejected.csv: rows with the wrong number of fields at the
split, invalid values at scoring, and the rows of a chunk that failed after its retries (within the tolerated
failure rate) as `scoring_failed`.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import numpy as np

from loopline_runtime.batch_layout import (
    CHUNK_ROWS_METADATA,
    DEFAULT_CHUNK_ROWS,
    PART_ROWS,
    ROW_COLUMN,
    chunk_prefix,
    output_prefix,
    run_prefix,
    summary_key,
)
from loopline_runtime.compiled_model import CompiledModel
from loopline_runtime.csv_table import NA_TEXTS, read_csv_table
from loopline_runtime.errors import InvalidBatch, InvalidRequest, InvalidUpload, NoChampion
from loopline_runtime.feature_schema import FeatureSchema, FeatureType, Task
from loopline_runtime.model_inputs import value_problem
from loopline_runtime.registry import ModelRegistry
from loopline_runtime.serving import predict_records
from loopline_runtime.storage import ObjectNotFound, ObjectStore
from loopline_runtime.upload_stream import HashingReader

MAX_LINE_BYTES = 1 << 20  # bytes of one row (a quoted value spanning lines counts whole)
MAX_BATCH_BYTES = 10 * 2**30  # one split streams about this much within its 900 s
MAX_BATCH_COLUMNS = 1_000
CHUNK_ROWS_RANGE = (10, 100_000)  # x-amz-meta-chunk-rows: 1 would make one Map child per row
MAX_CHUNKS = 10_000  # Map children of one run

REASONS = {
    "wrong_field_count": "the row has a different number of values than the header has columns",
    "not_a_number": "a numeric feature holds a value that is not a finite number",
    "not_a_boolean": "a boolean feature holds a value that is not true/false (yes/no, 1/0, ...)",
    "not_a_date": "a date feature holds a value that is not a date",
    "invalid_row": "the prediction API's validation rejected the row",
    "scoring_failed": "the chunk holding the row failed after its retries (within the tolerated failure rate)",
}
_KIND_REASON = {FeatureType.NUMERIC: "not_a_number", FeatureType.BOOLEAN: "not_a_boolean",
                FeatureType.DATE: "not_a_date"}
MAX_VALUE_ECHO = 60  # characters of a bad value quoted in a rejection message
FORMULA_START = re.compile(r"[=+\-@\t\r]")  # what a spreadsheet reads as the start of a formula
USER_ERRORS = ("InvalidBatch", "NoChampion")  # a run that ends in one of these was refused, not broken


def _chunk_name(index: int) -> str:
    return f"{index:06d}"


# ---------------------------------------------------------------------------------------------------- split


def split_upload(store: ObjectStore, registry: ModelRegistry, source_key: str, run_id: str, *,
                 chunk_rows: int | None = None, version_id: str | None = None,
                 delimiter: str = ",") -> dict[str, Any]:
    """Pin the champion for the run and stream the upload into chunk objects of `chunk_rows` rows.

    The run pins what the champion pointer pins (the compiled model's S3 VersionId and sha256, as the gate
    verified them): every chunk loads exactly that, whatever is promoted meanwhile. The pins are checked here,
    before any chunk is written (ArtifactIntegrityError otherwise). `version_id` is the S3 version the event named:
    a newer upload to the same key is its own run. Over a cap (MAX_BATCH_BYTES, MAX_BATCH_COLUMNS,
    MAX_LINE_BYTES, the csv field limit, CHUNK_ROWS_RANGE, MAX_CHUNKS) the file is refused with InvalidBatch."""
    started, started_at = time.monotonic(), datetime.now(UTC)
    pointer = registry.champion_pointer()
    if pointer is None:
        raise NoChampion("no model has been promoted yet; batch scoring needs a champion (train one first)")
    model_version = str(pointer["version"])
    schema = FeatureSchema.from_dict(registry.champion_manifest(pointer)["schema"])
    size, metadata = store.head(source_key, version_id)
    if size > MAX_BATCH_BYTES:
        raise InvalidBatch(f"{source_key} is {size / 2**30:,.1f} GiB, over the batch cap of "
                           f"{MAX_BATCH_BYTES / 2**30:,.0f} GiB; split it into several uploads")
    chunk_rows = _chunk_rows(chunk_rows if chunk_rows is not None else metadata.get(CHUNK_ROWS_METADATA))
    rejected_count = chunks = rows_in = 0
    # rows refused here go to a file on /tmp as they come, never into memory
    with contextlib.closing(store.open(source_key, version_id)) as body, \
            tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", suffix=".csv") as rejected_file:
        rejected = csv.writer(rejected_file, lineterminator="\n")
        raw = HashingReader(body, max_line_bytes=MAX_LINE_BYTES, source=source_key)
        text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", newline="")
        reader = csv.reader(text, delimiter=delimiter)  # csv.delimiter of the pipeline config, as ingest reads
        try:
            header = [name.strip() for name in next(reader)]
        except (StopIteration, UnicodeDecodeError):
            raise InvalidBatch(f"{source_key} is empty or not UTF-8 CSV; upload a CSV with a header row") from None
        except (csv.Error, InvalidUpload) as exc:
            raise InvalidBatch(_unreadable(source_key, 0, exc)) from None
        if len(header) > MAX_BATCH_COLUMNS:
            raise InvalidBatch(f"{source_key} has {len(header):,} columns, over the batch cap of "
                               f"{MAX_BATCH_COLUMNS:,}; keep the model's features and your id columns")
        missing = [name for name in schema.features if name not in header]
        if missing:
            raise InvalidBatch(
                f"{source_key} lacks the model's feature column(s) {', '.join(map(repr, missing))} (model "
                f"{model_version}); add them (empty values are fine)")
        passthrough = _passthrough(header, schema)
        rejected.writerow([ROW_COLUMN, *passthrough, "reason", "message"])
        pending: list[list[str]] = []
        try:
            for row in reader:
                if not row:
                    continue  # a blank line is not a row
                rows_in += 1
                if len(row) != len(header):
                    values = dict(zip(header, row, strict=False))
                    rejected.writerow([rows_in, *(values.get(c, "") for c in passthrough), "wrong_field_count",
                                       f"{len(row)} values for {len(header)} columns"])
                    rejected_count += 1
                    continue
                pending.append([str(rows_in), *row])
                if len(pending) >= chunk_rows:
                    chunks = _next_chunk(store, run_id, chunks, header, pending)
                    pending = []
        except UnicodeDecodeError:
            raise InvalidBatch(f"{source_key} is not UTF-8 text after row {rows_in:,}; save it as UTF-8 CSV") from None
        except (csv.Error, InvalidUpload) as exc:
            raise InvalidBatch(_unreadable(source_key, rows_in, exc)) from None
        if pending:
            chunks = _next_chunk(store, run_id, chunks, header, pending)
        rejected_file.flush()
        store.put_file(f"{run_prefix(run_id)}rejected/split.csv", rejected_file.name, content_type="text/csv")
    run = {
        "run_id": run_id, "source_key": source_key, "source_version_id": version_id, "model_version": model_version,
        "pins": pointer["pins"], "chunk_rows": chunk_rows,
        "chunks": chunks, "rows_in": rows_in, "rejected_at_split": rejected_count, "passthrough_columns": passthrough,
        "started_at": started_at.isoformat(), "split_seconds": round(time.monotonic() - started, 3),
    }
    store.put_json(f"{run_prefix(run_id)}run.json", run)
    # the pins go on in the state machine's state (to every Map child): the only path they are read from
    return {"run_id": run_id, "model_version": model_version, "pins": pointer["pins"],
            "chunk_prefix": chunk_prefix(run_id), "chunks": chunks, "rows_in": rows_in}


def _chunk_rows(requested: Any) -> int:
    """The run's chunk size: the request's, else the upload's chunk-rows metadata, else the default; bounded."""
    if requested in (None, ""):
        return DEFAULT_CHUNK_ROWS
    low, high = CHUNK_ROWS_RANGE
    try:
        value = int(requested)
    except (TypeError, ValueError):
        value = -1
    if not low <= value <= high:
        raise InvalidBatch(f"chunk-rows {str(requested)[:MAX_VALUE_ECHO]!r} is not a whole number from {low:,} to "
                           f"{high:,}; set x-amz-meta-{CHUNK_ROWS_METADATA} within that range, or leave it out")
    return value


def _next_chunk(store: ObjectStore, run_id: str, chunks: int, header: list[str], rows: list[list[str]]) -> int:
    """Write chunk number chunks + 1; refuse a file that would need more than MAX_CHUNKS Map children."""
    if chunks >= MAX_CHUNKS:
        raise InvalidBatch(f"the file needs more than {MAX_CHUNKS:,} chunks of {len(rows):,} rows; raise "
                           f"x-amz-meta-{CHUNK_ROWS_METADATA} (at most {CHUNK_ROWS_RANGE[1]:,}) or split the file")
    _put_csv(store, f"{chunk_prefix(run_id)}{_chunk_name(chunks + 1)}.csv", [ROW_COLUMN, *header], rows)
    return chunks + 1


def _unreadable(source_key: str, rows_read: int, exc: Exception) -> str:
    """Why the CSV reader stopped: a row (a quoted value counts whole) over MAX_LINE_BYTES, or a field over the csv
    module's limit."""
    if isinstance(exc, InvalidUpload):
        what = f"a row longer than {MAX_LINE_BYTES // 1024:,} KB"
    else:
        what = f"a value longer than {csv.field_size_limit():,} characters ({exc})"
    return (f"{source_key} has {what} after row {rows_read:,}; batch rows are table rows: check the file is CSV "
            "and that every quote is closed")


def _passthrough(header: list[str], schema: FeatureSchema) -> list[str]:
    """Input columns copied to the output next to the predictions: ids and anything that is not a feature."""
    return [c for c in header if c not in schema.features and c != schema.target and c != ROW_COLUMN]


def _put_csv(store: ObjectStore, key: str, header: list[str], rows: list[list[Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    store.put_bytes(key, buffer.getvalue().encode("utf-8"), content_type="text/csv")


# ---------------------------------------------------------------------------------------------------- score


def _pin_key(version: str, pins: dict[str, dict[str, Any]]) -> tuple[str, ...]:
    """What a cached model is keyed by: everything pinned (key, S3 VersionId and sha256 of both objects)."""
    return (version, *(str(pins[name].get(field)) for name in ("manifest", "compiled")
                       for field in ("key", "version_id", "sha256")))


class ModelCache:
    """A run's pinned compiled model, loaded once per execution environment (warm Lambda invocations reuse it).

    Keyed by the pins, not the version name: a later run of the same warm worker reuses the model only if it pins
    exactly the same objects."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._models: dict[tuple[str, ...], CompiledModel] = {}

    def get(self, version: str, pins: dict[str, dict[str, Any]]) -> CompiledModel:
        """The model `pins` name (from the state machine's state), loaded and checked by the registry."""
        if not isinstance(pins, dict) or not {"manifest", "compiled"} <= pins.keys():
            raise InvalidBatch(f"the score step got no pins for model {version}; the state machine passes the "
                               "split's pins to every chunk")
        key = _pin_key(version, pins)
        if key not in self._models:
            # keep one: a run pins one model
            self._models = {key: self.registry.load_pinned(version, pins)}
        return self._models[key]


def score_chunk(store: ObjectStore, models: ModelCache, run_id: str, chunk_key: str, model_version: str,
                pins: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Score one chunk with the run's pinned compiled model through the serving path (predict_records)."""
    started = time.monotonic()
    name = chunk_key.rsplit("/", 1)[-1].removesuffix(".csv")
    if not chunk_key.startswith(chunk_prefix(run_id)):
        raise InvalidBatch(f"chunk {chunk_key} is not a chunk of run {run_id}")
    model = models.get(model_version, pins)
    schema = model.schema
    columns, rows = read_csv_table(store.get_bytes(chunk_key), missing=NA_TEXTS)
    position = {column: index for index, column in enumerate(columns)}
    passthrough = _passthrough([c for c in columns if c != ROW_COLUMN], schema)
    kept = [position[ROW_COLUMN], *(position[c] for c in passthrough)]
    valid: list[list[str | None]] = []
    rejected: list[list[Any]] = []
    for row, problem in zip(rows, invalid_rows(columns, rows, schema), strict=True):
        if problem is None:
            valid.append(row)
        else:
            rejected.append([int(row[kept[0]] or 0), *(row[i] for i in kept[1:]), *problem])
    scored_header, scored, refused = _predict(model, columns, valid, passthrough)
    rejected = sorted([*rejected, *refused], key=lambda r: int(r[0]))
    prefix = run_prefix(run_id)
    # the parts are these files concatenated: cells a spreadsheet would run are neutralised here
    store.put_bytes(f"{prefix}scored/{name}.csv", csv_bytes(*neutralise_formulas(scored_header, scored)),
                    content_type="text/csv")
    store.put_bytes(f"{prefix}rejected/{name}.csv",
                    csv_bytes([ROW_COLUMN, *passthrough, "reason", "message"], rejected), content_type="text/csv")
    result = {"chunk": name, "rows": len(rows), "scored": len(scored), "rejected": len(rejected),
              "rejected_by_reason": dict(Counter(r[-2] for r in rejected)), "model_version": model.version,
              "seconds": round(time.monotonic() - started, 3)}
    store.put_json(f"{prefix}results/{name}.json", result)
    return {"chunk": name, "scored": len(scored), "rejected": len(rejected)}


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    """Rows as CSV (None as an empty cell), the way the outputs have always been written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if cell is None else cell for cell in row] for row in rows])
    return buffer.getvalue().encode("utf-8")


def invalid_rows(columns: list[str], rows: list[list[str | None]],
                 schema: FeatureSchema) -> list[tuple[str, str] | None]:
    """Per row: the first reason it cannot be scored with a message naming the column and value, or None when it
    can. Values are read with the model's own coercion (serving's value check): a value it would turn into a
    missing one is invalid."""
    problems: list[tuple[str, str] | None] = [None] * len(rows)
    position = {column: index for index, column in enumerate(columns)}
    for name, kind in schema.features.items():
        code = _KIND_REASON.get(kind)
        if code is None:
            continue  # any text is a category
        index = position[name]
        if kind is FeatureType.NUMERIC and _all_finite_numbers([row[index] for row in rows]):
            continue  # the usual case, checked in one numpy conversion instead of one call per cell
        readable: dict[str, bool] = {}  # each distinct value is read once: a chunk holds few distinct dates
        for number, row in enumerate(rows):
            value = row[index]
            if problems[number] is not None or value is None:
                continue
            if value not in readable:
                readable[value] = value_problem(value, kind) is None
            if not readable[value]:
                problems[number] = (code, f"{name}: {value[:MAX_VALUE_ECHO]!r} is not {_kind_words(kind)}")
    return problems


def _all_finite_numbers(values: list[str | None]) -> bool:
    """Whether every present value reads as a finite number, by the serving check's rules (no `_` digit
    separators, ASCII digits only); False when any one might not (the caller then checks value by value)."""
    texts = [value for value in values if value is not None]
    if any("_" in text or not text.isascii() for text in texts):
        return False
    try:
        numbers = np.asarray(texts, dtype=np.float64)
    except ValueError:
        return False
    return bool(np.isfinite(numbers).all())


def neutralise_formulas(header: list[str], rows: list[list[Any]]) -> tuple[list[str], list[list[Any]]]:
    """Output cells (and column names) a spreadsheet would run as a formula: text starting with =, +, -, @, tab or
    carriage return that is not a number gets a leading apostrophe, which spreadsheets show as text and do not run.
    Batch outputs are opened in spreadsheets; `=HYPERLINK(...)` in an id column must not become a live link.
    Numbers (and booleans) are never formulas."""
    return [_neutral(c) for c in header], [[_neutral(c) if isinstance(c, str) else c for c in row] for row in rows]


def _neutral(value: str) -> str:
    if FORMULA_START.match(value) is None:
        return value
    text = value.strip()
    if "_" in text or not text.isascii():  # float() reads these; pandas never took them for numbers
        return "'" + value
    try:
        float(text)
    except ValueError:
        return "'" + value
    return value


def _kind_words(kind: FeatureType) -> str:
    return {FeatureType.NUMERIC: "a finite number", FeatureType.BOOLEAN: "true or false",
            FeatureType.DATE: "a date"}.get(kind, kind.value)


def _predict(model: CompiledModel, columns: list[str], valid: list[list[str | None]],
             passthrough: list[str]) -> tuple[list[str], list[list[Any]], list[list[Any]]]:
    """(header, rows) of the predictions for the valid rows through serving's own predict_records (the compiled
    model and the request validation of POST /predict), and the rows serving still refuses, as rejected rows."""
    schema = model.schema
    position = {column: index for index, column in enumerate(columns)}
    kept = [position[ROW_COLUMN], *(position[c] for c in passthrough)]
    features = [(name, position[name]) for name in schema.features]
    records = [{name: row[index] for name, index in features} for row in valid]
    if not records:
        return _scored(kept, passthrough, valid, {"predictions": []}, schema)[0], [], []
    try:
        response = predict_records(model, records, max_records=len(records))
    except InvalidRequest:
        # a row our checks let through but serving's validation does not: find it (and its peers) row by row
        keep, refused = [], []
        for row, record in zip(valid, records, strict=True):
            try:
                predict_records(model, [record], max_records=1)
                keep.append(row)
            except InvalidRequest as exc:
                refused.append([int(row[kept[0]] or 0), *(row[i] for i in kept[1:]), "invalid_row", str(exc)[:300]])
        header, scored, _ = _predict(model, columns, keep, passthrough)
        return header, scored, refused
    header, scored = _scored(kept, passthrough, valid, response, schema)
    return header, scored, []


def _scored(kept: list[int], passthrough: list[str], valid: list[list[str | None]], response: dict[str, Any],
            schema: FeatureSchema) -> tuple[list[str], list[list[Any]]]:
    """The scored file's header and rows: input_row, the passthrough columns, the prediction and, for a classifier,
    one probability column per class."""
    classes = response.get("classes") if schema.task is Task.CLASSIFICATION else None
    header = [ROW_COLUMN, *passthrough, "prediction", *(f"probability_{cls}" for cls in classes or ())]
    rows = []
    for number, (row, prediction) in enumerate(zip(valid, response["predictions"], strict=True)):
        out: list[Any] = [int(row[kept[0]] or 0), *(row[i] for i in kept[1:]), prediction]
        if classes:
            probabilities = response["probabilities"][number]
            out.extend(probabilities[str(cls)] for cls in classes)
        rows.append(out)
    return header, rows


# ---------------------------------------------------------------------------------------------------- finalize


def finalize_run(store: ObjectStore, run_id: str, *, map_error: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write predictions/<run>/ (parts in input order, rejected.csv, summary.json) from the chunks' outputs."""
    started = time.monotonic()
    prefix = run_prefix(run_id)
    run = store.get_json(f"{prefix}run.json")
    out = output_prefix(run_id)
    results: dict[str, dict[str, Any]] = {}
    for key in store.list_keys(f"{prefix}results/"):
        result = store.get_json(key)
        results[result["chunk"]] = result
    versions = {r["model_version"] for r in results.values()}
    if versions - {run["model_version"]}:
        raise RuntimeError(f"run {run_id} pinned {run['model_version']} but chunks report {sorted(versions)}")
    names = [_chunk_name(i) for i in range(1, run["chunks"] + 1)]
    done = [name for name in names if name in results]
    failed = [name for name in names if name not in results]
    parts = _write_parts(store, prefix, out, done)
    by_reason: Counter[str] = Counter()
    rejected_rows = _write_rejected(store, prefix, out, run, done, failed, by_reason)
    rows_out = sum(r["scored"] for r in results.values())
    summary = {
        "run_id": run_id,
        "status": "complete" if not failed and map_error is None else "partial",
        "source_key": run["source_key"],
        "model_version": run["model_version"],
        "rows_in": run["rows_in"],
        "rows_out": rows_out,
        "rows_rejected": rejected_rows,
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "reasons": {code: REASONS[code] for code in sorted(by_reason)},
        "chunks": run["chunks"],
        "chunks_failed": len(failed),
        "chunk_rows": run["chunk_rows"],
        "parts": parts,
        "rejected_key": f"{out}rejected.csv",
        "passthrough_columns": run["passthrough_columns"],
        "timings": {
            "started_at": run["started_at"],
            "finished_at": datetime.now(UTC).isoformat(),
            "split_seconds": run["split_seconds"],
            "chunk_seconds_total": round(sum(r["seconds"] for r in results.values()), 3),
            "finalize_seconds": round(time.monotonic() - started, 3),
        },
    }
    if map_error:
        summary["map_error"] = {k: str(v)[:500] for k, v in map_error.items()}
    started_at = datetime.fromisoformat(run["started_at"])
    summary["timings"]["wall_seconds"] = round((datetime.now(UTC) - started_at).total_seconds(), 3)
    if rows_out + rejected_rows != run["rows_in"]:  # never silently drop a row
        summary["status"] = "inconsistent"
    store.put_json(summary_key(run_id), summary)
    return {"run_id": run_id, "status": summary["status"], "summary_key": summary_key(run_id),
            "model_version": run["model_version"], "rows_in": run["rows_in"], "rows_out": rows_out,
            "rows_rejected": rejected_rows}


def _write_parts(store: ObjectStore, prefix: str, out: str, names: list[str]) -> list[str]:
    """Concatenate the scored chunks, in input order, into parts of about PART_ROWS rows (one header each)."""
    parts: list[str] = []
    buffer, rows = io.BytesIO(), 0

    def flush() -> None:
        nonlocal buffer, rows
        key = f"{out}part-{len(parts) + 1:05d}.csv"
        store.put_bytes(key, buffer.getvalue(), content_type="text/csv")
        parts.append(key)
        buffer, rows = io.BytesIO(), 0

    for name in names:
        body = store.get_bytes(f"{prefix}scored/{name}.csv")
        header, _, data = body.partition(b"\n")
        if rows == 0:
            buffer.write(header + b"\n")
        buffer.write(data)
        rows += data.count(b"\n")
        if rows >= PART_ROWS:
            flush()
    if rows or not parts:
        flush()
    return parts


def _write_rejected(store: ObjectStore, prefix: str, out: str, run: dict[str, Any], done: list[str],
                    failed: list[str], by_reason: Counter[str]) -> int:
    """rejected.csv: rows refused at the split, at scoring (chunks that finished), and every row of a chunk that
    failed (whatever it wrote before failing is ignored: its rows count once, as scoring_failed)."""
    columns = [ROW_COLUMN, *run["passthrough_columns"], "reason", "message"]
    rows: list[list[Any]] = []
    for key in [f"{prefix}rejected/split.csv", *(f"{prefix}rejected/{name}.csv" for name in done)]:
        header, cells = read_csv_table(store.get_bytes(key))
        rows.extend(_reordered(header, cells, columns))
    for name in failed:
        header, cells = read_csv_table(store.get_bytes(f"{prefix}chunks/{name}.csv"))
        rows.extend([*row[:-2], "scoring_failed", f"chunk {name} failed after its retries"]
                    for row in _reordered(header, cells, columns))
    for row in rows:
        row[0] = int(row[0])
    rows.sort(key=lambda row: row[0])
    by_reason.update(row[-2] for row in rows)
    store.put_bytes(f"{out}rejected.csv", csv_bytes(*neutralise_formulas(columns, rows)), content_type="text/csv")
    return len(rows)


def _reordered(header: list[str], rows: list[list[str | None]], columns: list[str]) -> list[list[Any]]:
    """The rows with `columns` in that order; a column the file lacks is empty."""
    position = {column: index for index, column in enumerate(header)}
    picks = [position.get(column) for column in columns]
    return [[None if index is None else row[index] for index in picks] for row in rows]


def record_failure(store: ObjectStore, run_id: str, source_key: str | None, error: dict[str, Any]) -> dict[str, Any]:
    """summary.json for a run that ended before its predictions were written: `rejected` (the file or the lack of a
    champion, the user's to fix) or `failed`, with the step's error and message."""
    name = str(error.get("Error") or "BatchScoringFailed")
    cause = str(error.get("Cause") or "")
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    message = str(parsed.get("errorMessage") or cause) if isinstance(parsed, dict) else cause
    summary = {"run_id": run_id, "status": "rejected" if name in USER_ERRORS else "failed", "source_key": source_key,
               "error": name, "reason": message[:2000], "finished_at": datetime.now(UTC).isoformat()}
    store.put_json(summary_key(run_id), summary)
    return {**summary, "summary_key": summary_key(run_id)}


def summary_progress(store: ObjectStore, run_id: str) -> tuple[int, int] | None:
    """(chunks done, chunks) of a run in progress; None before its split is written."""
    try:
        run = store.get_json(f"{run_prefix(run_id)}run.json")
    except ObjectNotFound:
        return None
    done = sum(1 for _ in store.list_keys(f"{run_prefix(run_id)}results/"))
    return done, int(run["chunks"])
