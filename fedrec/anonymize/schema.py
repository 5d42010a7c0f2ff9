"""Which column plays which role, from a declared schema and from common column names.

A schema file is JSON, role -> column list (the four single-column roles also take a plain
string), plus an optional ``"hierarchies"`` object, column -> ``age`` | ``prefix`` | ``value``:

    {"customer_id": "client", "direct_identifiers": ["full_name", "mobile"],
     "quasi_identifiers": ["born", "zip"], "keep": ["basket_size"],
     "hierarchies": {"born": "age"}}

Declared roles win; every other column is recognised by its name (normalised: case, accents
and separators do not matter; ``DEFAULT_NAMES``, and for personal data
fedrec.anonymize.column_names in several languages). A column left with no role is denied by
default: published only when the log shows it is an item or store attribute (``shapes.py``)
and its values show no personal data (``detect.py``); otherwise the run is refused, or, with
``"undeclared": "drop"`` in the schema, the column is dropped. Keys starting with ``_`` are
comments. A column named in the schema but absent from the data is an error: a typo there
would otherwise leave an identifier undeclared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from fedrec.anonymize.column_names import hierarchy_by_name, normalise, personal_role
from fedrec.errors import ConfigError, DataError

SINGLE_ROLES = ("customer_id", "item_id", "timestamp", "store_id")
LIST_ROLES = (
    "direct_identifiers",  # dropped
    "quasi_identifiers",  # generalised until k-anonymous
    "sensitive",  # kept; l-diversity applies to them
    "audit",  # kept as is for fairness audits
    "opt_out",  # true: the customer is removed
    "consent",  # false or empty: the customer is removed
    "free_text",  # dropped, or scrubbed on request
    "pseudonymise",  # each value replaced by a keyed pseudonym (per store unless stores are linked)
    "keep",  # kept as is; the schema's author vouches they identify no one
)
ROLES = SINGLE_ROLES + LIST_ROLES
HIERARCHIES = ("age", "prefix", "value")
UNDECLARED_POLICIES = ("refuse", "drop")  # what happens to an undeclared column that does not pass (shapes.py)

DEFAULT_NAMES: dict[str, tuple[str, ...]] = {
    "customer_id": ("customer_id", "user_id", "client_id"),
    "item_id": ("item_id", "product_id", "sku"),
    "timestamp": ("timestamp", "time", "event_time"),
    "store_id": ("store_id", "shop_id"),
    "sensitive": ("skin_type",),
    "opt_out": ("opt_out", "opted_out"),
    "consent": ("consent",),
    "free_text": ("order_note", "note", "notes", "comment", "comments"),
    # event fields and item attributes a shop's log commonly carries: nothing about the customer
    "keep": ("event_type", "event", "event_name", "action", "interaction", "behavior", "behaviour", "quantity", "qty",
             "rating", "price", "unit_price", "brand", "category", "category_code", "category_id", "currency"),
}


@dataclass(frozen=True)
class Schema:
    """Every column of one table, by role. ``declared`` holds the columns a schema file named;
    ``undeclared`` those no rule recognised (kept only if they show no personal data)."""

    customer_id: str
    item_id: str
    timestamp: str
    store_id: str | None = None
    direct_identifiers: tuple[str, ...] = ()
    quasi_identifiers: tuple[str, ...] = ()
    sensitive: tuple[str, ...] = ()
    audit: tuple[str, ...] = ()
    opt_out: tuple[str, ...] = ()
    consent: tuple[str, ...] = ()
    free_text: tuple[str, ...] = ()
    pseudonymise: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    undeclared: tuple[str, ...] = ()  # no role; published only once shapes.py finds them item, store or constant
    hierarchies: Mapping[str, str] = field(default_factory=dict)
    declared: frozenset[str] = frozenset()
    undeclared_policy: str = "refuse"
    passed: Mapping[str, str] = field(default_factory=dict)  # undeclared column -> why it may be published
    dropped_undeclared: tuple[str, ...] = ()  # undeclared, not passing, and the schema says "undeclared": "drop"

    @property
    def verbatim(self) -> tuple[str, ...]:
        """Columns written to the output unchanged (besides ids, time and store)."""
        return (*self.keep, *self.sensitive, *self.audit, *self.undeclared)

    def roles(self) -> dict[str, list[str]]:
        """Role -> columns, for the report."""
        single = {r: [getattr(self, r)] for r in SINGLE_ROLES if getattr(self, r)}
        lists = (*LIST_ROLES, "undeclared", "dropped_undeclared")
        return {**single, **{r: list(getattr(self, r)) for r in lists if getattr(self, r)}}


def load_schema(path: Path) -> dict:
    """The declarations of a schema file, checked for shape (not yet against a table)."""
    path = Path(path).expanduser()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: schema file not found. Pass the path of a JSON file (role -> column list).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid JSON ({err}). A schema is a JSON object, role -> column list.") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a schema is a JSON object (role -> column list), found {type(document).__name__}.")
    return check_declarations(document, source=str(path))


def check_declarations(document: Mapping, *, source: str = "schema") -> dict:
    """Role names, value types and hierarchy names; returns role -> tuple of columns."""
    declared: dict = {}
    for role, value in document.items():
        if role in ("hierarchies", "undeclared") or role.startswith("_"):  # "_...": comments (a draft's notes)
            continue
        if role not in ROLES:
            raise ConfigError(f"{source}: unknown role {role!r}. Roles: {', '.join(ROLES)}; also hierarchies, "
                              "undeclared.")
        columns = [value] if isinstance(value, str) else value
        if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
            raise ConfigError(f"{source}: role {role!r} takes a list of column names, found {value!r}.")
        if role in SINGLE_ROLES and len(columns) > 1:
            raise ConfigError(f"{source}: role {role!r} takes one column, found {columns}.")
        declared[role] = tuple(columns)
    hierarchies = document.get("hierarchies", {})
    if not isinstance(hierarchies, dict):
        raise ConfigError(f"{source}: 'hierarchies' is an object, column -> one of {', '.join(HIERARCHIES)}.")
    for column, name in hierarchies.items():
        if name not in HIERARCHIES:
            raise ConfigError(f"{source}: hierarchy {name!r} of column {column!r} is unknown; "
                              f"use one of {', '.join(HIERARCHIES)}.")
    declared["hierarchies"] = dict(hierarchies)
    policy = document.get("undeclared", "refuse")
    if policy not in UNDECLARED_POLICIES:
        raise ConfigError(f"{source}: \"undeclared\": {policy!r} is unknown; use \"refuse\" (the default: a column "
                          "with no role that is not an item or store attribute stops the run) or \"drop\".")
    declared["undeclared"] = policy
    return declared


def resolve_schema(columns: list[str], declared: Mapping | None = None, *, source: str = "input") -> Schema:
    """Give every column of a table a role: declared ones first, then by name."""
    declared = check_declarations(declared or {}, source="schema") if declared is not None else {}
    hierarchies = dict(declared.get("hierarchies", {}))
    role_of: dict[str, str] = {}
    for role in ROLES:
        for column in declared.get(role, ()):  # roles only: "hierarchies" and "undeclared" are not column lists
            if column not in columns:
                raise ConfigError(
                    f"schema: column {column!r} (role {role}) is not in {source}; its columns are "
                    f"{', '.join(columns)}. Fix the name in the schema or remove it."
                )
            if column in role_of:
                raise ConfigError(f"schema: column {column!r} is declared twice ({role_of[column]} and {role}); "
                                  "give it one role.")
            role_of[column] = role
    taken_single = {role_of[c] for c in role_of if role_of[c] in SINGLE_ROLES}
    for column in columns:
        if column in role_of:
            continue
        name = normalise(column)
        role = next((r for r, names in DEFAULT_NAMES.items() if name in names), None) or personal_role(column)
        if role in SINGLE_ROLES and role in taken_single:
            role = None  # e.g. both user_id and customer_id: the first one is the customer
        if role is not None:
            role_of[column] = role
            taken_single |= {role} if role in SINGLE_ROLES else set()
    for role in ("customer_id", "item_id", "timestamp"):
        if role not in role_of.values():
            raise DataError(
                f"{source}: no {role} column (looked for {', '.join(DEFAULT_NAMES[role])}); found "
                f"{', '.join(columns)}. Declare it in a schema file: {{\"{role}\": \"COLUMN\"}}."
            )
    by_role = {r: tuple(c for c in columns if role_of.get(c) == r) for r in ROLES}
    for column in hierarchies:
        if column not in by_role["quasi_identifiers"]:
            raise ConfigError(
                f"schema: a hierarchy is given for {column!r}, which is not a quasi-identifier of {source}; "
                "declare it under quasi_identifiers or remove its hierarchy."
            )
    for column in by_role["quasi_identifiers"]:
        hierarchies.setdefault(column, _default_hierarchy(column))
    return Schema(
        **{r: (by_role[r][0] if by_role[r] else None) for r in SINGLE_ROLES},
        **{r: by_role[r] for r in LIST_ROLES},
        undeclared=tuple(c for c in columns if c not in role_of),
        hierarchies=hierarchies,
        declared=frozenset(c for r in ROLES for c in declared.get(r, ())),
        undeclared_policy=declared.get("undeclared", "refuse"),
    )


def _default_hierarchy(column: str) -> str:
    return hierarchy_by_name(column)
