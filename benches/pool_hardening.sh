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
rounds=5
instructions=false
for arg in "$@"; do
  case $arg in
    --instructions) instructions=true ;;
    *) rounds=$arg ;;
  esac
done
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
  if ! command -v valgrind >/dev/null; then
    echo "pool_hardening.sh: --instructions skipped: valgrind is not installed (Debian: apt-get install valgrind)" >&2
    exit 1
  fi
  echo
  echo "| workload | instructions, unchecked | checked | checked / unchecked |"
  echo "|---|---:|---:|---:|"
  while IFS=: read -r work resource peer; do
    count() {
      valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" "$work" "$resource" 1 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
    }
    u=$(count "$unchecked")
    c=$(count "$checked")
    python3 -c "print(f'| $work ${resource#memres_} | {$u:,} | {$c:,} | {$c / $u:.3f} |')"
  done <<<"$cases"
fi
