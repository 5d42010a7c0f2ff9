"""The privacy-budget report, on small real ledgers: its epsilons must be reproducible
by anyone holding report.json and Opacus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opacus.accountants import PRVAccountant, RDPAccountant

from fedrec.cli import main
from fedrec.config import TrainConfig
from fedrec.privacy.ledger import ClientLedger, History, save_run_ledger
from fedrec.privacy.distributed_dp import EARLIER_MECHANISMS, FEDERATION, MECHANISM, UNIT
from fedrec.privacy.plots import accuracy_curves, accuracy_figure
from fedrec.privacy.report import (
    ACCURACY_PLOT, EPSILON_PLOT, REPORT_FILES, REPORT_JSON, REPORT_MD, build_report, guarantee, write_privacy_report,
)
from fedrec.training.central import train_centrally

REQUIRED_KEYS = {
    "mechanism", "unit", "accountant", "delta", "epsilon_max", "clients", "noise_multiplier", "max_grad_norm",
    "sample_rate", "steps", "rounds", "generated_at", "epsilon_recomputed_with",
}
CLIENT_KEYS = {"client", "epsilon", "delta", "history", "rounds", "refused"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FRESH_ACCOUNTANT = {"rdp": RDPAccountant, "prv": PRVAccountant}


def trained_ledger(client: str, rounds: list[tuple[float, float, int]], *, accountant: str = "rdp",
                   delta: float = 1e-5, mechanism: str = "dp-sgd", unit: str = "user") -> ClientLedger:
    """A ledger as a client keeps it: after each round, the accountant's whole history so far."""
    ledger = ClientLedger(client=client, accountant=accountant, delta=delta, max_grad_norm=1.0,
                          mechanism=mechanism, unit=unit)
    history: History = []
    for round_number, (noise, rate, steps) in enumerate(rounds, start=1):
        if history and history[-1][:2] == (noise, rate):
            history[-1] = (noise, rate, history[-1][2] + steps)  # Opacus merges repeated segments
        else:
            history.append((noise, rate, steps))
        ledger.record_round(round_number, list(history))
    return ledger


def three_clients() -> dict[str, ClientLedger]:
    steady = trained_ledger("store-a", [(1.0, 0.1, 30)] * 3)
    retuned = trained_ledger("store-b", [(1.0, 0.1, 40), (1.0, 0.1, 40), (1.5, 0.1, 40)], delta=2e-6)
    retuned.refused.append({"round": 4, "reason": "epsilon would pass max-epsilon 9.0"})
    prv = trained_ledger("store-c", [(1.0, 0.1, 50), (1.0, 0.1, 50)], accountant="prv")
    return {ledger.client: ledger for ledger in (steady, retuned, prv)}


@pytest.fixture(scope="module")
def reported_run(tmp_path_factory) -> tuple[Path, dict]:
    run_dir = tmp_path_factory.mktemp("run")
    save_run_ledger(run_dir, three_clients())
    report_path = write_privacy_report(run_dir)
    return run_dir, json.loads(report_path.read_text(encoding="utf-8"))


def test_report_json_has_every_key_other_tools_check(reported_run):
    _, report = reported_run
    assert REQUIRED_KEYS <= set(report)
    assert report["accountant"] in {"rdp", "prv"}
    assert all(CLIENT_KEYS <= set(client) for client in report["clients"])
    assert [client["client"] for client in report["clients"]] == ["store-a", "store-b", "store-c"]


def test_worst_case_epsilon_is_the_largest_client_epsilon(reported_run):
    _, report = reported_run
    assert report["epsilon_max"] == max(client["epsilon"] for client in report["clients"])
    assert report["delta"] == 1e-5


def test_every_reported_epsilon_is_reproduced_by_a_fresh_opacus_accountant(reported_run):
    _, report = reported_run
    accountants = {client["accountant"] for client in report["clients"]}
    assert accountants == {"rdp", "prv"} and report["accountant"] == "rdp"  # the first client's
    for client in report["clients"]:
        accountant = FRESH_ACCOUNTANT[client["accountant"]]()
        accountant.history = [tuple(segment) for segment in client["history"]]
        epsilon = accountant.get_epsilon(delta=client["delta"])
        assert client["epsilon"] == pytest.approx(epsilon, rel=0.01), client["client"]


def test_a_client_whose_noise_changed_keeps_both_segments(reported_run):
    _, report = reported_run
    retuned = next(client for client in report["clients"] if client["client"] == "store-b")
    assert retuned["history"] == [[1.0, 0.1, 80], [1.5, 0.1, 40]]
    assert [record["round"] for record in retuned["rounds"]] == [1, 2, 3]
    assert retuned["refused"] == [{"round": 4, "reason": "epsilon would pass max-epsilon 9.0"}]
    assert report["noise_multiplier"] == [1.0, 1.5]


def test_run_summary_counts_steps_rounds_and_rates(reported_run):
    _, report = reported_run
    assert report["steps"] == {"total": 90 + 120 + 100, "max_per_client": 120}
    assert report["rounds"] == 3
    assert report["sample_rate"] == {"min": 0.1, "max": 0.1}
    assert report["max_grad_norm"] == [1.0]
    assert report["mechanism"] == "dp-sgd" and report["unit"] == "user"


