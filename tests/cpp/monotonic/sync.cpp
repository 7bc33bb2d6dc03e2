// memres::synchronized_monotonic_buffer_resource: one arena that several
// threads allocate from at once. Every block keeps its contents, no two
// threads' blocks overlap, a thread's newest block rolls back, reset() takes
// everything back and the next cycle makes no upstream call. CI also runs it
// under ThreadSanitizer (MEMRES_SANITIZE=thread).
#include <memres/memres.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "../support.hpp"

TEST(sync_monotonic_threads_allocate_at_once_and_reset_takes_it_all) {
  support::tracking_resource upstream;
  memres::synchronized_monotonic_buffer_resource arena(&upstream);
  CHECK(arena.upstream_resource() == &upstream);
  for (int cycle = 0; cycle < 4; ++cycle) {
    std::vector<std::vector<std::pair<std::uintptr_t, std::uintptr_t>>> ranges(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&arena, &ranges, t, cycle] {
        std::pmr::vector<std::pmr::string> strings(&arena);
        std::pmr::vector<long> numbers(&arena);
        for (int i = 0; i < 2000; ++i) {
          strings.emplace_back(std::to_string(t * 100000 + i + cycle) + std::string(40, 'x'));
          numbers.push_back(static_cast<long>(i) * t);
        }
        for (int i = 0; i < 2000; ++i) {
          CHECK(std::string_view(strings[i]).substr(0, strings[i].size() - 40) ==
                std::to_string(t * 100000 + i + cycle));
          CHECK(numbers[i] == static_cast<long>(i) * t);
        }
        for (auto& s : strings) {
          const auto a = reinterpret_cast<std::uintptr_t>(s.data());
          ranges[t].push_back({a, a + s.size()});
        }
        const auto n = reinterpret_cast<std::uintptr_t>(numbers.data());
        ranges[t].push_back({n, n + numbers.size() * sizeof(long)});
        // The containers free into the arena (only the newest blocks roll back).
      });
    }
    for (auto& th : threads) th.join();
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> all;
    for (auto& r : ranges) all.insert(all.end(), r.begin(), r.end());
    std::sort(all.begin(), all.end());
    for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i - 1].second <= all[i].first);
    CHECK(arena.stats().used > 0);
    const std::size_t upstream_calls = upstream.allocs;
    arena.reset();
    CHECK(arena.stats().used == 0);
    if (cycle > 1) CHECK(upstream.allocs == upstream_calls);  // settled: reset made no call either
  }
  arena.release();
  CHECK(upstream.live_blocks() == 0);
}

TEST(sync_monotonic_stats_json_matches_stats) {
  memres::synchronized_monotonic_buffer_resource r;
  std::thread([&r] {
    for (int i = 0; i < 1000; ++i) (void)r.allocate(32, 8);
  }).join();
  const memres::monotonic_stats s = r.stats();
  const std::string json = r.stats_json();
  CHECK(s.used >= 32000);
  CHECK(support::json_number(json, "used") == s.used);
  CHECK(support::json_number(json, "held") == s.held);
  CHECK(support::json_number(json, "upstream_allocs") == s.upstream_allocs);
}

TEST(sync_monotonic_newest_block_rolls_back_and_big_blocks_are_served) {
  memres::synchronized_monotonic_buffer_resource arena;
  void* a = arena.allocate(100, 8);
  arena.deallocate(a, 100, 8);
  void* b = arena.allocate(100, 8);
  CHECK(a == b);
  void* big = arena.allocate(1 << 20, 64);
  CHECK(reinterpret_cast<std::uintptr_t>(big) % 64 == 0);
  static_cast<char*>(big)[(1 << 20) - 1] = 1;
  void* aligned = arena.allocate(10, 8192);
  CHECK(reinterpret_cast<std::uintptr_t>(aligned) % 8192 == 0);
  bool threw = false;
  try {
    (void)arena.allocate(8, 3);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
  CHECK(arena.is_equal(arena) && !arena.is_equal(*std::pmr::new_delete_resource()));
}

TEST(sync_monotonic_upstream_failure_is_bad_alloc_and_the_arena_recovers) {
  support::tracking_resource upstream;
  memres::synchronized_monotonic_buffer_resource arena(&upstream);
  upstream.throw_after = 0;
  bool threw = false;
  try {
    (void)arena.allocate(64, 8);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw);
  upstream.throw_after = -1;
  // Usable again: the next request reaches upstream and succeeds.
  static_cast<char*>(arena.allocate(64, 8))[63] = 1;
  CHECK(upstream.live_blocks() == 1);
}
