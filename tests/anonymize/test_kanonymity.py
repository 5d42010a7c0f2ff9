"""Local recoding: only small classes lose detail, and every class ends with k customers."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from pycanon import anonymity

from fedrec.anonymize.hierarchies import ages, build_levels
from fedrec.anonymize.kanonymity import k_anonymize
from fedrec.errors import ConfigError

REFERENCE = date(2025, 1, 1)


def hierarchies(frame: pd.DataFrame) -> list:
    return [
        build_levels("age", pa.array(frame["birth_date"]), column="birth_date", reference_date=REFERENCE),
        build_levels("prefix", pa.array(frame["postcode"]), column="postcode", reference_date=REFERENCE),
        build_levels("value", pa.array(frame["gender"]), column="gender", reference_date=REFERENCE),
    ]


def customers(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "birth_date": [str(np.datetime64("1950-01-01") + int(d)) for d in rng.integers(0, 365 * 50, n)],
        "postcode": [f"{a}{rng.integers(1, 4)} {rng.integers(1, 9)}AB" for a in rng.choice(["SW", "EC", "M"], n)],
        "gender": rng.choice(["F", "M", "X"], n, p=[0.6, 0.35, 0.05]),
    })


def published(recoding) -> pd.DataFrame:
    return pd.DataFrame({"age": recoding.labels(0), "postcode": recoding.labels(1), "gender": recoding.labels(2)})


def test_ages_count_whole_years_at_the_reference_date():
    born = np.array(["2000-01-01", "2000-01-02", "1990-12-31", "NaT", "2030-01-01"], dtype="datetime64[D]")

    assert ages(born, date(2025, 1, 1)).tolist() == [25, 24, 34, -1, -1]


def test_every_class_holds_k_customers_checked_by_pycanon():
    frame = customers(300)

    recoding = k_anonymize(hierarchies(frame), k=5, groups=np.zeros(300, np.int64))

    out = published(recoding)
    assert recoding.k >= 5
    assert anonymity.k_anonymity(out, ["age", "postcode", "gender"]) >= 5


def test_customers_in_big_classes_keep_their_finest_values():
    common = pd.DataFrame({"birth_date": ["1980-06-01"] * 6, "postcode": ["SW1 1AA"] * 6, "gender": ["F"] * 6})
    rare = pd.DataFrame({"birth_date": ["1950-01-01", "1990-01-01", "2001-01-01"], "postcode": ["EC1 1AA", "M1 1AA", "LS2 9JT"],
                         "gender": ["M", "X", "F"]})
    frame = pd.concat([common, rare], ignore_index=True)

    recoding = k_anonymize(hierarchies(frame), k=3, groups=np.zeros(9, np.int64))

    out = published(recoding)
    assert out.iloc[:6].values.tolist() == [["40-49", "SW1", "F"]] * 6
    assert (recoding.levels[6:] > 0).any(axis=1).all()
    assert anonymity.k_anonymity(out, ["age", "postcode", "gender"]) >= 3


def test_a_small_suppressed_group_takes_in_the_stores_smallest_class():
    frame = pd.DataFrame({"birth_date": ["1980-06-01"] * 5 + ["1970-01-01"] * 3 + ["1950-01-01"],
                          "postcode": ["SW1 1AA"] * 5 + ["EC1 1AA"] * 3 + ["M1 1AA"], "gender": ["F"] * 9})

    recoding = k_anonymize(hierarchies(frame), k=3, groups=np.zeros(9, np.int64))

    assert recoding.k >= 3
    assert anonymity.k_anonymity(published(recoding), ["age", "postcode", "gender"]) >= 3


def test_classes_are_counted_within_each_store():
    frame = customers(200, seed=3)
    stores = np.repeat([0, 1], 100)

    recoding = k_anonymize(hierarchies(frame), k=4, groups=stores)

    out = published(recoding).assign(store=stores)
    assert anonymity.k_anonymity(out, ["store", "age", "postcode", "gender"]) >= 4


def test_l_diversity_holds_when_asked():
    frame = customers(300, seed=5)
    skin = np.random.default_rng(5).integers(0, 4, 300)

    recoding = k_anonymize(hierarchies(frame), k=5, groups=np.zeros(300, np.int64), sensitive=[skin], l=3)

    out = published(recoding).assign(skin=skin)
    assert recoding.l >= 3
    assert anonymity.l_diversity(out, ["age", "postcode", "gender"], ["skin"]) >= 3


def test_k_above_the_number_of_customers_is_refused():
    with pytest.raises(ConfigError, match="larger than the 9 customers"):
        k_anonymize(hierarchies(customers(9)), k=10, groups=np.zeros(9, np.int64))


def test_a_store_with_fewer_than_k_customers_is_refused_naming_it():
    with pytest.raises(ConfigError, match="store 'S9' has 3 customers"):
        k_anonymize(hierarchies(customers(20)), k=5, groups=np.r_[np.zeros(17, np.int64), np.ones(3, np.int64)],
                    group_names=["S1", "S9"])
