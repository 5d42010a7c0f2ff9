"""The privacy report's pictures: the epsilon each client spent by round, and beside it the
accuracy the run reached by round, so what privacy cost and what it bought are read together.

Each picture is written to a temporary file and then renamed, as the report's other files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedrec.rundir import atomic_write

# Past this many clients one coloured line each is unreadable: grey them, colour the worst case.
MANY_CLIENTS = 20
# A legend with more entries than this hides the plot.
MAX_LEGEND = 10


@dataclass
class AccuracyCurves:
    """HR@10 series by round (federated run) or by epoch (``fedrec train``)."""

    step: str  # "round" or "epoch"
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # label -> (step, HR@10) points
    reported: int | None = None  # the round or epoch of model.pt and the headline metrics


def accuracy_curves(document: dict[str, Any]) -> AccuracyCurves:
    """The curves of a run's metrics.json document; no series when it recorded none
    (pop and itemknn train in one pass).

    Federated runs log test and validation HR@10 each round (without server-side evaluation,
    the clients' own test HR@10). ``fedrec train`` validates each epoch and tests once, the
    model it kept: that test is one point.
    """
    if "rounds" in document:
        rounds = document["rounds"]
        test = [(r["round"], r["hr@10"]) for r in rounds if r.get("hr@10") is not None]
        label = "test HR@10"
        if not test:
            test = [(r["round"], r["client_metrics"]["hr@10"]) for r in rounds if "hr@10" in r.get("client_metrics", {})]
            label = "clients' test HR@10"
        valid = [(r["round"], r["valid_hr@10"]) for r in rounds if r.get("valid_hr@10") is not None]
        reported = document.get("reported_round", document.get("best_round"))
        return AccuracyCurves("round", _nonempty({label: test, "validation HR@10": valid}), reported)
    training = document.get("training") or {}
    valid = [(e["epoch"], e["valid_hr@10"]) for e in training.get("history", []) if e.get("valid_hr@10") is not None]
    kept = training.get("best_epoch") or None
    test = [(kept, document["metrics"]["hr@10"])] if valid and kept and "hr@10" in document.get("metrics", {}) else []
    return AccuracyCurves("epoch", _nonempty({"validation HR@10": valid, "test HR@10 (kept model)": test}), kept)


def _nonempty(series: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float]]]:
    return {label: points for label, points in series.items() if points}


def plot_accuracy(curves: AccuracyCurves, path: Path) -> None:
    """HR@10 by round or epoch, from zero; a dotted line marks the reported model (model.pt)."""
    figure, axes = _figure()
    for label, points in curves.series.items():
        steps, values = zip(*points)
        validation = label.startswith("validation")
        axes.plot(steps, values, marker="o" if len(points) == 1 else ".", linewidth=1.5, label=label,
                  color="tab:orange" if validation else "tab:blue", linestyle="--" if validation else "-")
    if curves.reported is not None:
        axes.axvline(curves.reported, color="grey", linestyle=":", linewidth=1, label=f"model.pt ({curves.step} {curves.reported})")
    axes.set_title(f"HR@10 by {curves.step} (full ranking, leave-one-out)")
    axes.set_xlabel(curves.step)
    axes.set_ylabel("HR@10")
    axes.set_ylim(bottom=0)
    axes.legend(loc="lower right", fontsize="small")
    _save(figure, path)


def plot_epsilon(report: dict[str, Any], path: Path) -> None:
    """Cumulative epsilon by round, one line per client, from the ledger's per-round records."""
    figure, axes = _figure()
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
    accountants = " | ".join(dict.fromkeys(client["accountant"] for client in clients))
    axes.set_title(f"Cumulative ε per client ({delta_text}, accountant {accountants})")
    axes.set_xlabel("round")
    axes.set_ylabel("cumulative ε")
    axes.set_ylim(bottom=0)  # from zero, so the eye reads growth in epsilon as the budget spent
    if len(clients) <= MAX_LEGEND:
        axes.legend(loc="upper left", fontsize="small")
    _save(figure, path)


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(alpha=0.3)
    return figure, axes


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
