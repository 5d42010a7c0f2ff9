"""One-pass ghost clipping (book-keeping) leaves exactly the clipped sum of per-user gradients."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import pytest
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedrec.models import create_model, item_scores, model_class
from fedrec.privacy import bookkeeping
from fedrec.privacy.opacus_layers import make_private_layers

MAX_GRAD_NORM = 0.05


def private_model(name: str, chain_split, fast_config, **changes):
    data, split = chain_split
    config = dataclasses.replace(fast_config, model=name, dp="local", noise_multiplier=1.0, **changes)
    config = model_class(name).resolve_config(config, private=True)
    model = create_model(name, config, n_users=data.n_users, n_items=data.n_items)
    make_private_layers(model.net)
    if config.attribute_buckets:
        model.net.set_attributes([[]] + [[item % 5, 10 + item % 3] for item in range(1, data.n_items + 1)])
    model.prepare_private(split)
    return model, model.private_samples(split)


def make_private(model, samples):
    module = model.private_module()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(torch.arange(len(samples))), batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dp_module, _, _, _ = PrivacyEngine().make_private(
            module=module, optimizer=optimizer, data_loader=loader, noise_multiplier=0.0, max_grad_norm=MAX_GRAD_NORM,
            grad_sample_mode="ghost", criterion=nn.CrossEntropyLoss(),
        )
    return module, dp_module


def clipped_sum_one_user_at_a_time(model, batch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The definition: sum over users of grad_i * min(1, C / (|grad_i| + 1e-6)), Opacus' coefficient."""
    module = model.private_module()
    module.train()
    params = {name: p for name, p in module.named_parameters() if p.requires_grad}
    per_user = model.private_loss(batch)
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    coefficients = []
    for user in range(len(per_user)):
        grads = torch.autograd.grad(per_user[user], list(params.values()), retain_graph=True, allow_unused=True)
        grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params.values())]
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        coefficient = (MAX_GRAD_NORM / (norm + 1e-6)).clamp(max=1.0)
        coefficients.append(coefficient)
        for name, g in zip(params, grads):
            total[name] += coefficient * g
    return total, torch.stack(coefficients)


@pytest.mark.parametrize("fold", [False, True])  # the item-score head unfolded (as for a few positions), folded
@pytest.mark.parametrize("name, changes", [("mf", {}), ("lstm", {}), ("lstm", {"vocab_size": 10}), ("lstm", {"attribute_buckets": 7}),
                                           ("lstm", {"attribute_buckets": 7, "vocab_size": 10}), ("mlp", {"attribute_buckets": 7, "vocab_size": 10})])
def test_one_backward_gives_the_clipped_sum_of_per_user_gradients(name, changes, fold, chain_split, fast_config, monkeypatch):
    monkeypatch.setattr(item_scores, "folds", lambda positions, dim: fold)
    torch.manual_seed(0)
    model, samples = private_model(name, chain_split, fast_config, **changes)
    rows = list(range(0, len(samples), 3))
    torch.manual_seed(1)  # the sampled negatives (mf) are drawn here, once, for both computations
    batch = model.private_batch(samples, rows)

    reference_model = copy.deepcopy(model)
    expected, coefficients = clipped_sum_one_user_at_a_time(reference_model, batch)
    assert (coefficients < 0.99).any(), "the test must clip some users to mean anything"

    module, dp_module = make_private(model, samples)
    assert bookkeeping.supports(module)
    bookkeeping.attach(dp_module)
    dp_module.train()
    bookkeeping.clipped_backward(dp_module, model.private_loss(batch))
    got = {name: p.grad for name, p in module.named_parameters() if p.requires_grad}

    assert got.keys() == expected.keys()
    for key in expected:
        assert torch.allclose(got[key], expected[key], atol=1e-6, rtol=1e-4), key
    assert torch.allclose(dp_module.get_clipping_coef(), coefficients, rtol=1e-4)


def test_a_forward_pass_before_attach_is_refused(chain_split, fast_config):
    model, samples = private_model("lstm", chain_split, fast_config)
    module, dp_module = make_private(model, samples)
    with pytest.raises(RuntimeError, match="attach"):
        bookkeeping.clipped_backward(dp_module, model.private_loss(model.private_batch(samples, [0, 1])))


def test_modules_with_other_trainable_layers_keep_two_passes():
    assert bookkeeping.supports(nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2)))
    assert not bookkeeping.supports(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)))
    assert not bookkeeping.supports(nn.Embedding(5, 3, scale_grad_by_freq=True))
