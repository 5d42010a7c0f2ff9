"""The release audit's pictures, drawn from audit.json alone: HR@k per customer group with
its interval, the exposure curve of the catalog, recommended vs consumed popularity. A
reviewer sees at a glance whom the model serves worse and whether it pushes best-sellers.

Each picture is written to a temporary file and then renamed (fedrec.rundir.atomic_write),
as the audit's other files. Definitions of what is drawn: fedrec.audit.group_utility and
fedrec.audit.popularity.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from fedrec.release.readings import MEASURED, Reading, is_group_ratio, read_check
from fedrec.rundir import atomic_write

GROUP_UTILITY, EXPOSURE_CURVE, POPULARITY = "group_utility", "exposure_curve", "popularity"
PANEL_COLUMNS = 3  # group panels per row
SHOWN_SUPPRESSED = 4  # suppressed labels named in a panel before "+n more"


def write_audit_plots(document: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Draw the audit document's pictures into ``folder`` as ``<name>.png``; returns
    {name: path} for those drawn (group_utility, exposure_curve, popularity). A picture
    whose part of the document is missing or empty (no groupings, no popularity audit, no
    filled slot) is skipped, not drawn blank."""
    folder = Path(folder)
    drawn: dict[str, Path] = {}
    if document.get("groups"):
        drawn[GROUP_UTILITY] = plot_group_utility(document, folder / f"{GROUP_UTILITY}.png")
    popularity = document.get("popularity") or {}
    k = popularity.get("k")
    if popularity.get(f"exposure_curve@{k}"):
        drawn[EXPOSURE_CURVE] = plot_exposure_curve(popularity, folder / f"{EXPOSURE_CURVE}.png")
    deciles = popularity.get(f"popularity_deciles@{k}") or {}
    if deciles.get("recommended_share") or deciles.get("consumed_share"):
        drawn[POPULARITY] = plot_popularity(popularity, folder / f"{POPULARITY}.png")
    return drawn


def plot_group_utility(document: dict[str, Any], path: Path) -> Path:
    """One panel per grouping: HR@k per reported group, bars with their bootstrap interval,
    a dotted line at all users' HR@k and, when the gate checks group ratios, a dashed line
    at min_group_ratio × the best group's HR@k (with interval evidence the gate compares
    intervals, so a bar under the line fails only if its gap is beyond noise). A blocked
    grouping's title is red; suppressed groups are named under the title."""
    groups = document["groups"]
    config = document.get("config") or {}
    ratio = config.get("min_group_ratio")
    blocked = {c["slice"] for c in document.get("checks", []) if c["check"].endswith("_group_ratio") and not c["passed"]}
    checks = {c["slice"]: c for c in document.get("checks", []) if is_group_ratio(c)}
    utility = document.get("utility") or {}
    rows = -(-len(groups) // PANEL_COLUMNS)
    columns = min(len(groups), PANEL_COLUMNS)
    figure, panels = _figure(width=4.4 * columns, height=3.6 * rows + 0.6, rows=rows, columns=columns)
    k = next(iter(groups.values()))["k"]
    metric = f"hr@{k}"
    for axes, (grouping, audit) in zip(panels, groups.items()):
        labels = list(audit["groups"])
        values = [audit["groups"][g][metric] or 0.0 for g in labels]
        intervals = [audit["groups"][g].get(f"{metric}_ci") for g in labels]
        low = [v - ci[0] if ci else 0.0 for v, ci in zip(values, intervals)]
        high = [ci[1] - v if ci else 0.0 for v, ci in zip(values, intervals)]
        positions = range(len(labels))
        axes.bar(positions, values, color="tab:blue", alpha=0.8, yerr=[low, high], capsize=3, ecolor="black")
        ticks = [f"{_short(g)}\n{audit['groups'][g]['users']} users" for g in labels]
        axes.set_xticks(list(positions), ticks, rotation=30 if len(labels) > 3 else 0,
                        ha="right" if len(labels) > 3 else "center", fontsize="small")
        if utility.get(metric) is not None:
            axes.axhline(utility[metric], color="grey", linestyle=":", linewidth=1, label="all users")
        gap = (audit.get("gaps") or {}).get(metric)
        if ratio is not None and gap is not None:
            best = audit["groups"][gap["best"]][metric]
            axes.axhline(ratio * best, color="tab:red", linestyle="--", linewidth=1,
                         label=f"{ratio:g} \u00d7 best ({_short(gap['best'])})")
        failed = f"grouping {grouping}" in blocked
        title = f"{grouping}{' (BLOCKED)' if failed else ''}"
        if f"grouping {grouping}" in checks:
            title += "\n" + ratio_caption(read_check(checks[f"grouping {grouping}"], groups))
        if audit["suppressed"]:
            names = ", ".join(_short(s, 10) for s in audit["suppressed"][:SHOWN_SUPPRESSED])
            more = len(audit["suppressed"]) - SHOWN_SUPPRESSED
            note = f"suppressed (< {audit['min_group_size']} users): {names}{f' +{more} more' if more > 0 else ''}"
            title += "\n" + "\n".join(textwrap.wrap(note, 50))
        if not labels:
            axes.text(0.5, 0.5, "no group reported", ha="center", va="center", transform=axes.transAxes)
        axes.set_title(title, fontsize="small", color="tab:red" if failed else "black")
        axes.set_ylabel(f"HR@{k}")
        axes.set_ylim(bottom=0)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="best", fontsize="x-small")
    for axes in panels[len(groups):]:
        axes.set_visible(False)
    evidence = config.get("group_evidence")
    gate = "" if ratio is None else f"; dashed: the gate's bound{f' ({evidence} evidence)' if evidence else ''}"
    figure.suptitle(f"HR@{k} per customer group, 95% bootstrap intervals{gate}")
    return _save(figure, path)


