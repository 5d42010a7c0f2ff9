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

Devices in shards (``--device-shards``, fedrec.federation.device_central_dp) are sampled by
Poisson with rate q from a secret generator, so the release is a sampled Gaussian mechanism
per round against anyone who cannot see the cohorts (RDP with rate q). The server draws the
cohorts and sees who takes part, so against it (and anyone it tells) sampling amplifies
nothing: a second ledger accounts the same rounds at q = 1. Both are per user (a device is
one user and all their data), delta below 1 / devices.
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


OUTSIDERS = "server (central DP), against outsiders with the release"
COHORT_KNOWN = "server (central DP), against the server (it sees who took part)"
VIEWERS = {OUTSIDERS: "epsilon_outsiders", COHORT_KNOWN: "epsilon_server"}  # ledger -> its metric and report key
DEVICE_UNIT = "user (a device: one user and all their data)"


def device_ledgers(train: TrainConfig, devices: int) -> dict[str, ClientLedger]:
    """The two ledgers of central DP on devices: the same rounds, with and without amplification."""
    delta = delta_for(train.delta, devices)
    return {
        OUTSIDERS: ClientLedger(OUTSIDERS, "rdp", delta, train.max_grad_norm, unit=DEVICE_UNIT,
                                mechanism="sampled gaussian: secret Poisson cohorts (rate q), each device's update "
                                          "clipped on the device, noise on the sum, divided by q x N"),
        COHORT_KNOWN: ClientLedger(COHORT_KNOWN, "rdp", delta, train.max_grad_norm, unit=DEVICE_UNIT,
                                   mechanism="gaussian on the sum of device-clipped updates, cohorts known (q = 1)"),
    }


def record_device_round(ledgers: dict[str, ClientLedger], round_number: int, noise_multiplier: float, rate: float) -> None:
    record_steps(ledgers[OUTSIDERS], round_number, noise_multiplier, rate)
    record_steps(ledgers[COHORT_KNOWN], round_number, noise_multiplier, 1.0)


def epsilons_by_viewer(ledgers: dict[str, ClientLedger]) -> dict[str, float]:
    """{"epsilon_outsiders": .., "epsilon_server": ..} when the run keeps both ledgers, else {}."""
    return {key: ledgers[name].epsilon for name, key in VIEWERS.items() if name in ledgers}


WHICH_HOLDS = (
    "epsilon_outsiders holds against anyone who holds the release (model, card, item index) but not the cohorts: "
    "they are Poisson draws from a secret generator the server never writes down. epsilon_server holds against "
    "anyone who also knows who took part each round, the server first: sampling amplifies nothing against them. "
    "The server adds the noise, so it is trusted with what comes before it: it sees each shard's sum of clipped "
    "updates (deployed, each device's clipped update), which no epsilon covers; it never sees a device's unclipped "
    "update."
)


def against_whom(ledgers: dict[str, ClientLedger]) -> dict[str, float | str] | None:
    """The report's two epsilons and which holds against whom (None outside central DP on devices)."""
    epsilons = epsilons_by_viewer(ledgers)
    return {**epsilons, "which_holds": WHICH_HOLDS} if epsilons else None
