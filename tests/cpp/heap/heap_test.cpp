// memres::heap_resource(): std::pmr containers on it, std's edge cases
// (zero bytes, SIZE_MAX, bad and huge alignments), frees from other threads.
#include <memres/memres.hpp>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../check.hpp"
#include "../support.hpp"

namespace {

bool aligned(const void* p, std::size_t alignment) { return reinterpret_cast<std::uintptr_t>(p) % alignment == 0; }

}  // namespace

TEST(heap_resource_is_one_process_wide_resource) {
  std::pmr::memory_resource* heap = memres::heap_resource();
  REQUIRE(heap != nullptr);
  CHECK(heap == memres::heap_resource());
  CHECK(heap->is_equal(*memres::heap_resource()));
  CHECK(!heap->is_equal(*std::pmr::new_delete_resource()));
}

TEST(containers_on_the_heap_give_the_same_results_as_on_new_delete) {
  auto build = [](std::pmr::memory_resource* r) {
    std::pmr::map<int, std::pmr::string> m(r);
    std::pmr::list<int> l(r);
    for (int i = 0; i < 20000; ++i) {
      m.emplace(i * 7919 % 10007, std::pmr::string(static_cast<std::size_t>(i % 60), 'a'));
      l.push_back(i);
      if (i % 3 == 0) l.pop_front();
    }
    std::size_t h = m.size() * 31 + l.size();
    for (const auto& [k, v] : m) h = h * 131 + static_cast<std::size_t>(k) + v.size();
    return h;
  };
  CHECK(build(memres::heap_resource()) == build(std::pmr::new_delete_resource()));
}

TEST(zero_byte_requests_return_distinct_pointers) {
  std::pmr::memory_resource* heap = memres::heap_resource();
  void* a = heap->allocate(0, 8);
  void* b = heap->allocate(0, 8);
  CHECK(a != nullptr && b != nullptr && a != b);
  heap->deallocate(a, 0, 8);
  heap->deallocate(b, 0, 8);
}

TEST(alignments_up_to_a_megabyte_are_honoured) {
  std::pmr::memory_resource* heap = memres::heap_resource();
  for (std::size_t alignment = 1; alignment <= (std::size_t{1} << 20); alignment *= 2) {
    for (std::size_t size : {std::size_t{1}, std::size_t{24}, std::size_t{5000}, std::size_t{100000}}) {
      void* p = heap->allocate(size, alignment);
      CHECK(aligned(p, alignment));
      static_cast<char*>(p)[0] = 1;
      static_cast<char*>(p)[size - 1] = 2;
      heap->deallocate(p, size, alignment);
    }
  }
}

TEST(impossible_requests_throw_bad_alloc_and_bad_alignment_invalid_argument) {
  std::pmr::memory_resource* heap = memres::heap_resource();
  // libstdc++'s aligned new_delete_resource() returns a tiny block for
  // allocate(SIZE_MAX, 8) (its size arithmetic overflows); ours throws.
  volatile std::size_t max = SIZE_MAX;  // volatile: the compiler warns of constant huge sizes
  CHECK_THROWS_AS(heap->allocate(max, 8), std::bad_alloc);
  CHECK_THROWS_AS(heap->allocate(max - 4096, 64), std::bad_alloc);
  CHECK_THROWS_AS(heap->allocate(max / 2, 1), std::bad_alloc);
  CHECK_THROWS_AS(heap->allocate(64, 3), std::invalid_argument);
  void* p = heap->allocate(64, 8);  // still usable
  heap->deallocate(p, 64, 8);
}

TEST(blocks_freed_by_other_threads) {
  std::pmr::memory_resource* heap = memres::heap_resource();
  std::vector<std::pair<void*, std::size_t>> blocks;
  for (std::size_t i = 0; i < 20000; ++i) {
    const std::size_t size = 16 + (i * 37) % 3000;
    void* p = heap->allocate(size, 8);
    static_cast<unsigned char*>(p)[size - 1] = static_cast<unsigned char>(i);
    blocks.emplace_back(p, size);
  }
  std::thread other([&] {
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      auto [p, size] = blocks[i];
      CHECK(static_cast<unsigned char*>(p)[size - 1] == static_cast<unsigned char>(i));
      heap->deallocate(p, size, 8);
    }
  });
  other.join();
  // The owner gets the blocks back.
  std::pmr::vector<int> v(heap);
  for (int i = 0; i < 100000; ++i) v.push_back(i);
  CHECK(v[99999] == 99999);
}

