#!/usr/bin/env bash
# The crash scenario at a larger scale: CALLBACKS signed callbacks from 32
# concurrent clients, the bridge killed with SIGKILL KILLS times in a row and
# restarted on the same spool each time; then every record is read back from a
# real broker. Prints acked / delivered / lost / duplicated; fails unless lost is 0.
#   CALLBACKS=100000 KILLS=5 scripts/chaos.sh
set -uo pipefail
cd "$(dirname "$0")/.."

export TIM_BRIDGE_CHAOS_CALLBACKS="${CALLBACKS:-100000}"
export TIM_BRIDGE_CHAOS_KILLS="${KILLS:-5}"
scripts/test --release --test api -- --exact --nocapture \
  durability::a_bridge_killed_with_sigkill_mid_load_loses_no_callback_it_answered_200 \
  > target/chaos.log 2>&1
status=$?
grep -E '^chaos:|^test result|panicked|lost' target/chaos.log
exit "$status"
