// The C++ functions the Rust side of the bridge calls (declared in src/lib.rs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory_resource>

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

}  // namespace memres::ffi
