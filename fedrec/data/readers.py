"""Readers for the formats users bring: sequence text and interaction logs (CSV/Parquet).

Every reader checks its input and raises :class:`DataError` naming the file, the line or
column, and the fix. Nothing is dropped silently: what is dropped is counted, logged and
kept in ``Interactions.dropped``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from fedrec.data.catalog_attributes import with_attribute_ids
from fedrec.data.interactions import Interactions, build_interactions
from fedrec.errors import DataError

log = logging.getLogger("fedrec.data")

# Column names that say a log still holds people (its ids and contacts), not pseudonyms: a
# missing user_id beside them points to fedrec anonymize. A hint only; anonymize decides.
RAW_LOG_HINTS = frozenset({"customer_id", "customer", "email", "e_mail", "name", "full_name", "phone", "birth_date",
                           "date_of_birth", "postcode", "zip", "street_address", "address", "loyalty_id"})
REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp")
OPTIONAL_COLUMNS = ("store_id", "rating")
SEQUENCE_SUFFIXES = (".txt", ".seq", ".tsv")
TABULAR_SUFFIXES = (".csv", ".parquet", ".pq")


def read_sequence_file(path: Path, *, min_interactions: int = 3, short_users: str = "drop") -> Interactions:
    """``user item item ...`` per line, items oldest first; integer ids (S3-Rec format).

    A sidecar ``<stem>_item2attributes.json`` (item id -> attribute ids) is read if present.
    """
    path = Path(path)
    lines = _read_text(path)
    users: list[int] = []
    sequences: list[list[int]] = []
    first_line_of: dict[int, int] = {}
    for number, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            ids = [int(t) for t in tokens]
        except ValueError:
            bad = next(t for t in tokens if not _is_int(t))
            raise DataError(
                f"{path}:{number}: {bad!r} is not an integer id. The sequence format is "
                "'user_id item_id item_id ...' with integer ids, items oldest first; "
                "for string ids use a CSV/Parquet log with user_id,item_id,timestamp columns."
            ) from None
        user = ids[0]
        if user in first_line_of:
            raise DataError(
                f"{path}:{number}: user {user} already has a line ({first_line_of[user]}). "
                "Put each user's whole history on one line, in time order."
            )
        first_line_of[user] = number
        users.append(user)
        sequences.append(ids[1:])
    if not users:
        raise DataError(f"{path}: no user lines found; expected 'user_id item_id item_id ...'.")
    users, sequences, dropped = _filter_short_users(
        path, users, sequences, min_interactions, short_users, lambda i: f"line {first_line_of[users[i]]}"
    )
    return build_interactions(
        users,
        sequences,
        source=str(path),
        item_attributes=_read_item_attributes_sidecar(path),
        dropped=dropped,
    )


def read_interaction_log(path: Path, *, min_interactions: int = 3, short_users: str = "drop") -> Interactions:
    """A table with ``user_id,item_id,timestamp`` (+ optional ``store_id``, ``rating`` and
    attribute columns). Each user's rows are ordered by timestamp (stable for ties)."""
    path = Path(path)
    frame = _read_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        personal = [str(c) for c in frame.columns if str(c).lower() in RAW_LOG_HINTS]
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, frame.columns))}. "
            f"An interaction log needs {', '.join(REQUIRED_COLUMNS)} (optional: {', '.join(OPTIONAL_COLUMNS)})."
            + (f" It looks like a raw shop log ({', '.join(personal)}): anonymize it first, with a key from "
               f"`fedrec keys --out shop.key`: `fedrec anonymize {path} anonymized.csv --key shop.key` (then "
               "train on anonymized.csv), or `fedrec simulate --data LOG --anonymize-key shop.key`." if personal else "")
        )
    if frame.empty:
        raise DataError(f"{path}: the table has a header but no rows.")
    row_offset = 2 if path.suffix.lower() == ".csv" else 0  # header + 1-based lines in CSV
    row_label = "line" if row_offset else "row"
    for column in [*REQUIRED_COLUMNS, *[c for c in OPTIONAL_COLUMNS if c in frame.columns]]:
        empty = frame[column].isna()
        if empty.any():
            rows = (np.flatnonzero(empty.to_numpy())[:5] + row_offset).tolist()
            raise DataError(
                f"{path}: column {column!r} has {int(empty.sum())} empty/NaN value(s), first at "
                f"{row_label}(s) {rows}. Fill or remove those rows; fedrec does not guess ids or times."
            )
    frame = frame.assign(timestamp=_parse_timestamps(path, frame["timestamp"], row_offset, row_label))
    if "rating" in frame.columns and not pd.api.types.is_numeric_dtype(frame["rating"]):
        raise DataError(f"{path}: column 'rating' must be numeric; found {frame['rating'].dtype}.")
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable")
    grouped = frame.groupby("user_id", sort=False)
    users = list(grouped.groups.keys())
    sequences = [g.to_list() for _, g in grouped["item_id"]]
    ratings = [g.to_numpy(np.float32) for _, g in grouped["rating"]] if "rating" in frame.columns else None
    stores = _store_per_user(path, grouped) if "store_id" in frame.columns else None
    user_attrs, item_attrs, ignored = _split_attribute_columns(frame)
    item_attrs = with_attribute_ids(_with_catalog(item_attrs, _read_catalog_sidecar(path, frame["item_id"])))
    keep_users, sequences, dropped = _filter_short_users(
        path, users, sequences, min_interactions, short_users, lambda i: f"user_id {users[i]!r}"
    )
    kept = set(keep_users)
    if ratings is not None:
        ratings = [r for u, r in zip(users, ratings) if u in kept]
    if stores is not None:
        stores = [s for u, s in zip(users, stores) if u in kept]
    if ignored:
        dropped["columns_ignored"] = ignored
    return build_interactions(
        keep_users,
        sequences,
        source=str(path),
        stores=stores,
        ratings=ratings,
        user_attributes=user_attrs,
        item_attributes=item_attrs,
        dropped=dropped,
    )


