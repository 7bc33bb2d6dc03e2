#!/usr/bin/env python3
"""mimalloc-bench's programs under memres and its peers, interleaved.

    python3 benches/mimalloc_bench.py [--rounds N] [--only a,b] [--src DIR]
    python3 benches/mimalloc_bench.py --test      # each program once on memres, no timing
    MIMALLOC_BENCH_THREADS=8 python3 benches/mimalloc_bench.py --only larsonN,xmalloc-testN
    python3 benches/mimalloc_bench.py --also before=/tmp/old/libmemres_malloc.so   # a change, same run
    python3 benches/mimalloc_bench.py --real [--rounds 5]   # sort -n, g++ -O2, python3 instead

mimalloc-bench (https://github.com/daanx/mimalloc-bench) is the field's
standard suite of allocator benchmarks. Nothing of it is in this repository:
the script exports `bench/` from a copy you fetched (a clone or a bare git
directory, given by --src or $MIMALLOC_BENCH, default the mirror the
project's tools fetch to) into a build directory outside the repository
(default $TMPDIR/memres-mimalloc-bench), builds the programs with CMake, and
runs each under glibc, memres (libmemres_malloc.so) and the Debian packages
of mimalloc, jemalloc and tcmalloc by LD_PRELOAD. One process per
measurement; the allocators alternate within a round and rounds repeat, so
a noisy neighbour hits them all alike. The programs that run for a fixed time
and report a rate (larson, rptest, xmalloc-test, glibc-thread) are scored by
the relative time they print, as mimalloc-bench's own bench.sh does; the
others by wall time. Peak RSS is the process's maxrss.

Prints, per program, the median time and largest peak RSS of each allocator
as ratios to mimalloc's (and time to glibc's), the spread of memres's time
over rounds, and the geometric means.
"""
import argparse
import math
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIB = pathlib.Path("/usr/lib/x86_64-linux-gnu")
PEERS = {
    "mimalloc": (LIB / "libmimalloc.so.2", "libmimalloc2.0"),
    "jemalloc": (LIB / "libjemalloc.so.2", "libjemalloc2"),
    "tcmalloc": (LIB / "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
}
DEFAULT_SRC = pathlib.Path("/work/.mirror/daanx+mimalloc-bench/repo")
# The N of the N-thread programs: the CPUs, or MIMALLOC_BENCH_THREADS (more
# threads than cores shows how the allocators behave when threads outnumber
# them, a stand-in for a bigger machine's contention).
THREADS = int(os.environ.get("MIMALLOC_BENCH_THREADS", os.cpu_count() or 2))


def rate(pattern, scale=None):
    """A scorer for programs that report a rate: returns the relative time."""

    def score(out):
        m = re.search(pattern, out)
        if not m:
            return None
        v = float(m.group(1))
        return scale / v if scale else v

    return score


# name: (program, arguments, stdin file (relative to bench/), scorer or None for wall time)
PROGRAMS = {
    "cfrac": ("cfrac", ["17545186520507317056371138836327483792789528"], None, None),
    "espresso": ("espresso", ["{bench}/espresso/largest.espresso"], None, None),
    "barnes": ("barnes", [], "barnes/input", None),
    "glibc-simple": ("glibc-simple", [], None, None),
    "glibc-thread": ("glibc-thread", [str(THREADS)], None, rate(r"^([0-9.]+)", 1e9)),
    "malloc-large": ("malloc-large", [], None, None),
    "alloc-test1": ("alloc-test", ["1"], None, None),
    "alloc-testN": ("alloc-test", [str(THREADS)], None, None),
    "cache-scratch1": ("cache-scratch", ["1", "1000", "1", "2000000", str(THREADS)], None, None),
    "cache-scratchN": ("cache-scratch", [str(THREADS), "1000", "1", "2000000", str(THREADS)], None, None),
    "cache-thrash1": ("cache-thrash", ["1", "1000", "1", "2000000", str(THREADS)], None, None),
    "cache-thrashN": ("cache-thrash", [str(THREADS), "1000", "1", "2000000", str(THREADS)], None, None),
    "larsonN": ("larson", ["5", "8", "1000", "5000", "100", "4141", str(THREADS)], None, rate(r"relative time: ([0-9.]+)s")),
    "larsonN-sized": ("larson-sized", ["5", "8", "1000", "5000", "100", "4141", str(THREADS)], None, rate(r"relative time: ([0-9.]+)s")),
    "xmalloc-testN": ("xmalloc-test", ["-w", str(THREADS), "-t", "5", "-s", "64"], None, rate(r"rtime: ([0-9.]+)")),
    "mstressN": ("mstress", [str(THREADS), "50", "25"], None, None),
    "rptestN": ("rptest", [str(THREADS), "0", "1", "2", "500", "1000", "100", "8", "16000"], None, rate(r"\.\.\.([0-9]+) memory ops", 2e6)),
    "mleak10": ("mleak", ["5"], None, None),
    "mleak100": ("mleak", ["50"], None, None),
}


def sh(cmd, **kw):
    """Runs `cmd` quietly (mimalloc-bench's sources warn a lot); shows its
    output only if it fails."""
    done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if done.returncode != 0:
        sys.stderr.write(done.stdout.decode(errors="replace"))
        sys.exit(f"mimalloc_bench.py: {' '.join(map(str, cmd))} failed ({done.returncode})")


def export_sources(src, build):
    """Copies mimalloc-bench's bench/ into build/bench (fresh each time)."""
    dest = build / "bench"
    if dest.exists():
        shutil.rmtree(dest)
    build.mkdir(parents=True, exist_ok=True)
    if (src / "bench" / "CMakeLists.txt").exists():
        shutil.copytree(src / "bench", dest)
        return
    git_dir = src if (src / "HEAD").exists() else src / ".git"
    archive = subprocess.run(["git", f"--git-dir={git_dir}", "archive", "HEAD", "bench"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(build)], input=archive, check=True)


def drop_missing_programs(bench):
    """mimalloc-bench downloads shbench's sources in its own build script, so
    a plain copy lacks them: drop those targets from the copy's CMakeLists."""
    cmake = bench / "CMakeLists.txt"
    if not (bench / "shbench" / "sh6bench-new.c").exists():
        lines = cmake.read_text().splitlines(keepends=True)
        cmake.write_text("".join(l for l in lines if "sh6bench" not in l and "sh8bench" not in l))


# Linux carries a process's peak RSS across fork and exec, so a program
# started straight from Python would report at least Python's own. A small
# launcher of ours in between starts it from a process of a few hundred KiB.
LAUNCHER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
  (void)argc;
  /* argv[1]: the library to preload in the program only ("" for none) */
  pid_t pid = fork();
  if (pid == 0) {
    if (argv[1][0]) setenv("LD_PRELOAD", argv[1], 1);
    execv(argv[2], argv + 2);
    _exit(127);
  }
  int status; struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) return 126;
  fprintf(stderr, "launcher maxrss %ld minflt %ld\n", ru.ru_maxrss, ru.ru_minflt);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
