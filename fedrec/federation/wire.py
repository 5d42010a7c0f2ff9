"""Every record and metric key that crosses the wire, in one place. Keys are kebab-case.

A train/evaluate message from the server carries:
  ARRAYS  ArrayRecord: the global model's shareable parameters (MF: item side; LSTM: all)
  CONFIG  ConfigRecord: the run's TrainConfig + FederationConfig (kebab-case keys, unset
          values omitted) plus SERVER_ROUND and ROUND_OFFSET
With a drift correction a train message also carries CONTROL (ArrayRecord: SCAFFOLD's control
variate c, or Mime's Adam moments m/<param>, v/<param> and step).
A client's reply carries ARRAYS (train only; never an MF user embedding) and METRICS (and,
with a drift correction, CONTROL: SCAFFOLD's change of its own control variate, or Mime's
mean gradient g/<param> and mean squared gradient g2/<param>); under
DP also PRIVACY, a ConfigRecord with the client's name and its whole ledger (JSON). A
client that refuses a round for lack of budget replies PRIVACY with REFUSED and no ARRAYS.
Before round 1 of a DP run whose model starts from a popularity prior, a QUERY message asks
each client for its noisy item counts: the reply's ARRAYS holds PRIOR_COUNTS, plus PRIVACY.
After the last round, with release-gate, the federated audit (fedrec.federation.audit_round)
sends two queries with CONFIG: ``query.audit_counts`` (reply ARRAYS: HISTORY_LENGTHS and,
without DP, ITEM_COUNTS), then ``query.audit`` with ARRAYS (the reported model), AUDIT (a
ConfigRecord: top-k, n-boot, seed, activity threshold) and, when there is one, POPULARITY
(an ArrayRecord holding POPULARITY: what the baseline ranks by). Its reply's ARRAYS is
``fedrec.audit.reply.pack`` of the client's sums, its AUDIT names the client and its
groupings in report order.
Under --secagg (fedrec.federation.secure_rounds) a store not heard from yet first gets
``query.training_examples`` (reply METRICS: NUM_EXAMPLES); train messages then pass Flower's
SecAgg+ stages in its legacy FitIns/FitRes layout: the config adds SECAGG_KEYS and
SECAGG_ROUND_MAX_WEIGHT, the reply's parameters are the store's deltas and its flat metrics
carry SECAGG_CLIPPED and, under DP, the PRIVACY entries prefixed LEGACY_PRIVACY_PREFIX. The
release gate's item counts come back the same way, as one secure sum (SECURE_SUM, SECURE_SUM_CLIP), and so
do all its audit sums (AUDIT_SUMS) under --secagg or DP: ``query.audit`` then carries the fixed
AUDIT_VOCABULARIES and its reply only the sums' layout (fedrec.audit.reply.layout: kinds,
groupings, labels, no values; AUDIT_LEFT_OUT names groupings no vocabulary fixes), and the
sums follow in a SecAgg+ exchange whose parameters are the audited model and the popularity,
its config AUDIT_SETTINGS. The counts reply's AUDIT names the client and its store (AUDIT_STORE).
Under client DP stores send no evaluate reply: their test metrics come back as one secure sum
(EVALUATION, the model as the exchange's parameters; fedrec.federation.secure_evaluation).
Every DP message's config names the run (RUN_ID): a store's ledger keeps earlier runs apart.
Under --dp distributed the server first asks each store ``query.private_customers`` (reply
METRICS: NUM_USERS, its customers with something to learn), then every message's config holds
the plan (DP_PLAN_PREFIX keys); a train reply's ARRAYS is the store's clipped gradient sum plus
noise share (under --secagg, the legacy reply's parameters, at weight 1), its METRICS no loss.
"""

from __future__ import annotations

from typing import Any, Mapping

from fedrec.config import FederationConfig, TrainConfig, split_mapping

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"

SERVER_ROUND = "server-round"  # set by Flower's strategies: 1.. within this server process
ROUND_OFFSET = "round-offset"  # rounds completed before this process (resume)
STATE_DIR = "state-dir"  # where clients keep private state (simulation: in the run dir, or --state-dir)
RUN_ID = "run-id"  # the run (kept on resume): a client's ledger starts a new run segment when it changes
DP_PLAN_PREFIX = "dp-plan-"  # --dp distributed: the federation's DP-SGD plan (DistributedPlan.to_wire)
PRIVATE_CUSTOMERS = "private_customers"  # query action, --dp distributed before round 1: reply METRICS NUM_USERS

SHARD_DEVICES = "shard-devices"  # --partition user in simulation: the round's sampled devices (fedrec.federation.device_shards)
TOUCHED_WEIGHT = "/touched-weight"  # a shard's reply: beside an item table, each row's weight of devices that trained it
CONTROL = "control"  # --drift-correction: the server's state in a train message, a client's statistics in its reply

PRIOR_COUNTS = "prior-counts"  # a query reply: the client's noisy item counts (DP popularity prior)

