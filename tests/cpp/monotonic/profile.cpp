// The sampling profiler from C++: allocations of monotonic_buffer_resource
// from two call sites come out in their proportions, with the C++ function
// names (demangled) in the stacks.
#include <memres/memres.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "../check.hpp"
#include "../support.hpp"

namespace {

// Whether some stack of the folded profile ends with a frame naming
// `caller` and then one naming `callee`. (GCC's builds are named from the
// debug information, `tokenize_request`; Clang's from the symbol table,
// `(anonymous namespace)::tokenize_request(std::pmr::memory_resource&,
// int)`; libc++ spells std::pmr `std::__1::pmr`.)
bool innermost_frames_are(const std::string& folded, const std::string& caller, const std::string& callee) {
  std::istringstream lines(folded);
  for (std::string line; std::getline(lines, line);) {
    const auto space = line.rfind(' ');
    const auto last = line.rfind(';', space);
    if (space == std::string::npos || last == std::string::npos) continue;
    const auto before = line.rfind(';', last - 1);
    const std::string inner = line.substr(last + 1, space - last - 1);
    const std::string outer = line.substr(before + 1, last - before - 1);
    if (outer.find(caller) != std::string::npos && inner.find(callee) != std::string::npos) return true;
  }
  return false;
}

__attribute__((noinline)) void tokenize_request(std::pmr::memory_resource& r, int rounds) {
  for (int i = 0; i < rounds; ++i) static_cast<char*>(r.allocate(40, 8))[0] = 1;
}

__attribute__((noinline)) void build_response(std::pmr::memory_resource& r, int rounds) {
  for (int i = 0; i < rounds; ++i) static_cast<char*>(r.allocate(200, 16))[0] = 2;
}

}  // namespace

TEST(profile_two_cpp_call_sites_hold_their_proportions) {
  memres::profile_stop();
  memres::profile_clear();
  memres::profile_start(4096);
  memres::monotonic_buffer_resource r;
  for (int round = 0; round < 20; ++round) {
    tokenize_request(r, 5000);  // 200 KB
    build_response(r, 500);     // 100 KB
    r.release();
  }
  memres::profile_stop();
  const std::string folded = memres::profile_folded();
  const double a = support::folded_bytes_of(folded, "tokenize_request"), b = support::folded_bytes_of(folded, "build_response");
  const double true_a = 20.0 * 5000 * 40, true_b = 20.0 * 500 * 200;
  // 6 MB at one sample per 4 KiB: about 1500 samples; 10% is several
  // standard errors.
  CHECK(std::fabs(a / (a + b) - 2.0 / 3.0) < 0.1 * 2.0 / 3.0);
  CHECK(std::fabs(a + b - (true_a + true_b)) < 0.1 * (true_a + true_b));
  CHECK(memres::profile_samples() > 500);
  CHECK(folded.rfind("Monotonic;", 0) == 0);
  // C++ names demangled (a function of an unnamed namespace is named
  // from the debug information, without its parameters), and the stack
  // starts at the caller of the arena: no frame of memres's own.
  const bool named = innermost_frames_are(folded, "tokenize_request", "pmr::memory_resource::allocate");
  if (!named) std::fprintf(stderr, "the profile:\n%s", folded.c_str());
  CHECK(named);
  CHECK(folded.find("monotonic_buffer_resource::do_allocate") == std::string::npos);
  CHECK(folded.find("cxxbridge") == std::string::npos);
  memres::profile_clear();
  CHECK(memres::profile_folded().empty());
}

TEST(profile_cut_by_named_resource) {
  memres::profile_stop();
  memres::profile_clear();
  memres::profile_start(4096);
  memres::monotonic_buffer_resource requests, cache;
  requests.set_name("request-arena");
  CHECK(requests.name() == "request-arena");
  CHECK(cache.name().empty());
  for (int round = 0; round < 10; ++round) {
    tokenize_request(requests, 7500);  // 300 KB
    tokenize_request(cache, 2500);     // 100 KB
    requests.release();
    cache.release();
  }
  memres::profile_stop();
  const std::string folded = memres::profile_folded();
  const double named = support::folded_bytes_of(folded, "request-arena (Monotonic);");
  double all = 0;
  std::istringstream lines(folded);
  for (std::string line; std::getline(lines, line);) all += std::atof(line.c_str() + line.rfind(' ') + 1);
  CHECK(std::fabs(named / all - 0.75) < 0.075);
  CHECK(folded.find("\nMonotonic;") != std::string::npos || folded.rfind("Monotonic;", 0) == 0);
  memres::profile_clear();
}

TEST(profile_names_the_synchronized_arena) {
  memres::profile_stop();
  memres::profile_clear();
  memres::profile_start(4096);
  memres::synchronized_monotonic_buffer_resource shared;
  shared.set_name("shared;arena");
  CHECK(shared.name() == "shared:arena");
  for (int i = 0; i < 20000; ++i) static_cast<char*>(shared.allocate(48, 8))[0] = 1;
  memres::profile_stop();
  const std::string folded = memres::profile_folded();
  // Its regions are sampled as blocks of the Rust arena they come from.
  const bool named = support::folded_bytes_of(folded, "shared:arena (Monotonic);") > 0;
  if (!named) std::fprintf(stderr, "the profile:\n%s", folded.c_str());
  CHECK(named);
  memres::profile_clear();
}
