#!/usr/bin/env bash
# Memory over time: the bridge at a steady offered rate for a while, its resident
# memory sampled every 30 s. Growth after the first minutes would be a leak.
#   RATE=6000 SECONDS_TOTAL=600 ACK=memory bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
RATE="${RATE:-6000}"; TOTAL="${SECONDS_TOTAL:-600}"; ACK="${ACK:-memory}"; PORT="${BROKER_PORT:-19193}"
cargo build --release --bin tim-kafka-bridge
WORK="$(mktemp -d)"
PIDS=()
STOP_BROKER=true
trap 'kill "${PIDS[@]}" ${BRIDGE:-} 2>/dev/null || true; $STOP_BROKER' EXIT
. bench/broker.sh
start_broker "$PORT"
printf 'request_time_skew_secs = 86400\n[kafka]\ncreate_topics = true\n' >"$WORK/bridge.toml"
TIM_BRIDGE_ACK="$ACK" TIM_BRIDGE_SPOOL_DIR="$WORK/spool" TIM_BRIDGE_LISTEN=127.0.0.1:18082 \
  TIM_BRIDGE_KAFKA_BROKERS="127.0.0.1:$PORT" TIM_BRIDGE_SDKAPPID=1400000000 TIM_BRIDGE_TOKEN=bench-token-0123456789 \
  TIM_BRIDGE_TOPIC=soak RUST_LOG=warn target/release/tim-kafka-bridge serve --config "$WORK/bridge.toml" >"$WORK/bridge.log" 2>&1 &
BRIDGE=$!
until curl -sf http://127.0.0.1:18082/readyz >/dev/null 2>&1; do sleep 0.2; done
REQUEST_TIME="$(date +%s)"
SIGN="$(printf '%s%s' bench-token-0123456789 "$REQUEST_TIME" | sha256sum | cut -d' ' -f1)"
export REQUEST_TIME SIGN
RATE="$RATE" CONNECTIONS=64 wrk -t2 -c64 -d"${TOTAL}s" -s bench/callbacks.lua http://127.0.0.1:18082 >"$WORK/wrk.out" &
LOAD=$!
echo "seconds rss_mib"
for ((t = 0; t <= TOTAL; t += 30)); do
  awk -v t="$t" '/VmRSS/ { printf "%d %.1f\n", t, $2 / 1024 }' "/proc/$BRIDGE/status"
  sleep 30
done
wait "$LOAD"
tail -n 1 "$WORK/wrk.out"
