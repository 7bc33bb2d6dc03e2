// memres::monotonic_buffer_resource under pmr containers, checked against
// std::pmr::monotonic_buffer_resource running the same workload.
#include <memres/memres.hpp>

#include "../support.hpp"


TEST(monotonic_containers_match_std) {
  std::pmr::monotonic_buffer_resource theirs;
  memres::monotonic_buffer_resource ours;
  CHECK(support::container_workload(&theirs) == support::container_workload(&ours));
  CHECK(ours.stats().used > 100000);
}

TEST(monotonic_containers_with_reset_between_requests) {
  support::tracking_resource t;
  memres::monotonic_buffer_resource ours(&t);
  std::pmr::monotonic_buffer_resource theirs;
  const std::uint64_t expected = support::container_workload(&theirs);
  std::size_t warm = 0;
  for (int request = 0; request < 5; ++request) {
    CHECK(support::container_workload(&ours) == expected);
    ours.reset();
    if (request == 1) warm = t.allocs;
  }
  CHECK(t.allocs == warm);
}
