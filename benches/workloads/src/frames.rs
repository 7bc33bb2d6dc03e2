//! The simulated frame loop of an engine in Rust, the twin of `frames.cpp`:
//! each frame builds a growing array of particles, an event per two
//! particles (a block each), names (byte strings of 24 to 63 bytes) and a
//! draw list that the next frame reads before it is dropped. The frame
//! memory is two slots used in turn; the checksum is the C++ loop's, so the
//! two languages and every kind of frame memory can be checked against one
//! another.

use core::ptr::NonNull;
use std::time::Instant;

use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use bumpalo::Bump;
use memres::{FrameArenas, Kept};

pub use crate::ffi::FrameRun;

/// The C++ loop's frame memory kinds (`frames.cpp`), by name.
pub const CXX_KINDS: [(&str, u8); 4] =
    [("new_delete", 0), ("std_monotonic_release", 1), ("std_monotonic_buffer", 2), ("memres_frame_arenas", 3)];

/// Runs the C++ frame loop (see `frames.hpp`).
pub fn cxx_frame_loop(kind: u8, warmup: usize, frames: usize, objects: usize) -> FrameRun {
    crate::ffi::frame_loop(kind, warmup, frames, objects)
        .unwrap_or_else(|e| panic!("C++ frame loop on kind {kind} threw: {e}"))
}

/// The Rust loop's frame memory kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RustFrames {
    /// Every object from the global allocator.
    Global,
    /// Two `bumpalo::Bump`s used in turn, `reset()` when reused.
    Bumpalo,
    /// `memres::FrameArenas`.
    Memres,
}

impl RustFrames {
    /// Every kind, in report order.
    pub const ALL: [RustFrames; 3] = [RustFrames::Global, RustFrames::Bumpalo, RustFrames::Memres];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            RustFrames::Global => "global",
            RustFrames::Bumpalo => "bumpalo",
            RustFrames::Memres => "memres_frame_arenas",
        }
    }
}

#[derive(Clone, Copy)]
struct Particle {
    x: f32,
    y: f32,
    z: f32,
    vx: f32,
    vy: f32,
    vz: f32,
    id: u32,
    flags: u32,
}

/// One frame on `a`, after reading the previous frame's draw list; returns
/// the frame's checksum and its draw list (on `a`).
fn one_frame<A: Allocator + Copy>(a: A, frame: u64, objects: usize, last: Option<&[u64]>) -> (u64, Vec<u64, A>) {
    let mut h = frame;
    for &v in last.unwrap_or(&[]) {
        h = h.wrapping_mul(31).wrapping_add(v);
    }
    let mut particles = Vec::new_in(a);
    for i in 0..objects {
        let f = (i as u64 + frame) as f32;
        particles.push(Particle {
            x: f,
            y: f * 2.0,
            z: f * 3.0,
            vx: 1.0,
            vy: 0.0,
            vz: -1.0,
            id: i as u32,
            flags: i as u32 & 7,
        });
    }
    let mut events = Vec::new_in(a);
    for i in 0..objects / 2 {
        events.push(Box::new_in((i as u64 * 3 + frame) as u32, a));
    }
    let mut names = Vec::with_capacity_in(objects / 4, a);
    for i in 0..objects / 4 {
        let mut name = Vec::with_capacity_in(24 + i % 40, a);
        name.resize(24 + i % 40, b'a' + (i % 26) as u8);
        names.push(name);
    }
    for p in &particles {
        // As C++'s `static_cast<uint64_t>(float)`: the particles' values are
        // whole and small.
        h = h.wrapping_add(p.x as u64 ^ u64::from(p.flags));
        core::hint::black_box((p.y, p.z, p.vx, p.vy, p.vz));
    }
    for e in &events {
        h = h.wrapping_add(u64::from(**e));
    }
    for n in &names {
        h = h.wrapping_add(n.len() as u64 + u64::from(*n.last().expect("names are not empty")));
    }
    let mut draw = Vec::with_capacity_in(0, a);
    for i in 0..objects / 10 {
        draw.push(u64::from(particles[i * 10].id).wrapping_mul(frame));
    }
    (h, draw)
}

