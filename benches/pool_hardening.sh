#!/usr/bin/env bash
# What the pools' default-on misuse checks cost: the pool workloads (the Rust
# pools through `Allocator`, and the C++ pmr workloads, whose inline paths
# make the same checks) on memres as built (checks on) and on the same code
# with the checks compiled out (feature unchecked-pools, a second build in
# target/unchecked-pools), with std's pool of the same kind beside them for
# reference; one process per run, rounds interleaved; ratios to the
# unchecked build. With --instructions, also the instructions each build
# executes for each workload (callgrind: stable where times are noisy).
#
#   bash benches/pool_hardening.sh [rounds] [--instructions]     # default 5 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/side_by_side.sh
side_by_side_args "$@"
cargo build --release -q -p memres-workloads --example time_workload
cargo build --release -q -p memres-workloads --example time_workload --features memres/unchecked-pools \
  --target-dir target/unchecked-pools
checked=target/release/examples/time_workload
unchecked=target/unchecked-pools/release/examples/time_workload
# workload, memres resource, std's resource of the same kind (or -)
cases="rust_churn_100k:memres_unsync_pool:-
rust_churn_100k:memres_sync_pool:-
churn_100k:memres_unsync_pool:std_unsync_pool
churn_100k:memres_sync_pool:std_sync_pool
list_churn_100k:memres_unsync_pool:std_unsync_pool
map_churn_100k:memres_unsync_pool:std_unsync_pool
churn_2threads_100k:memres_sync_pool:std_sync_pool
producer_consumer_100k:memres_sync_pool:std_sync_pool"
out=$(mktemp)
for ((round = 1; round <= rounds; round++)); do
  while IFS=: read -r work resource peer; do
    row="$work ${resource#memres_}"
    echo "$row|unchecked|$("$unchecked" "$work" "$resource" 15)" >>"$out"
    echo "$row|checked|$("$checked" "$work" "$resource" 15)" >>"$out"
    [[ $peer == - ]] || echo "$row|$peer|$("$checked" "$work" "$peer" 15)" >>"$out"
  done <<<"$cases"
done
python3 benches/ratio_table.py "$out" unchecked
rm -f "$out"
if $instructions; then
  need_valgrind pool_hardening.sh
  echo
  echo "| workload | instructions, unchecked | checked | checked / unchecked |"
  echo "|---|---:|---:|---:|"
  while IFS=: read -r work resource peer; do
    u=$(instructions_of "$unchecked" "$work" "$resource" 1)
    c=$(instructions_of "$checked" "$work" "$resource" 1)
    python3 -c "print(f'| $work ${resource#memres_} | {$u:,} | {$c:,} | {$c / $u:.3f} |')"
  done <<<"$cases"
fi