def test_markdown_names_every_client_and_the_worst_case_epsilon(reported_run):
    run_dir, report = reported_run
    markdown = (run_dir / "privacy" / REPORT_MD).read_text(encoding="utf-8")
    assert all(client["client"] in markdown for client in report["clients"])
    assert f"ε={report['epsilon_max']:.3f}" in markdown
    assert "per user" in markdown and "How to read this" in markdown


def test_epsilon_plot_is_a_png_and_no_temporary_file_is_left(reported_run):
    run_dir, _ = reported_run
    assert (run_dir / "privacy" / EPSILON_PLOT).read_bytes()[:8] == PNG_MAGIC
    assert not list((run_dir / "privacy").glob("*.tmp"))


def test_many_clients_are_plotted_with_the_worst_case_highlighted(tmp_path):
    ledgers = {f"site-{i:02d}": trained_ledger(f"site-{i:02d}", [(1.0 + i / 10, 0.05, 20)]) for i in range(22)}
    save_run_ledger(tmp_path, ledgers)
    report = json.loads(write_privacy_report(tmp_path).read_text(encoding="utf-8"))
    assert report["epsilon_max"] == next(c["epsilon"] for c in report["clients"] if c["client"] == "site-00")
    assert (tmp_path / "privacy" / EPSILON_PLOT).read_bytes()[:8] == PNG_MAGIC


def test_clients_that_disagree_are_all_named():
    ledgers = {
        "a": trained_ledger("a", [(1.0, 0.1, 10)], mechanism="dp-sgd", unit="user"),
        "b": trained_ledger("b", [(1.0, 0.1, 10)], mechanism="gaussian-counts", unit="interaction"),
    }
    report = build_report(ledgers)
    assert report["mechanism"] == "dp-sgd | gaussian-counts"
    assert report["unit"] == "user | interaction"


def test_a_client_that_never_trained_reports_epsilon_zero():
    refused = ClientLedger(client="late", accountant="rdp", delta=1e-5, max_grad_norm=1.0,
                           refused=[{"round": 1, "reason": "over budget"}])
    report = build_report({"late": refused})
    assert report["epsilon_max"] == 0.0
    assert report["sample_rate"] == {"min": None, "max": None}
    assert report["steps"] == {"total": 0, "max_per_client": 0}


def test_run_without_dp_gets_a_report_saying_it_has_no_guarantee(tmp_path):
    path = write_privacy_report(tmp_path)
    report = json.loads(path.read_text())
    assert report["mechanism"] == "none" and report["epsilon_max"] is None and report["clients"] == []
    assert "without differential privacy" in (tmp_path / "privacy" / REPORT_MD).read_text()
    assert not (tmp_path / "privacy" / EPSILON_PLOT).exists()


