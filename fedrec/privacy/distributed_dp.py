"""Distributed DP (``--dp distributed``): the whole federation is one DP-SGD run.

Each round is one DP-SGD step. Every customer of every store is in the step's batch with
probability ``sample_rate`` (Poisson, drawn by their store); each store sends the sum of its
sampled customers' clipped gradients at the global model plus its *share* of the Gaussian
noise, N(0, (noise_multiplier x clip)^2 / survivors); the server divides the summed shares by
the expected batch and takes the optimizer step. Any ``survivors`` stores together carry the
noise of one central DP-SGD step, so the run is accounted once, as central DP-SGD with
(noise_multiplier, sample_rate, rounds), in one ledger. A round with fewer replies than
``survivors`` carries less noise: it is refused (under SecAgg+ the protocol's threshold is
``survivors``, so it cannot even be unmasked). The popularity prior is released the same way.

The unit of privacy is one customer's history at one store: a store sees only its own
pseudonyms, so a customer of two stores is two units unless pseudonyms are linked across
stores (``--link-stores``), when the bound holds per store-customer pair and composes over
the stores they shop at. Assumptions and what they mean: docs/privacy.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from fedrec.config import FederationConfig, TrainConfig
from fedrec.errors import ConfigError
from fedrec.privacy.dp_sgd import noise_for_target
from fedrec.privacy.ledger import ClientLedger, History, delta_for, epsilon_of, record_steps
from fedrec.privacy.popularity_prior import prior_segment

FEDERATION = "federation (distributed DP)"  # the run's one ledger
SHARES_SEEN = "server, seeing each store's share (no secure aggregation)"  # --no-secagg: what the server itself saw
MECHANISM = ("dp-sgd across stores: each round every store sends the clipped gradient sum of a Poisson sample of its "
             "customers plus its share of the Gaussian noise; the noise shares of the stores that reply add up to at "
             "least the full noise (a round with too few replies is refused)")
# What ledgers written before said (a ledger keeps its mechanism for life): the report reads them as MECHANISM.
EARLIER_MECHANISMS = ("dp-sgd across stores: each round every store sends the clipped gradient sum of a Poisson sample "
                      "of its customers plus a share of the gaussian noise; any `survivors` shares add up to the full noise",)
UNIT = "customer (one history at one store)"
FEWEST_SURVIVORS = 2  # one store's share alone would be the whole sum


@dataclass(frozen=True)
class DistributedPlan:
    """The one DP-SGD run a federation makes, fixed before round 1 (and again, identically, on resume)."""

    noise_multiplier: float  # of the summed noise, relative to max_grad_norm
    sample_rate: float  # each customer's chance to be in a round's batch
    max_grad_norm: float
    survivors: int  # fewest stores whose shares add up to the full noise
    customers: int  # in the whole federation (the accounting's data size; fixes the expected batch)
    rounds: int
    delta: float
    accountant: str
    prior_noise: float | None = None  # the popularity prior's total noise (none: no prior)
    largest_store: int = 0  # customers of the largest store (bounds a share's coordinates)

    @property
    def noise_checks(self) -> int:
        """The sums whose noise the server checks in a run: the prior's and every round's
        (they share one false-alarm rate, fedrec.privacy.noise_check)."""
        return self.rounds + 1

    @property
    def noise_share_std(self) -> float:
        """The standard deviation of the noise each store adds to each coordinate."""
        return self.noise_multiplier * self.max_grad_norm / math.sqrt(self.survivors)

    @property
    def prior_share(self) -> float | None:
        """Each store's noise multiplier on its item counts, so that ``survivors`` of them sum to the prior's."""
        return None if self.prior_noise is None else self.prior_noise / math.sqrt(self.survivors)

    @property
    def share_clip(self) -> float:
        """A bound on one coordinate of a store's share, for SecAgg+'s clipping: each sampled
        customer adds at most the clip norm to a coordinate; twice the largest store's expected
        sample plus 20, and 10 noise stds. Coordinates beyond it are clipped and counted."""
        return self.max_grad_norm * (2 * self.sample_rate * self.largest_store + 20) + 10 * self.noise_share_std

    @property
    def expected_batch(self) -> float:
        return self.sample_rate * self.customers

    def history(self, rounds: int) -> History:
        """The ledger history after the prior (if any) and ``rounds`` steps."""
        steps = [(self.noise_multiplier, self.sample_rate, rounds)] if rounds else []
        return [*prior_segment(self.prior_noise), *steps]

    @property
    def epsilon(self) -> float:
        """Epsilon once every planned round has run."""
        return epsilon_of(self.history(self.rounds), self.delta, self.accountant)

    def to_wire(self) -> dict[str, Any]:
        return {f"dp-plan-{key.replace('_', '-')}": value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> "DistributedPlan | None":
        values = {key[len("dp-plan-"):].replace("-", "_"): value for key, value in record.items()
                  if str(key).startswith("dp-plan-")}
        if not values:
            return None
        kinds = {"survivors": int, "customers": int, "rounds": int, "accountant": str, "largest_store": int}
        return cls(**{key: kinds.get(key, float)(value) for key, value in values.items()})


def survivors_needed(stores: int, dropout: float) -> int:
    """The fewest of ``stores`` sampled stores a round can complete with (``dropout`` may leave)."""
    return max(min(stores, FEWEST_SURVIVORS), stores - math.floor(dropout * stores))


def plan_distributed(train: TrainConfig, federation: FederationConfig, *, customers: int, stores: int,
                     uses_prior: bool, largest_store: int = 0) -> DistributedPlan:
    """Noise, sampling and rounds for the federation's DP-SGD run. Sampling is the centralised
    run's: rate 1 / ceil(customers / batch); rounds default to ``epochs`` of such steps."""
    if customers < 1:
        raise ConfigError("distributed DP: no store has a customer with 2 or more train items to learn from.")
    steps_per_epoch = max(1, math.ceil(customers / train.batch_size))
    sample_rate = 1.0 / steps_per_epoch
    rounds = federation.rounds or train.epochs * steps_per_epoch
    delta = delta_for(train.delta, customers)
    prior_noise = train.prior_noise if uses_prior and train.prior_noise else None
    if train.noise_multiplier is not None:
        noise = train.noise_multiplier
    else:
        noise = noise_for_target(train.target_epsilon, delta, sample_rate, rounds, train.accountant,
                                 tuple(prior_segment(prior_noise)))
    return DistributedPlan(noise, sample_rate, train.max_grad_norm, survivors_needed(stores, federation.dp_dropout),
                           customers, rounds, delta, train.accountant, prior_noise, largest_store)