def ratio_caption(reading: Reading) -> str:
    """A panel's line on its group check: the measured ratio, and the bound when the gate judged that."""
    measured = "-" if reading.measured is None else f"{reading.measured:.2f}"
    verdict = "passed" if reading.passed else "failed"
    if reading.judged_as == MEASURED:
        return f"worst/best ratio {measured}: {verdict}"
    return f"worst/best ratio {measured}; {verdict} on the interval bound {reading.judged:.2f}"


def plot_exposure_curve(popularity: dict[str, Any], path: Path) -> Path:
    """The Lorenz curve of position-weighted exposure against the equality diagonal; the
    further it sags below, the more the lists concentrate on few items."""
    k = popularity["k"]
    curve = popularity[f"exposure_curve@{k}"]
    figure, (axes,) = _figure(width=6, height=6)
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="equal exposure")
    gini = popularity.get(f"gini_exposure@{k}")
    axes.plot(curve["item_share"], curve["exposure_share"], color="tab:blue", linewidth=2,
              label=f"top-{k} lists (Gini {_number(gini)})")
    axes.fill_between(curve["item_share"], curve["exposure_share"], curve["item_share"], color="tab:blue", alpha=0.1)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_aspect("equal")
    axes.set_xlabel(f"share of the {popularity['n_items']} catalog items, least exposed first")
    axes.set_ylabel("share of position-weighted exposure")
    axes.set_title(f"Exposure curve of the top-{k} lists (coverage@{k} {_number(popularity.get(f'coverage@{k}'))})")
    axes.legend(loc="upper left", fontsize="small")
    return _save(figure, path)


def plot_popularity(popularity: dict[str, Any], path: Path) -> Path:
    """Share of recommended slots beside share of consumed items, per popularity decile of
    the catalog; recommended bars above consumed ones on the right = best-sellers pushed."""
    k = popularity["k"]
    deciles = popularity[f"popularity_deciles@{k}"]
    figure, (axes,) = _figure(width=9, height=5)
    width = 0.4
    bins = len(deciles["items"])
    for offset, key, label, color in ((-width / 2, "recommended_share", f"recommended (top-{k} slots)", "tab:red"),
                                      (width / 2, "consumed_share", "consumed (users' histories)", "tab:grey")):
        if deciles.get(key):
            axes.bar([d + offset for d in range(bins)], deciles[key], width, label=label, color=color, alpha=0.85)
    ticks = [f"{d + 1}\n{_range(lo, hi)}" for d, (lo, hi) in
             enumerate(zip(deciles["popularity_min"], deciles["popularity_max"]))]
    axes.set_xticks(range(bins), ticks, fontsize="small")
    axes.set_xlabel(f"popularity decile of the catalog, least popular first; below it, the range of "
                    f"{popularity['popularity_source']} per item")
    axes.set_ylabel("share")
    axes.set_ylim(bottom=0)
    axes.set_title(f"Recommended vs consumed items by popularity (ARP ratio {_number(popularity.get('arp_ratio'))})")
    axes.legend(loc="upper left", fontsize="small")
    return _save(figure, path)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _range(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "(empty)"
    text = [f"{v:g}" if float(v).is_integer() else f"{v:.3g}" for v in (low, high)]
    return text[0] if text[0] == text[1] else f"{text[0]}-{text[1]}"


def _short(label: str, limit: int = 16) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "\u2026"


def _figure(*, width: float, height: float, rows: int = 1, columns: int = 1):
    """An Agg figure (no display needed) with rows x columns axes, flattened."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    panels = figure.subplots(rows, columns, squeeze=False).ravel().tolist()
    for axes in panels:
        axes.grid(alpha=0.3)
        axes.set_axisbelow(True)
    return figure, panels


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png"))
