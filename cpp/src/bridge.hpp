// The C++ functions the Rust side of the bridge calls (declared in src/lib.rs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <memory_resource>

#include "rust/cxx.h"

namespace memres::ffi {

// Calls resource->allocate(size, align). If it throws, the exception is
// parked for this thread (see take_parked_exception) and null is returned.
std::uint8_t* upstream_allocate(std::pmr::memory_resource* resource, std::size_t size, std::size_t align) noexcept;

// Calls resource->deallocate; deallocate may not throw (it would terminate).
void upstream_deallocate(std::pmr::memory_resource* resource, std::uint8_t* ptr, std::size_t size,
                         std::size_t align) noexcept;

std::pmr::memory_resource* new_delete_resource() noexcept;
std::pmr::memory_resource* get_default_resource() noexcept;
std::pmr::memory_resource* null_memory_resource() noexcept;

// The exception an upstream threw on this thread since the last call, if any.
std::exception_ptr take_parked_exception() noexcept;

// Defined by the Rust side (lib.rs.h).
struct ViewTarget;
struct MonotonicCore;
struct UnsyncPoolCore;
struct SyncPoolCore;

// Views of Rust-owned resources (see memres::detail::rust_view): the inline
// fast-path state and the type-erased Rust resource behind the slow paths.
std::unique_ptr<std::pmr::memory_resource> monotonic_view(std::uint8_t* bump, rust::Box<ViewTarget> target);
std::unique_ptr<std::pmr::memory_resource> unsync_pool_view(std::uint8_t* heads, std::size_t largest,
                                                            rust::Box<ViewTarget> target);
std::unique_ptr<std::pmr::memory_resource> plain_view(rust::Box<ViewTarget> target);
std::unique_ptr<std::pmr::memory_resource> sync_pool_view(const std::uint8_t* key, std::size_t largest,
                                                          rust::Box<ViewTarget> target);

// The Rust object behind a C++-created memres resource, or null if
// `resource` is not one of that class.
const MonotonicCore* monotonic_core_of(const std::pmr::memory_resource* resource) noexcept;
const UnsyncPoolCore* unsync_pool_core_of(const std::pmr::memory_resource* resource) noexcept;
const SyncPoolCore* sync_pool_core_of(const std::pmr::memory_resource* resource) noexcept;

}  // namespace memres::ffi
