"""Personal data by content, where the column's name gives nothing away: person names, birth
dates, postcodes and street addresses.

Presidio's pattern recognizers (fedrec.anonymize.detect) find e-mails, phones, cards, IBANs and
IPs; these find what patterns alone miss. A value is a person's name when its first word is a
first name and its last a surname of Faker's lists (ten locales: the shop's customers' names,
not its brands); a birth date when it reads as a calendar date between 1900 and ten years ago;
a postcode when it has the shape of a UK, Dutch, Polish, Portuguese, US ZIP+4 or five-digit
postcode; a street address when it holds a house number and a street word of nine languages.
Each is fuzzy on one value, so a column counts only when at least ``SHARE`` of its sampled
values hit (one hit of a pattern recognizer already counts, detect.py).
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from datetime import date
from typing import Sequence

PERSON_NAME, BIRTH_DATE, POSTCODE, STREET_ADDRESS = "PERSON_NAME", "BIRTH_DATE", "POSTCODE", "STREET_ADDRESS"
SHARE = 0.3
NAME_LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_PT", "sv_SE")

POSTCODE_SHAPES = re.compile(
    r"^(?:[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}"  # UK: SW1A 1AA
    r"|\d{4} ?[A-Z]{2}"  # Netherlands: 1012 AB
    r"|\d{2}-\d{3}"  # Poland: 00-950
    r"|\d{4}-\d{3}"  # Portugal: 1000-001
    r"|\d{5}(?:-\d{4})?)$"  # US ZIP(+4), Germany, France, Spain, Italy
)
STREET_WORDS = (
    "street|st|road|rd|avenue|ave|lane|ln|drive|dr|way|court|ct|place|pl|boulevard|blvd|terrace|close|crescent|square|"
    "sq|parkway|highway|strasse|straße|str|weg|gasse|platz|allee|ring|rue|chemin|impasse|quai|calle|avenida|plaza|"
    "paseo|camino|via|viale|piazza|corso|vicolo|straat|laan|plein|gracht|ulica|ul|aleja|rua|travessa|largo|gatan|"
    "vägen|gata|vej|gade"
)
COMPOUND_STREETS = "straße|strasse|str\\.|weg|gasse|straat|laan|gatan|vägen|vej|gade"  # Hauptstraße, Kerkstraat
DATE_SHAPES = (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?$"),  # ISO: year first
               re.compile(r"^(\d{1,2})[./-](\d{1,2})[./-](\d{4})$"))  # day or month first


def content_hits(values: Sequence[str]) -> dict[str, int]:
    """Entity -> sampled values that hold one, for the entities at least ``SHARE`` of the
    values hold (none for an empty sample)."""
    values = [str(v).strip() for v in values if str(v).strip()]
    if not values:
        return {}
    counts = {PERSON_NAME: sum(map(_person_name, values)), BIRTH_DATE: sum(map(_birth_date, values)),
              POSTCODE: sum(bool(POSTCODE_SHAPES.match(v.upper())) for v in values),
              STREET_ADDRESS: sum(any(ch.isdigit() for ch in v) and bool(_street().search(v)) for v in values)}
    least = max(1, math.ceil(SHARE * len(values)))
    return {entity: n for entity, n in counts.items() if n >= least}


def _person_name(value: str) -> bool:
    words = [w for w in re.split(r"[\s,]+", value) if w]
    if not 2 <= len(words) <= 4:
        return False
    first, last = _name_lists()
    if "," in value:  # "Doe, Jane"
        words = [*words[1:], words[0]]
    return words[0].lower() in first and words[-1].lower() in last


@functools.lru_cache(maxsize=1)
def _name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """Lower-case first names and surnames of Faker's person providers for NAME_LOCALES."""
    first, last = set(), set()
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attribute, found in (("first_names", first), ("last_names", last)):
            names = getattr(provider, attribute, ())
            found.update(str(name).lower() for name in (names.keys() if hasattr(names, "keys") else names))
    return frozenset(first), frozenset(last)


@functools.lru_cache(maxsize=1)
def _street() -> re.Pattern:
    """A street word alone (STREET_WORDS and Faker's street prefixes and suffixes for
    NAME_LOCALES), or ending a compound."""
    words = set(STREET_WORDS.split("|"))
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.address.{locale}").Provider
        for attribute in ("street_suffixes", "street_suffixes_long", "street_suffixes_short", "street_prefixes"):
            words.update(str(word).strip().lower() for word in getattr(provider, attribute, ()) if str(word).strip())
    alone = "|".join(re.escape(word) for word in sorted(words, key=len, reverse=True))
    return re.compile(rf"(?:^|[\s,.])(?:{alone})(?:$|[\s,.])|\w(?:{COMPOUND_STREETS})\b", re.IGNORECASE)


def _birth_date(value: str) -> bool:
    for shape in DATE_SHAPES:
        match = shape.match(value)
        if match is None:
            continue
        parts = [int(p) for p in match.groups()[:3]]
        year = parts[0] if shape is DATE_SHAPES[0] else parts[2]
        return 1900 <= year <= date.today().year - 10
    return False
