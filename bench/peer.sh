#!/usr/bin/env bash
# The bridge beside a peer that does less, in one run on one broker: kafka-proxy
# (github.com/mkroli/kafka-proxy: Rust, axum + rdkafka; takes the raw body, validates
# nothing, answers after Kafka confirms). The peer is built beside the checkout, never
# in it, and named by PEER:
#   git clone https://github.com/mkroli/kafka-proxy ../peer/kafka-proxy   (0.21.2)
#   (cd ../peer/kafka-proxy && CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo build --release --locked \
#      --no-default-features --features coap)   # 0.21.2 needs coap for tokio's io-std
#   (its librdkafka build needs libcurl's headers: apt-get install libcurl4-openssl-dev)
#   PEER=../peer/kafka-proxy/target/release/kafka-proxy bench/peer.sh
# At each of CONNECTIONS, saturated with wrk for DURATION s: the HTTP ceiling (a bare
# hyper server), the essential work alone (bench/essential.rs), the bridge with
# ack = memory and ack = durable (every callback answered 200 read back from Kafka
# once), and the peer (acks=all, idempotence, message.timeout.ms=10000), each with
# its CPU per request, the broker's and the rest of the machine's. Writes bench/results/<date>-<commit>-peer.md and .svg
# (callbacks/s and p99 against connections, bench/plot_connections.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

: "${PEER:?PEER=path to a kafka-proxy binary built beside the checkout}"
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64 256 1024 4096}"
BROKER_PORT="${BROKER_PORT:-19195}"
ulimit -n "$(ulimit -Hn)"
command -v wrk >/dev/null || { echo "bench/peer.sh: installing wrk" >&2; apt-get install -y wrk >/dev/null; }
cargo build --release --bin tim-kafka-bridge --example bench-http-ceiling --example bench-readback --example bench-essential

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
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
load() { # url connections server-pid -> wrk's JSON summary, with where the CPU went
  local s0 b0 m0 t0 summary
  s0=$(proc_cpu "$3"); b0=$(proc_cpu "$BROKER_PID"); m0=$(machine_cpu); t0=$(date +%s.%N)
  summary="$(CONNECTIONS="$2" wrk -t2 -c"$2" -d"$DURATION"s --timeout 10s -s bench/callbacks.lua "$1" | tail -n 1)"
  python3 - "$summary" "$s0" "$(proc_cpu "$3")" "$b0" "$(proc_cpu "$BROKER_PID")" "$m0" "$(machine_cpu)" "$t0" "$(date +%s.%N)" "$(nproc)" <<'PY'
import json, sys
summary, s0, s1, b0, b1, m0, m1, t0, t1, cores = sys.argv[1:]
s = json.loads(summary)
per = 1e6 / max(s["requests"], 1)
server, broker, machine = float(s1) - float(s0), float(b1) - float(b0), float(m1) - float(m0)
s["server_us"] = round(server * per, 1)
s["broker_us"] = round(broker * per, 1)
s["rest_us"] = round((machine - server - broker) * per, 1)
s["idle_pct"] = round(100 * (1 - machine / ((float(t1) - float(t0)) * int(cores))), 1)
print(json.dumps(s))
PY
}
ROWS=()
row() { # name connections result [readback]
  ROWS+=("| $1 | $2 | $(json "$3" rps) | $(json "$3" non200) | $(json "$3" socket_errors) | $(json "$3" p50_ms) | $(json "$3" p99_ms) | $(json "$3" server_us) | $(json "$3" broker_us) | $(json "$3" rest_us) | $(json "$3" idle_pct) | ${4:-} |")
  echo "$1, $2 connections: $3 ${4:-}"
}

"$REL/examples/bench-http-ceiling" 127.0.0.1:18090 & PIDS+=($!); sleep 0.5
for c in $CONNECTIONS; do row "HTTP ceiling (bare hyper)" "$c" "$(load http://127.0.0.1:18090 "$c" "${PIDS[-1]}")"; done
kill "${PIDS[-1]}"

# The essential work alone (bench/essential.rs): the job's own cost, nothing of the bridge's.
for c in $CONNECTIONS; do
  topic="bench.peer.essential.$c.$REQUEST_TIME"
  create_topic "$topic" 4
  "$REL/examples/bench-essential" 127.0.0.1:18091 "$BROKERS" "$topic" bench-token-0123456789 & PIDS+=($!); sleep 1
  result="$(load http://127.0.0.1:18091 "$c" "${PIDS[-1]}")"
  back="$("$REL/examples/bench-readback" "$BROKERS" "$topic" 3)"
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
  row "the essential work (hyper + admit + librdkafka)" "$c" "$result" "$(json "$back" records) records"
