#!/usr/bin/env python3
"""Prints criterion's latest results as Markdown ratio tables.

Each group's rows are divided by the time of the group's baseline (the first
id found in BASELINES that the group has), so a ratio below 1.0 is faster
than the peer. Usage: python3 benches/report.py [target/criterion]
"""
import json
import pathlib
import sys

BASELINES = ["bumpalo", "std_monotonic", "new_delete"]


def main() -> None:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
    groups: dict[str, dict[str, float]] = {}
    for est in sorted(root.glob("**/new/estimates.json")):
        bench = json.loads((est.parent / "benchmark.json").read_text())
        point = json.loads(est.read_text())["median"]["point_estimate"]
        groups.setdefault(bench["group_id"], {})[bench["value_str"] or bench["function_id"]] = point
    for group, rows in groups.items():
        base = next((b for b in BASELINES if b in rows), next(iter(rows)))
        print(f"\n**{group}** (baseline: {base})\n")
        print("| resource | median time | ratio to baseline |")
        print("|---|---:|---:|")
        for name, t in rows.items():
            print(f"| {name} | {fmt(t)} | {t / rows[base]:.2f}x |")


def fmt(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.2f} {unit}"
    return f"{ns:.0f} ns"


if __name__ == "__main__":
    main()
