// Expected to die: writes through a pointer after reset(). Under
// MEMRES_SANITIZE=address, ASan reports a use-after-poison; ctest checks the
// report.
#include <memres/memres.hpp>

#include <cstdio>

int main() {
  memres::monotonic_buffer_resource arena;
  volatile char* p = static_cast<char*>(arena.allocate(32, 8));
  p[0] = 1;
  arena.reset();
  p[0] = 2;  // use after reset: must be reported
  std::puts("use after reset was not reported");
  return 0;
}
