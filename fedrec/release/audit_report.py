"""audit.md: the page a reviewer reads before a release; audit.json holds every number."""

from __future__ import annotations

from typing import Any

from fedrec.release.readings import read_check, verdict_words


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def render_markdown(document: dict[str, Any], *, pictures: list[str] | tuple[str, ...] = ()) -> str:
    k = document["utility"]["k"]
    lines = [
        f"# Release audit: {document['verdict'].upper()}",
        "",
        f"Run `{document['run']}`: {document['model']} on {document['data']}"
        + (" (federated)" if document["federated"] else "") + (" under DP" if document["dp"] else "")
        + f"; {population(document['utility'])}, {document['protocol']}.",
        "",
        *[f"> {note}" for note in document["notes"]],
        *([f"> {replaced_note(document['replaces'])}", ""] if document.get("replaces") else []),
        "",
        "## Checks (bounds inclusive; unset = unbounded)",
        "",
        "The gate judges the measured value, except the group ratio: by default it judges the largest ratio the "
        "groups' 95% intervals allow, shown beside the measured ratio.",
        "",
        "| check | slice | measured | the gate judged | bound | result |",
        "|---|---|---|---|---|---|",
    ]
    for c in document["checks"]:
        bound = " ".join(f"{side} {_num(v)}" for side, v in (("\u2265", c["threshold"]["lower"]),
                                                              ("\u2264", c["threshold"]["upper"])) if v is not None)
        reading = read_check(c, document.get("groups", {}))
        judged = "the measured value" if reading.same else f"{_num(reading.judged)}, {reading.judged_as}"
        result = verdict_words(reading)
        lines.append(f"| {c['check']} | {c['slice']} | {_num(reading.measured)} | {judged} | {bound} | "
                     f"{result if reading.passed else f'**{result}**'} |")
    lines += [f"- not checked: {s['check']} on {s['slice']}: {s['reason']}" for s in document["skipped"]]
    pop = document["popularity"]
    lines += [
        "", "## Utility and popularity bias", "",
        f"Test HR@{k} {_num(document['utility'][f'hr@{k}'])} on {population(document['utility'])}; popularity "
        f"baseline (same training counts) {_num(document['utility'][f'popularity_baseline_hr@{k}'])} on the same users.",
        "",
        f"ARP@{k} {_num(pop[f'arp@{k}'])} vs consumed {_num(pop['arp_consumed'])} (ratio {_num(pop['arp_ratio'])}); "
        f"APLT@{k} {_num(pop[f'aplt@{k}'])}; coverage@{k} {_num(pop[f'coverage@{k}'])}; "
        f"exposure Gini {_num(pop[f'gini_exposure@{k}'])} (popularity: {pop['popularity_source']}).",
        "", f"## HR@{k} per group (95% bootstrap intervals)", "",
        "| grouping | group | users | HR@k | interval |", "|---|---|---|---|---|",
    ]
    for grouping, audit in document["groups"].items():
        for label, entry in audit["groups"].items():
            ci = entry.get(f"hr@{k}_ci")
            lines.append(f"| {grouping} | {label} | {entry['users']} | {_num(entry[f'hr@{k}'])} | "
                         f"{'-' if ci is None else f'{_num(ci[0])} - {_num(ci[1])}'} |")
        if audit["suppressed"]:
            lines.append(f"| {grouping} | {len(audit['suppressed'])} group(s) under {audit['min_group_size']} users "
                         "suppressed | | | |")
    if document["providers"]:
        lines += ["", "## Provider exposure", ""]
        for name, audit in document["providers"].items():
            over, under = audit["most_over_exposed"], audit["most_under_exposed"]
            lines.append(f"- {name}: AWRF {_num(audit['awrf'])}; most over-exposed "
                         f"{over and over['provider']} (ratio {_num(over and over['ratio'])}), most under-exposed "
                         f"{under and under['provider']} (ratio {_num(under and under['ratio'])}).")
    lines += [f"- not audited: {s['audit']}: {s['reason']}" for s in document["skipped_audits"]]
    lines += ["", *[f"![{name}]({name})" for name in pictures]]
    lines += ["", "Definitions: docs/audit.md. Every number: audit.json.", ""]
    return "\n".join(lines)


def population(utility: dict[str, Any]) -> str:
    """Whom the audit's test HR@k was measured on: "1,316 test users who trained: ..."."""
    return f"{utility['users']:,} {utility.get('population') or 'test users'}"


def replaced_note(replaced: dict[str, Any]) -> str:
    """The line that says this audit replaced an earlier one, and where that one is kept."""
    hr = replaced.get("hr")
    return (f"This audit replaces the earlier one ({replaced.get('verdict')}"
            + (f", test HR@{replaced.get('k', 10)} {_num(hr)} on {replaced.get('users'):,} test users" if hr is not None else "")
            + f"; {replaced.get('protocol') or 'protocol not recorded'}), kept unchanged in `{replaced['kept_in']}`.")
