#!/usr/bin/env bash
# The release audit on a synthesized, anonymized beauty-shop log (docs/results.md, "The
# release gate"): every Beauty user as a customer of 10 stores, k = 5, an LSTM trained 3
# epochs, then the gate. Usage: bash simulations/audit_synthetic_log.sh [OUT_DIR]
set -euo pipefail
OUT=${1:-runs/synth-audit}
FEDREC=${FEDREC:-fedrec}
mkdir -p "$OUT"
"$FEDREC" -q synth --stores 10 --out "$OUT/raw.parquet"
[ -f "$OUT/store.key" ] || "$FEDREC" -q keys --out "$OUT/store.key"
"$FEDREC" -q anonymize "$OUT/raw.parquet" "$OUT/anon.parquet" --key "$OUT/store.key" --k 5
status=0
"$FEDREC" -q train --model lstm --epochs 3 --data "$OUT/anon.parquet" --out "$OUT/lstm" || status=$?
echo "gate exit status $status; groups and checks: $OUT/lstm/audit/audit.md"
