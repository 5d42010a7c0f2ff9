"""The privacy-budget report of a run: what each client spent, recomputed from its ledger.

Epsilon is never copied from the ledger: every client's whole history goes through a
fresh Opacus accountant, so the report stands even if the ledger's cached numbers were
computed by older code. Anyone can check it the same way from ``report.json`` alone
(``history`` plus ``delta`` plus the client's ``accountant``).

Clients normally share one mechanism, unit and accountant. When they do not, the
top-level ``mechanism`` and ``unit`` list the distinct values joined with " | ", and the
top-level ``accountant`` is the first client's (by name): each client's entry keeps its
own ``accountant``, and its epsilon is computed with that one.

Files, in ``run_dir/privacy/``: ``report.json`` (for tools), ``report.md`` (for people),
``epsilon_by_round.png`` (cumulative epsilon per client) and ``accuracy_by_round.png``
(test and validation HR@10 by round, or by epoch for ``fedrec train``, from metrics.json).
Each is written to a temporary file and then renamed, so a crash leaves the previous report
or none, never half of one.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import opacus
from opacus.accountants import create_accountant

from fedrec.privacy.central_dp import against_whom
from fedrec.privacy.distributed_dp import EARLIER_MECHANISMS, MECHANISM
from fedrec.privacy.ledger import ClientLedger, epsilon_of, load_run_ledger
from fedrec.privacy.noise_check import CHECK_COORDINATES, FALSE_ALARM_PER_RUN, load_noise_checks
from fedrec.privacy.plots import accuracy_curves, plot_accuracy, plot_epsilon
from fedrec.privacy.several_stores import STORES, several_stores
from fedrec.rundir import RunDir, write_json, write_text

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
EPSILON_PLOT = "epsilon_by_round.png"
ACCURACY_PLOT = "accuracy_by_round.png"
DISCLOSED_FILE = "disclosed.json"  # written by the server: its mode's exact per-store values (wire contract)
REPORT_FILES = (REPORT_JSON, REPORT_MD, EPSILON_PLOT, ACCURACY_PLOT)
PLOT_CAPTIONS = {EPSILON_PLOT: "Cumulative epsilon per client by round", ACCURACY_PLOT: "Test and validation HR@10 by round"}


def write_privacy_report(run_dir: Path) -> Path:
    """Report the run's ledger. A run without DP still gets report.json and report.md,
    saying plainly that it carries no formal privacy guarantee (and no epsilon plot); any
    run whose metrics.json holds accuracy by round or epoch gets the accuracy plot."""
    ledgers = load_run_ledger(run_dir)
    run = RunDir(run_dir)
    folder = run.privacy
    folder.mkdir(parents=True, exist_ok=True)
    report = build_report(ledgers) if ledgers else no_privacy_report()
    if run.attacks.exists():
        attacks = json.loads(run.attacks.read_text(encoding="utf-8"))
        reported = json.loads(run.metrics.read_text(encoding="utf-8")).get("reported_round") if run.metrics.exists() else None
        if attacks.get("reported_round") == reported:  # an audit of an earlier model (the run went on) is not this one's
            report["empirical_audit"] = audit_summary(attacks)
    write_json(folder / REPORT_JSON, report)
    plots = []
    if report["clients"]:
        plot_epsilon(report, folder / EPSILON_PLOT)
        plots.append(EPSILON_PLOT)
    metrics = run.metrics
    curves = accuracy_curves(json.loads(metrics.read_text(encoding="utf-8"))) if metrics.exists() else None
    if curves is not None and curves.series:
        plot_accuracy(curves, folder / ACCURACY_PLOT)
        plots.append(ACCURACY_PLOT)
    disclosed = folder / DISCLOSED_FILE
    if disclosed.exists():
        report["disclosed_outside_accounting"] = json.loads(disclosed.read_text(encoding="utf-8"))
    if ledgers:
        report["customer_of_several_stores"] = [found for k in STORES if (found := several_stores(ledgers, k))]
    if ledgers and (viewers := against_whom(ledgers)):
        report["epsilon_against"] = viewers
    checks = load_noise_checks(run_dir)
    if checks:
        report["noise_check"] = noise_check_summary(checks)
    write_json(folder / REPORT_JSON, report)
    markdown = render_markdown(report, plots=plots)
    if report.get("customer_of_several_stores"):
        markdown += several_stores_section(report["customer_of_several_stores"])
    if "noise_check" in report:
        markdown += noise_check_section(report["noise_check"])
    if "epsilon_against" in report:
        markdown += against_whom_section(report["epsilon_against"], report["delta"])
    if "disclosed_outside_accounting" in report:
        markdown += disclosed_section(report["disclosed_outside_accounting"])
    if "empirical_audit" in report:
        markdown += "\n## Privacy audit\n\n" + audit_sentence(report) + " Details: attacks.md.\n"
    write_text(folder / REPORT_MD, markdown)
    return folder / REPORT_JSON


def against_whom_section(viewers: dict[str, Any], delta: float) -> str:
    """Central DP on devices: the epsilon against outsiders with the release and against the server."""
    return ("\n## Against whom\n\n"
            f"- outsiders with the release: ε={viewers['epsilon_outsiders']:.3f} (δ={delta:.1e}), with the sampling rate\n"
            f"- the server (it sees who took part): ε={viewers['epsilon_server']:.3f} (δ={delta:.1e}), rate 1\n\n"
            + viewers["which_holds"] + "\n")


def disclosed_section(disclosed: dict[str, Any]) -> str:
    """What the server learned exactly, covered by no epsilon (the wire contract's list for the run's mode)."""
    items = "".join(f"- {item['what']} ({item.get('form', 'per store')})\n" for item in disclosed["disclosed"]) or "- nothing\n"
    return ("\n## Disclosed outside the accounting\n\n"
            f"Privacy mode {disclosed['mode']}: besides what the ledgers account, the server learned these exact "
            "values, computed from the stores' customers and covered by no epsilon, from each store alone or only "
            "summed over the stores (fedrec/federation/wire_contract.py):\n\n" + items)


def audit_summary(attacks: dict[str, Any]) -> dict[str, Any]:
    """The headline of `fedrec privacy-audit`'s attacks.json, for the report and the model card."""
    membership = attacks.get("membership") or {}
    leakage = attacks.get("item_leakage") or {}
    own = next((view for view in leakage.get("views", []) if view.get("own")), None)
    risk = (attacks.get("reidentification") or {}).get("overall") or {}
    return {
        "generated_at": attacks.get("generated_at"),
        "membership_auc": membership.get("auc"),
        "membership_tpr_at_1pct_fpr": membership.get("tpr_at_1pct_fpr"),
        "epsilon_lower_bound": membership.get("epsilon_lower_bound"),
        "membership_largest_provable": membership.get("largest_provable"),
        "canary_epsilon_lower_bound": (attacks.get("canaries") or {}).get("epsilon_lower_bound"),
        "canary_largest_provable": (attacks.get("canaries") or {}).get("largest_provable"),
        "consistent": (attacks.get("verdict") or {}).get("consistent"),
        "verdict": (attacks.get("verdict") or {}).get("reason"),
        "leakage_view": None if own is None else own["view"],
        "leakage_single_buyer_auc": None if own is None else own["single_buyer"]["auc"],
        "popularity_single_buyer_auc": (leakage.get("popularity") or {}).get("single_buyer", {}).get("auc"),
        "reidentification_worst": risk.get("worst"),
        "reidentification_average": risk.get("average"),
    }