/// Runs `warmup` frames, then `frames` timed ones, of `objects` objects on
/// `kind`; `calls` reads a count of upstream allocations (the caller's
/// counting global allocator, say), sampled around the timed frames.
pub fn rust_frame_loop(
    kind: RustFrames,
    warmup: usize,
    frames: usize,
    objects: usize,
    calls: impl Fn() -> u64,
) -> FrameRun {
    match kind {
        RustFrames::Global => {
            let mut last: Option<Vec<u64, Global>> = None;
            timed(warmup, frames, &calls, |f| {
                let (h, draw) = one_frame(Global, f, objects, last.as_deref());
                last = Some(draw);
                h
            })
        }
        RustFrames::Bumpalo => {
            let mut bumps = [Bump::new(), Bump::new()];
            // The previous frame's draw list, in the bump that frame used:
            // raw, because a borrow of that bump cannot outlive the `&mut`
            // that resets the other one (the pattern bumpalo users write).
            let mut last: Option<(NonNull<u64>, usize)> = None;
            let mut frame = 0usize;
            timed(warmup, frames, &calls, |f| {
                frame += 1;
                bumps[frame % 2].reset();
                let bump = &bumps[frame % 2];
                // SAFETY: written by the previous frame into the other bump,
                // which is reset only when the frame after this one begins.
                let previous = last.map(|(p, n)| unsafe { core::slice::from_raw_parts(p.as_ptr(), n) });
                let (h, draw) = one_frame(bump, f, objects, previous);
                let mut draw = core::mem::ManuallyDrop::new(draw);
                last = Some((NonNull::new(draw.as_mut_ptr()).expect("a Vec's pointer"), draw.len()));
                h
            })
        }
        RustFrames::Memres => {
            let mut frames_memory = FrameArenas::new();
            let mut last: Option<Kept<[u64]>> = None;
            timed(warmup, frames, &calls, |f| {
                frames_memory.begin_frame();
                let previous = last.as_ref().map(|k| frames_memory.get(k).expect("kept one frame"));
                let (h, draw) = one_frame(frames_memory.current(), f, objects, previous);
                let kept = frames_memory.keep_slice(&draw).expect("memory");
                drop(draw);
                last = Some(kept);
                h
            })
        }
    }
}

/// Runs `frame(f)` for the warm-up and timed frames; sums the checksums.
fn timed(warmup: usize, frames: usize, calls: &impl Fn() -> u64, mut frame: impl FnMut(u64) -> u64) -> FrameRun {
    let mut checksum = 0u64;
    for f in 0..warmup {
        checksum = checksum.wrapping_add(frame(f as u64));
    }
    let before = calls();
    let start = Instant::now();
    for f in warmup..warmup + frames {
        checksum = checksum.wrapping_add(frame(f as u64));
    }
    let nanos = start.elapsed().as_nanos() as u64;
    FrameRun { checksum, nanos, upstream_calls: calls() - before }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_in_both_languages_builds_the_same_frames() {
        let (warmup, frames, objects) = (3, 5, 300);
        let reference = cxx_frame_loop(0, warmup, frames, objects).checksum;
        for (name, kind) in CXX_KINDS {
            assert_eq!(cxx_frame_loop(kind, warmup, frames, objects).checksum, reference, "C++ {name}");
        }
        for kind in RustFrames::ALL {
            assert_eq!(
                rust_frame_loop(kind, warmup, frames, objects, || 0).checksum,
                reference,
                "Rust {}",
                kind.name()
            );
        }
        assert_ne!(cxx_frame_loop(3, warmup, frames, objects + 1).checksum, reference);
    }

    #[test]
    fn memres_frames_make_no_upstream_call_once_warm() {
        assert_eq!(cxx_frame_loop(3, 6, 20, 2000).upstream_calls, 0);
        assert_eq!(cxx_frame_loop(2, 6, 20, 2000).upstream_calls, 0, "std over a big enough buffer");
        assert!(cxx_frame_loop(1, 6, 20, 2000).upstream_calls >= 20, "std's release() gives the chunks back");
        // Every event node and name is an allocation of its own.
        assert!(cxx_frame_loop(0, 6, 20, 2000).upstream_calls >= 20 * (1000 + 500));
    }
}
