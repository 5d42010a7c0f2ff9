"""Ghost clipping with one backward pass instead of two ("book-keeping", Bu et al., ICML 2023).

Opacus' ghost clipping runs the backward twice: once so its hooks can compute each user's
gradient norm, and again on the loss reweighted by the clipping coefficients to get
sum_i c_i * grad_i. For the layers our models train (``nn.Embedding``, ``nn.Linear``, and
the ``RNNLinear`` cells inside Opacus' ``DPLSTM``), both the norms and that clipped sum come
from each call's input ``a`` and output gradient ``g``: the clipped sum is
``sum_i c_i a_i^T g_i``. So one backward that returns the layers' output gradients is enough,
and it skips every weight gradient (those sums replace them), the second softmax backward over
the item classes and, for the LSTM, the second backward through time.

``attach`` replaces Opacus' per-layer hooks with a plain forward hook that keeps each call's
input and output. Opacus' hooks cost a Python hook on both sides of every call, which for
DPLSTM means every cell at every time step, where Opacus also builds and adds up a
(users, out, in) per-user gradient per step. Here a layer called at several steps gets one norm
from Opacus' own linear norm sampler on the stacked steps (Gram matrices over time).

A layer that computes with weights it does not call as modules (the sequence models' folded
item-score head) gives its own norms and clipped sums: it has ``per_user_norms(call, grads)``,
``clipped_sums(call, grads, coefficients)`` and ``trained_parameters()``, and its call's
inputs are kept whole.

The norm formulas (Opacus' for linear layers, ``embedding_norms`` for embeddings), the
clipping coefficients, noise, sampling and accounting stay Opacus'. A module with any
trainable layer of another type keeps Opacus' two passes (``supports``). A test checks the
clipped gradients against per-user gradients taken one user at a time.
"""

from __future__ import annotations

import torch
from opacus.grad_sample import GradSampleModuleFastGradientClipping
from opacus.grad_sample.linear import compute_linear_norm_sample
from torch import nn
from torch.nn import functional as F

from fedrec.privacy.embedding_norms import embedding_norm_sample

_CALLS = "_fedrec_calls"
_ATTACHED = "_fedrec_bookkeeping_attached"


def supports(module: nn.Module) -> bool:
    """Whether every trainable parameter belongs to a layer whose norm and clipped gradient we
    can form from its calls (DPLSTM also lists its cells' parameters as its own: they count once)."""
    covered: set[int] = set()
    for layer in _layers(module):
        covered.update(id(p) for p in _own_parameters(layer))
    return all(id(p) in covered for p in module.parameters() if p.requires_grad)


def _layers(module: nn.Module) -> list[nn.Module]:
    """The layers we clip: embeddings (dense, unscaled, unbounded) and linear layers (RNNLinear
    is one) with a trainable parameter."""
    layers = []
    for layer in module.modules():
        if _norms_itself(layer):
            layers.append(layer)
            continue
        if isinstance(layer, nn.Embedding) and (layer.sparse or layer.scale_grad_by_freq or layer.max_norm is not None):
            continue
        if isinstance(layer, (nn.Embedding, nn.Linear)) and any(p.requires_grad for p in layer.parameters(recurse=False)):
            layers.append(layer)
    return layers


def _norms_itself(layer: nn.Module) -> bool:
    return callable(getattr(layer, "per_user_norms", None)) and callable(getattr(layer, "clipped_sums", None))


def _own_parameters(layer: nn.Module) -> list[nn.Parameter]:
    return list(layer.trained_parameters()) if _norms_itself(layer) else list(layer.parameters(recurse=False))


def attach(dp_module: GradSampleModuleFastGradientClipping) -> None:
    """Call once after ``make_private``, before the first forward, on a module ``supports``
    accepts. Ours join Opacus' hook list, so its ``remove_hooks`` removes them too."""
    if not supports(dp_module._module):
        raise ValueError("book-keeping does not support this module's layers; use Opacus' two-pass ghost clipping")
    handles = dp_module.autograd_grad_sample_hooks
    while handles:
        handles.pop().remove()
    for layer in _layers(dp_module._module):
        handles.append(layer.register_forward_hook(_keep_call))
    setattr(dp_module, _ATTACHED, True)


