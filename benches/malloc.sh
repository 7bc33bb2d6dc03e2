#!/usr/bin/env bash
# Classic allocator benchmarks (benches/malloc/bench.c: small-object churn,
# producer/consumer threads, larson-style server, big-block loop) as one C
# program run under each process allocator by LD_PRELOAD: glibc, memres
# (libmemres_malloc.so), and mimalloc, jemalloc and tcmalloc where their
# Debian packages are installed (installed here if missing and possible).
# One process per measurement, interleaved over rounds; prints median time
# and peak RSS as ratios to glibc's.
#
#   bash benches/malloc.sh [rounds]      # default 3
#   bash benches/malloc.sh --test        # each workload once on glibc and memres, no timing
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
if [[ $rounds == --test ]]; then
  cargo build --release -q -p memres-malloc
  cc -O2 -pthread -o target/malloc-bench benches/malloc/bench.c
  for work in churn prodcons larson bigblocks; do
    plain=$(target/malloc-bench "$work" 1)
    ours=$(LD_PRELOAD=$PWD/target/release/libmemres_malloc.so target/malloc-bench "$work" 1)
    # The checksums (third field) must agree.
    [[ ${plain##* } == "${ours##* }" ]] || { echo "malloc.sh: $work: glibc gave '$plain', memres '$ours'" >&2; exit 1; }
    echo "malloc.sh --test: $work ok"
  done
  exit 0
fi
source benches/peers.sh
cargo build --release -q -p memres-malloc
memres=$PWD/target/release/libmemres_malloc.so
bin=target/malloc-bench
cc -O2 -pthread -o "$bin" benches/malloc/bench.c

configs=("glibc|" "memres|$memres")
for peer in mimalloc jemalloc tcmalloc; do
  if [[ -e ${!peer} ]]; then configs+=("$peer|${!peer}"); else echo "skipped: $peer (its Debian package is not installed)"; fi
done

out=$(mktemp)
for ((round = 1; round <= rounds; round++)); do
  for work in churn prodcons larson bigblocks; do
    for config in "${configs[@]}"; do
      IFS='|' read -r name preload <<<"$config"
      echo "$work|$name|$(LD_PRELOAD=$preload "$bin" "$work" 5)" >>"$out"
    done
  done
done
python3 benches/ratio_table.py "$out" glibc
rm -f "$out"
