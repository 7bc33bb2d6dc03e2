// memres: memory resources for C++ over a Rust core.
//
// Each class derives from std::pmr::memory_resource and keeps the std class's
// constructors and members, so `std::pmr::X` -> `memres::X` is a one-word
// change. Allocation fast paths are inline here; only slow paths (a new chunk
// from upstream) call into the Rust core.
//
// Rust code can also hand C++ a Rust-owned arena or pool as a
// std::pmr::memory_resource* (memres_cxx::CxxView; the classes are
// detail::rust_view and its subclasses, at the end of this header, with the
// rules for C++ code that receives one).
//
// This header needs only the standard library. Link memres::memres (CMake).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory_resource>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// MEMRES_DEBUG_CHECKS (CMake option of that name, which also builds the Rust
// core with `debug-checks`): every allocation is recorded and every
// deallocation checked by the Rust core, and chunks end in guard pages.
//
// Under AddressSanitizer the Rust core (built with its `asan` feature, which
// CMake's MEMRES_SANITIZE=address turns on) poisons arena memory that is held
// but not handed out; the inline fast paths unpoison each block they return.
#if defined(__SANITIZE_ADDRESS__)
#define MEMRES_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMRES_ASAN 1
#endif
#endif
#if defined(MEMRES_ASAN)
extern "C" void __asan_poison_memory_region(void const volatile* addr, std::size_t size);
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
#endif

// The build facts the inline fast paths depend on, as an ABI tag: the
// detail namespace (the fast paths and the out-of-line functions they call)
// is an inline namespace named after them. A translation unit compiled with
// other facts than the linked Rust core (MEMRES_DEBUG_CHECKS, or
// AddressSanitizer on one side only) then fails to link, naming for example
// memres::detail::config_debug_checks::monotonic_create, instead of mixing
// two fast paths silently (an ODR violation). CMake's MEMRES_DEBUG_CHECKS and
// MEMRES_SANITIZE=address set both sides; the core checks the rest of what
// the header mirrors (layouts, the class table) when the first resource is
// made.
#if defined(MEMRES_DEBUG_CHECKS) && defined(MEMRES_ASAN)
#define MEMRES_CONFIG_NS config_debug_checks_asan
#elif defined(MEMRES_DEBUG_CHECKS)
#define MEMRES_CONFIG_NS config_debug_checks
#elif defined(MEMRES_ASAN)
#define MEMRES_CONFIG_NS config_asan
#else
#define MEMRES_CONFIG_NS config_plain
#endif

// This header's version: memres's one version (the Rust crates', the CMake
// package's). memres::version() gives the linked core's.
#define MEMRES_VERSION_MAJOR 0
#define MEMRES_VERSION_MINOR 1
#define MEMRES_VERSION_PATCH 0

namespace memres {

/// A memres version: see version().
struct version_info {
  unsigned major;
  unsigned minor;
  unsigned patch;
};

/// The version of the memres core this program is linked with; a header
/// from another version shows in MEMRES_VERSION_* beside it.
version_info version() noexcept;

/// Thrown where an allocation failed because Rust code it ran panicked (a
/// Rust upstream of a Rust-owned resource handed to C++, say): the panic is
/// caught at the boundary, never unwound through C++, and its message is
/// what(). It is a std::bad_alloc, so code that handles allocation failure
/// handles it.
class rust_panic : public std::bad_alloc {
 public:
  explicit rust_panic(const char* message) : message_(message) {}
  const char* what() const noexcept override { return message_.what(); }

