//! `libmemres_malloc.so` under `LD_PRELOAD`: the symbols it exports, a C
//! program calling every exported C function with C's edge cases, a C++
//! program calling every `operator new`/`delete` form, the memory limit,
//! and real programs from the machine, whose output must be the same with
//! and without the library.
//!
//! Needs a C and a C++ compiler (`cc`, `c++`); a real program that is not
//! installed is reported as SKIPPED, and fails the test under CI (`CI` set).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, PoisonError};

/// The library, built from the current sources. A test cannot depend on a
/// `cdylib` (cargo builds no such artifact for it), so the first call runs
/// cargo, in a target folder of its own (the outer `cargo test` holds the
/// usual one).
fn library() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
            let target = root.join("target/malloc-test");
            let status = Command::new(option_env!("CARGO").unwrap_or("cargo"))
                .args(["build", "--quiet", "-p", "memres-malloc", "--manifest-path"])
                .arg(root.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .env_remove("RUSTFLAGS")
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building libmemres_malloc.so failed");
            target.join("debug/libmemres_malloc.so")
        })
        .clone()
}

fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

/// Compiles `source` (C or C++ by its extension) into the test's scratch
/// folder, once per test process: tests run in parallel, and one that
/// relinked a program another is running would fail that run (EACCES).
fn compile(source: &str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(out) = built.get(source) {
        return out.clone();
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(source.replace('.', "_"));
    let cpp = source.ends_with(".cpp");
    let compiler = if cpp { "c++" } else { "cc" };
    let mut cmd = Command::new(compiler);
    cmd.arg(programs().join(source))
        .arg("-o")
        .arg(&out)
        .arg("-O1")
        .arg("-Wall")
        .arg("-I")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("include"))
        .arg("-pthread");
    if cpp {
        cmd.arg("-std=c++17");
    } else {
        cmd.arg("-ldl");
    }
    let status = cmd.status().unwrap_or_else(|e| panic!("{compiler} is needed to build {source}: {e}"));
    assert!(status.success(), "{compiler} failed on {source}");
    built.insert(source.to_owned(), out.clone());
    out
}

