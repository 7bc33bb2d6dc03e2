// memres: memory resources for C++ over a Rust core.
//
// Each class derives from std::pmr::memory_resource and keeps the std class's
// constructors and members, so `std::pmr::X` -> `memres::X` is a one-word
// change. Allocation fast paths are inline here; only slow paths (a new chunk
// from upstream) call into the Rust core.
//
// This header needs only the standard library. Link memres::memres (CMake).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>

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
extern "C" void __asan_unpoison_memory_region(void const volatile* addr, std::size_t size);
#endif

namespace memres {

/// What a monotonic_buffer_resource holds and has done.
struct monotonic_stats {
  std::size_t used;              ///< bytes handed out since the last reset/release (with padding)
  std::size_t held;              ///< bytes held from upstream (not the initial buffer)
  std::size_t chunks;            ///< chunks held from upstream
  std::uint64_t upstream_allocs; ///< successful upstream allocate calls, ever
  std::uint64_t upstream_frees;  ///< upstream deallocate calls, ever
};

namespace detail {

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
void monotonic_set_budget(monotonic_core* core, std::size_t bytes) noexcept;
std::size_t monotonic_budget(const monotonic_core* core) noexcept;

}  // namespace detail

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
  monotonic_stats stats() const noexcept { return detail::monotonic_get_stats(core_); }

  /// The Rust object behind this resource (memres_cxx::MonotonicCore).
  detail::monotonic_core* rust_core() const noexcept { return core_; }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    bytes += (bytes == 0);  // distinct pointers for zero-byte requests
#if defined(MEMRES_DEBUG_CHECKS)
    // Every block goes through the Rust core, which records it for the checks.
    return detail::monotonic_allocate_slow(core_, bytes, alignment);
#endif
    const auto addr = reinterpret_cast<std::uintptr_t>(bump_->cursor);
    const auto end = reinterpret_cast<std::uintptr_t>(bump_->end);
    const std::size_t pad = ((addr + alignment - 1) & ~(alignment - 1)) - addr;
    const std::size_t avail = end - addr;
    if ((alignment & (alignment - 1)) == 0 && bytes <= avail && pad <= avail - bytes) {
      char* p = bump_->cursor + pad;
      bump_->cursor = p + bytes;
#if defined(MEMRES_ASAN)
      __asan_unpoison_memory_region(p, bytes);
#endif
      return p;
    }
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

}  // namespace memres
