"""Times and text as a raw log holds them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from fedrec.anonymize.tables import days, parse_times
from fedrec.errors import DataError


def as_days(values) -> list[str]:
    return days(parse_times(pa.array(values), column="t", first_row=0)).cast(pa.string()).to_pylist()


def test_iso_times_with_and_without_offsets_fall_on_their_utc_day():
    assert as_days(["2024-05-01T23:30:00", "2024-05-01T23:30:00-02:00", "2024-05-02 00:10:00.5",
                    "2024-05-03"]) == ["2024-05-01", "2024-05-02", "2024-05-02", "2024-05-03"]


def test_epoch_seconds_as_numbers_or_digits_are_times():
    assert as_days([0, 86_400 * 365]) == ["1970-01-01", "1971-01-01"]
    assert as_days(["0", "86400"]) == ["1970-01-01", "1970-01-02"]


def test_a_value_that_is_no_time_is_refused_naming_it_and_its_row():
    with pytest.raises(DataError, match=r"'soon' \(row 2\)"):
        parse_times(pa.array(["2024-05-01", "soon"]), column="t", first_row=0)


def test_days_of_a_long_span_are_each_formatted():
    micros = np.array([0, 86_400 * 10**6 * 400], dtype=np.int64)

    assert days(micros).cast(pa.string()).to_pylist() == ["1970-01-01", "1971-02-05"]


def test_parquet_timestamps_with_a_zone_and_dates_are_times():
    zoned = pa.array(np.array(["2024-05-01T23:30:00"], dtype="datetime64[us]")).cast(pa.timestamp("us", "UTC"))
    assert days(parse_times(zoned, column="t", first_row=0)).cast(pa.string()).to_pylist() == ["2024-05-01"]
    dates = pa.array(np.array(["2024-05-03"], dtype="datetime64[D]"))
    assert days(parse_times(dates, column="t", first_row=0)).cast(pa.string()).to_pylist() == ["2024-05-03"]
