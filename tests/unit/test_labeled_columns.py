"""The monitor function reads a labeled batch without pandas: the same cells and labels as the pandas path the gate
used (pandas.read_csv(dtype=str) + schema.coerce_target), so a measurement is the same on either layer."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from loopline_runtime.csv_table import csv_columns
from loopline_runtime.feature_schema import Task
from loopline_runtime.labeled_columns import target_labels
from loopline_runtime.schema import coerce_target, frame_columns

CSV = (
    'x,colour,label,x\n'
    '1.5,red,yes,1\n'
    ' 2 ,"blue, dark",no,2\n'
    ',NA,yes,\n'
    '\n'
    'n/a,null,"yes",4\n'
    'junk,#N/A,no\n'
)


def test_the_csv_reader_reads_the_cells_pandas_reads() -> None:
    # given a CSV with missing markers, quotes, a blank line, a short row and a repeated column name
    body = CSV.encode()

    # when
    columns, rows = csv_columns(body)

    # then every column holds what pandas.read_csv(dtype=str) holds, missing as None
    frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=True)
    assert rows == len(frame)
    assert columns == frame_columns(frame)


@pytest.mark.filterwarnings("ignore:invalid value encountered in remainder")  # coerce_target on "inf"
@pytest.mark.parametrize(("values", "task"), [
    (["1", "0", "1", "2"], Task.CLASSIFICATION),
    (["1.0", " 2", "+3", "4e0"], Task.CLASSIFICATION),
    (["1.5", "2", "3"], Task.CLASSIFICATION),
    ([" yes", "no ", "maybe"], Task.CLASSIFICATION),
    (["1", "two", "3"], Task.CLASSIFICATION),
    (["inf", "1"], Task.CLASSIFICATION),
    (["1_000", "2"], Task.CLASSIFICATION),
    ([], Task.CLASSIFICATION),
    (["1.5", " 2 ", "x", "inf", "-3e2", "1_0", "٣"], Task.REGRESSION),
])
def test_labels_are_read_as_the_gate_reads_them(values: list[str], task: Task) -> None:
    # given labels as text

    # when
    ours = target_labels(values, task)

    # then the same labels, of the same kind, as schema.coerce_target
    theirs = coerce_target(pd.Series(values, dtype=object), task).to_numpy()
    assert ours.dtype.kind == theirs.dtype.kind
    assert np.array_equal(ours, theirs, equal_nan=ours.dtype.kind == "f")