class RunLedgers:
    """The run's ledgers under distributed DP, kept among the server's others: the federation's
    one DP-SGD run and, when the server saw each store's share (no SecAgg+), its view of one
    share, which carries 1/sqrt(survivors) of the noise. Both record what the stores released,
    whether or not enough shares arrived for the step."""

    def __init__(self, plan: DistributedPlan, ledgers: dict[str, ClientLedger], *, secure: bool) -> None:
        self.plan, self.ledgers = plan, ledgers
        ledgers.setdefault(FEDERATION, ClientLedger(FEDERATION, plan.accountant, plan.delta, plan.max_grad_norm,
                                                    mechanism=MECHANISM, unit=UNIT))
        if not secure:
            ledgers.setdefault(SHARES_SEEN, ClientLedger(
                SHARES_SEEN, plan.accountant, plan.delta, plan.max_grad_norm, unit=UNIT,
                mechanism="each store's noise share in clear (--no-secagg): noise multiplier / sqrt(survivors)"))

    def _noise(self, name: str, full: float) -> float:
        return full / math.sqrt(self.plan.survivors) if name == SHARES_SEEN else full

    def record_prior(self) -> None:
        if self.plan.prior_noise is not None:
            for name in (FEDERATION, SHARES_SEEN):
                if name in self.ledgers:
                    record_steps(self.ledgers[name], 0, self._noise(name, self.plan.prior_noise), 1.0)

    def record_round(self, round_number: int) -> None:
        for name in (FEDERATION, SHARES_SEEN):
            if name in self.ledgers:
                record_steps(self.ledgers[name], round_number, self._noise(name, self.plan.noise_multiplier),
                             self.plan.sample_rate)


def record_prior(ledger: ClientLedger, plan: DistributedPlan) -> None:
    """A store's ledger: the prior it took part in, at the full noise its customers are protected by."""
    if plan.prior_noise is not None:
        record_steps(ledger, 0, plan.prior_noise, 1.0)


def record_round(ledger: ClientLedger, round_number: int, plan: DistributedPlan) -> None:
    record_steps(ledger, round_number, plan.noise_multiplier, plan.sample_rate)
