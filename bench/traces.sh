#!/usr/bin/env bash
# What traces cost (issue 35), in one run against one broker and the test Jaeger:
#   1. tracing off against a build without the tracing code (BEFORE_BINARY),
#   2. tracing off against 1 % sampling,
#   3. tracing off against 100 % sampling,
# each by bench/compare.sh (interleaved rounds). The release build of this tree is
# "after". The sampled runs export to a Jaeger started here (scripts/jaeger), or with
# BACKEND=discard to bench-http-ceiling, which answers 200 and keeps nothing: the
# bridge's own cost, without a trace backend's CPU on this same machine.
#   bench/traces.sh BEFORE_BINARY
#   ROUNDS=3 DURATION=10 CONNECTIONS=256 ACKS="memory durable" BACKEND=discard bench/traces.sh BEFORE_BINARY
#   STEPS="1 2 3" picks the comparisons (all three by default).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
BEFORE="${1:?a release binary built without the tracing code}"
export ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-10}" CONNECTIONS="${CONNECTIONS:-256}"
export ACKS="${ACKS:-memory durable}"
OTLP_PORT="${OTLP_PORT:-14600}"
BACKEND="${BACKEND:-jaeger}"
STEPS="${STEPS:-1 2 3}"

cargo build --release --bin tim-kafka-bridge >/dev/null
AFTER="$PWD/target/release/tim-kafka-bridge"
WORK="$(mktemp -d)"
if [ "$BACKEND" = discard ]; then
  cargo build --release --example bench-http-ceiling >/dev/null
  target/release/examples/bench-http-ceiling "127.0.0.1:$OTLP_PORT" &
  SINK=$!
  trap 'kill "$SINK" 2>/dev/null || true' EXIT
else
  trap 'scripts/jaeger down --dir "$WORK/jaeger" >/dev/null 2>&1 || true' EXIT
  scripts/jaeger up --dir "$WORK/jaeger" --otlp-port "$OTLP_PORT" --query-port "$((OTLP_PORT + 1))" >/dev/null
fi
echo "trace backend: $BACKEND"
for ratio in 0.01 1; do
  cat >"$WORK/sampled-$ratio" <<SH
#!/bin/sh
OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_PORT OTEL_TRACES_SAMPLER_ARG=$ratio exec "$AFTER" "\$@"
SH
  chmod +x "$WORK/sampled-$ratio"
done

for step in $STEPS; do
  case $step in
    1) echo "## tracing off: $BEFORE -> $AFTER"; pair=("$BEFORE" "$AFTER") ;;
    2) echo "## tracing off -> 1 % sampled"; pair=("$AFTER" "$WORK/sampled-0.01") ;;
    3) echo "## tracing off -> 100 % sampled"; pair=("$AFTER" "$WORK/sampled-1") ;;
    *) echo "bench/traces.sh: STEPS are 1, 2 and 3" >&2; exit 2 ;;
  esac
  bench/compare.sh "${pair[@]}" | sed -n '/^broker:/,$p'
done