"""


def build_launcher(build):
    """Builds the launcher as build/launcher, where `run_argv` finds it."""
    build.mkdir(parents=True, exist_ok=True)
    (build / "launcher.c").write_text(LAUNCHER)
    sh(["cc", "-O2", "-o", str(build / "launcher"), str(build / "launcher.c")])


def build_programs(build, names):
    out = build / "out"
    build_launcher(build)
    sh(["cmake", "-S", str(build / "bench"), "-B", str(out), "-DCMAKE_BUILD_TYPE=Release", "-Wno-dev"])
    targets = sorted({PROGRAMS[n][0] for n in names})
    sh(["cmake", "--build", str(out), "-j", str(os.cpu_count() or 2), "--target", *targets])
    return out


def run_argv(build, argv, cwd, stdin, preload, what, extra_env=None):
    """Runs argv through build/launcher with `preload` (None: glibc);
    returns the wall time, the output, the peak RSS in KiB and the minor
    faults."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(extra_env or {})
    launcher = [str(build / "launcher"), str(preload or "")]
    with tempfile.TemporaryFile() as output, open(stdin or os.devnull, "rb") as inp:
        start = time.perf_counter()
        code = subprocess.run(launcher + argv, cwd=cwd, env=env, stdin=inp, stdout=output, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - start
        output.seek(0)
        text = output.read().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"{what} under {preload or 'glibc'} exited with {code}:\n{text[-2000:]}")
    kib, faults = map(int, re.findall(r"launcher maxrss (\d+) minflt (\d+)", text)[-1])
    return wall, text, kib, faults


