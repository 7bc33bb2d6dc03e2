#!/usr/bin/env bash
# What the sampling profiler costs the heap and the pools: the heap
# workloads (heap_workload) and the pools' (time_workload) with the profiler
# off, on at its default interval with the default stack walk (the unwind
# tables, rules cached), on with the platform unwinder's walk, and, in a second build that keeps frame pointers, Rust's and
# C++'s (target/frame-pointers), off and on with the frame-pointer walk; one
# process per run, rounds interleaved, times as ratios to "off". With
# --instructions, also the instructions of one iteration of each workload
# (callgrind, N = 11 minus N = 1 over 10: start-up cancels).
#
#   bash benches/profile_cost.sh [rounds] [--instructions]     # default 5 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/side_by_side.sh
side_by_side_args "$@"
examples="--example heap_workload --example time_workload"
cargo build --release -q -p memres-workloads $examples
RUSTFLAGS="-C force-frame-pointers=yes" CFLAGS=-fno-omit-frame-pointer CXXFLAGS=-fno-omit-frame-pointer \
  cargo build --release -q -p memres-workloads $examples --target-dir target/frame-pointers
default=target/release/examples
fp=target/frame-pointers/release/examples
# Each run: name, environment, binary directory; each case: binary, workload
# and allocator or resource (heap_workload's profiled allocators start the
# profiler themselves; time_workload reads MEMRES_PROFILE).
runs=("off|X=0|$default" "on|MEMRES_PROFILE=512K|$default"
  "on-unwinder|MEMRES_PROFILE=512K MEMRES_PROFILE_WALK=unwinder|$default" "fp-off|X=0|$fp" "fp-on|MEMRES_PROFILE=512K MEMRES_PROFILE_WALK=fp|$fp")
cases="heap_workload churn memres
heap_workload vec_growth memres
heap_workload producer_consumer memres
heap_workload larson memres
heap_workload cache_scratch memres
time_workload rust_churn_100k memres_unsync_pool
time_workload rust_churn_100k memres_sync_pool
time_workload churn_100k memres_unsync_pool
time_workload churn_100k memres_sync_pool
time_workload list_churn_100k memres_unsync_pool"
# Runs one case under one run with `n` iterations, through `$via` (nothing,
# or instructions_of), in a subshell holding the run's environment.
run_case() {
  local via=$1 run=$2 bin=$3 work=$4 what=$5 n=$6
  local name=${run%%|*} rest=${run#*|}
  local envs=${rest%|*} dir=${rest##*|}
  if [[ $bin == heap_workload ]]; then
    case $name in on | on-unwinder) what=memres-profiled ;; fp-on) what=memres-profiled-fp ;; esac
  fi
  (
    export $envs
    $via "$dir/$bin" "$work" "$what" "$n"
  )
}
out=$(mktemp)
for ((round = 1; round <= rounds; round++)); do
  while read -r bin work what; do
    for run in "${runs[@]}"; do
      echo "$work $what|${run%%|*}|$(run_case "" "$run" "$bin" "$work" "$what" 9 | cut -d' ' -f1,2)" >>"$out"
    done
  done <<<"$cases"
done
python3 benches/ratio_table.py "$out" off
rm -f "$out"
if $instructions; then
  need_valgrind "${0##*/}"
  echo
  echo "| workload | run | instructions per iteration |"
  echo "|---|---|---:|"
  while read -r bin work what; do
    for run in "${runs[@]}"; do
      one=$(run_case instructions_of "$run" "$bin" "$work" "$what" 1)
      eleven=$(run_case instructions_of "$run" "$bin" "$work" "$what" 11)
      echo "| $work $what | ${run%%|*} | $(( (eleven - one) / 10 )) |"
    done
  done <<<"$cases"
fi
