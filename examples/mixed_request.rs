//! A request handler in which Rust and C++ share one arena.
//!
//! For each request, Rust parses the text into an arena-backed `Vec` and a
//! hashbrown `HashMap`; C++ ranks the words with `std::pmr` containers in
//! the same arena (handed over as a `std::pmr::memory_resource` view of
//! the Rust arena: no copy, the C++ fast path bumps the Rust arena's own
//! cursor); Rust writes the response in the arena. Between requests the
//! arena is reset, which the borrow checker allows only once nothing
//! borrows it any more. After the first request, nothing calls upstream.
//!
//! ```text
//! cargo run --release --example mixed_request
//! ```

use memres::Monotonic;
use memres_cxx::CxxView;
use memres_workloads::mixed::{CxxSide, request_text, serve};

fn main() {
    let mut arena = Monotonic::new();
    let mut upstream_calls = Vec::new();
    let mut total = 0u64;
    for request in 0..100u64 {
        let before = arena.stats().upstream_allocs;
        let text = request_text(request, 5_000);
        let (checksum, response_len) = {
            // Hand the arena to C++ for this request only: the view borrows it.
            let view = CxxView::of(&arena);
            // SAFETY: the view lives until the end of this block, and C++
            // uses it on this thread only.
            unsafe { serve(&arena, CxxSide::In(view.as_ptr()), &text, 10) }
        };
        if request == 0 {
            let s = arena.stats();
            println!("request 0: {} words, response of {response_len} bytes", text.split_whitespace().count());
            println!("  arena after it: {} KiB used by Rust and C++ together, {} chunks", s.used / 1024, s.chunks);
        }
        total = total.wrapping_add(checksum);
        arena.reset(); // every Vec, HashMap and pmr container of the request is gone
        upstream_calls.push(arena.stats().upstream_allocs - before);
    }
    let steady: u64 = upstream_calls[1..].iter().sum();
    println!("upstream calls: {} in request 0, {steady} in the 99 after it", upstream_calls[0]);
    println!("checksum over all responses: {total:#018x}");
    assert_eq!(steady, 0, "the arena should stop calling upstream after warm-up");
}
