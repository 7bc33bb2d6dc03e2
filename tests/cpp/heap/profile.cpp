// The sampling profiler over memres::heap_resource(): two C++ call sites
// come out in their proportions, and the blocks one of them frees leave the
// live view (the heap's samples are matched at free).
#include <memres/memres.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "../check.hpp"
#include "../support.hpp"

namespace {

__attribute__((noinline)) void parse_headers(std::pmr::memory_resource& r, std::vector<void*>& out, int n) {
  for (int i = 0; i < n; ++i) {
    out.push_back(r.allocate(48, 8));
    static_cast<char*>(out.back())[0] = 1;
  }
}

__attribute__((noinline)) void rank_words(std::pmr::memory_resource& r, std::vector<void*>& out, int n) {
  for (int i = 0; i < n; ++i) {
    out.push_back(r.allocate(144, 16));
    static_cast<char*>(out.back())[0] = 2;
  }
}

}  // namespace

TEST(heap_profile_two_call_sites_and_the_live_view) {
  std::pmr::memory_resource& heap = *memres::heap_resource();
  std::vector<void*> headers, words;
  headers.reserve(60000);
  words.reserve(10000);
  memres::profile_stop();
  memres::profile_clear();
  memres::profile_start(4096);
  for (int round = 0; round < 10; ++round) {
    parse_headers(heap, headers, 6000);  // 288 KB
    rank_words(heap, words, 1000);       // 144 KB
  }
  for (void* p : words) heap.deallocate(p, 144, 16);
  memres::profile_stop();
  const std::string folded = memres::profile_folded();
  const double a = support::folded_bytes_of(folded, "parse_headers"), b = support::folded_bytes_of(folded, "rank_words");
  const double true_a = 60000.0 * 48, true_b = 10000.0 * 144;
  // 4.3 MB at one sample per 4 KiB: about 1050 samples; 10% is several
  // standard errors.
  const bool in_proportion = std::fabs(a / (a + b) - 2.0 / 3.0) < 0.1 * 2.0 / 3.0 &&
                             std::fabs(a + b - (true_a + true_b)) < 0.1 * (true_a + true_b);
  if (!in_proportion) std::fprintf(stderr, "the profile:\n%s", folded.c_str());
  CHECK(in_proportion);
  CHECK(folded.find("Heap;") != std::string::npos);
  CHECK(folded.find("heap_resource_impl") == std::string::npos);
  const std::string live = memres::profile_folded(memres::profile_view::live);
  CHECK(support::folded_bytes_of(live, "rank_words") == 0);
  CHECK(std::fabs(support::folded_bytes_of(live, "parse_headers") - a) < 1e-6 * a);
  const std::string peak = memres::profile_folded(memres::profile_view::peak);
  CHECK(std::fabs(support::folded_bytes_of(peak, "rank_words") - b) < 1e-6 * b);
  for (void* p : headers) heap.deallocate(p, 48, 8);
  CHECK(support::folded_bytes_of(memres::profile_folded(memres::profile_view::live), "parse_headers") == 0);
  memres::profile_clear();
}
