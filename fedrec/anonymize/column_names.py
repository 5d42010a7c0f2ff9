"""Personal columns by their names, in the spellings and languages shops export.

A column name is normalised (accents stripped, lower case, every run of other characters one
"_", an owner prefix or suffix dropped: "Kunden-Geburtsdatum" -> "geburtsdatum",
"customer_name" -> "name", "adresse_client" -> "adresse") and looked up among the names of direct identifiers (dropped) and
quasi-identifiers (generalised), in English, German, French, Spanish, Italian, Dutch,
Portuguese, Polish and the Nordic languages. Birth dates get the age hierarchy, postcodes the
prefix one. A name that is not here is not thereby harmless: the content checks and the
schema decide the rest (fedrec.anonymize.schema).
"""

from __future__ import annotations

import re
import unicodedata

DIRECT = "direct_identifiers"
QUASI = "quasi_identifiers"

NAMES = ("name", "full_name", "fullname", "first_name", "firstname", "given_name", "forename", "last_name", "lastname",
         "surname", "family_name", "vorname", "nachname", "familienname", "nom", "prenom", "nom_complet", "nombre",
         "apellido", "apellidos", "nombre_completo", "nome", "cognome", "nome_completo", "sobrenome", "naam",
         "voornaam", "achternaam", "imie", "nazwisko", "fornavn", "efternavn", "etternavn", "fornamn", "efternamn",
         "etunimi", "sukunimi")
ADDRESSES = ("address", "addr", "street", "street_address", "address_line", "address_line_1", "address1", "strasse",
             "str", "anschrift", "adresse", "rue", "calle", "direccion", "domicilio", "via", "indirizzo", "straat",
             "adres", "ulica", "endereco", "rua", "gata", "gatuadress", "katuosoite", "home_address")
PHONES = ("phone", "phone_number", "telephone", "tel", "mobile", "mobile_phone", "cell", "cellphone", "handy",
          "telefon", "telefonnummer", "telefono", "telefone", "portable", "movil", "cellulare", "celular", "gsm",
          "numer_telefonu", "mobil")
EMAILS = ("email", "e_mail", "mail", "email_address", "courriel", "correo", "correo_electronico", "posta_elettronica",
          "e_post", "sahkoposti")
ACCOUNT_IDS = ("loyalty_id", "loyalty_card", "loyalty_number", "card_number", "member_id", "membership_number",
               "device_id", "advertising_id", "idfa", "gaid", "imei", "mac_address", "ip", "ip_address", "device_ip",
               "kundenkarte", "carte_fidelite", "tarjeta_fidelidad", "tessera", "klantkaart", "iban", "ssn",
               "national_id", "passport", "tax_id", "steuernummer", "nir", "dni", "codice_fiscale", "bsn", "pesel",
               "personnummer", "cpf")
BIRTH_DATES = ("birth_date", "birthdate", "dob", "date_of_birth", "birthday", "born", "geburtsdatum", "geburtstag",
               "date_naissance", "date_de_naissance", "naissance", "fecha_nacimiento", "fecha_de_nacimiento",
               "nacimiento", "data_nascita", "data_di_nascita", "data_de_nascimento", "nascimento", "geboortedatum",
               "data_urodzenia", "fodelsedatum", "fodselsdato", "syntymaaika")
POSTCODES = ("postcode", "post_code", "zip", "zipcode", "zip_code", "postal_code", "plz", "postleitzahl", "code_postal",
             "cp", "codigo_postal", "cap", "codice_postale", "postcode_nl", "kod_pocztowy", "postnummer", "postinumero",
             "cep")
GENDERS = ("gender", "sex", "geschlecht", "sexe", "genre", "sexo", "genere", "sesso", "geslacht", "plec", "kon", "kjonn")
CITIES = ("city", "town", "ort", "stadt", "wohnort", "ville", "ciudad", "localidad", "citta", "localita", "comune",
          "plaats", "woonplaats", "stad", "miasto", "cidade", "kaupunki")

ROLE_OF: dict[str, str] = {
    **{name: DIRECT for name in (*NAMES, *ADDRESSES, *PHONES, *EMAILS, *ACCOUNT_IDS)},
    **{name: QUASI for name in (*BIRTH_DATES, *POSTCODES, *GENDERS, *CITIES)},
}
HIERARCHY_OF: dict[str, str] = {**{name: "age" for name in BIRTH_DATES}, **{name: "prefix" for name in POSTCODES}}
OWNER_PREFIXES = ("customer_", "cust_", "client_", "user_", "kunden_", "kunde_", "buyer_", "member_", "contact_")
OWNER_SUFFIXES = ("_du_client", "_del_cliente", "_do_cliente", "_client", "_cliente", "_customer", "_kunde", "_klant")
GLUED_OWNER_PREFIXES = ("kunden",)  # German compounds: "Kundenname", "Kundenadresse"


UNDECOMPOSED = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "Ae", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "œ": "oe",
                              "Œ": "Oe", "đ": "d", "Đ": "D"})  # letters NFKD keeps whole


def normalise(column: str) -> str:
    """'Kunden-Geburtsdatum ' -> 'kunden_geburtsdatum': accents off, lower case, one '_' between words."""
    plain = unicodedata.normalize("NFKD", column.translate(UNDECOMPOSED)).encode("ascii", "ignore").decode("ascii")
    plain = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", plain)  # camelCase -> camel_Case
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


def _candidates(column: str) -> list[str]:
    name = normalise(column)
    found = [name]
    for prefix in OWNER_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            found.append(name[len(prefix):])
    for suffix in OWNER_SUFFIXES:  # French, Spanish, Italian name the owner last: "adresse_client"
        if name.endswith(suffix) and len(name) > len(suffix):
            found.append(name[: -len(suffix)])
    for prefix in GLUED_OWNER_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            found.append(name[len(prefix):].lstrip("_"))
    return found


def personal_role(column: str) -> str | None:
    """DIRECT, QUASI or None for a column by its name."""
    return next((ROLE_OF[name] for name in _candidates(column) if name in ROLE_OF), None)


def hierarchy_by_name(column: str) -> str:
    """'age' for birth dates, 'prefix' for postcodes, else 'value'."""
    return next((HIERARCHY_OF[name] for name in _candidates(column) if name in HIERARCHY_OF), "value")
