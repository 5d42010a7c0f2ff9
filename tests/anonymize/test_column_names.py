"""Personal columns recognised by their names in the spellings and languages shops export
(fedrec.anonymize.column_names), or by their content under a name that says nothing
(fedrec.anonymize.content), and what that does to a renamed synthetic log."""

from __future__ import annotations

import pandas as pd
import pytest
from pycanon import anonymity

import fedrec
from fedrec.anonymize.column_names import DIRECT, QUASI, hierarchy_by_name, personal_role
from fedrec.errors import DataError

# Names, birth dates, postcodes and addresses as shops name them: 44 spellings, 9 languages.
SPELLINGS = {
    DIRECT: ["customer_name", "CustomerName", "Full Name", "first-name", "LastName", "Surname", "Vorname", "Nachname",
             "Kundenname", "nom", "Prénom", "nombre", "apellidos", "cognome", "achternaam", "imię", "nazwisko",
             "street", "Straße", "Strasse", "Adresse", "adresse_client", "dirección", "indirizzo", "straat", "rua",
             "Address Line 1", "ulica"],
    QUASI: ["birthdate", "Birth Date", "DOB", "Geburtsdatum", "date_de_naissance", "fecha_de_nacimiento",
            "data_di_nascita", "geboortedatum", "data urodzenia", "plz", "Postleitzahl", "code postal", "código postal",
            "CAP", "postcode", "ZIP", "kod_pocztowy", "Postnummer"],
}


def test_at_least_nine_in_ten_spellings_are_recognised_with_their_role():
    total = sum(len(names) for names in SPELLINGS.values())
    right = sum(personal_role(name) == role for role, names in SPELLINGS.items() for name in names)
    assert total >= 30 and right >= 0.9 * total, [(n, personal_role(n)) for r, ns in SPELLINGS.items() for n in ns
                                                  if personal_role(n) != r]


def test_birth_dates_get_the_age_hierarchy_and_postcodes_the_prefix():
    assert {hierarchy_by_name(n) for n in ("birthdate", "Geburtsdatum", "fecha_de_nacimiento")} == {"age"}
    assert {hierarchy_by_name(n) for n in ("plz", "code_postal", "ZIP")} == {"prefix"}
    assert personal_role("basket_size") is None and personal_role("event_type") is None


@pytest.mark.parametrize("renamed", [
    {"name": "customer_name", "street_address": "street", "postcode": "plz", "birth_date": "birthdate"},
    {"name": "Kundenname", "street_address": "Straße", "postcode": "Postleitzahl", "birth_date": "Geburtsdatum"},
    {"name": "nom_complet", "street_address": "adresse", "postcode": "code_postal", "birth_date": "date_de_naissance"},
])
def test_a_log_with_renamed_personal_columns_comes_out_without_them(tmp_path, renamed):
    """The review's reproduction: fedrec synth's log with its personal columns renamed."""
    raw, _ = fedrec.synth(tmp_path / "raw.parquet", stores=1, users=400, seed=5)
    frame = pd.read_parquet(raw)
    present = {old: new for old, new in renamed.items() if old in frame.columns}
    assert len(present) == 4, sorted(frame.columns)
    renamed_log = tmp_path / "renamed.parquet"
    frame.rename(columns=present).to_parquet(renamed_log, index=False)

    report = fedrec.anonymize_log(renamed_log, tmp_path / "out.parquet", key=fedrec.make_key(tmp_path / "k.key"), k=5)

    out = pd.read_parquet(tmp_path / "out.parquet")
    names, streets = set(frame["name"]), set(frame["street_address"])
    for column in out.columns:
        values = set(out[column].astype(str))
        assert not values & names and not values & streets, column  # no name, no street address published
    assert not set(out.columns) & {present["name"], present["street_address"]}
    assert present["postcode"] not in out.columns or not set(out[present["postcode"]].astype(str)) & set(frame["postcode"])
    assert present["birth_date"] not in out.columns
    assert {present["postcode"], present["birth_date"]} <= set(report["generalised"])  # k counted over them too
    quasi = ["store_id", *(info["output"] for info in report["generalised"].values())]
    assert anonymity.k_anonymity(out.drop_duplicates("user_id").reset_index(drop=True), quasi) >= 5  # independently
    assert report["generalised"][present["birth_date"]]["identified"].startswith("by its name")


@pytest.mark.parametrize("column, entity", [("name", "PERSON_NAME"), ("street_address", "STREET_ADDRESS"),
                                            ("postcode", "POSTCODE"), ("birth_date", "BIRTH_DATE")])
def test_a_personal_column_under_a_name_that_says_nothing_is_refused_by_its_content(tmp_path, column, entity):
    raw, _ = fedrec.synth(tmp_path / "raw.parquet", stores=1, users=300, seed=6)
    frame = pd.read_parquet(raw).rename(columns={column: "field_7"})
    opaque = tmp_path / "opaque.parquet"
    frame.to_parquet(opaque, index=False)

    with pytest.raises(DataError, match=rf"'field_7': looks like personal data \({entity}"):
        fedrec.anonymize_log(opaque, tmp_path / "out.parquet", key=fedrec.make_key(tmp_path / "k.key"), k=5)
    assert not (tmp_path / "out.parquet").exists()
