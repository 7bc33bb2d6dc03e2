// A C++ request loop on memres: swap std::pmr for memres, keep the arena,
// reset it between requests.
#include <memres/memres.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main() {
  memres::monotonic_buffer_resource arena;  // was: std::pmr::monotonic_buffer_resource
  std::size_t total = 0;
  for (int request = 0; request < 1000; ++request) {
    {
      std::pmr::vector<std::pmr::string> lines(&arena);
      for (int i = 0; i < 100; ++i) lines.emplace_back("line " + std::to_string(request * 100 + i));
      total += lines.size();
    }  // everything allocated from the arena is gone before...
    arena.reset();  // ...the reset (beyond std: keeps the memory for the next request)
  }
  const memres::monotonic_stats s = arena.stats();
  std::printf("%zu lines, %llu upstream calls, %zu bytes held\n", total,
              static_cast<unsigned long long>(s.upstream_allocs), s.held);
  return total == 100000 && s.upstream_allocs < 20 ? 0 : 1;
}
