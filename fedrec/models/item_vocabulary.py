"""The DP LSTM's item vocabulary: the items it models one by one, and one shared class for
the rest, chosen and initialised from (noisy) popularity counts.

Under DP every parameter gets noise, so a model of the items it can actually learn about
has several times less noise to fight. Class 0 is padding, class ``OTHER`` every item
outside the vocabulary, classes 2.. the vocabulary's items.
"""

from __future__ import annotations

import numpy as np
import torch

OTHER = 1


def first_items_vocabulary(n_items: int, vocab_size: int) -> torch.Tensor:
    """(n_items + 1,) item -> class, until a prior ranks the items: the first items, in id order."""
    item_class = torch.full((n_items + 1,), OTHER, dtype=torch.int64)
    item_class[0] = 0
    item_class[1 : vocab_size + 1] = torch.arange(2, vocab_size + 2)
    return item_class


def ranked_vocabulary(items_by_popularity: torch.Tensor, n_items: int, vocab_size: int) -> torch.Tensor:
    """Classes 2.. for the ``vocab_size`` first items of the ranking, OTHER for the rest."""
    item_class = torch.full((n_items + 1,), OTHER, dtype=torch.int64)
    item_class[0] = 0
    item_class[items_by_popularity[:vocab_size]] = torch.arange(2, vocab_size + 2)
    return item_class


def spread_over_items(class_logits: torch.Tensor, item_class: torch.Tensor) -> torch.Tensor:
    """(..., classes) -> (..., n_items + 1): items outside the vocabulary share the "other"
    class's probability equally."""
    scores = class_logits[..., item_class]
    others = (item_class == OTHER).sum().clamp(min=1)
    return torch.where(item_class == OTHER, scores - torch.log(others.float()), scores)


def bias_from_counts(counts: np.ndarray) -> torch.Tensor:
    """Output bias whose softmax follows the (noisy) counts: log(count + 1), centred;
    negative noisy counts read as 0; the padding column can never be recommended."""
    bias = torch.log(torch.clamp(torch.as_tensor(counts, dtype=torch.float32), min=0.0) + 1.0)
    bias = bias - bias[1:].mean()
    bias[0] = -30.0
    return bias


def vocabulary_from_counts(counts: np.ndarray, vocab_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """The items ranked by the counts, and the counts per class (the "other" class gets the
    summed mass of its items, +1 each as in ``bias_from_counts``)."""
    ranking = torch.from_numpy(np.argsort(-np.asarray(counts)[1:], kind="stable") + 1)
    clipped = np.clip(np.asarray(counts, dtype=np.float64), 0.0, None)
    vocab = ranking[:vocab_size].numpy()
    class_counts = np.zeros(vocab_size + 2)
    class_counts[2:] = clipped[vocab]
    rest = np.ones(len(clipped), dtype=bool)
    rest[0] = False
    rest[vocab] = False
    class_counts[OTHER] = clipped[rest].sum() + rest.sum() - 1
    return ranking, class_counts