AUDIT_COUNTS = "audit_counts"  # query action (Flower routes message type "query.audit_counts"): sizes and counts
AUDIT = "audit"  # query action "query.audit"; also the name of the audit's ConfigRecord in both directions
HISTORY_LENGTHS = "history-lengths"  # (L,) int64: test users per train-history length 0..L-1
ITEM_COUNTS = "item-counts"  # (n_items + 1,) int64: the client's training interactions per item (not under DP)
POPULARITY = "popularity"  # ArrayRecord (and its one array): per-item popularity the baseline ranks by
AUDIT_TOP_K = "top-k"
AUDIT_N_BOOT = "n-boot"
AUDIT_SEED = "seed"
AUDIT_THRESHOLD = "activity-threshold"  # train-history length from which a user counts as active
AUDIT_CLIENT = "client"  # reply: the client's name (replies are summed in name order: reproducible floats)
AUDIT_STORE = "store"  # counts reply under a store partition: the store id its log names (fedrec.federation.client.own_store_label)
AUDIT_GROUPINGS = "groupings"  # reply: grouping names in the order the audit reports them
AUDIT_VOCABULARIES = "vocabularies"  # secure audit: JSON {grouping: labels} fixed before the query
AUDIT_LEFT_OUT = "left-out"  # secure audit reply: the groupings the store holds that no fixed vocabulary names

PRIVACY = "privacy"
PRIVACY_CLIENT = "client"
PRIVACY_LEDGER = "ledger"  # the client's ClientLedger as JSON
PRIVACY_REFUSED = "refused"  # why the client did not train this round

NUM_EXAMPLES = "num-examples"  # Flower's FedAvg weights replies by this key
UNIT_WEIGHT = "unit-weight"  # 1 from every client: the averaging weight under --central-dp
TRAIN_LOSS = "train-loss"
NUM_USERS = "num-users"
EPSILON = "epsilon"  # the client's cumulative epsilon after this round (DP)

# --secagg: train messages travel in Flower's legacy FitIns / FitRes layout (what secaggplus_mod
# masks), which names no arrays and holds metrics as one flat mapping; replies carry deltas.
TRAINING_EXAMPLES = "training_examples"  # query action: a store's averaging weight (its replies carry it anyway)
SECAGG_KEYS = "secagg-keys"  # the array names, in the order the arrays travel, joined (legacy configs hold no lists)
SECAGG_KEY_SEPARATOR = " "
SECAGG_ROUND_MAX_WEIGHT = "secagg-round-max-weight"  # this round's max_weight (weights are examples / it)
SECURE_SUM = "secure-sum"  # a one-off SecAgg+ exchange: which vector to sum (ITEM_COUNTS, PRIOR_COUNTS, EVALUATION, AUDIT_SUMS)
EVALUATION = "evaluation"  # secure sum under client DP: a store's users and test metrics x users (secure_evaluation)
AUDIT_SUMS = "audit-sums"  # secure sum of a store's audit sums (fedrec.audit.reply.flatten) of the audited model
AUDIT_SETTINGS = "audit-settings"  # its config: the audit query's AUDIT record as JSON, plus AUDIT_KEYS
AUDIT_KEYS = "keys"  # in AUDIT_SETTINGS: the audit sums' keys to flatten, in order
SECURE_SUM_CLIP = "secure-sum-clip"  # its per-entry clip (exact sums: stores x rounding < 1/2)
SECAGG_CLIPPED = "secagg-clipped"  # reply metric: coordinates the protocol clips in this store's update
LEGACY_PRIVACY_PREFIX = "privacy-"  # reply metrics privacy-client, privacy-ledger, privacy-refused

# node_config keys a SuperNode may set (flower-supernode --node-config "...")
NODE_PARTITION_ID = "partition-id"  # set by the simulation engine
NODE_NUM_PARTITIONS = "num-partitions"
NODE_DATA_PATH = "data-path"  # a deployed client's own data file
NODE_STATE_DIR = "state-dir"
NODE_RAW_DATA_PATH = "raw-data-path"  # a deployed store's raw log, anonymized on the node before training
NODE_KEY_PATH = "key-path"  # the store's pseudonym key (fedrec keys); never leaves the node
NODE_K_ANONYMITY = "k-anonymity"
NODE_SCHEMA_PATH = "schema-path"  # a deployed store's own anonymization schema (fedrec anonymize --schema)
NODE_NAME = "client-name"
NODE_MIN_SUM_STORES = "min-sum-stores"  # the store's floor: fewest stores in a sum its update is unmasked in
NODE_MIN_NOISE = "min-noise-multiplier"  # the store's floor: least noise multiplier it trains with

WIRE_ONLY_KEYS = (SERVER_ROUND, ROUND_OFFSET, STATE_DIR, RUN_ID, SECAGG_KEYS, SECAGG_ROUND_MAX_WEIGHT, SECURE_SUM, SECURE_SUM_CLIP,
                  AUDIT_SETTINGS, SHARD_DEVICES)


def config_to_wire(train: TrainConfig, federation: FederationConfig) -> dict[str, Any]:
    """Flat kebab-case dict for a ConfigRecord (which cannot hold None)."""
    flat = {**train.to_dict(), **federation.to_dict()}
    return {key.replace("_", "-"): value for key, value in flat.items() if value is not None}


def config_from_wire(record: Mapping[str, Any]) -> tuple[TrainConfig, FederationConfig]:
    return split_mapping({k: v for k, v in record.items() if k not in WIRE_ONLY_KEYS and not k.startswith(DP_PLAN_PREFIX)})