fn run(program: &Path, args: &[&str], env: &[(&str, &str)], preload: bool) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    if preload {
        cmd.env("LD_PRELOAD", library());
    }
    cmd.output().unwrap_or_else(|e| panic!("{}: {e}", program.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What the library must export: C's allocation API, the twenty C++
/// operators (Itanium names, x86-64), and memres's stats.
const EXPORTS: [&str; 33] = [
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "memres_stats",
    "memres_stats_print",
    "_Znwm",
    "_Znam",
    "_ZnwmRKSt9nothrow_t",
    "_ZnamRKSt9nothrow_t",
    "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvm",
    "_ZdaPvm",
    "_ZdlPvSt11align_val_t",
    "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t",
    "_ZdaPvmSt11align_val_t",
    "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t",
    "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
];

#[test]
fn the_library_exports_the_whole_api() {
    // A missing operator would go unnoticed at run time: libstdc++'s own
    // would serve it, and forward to our malloc/free.
    let Some(nm) = which("nm") else { return };
    let out = Command::new(nm).args(["-D", "--defined-only"]).arg(library()).output().expect("nm runs");
    let listing = text(&out.stdout);
    let exported: std::collections::HashSet<&str> =
        listing.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    let missing: Vec<_> = EXPORTS.iter().filter(|name| !exported.contains(*name)).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
}

#[test]
fn every_c_function_and_edge_case() {
    let out = run(&compile("api_test.c"), &[], &[], true);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "api_test failed: {stderr}");
    assert_eq!(stdout, "api_test: ok\n");
    // The foreign pointers were reported, once per call, and nothing else.
    assert_eq!(stderr.matches("not a block memres allocated").count(), 3, "{stderr}");
    assert!(stderr.contains("free(") && stderr.contains("realloc(") && stderr.contains("malloc_usable_size("));
    assert_eq!(stderr.matches("memres: allocated ").count(), 1, "memres_stats_print's line: {stderr}");
}

#[test]
fn cxx_operators_new_and_delete() {
    let out = run(&compile("new_test.cpp"), &[], &[], true);
    assert!(out.status.success(), "new_test failed: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "new_test: ok\n");
    assert_eq!(text(&out.stderr), "", "nothing reported");
}

#[test]
fn the_hard_limit_makes_malloc_fail_instead_of_the_process() {
    let program = compile("limit_test.c");
    let out = run(&program, &[], &[("MEMRES_HEAP_LIMIT", "64M")], true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fields: Vec<usize> = text(&out.stdout).split_whitespace().map(|f| f.parse().unwrap()).collect();
    let [blocks, enomem, again] = fields[..] else { panic!("unexpected output {:?}", text(&out.stdout)) };
    assert!((48..64).contains(&blocks), "{blocks} MiB under a 64 MiB limit");
    assert_eq!((enomem, again), (1, 1), "malloc failed with ENOMEM, then worked again after frees");
}

#[test]
fn stats_at_exit_with_memres_stats_1() {
    let out = run(&compile("limit_test.c"), &[], &[("MEMRES_STATS", "1"), ("MEMRES_HEAP_LIMIT", "8M")], true);
    let stderr = text(&out.stderr);
    assert!(out.status.success() && stderr.starts_with("memres: allocated "), "{stderr}");
    assert!(stderr.contains("resident") && stderr.contains("mapped"));
}

/// `MEMRES_STATS_EVERY` prints the stats while the program runs, not only
/// at exit: a one-second `sleep` under a 100 ms period prints several lines.
#[test]
fn stats_every_period_while_the_program_runs() {
    let Some(sleep) = which("sleep") else { return };
    let out = run(&sleep, &["1"], &[("MEMRES_STATS_EVERY", "100ms")], true);
    let stderr = text(&out.stderr);
    let lines = stderr.lines().filter(|l| l.starts_with("memres: allocated ")).count();
    assert!(out.status.success(), "{stderr}");
    // About 10 periodic lines and the one at exit (a loaded machine may
    // wake the thread late: fewer); at exit alone it would be one.
    assert!(lines >= 3, "{lines} stats lines:\n{stderr}");
    let out = run(&sleep, &["0"], &[("MEMRES_STATS_EVERY", "soon")], true);
    assert!(text(&out.stderr).contains("MEMRES_STATS_EVERY=soon: not a period"), "{}", text(&out.stderr));
}

#[test]
fn stats_as_json_on_demand_and_at_exit() {
    let out = run(&compile("stats_json.c"), &[], &[("MEMRES_STATS", "json")], true);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let parse = |line: &str| -> serde_json::Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    // On demand, with the program's 1000 live blocks of 48 bytes.
    let live = parse(stdout.trim());
    for key in ["allocated", "active", "resident", "mapped", "retained"] {
        assert!(live[key].as_u64().is_some(), "{key} in {live}");
    }
    assert!(live["allocated"].as_u64() >= Some(48_000), "{live}");
    let classes = live["classes"].as_array().expect("classes is an array");
    let class48 = classes.iter().find(|c| c["size"] == 48).expect("the 48-byte class is in use");
    assert!(class48["live"].as_u64() >= Some(1000), "{class48}");
    // At exit, after the frees: one line of JSON, the last on stderr.
    let last = stderr.lines().last().unwrap_or_default();
    let at_exit = parse(last);
    assert!(at_exit["allocated"].as_u64() < live["allocated"].as_u64(), "{at_exit} after {live}");
    let still48 = at_exit["classes"].as_array().expect("classes").iter().find(|c| c["size"] == 48).cloned();
    assert!(still48.as_ref().is_none_or(|c| c["live"].as_u64() < Some(1000)), "{still48:?}");
}

/// The estimated bytes of the folded lines whose stack names `function`.
fn bytes_of(folded: &str, function: &str) -> f64 {
    folded
        .lines()
        .map(|line| line.rsplit_once(' ').expect("a count"))
        .filter(|(stack, _)| stack.split(';').any(|frame| frame == function))
        .map(|(_, count)| count.parse::<f64>().expect("a number"))
        .sum()
}

/// `MEMRES_PROFILE` profiles a C program's `malloc`: two call sites in a
/// known proportion come out in it (within sampling error), frees leave the
/// live view, `SIGUSR2` and `memres_profile_dump` write the views, and so
/// does the exit; the flame graph names both functions.
#[test]
fn a_c_program_profiled_by_the_environment() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("profile_c_views");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("prof");
    let path_text = path.to_str().unwrap();
    let env = [("MEMRES_PROFILE", "4K"), ("MEMRES_PROFILE_PATH", path_text)];
    let out = run(&compile("profile.c"), &[], &env, true);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("dump after SIGUSR2: written"), "{stdout}");
    let value = |key: &str| -> f64 {
        let line = stdout.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} in {stdout}"));
        line[key.len()..].trim().parse().unwrap()
    };
    let (pid, true_a, true_b) = (value("pid "), value("parse_headers "), value("rank_words "));
    let child = value("child ");
    let read = |file: String| {
        std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "{file}: {e}
{stderr}"
            )
        })
    };

    // The views as memres_profile_dump wrote them: both sites allocated,
    // rank_words' blocks freed since.
    let allocated = read(format!("{path_text}.mid.alloc.folded"));
    let (a, b) = (bytes_of(&allocated, "parse_headers"), bytes_of(&allocated, "rank_words"));
    // About 4.4 MB at one sample per 4 KiB: about 1080 samples; 10% is
    // several standard errors.
    let (share, expected) = (a / (a + b), true_a / (true_a + true_b));
    assert!(
        (share - expected).abs() < 0.1 * expected,
        "parse_headers' share {share:.3} of {expected:.3}:
{allocated}"
    );
    assert!((a + b - true_a - true_b).abs() < 0.1 * (true_a + true_b), "estimate {} of {}", a + b, true_a + true_b);
    let ours = allocated.lines().filter(|l| l.contains("parse_headers") || l.contains("rank_words"));
    for line in ours {
        assert!(line.starts_with("Heap;"), "stacks start with the resource: {line}");
        assert!(!line.contains("memres") && !line.contains(";malloc;"), "memres's frames left out: {line}");
    }
    let live = read(format!("{path_text}.mid.live.folded"));
    assert_eq!(
        bytes_of(&live, "rank_words"),
        0.0,
        "freed blocks leave the live view:
{live}"
    );
    assert!(
        (bytes_of(&live, "parse_headers") - a).abs() < 1e-6 * a,
        "parse_headers' blocks all live:
{live}"
    );
    let peak = read(format!("{path_text}.mid.peak.folded"));
    assert!(
        bytes_of(&peak, "rank_words") > 0.0,
        "the peak held rank_words' blocks:
{peak}"
    );

    // At exit, everything freed: nothing live; the stderr line says where.
    let at_exit = format!("{path_text}.{pid}");
    assert!(read(format!("{at_exit}.alloc.folded")).contains("parse_headers"));
    assert_eq!(bytes_of(&read(format!("{at_exit}.live.folded")), "parse_headers"), 0.0, "all freed at exit");
    assert!(stderr.contains(&format!("{at_exit}.{{alloc,live,peak}}.folded")), "{stderr}");
    // The forked child wrote files of its own at its exit.
    assert!(read(format!("{path_text}.{child}.alloc.folded")).contains("parse_headers"));
    assert_ne!(child, pid);

    // The flame graph of the allocated view names both functions.
    let mut svg = Vec::new();
    let mut options = inferno::flamegraph::Options::default();
    inferno::flamegraph::from_lines(&mut options, allocated.lines(), &mut svg).expect("a flame graph");
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.contains("parse_headers") && svg.contains("rank_words"), "both functions in the flame graph");
}

