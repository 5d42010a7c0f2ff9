"""Ghost clipping with one backward pass instead of two ("book-keeping", Bu et al., ICML 2023).

Opacus' ghost clipping runs the backward twice: once so its hooks can compute each user's
gradient norm, and again on the loss reweighted by the clipping coefficients to get
sum_i c_i * grad_i. For the layers our models train (``nn.Embedding``, ``nn.Linear``, and
the ``RNNLinear`` cells inside Opacus' ``DPLSTM``), that clipped sum is a weighted product of
what the first pass already handed to the hooks: each call's input ``a`` and output gradient
``g``, so ``sum_i c_i a_i^T g_i``. Recording (a, g) while Opacus computes norms and forming
the sum directly skips the second backward: the softmax backward over the item classes and,
for the LSTM, the backward through time, which were most of a DP step.

Norms, noise, sampling and accounting stay Opacus'. A module with any trainable layer of
another type keeps Opacus' two passes (``supports``); a test checks that both give the same
gradients.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Iterator

import torch
from opacus.grad_sample import GradSampleHooksFastGradientClipping, GradSampleModuleFastGradientClipping
from opacus.grad_sample.utils import register_grad_sampler, register_norm_sampler
from opacus.layers.dp_rnn import RNNLinear
from torch import nn

from fedrec.privacy import embedding_norms  # noqa: F401  (our embedding norm sampler is the one wrapped)

_RECORDS = "_fedrec_bookkeeping"
_recording = False


def _recorded(sampler):
    """``sampler`` unchanged, but while recording it also keeps the (input, output gradient)
    of every call on the layer. Opacus hands samplers per-user output gradients (a mean
    loss's 1/B already undone), so no rescaling is needed."""

    @functools.wraps(sampler)
    def sampler_that_records(layer: nn.Module, activations: list[torch.Tensor], backprops: torch.Tensor):
        if _recording:
            layer.__dict__.setdefault(_RECORDS, []).append((activations[0], backprops))
        return sampler(layer, activations, backprops)

    return sampler_that_records


register_norm_sampler(nn.Embedding)(_recorded(GradSampleHooksFastGradientClipping.NORM_SAMPLERS[nn.Embedding]))
register_norm_sampler(nn.Linear)(_recorded(GradSampleHooksFastGradientClipping.NORM_SAMPLERS[nn.Linear]))
# DPLSTM calls each RNNLinear once per time step, so Opacus computes its norms from per-user
# gradients (hook mode) rather than a norm sampler; the records then hold one entry per step.
register_grad_sampler(RNNLinear)(_recorded(GradSampleHooksFastGradientClipping.GRAD_SAMPLERS[RNNLinear]))


def supports(module: nn.Module) -> bool:
    """Whether every trainable parameter belongs to a layer whose clipped gradient we can form
    from its records (DPLSTM also lists its cells' parameters as its own: they count once)."""
    covered: set[int] = set()
    for layer in module.modules():
        if isinstance(layer, nn.Embedding) and (layer.sparse or layer.scale_grad_by_freq or layer.max_norm is not None):
            continue
        if isinstance(layer, (nn.Embedding, nn.Linear)):  # RNNLinear is an nn.Linear
            covered.update(id(p) for p in layer.parameters(recurse=False))
    return all(id(p) in covered for p in module.parameters() if p.requires_grad)


@contextlib.contextmanager
def _recording_calls() -> Iterator[None]:
    global _recording
    _recording = True
    try:
        yield
    finally:
        _recording = False


def _forget(module: nn.Module) -> None:
    for layer in module.modules():
        layer.__dict__.pop(_RECORDS, None)


def _per_user(weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> broadcastable against ``like`` (B, ..., d)."""
    return weights.view(-1, *([1] * (like.dim() - 1)))


def _clipped_sums(layer: nn.Module, records: list, coefficients: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
    if isinstance(layer, nn.Embedding):
        grad = torch.zeros_like(layer.weight)
        for ids, backprops in records:
            weighted = backprops * _per_user(coefficients, backprops)
            grad.index_add_(0, ids.reshape(-1), weighted.reshape(-1, grad.shape[1]).to(grad.dtype))
        if layer.padding_idx is not None:
            grad[layer.padding_idx] = 0  # as autograd's embedding backward
        return {layer.weight: grad}
    inputs = torch.cat([a.reshape(-1, a.shape[-1]) for a, _ in records])
    weighted = torch.cat([(g * _per_user(coefficients, g)).reshape(-1, g.shape[-1]) for _, g in records])
    sums = {layer.weight: weighted.T.to(layer.weight.dtype) @ inputs.to(layer.weight.dtype)}
    if layer.bias is not None:
        sums[layer.bias] = weighted.sum(dim=0).to(layer.bias.dtype)
    return sums


def clipped_backward(dp_module: GradSampleModuleFastGradientClipping, per_user_loss: torch.Tensor) -> None:
    """Leaves sum_i c_i * grad_i in ``p.grad`` of every trainable parameter, as Opacus'
    ``DPTensorFastGradientClipping(..., "mean").backward()`` does, with one backward pass."""
    module = dp_module._module
    _forget(module)
    try:
        with _recording_calls(), warnings.catch_warnings():
            # Expected here: embeddings are the first layers, so no module input needs a gradient.
            warnings.filterwarnings("ignore", message=".*[Ff]ull backward hook.*")
            per_user_loss.mean().backward()  # Opacus' hooks compute the per-user norms
        coefficients = dp_module.get_clipping_coef().detach()
        done: set[int] = set()
        for layer in module.modules():
            records = layer.__dict__.get(_RECORDS)
            if not records:
                continue
            if any(g.shape[0] != len(coefficients) for _, g in records):
                raise RuntimeError(f"book-keeping: {type(layer).__name__} saw a batch of another size than the loss")
            for param, grad in _clipped_sums(layer, records, coefficients).items():
                if param.requires_grad:
                    param.grad = grad
                    done.add(id(param))
        missing = [name for name, p in module.named_parameters() if p.requires_grad and id(p) not in done]
        if missing:
            raise RuntimeError(f"book-keeping formed no clipped gradient for {missing}; supports() should have refused this module")
    finally:
        _forget(module)
