"""The release gate on hand-made audit dicts: each check passes at its bound and fails past it."""

from __future__ import annotations

import dataclasses

import pytest

from fedrec.audit.gate import BLOCKED, PASSED, failed_checks, gate, unmeasured, wilson_interval
from fedrec.config import AuditConfig
from fedrec.errors import ConfigError


def utility(hr: float, baseline: float) -> dict:
    return {"k": 10, "users": 1000, "hr@10": hr, "popularity_baseline_hr@10": baseline}


def popularity(arp_ratio: float | None, coverage: float) -> dict:
    return {"audit": "popularity", "k": 10, "arp_ratio": arp_ratio, "coverage@10": coverage}


def grouping(hits: dict[str, tuple[int, int]], *, suppressed=(), min_group_size: int = 100) -> dict:
    """A finished group-utility audit from {label: (hits, users)}."""
    groups = {label: {"users": n, "hr@10": h / n} for label, (h, n) in hits.items()}
    rates = {label: g["hr@10"] for label, g in groups.items()}
    gap = None
    if len(groups) >= 2:
        worst, best = min(rates, key=rates.get), max(rates, key=rates.get)
        gap = {"ratio": rates[worst] / rates[best] if rates[best] > 0 else None, "ratio_ci": None,
               "difference": rates[best] - rates[worst], "worst": worst, "best": best}
    return {"audit": "group-utility", "k": 10, "min_group_size": min_group_size, "groups": groups,
            "suppressed": list(suppressed), "gaps": {"hr@10": gap}}


def only(verdict: dict, name: str) -> dict:
    [found] = [c for c in verdict["checks"] if c["check"] == name]
    return found


def test_the_model_passes_at_exactly_the_required_gain_over_popularity_and_fails_just_below():
    config = AuditConfig(min_hr_gain=0.125)  # binary fractions, so the difference is exact

    at_bound = gate({"utility": utility(0.375, 0.25)}, config)
    below = gate({"utility": utility(0.37, 0.25)}, config)

    assert at_bound["verdict"] == PASSED and only(at_bound, "hr@10_gain_over_popularity")["passed"]
    assert below["verdict"] == BLOCKED
    failed = only(below, "hr@10_gain_over_popularity")
    assert not failed["passed"] and failed["threshold"] == {"lower": 0.125, "upper": None}
    assert "outside the bound" in failed["message"]


def test_arp_ratio_is_an_inclusive_upper_bound():
    config = AuditConfig(max_arp_ratio=3.0, min_coverage=None)

    assert gate({"popularity": popularity(3.0, 0.5)}, config)["verdict"] == PASSED
    blocked = gate({"popularity": popularity(3.01, 0.5)}, config)

    assert blocked["verdict"] == BLOCKED
    assert [c["check"] for c in failed_checks(blocked)] == ["arp_ratio"]


def test_coverage_is_an_inclusive_lower_bound():
    config = AuditConfig(max_arp_ratio=None, min_coverage=0.05)

    assert gate({"popularity": popularity(10.0, 0.05)}, config)["verdict"] == PASSED
    blocked = gate({"popularity": popularity(10.0, 0.0499)}, config)

    assert [c["check"] for c in failed_checks(blocked)] == ["coverage@10"]


def test_an_unset_bound_is_not_checked_at_all():
    config = AuditConfig(max_arp_ratio=None, min_coverage=None, min_group_ratio=None)

    verdict = gate({"popularity": popularity(100.0, 0.0), "groups": {"store": grouping({"a": (0, 500), "b": (50, 500)})}},
                   config)

    assert verdict == {"verdict": PASSED, "checks": [], "skipped": []}


def test_an_undefined_value_fails_its_check_rather_than_passing_silently():
    verdict = gate({"popularity": popularity(None, 0.5)}, AuditConfig(max_arp_ratio=2.0))

    assert not only(verdict, "arp_ratio")["passed"] and "undefined" in only(verdict, "arp_ratio")["message"]


