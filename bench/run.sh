#!/usr/bin/env bash
# One benchmark run on this machine: a broker (Apache Kafka, or BROKER=tansu; see
# bench/broker.sh), the bridge in
# release mode, and wrk sending signed callbacks. Measures, in the same run, the
# two ceilings (a bare hyper server; a bare rdkafka producer), then the bridge in
# both ack modes at saturation (64 and 256 connections) and at a series of offered
# rates, and writes bench/results/<date>-<commit>.md with an SVG plot.
#   DURATION=15 RATES="5000 10000 20000 25000 30000 40000 50000" bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

DURATION="${DURATION:-15}"
RATES="${RATES:-5000 10000 20000 25000 30000 40000 50000}"
E2E_RATE="${E2E_RATE:-20000}"
BROKER_PORT="${BROKER_PORT:-19192}"
command -v wrk >/dev/null || { echo "bench/run.sh: installing wrk" >&2; apt-get install -y wrk >/dev/null; }
cargo build --release --bin tim-kafka-bridge --example bench-http-ceiling --example bench-kafka-ceiling --example bench-readback --example bench-essential
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/tim-kafka-bridge-bench-venv"
[ -x "$VENV/bin/uvicorn" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q fastapi uvicorn uvloop httptools confluent-kafka; } \
  || echo "bench/run.sh: could not install the FastAPI comparison; it is left out" >&2

WORK="$(mktemp -d)"
REL=target/release
PIDS=()
STOP_BROKER=true
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; $STOP_BROKER; wait 2>/dev/null || true; }
trap cleanup EXIT
. bench/broker.sh
start_broker "$BROKER_PORT"

REQUEST_TIME="$(date +%s)"
SIGN="$(printf '%s%s' bench-token-0123456789 "$REQUEST_TIME" | sha256sum | cut -d' ' -f1)"
export REQUEST_TIME SIGN
CLK="$(getconf CLK_TCK)"
cpu_seconds() { awk -v clk="$CLK" '{ printf "%.2f", ($14 + $15) / clk }' "/proc/$1/stat"; }
peak_rss_mib() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
load() { # connections [rate] -> wrk's JSON summary
  RATE="${2:-}" CONNECTIONS="$1" wrk -t2 -c"$1" -d"${3:-$DURATION}"s -s bench/callbacks.lua "$URL" | tail -n 1
}

# The HTTP ceiling.
"$REL/examples/bench-http-ceiling" 127.0.0.1:18090 & PIDS+=($!); sleep 0.5
URL=http://127.0.0.1:18090
declare -A CEILING
for c in 64 256; do CEILING[$c]="$(load "$c")"; echo "http ceiling, $c connections: ${CEILING[$c]}"; done
kill "${PIDS[-1]}"

# The Kafka ceiling: the same producer settings and event size as the bridge.
create_topic bench.ceiling 4
KAFKA="$("$REL/examples/bench-kafka-ceiling" "$BROKERS" bench.ceiling 300000)"
echo "kafka ceiling: $KAFKA"

# The essential work alone (bench/essential.rs): what any implementation of the job costs here.
create_topic bench.essential 12
"$REL/examples/bench-essential" 127.0.0.1:18091 "$BROKERS" bench.essential bench-token-0123456789 & PIDS+=($!); sleep 1
URL=http://127.0.0.1:18091
ESSENTIAL="$(load 64)"; echo "essential work, 64 connections: $ESSENTIAL"
kill "${PIDS[-1]}"

# The service users would otherwise write (bench/fastapi_service.py), same load generator.
FASTAPI=null
if [ -x "$VENV/bin/uvicorn" ]; then
  create_topic bench.fastapi 12
  (cd bench && BROKERS="$BROKERS" TOPIC=bench.fastapi TOKEN=bench-token-0123456789 exec "$VENV/bin/uvicorn" fastapi_service:app \
    --host 127.0.0.1 --port 18092 --workers "$(nproc)" --loop uvloop --http httptools --log-level warning) & PIDS+=($!)
  until curl -s -o /dev/null http://127.0.0.1:18092/ 2>/dev/null; do sleep 0.2; done
  URL=http://127.0.0.1:18092
  FASTAPI="$(load 64)"; echo "FastAPI + confluent-kafka, 64 connections: $FASTAPI"
  kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
