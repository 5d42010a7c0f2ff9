"""--dp distributed end to end on real Ray workers (small data): same-seed runs differ in their
secret noise, the federation is accounted once, and a store's lifetime ledger
continues across runs that share a state folder, up to its cap."""

from __future__ import annotations

import json

import numpy as np
import torch
from opacus.accountants import RDPAccountant

from test_simulation import SMALL, fedrec

ROUNDS = 2


def _report(run):
    return json.loads((run / "privacy" / "report.json").read_text())


def test_both_paths_agree_one_ledger_accounts_the_run_and_a_store_ledger_spans_runs(chain_file, tmp_path):
    state = tmp_path / "stores"  # the stores' own disks, kept from one run to the next
    common = ["--model", "lstm", "--data", str(chain_file), "--partition", "store", "--num-clients", "5",
              "--rounds", str(ROUNDS), "--dp", "distributed", "--target-epsilon", "8", "--state-dir", str(state), *SMALL]
    runs = {name: tmp_path / name for name in ("plain", "secure")}
    for name, extra in (("plain", ["--no-secagg"]), ("secure", [])):
        result = fedrec("simulate", *common, *extra, "--out", str(runs[name]))
        assert result.returncode == 0, result.stderr[-3000:]

    # Each store's noise is its own secret, drawn afresh each release: two runs of one command
    # with one --seed, summed in clear or by SecAgg+, end at different models (the server
    # cannot regenerate the noise, so it cannot tell one from the other either).
    last = f"round-{ROUNDS:04d}.pt"
    plain = torch.load(runs["plain"] / "checkpoints" / last, weights_only=True)["state"]
    secure = torch.load(runs["secure"] / "checkpoints" / last, weights_only=True)["state"]
    record = json.loads((runs["secure"] / "metrics.json").read_text())["rounds"][-1]
    assert record["secagg_clipped"] == 0 and record["failures"] == 0
    differences = {key: float((secure[key].float() - value.float()).abs().max()) for key, value in plain.items()}
    assert max(differences.values()) > 1e-3, differences

    # One DP-SGD run: the federation's ledger holds the prior and one step a round, and a
    # fresh accountant on the report's history alone gives the reported epsilon, within target.
    for run in runs.values():
        report = _report(run)
        federation = next(c for c in report["clients"] if c["client"].startswith("federation"))
        assert [h[2] for h in federation["history"]] == [1, ROUNDS]
        fresh = RDPAccountant()
        fresh.history = [tuple(h) for h in federation["history"]]
        assert fresh.get_epsilon(delta=federation["delta"]) == np.float64(federation["epsilon"])
        assert federation["epsilon"] <= 8.0
    # In clear the server saw each store's share, which carries 1/sqrt(5) of the noise: the
    # report says what that costs against the server, beside the released model's epsilon.
    seen = {c["client"]: c["epsilon"] for c in _report(runs["plain"])["clients"]}
    assert seen["server, seeing each store's share (no secure aggregation)"] > 2 * seen["federation (distributed DP)"]
    assert not any(name.startswith("server") for name in (c["client"] for c in _report(runs["secure"])["clients"]))

    # The second run continued each store's ledger: its run epsilon is its own, its lifetime
    # epsilon composes both runs.
    store = next(c for c in _report(runs["secure"])["clients"] if c["client"] == "store-0")
    assert len(store["earlier_runs"]) == 1
    both = RDPAccountant()
    both.history = [tuple(h) for h in store["earlier_runs"][0]["history"]] + [tuple(h) for h in store["history"]]
    assert store["lifetime_epsilon"] == np.float64(both.get_epsilon(delta=store["delta"]))
    assert store["lifetime_epsilon"] > store["epsilon"] + 1.0

    # A third run that would take the stores past their lifetime cap is refused before any
    # store releases anything.
    cap = store["lifetime_epsilon"] + 1.0
    refused = fedrec("simulate", *common, "--no-secagg", "--lifetime-epsilon", f"{cap:g}", "--out", str(tmp_path / "third"))
    assert refused.returncode != 0
    assert "lifetime" in refused.stderr and "--lifetime-epsilon" in refused.stderr
    assert not list((tmp_path / "third").glob("checkpoints/*.pt"))
    ledger = json.loads((state / "store-0.privacy.json").read_text())
    assert ledger["lifetime_epsilon"] == np.float64(store["lifetime_epsilon"])  # nothing more was spent
