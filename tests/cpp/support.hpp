// Shared by every C++ suite: an upstream that records its traffic and can be
// told to throw, and a checker for blocks handed out by a resource.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <string>
#include <unordered_map>
#include <memory_resource>
#include <new>
#include <sstream>
#include <stdexcept>
#include <utility>
#include <vector>

#include "check.hpp"

namespace support {

// What a chunk may spend beyond its data: the footer, and under debug checks
// the rounding to whole pages plus the guard page.
#if defined(MEMRES_DEBUG_CHECKS)
constexpr std::size_t chunk_overhead = 2 * 4096 + 64;
#else
constexpr std::size_t chunk_overhead = 64;
#endif

struct custom_error : std::runtime_error {
  custom_error() : std::runtime_error("custom upstream failure") {}
};

// Forwards to new_delete_resource(), checking that each deallocate matches a
// live allocation with the same size and alignment. Requests over 2^40 bytes
// throw std::bad_alloc here, as any allocator's would (ASan's operator new
// would abort the process instead).
class tracking_resource : public std::pmr::memory_resource {
 public:
  ~tracking_resource() override { CHECK(live_.empty()); }

  std::size_t allocs = 0, frees = 0;
  std::vector<std::size_t> sizes;  // every allocate request, in order
  // After this many more successful allocations, allocate throws.
  long throw_after = -1;
  bool throw_custom = false;

  std::size_t live_blocks() const { return live_.size(); }

 protected:
  void* do_allocate(std::size_t bytes, std::size_t align) override {
    if (bytes > (std::size_t{1} << 40)) throw std::bad_alloc();
    if (throw_after == 0) {
      if (throw_custom) throw custom_error();
      throw std::bad_alloc();
    }
    if (throw_after > 0) --throw_after;
    void* p = std::pmr::new_delete_resource()->allocate(bytes, align);
    live_[p] = {bytes, align};
    ++allocs;
    sizes.push_back(bytes);
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t align) override {
    auto it = live_.find(p);
    CHECK(it != live_.end());
    if (it == live_.end()) return;
    CHECK(it->second.first == bytes);
    CHECK(it->second.second == align);
    live_.erase(it);
    ++frees;
    std::pmr::new_delete_resource()->deallocate(p, bytes, align);
  }
  bool do_is_equal(const memory_resource& other) const noexcept override { return this == &other; }

 private:
  std::map<void*, std::pair<std::size_t, std::size_t>> live_;
};

// Live blocks, each filled with its own byte, checked for alignment,
// overlap and intact contents.
class blocks {
 public:
  void add(void* p, std::size_t size, std::size_t align) {
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(p) % align == 0);
    auto lo = reinterpret_cast<std::uintptr_t>(p);
    for (const auto& b : list_) {
      auto blo = reinterpret_cast<std::uintptr_t>(b.p);
      CHECK(lo + size <= blo || blo + b.size <= lo);
    }
    unsigned char tag = static_cast<unsigned char>(list_.size() % 251);
    std::memset(p, tag, size);
    list_.push_back({p, size, tag});
  }
  void verify() const {
    for (const auto& b : list_)
      for (std::size_t i = 0; i < b.size; ++i) CHECK(static_cast<unsigned char*>(b.p)[i] == b.tag);
  }

 private:
  struct block {
    void* p;
    std::size_t size;
    unsigned char tag;
  };
  std::vector<block> list_;
};

// Builds every container kind and folds their contents into one number.
inline std::uint64_t container_workload(std::pmr::memory_resource* r) {
  std::uint64_t sum = 0;
  std::pmr::vector<std::pmr::string> words(r);
  for (int i = 0; i < 2000; ++i) words.emplace_back(std::string(static_cast<std::size_t>(i % 70), 'a' + i % 26));
  for (const auto& w : words) sum = sum * 31 + w.size() + static_cast<unsigned char>(w.empty() ? 0 : w[0]);
  std::pmr::list<int> l(r);
  for (int i = 0; i < 5000; ++i) l.push_back(i * 7);
  for (int x : l) sum += static_cast<std::uint64_t>(x);
  std::pmr::map<int, std::pmr::string> m(r);
  for (int i = 0; i < 3000; ++i) m.emplace((i * 7919) % 10007, std::pmr::string(40, 'x', r));
  for (const auto& kv : m) sum = sum * 7 + static_cast<std::uint64_t>(kv.first) + kv.second.size();
  std::pmr::unordered_map<int, int> u(r);
  for (int i = 0; i < 5000; ++i) u[i % 1234] += i;
  for (int i = 0; i < 1234; ++i) sum += static_cast<std::uint64_t>(u[i]);
  return sum;
}

// Sets the default resource for a scope.
struct default_resource_guard {
  explicit default_resource_guard(std::pmr::memory_resource* r) : old(std::pmr::set_default_resource(r)) {}
  ~default_resource_guard() { std::pmr::set_default_resource(old); }
  std::pmr::memory_resource* old;
};

// The number after `"key":` in a stats_json() string, from position `from`
// on; SIZE_MAX if the key is missing or not followed by a number. (The
// suites need no JSON parser: the stats are flat numbers and lists.)
inline std::size_t json_number(const std::string& json, const std::string& key, std::size_t from = 0) {
  const std::string tag = "\"" + key + "\":";
  const std::size_t at = json.find(tag, from);
  if (at == std::string::npos) return SIZE_MAX;
  std::size_t i = at + tag.size(), value = 0;
  if (i >= json.size() || json[i] < '0' || json[i] > '9') return SIZE_MAX;
  for (; i < json.size() && json[i] >= '0' && json[i] <= '9'; ++i) value = value * 10 + (json[i] - '0');
  return value;
}

// The estimated bytes of a folded profile's lines whose stack names
// `function` (memres::profile_folded()'s "stack;...;frame bytes" lines).
inline double folded_bytes_of(const std::string& folded, const std::string& function) {
  std::istringstream lines(folded);
  double total = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    if (line.substr(0, space).find(function) != std::string::npos) total += std::atof(line.c_str() + space + 1);
  }
  return total;
}

}  // namespace support
