"""Anonymize a store's raw event log: the front of the package.

In order: opted-out customers out; direct identifiers and free text dropped (free text
scrubbed on request); every column that would be written as it is checked for personal
data on a sample, and one the schema did not declare published only if the log shows it is an
item or store attribute (deny by default); quasi-identifiers generalised until every class has k
members; customer ids replaced by keyed pseudonyms; times cut to the day; the rows written
grouped by user, in each user's time order, to a file that appears whole or not at all.
The input is only ever read.
"""

from __future__ import annotations

import logging
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Mapping

import pandas as pd
import pyarrow as pa

from fedrec.anonymize.content import content_hits
from fedrec.anonymize.detect import SAMPLE_SIZE, analyze_samples, scrub
from fedrec.anonymize.keys import KEY_BYTES
from fedrec.anonymize.release import Settings, plan_release
from fedrec.anonymize.report import AnonymizationReport, build_report, write_report
from fedrec.anonymize.scan import sample_columns, scan
from fedrec.anonymize.schema import Schema, load_schema, resolve_schema
from fedrec.anonymize.shapes import column_shapes
from fedrec.anonymize.undeclared import draft, judge, refusal, settle
from fedrec.anonymize.tables import CSV_SUFFIXES, PARQUET_SUFFIXES, Table, frame_table, open_table
from fedrec.anonymize.writer import TableSink, output_columns, plain, release_batches, write_ordered
from fedrec.data.readers import CATALOG_SUFFIXES
from fedrec.errors import ConfigError, DataError
from fedrec.rundir import atomic_write

log = logging.getLogger("fedrec.anonymize")


def anonymize_file(src: Path, dst: Path, *, key: bytes, k: int = 5, schema: Path | Mapping | None = None,
                   link_stores: bool = False, l: int | None = None, scrub_text: bool = False,
                   reference_date: date | None = None, postcode_prefix: int = 3,
                   report_dir: Path | None = None, log_level: int = logging.INFO) -> AnonymizationReport:
    """Anonymize the log ``src`` (CSV or Parquet) into ``dst`` (CSV or Parquet, by suffix),
    readable by ``fedrec.data.load_dataset``. ``schema``: a JSON file or its dict (role ->
    columns). With ``report_dir``, report.json and report.md are written there too.
    ``log_level``: of its progress lines (a caller that says one line per file passes DEBUG)."""
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        raise ConfigError(f"{dst}: the output must end in .csv, .parquet or .pq.")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise ConfigError(f"{dst}: the output would overwrite the input; write it to another path.")
    settings = _settings(k, l, link_stores, scrub_text, reference_date, postcode_prefix)
    table = open_table(src)
    schema_, census, release, detections = _prepare(table, schema, settings, key, log_level)
    sink_rows = int(census.customer_rows[~census.removed].sum())
    as_parquet = dst.suffix.lower() in PARQUET_SUFFIXES
    numeric = dict(census.numeric) if as_parquet else {}

    def write(tmp: Path) -> None:
        sink = TableSink(tmp, csv=not as_parquet)
        try:
            write_ordered(release_batches(table, census, release, schema_, scrub_text=scrub_text, numeric=numeric,
                                          key=key, link_stores=settings.link_stores),
                          rows=sink_rows, release=release, write=sink.write, scratch=dst.parent)
        finally:
            sink.close()

    copy_catalog(src, dst)  # first: a log never appears without the catalog it came with
    atomic_write(dst, write)
    report = build_report(table.name, str(dst), schema_, census, release, settings, detections, key=key,
                          seconds=time.perf_counter() - started)
    if report_dir is not None:
        write_report(report, Path(report_dir))
    log.log(log_level, "anonymize: %s -> %s: %d rows, %d pseudonymous users (%.0f s)", src, dst, report.rows_out,
            report.users_out, report.seconds)
    return report


def copy_catalog(src: Path, dst: Path) -> Path | None:
    """The item catalog beside ``src`` (``<stem>_catalog.csv``), copied beside ``dst`` as it
    is: it describes products (names, brands, prices), no customer, and training and the
    release read product names from it."""
    for suffix in CATALOG_SUFFIXES:
        catalog = src.with_name(src.stem + suffix)
        if catalog.exists():
            copy = dst.with_name(dst.stem + suffix)
            atomic_write(copy, lambda tmp: tmp.write_bytes(catalog.read_bytes()))
            log.info("anonymize: item catalog %s -> %s (items only, copied as it is)", catalog, copy)
            return copy
    return None


def anonymize_frame(frame: pd.DataFrame, *, key: bytes, k: int = 5, schema: Path | Mapping | None = None,
                    link_stores: bool = False, l: int | None = None, scrub_text: bool = False,
                    reference_date: date | None = None,
                    postcode_prefix: int = 3) -> tuple[pd.DataFrame, AnonymizationReport]:
    """The same on a DataFrame held in memory: the anonymized frame and the report."""
    started = time.perf_counter()
    settings = _settings(k, l, link_stores, scrub_text, reference_date, postcode_prefix)
    table = frame_table(frame)
    schema_, census, release, detections = _prepare(table, schema, settings, key)
    parts: list[pa.Table] = []
    write_ordered(release_batches(table, census, release, schema_, scrub_text=scrub_text, numeric={}, key=key,
                                  link_stores=settings.link_stores),
                  rows=int(census.customer_rows[~census.removed].sum()), release=release, write=parts.append,
                  scratch=Path(tempfile.gettempdir()))
    out = plain(pa.concat_tables(parts)).to_pandas()
    return out, build_report(table.name, None, schema_, census, release, settings, detections, key=key,
                             seconds=time.perf_counter() - started)


