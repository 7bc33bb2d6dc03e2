// The out-of-line half of <memres/memres.hpp>: slow paths that cross into
// the Rust core, and the upstream calls the Rust core makes into C++.
#include "memres/memres.hpp"

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>

#include "memres-cxx/src/bridge.hpp"
#include "memres-cxx/src/lib.rs.h"

namespace memres::ffi {
namespace {
thread_local std::exception_ptr parked;
}

std::uint8_t* upstream_allocate(std::pmr::memory_resource* resource, std::size_t size,
                                std::size_t align) noexcept {
  try {
    return static_cast<std::uint8_t*>(resource->allocate(size, align));
  } catch (...) {
    parked = std::current_exception();
    return nullptr;
  }
}

void upstream_deallocate(std::pmr::memory_resource* resource, std::uint8_t* ptr, std::size_t size,
                         std::size_t align) noexcept {
  resource->deallocate(ptr, size, align);
}

std::pmr::memory_resource* new_delete_resource() noexcept { return std::pmr::new_delete_resource(); }
std::pmr::memory_resource* get_default_resource() noexcept { return std::pmr::get_default_resource(); }
std::pmr::memory_resource* null_memory_resource() noexcept { return std::pmr::null_memory_resource(); }

std::exception_ptr take_parked_exception() noexcept {
  std::exception_ptr e = parked;
  parked = nullptr;
  return e;
}
}  // namespace memres::ffi

namespace memres {
version_info version() noexcept {
  const ffi::Version v = ffi::core_version();
  return version_info{v.major, v.minor, v.patch};
}
}  // namespace memres

namespace memres::detail {
inline namespace MEMRES_CONFIG_NS {
namespace {
ffi::UnsyncPoolCore* pool_of(pool_core* core) { return reinterpret_cast<ffi::UnsyncPoolCore*>(core); }
const ffi::UnsyncPoolCore* pool_of(const pool_core* core) { return reinterpret_cast<const ffi::UnsyncPoolCore*>(core); }

[[noreturn]] void throw_allocation_failure() {
  if (std::exception_ptr e = ffi::take_parked_exception()) std::rethrow_exception(e);
  const rust::String panic = ffi::take_panic_message();
  if (!panic.empty()) throw memres::rust_panic(std::string(panic).c_str());
  throw std::bad_alloc();
}

// What the header mirrors from the Rust core, compared with the core once
// (memres::ForeignLayout): the layouts the inline fast paths read, the
// features they follow, and the class table, at every class boundary. A
// difference is a build error that got through (a header from another
// memres, say); the process stops naming the first fact that differs.
void check_mirrors_now() noexcept {
  const ffi::ForeignLayout core = ffi::foreign_layout();
  const auto same = [](const char* fact, std::size_t header, std::size_t rust) {
    if (header == rust) return;
    std::fprintf(stderr,
                 "memres: <memres/memres.hpp> and the Rust core disagree on %s (header: %zu, core: %zu); "
                 "build both from one memres\n",
                 fact, header, rust);
    std::abort();
  };
#if defined(MEMRES_DEBUG_CHECKS)
  same("MEMRES_DEBUG_CHECKS (the core's debug-checks feature)", 1, core.debug_checks);
#else
  same("MEMRES_DEBUG_CHECKS (the core's debug-checks feature)", 0, core.debug_checks);
#endif
#if defined(MEMRES_ASAN)
  same("MEMRES_ASAN (the core's asan feature)", 1, core.asan);
#else
  same("MEMRES_ASAN (the core's asan feature)", 0, core.asan);
#endif
  same("sizeof(bump_state)", sizeof(bump_state), core.bump_size);
  same("offsetof(bump_state, cursor)", offsetof(bump_state, cursor), core.bump_cursor);
  same("offsetof(bump_state, end)", offsetof(bump_state, end), core.bump_end);
  same("sizeof(sync_hint)", sizeof(sync_hint), core.hint_size);
  same("offsetof(sync_hint, key)", offsetof(sync_hint, key), core.hint_key);
  same("offsetof(sync_hint, cache)", offsetof(sync_hint, cache), core.hint_cache);
  same("sync_hint_count", sync_hint_count, core.hint_count);
  same("sizeof(sync_cache)", sizeof(sync_cache), core.cache_size);
  same("offsetof(sync_cache, heads)", offsetof(sync_cache, heads), core.cache_heads);
  same("offsetof(sync_cache, room)", offsetof(sync_cache, room), core.cache_room);
  same("offsetof(sync_cache, keys)", offsetof(sync_cache, keys), core.cache_keys);
  same("offsetof(sync_cache, sample_left)", offsetof(sync_cache, sample_left), core.cache_sample_left);
  same("offsetof(pool_lists, keys)", offsetof(pool_lists, keys), core.lists_keys);
  same("offsetof(pool_lists, sample_left)", offsetof(pool_lists, sample_left), core.lists_sample_left);
  same("sizeof(list_keys)", sizeof(list_keys), core.keys_size);
  same("offsetof(list_keys, link)", offsetof(list_keys, link), core.key_link);
  same("offsetof(list_keys, seal)", offsetof(list_keys, seal), core.key_seal);
  same("offsetof(list_keys, checks)", offsetof(list_keys, checks), core.key_checks);
  same("pool_class_count", pool_class_count, core.pool_classes);
  same("pool_max_class_align", pool_max_class_align, core.pool_max_class_align);
  // Both sides map sizes to classes monotonically, so agreeing on each
  // class's own size and the size just past it is agreeing on every size.
  const std::size_t largest = ffi::pool_class_size(pool_class_count - 1);
  for (std::size_t c = 0; c < pool_class_count; ++c) {
    const std::size_t size = ffi::pool_class_size(c);
    same("pool_class_of_size(a class's size)", pool_class_of_size(size), c);
    same("pool_class_of(a class's size)", pool_class_of(size, 1, largest), ffi::pool_class_of(size, 1, largest));
    same("pool_class_of(one past a class's size)", pool_class_of(size + 1, 1, largest),
         ffi::pool_class_of(size + 1, 1, largest));
  }
  for (std::size_t i = 1; i < sizeof pool_small_classes.classes; ++i)
    same("pool_small_classes", pool_small_classes.classes[i], ffi::pool_class_of(i * 8, 1, largest));
  // The rounding for alignment, around each power of two.
  for (std::size_t align = 1; align <= 2 * pool_max_class_align; align *= 2)
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, align - 1, align, align + 1, 3 * align, 5 * align + 3})
      same("pool_class_of(size, alignment)", pool_class_of(size, align, largest),
           ffi::pool_class_of(size, align, largest));
}

}  // namespace

