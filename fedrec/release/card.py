"""The model card of a release: JSON with model-card-toolkit's field names (model_details,
model_parameters, quantitative_analysis, considerations) and the same content as Markdown.

Pure: the run's metrics.json, its audit, its privacy statement and data summary in; a dict
and a string out. Graphics are named by file (the PNGs beside the card), not inlined.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from fedrec.audit.gate import unmeasured, wilson_interval
from fedrec.privacy.modes import privacy_mode
from fedrec.release.readings import MEASURED, is_group_ratio, read_check

INTENDED_USE = (
    "Ranking beauty and cosmetics products for a shopper of the stores whose data trained it, from their own "
    "history (next item), with the popularity fallback for shoppers without a usable history."
)
LIMITATIONS = (
    "Measured offline on each user's last interaction (leave-one-out, full ranking); online behaviour, new "
    "items and new stores are not covered.",
    "Group figures cover only the attributes the data carries, after anonymization, and only groups of at least "
    "the minimum size; smaller groups are suppressed, not audited.",
    "Popularity-bias and exposure audits measure what is recommended, not what is bought.",
)
UNSUITABLE = "Decisions about individuals beyond product ranking (credit, pricing, eligibility)."


def _metric(kind: str, value: float | None, slice_: str, interval: Sequence[float] | None = None,
            threshold: Mapping[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "value": value, "slice": slice_}
    if interval is not None:
        entry["confidence_interval"] = {"lower_bound": interval[0], "upper_bound": interval[1]}
    if threshold is not None:
        entry["threshold"] = dict(threshold)
    return entry


def populations(run: Mapping[str, Any], audit: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Whom the card's overall test figures cover: {"audit": the release audit's HR@k (what the
    gate judged), "run": metrics.json's other test metrics}, each {"users", "who", "by"}."""
    utility, tested = audit["utility"], run.get("test_population") or {}
    return {"audit": {"users": utility["users"], "who": utility.get("population") or "test users",
                      "by": "the release audit, which the gate judged"},
            "run": {"users": tested.get("users"), "who": tested.get("who") or "test users (not recorded by this run)",
                    "by": tested.get("by") or "metrics.json"}}


def tested_words(population: Mapping[str, Any]) -> str:
    """"1,316 test users who trained: ..." (no count when the server never knew it)."""
    return ("" if population.get("users") is None else f"{population['users']:,} ") + population["who"]


def same_figure_note(run: Mapping[str, Any], audit: Mapping[str, Any]) -> str | None:
    """A sentence when metrics.json's test HR@k and the audit's are two figures, saying why."""
    k = audit["utility"]["k"]
    mine, theirs = audit["utility"].get(f"hr@{k}"), (run.get("metrics") or {}).get(f"hr@{k}")
    who = populations(run, audit)
    if mine is None or theirs is None or (abs(mine - theirs) < 5e-7 and who["run"]["users"] == who["audit"]["users"]):
        return None
    return (f"Test HR@{k} is {mine:.4f} in the release audit, on {tested_words(who['audit'])}; metrics.json says "
            f"{theirs:.4f}, on {tested_words(who['run'])} ({who['run']['by']}). The gate judged the audit's figure. "
            "They differ in the users they cover or, for a model without user vectors in model.pt (federated MF), in "
            "how users are scored: the stores rank with their private user vectors, the server folds them in.")


