"""Catalog attributes (brand, category...) hashed into buckets, as a table the sequence
model reads: row i holds item i's bucket ids + 1, 0-padded; and the same table as a sparse
item x bucket matrix, so per-bucket scores become per-item scores in one product."""

from __future__ import annotations

from typing import Sequence

import torch

MAX_ATTRIBUTES = 8  # attribute buckets read per item (Beauty items have 1-6 attributes)


def attribute_table(attribute_lists: Sequence[Sequence[int]], n_items: int, buckets: int) -> torch.Tensor:
    """(n_items + 1, MAX_ATTRIBUTES): ``attribute_lists[i]`` are item i's catalog attribute
    ids (item 0 is padding and has none)."""
    table = torch.zeros((n_items + 1, MAX_ATTRIBUTES), dtype=torch.int64)
    for item, attributes in enumerate(attribute_lists[: n_items + 1]):
        ids = sorted({int(a) % buckets + 1 for a in attributes})[:MAX_ATTRIBUTES]
        table[item, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
    table[0] = 0
    return table


def bucket_matrix(table: torch.Tensor, buckets: int) -> torch.Tensor:
    """Sparse (n_items + 1, buckets + 1) 0/1 matrix of the table."""
    items, slots = torch.nonzero(table, as_tuple=True)  # row-major: (item, bucket) sorted
    indices = torch.stack([items, table[items, slots]])
    shape = (table.shape[0], buckets + 1)
    return torch.sparse_coo_tensor(indices, torch.ones(len(items)), shape, check_invariants=False).coalesce()
