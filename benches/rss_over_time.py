#!/usr/bin/env python3
"""Resident memory over time of mimalloc-bench programs under each allocator.

    python3 benches/rss_over_time.py [--only a,b] [--every SECONDS]

Runs each program (names as in benches/mimalloc_bench.py; default cfrac,
larsonN and alloc-test1) once under glibc, memres and the peers that are
installed, one after another, reading the program's VmRSS from
/proc/PID/status every --every seconds (default 0.02), and writes
benches/charts/rss-PROGRAM.csv (`series,seconds,mib`) for benches/plots.sh
to draw. The programs must be built already: run
`python3 benches/mimalloc_bench.py --test` first (it builds them outside
the repository).
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import mimalloc_bench as mb  # noqa: E402  (the programs, peers and paths)


def rss_mib(pid):
    """The process's resident set now, in MiB (None once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def sample(out, bench, name, preload, every):
    prog, args, stdin, _ = mb.PROGRAMS[name]
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = str(preload)
    argv = [str(out / prog)] + [a.format(bench=bench) for a in args]
    points = []
    with open(bench / stdin if stdin else os.devnull, "rb") as inp:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=out, env=env, stdin=inp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None:
            mib = rss_mib(proc.pid)
            if mib is not None:
                points.append((time.perf_counter() - start, mib))
            time.sleep(every)
    if proc.returncode != 0:
        sys.exit(f"rss_over_time.py: {name} under {preload or 'glibc'} exited with {proc.returncode}")
    return points


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="cfrac,larsonN,alloc-test1")
    ap.add_argument("--every", type=float, default=0.02)
    ap.add_argument("--build", default=str(pathlib.Path(tempfile.gettempdir()) / "memres-mimalloc-bench"))
    opts = ap.parse_args()
    build = pathlib.Path(opts.build)
    out, bench = build / "out", build / "bench"
    names = opts.only.split(",")
    for n in names:
        if n not in mb.PROGRAMS:
            sys.exit(f"rss_over_time.py: unknown program {n!r}; known: {', '.join(mb.PROGRAMS)}")
        if not (out / mb.PROGRAMS[n][0]).exists():
            sys.exit(f"rss_over_time.py: {out / mb.PROGRAMS[n][0]} is not built; run "
                     "python3 benches/mimalloc_bench.py --test first")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "memres-malloc"], cwd=mb.ROOT, check=True)
    allocs = {"glibc": None, "memres": mb.ROOT / "target" / "release" / "libmemres_malloc.so"}
    for peer, (path, pkg) in mb.PEERS.items():
        if path.exists():
            allocs[peer] = path
        else:
            print(f"skipped: {peer} (install the Debian package {pkg})")
    charts = mb.ROOT / "benches" / "charts"
    charts.mkdir(exist_ok=True)
    for n in names:
        lines = ["series,seconds,mib"]
        for a, pre in allocs.items():
            points = sample(out, bench, n, pre, opts.every)
            lines += [f"{a},{t:.3f},{mib:.2f}" for t, mib in points]
            peak = max((m for _, m in points), default=0)
            print(f"{n} {a}: {len(points)} samples, peak {peak:.1f} MiB", file=sys.stderr)
        (charts / f"rss-{n}.csv").write_text("\n".join(lines) + "\n")
        print(f"wrote {charts / f'rss-{n}.csv'}")


if __name__ == "__main__":
    main()