TEST(small_blocks_take_the_inline_path) {
#if defined(MEMRES_DEBUG_CHECKS)
  CHECK(!memres::detail::heap_inline_fast_path());
#else
  CHECK(memres::detail::heap_inline_fast_path());
#endif
  // Blocks that fill pages and empty them again (the last free of a page
  // goes through Rust), with contents checked.
  std::pmr::memory_resource* heap = memres::heap_resource();
  // Secure mode holds freed blocks back (counted as allocated) until a purge.
  const bool secure = memres::heap_secure();
  if (secure) memres::heap_purge();
  const std::size_t base = memres::get_heap_stats().allocated;
  std::vector<unsigned char*> blocks;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = 0; i < 20000; ++i) {
      const std::size_t size = 1 + (i * 37) % 700;
      auto* p = static_cast<unsigned char*>(heap->allocate(size, 8));
      std::memset(p, static_cast<int>(i & 0xff), size);
      blocks.push_back(p);
    }
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const std::size_t size = 1 + (i * 37) % 700;
      CHECK(blocks[i][0] == static_cast<unsigned char>(i & 0xff) && blocks[i][size - 1] == blocks[i][0]);
      heap->deallocate(blocks[i], size, 8);
    }
    blocks.clear();
  }
  if (secure) memres::heap_purge();
  CHECK(memres::get_heap_stats().allocated == base);
}

TEST(the_heap_as_the_default_upstream_of_memres_resources) {
  std::pmr::memory_resource* const old = std::pmr::set_default_resource(memres::heap_resource());
  {
    const std::size_t before = memres::get_heap_stats().allocated;
    memres::monotonic_buffer_resource arena(1u << 20);
    memres::unsynchronized_pool_resource unsync;
    memres::synchronized_pool_resource sync;
    CHECK(arena.upstream_resource() == memres::heap_resource());
    CHECK(unsync.upstream_resource() == memres::heap_resource());
    CHECK(sync.upstream_resource() == memres::heap_resource());
    std::pmr::vector<int> a(&arena), b(&unsync), c(&sync);
    for (int i = 0; i < 10000; ++i) a.push_back(i), b.push_back(i), c.push_back(i);
    CHECK(a[9999] + b[9999] + c[9999] == 3 * 9999);
    CHECK(memres::get_heap_stats().allocated >= before + (1u << 20));
  }
  std::pmr::set_default_resource(old);
}

TEST(stats_and_purge) {
  std::pmr::memory_resource* heap = memres::heap_resource();
  // Secure mode holds freed blocks back (counted as allocated) until a purge.
  const bool secure = memres::heap_secure();
  if (secure) memres::heap_purge();
  const memres::heap_stats base = memres::get_heap_stats();
  const std::vector<memres::heap_class_stats> classes = memres::get_heap_class_stats();
  CHECK(classes.size() > 40 && classes.back().size == 0);
  std::size_t cls = 0;
  while (classes[cls].size < 6000) ++cls;
  std::vector<void*> blocks;
  for (int i = 0; i < 2000; ++i) blocks.push_back(heap->allocate(6000, 8));
  const memres::heap_stats during = memres::get_heap_stats();
  CHECK(during.allocated >= base.allocated + 2000u * 6000u);
  CHECK(during.active >= during.allocated && during.resident >= during.active);
  CHECK(during.mapped == during.resident + during.retained);
  CHECK(memres::get_heap_class_stats()[cls].live == classes[cls].live + 2000);
  for (void* p : blocks) heap->deallocate(p, 6000, 8);
  if (!secure) CHECK(memres::get_heap_stats().allocated == base.allocated);
  const std::size_t resident = memres::get_heap_stats().resident;
  const std::size_t purged = memres::heap_purge();
  CHECK(memres::get_heap_stats().allocated == base.allocated);
  CHECK(purged > 0);
  CHECK(memres::get_heap_stats().resident + purged / 2 <= resident);
}

TEST(stats_json_matches_the_stats) {
  std::pmr::memory_resource* heap = memres::heap_resource();
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(heap->allocate(48, 8));
  // No heap allocation between the two reads (std::string and the Rust
  // String come from the process allocator, not heap_resource()).
  const memres::heap_stats s = memres::get_heap_stats();
  const std::string json = memres::heap_stats_json();
  CHECK(support::json_number(json, "allocated") == s.allocated);
  CHECK(support::json_number(json, "mapped") == s.mapped);
  const std::size_t at = json.find("{\"size\":48,");
  CHECK(at != std::string::npos);
  CHECK(support::json_number(json, "live", at) >= 1000);
  for (void* p : blocks) heap->deallocate(p, 48, 8);
}

