"""A customer of several stores: their privacy loss, computed from the run's ledgers.

Each store protects its own pseudonym of a customer, so a customer of k stores is k units.
Group privacy's generic bound, (k eps, k e^((k-1) eps) delta), is far too loose to report at
eps 8 (delta above 1). The accountant gives a real one:

- per-store DP (``--dp local``): each store's DP-SGD is its own mechanism on its own data, so
  the customer's loss is the composition of the k stores' histories (the k with the largest
  epsilon: the worst such customer);
- distributed DP: one federation-wide DP-SGD sums every store's clipped gradients, so the k
  pseudonyms are a group inside one mechanism. Two bounds, the smaller reported: RDP's group
  privacy (Mironov 2017, Proposition 2: a group of 2^c turns (alpha, rho) into (alpha / 2^c,
  3^c rho)), converted at the run's delta; and a step dominated (by joint convexity of the
  hockey-stick divergence over which pseudonyms are sampled) by one unit present with
  probability 1 - (1 - q)^k that adds k times the clip: the history at noise multiplier
  sigma / k and that rate. For the README's main job (noise 0.835, rate 1/22, 220 steps, prior
  noise 5) a customer of 2 stores is at epsilon 25.8 by the first, 74.8 by the second.

Central DP (``--dp central``) protects whole clients, not store pseudonyms: nothing to add.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping

import numpy as np
from opacus.accountants.analysis import rdp

from fedrec.privacy.central_dp import SERVER
from fedrec.privacy.distributed_dp import FEDERATION, SHARES_SEEN
from fedrec.privacy.ledger import ClientLedger, History, epsilon_of

STORES = (2, 3)  # the customers of several stores the report speaks for


def several_stores(ledgers: Mapping[str, ClientLedger], stores: int) -> dict[str, Any] | None:
    """{stores, epsilon, delta, how, group_privacy_epsilon, group_privacy_delta} for a customer
    of ``stores`` stores, or None where the run protects no store pseudonyms or has too few stores."""
    if SERVER in ledgers:
        return None
    federation = ledgers.get(FEDERATION)
    if federation is not None:
        ledger = federation
        dominated: History = [(n / stores, 1.0 - (1.0 - q) ** stores, s) for n, q, s in federation.history]
        with warnings.catch_warnings():  # PRV on a rate-1 segment (the prior) divides by zero harmlessly
            warnings.filterwarnings("ignore", category=RuntimeWarning, message="divide by zero")
            bounds = {"RDP group privacy (Mironov 2017)": rdp_group_epsilon(federation.history, federation.delta, stores),
                      f"one unit a step at noise / {stores}, sampled when any of its pseudonyms is":
                          epsilon_of(dominated, federation.delta, federation.accountant)}
        how, epsilon = min(bounds.items(), key=lambda item: item[1])
    else:
        own = sorted((ledger for name, ledger in ledgers.items() if name != SHARES_SEEN), key=lambda l: l.epsilon)
        if len(own) < stores:
            return None
        chosen = own[-stores:]
        ledger, how = chosen[-1], f"the composition of the {stores} stores' histories with the largest epsilon"
        epsilon = epsilon_of([segment for one in chosen for segment in one.history], ledger.delta, ledger.accountant)
    single = ledger.epsilon
    return {"stores": stores, "epsilon": epsilon, "delta": ledger.delta, "how": how,
            "group_privacy_epsilon": stores * single,
            "group_privacy_delta": stores * math.exp((stores - 1) * single) * ledger.delta}


ORDERS = np.array([1.25 + step / 8 for step in range(800)])  # up to 101: RDP orders for the group bound


def rdp_group_epsilon(history: History, delta: float, stores: int) -> float:
    """Epsilon at ``delta`` of a group of ``stores`` in ``history``'s subsampled Gaussian
    mechanism, by RDP group privacy for the next power of two."""
    doublings = math.ceil(math.log2(stores))
    rho = sum(rdp.compute_rdp(q=q, noise_multiplier=n, steps=s, orders=ORDERS) for n, q, s in history)
    orders = ORDERS / 2**doublings
    kept = orders > 1
    epsilon, _ = rdp.get_privacy_spent(orders=orders[kept], rdp=(3**doublings) * rho[kept], delta=delta)
    return float(epsilon)
