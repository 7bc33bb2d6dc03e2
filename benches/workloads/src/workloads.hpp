// C++ workloads over std::pmr containers, driven from Rust through the cxx
// bridge in lib.rs (which documents each function).
#pragma once

#include <cstddef>
#include <cstdint>

namespace memres::workloads {

// Defined by the generated bridge header (lib.rs.h); the underlying type
// matches the `#[repr(u8)]` on the Rust side.
enum class Resource : std::uint8_t;
struct UpstreamUse;

// Each runs one iteration of a workload on a resource of the given kind and
// returns a checksum of what was built; it does not depend on the resource.
std::uint64_t vector_of_strings(Resource resource, std::size_t n);
std::uint64_t list_build(Resource resource, std::size_t n);
std::uint64_t map_build(Resource resource, std::size_t n);
std::uint64_t churn(Resource resource, std::size_t n);
std::uint64_t list_churn(Resource resource, std::size_t n);
std::uint64_t lists_churn(Resource resource, std::size_t lists, std::size_t n);
std::uint64_t request_loop(Resource resource, std::size_t requests, std::size_t n);
std::uint64_t map_churn(Resource resource, std::size_t n);
std::uint64_t churn_threads(Resource resource, std::size_t threads, std::size_t n);
std::uint64_t producer_consumer(Resource resource, std::size_t n);

// Between these two calls every resource the workloads make takes its memory
// from one counting upstream (new_delete_resource() underneath), and
// NewDelete is that upstream itself; stop_counting() reports what it saw.
void start_counting();
UpstreamUse stop_counting();

}  // namespace memres::workloads