void check_mirrors() noexcept {
  static const bool checked = (check_mirrors_now(), true);
  (void)checked;
}

std::size_t core_pool_class_of(std::size_t bytes, std::size_t alignment, std::size_t largest) noexcept {
  return ffi::pool_class_of(bytes, alignment, largest);
}

namespace {

void check_alignment(const char* who, std::size_t alignment) {
  if (alignment == 0 || (alignment & (alignment - 1)) != 0)
    throw std::invalid_argument(std::string(who) + ": alignment is not a power of two");
}
ffi::MonotonicCore* core_of(monotonic_core* core) { return reinterpret_cast<ffi::MonotonicCore*>(core); }
const ffi::MonotonicCore* core_of(const monotonic_core* core) {
  return reinterpret_cast<const ffi::MonotonicCore*>(core);
}
}  // namespace

monotonic_core* monotonic_create(std::pmr::memory_resource* upstream, void* buffer, std::size_t buffer_size,
                                 std::size_t initial_size) {
  check_mirrors();
  if (upstream == nullptr) throw std::invalid_argument("memres::monotonic_buffer_resource: upstream is null");
  auto core = ffi::monotonic_new(upstream, static_cast<std::uint8_t*>(buffer), buffer_size, initial_size);
  return reinterpret_cast<monotonic_core*>(core.into_raw());
}

void monotonic_destroy(monotonic_core* core) noexcept { rust::Box<ffi::MonotonicCore>::from_raw(core_of(core)); }

monotonic_mark* monotonic_mark_create(const monotonic_core* core) {
  return reinterpret_cast<monotonic_mark*>(core_of(core)->checkpoint().into_raw());
}

void monotonic_mark_destroy(monotonic_mark* mark) noexcept {
  rust::Box<ffi::MonotonicCheckpoint>::from_raw(reinterpret_cast<ffi::MonotonicCheckpoint*>(mark));
}

