#!/usr/bin/env bash
# Two builds of the bridge in one run, against one broker, interleaved (A B A B...)
# so that drift on a shared machine falls on both alike: before and after a change.
#   bench/compare.sh BEFORE_BINARY AFTER_BINARY
#   ROUNDS=3 DURATION=10 CONNECTIONS="64 256 1024" ACKS="memory durable" bench/compare.sh ...
# Prints one line per run, then the median requests/s, p99 and the bridge's own CPU per
# request (user + system, from /proc) of each build per case,
# and the ratio after/before; the HTTP ceiling (bench/http_ceiling.rs) is measured in
# the same run for the ratios the README reports.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

BEFORE="${1:?the binary before the change}"
AFTER="${2:?the binary after the change}"
ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64 256}"
ACKS="${ACKS:-memory durable}"
BROKER_PORT="${BROKER_PORT:-19192}"
command -v wrk >/dev/null || { echo "bench/compare.sh: installing wrk" >&2; apt-get install -y wrk >/dev/null; }
cargo build --release --example bench-http-ceiling >/dev/null

WORK="$(mktemp -d)"
PIDS=()
STOP_BROKER=true
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; $STOP_BROKER; wait 2>/dev/null || true; }
trap cleanup EXIT
. bench/broker.sh
start_broker "$BROKER_PORT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

REQUEST_TIME="$(date +%s)"
SIGN="$(printf '%s%s' bench-token-0123456789 "$REQUEST_TIME" | sha256sum | cut -d' ' -f1)"
export REQUEST_TIME SIGN
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
load() { # url connections -> wrk's JSON summary
  CONNECTIONS="$2" wrk -t2 -c"$2" -d"$DURATION"s -s bench/callbacks.lua "$1" | tail -n 1
}

target/release/examples/bench-http-ceiling 127.0.0.1:18090 & PIDS+=($!); sleep 0.5
for c in $CONNECTIONS; do echo "ceiling $c $(load http://127.0.0.1:18090 "$c")" | tee -a "$WORK/runs"; done
kill "${PIDS[-1]}"

run_bridge() { # binary ack connections -> one line
  local topic="bench.compare.$RANDOM$RANDOM"
  create_topic "$topic" 4
  rm -rf "$WORK/spool"
  TIM_BRIDGE_ACK="$2" TIM_BRIDGE_SPOOL_DIR="$WORK/spool" TIM_BRIDGE_LISTEN=127.0.0.1:18081 \
    TIM_BRIDGE_KAFKA_BROKERS="$BROKERS" TIM_BRIDGE_SDKAPPID=1400000000 TIM_BRIDGE_TOKEN=bench-token-0123456789 \
    TIM_BRIDGE_TOPIC="$topic" TIM_BRIDGE_OTHER_TOPIC="$topic" TIM_BRIDGE_GROUP_TOPIC="$topic" \
    TIM_BRIDGE_USER_TOPIC="$topic" TIM_BRIDGE_GROUP_EVENTS_TOPIC="$topic" RUST_LOG=warn \
    "$1" serve --config "$WORK/bridge.toml" >"$WORK/bridge.log" 2>&1 &
  local pid=$!
  until curl -sf http://127.0.0.1:18081/readyz >/dev/null 2>&1; do sleep 0.2; done
  local before_ticks; before_ticks="$(cpu_ticks "$pid")"
  local result; result="$(load http://127.0.0.1:18081 "$3")"
  local after_ticks; after_ticks="$(cpu_ticks "$pid")"
  kill -TERM "$pid"; wait "$pid" || true
  # The bridge's own CPU (user + system) per request: steadier than requests/s when
  # other work shares the machine.
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["cpu_us"]=round((int(sys.argv[3])-int(sys.argv[2]))*1e6/int(sys.argv[4])/max(r["requests"],1),2); print(json.dumps(r))' \
    "$result" "$before_ticks" "$after_ticks" "$(getconf CLK_TCK)"
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

cat >"$WORK/bridge.toml" <<TOML
request_time_skew_secs = 86400
[limits]
max_connections = 20000
TOML
for round in $(seq "$ROUNDS"); do
  for ack in $ACKS; do
    for c in $CONNECTIONS; do
      for which in before after; do
        binary="$BEFORE"; [ "$which" = after ] && binary="$AFTER"
        line="$which $ack $c $(run_bridge "$binary" "$ack" "$c")"
        echo "round $round: $line"
        echo "$line" >>"$WORK/runs"
      done
    done
  done
done

python3 - "$WORK/runs" "$BROKER_NAME" <<'PY'
import json, statistics, sys
runs = {}
ceiling = {}
for line in open(sys.argv[1]):
    words = line.split(" ", 3)
    if words[0] == "ceiling":
        c, result = line.split(" ", 2)[1:]
        ceiling[c] = json.loads(result)
        continue
    which, ack, c, result = words
    runs.setdefault((ack, c), {}).setdefault(which, []).append(json.loads(result))
print(f"\nbroker: {sys.argv[2]}; medians of the rounds; ratio = after / before")
print("| ack | connections | before req/s | after req/s | ratio | before p99 ms | after p99 ms | after / HTTP ceiling | before CPU µs/req | after CPU µs/req | CPU ratio |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for (ack, c), by in sorted(runs.items(), key=lambda kv: (kv[0][0], int(kv[0][1]))):
    med = lambda w, k: statistics.median(r[k] for r in by[w])
    before, after = med("before", "rps"), med("after", "rps")
    top = ceiling.get(c, {}).get("rps", 0)
    non200 = sum(r["non200"] for w in by for r in by[w])
    cpu = lambda w: statistics.median(r.get("cpu_us", 0) for r in by[w])
    cpu_ratio = cpu("after") / cpu("before") if cpu("before") else 0
    print(f"| {ack} | {c} | {before:.0f} | {after:.0f} | {after / before:.2f} | {med('before', 'p99_ms'):.2f} | {med('after', 'p99_ms'):.2f} | {after / top if top else 0:.2f} | {cpu('before'):.2f} | {cpu('after'):.2f} | {cpu_ratio:.3f} |" + (f" ({non200} non-200)" if non200 else ""))
PY
