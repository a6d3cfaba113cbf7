"""CSV files as plain Python rows and columns, read with the csv module (no pandas): batch chunks and the labeled
batches the monitor function measures, both on the serving layer."""

from __future__ import annotations

import csv
import io

# What pandas.read_csv reads as a missing value by default (keep_default_na): the chunks were read that way when
# scoring ran on pandas, and a client's "NA" or "null" cell is still sent to the model as null.
NA_TEXTS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                      "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def read_csv_table(body: bytes, *, missing: frozenset[str] = frozenset()) -> tuple[list[str], list[list[str | None]]]:
    """A CSV file as (column names, rows): cells in `missing` become None, blank lines are skipped, and a repeated
    column name gets a suffix (name.1, name.2, ...) so that every column can be addressed by name."""
    reader = csv.reader(io.StringIO(body.decode("utf-8"), newline=""))
    header = next(reader, [])
    columns: list[str] = []
    for column in header:
        unique, copy = column, 0
        while unique in columns:
            copy += 1
            unique = f"{column}.{copy}"
        columns.append(unique)
    rows = [[None if cell in missing else cell for cell in row] for row in reader if row]
    return columns, rows


def csv_columns(body: bytes) -> tuple[dict[str, list[str | None]], int]:
    """A CSV file as (column name -> its cells, row count), cells as pandas.read_csv(dtype=str) reads them by
    default: the NA_TEXTS missing (None), short rows padded with None, blank lines skipped."""
    header, rows = read_csv_table(body, missing=NA_TEXTS)
    width = len(header)
    padded = [row + [None] * (width - len(row)) if len(row) < width else row for row in rows]
    return {name: [row[i] for row in padded] for i, name in enumerate(header)}, len(rows)
