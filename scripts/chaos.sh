#!/usr/bin/env bash
# Faults at a larger scale, each ending with its acked / delivered / lost /
# duplicated counts; fails unless lost is 0 in every scenario:
#   kill       CALLBACKS signed callbacks from 32 clients, the bridge killed with
#              SIGKILL KILLS times in a row and restarted on the same spool
#   disk-full  the spool on a real 4 MiB tmpfs with Kafka away, then Kafka back
#   fatal      librdkafka's fatal producer state injected under load, both ack modes
#   orphan     a bridge SIGKILLed while Kafka was away; its spool sent by `spool drain`
# Every record is read back from a real Apache Kafka broker (scripts/kafka).
#   CALLBACKS=100000 KILLS=5 SCENARIOS="kill disk-full fatal orphan" scripts/chaos.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

export TIM_BRIDGE_CHAOS_CALLBACKS="${CALLBACKS:-100000}"
export TIM_BRIDGE_CHAOS_KILLS="${KILLS:-5}"
declare -A TESTS=(
  [kill]=durability::a_bridge_killed_with_sigkill_mid_load_loses_no_callback_it_answered_200
  [disk-full]=faults::a_spool_on_a_full_disk_answers_503_then_200_again_by_itself_once_kafka_drains_it
  [fatal]=faults::a_producer_librdkafka_made_fatal_is_replaced_and_every_event_arrives_in_order
  [orphan]=spool_tool::an_orphaned_spool_of_a_killed_bridge_is_drained_into_the_restarted_broker
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
