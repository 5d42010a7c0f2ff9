"""The release gate: bounds from an :class:`AuditConfig` checked against finished audits.

Follows TFX's Evaluator: each check has a value, a bound and a slice; bounds are inclusive
and an unset bound (None) leaves the metric ungated. The verdict is ``passed`` when every
check passes, else ``blocked``, with every check listed (``failed_checks`` picks the
failures). Pure: dicts in, a dict out.

The audits it reads (what ``fedrec.release.audit_run`` writes into audit.json):

    utility      {"k", "hr@k", "popularity_baseline_hr@k"}        the model vs popularity
    popularity   finish_popularity(...)                             arp_ratio, coverage@k
    groups       {grouping: finish_group_utility(...)}              gaps["hr@k"]["ratio"]

Checks:
  (a) utility / all users: hr@k - popularity baseline hr@k >= min_hr_gain (always on unless
      min_hr_gain is None);
  (b) popularity / all users: arp_ratio <= max_arp_ratio; coverage@k >= min_coverage;
  (c) group utility / each grouping: worst-to-best hr@k ratio >= min_group_ratio. With
      ``group_evidence="interval"`` the value is the largest ratio the two groups' 95% Wilson
      intervals allow (worst's upper end / best's lower end), so a grouping fails only when
      the gap is beyond sampling noise. Wilson rather than the bootstrap interval: at a few
      hits per group the percentile interval collapses (a group with no hit gets [0, 0]).
      A grouping with fewer than two reported groups is listed under ``skipped``;
  (d) with a baseline release's audit: the change bounds of :func:`change_checks`.

A check whose value cannot be measured (popularity under DP when the run released no counts)
blocks, unless ``allow_unmeasured`` is set: then it passes marked ``unmeasured``, and the
model card says so.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from fedrec.config import AuditConfig

PASSED, BLOCKED = "passed", "blocked"
ALL_USERS = "all users"
WILSON_Z = 1.959964  # two-sided 95%


def check(name: str, slice_: str, value: float | None, *, lower: float | None = None,
          upper: float | None = None, what: str) -> dict[str, Any] | None:
    """One TFX-style value check, inclusive bounds; None when both bounds are unset."""
    if lower is None and upper is None:
        return None
    threshold = {"lower": lower, "upper": upper}
    if value is None:
        return {"check": name, "slice": slice_, "value": None, "threshold": threshold, "passed": False,
                "message": f"{what} is undefined on {slice_}: the gate cannot pass a value it cannot measure"}
    ok = (lower is None or value >= lower) and (upper is None or value <= upper)
    bound = f">= {lower:.4g}" if upper is None else f"<= {upper:.4g}" if lower is None else f"in [{lower:.4g}, {upper:.4g}]"
    message = f"{what} {value:.4g} on {slice_}: {'within' if ok else 'outside'} the bound {bound}"
    return {"check": name, "slice": slice_, "value": value, "threshold": threshold, "passed": bool(ok),
            "message": message}


def utility_checks(utility: Mapping[str, Any], config: AuditConfig) -> list[dict[str, Any]]:
    k = utility["k"]
    model, baseline = utility[f"hr@{k}"], utility[f"popularity_baseline_hr@{k}"]
    gain = None if model is None or baseline is None else model - baseline
    what = (f"test HR@{k} {model:.4f} minus the popularity baseline's {baseline:.4f} =" if gain is not None else
            f"the gain of test HR@{k} over the popularity baseline (no popularity measured)")
    found = check(f"hr@{k}_gain_over_popularity", ALL_USERS, gain, lower=config.min_hr_gain, what=what)
    return [found] if found else []


def popularity_checks(popularity: Mapping[str, Any], config: AuditConfig) -> list[dict[str, Any]]:
    k = popularity["k"]
    found = [
        check("arp_ratio", ALL_USERS, popularity.get("arp_ratio"), upper=config.max_arp_ratio,
              what=f"mean popularity of recommended / consumed items (arp@{k} / arp_consumed)"),
        check(f"coverage@{k}", ALL_USERS, popularity.get(f"coverage@{k}"), lower=config.min_coverage,
              what=f"catalog coverage of the top-{k} lists"),
    ]
    return [c for c in found if c]


def wilson_interval(hits: float, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a hit rate: stays informative at 0 or n hits, where a
    bootstrap percentile interval collapses to a point ([0, 0] for a group with no hit)."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def ratio_upper_bound(worst: Mapping[str, Any], best: Mapping[str, Any], metric: str) -> float | None:
    """Largest worst-to-best ratio the two groups' 95% Wilson intervals allow: upper end of
    the worst group's HR / lower end of the best group's. None when the best could be 0."""
    worst_high = wilson_interval(round(worst[metric] * worst["users"]), worst["users"])[1]
    best_low = wilson_interval(round(best[metric] * best["users"]), best["users"])[0]
    return worst_high / best_low if best_low > 0 else None


def group_checks(groups: Mapping[str, Mapping[str, Any]], config: AuditConfig) -> tuple[list[dict], list[dict]]:
    """(checks, skipped) of the worst-to-best HR@k ratio, one per grouping."""
    checks, skipped = [], []
    if config.min_group_ratio is None:
        return checks, skipped
    for grouping, audit in groups.items():
        metric = f"hr@{audit['k']}"
        name, slice_ = f"{metric}_group_ratio", f"grouping {grouping}"
        gap = audit["gaps"].get(metric)
        if gap is None:
            skipped.append({"check": name, "slice": slice_, "reason": (
                f"fewer than 2 groups of at least {audit['min_group_size']} users "
                f"({len(audit['groups'])} reported, {len(audit['suppressed'])} suppressed)")})
            continue
        if gap["ratio"] is None:  # no group has a hit: nothing to compare (utility check (a) catches it)
            skipped.append({"check": name, "slice": slice_, "reason": f"no group has a {metric} hit; the ratio is undefined"})
            continue
        worst, best = audit["groups"][gap["worst"]], audit["groups"][gap["best"]]
        if config.group_evidence == "interval":
            value = ratio_upper_bound(worst, best, metric)
            if value is None:
                skipped.append({"check": name, "slice": slice_, "reason": (
                    f"the best group's {metric} interval reaches 0 ({best['users']} users): too few hits to compare")})
                continue
            how = "largest ratio the 95% intervals allow"
        else:
            value, how = gap["ratio"], "point estimate"
        found = check(name, slice_, value, lower=config.min_group_ratio,
                      what=f"{metric} of {gap['worst']} / {gap['best']}: ratio {gap['ratio']:.3f}, {how}")
        found.update(ratio=gap["ratio"], ratio_ci=gap.get("ratio_ci"), worst=gap["worst"], best=gap["best"],
                     evidence=config.group_evidence)
        checks.append(found)
    return checks, skipped


def change_checks(audits: Mapping[str, Any], baseline: Mapping[str, Any], config: AuditConfig) -> list[dict[str, Any]]:
    """(d) change bounds against the audit of the last release (TFX's change thresholds):
    HR@k may drop by at most max_hr_drop, and each grouping's worst-to-best HR@k ratio by at
    most max_group_ratio_drop. Values are new minus baseline; a grouping the baseline did
    not report has nothing to compare and is not checked."""
    found = []
    k = audits["utility"]["k"]
    metric = f"hr@{k}"
    new, old = audits["utility"].get(metric), (baseline.get("utility") or {}).get(metric)
    if config.max_hr_drop is not None and new is not None and old is not None:
        found.append(check(f"{metric}_change", "all users vs baseline", new - old, lower=-config.max_hr_drop,
                           what=f"test HR@{k} {new:.4f} minus the baseline release's {old:.4f} ="))
    if config.max_group_ratio_drop is not None:
        for grouping, audit in audits.get("groups", {}).items():
            gap = audit["gaps"].get(metric)
            old_gap = ((baseline.get("groups") or {}).get(grouping) or {}).get("gaps", {}).get(metric)
            if not gap or not old_gap or gap.get("ratio") is None or old_gap.get("ratio") is None:
                continue
            found.append(check(f"{metric}_group_ratio_change", f"grouping {grouping} vs baseline",
                               gap["ratio"] - old_gap["ratio"], lower=-config.max_group_ratio_drop,
                               what=f"worst-to-best {metric} ratio {gap['ratio']:.3f} minus the baseline's "
                                    f"{old_gap['ratio']:.3f} ="))
    return [c for c in found if c]


def gate(audits: Mapping[str, Any], config: AuditConfig, *, baseline: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The verdict over ``audits`` (keys utility, popularity, groups; any may be absent),
    with the change bounds when the audit of a baseline release is given."""
    checks: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    if baseline is not None and "utility" in audits:
        checks += change_checks(audits, baseline, config)
    if "utility" in audits:
        checks += utility_checks(audits["utility"], config)
    if "popularity" in audits:
        checks += popularity_checks(audits["popularity"], config)
    found, skipped_groups = group_checks(audits.get("groups", {}), config)
    checks += found
    skipped += skipped_groups
    if config.allow_unmeasured:
        checks = [allowed_unmeasured(c) if c["value"] is None and not c["passed"] else c for c in checks]
    return {"verdict": PASSED if all(c["passed"] for c in checks) else BLOCKED, "checks": checks, "skipped": skipped}


def allowed_unmeasured(check: Mapping[str, Any]) -> dict[str, Any]:
    """A check with no value, passed because the audit was asked to (``allow_unmeasured``):
    marked so that the audit, the card and the release say it was never measured."""
    return {**check, "passed": True, "unmeasured": True,
            "message": f"{check['message']}; passed unmeasured, as --allow-unmeasured asked"}


def unmeasured(verdict: Mapping[str, Any]) -> list[str]:
    """Names of the checks that passed without a value."""
    return [f"{c['check']} ({c['slice']})" for c in verdict.get("checks", []) if c.get("unmeasured")]


def failed_checks(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [c for c in verdict["checks"] if not c["passed"]]
