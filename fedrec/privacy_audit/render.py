"""attacks.md: the privacy audit for people."""

from __future__ import annotations

from typing import Any


def render_markdown(document: dict[str, Any]) -> str:
    epsilon = document.get("accounted_epsilon")
    accounted = "none (no DP)" if epsilon is None else f"{epsilon:.3f} at delta {document['delta']:.1e}"
    lines = ["# Privacy audit", "",
             f"Run `{document['run']}`, {document['model']}, {document['mode']}; accounted epsilon {accounted}. "
             "What each attack assumes and sees: docs/privacy.md, \"Privacy audit\".", ""]
    leakage = document.get("item_leakage")
    if leakage:
        lines += [f"## Item-set leakage to the server (round {leakage['round']} replayed, {leakage['stores']} stores)", "",
                  "ROC AUC of ranking items by the change of their rows, mean over stores (0.5: guessing); "
                  "TPR at 1% FPR over all items.", "",
                  "| the server sees | single-buyer items | 2-4 buyers | 5+ buyers | all items | TPR@1%FPR |",
                  "|---|---|---|---|---|---|"]
        for view in [*leakage["views"], leakage["popularity"]]:
            lines.append(f"| {view['view']} | {_f(view['single_buyer']['auc'])} | {_f(view['2_to_4_buyers']['auc'])} | "
                         f"{_f(view['5_or_more_buyers']['auc'])} | {_f(view['all']['auc'])} | {_f(view['all']['tpr_at_1pct_fpr'])} |")
        lines.append("")
    membership = document.get("membership")
    if membership:
        lines += ["## Membership inference on the released model", ""]
        if "skipped" in membership:
            lines += [f"Skipped: {membership['skipped']}.", ""]
        else:
            lines += [f"{membership['members']} customers who trained against {membership['non_members']} held out: "
                      f"AUC **{membership['auc']:.3f}**, TPR {membership['tpr_at_1pct_fpr']:.4f} at 1% FPR, "
                      f"{membership['tpr_at_0_1pct_fpr']:.4f} at 0.1% FPR.", "",
                      f"Empirical epsilon lower bound (95% confidence, delta {membership['delta']:.1e}): "
                      f"**{membership['epsilon_lower_bound']:.3f}** (TPR {membership['bound_tpr']:.3f}, FPR "
                      f"{membership['bound_fpr']:.3f} on the half not used to pick the threshold); the most these "
                      f"sample sizes could prove: {membership['largest_provable']:.3f}.", ""]
    canaries = document.get("canaries")
    if canaries and "skipped" in canaries:
        lines += ["## Dirac canaries", "", f"Skipped: {canaries['skipped']}.", ""]
    elif canaries:
        lines += ["## Dirac canaries (carried by the run's own DP-SGD)", "",
                  f"{canaries['canaries_in']:,} canaries in and {canaries['canaries_out']:,} out, through the "
                  f"{canaries['steps']} DP-SGD steps of store `{canaries['store']}` (accounted epsilon {canaries['accounted_epsilon']:.3f}): empirical epsilon "
                  f"lower bound **{canaries['epsilon_lower_bound']:.3f}** (TPR {canaries['bound_tpr']:.3f}, FPR "
                  f"{canaries['bound_fpr']:.4f}); the most these canaries could prove: "
                  f"{canaries['largest_provable']:.3f}.", ""]
    verdict = document.get("verdict", {})
    if verdict.get("consistent") is not None:
        lines += [("Consistent with the accounting: " if verdict["consistent"] else
                   "**INCONSISTENT with the accounting, the DP implementation or its accounting is broken**: ")
                  + verdict["reason"] + ".", ""]
    risk = document.get("reidentification")
    if risk and risk.get("overall"):
        overall = risk["overall"]
        lines += ["## Re-identification risk of the anonymized data (prosecutor)", "",
                  f"Worst {overall['worst']:.3f}, average {overall['average']:.4f} over {len(risk['stores'])} stores; "
                  f"records with risk above 0.2: {overall['records_at_risk_above']['0.2']:.2%}.", ""]
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def summary_lines(document: dict[str, Any]) -> list[str]:
    lines = []
    leakage = document.get("item_leakage")
    if leakage:
        popularity = leakage["popularity"]["single_buyer"]["auc"]
        for view in leakage["views"]:
            lines.append(f"item leakage, {view['view']}: AUC {_f(view['single_buyer']['auc'])} on single-buyer items, "
                         f"{_f(view['all']['auc'])} on all (popularity only: {_f(popularity)})")
    membership = document.get("membership")
    if membership and "skipped" not in membership:
        lines.append(f"membership inference: AUC {membership['auc']:.3f}, TPR {membership['tpr_at_1pct_fpr']:.3f} at 1% FPR, "
                     f"epsilon >= {membership['epsilon_lower_bound']:.3f}")
    elif membership:
        lines.append(f"membership inference skipped: {membership['skipped']}")
    canaries = document.get("canaries")
    if canaries and "skipped" not in canaries:
        lines.append(f"Dirac canaries: epsilon >= {canaries['epsilon_lower_bound']:.3f} (at most "
                     f"{canaries['largest_provable']:.3f} provable with {canaries['canaries_in'] + canaries['canaries_out']:,} canaries)")
    if document["verdict"].get("consistent") is not None:
        lines.append(("consistent: " if document["verdict"]["consistent"] else "INCONSISTENT: ") + document["verdict"]["reason"])
    return lines
