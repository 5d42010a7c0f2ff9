"""The protection a store insists on, set on the store: the server cannot lower it.

The server is the party the privacy modes defend against, so what protects a store's
customers cannot come from the run config the server sends. A store's node config
(``flower-supernode --node-config "min-sum-stores=9 min-noise-multiplier=0.8"``; in simulation
``fedrec simulate --store-min-sum-stores/--store-min-noise``) fixes:

- ``min-sum-stores``: the fewest stores whose sum its update may be unmasked in. SecAgg+
  rebuilds a key from ``threshold`` shares, which only live stores give, so a sum is unmasked
  only over at least ``threshold`` stores: a setup whose threshold is below the floor is
  refused before any key is made. Under distributed DP the plan's ``survivors`` is a floor too
  (fewer shares carry less noise than the ledger records), and a share sent without SecAgg+ is
  a sum of one store: refused when the floor is above 1.
- ``min-noise-multiplier``: the least noise multiplier (of DP-SGD, or of the summed noise
  under distributed DP) it trains with.

The noise source is not a setting at all: every store draws from its own secret keystream
(fedrec.privacy.secret_noise), whatever the server sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from fedrec.errors import ConfigError, FloorRefused
from fedrec.federation import wire
from fedrec.privacy.distributed_dp import DistributedPlan

SIMULATED_FLOOR = "FEDREC_STORE_FLOOR"  # `fedrec simulate --store-min-*`: the simulated stores' settings, as JSON
SMALLEST_SUM = 2  # whatever a store sets: a "sum" of one store is its update in clear


@dataclass(frozen=True)
class StoreFloor:
    """What a store accepts (0: no floor of its own beyond the protocol's)."""

    min_sum_stores: int = 0
    min_noise_multiplier: float = 0.0

    def __post_init__(self) -> None:
        if self.min_sum_stores < 0 or not 0 <= self.min_noise_multiplier < float("inf"):
            raise ConfigError(f"a store floor needs min-sum-stores >= 0 and a finite min-noise-multiplier >= 0; got {self}.")

    @classmethod
    def from_node_config(cls, node_config: Mapping[str, Any], default: "StoreFloor | None" = None) -> "StoreFloor":
        """The node's own floor; keys it does not set keep ``default``'s (simulation's store settings)."""
        base = default or cls()
        try:
            stores = int(node_config.get(wire.NODE_MIN_SUM_STORES, base.min_sum_stores))
            noise = float(node_config.get(wire.NODE_MIN_NOISE, base.min_noise_multiplier))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"this SuperNode's floor in --node-config is not a number ({err}); set "
                              f"{wire.NODE_MIN_SUM_STORES}=9 {wire.NODE_MIN_NOISE}=0.8, for example.") from None
        return cls(stores, noise)

    def check_unmasking(self, threshold: int, sampled: int) -> None:
        """A SecAgg+ setup: refused when a sum of fewer than the floor's stores could be unmasked."""
        fewest = max(self.min_sum_stores, SMALLEST_SUM)
        if threshold < fewest:
            raise FloorRefused(
                f"secure aggregation over {sampled} stores with threshold {threshold} would let the server unmask a sum "
                f"of {threshold} stores; this store's floor is {fewest} (min-sum-stores in its node config). It takes "
                "no part in this round."
            )

    def check_plan(self, plan: DistributedPlan, *, threshold: int | None) -> None:
        """A distributed DP round: the plan's noise, and the sum its share goes into (``threshold``:
        SecAgg+'s, None when the share travels in clear)."""
        self.check_noise(plan.noise_multiplier)
        if threshold is None:
            if self.min_sum_stores > 1:
                raise FloorRefused(
                    f"this round sends the store's noise share in clear (no SecAgg+); its floor is a sum of at least "
                    f"{self.min_sum_stores} stores. Run with --secagg, or lower min-sum-stores on the store."
                )
            return
        if threshold < plan.survivors:
            raise FloorRefused(
                f"the plan's noise needs {plan.survivors} shares in a sum, but SecAgg+ would unmask a sum of "
                f"{threshold}: fewer shares carry less noise than every ledger records. This store takes no part."
            )
        self.check_unmasking(threshold, plan.survivors)

    def check_noise(self, noise_multiplier: float) -> None:
        if noise_multiplier < self.min_noise_multiplier:
            raise FloorRefused(
                f"the run asks for noise multiplier {noise_multiplier:.4g}, below this store's floor "
                f"{self.min_noise_multiplier:g} (min-noise-multiplier in its node config). It takes no part."
            )