bool monotonic_rewind(monotonic_core* core, const monotonic_mark* mark) noexcept {
  return core_of(core)->rewind(*reinterpret_cast<const ffi::MonotonicCheckpoint*>(mark));
}

bump_state* monotonic_bump(monotonic_core* core) noexcept {
  return reinterpret_cast<bump_state*>(core_of(core)->bump_state());
}

void* monotonic_allocate_slow(monotonic_core* core, std::size_t bytes, std::size_t alignment) {
  check_alignment("memres::monotonic_buffer_resource", alignment);
  ffi::take_parked_exception();  // forget a stale one
  if (void* p = core_of(core)->allocate_slow(bytes, alignment)) return p;
  throw_allocation_failure();
}


namespace {
ffi::SyncMonotonicCore* sync_arena_of(sync_monotonic_core* core) {
  return reinterpret_cast<ffi::SyncMonotonicCore*>(core);
}
const ffi::SyncMonotonicCore* sync_arena_of(const sync_monotonic_core* core) {
  return reinterpret_cast<const ffi::SyncMonotonicCore*>(core);
}
// The thread-safe arena's region sizes, as the Rust core's (rust/monotonic/
// sync.rs). Nothing depends on their agreeing: each language carves and
// bumps in regions of its own; they only keep the two alike.
constexpr std::size_t first_region = 4 << 10;
constexpr std::size_t max_region = 256 << 10;
}  // namespace

sync_monotonic_core* sync_monotonic_create(std::pmr::memory_resource* upstream) {
  check_mirrors();
  if (upstream == nullptr)
    throw std::invalid_argument("memres::synchronized_monotonic_buffer_resource: upstream is null");
  return reinterpret_cast<sync_monotonic_core*>(ffi::sync_monotonic_new(upstream).into_raw());
}

void sync_monotonic_destroy(sync_monotonic_core* core) noexcept {
  rust::Box<ffi::SyncMonotonicCore>::from_raw(sync_arena_of(core));
}

const std::atomic<std::uint64_t>* sync_monotonic_generation(sync_monotonic_core* core) noexcept {
  // Rust's AtomicU64 has the in-memory representation of a u64, as does
  // std::atomic<std::uint64_t> where it is lock-free (checked below).
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free && sizeof(std::atomic<std::uint64_t>) == 8);
  return reinterpret_cast<const std::atomic<std::uint64_t>*>(sync_arena_of(core)->generation());
}

void* sync_monotonic_allocate_slow(sync_monotonic_core* core, std::uint64_t generation, std::size_t bytes,
                                   std::size_t alignment) {
  check_alignment("memres::synchronized_monotonic_buffer_resource", alignment);
  ffi::take_parked_exception();  // forget a stale one
  sync_region* table = tl_sync_regions;
  std::size_t found = sync_region_table;
  for (std::size_t i = 0; i < sync_region_table; ++i)
    if (table[i].generation == generation) found = i;
  // The arena's entry (found, or the least recently used one) to the front.
  const std::size_t from = found == sync_region_table ? sync_region_table - 1 : found;
  const sync_region moved = table[from];
  for (std::size_t i = from; i > 0; --i) table[i] = table[i - 1];
  table[0] = found == sync_region_table ? sync_region{generation, nullptr, nullptr, nullptr, 0} : moved;
  if (void* p = sync_region_try_allocate(generation, bytes, alignment)) return p;
  if (bytes > max_region / 4 || alignment > first_region) {
    // Big or very aligned: from the shared chunks, no region wasted on it.
    if (void* p = sync_arena_of(core)->allocate_shared(bytes, alignment)) return p;
    throw_allocation_failure();
  }
  std::size_t size = table[0].last * 2;
  size = size < first_region ? first_region : size > max_region ? max_region : size;
  while (size < bytes + alignment) size *= 2;
  auto* start = reinterpret_cast<char*>(sync_arena_of(core)->allocate_shared(size, 16));
  if (start == nullptr) throw_allocation_failure();
  table[0] = sync_region{generation, start, start, start + size, size};
  if (void* p = sync_region_try_allocate(generation, bytes, alignment)) return p;
  throw std::bad_alloc();  // unreachable: the region fits the block
}

