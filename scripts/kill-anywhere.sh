#!/usr/bin/env bash
# Kill anywhere (issue #21, docs/RELIABILITY.md): runs `recap run`, kills it with SIGKILL at
# seeded random points inside every phase of its plan (every stage, and the report), restarts
# it after each kill, and checks that it ends with the outputs of an uninterrupted run (same
# binary, thread count and run folder) and no temporary file left behind.
#
# The loop is the test RunSmoke.KillAnywhereResumesToTheSameResults (tests/test_run.cpp),
# which `make test` runs at the smoke scale with one kill per phase; this script runs it at
# any scale:
#
#   scripts/kill-anywhere.sh [-n KILLS_PER_PHASE] [-s SEED] [-p PRESET] [-a ARMS] [-t THREADS]
#                            [-k KEEP_DIR] [-- MORE RUN FLAGS, e.g. --set t2i.steps=20]
#
# Defaults: 1 kill per phase, seed 21, preset smoke, arms alt,recap, 1 thread, a temporary
# folder (removed at the end; -k keeps the two runs and every log in KEEP_DIR instead).
# The build folder is $BUILD (default: build). Exits non-zero when any check fails.
set -euo pipefail

build=${BUILD:-build}
per_phase=1 seed=21 preset=smoke arms=alt,recap threads=1 keep=
while getopts "n:s:p:a:t:k:h" opt; do
  case $opt in
    n) per_phase=$OPTARG ;;
    s) seed=$OPTARG ;;
    p) preset=$OPTARG ;;
    a) arms=$OPTARG ;;
    t) threads=$OPTARG ;;
    k) keep=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

tests="$build/tests/recap_tests"
if [[ ! -x $tests ]]; then
  echo "kill-anywhere: $tests not found: build first (make build, or set BUILD)" >&2
  exit 2
fi

RECAP_KILL_PER_STAGE=$per_phase RECAP_KILL_SEED=$seed RECAP_KILL_PRESET=$preset \
RECAP_KILL_ARMS=$arms RECAP_KILL_THREADS=$threads RECAP_KILL_KEEP=$keep \
RECAP_KILL_SET="$*" \
  exec "$tests" --gtest_filter='RunSmoke.KillAnywhereResumesToTheSameResults'
