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
    last: int | None = None  # the run's last round or epoch, evaluated or not (the axis spans 1..last)
    every: int | None = None  # a federation's --eval-every: the server evaluates every this many rounds and the last


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
        last = max((r["round"] for r in rounds), default=None)
        every = (document.get("federation") or {}).get("eval_every")
        return AccuracyCurves("round", _nonempty({label: test, "validation HR@10": valid}), reported, last, every)
    training = document.get("training") or {}
    valid = [(e["epoch"], e["valid_hr@10"]) for e in training.get("history", []) if e.get("valid_hr@10") is not None]
    kept = training.get("best_epoch") or None
    test = [(kept, document["metrics"]["hr@10"])] if valid and kept and "hr@10" in document.get("metrics", {}) else []
    last = max((e["epoch"] for e in training.get("history", [])), default=None)
    return AccuracyCurves("epoch", _nonempty({"validation HR@10": valid, "test HR@10 (kept model)": test}), kept, last)


def _nonempty(series: dict[str, list[tuple[int, float]]]) -> dict[str, list[tuple[int, float]]]:
    return {label: points for label, points in series.items() if points}


def plot_accuracy(curves: AccuracyCurves, path: Path) -> None:
    """The accuracy picture (``accuracy_figure``) as a PNG at ``path``."""
    _save(accuracy_figure(curves), path)


def accuracy_figure(curves: AccuracyCurves):
    """HR@10 by round or epoch, from zero, on whole rounds from the first to the run's last; a
    dotted line marks the reported model (model.pt). Several evaluated rounds are a line; a run
    evaluated once is one point, and the plot says so. Returns the matplotlib Figure."""
    figure, axes = _figure()
    for label, points in curves.series.items():
        steps, values = zip(*points)
        validation = label.startswith("validation")
        axes.plot(steps, values, marker="o" if len(points) == 1 else ".", linewidth=1.5, label=label,
                  color="tab:orange" if validation else "tab:blue", linestyle="--" if validation else "-")
    if curves.reported is not None:
        axes.axvline(curves.reported, color="grey", linestyle=":", linewidth=1, label=f"model.pt ({curves.step} {curves.reported})")
    evaluated = sorted({step for points in curves.series.values() for step, _ in points})
    last = max([*evaluated, curves.last or 0, curves.reported or 0])
    axes.set_xlim(min([1, *evaluated]) - 0.5, last + 0.5)  # whole steps: ticks land on integers, never 9.45
    if len(evaluated) == 1:
        why = f" (--eval-every {curves.every}: every {curves.every}th round and the last)" if curves.every and curves.every > 1 else ""
        axes.text(0.5, 0.5, f"only {curves.step} {evaluated[0]} of {last} was evaluated{why}:\none point, no curve",
                  transform=axes.transAxes, ha="center", va="center", color="dimgrey")
    axes.set_title(f"HR@10 by {curves.step} (full ranking, leave-one-out)")
    axes.set_xlabel(curves.step)
    axes.set_ylabel("HR@10")
    axes.set_ylim(bottom=0)
    axes.legend(loc="lower right", fontsize="small")
    return figure


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
    rounds = [record["round"] for client in clients for record in client["rounds"]]
    if rounds:  # whole rounds only, even for a run of one
        axes.set_xlim(min(rounds) - 0.5, max(rounds) + 0.5)
    axes.set_xlabel("round (0: the DP popularity prior, released once before training)" if 0 in rounds else "round")
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
