#!/usr/bin/env bash
# Runs every fuzz target of a RECAP_FUZZ build for FUZZ_SECONDS each (`make fuzz`), one after
# the other, and prints per target the executions, the coverage libFuzzer reached (cov: edges,
# ft: features) and the findings. Exits 1 when any target found something: a crash, a sanitizer
# report, an exception other than recap::Error, a timeout, a leak or running out of memory.
#
#   fuzz/run.sh [BUILD_DIR]        (default build-fuzz)
#
# Under BUILD_DIR/fuzz-run/: seeds/<target> (regenerated each run), corpus/<target> (what
# libFuzzer found interesting; kept, so later runs start from there), findings/<target>/ (the
# inputs that failed: crash-*, timeout-*, oom-*, leak-*), <target>.log (libFuzzer's output).
set -euo pipefail

build=${1:-build-fuzz}
seconds=${FUZZ_SECONDS:-60}
work=$build/fuzz-run

rm -rf "$work/seeds"
"$build/fuzz/recap_fuzz_seeds" "$work/seeds"

printf '%-14s %12s %8s %8s %10s  %s\n' target executions cov ft findings log
failed=0
for target in $(tr ';' ' ' < "$build/fuzz_targets.txt"); do
  corpus=$work/corpus/$target
  findings=$work/findings/$target
  log=$work/$target.log
  mkdir -p "$corpus" "$findings"
  stamp=$(mktemp)
  status=0
  # -timeout: one input taking 10 s is a finding; -rss_limit_mb also caps single allocations.
  # Leak checking stays on: memory that one input leaks, a million inputs leak a million times.
  ASAN_OPTIONS=allocator_may_return_null=0 \
    UBSAN_OPTIONS=print_stacktrace=1 \
    "$build/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "$work/seeds/$target" \
    > "$log" 2>&1 || status=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<< "$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<< "$last")
  found=$(find "$findings" -type f -newer "$stamp" \
            \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  rm -f "$stamp"
  # A failure that left no input behind (e.g. a crash while starting) still counts.
  if [[ $status -ne 0 && $found -eq 0 ]]; then found=1; fi
  if [[ $found -ne 0 ]]; then failed=1; fi
  printf '%-14s %12s %8s %8s %10s  %s\n' "$target" "${executions:-?}" "${cov:-?}" "${ft:-?}" \
    "$found" "$log"
done
if [[ $failed -ne 0 ]]; then
  echo "fuzz: findings above; each log ends with the report, findings/ holds the inputs" >&2
  exit 1
fi
