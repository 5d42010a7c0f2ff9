"""A sequence model's per-row losses (what a shard of one-user devices sums in one pass,
fedrec.federation.summed_step) are each row's loss as a batch of its own."""

from __future__ import annotations

import pytest
import torch

from fedrec.models.sequence_net import SequenceNet


@pytest.mark.parametrize("attribute_buckets, encoder", [(0, "lstm"), (16, "lstm"), (16, "mlp")])
def test_each_rows_loss_is_that_row_alone(attribute_buckets, encoder):
    torch.manual_seed(0)
    net = SequenceNet(30, 8, 0.0, attribute_buckets=attribute_buckets, encoder=encoder).eval()
    if attribute_buckets:
        net.set_attributes([[]] + [[i % 5, 10 + i % 3] for i in range(1, 31)])
    inputs = torch.tensor([[3, 4, 5, 0, 0], [7, 8, 9, 10, 11], [1, 2, 0, 0, 0]])
    targets = torch.tensor([[4, 5, 6, 0, 0], [8, 9, 10, 11, 12], [2, 3, 0, 0, 0]])
    rows = net.row_losses(inputs, targets)
    for i, length in enumerate((3, 5, 2)):
        alone = net(inputs[i:i + 1, :length], targets[i:i + 1, :length])
        torch.testing.assert_close(rows[i], alone)
    counts = (targets > 0).sum(dim=1).float()
    torch.testing.assert_close((rows * counts).sum() / counts.sum(), net(inputs, targets))
    assert [r.tolist() for r in net.rows_read(inputs)] == [[3, 4, 5], [7, 8, 9, 10, 11], [1, 2]]
