#!/usr/bin/env bash
# How the cost grows with the body: callbacks of about 1 KiB, 16 KiB and 256 KiB
# (one custom element filling the message, bench/callbacks.lua's BODY_BYTES), each
# against the HTTP ceiling with the same bodies, in one run on one broker: the bare
# hyper server, then the bridge with ack = memory and ack = durable, saturated with
# wrk at CONNECTIONS; every callback answered 200 read back from Kafka once.
#   BODIES="1024 16384 262000" CONNECTIONS=64 DURATION=10 bench/bodies.sh
# (262,000 rather than 262,144: the default max_body_bytes is 256 KiB and the
# envelope's numbers grow by a few bytes during a run.) Writes bench/results/<date>-bodies.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

BODIES="${BODIES:-1024 16384 262000}"
export CONNECTIONS="${CONNECTIONS:-64}"  # also read by bench/callbacks.lua
DURATION="${DURATION:-10}"
BROKER_PORT="${BROKER_PORT:-19197}"
ulimit -n "$(ulimit -Hn)"
command -v wrk >/dev/null || { echo "bench/bodies.sh: installing wrk" >&2; apt-get install -y wrk >/dev/null; }
cargo build --release --bin tim-kafka-bridge --example bench-http-ceiling --example bench-readback

REL=target/release
. bench/broker.sh
bench_frame
start_broker "$BROKER_PORT"
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
load() { # url body-bytes -> wrk's JSON summary
  BODY_BYTES="$2" wrk -t2 -c"$CONNECTIONS" -d"$DURATION"s --timeout 10s \
    -s bench/callbacks.lua "$1" | tail -n 1
}
mbs() { python3 -c "print(f'{$1 * $2 / 1e6:.1f}')"; }
ROWS=()

"$REL/examples/bench-http-ceiling" 127.0.0.1:18090 & PIDS+=($!); sleep 0.5
declare -A CEILING
for b in $BODIES; do
  CEILING[$b]="$(load http://127.0.0.1:18090 "$b")"
  echo "HTTP ceiling, $b-byte bodies: ${CEILING[$b]}"
done
kill "${PIDS[-1]}"

for b in $BODIES; do
  ceiling="$(json "${CEILING[$b]}" rps)"
  ROWS+=("| $b | HTTP ceiling (bare hyper) | $ceiling | $(mbs "$ceiling" "$b") | 1.00 | $(json "${CEILING[$b]}" p99_ms) | |")
  for ack in memory durable; do
    topic="bench.bodies.$ack.$b.$REQUEST_TIME"
    bridge_up "$ack" "$topic" 18081
    result="$(load http://127.0.0.1:18081 "$b")"
    back="$("$REL/examples/bench-readback" "$BROKERS" "$topic" 5)"
    kill -TERM "$BRIDGE"; wait "$BRIDGE" || true
    ok=$(( $(json "$result" requests) - $(json "$result" non200) ))
    rps="$(json "$result" rps)"
    exact="$(python3 -c "import json; b=json.loads('$back'); print('yes' if b['distinct_keys'] >= $ok and b['records'] == b['distinct_keys'] else 'NO')")"
    echo "bridge ack=$ack, $b-byte bodies: $result; read back $back"
    ROWS+=("| $b | bridge, ack = $ack | $rps | $(mbs "$rps" "$b") | $(python3 -c "print(f'{$rps / $ceiling:.2f}')") | $(json "$result" p99_ms) | $ok answered 200 ($(json "$result" non200) not), $(json "$back" distinct_keys) distinct keys in $(json "$back" records) records: $exact |")
  done
done

OUT="bench/results/$(date +%F)-bodies.md"
{
  echo "# Body sizes: the bridge against the HTTP ceiling with the same bodies"
  echo
  echo "$(date +%F), commit $(git rev-parse --short HEAD), $(nproc) cores shared with the broker and wrk; broker: $BROKER_NAME."
  echo "wrk -t2 -c$CONNECTIONS, $DURATION s per row, bench/callbacks.lua with BODY_BYTES (one custom element fills the message)."
  echo
  echo "| body bytes | server | callbacks/s | MB/s of bodies | of the ceiling | p99 ms | read back from Kafka |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} >"$OUT"
echo "wrote $OUT"
