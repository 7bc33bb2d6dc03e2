#!/usr/bin/env bash
# Draws BENCHMARKS.md's main tables, and the RSS samples of
# benches/rss_over_time.py, as SVG charts in benches/charts/ (memres-plots,
# benches/plots). The charts are drawn from the committed tables, so CI
# redraws them and fails if they no longer match (`--check`).
#
#   bash benches/plots.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p memres-plots
plot=target/release/memres-plots
out=benches/charts
mkdir -p "$out"

"$plot" bars BENCHMARKS.md --section "mimalloc-bench with every check on" --label program \
  --values "memres time,tcmalloc time,jemalloc time,glibc time" \
  --title "mimalloc-bench: time as a ratio to mimalloc's (every check on)" --out "$out/mimalloc-bench-time.svg"
"$plot" bars BENCHMARKS.md --section "mimalloc-bench with every check on" --label program \
  --values "memres RSS,tcmalloc RSS,jemalloc RSS,glibc RSS" \
  --title "mimalloc-bench: peak RSS as a ratio to mimalloc's" --out "$out/mimalloc-bench-rss.svg"
"$plot" bars BENCHMARKS.md --section "The arena against bumpalo" --label workload \
  --series allocator --value "time vs bumpalo" \
  --title "Rust arena workloads: time as a ratio to bumpalo's" --out "$out/arena-vs-bumpalo.svg"
"$plot" bars BENCHMARKS.md --section "The arena against bumpalo" --table 4 --label workload \
  --series allocator --value "time vs unchecked" \
  --title "The heap in Rust: time as a ratio to memres without checks" --out "$out/heap-checks.svg"
for csv in "$out"/rss-*.csv; do
  [ -e "$csv" ] || continue
  name=$(basename "$csv" .csv)
  "$plot" lines "$csv" --title "Resident memory over time: ${name#rss-}" --out "$out/$name.svg"
done

if [ "${1:-}" = "--check" ]; then
  if ! git diff --quiet -- "$out" || [ -n "$(git ls-files --others --exclude-standard -- "$out")" ]; then
    git status --short -- "$out"
    echo "plots.sh: the charts in $out do not match BENCHMARKS.md; run bash benches/plots.sh and commit them" >&2
    exit 1
  fi
  echo "plots.sh: the charts match BENCHMARKS.md"
fi
