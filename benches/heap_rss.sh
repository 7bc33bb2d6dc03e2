#!/usr/bin/env bash
# The heap workloads, one process per allocator (memres::Heap, mimalloc,
# jemalloc, glibc), interleaved over rounds: median time as a ratio to
# mimalloc's, and each process's peak RSS as a ratio to mimalloc's.
#
#   bash benches/heap_rss.sh [rounds]      # default 3
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
cargo build --release -q -p memres-workloads --example heap_workload
bin=target/release/examples/heap_workload
out=$(mktemp)
for ((round = 1; round <= rounds; round++)); do
  for work in churn vec_growth producer_consumer larson cache_scratch big_blocks; do
    for alloc in memres mimalloc jemalloc glibc; do
      echo "$work|$alloc|$("$bin" "$work" "$alloc" 9)" >>"$out"
    done
  done
done
python3 benches/ratio_table.py "$out" mimalloc
rm -f "$out"
