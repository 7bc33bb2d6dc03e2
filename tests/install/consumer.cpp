// A program built against an installed memres (find_package, pkg-config or
// FetchContent): each resource serves std::pmr containers, and the program
// says "consumer: ok" when every check held.
#include <memres/memres.hpp>

#include <cstdio>
#include <map>
#include <memory_resource>
#include <string>
#include <vector>

int main() {
  int failures = 0;
  auto check = [&failures](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "consumer: FAILED: %s\n", what);
      ++failures;
    }
  };

  memres::monotonic_buffer_resource arena;
  {
    std::pmr::vector<std::pmr::string> lines(&arena);
    for (int i = 0; i < 1000; ++i) lines.emplace_back("line " + std::to_string(i) + " of the request");
    check(lines[999] == "line 999 of the request", "monotonic_buffer_resource serves a vector of strings");
  }
  arena.reset();
  check(arena.stats().used == 0, "reset() empties the arena");

  memres::unsynchronized_pool_resource pool;
  {
    std::pmr::map<int, std::pmr::string> names(&pool);
    for (int i = 0; i < 500; ++i) names.emplace(i, std::string(40, static_cast<char>('a' + i % 26)));
    check(names.size() == 500 && names.at(27)[0] == 'b', "unsynchronized_pool_resource serves a map");
  }

  std::pmr::vector<long> on_heap(1000, 7, memres::heap_resource());
  long sum = 0;
  for (long v : on_heap) sum += v;
  check(sum == 7000, "heap_resource() serves a vector");

  memres::frame_arenas<> frames;
  frames.begin_frame();
  std::pmr::vector<int> per_frame(100, 1, &frames.current());
  check(per_frame.size() == 100, "frame_arenas serves a frame");

  if (failures == 0) std::puts("consumer: ok");
  return failures == 0 ? 0 : 1;
}