void sync_monotonic_reset(sync_monotonic_core* core) noexcept { sync_arena_of(core)->reset(); }
void sync_monotonic_release(sync_monotonic_core* core) noexcept { sync_arena_of(core)->release(); }

monotonic_stats sync_monotonic_get_stats(const sync_monotonic_core* core) noexcept {
  const ffi::MonotonicStats s = sync_arena_of(core)->stats();
  return {s.used, s.held, s.chunks, s.upstream_allocs, s.upstream_frees};
}

std::string sync_monotonic_stats_json(const sync_monotonic_core* core) {
  return std::string(sync_arena_of(core)->stats_json());
}
void sync_monotonic_set_name(sync_monotonic_core* core, std::string_view name) {
  sync_arena_of(core)->set_name(rust::Str(name.data(), name.size()));
}
std::string sync_monotonic_name(const sync_monotonic_core* core) { return std::string(sync_arena_of(core)->name()); }

pool_core* unsync_pool_create(std::pmr::memory_resource* upstream, const std::pmr::pool_options& options) {
  if (upstream == nullptr) throw std::invalid_argument("memres::unsynchronized_pool_resource: upstream is null");
  check_mirrors();
  auto core = ffi::unsync_pool_new(upstream, {options.max_blocks_per_chunk, options.largest_required_pool_block});
  return reinterpret_cast<pool_core*>(core.into_raw());
}

void unsync_pool_destroy(pool_core* core) noexcept { rust::Box<ffi::UnsyncPoolCore>::from_raw(pool_of(core)); }

void** unsync_pool_heads(pool_core* core) noexcept { return reinterpret_cast<void**>(pool_of(core)->heads()); }

std::pmr::pool_options unsync_pool_options(const pool_core* core) noexcept {
  const ffi::PoolOpts o = pool_of(core)->options();
  return {o.max_blocks_per_chunk, o.largest_required_pool_block};
}

void* unsync_pool_allocate_slow(pool_core* core, std::size_t bytes, std::size_t alignment) {
  check_alignment("memres::unsynchronized_pool_resource", alignment);
  ffi::take_parked_exception();  // forget a stale one
  if (void* p = pool_of(core)->allocate_slow(bytes, alignment)) return p;
  throw_allocation_failure();
}

void unsync_pool_deallocate_slow(pool_core* core, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  pool_of(core)->deallocate_slow(static_cast<std::uint8_t*>(p), bytes, alignment);
}

void unsync_pool_release(pool_core* core) noexcept { pool_of(core)->release(); }
std::size_t unsync_pool_trim(pool_core* core) noexcept { return pool_of(core)->trim(); }
std::size_t unsync_pool_bytes_held(const pool_core* core) noexcept { return pool_of(core)->bytes_held(); }
std::string unsync_pool_stats_json(pool_core* core) { return std::string(pool_of(core)->stats_json()); }
void unsync_pool_set_name(pool_core* core, std::string_view name) {
  pool_of(core)->set_name(rust::Str(name.data(), name.size()));
}
std::string unsync_pool_name(const pool_core* core) { return std::string(pool_of(core)->name()); }

namespace {
ffi::SyncPoolCore* sync_of(sync_pool_core* core) { return reinterpret_cast<ffi::SyncPoolCore*>(core); }
const ffi::SyncPoolCore* sync_of(const sync_pool_core* core) {
  return reinterpret_cast<const ffi::SyncPoolCore*>(core);
}
void find_sync_hint() noexcept {
  if (tl_sync_hint == nullptr) tl_sync_hint = reinterpret_cast<sync_hint*>(ffi::sync_hint_slot());
}
}  // namespace

sync_pool_core* sync_pool_create(std::pmr::memory_resource* upstream, const std::pmr::pool_options& options) {
  if (upstream == nullptr) throw std::invalid_argument("memres::synchronized_pool_resource: upstream is null");
  check_mirrors();
  auto core = ffi::sync_pool_new(upstream, {options.max_blocks_per_chunk, options.largest_required_pool_block});
  return reinterpret_cast<sync_pool_core*>(core.into_raw());
}

void sync_pool_destroy(sync_pool_core* core) noexcept { rust::Box<ffi::SyncPoolCore>::from_raw(sync_of(core)); }

