// The part of C++'s operator new that must be C++: calling the new-handler
// and throwing std::bad_alloc. The operators themselves are in lib.rs; they
// call here only after the heap has failed.

#include <cstddef>
#include <new>

extern "C" void* memres_malloc_aligned(std::size_t size, std::size_t align) noexcept;

// Calls the new-handler and retries until an allocation succeeds; throws
// std::bad_alloc when there is no handler (as the standard's operator new).
extern "C" void* memres_new_failed(std::size_t size, std::size_t align) {
  for (;;) {
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
    if (void* p = memres_malloc_aligned(size, align)) return p;
  }
}

// The nothrow operators: the same, but null where that throws.
extern "C" void* memres_new_failed_nothrow(std::size_t size, std::size_t align) noexcept {
  try {
    return memres_new_failed(size, align);
  } catch (...) {
    return nullptr;
  }
}