/// A malformed `MEMRES_PROFILE` is reported, and the program runs as usual.
#[test]
fn a_malformed_profile_interval_is_reported() {
    let out = run(&compile("stats_json.c"), &[], &[("MEMRES_PROFILE", "lots")], true);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("MEMRES_PROFILE=lots: not an interval"), "{}", text(&out.stderr));
}

/// In `MISUSES`: the program may also go on without a report (and must
/// then have handed out no live block).
const SURVIVED: &str = "(survived unreported)";

/// The misuses of `tests/programs/misuse.c`, each with what memres must say
/// about it: any of the listed messages (a double free of a large block is
/// a double free while its mapping is cached, and a pointer memres no
/// longer holds once the mapping is gone).
const MISUSES: &[(&str, &[&str])] = &[
    ("double-free", &["double free"]),
    ("delayed-double-free", &["double free"]),
    ("double-free-thread", &["double free"]),
    ("double-free-across-sizes", &["double free"]),
    ("double-free-large", &["double free"]),
    ("double-free-large-later", &["double free", "not a block memres allocated"]),
    ("double-free-huge", &["double free", "not a block memres allocated"]),
    ("realloc-after-free", &["invalid pointer"]),
    ("write-after-free", &["corrupted free list"]),
    ("overflow-8", &["corrupted free list"]),
    // Only the link's lowest byte changes: now and then it still names a
    // free block of the page, and the program goes on safely, unreported.
    ("overflow-1", &["corrupted free list", SURVIVED]),
    ("interior-free", &["invalid pointer"]),
    ("misaligned-free", &["invalid pointer"]),
    ("interior-free-large", &["invalid pointer"]),
    ("misaligned-free-large", &["invalid pointer"]),
    ("stack-free", &["not a block memres allocated"]),
    ("wild-free", &["not a block memres allocated"]),
    ("wild-free-low", &["not a block memres allocated"]),
];

