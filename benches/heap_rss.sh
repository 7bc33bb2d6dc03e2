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
python3 - "$out" <<'PY'
import sys, statistics, collections
times, rss, order = collections.defaultdict(list), collections.defaultdict(list), []
for line in open(sys.argv[1]):
    work, alloc, result = line.rstrip("\n").split("|")
    ns, kib = map(int, result.split())
    if (work, alloc) not in times:
        order.append((work, alloc))
    times[work, alloc].append(ns)
    rss[work, alloc].append(kib)
print("| workload | allocator | median | time vs mimalloc | peak RSS | RSS vs mimalloc |")
print("|---|---|---:|---:|---:|---:|")
for work, alloc in order:
    t, base = statistics.median(times[work, alloc]), statistics.median(times[work, "mimalloc"])
    r, rbase = max(rss[work, alloc]), max(rss[work, "mimalloc"])
    print(f"| {work} | {alloc} | {t / 1e6:.2f} ms | {t / base:.2f}x | {r / 1024:.1f} MiB | {r / rbase:.2f}x |")
PY
rm -f "$out"
