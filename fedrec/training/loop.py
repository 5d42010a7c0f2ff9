"""Epochs, early stopping on validation HR@10, and a wall-time budget."""

from __future__ import annotations

import copy
import logging
import time
from typing import Callable, Iterable, TypeVar

import torch
from torch import nn

from fedrec.models.base import FitResult
from fedrec.progress import bar, time_left


log = logging.getLogger("fedrec.train")

Batch = TypeVar("Batch")


def run_epoch(
    net: nn.Module,
    batches: Iterable[Batch],
    loss_of: Callable[[Batch], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    description: str = "train",
    total: int | None = None,
    before_step: Callable[[], None] | None = None,
) -> float:
    """One pass over the batches; returns the mean loss. ``before_step`` may adjust the
    gradients before each step (SCAFFOLD's correction)."""
    net.train()
    total_loss, count = 0.0, 0
    progress = bar(batches, logger=log, desc=description, total=total, unit="batch")
    for batch in progress:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(batch)
        loss.backward()
        if before_step is not None:
            before_step()
        optimizer.step()
        total_loss += float(loss.detach())
        count += 1
        if count % 20 == 0:
            progress.set_postfix(loss=f"{total_loss / count:.4f}")
    return total_loss / max(1, count)


def fit_with_early_stopping(
    net: nn.Module,
    *,
    epoch_batches: Callable[[int], tuple[Iterable[Batch], int]],
    loss_of: Callable[[Batch], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    patience: int,
    validate: Callable[[], float],
    max_seconds: float | None = None,
) -> FitResult:
    """Train up to ``epochs``; keep the weights of the best validation HR@10.

    ``epoch_batches(epoch)`` returns (batches, number of batches) so shuffling is seeded
    per epoch and the progress bar knows its length.
    """
    result = FitResult()
    best_state = copy.deepcopy(net.state_dict())
    best = -1.0
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_start = time.perf_counter()
        batches, n_batches = epoch_batches(epoch)
        loss = run_epoch(net, batches, loss_of, optimizer, description=f"epoch {epoch}/{epochs}", total=n_batches)
        net.eval()
        valid_hr10 = validate()
        seconds = time.perf_counter() - epoch_start
        result.history.append({"epoch": epoch, "loss": loss, "valid_hr@10": valid_hr10, "seconds": seconds})
        result.epochs_run = epoch
        improved = valid_hr10 > best
        if improved:
            best, result.best_epoch = valid_hr10, epoch
            best_state = copy.deepcopy(net.state_dict())
        elapsed = time.perf_counter() - started
        left = time_left(elapsed, epoch, epochs, at_most=None if max_seconds is None else max_seconds - elapsed)
        log.info(
            "epoch %d/%d loss %.4f valid HR@10 %.4f%s (%.1f s%s)",
            epoch, epochs, loss, valid_hr10, " *best" if improved else "", seconds,
            (f", up to {left}" if patience > 0 else f", {left}") if left else "",  # early stopping may end it sooner
        )
        if epoch - result.best_epoch >= patience > 0:
            result.stopped_because = f"no validation gain for {patience} epochs"
            break
        if max_seconds is not None and elapsed >= max_seconds:
            result.stopped_because = f"wall-time budget of {max_seconds:.0f} s reached"
            break
    else:
        result.stopped_because = f"reached {epochs} epochs"
    net.load_state_dict(best_state)
    net.eval()
    result.best_valid_hr10 = best
    log.info("kept epoch %d (valid HR@10 %.4f); stopped: %s", result.best_epoch, best, result.stopped_because)
    return result
