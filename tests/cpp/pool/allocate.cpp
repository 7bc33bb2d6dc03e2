// memres's two pools (each test runs on both): allocate and deallocate.
#include <memres/memres.hpp>

#include <cstdio>
#include <set>

#include "pool_test.hpp"

using support::tracking_resource;

POOL_TEST(allocate_every_alignment_and_size) {
  tracking_resource t;
  Pool r(&t);
  support::blocks b;
  for (std::size_t align = 1; align <= 8192; align *= 2)
    for (std::size_t size : {1, 2, 3, 7, 8, 24, 100, 1000, 5000}) b.add(r.allocate(size, align), size, align);
  b.verify();
}

// GCC PR 118681: libstdc++'s pools return 24-byte blocks at alignment 16
// that are only 8-aligned.
POOL_TEST(regression_gcc_118681) {
  Pool r;
  for (int i = 0; i < 100; ++i) CHECK(reinterpret_cast<std::uintptr_t>(r.allocate(24, 16)) % 16 == 0);
}

POOL_TEST(allocate_zero_bytes_gives_distinct_pointers) {
  Pool r;
  std::set<void*> seen;
  for (int i = 0; i < 100; ++i) CHECK(seen.insert(r.allocate(0, 1)).second);
}

POOL_TEST(freed_blocks_are_reused_without_upstream_calls) {
  tracking_resource t;
  Pool r(&t);
  void* a = r.allocate(48, 8);
  r.deallocate(a, 48, 8);
  CHECK(r.allocate(48, 8) == a);
  const std::size_t calls = t.allocs;
  for (int i = 0; i < 10000; ++i) r.deallocate(r.allocate(64, 8), 64, 8);
  CHECK(t.allocs == calls + 1);  // one chunk for the 64-byte class
}

POOL_TEST(oversize_goes_upstream_and_comes_back) {
  tracking_resource t;
  Pool r(std::pmr::pool_options{0, 256}, &t);
  void* a = r.allocate(257, 8);
  void* b = r.allocate(100, 8192);
  CHECK(reinterpret_cast<std::uintptr_t>(b) % 8192 == 0);
  CHECK(t.live_blocks() == 2);
  r.deallocate(a, 257, 8);
  r.deallocate(b, 100, 8192);
  CHECK(t.live_blocks() == 0);
}

POOL_TEST(bad_alignment_throws_and_huge_sizes_throw_bad_alloc) {
  tracking_resource t;
  Pool r(&t);
  CHECK_THROWS_AS(r.allocate(8, 3), std::invalid_argument);
  CHECK_THROWS_AS(r.allocate(8, 0), std::invalid_argument);
  volatile std::size_t all = SIZE_MAX;  // volatile: GCC rejects a constant this large
  CHECK_THROWS_AS(r.allocate(all, 8), std::bad_alloc);
  CHECK_THROWS_AS(r.allocate(std::size_t{1} << 62, 1), std::bad_alloc);
  support::blocks b;
  b.add(r.allocate(100, 8), 100, 8);
  b.verify();
}

// The header's lookup table for sizes up to 1024 and its formula agree,
// except that nothing is served below the 16-byte class.
TEST(pool_class_table_matches_the_formula) {
  for (std::size_t size = 1; size <= 1024; ++size)
    CHECK(memres::detail::pool_class_of(size, 1, std::size_t{1} << 20) ==
          memres::detail::pool_class_of_size(size < 16 ? 16 : size));
  CHECK(memres::detail::pool_class_of(1, 1, std::size_t{1} << 20) == memres::detail::pool_min_class);
}

// The header's classes are the Rust core's: for every size up to past the
// pool limit and every alignment (and some that are not powers of two), in
// pools of the largest, the heap's (32 KiB), the default and an odd limit,
// the inline lookup and the core pick the same class, or both go upstream.
TEST(pool_classes_agree_with_the_rust_core_for_every_size_and_alignment) {
  std::size_t mismatches = 0;
  for (std::size_t largest : {std::size_t{1} << 20, std::size_t{32} << 10, std::size_t{4096}, std::size_t{104}}) {
    for (std::size_t align : {0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 3, 24}) {
      for (std::size_t size = 0; size <= largest + 8192; ++size) {
        const std::size_t header = memres::detail::pool_class_of(size, align, largest);
        const std::size_t core = memres::detail::core_pool_class_of(size, align, largest);
        if (header != core && ++mismatches <= 5)
          std::fprintf(stderr, "size %zu align %zu largest %zu: header class %zu, core class %zu\n", size, align,
                       largest, header, core);
      }
    }
  }
  CHECK(mismatches == 0);
}