def test_a_point_group_ratio_passes_at_the_bound_and_fails_below():
    config = AuditConfig(min_group_ratio=0.5, group_evidence="point")

    at_bound = gate({"groups": {"store": grouping({"a": (20, 1000), "b": (40, 1000)})}}, config)
    below = gate({"groups": {"store": grouping({"a": (19, 1000), "b": (40, 1000)})}}, config)

    assert only(at_bound, "hr@10_group_ratio")["passed"] and at_bound["verdict"] == PASSED
    failed = only(below, "hr@10_group_ratio")
    assert below["verdict"] == BLOCKED and failed["slice"] == "grouping store"
    assert (failed["worst"], failed["best"]) == ("a", "b")


def test_a_large_real_gap_blocks_on_interval_evidence_but_few_hits_do_not():
    config = AuditConfig(min_group_ratio=0.5)  # interval evidence, the default
    real_gap = grouping({"a": (0, 2000), "b": (400, 2000)})
    noise = grouping({"a": (0, 150), "b": (3, 150)})  # 0 of 150 vs 3 of 150: within sampling noise

    blocked = gate({"groups": {"store": real_gap}}, config)
    passed = gate({"groups": {"gender": noise}}, config)

    assert blocked["verdict"] == BLOCKED and only(blocked, "hr@10_group_ratio")["value"] < 0.5
    assert passed["verdict"] == PASSED or passed["skipped"], passed


def test_interval_evidence_bound_equals_the_wilson_ends():
    config = AuditConfig(min_group_ratio=0.5)
    audit = grouping({"a": (30, 1000), "b": (60, 1000)})

    check = only(gate({"groups": {"store": audit}}, config), "hr@10_group_ratio")

    assert check["value"] == pytest.approx(wilson_interval(30, 1000)[1] / wilson_interval(60, 1000)[0])
    assert check["passed"] == (check["value"] >= 0.5)


def test_a_grouping_with_one_reported_group_is_listed_as_skipped_not_passed():
    audit = grouping({"a": (10, 500)}, suppressed=["b"])

    verdict = gate({"groups": {"age_band": audit}}, AuditConfig())

    assert verdict["checks"] == [] and verdict["skipped"][0]["slice"] == "grouping age_band"
    assert "fewer than 2 groups of at least 100 users" in verdict["skipped"][0]["reason"]


def test_wilson_interval_stays_open_at_zero_hits():
    low, high = wilson_interval(0, 200)

    assert low == 0.0 and 0.01 < high < 0.03


@pytest.mark.parametrize("bad", [{"min_coverage": 1.5}, {"min_group_ratio": -0.1}, {"top_k": 0},
                                 {"group_evidence": "vibes"}, {"max_arp_ratio": 0.0}])
def test_bad_audit_config_values_are_refused_with_the_field_named(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        AuditConfig(**bad)


def test_audit_config_reads_kebab_case_and_none():
    config = AuditConfig.from_mapping({"max-arp-ratio": "none", "min-group-size": "50"})

    assert config.max_arp_ratio is None and config.min_group_size == 50
    assert dataclasses.asdict(config)["top_k"] == 10


def test_an_unmeasured_check_blocks_unless_allowed_and_then_says_it_was_never_measured():
    audits = {"utility": utility(0.03, None), "popularity": popularity(None, 0.5)}

    strict = gate(audits, AuditConfig())
    allowed = gate(audits, AuditConfig(allow_unmeasured=True))

    assert strict["verdict"] == BLOCKED and len(failed_checks(strict)) == 2
    assert allowed["verdict"] == PASSED
    assert unmeasured(allowed) == ["hr@10_gain_over_popularity (all users)", "arp_ratio (all users)"]
    assert all("passed unmeasured" in c["message"] for c in allowed["checks"] if c["value"] is None)
    assert gate({"popularity": popularity(9.0, 0.5)}, AuditConfig(allow_unmeasured=True))["verdict"] == BLOCKED


def test_the_gates_thresholds_stay_as_calibrated_on_beauty():
    """docs/audit.md, "Release gate": a normally trained model passes, popularity is blocked.
    A change here is a recalibration: measure it there first."""
    config = AuditConfig()

    assert (config.min_hr_gain, config.max_arp_ratio, config.min_coverage, config.min_group_ratio) == (0.002, 6.0, 0.01, 0.5)
    assert (config.min_group_size, config.group_evidence, config.allow_unmeasured) == (100, "interval", False)
    assert (config.max_hr_drop, config.max_group_ratio_drop) == (0.005, 0.1)
