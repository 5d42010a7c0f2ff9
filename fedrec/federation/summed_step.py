"""A shard's devices' one-step SGD updates, summed in one batched pass.

When a device's whole round is one plain SGD step on its own batch (the device recipe without
DP: ``--optimizer sgd --local-epochs 1``, fedrec.federation.recipes), its new model is
``w - lr * g_d``, linear in its gradient. The example-weighted sum a shard replies,
``sum_d n_d (w - lr g_d)``, is then ``N w - lr * grad(sum_d n_d loss_d)``: one forward and
backward over all of the shard's devices' rows together, each row's loss its own
(``TorchRecommender.row_losses``), instead of one model load, step and sum per device. Item
rows are counted as the device loop counts them: a device trains the rows its batch reads.

The result equals the device-by-device loop (``train_client`` per device) up to the order of
float sums and the dropout draws (tests/federation/test_device_shards.py compares the two
engines without dropout). Anything else a device does per round (Adam, several steps, Mime,
weight decay, DP, private state) keeps the loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from fedrec.config import FederationConfig, TrainConfig
from fedrec.models.torch_model import TorchRecommender
from fedrec.privacy.modes import privacy_mode

CHUNK_ROWS = 64  # devices per forward pass: bounds the (rows x positions x items) logits


def summed_step_applies(train: TrainConfig, federation: FederationConfig, model: TorchRecommender) -> bool:
    """Whether a device's round (``train``: this round's config, as the device steps) is one
    plain SGD step that the batched pass reproduces."""
    return (train.optimizer == "sgd" and not train.weight_decay and federation.local_epochs == 1
            and federation.drift_correction in ("none", "auto") and not federation.keep_optimizer_state
            and not privacy_mode(train.dp).private and model.shareable_parameters is None
            and model.row_losses.__func__ is not TorchRecommender.row_losses)


def one_batch(model: TorchRecommender, split: Any, rng: np.random.Generator) -> Any | None:
    """A one-user device's single training batch (None: nothing to train on)."""
    batches, count = model.batches(split, rng)
    if count == 0:
        return None
    if count > 1:
        raise ValueError(f"a device's round here is one batch, this one has {count}; train it device by device")
    return next(iter(batches))


def summed_step(model: TorchRecommender, batches: list[tuple[torch.Tensor, torch.Tensor]], weights: list[float],
                lr: float, row_keys: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
    """(sums, row weights, weighted loss) of the devices' one-step models, ``model`` holding the
    global weights: ``sums[k] = sum_d n_d * (w_k - lr g_dk)`` per parameter (float64); for each
    table in ``row_keys`` only over the devices that read the row (``row weights[k][r] = sum of
    their n_d``), as the loop's ShardSum counts them; the loss is ``sum_d n_d loss_d``."""
    params = model.shared_parameters()
    for p in params.values():
        p.grad = None
    model.net.train()
    weighted_loss = 0.0
    row_weights = {k: torch.zeros(len(params[k]), dtype=torch.float64) for k in row_keys if k in params}
    for start in range(0, len(batches), CHUNK_ROWS):
        chunk, chunk_weights = batches[start:start + CHUNK_ROWS], torch.tensor(weights[start:start + CHUNK_ROWS])
        batch = tuple(pad_sequence([row[0] for row in part], batch_first=True) for part in zip(*chunk))
        losses = model.row_losses(batch)
        (losses * chunk_weights).sum().backward()
        weighted_loss += float((losses.detach() * chunk_weights).sum())
        for key in row_weights:
            for rows, weight in zip(model.item_rows_read(batch), chunk_weights.tolist()):
                row_weights[key][rows] += weight
    model.net.eval()
    total_weight = float(sum(weights))
    sums = {}
    with torch.no_grad():
        for key, p in params.items():
            gradient = torch.zeros_like(p, dtype=torch.float64) if p.grad is None else p.grad.double()
            held = row_weights[key].reshape(-1, *([1] * (p.dim() - 1))) if key in row_weights else total_weight
            sums[key] = p.detach().double() * held - lr * gradient
            p.grad = None
    return sums, row_weights, weighted_loss
