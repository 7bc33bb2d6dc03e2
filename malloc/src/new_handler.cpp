// The part of C++'s operator new that must be C++: calling the new-handler
// and throwing std::bad_alloc. The operators themselves are in lib.rs; they
// call here only after the heap has failed.
//
// The library does not link the C++ runtime: a C program that preloads it
// should not pay for loading libstdc++ (about 1.5 MiB of resident memory).
// build.rs makes every symbol this file uses from the runtime a weak
// reference, which a C++ program's own libstdc++ satisfies. Only C++ code
// calls operator new, so the runtime is there whenever this code runs,
// except in a C program that dlopens C++ code later: then the references
// were left null at start-up, and a failed operator new says so and aborts.

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>

// Weak in the source as well, so the compiler keeps the check below.
namespace std {
new_handler get_new_handler() noexcept __attribute__((weak));
}

extern "C" void* memres_malloc_aligned(std::size_t size, std::size_t align) noexcept;

// Calls the new-handler and retries until an allocation succeeds; throws
// std::bad_alloc when there is no handler (as the standard's operator new).
extern "C" void* memres_new_failed(std::size_t size, std::size_t align) {
  if (&std::get_new_handler == nullptr) {
    std::fputs("memres: operator new failed, and the C++ runtime was not loaded when libmemres_malloc.so was, "
               "so std::bad_alloc cannot be thrown\n",
               stderr);
    std::abort();
  }
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