const void* sync_pool_key(const sync_pool_core* core) noexcept { return sync_of(core)->key(); }

std::pmr::pool_options sync_pool_options(const sync_pool_core* core) noexcept {
  const ffi::PoolOpts o = sync_of(core)->options();
  return {o.max_blocks_per_chunk, o.largest_required_pool_block};
}

void* sync_pool_allocate_slow(sync_pool_core* core, std::size_t bytes, std::size_t alignment) {
  check_alignment("memres::synchronized_pool_resource", alignment);
  find_sync_hint();
  ffi::take_parked_exception();  // forget a stale one
  if (void* p = sync_of(core)->allocate_slow(bytes, alignment)) return p;
  throw_allocation_failure();
}

void sync_pool_deallocate_slow(sync_pool_core* core, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  find_sync_hint();
  sync_of(core)->deallocate_slow(static_cast<std::uint8_t*>(p), bytes, alignment);
}

void sync_pool_release(sync_pool_core* core) noexcept { sync_of(core)->release(); }
std::size_t sync_pool_trim(sync_pool_core* core) noexcept { return sync_of(core)->trim(); }
std::size_t sync_pool_bytes_held(const sync_pool_core* core) noexcept { return sync_of(core)->bytes_held(); }
std::string sync_pool_stats_json(sync_pool_core* core) { return std::string(sync_of(core)->stats_json()); }
void sync_pool_set_name(sync_pool_core* core, std::string_view name) {
  sync_of(core)->set_name(rust::Str(name.data(), name.size()));
}
std::string sync_pool_name(const sync_pool_core* core) { return std::string(sync_of(core)->name()); }

void monotonic_forget(monotonic_core* core, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  core_of(core)->forget(static_cast<std::uint8_t*>(p), bytes, alignment);
}

void monotonic_reset(monotonic_core* core) noexcept { core_of(core)->reset(); }
void monotonic_release(monotonic_core* core) noexcept { core_of(core)->release(); }

monotonic_stats monotonic_get_stats(const monotonic_core* core) noexcept {
  const ffi::MonotonicStats s = core_of(core)->stats();
  return {s.used, s.held, s.chunks, s.upstream_allocs, s.upstream_frees};
}

std::string monotonic_stats_json(const monotonic_core* core) { return std::string(core_of(core)->stats_json()); }

void monotonic_set_budget(monotonic_core* core, std::size_t bytes) noexcept { core_of(core)->set_budget(bytes); }
std::size_t monotonic_budget(const monotonic_core* core) noexcept { return core_of(core)->budget(); }
void monotonic_set_name(monotonic_core* core, std::string_view name) {
  core_of(core)->set_name(rust::Str(name.data(), name.size()));
}
std::string monotonic_name(const monotonic_core* core) { return std::string(core_of(core)->name()); }

namespace {
ffi::ViewTarget* target_of(view_target* target) { return reinterpret_cast<ffi::ViewTarget*>(target); }
const ffi::ViewTarget* target_of(const view_target* target) { return reinterpret_cast<const ffi::ViewTarget*>(target); }
view_target* into_target(rust::Box<ffi::ViewTarget> target) { return reinterpret_cast<view_target*>(target.into_raw()); }
}  // namespace

void* view_allocate_slow(view_target* target, std::size_t bytes, std::size_t alignment) {
  check_alignment("memres: a Rust-owned resource", alignment);
  find_sync_hint();  // a view of a SyncPool takes its fast path from the next call on
  ffi::take_parked_exception();  // forget a stale one,
  ffi::take_panic_message();     // and a stale panic
  if (void* p = target_of(target)->allocate_slow(bytes, alignment)) return p;
  throw_allocation_failure();
}

void view_deallocate_slow(view_target* target, void* p, std::size_t bytes, std::size_t alignment) noexcept {
  find_sync_hint();
  target_of(target)->deallocate_slow(static_cast<std::uint8_t*>(p), bytes, alignment);
}

void view_destroy(view_target* target) noexcept { rust::Box<ffi::ViewTarget>::from_raw(target_of(target)); }

const void* view_object(const view_target* target) noexcept { return target_of(target)->object(); }

}  // inline namespace MEMRES_CONFIG_NS
}  // namespace memres::detail

