"""Dirac canaries: fake customers a store's DP-SGD carries so that the privacy audit can test
the noise of the very run it audits (fedrec.privacy_audit.canaries scores them).

Each store's training adds 2 x CANARIES customers of its own, each owning one coordinate that no
real gradient touches: its clipped gradient is the clip there and 0 elsewhere. Each takes part
by a fair coin of OS entropy, drawn once per store (about half do). Every DP-SGD step samples them with
the step's own sample rate (their own nonce: the customers' sample is unchanged), and noises
their block in the same draw as the model's clipped sum (the draw's prefix, the model's noise,
is unchanged): whatever the noise step does to the model, it does to them. The store keeps,
per canary, the noised coordinate summed over the steps, and the steps' (noise, rate, count):
no customer data, kept in its own state folder beside its ledger. (Steinke, Nasr and Jagielski,
"Privacy Auditing with One (1) Training Run", NeurIPS 2023: Dirac canaries, white-box.)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fedrec.privacy.ledger import History
from fedrec.rundir import write_torch

CANARIES = 40_000  # about a side (each a fair coin): 80,000 coordinates a step (the LSTM's model has 270,000)
CANARY_SUFFIX = ".canaries.pt"


@dataclass
class Canaries:
    """One store's canaries: who takes part, their summed noised coordinates, the steps taken."""

    taking_part: np.ndarray  # (2m,) bool
    scores: np.ndarray  # (2m,) float64
    history: History = field(default_factory=list)  # (noise multiplier, sample rate, steps) the canaries went through

    @classmethod
    def fresh(cls, canaries: int = CANARIES) -> "Canaries":
        """A store's canaries before its first step: a fair coin each, read from OS entropy
        (no seeded generator: the audit's trials rest on the coins being independent and secret)."""
        coins = np.unpackbits(np.frombuffer(os.urandom((2 * canaries + 7) // 8), dtype=np.uint8))[: 2 * canaries]
        return cls(coins.astype(bool), np.zeros(2 * canaries, dtype=np.float64))

    @property
    def size(self) -> int:
        return len(self.taking_part)

    def clipped_sum(self, sampled: np.ndarray, clip: float) -> torch.Tensor:
        """This step's clipped gradient sum on the canary block: the clip where a canary that
        takes part was sampled."""
        block = torch.zeros(self.size)
        block[torch.from_numpy(sampled[self.taking_part[sampled]])] = clip
        return block

    def add_step(self, noised: torch.Tensor, noise_multiplier: float, sample_rate: float) -> None:
        self.scores += noised.double().numpy()
        if self.history and self.history[-1][:2] == (noise_multiplier, sample_rate):
            self.history[-1] = (noise_multiplier, sample_rate, self.history[-1][2] + 1)
        else:
            self.history.append((noise_multiplier, sample_rate, 1))


def canary_file(state_dir: Path, client: str) -> Path:
    return state_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', client)}{CANARY_SUFFIX}"


def load_canaries(path: Path) -> Canaries | None:
    if not path.exists():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return Canaries(saved["taking_part"].numpy(), saved["scores"].numpy(),
                    [(float(n), float(q), int(s)) for n, q, s in saved["history"].tolist()])


def save_canaries(path: Path, canaries: Canaries) -> None:
    write_torch(path, {"taking_part": torch.from_numpy(canaries.taking_part), "scores": torch.from_numpy(canaries.scores),
                       "history": torch.tensor(canaries.history, dtype=torch.float64).reshape(-1, 3)})
