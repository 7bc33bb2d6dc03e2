"""Prints a markdown table of allocator runs as ratios to one of them.

    python3 benches/ratio_table.py RESULTS BASELINE

RESULTS holds lines `workload|allocator|<ns> <peak RSS KiB> [anything]`,
one per process run, rounds interleaved; each row gets the median time and
the largest peak RSS of its runs, both also as a ratio to BASELINE's row of
the same workload. Used by benches/heap_rss.sh and benches/malloc.sh.
"""
import collections
import statistics
import sys

results, baseline = sys.argv[1], sys.argv[2]
times, rss, order = collections.defaultdict(list), collections.defaultdict(list), []
for line in open(results):
    work, alloc, result = line.rstrip("\n").split("|")
    ns, kib = map(int, result.split()[:2])
    if (work, alloc) not in times:
        order.append((work, alloc))
    times[work, alloc].append(ns)
    rss[work, alloc].append(kib)
print(f"| workload | allocator | median | time vs {baseline} | peak RSS | RSS vs {baseline} |")
print("|---|---|---:|---:|---:|---:|")
for work, alloc in order:
    t, base = statistics.median(times[work, alloc]), statistics.median(times[work, baseline])
    r, rbase = max(rss[work, alloc]), max(rss[work, baseline])
    print(f"| {work} | {alloc} | {t / 1e6:.2f} ms | {t / base:.2f}x | {r / 1024:.1f} MiB | {r / rbase:.2f}x |")
