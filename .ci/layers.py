"""Checks the layer rules of ARCHITECTURE.md against the code: a module may
name only modules of its own layer or below.

- The crate's layers (rust/): core (resource, classes, os, debug, misuse), then
  the resources (monotonic, pool, heap) and the profiler they sample for
  (profile, whose `start` re-arms the calling thread's heap), then foreign
  (what C++ mirrors).
- The heap's layers (rust/heap/), lowest first, as heap/mod.rs states them.

Reads `crate::X` and `super::X` paths (outside comments); exits 1 naming
each module that names one above it.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "rust"
failures = []


def named(path, pattern):
    text = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())
    return set(re.findall(pattern, text))


crate_layer = {"resource": 0, "classes": 0, "os": 0, "debug": 0, "misuse": 0, "monotonic": 1, "pool": 1, "heap": 1, "profile": 1, "foreign": 2}
for path in sorted(root.rglob("*.rs")):
    rel = path.relative_to(root)
    top = rel.parts[0].removesuffix(".rs")
    if top not in crate_layer:
        continue
    for other in named(path, r"crate::([a-z_]+)"):
        if other in crate_layer and other != top and crate_layer[other] > crate_layer[top]:
            failures.append(f"rust/{rel}: names crate::{other}, a higher layer")

heap_order = ["geometry", "counters", "fork", "guard", "segment_map", "guarded", "secure", "limit", "segment", "large", "thread", "stats"]
heap_layer = {name: i for i, name in enumerate(heap_order)}
heap_layer.update({"counters": 0, "fork": 0, "guard": 0, "segment_map": 0, "geometry": 0})
for name in heap_order:
    path = root / "heap" / f"{name}.rs"
    body = path.read_text().split("#[cfg(test)]")[0]
    for other in set(re.findall(r"super::([A-Za-z_]+)", "\n".join(l.split("//")[0] for l in body.splitlines()))):
        if other in heap_layer and other != name and heap_layer[other] > heap_layer[name]:
            failures.append(f"rust/heap/{name}.rs: names super::{other}, a higher layer")
        if other not in heap_layer and other not in {"super"}:
            # `super::Heap`, `super::purge_shared` and the like (types too:
            # `super::Heap::page_emptied` is a call into the top): heap/mod.rs.
            failures.append(f"rust/heap/{name}.rs: names super::{other} (heap/mod.rs, the top layer)")

for f in failures:
    print(f)
if failures:
    sys.exit(1)
print("layers: every module names only its own layer or below")
