"""Flower's server-side DP (``--dp central``) with noise nobody can regenerate.

Flower's ``DifferentialPrivacyServerSideFixedClipping`` draws its Gaussian noise from numpy's
global generator, which anything that seeds or reads numpy's state in the server process can
predict; the released model's guarantee would then hold against nobody who can. This keeps
Flower's clipping, sampling and logging and overrides only the noise step, drawing from a
fresh ``SecretNoise`` each round (fedrec.privacy.secret_noise).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping
from flwr.supercore.differential_privacy import compute_stdv

from fedrec.privacy.secret_noise import Purpose, SecretNoise

log = logging.getLogger("fedrec.server")


class SecretServerSideFixedClipping(DifferentialPrivacyServerSideFixedClipping):
    """Flower's server-side fixed clipping, its noise from a secret keystream."""

    def _add_noise_to_aggregated_arrays(self, aggregated_arrays: ArrayRecord) -> ArrayRecord:
        std = compute_stdv(self.noise_multiplier, self.clipping_norm, self.num_sampled_clients)
        values = {key: torch.from_numpy(np.array(array.numpy())) for key, array in aggregated_arrays.items()}
        drawn = SecretNoise.fresh().gaussians_like(list(values.values()), std, purpose=Purpose.SERVER_NOISE, round_number=0,
                                                   step=0)
        noisy = {key: Array((value + noise).numpy()) for (key, value), noise in zip(values.items(), drawn)}
        log.info("central DP: secret Gaussian noise of std %.4f added to the aggregate", std)
        return ArrayRecord(noisy)
