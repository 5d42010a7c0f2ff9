"""The sequence models' item-score head: per position, a score for every item from the
state (class scores, catalog-attribute scores) and from the item just read (its attribute
affinity bonus), with each user's gradient norm and clipped gradient sum of the head's
weights worked out from its inputs and output gradient.

Why a head of its own (issue 38): with catalog attributes a DP step of the LSTM took 13 s for
1,024 users on 2 cores, 11 s of it in torch's COO sparse product of the (items x buckets)
matrix against every position's bucket scores, forward and backward. Here
- the class scores and the state's bucket scores fold into one dense (items, dim) table per
  step (both are linear in the state; the fold is a sparse (items x buckets) by (buckets x
  dim) product, about a millisecond);
- the affinity bonus, which depends on the item just read, is a weighted bag of the dense
  item-indicator rows of that item's (at most 8) buckets;
- a call with no more positions than dim (a device's few) skips the fold and sends its
  bucket scores through the matrix, in CSR form (``folds``);
- only positions with a target are scored (a user's padding was half the rows);
- under DP, the output gradients are summed per bucket through a CSR copy of the matrix
  (about 20x faster than the COO form on CPU).
The DP engine's book-keeping (fedrec.privacy.bookkeeping) cannot see the folded layers' calls,
so the head gives their per-user norms and clipped sums itself (``per_user_norms``,
``clipped_sums``; ``trained_parameters`` names the weights they cover). A test checks both
against per-user gradients taken one user at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fedrec.models.item_vocabulary import OTHER

# One call: (states (N, dim), last items (N,), each position's user row (N,), number of users).
Call = tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]


def folds(positions: int, dim: int) -> bool:
    """Whether a call folds its weights into one item table. Folding costs a sparse (items x
    buckets) by (buckets x dim) product and its backward per call; scoring each position's
    bucket scores through the matrix instead costs positions x its non-zeros: the two cross
    where positions reach dim (measured on Beauty, one core, forward and backward at dim 64:
    6 positions 3.6 ms unfolded, 6.2 ms folded; 64: 11.8, 12.8; 128: 25.3, 19.0)."""
    return positions > dim


class ItemScoreHead(nn.Module):
    """Training logits of a ``SequenceNet``: over items with attributes (the catalog tells
    items of one class apart), else over classes. Holds no weights of its own: they stay the
    net's ``output``, ``attribute_output`` and ``attribute_affinity``, under their names."""

    def __init__(self, net: nn.Module) -> None:  # a SequenceNet (which imports this module)
        super().__init__()
        object.__setattr__(self, "_net", net)  # the owner, not a submodule (no cycle in modules())

    def trained_parameters(self) -> list[nn.Parameter]:
        net = self._net
        params = [net.output.weight, net.output.bias]
        if net.attribute_buckets:
            params += [net.attribute_output.weight, net.attribute_affinity.weight]
        return [p for p in params if p.requires_grad]

    def forward(self, states: torch.Tensor, last_items: torch.Tensor, users: torch.Tensor | None = None,
                n_users: int = 0) -> torch.Tensor:
        """(N, dim) states after reading ``last_items`` (N,) -> (N, outputs). Under DP,
        ``users`` (N,), ascending, tells which of ``n_users`` users' loss each position joins
        (the book-keeping reads them from the call; the scores do not depend on them)."""
        net = self._net
        if not net.attribute_buckets:  # the weights used directly: a call of net.output would be clipped twice
            return torch.addmm(net.output.bias, states, net.output.weight.T)
        if not folds(len(states), states.shape[1]):
            return self._unfolded(states, last_items)
        weights, offsets = self._folded()
        bonus = self.bonus(last_items)
        # The offsets ride in the product as a weight column over a constant input of 1: one
        # pass over the (N, items) table instead of two.
        ones = torch.ones(len(states), 1, dtype=states.dtype)
        return torch.addmm(bonus, torch.cat([states, ones], 1), torch.cat([weights, offsets[:, None]], 1).T)

    def _unfolded(self, states: torch.Tensor, last_items: torch.Tensor) -> torch.Tensor:
        """The same scores for a few positions (a device's): the class scores spread over
        items, plus the bucket scores and the bonus, per bucket, through the matrix (CSR)."""
        net = self._net
        class_scores = torch.addmm(net.output.bias, states, net.output.weight.T)
        scores = class_scores[:, net.item_class] + self._other_offsets() if net.vocab_size else class_scores
        buckets = net.item_attributes[last_items]
        by_bucket = (states @ net.attribute_output.weight.T).scatter_add(1, buckets, net.attribute_affinity.weight[buckets, 0])
        return scores + by_bucket @ net.bucket_tables().csr_t

    def bonus(self, last_items: torch.Tensor) -> torch.Tensor:
        """(N,) items just read -> (N, n_items + 1) affinity bonus: per position, the sum of
        the item-indicator rows of the buckets that item has, each times its affinity (a
        weighted bag of at most 8 dense rows: faster than any sparse product here, since the
        bag has 8 buckets, not 1,025). Bucket 0, "no bucket", adds nothing (DP noise can make
        its affinity non-zero)."""
        net = self._net
        buckets = net.item_attributes[last_items]
        return F.embedding_bag(buckets, net.bucket_tables().items_of_buckets, mode="sum", padding_idx=0,
                               per_sample_weights=net.attribute_affinity.weight[buckets, 0])

    def labels(self, targets: torch.Tensor) -> torch.Tensor:
        """The logits' column of each target item."""
        return targets if self._net.attribute_buckets else self._net.classes_of(targets)

    def _folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_items + 1, dim) weights and (n_items + 1,) offsets: each item's class row plus
        the sum of its buckets' rows; items outside the vocabulary share the "other" class's
        probability equally (its logit less log of their number)."""
        net = self._net
        if net.vocab_size:
            weights, offsets = net.output.weight[net.item_class], net.output.bias[net.item_class] + self._other_offsets()
        else:
            weights, offsets = net.output.weight, net.output.bias
        return weights + torch.sparse.mm(net.item_bucket_matrix(), net.attribute_output.weight), offsets

    def _other_offsets(self) -> torch.Tensor:
        item_class = self._net.item_class
        others = (item_class == OTHER).sum().clamp(min=1)
        return torch.where(item_class == OTHER, -torch.log(others.float()), torch.zeros(()))

    # Per-user gradients of the head's weights, from one call's inputs and output gradient
    # ``grads`` (N, outputs). Each user's gradient is a sum over their positions, so a norm
    # comes from the Gram matrices of their inputs and output gradients (Opacus' "ghost" norm
    # of a linear layer), and a clipped sum from inputs scaled by their user's coefficient.

    def per_user_norms(self, call: Call, grads: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        states, last_items, users, n_users = call
        net = self._net
        layout = _UserLayout(users, n_users)
        state_gram = layout.gram(states)
        by_class, by_bucket, affinity_rows, affinity_grads = self._gradient_parts(call, grads)
        squared = {net.output.weight: (state_gram * layout.gram(by_class)).sum((1, 2)),
                   net.output.bias: layout.per_user(by_class).pow(2).sum(1)}
        if net.attribute_buckets:
            squared[net.attribute_output.weight] = (state_gram * layout.gram(by_bucket)).sum((1, 2))
            rows = net.attribute_buckets + 1
            per_row = torch.zeros(n_users * rows).index_add_(0, (users[:, None] * rows + affinity_rows).reshape(-1),
                                                             affinity_grads.reshape(-1))
            squared[net.attribute_affinity.weight] = per_row.view(n_users, rows).pow(2).sum(1)
        return {p: s.clamp(min=0).sqrt() for p, s in squared.items() if p.requires_grad}

    def clipped_sums(self, call: Call, grads: torch.Tensor, coefficients: torch.Tensor) -> dict[nn.Parameter, torch.Tensor]:
        states, _, users, _ = call
        net = self._net
        weights = coefficients[users].to(states.dtype)
        scaled = states * weights[:, None]
        by_class, by_bucket, affinity_rows, affinity_grads = self._gradient_parts(call, grads)
        sums = {net.output.weight: by_class.T @ scaled, net.output.bias: by_class.T @ weights}
        if net.attribute_buckets:
            sums[net.attribute_output.weight] = by_bucket.T @ scaled
            affinity = torch.zeros(net.attribute_buckets + 1).index_add_(0, affinity_rows.reshape(-1),
                                                                         (affinity_grads * weights[:, None]).reshape(-1))
            sums[net.attribute_affinity.weight] = affinity.unsqueeze(1)
        self.__dict__.pop("_parts", None)  # the step's last use
        return sums

    def _gradient_parts(self, call: Call, grads: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The output gradients per class and per bucket, and per affinity row each position
        reads (the buckets of the item just read; the padding row gets none, as autograd
        gives it): worked out once for the norms and the clipped sums of one step."""
        kept = self.__dict__.get("_parts")
        if kept is not None and kept[0] is grads:
            return kept[1]
        net = self._net
        by_class, by_bucket = self._class_grads(grads), None
        rows = values = None
        if net.attribute_buckets:
            by_bucket = grads.contiguous() @ net.bucket_tables().csr
            rows = net.item_attributes[call[1]]
            values = by_bucket.gather(1, rows) * (rows > 0)
        parts = (by_class, by_bucket, rows, values)
        self.__dict__["_parts"] = (grads, parts)
        return parts

    def _class_grads(self, grads: torch.Tensor) -> torch.Tensor:
        """Output gradients per item -> per class (a class's is the sum over its items): a
        vocabulary item's column as it is, the "other" class's the sum of its items'."""
        net = self._net
        if not net.attribute_buckets or not net.vocab_size:
            return grads
        item_of_class, other_items = net._cached("_class_items", self._class_items, [net.item_class])
        by_class = grads[:, item_of_class]
        by_class[:, OTHER] = grads @ other_items
        return by_class

    def _class_items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each class's item (the "other" class: any, overwritten) and the "other" items' indicator."""
        item_class = self._net.item_class
        item_of_class = torch.zeros(self._net.output.out_features, dtype=torch.int64)
        item_of_class[item_class] = torch.arange(len(item_class))
        return item_of_class, (item_class == OTHER).float()


class _UserLayout:
    """Positions (N,), grouped by ascending user, laid out as (users, most positions, ...)."""

    def __init__(self, users: torch.Tensor, n_users: int) -> None:
        counts = torch.bincount(users, minlength=n_users)
        self.users = users
        self.n_users = n_users
        self.slots = torch.arange(len(users)) - (torch.cumsum(counts, 0) - counts)[users]
        self.width = int(counts.max()) if len(users) else 0

    def padded(self, rows: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.n_users, self.width, rows.shape[1], dtype=rows.dtype)
        out[self.users, self.slots] = rows
        return out

    def gram(self, rows: torch.Tensor) -> torch.Tensor:
        """(users, width, width): each user's positions' dot products."""
        padded = self.padded(rows)
        return padded @ padded.transpose(1, 2)

    def per_user(self, rows: torch.Tensor) -> torch.Tensor:
        return torch.zeros(self.n_users, rows.shape[1], dtype=rows.dtype).index_add_(0, self.users, rows)