 private:
  std::runtime_error message_;  // a copy-safe, reference-counted string
};

/// What a monotonic_buffer_resource holds and has done.
struct monotonic_stats {
  std::size_t used;              ///< bytes handed out since the last reset/release (with padding)
  std::size_t held;              ///< bytes held from upstream (not the initial buffer)
  std::size_t chunks;            ///< chunks held from upstream
  std::uint64_t upstream_allocs; ///< successful upstream allocate calls, ever
  std::uint64_t upstream_frees;  ///< upstream deallocate calls, ever
};

namespace detail {
inline namespace MEMRES_CONFIG_NS {

struct monotonic_core;  // the Rust memres::Monotonic; opaque here

// Layout-compatible with Rust's memres::BumpState (#[repr(C)]).
struct bump_state {
  char* cursor;
  char* end;
};

monotonic_core* monotonic_create(std::pmr::memory_resource* upstream, void* buffer, std::size_t buffer_size,
                                 std::size_t initial_size);
void monotonic_destroy(monotonic_core* core) noexcept;
bump_state* monotonic_bump(monotonic_core* core) noexcept;
// Throws std::bad_alloc (or what upstream threw) on failure, and
// std::invalid_argument for an alignment that is not a power of two.
void* monotonic_allocate_slow(monotonic_core* core, std::size_t bytes, std::size_t alignment);
// Under debug checks: checks a deallocation (double free, wrong size or
// alignment, foreign pointer: the process stops with a message naming it).
void monotonic_forget(monotonic_core* core, void* p, std::size_t bytes, std::size_t alignment) noexcept;
void monotonic_reset(monotonic_core* core) noexcept;
void monotonic_release(monotonic_core* core) noexcept;
monotonic_stats monotonic_get_stats(const monotonic_core* core) noexcept;
// The stats as one JSON object (the Rust core's serde fields; see stats_json()).
std::string monotonic_stats_json(const monotonic_core* core);
void monotonic_set_budget(monotonic_core* core, std::size_t bytes) noexcept;
std::size_t monotonic_budget(const monotonic_core* core) noexcept;
// The name the profiler gives the arena's samples ("" for none).
void monotonic_set_name(monotonic_core* core, std::string_view name);
std::string monotonic_name(const monotonic_core* core);
struct monotonic_mark;  // the Rust memres::Checkpoint; opaque here
monotonic_mark* monotonic_mark_create(const monotonic_core* core);
void monotonic_mark_destroy(monotonic_mark* mark) noexcept;
// False (and nothing freed) if the mark is stale: from another resource,
// from before a reset() or release(), or rewound past.
bool monotonic_rewind(monotonic_core* core, const monotonic_mark* mark) noexcept;

struct pool_core;  // the Rust memres::UnsyncPool; opaque here

pool_core* unsync_pool_create(std::pmr::memory_resource* upstream, const std::pmr::pool_options& options);
void unsync_pool_destroy(pool_core* core) noexcept;
void** unsync_pool_heads(pool_core* core) noexcept;
std::pmr::pool_options unsync_pool_options(const pool_core* core) noexcept;
// Throws like monotonic_allocate_slow.
void* unsync_pool_allocate_slow(pool_core* core, std::size_t bytes, std::size_t alignment);
void unsync_pool_deallocate_slow(pool_core* core, void* p, std::size_t bytes, std::size_t alignment) noexcept;
void unsync_pool_release(pool_core* core) noexcept;
std::size_t unsync_pool_trim(pool_core* core) noexcept;
std::size_t unsync_pool_bytes_held(const pool_core* core) noexcept;
std::string unsync_pool_stats_json(pool_core* core);
void unsync_pool_set_name(pool_core* core, std::string_view name);
std::string unsync_pool_name(const pool_core* core);

struct sync_pool_core;  // the Rust memres::SyncPool; opaque here

// Layout-compatible with the Rust pool's thread-cache hint and cache record
// (rust/pool/caches.rs, #[repr(C)]): while hint.key is a pool's key, hint.cache
// is the calling thread's cache for that pool. A thread has sync_hint_count
// of them in a row (the pools it used last, newest first), so one that takes
// turns between two pools stays on the inline paths.
struct sync_hint {
  const void* key;
  void* cache;
};
inline constexpr std::size_t sync_hint_count = 2;

sync_pool_core* sync_pool_create(std::pmr::memory_resource* upstream, const std::pmr::pool_options& options);
void sync_pool_destroy(sync_pool_core* core) noexcept;
const void* sync_pool_key(const sync_pool_core* core) noexcept;
std::pmr::pool_options sync_pool_options(const sync_pool_core* core) noexcept;
// Throws like monotonic_allocate_slow. Both slow paths point tl_sync_hint at
// the calling thread's hint.
void* sync_pool_allocate_slow(sync_pool_core* core, std::size_t bytes, std::size_t alignment);
void sync_pool_deallocate_slow(sync_pool_core* core, void* p, std::size_t bytes, std::size_t alignment) noexcept;
void sync_pool_release(sync_pool_core* core) noexcept;
std::size_t sync_pool_trim(sync_pool_core* core) noexcept;
std::size_t sync_pool_bytes_held(const sync_pool_core* core) noexcept;
std::string sync_pool_stats_json(sync_pool_core* core);
void sync_pool_set_name(sync_pool_core* core, std::string_view name);
std::string sync_pool_name(const sync_pool_core* core);

// The calling thread's hints (owned by the Rust core; null until a slow path
// has run on this thread).
inline thread_local sync_hint* tl_sync_hint = nullptr;

// The calling thread's hint for the synchronized pool whose key is `key`, if
// it has one; else null. It returns the hint, not its cache: a pointer into a
// non-null array, which the compiler knows is not null, so a caller's test of
// it folds into the key compare and a hit costs what one hint did.
inline const sync_hint* sync_hint_for(const void* key) noexcept {
  static_assert(sync_hint_count == 2, "sync_hint_for looks at two hints");
  const sync_hint* hints = tl_sync_hint;
  if (hints == nullptr) return nullptr;
  if (hints[0].key == key) return &hints[0];
  if (hints[1].key == key) return &hints[1];
  return nullptr;
}

struct sync_monotonic_core;  // the Rust memres::SyncMonotonic; opaque here

sync_monotonic_core* sync_monotonic_create(std::pmr::memory_resource* upstream);
void sync_monotonic_destroy(sync_monotonic_core* core) noexcept;
// The arena's generation (rust/monotonic/sync.rs): a number no other arena
// or cycle ever had, renewed by reset() and release().
const std::atomic<std::uint64_t>* sync_monotonic_generation(sync_monotonic_core* core) noexcept;
// Throws like monotonic_allocate_slow. Finds or carves the calling thread's
// region for the arena's current generation (or serves a big block from
// the shared chunks) and allocates from it.
void* sync_monotonic_allocate_slow(sync_monotonic_core* core, std::uint64_t generation, std::size_t bytes,
                                   std::size_t alignment);
void sync_monotonic_reset(sync_monotonic_core* core) noexcept;
void sync_monotonic_release(sync_monotonic_core* core) noexcept;
monotonic_stats sync_monotonic_get_stats(const sync_monotonic_core* core) noexcept;
std::string sync_monotonic_stats_json(const sync_monotonic_core* core);
void sync_monotonic_set_name(sync_monotonic_core* core, std::string_view name);
std::string sync_monotonic_name(const sync_monotonic_core* core);

// A thread's region in one synchronized_monotonic_buffer_resource's cycle,
// the C++ twin of the Rust arena's table (its own entries: a thread using
// an arena from both languages bumps in one region per language). An entry
// whose generation is the arena's current one is this thread's; others are
// never matched again.
struct sync_region {
  std::uint64_t generation;
  char* start;
  char* cursor;
  char* end;
  std::size_t last;  // the size of the last region carved
};
constexpr std::size_t sync_region_table = 4;
// The calling thread's regions, most recently used first.
inline thread_local sync_region tl_sync_regions[sync_region_table] = {};

// The pools' size classes, the same table as the Rust core's (rust/
// classes.rs; check_mirrors compares them at every class boundary when the
// first resource is made): multiples of 8 up to 128, then four classes per
// doubling up to 1 MiB.
constexpr std::size_t pool_class_count = 68;
// The smallest class handed out (16 bytes: a free block holds an encoded
// link and a double-free mark); the 8-byte class 0 is never used.
constexpr std::size_t pool_min_class = 1;
constexpr std::size_t pool_max_class_align = 4096;

inline std::size_t pool_class_of_size(std::size_t size) noexcept {
  if (size <= 128) return (size - 1) / 8;
  const unsigned k = 63u - static_cast<unsigned>(__builtin_clzll(size - 1));  // size in (2^k, 2^(k+1)]
  const std::size_t j = (size - (std::size_t{1} << k) + (std::size_t{1} << (k - 2)) - 1) >> (k - 2);
  return 16 + (k - 7) * 4 + (j - 1);
}

// The class of every size up to 1024, indexed by ceil(size / 8) (every class
// boundary up to 1024 is a multiple of 8): a load instead of the branches of
// pool_class_of_size, which mixed sizes mispredict. Same table as the core's.
struct pool_small_table {
  std::uint8_t classes[129];
  constexpr pool_small_table() : classes{} {
    for (std::size_t i = 1; i < 129; ++i) {
      const std::size_t size = i * 8;
      std::size_t c = (size - 1) / 8;
      if (size > 128) {
        unsigned k = 0;
        while ((std::size_t{2} << k) < size) ++k;  // size in (2^k, 2^(k+1)]
        const std::size_t step = std::size_t{1} << (k - 2);
        c = 16 + (k - 7) * 4 + ((size - (std::size_t{1} << k) + step - 1) / step - 1);
      }
      classes[i] = static_cast<std::uint8_t>(c < pool_min_class ? pool_min_class : c);
    }
  }
};
inline constexpr pool_small_table pool_small_classes{};

// The class serving (bytes, alignment), or pool_class_count for requests the
// pool hands to upstream (oversize, over-aligned, or a bad alignment).
inline std::size_t pool_class_of(std::size_t bytes, std::size_t alignment, std::size_t largest) noexcept {
  if (bytes > largest || alignment > pool_max_class_align || alignment == 0 || (alignment & (alignment - 1)) != 0)
    return pool_class_count;
  std::size_t size = bytes < alignment ? alignment : bytes;
  size += (size == 0);
  const std::size_t rounded = (size + alignment - 1) & ~(alignment - 1);
  if (rounded > largest) return pool_class_count;
  return rounded <= 1024 ? pool_small_classes.classes[(rounded + 7) >> 3] : pool_class_of_size(rounded);
}

// The Rust core's answer to pool_class_of, for tests; and the start-up check
// that everything this header mirrors from the core agrees with it (run once
// when the first memres resource is made; a difference stops the process
// with a message naming it).
std::size_t core_pool_class_of(std::size_t bytes, std::size_t alignment, std::size_t largest) noexcept;
void check_mirrors() noexcept;

// The pools' free-list format (rust/pool/guard.rs): a free block holds the
// next block's address encoded with the pool's link key and its own address,
// then a seal tying that word to the block's address with the seal key. A
// block is popped only when its seal holds (the seal is then broken), and
// pushed only when it carries none (else it is already free: a double free).
// Either check failing sends the call to the Rust core, which reports it.
struct list_keys {
  std::uintptr_t link;
  std::uintptr_t seal;
  std::uintptr_t checks;  // 0 only in a core built with unchecked-pools
};
struct free_block {
  std::uintptr_t link;
  std::uintptr_t seal;
};

// An unsynchronized pool's free lists, inside the Rust pool (see
// memres::UnsyncPool::free_list_heads).
struct pool_lists {
  void* heads[pool_class_count];
  list_keys keys;
  std::intptr_t sample_left;  // bytes to the profiler's next sample (see pool_try_pop)
};

// A thread's cache record for a synchronized pool (see sync_hint).
struct sync_cache {
  void* heads[pool_class_count];
  std::uint32_t room[pool_class_count];  // pushes left before a batch goes back
  list_keys keys;
  std::intptr_t sample_left;  // bytes to the profiler's next sample (see sync_try_pop)
};

// The profiler's count (memres::profile_start): a block about to be popped
// counts its bytes down; below zero, the pop is left to the Rust core, which
// takes the sample. False when the block must be left.
inline bool count_for_profiler(std::intptr_t& sample_left, std::size_t bytes) noexcept {
  sample_left -= static_cast<std::intptr_t>(bytes);
  return sample_left >= 0;
}

// Pops the head of a list: null when the list is empty or the head's seal is
// broken (a corrupt list, which the caller's slow path reports).
inline void* list_pop(void*& head, const list_keys& keys) noexcept {
  void* block = head;
  if (block == nullptr) return nullptr;
  auto* b = static_cast<free_block*>(block);
  const auto at = reinterpret_cast<std::uintptr_t>(block);
  if (keys.checks != 0) {
    if ((b->link ^ b->seal) != (keys.seal ^ at)) return nullptr;
    head = reinterpret_cast<void*>(b->link ^ keys.link ^ at);
    b->seal = 0;
  } else {
    head = reinterpret_cast<void*>(b->link);
  }
  return block;
}

// Pushes a freed block: false when it already carries a seal (a double free,
// which the caller's slow path reports).
inline bool list_push(void*& head, const list_keys& keys, void* p) noexcept {
  auto* b = static_cast<free_block*>(p);
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  if (keys.checks != 0) {
    if ((b->link ^ b->seal) == (keys.seal ^ at)) return false;
    const std::uintptr_t link = reinterpret_cast<std::uintptr_t>(head) ^ keys.link ^ at;
    b->link = link;
    b->seal = link ^ keys.seal ^ at;
  } else {
    b->link = reinterpret_cast<std::uintptr_t>(head);
  }
  head = p;
  return true;
}

// The inline fast paths, shared by the owning classes and the views of
// Rust-owned resources. Each returns null (or false) when the caller must
// take its slow path. Under debug checks every call takes the slow path, so
// that the Rust core records and checks each block; under AddressSanitizer
// the frees do too, so the core can poison the block.

// Bumps the arena's cursor; `bytes` is at least 1.
inline void* bump_try_allocate(bump_state* bump, std::size_t bytes, std::size_t alignment) noexcept {
#if defined(MEMRES_DEBUG_CHECKS)
  (void)bump, (void)bytes, (void)alignment;
  return nullptr;
#else
  const auto addr = reinterpret_cast<std::uintptr_t>(bump->cursor);
  const auto end = reinterpret_cast<std::uintptr_t>(bump->end);
  const std::size_t pad = ((addr + alignment - 1) & ~(alignment - 1)) - addr;
  const std::size_t avail = end - addr;
  if ((alignment & (alignment - 1)) != 0 || bytes > avail || pad > avail - bytes) return nullptr;
  char* p = bump->cursor + pad;
  bump->cursor = p + bytes;
#if defined(MEMRES_ASAN)
  __asan_unpoison_memory_region(p, bytes);
#endif
  return p;
#endif
}

// Bumps in the calling thread's region of the arena whose generation is
// `generation`, or returns null (no region yet, another arena's, or full).
inline void* sync_region_try_allocate(std::uint64_t generation, std::size_t bytes, std::size_t alignment) noexcept {
  sync_region& r = tl_sync_regions[0];
  if (r.generation != generation) return nullptr;
  const auto addr = reinterpret_cast<std::uintptr_t>(r.cursor);
  const std::size_t pad = ((addr + alignment - 1) & ~(alignment - 1)) - addr;
  const std::size_t avail = static_cast<std::size_t>(r.end - r.cursor);
  if ((alignment & (alignment - 1)) != 0 || bytes > avail || pad > avail - bytes) return nullptr;
  char* p = r.cursor + pad;
  r.cursor = p + bytes;
  return p;
}

// Pops a block from an unsynchronized pool's free list of the class.
inline void* pool_try_pop(pool_lists* lists, std::size_t largest, std::size_t bytes, std::size_t alignment) noexcept {
#if !defined(MEMRES_DEBUG_CHECKS)
  const std::size_t c = pool_class_of(bytes, alignment, largest);
  if (c < pool_class_count && lists->heads[c] != nullptr && count_for_profiler(lists->sample_left, bytes)) {
    if (void* block = list_pop(lists->heads[c], lists->keys)) {
#if defined(MEMRES_ASAN)
      __asan_unpoison_memory_region(block, bytes);
#endif
      return block;
    }
  }
#endif
  (void)lists, (void)largest, (void)bytes, (void)alignment;
  return nullptr;
}

// Pushes a freed block onto an unsynchronized pool's free list.
inline bool pool_try_push(pool_lists* lists, std::size_t largest, void* p, std::size_t bytes,
                          std::size_t alignment) noexcept {
#if !defined(MEMRES_DEBUG_CHECKS) && !defined(MEMRES_ASAN)
  const std::size_t c = pool_class_of(bytes, alignment, largest);
  if (c < pool_class_count) return list_push(lists->heads[c], lists->keys, p);
#endif
  (void)lists, (void)largest, (void)p, (void)bytes, (void)alignment;
  return false;
}

// Pops a block from the calling thread's cache for the synchronized pool
// whose key is `key`, if the thread's hint points at that pool's cache.
inline void* sync_try_pop(const void* key, std::size_t largest, std::size_t bytes, std::size_t alignment) noexcept {
#if !defined(MEMRES_DEBUG_CHECKS)
  const std::size_t c = pool_class_of(bytes, alignment, largest);
  if (c >= pool_class_count) return nullptr;
  if (const sync_hint* hint = sync_hint_for(key)) {
    auto* cache = static_cast<sync_cache*>(hint->cache);
    if (cache->heads[c] == nullptr || !count_for_profiler(cache->sample_left, bytes)) return nullptr;
    if (void* block = list_pop(cache->heads[c], cache->keys)) {
      ++cache->room[c];
#if defined(MEMRES_ASAN)
      __asan_unpoison_memory_region(block, bytes);
#endif
      return block;
    }
  }
#endif
  (void)key, (void)largest, (void)bytes, (void)alignment;
  return nullptr;
}

// Pushes a freed block onto the calling thread's cache, as sync_try_pop.
inline bool sync_try_push(const void* key, std::size_t largest, void* p, std::size_t bytes,
                          std::size_t alignment) noexcept {
#if !defined(MEMRES_DEBUG_CHECKS) && !defined(MEMRES_ASAN)
  const std::size_t c = pool_class_of(bytes, alignment, largest);
  if (c >= pool_class_count) return false;
  if (const sync_hint* hint = sync_hint_for(key)) {
    auto* cache = static_cast<sync_cache*>(hint->cache);
    if (cache->room[c] != 0 && list_push(cache->heads[c], cache->keys, p)) {
      --cache->room[c];
      return true;
    }
  }
#endif
  (void)key, (void)largest, (void)p, (void)bytes, (void)alignment;
  return false;
}

// Each pool kind's inline fast path over the state its Rust core exposes:
// what the pool classes and the views of Rust pools (below) share.
struct unsync_fast_path {
  pool_lists* lists;  // inside the Rust pool: one free list per class, and the keys
  std::size_t largest;
  void* try_pop(std::size_t bytes, std::size_t alignment) const noexcept {
    return pool_try_pop(lists, largest, bytes, alignment);
  }
  bool try_push(void* p, std::size_t bytes, std::size_t alignment) const noexcept {
    return pool_try_push(lists, largest, p, bytes, alignment);
  }
};

struct sync_fast_path {
  const void* key;  // the pool's key in the thread's sync_hint
  std::size_t largest;
  void* try_pop(std::size_t bytes, std::size_t alignment) const noexcept {
    return sync_try_pop(key, largest, bytes, alignment);
  }
  bool try_push(void* p, std::size_t bytes, std::size_t alignment) const noexcept {
    return sync_try_push(key, largest, p, bytes, alignment);
  }
};

}  // inline namespace MEMRES_CONFIG_NS
}  // namespace detail

/// Beyond std: a position in a memres::monotonic_buffer_resource, made by
/// its checkpoint() and taken back to by rewind(). Move-only; good for the
/// resource that made it until that resource's next reset() or release(),
/// and not after a rewind() to a point before it.
class monotonic_checkpoint {
 public:
  monotonic_checkpoint(monotonic_checkpoint&& other) noexcept : mark_(std::exchange(other.mark_, nullptr)) {}
  monotonic_checkpoint& operator=(monotonic_checkpoint&& other) noexcept {
    std::swap(mark_, other.mark_);
    return *this;
  }
  monotonic_checkpoint(const monotonic_checkpoint&) = delete;
  monotonic_checkpoint& operator=(const monotonic_checkpoint&) = delete;
  ~monotonic_checkpoint() {
    if (mark_ != nullptr) detail::monotonic_mark_destroy(mark_);
  }

