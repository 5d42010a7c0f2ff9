"""Distributed DP (``--dp distributed``): the federation is one DP-SGD run. Each round every
store sends the clipped gradient sum of a Poisson sample of its customers plus its share of the
noise (fedrec.privacy.distributed_dp), masked by SecAgg+ by default; the server steps on the sum."""

from __future__ import annotations

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.privacy.modes.base import DISTRIBUTED, DISTRIBUTED_CLEAR, NOISE_SHARE_ROUND, PrivacyMode
from fedrec.privacy.modes.local import Local


class Distributed(Local):
    name = "distributed"
    summary = "the stores, each a share of one DP-SGD run, under SecAgg+"
    audit_name = "distributed DP"
    joint_dp_sgd = True
    secagg_default = True
    recipe_key = "distributed"
    store_round = NOISE_SHARE_ROUND
    attacker_views = ("each store's noise share (distributed DP without SecAgg+)", "the noisy sum (distributed DP with SecAgg+)")

    def model_recipe(self, *, federated: bool) -> tuple[bool, bool]:
        return False, True  # one central DP-SGD run: the model's centralised DP recipe

    def wire_label(self, *, secure: bool) -> str:
        return DISTRIBUTED if secure else DISTRIBUTED_CLEAR

    def check(self, train: TrainConfig, federation: FederationConfig, *, every_parameter_shared: bool,
              uses_popularity_prior: bool) -> None:
        self.check_noise(train, uses_popularity_prior=uses_popularity_prior)
        if not every_parameter_shared:
            raise ConfigError(
                f"--dp distributed makes the federation one DP-SGD run over the shared model; --model {train.model} also "
                "trains per-customer parameters that stay on the store (MF's user vectors). Use --dp local for it."
            )
        if federation.partition != "store":
            raise ConfigError(
                "--dp distributed needs stores as clients (--partition store): a one-customer client's share of the "
                "noise would hide nothing from the others' sum, and cross-device rounds sample clients, not customers."
            )
        if federation.fraction is not None and federation.fraction < 1.0:
            raise ConfigError(
                f"--dp distributed samples customers inside every store; --fraction {federation.fraction:g} would also "
                "sample stores, which the accounting does not cover. Use --fraction 1."
            )
        if federation.keep_optimizer_state:
            raise ConfigError("--dp distributed keeps the only optimizer at the server; drop --keep-optimizer-state.")

    def check_centralised(self, train: TrainConfig) -> None:
        PrivacyMode.check_centralised(self, train)  # a federated mode: fedrec train refuses it
