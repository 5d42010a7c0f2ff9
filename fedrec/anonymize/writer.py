"""The second pass: rows out, grouped by user and in time order within each user.

Each batch of the log is filtered (opted-out customers), cut to the columns kept, and
tagged with the user, their rank in pseudonym order and the original time; pseudonyms,
days and published quasi-identifiers are filled in once a bucket is sorted. The output is
sorted by (rank, original time), stably. fedrec's reader orders a user's rows by
timestamp, now a day, keeping file order within a day, so each customer's sequence
survives the cut to days; and the input's global time order, which would tell the hour of
every event, is gone. Logs up to ``BUCKET_ROWS`` rows are sorted in memory; larger ones go
to temporary Arrow files by rank range first (an external sort: memory stays at one
bucket, however long the log).
"""

from __future__ import annotations

import logging
import math
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fedrec.anonymize.detect import scrub
from fedrec.anonymize.hierarchies import output_name
from fedrec.anonymize.pseudonyms import pseudonymize_values
from fedrec.anonymize.release import Release
from fedrec.anonymize.scan import Census
from fedrec.anonymize.schema import Schema
from fedrec.anonymize.tables import Table, batch_count, days
from fedrec.errors import ConfigError
from fedrec.progress import bar

log = logging.getLogger("fedrec.anonymize")

BUCKET_ROWS = 2_000_000
_USER, _RANK, _TIME = "__user", "__rank", "__time"
OUTPUT_IDS = ("user_id", "item_id", "timestamp", "store_id")


def output_columns(schema: Schema, *, scrub_text: bool) -> list[str]:
    """The output's columns, in order; a kept column named like a published one is refused."""
    ids = [c for c, source in zip(OUTPUT_IDS, (1, 1, 1, schema.store_id)) if source]
    kept = [*schema.verbatim, *schema.pseudonymise, *(schema.free_text if scrub_text else ())]
    columns = [*ids, *kept, *(output_name(c, schema.hierarchies[c]) for c in schema.quasi_identifiers)]
    clash = sorted({c for c in columns if columns.count(c) > 1})
    if clash:
        raise ConfigError(f"column(s) {clash} would appear twice in the output (two columns publish under one "
                          "name); give them other roles or hierarchies in the schema, or rename them.")
    return columns


def release_batches(table: Table, census: Census, release: Release, schema: Schema, *, scrub_text: bool,
                    numeric: dict[str, pa.DataType], key: bytes, link_stores: bool) -> Iterator[pa.Table]:
    """Pass 2: the rows that stay, batch by batch, in the columns kept from the log, with
    each row's user, rank and original time (the published columns are added once sorted)."""
    kept = [*schema.verbatim, *schema.pseudonymise, *(schema.free_text if scrub_text else ())]
    reading = list(dict.fromkeys([schema.item_id, *([schema.store_id] if schema.store_id else []), *kept]))
    offset = 0
    batches = table.batches(reading, dictionaries=reading)
    for batch in bar(batches, logger=log, desc="anonymize: pass 2", total=batch_count(table), unit="batch"):
        rows = slice(offset, offset + batch.num_rows)
        offset += batch.num_rows
        users = release.user_of[census.row_customer[rows]]
        stays = users >= 0
        if not stays.any():
            continue
        batch, users, times = batch.filter(pa.array(stays)), users[stays], census.row_time[rows][stays]
        columns = {
            "item_id": batch.column(schema.item_id),
            **({"store_id": _compact(batch.column(schema.store_id))} if schema.store_id else {}),
            **{c: _compact(_kept(batch.column(c), numeric.get(c))) for c in schema.verbatim},
            **{c: pseudonymize_values(batch.column(c), None if link_stores or not schema.store_id
                                      else batch.column(schema.store_id), column=c, key=key)
               for c in schema.pseudonymise},
            **({c: _compact(scrub(batch.column(c))) for c in schema.free_text} if scrub_text else {}),
            _USER: pa.array(users.astype(np.int32)),
            _RANK: pa.array(release.rank[users]),
            _TIME: pa.array(times),
        }
        yield pa.table(columns)


