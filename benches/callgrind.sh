#!/usr/bin/env bash
# Instruction-count regression bar (instruction counts repeat exactly on this
# VM; wall times do not). Runs the fixed workloads of
# src/bin/callgrind_workload.rs (k4, k4m, k0) and src/bin/callgrind_scenarios.rs
# (lossless, full1, full4) under callgrind and compares instructions per publish
# with callgrind-baseline.txt. Fails if any rises more than 10 %. Also
# prints lossless and full4 as a ratio to the same workloads on the rtrb
# fan-out floor of bench-report (information, not a bar).
#
#   benches/callgrind.sh           compare against the baseline
#   benches/callgrind.sh --update  rewrite the baseline (commit it on purpose,
#                                  saying why)
set -euo pipefail
cd "$(dirname "$0")/.."
baseline=benches/callgrind-baseline.txt
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p evbus-benches --bin callgrind_workload --bin callgrind_scenarios
# Every workload makes 1 M publishes: its mode, binary and measured function.
publishes=1000000
modes=(k4 k4m k0 lossless full1 full4)
declare -A bin=([k4]=callgrind_workload [k4m]=callgrind_workload [k0]=callgrind_workload
  [lossless]=callgrind_scenarios [full1]=callgrind_scenarios [full4]=callgrind_scenarios)
declare -A measured=([k4]=run_workload [k4m]=run_workload [k0]=run_workload
  [lossless]=run_lossless [full1]=run_full [full4]=run_full)
status=0
declare -A now
for mode in "${modes[@]}"; do
  out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    --toggle-collect="*${measured[$mode]}*" "$target/release/${bin[$mode]}" "$mode" 2>&1)
  collected=$(grep -oE 'Collected : [0-9]+' <<<"$out" | grep -oE '[0-9]+$')
  now[$mode]=$(awk -v c="$collected" -v n="$publishes" 'BEGIN { printf "%.1f", c / n }')
done
declare -A floor
for mode in lossless full4; do
  out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    --toggle-collect="*${measured[$mode]}_floor*" "$target/release/callgrind_scenarios" "$mode-floor" 2>&1)
  collected=$(grep -oE 'Collected : [0-9]+' <<<"$out" | grep -oE '[0-9]+$')
  floor[$mode]=$(awk -v c="$collected" -v n="$publishes" 'BEGIN { printf "%.1f", c / n }')
done
report_floors() {
  for mode in lossless full4; do
    awk -v m="$mode" -v c="${now[$mode]}" -v f="${floor[$mode]}" \
      'BEGIN { printf "callgrind %s: %.2f x the rtrb floor (%s instructions/publish)\n", m, c / f, f }'
  done
}
if [[ "${1:-}" == "--update" ]]; then
  {
    echo "# instructions per publish, valgrind --tool=callgrind, benches/callgrind.sh"
    echo "# rustc: $(rustc --version)"
    for mode in "${modes[@]}"; do echo "$mode ${now[$mode]}"; done
  } >"$baseline"
  cat "$baseline"
  report_floors
  exit 0
fi
for mode in "${modes[@]}"; do
  base=$(awk -v m="$mode" '$1 == m { print $2 }' "$baseline")
  verdict=$(awk -v b="$base" -v c="${now[$mode]}" 'BEGIN { r = c / b; printf "%.3f %s", r, (r > 1.10 ? "FAIL" : "ok") }')
  echo "callgrind $mode: ${now[$mode]} instructions/publish (baseline $base, ratio ${verdict})"
  [[ "$verdict" == *FAIL ]] && status=1
done
report_floors
exit $status
