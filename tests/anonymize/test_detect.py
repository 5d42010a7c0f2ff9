"""Presidio's pattern recognizers on samples, and the regex scrub of free text."""

from __future__ import annotations

import pyarrow as pa
from faker import Faker

from fedrec.anonymize.detect import analyze_samples, scrub


def test_identifiers_are_found_and_shop_columns_are_not():
    fake = Faker("en_GB")
    fake.seed_instance(1)
    samples = {
        "contact": [fake.email() for _ in range(20)],
        "mobile": [fake.phone_number() for _ in range(20)],
        "ip": [fake.ipv4() for _ in range(20)],
        "account": [fake.iban() for _ in range(20)],
        "brand": [fake.company() for _ in range(20)],
        "price": [f"{p / 7:.2f}" for p in range(20)],
        "category": ["serum", "cleanser", "lipstick", "mascara"],
    }

    found = analyze_samples(samples)

    assert found["contact"] == {"EMAIL_ADDRESS": 20}
    assert found["mobile"]["PHONE_NUMBER"] >= 18
    assert found["ip"]["IP_ADDRESS"] == 20
    assert found["account"]["IBAN_CODE"] == 20
    assert not {"brand", "price", "category"} & set(found)


def test_scrubbed_notes_keep_their_words_and_lose_contacts():
    notes = pa.array(["Gift wrap please, call 07700 900123 or +44 20 7946 0958",
                      "Send the receipt to jane.doe@example.co.uk", "Paid from GB82 WEST 1234 5698 7654 32",
                      "Device 192.168.10.4", None])

    clean = scrub(notes).to_pylist()

    assert clean[0] == "Gift wrap please, call [number] or [number]"
    assert clean[1] == "Send the receipt to [email]" and clean[2] == "Paid from [iban]"
    assert clean[3] == "Device [ip]" and clean[4] is None
    assert analyze_samples({"note": [c for c in clean if c]}) == {}
