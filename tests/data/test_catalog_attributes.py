"""A shop's catalog columns become the attribute ids the attribute encoder reads (issue 33)."""

from __future__ import annotations

import pandas as pd

from fedrec.data import load_dataset
from fedrec.data.catalog_attributes import ATTRIBUTES, BANDS, attribute_columns, with_attribute_ids
from fedrec.data.synth import synthesize, write_synth


def catalog(n: int = 40) -> pd.DataFrame:
    return pd.DataFrame({
        "name": [f"Product {i}" for i in range(n)],  # one per item: names items, not a group
        "brand": [f"Brand {i % 4}" for i in range(n)],
        "category": ["serum", "mascara"] * (n // 2),
        "price": [3.0 + i for i in range(n)],
    }, index=pd.Index(range(1, n + 1), name="item_id"))


def test_brand_category_and_price_band_become_ids_and_the_name_does_not():
    items = with_attribute_ids(catalog())

    assert attribute_columns(catalog()) == ["brand", "category", "price"]
    assert all(len(ids) == 3 for ids in items[ATTRIBUTES])
    by_brand = items.groupby("brand")[ATTRIBUTES].apply(lambda lists: {ids[0] for ids in lists})
    assert all(len(ids) == 1 for ids in by_brand) and len({min(ids) for ids in by_brand}) == 4  # one id per brand
    price_ids = {ids[2] for ids in items[ATTRIBUTES]}
    assert len(price_ids) == BANDS  # forty prices in eight bands


def test_every_reader_of_the_same_catalog_numbers_it_alike():
    shuffled = catalog().sample(frac=1.0, random_state=3)

    assert with_attribute_ids(catalog())[ATTRIBUTES].to_dict() == with_attribute_ids(shuffled)[ATTRIBUTES].to_dict()


def test_a_catalog_with_its_own_ids_or_no_grouping_column_is_left_as_it_is():
    given = catalog().assign(attributes=[[1]] * 40)
    names_only = catalog()[["name"]]

    assert with_attribute_ids(given) is given
    assert ATTRIBUTES not in with_attribute_ids(names_only).columns


def test_a_shop_log_read_beside_its_catalog_has_item_attributes(tmp_path):
    log, _ = write_synth(synthesize(stores=2, users=200, seed=1), tmp_path / "shop.csv")
    (tmp_path / "shop_catalog.csv").rename(tmp_path / "elsewhere.csv")
    frame = pd.read_csv(log)[["customer_id", "item_id", "timestamp"]].rename(columns={"customer_id": "user_id"})
    frame.to_csv(tmp_path / "bare.csv", index=False)
    (tmp_path / "elsewhere.csv").rename(tmp_path / "bare_catalog.csv")

    data = load_dataset(str(tmp_path / "bare.csv"), min_interactions=3, short_users="drop")

    assert data.has_item_attributes  # from the catalog alone: the log carries no item column
    assert data.item_attributes["name"].notna().all()
