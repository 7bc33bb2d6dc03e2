// memres::monotonic_buffer_resource: allocate and deallocate.
#include <memres/memres.hpp>

#include <set>

#include "../support.hpp"

using memres::monotonic_buffer_resource;
using support::tracking_resource;

TEST(monotonic_allocate_every_alignment_and_size) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  support::blocks b;
  for (std::size_t align = 1; align <= 4096; align *= 2)
    for (std::size_t size : {1, 2, 3, 7, 8, 24, 100, 1000, 5000}) b.add(r.allocate(size, align), size, align);
  b.verify();
}

TEST(monotonic_allocate_zero_bytes_gives_distinct_pointers) {
  monotonic_buffer_resource r;
  std::set<void*> seen;
  for (int i = 0; i < 100; ++i) {
    void* p = r.allocate(0, 1);
    CHECK(p != nullptr);
    CHECK(seen.insert(p).second);
  }
}

TEST(monotonic_deallocate_has_no_effect) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  void* a = r.allocate(64, 8);
  r.deallocate(a, 64, 8);
  void* b = r.allocate(64, 8);
  CHECK(a != b);  // std: a deallocated block is never handed out again
  CHECK(t.frees == 0);
}

TEST(monotonic_allocate_grows_from_a_one_byte_initial_size) {
  tracking_resource t;
  monotonic_buffer_resource r(1, &t);
  support::blocks b;
  for (int i = 0; i < 2000; ++i) b.add(r.allocate(100, 8), 100, 8);
  b.verify();
  CHECK(t.allocs < 16);  // geometric growth, not a chunk per request
}

TEST(monotonic_allocate_huge_throws_bad_alloc_and_stays_usable) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  volatile std::size_t all = SIZE_MAX;  // volatile: GCC rejects a constant this large
  CHECK_THROWS_AS(r.allocate(all, 8), std::bad_alloc);
  CHECK_THROWS_AS(r.allocate(SIZE_MAX / 2, 4096), std::bad_alloc);
  CHECK_THROWS_AS(r.allocate(std::size_t{1} << 62, 1), std::bad_alloc);
  support::blocks b;
  b.add(r.allocate(100, 8), 100, 8);
  b.verify();
}

TEST(monotonic_allocate_bad_alignment_throws_invalid_argument) {
  monotonic_buffer_resource r;
  CHECK_THROWS_AS(r.allocate(8, 3), std::invalid_argument);
  CHECK_THROWS_AS(r.allocate(8, 0), std::invalid_argument);
  CHECK_THROWS_AS(r.allocate(8, 48), std::invalid_argument);
  support::blocks b;
  b.add(r.allocate(8, 8), 8, 8);
}

TEST(monotonic_allocate_large_request_keeps_the_current_chunk) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  char* a = static_cast<char*>(r.allocate(16, 8));
  (void)r.allocate(1 << 20, 8);
  char* b = static_cast<char*>(r.allocate(16, 8));
  CHECK(b == a + 16);
  CHECK(t.allocs == 2);
}

TEST(monotonic_allocate_gigabyte_alignment_is_served_or_refused_cleanly) {
  tracking_resource t;
  monotonic_buffer_resource r(&t);
  try {
    void* p = r.allocate(8, std::size_t{1} << 30);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % (std::size_t{1} << 30) == 0);
  } catch (const std::bad_alloc&) {
  }
  support::blocks b;
  b.add(r.allocate(100, 8), 100, 8);
  b.verify();
}