namespace memres {
namespace {

// The Rust heap's layout as the inline fast path below sees it
// (memres::HeapFastPath documents the protocol). heap_resource_impl checks
// it against the Rust heap's once and calls into Rust for every request if
// it differs.
namespace heap_layout {
constexpr std::size_t small_max = 32 << 10;
constexpr std::size_t segment_size = std::size_t{1} << 22;
constexpr unsigned page_shift = 16;
constexpr std::uintptr_t page_mask = (std::uintptr_t{1} << page_shift) - 1;
constexpr std::size_t min_class = 1;
static_assert(min_class == detail::pool_min_class, "pool_class_of never answers below the heap's smallest class");
// A free block: the encoded link to the next, then the double-free mark.
struct block {
  std::uintptr_t link;
  std::uintptr_t mark;
};
struct alignas(64) page {
  block* free;
  std::atomic<std::uint32_t> used;        // written by the owner thread only
  std::atomic<std::uint32_t> carved_end;  // bytes of the page carved into blocks
  std::atomic<std::uint64_t> magic;       // divisibility constant of the class size
  std::atomic<std::uintptr_t> key;        // the page's link key
  void* thread_free;
  page* next;
  page* prev;
  std::atomic<std::uint32_t> cls;
  bool in_use;
  bool dirty;
  bool stale;
};
struct queue {
  page* head;
  page* tail;
  std::size_t len;
};
static_assert(sizeof(std::atomic<std::uint32_t>) == 4 && std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8 && std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<void*>) == sizeof(void*) && std::atomic<void*>::is_always_lock_free);

// Is `offset` a multiple of the class size whose constant is `magic`? (See
// the Rust heap's guard.rs: offset * ceil(2^64 / size) wraps below magic
// exactly for the multiples.)
inline bool divides(std::uint32_t offset, std::uint64_t magic) noexcept {
  return static_cast<std::uint64_t>(offset) * magic < magic;
}
}  // namespace heap_layout

// This thread's heap record slot (a Rust thread-local), fetched once.
thread_local void* const* tl_heap_slot = nullptr;

// memres::heap_resource(): small blocks inline from the calling thread's
// heap record, with the heap's misuse checks (encoded links checked before
// they are followed, double-free marks, block starts); everything else, and
// every miss or suspect, in Rust, which confirms and reports.
class heap_resource_impl final : public std::pmr::memory_resource {
 public:
  heap_resource_impl() noexcept {
    detail::check_mirrors();
    const ffi::HeapLayout l = ffi::heap_layout();
    pages_offset_ = l.pages_offset;
    sample_left_offset_ = l.sample_left_offset;
    checks_ = l.checks;
    mark_ = l.mark;
    using heap_layout::page;
    inline_ = l.queue_stride == sizeof(heap_layout::queue) && l.segment_size == heap_layout::segment_size &&
              l.page_stride == sizeof(page) && l.page_shift == heap_layout::page_shift &&
              l.page_used_offset == offsetof(page, used) && l.page_carved_offset == offsetof(page, carved_end) &&
              l.page_magic_offset == offsetof(page, magic) && l.page_key_offset == offsetof(page, key) &&
              l.min_class == heap_layout::min_class &&
              l.small_max == heap_layout::small_max &&
              l.classes == detail::pool_class_of_size(heap_layout::small_max) + 1;
#if defined(MEMRES_DEBUG_CHECKS)
    inline_ = false;
#endif
    // Secure mode quarantines every free in Rust (allocations stay inline
    // unless it samples them, when the slot shows no pages).
    free_inline_ = inline_ && !ffi::heap_secure();
  }

  bool inline_fast_path() const noexcept { return inline_; }