TEST(secure_mode_holds_freed_blocks_back_and_zeroes_them) {
  // Run by ctest twice: as is, and with MEMRES_SECURE=1 (test heap_secure).
  const char* asked = std::getenv("MEMRES_SECURE");
  if (asked != nullptr && std::strcmp(asked, "1") == 0) CHECK(memres::heap_secure());
  std::pmr::memory_resource* heap = memres::heap_resource();
  void* a = heap->allocate(48, 8);
  std::memset(a, 0xab, 48);
  const auto was = reinterpret_cast<std::uintptr_t>(a);
  heap->deallocate(a, 48, 8);
  bool came_back = false;
  for (int i = 0; i < 100; ++i) {
    void* b = heap->allocate(48, 8);
    came_back |= reinterpret_cast<std::uintptr_t>(b) == was;
    heap->deallocate(b, 48, 8);
  }
  // The default mode hands the freed block out again at once (a page's
  // free list is last in, first out); secure mode holds it back.
  CHECK(came_back == !memres::heap_secure());
}

TEST(hard_limit_throws_bad_alloc_and_lifting_it_recovers) {
  std::pmr::memory_resource* heap = memres::heap_resource();
  memres::heap_purge();
  const memres::heap_limits before = memres::get_heap_limits();
  memres::set_heap_limits({0, memres::get_heap_stats().resident + (8u << 20)});
  CHECK(memres::get_heap_limits().hard != 0 && memres::get_heap_limits().soft == 0);
  std::vector<void*> blocks;
  bool threw = false;
  try {
    for (int i = 0; i < 64; ++i) blocks.push_back(heap->allocate(1u << 20, 8));
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(blocks.size() >= 4 && blocks.size() <= 8);
  for (void* p : blocks) heap->deallocate(p, 1u << 20, 8);
  memres::set_heap_limits(before);
  void* p = heap->allocate(16u << 20, 8);
  heap->deallocate(p, 16u << 20, 8);
}

// A C++ thread_local made before the thread's first heap allocation is
// destroyed after the Rust heap's own thread-locals (destructors run in
// reverse order of registration): its destructor still allocates and frees
// through heap_resource() (the Rust side then serves it from the shared
// orphan heap) and through a synchronized pool (whose thread cache is gone:
// straight to the pool's central lists), and blocks come back intact.
namespace {
std::atomic<int> late_destructor_checks{0};
struct late_user {
  memres::synchronized_pool_resource* pool = nullptr;
  void* from_before = nullptr;  // a heap block allocated while the thread was young
  ~late_user() {
    std::pmr::memory_resource* heap = memres::heap_resource();
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < 200; ++i) {
      void* p = heap->allocate(16 + i * 8, 8);
      std::memset(p, static_cast<int>(i), 16 + i * 8);
      blocks.push_back(p);
    }
    bool intact = true;
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      const auto* bytes = static_cast<const unsigned char*>(blocks[i]);
      for (std::size_t k = 0; k < 16 + i * 8; ++k) intact = intact && bytes[k] == static_cast<unsigned char>(i);
      heap->deallocate(blocks[i], 16 + i * 8, 8);
    }
    heap->deallocate(from_before, 64, 8);
    for (int i = 0; i < 100; ++i) {
      void* p = pool->allocate(48);
      std::memset(p, 0x33, 48);
      pool->deallocate(p, 48);
    }
    if (intact) late_destructor_checks.fetch_add(1);
  }
};
}  // namespace

TEST(thread_local_destructors_after_the_rust_teardown_use_the_heap_and_pools) {
  memres::synchronized_pool_resource pool;
  std::thread t([&] {
    thread_local late_user late;  // registered first: destroyed last
    late.pool = &pool;
    late.from_before = memres::heap_resource()->allocate(64, 8);
    void* q = pool.allocate(48);  // the thread's pool cache exists too
    pool.deallocate(q, 48);
  });
  t.join();
  CHECK(late_destructor_checks.load() == 1);
  // Everyone else carries on.
  void* p = memres::heap_resource()->allocate(100, 8);
  memres::heap_resource()->deallocate(p, 100, 8);
  void* q = pool.allocate(48);
  pool.deallocate(q, 48);
}
