#!/usr/bin/env bash
# What the heap's default-on misuse checks cost: the heap workloads on
# memres::Heap as built (checks on), on the same code with the checks
# compiled out (feature unchecked-heap, a second build in
# target/unchecked-heap), in secure mode (MEMRES_SECURE=1, same build), and
# on mimalloc, one process per run, rounds interleaved; ratios to the
# unchecked build; then the same runs as ratios to mimalloc, beside
# mimalloc's own secure mode (its crate's feature `secure`: encoded free
# lists, double-free and invalid-pointer checks, randomised order, guard
# pages; a third build in target/mimalloc-secure), which is what the
# fastest peer pays for checks of this kind. With --instructions, also the
# instructions each build executes for one iteration of each workload
# (callgrind: stable where times are noisy).
#
#   bash benches/hardening.sh [rounds] [--instructions]     # default 5 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/side_by_side.sh
side_by_side_args "$@"
cargo build --release -q -p memres-workloads --example heap_workload
cargo build --release -q -p memres-workloads --example heap_workload --features memres/unchecked-heap \
  --target-dir target/unchecked-heap
cargo build --release -q -p memres-workloads --example heap_workload --features mimalloc/secure \
  --target-dir target/mimalloc-secure
checked=target/release/examples/heap_workload
unchecked=target/unchecked-heap/release/examples/heap_workload
mimalloc_secure=target/mimalloc-secure/release/examples/heap_workload
works="churn vec_growth producer_consumer larson cache_scratch"
out=$(mktemp)
for ((round = 1; round <= rounds; round++)); do
  for work in $works; do
    echo "$work|unchecked|$("$unchecked" "$work" memres 9)" >>"$out"
    echo "$work|checked|$("$checked" "$work" memres 9)" >>"$out"
    echo "$work|secure|$(MEMRES_SECURE=1 "$checked" "$work" memres 9)" >>"$out"
    echo "$work|mimalloc|$("$checked" "$work" mimalloc 9)" >>"$out"
    echo "$work|mimalloc-secure|$("$mimalloc_secure" "$work" mimalloc 9)" >>"$out"
  done
done
python3 benches/ratio_table.py "$out" unchecked
echo
python3 benches/ratio_table.py "$out" mimalloc
rm -f "$out"
if $instructions; then
  need_valgrind hardening.sh
  echo
  echo "| workload | instructions, unchecked | checked | checked / unchecked | secure / unchecked |"
  echo "|---|---:|---:|---:|---:|"
  for work in $works; do
    u=$(instructions_of "$unchecked" "$work" memres 1)
    c=$(instructions_of "$checked" "$work" memres 1)
    s=$(MEMRES_SECURE=1 instructions_of "$checked" "$work" memres 1)
    python3 -c "print(f'| $work | {$u:,} | {$c:,} | {$c / $u:.3f} | {$s / $u:.3f} |')"
  done
fi