 private:
  static void* const* slot() noexcept {
    void* const* s = tl_heap_slot;
    if (s == nullptr) tl_heap_slot = s = reinterpret_cast<void* const*>(ffi::heap_local_slot());
    return s;
  }

  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
#if !defined(MEMRES_DEBUG_CHECKS)
    const std::size_t c = detail::pool_class_of(bytes, alignment, heap_layout::small_max);  // never below min_class
    if (inline_ && c < detail::pool_class_count) {
      auto* queues = static_cast<heap_layout::queue*>(*slot());
      if (heap_layout::page* page = queues[c].head) {
        if (heap_layout::block* b = page->free) {
          const auto at = reinterpret_cast<std::uintptr_t>(b);
          std::uintptr_t next = b->link;
          if (checks_) {
            if (b->mark != (mark_ ^ at)) return allocate_in_rust(bytes, alignment);  // Rust reports it
            next ^= page->key.load(std::memory_order_relaxed) ^ at;
            const auto offset = static_cast<std::uint32_t>(next & heap_layout::page_mask);
            const bool ok = next == 0 || ((next ^ at) <= heap_layout::page_mask && next % 8 == 0 &&
                                          offset < page->carved_end.load(std::memory_order_relaxed));
            if (!ok) return allocate_in_rust(bytes, alignment);  // Rust's pop reports it
          }
          // The profiler's count: when it runs out, Rust takes the sample.
          auto* left = reinterpret_cast<std::intptr_t*>(reinterpret_cast<char*>(queues) + sample_left_offset_);
          *left -= static_cast<std::intptr_t>(bytes);
          if (*left < 0) return allocate_in_rust(bytes, alignment);
          if (checks_) b->mark = 0;
          page->free = reinterpret_cast<heap_layout::block*>(next);
          page->used.store(page->used.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
          return b;
        }
      }
    }
#endif
    return allocate_in_rust(bytes, alignment);
  }

  static void* allocate_in_rust(std::size_t bytes, std::size_t alignment) {
    detail::check_alignment("memres::heap_resource()", alignment);
    if (void* p = ffi::heap_allocate(bytes, alignment)) return p;
    throw std::bad_alloc();
  }

  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
#if !defined(MEMRES_DEBUG_CHECKS)
    if (free_inline_ && detail::pool_class_of(bytes, alignment, heap_layout::small_max) < detail::pool_class_count) {
      const auto addr = reinterpret_cast<std::uintptr_t>(p);
      const std::uintptr_t seg = addr & ~(heap_layout::segment_size - 1);
      const auto* owner = reinterpret_cast<const std::atomic<void*>*>(seg);
      if (seg != addr && owner->load(std::memory_order_relaxed) == *slot()) {
        auto* page = reinterpret_cast<heap_layout::page*>(seg + pages_offset_ +
                                                          ((addr - seg) >> heap_layout::page_shift) *
                                                              sizeof(heap_layout::page));
        auto* b = static_cast<heap_layout::block*>(p);
        bool suspect = false;
        if (checks_) {
          const auto offset = static_cast<std::uint32_t>(addr & heap_layout::page_mask);
          suspect = offset >= page->carved_end.load(std::memory_order_relaxed) ||  // 0 in a free page
                    !heap_layout::divides(offset, page->magic.load(std::memory_order_relaxed)) ||
                    b->mark == (mark_ ^ addr);
        }
        const std::uint32_t used = page->used.load(std::memory_order_relaxed);
        // The last block of a page goes through Rust, which retires the
        // page; so does every suspect free, which Rust confirms and reports.
        if (used > 1 && !suspect) {
          const auto head = reinterpret_cast<std::uintptr_t>(page->free);
          if (checks_) {
            b->link = head ^ page->key.load(std::memory_order_relaxed) ^ addr;
            b->mark = mark_ ^ addr;
          } else {
            b->link = head;
          }
          page->free = b;
          page->used.store(used - 1, std::memory_order_relaxed);
          return;
        }
      }
    }
#endif
    ffi::heap_deallocate(static_cast<std::uint8_t*>(p), bytes, alignment);
  }

  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  std::size_t pages_offset_ = 0;
  std::size_t sample_left_offset_ = 0;
  std::uintptr_t mark_ = 0;
  bool checks_ = true;
  bool inline_ = false;
  bool free_inline_ = false;
};

heap_resource_impl& the_heap() noexcept {
  // Built in place and never destroyed, so it outlives every static that
  // may use it during exit (as new_delete_resource() does).
  alignas(heap_resource_impl) static unsigned char storage[sizeof(heap_resource_impl)];
  static heap_resource_impl* const resource = new (storage) heap_resource_impl();
  return *resource;
}

}  // namespace

std::pmr::memory_resource* heap_resource() noexcept { return &the_heap(); }

