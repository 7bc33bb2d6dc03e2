//! The memres showcase: realistic workloads on each memres resource and on
//! the std/system peers, timed side by side in one run, printed as a table
//! of ratios (the machines are shared and noisy: only ratios mean much).
//! First the mixed request, Rust and C++ sharing one arena; then each
//! language's workloads alone.
//!
//! ```text
//! cargo run --release --example showcase            # full run, ~1 minute
//! cargo run --release --example showcase -- --quick # a few seconds
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use memres::Monotonic;
use memres_cxx::CxxView;
use memres_workloads::mixed::{self, CxxSide};
use memres_workloads::{self as w, Resource};

/// One contender in a row: a name, a closure that runs one iteration, and
/// (for the C++ resources) the peak bytes it held from upstream in one run.
struct Peer<'a> {
    name: &'static str,
    run: Box<dyn FnMut() -> u64 + 'a>,
    held: Option<usize>,
}

/// Times each peer's iterations in interleaved rounds and returns the median
/// time per iteration for each, so that drift on a shared machine hits all
/// peers alike.
fn measure(peers: &mut [Peer<'_>], budget: Duration) -> Vec<Duration> {
    const ROUNDS: usize = 7;
    // Calibrate: iterations per round so that a round of one peer takes
    // about budget / (ROUNDS * peers).
    let per_round = budget / (ROUNDS * peers.len()) as u32;
    let iters: Vec<u32> = peers
        .iter_mut()
        .map(|p| {
            let start = Instant::now();
            let mut n = 0u32;
            while start.elapsed() < per_round / 4 || n == 0 {
                black_box((p.run)());
                n += 1;
            }
            (n * 4).max(1)
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(ROUNDS); peers.len()];
    for _ in 0..ROUNDS {
        for (i, p) in peers.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..iters[i] {
                black_box((p.run)());
            }
            samples[i].push(start.elapsed() / iters[i]);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort();
            s[s.len() / 2]
        })
        .collect()
}

fn row(workload: &str, peers: &mut [Peer<'_>], baseline: &str, budget: Duration) {
    let times = measure(peers, budget);
    let base = peers.iter().position(|p| p.name == baseline).map_or(times[0], |i| times[i]);
    for (i, (p, t)) in peers.iter().zip(&times).enumerate() {
        let label = if i == 0 { workload } else { "" };
        let ratio = t.as_secs_f64() / base.as_secs_f64();
        let held = p.held.map_or(String::new(), |b| format!("{:>10}", b / 1024));
        println!("{label:<34} {:<30} {:>12} {:>8.2}x {held}", p.name, format!("{t:.2?}"), ratio);
    }
    println!();
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick { Duration::from_millis(300) } else { Duration::from_secs(3) };

    println!("memres showcase: median time per iteration, interleaved rounds, ratio to the row's baseline");
    println!("(lower is faster; {})\n", if quick { "quick run" } else { "full run" });
    println!("(held: peak KiB a C++ resource took from upstream in one run; for new_delete the live bytes)\n");
    println!("{:<34} {:<30} {:>12} {:>9} {:>10}", "workload", "resource", "time", "ratio", "held KiB");
    println!("{}", "-".repeat(99));

    // The centre: one request served by Rust and C++ together. Rust parses
    // into arena-backed collections, C++ ranks with std::pmr containers,
    // Rust writes the response (examples/mixed_request.rs walks through it).
    // With memres both languages share one arena, reset per request; without
    // it a program uses an arena per language, or the heap.
    {
        let texts: Vec<String> = (0..8).map(|seed| mixed::request_text(seed, 5_000)).collect();
        let mut arena = Monotonic::new();
        let mut profiled = Monotonic::new();
        let mut bump = bumpalo::Bump::new();
        let (mut i, mut j, mut k, mut m) = (0, 0, 0, 0);
        let mut peers = [
            Peer {
                name: "memres Monotonic, both (reset)",
                run: Box::new(|| {
                    i += 1;
                    let view = CxxView::of(&arena);
                    // SAFETY: the view lives to the end of the call, on this thread.
                    let (h, _) = unsafe { mixed::serve(&arena, CxxSide::In(view.as_ptr()), &texts[i % 8], 10) };
                    drop(view);
                    arena.reset();
                    h
                }),
                held: None,
            },
            Peer {
                // The same with the sampling profiler on at its default
                // interval: on only while this peer runs (an arena notices
                // at its reset, so the others never sample).
                name: "memres, profiled (512 KiB)",
                run: Box::new(|| {
                    m += 1;
                    memres::profile::start(memres::profile::DEFAULT_INTERVAL);
                    let view = CxxView::of(&profiled);
                    // SAFETY: as above.
                    let (h, _) = unsafe { mixed::serve(&profiled, CxxSide::In(view.as_ptr()), &texts[m % 8], 10) };
                    drop(view);
                    profiled.reset();
                    memres::profile::stop();
                    h
                }),
                held: None,
            },
            Peer {
                name: "bumpalo + std_monotonic",
                run: Box::new(|| {
                    j += 1;
                    // SAFETY: a `With` side.
                    let (h, _) =
                        unsafe { mixed::serve(&bump, CxxSide::With(Resource::StdMonotonic), &texts[j % 8], 10) };
                    bump.reset();
                    h
                }),
                held: None,
            },
            Peer {
                name: "glibc + new_delete",
                run: Box::new(|| {
                    k += 1;
                    // SAFETY: a `With` side.
                    let (h, _) = unsafe {
                        mixed::serve(
                            allocator_api2::alloc::Global,
                            CxxSide::With(Resource::NewDelete),
                            &texts[k % 8],
                            10,
                        )
                    };
                    h
                }),
                held: None,
            },
        ];
        row("Mixed request (Rust + C++)", &mut peers, "bumpalo + std_monotonic", budget);
        drop(peers);
        profile_mixed_request(&texts);
    }

    // Rust: arena-backed collections; arenas are reset between iterations,
    // as a request handler would between requests.
    for work in w::RUST_WORKLOADS {
        let (on_arena, on_bump, on_global, n) = (work.on_monotonic, work.on_bumpalo, work.on_global, work.n);
        let mut arena = Monotonic::new();
        let mut bump = bumpalo::Bump::new();
        let mut peers = [
            Peer {
                name: "memres Monotonic (reset)",
                run: Box::new(move || {
                    let s = on_arena(&arena, n);
                    arena.reset();
                    s
                }),
                held: None,
            },
            Peer {
                name: "bumpalo Bump (reset)",
                run: Box::new(move || {
                    let s = on_bump(&bump, n);
                    bump.reset();
                    s
                }),
                held: None,
            },
            Peer { name: "global allocator (glibc)", run: Box::new(move || on_global(n)), held: None },
        ];
        row(&format!("Rust: {}", work.name), &mut peers, "bumpalo Bump (reset)", budget);
    }

    // C++: std::pmr containers on std's resources and memres's, through the bridge.
    for work in w::CXX_WORKLOADS.into_iter().chain(w::CXX_POOL_WORKLOADS) {
        let mut peers: Vec<Peer> = work
            .resources
            .iter()
            .map(|&r| Peer {
                name: r.name(),
                run: Box::new(move || (work.run)(r)),
                held: r.has_upstream().then(|| w::measure_upstream(&work, r).peak_bytes),
            })
            .collect();
        // Arenas are measured against std's arena; pools against plain new/delete.
        let baseline = if work.resources.contains(&Resource::StdMonotonic) { "std_monotonic" } else { "new_delete" };
        row(&format!("C++: {}", work.name), &mut peers, baseline, budget);
    }

    // What keeping the arena buys: upstream traffic per request after warm-up.
    let mut arena = Monotonic::new();
    let mut calls = Vec::new();
    for _ in 0..5 {
        let before = arena.stats().upstream_allocs;
        black_box(w::request_rust(&arena, 1_000));
        arena.reset();
        calls.push(arena.stats().upstream_allocs - before);
    }
    let s = arena.stats();
    println!("Rust request arena, upstream calls per request over 5 requests: {calls:?}");
    println!("(held after warm-up: {} KiB in {} chunks; reset() keeps them)", s.held / 1024, s.chunks);
}

/// Profiles the mixed request (one arena, Rust and C++ frames in one
/// profile) and writes its folded stacks and flame graph under
/// `target/showcase/`; prints where the bytes came from.
fn profile_mixed_request(texts: &[String]) {
    memres::profile::clear();
    memres::profile::start(16 << 10);
    let mut arena = Monotonic::new();
    // The arena samples from its first region on (made after the start).
    for text in texts.iter().cycle().take(200) {
        let view = CxxView::of(&arena);
        // SAFETY: the view lives to the end of the call, on this thread.
        black_box(unsafe { mixed::serve(&arena, CxxSide::In(view.as_ptr()), text, 10) });
        drop(view);
        arena.reset();
    }
    memres::profile::stop();
    let folded = memres::profile::folded();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/showcase");
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join("mixed-request.folded"), &folded));
    let svg = dir.join("mixed-request.svg");
    let mut options = inferno::flamegraph::Options::default();
    options.title = "memres showcase: the mixed request's arena, by call stack (sampled bytes)".to_owned();
    options.count_name = "bytes".to_owned();
    let drawn = written.and_then(|()| {
        let out = std::io::BufWriter::new(std::fs::File::create(&svg)?);
        inferno::flamegraph::from_lines(&mut options, folded.lines(), out)
    });
    // The two languages' shares: stacks through C++'s ranking or not.
    let (mut cxx, mut all) = (0u64, 0u64);
    for line in folded.lines() {
        let bytes: u64 = line.rsplit_once(' ').and_then(|(_, b)| b.parse().ok()).unwrap_or(0);
        all += bytes;
        // (`std::pmr`, or `std::__1::pmr` with libc++.)
        if line.contains("rank") && line.contains("pmr::") {
            cxx += bytes;
        }
    }
    println!(
        "\nProfile of the mixed request (sampled every 16 KiB on average, {} samples): about {:.0}% of the arena's bytes \
         come from C++'s ranking through std::pmr, the rest from Rust",
        memres::profile::samples(),
        100.0 * cxx as f64 / all.max(1) as f64
    );
    match drawn {
        Ok(()) => println!("flame graph: {} (folded stacks beside it)", svg.display()),
        Err(e) => println!("flame graph not written: {e}"),
    }
    memres::profile::clear();
}