def audit_sentence(report: dict[str, Any]) -> str:
    """One paragraph on what the privacy audit's attacks found ("" when none ran)."""
    found = report.get("empirical_audit")
    if not found:
        return ""
    parts = []
    if found["membership_auc"] is not None:
        provable = found.get("membership_largest_provable")
        parts.append(f"membership inference on the model reached AUC {found['membership_auc']:.3f} (TPR "
                     f"{found['membership_tpr_at_1pct_fpr']:.3f} at 1% FPR), an empirical epsilon lower bound of "
                     f"{found['epsilon_lower_bound']:.2f}" + ("" if provable is None else f" (at most {provable:.2f} provable)"))
    if found.get("canary_epsilon_lower_bound") is not None:
        parts.append(f"Dirac canaries carried by the stores' DP-SGD gave {found['canary_epsilon_lower_bound']:.2f} "
                     f"(at most {found['canary_largest_provable']:.2f} provable)")
    if found["consistent"] is not None:
        parts.append("all consistent with the accounted epsilon" if found["consistent"] else
                     f"{found.get('verdict') or 'a bound'}: ABOVE the accounted epsilon, the DP implementation or its "
                     "accounting is broken")
    if found["leakage_single_buyer_auc"] is not None:
        parts.append(f"a curious server seeing {found['leakage_view']} guessed a store's single-buyer items with AUC "
                     f"{found['leakage_single_buyer_auc']:.3f} (popularity alone: {found['popularity_single_buyer_auc']:.3f})")
    if found["reidentification_worst"] is not None:
        parts.append(f"re-identification risk of the anonymized data is {found['reidentification_worst']:.3f} at worst, "
                     f"{found['reidentification_average']:.4f} on average")
    return f"Privacy audit ({found['generated_at']}): " + "; ".join(parts) + "."


