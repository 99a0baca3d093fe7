#!/usr/bin/env bash
# Faults at a larger scale, each ending with its answered / in Kafka / lost /
# duplicated (/ out of order) counts; fails unless lost (and out of order) is 0.
#
#   scripts/chaos.sh --random [--minutes N] [--seed S] [--nodes 1|3] [--debug]
#     A seeded random schedule of composed faults under load, against the release
#     build as a process: kill -9 and SIGTERM restarts, brokers hung (SIGSTOP) and
#     killed, the spool's ext4 disk filled by another writer, out of inodes, turned
#     read-only by a disk error (then checked and mounted again), a topic missing
#     until it is created. The same seed gives the same schedule. Needs root (mount,
#     loop devices). The log is target/chaos-random-<seed>-<nodes>.log. --debug runs
#     the debug build (no release build to wait for; fewer callbacks per second).
#
#   CALLBACKS=100000 KILLS=5 SCENARIOS="kill disk-full fatal orphan" scripts/chaos.sh
#     The single-fault scenarios:
#       kill       CALLBACKS signed callbacks from 32 clients, the bridge killed with
#                  SIGKILL KILLS times in a row and restarted on the same spool
#       disk-full  the spool on a real 4 MiB tmpfs with Kafka away, then Kafka back
#       fatal      librdkafka's fatal producer state injected under load, both ack modes
#       orphan     a bridge SIGKILLed while Kafka was away; its spool sent by `spool drain`
#       chain      a full disk during a drain with restarts (tests/api/spool_edges.rs)
#       inodes     the spool's filesystem out of inodes under load
# Every record is read back from a real Apache Kafka broker (scripts/kafka).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

if [ "${1:-}" = --random ]; then
  shift
  minutes=5 seed=$RANDOM nodes=1 profile=--release
  while [ $# -gt 0 ]; do
    case $1 in
      --minutes) minutes=$2; shift 2 ;;
      --seed) seed=$2; shift 2 ;;
      --nodes) nodes=$2; shift 2 ;;
      --debug) profile=""; shift ;;
      *) echo "chaos.sh: unknown option $1" >&2; exit 2 ;;
    esac
  done
  mkdir -p target
  log="target/chaos-random-$seed-$nodes.log"
  echo "chaos.sh: seed=$seed minutes=$minutes nodes=$nodes; log in $log"
  # shellcheck disable=SC2065 # scripts/test is our script, not test(1)
  TIM_BRIDGE_CHAOS_SEED=$seed TIM_BRIDGE_CHAOS_MINUTES=$minutes TIM_BRIDGE_CHAOS_NODES=$nodes \
    scripts/test ${profile:+"$profile"} --test api -- --exact --nocapture \
    chaos::a_random_schedule_of_composed_faults_loses_nothing_and_keeps_each_key_in_order \
    >"$log" 2>&1
  status=$?
  grep -E '^chaos:|^chaos-schedule|^test result|panicked' "$log"
  exit "$status"
fi

export TIM_BRIDGE_CHAOS_CALLBACKS="${CALLBACKS:-100000}"
export TIM_BRIDGE_CHAOS_KILLS="${KILLS:-5}"
declare -A TESTS=(
  [kill]=durability::a_bridge_killed_with_sigkill_mid_load_loses_no_callback_it_answered_200
  [disk-full]=faults::a_spool_on_a_full_disk_answers_503_then_200_again_by_itself_once_kafka_drains_it
  [fatal]=faults::a_producer_librdkafka_made_fatal_is_replaced_and_every_event_arrives_in_order
  [orphan]=spool_tool::an_orphaned_spool_of_a_killed_bridge_is_drained_into_the_restarted_broker
  [chain]=spool_edges::a_full_disk_during_a_drain_with_restarts_loses_nothing_answered_200
  [inodes]=spool_edges::out_of_inodes_the_spool_still_records_progress_and_rolls
)
mkdir -p target
status=0
for scenario in ${SCENARIOS:-kill disk-full fatal orphan}; do
  name="${TESTS[$scenario]:?unknown scenario $scenario}"
  # shellcheck disable=SC2065 # scripts/test is our script, not test(1)
  scripts/test --release --test api -- --exact --nocapture "$name" > "target/chaos-$scenario.log" 2>&1 || status=1
  grep -E '^chaos:|^test result|panicked' "target/chaos-$scenario.log"
  if grep -E '^chaos:' "target/chaos-$scenario.log" | grep -qv ' lost=0'; then status=1; fi
done
exit "$status"
