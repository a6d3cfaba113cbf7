"""Reading an upload as a stream: what the parser asks for is what it gets, so nothing grows with the file."""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pytest

from loopline_runtime.errors import LineTooLong, UnparseableCsv
from loopline_runtime.upload_stream import CheckedText, HashingReader, open_csv


def _text(body: bytes, *, max_line_bytes: int = 1 << 20) -> tuple[CheckedText, HashingReader]:
    raw = HashingReader(io.BytesIO(body), max_line_bytes=max_line_bytes, source="up.csv")
    return CheckedText(raw, source="up.csv"), raw


def test_reads_return_at_most_the_size_asked_and_every_character_once() -> None:
    # given 3 MB of text
    body = ("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(300_000))).encode()
    text, raw = _text(body)

    # when it is read in 256 KB pieces, as pandas' parser does
    pieces = []
    while piece := text.read(262_144):
        assert len(piece) <= 262_144
        pieces.append(piece)

    # then the pieces are the file, and the hash is the file's
    assert "".join(pieces).encode() == body
    assert raw.sha256.hexdigest() == hashlib.sha256(body).hexdigest()


def test_chunks_hold_every_row_in_order() -> None:
    # given a CSV of 1,000 rows read in chunks of 64
    rows = pd.DataFrame({"a": range(1000), "b": [f"x{i}" for i in range(1000)]})
    text, _ = _text(rows.to_csv(index=False).encode())

    # when
    chunks = list(open_csv(text, source="up.csv", max_columns=10, chunk_rows=64).chunks)

    # then
    assert len(chunks) == 16
    assert pd.concat(chunks)["b"].tolist() == rows["b"].tolist()


def test_a_long_line_and_a_bad_byte_are_typed_errors() -> None:
    text, _ = _text(b"a,b\n" + b"x" * 5000 + b",1\n", max_line_bytes=1024)
    with pytest.raises(LineTooLong):
        text.read(-1)
    text, _ = _text(b"a,b\n1,\xff\n")
    with pytest.raises(UnparseableCsv, match=r"not UTF-8 text \(byte 6\)"):
        text.read(-1)


def _read_all(body: bytes, *, max_line_bytes: int, block: int = 1 << 20) -> None:
    raw = HashingReader(io.BytesIO(body), max_line_bytes=max_line_bytes, source="up.csv")
    buffer = bytearray(block)
    while raw.readinto(buffer):
        pass


@pytest.mark.parametrize("block", [7, 1 << 20])
def test_a_quoted_value_spanning_many_short_lines_counts_whole_against_the_line_cap(block: int) -> None:
    # given a record whose quoted value holds 100 lines of 50 bytes (5 KB) under a 1 KB cap, read in blocks
    cell = "\n".join(["x" * 49] * 100)
    body = f'id,note\n1,"{cell}"\n2,short\n'.encode()

    # when / then it is too long, although no physical line is
    with pytest.raises(LineTooLong):
        _read_all(body, max_line_bytes=1024, block=block)


@pytest.mark.parametrize("block", [3, 1 << 20])
def test_quotes_that_open_no_quoted_value_and_doubled_quotes_do_not_join_lines(block: int) -> None:
    # given 500 short records with an inch mark inside a field, doubled quotes inside quoted values, and
    # quoted values with a line break, under a cap far smaller than the file
    rows = ['12" screen,"say ""hi""",b', '"two\nlines",x,y', 'a,"",c'] * 500
    body = ("size,quote,c\n" + "\n".join(rows) + "\n").encode()

    # when / then every record is within the cap
    _read_all(body, max_line_bytes=64, block=block)
