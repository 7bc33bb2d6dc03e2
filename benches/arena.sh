#!/usr/bin/env bash
# The arena against bumpalo: each Rust arena workload (RUST_WORKLOADS in
# benches/workloads/src/lib.rs, through allocator-api2, the arena reset
# between iterations as between requests) on memres::Monotonic, on
# bumpalo::Bump and on the global allocator, one process per run, rounds
# interleaved; ratios to bumpalo. With --instructions, also the instructions
# each executes for the workload (callgrind: stable where times are noisy;
# two warm-up iterations and one timed).
#
#   bash benches/arena.sh [rounds] [--instructions]     # default 5 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/side_by_side.sh
side_by_side_args "$@"
cargo build --release -q -p memres-workloads --example arena_workload
bin=target/release/examples/arena_workload
works="small_objects_10k vec_growth_100k vec_push_100x1k request_1k"
out=$(mktemp)
for ((round = 1; round <= rounds; round++)); do
  for work in $works; do
    for arena in bumpalo memres memres-profiled global; do
      echo "$work|$arena|$("$bin" "$work" "$arena" 50)" >>"$out"
    done
  done
done
python3 benches/ratio_table.py "$out" bumpalo
rm -f "$out"
if $instructions; then
  need_valgrind arena.sh
  echo
  echo "| workload | instructions, bumpalo | memres | memres / bumpalo | memres profiled (512 KiB) | profiled / memres |"
  echo "|---|---:|---:|---:|---:|---:|"
  for work in $works; do
    b=$(instructions_of "$bin" "$work" bumpalo 1)
    m=$(instructions_of "$bin" "$work" memres 1)
    p=$(instructions_of "$bin" "$work" memres-profiled 1)
    python3 -c "print(f'| $work | {$b:,} | {$m:,} | {$m / $b:.3f} | {$p:,} | {$p / $m:.4f} |')"
  done
fi
