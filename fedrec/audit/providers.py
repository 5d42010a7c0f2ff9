"""Provider (brand, category) exposure in top-k lists against each provider's target share.

Each item belongs to at most one provider (``item_provider[i]`` in 0..P-1, -1 for none).
From ExposureSums (position weights 1/log2(rank + 2), fedrec.audit.exposure):

    exposure_share(p) = exposure of p's items / exposure of all items with a provider
    target_share(p)   = target of p's items / target of all items with a provider
                        (target: interaction counts for the interaction share; ones for the
                        catalog share; under DP the released noisy counts)
    ratio(p)      = exposure_share / target_share   [0, inf), 1 = fair, > 1 over-exposed
    difference(p) = exposure_share - target_share   [-1, 1], 0 = fair
    awrf          = 1 - JSD(exposure_share || target_share), JSD with log base 2, i.e.
                    1 - (Jensen-Shannon distance)^2, TREC Fair Ranking 2021's AWRF with
                    NDCG's discount instead of geometric patience     [0, 1], 1 = fair

``most_over_exposed`` / ``most_under_exposed`` are the providers with the highest / lowest
ratio among those whose target share is at least ``min_target_share`` (a provider with no
target has no ratio). Exposure of items without a provider is left out of both shares and
reported as ``unassigned_exposure_share`` (of all exposure).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fedrec.audit.exposure import ExposureSums
from fedrec.audit.sums import number
from fedrec.errors import ConfigError, DataError


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two distributions, log base 2: [0, 1], 0 when equal."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2.0

    def kl(a: np.ndarray) -> float:
        nonzero = a > 0
        return float(a[nonzero] @ np.log2(a[nonzero] / m[nonzero]))

    return 0.5 * kl(p) + 0.5 * kl(q)


def finish_provider_exposure(sums: ExposureSums, *, item_provider: np.ndarray, target: np.ndarray,
                             labels: Sequence[str], name: str, min_target_share: float = 0.0) -> dict[str, Any]:
    """The provider-exposure block of an audit report (JSON-able).

    item_provider: (n_items + 1,) int provider index per item id, -1 for none (index 0 is
    padding and ignored). target: (n_items + 1,) per-item target weights. labels: the P
    provider names. name: the provider kind ("brand", "category").
    """
    providers = np.asarray(item_provider)
    weights = np.clip(np.asarray(target, dtype=np.float64), 0.0, None)
    expected = (sums.n_items + 1,)
    if providers.shape != expected or providers.dtype.kind not in "iu" or weights.shape != expected:
        raise DataError(
            f"item_provider {providers.shape} {providers.dtype}, target {weights.shape}: give one integer "
            f"provider and one target weight per item id 0..{sums.n_items}, shape {expected}."
        )
    n_providers = len(labels)
    if len({str(label) for label in labels}) != n_providers:
        raise ConfigError(f"provider labels repeat a name ({n_providers} labels); give each provider once.")
    if providers.size > 1 and (providers[1:].min() < -1 or providers[1:].max() >= n_providers):
        raise DataError(f"item_provider holds {providers[1:].min()}..{providers[1:].max()}; "
                        f"providers are 0..{n_providers - 1} ({n_providers} labels), -1 for none.")
    if not 0.0 <= min_target_share < 1.0:
        raise ConfigError(f"min_target_share={min_target_share}: give a share in [0, 1), e.g. 0.001.")
    assigned = providers >= 0
    assigned[0] = False
    exposure = np.bincount(providers[assigned], weights=sums.exposure[assigned], minlength=n_providers)
    targets = np.bincount(providers[assigned], weights=weights[assigned], minlength=n_providers)
    total_exposure = sums.exposure[1:].sum()
    exposure_share = exposure / exposure.sum() if exposure.sum() > 0 else np.full(n_providers, np.nan)
    target_share = targets / targets.sum() if targets.sum() > 0 else np.full(n_providers, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(target_share > 0, exposure_share / target_share, np.nan)
    table = {
        str(labels[p]): {"exposure_share": number(exposure_share[p]), "target_share": number(target_share[p]),
                         "ratio": number(ratio[p]), "difference": number(exposure_share[p] - target_share[p])}
        for p in range(n_providers)
    }
    ranked = np.flatnonzero((target_share >= min_target_share) & np.isfinite(ratio))
    defined = exposure.sum() > 0 and targets.sum() > 0
    return {
        "audit": "provider-exposure", "provider": name, "k": sums.k, "users": int(sums.users),
        "min_target_share": float(min_target_share),
        "unassigned_exposure_share": number(1.0 - exposure.sum() / total_exposure) if total_exposure > 0 else None,
        "awrf": number(1.0 - js_divergence(exposure_share, target_share)) if defined else None,
        "most_over_exposed": _pick(ranked, ratio, labels, table, np.argmax),
        "most_under_exposed": _pick(ranked, ratio, labels, table, np.argmin),
        "providers": table,
    }


def _pick(ranked: np.ndarray, ratio: np.ndarray, labels: Sequence[str], table: dict, choose) -> dict[str, Any] | None:
    if not ranked.size:
        return None
    p = int(ranked[choose(ratio[ranked])])
    return {"provider": str(labels[p]), **table[str(labels[p])]}