/// A pointer memres does not hold is reported and left alone (the program
/// goes on); every other misuse stops the program with memres's line naming
/// it. Under `MEMRES_ON_MISUSE=report` every program goes on, reports the
/// misuse, and its checked workload finds no block handed out twice, no
/// live block overwritten, and never the address it planted.
#[test]
fn every_misuse_is_detected_and_none_corrupts_the_heap() {
    misuses_under(&[]);
}

/// The same misuses in secure mode. A write into a freed block, or an
/// overflow into a free neighbour, may now land in a block held in the
/// quarantine, zeroed and off every free list: the program then goes on,
/// unreported, and nothing is corrupted (the block's links are written
/// afresh when it leaves the quarantine). Every other misuse is named as in
/// the default mode (a large block's second free, too: its mapping is kept,
/// inaccessible, and not reused).
#[test]
fn every_misuse_is_detected_or_absorbed_in_secure_mode() {
    misuses_under(&[("MEMRES_SECURE", "1")]);
}

fn misuses_under(mode: &[(&str, &str)]) {
    let program = compile("misuse.c");
    let secure = !mode.is_empty();
    for &(case, said) in MISUSES {
        for report in [false, true] {
            let mut env = mode.to_vec();
            if report {
                env.push(("MEMRES_ON_MISUSE", "report"));
            }
            let out = run(&program, &[case], &env, true);
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            let context = format!(
                "{case} (report: {report}, secure: {secure}): status {:?}\nstdout: {stdout}\nstderr: {stderr}",
                out.status
            );
            assert!(!stdout.contains("CORRUPTED"), "{context}");
            let unreported = !stderr.contains("memres: ");
            let absorbed = secure && ["write-after-free", "overflow-8", "overflow-1"].contains(&case);
            if unreported && (said.contains(&SURVIVED) || absorbed) {
                assert!(out.status.success() && stdout == format!("survived {case}\n"), "{context}");
                continue;
            }
            assert!(said.iter().any(|s| stderr.contains(s)), "{context}");
            assert_eq!(stderr.lines().filter(|l| l.starts_with("memres: ")).count(), 1, "one line: {context}");
            let foreign = stderr.contains("not a block memres allocated");
            if report || foreign {
                assert!(out.status.success() && stdout == format!("survived {case}\n"), "{context}");
            } else {
                use std::os::unix::process::ExitStatusExt;
                assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{context}");
            }
        }
    }
}

/// Runs a program of the machine with and without the library and checks
/// that it behaves the same; `None` if the program is not installed.
fn same_with_and_without(program: &str, args: &[&str]) -> Option<()> {
    let path = which(program)?;
    let plain = run(&path, args, &[], false);
    let preloaded = run(&path, args, &[("MEMRES_STATS", "1")], true);
    assert!(plain.status.success(), "{program} failed on its own: {}", text(&plain.stderr));
    assert!(preloaded.status.success(), "{program} failed under memres: {}", text(&preloaded.stderr));
    assert!(plain.stdout == preloaded.stdout, "{program}: different output under memres");
    let stderr = text(&preloaded.stderr);
    assert!(stderr.contains("memres: allocated"), "{program} did not run on memres: {stderr}");
    assert!(!stderr.contains("not a block memres allocated"), "{program}: {stderr}");
    Some(())
}

