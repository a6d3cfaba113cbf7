"""The data contract: reading uploads, inferring types and the task, checking training data and prediction requests."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from loopline_runtime.config import FeatureType, Task
from loopline_runtime.errors import (
    InvalidRequest,
    MissingTarget,
    SchemaMismatch,
    SingleClass,
    TooFewRows,
    UnparseableCsv,
)
from loopline_runtime.schema import (
    FeatureSchema,
    infer_feature_type,
    infer_task,
    read_csv,
    records_to_frame,
    validate_training_frame,
)

MIN_ROWS = 10
HOLDOUT = 0.25
MAX_RECORDS = 5


@pytest.fixture
def schema() -> FeatureSchema:
    return FeatureSchema(
        target="label",
        task=Task.CLASSIFICATION,
        features={
            "size": FeatureType.NUMERIC,
            "colour": FeatureType.CATEGORICAL,
            "smoker": FeatureType.BOOLEAN,
            "signup": FeatureType.DATE,
        },
        ignored=["row_id"],
    )


@pytest.fixture
def labeled_frame() -> pd.DataFrame:
    rows = 20
    return pd.DataFrame({
        "size": [str(1.5 * i) for i in range(rows)],
        "colour": ["red", "blue"] * (rows // 2),
        "smoker": ["yes", "no", "no", "yes"] * (rows // 4),
        "signup": [f"2024-01-{day:02d}" for day in range(1, rows + 1)],
        "label": ["a", "b"] * (rows // 2),
    })


@pytest.fixture
def good_record() -> dict[str, Any]:
    return {"size": 3.5, "colour": "red", "smoker": True, "signup": "2024-01-31"}


# --- read_csv ------------------------------------------------------------------------------------------------


def test_read_csv_parses_a_plain_csv() -> None:
    # given
    body = b"size,colour,label\n1.5,red,a\n2.5, blue,b\n"

    # when
    frame = read_csv(body)

    # then values are read, with the space after a comma ignored
    assert list(frame.columns) == ["size", "colour", "label"]
    assert frame["colour"].tolist() == ["red", "blue"]
    assert frame["size"].tolist() == [1.5, 2.5]


def test_read_csv_strips_a_utf8_byte_order_mark() -> None:
    # given a CSV saved by a spreadsheet with a BOM
    body = "\ufeffsize,label\n1,a\n2,b\n".encode()

    # when
    frame = read_csv(body)

    # then the first column is named without the BOM
    assert list(frame.columns) == ["size", "label"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(b"", "is empty", id="empty"),
        pytest.param(b"  \n\n ", "is empty", id="whitespace-only"),
        pytest.param("size,label\n1,caf\u00e9\n".encode("latin-1"), "is not UTF-8 text", id="latin-1"),
        pytest.param(gzip.compress(b"size,label\n1,a\n"), "is not UTF-8 text", id="gzip-binary"),
        pytest.param(b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "contains NUL bytes", id="binary-with-nul"),
        pytest.param(b"1.5,2\n3,4\n", "has no header row", id="no-header-numbers"),
        pytest.param(b",\n1,2\n", "has no header row", id="blank-header"),
        pytest.param(b"size,size,label\n1,2,a\n", "repeats column names (size)", id="duplicated-columns"),
        pytest.param(b"size;label\n1;a\n", "has a single column ('size;label')", id="single-column"),
        pytest.param(b"size,label\n1,a\n1,a,x,y\n", "is not a parseable CSV", id="ragged-row"),
        pytest.param(b"size,label\n1,2,a,b\n", "more values than the header", id="rows-longer-than-header"),
    ],
)
def test_read_csv_rejects_what_it_cannot_use_and_says_why(body: bytes, expected: str) -> None:
    # given an upload named like the user's file

    # when
    with pytest.raises(UnparseableCsv) as caught:
        read_csv(body, source="batch.csv")

    # then the message names the file and the problem
    assert str(caught.value).startswith("batch.csv ")
    assert expected in str(caught.value)


# --- inference -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        pytest.param("size", [1.5, 2.0, None, 3.25], FeatureType.NUMERIC, id="floats"),
        pytest.param("size", ["1.5", "2", "3"], FeatureType.NUMERIC, id="numeric-text"),
        pytest.param("flag", [0, 1, 1, 0], FeatureType.NUMERIC, id="zero-one-stays-numeric"),
        pytest.param("colour", ["red", "blue", "red", None], FeatureType.CATEGORICAL, id="words"),
        pytest.param("code", ["A1", "B2", "A1", "C3"], FeatureType.CATEGORICAL, id="codes-not-dates"),
        pytest.param("smoker", ["yes", "no", "no"], FeatureType.BOOLEAN, id="yes-no"),
        pytest.param("smoker", [True, False, True], FeatureType.BOOLEAN, id="bools"),
        pytest.param("signup", ["2024-01-31", "2024-02-01", "2023-12-25", None], FeatureType.DATE, id="iso-dates"),
        pytest.param("customer_id", list(range(100)), None, id="id-named-unique-integers"),
        pytest.param("ref", [f"u-{i:04d}" for i in range(100)], None, id="unique-text"),
        pytest.param("amount", list(np.linspace(0.0, 1.0, 100)), FeatureType.NUMERIC, id="unique-floats-not-id"),
    ],
)
def test_infer_feature_type(name: str, values: list[Any], expected: FeatureType | None) -> None:
    # given
    series = pd.Series(values)

    # when
    kind = infer_feature_type(name, series)

    # then (None: an id-like column that must not be a feature)
    assert kind is expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(["malignant", "benign", "benign"], Task.CLASSIFICATION, id="text-labels"),
        pytest.param([True, False, True], Task.CLASSIFICATION, id="bools"),
        pytest.param([0, 1, 2, 1, None], Task.CLASSIFICATION, id="few-integers"),
        pytest.param([0.5, 1.25, 3.0], Task.REGRESSION, id="floats"),
        pytest.param(list(range(100)), Task.REGRESSION, id="many-integers"),
    ],
)
def test_infer_task(values: list[Any], expected: Task) -> None:
    # given
    target = pd.Series(values)

    # when
    task = infer_task(target)

    # then
    assert task is expected


# --- validate_training_frame ---------------------------------------------------------------------------------


def _validate(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    return validate_training_frame(frame, schema, min_rows=MIN_ROWS, holdout_fraction=HOLDOUT)


def test_valid_upload_keeps_labeled_rows_only(labeled_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    # given two rows without a label
    frame = labeled_frame.copy()
    frame.loc[[3, 7], "label"] = None

    # when
    accepted = _validate(frame, schema)

    # then
    assert len(accepted) == len(labeled_frame) - 2
    assert accepted["label"].notna().all()


def test_upload_without_the_target_column_is_rejected(labeled_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    # given
    frame = labeled_frame.drop(columns=["label"])

    # when
    with pytest.raises(MissingTarget) as caught:
        _validate(frame, schema)

    # then the message names the target and the columns that are there
    assert "the target column 'label' is not in the upload" in str(caught.value)
    assert "size, colour, smoker, signup" in str(caught.value)


def test_upload_with_an_all_empty_target_is_rejected(labeled_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    # given
    frame = labeled_frame.assign(label=None)

    # when
    with pytest.raises(MissingTarget) as caught:
        _validate(frame, schema)

    # then
    assert "the target column 'label' has no values" in str(caught.value)


def test_upload_with_too_few_rows_is_rejected(labeled_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    # given one row fewer than the minimum
    frame = labeled_frame.head(MIN_ROWS - 1)

    # when
    with pytest.raises(TooFewRows) as caught:
        _validate(frame, schema)

    # then it says how many there are and how many are needed
    assert f"has {MIN_ROWS - 1} labeled row(s); the pipeline needs at least {MIN_ROWS}" in str(caught.value)


def test_upload_with_a_single_class_is_rejected(labeled_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    # given
    frame = labeled_frame.assign(label="a")

    # when
    with pytest.raises(SingleClass) as caught:
        _validate(frame, schema)

    # then
    assert "holds a single class ('a')" in str(caught.value)


def test_upload_missing_a_feature_column_is_rejected(labeled_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    # given
    frame = labeled_frame.drop(columns=["colour"])

    # when
    with pytest.raises(SchemaMismatch) as caught:
        _validate(frame, schema)

    # then
    assert "lacks the pipeline's feature column(s) 'colour'" in str(caught.value)


@pytest.mark.parametrize(
    ("column", "bad_value", "kind"),
    [("size", "large", "numeric"), ("smoker", "maybe", "boolean"), ("signup", "last week", "date")],
)
def test_upload_with_a_wrong_typed_column_is_rejected(
    labeled_frame: pd.DataFrame, schema: FeatureSchema, column: str, bad_value: str, kind: str
) -> None:
    # given a column that is mostly unreadable as its declared type
    frame = labeled_frame.assign(**{column: bad_value})

    # when
    with pytest.raises(SchemaMismatch) as caught:
        _validate(frame, schema)

    # then the message names the column, its type and an offending value
    assert f"column {column!r} should be {kind} but holds value(s) such as {bad_value!r}" in str(caught.value)


def test_a_few_unreadable_cells_are_tolerated(labeled_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    # given one stray cell among twenty numbers
    frame = labeled_frame.copy()
    frame.loc[0, "size"] = "n/a?"

    # when
    accepted = _validate(frame, schema)

    # then the upload is accepted (the cell is imputed later)
    assert len(accepted) == len(frame)


def test_regression_target_must_be_numeric(labeled_frame: pd.DataFrame, schema: FeatureSchema) -> None:
    # given
    regression = FeatureSchema(target="label", task=Task.REGRESSION, features=schema.features)

    # when
    with pytest.raises(SchemaMismatch) as caught:
        _validate(labeled_frame, regression)

    # then
    assert "the regression target 'label' has non-numeric value(s) such as 'a'" in str(caught.value)


# --- records_to_frame ----------------------------------------------------------------------------------------


def test_records_become_a_frame_in_schema_order(schema: FeatureSchema, good_record: dict[str, Any]) -> None:
    # given records with nulls, an ignored column and the label (all allowed)
    records = [dict(reversed(good_record.items())), {**good_record, "size": None, "row_id": 7, "label": "a"}]

    # when
    frame = records_to_frame(records, schema, max_records=MAX_RECORDS)

    # then
    assert list(frame.columns) == list(schema.features)
    assert frame["size"].tolist()[0] == 3.5
    assert pd.isna(frame["size"].tolist()[1])


@pytest.mark.parametrize(
    ("make_records", "expected"),
    [
        pytest.param(lambda r: [{k: v for k, v in r.items() if k != "colour"}],
                     "records[0] is missing field(s) colour", id="missing-field"),
        pytest.param(lambda r: [{**r, "weight": 70}], "records[0] has unknown field(s) weight", id="extra-field"),
        pytest.param(lambda r: [{**r, "size": "big"}], "records[0].size must be a number, got 'big'", id="wrong-type"),
        pytest.param(lambda r: [], '"records" is empty', id="empty-batch"),
        pytest.param(lambda r: [r] * (MAX_RECORDS + 1),
                     f'"records" has {MAX_RECORDS + 1} items; send at most {MAX_RECORDS}', id="oversized"),
        pytest.param(lambda r: r, '"records" must be a list of objects', id="not-a-list"),
        pytest.param(lambda r: ["size=1"], "records[0] must be an object of feature values, got str",
                     id="record-not-object"),
    ],
)
def test_bad_prediction_requests_name_the_problem(
    schema: FeatureSchema, good_record: dict[str, Any], make_records: Callable[[dict[str, Any]], Any], expected: str
) -> None:
    # given one of the ways a request goes wrong
    records = make_records(good_record)

    # when
    with pytest.raises(InvalidRequest) as caught:
        records_to_frame(records, schema, max_records=MAX_RECORDS)

    # then
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("size", True, "must be a number, not a boolean"),
        ("size", float("inf"), "must be a finite number"),
        ("size", [1, 2], "must be a numeric value, not a JSON array"),
        ("colour", {"r": 1}, "must be a categorical value, not a JSON object"),
        ("smoker", "maybe", "must be true or false, got 'maybe'"),
        ("smoker", 2, "must be true or false, got 2"),
        ("signup", "someday", "must be a date such as 2024-01-31, got 'someday'"),
    ],
)
def test_wrong_typed_values_are_named_per_field(
    schema: FeatureSchema, good_record: dict[str, Any], field: str, value: Any, expected: str
) -> None:
    # given
    records = [good_record, {**good_record, field: value}]

    # when
    with pytest.raises(InvalidRequest) as caught:
        records_to_frame(records, schema, max_records=MAX_RECORDS)

    # then the second record and the field are named
    assert f"records[1].{field} {expected}" in str(caught.value)


def test_many_problems_are_reported_together_but_bounded(schema: FeatureSchema, good_record: dict[str, Any]) -> None:
    # given every record has a bad value
    records = [{**good_record, "size": "big"}] * MAX_RECORDS

    # when
    with pytest.raises(InvalidRequest) as caught:
        records_to_frame(records, schema, max_records=MAX_RECORDS)

    # then each record is named, so the caller can fix them in one go
    for index in range(MAX_RECORDS):
        assert f"records[{index}].size" in str(caught.value)