 private:
  friend class monotonic_buffer_resource;
  explicit monotonic_checkpoint(detail::monotonic_mark* mark) noexcept : mark_(mark) {}
  detail::monotonic_mark* mark_;
};

/// A drop-in for std::pmr::monotonic_buffer_resource.
///
/// Effects: as std's. Memory is taken from upstream in chunks that grow by a
/// factor of 2 (up to 64 MiB); do_deallocate has no effect; release() gives
/// all chunks back and restarts from the initial buffer and size.
///
/// Beyond std: reset() rewinds to empty but keeps the chunks (a request loop
/// stops calling upstream after warm-up), set_budget() caps the bytes taken
/// from upstream, stats() reports usage, and allocation works from any initial
/// size (even 1 byte). Zero-byte requests return distinct pointers.
///
/// Throws: std::bad_alloc when upstream cannot supply memory or the budget is
/// exhausted; an exception thrown by upstream propagates unchanged.
/// Requires: alignment is a power of two (otherwise std::invalid_argument).
/// Thread safety: none, as std's; one thread at a time.
class monotonic_buffer_resource : public std::pmr::memory_resource {
 public:
  monotonic_buffer_resource() : monotonic_buffer_resource(std::pmr::get_default_resource()) {}
  explicit monotonic_buffer_resource(std::pmr::memory_resource* upstream)
      : monotonic_buffer_resource(nullptr, 0, 0, upstream, ctor_tag{}) {}
  explicit monotonic_buffer_resource(std::size_t initial_size)
      : monotonic_buffer_resource(initial_size, std::pmr::get_default_resource()) {}
  monotonic_buffer_resource(std::size_t initial_size, std::pmr::memory_resource* upstream)
      : monotonic_buffer_resource(nullptr, 0, initial_size, upstream, ctor_tag{}) {}
  monotonic_buffer_resource(void* buffer, std::size_t buffer_size)
      : monotonic_buffer_resource(buffer, buffer_size, std::pmr::get_default_resource()) {}
  monotonic_buffer_resource(void* buffer, std::size_t buffer_size, std::pmr::memory_resource* upstream)
      : monotonic_buffer_resource(buffer, buffer_size, 0, upstream, ctor_tag{}) {}