def _keep_call(layer: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
    if layer.training and torch.is_grad_enabled():
        kept = tuple(x.detach() if isinstance(x, torch.Tensor) else x for x in inputs) if _norms_itself(layer) else inputs[0].detach()
        layer.__dict__.setdefault(_CALLS, []).append((kept, output))


def _forget(module: nn.Module) -> None:
    for layer in module.modules():
        layer.__dict__.pop(_CALLS, None)


def _per_user(weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> broadcastable against ``like`` (B, ..., d)."""
    return weights.view(-1, *([1] * (like.dim() - 1)))


def _merged(tensors: list[torch.Tensor], keep_last: bool) -> torch.Tensor:
    """Several calls' (users, ..., d) tensors as one (users, positions, d) tensor (or
    (users, positions) ids): a user's gradient is then one sum over positions, as for a single
    call on a sequence. Packed sequences shrink the batch at later steps: padded with zero rows."""
    if len(tensors) == 1:
        return tensors[0]
    users = max(t.shape[0] for t in tensors)
    shaped = [t.reshape(t.shape[0], -1, t.shape[-1]) if keep_last else t.reshape(t.shape[0], -1) for t in tensors]
    if any(t.shape[0] != users for t in shaped):
        padding = (0, 0) if keep_last else ()
        shaped = [F.pad(t, (*padding, 0, 0, 0, users - t.shape[0])) for t in shaped]
    return torch.cat(shaped, dim=1)


def _norms(layer: nn.Module, inputs: torch.Tensor, grads: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
    if isinstance(layer, nn.Embedding):
        return embedding_norm_sample(layer, [inputs], grads)
    return compute_linear_norm_sample(layer, [inputs.to(grads.dtype)], grads)


def _clipped_sums(layer: nn.Module, inputs: torch.Tensor, grads: torch.Tensor, coefficients: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
    if isinstance(layer, nn.Embedding):
        grad = torch.zeros_like(layer.weight)
        weighted = grads * _per_user(coefficients, grads)
        grad.index_add_(0, inputs.reshape(-1), weighted.reshape(-1, grad.shape[1]).to(grad.dtype))
        if layer.padding_idx is not None:
            grad[layer.padding_idx] = 0  # as autograd's embedding backward
        return {layer.weight: grad}
    # Each user's coefficient scales their inputs rather than their output gradients: for the
    # item-score layer the inputs are (positions x dim), the gradients (positions x classes).
    dtype = layer.weight.dtype
    scaled_inputs = (inputs * _per_user(coefficients, inputs)).reshape(-1, inputs.shape[-1]).to(dtype)
    rows = grads.reshape(-1, grads.shape[-1]).to(dtype)
    sums = {layer.weight: rows.T @ scaled_inputs}
    if layer.bias is not None:
        sums[layer.bias] = rows.T @ _per_user(coefficients, grads[..., 0]).expand(grads.shape[:-1]).reshape(-1).to(dtype)
    return sums


def clipped_backward(dp_module: GradSampleModuleFastGradientClipping, per_user_loss: torch.Tensor) -> None:
    """Leaves sum_i c_i * grad_i in ``p.grad`` of every trainable parameter, as Opacus'
    ``DPTensorFastGradientClipping(..., "mean").backward()`` does, with one backward pass."""
    module = dp_module._module
    if not getattr(dp_module, _ATTACHED, False):
        raise RuntimeError("book-keeping: call bookkeeping.attach(dp_module) after make_private, before the forward pass")
    try:
        layers = [layer for layer in _layers(module) if layer.__dict__.get(_CALLS)]
        outputs = [output for layer in layers for _, output in layer.__dict__[_CALLS]]
        # A sum, so each output gradient is per user (Opacus undoes a mean's 1/B the same way).
        grads = iter(torch.autograd.grad(per_user_loss.sum(), outputs, allow_unused=True))
        merged: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
        for layer in layers:
            if _norms_itself(layer):
                calls = [(call, torch.zeros_like(out) if (g := next(grads)) is None else g) for call, out in layer.__dict__[_CALLS]]
                if len(calls) != 1:
                    raise RuntimeError(f"book-keeping: {type(layer).__name__} gives its norms for one call a step, got {len(calls)}")
                merged[layer] = calls[0]
                for param, norm in layer.per_user_norms(*calls[0]).items():
                    param._norm_sample = norm
                continue
            calls = [(a, torch.zeros_like(out) if (g := next(grads)) is None else g) for a, out in layer.__dict__[_CALLS]]
            inputs, layer_grads = _merged([a for a, _ in calls], keep_last=isinstance(layer, nn.Linear)), _merged([g for _, g in calls], keep_last=True)
            if layer_grads.shape[0] != len(per_user_loss):
                raise RuntimeError(f"book-keeping: {type(layer).__name__} saw a batch of another size than the loss")
            merged[layer] = inputs, layer_grads
            for param, norm in _norms(layer, inputs, layer_grads).items():
                param._norm_sample = norm  # where Opacus' hooks leave it: get_clipping_coef reads it
        normed = {id(p) for layer in layers for p in _own_parameters(layer)}
        missing = [name for name, p in module.named_parameters() if p.requires_grad and id(p) not in normed]
        if missing:
            raise RuntimeError(f"book-keeping: no call of the layers holding {missing} reached the loss")
        coefficients = dp_module.get_clipping_coef().detach()
        for layer, (inputs, layer_grads) in merged.items():
            sums = layer.clipped_sums(inputs, layer_grads, coefficients) if _norms_itself(layer) else _clipped_sums(layer, inputs, layer_grads, coefficients)
            for param, grad in sums.items():
                if param.requires_grad:
                    param.grad = grad
    finally:
        _forget(module)
