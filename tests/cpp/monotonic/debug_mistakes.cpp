// Expected to stop with a message: one deliberate mistake per executable
// (MISTAKE_double_free, MISTAKE_wrong_size, MISTAKE_foreign_pointer,
// MISTAKE_wrong_allocator, MISTAKE_free_after_reset), built
// only with MEMRES_DEBUG_CHECKS; ctest matches the message.
#include <memres/memres.hpp>

#include <cstdio>

int main() {
  memres::monotonic_buffer_resource arena;
  void* p = arena.allocate(32, 8);
#if defined(MISTAKE_double_free)
  arena.deallocate(p, 32, 8);
  arena.deallocate(p, 32, 8);
#elif defined(MISTAKE_wrong_size)
  arena.deallocate(p, 16, 8);
#elif defined(MISTAKE_foreign_pointer)
  (void)p;
  alignas(8) static char elsewhere[32];
  arena.deallocate(elsewhere, 32, 8);
#elif defined(MISTAKE_wrong_allocator)
  (void)p;
  memres::unsynchronized_pool_resource pool;
  void* q = pool.allocate(32, 8);
  arena.deallocate(q, 32, 8);  // the pool's block, freed to the arena
#elif defined(MISTAKE_free_after_reset)
  arena.reset();
  arena.deallocate(p, 32, 8);
#endif
  std::puts("the mistake was not reported");
  return 0;
}
