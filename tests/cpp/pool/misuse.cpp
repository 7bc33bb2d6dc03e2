// The pools' default-on misuse checks through the C++ classes, whose inline
// fast paths pop and push without calling Rust: a double free, an address
// written into a freed block, and a one-byte overflow into a free neighbour
// must each stop the process with the core's one-line message (the inline
// path sees the broken seal and hands the call to the core, which reports).
// Each case runs in a forked child; the parent reads its stderr. Under debug
// checks every call goes to the core's ledger instead (its own tests).
#include "pool_test.hpp"

#if !defined(MEMRES_DEBUG_CHECKS) && !defined(MEMRES_ASAN)

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace {

// Runs `misuse` in a child process; returns its stderr, and whether it was
// stopped by SIGABRT.
template <class F>
std::pair<std::string, bool> in_child(F misuse) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    misuse();
    std::fputs("not stopped\n", stderr);
    _exit(0);
  }
  close(fds[1]);
  std::string err;
  char buf[256];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  return {err, WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT};
}

bool names(const std::string& err, const char* what) { return err.find(what) != std::string::npos; }

}  // namespace

POOL_TEST(double_free_stops_with_a_message) {
  auto [err, aborted] = in_child([] {
    Pool r;
    void* p = r.allocate(32, 8);
    r.deallocate(p, 32, 8);
    r.deallocate(p, 32, 8);
  });
  CHECK(aborted);
  CHECK(names(err, "memres: double free at 0x"));
}

POOL_TEST(delayed_double_free_stops_with_a_message) {
  auto [err, aborted] = in_child([] {
    Pool r;
    void* a = r.allocate(8, 8);  // the smallest class
    void* b = r.allocate(8, 8);
    r.deallocate(a, 8, 8);
    r.deallocate(b, 8, 8);
    r.deallocate(a, 8, 8);
  });
  CHECK(aborted);
  CHECK(names(err, "memres: double free at 0x"));
}

POOL_TEST(an_address_written_into_a_freed_block_is_never_handed_out) {
  static long target[8];
  auto [err, aborted] = in_child([] {
    Pool r;
    void* p = r.allocate(96, 8);
    r.deallocate(p, 96, 8);
    *static_cast<long**>(p) = target;  // write after free
    void* first = r.allocate(96, 8);
    void* second = r.allocate(96, 8);
    if (first == target || second == target) std::fputs("handed out the chosen address\n", stderr);
  });
  CHECK(aborted);
  CHECK(names(err, "memres: corrupted free list"));
  CHECK(!names(err, "chosen address"));
}

POOL_TEST(a_one_byte_overflow_into_a_free_neighbour_is_caught) {
  auto [err, aborted] = in_child([] {
    Pool r;
    auto* a = static_cast<unsigned char*>(r.allocate(120, 8));
    void* b = r.allocate(120, 8);
    if (static_cast<unsigned char*>(b) != a + 120) std::fputs("not neighbours\n", stderr);
    r.deallocate(b, 120, 8);
    a[120] = 0;  // one NUL byte past a's block: b's link
    void* again = r.allocate(120, 8);
    void* next = r.allocate(120, 8);
    if (again == a || next == a) std::fputs("handed out a live block\n", stderr);
  });
  CHECK(aborted);
  CHECK(names(err, "memres: corrupted free list"));
  CHECK(!names(err, "not neighbours") && !names(err, "live block"));
}

#endif
