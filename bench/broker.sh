# shellcheck shell=bash
# Sourced by bench/run.sh and bench/soak.sh: the broker a benchmark runs against.
# BROKER=kafka (the default): Apache Kafka, one KRaft node, through scripts/kafka.
# BROKER=tansu: tansu 0.6 with its memory engine, kept for comparison with the
# results measured on it before (bench/results/2026-11-*), where a confirmation
# costs a broker almost nothing; installed with cargo when missing.
BROKER="${BROKER:-kafka}"

start_broker() { # port; sets BROKERS and BROKER_PID, adds the broker's pid to PIDS where it owns one
  BROKERS="127.0.0.1:$1"
  case $BROKER in
    kafka)
      KAFKA_DIR="$WORK/kafka"
      KAFKA_PORT="$1" scripts/kafka up --dir "$KAFKA_DIR" >/dev/null
      STOP_BROKER="scripts/kafka down --dir $KAFKA_DIR"
      # shellcheck disable=SC2034 # read by the script that sources this one
      BROKER_PID="$(cat "$KAFKA_DIR"/node*/pid)"
      BROKER_NAME="Apache Kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka-broker/pom.xml), one KRaft node"
      export BROKER_NAME ;;
    tansu)
      command -v tansu >/dev/null || cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
      (cd "$WORK" && exec tansu broker --storage-engine memory://tansu/ --listener-url "tcp://$BROKERS" \
        --advertised-listener-url "tcp://$BROKERS" >"$WORK/tansu.log" 2>&1) &
      PIDS+=($!)
      # shellcheck disable=SC2034 # read by the script that sources this one
      BROKER_PID=$!
      # shellcheck disable=SC2034 # read by the script that sources this one
      STOP_BROKER=true
      export BROKER_NAME="tansu 0.6, memory engine"
      until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.2; done ;;
    *) echo "BROKER is kafka or tansu, not $BROKER" >&2; exit 2 ;;
  esac
}

create_topic() { # name partitions
  case $BROKER in
    kafka) scripts/kafka tool topics --bootstrap-server "$BROKERS" --create --if-not-exists \
             --topic "$1" --partitions "$2" --replication-factor 1 >/dev/null ;;
    tansu) tansu topic create "$1" --partitions "$2" --broker "tcp://$BROKERS" >/dev/null 2>&1 || true ;;
  esac
}

# The bridge (release build) on 127.0.0.1:PORT with `ack = ACK`, publishing to TOPIC,
# a fresh spool, room for 16,384 connections and EXTRA lines appended to [limits];
# sets BRIDGE to its pid once /readyz answers.
bridge_up() { # ack topic port [extra]
  printf 'request_time_skew_secs = 86400\n[kafka]\ncreate_topics = true\n[limits]\nmax_connections = 16384\n%b' "${4:-}" >"$WORK/bridge.toml"
  rm -rf "$WORK/spool"
  TIM_BRIDGE_ACK="$1" TIM_BRIDGE_SPOOL_DIR="$WORK/spool" TIM_BRIDGE_LISTEN="127.0.0.1:$3" \
    TIM_BRIDGE_KAFKA_BROKERS="$BROKERS" TIM_BRIDGE_SDKAPPID=1400000000 TIM_BRIDGE_TOKEN=bench-token-0123456789 \
    TIM_BRIDGE_TOPIC="$2" RUST_LOG=warn target/release/tim-kafka-bridge serve --config "$WORK/bridge.toml" >"$WORK/bridge-$2.log" 2>&1 &
  # shellcheck disable=SC2034 # read by the script that sources this one
  BRIDGE=$!
  until curl -sf "http://127.0.0.1:$3/readyz" >/dev/null 2>&1; do sleep 0.2; done
}

# The frame of a benchmark: a scratch directory (WORK), the processes to stop on exit
# (PIDS, and the broker through STOP_BROKER), and a request time signed with
# bench-token-0123456789 for bench/callbacks.lua (REQUEST_TIME, SIGN).
bench_cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  $STOP_BROKER
  wait 2>/dev/null || true
}
bench_frame() {
  WORK="$(mktemp -d)"
  PIDS=()
  STOP_BROKER=true
  trap bench_cleanup EXIT
  REQUEST_TIME="$(date +%s)"
  SIGN="$(printf '%s%s' bench-token-0123456789 "$REQUEST_TIME" | sha256sum | cut -d' ' -f1)"
  export REQUEST_TIME SIGN
}

# CPU seconds (user + system) of a process, and of the whole machine (busy, every core).
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }
machine_cpu() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4 + $7 + $8) / hz }' /proc/stat; }
