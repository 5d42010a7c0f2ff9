"""Catalog attributes (brand, category...) hashed into buckets, as a table the sequence
model reads: row i holds item i's bucket ids + 1, 0-padded; and the same table as a sparse
item x bucket matrix (and the forms of it the item-score head computes with), so per-bucket
scores become per-item scores in one product."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
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


@dataclass(frozen=True)
class BucketTables:
    """One attribute table's item x bucket matrix in the forms the sequence models compute
    with: ``matrix`` sparse COO (n_items + 1, buckets + 1); ``csr``, the same in CSR form
    (summing output gradients per bucket through it is about 20x faster than through COO on
    CPU) and ``csr_t``, its transpose (per-bucket scores to items, for a few positions);
    ``items_of_buckets``, dense (buckets + 1, n_items + 1), row b marking bucket b's
    items (50 MB for Beauty's 1,024 buckets: the affinity bonus gathers its rows)."""

    matrix: torch.Tensor
    csr: torch.Tensor
    csr_t: torch.Tensor
    items_of_buckets: torch.Tensor


_TABLES: dict[tuple[str, int], BucketTables] = {}
_KEPT = 4  # tables kept per process (one per catalog in use, in practice)


def bucket_tables(table: torch.Tensor, buckets: int) -> BucketTables:
    """``BucketTables`` of an attribute table, built once per process for each table's
    contents: a federated client builds a fresh model every round and loads the same table
    into it, and building the tables cost more than its step (~50 ms on one core)."""
    key = (hashlib.blake2b(table.contiguous().numpy().tobytes(), digest_size=16).hexdigest(), buckets)
    tables = _TABLES.get(key)
    if tables is None:
        matrix = bucket_matrix(table, buckets)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
            csr, csr_t = matrix.to_sparse_csr(), matrix.t().coalesce().to_sparse_csr()
        tables = BucketTables(matrix, csr, csr_t, matrix.t().to_dense().contiguous())
        while len(_TABLES) >= _KEPT:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = tables
    return tables