def no_privacy_report(*, generated_at: datetime | None = None) -> dict[str, Any]:
    """The report of a run trained without differential privacy: same keys, no guarantee."""
    return {
        "mechanism": "none",
        "unit": None,
        "accountant": None,
        "delta": None,
        "epsilon_max": None,
        "clients": [],
        "generated_at": (generated_at or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "note": NO_GUARANTEE,
    }


PRIOR_ROUND = 0  # a ledger's round 0: the DP popularity prior, released before the first training round
PRIOR_NOTE = (
    "Rounds trained are the training rounds, as many as the run asked for. Before them, the DP popularity prior "
    "(noisy item counts that start the model at the popularity floor) was released once and accounted: it counts in "
    "epsilon and as one step, its noise multiplier is listed first, and it is round 0 of the epsilon plot."
)

NO_GUARANTEE = (
    "Trained without differential privacy (no --dp or --central-dp): raw data stayed on the clients, "
    "but what the model and its updates reveal about any one user is not bounded."
)


def build_report(ledgers: dict[str, ClientLedger], *, generated_at: datetime | None = None) -> dict[str, Any]:
    """The report document; ``generated_at`` defaults to now (give it for a reproducible report)."""
    if not ledgers:
        raise ValueError("build_report needs at least one client ledger; a run without DP has nothing to report.")
    ordered = [ledgers[name] for name in sorted(ledgers)]
    clients = [_client_entry(ledger) for ledger in ordered]
    segments = [segment for ledger in ordered for segment in ledger.history]
    sample_rates = [q for _, q, _ in segments]
    accountants = _distinct(ledger.accountant for ledger in ordered)
    return {
        "mechanism": " | ".join(_distinct(readable_mechanism(ledger.mechanism) for ledger in ordered)),
        "unit": " | ".join(_distinct(ledger.unit for ledger in ordered)),
        "accountant": ordered[0].accountant,
        "delta": max(ledger.delta for ledger in ordered),
        "epsilon_max": max(client["epsilon"] for client in clients),
        "lifetime_epsilon_max": max(client["lifetime_epsilon"] for client in clients),
        "noise_multiplier": sorted(_distinct(n for n, _, _ in segments)),
        "max_grad_norm": sorted(_distinct(ledger.max_grad_norm for ledger in ordered)),
        "sample_rate": {"min": min(sample_rates, default=None), "max": max(sample_rates, default=None)},
        "steps": {"total": sum(c["steps"] for c in clients), "max_per_client": max(c["steps"] for c in clients)},
        "rounds": len({record["round"] for ledger in ordered for record in ledger.rounds if record["round"] != PRIOR_ROUND}),
        "popularity_prior": any(_prior_steps(client["rounds"]) for client in clients),
        "generated_at": (generated_at or datetime.now(timezone.utc)).isoformat(timespec="seconds"),
        "epsilon_recomputed_with": (
            f"opacus {opacus.__version__} "
            + ", ".join(type(create_accountant(name)).__name__ for name in accountants)
            + ": a fresh accountant per client, fed that client's whole history"
        ),
        "clients": clients,
    }


def _client_entry(ledger: ClientLedger) -> dict[str, Any]:
    return {
        "client": ledger.client,
        "epsilon": epsilon_of(ledger.history, ledger.delta, ledger.accountant),
        "lifetime_epsilon": epsilon_of(ledger.lifetime_history, ledger.delta, ledger.accountant),
        "earlier_runs": [{"run": run["run"], "history": [list(h) for h in run["history"]]} for run in ledger.earlier_runs],
        "delta": ledger.delta,
        "accountant": ledger.accountant,
        "mechanism": readable_mechanism(ledger.mechanism),
        "unit": ledger.unit,
        "max_grad_norm": ledger.max_grad_norm,
        "steps": ledger.steps,
        "history": [[n, q, s] for n, q, s in ledger.history],
        "rounds": sorted(ledger.rounds, key=lambda record: record["round"]),
        "refused": list(ledger.refused),
    }


def readable_mechanism(mechanism: str) -> str:
    """A ledger's mechanism as the report says it: ledgers written before the wording changed
    keep the old words for life, so they are read as today's."""
    return MECHANISM if mechanism in EARLIER_MECHANISMS else mechanism


def trained_rounds(records: Sequence[dict[str, Any]]) -> int:
    """Training rounds in a client's per-round records: round 0 is the DP popularity prior, one
    accounted release before training, not a round."""
    return sum(1 for record in records if record["round"] != PRIOR_ROUND)


def _prior_steps(records: Sequence[dict[str, Any]]) -> int:
    return sum(int(record.get("steps", 1)) for record in records if record["round"] == PRIOR_ROUND)


def _distinct(values) -> list:
    """Distinct values in first-seen order, so the report lists them as the clients do."""
    return list(dict.fromkeys(values))


def several_stores_section(bounds: list[dict[str, Any]]) -> str:
    """A customer of several stores is several units: what the accountant says of them."""
    rows = "".join(f"| {b['stores']} | {b['epsilon']:.2f} at delta {b['delta']:.1e} ({b['how']}) | "
                   f"{b['group_privacy_epsilon']:.2f} at delta {b['group_privacy_delta']:.1e} |\n" for b in bounds)
    return ("\n## A customer of several stores\n\n"
            "Each store protects its own pseudonym of a customer, so a customer of several stores is several units "
            "(fedrec/privacy/several_stores.py):\n\n| stores | epsilon (from the ledgers) | generic group privacy |\n"
            "|---|---|---|\n" + rows)


def noise_check_summary(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The report's noise check: every sum's check by round and one verdict for the run."""
    failed = [check["round"] for check in checks if not check["passed"]]
    return {"coordinates": CHECK_COORDINATES, "false_alarm_per_run": FALSE_ALARM_PER_RUN,
            "verdict": "failed" if failed else "passed", "failed_rounds": failed, "checks": checks}


def noise_check_section(summary: dict[str, Any]) -> str:
    """The noise check for people: the verdict in words, then the measured/claimed ratio by round."""
    ratios = [check["ratio"] for check in summary["checks"] if check["ratio"] is not None]
    if summary["verdict"] == "passed":
        verdict = (f"Passed: every one of the {len(summary['checks'])} sums held the noise its ledgers claim (measured / "
                   f"claimed variance {min(ratios):.3f} to {max(ratios):.3f}).")
    else:
        verdict = (f"FAILED in round(s) {', '.join(map(str, summary['failed_rounds']))} (round 0: the prior): those sums "
                   "held less noise than the ledgers claim, so the epsilon above does not hold for this run.")

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    rows = "".join(f"| {c['round']} | {c['shares']} | {figure(c['ratio'])} | {figure(c['threshold'])} | "
                   f"{'pass' if c['passed'] else 'FAIL'} |\n" for c in summary["checks"])
    return ("\n## Noise check\n\n"
            f"Every noise share carries {summary['coordinates']:,} noise-only check coordinates; the server compares their "
            "summed variance with what the shares claim (a one-sided chi-square test, false alarm "
            f"{summary['false_alarm_per_run']:g} per run; fedrec/privacy/noise_check.py). {verdict}\n\n"
            "| round | shares | measured / claimed | least expected | verdict |\n|---|---|---|---|---|\n" + rows)


def guarantee(report: dict[str, Any]) -> str:
    """The run's privacy guarantee in one sentence: every client is within (ε_max, δ_max);
    a run whose noise check failed says first that it does not hold."""
    check = report.get("noise_check") or {}
    if check.get("verdict") == "failed":
        return (f"The privacy claim FAILED the noise check (round(s) {', '.join(map(str, check['failed_rounds']))} summed "
                "less noise than the ledgers claim); the epsilon below does not hold. " + _ledger_guarantee(report))
    return _ledger_guarantee(report)


def _ledger_guarantee(report: dict[str, Any]) -> str:
    if not report["clients"]:
        return report.get("note", NO_GUARANTEE)
    unit = report["unit"] or "unit not recorded"
    lifetime = report.get("lifetime_epsilon_max", report["epsilon_max"])
    over_runs = (f" (over every run that kept the same state folder: ε={lifetime:.3f})"
                 if lifetime > report["epsilon_max"] + 1e-9 else "")
    viewers = report.get("epsilon_against")
    against = (f" Against outsiders with the release ε={viewers['epsilon_outsiders']:.3f} (secret Poisson cohorts); "
               f"against the server, which sees who took part, ε={viewers['epsilon_server']:.3f}." if viewers else "")
    return (
        f"Worst-case (ε={report['epsilon_max']:.3f}, δ={report['delta']:.1e})-DP per {unit} in this run{over_runs}, "
        f"{report['mechanism']}, accountant {_accountants(report)}.{against}"
    )


def _accountants(report: dict[str, Any]) -> str:
    """Every accountant the clients used: the top-level field names only the first."""
    return " | ".join(_distinct(client["accountant"] for client in report["clients"]))


def render_markdown(report: dict[str, Any], *, plots: Sequence[str] = ()) -> str:
    """The report for people: the guarantee, one table row per client, how to read it, and
    the ``plots`` written beside it (file names in the same folder)."""
    pictures = [line for name in plots for line in (f"![{PLOT_CAPTIONS.get(name, name)}]({name})", "")]
    if not report["clients"]:
        return "\n".join(["# Privacy budget", "", guarantee(report), "", *pictures, f"Generated {report['generated_at']}.", ""])
    unit = report["unit"] or "unit of privacy (not recorded in the ledger)"
    lines = [
        "# Privacy budget",
        "",
        guarantee(report),
        "",
        f"Generated {report['generated_at']}; epsilon recomputed with {report['epsilon_recomputed_with']}.",
        "",
        "| client | epsilon (this run) | epsilon (lifetime) | delta | noise multiplier(s) | sample rate | steps | rounds trained | DP popularity prior | rounds refused |",
        "|---|---:|---:|---:|---|---|---:|---:|---|---:|",
    ]
    for client in report["clients"]:
        noise = _listing(n for n, _, _ in client["history"])
        rates = _listing(q for _, q, _ in client["history"])
        prior = _prior_steps(client["rounds"])
        lines.append(
            f"| {_cell(client['client'])} | {client['epsilon']:.3f} | {client.get('lifetime_epsilon', client['epsilon']):.3f} "
            f"| {client['delta']:.1e} | {noise} | {rates} "
            f"| {client['steps']} | {trained_rounds(client['rounds'])} "
            f"| {'one accounted release' if prior == 1 else f'{prior} accounted releases' if prior else '-'} "
            f"| {len(client['refused'])} |"
        )
    if any(_prior_steps(client["rounds"]) for client in report["clients"]):
        lines += ["", PRIOR_NOTE]
    lines += [
        "",
        *pictures,
        "## How to read this",
        "",
        f"The guarantee protects one {unit}: whether or not any single {unit} took part, what the "
        "run released changes the probability of any outcome by at most a factor e^ε, except with "
        "probability δ. Smaller ε is stronger privacy.",
        "",
        "A client's epsilon accumulates over every round it trained, restarts included: it is the "
        "budget spent on the whole run, not on one round. The worst-case epsilon is the largest "
        "over clients. The lifetime epsilon composes every run whose ledger the client kept (the same "
        "state folder): the budget its customers have spent so far, which --lifetime-epsilon caps.",
        "",
        "A refused round is one the client declined to train because it would have taken its "
        "epsilon past the configured maximum (--max-epsilon): its budget is used up.",
        "",
    ]
    return "\n".join(lines)


def _listing(values) -> str:
    shown = _distinct(f"{value:g}" for value in values)
    return ", ".join(shown) if shown else "—"


def _cell(text: str) -> str:
    """A client name as a table cell: a '|' in it would split the row."""
    return str(text).replace("|", "\\|")