  monotonic_buffer_resource(const monotonic_buffer_resource&) = delete;
  monotonic_buffer_resource& operator=(const monotonic_buffer_resource&) = delete;

  ~monotonic_buffer_resource() override { detail::monotonic_destroy(core_); }

  /// Gives all memory back to upstream; starts over from the initial buffer.
  /// Requires: as for reset().
  void release() noexcept { detail::monotonic_release(core_); }
  /// Rewinds to empty and keeps the memory for reuse (several chunks are
  /// merged into one, so that later cycles make no upstream calls).
  /// Requires: no object allocated from this resource is used afterwards;
  /// destroy the containers first (their destructors read their memory).
  void reset() noexcept { detail::monotonic_reset(core_); }
  std::pmr::memory_resource* upstream_resource() const noexcept { return upstream_; }

  /// Caps the bytes held from upstream; SIZE_MAX (the default) means no cap.
  void set_budget(std::size_t bytes) noexcept { detail::monotonic_set_budget(core_, bytes); }
  std::size_t budget() const noexcept { return detail::monotonic_budget(core_); }
  /// Beyond std: names the resource for the profiler (memres::profile_start):
  /// its samples' stacks start with "name (Monotonic)", so a profile can be
  /// cut by resource. A ';' in the name becomes ':'.
  void set_name(std::string_view name) { detail::monotonic_set_name(core_, name); }
  /// The name set by set_name(), or "".
  std::string name() const { return detail::monotonic_name(core_); }
  monotonic_stats stats() const noexcept { return detail::monotonic_get_stats(core_); }
  /// Beyond std: stats() as one JSON object, for a monitoring system:
  /// {"used":...,"held":...,"chunks":...,"upstream_allocs":...,"upstream_frees":...}.
  std::string stats_json() const { return detail::monotonic_stats_json(core_); }