def write_ordered(batches: Iterator[pa.Table], *, rows: int, release: Release, write: Callable[[pa.Table], None],
                  scratch: Path) -> int:
    """Sort by (rank, original time), stable, so ties keep file order; publish; hand each
    sorted bucket to ``write``. Returns the rows written."""
    buckets = max(1, math.ceil(rows / BUCKET_ROWS))
    users = len(release.pseudonym)
    if buckets == 1:
        parts = list(batches)
        return _write_sorted(pa.concat_tables(parts), release, write) if parts else 0
    with tempfile.TemporaryDirectory(prefix=".anonymize-", dir=scratch) as folder:
        paths = [Path(folder) / f"bucket-{b}.arrow" for b in range(buckets)]
        writers: list = [None] * buckets
        try:
            for part in batches:
                bucket = (part.column(_RANK).to_numpy() * buckets // users).astype(np.int16)
                order = np.argsort(bucket, kind="stable")  # radix sort on small ints
                part, bucket = part.take(pa.array(order)), bucket[order]
                bounds = np.searchsorted(bucket, np.arange(buckets + 1))
                for b in np.flatnonzero(np.diff(bounds)):
                    piece = part.slice(bounds[b], bounds[b + 1] - bounds[b])
                    if writers[b] is None:
                        writers[b] = pa.ipc.new_stream(str(paths[b]), piece.schema)  # streams allow new dictionaries
                    writers[b].write_table(piece)
        finally:
            for writer in writers:
                if writer is not None:
                    writer.close()
        written = 0
        for b, path in enumerate(paths):
            if writers[b] is not None:
                with pa.memory_map(str(path)) as source:
                    written += _write_sorted(pa.ipc.open_stream(source).read_all(), release, write)
                path.unlink()
        return written


def _write_sorted(part: pa.Table, release: Release, write: Callable[[pa.Table], None]) -> int:
    order = pc.sort_indices(part, sort_keys=[(_RANK, "ascending"), (_TIME, "ascending")])
    part = part.take(order)
    users = part.column(_USER).to_numpy()
    published = {name: pa.DictionaryArray.from_arrays(pa.array(codes[users]), labels)
                 for name, (codes, labels) in release.published.items()}
    kept = [c for c in part.column_names if c not in ("item_id", "store_id", _USER, _RANK, _TIME)]
    columns = {
        "user_id": release.by_rank.take(part.column(_RANK)),
        "item_id": part.column("item_id"),
        "timestamp": days(part.column(_TIME).to_numpy()),
        **({"store_id": part.column("store_id")} if "store_id" in part.column_names else {}),
        **{c: part.column(c) for c in kept},
        **published,
    }
    write(pa.table(columns))
    return part.num_rows


def _kept(values: pa.Array, numeric: pa.DataType | None) -> pa.Array:
    return pc.cast(values, numeric) if numeric is not None else values


def _compact(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text as a dictionary: sorting then moves 4-byte codes, not strings (measured: 0.04 s
    instead of 0.75 s to reorder 1M rows of 8 columns)."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return pc.dictionary_encode(values)
    return values


def plain(table: pa.Table) -> pa.Table:
    """Dictionary columns decoded (for pandas, which would make them categoricals)."""
    return table.cast(pa.schema([pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                                 for f in table.schema]))


class TableSink:
    """Appends tables to one Parquet or CSV file (by suffix); the schema is the first table's."""

    def __init__(self, path: Path, *, csv: bool):
        self.path, self.csv, self.writer, self.schema = path, csv, None, None

    def write(self, part: pa.Table) -> None:
        if self.writer is None:
            self.schema = part.schema
            # store_schema=False: dictionary columns read back as plain text, not categoricals
            self.writer = (pacsv.CSVWriter(self.path, part.schema) if self.csv
                           else pq.ParquetWriter(self.path, part.schema, store_schema=False))
        self.writer.write_table(part.cast(self.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
