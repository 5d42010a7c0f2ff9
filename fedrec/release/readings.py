"""How a gate check reads for people: what was measured, beside what the gate judged.

Most checks judge the measured value itself. The group-ratio check does not: with
``group_evidence="interval"`` (the default) it judges the largest worst-to-best ratio the two
groups' 95% Wilson intervals allow (fedrec.audit.gate), which can pass where the measured
ratio is 0 (a worst group without a hit) and can exceed 1. Shown alone, that bound reads as a
measurement; so every place that shows a check (audit.md, the model card, the group picture)
shows the measured ratio first, the judged bound beside it, and the reason whenever a pass
rests on the bound rather than on the measurement. Pure: check and audit dicts in, a Reading out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

INTERVAL_BOUND = "the largest ratio the 95% intervals allow"
MEASURED = "the measured value"


@dataclass(frozen=True)
class Reading:
    """One check as a reader should take it."""

    measured: float | None  # what the data shows (for a group check: worst group's HR / best group's)
    judged: float | None  # what the gate compared with its bound
    judged_as: str  # what ``judged`` is, in words
    passed: bool
    reason: str | None  # why the verdict is not what ``measured`` alone suggests (None: it is)

    @property
    def same(self) -> bool:
        """The gate judged the measured value itself."""
        return self.judged_as == MEASURED


def is_group_ratio(check: Mapping[str, Any]) -> bool:
    return str(check.get("check", "")).endswith("_group_ratio") and "ratio" in check


def read_check(check: Mapping[str, Any], groups: Mapping[str, Any]) -> Reading:
    """The reading of one of the gate's checks; ``groups`` is the audit's ``groups`` block."""
    if check.get("unmeasured"):
        return Reading(None, None, MEASURED, bool(check["passed"]), "not measured; passed as --allow-unmeasured asked")
    if not is_group_ratio(check):
        return Reading(check.get("value"), check.get("value"), MEASURED, bool(check["passed"]), None)
    measured, judged, passed = check["ratio"], check["value"], bool(check["passed"])
    interval = check.get("evidence") == "interval"
    judged_as = INTERVAL_BOUND if interval else MEASURED
    grouping = str(check["slice"]).removeprefix("grouping ")
    audit = groups.get(grouping) or {}
    metric = f"hr@{audit.get('k', 10)}"
    worst = (audit.get("groups") or {}).get(check.get("worst")) or {}
    lower = (check.get("threshold") or {}).get("lower")
    bound = f"{judged:.3g}" if judged is not None else "-"
    reason = None
    if worst.get(metric) == 0:
        reason = (f"the worst group, {check['worst']}, has {metric.upper()} 0 on {worst['users']:,} users, so the "
                  f"measured ratio is 0; " + (f"passed only on {judged_as} ({bound}): too few hits to tell the groups "
                                              "apart" if passed else f"blocked: even {judged_as} ({bound}) is below the bound"))
    elif passed and interval and lower is not None and measured is not None and measured < lower:
        reason = (f"the measured ratio {measured:.3g} is below the bound {lower:g}; passed on {judged_as} ({bound}): "
                  "the gap is within sampling noise at these group sizes")
    return Reading(measured, judged, judged_as, passed, reason)


def verdict_words(reading: Reading) -> str:
    """"pass" / "FAIL", with the reason when there is one."""
    word = "pass" if reading.passed else "FAIL"
    return f"{word}: {reading.reason}" if reading.reason else word
