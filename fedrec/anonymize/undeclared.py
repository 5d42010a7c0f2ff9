"""Which columns the schema did not declare may be published, and what to tell the shop about
the others: the refusal that names each with the schema lines that would declare it, and the
draft schema of ``fedrec anonymize --write-schema``.

A column is judged when it would be written as it is and the schema file did not declare it:
recognised by name as an event field or sensitive attribute, it passes unless its sample
shows personal data; with no role at all it must also be an item or store attribute, or one
value throughout (fedrec.anonymize.shapes). The guessed role of a refused column follows what
was found: a name, street, e-mail, phone, card, IBAN or IP is dropped; a birth date or
postcode is generalised with its hierarchy; another per-customer attribute is generalised as a
quasi-identifier; an event field whose values are nearly all different (an order or session
id) is pseudonymised; another event field is kept for the shop to confirm.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Mapping

from fedrec.anonymize.content import BIRTH_DATE, POSTCODE
from fedrec.anonymize.schema import SINGLE_ROLES, Schema
from fedrec.anonymize.shapes import CUSTOMER, EVENT, ColumnShape

ID_LIKE = 0.5  # distinct values per filled row above which an event field is taken for an id
HIERARCHY_BY_ENTITY = {BIRTH_DATE: "age", POSTCODE: "prefix"}
ROLE_CHOICES = (
    ("direct_identifiers", "drop it"),
    ("pseudonymise", "replace each value by a keyed pseudonym"),
    ("quasi_identifiers", "generalise it until every class has k customers"),
    ("sensitive", "keep it as a sensitive attribute (l-diversity applies with --l)"),
    ("keep", "keep it as it is: you vouch it identifies no one"),
)


@dataclass(frozen=True)
class Verdict:
    """One judged column: whether it may be published, why, and the role to offer if not."""

    column: str
    passes: bool
    why: str
    hits: Mapping[str, int]  # personal-data entity -> sampled values holding one
    sampled: int
    shape: ColumnShape | None  # None: recognised by name, its dependence on the keys not measured
    role: str  # the guessed role (for a passing undeclared column: "keep")
    hierarchy: str | None = None


def judge(schema: Schema, detections: Mapping[str, Mapping[str, int]], sampled: Mapping[str, int],
          shapes: Mapping[str, ColumnShape]) -> list[Verdict]:
    """A verdict for every column that would be published as it is without the schema's word."""
    verdicts = []
    for column in schema.verbatim:
        if column in schema.declared:
            continue
        hits, shape = dict(detections.get(column, {})), shapes.get(column)
        if hits:
            found = ", ".join(f"{entity} in {n} of {sampled.get(column, 0)} sampled values" for entity, n in hits.items())
            why = f"looks like personal data ({found})"
            entity = next((e for e in hits if e in HIERARCHY_BY_ENTITY), None)
            role, hierarchy = (("quasi_identifiers", HIERARCHY_BY_ENTITY[entity]) if entity
                               else ("direct_identifiers", None))
            verdicts.append(Verdict(column, False, why, hits, sampled.get(column, 0), shape, role, hierarchy))
        elif shape is None or shape.passes:
            why = "recognised by its name" if shape is None else shape.why
            verdicts.append(Verdict(column, True, why, {}, sampled.get(column, 0), shape, "keep"))
        else:
            role = ("quasi_identifiers" if shape.kind == CUSTOMER
                    else "pseudonymise" if shape.kind == EVENT and shape.unique_share > ID_LIKE else "keep")
            verdicts.append(Verdict(column, False, shape.why, {}, sampled.get(column, 0), shape, role,
                                    "value" if role == "quasi_identifiers" else None))
    return verdicts


def settle(schema: Schema, verdicts: list[Verdict]) -> Schema:
    """The schema with the judged columns settled: passing ones published (and why), the others
    dropped; only called when nothing is refused or the schema says ``"undeclared": "drop"``."""
    refused = {v.column for v in verdicts if not v.passes}
    return dataclasses.replace(
        schema,
        keep=tuple(c for c in schema.keep if c not in refused),
        sensitive=tuple(c for c in schema.sensitive if c not in refused),
        audit=tuple(c for c in schema.audit if c not in refused),
        undeclared=tuple(c for c in schema.undeclared if c not in refused),
        passed={v.column: v.why for v in verdicts if v.passes},
        dropped_undeclared=tuple(v.column for v in verdicts if not v.passes),
    )


def refusal(source: str, verdicts: list[Verdict]) -> str:
    """The message of a refused log: every refused column, why, its values' shapes, and the
    schema that would declare them all as guessed."""
    refused = [v for v in verdicts if not v.passes]
    lines = [f"{source}: {len(refused)} column(s) have no declared role and are not item or store attributes; "
             "nothing was written. Each needs a role in a schema file (--schema FILE):"]
    for v in refused:
        shapes = f"; values shaped like {', '.join(repr(s) for s in v.shape.shapes)}" if v.shape and v.shape.shapes else ""
        lines.append(f"  - {v.column!r}: {v.why}{shapes}; guessed role: {v.role}")
    lines.append("Roles: " + "; ".join(f"{role}: {what}" for role, what in ROLE_CHOICES) + ".")
    lines.append("These lines declare them as guessed (review each):")
    lines.append("  " + json.dumps(_guessed(refused)))
    lines.append('Or write a draft of every column\'s role with --write-schema FILE, review it and pass it with '
                 '--schema FILE; "undeclared": "drop" in a schema drops every such column instead.')
    return "\n".join(lines)


def draft(schema: Schema, verdicts: list[Verdict]) -> dict:
    """A schema file declaring every column of the log: the roles found, and for each judged
    column its guess, with the reason under ``_why`` (keys starting with ``_`` are comments)."""
    by_role: dict[str, list[str]] = {}
    for role in SINGLE_ROLES:
        if getattr(schema, role):
            by_role[role] = getattr(schema, role)
    judged = {v.column: v for v in verdicts}
    hierarchies = dict(schema.hierarchies)
    for role in ("direct_identifiers", "quasi_identifiers", "sensitive", "audit", "opt_out", "consent", "free_text",
                 "pseudonymise", "keep"):
        columns = [c for c in getattr(schema, role) if c not in judged]
        by_role.setdefault(role, []).extend(columns)
    for v in verdicts:
        by_role.setdefault(v.role, []).append(v.column)
        if v.hierarchy:
            hierarchies[v.column] = v.hierarchy
    document = {"_about": "Draft by fedrec anonymize --write-schema: every column's role as guessed. Review each "
                          "(docs/anonymization.md, 'Column roles'), then pass this file with --schema."}
    document.update({role: columns for role, columns in by_role.items() if columns})
    quasi = set(by_role.get("quasi_identifiers", ()))
    document["hierarchies"] = {c: h for c, h in hierarchies.items() if c in quasi}
    document["_why"] = {v.column: v.why for v in verdicts}
    return document


def _guessed(refused: list[Verdict]) -> dict:
    document: dict = {}
    for v in refused:
        document.setdefault(v.role, []).append(v.column)
    hierarchies = {v.column: v.hierarchy for v in refused if v.hierarchy and v.hierarchy != "value"}
    if hierarchies:
        document["hierarchies"] = hierarchies
    return document
