#!/usr/bin/env bash
# CPU per callback, counted directly: one bridge at saturation for 10 s, its own CPU
# from /proc/PID/stat (all threads), the machine's non-idle CPU from /proc/stat, and
# the spool's fsyncs (bench/results/2026-12-05-durable-tax.md). A diagnostic: it does
# not read the events back (bench/run.sh and bench/peer.sh do).
#   bench/cpu_per_callback.sh target/release/tim-kafka-bridge durable 64
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$1"; ACK="$2"; C="$3"
. bench/broker.sh
bench_frame
start_broker 19199
printf 'request_time_skew_secs = 86400\n[kafka]\ncreate_topics = true\n[limits]\nmax_connections = 16384\n' >"$WORK/bridge.toml"
rm -rf "$WORK/spool"
TIM_BRIDGE_ACK="$ACK" TIM_BRIDGE_SPOOL_DIR="$WORK/spool" TIM_BRIDGE_LISTEN="127.0.0.1:18089" \
    TIM_BRIDGE_KAFKA_BROKERS="$BROKERS" TIM_BRIDGE_SDKAPPID=1400000000 TIM_BRIDGE_TOKEN=bench-token \
    TIM_BRIDGE_TOPIC="probe.$RANDOM" RUST_LOG=warn "$BIN" serve --config "$WORK/bridge.toml" >"$WORK/b.log" 2>&1 &
B=$!; PIDS+=("$B")
until curl -sf http://127.0.0.1:18089/readyz >/dev/null 2>&1; do sleep 0.2; done
t0=$(awk '{print $14+$15}' /proc/$B/stat)
head -1 /proc/stat > "$WORK/s0"
CONNECTIONS=$C wrk -t2 -c"$C" -d10s -s bench/callbacks.lua http://127.0.0.1:18089 | tail -n1 | tee "$WORK/w"
head -1 /proc/stat > "$WORK/s1"
t1=$(awk '{print $14+$15}' /proc/$B/stat)
python3 - "$WORK" "$t0" "$t1" <<'PY'
import sys,json
w=sys.argv[1]; t0,t1=int(sys.argv[2]),int(sys.argv[3])
a=list(map(int,open(w+'/s0').read().split()[1:])); b=list(map(int,open(w+'/s1').read().split()[1:]))
d=[y-x for x,y in zip(a,b)]; tot=sum(d)
names=['user','nice','sys','idle','iowait','irq','softirq','steal']
print(' '.join(f"{n}={100*v/tot:.1f}%" for n,v in zip(names,d)))
r=json.load(open(w+'/w'))['requests']
print(f"bridge cpu per callback: {(t1-t0)*10000/r:.1f} us; machine cpu per callback (non-idle): {(tot-d[3]-d[4])*10000/r:.1f} us")
PY
curl -s http://127.0.0.1:18089/metrics | grep -E "spool_fsync_seconds_(count|sum)" || true
kill -TERM $B; wait $B || true
