"""The shop's people and places: stores in regions, and one invented profile per customer.

A module of its own because everything personal comes from here: seeded Faker pools
combined with numpy and Arrow, and the tables that tie a profile (skin type, age band,
gender, home store) to the customer's main category, where later audits need real
differences. It reads the catalog's categories; the events module copies these profiles
onto rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from faker import Faker

from fedrec.data.synth.catalog import CATEGORIES

SKIN_TYPES = ("dry", "oily", "combination", "normal", "sensitive")
AGE_BANDS = ((18, 24), (25, 34), (35, 44), (45, 54), (55, 64), (65, 79))  # inclusive ages
GENDERS = ("female", "male", "non-binary")
# P(profile value | main category): rows follow CATEGORIES, columns the value tuples above.
SKIN_GIVEN_CATEGORY = np.array([
    [0.35, 0.10, 0.15, 0.10, 0.30],  # skin care buyers: dry and sensitive skin
    [0.10, 0.35, 0.30, 0.15, 0.10],  # makeup: oily and combination
    [0.15, 0.20, 0.20, 0.35, 0.10],
    [0.30, 0.10, 0.15, 0.25, 0.20],
    [0.15, 0.15, 0.20, 0.40, 0.10],
    [0.15, 0.20, 0.20, 0.35, 0.10],
])
AGE_GIVEN_CATEGORY = np.array([
    [0.05, 0.15, 0.25, 0.25, 0.18, 0.12],  # skin care: older
    [0.30, 0.35, 0.18, 0.10, 0.05, 0.02],  # makeup: younger
    [0.15, 0.25, 0.22, 0.18, 0.12, 0.08],
    [0.12, 0.22, 0.22, 0.20, 0.14, 0.10],
    [0.18, 0.28, 0.22, 0.16, 0.10, 0.06],
    [0.22, 0.28, 0.20, 0.15, 0.10, 0.05],
])
GENDER_GIVEN_CATEGORY = np.array([
    [0.82, 0.15, 0.03], [0.92, 0.05, 0.03], [0.72, 0.25, 0.03],
    [0.80, 0.17, 0.03], [0.62, 0.35, 0.03], [0.85, 0.12, 0.03],
])
OPT_OUT_RATE = 0.02  # of customers have opt_out = True, on all their rows
RARE_PER_CUSTOMERS = 2000  # one customer in this many (at least 3) gets a rare quasi-identifier combo
LOG_START = np.datetime64("2024-01-01T00:00:00", "s")  # first day of the log; ages are taken here
REGIONS = ("London", "South East", "South West", "Midlands", "North West", "North East", "Yorkshire",
           "East of England", "Wales", "Scotland", "Northern Ireland")
# Stores fill regions STORES_PER_REGION at a time; a region has CITIES_PER_REGION cities, and
# HOME_CITY_RATE of customers live in their store's city (the rest elsewhere in its region).
STORES_PER_REGION, CITIES_PER_REGION, HOME_CITY_RATE = 3, 4, 0.85
STORE_FOCUS = 8.0  # Dirichlet concentration of a store's category mix around its region's
# Postcodes: each city gets a district (area + number, "LS12"), the inward code ("4AP") is random.
POSTCODE_AREAS = ("AB", "B", "BA", "BN", "BS", "CB", "CF", "CT", "CV", "DE", "EH", "EX", "G", "GL",
                  "HU", "L", "LE", "LN", "LS", "M", "NE", "NG", "NR", "OX", "PL", "S", "SO", "ST", "SW", "YO")
# Remote districts (Shetland, Hebrides, Orkney, ...) that only the rare-combo customers get.
REMOTE_OUTWARD = ("ZE1", "ZE2", "ZE3", "HS1", "HS2", "HS5", "HS8", "KW15", "KW16", "KW17", "IV27", "PA78")
INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters UK inward codes use


def _main_category(lengths: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Each history's most frequent category; ties go to the larger category (lower code)."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    counts = np.bincount(owner * len(CATEGORIES) + categories, minlength=len(lengths) * len(CATEGORIES))
    return counts.reshape(len(lengths), len(CATEGORIES)).argmax(axis=1)


def _region_count(stores: int) -> int:
    return min(len(REGIONS), -(-stores // STORES_PER_REGION))


def _faker_pools(seed: int, n_cities: int) -> dict[str, pa.Array]:
    """Values drawn once from Faker (en_GB: postcodes and phones stay text in CSV) and then
    combined with numpy; a Faker call per customer would take hours at a million customers."""
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    cities: list[str] = []
    while len(cities) < n_cities:
        city = fake.city()
        cities += [city] if city not in cities else []
    return {
        "female": pa.array([fake.first_name_female() for _ in range(400)]),
        "male": pa.array([fake.first_name_male() for _ in range(400)]),
        "non-binary": pa.array([fake.first_name_nonbinary() for _ in range(400)]),
        "last": pa.array([fake.last_name() for _ in range(1500)]),
        "street": pa.array([fake.street_name() for _ in range(2000)]),
        "domain": pa.array([fake.free_email_domain() for _ in range(50)]),
        "city": pa.array(cities),
    }


def _stores(count: int, pools: dict[str, pa.Array], rng: np.random.Generator) -> pd.DataFrame:
    """Stores grouped by region; each region leans to some categories, its stores lean around it."""
    n_regions = _region_count(count)
    region = np.sort(np.arange(count) % n_regions)
    region_mix = rng.dirichlet(np.ones(len(CATEGORIES)), n_regions)
    gamma = rng.gamma(STORE_FOCUS * region_mix[region] + 0.1)
    within = np.arange(count) - np.searchsorted(region, region)
    frame = pd.DataFrame({
        "store_id": [f"S{k + 1:0{max(2, len(str(count)))}d}" for k in range(count)],
        "region": np.asarray(REGIONS)[region],
        "city_index": region * CITIES_PER_REGION + within % CITIES_PER_REGION,
        "size": rng.lognormal(0.0, 0.5, count),
    })
    frame["city"] = pools["city"].take(frame["city_index"].to_numpy()).to_pylist()
    mix = gamma / gamma.sum(axis=1, keepdims=True)
    for k, name in enumerate(CATEGORIES):
        frame[f"mix_{name}"] = mix[:, k]
    return frame.astype({"store_id": "str", "region": "str", "city": "str"})


def _customers(main: np.ndarray, stores: pd.DataFrame, pools: dict[str, pa.Array],
               rng: np.random.Generator) -> pd.DataFrame:
    """One profile per customer; skin type, age band, gender and home store follow ``main``."""
    n = len(main)
    home = _home_stores(main, stores, rng)
    band = _draw_rows(AGE_GIVEN_CATEGORY[main], rng)
    age = rng.integers(np.asarray(AGE_BANDS)[band, 0], np.asarray(AGE_BANDS)[band, 1] + 1)
    gender = _draw_rows(GENDER_GIVEN_CATEGORY[main], rng)
    city = stores["city_index"].to_numpy()[home]
    moved = rng.random(n) > HOME_CITY_RATE
    city[moved] = city[moved] // CITIES_PER_REGION * CITIES_PER_REGION + rng.integers(0, CITIES_PER_REGION, moved.sum())
    outward = np.asarray(_outward_codes(len(pools["city"]), rng), dtype=object)[city]
    rare = np.zeros(n, dtype=bool)  # very old, male or non-binary, in a remote postcode district
    rare[rng.choice(n, min(n, max(3, n // RARE_PER_CUSTOMERS)), replace=False)] = True
    age[rare] = rng.integers(96, 105, rare.sum())
    gender[rare] = rng.integers(1, len(GENDERS), rare.sum())
    outward[rare] = np.asarray(REMOTE_OUTWARD, dtype=object)[rng.integers(0, len(REMOTE_OUTWARD), rare.sum())]
    first = _by_gender(gender, pools, rng)
    last = _pick(pools["last"], rng, n)
    born = LOG_START.astype("datetime64[D]") - (age * 365.25 + rng.integers(0, 365, n)).astype("timedelta64[D]")
    separator = pa.array(np.asarray([".", "_", ""])[rng.integers(0, 3, n)])
    local = _join(_ascii_lower(first), separator, _ascii_lower(last),
                  _digits(_unique_numbers(n, 10 ** max(4, len(str(n)) + 1), rng), 1))
    octets = [rng.integers(11, 224, n), rng.integers(0, 256, n), rng.integers(0, 256, n), rng.integers(1, 255, n)]
    octets[0][octets[0] == 127] = 128  # no loopback addresses
    columns = {
        "customer_id": _join("C", _digits(np.arange(1, n + 1), max(6, len(str(n))))),
        "main_category": pa.array(np.asarray(CATEGORIES)[main]),
        "loyalty_id": _join("LY", _digits(_unique_numbers(n, 10**9, rng), 9)),
        "name": _join(first, " ", last),
        "email": _join(local, "@", _pick(pools["domain"], rng, n)),
        "phone": _join("07", _digits(rng.integers(0, 1000, n), 3), " ", _digits(rng.integers(0, 10**6, n), 6)),
        "street_address": _join(_digits(rng.integers(1, 250, n), 1), " ", _pick(pools["street"], rng, n)),
        "postcode": _join(pa.array(outward, pa.string()), " ", _inward_codes(n, rng)),
        "city": pools["city"].take(city),
        "birth_date": pc.cast(pa.array(born), pa.string()),
        "gender": pa.array(np.asarray(GENDERS)[gender]),
        "skin_type": pa.array(np.asarray(SKIN_TYPES)[_draw_rows(SKIN_GIVEN_CATEGORY[main], rng)]),
        "device_ip": _join(*(_digits(octet, 1) for octet in octets), sep="."),
        "age_band": pa.array(np.where(rare, "90+", np.asarray([f"{lo}-{hi}" for lo, hi in AGE_BANDS])[band])),
        "store_id": pa.array(stores["store_id"].to_numpy(dtype=object)[home], pa.string()),
        "region": pa.array(stores["region"].to_numpy(dtype=object)[home], pa.string()),
    }
    frame = pd.DataFrame({name: pd.array(values, dtype="str") for name, values in columns.items()})
    frame["opt_out"] = rng.random(n) < OPT_OUT_RATE
    frame["rare_combo"] = rare
    frame["store_index"] = home
    return frame


def _home_stores(main: np.ndarray, stores: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """P(store | main category) ~ store size x the store's share of that category; every store
    gets at least one customer."""
    weight = stores["size"].to_numpy()[:, None] * stores[[f"mix_{c}" for c in CATEGORIES]].to_numpy()
    cdf = np.cumsum(weight, axis=0) / weight.sum(axis=0)
    u = rng.random(len(main))
    home = np.empty(len(main), dtype=np.int64)
    for k in range(len(CATEGORIES)):
        mine = main == k
        home[mine] = np.searchsorted(cdf[:, k], u[mine], side="right")
    home = np.minimum(home, len(stores) - 1)
    for empty in np.flatnonzero(np.bincount(home, minlength=len(stores)) == 0):
        donors = np.flatnonzero(np.bincount(home, minlength=len(stores))[home] > 1)
        home[rng.choice(donors)] = empty
    return home


def _draw_rows(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One categorical draw per row of a (n, k) probability matrix."""
    cdf = np.cumsum(probabilities, axis=1)
    return np.minimum((rng.random(len(cdf))[:, None] * cdf[:, -1:] >= cdf).sum(axis=1), cdf.shape[1] - 1)