  /// Beyond std: the resource's position now, to rewind() to later (nested
  /// phases of a request or a frame; see monotonic_scope).
  monotonic_checkpoint checkpoint() const { return monotonic_checkpoint(detail::monotonic_mark_create(core_)); }
  /// Frees everything allocated since `point` was made; what came before
  /// stays. Requires: no object allocated since then is used afterwards.
  /// Throws: std::invalid_argument if `point` is from another resource,
  /// from before a reset() or release(), or from after a point this
  /// resource was rewound to since (nothing is freed then).
  void rewind(const monotonic_checkpoint& point) {
    if (point.mark_ == nullptr || !detail::monotonic_rewind(core_, point.mark_))
      throw std::invalid_argument("memres::monotonic_buffer_resource::rewind: a stale checkpoint");
  }

  /// The Rust object behind this resource (memres_cxx::MonotonicCore).
  detail::monotonic_core* rust_core() const noexcept { return core_; }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    bytes += (bytes == 0);  // distinct pointers for zero-byte requests
    if (void* p = detail::bump_try_allocate(bump_, bytes, alignment)) return p;
    return detail::monotonic_allocate_slow(core_, bytes, alignment);
  }

  void do_deallocate([[maybe_unused]] void* p, [[maybe_unused]] std::size_t bytes,
                     [[maybe_unused]] std::size_t alignment) override {
#if defined(MEMRES_DEBUG_CHECKS)
    detail::monotonic_forget(core_, p, bytes + (bytes == 0), alignment);
#endif
  }

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

 private:
  struct ctor_tag {};
  monotonic_buffer_resource(void* buffer, std::size_t buffer_size, std::size_t initial_size,
                            std::pmr::memory_resource* upstream, ctor_tag)
      : core_(detail::monotonic_create(upstream, buffer, buffer_size, initial_size)),
        bump_(detail::monotonic_bump(core_)),
        upstream_(upstream) {}

  detail::monotonic_core* core_;
  detail::bump_state* bump_;  // inside *core_; the fast path's only state
  std::pmr::memory_resource* upstream_;
};

/// Beyond std: a monotonic arena that many threads allocate from at once
/// (a request whose work fans out to a thread pool), reset or released as
/// a whole when they are done. Each thread bumps in a region of its own,
/// carved from the shared chunks under a lock (4 KiB, doubling up to 256
/// KiB; blocks over 64 KiB come from the chunks directly), found through a
/// thread-local table: allocation takes no lock and threads write no shared
/// cache line. deallocate() gives the calling thread's newest block back;
/// other blocks wait for reset() or release(), which, like std's release(),
/// must not overlap any other call on the resource. Rust:
/// memres::SyncMonotonic (the same design; each language keeps its own
/// regions in the shared chunks).
class synchronized_monotonic_buffer_resource : public std::pmr::memory_resource {
 public:
  synchronized_monotonic_buffer_resource()
      : synchronized_monotonic_buffer_resource(std::pmr::get_default_resource()) {}
  explicit synchronized_monotonic_buffer_resource(std::pmr::memory_resource* upstream)
      : core_(detail::sync_monotonic_create(upstream)),
        generation_(detail::sync_monotonic_generation(core_)),
        upstream_(upstream) {}

  synchronized_monotonic_buffer_resource(const synchronized_monotonic_buffer_resource&) = delete;
  synchronized_monotonic_buffer_resource& operator=(const synchronized_monotonic_buffer_resource&) = delete;

  ~synchronized_monotonic_buffer_resource() override { detail::sync_monotonic_destroy(core_); }

  /// Everything allocated goes at once; the chunks are kept (merged into
  /// one) for the next cycle, so a request loop settles into no upstream
  /// calls. No other call on the resource may overlap it.
  void reset() noexcept { detail::sync_monotonic_reset(core_); }
  /// Everything allocated goes at once, and the chunks go back upstream.
  /// No other call on the resource may overlap it.
  void release() noexcept { detail::sync_monotonic_release(core_); }
  std::pmr::memory_resource* upstream_resource() const noexcept { return upstream_; }
  /// What the arena holds and has done; `used` counts the regions threads
  /// have carved (used or not yet) and big blocks.
  monotonic_stats stats() const noexcept { return detail::sync_monotonic_get_stats(core_); }
  /// stats() as one JSON object, as monotonic_buffer_resource::stats_json().
  std::string stats_json() const { return detail::sync_monotonic_stats_json(core_); }
  /// Beyond std: names the resource for the profiler (memres::profile_start):
  /// the regions its threads carve are sampled as blocks of the Rust arena
  /// they come from, so their stacks start with "name (Monotonic)". A ';' in
  /// the name becomes ':'.
  void set_name(std::string_view name) { detail::sync_monotonic_set_name(core_, name); }
  /// The name set by set_name(), or "".
  std::string name() const { return detail::sync_monotonic_name(core_); }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    const std::uint64_t generation = generation_->load(std::memory_order_relaxed);
    if (void* p = detail::sync_region_try_allocate(generation, bytes, alignment)) return p;
    return detail::sync_monotonic_allocate_slow(core_, generation, bytes, alignment);
  }

  void do_deallocate(void* p, std::size_t bytes, std::size_t) override {
    // The calling thread's newest block in this cycle: its region's cursor
    // moves back.
    detail::sync_region& r = detail::tl_sync_regions[0];
    const auto block = reinterpret_cast<std::uintptr_t>(p);
    if (r.generation == generation_->load(std::memory_order_relaxed) &&
        block >= reinterpret_cast<std::uintptr_t>(r.start) && block + bytes == reinterpret_cast<std::uintptr_t>(r.cursor))
      r.cursor = static_cast<char*>(p);
  }

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

 private:
  detail::sync_monotonic_core* core_;
  const std::atomic<std::uint64_t>* generation_;
  std::pmr::memory_resource* upstream_;
};

