#!/usr/bin/env bash
# Builds the image from deploy/docker/Dockerfile as a user would, and runs it against
# a real Apache Kafka (scripts/kafka) on the host network, checking from outside:
# a signed callback is answered 200 and its event read back; the HEALTHCHECK passes;
# the process runs as the image's non-root user and can write its spool; SIGTERM ends
# it within the shutdown bound, exit 0, every event confirmed; a container killed
# with SIGKILL while Kafka is away, started again on the same volume, delivers every
# event it had answered 200. Prints the image's size.
#   scripts/container-test.sh
# Docker where a daemon answers; otherwise podman (installed from Debian's packages
# when missing), with runc and the cgroupfs manager. No registry is needed: the base
# images the Dockerfile names are made locally when missing (debootstrap, and the
# host's Rust toolchain copied into a Debian root), and cached.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/tim-kafka-bridge-container"
mkdir -p "$CACHE"
WORK="$(mktemp -d)"
NAME="tkb-test-$$"
VOLUME="tkb-spool-$$"
# A tag and a Kafka port of this run's own, so that two runs on one machine do not
# collide (the bridge's 8080 is the image's own: its HEALTHCHECK probes it).
IMAGE="localhost/tim-kafka-bridge:test-$$"
KAFKA_PORT="${KAFKA_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
PORT=8080 # the port the image listens on and its HEALTHCHECK probes
TOKEN=container-token-0123456789
APP=1400000000
TOPIC="tim.container.$$"

say() { echo "container-test: $*"; }
fail() { say "FAILED: $*"; exit 1; }
# apt-get install, after an `apt-get update` when a machine has no package lists yet.
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null; }
}

if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  ENGINE=(docker)
  BUILD=(docker build)
else
  if ! command -v podman >/dev/null || ! command -v runc >/dev/null; then
    say "installing podman and runc (Debian)"
    apt_install podman runc
  fi
  # crun fails on this host's hybrid cgroups, and the default ulimits are refused here.
  printf '[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n' \
    >"$CACHE/containers.conf"
  export CONTAINERS_CONF="$CACHE/containers.conf"
  ENGINE=(podman)
  # Docker's format keeps the HEALTHCHECK; never pull: the base images are local.
  BUILD=(podman build --format docker --pull=never)
fi
engine() { "${ENGINE[@]}" "$@"; }

