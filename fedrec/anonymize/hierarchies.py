"""Generalisation hierarchies: each quasi-identifier, from its finest published form to "*".

    age     birth date -> age at the reference date in 10-year bands, then 20, then 40
            ("30-39", "20-39", "0-39"); 80 and over is one band, "80+", at every level
    prefix  postcode -> its first 3 characters (spaces removed, upper case), then 2, then 1
    value   the value itself (gender, city, ...)
    then    "*" (suppressed), the top of every hierarchy

Ages count from a fixed reference date, never "today", so the same input gives the same
output on any day. A missing value is "*" at every level; so is a birth date after the
reference date.

Each level holds one integer code per customer (equal codes, equal labels) and the label of
each code, so the k-anonymity search compares integers, not strings; :func:`vocabulary`
numbers every label of a hierarchy once, across its levels, for the published values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fedrec.errors import DataError

SUPPRESSED = "*"
AGE_WIDTHS = (10, 20, 40)
AGE_TOP_CODE = 80  # ages from here on share one band at every level: few people, easy to single out
DEFAULT_PREFIX = 3


@dataclass(frozen=True)
class Level:
    """One rung of a hierarchy: ``labels[codes[u]]`` is customer u's published value."""

    name: str
    codes: np.ndarray  # (n_customers,) int64
    labels: np.ndarray  # (n_codes,) object (str)

    def values(self, customers: np.ndarray | slice = slice(None)) -> np.ndarray:
        return self.labels[self.codes[customers]]


def output_name(column: str, kind: str) -> str:
    """The output column of a quasi-identifier: age_band, <column>_prefix, or the column."""
    return {"age": "age_band", "prefix": f"{column}_prefix"}.get(kind, column)


def build_levels(kind: str, values: pa.Array, *, column: str, reference_date: date,
                 prefix_length: int = DEFAULT_PREFIX) -> list[Level]:
    """The levels of one quasi-identifier over one value per customer, finest first."""
    if kind == "age":
        levels = age_levels(birth_dates(values, column=column), reference_date)
    elif kind == "prefix":
        levels = prefix_levels(values, prefix_length)
    else:
        levels = [_factorized("value", _as_strings(values))]
    return [*levels, suppressed_level(len(values))]


def suppressed_level(n: int) -> Level:
    return Level("suppressed", np.zeros(n, np.int64), np.array([SUPPRESSED], dtype=object))


def birth_dates(values: pa.Array, *, column: str) -> np.ndarray:
    """datetime64[D] per customer (NaT when empty); anything else that is not a date is an error."""
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        return pc.cast(values, pa.date32()).to_numpy(zero_copy_only=False).astype("datetime64[D]")
    strings = pc.cast(values, pa.string())
    try:
        dates = pc.cast(pc.utf8_trim_whitespace(strings), pa.date32())
    except pa.ArrowInvalid:
        parsed = pd.to_datetime(pd.Series(strings.to_pylist(), dtype=object), errors="coerce", format="ISO8601")
        bad = parsed.isna() & pd.Series(strings.is_valid().to_numpy(zero_copy_only=False))
        if bad.any():
            raise DataError(
                f"column {column!r}: {strings[int(np.flatnonzero(bad.to_numpy())[0])].as_py()!r} is not a date. "
                "Write birth dates as YYYY-MM-DD, or declare the column with another role in the schema."
            ) from None
        return parsed.to_numpy().astype("datetime64[D]")
    return dates.to_numpy(zero_copy_only=False).astype("datetime64[D]")


def ages(born: np.ndarray, reference_date: date) -> np.ndarray:
    """Whole years at ``reference_date``; -1 where unknown or born after it."""
    known = ~np.isnat(born)
    safe = np.where(known, born, np.datetime64(reference_date, "D"))
    year = safe.astype("datetime64[Y]").astype(np.int64) + 1970
    month_start = safe.astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    day = (safe - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    not_yet = (month > reference_date.month) | ((month == reference_date.month) & (day > reference_date.day))
    age = reference_date.year - year - not_yet.astype(np.int64)
    return np.where(known & (age >= 0), age, -1)


def age_levels(born: np.ndarray, reference_date: date) -> list[Level]:
    age = ages(born, reference_date)
    levels = []
    for width in AGE_WIDTHS:
        low = np.where(age < 0, -1, np.minimum(age // width * width, AGE_TOP_CODE))
        codes, lows = pd.factorize(low)
        labels = [SUPPRESSED if x < 0 else f"{AGE_TOP_CODE}+" if x >= AGE_TOP_CODE else f"{x}-{x + width - 1}"
                  for x in lows]
        levels.append(Level(f"{width}-year age bands", codes.astype(np.int64), np.array(labels, dtype=object)))
    return levels


def age_band_labels() -> tuple[str, ...]:
    """Every label ``age_levels`` can publish, at any level: what an audit may group by
    without looking at anyone's age (fedrec.release.fixed_vocabularies)."""
    bands = [f"{low}-{low + width - 1}" for width in AGE_WIDTHS for low in range(0, AGE_TOP_CODE, width)]
    return (*bands, f"{AGE_TOP_CODE}+", SUPPRESSED)


def prefix_levels(values: pa.Array, length: int) -> list[Level]:
    normal = pc.utf8_upper(pc.replace_substring(_as_strings(values), " ", ""))
    normal = pc.if_else(pc.equal(normal, ""), None, normal)
    return [
        _factorized(f"{n}-character prefix", pc.fill_null(pc.utf8_slice_codeunits(normal, 0, n), SUPPRESSED))
        for n in range(length, 0, -1)
    ]


def _as_strings(values: pa.Array) -> pa.Array:
    return values if pa.types.is_string(values.type) else pc.cast(values, pa.string())


def _factorized(name: str, labels: pa.Array) -> Level:
    """Codes of equal labels; missing labels become "*"."""
    encoded = pc.dictionary_encode(pc.fill_null(labels, SUPPRESSED))
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    return Level(name, encoded.indices.to_numpy().astype(np.int64),
                 np.asarray(encoded.dictionary.to_pylist(), dtype=object))


def vocabulary(levels: list[Level]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every label of a hierarchy once (all levels), and per level the vocabulary index of
    each of its codes: equal published text, equal index, whatever the level."""
    index: dict[str, int] = {}
    per_level = [np.array([index.setdefault(label, len(index)) for label in level.labels], dtype=np.int64)
                 for level in levels]
    return np.array(list(index), dtype=object), per_level