/// Beyond std: a nested phase of a monotonic_buffer_resource's life. What
/// the resource hands out while the scope lives is freed when it ends;
/// what came before stays.
///
///   memres::monotonic_buffer_resource arena;
///   std::pmr::vector<int> kept(&arena);
///   {
///     memres::monotonic_scope phase(arena);
///     std::pmr::vector<int> scratch(&arena);  // freed with the scope
///   }
///
/// Requires: the objects made in the scope are destroyed before it ends
/// (declare them after it), and the resource is not reset() or released
/// inside it (the scope cannot rewind then: it reports that and aborts).
class monotonic_scope {
 public:
  explicit monotonic_scope(monotonic_buffer_resource& arena) : arena_(arena), start_(arena.checkpoint()) {}
  monotonic_scope(const monotonic_scope&) = delete;
  monotonic_scope& operator=(const monotonic_scope&) = delete;
  ~monotonic_scope() {
    try {
      arena_.rewind(start_);
    } catch (const std::invalid_argument&) {
      std::fputs("memres::monotonic_scope: the resource was reset or released inside the scope\n", stderr);
      std::abort();
    }
  }

 private:
  monotonic_buffer_resource& arena_;
  monotonic_checkpoint start_;
};

/// Beyond std: frame arenas for engines, two resources used in turn.
/// Frame N allocates from current() while frame N-1's resource, previous(),
/// stays intact: what frame N builds may be read through frame N+1. When
/// frame N+1 begins, the resource of frame N-1 is reset (its memory kept,
/// merged into one chunk) and becomes current, so once the first frames
/// have sized both, a frame makes no upstream call.
///
/// Arena is memres::monotonic_buffer_resource (one thread; nested phases
/// with monotonic_scope) or memres::synchronized_monotonic_buffer_resource
/// (jobs on many threads allocate from current() at once, each thread in a
/// region of its own). Rust: memres::FrameArenas (which also checks at run
/// time that data carried into the next frame is read only then).
///
/// Requires: objects made in frame N are destroyed (or forgotten) before
/// frame N+2 begins; begin_frame() does not overlap other calls on the
/// arenas (as reset()).
template <class Arena = monotonic_buffer_resource>
class frame_arenas {
 public:
  frame_arenas() : frame_arenas(std::pmr::get_default_resource()) {}
  explicit frame_arenas(std::pmr::memory_resource* upstream) : arenas_{Arena(upstream), Arena(upstream)} {}
  frame_arenas(const frame_arenas&) = delete;
  frame_arenas& operator=(const frame_arenas&) = delete;

  /// The current frame's number: 0 at first, one more per begin_frame().
  std::uint64_t frame() const noexcept { return frame_; }
  /// Starts the next frame: the resource of the frame before the previous
  /// one is reset and becomes current.
  void begin_frame() noexcept {
    ++frame_;
    current().reset();
  }
  Arena& current() noexcept { return arenas_[frame_ % 2]; }
  const Arena& current() const noexcept { return arenas_[frame_ % 2]; }
  Arena& previous() noexcept { return arenas_[(frame_ + 1) % 2]; }
  const Arena& previous() const noexcept { return arenas_[(frame_ + 1) % 2]; }
  /// Upstream allocations both resources have made so far.
  std::uint64_t upstream_allocs() const noexcept {
    return arenas_[0].stats().upstream_allocs + arenas_[1].stats().upstream_allocs;
  }

 private:
  Arena arenas_[2];
  std::uint64_t frame_ = 0;
};

namespace detail {
inline namespace MEMRES_CONFIG_NS {

// The Rust core of each pool kind, and its fast path (see pool_resource).
struct unsync_pool_kind {
  using core = pool_core;  // memres_cxx::UnsyncPoolCore
  using fast_path = unsync_fast_path;
  static core* create(std::pmr::memory_resource* upstream, const std::pmr::pool_options& options) {
    return unsync_pool_create(upstream, options);
  }
  static fast_path fast(core* c) noexcept {
    return {reinterpret_cast<pool_lists*>(unsync_pool_heads(c)), unsync_pool_options(c).largest_required_pool_block};
  }
  static void destroy(core* c) noexcept { unsync_pool_destroy(c); }
  static void release(core* c) noexcept { unsync_pool_release(c); }
  static std::size_t trim(core* c) noexcept { return unsync_pool_trim(c); }
  static std::size_t bytes_held(const core* c) noexcept { return unsync_pool_bytes_held(c); }
  static std::string stats_json(core* c) { return unsync_pool_stats_json(c); }
  static void set_name(core* c, std::string_view name) { unsync_pool_set_name(c, name); }
  static std::string name(const core* c) { return unsync_pool_name(c); }
  static std::pmr::pool_options options(const core* c) noexcept { return unsync_pool_options(c); }
  static void* allocate_slow(core* c, std::size_t bytes, std::size_t alignment) {
    return unsync_pool_allocate_slow(c, bytes, alignment);
  }
  static void deallocate_slow(core* c, void* p, std::size_t bytes, std::size_t alignment) noexcept {
    unsync_pool_deallocate_slow(c, p, bytes, alignment);
  }
};

struct sync_pool_kind {
  using core = sync_pool_core;  // memres_cxx::SyncPoolCore
  using fast_path = sync_fast_path;
  static core* create(std::pmr::memory_resource* upstream, const std::pmr::pool_options& options) {
    return sync_pool_create(upstream, options);
  }
  static fast_path fast(core* c) noexcept {
    return {sync_pool_key(c), sync_pool_options(c).largest_required_pool_block};
  }
  static void destroy(core* c) noexcept { sync_pool_destroy(c); }
  static void release(core* c) noexcept { sync_pool_release(c); }
  static std::size_t trim(core* c) noexcept { return sync_pool_trim(c); }
  static std::size_t bytes_held(const core* c) noexcept { return sync_pool_bytes_held(c); }
  static std::string stats_json(core* c) { return sync_pool_stats_json(c); }
  static void set_name(core* c, std::string_view name) { sync_pool_set_name(c, name); }
  static std::string name(const core* c) { return sync_pool_name(c); }
  static std::pmr::pool_options options(const core* c) noexcept { return sync_pool_options(c); }
  static void* allocate_slow(core* c, std::size_t bytes, std::size_t alignment) {
    return sync_pool_allocate_slow(c, bytes, alignment);
  }
  static void deallocate_slow(core* c, void* p, std::size_t bytes, std::size_t alignment) noexcept {
    sync_pool_deallocate_slow(c, p, bytes, alignment);
  }
};

// What both pool classes are: std's constructors and members over a Rust
// core of `Kind`, with the kind's fast path inline and its slow path in
// Rust. The public classes below add only their name and documentation.
template <class Kind>
class pool_resource : public std::pmr::memory_resource {
 public:
  pool_resource() : pool_resource(std::pmr::pool_options{}, std::pmr::get_default_resource()) {}
  explicit pool_resource(std::pmr::memory_resource* upstream) : pool_resource(std::pmr::pool_options{}, upstream) {}
  explicit pool_resource(const std::pmr::pool_options& options)
      : pool_resource(options, std::pmr::get_default_resource()) {}
  pool_resource(const std::pmr::pool_options& options, std::pmr::memory_resource* upstream)
      : core_(Kind::create(upstream, options)), fast_(Kind::fast(core_)), upstream_(upstream) {}

  pool_resource(const pool_resource&) = delete;
  pool_resource& operator=(const pool_resource&) = delete;

  ~pool_resource() override { Kind::destroy(core_); }

  /// Gives all memory back to upstream, even blocks still allocated (the
  /// synchronized pool also empties every thread's cache).
  void release() noexcept { Kind::release(core_); }
  /// Beyond std: gives wholly free chunks back; returns the bytes returned.
  std::size_t trim() noexcept { return Kind::trim(core_); }
  /// Beyond std: bytes held from upstream.
  std::size_t bytes_held() const noexcept { return Kind::bytes_held(core_); }
  /// Beyond std: what the pool holds, as one JSON object for a monitoring
  /// system: {"bytes_held":...,"upstream_allocs":...,"upstream_frees":...,
  /// "classes":[{"block_size":...,"blocks_live":...,"blocks_free":...,
  /// "chunks":...,"bytes_held":...},...]} (the classes that ever held a
  /// chunk; counting every thread's cache, so like trim() it must not overlap
  /// other calls on a synchronized pool; left empty while Rust borrows the
  /// pool).
  std::string stats_json() const { return Kind::stats_json(core_); }
  /// Beyond std: names the pool for the profiler (memres::profile_start):
  /// its samples' stacks start with "name (UnsyncPool)" or "name (SyncPool)",
  /// so a profile can be cut by resource. A ';' in the name becomes ':'.
  void set_name(std::string_view name) { Kind::set_name(core_, name); }
  /// The name set by set_name(), or "".
  std::string name() const { return Kind::name(core_); }
  std::pmr::memory_resource* upstream_resource() const noexcept { return upstream_; }
  /// The options in force (zeros replaced by defaults, values clamped).
  std::pmr::pool_options options() const noexcept { return Kind::options(core_); }

  /// The Rust object behind this resource.
  typename Kind::core* rust_core() const noexcept { return core_; }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (void* p = fast_.try_pop(bytes, alignment)) return p;
    return Kind::allocate_slow(core_, bytes, alignment);
  }

  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    if (!fast_.try_push(p, bytes, alignment)) Kind::deallocate_slow(core_, p, bytes, alignment);
  }

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

