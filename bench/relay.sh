#!/usr/bin/env bash
# The relay's rate against the one-at-a-time path, in one run: COUNT events of the
# bridge's size (distinct keys) on a 4-partition topic, delivered to a local receiver
# answering 204 (bench/relay_sink.rs) at once and after each delay of DELAYS (ms),
# first by `relay` (one subscription, max_in_flight 64), then by `replay --to-url`.
# Writes bench/results/<date>-relay.md.
#   COUNT=100000 bench/relay.sh        (BROKER=tansu for tansu; see bench/broker.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

COUNT="${COUNT:-100000}"
REPLAY_COUNT="${REPLAY_COUNT:-10000}"
IN_FLIGHT="${IN_FLIGHT:-64}"
DELAYS="${DELAYS:-0 2}"
BROKER_PORT="${BROKER_PORT:-19193}"
cargo build --release --bin tim-kafka-bridge --example bench-kafka-ceiling --example bench-relay-sink

WORK="$(mktemp -d)"
REL=target/release
PIDS=()
STOP_BROKER=true
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; $STOP_BROKER; wait 2>/dev/null || true; }
trap cleanup EXIT
. bench/broker.sh
start_broker "$BROKER_PORT"

count() { curl -sf "http://$SINK/count"; }
now() { date +%s.%N; }
wait_for() { # total -> seconds until the sink has counted it
  local start; start="$(now)"
  until [ "$(count)" -ge "$1" ]; do sleep 0.02; done
  python3 -c "print(round($(now) - $start, 3))"
}

TOPIC="bench.relay.$RANDOM$RANDOM"
create_topic "$TOPIC" 4
"$REL/examples/bench-kafka-ceiling" "$BROKERS" "$TOPIC" "$COUNT" >/dev/null

ROWS=()
for delay in $DELAYS; do
  SINK=127.0.0.1:18095
  "$REL/examples/bench-relay-sink" "$SINK" "$delay" & PIDS+=($!)
  SINK_PID=$!
  until curl -sf "http://$SINK/count" >/dev/null 2>&1; do sleep 0.1; done
  # What the receiver alone can answer here (wrk, 64 connections): no sender beats it.
  CEILING=0
  if [ "$delay" = 0 ] && command -v wrk >/dev/null; then
    CEILING="$(REQUEST_TIME=0 SIGN=none wrk -t2 -c64 -d5s -s bench/callbacks.lua "http://$SINK/events" | tail -n 1 \
      | python3 -c "import json,sys; print(round(json.loads(sys.stdin.read())['rps']))")"
    curl -sf "http://$SINK/count" >/dev/null
    kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true
    "$REL/examples/bench-relay-sink" "$SINK" "$delay" & PIDS+=($!)
    SINK_PID=$!
    until curl -sf "http://$SINK/count" >/dev/null 2>&1; do sleep 0.1; done
  fi

  # The relay, from the first event answered to the last.
  cat >"$WORK/relay.toml" <<TOML
listen = "127.0.0.1:18096"
[kafka]
brokers = "$BROKERS"
[[subscriptions]]
name = "bench-$RANDOM$RANDOM"
topics = ["$TOPIC"]
url = "http://$SINK/events"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
max_in_flight = $IN_FLIGHT
TOML
  RUST_LOG=warn "$REL/tim-kafka-bridge" relay --config "$WORK/relay.toml" >"$WORK/relay.log" 2>&1 & PIDS+=($!)
  RELAY_PID=$!
  until [ "$(count)" -gt 0 ]; do sleep 0.01; done
  RELAY_SECONDS="$(wait_for "$COUNT")"
  RELAY_CPU="$(awk -v clk="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / clk }' "/proc/$RELAY_PID/stat")"
  kill -TERM "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
  BASE="$(count)"

  # replay --to-url, one event at a time; REPLAY_COUNT of them time it.
  n=$REPLAY_COUNT; [ "$delay" = 0 ] || n=$((REPLAY_COUNT / 10))
  "$REL/tim-kafka-bridge" replay --brokers "$BROKERS" --topic "$TOPIC" --to-url "http://$SINK/events" \
    --count "$n" --quiet >/dev/null 2>"$WORK/replay.log" & PIDS+=($!)
  until [ "$(count)" -gt "$BASE" ]; do sleep 0.01; done
  REPLAY_SECONDS="$(wait_for $((BASE + n)))"
  kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true
  ROWS+=("$delay $COUNT $RELAY_SECONDS $RELAY_CPU $n $REPLAY_SECONDS $CEILING")
  echo "receiver delay ${delay} ms: relay $COUNT in $RELAY_SECONDS s (cpu $RELAY_CPU s), replay --to-url $n in $REPLAY_SECONDS s"
done

python3 - "$IN_FLIGHT" "$BROKER_NAME" "$COUNT" "$REPLAY_COUNT" "$DELAYS" "${ROWS[@]}" <<'PY'
import datetime, subprocess, sys
inflight, broker, count, rcount, delays, *rows = sys.argv[1:]
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
day = datetime.date.today().isoformat()
table = ["| receiver answers | relay events/s (events, s) | relay CPU per event | `replay --to-url` events/s (events, s) | ratio | the receiver's own ceiling (wrk, 64 connections) |", "|---|---|---|---|---|---|"]
for row in rows:
    delay, n, rs, cpu, rn, ps, ceiling = row.split()
    relay, replay = int(n) / float(rs), int(rn) / float(ps)
    when = "at once" if delay == "0" else f"after {delay} ms"
    own = f"{int(ceiling):,} req/s" if ceiling != "0" else "—"
    table.append(f"| {when} | {relay:,.0f} ({n}, {rs}) | {float(cpu) / int(n) * 1e6:.0f} µs | {replay:,.0f} ({rn}, {ps}) | **{relay / replay:.1f}x** | {own} |")
text = f"""# Relay against replay --to-url, {day} ({commit})

One run on this machine (2 cores; broker, relay and receiver beside each other), {broker}.
{count} events of the bridge's size (`bench/event.json`, distinct keys) on a 4-partition
topic, delivered signed by `relay` (one subscription, `max_in_flight = {inflight}`), then
by `replay --to-url` (one event at a time), to `bench/relay_sink.rs` answering 204.
Command: `COUNT={count} REPLAY_COUNT={rcount} IN_FLIGHT={inflight} DELAYS="{delays}" bench/relay.sh`.

""" + "\n".join(table) + "\n"
path = f"bench/results/{day}-relay.md"
open(path, "w").write(text)
print(text)
print(f"written to {path}")
PY
