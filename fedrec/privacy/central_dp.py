"""User-level DP at the server (``--dp central``), for cross-device runs where one client
is one user: Flower's ``DifferentialPrivacyServerSideFixedClipping`` (its noise drawn from a
secret keystream: fedrec.federation.secret_central_dp) clips each client's
update to ``max-grad-norm`` and adds Gaussian noise of std noise x norm / sampled clients
to the average. Clients send a unit weight, so one client's share of the average is
bounded whatever its data size.

Accounting is ours, in the same ledger as client DP, without sampling amplification
(q = 1 per round): Flower samples a fixed number of clients without replacement, which
the Poisson-sampling analysis does not cover, so the bound is the conservative one
(the same choice Flower's own accountant enforces for fixed clipping).
"""

from __future__ import annotations

from fedrec.config import FederationConfig, TrainConfig
from fedrec.privacy.ledger import ClientLedger, delta_for, record_steps

SERVER = "server (central DP)"


def sampled_clients(federation: FederationConfig) -> int:
    """Clients Flower samples per round (FedAvg: fraction of those available, at least min)."""
    return max(federation.min_clients, int(federation.min_available * federation.fraction))


def central_ledger(train: TrainConfig, population: int) -> ClientLedger:
    return ClientLedger(
        SERVER, "rdp", delta_for(train.delta, population), train.max_grad_norm,
        mechanism="gaussian on clipped client updates (flower server-side fixed clipping), no sampling amplification",
        unit="client (in cross-device runs: one user and all their data)",
    )


def record_central_round(ledger: ClientLedger, round_number: int, noise_multiplier: float) -> None:
    record_steps(ledger, round_number, noise_multiplier, 1.0)
