// The sampling profiler over both C++ pool classes: the inline pops count
// the profiler's bytes too, so two call sites come out in their proportions
// (blocks popped inline, over and over, and blocks from refills alike), and
// a pool's name, set_name(), leads its samples' stacks.
#include <memres/memres.hpp>

#include <cmath>
#include <cstdio>
#include <string>

#include "../check.hpp"
#include "../support.hpp"

namespace {

__attribute__((noinline)) void pool_headers(std::pmr::memory_resource& r, int n) {
  for (int i = 0; i < n; ++i) {
    void* p = r.allocate(48, 8);
    static_cast<char*>(p)[0] = 1;
    r.deallocate(p, 48, 8);
  }
}

__attribute__((noinline)) void pool_words(std::pmr::memory_resource& r, int n) {
  for (int i = 0; i < n; ++i) {
    void* p = r.allocate(144, 16);
    static_cast<char*>(p)[0] = 2;
    r.deallocate(p, 144, 16);
  }
}

void two_sites_on(std::pmr::memory_resource& pool, const std::string& kind) {
  memres::profile_clear();
  // 60 000 blocks of 48 bytes and 10 000 of 144: a 2:1 split of 4.3 MB.
  for (int round = 0; round < 10; ++round) {
    pool_headers(pool, 6000);
    pool_words(pool, 1000);
  }
  const std::string folded = memres::profile_folded();
  const double a = support::folded_bytes_of(folded, "pool_headers"), b = support::folded_bytes_of(folded, "pool_words");
  const double truth = 60000.0 * 48 + 10000.0 * 144;
  // About 1050 samples at one per 4 KiB; 10% is several standard errors
  // (the first 64 KiB, before the pool noticed the start, are not sampled).
  const bool ok = std::fabs(a / (a + b) - 2.0 / 3.0) < 0.1 * 2.0 / 3.0 && std::fabs(a + b - truth) < 0.1 * truth &&
                  folded.rfind(kind + ";", 0) == 0;
  if (!ok) std::fprintf(stderr, "%s's profile:\n%s", kind.c_str(), folded.c_str());
  CHECK(ok);
}

}  // namespace

TEST(pool_profile_two_call_sites_on_both_pools) {
  memres::profile_stop();
  memres::profile_clear();
  memres::unsynchronized_pool_resource unsync;
  memres::synchronized_pool_resource sync;
  memres::profile_start(4096);
  two_sites_on(unsync, "UnsyncPool");
  two_sites_on(sync, "SyncPool");
  unsync.set_name("word;index");
  sync.set_name("sessions");
  CHECK(unsync.name() == "word:index" && sync.name() == "sessions");
  two_sites_on(unsync, "word:index (UnsyncPool)");
  two_sites_on(sync, "sessions (SyncPool)");
  memres::profile_stop();
  memres::profile_clear();
}
