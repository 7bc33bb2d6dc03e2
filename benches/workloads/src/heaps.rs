//! Rust workloads for the general-purpose heaps, generic over an
//! allocator-api2 `Allocator`, so memres's `Heap`, mimalloc, jemalloc and
//! glibc run the same code in one process: allocation churn, vector growth
//! (realloc), a producer/consumer pair (xmalloc-test: every free is a
//! cross-thread free), a larson-style server (threads churn and hand objects
//! to each other) and cache-scratch (false sharing between threads' blocks).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use allocator_api2::alloc::{AllocError, Allocator};

use crate::{XorShift64, mix};

/// A `GlobalAlloc` (mimalloc's, jemalloc's, `System`) as an allocator-api2
/// `Allocator`, so a peer heap runs the generic workloads; `grow` and
/// `shrink` go to its `realloc`, as a `Vec` on the global allocator would.
#[derive(Debug)]
pub struct ViaGlobalAlloc<G: 'static>(pub &'static G);

impl<G> Clone for ViaGlobalAlloc<G> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<G> Copy for ViaGlobalAlloc<G> {}

// SAFETY: forwards to a `GlobalAlloc`, whose blocks have the requested
// layout and stay valid until freed; zero sizes never reach it.
unsafe impl<G: GlobalAlloc> Allocator for ViaGlobalAlloc<G> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            let dangling = NonNull::new(core::ptr::without_provenance_mut(layout.align())).ok_or(AllocError)?;
            return Ok(NonNull::slice_from_raw_parts(dangling, 0));
        }
        // SAFETY: a non-zero size.
        let ptr = unsafe { self.0.alloc(layout) };
        NonNull::new(ptr).map(|p| NonNull::slice_from_raw_parts(p, layout.size())).ok_or(AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: allocated by `allocate` with `layout`.
            unsafe { self.0.dealloc(ptr.as_ptr(), layout) }
        }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.realloc(ptr, old, new) }
    }

    unsafe fn shrink(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded contract.
        unsafe { self.realloc(ptr, old, new) }
    }
}

impl<G: GlobalAlloc> ViaGlobalAlloc<G> {
    /// # Safety
    /// As for `Allocator::grow`, without its size ordering.
    unsafe fn realloc(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if old.size() == 0 || new.size() == 0 || old.align() != new.align() {
            let block = self.allocate(new)?;
            // SAFETY: distinct live blocks; `old.size()` bytes initialised.
            unsafe {
                core::ptr::copy_nonoverlapping(ptr.as_ptr(), block.cast::<u8>().as_ptr(), old.size().min(new.size()));
                self.deallocate(ptr, old);
            }
            return Ok(block);
        }
        // SAFETY: a live block of `old`, a non-zero new size.
        let p = unsafe { self.0.realloc(ptr.as_ptr(), old, new.size()) };
        NonNull::new(p).map(|p| NonNull::slice_from_raw_parts(p, new.size())).ok_or(AllocError)
    }
}

/// A block a workload holds: pointer, layout and the byte written into it.
struct Held {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: plain memory, owned by whoever holds the value.
unsafe impl Send for Held {}

fn hold<A: Allocator>(alloc: &A, size: usize, tag: u8) -> Held {
    let layout = Layout::from_size_align(size, 8).expect("a small layout");
    let ptr = alloc.allocate(layout).expect("out of memory").cast::<u8>();
    // SAFETY: a fresh block of `size >= 1` bytes.
    unsafe {
        *ptr.as_ptr() = tag;
        *ptr.as_ptr().add(size - 1) = tag;
    }
    Held { ptr, layout }
}

/// Reads the block's bytes into the checksum and frees it.
fn release<A: Allocator>(alloc: &A, held: Held, h: u64) -> u64 {
    mix(h, release_digest(alloc, held))
}

/// Frees the block and returns a digest of its bytes and size, for
/// checksums whose order of frees depends on thread timing (summed).
fn release_digest<A: Allocator>(alloc: &A, held: Held) -> u64 {
    let size = held.layout.size();
    // SAFETY: a live block written by `hold`.
    let (first, last) = unsafe { (*held.ptr.as_ptr(), *held.ptr.as_ptr().add(size - 1)) };
    // SAFETY: allocated by `hold` with this layout.
    unsafe { alloc.deallocate(held.ptr, held.layout) };
    mix(mix(size as u64, u64::from(first)), u64::from(last))
}

/// A producer thread allocates `n` blocks of 16..=256 bytes and sends them
/// through a bounded channel to a consumer thread, which frees them.
pub fn producer_consumer<A: Allocator + Copy + Send + 'static>(alloc: A, n: usize) -> u64 {
    let (tx, rx) = mpsc::sync_channel::<Held>(1024);
    let consumer = thread::spawn(move || rx.into_iter().fold(0, |h, held| release(&alloc, held, h)));
    let mut rng = XorShift64(0x9e37_79b9_7f4a_7c15);
    for i in 0..n {
        let size = 16 + (rng.next() % 241) as usize;
        tx.send(hold(&alloc, size, i as u8)).expect("the consumer is alive");
    }
    drop(tx);
    consumer.join().expect("the consumer does not panic")
}

