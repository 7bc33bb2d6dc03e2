// memres::monotonic_buffer_resource: failing upstreams, budgets, chaining.
#include <memres/memres.hpp>

#include "../support.hpp"

using memres::monotonic_buffer_resource;
using support::tracking_resource;

TEST(monotonic_upstream_bad_alloc_propagates_and_resource_recovers) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  t.throw_after = 0;
  CHECK_THROWS_AS(r.allocate(100), std::bad_alloc);
  t.throw_after = -1;
  support::blocks b;
  b.add(r.allocate(100, 8), 100, 8);
  b.verify();
}

TEST(monotonic_upstream_exception_type_is_preserved) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  t.throw_after = 0;
  t.throw_custom = true;
  CHECK_THROWS_AS(r.allocate(100), support::custom_error);
  t.throw_after = -1;
  // Still usable: the next request reaches upstream and succeeds.
  static_cast<char*>(r.allocate(100))[99] = 1;
  CHECK(t.live_blocks() == 1);
}

TEST(monotonic_upstream_failing_mid_growth_keeps_earlier_blocks) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  support::blocks b;
  t.throw_after = 3;
  try {
    for (;;) b.add(r.allocate(200, 8), 200, 8);
  } catch (const std::bad_alloc&) {
  }
  b.verify();
  t.throw_after = -1;
  b.add(r.allocate(5000, 8), 5000, 8);
  b.verify();
}

TEST(monotonic_budget_throws_bad_alloc) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  CHECK(r.budget() == SIZE_MAX);
  r.set_budget(16 << 10);
  CHECK(r.budget() == 16 << 10);
  std::size_t n = 0;
  try {
    for (;;) {
      (void)r.allocate(100, 8);
      ++n;
    }
  } catch (const std::bad_alloc&) {
  }
  CHECK(r.stats().held <= 16 << 10);
  CHECK(n * 100 + 2 * support::chunk_overhead > 14 << 10);  // nearly all of it
  r.set_budget(SIZE_MAX);
  // Past the old budget now.
  static_cast<char*>(r.allocate(100000))[99999] = 1;
  CHECK(r.stats().held > 100000);
}

TEST(monotonic_chains_over_memres_and_std_resources) {
  tracking_resource t;
  monotonic_buffer_resource parent(&t);
  std::pmr::unsynchronized_pool_resource pool(&parent);
  monotonic_buffer_resource child(&pool);
  support::blocks b;
  for (int i = 0; i < 1000; ++i) b.add(child.allocate(64, 8), 64, 8);
  b.verify();
  CHECK(t.allocs > 0);
  CHECK(t.frees == 0);
}
