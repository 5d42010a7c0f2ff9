"""Per-store DP (``--dp local``, or ``--dp`` alone): each store runs DP-SGD on its own customers
with noise from its own secret keystream and accounts it in its own ledger; the server averages
noisy updates (masked too with --secagg). ``fedrec train --dp`` is this mode on pooled data."""

from __future__ import annotations

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.privacy.modes.base import DP_SGD_ROUND, LOCAL, LOCAL_SECAGG, PrivacyMode
from fedrec.privacy.popularity_prior import check_prior_fits_target


class Local(PrivacyMode):
    name = "local"
    summary = "each store, DP-SGD on its own update"
    audit_name = "per-store DP"
    stores_add_noise = True
    recipe_key = "dp"
    store_round = DP_SGD_ROUND
    attacker_views = ("each store's noised update (per-store DP)", "the sum of noised updates (per-store DP and SecAgg+)")

    def wire_label(self, *, secure: bool) -> str:
        return LOCAL_SECAGG if secure else LOCAL

    def check(self, train: TrainConfig, federation: FederationConfig, *, every_parameter_shared: bool,
              uses_popularity_prior: bool) -> None:
        self.check_noise(train, uses_popularity_prior=uses_popularity_prior)
        if federation.keep_optimizer_state:
            raise ConfigError(
                "--keep-optimizer-state is for non-private local training: under --dp each round's optimizer is "
                "Opacus' (its noise and accounting restart cleanly). Drop one of the two."
            )

    def check_centralised(self, train: TrainConfig) -> None:
        self.check_noise(train)

    def check_noise(self, train: TrainConfig, *, uses_popularity_prior: bool = False) -> None:
        """Exactly one of the noise and the budget, which plans the noise (and, for a model that
        starts from the popularity prior, a budget the prior alone does not spend)."""
        if (train.noise_multiplier is None) == (train.target_epsilon is None):
            raise ConfigError(
                f"--dp {self.name} needs exactly one of --noise-multiplier (e.g. 1.0) or --target-epsilon (e.g. 8); "
                + ("both were given." if train.noise_multiplier is not None else "neither was given.")
            )
        if uses_popularity_prior:
            check_prior_fits_target(train)
