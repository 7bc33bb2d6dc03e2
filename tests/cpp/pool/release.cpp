// memres's two pools (each test runs on both): release, trim, destruction, and
// upstreams that throw.
#include <memres/memres.hpp>

#include <cstring>
#include <vector>

#include "pool_test.hpp"

using support::tracking_resource;

POOL_TEST(release_returns_everything) {
  tracking_resource t;
  Pool r(&t);
  for (std::size_t size : {8, 100, 1000, 4000, 100000})
    for (int i = 0; i < 10; ++i) (void)r.allocate(size, 8);
  r.release();
  CHECK(t.live_blocks() == 0);
  CHECK(r.bytes_held() == 0);
  r.release();
  // Still usable: a block, written, held from upstream again.
  std::memset(r.allocate(100, 8), 1, 100);
  CHECK(r.bytes_held() > 0);
}

POOL_TEST(stats_json_reports_the_classes) {
  tracking_resource t;
  Pool r(&t);
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(r.allocate(24, 8));
  std::string json = r.stats_json();
  CHECK(support::json_number(json, "bytes_held") == r.bytes_held());
  CHECK(support::json_number(json, "upstream_allocs") == t.allocs);
  CHECK(support::json_number(json, "upstream_frees") == t.frees);
  // The one class in use: 24-byte blocks, 100 of them live.
  const std::size_t at = json.find("\"classes\":[{");
  CHECK(at != std::string::npos);
  CHECK(support::json_number(json, "block_size", at) == 24);
  CHECK(support::json_number(json, "blocks_live", at) == 100);
  CHECK(support::json_number(json, "chunks", at) >= 1);
  for (void* p : blocks) r.deallocate(p, 24, 8);
  json = r.stats_json();
  CHECK(support::json_number(json, "blocks_live", json.find("\"classes\"")) == 0);
}

POOL_TEST(destructor_returns_everything) {
  tracking_resource t;
  {
    Pool r(&t);
    for (int i = 0; i < 1000; ++i) (void)r.allocate(static_cast<std::size_t>(8 + i % 300), 8);
  }
  CHECK(t.live_blocks() == 0);
}

POOL_TEST(trim_returns_only_free_chunks) {
  tracking_resource t;
  Pool r(&t);
  std::vector<void*> blocks;
  for (int i = 0; i < 2000; ++i) blocks.push_back(r.allocate(64, 8));
  void* keep = blocks[1234];
  std::memset(keep, 0x5A, 64);
  for (void* p : blocks)
    if (p != keep) r.deallocate(p, 64, 8);
  const std::size_t before = r.bytes_held();
  const std::size_t returned = r.trim();
  CHECK(returned > 0);
  CHECK(r.bytes_held() == before - returned);
  CHECK(t.live_blocks() == 1);
  for (int i = 0; i < 64; ++i) CHECK(static_cast<unsigned char*>(keep)[i] == 0x5A);
}

// libstdc++ 12's pools crash on the next allocation after an upstream threw
// in the middle of a refill.
POOL_TEST(throwing_upstream_mid_refill_leaves_the_pool_usable) {
  tracking_resource t;
  Pool r(&t);
  support::blocks b;
  t.throw_after = 2;
  try {
    for (;;) b.add(r.allocate(200, 8), 200, 8);
  } catch (const std::bad_alloc&) {
  }
  t.throw_custom = true;
  t.throw_after = 0;
  CHECK_THROWS_AS(r.allocate(100000, 8), support::custom_error);
  t.throw_after = -1;
  for (int i = 0; i < 100; ++i) b.add(r.allocate(200, 8), 200, 8);
  b.verify();
}

POOL_TEST(containers_match_std) {
  std::pmr::unsynchronized_pool_resource theirs;
  Pool ours;
  CHECK(support::container_workload(&theirs) == support::container_workload(&ours));
}
