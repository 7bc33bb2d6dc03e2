// memres::monotonic_buffer_resource: release, reset, destruction and stats.
#include <memres/memres.hpp>

#include "../support.hpp"

using memres::monotonic_buffer_resource;
using support::tracking_resource;

static void fill(std::pmr::memory_resource& r, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes / 64; ++i) (void)r.allocate(64, 16);
}

TEST(monotonic_release_returns_everything) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  fill(r, 100000);
  CHECK(t.live_blocks() > 1);
  r.release();
  CHECK(t.live_blocks() == 0);
  r.release();  // twice is fine
  fill(r, 1000);
  CHECK(t.live_blocks() == 1);
}

TEST(monotonic_destructor_returns_everything) {
  tracking_resource t;
  {
    monotonic_buffer_resource r(&t);
    fill(r, 100000);
  }
  CHECK(t.live_blocks() == 0);
  CHECK(t.frees == t.allocs);
}

TEST(monotonic_release_reuses_the_buffer_and_restarts_growth) {  // LWG 3120
  tracking_resource t;
  alignas(16) char buf[256];
  monotonic_buffer_resource r(buf, sizeof buf, &t);
  fill(r, 20000);
  std::vector<std::size_t> first = t.sizes;
  r.release();
  char* p = static_cast<char*>(r.allocate(16, 8));
  CHECK(p >= buf && p < buf + sizeof buf);
  t.sizes.clear();
  fill(r, 20000 - 64);
  CHECK(t.sizes == first);
}

TEST(monotonic_reset_keeps_the_memory_in_one_chunk) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  fill(r, 100000);
  const std::size_t held = r.stats().held;
  r.reset();
  CHECK(r.stats().chunks == 1);
  CHECK(r.stats().held <= held);
  const std::size_t allocs = t.allocs, frees = t.frees;
  for (int i = 0; i < 10; ++i) {
    CHECK(r.stats().used == 0);
    fill(r, 100000);
    r.reset();
  }
  CHECK(t.allocs == allocs);
  CHECK(t.frees == frees);
}

TEST(monotonic_stats_report_usage) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  (void)r.allocate(100, 1);
  (void)r.allocate(8, 8);
  memres::monotonic_stats s = r.stats();
  CHECK(s.used == 112);
  CHECK(s.chunks == 1);
  CHECK(s.upstream_allocs == 1);
  CHECK(s.upstream_frees == 0);
  CHECK(s.held == t.sizes[0]);
}

TEST(monotonic_stats_json_names_every_field) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  for (int i = 0; i < 100; ++i) (void)r.allocate(100, 8);
  const memres::monotonic_stats s = r.stats();
  const std::string json = r.stats_json();
  CHECK(json.front() == '{' && json.back() == '}');
  CHECK(support::json_number(json, "used") == s.used);
  CHECK(support::json_number(json, "held") == s.held);
  CHECK(support::json_number(json, "chunks") == s.chunks);
  CHECK(support::json_number(json, "upstream_allocs") == s.upstream_allocs);
  CHECK(support::json_number(json, "upstream_frees") == s.upstream_frees);
  CHECK(s.used >= 10000 && s.chunks > 1);
}
