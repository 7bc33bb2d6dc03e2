// Under AddressSanitizer (MEMRES_SANITIZE=address): memory the arena holds
// but has not handed out is poisoned, handed-out blocks are not.
#include <memres/memres.hpp>

#include <sanitizer/asan_interface.h>

#include "../support.hpp"

using memres::monotonic_buffer_resource;

static bool poisoned(const void* p) { return __asan_address_is_poisoned(p) != 0; }

TEST(monotonic_asan_blocks_are_usable_and_the_rest_is_poisoned) {
  monotonic_buffer_resource r;
  char* a = static_cast<char*>(r.allocate(24, 8));
  CHECK(!poisoned(a));
  CHECK(!poisoned(a + 23));
  CHECK(poisoned(a + 32));  // not handed out yet
}

TEST(monotonic_asan_reset_poisons_what_was_handed_out) {
  monotonic_buffer_resource r;
  char* a = static_cast<char*>(r.allocate(64, 8));
  r.reset();
  CHECK(poisoned(a));
  char* b = static_cast<char*>(r.allocate(64, 8));
  CHECK(!poisoned(b));
}

TEST(monotonic_asan_buffer_is_poisoned_after_release_and_returned_clean) {
  alignas(16) char buf[256];
  {
    monotonic_buffer_resource r(buf, sizeof buf);
    CHECK(poisoned(buf + 128));
    char* a = static_cast<char*>(r.allocate(16, 8));
    CHECK(!poisoned(a));
    r.release();
    CHECK(poisoned(a));
  }
  CHECK(!poisoned(buf));  // the caller's again after destruction
  CHECK(!poisoned(buf + 255));
}
