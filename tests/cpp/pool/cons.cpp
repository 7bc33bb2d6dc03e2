// memres's two pools (each test runs on both): std's four constructors and options().
#include <memres/memres.hpp>

#include "pool_test.hpp"

using support::tracking_resource;

POOL_TEST(cons_default_takes_the_default_resource) {
  tracking_resource t;
  support::default_resource_guard g(&t);
  Pool r;
  CHECK(r.upstream_resource() == &t);
  (void)r.allocate(16);
  CHECK(t.allocs == 1);
}

POOL_TEST(cons_upstream_and_options) {
  tracking_resource t;
  Pool a(&t);
  CHECK(a.upstream_resource() == &t);
  Pool b(std::pmr::pool_options{16, 512}, &t);
  CHECK(b.options().max_blocks_per_chunk == 16);
  CHECK(b.options().largest_required_pool_block == 512);
  support::default_resource_guard g(&t);
  Pool c(std::pmr::pool_options{0, 0});
  CHECK(c.upstream_resource() == &t);
}

POOL_TEST(options_are_normalised) {
  Pool a(std::pmr::pool_options{0, 0});
  CHECK(a.options().max_blocks_per_chunk == 1024);
  CHECK(a.options().largest_required_pool_block == 4096);
  Pool b(std::pmr::pool_options{SIZE_MAX, SIZE_MAX});
  CHECK(b.options().max_blocks_per_chunk == 65536);
  CHECK(b.options().largest_required_pool_block == std::size_t{1} << 20);
  Pool c(std::pmr::pool_options{1, 100});
  CHECK(c.options().largest_required_pool_block == 104);  // rounded up to a class
}

POOL_TEST(cons_null_upstream_is_rejected) {
  CHECK_THROWS_AS(Pool(static_cast<std::pmr::memory_resource*>(nullptr)),
                  std::invalid_argument);
}

POOL_TEST(is_equal_is_identity) {
  Pool a, b;
  CHECK(a == a);
  CHECK(a != b);
}