/// Larson-style: `threads` threads each keep 1000 live blocks of 16..=512
/// bytes and replace random ones `n` times; every 1000 replacements a
/// thread hands 100 of its blocks to the next thread, which frees them.
/// Which thread frees a handed-over block depends on timing, so the
/// checksum is a sum of block digests: every block is freed exactly once.
pub fn larson<A: Allocator + Copy + Send + 'static>(alloc: A, threads: usize, n: usize) -> u64 {
    let mailboxes: Arc<Vec<Mutex<Vec<Held>>>> = Arc::new((0..threads).map(|_| Mutex::new(Vec::new())).collect());
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let mailboxes = Arc::clone(&mailboxes);
            thread::spawn(move || {
                let sum = |h: u64, held: Held| h.wrapping_add(release_digest(&alloc, held));
                let mut rng = XorShift64(0x2545_f491_4f6c_dd1d + t as u64);
                let mut slots: Vec<Held> = (0..1000).map(|i| hold(&alloc, 16 + i % 497, i as u8)).collect();
                let mut h = 0;
                for i in 0..n {
                    let at = (rng.next() % 1000) as usize;
                    let size = 16 + (rng.next() % 497) as usize;
                    let old = core::mem::replace(&mut slots[at], hold(&alloc, size, i as u8));
                    h = sum(h, old);
                    if i % 1000 == 999 {
                        let gift: Vec<Held> = (0..100).map(|j| hold(&alloc, 16 + j * 5, j as u8)).collect();
                        mailboxes[(t + 1) % threads].lock().expect("not poisoned").extend(gift);
                        let received = core::mem::take(&mut *mailboxes[t].lock().expect("not poisoned"));
                        h = received.into_iter().fold(h, sum);
                    }
                }
                slots.into_iter().fold(h, sum)
            })
        })
        .collect();
    let h = workers.into_iter().fold(0u64, |h, w| h.wrapping_add(w.join().expect("no panic")));
    let leftovers: Vec<Held> =
        mailboxes.iter().flat_map(|m| core::mem::take(&mut *m.lock().expect("not poisoned"))).collect();
    // What was handed over at the end is freed by this thread.
    leftovers.into_iter().fold(h, |h, held| h.wrapping_add(release_digest(&alloc, held)))
}

/// Cache-scratch (passive false sharing): the main thread allocates one
/// small object per worker, each worker frees it, then `n` times allocates
/// an 8-byte object, writes it 100 times and frees it. An allocator that
/// puts different threads' objects in one cache line makes the writes
/// fight over it.
pub fn cache_scratch<A: Allocator + Copy + Send + 'static>(alloc: A, threads: usize, n: usize) -> u64 {
    let seeds: Vec<Held> = (0..threads).map(|t| hold(&alloc, 8, t as u8)).collect();
    let workers: Vec<_> = seeds
        .into_iter()
        .map(|seed| {
            thread::spawn(move || {
                let mut h = release(&alloc, seed, 0);
                for i in 0..n {
                    let held = hold(&alloc, 8, i as u8);
                    for k in 0..100u8 {
                        // SAFETY: a live 8-byte block; volatile so the writes happen.
                        unsafe { held.ptr.as_ptr().write_volatile(k) };
                    }
                    h = release(&alloc, held, h);
                }
                h
            })
        })
        .collect();
    workers.into_iter().fold(0, |h, w| mix(h, w.join().expect("no panic")))
}

/// Allocates, fills and frees blocks of 5, 10, 15, 20 and 25 MiB, `n`
/// times over: the loop that makes a heap that unmaps freed blocks fault
/// their memory in again each time (about 2.5 µs per 4 KiB page here).
pub fn big_blocks<A: Allocator>(alloc: A, n: usize) -> u64 {
    let mut h = 0;
    for i in 0..n {
        let size = (5 + 5 * (i % 5)) << 20;
        let layout = Layout::from_size_align(size, 64).expect("a valid layout");
        let block = alloc.allocate(layout).expect("out of memory").cast::<u8>();
        // SAFETY: a fresh block of `size` bytes: touch every page.
        unsafe {
            for page in (0..size).step_by(4096) {
                *block.as_ptr().add(page) = i as u8;
            }
            h = mix(h, u64::from(*block.as_ptr().add(size - 4096)));
            alloc.deallocate(block, layout);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    use allocator_api2::alloc::Global;
    use memres::Heap;

    #[test]
    fn threaded_workloads_agree_across_allocators() {
        let g = ViaGlobalAlloc(&std::alloc::System);
        assert_eq!(producer_consumer(Heap, 5000), producer_consumer(g, 5000));
        assert_eq!(larson(Heap, 2, 3000), larson(Global, 2, 3000));
        assert_eq!(cache_scratch(Heap, 2, 1000), cache_scratch(g, 2, 1000));
        assert_ne!(producer_consumer(Heap, 10), producer_consumer(Heap, 11));
        assert_eq!(crate::churn_rust(Heap, 10_000), crate::churn_rust(g, 10_000));
        assert_eq!(crate::vec_growth(Heap, 100_000), crate::vec_growth(g, 100_000));
        assert_eq!(big_blocks(Heap, 6), big_blocks(g, 6));
    }
}
