"""The wire contract: every key a store can send, what it reveals, and which modes allow it.

A store's reply is classified record by record, key by key, into one of four kinds:

- PUBLIC: protocol bookkeeping or configuration; nothing about customers (SecAgg+'s public
  keys and ciphertexts, a weight of 1, a store's name, the status of a reply).
- MASKED: a vector the server only ever sees inside a SecAgg+ sum.
- LEDGER: noised and accounted: the release its ledger (sent beside it) records.
- DISCLOSED: an exact per-store value derived from customer data, sent on purpose; every run
  lists the ones its mode sends under "disclosed outside the accounting" in its privacy report.

Deny by default: a key the table does not name is refused (``WireContractError``) before the
reply leaves (``wire_contract_mod``, the ClientApp's outermost mod), and so is a key its mode
does not allow: under client DP nothing derived from customer data goes out unaccounted unless
the table says so for that mode, and under --secagg no update and no item counts in clear;
under --secagg or DP the release gate's sums only as their layout (their values go into a SecAgg+ sum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from flwr.app import Context, Message
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from fedrec.audit.sums import SPEC
from fedrec.errors import WireContractError
from fedrec.federation import wire
from fedrec.privacy.modes import privacy_mode
from fedrec.privacy.modes.base import (
    CENTRAL, DISTRIBUTED, DISTRIBUTED_CLEAR, LOCAL, LOCAL_SECAGG, OFF, SECAGG, WIRE_LABELS,
)

PUBLIC, MASKED, LEDGER, DISCLOSED = "public", "masked in a SecAgg+ sum", "on the ledger (noised)", "disclosed"
PER_STORE, SUMMED_OVER_STORES = "per store", "summed over the stores by SecAgg+"  # how a disclosed value reaches the server

# Keyed on each privacy mode's wire label (PrivacyMode.wire_label): what its stores may send.
MODES = WIRE_LABELS
DP_MODES = frozenset({LOCAL, LOCAL_SECAGG, DISTRIBUTED, DISTRIBUTED_CLEAR})
SECURE_MODES = frozenset({SECAGG, LOCAL_SECAGG, DISTRIBUTED})
SUMMED_SECURELY = SECURE_MODES | DP_MODES  # the release gate's sums reach the server only as SecAgg+ sums

LEGACY_METRICS = "fitres.metrics"  # the legacy FitRes layout SecAgg+ replies travel in
LEGACY_EXAMPLES = "fitres.num_examples"
LEGACY_STATUS = "fitres.status"
LEGACY_PARAMETERS = "fitres.parameters"  # emptied by secaggplus_mod: the masked vector goes in its configs
ANY = "*"
EVALUATION_METRICS = ("hr@5", "ndcg@5", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr")


@dataclass(frozen=True)
class Entry:
    kind: str
    reveals: str
    modes: frozenset[str] = frozenset(MODES)  # where a store may send it


def _not_in(*modes: str) -> frozenset[str]:
    return frozenset(MODES) - set(modes)


_UPDATE_IN_CLEAR = "the store's model update (or its drift statistics), computed from its customers' data"
_METRICS = {
    wire.NUM_EXAMPLES: Entry(DISCLOSED, "how many training interactions (or test users) the store holds"),
    wire.NUM_USERS: Entry(DISCLOSED, "how many customers the store holds"),
    wire.UNIT_WEIGHT: Entry(PUBLIC, "always 1"),
    wire.TRAIN_LOSS: Entry(DISCLOSED, "the store's mean training loss this round (unaccounted: never under DP)",
                           _not_in(*DP_MODES)),
    wire.EPSILON: Entry(LEDGER, "the epsilon its ledger records"),
    wire.SECAGG_CLIPPED: Entry(DISCLOSED, "how many coordinates of its update exceed the SecAgg+ clip"),
    **{name: Entry(DISCLOSED, "the store's test hit rate / NDCG / MRR over its own test users (federated "
                              "evaluation; under client DP only their secure sum)", _not_in(*DP_MODES))
       for name in EVALUATION_METRICS},
    **{wire.LEGACY_PRIVACY_PREFIX + key: Entry(LEDGER, "its privacy ledger") for key in
       (wire.PRIVACY_CLIENT, wire.PRIVACY_LEDGER, wire.PRIVACY_REFUSED)},
}
# record -> key -> entry; ANY covers every key of a record (the model's parameter names).
CONTRACT: Mapping[str, Mapping[str, Entry]] = {
    wire.METRICS: _METRICS,
    LEGACY_METRICS: _METRICS,
    LEGACY_EXAMPLES: {"num_examples": Entry(DISCLOSED, "the store's averaging weight (its training interactions)")},
    LEGACY_STATUS: {"code": Entry(PUBLIC, "reply status"), "message": Entry(PUBLIC, "reply status")},
    LEGACY_PARAMETERS: {},  # emptied by secaggplus_mod before the reply leaves
    RECORD_KEY_CONFIGS: {ANY: Entry(MASKED, "SecAgg+'s public keys, encrypted shares and the masked vector")},
    wire.PRIVACY: {key: Entry(LEDGER, "its privacy ledger (noise, sample rate, steps per round)")
                   for key in (wire.PRIVACY_CLIENT, wire.PRIVACY_LEDGER, wire.PRIVACY_REFUSED)},
    wire.CONTROL: {ANY: Entry(DISCLOSED, _UPDATE_IN_CLEAR, frozenset({OFF, CENTRAL}))},
    wire.AUDIT: {wire.AUDIT_CLIENT: Entry(PUBLIC, "the store's name"),
                 wire.AUDIT_STORE: Entry(PUBLIC, "the store id its own log names (one store, one id)"),
                 wire.AUDIT_GROUPINGS: Entry(PUBLIC, "which groupings the store's audit sums hold"),
                 wire.AUDIT_LEFT_OUT: Entry(PUBLIC, "which of its customer columns no fixed vocabulary names (its "
                                                    "schema, not its customers)")},
}
_ARRAYS = {  # the ARRAYS record, by what the reply answers
    "train": Entry(DISCLOSED, _UPDATE_IN_CLEAR, frozenset({OFF, CENTRAL})),
    "train-dp": Entry(LEDGER, "the store's DP-SGD update or noise share, accounted", frozenset({LOCAL, DISTRIBUTED_CLEAR})),
    wire.PRIOR_COUNTS: Entry(LEDGER, "the store's noisy item counts (the popularity prior)"),
    wire.HISTORY_LENGTHS: Entry(DISCLOSED, "how many of the store's test users have each history length",
                                _not_in(*SUMMED_SECURELY)),
    wire.ITEM_COUNTS: Entry(DISCLOSED, "the store's training interactions per item", frozenset({OFF, CENTRAL})),
    "audit": Entry(DISCLOSED, "the store's release-audit sums over its own test users: the model's and the popularity "
                              "baseline's utility, per group (activity, store, attributes) with bootstrap replicates",
                   _not_in(*SUMMED_SECURELY)),
    "audit-exposure": Entry(DISCLOSED, "the store's per-item audit sums: how often and how high the model recommends each "
                                       "item to its test users, and the items those users hold (their purchase profile)",
                            _not_in(*SUMMED_SECURELY)),
    "audit-layout": Entry(PUBLIC, "what its audit sums are, not what they hold: kinds, groupings, the labels the server "
                                  "fixed, k, n-boot, seed (the values follow only inside a SecAgg+ sum)"),
}
EXPOSURE_PREFIX = "exposure/"  # the per-item audit sums' keys in a reply (fedrec.audit.exposure.ExposureSums)
LAYOUT_SUFFIX = "/" + SPEC  # an audit sums' spec key (fedrec.audit.sums)


def mode_of(config: Mapping[str, Any]) -> str:
    """The wire label of the privacy mode a message's run config names (kebab-case keys, as the
    server sends them)."""
    return privacy_mode(config.get("dp")).wire_label(secure=bool(config.get("secagg")))


def classify(reply: Message, *, answering: str, mode: str | None) -> dict[str, Entry]:
    """{"record/key": entry} for every key of ``reply``; WireContractError on a key the contract
    does not name, or one ``mode`` does not allow (None: a SecAgg+ stage, protocol keys only).
    ``answering`` is the message type the reply answers (train, evaluate, query.<action>)."""
    found: dict[str, Entry] = {}
    for record, values in reply.content.items():
        for key in values.keys():
            entry = _entry(record, str(key), answering, mode)
            if entry is None:
                raise WireContractError(f"the wire contract names no {record}/{key} in a reply to {answering}; nothing "
                                        "unnamed leaves a store (fedrec/federation/wire_contract.py)")
            if mode is not None and mode not in entry.modes:
                raise WireContractError(f"{record}/{key} ({entry.reveals}) may not leave a store under privacy mode "
                                        f"{mode}; the reply to {answering} is not sent")
            found[f"{record}/{key}"] = entry
    return found


def _entry(record: str, key: str, answering: str, mode: str | None) -> Entry | None:
    if record == wire.ARRAYS:
        if answering == "train":
            return _ARRAYS["train-dp"] if mode in DP_MODES else _ARRAYS["train"]
        if answering.endswith(wire.AUDIT):
            if key.endswith(LAYOUT_SUFFIX) and mode in SUMMED_SECURELY:  # in clear, labels its customers hold
                return _ARRAYS["audit-layout"]
            return _ARRAYS["audit-exposure"] if key.startswith(EXPOSURE_PREFIX) else _ARRAYS["audit"]
        return _ARRAYS.get(key)
    table = CONTRACT.get(record, {})
    return table.get(key) or table.get(ANY)


# What the server learns from each one-off secure sum (fedrec.federation.secure_rounds.secure_sum):
# no store's own vector, but their exact (or nearly exact) total, covered by no epsilon.
SUMMED: Mapping[str, Entry] = {
    wire.HISTORY_LENGTHS: Entry(DISCLOSED, "how many test users of all stores together have each history length "
                                           "(0 to 254, then 255 or more)", SUMMED_SECURELY),
    wire.ITEM_COUNTS: Entry(DISCLOSED, "the training interactions per item of all stores together",
                            SUMMED_SECURELY - DP_MODES),
    wire.AUDIT_SUMS: Entry(DISCLOSED, "the release audit's sums over all stores' test users: the model's and the "
                                      "popularity baseline's utility, utility per group with bootstrap replicates "
                                      "(the store grouping's groups are the stores themselves: each store's own "
                                      "utility), how often and how high each item is recommended and how much "
                                      "those users hold it", SUMMED_SECURELY),
    wire.EVALUATION: Entry(DISCLOSED, "each round, the evaluating stores' test users together and their "
                                      "user-weighted hit rate / NDCG / MRR", DP_MODES),
}


def disclosed_under(mode: str) -> list[dict[str, str]]:
    """What the server learns exactly, outside any accounting, under ``mode``: the privacy
    report's list, each item sent by every store alone ("per store") or only summed by SecAgg+."""
    entries = [*(e for table in CONTRACT.values() for e in table.values()), *_ARRAYS.values()]
    alone = dict.fromkeys(e.reveals for e in entries if e.kind == DISCLOSED and mode in e.modes)
    summed = dict.fromkeys(e.reveals for e in SUMMED.values() if mode in e.modes)
    return [*({"what": reveals, "form": PER_STORE} for reveals in alone),
            *({"what": reveals, "form": SUMMED_OVER_STORES} for reveals in summed)]


def wire_contract_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """The ClientApp's outermost mod: every reply is checked against the contract before it leaves."""
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    config = _run_config(msg)
    check_reply(reply, answering=str(msg.metadata.message_type), mode=None if config is None else mode_of(config))
    return reply


def check_reply(reply: Message, *, answering: str, mode: str | None) -> dict[str, Entry]:
    """The contract's check of one reply (a module function, so a test can watch every call)."""
    return classify(reply, answering=answering, mode=mode)


def _run_config(msg: Message) -> Mapping[str, Any] | None:
    """The run config a message carries (Message API or the legacy FitIns layout); None for
    SecAgg+'s key-exchange stages, which carry only the protocol's record."""
    for name in (wire.CONFIG, "fitins.config"):
        if name in msg.content.config_records:
            return msg.content.config_records[name]
    return None

