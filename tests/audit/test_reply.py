"""One reply carries every audit's sums; the server's sum of replies equals the central audit."""

from __future__ import annotations

import numpy as np
import pytest

from fedrec.audit.exposure import exposure_sums
from fedrec.audit.group_utility import finish_group_utility, group_utility_sums
from fedrec.audit.groupings import vocabulary
from fedrec.audit.popularity import finish_popularity, interaction_counts
from fedrec.audit.providers import finish_provider_exposure
from fedrec.audit.reply import add_replies, layout, pack, unflatten, unpack
from fedrec.audit.reply import flatten as flatten_sums
from fedrec.errors import DataError


def reply(pop, rows, labels):
    """What one client sends: its users' store utility and exposure sums, in one dict."""
    part = pop.rows(rows)
    return pack(
        group_utility_sums(part.ranks, part.stores, part.keys, labels=labels, name="store", n_boot=40, seed=5),
        exposure_sums(part.top_items, part.histories, n_items=part.n_items),
    )


def flatten(value, prefix=""):
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in flatten(item, f"{prefix}/{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in flatten(item, f"{prefix}/{i}").items()}
    return {prefix: value}


def test_a_reply_is_a_dict_of_arrays_that_round_trips(population):
    labels = vocabulary(population.stores)
    sent = reply(population, np.arange(50), labels)

    received = unpack(sent)

    assert all(isinstance(v, np.ndarray) for v in sent.values())
    assert sorted(received) == ["exposure", "group-utility/store"]
    assert received["group-utility/store"].labels == labels
    assert np.array_equal(received["exposure"].rec_counts, pack(received["exposure"])["exposure/rec-counts"])


def test_three_clients_replies_add_up_to_the_central_audit(population):
    labels = vocabulary(population.stores)
    everyone = np.arange(len(population.ranks))
    client_of = np.random.default_rng(3).integers(0, 3, len(everyone))
    popularity = interaction_counts(population.histories, n_items=population.n_items)
    brands = np.r_[-1, np.arange(population.n_items) % 7]

    def finished(sums):
        return {
            "utility": finish_group_utility(sums["group-utility/store"], min_group_size=30),
            "popularity": finish_popularity(sums["exposure"], popularity=popularity),
            "brands": finish_provider_exposure(sums["exposure"], item_provider=brands, target=popularity,
                                               labels=[f"b{i}" for i in range(7)], name="brand"),
        }

    central = finished(unpack(reply(population, everyone, labels)))
    federated = finished(add_replies(reply(population, np.flatnonzero(client_of == c), labels) for c in range(3)))

    assert federated["utility"] == central["utility"]  # integer sums: exact
    flat_fed, flat_central = flatten(federated), flatten(central)  # float exposure: to rounding
    assert flat_fed.keys() == flat_central.keys()
    for key, value in flat_central.items():
        assert flat_fed[key] == (pytest.approx(value, rel=1e-12) if isinstance(value, float) else value), key


def test_a_reply_missing_an_audit_is_refused(population):
    labels = vocabulary(population.stores)
    full = reply(population, np.arange(10), labels)
    partial = {k: v for k, v in full.items() if not k.startswith("exposure/")}

    with pytest.raises(DataError, match="every client"):
        add_replies([full, partial])


def test_an_array_of_the_wrong_shape_is_refused(population):
    sent = reply(population, np.arange(10), vocabulary(population.stores))
    sent["exposure/rec-counts"] = sent["exposure/rec-counts"][:-1]

    with pytest.raises(DataError, match="rec_counts"):
        unpack(sent)


def test_a_secure_sum_of_flat_replies_cuts_back_into_the_added_sums(population):
    """What SecAgg+ adds: each client's sums as one float vector in the server's key order;
    the layout (specs only, no values) is enough to cut the total back, counts exact."""
    labels = (*vocabulary(population.stores), "other")  # a fixed vocabulary holds labels no user has
    parts = [unpack(reply(population, rows, labels)) for rows in (np.arange(0, 40), np.arange(40, 90))]
    keys = sorted(parts[0])
    shape = layout(pack(*parts[0].values()))

    total = unflatten(sum(flatten_sums(part, keys) for part in parts), shape, keys)

    added = add_replies(pack(*part.values()) for part in parts)
    assert all(name.endswith("/spec") for name in shape)
    assert np.array_equal(total["group-utility/store"].boot_rank_counts, added["group-utility/store"].boot_rank_counts)
    assert np.array_equal(total["exposure"].rec_counts, added["exposure"].rec_counts)
    assert np.allclose(total["exposure"].exposure, added["exposure"].exposure, rtol=0, atol=1e-9)
    finished = finish_group_utility(total["group-utility/store"], min_group_size=1)
    assert "other" not in finished["groups"] and "other" not in finished["suppressed"]  # no users: no group
    with pytest.raises(DataError, match="every store must flatten the keys"):
        unflatten(flatten_sums(parts[0], keys)[:-1], shape, keys)
