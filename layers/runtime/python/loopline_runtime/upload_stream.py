"""Reading an uploaded CSV as a stream of row chunks, in memory bounded by the chunk size, never the file size.

The bytes are hashed as they pass (the dataset version is the upload's content address) and checked on the way:
NUL characters (a binary file), undecodable UTF-8 and lines longer than the configured cap each stop the read with
a typed InvalidUpload. The header is parsed once, before any data row, so the column cap and the header checks
cost one line of input.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from loopline_runtime.csv_delimiter import single_column_message
from loopline_runtime.errors import LineTooLong, TooManyColumns, UnparseableCsv

if TYPE_CHECKING:
    import pandas as pd

CHUNK_ROWS = 50_000  # rows parsed at a time: about 100 MB of Python strings at 30 columns
READ_BYTES = 1 << 20
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_UNNAMED = re.compile(r"Unnamed: \d+")
_BOOL_WORDS = {"true": True, "false": False}
_QUOTE_OR_NEWLINE = re.compile(rb'["\n]')
_QUOTE = ord('"')
_FIELD_ENDS = b",\n"  # a quote right after one of these opens a quoted value


class HashingReader(io.RawIOBase):
    """Bytes from `body`, hashed on the way; a CSV record longer than `max_line_bytes` raises LineTooLong (a record:
    a line, or several when a quoted value spans them)."""

    def __init__(self, body: IO[bytes], *, max_line_bytes: int, source: str) -> None:
        self.body = body
        self.max_line_bytes = max_line_bytes
        self.source = source
        self.sha256 = hashlib.sha256()
        self.bytes_read = 0
        self.eof = False
        self._line_length = 0  # bytes of the current record (since the last newline outside quotes)
        self._quoted = False  # inside a quoted value at the end of the last block
        self._field_start = 0  # 0: the next block starts a field; -1: it does not
        self._closed_at = -2  # -1: the last block ended with a quote that closed a quoted value

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.body.read(min(len(buffer), READ_BYTES))
        if not data:
            self.eof = True
            return 0
        self.sha256.update(data)
        self.bytes_read += len(data)
        self._check_lines(data)
        buffer[: len(data)] = data
        return len(data)

    def _check_lines(self, data: bytes) -> None:
        """Track the length of the current CSV record: a newline inside a quoted value does not end it, so a
        quoted value spanning many short lines counts whole (as the parser will hold it)."""
        if not self._quoted and b'"' not in data:
            self._check_plain_lines(data)
        else:
            self._check_quoted_lines(data)
        if self._line_length > self.max_line_bytes:
            self._too_long()

    def _check_plain_lines(self, data: bytes) -> None:
        last = data.rfind(b"\n")
        if last < 0:
            self._line_length += len(data)
        else:
            first = data.find(b"\n")
            longest = max(self._line_length + first, _longest_inner_line(data, first, last))
            if longest > self.max_line_bytes:
                self._too_long()
            self._line_length = len(data) - last - 1
        self._field_start = 0 if data.endswith((b",", b"\n")) else -1
        self._closed_at = -2

    def _check_quoted_lines(self, data: bytes) -> None:
        """The csv module's quoting: a quote opens a quoted value only as a field's first character; inside, a
        doubled quote is a literal one; a quote elsewhere is a literal character. Only quotes and newlines are
        visited (a field's start is read from the byte before the quote)."""
        length, start = self._line_length, 0
        closed_at, quoted = self._closed_at, self._quoted
        for match in _QUOTE_OR_NEWLINE.finditer(data):
            at = match.start()
            if data[at] == _QUOTE:
                if quoted:
                    quoted, closed_at = False, at
                elif (data[at - 1] in _FIELD_ENDS if at else self._field_start == 0) or at == closed_at + 1:
                    quoted = True  # an opening quote, or the second quote of a "" inside a quoted value
            elif not quoted:
                if length + at - start > self.max_line_bytes:
                    self._too_long()
                length, start = 0, at + 1
        self._line_length = length + len(data) - start
        self._quoted = quoted
        self._field_start = 0 if data.endswith((b",", b"\n")) else -1
        self._closed_at = -1 if closed_at == len(data) - 1 else -2

    def _too_long(self) -> None:
        raise LineTooLong(
            f"{self.source} has a line longer than {self.max_line_bytes // 1024:,} KB (ingest.max_line_kb) near byte "
            f"{self.bytes_read:,}; a CSV row that long is usually a file that is not CSV, or a value that does not "
            "belong in a table (raise ingest.max_line_kb in the pipeline config if it does)"
        )

    def drain(self) -> str:
        """Read the rest (bounded memory, nothing kept) and return the sha256 of the whole upload."""
        while data := self.body.read(READ_BYTES):
            self.sha256.update(data)
            self.bytes_read += len(data)
        self.eof = True
        return self.sha256.hexdigest()


def _longest_inner_line(data: bytes, first: int, last: int) -> int:
    """The longest run between two newlines of `data` (0 when there is at most one newline)."""
    longest, start = 0, first + 1
    while start <= last:
        end = data.find(b"\n", start)
        longest = max(longest, end - start)
        start = end + 1
    return longest


class CheckedText(io.TextIOBase):
    """UTF-8 text (a BOM dropped) decoded from a HashingReader; NUL characters and bad bytes are typed errors."""

    def __init__(self, raw: HashingReader, *, source: str) -> None:
        self.raw = raw
        self.source = source
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._decoded_bytes = 0  # bytes handed to the decoder before the current block
        self._done = False
        self._prefix = ""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        """At most `size` characters (all the rest when size < 0): a reader that returns more than asked makes
        pandas keep the surplus in a buffer that grows with the file."""
        limit = READ_BYTES if size is None or size < 0 else size
        while len(self._prefix) < limit and not self._done:
            self._prefix += self._next_block()
        if size is None or size < 0:
            while not self._done:
                self._prefix += self._next_block()
            text, self._prefix = self._prefix, ""
            return text
        text, self._prefix = self._prefix[:size], self._prefix[size:]
        return text

    def _next_block(self) -> str:
        data = self.raw.read(READ_BYTES)
        self._done = not data
        try:
            text = self._decoder.decode(data or b"", final=self._done)
        except UnicodeDecodeError as exc:
            raise UnparseableCsv(f"{self.source} is not UTF-8 text (byte {self._decoded_bytes + exc.start}); "
                                 "save the file as UTF-8 CSV") from None
        self._decoded_bytes += len(data or b"")
        if "\x00" in text:
            raise UnparseableCsv(f"{self.source} contains NUL bytes: it looks like a binary file, not a CSV")
        return text

    def read_header(self) -> str:
        """Text up to and including the first line break (left in place for the parser)."""
        while "\n" not in self._prefix and "\r" not in self._prefix and not self._done:
            self._prefix += self._next_block()
        ends = [i for i in (self._prefix.find("\n"), self._prefix.find("\r")) if i >= 0]
        return self._prefix[: min(ends) + 1] if ends else self._prefix


@dataclass
class CsvChunks:
    """An upload's header and its rows in chunks of raw text (every value a string, missing cells NaN)."""

    columns: list[str]
    dropped: list[str] = field(default_factory=list)  # nameless, empty columns that trailing commas make
    chunks: Iterator[pd.DataFrame] = field(default_factory=lambda: iter(()))


def open_csv(text: CheckedText, *, source: str, max_columns: int, chunk_rows: int | None = None,
             delimiter: str = ",") -> CsvChunks:
    """Parse the header (checked like a whole-file read would check it) and return the rows as chunks."""
    head = text.read_header()
    header = [name.strip() for name in next(csv.reader(io.StringIO(head.lstrip("\r\n")), delimiter=delimiter), [])]
    if len(header) > max_columns:
        raise TooManyColumns(
            f"{source} has {len(header):,} columns; the pipeline accepts at most {max_columns:,} "
            "(ingest.max_columns). Keep the feature columns and the target, or raise ingest.max_columns"
        )
    duplicated = sorted({name for name in header if name and header.count(name) > 1})
    if duplicated:
        names = ", ".join(duplicated)
        raise UnparseableCsv(f"{source} repeats column names ({names}); give every column a unique name")
    reader = _reader(text, source, chunk_rows or CHUNK_ROWS, delimiter)
    try:
        first = next(reader)
    except StopIteration:
        raise UnparseableCsv(f"{source} is empty; upload a CSV with a header row and at least one data row") from None
    first.columns = [str(c).strip() for c in first.columns]
    columns = list(first.columns)
    unnamed = [c for c in columns if _UNNAMED.fullmatch(c)]
    numeric = [c for c in columns if _NUMBER.fullmatch(c)]
    if (unnamed and len(unnamed) == len(columns)) or len(numeric) == len(columns):
        raise UnparseableCsv(f"{source} has no header row; the first line must name the columns")
    # trailing commas make a nameless, empty last column: not a feature anyone could send at prediction time
    dropped = [c for c in unnamed if first[c].isna().all()]
    kept = [c for c in columns if c not in dropped]
    if len(kept) < 2:
        raise UnparseableCsv(single_column_message(source, kept[0] if kept else columns[0],
                                                   head.lstrip("\r\n").splitlines()[0] if head.strip() else "",
                                                   delimiter))

    pending = [first]

    def chunks() -> Iterator[pd.DataFrame]:
        yield pending.pop()[kept]  # popped: the first chunk is not kept alive while the others are read
        for chunk in reader:
            chunk.columns = columns
            yield chunk[kept]

    return CsvChunks(kept, dropped, chunks())


def _reader(text: CheckedText, source: str, chunk_rows: int, delimiter: str = ",") -> Iterator[pd.DataFrame]:
    """pandas' C parser over the stream; a row with more values than the header has names is an error (pandas
    would silently drop them with index_col=False, or shift every value into an index without it)."""
    import pandas as pd  # here, not at the top: batch scoring reads with HashingReader alone, on the serving layer

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            parser = pd.read_csv(text, dtype=str, skipinitialspace=True, index_col=False, chunksize=chunk_rows,
                                 sep=delimiter)
            with parser:
                for chunk in parser:
                    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught) or not isinstance(
                            chunk.index, pd.RangeIndex):
                        raise UnparseableCsv(f"{source} has rows with more values than the header has column "
                                             "names; fix the rows or the header")
                    yield chunk
    except pd.errors.EmptyDataError:
        raise UnparseableCsv(f"{source} is empty; upload a CSV with a header row and at least one data row") from None
    except (pd.errors.ParserError, ValueError) as exc:
        if isinstance(exc, UnparseableCsv):
            raise
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnparseableCsv(f"{source} is not a parseable CSV: {first_line}") from None


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Raw text columns with the dtypes pandas would infer reading them (numbers, True/False), for schema
    inference on a sample of an upload read as text."""
    import pandas as pd

    columns: dict[str, pd.Series] = {}
    for name in frame.columns:
        column = frame[name]
        present = column.dropna()
        try:
            columns[name] = pd.to_numeric(column)
            continue
        except (TypeError, ValueError):
            pass
        words = {str(v).lower() for v in present.unique()}
        if len(present) and words <= set(_BOOL_WORDS) and len(present) == len(column):
            columns[name] = column.str.lower().map(_BOOL_WORDS).astype(bool)
        else:
            columns[name] = column.astype(object)
    return pd.DataFrame(columns, index=frame.index)
