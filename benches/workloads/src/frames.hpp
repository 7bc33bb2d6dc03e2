// The simulated frame loop of an engine, in C++ (std::pmr containers),
// driven from Rust through the cxx bridge in lib.rs: see frames.rs for the
// Rust twin and examples/frame_workload.rs for the benchmark.
#pragma once

#include <cstddef>
#include <cstdint>

namespace memres::workloads {

// Defined by the generated bridge header (lib.rs.h).
struct FrameRun;

// Runs `warmup` frames, then `frames` timed frames of `objects` transient
// objects each on frame memory of one kind (0: new/delete, 1: two std
// monotonic resources release()d in turn, 2: the same over fixed buffers,
// 3: memres::frame_arenas<>); reports the checksum, the timed frames'
// nanoseconds and the upstream allocations they made.
FrameRun frame_loop(std::uint8_t kind, std::size_t warmup, std::size_t frames, std::size_t objects);

}  // namespace memres::workloads
