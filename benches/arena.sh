#!/usr/bin/env bash
# The arena against bumpalo: each Rust arena workload (RUST_WORKLOADS in
# benches/workloads/src/lib.rs, through allocator-api2, the arena reset
# between iterations as between requests) on memres::Monotonic (as &Monotonic
# and as Monotonic::forgetting, which takes nothing back before reset), on
# bumpalo::Bump, on the global allocator and on the floor (the least a sound
# arena can do: memres_workloads::floor), one process per run, rounds
# interleaved; ratios to bumpalo. With --instructions, also the instructions
# each executes per iteration of the workload (callgrind: stable where times
# are noisy; a run of 11 iterations minus a run of 1, over 10).
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
    for arena in bumpalo memres memres-forgetting memres-profiled global floor; do
      echo "$work|$arena|$("$bin" "$work" "$arena" 50)" >>"$out"
    done
  done
done
python3 benches/ratio_table.py "$out" bumpalo
rm -f "$out"
if $instructions; then
  need_valgrind arena.sh
  echo
  echo "| workload | instructions per iteration, bumpalo | memres | memres forgetting | floor | memres / bumpalo | forgetting / bumpalo | floor / bumpalo | memres profiled (512 KiB) / memres |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  per_iteration() { # workload arena: instructions of one iteration
    local one eleven
    one=$(instructions_of "$bin" "$1" "$2" 1)
    eleven=$(instructions_of "$bin" "$1" "$2" 11)
    echo $(((eleven - one) / 10))
  }
  for work in $works; do
    b=$(per_iteration "$work" bumpalo)
    m=$(per_iteration "$work" memres)
    k=$(per_iteration "$work" memres-forgetting)
    f=$(per_iteration "$work" floor)
    p=$(per_iteration "$work" memres-profiled)
    python3 -c "print(f'| $work | {$b:,} | {$m:,} | {$k:,} | {$f:,} | {$m / $b:.3f} | {$k / $b:.3f} | {$f / $b:.3f} | {$p / $m:.4f} |')"
  done
fi
