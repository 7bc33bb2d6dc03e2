// With MEMRES_DEBUG_CHECKS: correct use passes every check, freed memory
// keeps std's semantics, and a write past a chunk's end hits a guard page.
#include <memres/memres.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

#include "../support.hpp"

TEST(monotonic_debug_correct_use_passes_the_checks) {
  memres::monotonic_buffer_resource r;
  for (int round = 0; round < 3; ++round) {
    {
      std::pmr::vector<std::pmr::string> v(&r);
      for (int i = 0; i < 1000; ++i) v.emplace_back(std::string(static_cast<std::size_t>(i % 40), 'x'));
      CHECK(v.size() == 1000);
    }
    r.reset();
  }
}

TEST(monotonic_debug_write_past_a_chunk_hits_the_guard_page) {
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    memres::monotonic_buffer_resource r;
    volatile char* p = static_cast<char*>(r.allocate(10000, 8));  // a chunk of its own
    for (std::size_t i = 10000; i < 10000 + 2 * 4096 + 64; ++i) p[i] = 1;
    _exit(0);  // not reached when the guard page works
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
}