def run_once(out, bench, name, preload, extra_env=None):
    prog, args, stdin, score = PROGRAMS[name]
    argv = [str(out / prog)] + [a.format(bench=bench) for a in args]
    wall, text, kib, _ = run_argv(out.parent, argv, out, bench / stdin if stdin else None, preload, name, extra_env)
    t = score(text) if score else wall
    if t is None:
        raise RuntimeError(f"{name} under {preload or 'glibc'}: no rate in its output:\n{text[-2000:]}")
    return t, kib


# Real programs, the first impression of a drop-in allocator (issue 15):
# name: (argv, needs). Inputs are generated into the build directory, seeded.
REAL = {
    "sort -n": (["sort", "-n", "-o", "/dev/null", "numbers.txt"], "sort"),
    "g++ -O2": (["g++", "-O2", "-std=c++17", "-c", "unit.cpp", "-o", "/dev/null"], "g++"),
    "python3 json": (["python3", "work.py"], "python3"),
}

PYTHON_WORK = """
import json, random
random.seed(7)
rows = [{"id": i, "name": "user%d" % i, "tags": ["t%d" % (i % 13), "u%d" % (i % 7)],
         "score": random.random()} for i in range(200000)]
text = json.dumps(rows)
back = json.loads(text)
back.sort(key=lambda r: (r["score"], r["name"]))
assert len(back) == len(rows)
print(len(text))
"""


def cpp_unit(lines=1000):
    """About `lines` lines of C++ over the standard library's strings,
    vectors, maps and streams, so the compiler allocates as it does on
    everyday code (a couple of seconds at -O2)."""
    out = [
        "#include <algorithm>", "#include <map>", "#include <sstream>", "#include <string>", "#include <vector>",
        "struct Item { std::string name; std::vector<int> values; std::map<std::string, double> attrs; };",
        "static std::string describe(const Item& it) {",
        "  std::ostringstream os;",
        "  os << it.name << ':' << it.values.size();",
        "  for (auto& [k, v] : it.attrs) os << ' ' << k << '=' << v;",
        "  return os.str();",
        "}",
        "",
    ]
    i = 0
    while len(out) < lines - 3:
        out += [
            f"int work{i}(int n) {{",
            "  std::vector<Item> items(n);",
            "  for (int k = 0; k < n; ++k) {",
            f"    items[k].name = \"item{i}_\" + std::to_string(k * {i + 3});",
            f"    items[k].values.assign(k % {i % 13 + 2}, k);",
            f"    items[k].attrs[items[k].name] = k * {i}.5;",
            "  }",
            "  int total = 0;",
            "  for (auto& it : items) total += int(describe(it).size());",
            "  return total;",
            "}",
        ]
        i += 1
    out.append("int main() { int t = 0;")
    out += [f"  t += work{k}({k + 10});" for k in range(i)]
    out.append("  return t & 1; }")
    return "\n".join(out) + "\n"


def make_real_inputs(work):
    import random
    work.mkdir(parents=True, exist_ok=True)
    rng = random.Random(15)
    (work / "numbers.txt").write_text("".join(f"{rng.randrange(10**12)}\n" for _ in range(2_000_000)))
    (work / "unit.cpp").write_text(cpp_unit())
    (work / "work.py").write_text(PYTHON_WORK)