fi

URL=http://127.0.0.1:18081
ROWS=()
SERIES=()
E2E=()
for ack in memory durable; do
  # Saturation: nothing else runs beside the bridge, as for the ceilings; Kafka is
  # read back afterwards, to check that every callback answered 200 is there once.
  for c in 64 256; do
    topic="bench.$ack.$c.$REQUEST_TIME"
    bridge_up "$ack" "$topic" 18081
    before="$(cpu_seconds "$BRIDGE")"
    result="$(load "$c")"
    after="$(cpu_seconds "$BRIDGE")"
    rss="$(peak_rss_mib "$BRIDGE")"
    back="$("$REL/examples/bench-readback" "$BROKERS" "$topic" 3)"
    kill -TERM "$BRIDGE"; wait "$BRIDGE" || true
    ok=$(( $(json "$result" requests) - $(json "$result" non200) ))
    cpu100k="$(python3 -c "print(f'{($after - $before) * 100000 / max($ok, 1):.2f}')")"
    exact="$(python3 -c "import json; b=json.loads('$back'); print('yes' if b['distinct_keys'] >= $ok and b['records'] == b['distinct_keys'] else 'NO')")"
    echo "bridge ack=$ack, $c connections: $result; read back $back; cpu ${cpu100k}s/100k; rss ${rss} MiB"
    ROWS+=("| $ack | $c | $(json "$result" rps) | $(json "$result" non200) | $(json "$result" p50_ms) | $(json "$result" p99_ms) | $(json "$result" p999_ms) | $cpu100k | $rss | $ok answered 200, $(json "$back" distinct_keys) distinct keys in $(json "$back" records) records: $exact |")
  done
  topic="bench.$ack.series.$REQUEST_TIME"
  bridge_up "$ack" "$topic" 18081
  for rate in $RATES; do
    result="$(load 64 "$rate" $(( DURATION / 2 + 1 )))"
    echo "bridge ack=$ack offered $rate/s: $result"
    SERIES+=("$ack $rate $(json "$result" rps) $(json "$result" p50_ms) $(json "$result" p99_ms) $(json "$result" non200)")
  done
  kill -TERM "$BRIDGE"; wait "$BRIDGE" || true
  # End to end: a paced load with a consumer reading the topic at the same time.
  topic="bench.$ack.e2e.$REQUEST_TIME"
  bridge_up "$ack" "$topic" 18081
  "$REL/examples/bench-readback" "$BROKERS" "$topic" 3 >"$WORK/readback.json" &
  READER=$!
  result="$(load 64 "$E2E_RATE")"
  wait "$READER"
  back="$(cat "$WORK/readback.json")"
  kill -TERM "$BRIDGE"; wait "$BRIDGE" || true
  echo "bridge ack=$ack end to end at $E2E_RATE/s offered: $result; read back $back"
  E2E+=("| $ack | $E2E_RATE | $(json "$result" rps) | $(json "$result" p99_ms) | $(json "$back" e2e_p50_ms) | $(json "$back" e2e_p99_ms) | $(json "$back" distinct_keys) distinct keys in $(json "$back" records) records |")
done

COMMIT="$(git rev-parse --short HEAD)"
OUT="bench/results/$(date +%F)-$COMMIT"
python3 bench/report.py "$OUT" "$KAFKA" "${CEILING[64]}" "${CEILING[256]}" "$DURATION" \
  "$(printf '%s\n' "${ROWS[@]}")" "$(printf '%s\n' "${SERIES[@]}")" "$ESSENTIAL" "$FASTAPI" "$(printf '%s\n' "${E2E[@]}")"
echo "wrote $OUT.md and $OUT.svg"
