"""Keyed pseudonyms: HMAC-SHA256 of a customer id under the deployment key.

Per store by default: the message is the store and the customer id, so one person's
pseudonyms in two stores are unrelated and two stores' outputs cannot be joined on them.
Linked (``link_stores``): the message is the customer id alone, the same in every store.
The two message kinds carry different prefixes, so a per-store pseudonym never equals a
linked one. Without the key nobody can go from a customer id to its pseudonym, or test a
guess; with it, the deployment can (to honour an erasure request, say).

One HMAC per customer, not per row. 96 bits of the digest (24 hex characters) are kept:
among ten million customers the chance of any two sharing one is below 1e-15, and a
collision is refused rather than merging two people.
"""

from __future__ import annotations

import hmac

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fedrec.errors import DataError

HEX_CHARS = 24
_PER_STORE = "fedrec/store\x1e"  # message prefixes (text: ids are joined as text, then hashed as UTF-8)
_LINKED = "fedrec/customer\x1e"
_HEX = np.frombuffer(b"".join(f"{b:02x}".encode() for b in range(256)), dtype=np.uint8).reshape(256, 2)


def pseudonymize(customer_id: pa.Array, store_id: pa.Array | None, *, key: bytes) -> tuple[pa.Array, np.ndarray]:
    """The pseudonym of each customer (one per element) and each one's rank in pseudonym
    order, which orders the output without revealing the input's order."""
    customers = pc.cast(customer_id, pa.string())
    if store_id is None:
        messages = pc.binary_join_element_wise(_LINKED, customers, "")
    else:
        messages = pc.binary_join_element_wise(_PER_STORE, pc.cast(store_id, pa.string()), "\x1f", customers, "")
    digests = np.frombuffer(b"".join([hmac.digest(key, m, "sha256") for m in pc.cast(messages, pa.binary()).to_pylist()]),
                            dtype=np.uint8).reshape(-1, 32)
    n = len(digests)
    prefix = np.ascontiguousarray(digests[:, :8]).view(">u8").ravel()  # sorts as the hex text does
    order = np.argsort(prefix, kind="stable")
    kept = digests[:, : HEX_CHARS // 2]
    if n > 1 and (np.diff(prefix[order]) == 0).any():  # 64 bits equal: look at all 96 (chance ~ n^2 / 2^65)
        if len({row.tobytes() for row in kept}) != n:
            raise DataError("two customers drew the same pseudonym (chance below 1e-15); run again with a new key.")
    text = _HEX[kept].tobytes()  # (n, 12, 2) hex digits, row after row
    offsets = np.arange(0, (n + 1) * HEX_CHARS, HEX_CHARS, dtype=np.int32)
    names = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return names, rank


def pseudonymize_values(values: pa.Array, store_id: pa.Array | None, *, column: str, key: bytes) -> pa.Array:
    """A declared ``pseudonymise`` column: each value replaced by 24 hex characters of
    HMAC-SHA256 over the column's name, the store (``None`` when linked or storeless) and the
    value; one HMAC per distinct value of the batch. Empty values stay empty."""
    text = pc.cast(values.dictionary_decode() if pa.types.is_dictionary(values.type) else values, pa.string())
    scope = pc.cast(store_id, pa.string()) if store_id is not None else pa.scalar("", pa.string())
    messages = pc.binary_join_element_wise(f"fedrec/column\x1e{column}", scope, text, "\x1f")
    encoded = pc.dictionary_encode(messages)
    names = [hmac.digest(key, m, "sha256")[: HEX_CHARS // 2].hex() for m in pc.cast(encoded.dictionary, pa.binary()).to_pylist()]
    return pa.DictionaryArray.from_arrays(encoded.indices, pa.array(names, pa.string()))
