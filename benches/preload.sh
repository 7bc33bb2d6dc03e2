#!/usr/bin/env bash
# The C++ pool workloads with the process allocator swapped by LD_PRELOAD:
# new_delete_resource() on glibc, mimalloc and tcmalloc (Debian packages
# libmimalloc2.0 and libtcmalloc-minimal4, installed if missing and
# possible), next to memres's pools on glibc. One process per measurement,
# interleaved over rounds; prints median times as ratios to glibc's
# new_delete, each process's peak RSS, and the peak bytes each resource held
# from its upstream (for new_delete: the workload's peak of live bytes).
#
#   bash benches/preload.sh [rounds]      # default 3
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
lib=/usr/lib/x86_64-linux-gnu
mimalloc=$lib/libmimalloc.so.2
tcmalloc=$lib/libtcmalloc_minimal.so.4
if [[ ! -e $mimalloc || ! -e $tcmalloc ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
  apt-get install -y -qq libmimalloc2.0 libtcmalloc-minimal4 >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq libmimalloc2.0 libtcmalloc-minimal4 >/dev/null; }
fi
cargo build --release -q -p memres-workloads --example time_workload
bin=target/release/examples/time_workload

# name | LD_PRELOAD | resource
configs=("glibc new_delete||new_delete")
[[ -e $mimalloc ]] && configs+=("mimalloc new_delete|$mimalloc|new_delete") || echo "skipped: mimalloc (install libmimalloc2.0)"
[[ -e $tcmalloc ]] && configs+=("tcmalloc new_delete|$tcmalloc|new_delete") || echo "skipped: tcmalloc (install libtcmalloc-minimal4)"

out=$(mktemp)
for ((round = 1; round <= rounds; round++)); do
  for work in churn_100k list_churn_100k map_churn_100k churn_2threads_100k producer_consumer_100k; do
    case $work in
      churn_2threads* | producer*) ours=(memres_sync_pool std_sync_pool memres_heap) ;;
      *) ours=(memres_unsync_pool memres_sync_pool std_unsync_pool memres_heap) ;;
    esac
    rows=("${configs[@]}")
    for r in "${ours[@]}"; do rows+=("$r (glibc)||$r"); done
    for row in "${rows[@]}"; do
      IFS='|' read -r name preload resource <<<"$row"
      result=$(LD_PRELOAD=$preload "$bin" "$work" "$resource" 15)
      echo "$work|$name|$result" >>"$out"
    done
  done
done

python3 - "$out" <<'PY'
import sys, statistics, collections
times, rss, held = collections.defaultdict(list), collections.defaultdict(list), {}
order = []
for line in open(sys.argv[1]):
    work, name, result = line.rstrip("\n").split("|")
    ns, kib, peak = result.split()
    ns, kib = int(ns), int(kib)
    held[work, name] = f"{int(peak) / 1024:.0f}" if peak != "-" else "—"  # no upstream of its own
    if (work, name) not in times:
        order.append((work, name))
    times[work, name].append(ns)
    rss[work, name].append(kib)
current = None
for work, name in order:
    if work != current:
        current = work
        base = statistics.median(times[work, "glibc new_delete"])
        print(f"\n{work}\n| resource (process allocator) | time vs glibc new_delete | median ms | peak RSS MiB | peak held from upstream KiB |\n|---|---|---|---|---|")
    t = statistics.median(times[work, name])
    print(f"| {name} | {t / base:.2f}x | {t / 1e6:.2f} | {max(rss[work, name]) / 1024:.1f} | {held[work, name]} |")
PY
rm -f "$out"
