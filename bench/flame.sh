#!/usr/bin/env bash
# A flame graph of the bridge under saturating load: where its CPU goes.
# perf (linux-tools) samples the bridge's process while wrk saturates it; Brendan
# Gregg's FlameGraph scripts (github.com/brendangregg/FlameGraph, not vendored here)
# draw it, from a checkout named by FLAMEGRAPH:
#   git clone https://github.com/brendangregg/FlameGraph ../peer/flamegraph
#   FLAMEGRAPH=../peer/flamegraph ACK=durable CONNECTIONS=1024 bench/flame.sh
# Writes bench/results/<date>-flame-<ack>-<connections>.svg, and prints the
# largest items, by where the samples are (own code, librdkafka, hyper, kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

: "${FLAMEGRAPH:?FLAMEGRAPH=path to a FlameGraph checkout}"
ACK="${ACK:-durable}"
export CONNECTIONS="${CONNECTIONS:-1024}"  # also read by bench/callbacks.lua
SECONDS_SAMPLED="${SECONDS_SAMPLED:-6}"
BROKER_PORT="${BROKER_PORT:-19196}"
ulimit -n "$(ulimit -Hn)"
command -v perf >/dev/null || { echo "bench/flame.sh: perf is needed (linux-tools)" >&2; exit 2; }
cargo build --release --bin tim-kafka-bridge

. bench/broker.sh
bench_frame
start_broker "$BROKER_PORT"
bridge_up "$ACK" "bench.flame.$REQUEST_TIME" 18082
PIDS+=("$BRIDGE")

wrk -t2 -c"$CONNECTIONS" -d"$((SECONDS_SAMPLED + 4))"s --timeout 10s \
  -s bench/callbacks.lua http://127.0.0.1:18082 >"$WORK/wrk.txt" &
WRK=$!
sleep 2
perf record -F 499 -g --call-graph dwarf,16384 -p "$BRIDGE" -o "$WORK/perf.data" -- sleep "$SECONDS_SAMPLED" 2>"$WORK/perf.log"
wait "$WRK"
tail -n 1 "$WORK/wrk.txt"

OUT="bench/results/$(date +%F)-flame-$ACK-$CONNECTIONS.svg"
perf script -i "$WORK/perf.data" 2>/dev/null | "$FLAMEGRAPH/stackcollapse-perf.pl" >"$WORK/folded"
"$FLAMEGRAPH/flamegraph.pl" --title "tim-kafka-bridge, ack = $ACK, $CONNECTIONS connections ($BROKER_NAME)" \
  --width 1400 --minwidth 1 "$WORK/folded" >"$OUT"
echo "wrote $OUT"
# Where the samples are: by thread, and the share of samples under each kind of work
# (inclusive: a sample in hyper under the spool counts for both).
python3 - "$WORK/folded" <<'EOF'
import sys, collections
total, threads, kinds = 0, collections.Counter(), collections.Counter()
names = [("spool", "tim_kafka_bridge::spool"), ("forwarder", "tim_kafka_bridge::kafka"),
         ("admit (signature, parse, normalize)", "tim_kafka_bridge::http::admit"),
         ("callback handler", "tim_kafka_bridge::http::callback"), ("librdkafka", "rd_kafka"),
         ("hyper", "hyper::"), ("system calls", "entry_SYSCALL"), ("fdatasync", "sync_file_range"),
         ("futex (wake/park)", "futex")]
for line in open(sys.argv[1]):
    stack, n = line.rsplit(" ", 1)
    n = int(n); total += n
    frames = stack.split(";")
    threads[frames[0].rstrip("0123456789-")] += n
    for kind, mark in names:
        if any(mark in f for f in frames[1:]):
            kinds[kind] += n
print(f"{total} samples")
for k, n in threads.most_common(8):
    print(f"thread {k}: {100 * n / total:.1f}%")
for k, n in kinds.most_common():
    print(f"under {k}: {100 * n / total:.1f}%")
EOF
