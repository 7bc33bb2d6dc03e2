// memres::unsynchronized_pool_resource: std's four constructors and options().
#include <memres/memres.hpp>

#include "../support.hpp"

using memres::unsynchronized_pool_resource;
using support::tracking_resource;

TEST(unsync_pool_cons_default_takes_the_default_resource) {
  tracking_resource t;
  support::default_resource_guard g(&t);
  unsynchronized_pool_resource r;
  CHECK(r.upstream_resource() == &t);
  (void)r.allocate(16);
  CHECK(t.allocs == 1);
}

TEST(unsync_pool_cons_upstream_and_options) {
  tracking_resource t;
  unsynchronized_pool_resource a(&t);
  CHECK(a.upstream_resource() == &t);
  unsynchronized_pool_resource b(std::pmr::pool_options{16, 512}, &t);
  CHECK(b.options().max_blocks_per_chunk == 16);
  CHECK(b.options().largest_required_pool_block == 512);
  support::default_resource_guard g(&t);
  unsynchronized_pool_resource c(std::pmr::pool_options{0, 0});
  CHECK(c.upstream_resource() == &t);
}

TEST(unsync_pool_options_are_normalised) {
  unsynchronized_pool_resource a(std::pmr::pool_options{0, 0});
  CHECK(a.options().max_blocks_per_chunk == 1024);
  CHECK(a.options().largest_required_pool_block == 4096);
  unsynchronized_pool_resource b(std::pmr::pool_options{SIZE_MAX, SIZE_MAX});
  CHECK(b.options().max_blocks_per_chunk == 65536);
  CHECK(b.options().largest_required_pool_block == std::size_t{1} << 20);
  unsynchronized_pool_resource c(std::pmr::pool_options{1, 100});
  CHECK(c.options().largest_required_pool_block == 104);  // rounded up to a class
}

TEST(unsync_pool_cons_null_upstream_is_rejected) {
  CHECK_THROWS_AS(unsynchronized_pool_resource(static_cast<std::pmr::memory_resource*>(nullptr)),
                  std::invalid_argument);
}

TEST(unsync_pool_is_equal_is_identity) {
  unsynchronized_pool_resource a, b;
  CHECK(a == a);
  CHECK(a != b);
}
