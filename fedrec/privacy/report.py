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
``epsilon_by_round.png`` (cumulative epsilon per client). Each is written to a temporary
file and then renamed, so a crash leaves the previous report or none, never half of one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import opacus
from opacus.accountants import create_accountant

from fedrec.privacy.ledger import ClientLedger, epsilon_of, load_run_ledger
from fedrec.training.central import write_json

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
EPSILON_PLOT = "epsilon_by_round.png"
REPORT_FILES = (REPORT_JSON, REPORT_MD, EPSILON_PLOT)

# Past this many clients one coloured line each is unreadable: grey them, colour the worst case.
MANY_CLIENTS = 20
# A legend with more entries than this hides the plot.
MAX_LEGEND = 10


def write_privacy_report(run_dir: Path) -> Path:
    """Report the run's ledger. A run without DP still gets report.json and report.md,
    saying plainly that it carries no formal privacy guarantee (and no plot)."""
    ledgers = load_run_ledger(run_dir)
    folder = run_dir / "privacy"
    folder.mkdir(parents=True, exist_ok=True)
    report = build_report(ledgers) if ledgers else no_privacy_report()
    write_json(folder / REPORT_JSON, report)
    _write_text(folder / REPORT_MD, render_markdown(report))
    if report["clients"]:
        plot_epsilon(report, folder / EPSILON_PLOT)
    return folder / REPORT_JSON


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
        "mechanism": " | ".join(_distinct(ledger.mechanism for ledger in ordered)),
        "unit": " | ".join(_distinct(ledger.unit for ledger in ordered)),
        "accountant": ordered[0].accountant,
        "delta": max(ledger.delta for ledger in ordered),
        "epsilon_max": max(client["epsilon"] for client in clients),
        "noise_multiplier": sorted(_distinct(n for n, _, _ in segments)),
        "max_grad_norm": sorted(_distinct(ledger.max_grad_norm for ledger in ordered)),
        "sample_rate": {"min": min(sample_rates, default=None), "max": max(sample_rates, default=None)},
        "steps": {"total": sum(c["steps"] for c in clients), "max_per_client": max(c["steps"] for c in clients)},
        "rounds": len({record["round"] for ledger in ordered for record in ledger.rounds}),
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
        "delta": ledger.delta,
        "accountant": ledger.accountant,
        "mechanism": ledger.mechanism,
        "unit": ledger.unit,
        "max_grad_norm": ledger.max_grad_norm,
        "steps": ledger.steps,
        "history": [[n, q, s] for n, q, s in ledger.history],
        "rounds": sorted(ledger.rounds, key=lambda record: record["round"]),
        "refused": list(ledger.refused),
    }


def _distinct(values) -> list:
    """Distinct values in first-seen order, so the report lists them as the clients do."""
    return list(dict.fromkeys(values))


def guarantee(report: dict[str, Any]) -> str:
    """The run's privacy guarantee in one sentence: every client is within (ε_max, δ_max)."""
    if not report["clients"]:
        return report.get("note", NO_GUARANTEE)
    unit = report["unit"] or "unit not recorded"
    return (
        f"Worst-case (ε={report['epsilon_max']:.3f}, δ={report['delta']:.1e})-DP per {unit}, "
        f"{report['mechanism']}, accountant {_accountants(report)}."
    )


def _accountants(report: dict[str, Any]) -> str:
    """Every accountant the clients used: the top-level field names only the first."""
    return " | ".join(_distinct(client["accountant"] for client in report["clients"]))


def render_markdown(report: dict[str, Any]) -> str:
    """The report for people: the guarantee, one table row per client, and how to read it."""
    if not report["clients"]:
        return f"# Privacy budget\n\n{guarantee(report)}\n\nGenerated {report['generated_at']}.\n"
    unit = report["unit"] or "unit of privacy (not recorded in the ledger)"
    lines = [
        "# Privacy budget",
        "",
        guarantee(report),
        "",
        f"Generated {report['generated_at']}; epsilon recomputed with {report['epsilon_recomputed_with']}.",
        "",
        "| client | epsilon | delta | noise multiplier(s) | sample rate | steps | rounds trained | rounds refused |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for client in report["clients"]:
        noise = _listing(n for n, _, _ in client["history"])
        rates = _listing(q for _, q, _ in client["history"])
        lines.append(
            f"| {_cell(client['client'])} | {client['epsilon']:.3f} | {client['delta']:.1e} | {noise} | {rates} "
            f"| {client['steps']} | {len(client['rounds'])} | {len(client['refused'])} |"
        )
    lines += [
        "",
        "## How to read this",
        "",
        f"The guarantee protects one {unit}: whether or not any single {unit} took part, what the "
        "run released changes the probability of any outcome by at most a factor e^ε, except with "
        "probability δ. Smaller ε is stronger privacy.",
        "",
        "A client's epsilon accumulates over every round it trained, restarts included: it is the "
        "budget spent on the whole run, not on one round. The worst-case epsilon is the largest "
        "over clients.",
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


def plot_epsilon(report: dict[str, Any], path: Path) -> None:
    """Cumulative epsilon by round, one line per client, from the ledger's per-round records."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    clients = report["clients"]
    worst = max(clients, key=lambda client: client["epsilon"])
    many = len(clients) > MANY_CLIENTS
    for client in clients:
        rounds = [record["round"] for record in client["rounds"]]
        epsilons = [record["epsilon"] for record in client["rounds"]]
        if not many:
            axes.plot(rounds, epsilons, marker=".", linewidth=1.5, label=str(client["client"]))
        elif client is not worst:
            axes.plot(rounds, epsilons, color="grey", linewidth=0.6, alpha=0.5)
        else:
            axes.plot(rounds, epsilons, color="tab:red", linewidth=2, zorder=3)
            if rounds:
                axes.annotate(f"{client['client']} (worst case)", (rounds[-1], epsilons[-1]), color="tab:red",
                              xytext=(-4, 6), textcoords="offset points", ha="right")
    deltas = {client["delta"] for client in clients}
    delta_text = f"δ = {report['delta']:.1e}" if len(deltas) == 1 else f"δ ≤ {report['delta']:.1e}"
    axes.set_title(f"Cumulative ε per client ({delta_text}, accountant {_accountants(report)})")
    axes.set_xlabel("round")
    axes.set_ylabel("cumulative ε")
    axes.set_ylim(bottom=0)  # from zero, so the eye reads growth in epsilon as the budget spent
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    if len(clients) <= MAX_LEGEND:
        axes.legend(loc="upper left", fontsize="small")
    figure.tight_layout()
    tmp = path.with_suffix(path.suffix + ".tmp")
    figure.savefig(tmp, format="png")
    tmp.replace(path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