/// Where `program` is installed. Missing: a failure under CI (whose
/// `.ci/run` installs every program these tests run, so a skip there would
/// hide a check), and a loud "skipped" elsewhere.
fn which(program: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(program)).find(|p| p.is_file()));
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "{program} is not installed, and CI must run this test");
        eprintln!("SKIPPED: {program} is not installed, so the test of it under memres did not run");
    }
    found
}

#[test]
fn python_with_a_heavy_workload() {
    let script = "import json, collections\n\
                  rows = [{'id': i, 'name': str(i) * (i % 20), 'tags': list(range(i % 7))} for i in range(200000)]\n\
                  text = json.dumps(rows)\n\
                  back = json.loads(text)\n\
                  c = collections.Counter(len(r['name']) for r in back)\n\
                  print(len(text), sum(len(r['tags']) for r in back), sorted(c.items())[:5])";
    same_with_and_without("python3", &["-c", script]);
}

#[test]
fn sort_a_large_generated_file() {
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sort_input.txt");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut lines = String::new();
    for _ in 0..300_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lines.push_str(&format!("{:x} {}\n", x, x % 1000));
    }
    std::fs::write(&file, lines).unwrap();
    same_with_and_without("sort", &[file.to_str().unwrap()]);
}

#[test]
fn git_and_cmake() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_str().unwrap().to_string();
    if repo_is_git(&repo) {
        same_with_and_without("git", &["-C", &repo, "log", "--stat", "-n", "50"]);
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI runs in a git clone: git log must be tested");
        eprintln!("SKIPPED: git log under memres (not a git checkout)");
    }
    same_with_and_without("cmake", &["--version"]);
}

fn repo_is_git(repo: &str) -> bool {
    Path::new(repo).join(".git").exists()
}

/// Secure mode (`MEMRES_SECURE=1`), case by case (`tests/programs/secure.c`):
/// sampled guarded blocks fault at a use after free, an overflow and an
/// underflow, and the report names the misuse, the block, and where it was
/// allocated and freed; a freed large block faults; small pages end in a
/// guard page; freed blocks are zeroed and held back from reuse; fresh
/// blocks come in a random order. The default mode does none of these (the
/// non-faulting cases fail there, which shows they can fail).
#[test]
fn secure_mode_guards_quarantines_and_reports_sampled_blocks() {
    use std::os::unix::process::ExitStatusExt;
    let program = compile("secure.c");
    let faulting: &[(&str, &[&str])] = &[
        (
            "use-after-free-sampled",
            &["memres: use after free at ", "3 bytes into the 40-byte block", "freed by thread"],
        ),
        ("overflow-sampled", &["memres: buffer overflow at ", "0 bytes after the 48-byte block"]),
        ("underflow-sampled", &["memres: buffer underflow at ", "1 bytes before the 4096-byte block"]),
        ("large-use-after-free", &[]),
    ];
    for &(case, said) in faulting {
        let sampled = if case.ends_with("sampled") { "1" } else { "0" };
        let env = [("MEMRES_SECURE", "1"), ("MEMRES_GUARDED_SAMPLE_RATE", sampled)];
        let out = run(&program, &[case], &env, true);
        let stderr = text(&out.stderr);
        let context = format!("{case}: status {:?}\nstdout: {}\nstderr: {stderr}", out.status, text(&out.stdout));
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{context}");
        for line in said {
            assert!(stderr.contains(line), "{context}");
        }
        if !said.is_empty() {
            assert!(stderr.contains("allocated by thread") && stderr.contains("secure_c+0x"), "a trace: {context}");
        }
    }
    for case in ["guard-pages", "quarantine", "zeroed", "randomized"] {
        let out = run(&program, &[case], &[("MEMRES_SECURE", "1")], true);
        let context = format!("{case}: {:?} {} {}", out.status, text(&out.stdout), text(&out.stderr));
        assert!(out.status.success() && text(&out.stdout) == format!("ok {case}\n"), "{context}");
        let default = run(&program, &[case], &[], true);
        assert!(text(&default.stdout).starts_with("FAILED"), "the default mode already does it? {context}");
    }
}
