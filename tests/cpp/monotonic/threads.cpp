// memres::monotonic_buffer_resource from several threads at once: each
// thread its own arena over one shared, synchronized upstream, and upstream
// exceptions that stay with the thread that hit them. A stress test, not a
// benchmark; CI also runs it under ThreadSanitizer (MEMRES_SANITIZE=thread).
#include <memres/memres.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "../support.hpp"

namespace {

// Throws, from every thread, the exception type it was told to.
class throwing_resource : public std::pmr::memory_resource {
 protected:
  void* do_allocate(std::size_t, std::size_t) override {
    if (custom) throw support::custom_error();
    throw std::bad_alloc();
  }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

 public:
  explicit throwing_resource(bool c) : custom(c) {}
  const bool custom;
};

}  // namespace

TEST(monotonic_threads_own_arenas_over_a_shared_upstream) {
  std::pmr::synchronized_pool_resource shared;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&shared, &failures, t] {
      memres::monotonic_buffer_resource arena(&shared);
      for (int round = 0; round < 50; ++round) {
        {
          std::pmr::vector<std::pmr::string> v(&arena);
          for (int i = 0; i < 200; ++i) v.emplace_back(std::string(static_cast<std::size_t>(20 + i % 30), 'a' + t));
          for (const auto& s : v)
            if (s[0] != 'a' + t) ++failures;
        }
        if (round % 2) arena.reset(); else arena.release();
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
}

TEST(monotonic_threads_upstream_exceptions_stay_with_their_thread) {
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&wrong, t] {
      const bool custom = t % 2 == 0;
      throwing_resource upstream(custom);
      memres::monotonic_buffer_resource arena(&upstream);
      for (int i = 0; i < 200; ++i) {
        try {
          (void)arena.allocate(64);
          ++wrong;
        } catch (const support::custom_error&) {
          if (!custom) ++wrong;
        } catch (const std::bad_alloc&) {
          if (custom) ++wrong;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
}
