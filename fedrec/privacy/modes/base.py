"""What a privacy mode is: who adds the DP noise, and everything that follows from it.

A mode is one object (one file beside this one, one line in the registry). The rest of fedrec
asks it; nothing outside this package compares a mode's name or class. What a mode decides:

- its checks and the recipe it imposes (``check``, ``check_centralised``, ``recipe_key``,
  ``model_recipe``, ``secagg_default``);
- what its stores may send: the wire contract's label of the mode (``wire_label``) and what it
  discloses outside the accounting (fedrec.federation.wire_contract keys its table on the label);
- where its noise is drawn and whose ledgers record it (``stores_add_noise``: each store's
  own secret keystream and ledger; ``server_adds_noise``: the server's, one server ledger);
- how the server aggregates (``joint_dp_sgd``: the stores' noise shares are one DP-SGD step at
  the server; ``clips_at_server``: Flower's server-side clipping wraps the strategy);
- the store's round (``store_round``) and what a privacy audit replays (``audit_views``).
"""

from __future__ import annotations

from typing import ClassVar

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError

# The wire contract's labels (fedrec.federation.wire_contract): what a store may send is keyed
# on them. A new mode sends what one of these allows, or adds its own label to that table.
OFF, SECAGG, LOCAL, LOCAL_SECAGG, DISTRIBUTED, DISTRIBUTED_CLEAR, CENTRAL = (
    "off", "off+secagg", "local", "local+secagg", "distributed", "distributed (no secagg)", "central")
WIRE_LABELS = (OFF, SECAGG, LOCAL, LOCAL_SECAGG, DISTRIBUTED, DISTRIBUTED_CLEAR, CENTRAL)

# A store's round, by what it sends (fedrec.federation.client_app dispatches once on it).
PLAIN_ROUND, DP_SGD_ROUND, NOISE_SHARE_ROUND = "plain update", "dp-sgd update", "noise share"


class PrivacyMode:
    """One privacy mode. Subclasses set the class attributes and override the checks."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for --help and reports
    audit_name: ClassVar[str]  # how a privacy audit names it
    stores_add_noise: ClassVar[bool] = False  # stores clip and noise their own training (DP-SGD), on their ledgers
    server_adds_noise: ClassVar[bool] = False  # the server clips each store's update and noises the average
    joint_dp_sgd: ClassVar[bool] = False  # the federation is one DP-SGD run; stores send shares of its noise
    secagg_default: ClassVar[bool] = False  # --secagg when not given
    recipe_key: ClassVar[str] = "plain"  # the federation recipe table's column (fedrec.federation.recipes)
    store_round: ClassVar[str] = PLAIN_ROUND
    # What a privacy audit's curious server holds of one round: each store's reply, and their sum.
    attacker_views: ClassVar[tuple[str, str]] = ("each store's update (no defence)", "the sum of updates (SecAgg+)")

    @property
    def private(self) -> bool:
        """Any DP noise at all: validation then picks no round, drift statistics stay home."""
        return self.stores_add_noise or self.server_adds_noise

    def model_recipe(self, *, federated: bool) -> tuple[bool, bool]:
        """(federated, private): which of a model's recipe layers apply (Recommender.recipe)."""
        return federated, self.stores_add_noise

    def wire_label(self, *, secure: bool) -> str:
        """The wire contract's label for this mode with or without SecAgg+."""
        return SECAGG if secure else OFF

    def check(self, train: TrainConfig, federation: FederationConfig, *, every_parameter_shared: bool,
              uses_popularity_prior: bool) -> None:
        """Refuse what this mode cannot do, naming the fix; configs resolved or not. Runs
        before any data is read (fedrec.federation.checks.check_options)."""
        self.check_budget_options(train)

    def check_centralised(self, train: TrainConfig) -> None:
        """``fedrec train`` (one data holder, no federation) in this mode, or why not."""
        raise ConfigError(f"--dp {self.name} is a federated privacy mode; fedrec train runs DP-SGD on the pooled data "
                          "with --dp (or --dp local), or trains without DP.")

    def check_budget_options(self, train: TrainConfig) -> None:
        """The budget and prior options only apply to modes whose stores account their own noise."""
        if not self.stores_add_noise and (train.target_epsilon is not None or train.max_epsilon is not None
                                          or train.lifetime_epsilon is not None):
            raise ConfigError(f"--target-epsilon, --max-epsilon and --lifetime-epsilon apply when stores add the noise "
                              f"(--dp local or --dp distributed), not under --dp {self.name}.")
        if not self.stores_add_noise and train.prior_noise:
            raise ConfigError(f"--prior-noise is the noise of the DP popularity prior the stores release before DP-SGD "
                              f"(--dp local or --dp distributed); drop it under --dp {self.name}.")

    def __repr__(self) -> str:
        return f"<privacy mode {self.name}>"
