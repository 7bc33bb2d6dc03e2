// The simulated frame loop (frames.hpp). Each frame builds what an engine's
// frame builds in small pieces: a growing array of particles, a list of
// events (one node each), a vector of names (strings past the small-string
// buffer), and a draw list that the next frame reads before it is dropped.
// Frame memory comes in two slots used in turn, so the draw list of frame N
// lives in the slot frame N + 1 leaves alone.

#include "memres-workloads/src/frames.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <memory_resource>
#include <stdexcept>
#include <string>
#include <vector>

#include <memres/memres.hpp>

#include "memres-workloads/src/lib.rs.h"

namespace memres::workloads {
namespace {

struct particle {
  float x, y, z, vx, vy, vz;
  std::uint32_t id, flags;
};

using draw_list = std::pmr::vector<std::uint64_t>;

// new_delete_resource() that counts allocations: the upstream of the frame
// resources, and for kind 0 the frame memory itself.
class counting final : public std::pmr::memory_resource {
 public:
  std::uint64_t calls = 0;

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    ++calls;
    return std::pmr::new_delete_resource()->allocate(bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }
};

// One frame on `memory`; reads and destroys `last` (the previous frame's
// draw list, if any) and returns this frame's, built on `memory` too.
std::uint64_t one_frame(std::pmr::memory_resource* memory, std::uint64_t frame, std::size_t objects,
                        draw_list*& last) {
  std::uint64_t h = frame;
  if (last != nullptr) {
    for (std::uint64_t v : *last) h = h * 31 + v;
    std::pmr::memory_resource* where = last->get_allocator().resource();
    last->~draw_list();
    where->deallocate(last, sizeof(draw_list), alignof(draw_list));
    last = nullptr;
  }
  std::pmr::vector<particle> particles(memory);
  for (std::size_t i = 0; i < objects; ++i) {
    const float f = static_cast<float>(i + frame);
    particles.push_back({f, f * 2, f * 3, 1, 0, -1, static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(i & 7)});
  }
  std::pmr::list<std::uint32_t> events(memory);
  for (std::size_t i = 0; i < objects / 2; ++i) events.push_back(static_cast<std::uint32_t>(i * 3 + frame));
  std::pmr::vector<std::pmr::string> names(memory);
  names.reserve(objects / 4);
  for (std::size_t i = 0; i < objects / 4; ++i) names.emplace_back(24 + i % 40, static_cast<char>('a' + i % 26));
  for (const particle& p : particles) h += static_cast<std::uint64_t>(p.x) ^ p.flags;
  for (std::uint32_t e : events) h += e;
  for (const auto& n : names) h += n.size() + static_cast<unsigned char>(n.back());
  void* at = memory->allocate(sizeof(draw_list), alignof(draw_list));
  last = new (at) draw_list(memory);
  for (std::size_t i = 0; i < objects / 10; ++i) last->push_back(particles[i * 10].id * frame);
  return h;
}

// Frame memory: two slots used in turn.
struct new_delete_frames {
  explicit new_delete_frames(counting& upstream) : memory(&upstream) {}
  std::pmr::memory_resource* current() { return memory; }
  void begin_frame() {}
  std::pmr::memory_resource* memory;
};

struct std_frames {
  explicit std_frames(counting& upstream) : slots{std::pmr::monotonic_buffer_resource(&upstream),
                                                  std::pmr::monotonic_buffer_resource(&upstream)} {}
  std::pmr::memory_resource* current() { return &slots[frame % 2]; }
  void begin_frame() { slots[++frame % 2].release(); }
  std::pmr::monotonic_buffer_resource slots[2];
  std::uint64_t frame = 0;
};

// std's best case: each slot over a buffer big enough for a frame, so
// release() restarts in the buffer and upstream is never asked.
struct std_buffer_frames {
  static constexpr std::size_t kBuffer = std::size_t{1} << 20;
  explicit std_buffer_frames(counting& upstream)
      : buffers(new std::byte[2 * kBuffer]),
        slots{std::pmr::monotonic_buffer_resource(buffers.get(), kBuffer, &upstream),
              std::pmr::monotonic_buffer_resource(buffers.get() + kBuffer, kBuffer, &upstream)} {}
  std::pmr::memory_resource* current() { return &slots[frame % 2]; }
  void begin_frame() { slots[++frame % 2].release(); }
  std::unique_ptr<std::byte[]> buffers;
  std::pmr::monotonic_buffer_resource slots[2];
  std::uint64_t frame = 0;
};

struct memres_frames {
  explicit memres_frames(counting& upstream) : arenas(&upstream) {}
  std::pmr::memory_resource* current() { return &arenas.current(); }
  void begin_frame() { arenas.begin_frame(); }
  memres::frame_arenas<> arenas;
};

template <class Frames>
FrameRun run(std::size_t warmup, std::size_t frames, std::size_t objects) {
  counting upstream;
  std::uint64_t h = 0;
  {
    Frames memory(upstream);
    draw_list* last = nullptr;
    for (std::size_t f = 0; f < warmup; ++f) {
      memory.begin_frame();
      h += one_frame(memory.current(), f, objects, last);
    }
    const std::uint64_t calls = upstream.calls;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t f = warmup; f < warmup + frames; ++f) {
      memory.begin_frame();
      h += one_frame(memory.current(), f, objects, last);
    }
    const auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
    const std::uint64_t timed_calls = upstream.calls - calls;
    std::pmr::memory_resource* where = last->get_allocator().resource();
    last->~draw_list();
    where->deallocate(last, sizeof(draw_list), alignof(draw_list));
    return FrameRun{h, static_cast<std::uint64_t>(nanos.count()), timed_calls};
  }
}

}  // namespace

FrameRun frame_loop(std::uint8_t kind, std::size_t warmup, std::size_t frames, std::size_t objects) {
  switch (kind) {
    case 0: return run<new_delete_frames>(warmup, frames, objects);
    case 1: return run<std_frames>(warmup, frames, objects);
    case 2: return run<std_buffer_frames>(warmup, frames, objects);
    case 3: return run<memres_frames>(warmup, frames, objects);
    default: throw std::invalid_argument("memres-workloads: no frame memory of that kind");
  }
}

}  // namespace memres::workloads