def _read_text(path: Path) -> list[str]:
    if not path.exists():
        raise DataError(f"{path}: file not found. Pass --data beauty or a path to your data file.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty.")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}); is this a binary file?") from None


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: file not found. Pass --data beauty or a path to your data file.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty.")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        kind = "CSV" if path.suffix.lower() == ".csv" else "Parquet"
        raise DataError(f"{path}: could not be read as {kind} ({err}).") from None


def _parse_timestamps(path: Path, column: pd.Series, row_offset: int, row_label: str) -> pd.Series:
    """Numbers stay numbers (epoch seconds or sequence numbers); strings must parse as dates.

    ISO 8601 is parsed element by element, so date-only and date-time values can mix; values
    that are not ISO 8601 fall back to one format inferred for the column.
    """
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        return column
    parsed = pd.to_datetime(column, errors="coerce", utc=True, format="ISO8601")
    if parsed.isna().any():
        parsed = parsed.fillna(pd.to_datetime(column, errors="coerce", utc=True))
    bad = parsed.isna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: timestamp {column.iloc[first]!r} ({row_label} {first + row_offset}) is neither "
            "a number nor a date. "
            "Use epoch seconds or ISO 8601 (2024-05-01T12:00:00)."
        )
    return parsed


def _store_per_user(path: Path, grouped) -> list:
    """A user's history lives in one store: take the store of most of their rows."""
    per_user = grouped["store_id"].agg(lambda s: s.mode().iloc[0])
    spanning = int((grouped["store_id"].nunique() > 1).sum())
    if spanning:
        log.warning(
            "%s: %d user(s) appear in several stores; each is assigned to the store of most "
            "of their rows. Use a per-store user_id if they are different people.", path, spanning
        )
    return per_user.to_list()


