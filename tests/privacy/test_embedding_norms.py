"""The fast embedding norm sampler gives exactly Opacus' per-sample norms."""

from __future__ import annotations

import torch
from opacus.grad_sample.embedding_norm_sample import compute_embedding_norm_sample
from torch import nn

from fedrec.privacy.embedding_norms import embedding_norm_sample


def test_same_norms_as_opacus_with_repeated_indices():
    generator = torch.Generator().manual_seed(0)
    layer = nn.Embedding(50, 4, padding_idx=0)
    ids = torch.randint(0, 50, (16, 30), generator=generator)  # many repeats within a sample
    ids[3] = 7  # one sample that is a single repeated item
    backprops = torch.randn(16, 30, 4, generator=generator)
    ours = embedding_norm_sample(layer, [ids], backprops)[layer.weight]
    # the norm of the explicit per-sample gradient, whose padding row autograd leaves at zero
    explicit = torch.stack([torch.zeros(50, 4).index_add_(0, ids[i], backprops[i])[1:].norm() for i in range(16)])
    assert torch.allclose(ours, explicit, atol=1e-5)
    # Opacus counts the padding row too; without padding ids the two agree exactly
    ids[ids == 0] = 1
    ours = embedding_norm_sample(layer, [ids], backprops)[layer.weight]
    theirs = compute_embedding_norm_sample(layer, [ids], backprops)[layer.weight]
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_registered_for_embeddings_in_ghost_clipping():
    from opacus.grad_sample import GradSampleModuleFastGradientClipping

    import fedrec.privacy.dp_sgd  # noqa: F401  (the import registers it)

    registered = GradSampleModuleFastGradientClipping.NORM_SAMPLERS[nn.Embedding]
    assert registered is embedding_norm_sample  # Opacus' two-pass path uses it too