def test_cli_writes_the_report_and_prints_the_guarantee(tmp_path, capsys):
    save_run_ledger(tmp_path, {"store-a": trained_ledger("store-a", [(1.0, 0.1, 30)] * 2)})
    assert main(["privacy-report", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for name in (REPORT_JSON, REPORT_MD, EPSILON_PLOT):
        assert (tmp_path / "privacy" / name).exists()
        assert name in printed
    assert "Worst-case (ε=" in printed


def test_a_trained_run_gets_its_accuracy_by_epoch_beside_its_epsilon(chain_file, tmp_path):
    config = TrainConfig(model="mf", data=str(chain_file), epochs=2, dim=8, batch_size=32, threads=1,
                         dp="local", noise_multiplier=1.0)
    document = train_centrally(config, tmp_path)
    curves = accuracy_curves(document)
    assert curves.step == "epoch" and curves.reported == 2  # under DP the last epoch's model is kept
    assert [epoch for epoch, _ in curves.series["validation HR@10"]] == [1, 2]
    assert curves.series["test HR@10 (kept model)"] == [(2, document["metrics"]["hr@10"])]
    for name in (ACCURACY_PLOT, EPSILON_PLOT):
        assert (tmp_path / "privacy" / name).read_bytes()[:8] == PNG_MAGIC
        assert f"]({name})" in (tmp_path / "privacy" / REPORT_MD).read_text(encoding="utf-8")
    assert ACCURACY_PLOT in REPORT_FILES


def test_accuracy_by_round_uses_the_clients_test_when_the_server_did_not_evaluate(tmp_path):
    rounds = [{"round": r, "client_metrics": {"hr@10": 0.1 * r}, "wall_seconds": 1.0} for r in (1, 2, 3)]
    (tmp_path / "metrics.json").write_text(json.dumps({"rounds": rounds, "reported_round": 3}))
    write_privacy_report(tmp_path)
    curves = accuracy_curves(json.loads((tmp_path / "metrics.json").read_text()))
    assert curves.step == "round" and curves.reported == 3
    assert curves.series == {"clients' test HR@10": [(1, 0.1), (2, 0.2), (3, pytest.approx(0.3))]}
    assert (tmp_path / "privacy" / ACCURACY_PLOT).read_bytes()[:8] == PNG_MAGIC
    assert not (tmp_path / "privacy" / EPSILON_PLOT).exists()  # no DP, no epsilon


def test_cli_on_a_run_without_dp_says_there_is_no_guarantee(tmp_path, capsys):
    (tmp_path / "metrics.json").write_text("{}")
    assert main(["privacy-report", str(tmp_path)]) == 0
    assert "without differential privacy" in capsys.readouterr().out


def test_cli_on_a_folder_that_is_no_run_asks_for_the_run_directory(tmp_path, capsys):
    assert main(["privacy-report", str(tmp_path)]) == 2
    assert "--out/--resume" in capsys.readouterr().err


def test_cli_on_a_missing_directory_asks_for_the_run_directory(tmp_path, capsys):
    assert main(["privacy-report", str(tmp_path / "nowhere")]) == 2
    assert "--out/--resume" in capsys.readouterr().err


def distributed_ledger(client: str, *, mechanism: str = MECHANISM, rounds: int = 3) -> ClientLedger:
    """A --dp distributed ledger: the popularity prior (round 0, one release), then one step a round."""
    ledger = ClientLedger(client=client, accountant="rdp", delta=1e-5, max_grad_norm=1.0, mechanism=mechanism, unit=UNIT)
    ledger.record_round(0, [(5.0, 1.0, 1)])
    for round_number in range(1, rounds + 1):
        ledger.record_round(round_number, [(5.0, 1.0, 1), (1.1, 1.0, round_number)])
    return ledger


def test_rounds_trained_are_the_rounds_asked_for_and_the_prior_is_listed_as_one_release(tmp_path):
    save_run_ledger(tmp_path, {name: distributed_ledger(name) for name in (FEDERATION, "store-0")})

    report = json.loads(write_privacy_report(tmp_path).read_text(encoding="utf-8"))

    markdown = (tmp_path / "privacy" / REPORT_MD).read_text(encoding="utf-8")
    assert report["rounds"] == 3 and report["popularity_prior"] is True
    assert [record["round"] for record in report["clients"][0]["rounds"]] == [0, 1, 2, 3]  # the ledger keeps round 0
    row = next(line for line in markdown.splitlines() if line.startswith("| store-0 |"))
    assert row.endswith("| 4 | 3 | one accounted release | 0 |"), row  # steps, rounds trained, prior, refused
    assert "DP popularity prior" in markdown and "was released once and accounted" in markdown


def test_a_run_without_a_prior_lists_none(reported_run):
    run_dir, report = reported_run
    markdown = (run_dir / "privacy" / REPORT_MD).read_text(encoding="utf-8")
    assert report["popularity_prior"] is False and "was released once" not in markdown
    assert next(line for line in markdown.splitlines() if line.startswith("| store-a |")).endswith("| 90 | 3 | - | 0 |")


@pytest.mark.parametrize("mechanism", [MECHANISM, *EARLIER_MECHANISMS], ids=["today", "earlier ledger"])
def test_the_distributed_mechanism_reads_for_people_without_internal_names(mechanism, tmp_path):
    save_run_ledger(tmp_path, {FEDERATION: distributed_ledger(FEDERATION, mechanism=mechanism)})

    report = json.loads(write_privacy_report(tmp_path).read_text(encoding="utf-8"))

    said = guarantee(report) + (tmp_path / "privacy" / REPORT_MD).read_text(encoding="utf-8")
    assert "survivors" not in said and "`" not in report["mechanism"]
    assert "the noise shares of the stores that reply add up to at least the full noise" in guarantee(report)
    assert report["clients"][0]["mechanism"] == MECHANISM


def test_one_evaluated_round_is_plotted_on_whole_rounds_and_the_plot_says_so():
    """A --dp distributed run evaluates every 20th round and the last: a 10-round run has one point."""
    rounds = [{"round": r} for r in range(1, 10)] + [{"round": 10, "hr@10": 0.02, "valid_hr@10": 0.03}]
    curves = accuracy_curves({"rounds": rounds, "reported_round": 10, "federation": {"eval_every": 20}})

    axes = accuracy_figure(curves).axes[0]

    ticks = [t for t in axes.get_xticks() if axes.get_xlim()[0] <= t <= axes.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert axes.get_xlim()[0] < 1 and axes.get_xlim()[1] > 10  # the whole run, round 1 to its last
    said = " ".join(text.get_text() for text in axes.texts)
    assert "only round 10 of 10 was evaluated" in said and "--eval-every 20" in said


def test_several_evaluated_rounds_are_drawn_as_a_line_without_a_note():
    rounds = [{"round": r, "hr@10": 0.01 * r, "valid_hr@10": 0.01 * r} for r in (1, 2, 3)]

    axes = accuracy_figure(accuracy_curves({"rounds": rounds, "reported_round": 3})).axes[0]

    test = next(line for line in axes.get_lines() if line.get_label() == "test HR@10")
    assert list(test.get_xdata()) == [1, 2, 3] and test.get_linestyle() == "-"
    assert not axes.texts
    assert all(float(t).is_integer() for t in axes.get_xticks())
