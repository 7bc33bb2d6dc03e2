//! `FrameArenas`: double buffering, kept values, nested phases, and no
//! upstream call once warm.

use allocator_api2::boxed::Box;
use allocator_api2::vec::Vec;
use memres::{FrameArenas, Kept};

/// A frame's worth of transient objects of mixed sizes, some kept.
fn build_frame(frames: &FrameArenas, frame: u64, objects: usize) -> (u64, Kept<[u64]>) {
    let mut boxes = Vec::new_in(frames.current());
    let mut sum = 0u64;
    for i in 0..objects as u64 {
        let b = Box::new_in([frame ^ i; 3], frames.current());
        sum = sum.wrapping_add(b[2]);
        boxes.push(b);
    }
    let mut names: Vec<Vec<u8, _>, _> = Vec::new_in(frames.current());
    for i in 0..objects / 8 {
        let mut name = Vec::new_in(frames.current());
        name.extend_from_slice(format!("object-{frame}-{i}").as_bytes());
        names.push(name);
    }
    let kept: std::vec::Vec<u64> = (0..16).map(|i| frame * 1000 + i).collect();
    (sum, frames.keep_slice(&kept).expect("memory"))
}

#[test]
fn a_kept_value_is_readable_in_its_frame_and_the_next_then_gone() {
    let mut frames = FrameArenas::new();
    let mut previous: Option<Kept<[u64]>> = None;
    for frame in 0..6u64 {
        frames.begin_frame();
        assert_eq!(frames.frame(), frame + 1);
        if let Some(kept) = &previous {
            let values = frames.get(kept).expect("kept from the previous frame");
            assert_eq!(values, (0..16).map(|i| frame * 1000 + i).collect::<std::vec::Vec<_>>().as_slice());
        }
        let (_, kept) = build_frame(&frames, frame + 1, 200);
        assert!(frames.live(&kept));
        if let Some(old) = previous.replace(kept) {
            assert!(frames.live(&old), "one frame later it is still readable");
        }
    }
    let last = previous.expect("six frames kept something");
    frames.begin_frame();
    assert!(frames.get(&last).is_some());
    frames.begin_frame();
    assert!(frames.get(&last).is_none(), "two frames later its arena has been reset");
    assert!(!frames.live(&last));
}

#[test]
fn each_frame_starts_empty_and_the_previous_one_stays_intact() {
    let mut frames = FrameArenas::new();
    frames.begin_frame();
    let a = Box::new_in([1u8; 100], frames.current());
    let used = frames.current().stats().used;
    assert!(used >= 100);
    drop(a);
    frames.begin_frame();
    assert_eq!(frames.current().stats().used, 0, "a new frame's arena is reset");
    let kept = frames.keep([7u16; 40]).expect("memory");
    frames.begin_frame();
    assert_eq!(frames.previous().stats().used, 80, "last frame's blocks are still held");
    assert_eq!(frames.get(&kept), Some(&[7u16; 40]));
}

#[test]
fn after_warm_up_no_frame_calls_upstream() {
    let mut frames = FrameArenas::new();
    let mut checksum = 0u64;
    let mut after_warm_up = None;
    for frame in 0..40u64 {
        frames.begin_frame();
        // Load that varies from frame to frame, never above the first ones'.
        let objects = 300 - (frame as usize * 7) % 200;
        let (sum, kept) = build_frame(&frames, frame, objects);
        checksum = checksum.wrapping_add(sum).wrapping_add(frames.get(&kept).expect("fresh")[3]);
        if frame == 4 {
            after_warm_up = Some(frames.upstream_allocs());
        }
    }
    assert_ne!(checksum, 0);
    assert_eq!(Some(frames.upstream_allocs()), after_warm_up, "frames 5..40 took no memory from upstream");
    assert!(frames.stats().iter().all(|s| s.chunks == 1), "each arena settled into one chunk");
}

#[test]
fn handles_of_other_frame_arenas_are_refused() {
    let mut a = FrameArenas::new();
    let b = FrameArenas::new();
    let kept = a.keep(5u32).expect("memory");
    assert!(b.get(&kept).is_none());
    assert!(!b.live(&kept));
    a.begin_frame();
    assert_eq!(a.get(&kept), Some(&5));
}

#[test]
fn get_mut_changes_the_kept_value() {
    let mut frames = FrameArenas::with_capacity(1 << 12);
    let mut kept = frames.keep([0u32; 8]).expect("memory");
    frames.get_mut(&mut kept).expect("fresh")[3] = 9;
    frames.begin_frame();
    let values = frames.get_mut(&mut kept).expect("one frame later");
    values[4] = 10;
    assert_eq!(frames.get(&kept).map(|v| (v[3], v[4])), Some((9, 10)));
}

#[test]
fn strings_slices_and_zero_sized_values_are_kept() {
    let mut frames = FrameArenas::new();
    let text = frames.keep_str("draw: 3 meshes, 2 lights").expect("memory");
    let empty = frames.keep_slice::<u64>(&[]).expect("memory");
    let unit = frames.keep(()).expect("memory");
    frames.begin_frame();
    assert_eq!(frames.get(&text), Some("draw: 3 meshes, 2 lights"));
    assert_eq!(frames.get(&empty).map(<[u64]>::len), Some(0));
    assert_eq!(frames.get(&unit), Some(&()));
    assert_eq!(text.frame(), 0);
}

#[test]
fn a_scope_frees_its_phase_and_keeps_what_came_before() {
    let mut frames = FrameArenas::new();
    frames.begin_frame();
    let kept = frames.keep(*b"before the phase").expect("memory");
    let before = frames.current().stats().used;
    let total = frames.scope(|arena| {
        let mut scratch: Vec<u64, _> = Vec::new_in(arena);
        scratch.extend(0..10_000);
        let inner: u64 = scratch.iter().sum();
        let boxed = Box::new_in(inner, arena);
        *boxed
    });
    assert_eq!(total, (0..10_000u64).sum());
    assert_eq!(frames.current().stats().used, before, "the phase's scratch is gone");
    assert_eq!(frames.get(&kept), Some(b"before the phase"));
    // The freed room is reused by the next phase.
    let again = frames.scope(|arena| Box::new_in([3u8; 64], arena)[0]);
    assert_eq!(again, 3);
}

#[test]
fn boxes_vectors_and_kept_values_interleave_across_frames() {
    // Shaped like the aliasing-model tests: blocks of every alignment from
    // both arenas, written over their whole length while both are live.
    let mut frames = FrameArenas::new();
    let mut kept: std::vec::Vec<Kept<[u8]>> = std::vec::Vec::new();
    for frame in 0..4u8 {
        frames.begin_frame();
        let mut v: Vec<u8, _> = Vec::new_in(frames.current());
        for shift in 0..7 {
            let b = Box::new_in([frame; 64], frames.current());
            v.extend_from_slice(&b[..1 << shift]);
            kept.push(frames.keep_slice(&b[..]).expect("memory"));
        }
        assert_eq!(v.len(), 127);
        assert!(v.iter().all(|&x| x == frame));
        // Last frame's kept values, read while this frame allocates.
        for k in kept.iter().filter(|k| k.frame() + 1 == frames.frame()) {
            let bytes = frames.get(k).expect("kept one frame");
            assert!(bytes.iter().all(|&x| x + 1 == frame));
        }
        kept.retain(|k| frames.live(k));
    }
}

#[test]
fn kept_handles_are_send_and_sync_when_their_values_are() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let frames = FrameArenas::new();
    send_sync(&frames.keep(1u64).expect("memory"));
    send_sync(&frames.keep_str("text").expect("memory"));
}
