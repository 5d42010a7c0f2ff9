"""The labels a federated audit groups customers by when its sums are summed securely.

Under a secure or DP mode a store's audit sums reach the server only inside a SecAgg+ sum, so
every store lays them out alike, and the layout may not depend on its customers: a label only
one store's customers hold would tell the server they hold it. So each grouping's labels come
from here, fixed before any store answers, never from the data: activity's two, the
federation's store names (a store's customers carry its name), and every value fedrec's own
profile columns can take (fedrec synth's tables, the anonymizer's age bands, its "*"). A
customer whose value the vocabulary does not list counts under OTHER; a column whose values
cannot be listed in advance (city, postcode prefix) is not audited under such a mode, and
the audit names it among the skipped.
"""

from __future__ import annotations

from typing import Sequence

from fedrec.anonymize.hierarchies import SUPPRESSED, age_band_labels
from fedrec.audit.groupings import ACTIVITY_LABELS, MISSING, OTHER
from fedrec.data.synth.people import GENDERS, REGIONS, SKIN_TYPES
from fedrec.release.audit_run import ACTIVITY

STORE = "store"
PROFILE_VALUES: dict[str, tuple[str, ...]] = {  # the profile columns fedrec synth writes, as anonymized
    "age_band": age_band_labels(), "gender": GENDERS, "skin_type": SKIN_TYPES, "region": REGIONS,
}


def fixed_vocabularies(store_names: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
    """{grouping: labels} of every grouping a secure audit reports; ``store_names``: the stores
    asked (no store grouping without them). Each but activity holds "*", MISSING and OTHER, and
    is sorted as a central audit's vocabulary is, so groups are reported in the same order."""
    tail = (SUPPRESSED, MISSING, OTHER)
    found = {column: tuple(sorted({*values, *tail})) for column, values in PROFILE_VALUES.items()}
    found[ACTIVITY] = ACTIVITY_LABELS
    if store_names:
        found[STORE] = tuple(sorted({*map(str, store_names), *tail}))
    return found
