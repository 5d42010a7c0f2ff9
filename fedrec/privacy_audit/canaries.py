"""Dirac canaries: an audit with the power to test epsilon 8, in the run it audits.

The membership attack scores at most a few thousand held-out customers, so the largest
epsilon it could ever prove is about 5.7 on Beauty: a run without noise that claims 8 would
pass it. The canaries (fedrec.privacy.canaries) give the audit as many trials as it needs in
the one run (Steinke, Nasr and Jagielski, "Privacy Auditing with One (1) Training Run",
NeurIPS 2023, white-box with Dirac canaries; the gradient canaries of Nasr et al., "Tight
Auditing of Differentially Private Machine Learning", USENIX Security 2023): every store's
DP-SGD carried 2m fake customers, each owning one coordinate no real gradient touches, about half
of them taking part by a secret fair coin each, sampled and noised by the store's own code in the
same draw as the model. The audit reads a store's summed canary coordinates and guesses
"took part" where they are high. Each coordinate sees only its own canary's coin, sampling
and noise, so the guesses are independent trials of the DP-SGD steps the canaries went
through, and Clopper-Pearson bounds on their true- and false-positive rates give an epsilon
lower bound (``split_epsilon_lower_bound``) that an honest run keeps below those steps'
accounted epsilon. With m = 40,000 every guess right proves about 8.6: what a run without
noise gives. Under --dp distributed the stores' noise is each round's shares, which the check
coordinates test in the run itself (fedrec.privacy.noise_check); the canaries ride along
per-store DP-SGD only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fedrec.privacy.attack_metrics import epsilon_lower_bound, split_epsilon_lower_bound
from fedrec.privacy.canaries import canary_file, load_canaries
from fedrec.privacy.ledger import ClientLedger, epsilon_of

CONFIDENCE = 0.95


@dataclass(frozen=True)
class CanaryAudit:
    store: str
    canaries_in: int  # the canaries whose coin let them take part
    canaries_out: int
    steps: int
    accounted_epsilon: float  # of the DP-SGD steps the canaries went through (the run's prior release is not among them)
    epsilon_lower_bound: float  # at 95% confidence, threshold chosen on one half, counted on the other
    largest_provable: float  # what the same counts give when every guess is right
    bound_tpr: float
    bound_fpr: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def canary_audit(state_dir: Path, ledger: ClientLedger, *, seed: int) -> CanaryAudit | None:
    """The bound from the canaries the store of ``ledger`` kept in ``state_dir`` (None when it
    kept none: no per-store DP-SGD, or a run from before them)."""
    found = load_canaries(canary_file(state_dir, ledger.client))
    if found is None or not found.history:
        return None
    scores, taking_part = found.scores, found.taking_part
    bound = split_epsilon_lower_bound(scores[taking_part], scores[~taking_part], delta=ledger.delta, seed=seed,
                                      confidence=CONFIDENCE)
    inside, outside = int(taking_part.sum()), int((~taking_part).sum())
    evaluated_in, evaluated_out = inside - inside // 2, outside - outside // 2  # the evaluation halves (np.array_split)
    return CanaryAudit(store=ledger.client, canaries_in=inside, canaries_out=outside, steps=sum(count for _, _, count in found.history),
                       accounted_epsilon=epsilon_of(found.history, ledger.delta, ledger.accountant),
                       epsilon_lower_bound=bound.epsilon,
                       largest_provable=epsilon_lower_bound(evaluated_in, evaluated_in, 0, evaluated_out, ledger.delta,
                                                            CONFIDENCE),
                       bound_tpr=bound.tpr, bound_fpr=bound.fpr)