def run_real(opts, build, allocs, envs):
    """The real programs under each allocator, interleaved; every round's
    time against glibc's in the same round (the bar is "never slower than
    glibc in any run"), the spread, and the minor faults."""
    work = build / "real"
    make_real_inputs(work)
    # A control: glibc run a second time in each round. Its worst round
    # against glibc's is what the machine's noise alone does to the same
    # code, the floor under which "slower than glibc in a run" means nothing.
    allocs = {"glibc": None, "glibc again": None, **{a: p for a, p in allocs.items() if a != "glibc"}}
    progs = {}
    for name, (argv, needs) in REAL.items():
        path = shutil.which(needs)
        if path:
            progs[name] = [path] + argv[1:]
        else:
            print(f"skipped: {name} ({needs} is not installed)")
    if not progs:
        sys.exit("mimalloc_bench.py --real: none of sort, g++, python3 is installed")
    times, faults, rss = {}, {}, {}
    for rnd in range(opts.rounds):
        for n, argv in progs.items():
            for a, pre in allocs.items():
                wall, _, kib, flt = run_argv(build, argv, work, None, pre, n, envs.get(a))
                times.setdefault((n, a), []).append(wall)
                faults.setdefault((n, a), []).append(flt)
                rss.setdefault((n, a), []).append(kib)
        print(f"round {rnd + 1}/{opts.rounds} done", file=sys.stderr)
    others = [a for a in allocs if a != "glibc"]
    print(f"\nReal programs, {opts.rounds} interleaved rounds: median time as a ratio to glibc's; for memres also"
          " its worst round against glibc's time in the same round, its fastest and slowest run, and the"
          " median minor faults and peak RSS.\n")
    print("| program | glibc median | " + " | ".join(f"{a} / glibc" for a in others)
          + " | memres worst round / glibc | glibc again worst round / glibc | memres runs | glibc runs"
          " | faults memres / glibc | RSS memres / glibc |")
    print("|---|---:|" + "---:|" * len(others) + "---:|---:|---:|---:|---:|---:|")
    for n in progs:
        g = times[n, "glibc"]
        gm = statistics.median(g)
        cells = [f"{statistics.median(times[n, a]) / gm:.2f}" for a in others]
        m = times[n, "memres"]
        worst = max(x / y for x, y in zip(m, g))
        control = max(x / y for x, y in zip(times[n, "glibc again"], g))
        fm, fg = statistics.median(faults[n, "memres"]), statistics.median(faults[n, "glibc"])
        rm, rg = max(rss[n, "memres"]), max(rss[n, "glibc"])
        print(f"| {n} | {gm:.3f} s | " + " | ".join(cells) + f" | {worst:.2f} | {control:.2f} | {min(m):.3f}–{max(m):.3f} s"
              f" | {min(g):.3f}–{max(g):.3f} s | {fm:.0f} / {fg:.0f} | {rm / rg:.2f} |")