cleanup() {
  engine rm -f "$NAME" >/dev/null 2>&1 || true
  engine volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  # The tag goes; the layers stay, for the next run's build cache.
  engine untag "$IMAGE" >/dev/null 2>&1 || engine rmi "$IMAGE" >/dev/null 2>&1 || true
  scripts/kafka down --dir "$WORK/kafka" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The base images, made here when the engine has none.
if ! engine image exists docker.io/library/debian:bookworm-slim 2>/dev/null \
  && ! engine image inspect docker.io/library/debian:bookworm-slim >/dev/null 2>&1; then
  if [ ! -f "$CACHE/bookworm.tar" ]; then
    command -v debootstrap >/dev/null \
      || apt_install debootstrap
    say "making debian:bookworm-slim with debootstrap"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" \
      || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap"; }
    # As Docker's -slim images: no downloaded packages, package lists, manuals or
    # locales, and apt and dpkg told to keep it so (their docker-clean settings).
    rm -rf "$WORK/rootfs"/var/cache/apt/archives/*.deb "$WORK/rootfs"/var/lib/apt/lists/* \
      "$WORK/rootfs"/usr/share/doc/* "$WORK/rootfs"/usr/share/man/* "$WORK/rootfs"/usr/share/locale/*
    printf '%s\n' 'Dir::Cache::pkgcache "";' 'Dir::Cache::srcpkgcache "";' \
      'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };' \
      >"$WORK/rootfs/etc/apt/apt.conf.d/docker-clean"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
      'path-exclude /usr/share/locale/*' >"$WORK/rootfs/etc/dpkg/dpkg.cfg.d/docker-excludes"
    tar -C "$WORK/rootfs" -cf "$CACHE/bookworm.tar" .
    rm -rf "$WORK/rootfs"
  fi
  engine import "$CACHE/bookworm.tar" docker.io/library/debian:bookworm-slim >/dev/null
fi
if ! engine image inspect docker.io/library/rust:1-bookworm >/dev/null 2>&1; then
  say "making rust:1-bookworm: Debian's compilers and this machine's Rust toolchain"
  mkdir -p "$WORK/rust/toolchain"
  sysroot="$(rustc --print sysroot)"
  # bin/ and lib/ (the compiler, LLVM, the standard library); not share/ (the docs).
  cp -a "$sysroot/bin" "$sysroot/lib" "$WORK/rust/toolchain/"
  rm -rf "$WORK/rust/toolchain/lib/rustlib/src"
  # The authorities this machine trusts beyond Debian's (an egress proxy's, here), so
  # that cargo inside the build reaches crates.io as it does outside.
  mkdir -p "$WORK/rust/extra-ca"
  cp /usr/local/share/ca-certificates/*.crt "$WORK/rust/extra-ca/" 2>/dev/null || true
  cat >"$WORK/rust/Containerfile" <<'EOF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ libc6-dev make perl pkg-config \
    ca-certificates && rm -rf /var/lib/apt/lists/*
COPY extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY toolchain /usr/local/rust
ENV PATH=/usr/local/rust/bin:$PATH
EOF
  "${BUILD[@]}" --network host -t docker.io/library/rust:1-bookworm "$WORK/rust" >"$WORK/rust.log" 2>&1 \
    || { tail -30 "$WORK/rust.log"; fail "building rust:1-bookworm"; }
  rm -rf "$WORK/rust"
fi

say "building the image from deploy/docker/Dockerfile"
started=$(date +%s)
"${BUILD[@]}" --network host -f deploy/docker/Dockerfile -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
  || { tail -40 "$WORK/build.log"; fail "the image does not build"; }
say "built in $(( $(date +%s) - started )) s; image size $(( $(engine image inspect --format '{{.Size}}' "$IMAGE") / 1024 / 1024 )) MiB"

! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || fail "port $PORT is taken on this machine"
KAFKA_PORT="$KAFKA_PORT" scripts/kafka up --dir "$WORK/kafka" >/dev/null
BROKERS="127.0.0.1:$KAFKA_PORT"
scripts/kafka tool topics --bootstrap-server "$BROKERS" --create --topic "$TOPIC" --partitions 4 \
  --replication-factor 1 >/dev/null

start_bridge() {
  engine run -d --name "$NAME" --network host -v "$VOLUME:/var/lib/tim-kafka-bridge/spool" \
    -e TIM_BRIDGE_LISTEN="127.0.0.1:$PORT" -e TIM_BRIDGE_KAFKA_BROKERS="$BROKERS" \
    -e TIM_BRIDGE_SDKAPPID="$APP" -e TIM_BRIDGE_TOKEN="$TOKEN" -e TIM_BRIDGE_TOPIC="$TOPIC" \
    -e TIM_BRIDGE_OTHER_TOPIC="$TOPIC" -e TIM_BRIDGE_GROUP_TOPIC="$TOPIC" \
    -e TIM_BRIDGE_USER_TOPIC="$TOPIC" -e TIM_BRIDGE_GROUP_EVENTS_TOPIC="$TOPIC" "$IMAGE" >/dev/null
  for _ in $(seq 150); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0
    sleep 0.2
  done
  engine logs "$NAME" | tail -20
  fail "the bridge in the container did not listen"
}
callback() { # key -> HTTP status
  local t sign
  t="$(date +%s)"
  sign="$(printf '%s%s' "$TOKEN" "$t" | sha256sum | cut -d' ' -f1)"
  curl -s -o /dev/null -w '%{http_code}' -H 'content-type: application/json' \
    "http://127.0.0.1:$PORT/callback?SdkAppid=$APP&CallbackCommand=C2C.CallbackAfterSendMsg&contenttype=json&RequestTime=$t&Sign=$sign" \
    --data "{\"CallbackCommand\":\"C2C.CallbackAfterSendMsg\",\"From_Account\":\"a\",\"To_Account\":\"b\",\"MsgKey\":\"$1\",\"MsgBody\":[{\"MsgType\":\"TIMTextElem\",\"MsgContent\":{\"Text\":\"hi\"}}]}"
}
keys_on_topic() { # count -> the keys read back, sorted
  scripts/kafka tool console-consumer --bootstrap-server "$BROKERS" --topic "$TOPIC" --from-beginning \
    --max-messages "$1" --timeout-ms 30000 --property print.key=true --property key.separator=' ' 2>/dev/null \
    | grep '{' | cut -d' ' -f1 | sort
}

start_bridge
[ "$(callback container-1)" = 200 ] || fail "a signed callback was not answered 200"
[ "$(keys_on_topic 1)" = container-1 ] || fail "the event did not arrive on $TOPIC"
say "ok: a signed callback answered 200, its event read back from Kafka"

health="$(engine inspect --format '{{json .Config.Healthcheck.Test}}' "$NAME")"
case "$health" in *tim-kafka-bridge*health*) ;; *) fail "no HEALTHCHECK in the image ($health)";; esac
engine exec "$NAME" tim-kafka-bridge health >/dev/null || fail "the HEALTHCHECK command fails"
say "ok: the HEALTHCHECK command exits 0 inside the container"

uid="$(engine exec "$NAME" id -u)"
[ "$uid" != 0 ] || fail "the bridge runs as root"
engine exec "$NAME" sh -c 'touch /var/lib/tim-kafka-bridge/spool/.written && rm /var/lib/tim-kafka-bridge/spool/.written' \
  || fail "the spool volume is not writable by uid $uid"
say "ok: runs as uid $uid, which can write the spool volume"

started=$(date +%s)
engine stop -t 30 "$NAME" >/dev/null
took=$(( $(date +%s) - started ))
code="$(engine inspect --format '{{.State.ExitCode}}' "$NAME")"
[ "$code" = 0 ] || fail "SIGTERM: exit $code"
[ "$took" -le 15 ] || fail "SIGTERM: took $took s, more than the 10 s shutdown bound and margin"
engine logs "$NAME" 2>&1 | grep -q "every accepted event was confirmed" \
  || fail "SIGTERM: no 'every accepted event was confirmed' in the logs"
engine rm "$NAME" >/dev/null
say "ok: SIGTERM ended it in $took s, exit 0, every accepted event confirmed"

start_bridge
scripts/kafka stop "$WORK/kafka" >/dev/null
for i in $(seq 20); do
  [ "$(callback "kept-$i")" = 200 ] || fail "with Kafka away, callback kept-$i was not answered 200"
done
engine kill -s KILL "$NAME" >/dev/null
engine rm -f "$NAME" >/dev/null
scripts/kafka start "$WORK/kafka" >/dev/null
scripts/kafka wait "$WORK/kafka" >/dev/null
start_bridge
expected="$( (echo container-1; seq 20 | sed 's/^/kept-/') | sort)"
got="$(keys_on_topic 21)"
[ "$got" = "$expected" ] || fail "after SIGKILL with Kafka away, not every event answered 200 arrived: $(echo "$got" | wc -l) of 21"
say "ok: killed with SIGKILL while Kafka was away, started again on its volume: all 20 events it had answered 200 arrived"
engine stop -t 30 "$NAME" >/dev/null
say "passed"
