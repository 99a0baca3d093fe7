#!/usr/bin/env bash
# Where the bridge's CPU per callback goes, against the essential work's
# (bench/essential.rs: hyper + admit + librdkafka, nothing else), in one run on one
# broker: each server saturated by wrk at CONNECTIONS, sampled by perf for
# SECONDS_SAMPLED s, every sample put in exactly one bucket (bench/cost_split.py),
# shown as CPU µs per callback answered. The difference, bucket by bucket, is what
# the bridge spends beyond the job itself.
#   FLAMEGRAPH=../peer/flamegraph ACKS="memory durable" CONNECTIONS=1024 bench/cost_split.sh
# Needs perf (linux-tools) and Brendan Gregg's FlameGraph scripts (its
# stackcollapse-perf.pl), as bench/flame.sh does. Writes
# bench/results/<date>-<commit>-cost-split-<connections>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

: "${FLAMEGRAPH:?FLAMEGRAPH=path to a FlameGraph checkout}"
ACKS="${ACKS:-memory durable}"
export CONNECTIONS="${CONNECTIONS:-1024}"  # also read by bench/callbacks.lua
SECONDS_SAMPLED="${SECONDS_SAMPLED:-8}"
BROKER_PORT="${BROKER_PORT:-19197}"
ulimit -n "$(ulimit -Hn)"
command -v perf >/dev/null || { echo "bench/cost_split.sh: perf is needed (linux-tools)" >&2; exit 2; }
cargo build --release --bin tim-kafka-bridge --example bench-essential --example bench-readback
REL=target/release

. bench/broker.sh
bench_frame
start_broker "$BROKER_PORT"
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

profile() { # name port pid -> $WORK/<name>.folded, $WORK/<name>.wrk
  until (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; do sleep 0.2; done
  sleep 1
  wrk -t2 -c"$CONNECTIONS" -d"$((SECONDS_SAMPLED + 6))"s --timeout 10s \
    -s bench/callbacks.lua "http://127.0.0.1:$2" | tail -n 1 >"$WORK/$1.wrk" &
  local load=$!
  sleep 3
  perf record -F 499 -g --call-graph dwarf,16384 -p "$3" -o "$WORK/$1.data" -- sleep "$SECONDS_SAMPLED" 2>"$WORK/perf.log"
  wait "$load"
  perf script -i "$WORK/$1.data" 2>/dev/null | "$FLAMEGRAPH/stackcollapse-perf.pl" >"$WORK/$1.folded"
  rm -f "$WORK/$1.data"
  echo "$1: $(cat "$WORK/$1.wrk")"
}

SERVERS=()
create_topic bench.split.essential 12
"$REL/examples/bench-essential" 127.0.0.1:18093 "$BROKERS" bench.split.essential bench-token-0123456789 & PIDS+=($!)
profile essential 18093 "${PIDS[-1]}"
kill "${PIDS[-1]}"
SERVERS+=("essential")

CHECKS=()
for ack in $ACKS; do
  topic="bench.split.$ack.$REQUEST_TIME"
  bridge_up "$ack" "$topic" 18083
  PIDS+=("$BRIDGE")
  profile "$ack" 18083 "$BRIDGE"
  kill -TERM "$BRIDGE"; wait "$BRIDGE" || true
  result="$(cat "$WORK/$ack.wrk")"
  back="$("$REL/examples/bench-readback" "$BROKERS" "$topic" 3)"
  ok=$(( $(json "$result" requests) - $(json "$result" non200) ))
  CHECKS+=("ack = $ack: $ok answered 200, $(json "$back" distinct_keys) distinct keys in $(json "$back" records) records read back")
  SERVERS+=("$ack")
done

# A build with uncommitted changes to the code is named as such, not as HEAD.
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock bench/essential.rs || echo -dirty)"
OUT="bench/results/$(date +%F)-$COMMIT-cost-split-$CONNECTIONS.md"
args=()
for s in "${SERVERS[@]}"; do args+=("$s" "$WORK/$s.folded" "$(cat "$WORK/$s.wrk")"); done
python3 bench/cost_split.py "$CONNECTIONS" "$SECONDS_SAMPLED" "$BROKER_NAME" "$(printf '%s\n' "${CHECKS[@]}")" "${args[@]}" >"$OUT"
cat "$OUT"
echo "wrote $OUT"
