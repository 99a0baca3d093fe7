#!/usr/bin/env bash
# `reconcile` on one hour of COUNT archived one-to-one messages (a few hundred MB
# before gzip) of which one in MISSING_EVERY is not in the topic, against Apache
# Kafka (one KRaft node, scripts/kafka) and bench/tencent_standin.rs over HTTPS.
# The topic is first filled by reconcile itself from the archive without the
# missing ones (the seed run, also timed); then the whole archive is reconciled
# with --force (the measured run). Both runs' wall time and peak RSS come from
# /usr/bin/time; the topic's record count afterwards must be COUNT.
# Writes bench/results/<date>-reconcile.md.
#   COUNT=1000000 MISSING_EVERY=10 bench/reconcile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

COUNT="${COUNT:-1000000}"
MISSING_EVERY="${MISSING_EVERY:-10}"
BROKER_PORT="${BROKER_PORT:-19195}"
STANDIN_PORT="${STANDIN_PORT:-18443}"
cargo build --release --bin tim-kafka-bridge --example bench-tencent-standin

WORK="$(mktemp -d)"
PIDS=()
STOP_BROKER=true
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; $STOP_BROKER; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
. bench/broker.sh
start_broker "$BROKER_PORT"

HOUR_START=$(( ($(date +%s) / 3600 - 1) * 3600 ))
FROM="$(date -u -d "@$HOUR_START" +%Y-%m-%dT%H:%M:%SZ)"
TO="$(date -u -d "@$((HOUR_START + 3600))" +%Y-%m-%dT%H:%M:%SZ)"
GENERATED=$(date +%s)
target/release/examples/bench-tencent-standin "$WORK" "127.0.0.1:$STANDIN_PORT" "$COUNT" "$MISSING_EVERY" "$HOUR_START" \
  >"$WORK/standin.out" 2>"$WORK/standin.err" & PIDS+=($!)
until grep -q ready "$WORK/standin.out" 2>/dev/null; do sleep 0.5; done
echo "archive made in $(( $(date +%s) - GENERATED )) s: $(cat "$WORK/standin.err")"
STANDIN="https://localhost:$STANDIN_PORT"

TOPIC="bench.reconcile.$RANDOM$RANDOM"
cat >"$WORK/reconcile.toml" <<TOML
[[apps]]
sdk_app_id = 1400000000
tokens = ["bench-token-0123456789"]
admin = "administrator"
secret_key = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
rest_url = "$STANDIN"
rest_ca_file = "$WORK/ca.pem"
[reconcile]
state_topic = "$TOPIC.state"
# The stand-in has no group file: 1004 for this hour then means no group message.
ready_after_secs = 0
[kafka]
brokers = "$BROKERS"
create_topics = true
topic = "$TOPIC"
TOML

run() { # name extra-args...: runs reconcile, timed
  local name=$1; shift
  RUST_LOG=warn /usr/bin/time -f "%e %M" -o "$WORK/$name.time" \
    target/release/tim-kafka-bridge reconcile --config "$WORK/reconcile.toml" --from "$FROM" --to "$TO" --json "$@" \
    >"$WORK/$name.json" 2>"$WORK/$name.err" || { cat "$WORK/$name.err" "$WORK/$name.json" >&2; exit 1; }
}
field() { python3 -c "import json,sys; h=[h for h in json.load(open(sys.argv[1]))['hours'] if h['chat_type']=='C2C'][0]; print(h[sys.argv[2]])" "$WORK/$1.json" "$2"; }
records() {
  scripts/kafka tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$BROKERS" --topic "$TOPIC" 2>/dev/null \
    | awk -F: '{ sum += $3 } END { print sum }'
}

curl -sf --cacert "$WORK/ca.pem" "$STANDIN/serve/present" >/dev/null
run seed
SEEDED="$(records)"
curl -sf --cacert "$WORK/ca.pem" "$STANDIN/serve/full" >/dev/null
run measured --force
TOTAL="$(records)"

read -r SEED_S SEED_KB <"$WORK/seed.time"
read -r RUN_S RUN_KB <"$WORK/measured.time"
ARCHIVED="$(field measured archived)"; ALREADY="$(field measured already)"; PUBLISHED="$(field measured published)"
RATE="$(python3 -c "print(round($ARCHIVED / $RUN_S))")"
GZIP_MB="$(python3 -c "import os; print(round(os.path.getsize('$WORK/full.gz') / 2**20))")"
PLAIN_MB="$(sed -n 's/.*(\([0-9]*\) before gzip).*/\1/p' "$WORK/standin.err" | python3 -c "import sys; print(round(int(sys.stdin.read()) / 2**20))")"
OUT="bench/results/$(date +%F)-reconcile.md"
cat >"$OUT" <<MD
# reconcile: one hour of $COUNT archived one-to-one messages

$(date -u +%FT%TZ), $(nproc) cores, $BROKER_NAME, commit $(git rev-parse --short HEAD),
\`COUNT=$COUNT MISSING_EVERY=$MISSING_EVERY bench/reconcile.sh\`.
The archive: one file, $GZIP_MB MiB gzipped, $PLAIN_MB MiB before gzip, served over
HTTPS by bench/tencent_standin.rs; the topic has 4 partitions.

| run | archived | already in Kafka | published | wall time | peak RSS | messages/s |
|---|---|---|---|---|---|---|
| seed (topic empty, archive without 1 in $MISSING_EVERY) | $(field seed archived) | $(field seed already) | $(field seed published) | ${SEED_S} s | $((SEED_KB / 1024)) MiB | $(python3 -c "print(round($(field seed archived) / $SEED_S))") |
| **measured** (whole archive, --force) | $ARCHIVED | $ALREADY | $PUBLISHED | **${RUN_S} s** | **$((RUN_KB / 1024)) MiB** | $RATE |

Records in the topic after the seed run: $SEEDED; after the measured run: $TOTAL
(expected $COUNT: every message once).
MD
cat "$OUT"
[ "$TOTAL" = "$COUNT" ] || { echo "the topic holds $TOTAL records, not $COUNT" >&2; exit 1; }
