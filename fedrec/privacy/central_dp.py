"""User-level DP at the server (``--central-dp``), for cross-device runs where one client
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
from fedrec.errors import ConfigError
from fedrec.privacy.ledger import ClientLedger, delta_for, epsilon_of, record_steps
from fedrec.privacy.popularity_prior import prior_segment

SERVER = "server (central DP)"


def check_privacy_modes(train: TrainConfig, federation: FederationConfig, *, uses_popularity_prior: bool) -> None:
    """Refuse settings that cannot work, before any process starts or any budget is spent
    (``uses_popularity_prior``: the model starts DP training from a noisy popularity release).
    """
    if uses_popularity_prior:
        _check_prior_fits_target(train)
    if train.dp and federation.keep_optimizer_state:
        raise ConfigError(
            "--keep-optimizer-state is for non-private local training: under --dp each round's optimizer is "
            "Opacus' (its noise and accounting restart cleanly). Drop one of the two."
        )
    if not federation.central_dp:
        return
    if train.dp:
        raise ConfigError("--dp (client DP-SGD) and --central-dp (server-side) are two different guarantees; choose one.")
    if train.noise_multiplier is None:
        raise ConfigError("--central-dp needs --noise-multiplier (noise std / clipping norm), e.g. --noise-multiplier 1.0.")
    if federation.strategy == "fedadam":
        raise ConfigError(
            "--central-dp bounds each client's influence on an average; FedAdam rescales the average per "
            "coordinate, which undoes that bound. Use --strategy fedavg or fedavgm."
        )


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


def _check_prior_fits_target(train: TrainConfig) -> None:
    """The popularity prior is planned into --target-epsilon; at delta <= 1e-5 (the default
    is smaller still) its epsilon is at least this much, so a target below it cannot work."""
    if not (train.dp and train.target_epsilon is not None and train.prior_noise):
        return
    prior = epsilon_of(prior_segment(train.prior_noise), train.delta if train.delta is not None else 1e-5, train.accountant)
    if prior >= train.target_epsilon:
        raise ConfigError(
            f"the popularity prior alone (--prior-noise {train.prior_noise:g}) spends epsilon {prior:.2f} >= "
            f"--target-epsilon {train.target_epsilon:g}; raise --prior-noise (e.g. 10) or drop it with --prior-noise 0."
        )
