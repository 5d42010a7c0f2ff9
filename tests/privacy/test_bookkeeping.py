"""One-pass ghost clipping (book-keeping) leaves the same clipped gradients as Opacus' two passes."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch
from opacus import PrivacyEngine
from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fedrec.models import create_model
from fedrec.privacy import bookkeeping


def private_model(name: str, chain_split, fast_config, **changes):
    data, split = chain_split
    config = dataclasses.replace(fast_config, model=name, dp=True, noise_multiplier=1.0, **changes)
    model = create_model(name, config, n_users=data.n_users, n_items=data.n_items)
    if config.attribute_buckets:
        model.net.set_attributes([[]] + [[item % 5, 10 + item % 3] for item in range(1, data.n_items + 1)])
    model.prepare_private(split)
    samples = model.private_samples(split)
    module = model.private_module()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(torch.arange(len(samples))), batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dp_module, dp_optimizer, _, _ = PrivacyEngine().make_private(
            module=module, optimizer=optimizer, data_loader=loader, noise_multiplier=0.0, max_grad_norm=0.05,
            grad_sample_mode="ghost", criterion=nn.CrossEntropyLoss(),
        )
    dp_module.train()
    return model, samples, module, dp_module, dp_optimizer


@pytest.mark.parametrize("name, changes", [("mf", {}), ("lstm", {}), ("lstm", {"vocab_size": 10}), ("lstm", {"attribute_buckets": 7})])
def test_one_backward_gives_opacus_two_pass_gradients(name, changes, chain_split, fast_config):
    torch.manual_seed(0)
    model, samples, module, dp_module, dp_optimizer = private_model(name, chain_split, fast_config, **changes)
    assert bookkeeping.supports(module)
    rows = list(range(0, len(samples), 3))
    torch.manual_seed(1)  # the same sampled negatives (mf) for both batches
    batch = model.private_batch(samples, rows)

    dp_optimizer.zero_grad(set_to_none=True)
    DPTensorFastGradientClipping(dp_module, dp_optimizer, model.private_loss(batch), "mean").backward()
    two_pass = {name: p.grad.clone() for name, p in module.named_parameters() if p.requires_grad}
    coefficients = dp_module.get_clipping_coef()
    assert (coefficients < 0.99).any(), "the test must clip some users to mean anything"

    dp_optimizer.zero_grad(set_to_none=True)
    bookkeeping.clipped_backward(dp_module, model.private_loss(batch))
    one_pass = {name: p.grad for name, p in module.named_parameters() if p.requires_grad}

    assert one_pass.keys() == two_pass.keys()
    for key in two_pass:
        assert torch.allclose(one_pass[key], two_pass[key], atol=1e-6, rtol=1e-4), key


def test_modules_with_other_trainable_layers_keep_two_passes():
    assert bookkeeping.supports(nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2)))
    assert not bookkeeping.supports(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)))
    assert not bookkeeping.supports(nn.Embedding(5, 3, scale_grad_by_freq=True))