done

bridge_row() { # ack connections [offered rate] -> a row, every callback answered 200 read back
  local topic="bench.peer.$1.$2.${3:-max}.$REQUEST_TIME" result back ok exact
  bridge_up "$1" "$topic" 18081
  result="$(RATE="${3:-}" load http://127.0.0.1:18081 "$2" "$BRIDGE")"
  back="$("$REL/examples/bench-readback" "$BROKERS" "$topic" 3)"
  kill -TERM "$BRIDGE"; wait "$BRIDGE" || true
  ok=$(( $(json "$result" requests) - $(json "$result" non200) ))
  exact="$(python3 -c "import json; b=json.loads('$back'); print('yes' if b['distinct_keys'] >= $ok and b['records'] == b['distinct_keys'] else 'NO')")"
  row "bridge, ack = $1${3:+, $3/s offered}" "$2" "$result" "$ok answered 200; $(json "$back" records) records, $(json "$back" distinct_keys) distinct keys: $exact"
  LAST="$result"
}
declare -A SATURATED
for ack in memory durable; do
  for c in $CONNECTIONS; do
    bridge_row "$ack" "$c"
    SATURATED[$ack.$c]="$(json "$LAST" rps)"
  done
done
# Both modes at half of durable's saturation rate at the first connection count: the
# latency a callback sees when the bridge is not the bottleneck (issue 21: durable's p99
# there within 2x memory's).
first="${CONNECTIONS%% *}"
half="$(python3 -c "print(int(float('${SATURATED[durable.$first]}') / 2))")"
for ack in memory durable; do bridge_row "$ack" "$first" "$half"; done

for c in $CONNECTIONS; do
  topic="bench.peer.proxy.$c.$REQUEST_TIME"
  create_topic "$topic" 4
  "$PEER" -b "$BROKERS" -t "$topic" --producer-config acks=all --producer-config enable.idempotence=true \
    --producer-config message.timeout.ms=10000 rest -a 127.0.0.1:18093 >"$WORK/peer.log" 2>&1 &
  PEER_PID=$!
  until (exec 3<>/dev/tcp/127.0.0.1/18093) 2>/dev/null; do sleep 0.2; done
  result="$(TARGET_PATH=/produce load http://127.0.0.1:18093 "$c" "$PEER_PID")"
  kill -TERM "$PEER_PID"; wait "$PEER_PID" 2>/dev/null || true
  row "kafka-proxy 0.21.2 (peer)" "$c" "$result"
done

python3 - "$BROKER_NAME" "$DURATION" "$CONNECTIONS" "$BROKER" "${ROWS[@]}" <<'PY'
import datetime, subprocess, sys
broker, duration, connections, broker_kind, *rows = sys.argv[1:]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
day = datetime.date.today().isoformat()
text = f"""# The bridge beside kafka-proxy, {day} ({commit})

One run on this machine (2 cores; wrk, the server and the broker beside each other),
{broker}. wrk -t2, {duration} s per row, the same signed `C2C.CallbackAfterSendMsg`
bodies (`bench/callbacks.lua`; the peer gets them on `/produce`). Command:
`BROKER={broker_kind} DURATION={duration} CONNECTIONS="{connections}" PEER=... bench/peer.sh`; the peer built
beside the checkout from github.com/mkroli/kafka-proxy 0.21.2 with
`CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo build --release --locked --no-default-features --features coap`
(0.21.2 does not build without coap, which brings tokio's io-std), run as
`kafka-proxy -b BROKERS -t TOPIC --producer-config acks=all --producer-config
enable.idempotence=true --producer-config message.timeout.ms=10000 rest -a 127.0.0.1:18093`.

CPU per request answered, in microseconds: the server's own, the broker's, and the rest
of the machine's (wrk and the kernel's work not charged to either); idle: the share of
both cores nobody used.

| server | connections | requests/s | non-2xx | socket errors | p50 ms | p99 ms | server µs | broker µs | rest µs | idle % | read back |
|---|---|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
suffix = "" if broker_kind == "kafka" else f"-{broker_kind}"
path = f"bench/results/{day}-{commit}-peer{suffix}.md"
open(path, "w").write(text)
print(text)
print(f"written to {path}")
subprocess.run([sys.executable, "bench/plot_connections.py", path], check=True)
PY
