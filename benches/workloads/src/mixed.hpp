// The C++ half of the mixed request (mixed.rs documents it).
#pragma once

#include <cstddef>
#include <memory>
#include <memory_resource>

#include "rust/cxx.h"

namespace memres::workloads {

enum class Resource : std::uint8_t;
struct WordCount;

std::size_t rank_words_in(std::pmr::memory_resource* resource, rust::Str text, rust::Slice<const WordCount> counts,
                          rust::Slice<WordCount> out);
std::size_t rank_words_with(Resource resource, rust::Str text, rust::Slice<const WordCount> counts,
                            rust::Slice<WordCount> out);

std::unique_ptr<std::pmr::memory_resource> make_resource(Resource resource);
rust::String try_allocate(std::pmr::memory_resource* resource, std::size_t size, std::size_t align);
std::uint64_t list_build_in(std::pmr::memory_resource* resource, std::size_t n);
bool reset_if_memres_arena(std::pmr::memory_resource* resource) noexcept;
bool release_if_memres(std::pmr::memory_resource* resource) noexcept;
std::size_t trim_if_memres_pool(std::pmr::memory_resource* resource) noexcept;

}  // namespace memres::workloads
