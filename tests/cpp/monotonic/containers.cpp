// memres::monotonic_buffer_resource under pmr containers, checked against
// std::pmr::monotonic_buffer_resource running the same workload.
#include <memres/memres.hpp>

#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "../support.hpp"

namespace {

// Builds every container kind and folds their contents into one number.
std::uint64_t workload(std::pmr::memory_resource* r) {
  std::uint64_t sum = 0;
  std::pmr::vector<std::pmr::string> words(r);
  for (int i = 0; i < 2000; ++i) words.emplace_back(std::string(static_cast<std::size_t>(i % 70), 'a' + i % 26));
  for (const auto& w : words) sum = sum * 31 + w.size() + static_cast<unsigned char>(w.empty() ? 0 : w[0]);
  std::pmr::list<int> l(r);
  for (int i = 0; i < 5000; ++i) l.push_back(i * 7);
  for (int x : l) sum += static_cast<std::uint64_t>(x);
  std::pmr::map<int, std::pmr::string> m(r);
  for (int i = 0; i < 3000; ++i) m.emplace((i * 7919) % 10007, std::pmr::string(40, 'x', r));
  for (const auto& kv : m) sum = sum * 7 + static_cast<std::uint64_t>(kv.first) + kv.second.size();
  std::pmr::unordered_map<int, int> u(r);
  for (int i = 0; i < 5000; ++i) u[i % 1234] += i;
  for (int i = 0; i < 1234; ++i) sum += static_cast<std::uint64_t>(u[i]);
  return sum;
}

}  // namespace

TEST(monotonic_containers_match_std) {
  std::pmr::monotonic_buffer_resource theirs;
  memres::monotonic_buffer_resource ours;
  CHECK(workload(&theirs) == workload(&ours));
  CHECK(ours.stats().used > 100000);
}

TEST(monotonic_containers_with_reset_between_requests) {
  support::tracking_resource t;
  memres::monotonic_buffer_resource ours(&t);
  std::pmr::monotonic_buffer_resource theirs;
  const std::uint64_t expected = workload(&theirs);
  std::size_t warm = 0;
  for (int request = 0; request < 5; ++request) {
    CHECK(workload(&ours) == expected);
    ours.reset();
    if (request == 1) warm = t.allocs;
  }
  CHECK(t.allocs == warm);
}