 private:
  typename Kind::core* core_;
  typename Kind::fast_path fast_;
  std::pmr::memory_resource* upstream_;
};

}  // inline namespace MEMRES_CONFIG_NS
}  // namespace detail

/// A drop-in for std::pmr::unsynchronized_pool_resource.
///
/// Effects: as std's. Requests up to options().largest_required_pool_block
/// are served from per-size-class pools (steps of 8 bytes up to 128, then
/// four classes per doubling) with no per-block header; a freed block is
/// reused by the next request of its class. Larger or more aligned requests
/// go to upstream. release() gives everything back to upstream.
///
/// Beyond std: every block honours its alignment even when the size is not a
/// multiple of it; an upstream that throws mid-refill leaves the pool usable;
/// trim() gives wholly free chunks back; zero-byte requests return distinct
/// pointers. The allocate and deallocate fast paths (a free-list pop or push)
/// are inline; only a refill, an oversize block or release crosses into Rust.
/// Misuse: free lists are sealed (see list_keys), so a double free, an address
/// written into a freed block or an overflow into a free neighbour stops the
/// process with a one-line message (MEMRES_ON_MISUSE=report: reported, memory
/// left alone) instead of handing out a live block.
///
/// Throws: std::bad_alloc when upstream cannot supply memory (an exception
/// thrown by upstream propagates unchanged).
/// Requires: alignment is a power of two (otherwise std::invalid_argument);
/// deallocate gets the size and alignment the block was allocated with.
/// Thread safety: none, as std's; one thread at a time.
class unsynchronized_pool_resource : public detail::pool_resource<detail::unsync_pool_kind> {
 public:
  using pool_resource::pool_resource;
};

/// A drop-in for std::pmr::synchronized_pool_resource.
///
/// Effects: as std's, and as unsynchronized_pool_resource's for classes,
/// options and oversize requests. Each thread that uses the resource gets a
/// cache of free blocks per size class: allocate pops from the calling
/// thread's cache and deallocate pushes onto it, inline and without a lock
/// or atomic operation. Full or empty caches trade batches of blocks with
/// per-class central lists (one lock per class), so a block may be freed by
/// any thread and a producer/consumer pair of threads does not make the pool
/// grow without bound. A thread's cache goes back to the pool when the
/// thread exits.
///
/// Beyond std: as unsynchronized_pool_resource's (alignment always honoured,
/// a throwing upstream leaves the pool usable, trim(), bytes_held()).
///
/// Throws: std::bad_alloc when upstream cannot supply memory (an exception
/// thrown by upstream propagates unchanged).
/// Requires: alignment is a power of two (otherwise std::invalid_argument);
/// deallocate gets the size and alignment the block was allocated with.
/// Thread safety: allocate and deallocate from any threads at once; upstream
/// is called by one thread at a time. release(), trim() and destruction
/// must not run concurrently with other calls, as in std.
class synchronized_pool_resource : public detail::pool_resource<detail::sync_pool_kind> {
 public:
  using pool_resource::pool_resource;
};

/// The process-wide thread-caching heap (Rust: memres::Heap), like
/// std::pmr::new_delete_resource(): never destroyed, usable from any thread,
/// equal only to itself. Zero-byte requests return distinct pointers;
/// requests the heap cannot serve (sizes near SIZE_MAX with any alignment)
/// throw std::bad_alloc; an alignment that is not a power of two throws
/// std::invalid_argument. Alignments up to any power of two the OS can map
/// are honoured. Small blocks are allocated, and freed by the thread that
/// allocated them, inline from the thread's heap; the rest calls into Rust.
std::pmr::memory_resource* heap_resource() noexcept;

namespace detail {
inline namespace MEMRES_CONFIG_NS {
// Whether heap_resource() found the Rust heap's layout as it expects and
// serves small blocks inline (always false under MEMRES_DEBUG_CHECKS, whose
// builds take no inline path).
bool heap_inline_fast_path() noexcept;
}  // inline namespace MEMRES_CONFIG_NS
}  // namespace detail

/// The heap's totals (Rust: memres::HeapStats, which says how to read them:
/// allocated growing is a leak; resident far above allocated is
/// fragmentation or free pages not handed back yet).
struct heap_stats {
  std::size_t allocated;  ///< bytes in live blocks (at their size class)
  std::size_t active;     ///< bytes of pages holding live blocks
  std::size_t resident;   ///< bytes touched and not handed back (upper bound)
  std::size_t mapped;     ///< bytes mapped and not yet unmapped
  std::size_t retained;   ///< mapped - resident: address space only
};
heap_stats get_heap_stats() noexcept;

/// One size class of the heap; the last entry is the large blocks (size 0).
struct heap_class_stats {
  std::size_t size;    ///< the class's block size
  std::size_t live;    ///< blocks live now
  std::size_t active;  ///< bytes of the pages holding them (64 KiB each)
};
std::vector<heap_class_stats> get_heap_class_stats();

