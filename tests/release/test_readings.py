"""Gate checks as a reader takes them: the group ratio the gate judges is the largest ratio the
95% intervals allow, so audit.md and the model card show the measured ratio first, the judged
bound beside it, and why a pass rests on the bound (a worst group without a hit)."""

from __future__ import annotations

import numpy as np
import pytest

from fedrec.audit import exposure_sums, finish_group_utility, finish_popularity, group_utility_sums
from fedrec.audit.gate import allowed_unmeasured, gate
from fedrec.config import AuditConfig
from fedrec.release.audit_report import render_markdown
from fedrec.release.card import model_card, render_card
from fedrec.release.readings import INTERVAL_BOUND, read_check

K = 10


def audit_document(ranks_of: dict[str, np.ndarray]) -> dict:
    """An audit document built by the real audit maths over groups whose users' target ranks
    are given (rank < K is a hit)."""
    rng = np.random.default_rng(0)
    labels = tuple(ranks_of)
    ranks = np.concatenate([ranks_of[g] for g in labels])
    groups = np.concatenate([[g] * len(ranks_of[g]) for g in labels])
    keys = [f"cust-{u}" for u in range(len(ranks))]
    config = AuditConfig(n_boot=30)
    sums = group_utility_sums(ranks, groups, keys, labels=labels, name="activity", k=K, n_boot=30)
    top = np.stack([rng.choice(np.arange(1, 41), K, replace=False) for _ in ranks])
    histories = [rng.integers(1, 41, 5) for _ in ranks]
    audits = {
        "utility": {"k": K, "users": len(ranks), "population": "test users, all of them",
                    f"hr@{K}": float((ranks < K).mean()), f"popularity_baseline_hr@{K}": 0.0},
        "popularity": finish_popularity(exposure_sums(top, histories, n_items=40),
                                        popularity=np.bincount(np.concatenate(histories), minlength=41)),
        "groups": {"activity": finish_group_utility(sums, min_group_size=config.min_group_size)},
        "providers": {}, "skipped_audits": [],
    }
    return {"run": "runs/x", "model": "lstm", "data": "shop.csv", "federated": False, "dp": False,
            "protocol": "one evaluation pass", "config": config.to_dict(), **gate(audits, config), **audits,
            "notes": []}


@pytest.fixture(scope="module")
def no_hit_group() -> dict:
    """122 "active" customers without a hit beside 407 "rest" with 6: the measured ratio is 0,
    but the intervals are wide enough that the gate's bound passes (as in issue 33: 5.19)."""
    rest = np.full(407, 50)
    rest[:6] = 3
    return audit_document({"active": np.full(122, 50), "rest": rest})


def group_check(document: dict) -> dict:
    return next(c for c in document["checks"] if c["check"] == f"hr@{K}_group_ratio")


def test_a_worst_group_without_a_hit_passes_only_on_the_interval_bound_and_says_so(no_hit_group):
    check = group_check(no_hit_group)
    assert check["passed"] and check["ratio"] == 0.0 and check["value"] > 1  # what the gate decides is unchanged

    reading = read_check(check, no_hit_group["groups"])

    assert (reading.measured, reading.judged, reading.judged_as) == (0.0, check["value"], INTERVAL_BOUND)
    assert "active, has HR@10 0 on 122 users" in reading.reason and "passed only on" in reading.reason


def test_audit_md_shows_the_measured_ratio_beside_the_bound_and_never_a_bare_pass(no_hit_group):
    check = group_check(no_hit_group)

    page = render_markdown(no_hit_group)

    row = next(line for line in page.splitlines() if line.startswith(f"| hr@10_group_ratio | grouping activity |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2] == "0"  # measured
    assert cells[3] == f"{check['value']:.4g}, {INTERVAL_BOUND}"  # what the gate judged, labelled
    assert cells[5].startswith("pass: the worst group, active, has HR@10 0 on 122 users")
    assert "| measured | the gate judged |" in page


def test_the_model_card_reports_the_measured_ratio_and_the_judged_bound_with_the_reason(no_hit_group):
    check = group_check(no_hit_group)
    run = {"model": "lstm", "metrics": {"hr@10": no_hit_group["utility"]["hr@10"]},
           "test_population": {"users": 529, "who": "test users, all of them", "by": "fedrec train's test"}}
    card = model_card(run=run, audit=no_hit_group, verdict={"verdict": "passed", "override": None},
                      data={"source": "shop.csv", "description": "529 users"}, privacy="none",
                      code_version={"fedrec": "0"}, plots=[], created="today")

    entry = next(m for m in card["quantitative_analysis"]["performance_metrics"] if m["type"] == "hr@10_group_ratio")
    markdown = render_card(card)

    assert entry["value"] == 0.0 and entry["gate"]["judged_value"] == check["value"]
    assert entry["gate"]["judged_as"] == INTERVAL_BOUND and "HR@10 0 on 122 users" in entry["gate"]["reason"]
    row = next(line for line in markdown.splitlines() if line.startswith("| hr@10_group_ratio |"))
    assert "| 0 |" in row and "pass: the worst group, active, has HR@10 0 on 122 users" in row
    assert f"| {check['value']:.4g} |" not in row  # the bound is never shown as the value


def test_a_measured_ratio_below_the_bound_that_passes_on_the_interval_says_why():
    rest, few = np.full(300, 50), np.full(150, 50)
    rest[:12], few[:2] = 3, 3  # HR 0.04 against 0.013: measured ratio 0.33, wide intervals
    document = audit_document({"few": few, "rest": rest})
    check = group_check(document)
    assert check["passed"] and check["ratio"] < 0.5

    reading = read_check(check, document["groups"])

    assert reading.reason.startswith(f"the measured ratio {check['ratio']:.3g} is below the bound 0.5; passed on")


def test_a_check_judged_on_its_measured_value_reads_as_it_is(no_hit_group):
    coverage = next(c for c in no_hit_group["checks"] if c["check"] == f"coverage@{K}")

    reading = read_check(coverage, no_hit_group["groups"])

    assert reading.same and reading.measured == reading.judged == coverage["value"] and reading.reason is None


def test_the_card_says_when_a_check_passed_without_being_measured(no_hit_group):
    audit = {**no_hit_group, "checks": [allowed_unmeasured({
        "check": "arp_ratio", "slice": "all users", "value": None, "threshold": {"lower": None, "upper": 6.0},
        "passed": False, "message": "arp undefined on all users: the gate cannot pass a value it cannot measure"})]}
    run = {"model": "mf", "metrics": {"hr@10": 0.01}}
    card = model_card(run=run, audit=audit, verdict={"verdict": "passed", "override": None},
                      data={"source": "shop.csv", "description": "529 users"}, privacy="none",
                      code_version={"fedrec": "0"}, plots=[], created="today")

    markdown = render_card(card)

    assert card["release"]["passed_unmeasured"] == ["arp_ratio (all users)"]
    assert "Passed with checks never measured** (--allow-unmeasured): arp_ratio (all users)" in markdown
    row = next(line for line in markdown.splitlines() if line.startswith("| arp_ratio |"))
    assert "not measured" in row
