#!/usr/bin/env bash
# What 10,000 mostly idle keep-alive connections cost the bridge: at one offered
# rate (RATE/s over 256 active connections), its p99 and resident memory with IDLE
# other connections held open (bench/idle_connections.py), against the same load
# with none; both ack modes, one run, one broker. Writes bench/results/<date>-idle.md.
#   RATE=10000 IDLE=10000 bench/idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

RATE="${RATE:-10000}"
IDLE="${IDLE:-10000}"
ACTIVE="${ACTIVE:-256}"
DURATION="${DURATION:-15}"
BROKER_PORT="${BROKER_PORT:-19196}"
ulimit -n "$(ulimit -Hn)"
command -v wrk >/dev/null || { echo "bench/idle.sh: installing wrk" >&2; apt-get install -y wrk >/dev/null; }
cargo build --release --bin tim-kafka-bridge

WORK="$(mktemp -d)"
PIDS=()
STOP_BROKER=true
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; $STOP_BROKER; wait 2>/dev/null || true; }
trap cleanup EXIT
. bench/broker.sh
start_broker "$BROKER_PORT"

REQUEST_TIME="$(date +%s)"
SIGN="$(printf '%s%s' bench-token-0123456789 "$REQUEST_TIME" | sha256sum | cut -d' ' -f1)"
export REQUEST_TIME SIGN
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
ROWS=()
for ack in memory durable; do
  for idle in 0 "$IDLE"; do
    bridge_up "$ack" "bench.idle.$ack.$idle.$REQUEST_TIME" 18081 'keep_alive_idle_ms = 600000\n'
    HOLDER=""
    if [ "$idle" != 0 ]; then
      python3 bench/idle_connections.py 127.0.0.1 18081 "$idle" >"$WORK/holder.log" 2>&1 &
      HOLDER=$!
      until grep -q holding "$WORK/holder.log" 2>/dev/null; do sleep 0.5; kill -0 "$HOLDER"; done
    fi
    held="$(rss_mib "$BRIDGE")"
    result="$(RATE="$RATE" CONNECTIONS="$ACTIVE" wrk -t2 -c"$ACTIVE" -d"${DURATION}"s --timeout 10s -s bench/callbacks.lua http://127.0.0.1:18081 | tail -n 1)"
    after="$(rss_mib "$BRIDGE")"
    open="$(curl -sf http://127.0.0.1:18081/metrics | awk '/^tim_bridge_http_connections_open / { print $2 }')"
    [ -z "$HOLDER" ] || { kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true; }
    kill -TERM "$BRIDGE"; wait "$BRIDGE" || true
    ROWS+=("| $ack | $idle | $ACTIVE | $RATE | $(json "$result" rps) | $(json "$result" non200) | $(json "$result" p50_ms) | $(json "$result" p99_ms) | $held | $after | $open |")
    echo "ack=$ack idle=$idle: $result; RSS $held MiB held, $after MiB after the load; $open connections open at the end"
  done
done

python3 - "$BROKER_NAME" "$RATE" "$IDLE" "$ACTIVE" "$DURATION" "${ROWS[@]}" <<'PY'
import datetime, subprocess, sys
broker, rate, idle, active, duration, *rows = sys.argv[1:]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
day = datetime.date.today().isoformat()
text = f"""# {idle} idle connections, {day} ({commit})

One run on this machine (2 cores; wrk, the holder of the idle connections, the bridge and
the broker beside each other), {broker}. Each row: the bridge started afresh, then (for
the idle rows) {idle} keep-alive connections opened, each making one request and then
holding still (`bench/idle_connections.py`), then wrk offering {rate} callbacks/s over
{active} other connections for {duration} s. Command: `RATE={rate} IDLE={idle} bench/idle.sh`.

| ack | idle connections | active | offered/s | served/s | non-200 | p50 ms | p99 ms | RSS before the load, MiB | RSS after, MiB | connections open at the end |
|---|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
path = f"bench/results/{day}-idle.md"
open(path, "w").write(text)
print(text)
print(f"written to {path}")
PY
