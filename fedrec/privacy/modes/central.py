"""User-level DP at the server (``--dp central``): the server clips each client's update and
noises the average from its own secret keystream (fedrec.privacy.central_dp); for cross-device
runs where one client is one user. On device shards each device clips its own update and the
cohorts are secret Poisson draws (fedrec.federation.device_central_dp). The server sees each
(clipped) update, so not with --secagg."""

from __future__ import annotations

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.privacy.modes.base import CENTRAL, PrivacyMode


class Central(PrivacyMode):
    name = "central"
    summary = "the server, on the clipped clients' average"
    audit_name = "central DP"
    server_adds_noise = True

    def wire_label(self, *, secure: bool) -> str:
        return CENTRAL

    def check(self, train: TrainConfig, federation: FederationConfig, *, every_parameter_shared: bool,
              uses_popularity_prior: bool) -> None:
        self.check_budget_options(train)
        if train.noise_multiplier is None:
            raise ConfigError("--dp central needs --noise-multiplier (noise std / clipping norm), e.g. --noise-multiplier 1.0.")
        if federation.strategy == "fedadam":
            raise ConfigError(
                "--dp central bounds each client's influence on an average; FedAdam rescales the average per "
                "coordinate, which undoes that bound. Use --strategy fedavg or fedavgm."
            )
        if federation.secagg:
            raise ConfigError(
                "--secagg hides each store's update; --dp central clips each store's update at the server, so it needs "
                "to see them. For DP with --secagg use --dp local or --dp distributed (stores add the noise before masking)."
            )