def performance_metrics(run: Mapping[str, Any], audit: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Test metrics (the audit's HR@k with its Wilson interval, metrics.json's others, each with
    the users it covers), per-group HR@k and NDCG@k with their bootstrap intervals, and every
    gate check with its threshold: the measured value, and where the gate judged another
    value (the group ratio's interval bound) that one beside it, with the reason a pass rests on it."""
    k, users = audit["utility"]["k"], audit["utility"]["users"]
    hr = audit["utility"][f"hr@{k}"]
    who = populations(run, audit)
    overall = _metric(f"HR@{k}", hr, "all users", None if hr is None else wilson_interval(round(hr * users), users))
    found = [{**overall, "population": who["audit"]}]
    for name, value in sorted((run.get("metrics") or {}).items()):
        if name != f"hr@{k}" and isinstance(value, (int, float)):
            found.append({**_metric(name.upper() if name != "mrr" else "MRR", float(value), "all users"),
                          "population": who["run"]})
    for grouping, groups in audit.get("groups", {}).items():
        for label, entry in groups["groups"].items():
            for metric in (f"hr@{k}", f"ndcg@{k}"):
                found.append(_metric(metric.upper(), entry[metric], f"{grouping}={label} ({entry['users']} users)",
                                     entry.get(f"{metric}_ci")))
    for check in audit["checks"]:
        reading = read_check(check, audit.get("groups", {}))
        interval = check.get("ratio_ci") if is_group_ratio(check) else None
        entry = _metric(check["check"], reading.measured, check["slice"], interval, threshold=check["threshold"])
        entry["gate"] = {"judged_value": reading.judged, "judged_as": reading.judged_as, "passed": reading.passed,
                         "reason": reading.reason}
        found.append(entry)
    return found


def model_card(*, run: Mapping[str, Any], audit: Mapping[str, Any], verdict: Mapping[str, Any], data: Mapping[str, Any],
               privacy: str, code_version: Mapping[str, Any], plots: Sequence[str], created: str) -> dict[str, Any]:
    """The card's content (model-card-toolkit schema names)."""
    config = run.get("config") or {}
    federated = "federation.partition" in config
    clients = config.get("federation.num_clients")
    how = (f"federated ({config.get('federation.partition')} partition"
           + (f", {clients} clients" if clients else "") + f"), round {run.get('reported_round')} reported"
           if federated else "trained centrally")
    override = verdict.get("override")
    return {
        "model_details": {
            "name": f"fedrec {run['model']} on {data['source']}",
            "overview": f"Next-item recommender ({run['model']}), {how}"
                        + (", with differential privacy" if privacy_mode(config.get("dp")).private else "") + f". Release verdict: {verdict['verdict']}.",
            "version": {"name": code_version.get("fedrec"), "date": created},
            "owners": [],
            "licenses": [],
            "references": [{"reference": "docs/audit.md (audit definitions)"}, {"reference": "docs/privacy.md"}],
        },
        "model_parameters": {
            "model_architecture": run["model"],
            "data": [{"name": data["source"], "description": data["description"],
                      "sensitive": {"sensitive_data": list(data.get("sensitive", []))}}],
            "input_format": "a user's item history (item ids from items.parquet), most recent last",
            "output_format": "item ids ranked best first; seen items excluded",
        },
        "quantitative_analysis": {
            "performance_metrics": performance_metrics(run, audit),
            "tested": populations(run, audit),
            "notes": [note for note in (same_figure_note(run, audit),) if note],
            "graphics": {"description": "per-group HR with intervals, exposure curve, recommended vs consumed popularity",
                         "collection": [{"name": name, "image": name} for name in plots]},
        },
        "considerations": {
            "users": [{"description": "shop operators serving recommendations to their own customers"}],
            "use_cases": [{"description": INTENDED_USE}],
            "limitations": [{"description": text} for text in LIMITATIONS] + [{"description": f"Not for: {UNSUITABLE}"}],
            "tradeoffs": [{"description": privacy}],
            "ethical_considerations": [
                {"name": "Privacy", "mitigation_strategy": privacy},
                {"name": "Unequal quality across customer groups",
                 "mitigation_strategy": "the release gate bounds the worst-to-best group HR ratio (audit.json)"},
                {"name": "Popularity bias and provider exposure",
                 "mitigation_strategy": "the release gate bounds the popularity ratio and catalog coverage"},
            ],
        },
        "release": {"verdict": verdict["verdict"], "override": override, "code_version": dict(code_version),
                    "passed_unmeasured": unmeasured(audit)},
    }


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _tested_lines(quantitative: Mapping[str, Any]) -> list[str]:
    """Whom the overall test figures ("all users" in the table) cover, said once, and why two differ."""
    who = quantitative.get("tested")
    if not who:
        return []
    audit, run = who["audit"], who["run"]
    hr = quantitative["performance_metrics"][0]["type"]  # the audit's HR@k comes first
    if tested_words(audit) == tested_words(run):
        lines = [f"\"All users\" is the same {tested_words(audit)}, for every overall test figure: {hr} from "
                 f"{audit['by']}, the others from {run['by']}."]
    else:
        lines = [f"\"All users\" is, for {hr}, {tested_words(audit)} ({audit['by']}); for the other overall test "
                 f"metrics, {tested_words(run)} ({run['by']})."]
    return lines + [f"{note}" for note in quantitative.get("notes") or []]


def _gate_cell(metric: Mapping[str, Any]) -> str:
    """What the gate made of a check: pass / FAIL, on which value, and why when it is not the measured one."""
    gate = metric.get("gate")
    if not gate:
        return "-"
    word = "pass" if gate["passed"] else "**FAIL**"
    if gate.get("reason"):
        return f"{word}: {gate['reason']}"
    return word if gate["judged_as"] == MEASURED else f"{word} on {_num(gate['judged_value'])}, {gate['judged_as']}"


def render_card(card: Mapping[str, Any]) -> str:
    """The card for people."""
    details, parameters = card["model_details"], card["model_parameters"]
    considerations, release = card["considerations"], card["release"]
    lines = [f"# Model card: {details['name']}", "", details["overview"], "",
             f"fedrec {release['code_version'].get('fedrec')} (commit {release['code_version'].get('commit') or 'unknown'}); "
             f"released {details['version']['date']}.", ""]
    if release["override"]:
        o = release["override"]
        lines += [f"> **Released over a blocked audit** by {o['user']} at {o['time']}: {o['reason']}",
                  f"> Failed checks: {'; '.join(o['failed_checks']) or 'none'}", ""]
    if release.get("passed_unmeasured"):
        lines += [f"> **Passed with checks never measured** (--allow-unmeasured): {'; '.join(release['passed_unmeasured'])}",
                  ""]
    lines += ["## Data", ""] + [f"- {d['name']}: {d['description']}" for d in parameters["data"]]
    lines += ["", "## Metrics (test split, full ranking, leave-one-out)", "",
              *_tested_lines(card["quantitative_analysis"]), "",
              "Gate checks show the measured value; the group ratio's gate judges the largest ratio the groups' 95% "
              "intervals allow, shown beside it with the reason when a pass rests on it.", "",
              "| metric | slice | value | 95% interval | threshold | gate |", "|---|---|---|---|---|---|"]
    for m in card["quantitative_analysis"]["performance_metrics"]:
        ci = m.get("confidence_interval")
        interval = "-" if not ci else f"{_num(ci['lower_bound'])} - {_num(ci['upper_bound'])}"
        bound = m.get("threshold") or {}
        shown = " ".join(f"{side} {_num(bound.get(key))}" for side, key in (("\u2265", "lower"), ("\u2264", "upper"))
                         if bound.get(key) is not None)
        lines.append(f"| {m['type']} | {m['slice']} | {_num(m['value'])} | {interval} | {shown or '-'} | {_gate_cell(m)} |")
    lines += ["", "## Privacy", "", considerations["ethical_considerations"][0]["mitigation_strategy"], ""]
    lines += ["## Intended use", ""] + [f"- {u['description']}" for u in considerations["use_cases"]]
    lines += ["", "## Limitations", ""] + [f"- {l['description']}" for l in considerations["limitations"]]
    lines += ["", "## Ethical considerations", ""] + [
        f"- {e['name']}: {e['mitigation_strategy']}" for e in considerations["ethical_considerations"][1:]]
    pictures = card["quantitative_analysis"]["graphics"]["collection"]
    if pictures:
        lines += ["", "## Pictures", ""] + [f"![{p['name']}]({p['image']})" for p in pictures]
    return "\n".join(lines) + "\n"
