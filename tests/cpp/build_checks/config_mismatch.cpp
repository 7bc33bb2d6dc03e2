// A translation unit compiled with debug checks against a core built
// without them: it must fail to link (the header's fast paths and the
// functions they call sit in an inline namespace named after the build
// facts), never run two kinds of fast path over one core.
#define MEMRES_DEBUG_CHECKS 1
#include <memres/memres.hpp>

int main() {
  memres::monotonic_buffer_resource arena;
  return arena.allocate(8) == nullptr;
}
