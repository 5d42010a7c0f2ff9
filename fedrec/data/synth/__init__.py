"""Synthetic beauty-shop logs: real Amazon Beauty behaviour, invented customers of a store chain.

Why: anonymization, consent and fairness audits need a chain's raw event log with the personal
data such logs really carry, and no public data set has one. The behaviour is real: each
customer replays one embedded Beauty history, items in their order. Everything personal is
invented from seeded Faker pools combined with numpy and Arrow (a Faker call per customer
would take hours at a million customers), and tied to behaviour where later audits need real
differences: skin type, age band and gender follow a customer's main category; customers pick
home stores by it. Every rule and rate is a constant in the modules below, explained in
docs/synthetic-data.md.

The package re-exports the public names so ``from fedrec.data.synth import X`` keeps working;
the modules split along one idea each: ``catalog`` (items' brand, category, name and price
from their attribute ids), ``people`` (stores, regions and customer profiles), ``events``
(the log's rows, ``synthesize`` and ``write_synth``). They import each other in that order
only: events -> people -> catalog.
"""

from fedrec.data.synth.catalog import CATALOG_COLUMNS, CATEGORIES, UNBRANDED, build_catalog
from fedrec.data.synth.events import EVENT_COLUMNS, SynthLog, synthesize, write_synth
from fedrec.data.synth.people import AGE_BANDS, SKIN_GIVEN_CATEGORY, SKIN_TYPES

__all__ = [
    "AGE_BANDS",
    "CATALOG_COLUMNS",
    "CATEGORIES",
    "EVENT_COLUMNS",
    "SKIN_GIVEN_CATEGORY",
    "SKIN_TYPES",
    "UNBRANDED",
    "SynthLog",
    "build_catalog",
    "synthesize",
    "write_synth",
]
