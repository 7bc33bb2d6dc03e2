//! A game loop's frame memory with `memres::FrameArenas`: each frame's jobs
//! run on threads and allocate from the frame's thread-safe arena at once;
//! the draw list a frame builds is kept for the next frame to "render"
//! (a `Kept` handle, checked at run time); a nested phase frees its scratch
//! with `scope`. After the first frames, no frame asks upstream for memory:
//! the example checks that and says so.
//!
//! ```text
//! cargo run --release --example frames
//! ```

use allocator_api2::vec::Vec;
use memres::{FrameArenas, Kept};

#[derive(Clone, Copy)]
struct DrawCommand {
    mesh: u32,
    depth: f32,
}

fn main() {
    // Jobs: four threads per frame, each building its part of the scene.
    let mut frames = FrameArenas::new_sync();
    let mut last_draws: Option<Kept<[DrawCommand]>> = None;
    let mut rendered = 0usize;
    let mut warm = 0;
    for frame in 0..120u32 {
        frames.begin_frame();
        // "Render" last frame's draw list while this frame is built.
        if let Some(draws) = &last_draws {
            let draws = frames.get(draws).expect("kept for one frame");
            rendered += draws.iter().filter(|d| d.depth >= 0.0 && d.mesh < 1000).count();
        }
        let parts: std::vec::Vec<std::vec::Vec<DrawCommand>> = std::thread::scope(|s| {
            let frames = &frames;
            let jobs: std::vec::Vec<_> = (0..4u32)
                .map(|job| {
                    s.spawn(move || {
                        // Scratch for this job, in this frame's arena.
                        let mut visible: Vec<u32, _> = Vec::new_in(frames.current());
                        visible.extend((job * 250..(job + 1) * 250).filter(|i| i % 7 == frame % 7));
                        visible.iter().map(|&mesh| DrawCommand { mesh, depth: mesh as f32 / 1000.0 }).collect()
                    })
                })
                .collect();
            jobs.into_iter().map(|j| j.join().expect("a job panicked")).collect()
        });
        let draws: std::vec::Vec<DrawCommand> = parts.into_iter().flatten().collect();
        last_draws = Some(frames.keep_slice(&draws).expect("memory"));
        if frame == 5 {
            warm = frames.upstream_allocs();
        }
    }

    // One thread, with a nested phase whose scratch goes when it ends.
    let mut single = FrameArenas::new();
    for frame in 0..60u32 {
        single.begin_frame();
        let kept = single.keep(frame).expect("memory");
        let labels = single.scope(|arena| {
            let mut labels: Vec<Vec<u8, _>, _> = Vec::new_in(arena);
            for i in 0..500 {
                let mut label = Vec::new_in(arena);
                label.extend_from_slice(format!("entity-{i}-frame-{frame}").as_bytes());
                labels.push(label);
            }
            labels.len()
        });
        assert_eq!((labels, single.get(&kept)), (500, Some(&frame)));
    }

    let after = frames.upstream_allocs() - warm;
    println!(
        "120 frames of 4 jobs, {rendered} draw commands rendered; upstream allocations: {warm} in the first 6 frames, {after} after"
    );
    if after != 0 || rendered == 0 || single.current().stats().chunks != 1 {
        eprintln!("frames: frame memory did not settle");
        std::process::exit(1);
    }
}
