// Frame arenas and nested phases: memres::frame_arenas over both monotonic
// resources, monotonic_checkpoint / rewind(), and monotonic_scope. What
// frame N builds is intact through frame N+1, each frame starts empty, and
// after warm-up no frame calls upstream.
#include <memres/memres.hpp>

#include <cstdint>
#include <list>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../support.hpp"

namespace {

// One frame's transient objects; returns the frame's "draw list", built in
// the current arena for the next frame to read.
std::pmr::vector<std::uint64_t>* build_frame(memres::frame_arenas<>& frames, std::uint64_t frame, int objects) {
  std::pmr::list<std::pmr::string> names(&frames.current());
  std::pmr::vector<std::uint64_t> scratch(&frames.current());
  for (int i = 0; i < objects; ++i) {
    names.emplace_back("object-" + std::to_string(frame) + "-" + std::to_string(i));
    scratch.push_back(frame ^ static_cast<std::uint64_t>(i));
  }
  auto* draw = new (frames.current().allocate(sizeof(std::pmr::vector<std::uint64_t>),
                                              alignof(std::pmr::vector<std::uint64_t>)))
      std::pmr::vector<std::uint64_t>(16, frame * 1000, &frames.current());
  return draw;
}

}  // namespace

TEST(frame_arenas_keep_a_frame_readable_through_the_next_and_settle) {
  support::tracking_resource upstream;
  memres::frame_arenas<> frames(&upstream);
  CHECK(frames.frame() == 0);
  std::pmr::vector<std::uint64_t>* last = nullptr;
  std::size_t warm = 0;
  for (std::uint64_t frame = 1; frame <= 40; ++frame) {
    frames.begin_frame();
    CHECK(frames.frame() == frame);
    CHECK(frames.current().stats().used == 0);  // a new frame starts empty
    if (last != nullptr) {
      // Built in the previous frame's arena, which begin_frame left alone.
      CHECK(last->size() == 16);
      for (auto v : *last) CHECK(v == (frame - 1) * 1000);
      CHECK(last->get_allocator().resource() == &frames.previous());
      // Its objects must go before frame + 1 resets that arena.
      last->~vector();
    }
    last = build_frame(frames, frame, 400 - static_cast<int>(frame * 7 % 200));
    if (frame == 4) warm = upstream.allocs;
  }
  last->~vector();
  CHECK(upstream.allocs == warm);  // frames 5..40 took nothing from upstream
  CHECK(frames.upstream_allocs() == upstream.allocs);
}

TEST(frame_arenas_over_the_synchronized_arena_serve_jobs_on_threads) {
  support::tracking_resource upstream;
  memres::frame_arenas<memres::synchronized_monotonic_buffer_resource> frames(&upstream);
  std::vector<std::pmr::vector<int>*> results(4, nullptr);
  std::size_t warm = 0;
  for (int frame = 1; frame <= 12; ++frame) {
    frames.begin_frame();
    std::vector<std::thread> jobs;
    for (int job = 0; job < 4; ++job) {
      jobs.emplace_back([&frames, &results, job, frame] {
        if (std::pmr::vector<int>* last = results[job]) {
          for (int v : *last) CHECK(v == (frame - 1) * 10 + job);
          last->~vector();
        }
        std::pmr::vector<std::pmr::string> scratch(&frames.current());
        for (int i = 0; i < 1000; ++i) scratch.emplace_back(std::string(24, static_cast<char>('a' + job)));
        for (const auto& s : scratch) CHECK(s[0] == 'a' + job);
        void* at = frames.current().allocate(sizeof(std::pmr::vector<int>), alignof(std::pmr::vector<int>));
        results[job] = new (at) std::pmr::vector<int>(64, frame * 10 + job, &frames.current());
      });
    }
    for (auto& j : jobs) j.join();
    // Each resource grows in its first frame and merges its chunks into
    // one at its first reset (frames 3 and 4); settled from then on.
    if (frame == 5) warm = upstream.allocs;
  }
  for (auto* r : results) r->~vector();
  CHECK(upstream.allocs == warm);
}

TEST(checkpoint_and_rewind_free_a_nested_phase) {
  support::tracking_resource upstream;
  memres::monotonic_buffer_resource arena(&upstream);
  void* before = arena.allocate(100, 8);
  const std::size_t used = arena.stats().used;
  memres::monotonic_checkpoint outer = arena.checkpoint();
  (void)arena.allocate(5000, 16);
  memres::monotonic_checkpoint inner = arena.checkpoint();
  (void)arena.allocate(100000, 64);  // a chunk of its own
  arena.rewind(inner);
  CHECK(arena.stats().used > used);
  arena.rewind(outer);
  CHECK(arena.stats().used == used);
  // The freed room is handed out again (from the chunks the rewinds kept:
  // no upstream call); the block from before is intact.
  static_cast<char*>(before)[99] = 7;
  const std::size_t calls = upstream.allocs;
  static_cast<char*>(arena.allocate(5000, 16))[4999] = 1;
  (void)arena.allocate(90000, 64);
  CHECK(upstream.allocs == calls);
  CHECK(static_cast<char*>(before)[99] == 7);
}

TEST(rewind_refuses_stale_checkpoints) {
  memres::monotonic_buffer_resource a;
  memres::monotonic_buffer_resource b;
  memres::monotonic_checkpoint from_a = a.checkpoint();
  CHECK_THROWS_AS(b.rewind(from_a), std::invalid_argument);
  memres::monotonic_checkpoint old = a.checkpoint();
  a.reset();
  CHECK_THROWS_AS(a.rewind(old), std::invalid_argument);
  // A moved-from checkpoint is stale too.
  memres::monotonic_checkpoint moved = a.checkpoint();
  memres::monotonic_checkpoint taken = std::move(moved);
  CHECK_THROWS_AS(a.rewind(moved), std::invalid_argument);
  a.rewind(taken);
}

TEST(a_monotonic_scope_frees_what_its_phase_allocated) {
  memres::monotonic_buffer_resource arena;
  std::pmr::vector<int> kept(100, 5, &arena);
  const std::size_t used = arena.stats().used;
  for (int phase = 0; phase < 3; ++phase) {
    memres::monotonic_scope scope(arena);
    std::pmr::vector<std::pmr::string> scratch(&arena);
    for (int i = 0; i < 500; ++i) scratch.emplace_back(std::string(30, 'p'));
    CHECK(arena.stats().used > used);
  }
  CHECK(arena.stats().used == used);
  for (int v : kept) CHECK(v == 5);
}
