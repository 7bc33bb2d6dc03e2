// memres::monotonic_buffer_resource: std's six constructors and their effects.
#include <memres/memres.hpp>

#include <cstdio>
#include <memory_resource>

#include "../support.hpp"

using memres::monotonic_buffer_resource;
using support::tracking_resource;

TEST(monotonic_cons_default_takes_the_default_resource_at_construction) {
  tracking_resource t;
  monotonic_buffer_resource* r;
  {
    support::default_resource_guard g(&t);
    r = new monotonic_buffer_resource();
  }
  CHECK(r->upstream_resource() == &t);
  (void)r->allocate(10);
  CHECK(t.allocs == 1);
  delete r;
  CHECK(t.live_blocks() == 0);
}

TEST(monotonic_cons_upstream) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  CHECK(r.upstream_resource() == &t);
  CHECK(t.allocs == 0);  // lazy: nothing until the first allocation
}

TEST(monotonic_cons_initial_size_sets_the_first_chunk) {
  tracking_resource t;
  {
    support::default_resource_guard g(&t);
    monotonic_buffer_resource r(std::size_t{10000});
    (void)r.allocate(1);
    REQUIRE(t.sizes.size() == 1);
    CHECK(t.sizes[0] >= 10000);
  }
  monotonic_buffer_resource r(std::size_t{3000}, &t);
  (void)r.allocate(1);
  REQUIRE(t.sizes.size() == 2);
  CHECK(t.sizes[1] >= 3000);
  CHECK(t.sizes[1] < 3000 + support::chunk_overhead);
}

// std's initial_size counts usable bytes: libstdc++ and libc++ add their
// chunk header to the first upstream request, so allocate(1) then
// allocate(initial_size - 1) fits the first chunk. The same check runs on
// std's own class, so the test states std's behaviour, not ours.
template <class Resource>
static void initial_size_is_usable(const char* name) {
  for (std::size_t n : {1, 2, 7, 100, 255, 256, 999, 1000, 1024, 1025, 4000, 4096, 10000, 65536, 1000000}) {
    tracking_resource t;
    Resource r(n, &t);
    (void)r.allocate(1, 1);
    if (n > 1) (void)r.allocate(n - 1, 1);
    if (t.allocs != 1) std::fprintf(stderr, "%s, initial_size %zu: %zu upstream requests\n", name, n, t.allocs);
    CHECK(t.allocs == 1);
    CHECK(t.sizes.at(0) > n);  // the chunk's bookkeeping comes on top
  }
}

TEST(monotonic_cons_initial_size_counts_usable_bytes_as_std_does) {
  initial_size_is_usable<std::pmr::monotonic_buffer_resource>("std");
  initial_size_is_usable<monotonic_buffer_resource>("memres");
}

TEST(monotonic_cons_buffer_is_used_first) {
  tracking_resource t;
  alignas(16) char buf[512];
  monotonic_buffer_resource r(buf, sizeof buf, &t);
  char* p = static_cast<char*>(r.allocate(100));
  CHECK(p >= buf && p + 100 <= buf + sizeof buf);
  CHECK(t.allocs == 0);
  (void)r.allocate(1000);
  CHECK(t.allocs == 1);
  {
    support::default_resource_guard g(&t);
    monotonic_buffer_resource r2(buf, sizeof buf);
    CHECK(r2.upstream_resource() == &t);
  }
}

TEST(monotonic_cons_null_upstream_is_rejected) {
  CHECK_THROWS_AS(monotonic_buffer_resource(static_cast<std::pmr::memory_resource*>(nullptr)),
                  std::invalid_argument);
}

TEST(monotonic_is_equal_is_identity) {
  monotonic_buffer_resource a, b;
  CHECK(a.is_equal(a));
  CHECK(!a.is_equal(b));
  CHECK(a == a);
  CHECK(a != b);
}

TEST(the_header_and_the_linked_core_are_one_version) {
  const memres::version_info v = memres::version();
  CHECK(v.major == MEMRES_VERSION_MAJOR);
  CHECK(v.minor == MEMRES_VERSION_MINOR);
  CHECK(v.patch == MEMRES_VERSION_PATCH);
}