/// The heap's totals and the size classes in use as one JSON object, for a
/// monitoring system (Rust: memres::Heap::report(); the malloc shim prints
/// the same with MEMRES_STATS=json): {"allocated":...,"active":...,
/// "resident":...,"mapped":...,"retained":...,"classes":[{"size":48,
/// "live":...,"active":...},...]}; size 0 is the medium and large blocks.
std::string heap_stats_json();

/// The sampling allocation profiler (Rust: memres::profile). Samples
/// allocations as a Poisson process over the bytes handed out, one sample
/// per `interval` bytes on average (512 KiB by default; 0 stops), each
/// weighted by the bytes it stands for, with its call stack. The monotonic
/// arenas sample, from C++ and Rust alike (they share one core); an arena
/// notices a start or stop when it next takes a chunk, resets or rewinds.
/// With the profiler off the arenas' fast paths cost nothing more. The heap
/// (heap_resource(), and malloc under the shim) samples too, its samples
/// matched at free (so profile_view::live and ::peak hold them); the
/// calling thread's heap notices a start at once, others within 64 KiB.
/// The pools sample too (in the allocated view only: their frees are not
/// watched), each noticing a start within 64 KiB of its allocations.
void profile_start(std::size_t interval = 512 * 1024);
void profile_stop();
/// Drops the samples taken so far.
void profile_clear();
/// The samples taken since the last profile_clear().
std::size_t profile_samples();
/// The profile in folded form, a line per stack, "resource;outer;...;inner
/// bytes" (flame-graph tools read it), names demangled, heaviest first.
std::string profile_folded();
/// Which samples a profile counts: every allocation, those still live (a
/// heap block not freed, an arena's block not taken back by a release), or
/// those live when the live bytes peaked.
enum class profile_view { allocated, live, peak };
/// profile_folded() for the samples of `view`.
std::string profile_folded(profile_view view);
/// Writes profile_folded() to `path`; false if the file could not be written.
bool profile_dump(const std::string& path);

/// The heap's memory limits on its resident bytes; 0 is no limit. Past
/// `soft` the heap purges free memory first; past `hard` allocations throw
/// std::bad_alloc. Also set by MEMRES_HEAP_SOFT_LIMIT / MEMRES_HEAP_LIMIT
/// (bytes, with an optional K, M or G suffix).
struct heap_limits {
  std::size_t soft = 0;
  std::size_t hard = 0;
};
void set_heap_limits(heap_limits limits) noexcept;
heap_limits get_heap_limits() noexcept;

/// Gives the calling thread's free heap pages back to the OS now; returns
/// the bytes (Rust: memres::Heap::purge).
std::size_t heap_purge() noexcept;

/// Whether the heap runs in secure mode (CMake option MEMRES_SECURE, or
/// MEMRES_SECURE=1 in the environment at the heap's first use): guard pages,
/// randomized free lists, freed blocks zeroed and held back from reuse (they
/// count as allocated until then; heap_purge() lets the calling thread's go),
/// sampled guarded allocations (MEMRES_GUARDED_SAMPLE_RATE). Every
/// allocation and free then goes through the Rust core: the inline fast
/// paths step aside (Rust: memres::Heap::secure).
bool heap_secure() noexcept;

namespace detail {
inline namespace MEMRES_CONFIG_NS {

struct view_target;  // a Rust-owned resource, type-erased (memres_cxx::ViewTarget); opaque here

// Throws like monotonic_allocate_slow (and memres::rust_panic for a panic).
void* view_allocate_slow(view_target* target, std::size_t bytes, std::size_t alignment);
void view_deallocate_slow(view_target* target, void* p, std::size_t bytes, std::size_t alignment) noexcept;
void view_destroy(view_target* target) noexcept;
const void* view_object(const view_target* target) noexcept;

// Views of Rust-owned resources: what Rust code hands to C++ (memres_cxx::
// CxxView) as a std::pmr::memory_resource. A view owns nothing but its
// handle on the Rust object: the fast paths run inline, over the Rust
// object's own state, exactly as the owning classes above run them, and the
// slow paths call back into the Rust resource.
//
// The rules for C++ code given a view:
// - use it only while the Rust code that gave it is still running the call
//   (the Rust borrow ends there; the Rust side destroys the view);
// - memory from it lives until the Rust owner frees, resets or releases it:
//   do not keep containers built on it past that;
// - a view of a Monotonic or UnsyncPool is used by one thread at a time (the
//   thread the Rust owner runs on); a view of a SyncPool by any threads;
// - two views of the same Rust resource compare equal (is_equal), so memory
//   from one may be freed through the other.
class rust_view : public std::pmr::memory_resource {
 public:
  rust_view(const rust_view&) = delete;
  rust_view& operator=(const rust_view&) = delete;
  ~rust_view() override { view_destroy(target_); }

 protected:
  explicit rust_view(view_target* target) noexcept : target_(target) {}

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    const auto* view = dynamic_cast<const rust_view*>(&other);
    return view != nullptr && view_object(view->target_) == view_object(target_);
  }

  view_target* target_;
};

class monotonic_view final : public rust_view {
 public:
  monotonic_view(bump_state* bump, view_target* target) noexcept : rust_view(target), bump_(bump) {}

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    bytes += (bytes == 0);
    if (void* p = bump_try_allocate(bump_, bytes, alignment)) return p;
    return view_allocate_slow(target_, bytes, alignment);
  }
  void do_deallocate([[maybe_unused]] void* p, [[maybe_unused]] std::size_t bytes,
                     [[maybe_unused]] std::size_t alignment) override {
#if defined(MEMRES_DEBUG_CHECKS)
    view_deallocate_slow(target_, p, bytes + (bytes == 0), alignment);  // checked, as the owning class does
#endif
  }

 private:
  bump_state* bump_;
};

// A view of a Rust pool: the pool kind's fast path inline, the rest
// through the view target.
template <class FastPath>
class pool_view final : public rust_view {
 public:
  pool_view(FastPath fast, view_target* target) noexcept : rust_view(target), fast_(fast) {}

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    if (void* p = fast_.try_pop(bytes, alignment)) return p;
    return view_allocate_slow(target_, bytes, alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    if (!fast_.try_push(p, bytes, alignment)) view_deallocate_slow(target_, p, bytes, alignment);
  }

 private:
  FastPath fast_;
};

using unsync_pool_view = pool_view<unsync_fast_path>;
using sync_pool_view = pool_view<sync_fast_path>;

// A view with no inline fast path: every call goes to the Rust resource.
class plain_view final : public rust_view {
 public:
  explicit plain_view(view_target* target) noexcept : rust_view(target) {}

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    return view_allocate_slow(target_, bytes + (bytes == 0), alignment);
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    view_deallocate_slow(target_, p, bytes + (bytes == 0), alignment);
  }
};

}  // inline namespace MEMRES_CONFIG_NS
}  // namespace detail

}  // namespace memres
