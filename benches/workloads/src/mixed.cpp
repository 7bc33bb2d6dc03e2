// The C++ half of the mixed request: std::pmr containers over whatever
// resource the Rust half passes (mixed.rs documents the pipeline).

#include "memres-workloads/src/mixed.hpp"

#include <algorithm>
#include <cctype>
#include <list>
#include <map>
#include <new>
#include <typeinfo>
#include <string>
#include <vector>

#include <memres/memres.hpp>

#include "memres-workloads/src/mixed.rs.h"

namespace memres::workloads {

std::size_t rank_words_in(std::pmr::memory_resource* resource, rust::Str text, rust::Slice<const WordCount> counts,
                          rust::Slice<WordCount> out) {
  struct merged {
    std::uint32_t count;
    std::size_t start;  // the first spelling seen
    std::size_t len;
  };
  // Case variants of a word become one entry, keyed by the lower-cased word.
  std::pmr::map<std::pmr::string, merged> words(resource);
  std::pmr::string key(resource);
  for (const WordCount& wc : counts) {
    key.assign(text.data() + wc.start, wc.len);
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto [it, fresh] = words.try_emplace(key, merged{0, wc.start, wc.len});
    it->second.count += wc.count;
    // Keep one spelling whatever the order the counts came in (hash order).
    if (!fresh && wc.start < it->second.start) it->second.start = wc.start, it->second.len = wc.len;
  }
  // Most frequent first; ties by the word.
  using entry = std::pair<const std::pmr::string, merged>;
  std::pmr::vector<const entry*> ranked(resource);
  ranked.reserve(words.size());
  for (const entry& e : words) ranked.push_back(&e);
  const std::size_t n = std::min(out.size(), ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(n), ranked.end(),
                    [](const entry* a, const entry* b) {
                      return a->second.count != b->second.count ? a->second.count > b->second.count
                                                                : a->first < b->first;
                    });
  for (std::size_t i = 0; i < n; ++i) out[i] = WordCount{ranked[i]->second.start, ranked[i]->second.len, ranked[i]->second.count};
  return n;
}

rust::String try_allocate(std::pmr::memory_resource* resource, std::size_t size, std::size_t align) {
  try {
    resource->deallocate(resource->allocate(size, align), size, align);
    return rust::String();
  } catch (const memres::rust_panic& e) {
    return rust::String(std::string("memres::rust_panic: ") + e.what());
  } catch (const std::bad_alloc& e) {
    return rust::String(std::string("std::bad_alloc: ") + e.what());
  } catch (const std::exception& e) {
    return rust::String(std::string("std::exception: ") + e.what());
  }
}

std::uint64_t list_build_in(std::pmr::memory_resource* resource, std::size_t n) {
  std::pmr::list<int> list(resource);
  for (std::size_t i = 0; i < n; ++i) list.push_back(static_cast<int>(i * 2654435761u));
  std::uint64_t h = list.size();
  for (int v : list) h = h * 31 + static_cast<std::uint32_t>(v);
  return h;
}

bool reset_if_memres_arena(std::pmr::memory_resource* resource) noexcept {
  auto* arena = dynamic_cast<memres::monotonic_buffer_resource*>(resource);
  if (arena != nullptr) arena->reset();
  return arena != nullptr;
}

bool release_if_memres(std::pmr::memory_resource* resource) noexcept {
  if (auto* arena = dynamic_cast<memres::monotonic_buffer_resource*>(resource)) {
    arena->release();
  } else if (auto* pool = dynamic_cast<memres::unsynchronized_pool_resource*>(resource)) {
    pool->release();
  } else if (auto* sync = dynamic_cast<memres::synchronized_pool_resource*>(resource)) {
    sync->release();
  } else {
    return false;
  }
  return true;
}

std::size_t trim_if_memres_pool(std::pmr::memory_resource* resource) noexcept {
  if (auto* pool = dynamic_cast<memres::unsynchronized_pool_resource*>(resource)) return pool->trim();
  if (auto* sync = dynamic_cast<memres::synchronized_pool_resource*>(resource)) return sync->trim();
  return static_cast<std::size_t>(-1);
}

}  // namespace memres::workloads
