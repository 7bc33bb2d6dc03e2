// memres::synchronized_pool_resource across threads: cross-thread frees with
// contents checked, a producer/consumer pair that must not grow the pool,
// threads that exit while others hold their blocks, and std containers used
// from several threads at once. A stress test, not a benchmark; CI runs it
// under ThreadSanitizer and AddressSanitizer.
#include <memres/memres.hpp>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "../support.hpp"

using memres::synchronized_pool_resource;

namespace {

struct block {
  void* p;
  std::size_t size;
  std::size_t align;
  unsigned char fill;
};

block make(std::pmr::memory_resource& r, std::size_t size, std::size_t align, unsigned char fill) {
  void* p = r.allocate(size, align);
  CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0);
  std::memset(p, fill, size);
  return {p, size, align, fill};
}

void check_and_free(std::pmr::memory_resource& r, const block& b) {
  const auto* bytes = static_cast<const unsigned char*>(b.p);
  bool intact = true;
  for (std::size_t i = 0; i < b.size; ++i) intact &= bytes[i] == b.fill;
  CHECK(intact);
  r.deallocate(b.p, b.size, b.align);
}

// A bounded queue of blocks between two threads.
class channel {
 public:
  explicit channel(std::size_t bound) : bound_(bound) {}
  void send(block b) {
    std::unique_lock<std::mutex> lock(m_);
    not_full_.wait(lock, [&] { return q_.size() < bound_; });
    q_.push_back(b);
    not_empty_.notify_one();
  }
  void close() {
    std::lock_guard<std::mutex> lock(m_);
    closed_ = true;
    not_empty_.notify_all();
  }
  bool receive(block& out) {
    std::unique_lock<std::mutex> lock(m_);
    not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return false;
    out = q_.front();
    q_.pop_front();
    not_full_.notify_one();
    return true;
  }

 private:
  std::mutex m_;
  std::condition_variable not_full_, not_empty_;
  std::deque<block> q_;
  std::size_t bound_;
  bool closed_ = false;
};

}  // namespace

TEST(sync_pool_threads_cross_thread_frees_keep_contents) {
  synchronized_pool_resource r;
  constexpr int threads = 4;
  constexpr int rounds = 3000;
  std::deque<channel> rings;  // a deque: channels do not move
  for (int t = 0; t < threads; ++t) rings.emplace_back(64);
  std::atomic<int> senders{threads};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      channel& out = rings[static_cast<std::size_t>((t + 1) % threads)];
      for (int i = 0; i < rounds; ++i) {
        const std::size_t size = 8 + static_cast<std::size_t>(i * 37 + t) % 2041;
        const std::size_t align = std::size_t{1} << ((i + t) % 7);
        out.send(make(r, size, align, static_cast<unsigned char>(i + t)));
      }
      if (--senders == 0)
        for (channel& c : rings) c.close();
    });
    workers.emplace_back([&, t] {
      block b;
      while (rings[static_cast<std::size_t>(t)].receive(b)) check_and_free(r, b);
    });
  }
  for (std::thread& w : workers) w.join();
}

TEST(sync_pool_threads_producer_and_consumer_do_not_grow_the_pool) {
  synchronized_pool_resource r(std::pmr::pool_options{256, 0});
  channel c(256);
  std::thread producer([&] {
    for (int i = 0; i < 100000; ++i) c.send(make(r, 64, 8, static_cast<unsigned char>(i)));
    c.close();
  });
  std::thread consumer([&] {
    block b;
    while (c.receive(b)) check_and_free(r, b);
  });
  producer.join();
  consumer.join();
  // Unbounded growth would hold 100000 * 64 bytes = 6.4 MB.
  CHECK(r.bytes_held() < (200u << 10));
}

// One thread taking turns between pools: two (both on the thread's hints,
// the inline paths serve both), then three (each call pushes the oldest hint
// out). Each block keeps its contents and goes back to the pool that made it;
// each pool took its memory from its own upstream and gave all of it back.
TEST(sync_pool_threads_one_thread_taking_turns_between_pools) {
  for (std::size_t turns : {2, 3}) {
    support::tracking_resource upstreams[3];
    {
      synchronized_pool_resource pools[3] = {synchronized_pool_resource(&upstreams[0]),
                                             synchronized_pool_resource(&upstreams[1]),
                                             synchronized_pool_resource(&upstreams[2])};
      std::vector<std::pair<std::size_t, block>> live;
      for (std::size_t i = 0; i < 3000; ++i) {
        const std::size_t which = i % turns;
        live.emplace_back(which, make(pools[which], 8 + (i * 37) % 500, std::size_t{1} << (i % 5),
                                      static_cast<unsigned char>(i)));
        if (i % 3 == 2) {
          const std::size_t at = (i * 7) % live.size();
          check_and_free(pools[live[at].first], live[at].second);
          live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
        }
      }
      for (const auto& [which, b] : live) check_and_free(pools[which], b);
    }
    for (std::size_t p = 0; p < 3; ++p) {
      CHECK((upstreams[p].allocs > 0) == (p < turns));
      CHECK(upstreams[p].live_blocks() == 0);
    }
  }
}

TEST(sync_pool_threads_exit_while_others_hold_their_blocks) {
  support::tracking_resource t;
  {
    synchronized_pool_resource r(&t);
    std::vector<block> held;
    for (int round = 0; round < 20; ++round) {
      std::thread([&] {
        for (int i = 0; i < 100; ++i)
          held.push_back(make(r, 8 + static_cast<std::size_t>(i) * 13, 8, static_cast<unsigned char>(round)));
      }).join();
      if (round % 2 == 1) {
        for (int i = 0; i < 100; ++i) check_and_free(r, held[static_cast<std::size_t>(i)]);
        held.erase(held.begin(), held.begin() + 100);
      }
    }
    for (const block& b : held) check_and_free(r, b);
  }
  CHECK(t.live_blocks() == 0);
}

TEST(sync_pool_threads_containers_from_several_threads) {
  synchronized_pool_resource r;
  std::vector<std::thread> workers;
  std::atomic<long> total{0};
  for (int t = 0; t < 4; ++t)
    workers.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        std::pmr::list<int> l(&r);
        for (int i = 0; i < 500; ++i) l.push_back(i + t);
        long sum = 0;
        for (int x : l) sum += x;
        total += sum;
      }
    });
  for (std::thread& w : workers) w.join();
  long expected = 0;
  for (int t = 0; t < 4; ++t) expected += 50L * (500L * 499 / 2 + 500L * t);
  CHECK(total == expected);
}
