"""Column roles: declared, recognised by name, and refused when a declaration is wrong."""

from __future__ import annotations

import json

import pytest

from fedrec.anonymize import load_schema, resolve_schema
from fedrec.errors import ConfigError, DataError

from .conftest import RAW_COLUMNS


def test_a_store_log_is_understood_without_a_schema():
    schema = resolve_schema(list(RAW_COLUMNS))

    assert (schema.customer_id, schema.item_id, schema.timestamp, schema.store_id) == (
        "customer_id", "item_id", "timestamp", "store_id")
    assert set(schema.direct_identifiers) == {"loyalty_id", "name", "email", "phone", "street_address", "device_ip"}
    assert set(schema.quasi_identifiers) == {"postcode", "city", "birth_date", "gender"}
    assert schema.hierarchies["birth_date"] == "age" and schema.hierarchies["postcode"] == "prefix"
    assert schema.sensitive == ("skin_type",) and schema.opt_out == ("opt_out",) and schema.free_text == ("order_note",)
    assert set(schema.keep) == {"event_type", "brand", "category", "price"}  # event fields and item attributes by name
    assert schema.undeclared == ("region",)  # judged by shapes.py before anything is written


def test_declared_roles_win_over_names(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps({"keep": ["city"], "audit": "skin_type", "hierarchies": {"postcode": "value"}}))

    schema = resolve_schema(list(RAW_COLUMNS), load_schema(path))

    assert "city" in schema.keep and "city" not in schema.quasi_identifiers
    assert schema.audit == ("skin_type",) and schema.sensitive == ()
    assert schema.hierarchies["postcode"] == "value" and schema.declared == {"city", "skin_type"}


def test_a_schema_naming_an_unknown_column_is_refused_naming_it():
    with pytest.raises(ConfigError, match="'e_mail'"):
        resolve_schema(list(RAW_COLUMNS), {"direct_identifiers": ["e_mail"]})


def test_an_unknown_role_is_refused():
    with pytest.raises(ConfigError, match="unknown role 'identifiers'"):
        resolve_schema(list(RAW_COLUMNS), {"identifiers": ["email"]})


def test_a_column_with_two_roles_is_refused():
    with pytest.raises(ConfigError, match="declared twice"):
        resolve_schema(list(RAW_COLUMNS), {"keep": ["email"], "direct_identifiers": ["email"]})


def test_a_log_without_a_customer_column_asks_for_a_schema():
    with pytest.raises(DataError, match='"customer_id": "COLUMN"'):
        resolve_schema(["shopper", "item_id", "timestamp"])


def test_a_hierarchy_for_a_column_that_is_not_a_quasi_identifier_is_refused():
    with pytest.raises(ConfigError, match="not a quasi-identifier"):
        resolve_schema(list(RAW_COLUMNS), {"hierarchies": {"brand": "value"}})


def test_an_unreadable_schema_file_is_refused(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text("{not json")

    with pytest.raises(ConfigError, match="not valid JSON"):
        load_schema(path)
