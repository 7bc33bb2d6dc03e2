// C++'s operator new/delete family under libmemres_malloc.so, run by
// malloc/tests/preload.rs. Prints "new_test: ok".
#include <dlfcn.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#define CHECK(c)                                                                  \
  do {                                                                            \
    if (!(c)) {                                                                   \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
      std::exit(1);                                                               \
    }                                                                             \
  } while (0)

struct alignas(256) Wide {
  unsigned char bytes[300];
};

static bool handler_ran = false;
static void handler() {
  handler_ran = true;
  std::set_new_handler(nullptr);  // the next failure throws
}

int main() {
  CHECK(dlsym(RTLD_DEFAULT, "memres_stats") != nullptr);  // memres serves this program
  // Every form, and their blocks are the heap's (malloc_usable_size knows them).
  int* one = new int(7);
  int* many = new int[1000]();
  Wide* wide = new Wide;
  Wide* wides = new Wide[3];
  CHECK(reinterpret_cast<std::uintptr_t>(wide) % 256 == 0 && reinterpret_cast<std::uintptr_t>(wides) % 256 == 0);
  CHECK(malloc_usable_size(one) >= sizeof(int) && malloc_usable_size(many) >= 1000 * sizeof(int));
  int* quiet = new (std::nothrow) int(3);
  CHECK(quiet && *quiet == 3);
  delete one;
  delete[] many;
  delete wide;
  delete[] wides;
  delete quiet;
  // Every other form, by name (each symbol must be memres's: preload.rs
  // checks the library exports all twenty).
  ::operator delete(::operator new(100), 100);
  ::operator delete[](::operator new[](100), 100);
  ::operator delete(::operator new(100, std::align_val_t{4096}), std::align_val_t{4096});
  ::operator delete[](::operator new[](100, std::align_val_t{4096}), std::align_val_t{4096});
  ::operator delete(::operator new(100, std::align_val_t{64}), 100, std::align_val_t{64});
  ::operator delete[](::operator new[](100, std::align_val_t{64}), 100, std::align_val_t{64});
  ::operator delete(::operator new(100, std::nothrow), std::nothrow);
  ::operator delete[](::operator new[](100, std::nothrow), std::nothrow);
  void* a = ::operator new(100, std::align_val_t{128}, std::nothrow);
  CHECK(reinterpret_cast<std::uintptr_t>(a) % 128 == 0);
  ::operator delete(a, std::align_val_t{128}, std::nothrow);
  a = ::operator new[](100, std::align_val_t{128}, std::nothrow);
  CHECK(reinterpret_cast<std::uintptr_t>(a) % 128 == 0);
  ::operator delete[](a, std::align_val_t{128}, std::nothrow);

  // Failure: nothrow gives null, the throwing forms call the handler, then throw.
  const std::size_t huge = std::numeric_limits<std::size_t>::max() / 2;
  CHECK(::operator new(huge, std::nothrow) == nullptr);
  CHECK(::operator new[](huge, std::align_val_t{64}, std::nothrow) == nullptr);
  std::set_new_handler(handler);
  bool threw = false;
  try {
    (void)::operator new(huge);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  CHECK(threw && handler_ran);

  // A workload across threads: containers made on one thread, freed on others.
  std::vector<std::unique_ptr<std::map<int, std::string>>> maps(8);
  std::vector<std::thread> makers;
  for (int t = 0; t < 8; ++t)
    makers.emplace_back([&maps, t] {
      auto m = std::make_unique<std::map<int, std::string>>();
      for (int i = 0; i < 20000; ++i) (*m)[i] = std::to_string(i * t);
      maps[t] = std::move(m);
    });
  for (auto& th : makers) th.join();
  std::vector<std::thread> freers;
  for (int t = 0; t < 8; ++t)
    freers.emplace_back([&maps, t] {
      CHECK((*maps[t])[19999] == std::to_string(19999 * t));
      maps[t].reset();
    });
  for (auto& th : freers) th.join();
  std::puts("new_test: ok");
  return 0;
}