def _split_attribute_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame | None, list[str]]:
    """Extra columns fixed per user are user attributes, fixed per item are item attributes."""
    extra = [c for c in frame.columns if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
    user_cols = [c for c in extra if (frame.groupby("user_id")[c].nunique(dropna=False) <= 1).all()]
    rest = [c for c in extra if c not in user_cols]
    item_cols = [c for c in rest if (frame.groupby("item_id")[c].nunique(dropna=False) <= 1).all()]
    ignored = [c for c in rest if c not in item_cols]
    if ignored:
        log.warning("columns %s vary within users and items; they are not used.", ignored)
    users = frame.groupby("user_id")[user_cols].first() if user_cols else None
    items = frame.groupby("item_id")[item_cols].first() if item_cols else None
    return users, items, ignored


def _filter_short_users(path, users, sequences, min_interactions, policy, where):
    short = [i for i, s in enumerate(sequences) if len(s) < min_interactions]
    if not short:
        return users, sequences, {}
    lost = sum(len(sequences[i]) for i in short)
    if policy == "error":
        raise DataError(
            f"{path}: {len(short)} user(s) have fewer than {min_interactions} interactions "
            f"(first: {where(short[0])}); leave-one-out needs train, validation and test items. "
            "Remove them, or pass --short-users drop to drop them with a count."
        )
    if len(short) == len(sequences):
        raise DataError(
            f"{path}: every user has fewer than {min_interactions} interactions; nothing to train on."
        )
    log.warning(
        "%s: dropped %d of %d users (%d interactions) with fewer than %d interactions "
        "(leave-one-out needs %d).", path, len(short), len(users), lost, min_interactions, min_interactions
    )
    drop = set(short)
    keep = [i for i in range(len(users)) if i not in drop]
    dropped = {"short_users": len(short), "short_user_interactions": lost}
    return [users[i] for i in keep], [sequences[i] for i in keep], dropped


def _read_item_attributes_sidecar(path: Path) -> pd.DataFrame | None:
    sidecar = path.with_name(f"{path.stem}_item2attributes.json")
    if not sidecar.exists():
        return None
    try:
        raw = json.loads(sidecar.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{sidecar}: invalid JSON ({err}); fix or remove the attribute file.") from None
    try:
        return pd.DataFrame({"attributes": list(raw.values())}, index=[int(k) for k in raw.keys()])
    except (AttributeError, ValueError, TypeError):
        raise DataError(
            f"{sidecar}: expected a JSON object of integer item id -> list of attribute ids, "
            'e.g. {"7": [1, 2]}; fix or remove the attribute file.'
        ) from None


CATALOG_SUFFIXES = ("_catalog.csv", "_catalog.parquet")  # the shop's item table beside a log (fedrec synth writes one)


def _read_catalog_sidecar(path: Path, item_ids: pd.Series) -> pd.DataFrame | None:
    """``<stem>_catalog.csv`` (or .parquet) beside the log: one row per item_id with its name,
    brand, category, price...; indexed like the log's item ids. Items are not personal data,
    so the catalog travels beside a log as it is (``fedrec anonymize`` copies it)."""
    sidecar = next((p for p in (path.with_name(path.stem + s) for s in CATALOG_SUFFIXES) if p.exists()), None)
    if sidecar is None:
        return None
    catalog = _read_table(sidecar)
    if "item_id" not in catalog.columns:
        raise DataError(f"{sidecar}: an item catalog needs an item_id column (found {', '.join(map(str, catalog.columns))}); "
                        "fix it, or remove or rename the file.")
    if catalog["item_id"].duplicated().any():
        twice = catalog.loc[catalog["item_id"].duplicated(), "item_id"].head(3).tolist()
        raise DataError(f"{sidecar}: item_id {twice} listed more than once; keep one row per item.")
    if catalog["item_id"].dtype != item_ids.dtype:  # e.g. ids read as text in one file and numbers in the other
        by_text = {str(raw): raw for raw in pd.unique(item_ids)}
        catalog = catalog.assign(item_id=catalog["item_id"].astype(str).map(by_text)).dropna(subset=["item_id"])
    return catalog.set_index("item_id")


def _with_catalog(item_attrs: pd.DataFrame | None, catalog: pd.DataFrame | None) -> pd.DataFrame | None:
    """The log's per-item columns, with the catalog's columns the log lacks added."""
    if catalog is None:
        return item_attrs
    if item_attrs is None:
        return catalog
    extra = [c for c in catalog.columns if c not in item_attrs.columns]
    return item_attrs.join(catalog[extra], how="left") if extra else item_attrs


def _is_int(token: str) -> bool:
    try:
        int(token)
        return True
    except ValueError:
        return False
