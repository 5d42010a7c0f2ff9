"""What secure aggregation (Flower's SecAgg+) is set to, what it refuses, and how exact it is.

Flower does the protocol (fedrec.federation.secure_rounds drives its SecAggPlusWorkflow; each
client's secaggplus_mod masks). Each store sends ``w * delta`` with w = its examples /
max_weight, clipped per coordinate to [-clip, clip] and stochastically rounded to one of
QUANTIZATION_RANGE steps; the server unmasks only the sum and divides by the summed weights.
"""

from __future__ import annotations

import math

import numpy as np

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.federation.mime import MIME
from fedrec.federation.scaffold import SCAFFOLD

QUANTIZATION_RANGE = 2**22  # Flower's default: integer steps across [-clip, clip]
MODULUS_RANGE = 2**32  # Flower's default (its maximum): masks and sums live modulo this
FULL_GRAPH_UP_TO = 11  # stores per round up to which every store is every other's neighbour
FEWEST_STORES = 3  # with two, either store can subtract its own update from the sum


def check_secure_aggregation(train: TrainConfig, federation: FederationConfig) -> None:
    """Refuse what SecAgg+ cannot combine with, before any process starts (configs resolved)."""
    if not federation.secagg:
        return
    if federation.drift_correction in (MIME, SCAFFOLD):
        raise ConfigError(
            f"--drift-correction {federation.drift_correction} sends each store's gradient statistics beside the model; "
            "SecAgg+ masks only the model, so they would reach the server per store in clear. Use "
            "--drift-correction none (or leave it to the recipe) with --secagg."
        )
    if federation.touched_rows:
        raise ConfigError(
            "--touched-rows reads which item rows each store changed: exactly what --secagg hides (the items its "
            "customers bought). Use --no-touched-rows (or leave it to the recipe) with --secagg."
        )
    if federation.partition == "store" and federation.num_clients is not None and federation.num_clients < FEWEST_STORES:
        raise ConfigError(
            f"--secagg with {federation.num_clients} stores: with fewer than {FEWEST_STORES}, a store learns the other's "
            "update from the sum. Federate at least 3 stores."
        )


def protocol_sizes(sampled: int, shares: int = 0) -> tuple[int, int]:
    """(num_shares, reconstruction_threshold) for a round that sampled ``sampled`` stores.

    Every store is every other's neighbour up to FULL_GRAPH_UP_TO stores (SecAgg); beyond,
    2*ceil(log2 n)+1 neighbours (SecAgg+'s logarithmic graph), at least 11. An even count
    below ``sampled`` breaks Flower's client mod, so counts are odd or all stores. The
    threshold is a majority of a store's neighbourhood: fewer colluding neighbours learn
    nothing, and a round survives as long as every store keeps a majority of live neighbours.
    """
    if shares == 0:
        shares = sampled if sampled <= FULL_GRAPH_UP_TO else max(FULL_GRAPH_UP_TO, 2 * math.ceil(math.log2(sampled)) + 1)
    shares = min(shares, sampled)
    if shares < sampled and shares % 2 == 0:
        shares += 1
    return shares, max(2, shares // 2 + 1)


def distributed_protocol_sizes(sampled: int, survivors: int) -> tuple[int, float | int]:
    """(num_shares, reconstruction_threshold) under distributed DP: every store is every other's
    neighbour and a key needs ``survivors`` shares, so no sum of fewer stores' noise shares can be
    unmasked. Flower takes an int threshold only below num_shares; all of them is the float 1.0.
    Fewer stores than ``survivors`` is no round at all (ValueError): the threshold is never
    lowered to fit the stores at hand, since their sum would carry less noise than accounted."""
    if sampled < survivors:
        raise ValueError(f"{sampled} stores cannot carry the noise of {survivors} shares; the round is not started")
    survivors = max(2, survivors)
    return sampled, (1.0 if survivors >= sampled else survivors)


def weight_shares(num_examples: list[int], max_weight: float) -> np.ndarray:
    """Each store's weight as the protocol carries it: examples / max_weight, rounded to 1/Q."""
    return np.round(np.asarray(num_examples, dtype=np.float64) / max_weight * QUANTIZATION_RANGE) / QUANTIZATION_RANGE


def error_bound(num_examples: list[int], max_weight: float, clip: float) -> float:
    """The most the securely averaged update can differ, per coordinate, from the exact
    example-weighted mean of the stores' deltas, when no coordinate was clipped: each store's
    stochastic rounding (one step, 2 clip / Q) plus the rounding of its weight (half of 1/Q,
    times twice its largest unclipped delta, clip / w: once in the sum, once in the summed
    weights), over the summed weights. Stores that sent no examples add nothing."""
    weights = weight_shares(num_examples, max_weight)
    counted = weights[weights > 0]
    if not len(counted):
        return 0.0
    rounding = 2.0 * clip / QUANTIZATION_RANGE * len(counted)
    weight_rounding = float(np.sum(1.0 / QUANTIZATION_RANGE * clip / counted))
    return (rounding + weight_rounding) / float(counted.sum())


def clipped_coordinates(deltas: list[np.ndarray], num_examples: int, max_weight: float, clip: float) -> int:
    """Coordinates the protocol will clip: where weight * delta leaves [-clip, clip]."""
    weight = num_examples / max_weight
    return int(sum(np.count_nonzero(np.abs(weight * d) > clip) for d in deltas))