def _settings(k, l, link_stores, scrub_text, reference_date, postcode_prefix) -> Settings:
    if isinstance(reference_date, str):
        try:
            reference_date = date.fromisoformat(reference_date)
        except ValueError:
            raise ConfigError(f"reference date {reference_date!r} is not YYYY-MM-DD.") from None
    return Settings(k=k, l=l, link_stores=bool(link_stores), scrub_text=bool(scrub_text),
                    reference_date=reference_date, postcode_prefix=postcode_prefix)


def _prepare(table: Table, schema, settings: Settings, key: bytes, level: int = logging.INFO):
    """Roles, the personal-data check, pass 1 and the release plan; progress lines at ``level``."""
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ConfigError(f"the key must be the {KEY_BYTES} bytes of a key file; load it with load_key(KEYFILE).")
    declared = load_schema(schema) if isinstance(schema, (str, Path)) else schema
    schema_ = resolve_schema(table.columns, declared, source=table.name)
    output_columns(schema_, scrub_text=settings.scrub_text)
    schema_, detections, sampled = _check_columns(table, schema_, settings)
    if schema_.passed:
        log.log(level, "anonymize: published with no declared role: %s",
                "; ".join(f"{c} ({why})" for c, why in schema_.passed.items()))
    if schema_.dropped_undeclared:
        log.log(level, "anonymize: dropped (no declared role; the schema says \"undeclared\": \"drop\"): %s",
                ", ".join(schema_.dropped_undeclared))
    started = time.perf_counter()
    census = scan(table, schema_, link_stores=settings.link_stores)
    removed = int(census.removed.sum())
    log.log(level, "anonymize: pass 1: %d rows, %d customers, %d of them opted out (%.1f s)", census.rows,
            len(census.removed), removed, time.perf_counter() - started)
    started = time.perf_counter()
    release = plan_release(census, schema_, settings, key=key, source=table.name)
    log.log(level, "anonymize: k=%d reached: smallest class %d, %d users suppressed; pseudonyms drawn (%.1f s)",
            settings.k, release.recoding.k, int(release.recoding.suppressed.sum()), time.perf_counter() - started)
    return schema_, census, release, (detections, sampled)


def _check_columns(table: Table, schema: Schema, settings: Settings) -> tuple[Schema, dict, dict]:
    """Deny by default: every column the schema did not declare is judged (undeclared.py) and
    the run refused if one may not be published, unless the schema drops such columns; scrubbed
    text that still shows personal data is refused too."""
    verdicts, samples, detections = _judge(table, schema, settings)
    if any(not v.passes for v in verdicts) and schema.undeclared_policy != "drop":
        raise DataError(refusal(table.name, verdicts))
    if settings.scrub_text:
        left = analyze_samples({c: scrub(pa.array(samples[c], pa.string())).to_pylist() for c in schema.free_text})
        if left:
            column, hits = next(iter(left.items()))
            raise DataError(f"{table.name}: scrubbing column {column!r} still leaves {hits}; drop the column instead "
                            "(the default) or clean it before anonymizing.")
    return settle(schema, verdicts), detections, {c: len(v) for c, v in samples.items()}


def _judge(table: Table, schema: Schema, settings: Settings):
    scanned = [schema.item_id, *([schema.store_id] if schema.store_id else []), *schema.verbatim,
               *schema.quasi_identifiers, *(schema.free_text if settings.scrub_text else ())]
    samples = sample_columns(table, schema, scanned, size=SAMPLE_SIZE)
    quasi = set(schema.quasi_identifiers)  # checked by content only, for the report: generalised whatever they hold
    detections = {**analyze_samples({c: v for c, v in samples.items() if c not in quasi}, by_content=set(schema.verbatim)),
                  **{c: hits for c in quasi if (hits := content_hits(samples[c]))}}
    shapes = column_shapes(table, schema.undeclared, customer=schema.customer_id, item=schema.item_id,
                           store=schema.store_id)
    return judge(schema, detections, {c: len(v) for c, v in samples.items()}, shapes), samples, detections


def draft_schema(src: Path | pd.DataFrame, *, schema: Path | Mapping | None = None) -> dict:
    """A schema declaring every column of the log ``src`` (a file or a DataFrame) as guessed,
    for the shop to review: ``fedrec anonymize IN --write-schema FILE``. Reads the log; writes nothing."""
    table = frame_table(src) if isinstance(src, pd.DataFrame) else open_table(Path(src))
    declared = load_schema(schema) if isinstance(schema, (str, Path)) else schema
    schema_ = resolve_schema(table.columns, declared, source=table.name)
    verdicts, _, _ = _judge(table, schema_, Settings())
    return draft(schema_, verdicts)
