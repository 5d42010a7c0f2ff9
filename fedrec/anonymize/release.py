"""Between the passes: what each remaining customer will publish.

From the census (pass 1): drop the opted-out, build every quasi-identifier's hierarchy
from the customers' first-row values, recode until k-anonymous, and draw the pseudonyms.
Pass 2 then only looks things up by customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from fedrec.anonymize.hierarchies import build_levels, output_name
from fedrec.anonymize.kanonymity import Recoding, k_anonymize
from fedrec.anonymize.pseudonyms import pseudonymize
from fedrec.anonymize.scan import Census
from fedrec.anonymize.schema import Schema
from fedrec.errors import ConfigError, DataError


@dataclass(frozen=True)
class Settings:
    """The knobs of one anonymization, checked once."""

    k: int = 5
    l: int | None = None
    link_stores: bool = False
    scrub_text: bool = False
    reference_date: date | None = None  # None: the day of the log's latest event
    postcode_prefix: int = 3

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, int):
            raise ConfigError(f"k={self.k!r}: k is a whole number of customers, 2 or more (5 is usual).")
        if self.l is not None and (isinstance(self.l, bool) or not isinstance(self.l, int)):
            raise ConfigError(f"l={self.l!r}: l is a whole number of distinct sensitive values, 2 or more.")
        if not isinstance(self.postcode_prefix, int) or not 1 <= self.postcode_prefix <= 10:
            raise ConfigError(f"postcode_prefix={self.postcode_prefix!r}: keep 1 to 10 leading characters (3 is usual).")
        if self.reference_date is not None and not isinstance(self.reference_date, date):
            raise ConfigError(f"reference_date={self.reference_date!r}: pass a datetime.date "
                              "(or YYYY-MM-DD on the command line).")


@dataclass(frozen=True)
class Release:
    """Per customer of the census: their user index (-1: removed); per user: pseudonym, rank
    in pseudonym order, and published quasi-identifiers (output column -> labels)."""

    user_of: np.ndarray  # (customers,) int64
    pseudonym: pa.Array  # (users,)
    rank: np.ndarray  # (users,)
    by_rank: pa.Array  # (users,) the pseudonyms in rank order
    published: dict[str, tuple[np.ndarray, pa.Array]]  # output column -> (users,) label index, labels
    recoding: Recoding
    reference_date: date
    level_names: dict[str, list[str]]  # quasi-identifier -> names of its levels, finest first


def plan_release(census: Census, schema: Schema, settings: Settings, *, key: bytes, source: str) -> Release:
    kept = np.flatnonzero(~census.removed)
    if kept.size == 0:
        raise DataError(f"{source}: every customer opted out or gave no consent; there is nothing to anonymize.")
    reference = settings.reference_date or census.latest.astype("datetime64[D]").item()
    levels = {
        column: build_levels(schema.hierarchies[column], census.quasi[column].take(pa.array(kept)), column=column,
                             reference_date=reference, prefix_length=settings.postcode_prefix)
        for column in schema.quasi_identifiers
    }
    stores = census.store_id.take(pa.array(kept)) if census.store_id is not None else None
    groups, group_names = (pd.factorize(stores.to_numpy(zero_copy_only=False)) if stores is not None
                           else (np.zeros(kept.size, np.int64), np.array(["all"], dtype=object)))
    sensitive = [pd.factorize(census.sensitive[c].take(pa.array(kept)).to_numpy(zero_copy_only=False),
                              use_na_sentinel=False)[0] for c in schema.sensitive]
    recoding = k_anonymize(list(levels.values()), k=settings.k, groups=groups, group_names=list(group_names),
                           sensitive=sensitive, l=settings.l)
    pseudonym, rank = pseudonymize(census.customer_id.take(pa.array(kept)), stores, key=key)
    user_of = np.full(len(census.removed), -1, dtype=np.int64)
    user_of[kept] = np.arange(kept.size)
    published = {output_name(c, schema.hierarchies[c]): (recoding.label_ids[j].astype(np.int32),
                                                         pa.array(recoding.vocabularies[j], type=pa.string()))
                 for j, c in enumerate(schema.quasi_identifiers)}
    by_rank = pseudonym.take(pa.array(np.argsort(rank)))
    return Release(user_of, pseudonym, rank, by_rank, published, recoding, reference,
                   {c: [lv.name for lv in level_list] for c, level_list in levels.items()})

