// A game loop's frame memory with memres::frame_arenas: each frame builds
// its transient objects in the current arena; the draw list built in frame
// N is read in frame N + 1 (as a render thread would), then its arena is
// reset when frame N + 2 begins. A nested phase (culling) frees its scratch
// with a monotonic_scope. After the first frames, no frame asks upstream
// for memory: the program checks that and says so.
#include <memres/memres.hpp>

#include <cstdio>
#include <memory_resource>
#include <string>
#include <vector>

namespace {

// An upstream that counts what the arenas ask of it.
class counting_upstream final : public std::pmr::memory_resource {
 public:
  std::size_t calls = 0;

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

struct draw_command {
  int mesh;
  float depth;
};

}  // namespace

int main() {
  counting_upstream upstream;
  memres::frame_arenas<> frames(&upstream);
  std::pmr::vector<draw_command>* last_draws = nullptr;  // lives in the previous frame's arena
  std::size_t drawn = 0, calls_after_warm_up = 0;
  for (int frame = 0; frame < 120; ++frame) {
    frames.begin_frame();
    memres::monotonic_buffer_resource& arena = frames.current();

    // "Render" last frame's draw list, then drop it (its arena stays intact
    // until the next begin_frame).
    if (last_draws != nullptr) {
      drawn += last_draws->size();
      last_draws->~vector();
    }

    // Culling: scratch that only this phase needs.
    std::vector<int> visible;  // survives the phase (std heap, a few ints)
    {
      memres::monotonic_scope culling(arena);
      std::pmr::vector<std::pmr::string> labels(&arena);
      for (int i = 0; i < 1000; ++i) {
        labels.emplace_back("entity-" + std::to_string(i) + "-frame-" + std::to_string(frame));
        if (i % 7 == frame % 7) visible.push_back(i);
      }
    }

    // The draw list, built now and read next frame.
    last_draws = new (arena.allocate(sizeof(std::pmr::vector<draw_command>), alignof(std::pmr::vector<draw_command>)))
        std::pmr::vector<draw_command>(&arena);
    for (int i : visible) last_draws->push_back({i, static_cast<float>(i) / 1000});

    if (frame == 5) calls_after_warm_up = upstream.calls;
  }
  last_draws->~vector();

  const bool settled = upstream.calls == calls_after_warm_up;
  std::printf("120 frames, %zu draw commands rendered; upstream allocations: %zu in the first 6 frames, %zu after\n",
              drawn, calls_after_warm_up, upstream.calls - calls_after_warm_up);
  if (!settled || drawn == 0) {
    std::fputs("frame_loop: frames kept asking upstream for memory after warm-up\n", stderr);
    return 1;
  }
  return 0;
}
