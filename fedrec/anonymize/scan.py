"""The first pass over a log: who the customers are, what each one publishes, who opted out.

A customer here is the output user: a (store, customer id) pair, or the customer id alone
when stores are linked or the log has no store column. Each batch numbers its customers in
order of first appearance (integer codes, no string work per row); at the end the batches'
customer keys are encoded once more, which numbers every customer by first appearance in
the whole file and maps each row to its customer without a lookup per row. Each row's time
is parsed here once and kept (8 bytes a row) for pass 2. A customer's quasi-identifiers and
sensitive values are those of their first row; opting out (or refusing consent) on any row
removes the customer, in every store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedrec.anonymize.schema import Schema
from fedrec.anonymize.tables import CsvTable, Table, batch_count, casts, codes_of, decoded, parse_times
from fedrec.errors import DataError
from fedrec.progress import bar

log = logging.getLogger("fedrec.anonymize")

TRUE = ("true", "t", "yes", "y", "1")
FALSE = ("false", "f", "no", "n", "0")
SEPARATOR = "\x1f"  # between store and customer in a key: not a character ids contain
SAMPLE_ROWS = 100_000  # rows per read while sampling: most columns fill their sample in the first
_TEXT_TABLES = (CsvTable,)  # read as text: numbers are recognised here, for typed outputs


@dataclass(frozen=True)
class Census:
    """Everything pass 2 needs to know about the rows before it writes one."""

    rows: int
    row_customer: np.ndarray  # (rows,) int32: the customer of each row, in file order
    row_time: np.ndarray  # (rows,) int64: each row's time, microseconds since the epoch (UTC)
    customer_id: pa.Array  # (customers,) raw customer id (string)
    store_id: pa.Array | None  # (customers,) store of the customer's key (None when linked or no store)
    removed: np.ndarray  # (customers,) bool: opted out, or without consent, in any store
    customer_rows: np.ndarray  # (customers,) rows per customer
    person: np.ndarray  # (customers,) int: the raw customer id's code (one person, several stores)
    quasi: Mapping[str, pa.Array]  # column -> (customers,) first-row value
    sensitive: Mapping[str, pa.Array]  # column -> (customers,) first-row value
    latest: np.datetime64  # the latest event time
    numeric: Mapping[str, pa.DataType]  # kept text columns (CSV) holding only numbers -> int64 or float64


def scan(table: Table, schema: Schema, *, link_stores: bool) -> Census:
    """Pass 1: read the columns that say who, when and what each customer publishes."""
    keyed_by_store = schema.store_id is not None and not link_stores
    wanted = _pass_one_columns(schema, table)
    locals_, dictionaries, records, times = [], [], [], []
    numeric_ok = {c: [pa.int64(), pa.float64()] for c in schema.verbatim if isinstance(table, _TEXT_TABLES)}
    offset = 0
    reading = table.batches(wanted, dictionaries=[c for c in wanted if c != schema.timestamp])
    for batch in bar(reading, logger=log, desc="anonymize: pass 1", total=batch_count(table), unit="batch"):
        _refuse_empty_values(batch, schema, table.name, offset)
        customer_codes, customers = codes_of(batch.column(schema.customer_id))
        if keyed_by_store:
            store_codes, stores = codes_of(batch.column(schema.store_id))
            local, _ = pd.factorize(store_codes.astype(np.int64) * len(customers) + customer_codes)
        else:
            local, _ = pd.factorize(customer_codes)
        local = local.astype(np.int32)  # customers of this batch, numbered by first appearance
        first = _first_appearances(local)
        customer = customers.take(pa.array(customer_codes[first]))
        store = stores.take(pa.array(store_codes[first])) if keyed_by_store else None
        leaving = _leaving(batch, schema)
        records.append({
            "customer": customer,
            "store": store,
            "rows": np.bincount(local, minlength=len(first)),
            "leaving": np.bincount(local, weights=leaving, minlength=len(first)) > 0,
            **{f"q:{c}": decoded(batch.column(c).take(pa.array(first))) for c in schema.quasi_identifiers},
            **{f"s:{c}": decoded(batch.column(c).take(pa.array(first))) for c in schema.sensitive},
        })
        locals_.append(local)
        dictionaries.append(pc.binary_join_element_wise(store, customer, SEPARATOR) if keyed_by_store else customer)
        times.append(parse_times(batch.column(schema.timestamp), column=schema.timestamp, first_row=offset))
        for column, candidates in numeric_ok.items():
            numeric_ok[column] = [t for t in candidates if casts(batch.column(column), t)]
        offset += batch.num_rows
    if offset == 0:
        raise DataError(f"{table.name}: the log has a header but no rows. Pass a log with events.")
    return _census(offset, locals_, dictionaries, records, schema, np.concatenate(times),
                   {c: ts[0] for c, ts in numeric_ok.items() if ts})


def sample_columns(table: Table, schema: Schema, columns: Sequence[str], *, size: int,
                   max_rows: int = 1_000_000) -> dict[str, list[str]]:
    """Up to ``size`` distinct non-empty values of each column, as text, from the first
    ``max_rows`` rows (fewer once every column is full), skipping rows that opt out."""
    samples: dict[str, list[str]] = {c: [] for c in columns}
    if not columns:
        return samples
    read = 0
    for batch in table.batches(list(dict.fromkeys([*columns, *schema.opt_out, *schema.consent])), rows=SAMPLE_ROWS):
        staying = pa.array(~_leaving(batch, schema))
        for column in columns:
            have = samples[column]
            if len(have) < size:
                text = pc.utf8_trim_whitespace(pc.cast(decoded(batch.column(column).filter(staying)), pa.string()))
                fresh = pc.unique(pc.drop_null(text))
                fresh = fresh.filter(pc.not_equal(fresh, "")).to_pylist()
                seen = set(have)
                have += [v for v in fresh if v not in seen][: size - len(have)]
        read += batch.num_rows
        if read >= max_rows or all(len(v) >= size for v in samples.values()):
            break
    return samples


def _census(rows, locals_, dictionaries, records, schema, row_time, numeric) -> Census:
    everyone = pc.dictionary_encode(pa.concat_arrays(dictionaries))
    record_customer = everyone.indices.to_numpy().astype(np.int64)  # one record per batch and customer
    n = len(everyone.dictionary)
    row_customer = np.empty(rows, dtype=np.int32)
    start, at = 0, 0
    for local, dictionary in zip(locals_, dictionaries):
        row_customer[at: at + len(local)] = record_customer[start: start + len(dictionary)][local]
        start, at = start + len(dictionary), at + len(local)
    first = _first_appearances(record_customer)  # record of each customer's first batch

    def gather(name):
        return pa.concat_arrays([r[name] for r in records]).take(pa.array(first))

    customer_id = gather("customer")
    person = pc.dictionary_encode(customer_id).indices.to_numpy()
    leaving = np.bincount(record_customer, weights=np.concatenate([r["leaving"] for r in records]), minlength=n) > 0
    removed = np.isin(person, person[leaving])  # opting out in one store removes the person everywhere
    return Census(
        rows=rows,
        row_customer=row_customer,
        row_time=row_time,
        customer_id=customer_id,
        store_id=gather("store") if records[0]["store"] is not None else None,
        removed=removed,
        customer_rows=np.bincount(record_customer, weights=np.concatenate([r["rows"] for r in records]),
                                  minlength=n).astype(np.int64),
        person=person,
        quasi={c: gather(f"q:{c}") for c in schema.quasi_identifiers},
        sensitive={c: gather(f"s:{c}") for c in schema.sensitive},
        latest=row_time.max().astype("datetime64[us]"),
        numeric=numeric,
    )


def _first_appearances(codes: np.ndarray) -> np.ndarray:
    """Positions where codes numbered by first appearance (0, 1, 2, ...) first occur."""
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.r_[True, codes[1:] > running[:-1]])


def _leaving(batch: pa.RecordBatch, schema: Schema) -> np.ndarray:
    """Rows whose customer opted out or did not consent (an empty consent is no consent)."""
    leaving = np.zeros(batch.num_rows, dtype=bool)
    for column in schema.opt_out:
        leaving |= _flags(batch.column(column), column=column, empty=False)
    for column in schema.consent:
        leaving |= ~_flags(batch.column(column), column=column, empty=False)
    return leaving


def _flags(values: pa.Array, *, column: str, empty: bool) -> np.ndarray:
    if pa.types.is_boolean(values.type):
        return pc.fill_null(values, empty).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return pc.fill_null(pc.not_equal(values, 0), empty).to_numpy(zero_copy_only=False)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(decoded(values), pa.string())))
    text = pc.if_else(pc.equal(text, ""), None, text)
    known = pc.or_(pc.is_in(text, pa.array(TRUE)), pc.is_in(text, pa.array(FALSE)))
    bad = pc.and_(pc.invert(known), pc.is_valid(text))
    if pc.any(bad).as_py():
        example = text.filter(bad)[0].as_py()
        raise DataError(f"column {column!r}: {example!r} is not a yes/no value. Use true/false, yes/no or 1/0.")
    return pc.fill_null(pc.is_in(text, pa.array(TRUE)), empty).to_numpy(zero_copy_only=False)


def _refuse_empty_values(batch: pa.RecordBatch, schema: Schema, name: str, offset: int) -> None:
    for column in (schema.customer_id, schema.item_id, schema.timestamp, schema.store_id):
        if column is None:
            continue
        values = batch.column(column)
        empty = pc.is_null(values)
        if pa.types.is_dictionary(values.type):
            blank = pc.equal(decoded(values.dictionary), "").to_numpy(zero_copy_only=False)
            if blank.any():
                empty = pc.or_(empty, pc.is_in(values.indices, pa.array(np.flatnonzero(blank), values.indices.type)))
        elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            empty = pc.or_(empty, pc.equal(values, ""))
        count = pc.sum(empty).as_py() or 0
        if count:
            row = offset + int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0]) + 1
            raise DataError(
                f"{name}: column {column!r} has {count} empty value(s) in this part of the log, the first at data row "
                f"{row}. Fill or remove those rows; anonymization does not guess ids or times."
            )


def _pass_one_columns(schema: Schema, table: Table) -> list[str]:
    wanted = [schema.customer_id, schema.item_id, schema.timestamp, schema.store_id, *schema.quasi_identifiers,
              *schema.sensitive, *schema.opt_out, *schema.consent]
    if isinstance(table, _TEXT_TABLES):
        wanted += list(schema.verbatim)
    return list(dict.fromkeys(c for c in wanted if c is not None))
