"""Raw event logs as streams of Arrow record batches, read as often as the passes need.

k-anonymity needs every customer's quasi-identifiers before the first row can be written,
so a log is read twice: Parquet by row groups, CSV by blocks, a DataFrame by slices. Every
read yields the rows in file order; the passes line rows up by their position, so the
batching of one read need not match another's.

CSV is read as text (a column that is numbers in the first block and "n/a" later would
otherwise fail halfway); :func:`parse_times` and :func:`casts` turn text into times and
numbers where the output needs them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fedrec.errors import DataError

BATCH_ROWS = 1_000_000  # rows read at once
CSV_BLOCK_BYTES = 64 << 20
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


class Table(Protocol):
    """A log that can be read from the start any number of times."""

    name: str
    columns: list[str]
    rows: int | None  # when known before reading (progress bars)

    def batches(self, columns: Sequence[str], *, dictionaries: Sequence[str] = (),
                rows: int | None = None) -> Iterator[pa.RecordBatch]:
        """The columns asked for, ``rows`` (default ``BATCH_ROWS``; CSV: a block) at a time.
        Text columns named in ``dictionaries`` may come dictionary-encoded (Parquet stores
        text so: 4x cheaper to read here, and sorting moves codes, not strings)."""


@dataclass(frozen=True)
class ParquetTable:
    path: Path
    columns: list[str]

    @property
    def name(self) -> str:
        return str(self.path)

    @property
    def rows(self) -> int:
        return pq.ParquetFile(self.path).metadata.num_rows

    def batches(self, columns: Sequence[str], *, dictionaries: Sequence[str] = (),
                rows: int | None = None) -> Iterator[pa.RecordBatch]:
        text = [f.name for f in pq.read_schema(self.path) if f.name in dictionaries and pa.types.is_string(f.type)]
        yield from _reading(self.path, lambda: pq.ParquetFile(self.path, read_dictionary=text).iter_batches(
            batch_size=rows or BATCH_ROWS, columns=list(columns)))


@dataclass(frozen=True)
class CsvTable:
    path: Path
    columns: list[str]
    rows = None  # unknown until read

    @property
    def name(self) -> str:
        return str(self.path)

    def batches(self, columns: Sequence[str], *, dictionaries: Sequence[str] = (),
                rows: int | None = None) -> Iterator[pa.RecordBatch]:
        convert = pacsv.ConvertOptions(include_columns=list(columns), column_types={c: pa.string() for c in columns},
                                       strings_can_be_null=True)
        yield from _reading(self.path, lambda: pacsv.open_csv(
            self.path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),  # addresses and notes span lines
            convert_options=convert))


@dataclass(frozen=True)
class FrameTable:
    table: pa.Table
    name: str = "frame"

    @property
    def columns(self) -> list[str]:
        return self.table.column_names

    @property
    def rows(self) -> int:
        return self.table.num_rows

    def batches(self, columns: Sequence[str], *, dictionaries: Sequence[str] = (),
                rows: int | None = None) -> Iterator[pa.RecordBatch]:
        yield from self.table.select(list(columns)).to_batches(max_chunksize=rows or BATCH_ROWS)


def open_table(path: Path) -> Table:
    """A CSV or Parquet log, checked to exist, hold bytes and have a header."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. Pass the path of a store's raw event log (CSV or Parquet).")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty. Pass a raw event log with a header and rows.")
    suffix = path.suffix.lower()
    try:
        if suffix in PARQUET_SUFFIXES:
            return ParquetTable(path, pq.ParquetFile(path).schema_arrow.names)
        if suffix in CSV_SUFFIXES:
            with path.open(newline="", encoding="utf-8-sig") as handle:  # Arrow skips a BOM too
                header = next(csv.reader(handle), [])
            return CsvTable(path, header)
    except (OSError, UnicodeDecodeError, pa.ArrowException) as err:
        raise DataError(f"{path}: could not be read as {suffix.lstrip('.')} ({err}).") from None
    raise DataError(f"{path}: unknown format {suffix or '(no suffix)'!r}; use .csv, .parquet or .pq.")


