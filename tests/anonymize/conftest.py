"""Small raw event logs with the columns of a store's log (fedrec/data/synth.py), made with
Faker: real-looking names, e-mails, phones and addresses, so presidio sees what it would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from faker import Faker

from fedrec.anonymize import make_key, load_key

RAW_COLUMNS = ("customer_id", "loyalty_id", "name", "email", "phone", "street_address", "postcode", "city",
               "birth_date", "gender", "skin_type", "device_ip", "opt_out", "store_id", "region", "timestamp",
               "event_type", "item_id", "brand", "category", "price", "order_note")
DIRECT = ("loyalty_id", "name", "email", "phone", "street_address", "device_ip", "customer_id")


def raw_log(*, customers: int = 80, stores: int = 2, events: tuple[int, int] = (3, 8), opt_out_share: float = 0.1,
            shared: int = 5, seed: int = 0) -> pd.DataFrame:
    """One row per event; customers shop at one store, except ``shared`` who shop at two.
    Rows are shuffled (a log is not always in time order)."""
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    rng = np.random.default_rng(seed)
    areas = ["SW1A", "SW1B", "SW2", "EC1", "EC2", "M1", "M2", "LS1"]
    rows = []
    for c in range(customers):
        person = {
            "customer_id": f"C{c:05d}", "loyalty_id": f"LOY{rng.integers(10**7, 10**8)}", "name": fake.name(),
            "email": fake.unique.email(), "phone": fake.phone_number(), "street_address": fake.street_address(),
            "postcode": f"{areas[rng.integers(len(areas))]} {rng.integers(1, 9)}{fake.random_uppercase_letter()}{fake.random_uppercase_letter()}",
            "city": ["London", "Manchester", "Leeds"][rng.integers(3)],
            "birth_date": str(fake.date_of_birth(minimum_age=18, maximum_age=85)),
            "gender": ["F", "M", "X"][rng.choice(3, p=[0.6, 0.35, 0.05])], "skin_type": ["dry", "oily", "normal", "combination"][rng.integers(4)],
            "device_ip": fake.ipv4(), "opt_out": bool(rng.random() < opt_out_share),
        }
        home = int(rng.integers(stores))
        visits = [home] + ([(home + 1) % stores] if c < shared and stores > 1 else [])
        for store in visits:
            start = pd.Timestamp("2024-01-01") + pd.Timedelta(seconds=int(rng.integers(0, 300 * 86400)))
            for e in range(int(rng.integers(*events))):
                note = fake.sentence()
                if rng.random() < 0.2:
                    note += f" Call me on {person['phone']} or write to {person['email']}."
                rows.append({**person, "store_id": f"S{store}", "region": ["North", "South"][store % 2],
                             "timestamp": (start + pd.Timedelta(hours=int(rng.integers(0, 48)) * (e + 1))).isoformat(),
                             "event_type": ["view", "cart", "purchase"][rng.integers(3)],
                             "item_id": f"P{rng.integers(0, 40):04d}", "brand": f"Brand{rng.integers(6)}",
                             "category": ["serum", "cleanser", "lipstick", "mascara"][rng.integers(4)],
                             "price": float(np.round(rng.uniform(3, 80), 2)), "order_note": note})
    frame = pd.DataFrame(rows, columns=list(RAW_COLUMNS))
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture
def raw() -> pd.DataFrame:
    return raw_log()


@pytest.fixture
def key(tmp_path_factory) -> bytes:
    """In a folder of its own: tests list what a run leaves in tmp_path."""
    return load_key(make_key(tmp_path_factory.mktemp("keys") / "anonymize.key"))


@pytest.fixture
def raw_csv(tmp_path: Path, raw: pd.DataFrame) -> Path:
    path = tmp_path / "raw.csv"
    raw.to_csv(path, index=False)
    return path


@pytest.fixture
def raw_parquet(tmp_path: Path, raw: pd.DataFrame) -> Path:
    path = tmp_path / "raw.parquet"
    raw.to_parquet(path, index=False)
    return path