def geomean(xs):
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="comma-separated program names (default: all)")
    ap.add_argument("--src", default=os.environ.get("MIMALLOC_BENCH", str(DEFAULT_SRC)))
    ap.add_argument("--build", default=str(pathlib.Path(tempfile.gettempdir()) / "memres-mimalloc-bench"))
    ap.add_argument("--test", action="store_true", help="each program once under memres, checking it runs")
    ap.add_argument("--secure", action="store_true", help="also run memres in secure mode (MEMRES_SECURE=1)")
    ap.add_argument("--real", action="store_true", help="time real programs (sort -n, g++, python3) instead")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=LIB",
                    help="another allocator library to run in the same rounds (e.g. an earlier memres build)")
    opts = ap.parse_args()
    if opts.test and opts.real:
        sys.exit("mimalloc_bench.py: --test checks mimalloc-bench's programs; --real times the real ones")
    names = opts.only.split(",") if opts.only else list(PROGRAMS)
    for n in names:
        if n not in PROGRAMS:
            sys.exit(f"mimalloc_bench.py: unknown program {n!r}; known: {', '.join(PROGRAMS)}")
    build = pathlib.Path(opts.build)
    if build.resolve().is_relative_to(ROOT):
        sys.exit("mimalloc_bench.py: the build directory must be outside the repository")
    if not opts.real:
        src = pathlib.Path(opts.src)
        if not src.exists():
            sys.exit(
                f"mimalloc_bench.py: no mimalloc-bench copy at {src}.\n"
                "  Get one outside this repository, e.g.\n"
                "    git clone --depth 1 https://github.com/daanx/mimalloc-bench ~/mimalloc-bench\n"
                "  and pass --src ~/mimalloc-bench (or set MIMALLOC_BENCH)."
            )
        export_sources(src, build)
        drop_missing_programs(build / "bench")
        out = build_programs(build, names)
        bench = build / "bench"
    else:
        build_launcher(build)
    sh(["cargo", "build", "--release", "-q", "-p", "memres-malloc"], cwd=ROOT)
    memres = ROOT / "target" / "release" / "libmemres_malloc.so"

    secure = {"MEMRES_SECURE": "1"}
    if opts.test:
        for n in names:
            for mode, env in [("", None), (" secure", secure)] if opts.secure else [("", None)]:
                t, kib = run_once(out, bench, n, memres, env)
                print(f"mimalloc_bench.py --test: {n}{mode} ok ({t:.2f}, {kib / 1024:.1f} MiB)")
        return

    allocs = {"glibc": None, "memres": memres}
    envs = {}
    if opts.secure:
        allocs["memres-secure"] = memres
        envs["memres-secure"] = secure
    for also in opts.also:
        name, _, lib = also.partition("=")
        if not name or not pathlib.Path(lib).is_file():
            sys.exit(f"mimalloc_bench.py: --also {also!r}: expected NAME=LIB with an existing library")
        allocs[name] = pathlib.Path(lib)
    for peer, (path, pkg) in PEERS.items():
        if path.exists():
            allocs[peer] = path
        else:
            print(f"skipped: {peer} (install the Debian package {pkg})")
    if opts.real:
        run_real(opts, build, allocs, envs)
        return
    times, rss = {}, {}
    for rnd in range(opts.rounds):
        for n in names:
            for a, pre in allocs.items():
                t, kib = run_once(out, bench, n, pre, envs.get(a))
                times.setdefault((n, a), []).append(t)
                rss.setdefault((n, a), []).append(kib)
        print(f"round {rnd + 1}/{opts.rounds} done", file=sys.stderr)

    base = "mimalloc" if "mimalloc" in allocs else "glibc"
    peers = [a for a in allocs if a != base]
    med = {k: statistics.median(v) for k, v in times.items()}
    peak = {k: max(v) for k, v in rss.items()}
    print(f"\nTime and peak RSS as ratios to {base}'s (median of {opts.rounds} rounds; lower is better; N = {THREADS}).\n")
    print("| program | " + " | ".join(f"{a} time" for a in peers) + " | memres / glibc | memres spread | "
          + " | ".join(f"{a} RSS" for a in peers) + " |")
    print("|---|" + "---:|" * (2 * len(peers) + 2))
    ratios = {a: [] for a in peers}
    rss_ratios = {a: [] for a in peers}
    vs_glibc = []
    for n in names:
        b, rb = med[n, base], peak[n, base]
        cells = []
        for a in peers:
            ratios[a].append(med[n, a] / b)
            cells.append(f"{med[n, a] / b:.2f}")
        vs_glibc.append(med[n, "memres"] / med[n, "glibc"])
        ts = times[n, "memres"]
        spread = f"{min(ts) / b:.2f}–{max(ts) / b:.2f}"
        rcells = []
        for a in peers:
            rss_ratios[a].append(peak[n, a] / rb)
            rcells.append(f"{peak[n, a] / rb:.2f}")
        print(f"| {n} | " + " | ".join(cells) + f" | {vs_glibc[-1]:.2f} | {spread} | " + " | ".join(rcells) + " |")
    print("| **geometric mean** | " + " | ".join(f"**{geomean(ratios[a]):.2f}**" for a in peers)
          + f" | **{geomean(vs_glibc):.2f}** | | " + " | ".join(f"**{geomean(rss_ratios[a]):.2f}**" for a in peers) + " |")
    print(f"\n{base}'s medians: " + ", ".join(f"{n} {med[n, base]:.3f}s/{peak[n, base] / 1024:.0f}MiB" for n in names))


if __name__ == "__main__":
    main()