def _reading(path: Path, open_batches: Callable[[], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """Batches as they come; a file that breaks halfway is a DataError naming it."""
    try:
        yield from open_batches()
    except pa.ArrowException as err:
        raise DataError(f"{path}: could not be read past some point ({err}). Is the file complete?") from None


def frame_table(frame: pd.DataFrame) -> FrameTable:
    try:
        return FrameTable(pa.Table.from_pandas(frame, preserve_index=False))
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise DataError(f"frame: a column mixes types Arrow cannot hold ({err}); give each column one type.") from None


def batch_count(table: Table) -> int | None:
    """How many batches a full read yields, when the table knows its length."""
    return None if table.rows is None else max(1, -(-table.rows // BATCH_ROWS))


def parse_times(values: pa.Array, *, column: str, first_row: int) -> np.ndarray:
    """Microseconds since the epoch, UTC (naive times are taken as UTC). Accepts timestamps,
    dates, ISO 8601 text with or without an offset, and epoch seconds (numbers or digits)."""
    values = decoded(values)
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        zone = values.type.tz if pa.types.is_timestamp(values.type) else None
        cast = pc.cast(values, pa.timestamp("us", zone))
        return cast.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return (pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False) * 1e6).astype(np.int64)
    text = pc.utf8_trim_whitespace(pc.cast(values, pa.string()))
    for target in (pa.timestamp("us"), pa.timestamp("us", "UTC"), pa.float64()):
        try:
            parsed = pc.cast(text, target)
        except pa.ArrowInvalid:
            continue
        if target == pa.float64():
            return (parsed.to_numpy(zero_copy_only=False) * 1e6).astype(np.int64)
        return parsed.cast(pa.int64()).to_numpy(zero_copy_only=False)
    parsed = pd.to_datetime(pd.Series(text.to_pylist(), dtype=object), errors="coerce", utc=True, format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        raise DataError(
            f"column {column!r}: {text[int(bad[0])].as_py()!r} (row {first_row + int(bad[0]) + 1}) is not a time. "
            "Use ISO 8601 (2024-05-01T12:00:00) or epoch seconds."
        )
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64)


def days(micros: np.ndarray) -> pa.Array:
    """YYYY-MM-DD of each time (UTC), as a dictionary over the days the times span: a log
    covers few days, so each is formatted once."""
    day = micros.astype("datetime64[us]").astype("datetime64[D]").astype(np.int64)
    if day.size == 0:
        return pa.array([], pa.string())
    first, last = int(day.min()), int(day.max())
    if last - first > 1_000_000:  # a corrupt span: format each row rather than a million days
        return pc.cast(pa.array(day.astype("datetime64[D]")), pa.string())
    calendar = pc.cast(pa.array(np.arange(first, last + 1).astype("datetime64[D]")), pa.string())
    return pa.DictionaryArray.from_arrays(pa.array((day - first).astype(np.int32)), calendar)


def decoded(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A dictionary-encoded array as plain values; any other array as it is."""
    return pc.cast(values, values.type.value_type) if pa.types.is_dictionary(values.type) else values


def codes_of(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Integer codes and the text they stand for (codes of equal values may differ when the
    input was dictionary-encoded with repeated entries; callers only need equal -> equal)."""
    encoded = values if pa.types.is_dictionary(values.type) else pc.dictionary_encode(values)
    return encoded.indices.to_numpy(zero_copy_only=False), pc.cast(decoded(encoded.dictionary), pa.string())


def casts(values: pa.Array, target: pa.DataType) -> bool:
    """Whether every non-empty value converts to ``target`` (text holding only numbers)."""
    try:
        pc.cast(values, target)
    except pa.ArrowInvalid:
        return False
    return True
