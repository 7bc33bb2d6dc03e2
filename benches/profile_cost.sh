#!/usr/bin/env bash
# What the sampling profiler costs the heap: the heap workloads with the
# profiler off, on at its default interval with the default stack walk (the
# platform unwinder), and, in a second build that keeps frame pointers
# (target/frame-pointers), off and on with the frame-pointer walk; one process
# per run, rounds interleaved, times as ratios to "off". With
# --instructions, also the instructions of one iteration of each workload
# (callgrind, N = 11 minus N = 1 over 10: start-up cancels).
#
#   bash benches/profile_cost.sh [rounds] [--instructions]     # default 5 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/side_by_side.sh
side_by_side_args "$@"
cargo build --release -q -p memres-workloads --example heap_workload
RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release -q -p memres-workloads --example heap_workload \
  --target-dir target/frame-pointers
default=target/release/examples/heap_workload
fp=target/frame-pointers/release/examples/heap_workload
runs=("off|$default memres" "on|$default memres-profiled" "fp-off|$fp memres" "fp-on|$fp memres-profiled-fp")
works="churn vec_growth producer_consumer larson cache_scratch"
out=$(mktemp)
for ((round = 1; round <= rounds; round++)); do
  for work in $works; do
    for run in "${runs[@]}"; do
      read -r bin allocator <<<"${run#*|}"
      echo "$work|${run%%|*}|$("$bin" "$work" "$allocator" 9)" >>"$out"
    done
  done
done
python3 benches/ratio_table.py "$out" off
rm -f "$out"
if $instructions; then
  need_valgrind "${0##*/}"
  echo
  echo "| workload | run | instructions per iteration |"
  echo "|---|---|---:|"
  for work in $works; do
    for run in "${runs[@]}"; do
      read -r bin allocator <<<"${run#*|}"
      one=$(instructions_of "$bin" "$work" "$allocator" 1)
      eleven=$(instructions_of "$bin" "$work" "$allocator" 11)
      echo "| $work | ${run%%|*} | $(( (eleven - one) / 10 )) |"
    done
  done
fi
