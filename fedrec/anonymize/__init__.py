"""Anonymization of stores' raw event logs before anything trains on them (issue 15).

A store's log holds names, e-mails, birth dates and postcodes beside what was bought; the
recommenders need only who (a stable pseudonym), what and when. ``anonymize_file`` keeps
that and publishes the rest only as k-anonymous generalisations, with a report of every
step. Modules, one idea each:

    keys         the deployment secret (make_key, load_key)
    schema       column roles, declared or recognised by name
    column_names personal columns by name, in nine languages
    content      personal data by content: person names, birth dates, postcodes, addresses
    detect       personal data in columns nobody declared (presidio), free-text scrubbing
    shapes       an undeclared column's kind: item or store attribute, per customer, per event
    undeclared   deny by default: the verdict on each undeclared column, the refusal, the draft schema
    tables       CSV / Parquet / DataFrame as batches, times and numbers from text
    scan         pass 1: customers, their quasi-identifiers, opt-outs
    hierarchies  generalisation ladders: age bands, postcode prefixes, values, "*"
    kanonymity   local recoding to k-anonymity (and l-diversity)
    pseudonyms   HMAC-SHA256 pseudonyms, per store or linked
    release      between the passes: what each customer publishes
    writer       pass 2: rows out, grouped by user, in time order, atomically
    report       report.json / report.md
    pipeline     anonymize_file, anonymize_frame

See docs/anonymization.md.
"""

from fedrec.anonymize.keys import KEY_BYTES, key_id, load_key, make_key
from fedrec.anonymize.pipeline import anonymize_file, anonymize_frame, draft_schema
from fedrec.anonymize.report import AnonymizationReport, write_report
from fedrec.anonymize.schema import ROLES, Schema, load_schema, resolve_schema

__all__ = [
    "KEY_BYTES", "ROLES", "AnonymizationReport", "Schema", "anonymize_file", "anonymize_frame", "draft_schema",
    "key_id", "load_key", "load_schema", "make_key", "resolve_schema", "write_report",
]
