"""What anonymization did to a log, for the people who must sign it off and for tools.

``report.json`` and ``report.md`` in the folder given (a run directory's
``anonymization/``, say), each written atomically. The numbers add up: rows in = rows out
+ rows of opted-out customers; customers in = customers out + customers opted out; the
class-size histogram and every attribute's level counts sum to the users out. The report
also says what k-anonymity leaves uncovered. The key never appears, only its public tag.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedrec.anonymize.keys import key_id
from fedrec.anonymize.release import Release, Settings
from fedrec.anonymize.scan import Census
from fedrec.anonymize.schema import Schema
from fedrec.rundir import write_json, write_text

REPORT_JSON = "report.json"
REPORT_MD = "report.md"

NOT_COVERED = (
    "Purchase sequences identify people on their own: a few items bought on a few days are often unique to one "
    "person, whatever their age band or postcode. k-anonymity covers the quasi-identifier columns only; train "
    "with differential privacy (--dp) to bound what a model reveals about any one customer's history.",
    "Event days are kept: someone who knows when a customer shopped, and what, can find that customer's rows.",
    "Pseudonyms are keyed, not anonymous: whoever holds the key file can recompute them from customer ids. Keep "
    "the key away from the data's recipients.",
)
NO_L_DIVERSITY = ("Sensitive and audit attributes are published as they are and l-diversity was not asked: everyone "
                  "in a class may share one value, which then leaks for all of them.")
SCRUBBED_TEXT = "Scrubbed free text loses e-mails, phone, card and IBAN numbers and IP addresses, not names."
LINKED = "Stores are linked: one pseudonym per person across stores, so which stores someone visits is visible."


@dataclass(frozen=True)
class AnonymizationReport:
    source: str
    output: str | None
    settings: dict[str, Any]  # k, l, link_stores, pseudonyms, scrub_text, postcode_prefix, reference_date, key_id
    rows_in: int
    rows_out: int
    rows_opted_out: int
    customers_in: int  # distinct customer ids
    customers_out: int
    customers_opted_out: int
    users_out: int  # pseudonymous users (per store, unless stores are linked)
    columns: dict[str, list[str]]  # role -> columns
    dropped: list[str]
    generalised: dict[str, dict[str, Any]]  # column -> output column, how it was identified, hierarchy, users per level
    kept: list[str]
    pseudonymised: list[str]
    undeclared_published: dict[str, str]  # column with no declared role -> why it may be published
    free_text: dict[str, Any]
    k_achieved: int
    l_achieved: int | None
    classes: dict[str, Any]  # count, min, median, max, histogram of size bins, classes_by_size
    suppressed_users: int
    detections: dict[str, dict[str, int]]  # column -> entity -> sampled values holding one
    sampled_values: dict[str, int]  # column -> values sampled
    not_covered: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_report(source: str, output: str | None, schema: Schema, census: Census, release: Release,
                 settings: Settings, detections: tuple[dict, dict], *, key: bytes, seconds: float) -> AnonymizationReport:
    """The report of one anonymization, from what each step kept."""
    found, sampled = detections
    removed = census.removed
    recoding = release.recoding
    generalised = {}
    for j, column in enumerate(schema.quasi_identifiers):
        counts = np.bincount(recoding.levels[:, j], minlength=len(release.level_names[column]))
        generalised[column] = {
            "output": list(release.published)[j], "hierarchy": schema.hierarchies[column],
            "identified": ("declared in the schema" if column in schema.declared else "by its name")
                          + "".join(f"; its values read as {entity} ({n} of {sampled.get(column, 0)} sampled)"
                                    for entity, n in found.get(column, {}).items()),
            "levels": {name: int(n) for name, n in zip(release.level_names[column], counts)},
        }
    people_in = int(census.person.max()) + 1  # person codes are 0..n-1
    people_out = int(np.count_nonzero(np.bincount(census.person[~removed], minlength=people_in)))
    return AnonymizationReport(
        source=source,
        output=output,
        settings={"k": settings.k, "l": settings.l, "link_stores": settings.link_stores,
                  "pseudonyms": ("per customer (no store column)" if schema.store_id is None
                                 else "linked across stores" if settings.link_stores else "per store"),
                  "scrub_text": settings.scrub_text, "postcode_prefix": settings.postcode_prefix,
                  "reference_date": release.reference_date.isoformat(),
                  "reference_date_rule": "given" if settings.reference_date else "day of the latest event",
                  "key_id": key_id(key)},
        rows_in=census.rows,
        rows_out=int(census.customer_rows[~removed].sum()),
        rows_opted_out=int(census.customer_rows[removed].sum()),
        customers_in=int(people_in),
        customers_out=int(people_out),
        customers_opted_out=int(people_in - people_out),
        users_out=len(release.pseudonym),
        columns=schema.roles(),
        dropped=[*schema.direct_identifiers, *(() if settings.scrub_text else schema.free_text), schema.customer_id,
                 *schema.opt_out, *schema.consent, *schema.dropped_undeclared],
        generalised=generalised,
        kept=list(schema.verbatim),
        pseudonymised=list(schema.pseudonymise),
        undeclared_published=dict(schema.passed),
        free_text={"columns": list(schema.free_text), "action": "scrubbed" if settings.scrub_text else "dropped"},
        k_achieved=recoding.k,
        l_achieved=recoding.l,
        classes=class_summary(recoding.class_sizes, k=settings.k),
        suppressed_users=int(recoding.suppressed.sum()),
        detections=found,
        sampled_values=sampled,
        not_covered=not_covered(l=settings.l, scrubbed=settings.scrub_text,
                                linked=settings.link_stores and schema.store_id is not None),
        seconds=round(seconds, 3),
    )


def class_summary(sizes: np.ndarray, *, k: int) -> dict[str, Any]:
    """Classes and users by class size, in bins from k upwards, and the exact count of classes per size."""
    edges = [k, 2 * k, 5 * k, 10 * k]
    bins = {}
    for low, high in zip(edges, [*edges[1:], None]):
        inside = sizes >= low if high is None else (sizes >= low) & (sizes < high)
        label = f"{low}+" if high is None else f"{low}-{high - 1}"
        bins[label] = {"classes": int(inside.sum()), "users": int(sizes[inside].sum())}
    values, counts = np.unique(sizes, return_counts=True)
    return {"count": int(sizes.size), "min": int(sizes.min()), "median": float(np.median(sizes)),
            "max": int(sizes.max()), "histogram": bins,
            # every class size and how many classes have it: re-identification risk needs the sizes themselves
            "classes_by_size": {str(int(size)): int(count) for size, count in zip(values, counts)}}


def not_covered(*, l: int | None, scrubbed: bool, linked: bool) -> list[str]:
    return [*NOT_COVERED, *([NO_L_DIVERSITY] if l is None else []), *([SCRUBBED_TEXT] if scrubbed else []),
            *([LINKED] if linked else [])]


def write_report(report: AnonymizationReport, folder: Path) -> Path:
    """report.json and report.md in ``folder``; returns the JSON's path."""
    folder = Path(folder)
    write_json(folder / REPORT_JSON, report.to_dict())
    write_text(folder / REPORT_MD, render_markdown(report))
    return folder / REPORT_JSON


