"""Addable audit sums: what a client computes on its own users and the server adds up.

Every audit is finished from sums that add element-wise, so clients holding disjoint
customers can each send their share and the server adds them before finishing; a central
evaluation is the one-client case. A subclass is a frozen dataclass whose fields are either
*arrays* (listed in ``ARRAYS``, added on ``+``) or *spec* (everything else: labels, k, seed;
two sums add only when their specs are equal).

On the wire a sums object is a flat dict of numpy arrays, keys ``<key>/<array-name>``
(kebab-case) plus ``<key>/spec``: the kind and spec as UTF-8 JSON in a uint8 array, so a
reply is self-describing and fits one Flower ArrayRecord.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Mapping, TypeVar

import numpy as np

from fedrec.errors import DataError

S = TypeVar("S", bound="AuditSums")

SPEC = "spec"


@dataclass(frozen=True, eq=False)
class AuditSums:
    """Base of the addable sums; subclasses name their ``KIND`` and ``ARRAYS``."""

    KIND: ClassVar[str] = "audit"
    ARRAYS: ClassVar[tuple[str, ...]] = ()

    @property
    def key(self) -> str:
        """Prefix of this object's wire keys; one per sums object in a reply."""
        return self.KIND

    def spec(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.ARRAYS}

    @classmethod
    def shapes(cls, spec: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        """{array name: (shape, dtype kind 'i' or 'f')} of the sums ``spec`` describes: what a
        secure sum's flat vector is cut back into (fedrec.audit.reply.unflatten)."""
        raise NotImplementedError

    def check_shapes(self) -> None:
        """Refuse arrays of another shape or dtype kind than the spec's (``shapes``)."""
        for name, (shape, kind) in self.shapes(self.spec()).items():
            check_shape(self.key, name, np.asarray(getattr(self, name)), shape, kind)

    def __add__(self: S, other: object) -> S:
        if not isinstance(other, AuditSums):
            return NotImplemented
        if type(other) is not type(self):
            raise DataError(f"cannot add {other.KIND} sums to {self.KIND} sums; add sums of one kind.")
        if other.spec() != self.spec():
            differ = sorted(k for k, v in self.spec().items() if other.spec()[k] != v)
            raise DataError(
                f"cannot add {self.key} sums computed with different {', '.join(differ)} "
                f"({[self.spec()[k] for k in differ]} vs {[other.spec()[k] for k in differ]}); every client "
                "must use the spec the server sent."
            )
        return replace(self, **{name: getattr(self, name) + getattr(other, name) for name in self.ARRAYS})

    def __radd__(self: S, other: object) -> S:
        if isinstance(other, int) and other == 0:  # sum(parts) starts from 0
            return self
        return NotImplemented

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The wire form: ``{<key>/spec: JSON bytes, <key>/<array-name>: array, ...}``."""
        payload = json.dumps({"kind": self.KIND, "spec": self.spec()}, sort_keys=True).encode("utf-8")
        out = {f"{self.key}/{SPEC}": np.frombuffer(payload, dtype=np.uint8).copy()}
        for name in self.ARRAYS:
            out[f"{self.key}/{name.replace('_', '-')}"] = np.asarray(getattr(self, name))
        return out

    @classmethod
    def from_arrays(cls: type[S], arrays: Mapping[str, np.ndarray], key: str) -> S:
        """Rebuild from the wire form; shapes are checked by the subclass."""
        kind, spec = read_spec(arrays, key)
        if kind != cls.KIND:
            raise DataError(f"{key}: holds {kind!r} sums, not {cls.KIND!r}.")
        missing = [name for name in cls.ARRAYS if f"{key}/{name.replace('_', '-')}" not in arrays]
        if missing:
            raise DataError(f"{key}: the reply lacks {', '.join(missing)}; was it sent by this fedrec version?")
        values = {name: np.asarray(arrays[f"{key}/{name.replace('_', '-')}"]) for name in cls.ARRAYS}
        return cls(**spec, **values)


def read_spec(arrays: Mapping[str, np.ndarray], key: str) -> tuple[str, dict[str, Any]]:
    """(kind, spec) stored under ``<key>/spec``; JSON lists come back as tuples."""
    try:
        raw = json.loads(np.asarray(arrays[f"{key}/{SPEC}"], dtype=np.uint8).tobytes().decode("utf-8"))
    except KeyError:
        raise DataError(f"no {key}/{SPEC} in the reply: not audit sums, or another key.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as bad:
        raise DataError(f"{key}/{SPEC} is not UTF-8 JSON ({bad}).") from None
    spec = {name: tuple(value) if isinstance(value, list) else value for name, value in raw["spec"].items()}
    return raw["kind"], spec


def check_shape(owner: str, name: str, array: np.ndarray, shape: tuple[int, ...], kind: str) -> None:
    """Refuse an array of another shape or dtype kind ('i' integer, 'f' float)."""
    if array.shape != shape or array.dtype.kind not in (kind, "u" if kind == "i" else kind):
        raise DataError(
            f"{owner}: {name} has shape {array.shape} and dtype {array.dtype}; expected shape {shape} "
            f"of {'integers' if kind == 'i' else 'floats'} for this spec."
        )


def number(value: float) -> float | None:
    """A finish function's JSON number: a Python float, or None where undefined (NaN, inf)."""
    value = float(value)
    return value if math.isfinite(value) else None