bool detail::heap_inline_fast_path() noexcept { return the_heap().inline_fast_path(); }

heap_stats get_heap_stats() noexcept {
  const ffi::HeapStats s = ffi::heap_stats();
  return {s.allocated, s.active, s.resident, s.mapped, s.retained};
}

std::string heap_stats_json() { return std::string(ffi::heap_report_json()); }

void profile_start(std::size_t interval) { ffi::profile_start(interval); }
void profile_stop() { ffi::profile_stop(); }
void profile_clear() { ffi::profile_clear(); }
std::size_t profile_samples() { return ffi::profile_samples(); }
std::string profile_folded() { return std::string(ffi::profile_folded(0)); }
std::string profile_folded(profile_view view) {
  return std::string(ffi::profile_folded(static_cast<std::uint8_t>(view)));
}

bool profile_dump(const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << profile_folded();
  out.close();
  return static_cast<bool>(out);
}

std::vector<heap_class_stats> get_heap_class_stats() {
  std::vector<ffi::HeapClassStats> raw(ffi::heap_class_stats({}));  // first call: how many
  ffi::heap_class_stats(rust::Slice<ffi::HeapClassStats>(raw.data(), raw.size()));
  std::vector<heap_class_stats> out;
  out.reserve(raw.size());
  for (const ffi::HeapClassStats& c : raw) out.push_back({c.size, c.live, c.active});
  return out;
}

void set_heap_limits(heap_limits limits) noexcept { ffi::heap_set_limits(limits.soft, limits.hard); }

heap_limits get_heap_limits() noexcept {
  heap_limits limits;
  ffi::heap_limits(limits.soft, limits.hard);
  return limits;
}

std::size_t heap_purge() noexcept { return ffi::heap_purge(); }

bool heap_secure() noexcept { return ffi::heap_secure(); }

}  // namespace memres

namespace memres::ffi {

std::unique_ptr<std::pmr::memory_resource> plain_view(rust::Box<ViewTarget> target) {
  detail::check_mirrors();
  return std::make_unique<detail::plain_view>(detail::into_target(std::move(target)));
}

std::unique_ptr<std::pmr::memory_resource> monotonic_view(std::uint8_t* bump, rust::Box<ViewTarget> target) {
  detail::check_mirrors();
  return std::make_unique<detail::monotonic_view>(reinterpret_cast<detail::bump_state*>(bump),
                                                  detail::into_target(std::move(target)));
}

std::unique_ptr<std::pmr::memory_resource> unsync_pool_view(std::uint8_t* heads, std::size_t largest,
                                                            rust::Box<ViewTarget> target) {
  detail::check_mirrors();
  const detail::unsync_fast_path fast{reinterpret_cast<detail::pool_lists*>(heads), largest};
  return std::make_unique<detail::unsync_pool_view>(fast, detail::into_target(std::move(target)));
}

std::unique_ptr<std::pmr::memory_resource> sync_pool_view(const std::uint8_t* key, std::size_t largest,
                                                          rust::Box<ViewTarget> target) {
  detail::check_mirrors();
  const detail::sync_fast_path fast{key, largest};
  return std::make_unique<detail::sync_pool_view>(fast, detail::into_target(std::move(target)));
}

const MonotonicCore* monotonic_core_of(const std::pmr::memory_resource* resource) noexcept {
  const auto* owner = dynamic_cast<const memres::monotonic_buffer_resource*>(resource);
  return owner == nullptr ? nullptr : reinterpret_cast<const MonotonicCore*>(owner->rust_core());
}

const UnsyncPoolCore* unsync_pool_core_of(const std::pmr::memory_resource* resource) noexcept {
  const auto* owner = dynamic_cast<const memres::unsynchronized_pool_resource*>(resource);
  return owner == nullptr ? nullptr : reinterpret_cast<const UnsyncPoolCore*>(owner->rust_core());
}

const SyncPoolCore* sync_pool_core_of(const std::pmr::memory_resource* resource) noexcept {
  const auto* owner = dynamic_cast<const memres::synchronized_pool_resource*>(resource);
  return owner == nullptr ? nullptr : reinterpret_cast<const SyncPoolCore*>(owner->rust_core());
}

}  // namespace memres::ffi