def render_markdown(report: AnonymizationReport) -> str:
    s = report.settings
    lines = [
        "# Anonymization report",
        "",
        f"`{report.source}` -> `{report.output or '(in memory)'}`, k = {s['k']}"
        + (f", l = {s['l']}" if s.get("l") else "") + f", key `{s['key_id']}`, "
        + f"pseudonyms {s['pseudonyms']}"
        + f", ages as of {s['reference_date']}.",
        "",
        "| | in | out | opted out |",
        "|---|---|---|---|",
        f"| rows | {report.rows_in} | {report.rows_out} | {report.rows_opted_out} |",
        f"| customers | {report.customers_in} | {report.customers_out} | {report.customers_opted_out} |",
        "",
        f"{report.users_out} pseudonymous users out. k achieved: **{report.k_achieved}**"
        + (f", l achieved: **{report.l_achieved}**" if report.l_achieved is not None else "")
        + f"; {report.suppressed_users} users have every quasi-identifier suppressed (their interactions stay).",
        "",
        "## Columns",
        "",
        f"- dropped: {_names(report.dropped)}",
        f"- kept as they are: {_names(report.kept)}",
        *[f"  - `{c}`: no declared role; {why}" for c, why in report.undeclared_published.items()],
        f"- pseudonymised: {_names(report.pseudonymised)}",
        f"- free text ({_names(report.free_text['columns'])}): {report.free_text['action']}",
        "- generalised:",
    ]
    for column, info in report.generalised.items():
        levels = ", ".join(f"{name}: {count}" for name, count in info["levels"].items())
        lines.append(f"  - `{column}` -> `{info['output']}` ({info.get('identified', 'by its name')}; {info['hierarchy']}; "
                     f"users per level: {levels})")
    lines += ["", "## Equivalence classes", "",
              f"{report.classes['count']} classes, sizes {report.classes['min']} to {report.classes['max']} "
              f"(median {report.classes['median']:g}).", "", "| class size | classes | users |", "|---|---|---|"]
    lines += [f"| {label} | {b['classes']} | {b['users']} |" for label, b in report.classes["histogram"].items()]
    lines += ["", "## Personal data found in samples", ""]
    if report.detections:
        lines += [f"- `{c}`: " + ", ".join(f"{e} in {n} of {report.sampled_values.get(c, 0)}" for e, n in hits.items())
                  for c, hits in report.detections.items()]
    else:
        lines.append(f"None in {len(report.sampled_values)} column(s) sampled.")
    lines += ["", "## What this does not cover", "", *[f"- {text}" for text in report.not_covered], ""]
    return "\n".join(lines)


def _names(columns: list[str]) -> str:
    return ", ".join(f"`{c}`" for c in columns) if columns else "none"
