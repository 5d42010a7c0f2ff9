"""The shop's catalog: brand, category, name and price of every item, from its attribute ids.

A module of its own because the catalog depends on the item attribute lists alone, never on
the log's seed (it has CATALOG_SEED): logs of every seed share one catalog, and the people
and events modules only read it.
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from fedrec.errors import DataError

CATALOG_COLUMNS = ("item_id", "name", "brand", "category", "price")
# Departments by size on Beauty (invented names: the attribute ids carry none).
CATEGORIES = ("Skin Care", "Makeup", "Hair Care", "Bath & Body", "Fragrance", "Nails & Tools")
UNBRANDED = "Unbranded"  # the brand of items whose list has no attribute before the department
# Made-up brand names are a head + a tail syllable (_brand_name).
BRAND_HEADS = ("Lu", "Ve", "Ari", "Bel", "Cor", "Del", "Eli", "Fle", "Glo", "Ha", "Iri", "Jo", "Ka",
               "Lo", "Mi", "No", "Ora", "Pe", "Ro", "Sa", "Te", "Va", "Ze", "Ya")
BRAND_TAILS = ("mira", "lune", "bella", "ssence", "rine", "na", "lis", "dora", "vie", "ane", "ora", "elle",
               "sia", "tique", "nova", "line", "ra", "velle", "ma", "sette", "via", "lia", "ette", "ly")
# Item names: "<brand> <adjective by item id> <noun by sub-category> (<category>)".
ADJECTIVES = ("Hydrating", "Radiant", "Velvet", "Silk", "Pure", "Daily", "Intense", "Gentle", "Matte", "Glow",
              "Botanical", "Rose", "Argan", "Vitamin C", "Charcoal", "Ultra", "Soft", "Classic", "Fresh", "Nourishing")
NOUNS = (  # per category (rows follow CATEGORIES), larger sub-categories take the first ones
    ("Serum", "Moisturiser", "Cleanser", "Toner", "Face Mask", "Eye Cream", "Sunscreen", "Exfoliator"),
    ("Lipstick", "Mascara", "Foundation", "Eyeliner", "Blush", "Eyeshadow Palette", "Concealer", "Lip Gloss"),
    ("Shampoo", "Conditioner", "Hair Mask", "Hair Oil", "Styling Gel", "Hairspray", "Dry Shampoo", "Curl Cream"),
    ("Body Lotion", "Shower Gel", "Bath Salts", "Body Scrub", "Hand Cream", "Body Butter", "Bath Bomb", "Soap"),
    ("Eau de Parfum", "Eau de Toilette", "Body Mist", "Cologne", "Perfume Oil", "Solid Perfume", "Gift Set"),
    ("Nail Polish", "Nail File", "Makeup Brush", "Tweezers", "Cuticle Oil", "Brush Set", "Lash Curler", "Sponge"),
)
MEDIAN_PRICE = (22.0, 14.0, 12.0, 9.0, 45.0, 8.0)  # per category, before brand and item spread
CATALOG_SEED = 15  # the catalog is the same for every log seed: logs of any seed share one catalog


def build_catalog(attributes: Mapping[int, Sequence[int]]) -> pd.DataFrame:
    """One row per item: readable name, brand, category and price, from S3-Rec attribute lists.

    Lists read ``[brand?, department, sub-category, ...]``. Departments are the attributes that
    open some lists and come second in others (after a brand): six on Beauty, named by size
    (CATEGORIES). An item's category is its department, its brand the attribute before it
    (``Unbranded`` if none), and the attribute after it picks the product noun of its name.
    """
    lists = {int(item): [int(a) for a in attrs] for item, attrs in attributes.items()}
    departments = {a[0] for a in lists.values() if a} & {a[1] for a in lists.values() if len(a) > 1}
    at = {item: next((i for i, x in enumerate(a) if x in departments), -1) for item, a in lists.items()}
    sizes = Counter(lists[item][i] for item, i in at.items() if i >= 0)
    if len(sizes) != len(CATEGORIES) or min(at.values(), default=-1) < 0:
        raise DataError(
            f"the item attribute lists give {len(sizes)} departments and {sum(i < 0 for i in at.values())} "
            f"items without one; the synthetic catalog needs {len(CATEGORIES)} departments, one on every "
            "item, as in the embedded Beauty data."
        )
    rank = {d: k for k, (d, _) in enumerate(sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])))}
    brand_name = {b: _brand_name(k) for k, b in enumerate(sorted({lists[t][i - 1] for t, i in at.items() if i > 0}))}
    subs = Counter((lists[t][i], lists[t][i + 1]) for t, i in at.items() if i + 1 < len(lists[t]))
    noun_of, used = {}, Counter()
    for dept, sub in sorted(subs, key=lambda key: (-subs[key], key)):  # larger sub-categories first
        noun_of[dept, sub] = NOUNS[rank[dept]][used[dept] % len(NOUNS[rank[dept]])]
        used[dept] += 1
    rows = []
    for item in sorted(lists):
        a, i = lists[item], at[item]
        category = CATEGORIES[rank[a[i]]]
        brand = brand_name[a[i - 1]] if i > 0 else UNBRANDED
        noun = noun_of[a[i], a[i + 1]] if i + 1 < len(a) else NOUNS[rank[a[i]]][0]
        rows.append((item, f"{brand} {ADJECTIVES[item % len(ADJECTIVES)]} {noun} ({category})", brand, category))
    catalog = pd.DataFrame(rows, columns=["item_id", "name", "brand", "category"])
    catalog["price"] = _prices(catalog)
    return catalog.astype({"name": "str", "brand": "str", "category": "str"})


def _brand_name(k: int) -> str:
    """k-th brand -> a unique made-up name; the stride (coprime with the grid) scatters neighbours."""
    grid = len(BRAND_HEADS) * len(BRAND_TAILS)
    cell = (k * 37) % grid
    name = BRAND_HEADS[cell // len(BRAND_TAILS)] + BRAND_TAILS[cell % len(BRAND_TAILS)]
    return name if k < grid else f"{name} {k // grid + 1}"


def _prices(catalog: pd.DataFrame) -> np.ndarray:
    """Log-normal around the category's median, a premium per brand; endings .99."""
    rng = np.random.default_rng(CATALOG_SEED)
    rank_of_category = pd.Categorical(catalog["category"], CATEGORIES).codes
    brands, brand_code = np.unique(catalog["brand"].to_numpy(dtype=object), return_inverse=True)
    premium = np.exp(rng.normal(0.0, 0.35, len(brands)))
    raw = np.asarray(MEDIAN_PRICE)[rank_of_category] * premium[brand_code] * np.exp(rng.normal(0.0, 0.3, len(catalog)))
    return np.maximum(np.floor(raw), 1.0) + 0.99


def _lookup(keys: pd.Series, values: np.ndarray) -> np.ndarray:
    """A dense array indexed by item id (ids are small positive integers)."""
    table = np.full(int(keys.max()) + 1, -1, dtype=np.int64)
    table[keys.to_numpy()] = values
    return table