def _by_gender(gender: np.ndarray, pools: dict[str, pa.Array], rng: np.random.Generator) -> pa.Array:
    """A first name from the pool of each customer's gender."""
    sizes = np.asarray([len(pools[g]) for g in GENDERS])
    offset = (np.cumsum(sizes) - sizes)[gender]
    chosen = offset + (rng.random(len(gender)) * sizes[gender]).astype(np.int64)
    return pa.concat_arrays([pools[g] for g in GENDERS]).take(chosen)


def _pick(pool: pa.Array, rng: np.random.Generator, n: int) -> pa.Array:
    return pool.take(rng.integers(0, len(pool), n))


def _outward_codes(n_cities: int, rng: np.random.Generator) -> pa.Array:
    """A distinct postcode district per city ("LS12"); inward codes vary within it."""
    cells = rng.choice(len(POSTCODE_AREAS) * 20, n_cities, replace=False)
    return pa.array([f"{POSTCODE_AREAS[c % len(POSTCODE_AREAS)]}{c // len(POSTCODE_AREAS) + 1}" for c in cells])


def _inward_codes(n: int, rng: np.random.Generator) -> pa.Array:
    """Digit + two letters ("4AP"), as in UK postcodes."""
    letters = pa.array(list(INWARD_LETTERS))
    return _join(_digits(rng.integers(0, 10, n), 1), _pick(letters, rng, n), _pick(letters, rng, n))


def _unique_numbers(n: int, below: int, rng: np.random.Generator) -> np.ndarray:
    """n distinct random numbers in [0, below): e-mails and loyalty ids never collide."""
    return rng.choice(below, n, replace=False)


# --- text (the events module glues its timestamps and notes with these too) ---------------


def _join(*parts: pa.Array | str, sep: str = "") -> pa.Array:
    return pc.binary_join_element_wise(*parts, sep)


def _digits(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pa.array(np.asarray(values, dtype=np.int64)).cast(pa.string()), width, "0")


def _ascii_lower(names: pa.Array) -> pa.Array:
    return pc.replace_substring_regex(pc.utf8_lower(names), "[^a-z]", "")
