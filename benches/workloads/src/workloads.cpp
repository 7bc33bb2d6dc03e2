// The C++ workloads: std::pmr containers on std's resources and on memres's.
//
// Every workload returns a checksum of the *contents* it built, never of
// addresses, so the same call gives the same value on every resource; the
// tests in lib.rs check that, and the checksum keeps the optimizer from
// dropping the work.

#include "memres-workloads/src/workloads.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <thread>
#include <map>
#include <memory_resource>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <memres/memres.hpp>

#include "memres-workloads/src/lib.rs.h"
#include "memres-workloads/src/mixed.hpp"
#include "memres-workloads/src/mixed.rs.h"

namespace memres::workloads {
namespace {

// Size of the stack buffer behind Resource::StdMonotonicStackBuffer.
constexpr std::size_t kStackBufferSize = 16384;

// Order-dependent hash combine (boost-style), for checksums.
constexpr std::uint64_t mix(std::uint64_t h, std::uint64_t v) {
  return h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

// A deterministic pseudo-random sequence (xorshift64), for map keys.
struct xorshift64 {
  std::uint64_t state;
  std::uint64_t next() {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  }
};

// The arena of Resource::MemresMonotonicReset: one per thread, kept for
// the thread's life and reset (not released) between uses, as a server keeps
// its per-thread arena across requests. After warm-up it stops calling
// upstream at all.
memres::monotonic_buffer_resource& kept_arena() {
  thread_local memres::monotonic_buffer_resource arena;
  return arena;
}

// Resource::Floor: the least a std::pmr resource can cost. A bump pointer
// over one fixed buffer, with the compare against its end that keeps it
// sound and nothing else (deallocate does nothing, nothing grows). Every
// resource pays pmr's virtual call on top of it; what remains of a
// workload's time on the floor is the workload's own work. A control for the
// benchmarks, not a resource to use: out of room, it throws bad_alloc.
class floor_resource final : public std::pmr::memory_resource {
 public:
  static constexpr std::size_t kBytes = std::size_t{8} << 20;

  void rewind() noexcept { used_ = 0; }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(buffer_.get());
    const std::uintptr_t start = (base + used_ + alignment - 1) & ~(std::uintptr_t{alignment} - 1);
    if (bytes > kBytes || start - base > kBytes - bytes) throw std::bad_alloc();
    used_ = start - base + bytes;
    return buffer_.get() + (start - base);
  }
  void do_deallocate(void*, std::size_t, std::size_t) override {}
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  std::unique_ptr<std::byte[]> buffer_{new std::byte[kBytes]};
  std::size_t used_ = 0;
};

// The floor of Resource::Floor: one per thread, rewound before each use.
floor_resource& kept_floor() {
  thread_local floor_resource floor;
  return floor;
}

// The upstream that measure_upstream() counts through: new_delete_resource()
// with a running total of the bytes it holds, their peak and the calls.
// Atomic, since the threaded workloads share it.
class counting_resource final : public std::pmr::memory_resource {
 public:
  UpstreamUse use() const {
    return UpstreamUse{peak_.load(std::memory_order_relaxed), held_.load(std::memory_order_relaxed),
                       calls_.load(std::memory_order_relaxed)};
  }

 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* p = std::pmr::new_delete_resource()->allocate(bytes, alignment);
    const std::size_t held = held_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::size_t peak = peak_.load(std::memory_order_relaxed);
    while (held > peak && !peak_.compare_exchange_weak(peak, held, std::memory_order_relaxed)) {
    }
    calls_.fetch_add(1, std::memory_order_relaxed);
    return p;
  }
  void do_deallocate(void* p, std::size_t bytes, std::size_t alignment) override {
    held_.fetch_sub(bytes, std::memory_order_relaxed);
    std::pmr::new_delete_resource()->deallocate(p, bytes, alignment);
  }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override { return this == &other; }

  std::atomic<std::size_t> held_{0};
  std::atomic<std::size_t> peak_{0};
  std::atomic<std::size_t> calls_{0};
};

// Set between start_counting() and stop_counting() on this thread: the
// upstream of every resource with_resource() makes here (and the resource
// itself for NewDelete); the workload's own threads reach it through those
// resources. Null otherwise, so timed runs pay nothing for it, and per
// thread, so a workload on another thread is neither counted nor rerouted.
thread_local counting_resource* counting = nullptr;

// Runs body(resource) on a resource of the given kind, made for this call
// (or, for MemresMonotonicReset, the kept arena after a reset), and returns
// what body returned. The resource dies (or is reset on next use) after body,
// so body must not let anything allocated from it escape.
template <class Body>
std::uint64_t with_resource(Resource kind, Body&& body) {
  std::pmr::memory_resource* upstream =
      counting != nullptr ? static_cast<std::pmr::memory_resource*>(counting) : std::pmr::new_delete_resource();
  switch (kind) {
    case Resource::NewDelete:
      return body(upstream);
    case Resource::MemresHeap:
      return body(memres::heap_resource());
    case Resource::StdMonotonic: {
      std::pmr::monotonic_buffer_resource resource(upstream);
      return body(&resource);
    }
    case Resource::StdMonotonicStackBuffer: {
      alignas(std::max_align_t) char buffer[kStackBufferSize];
      std::pmr::monotonic_buffer_resource resource(buffer, sizeof buffer, upstream);
      return body(&resource);
    }
    case Resource::MemresMonotonic: {
      memres::monotonic_buffer_resource resource(upstream);
      return body(&resource);
    }
    case Resource::StdUnsyncPool: {
      std::pmr::unsynchronized_pool_resource resource(upstream);
      return body(&resource);
    }
    case Resource::MemresUnsyncPool: {
      memres::unsynchronized_pool_resource resource(upstream);
      return body(&resource);
    }
    case Resource::StdSyncPool: {
      std::pmr::synchronized_pool_resource resource(upstream);
      return body(&resource);
    }
    case Resource::MemresSyncPool: {
      memres::synchronized_pool_resource resource(upstream);
      return body(&resource);
    }
    case Resource::MemresMonotonicReset: {
      // Its arena outlives the call, so what it holds is not this call's.
      if (counting != nullptr) throw std::invalid_argument("memres-workloads: the kept arena is not measured");
      auto& resource = kept_arena();
      // Nothing from the previous use is alive: body's containers died in it.
      resource.reset();
      return body(&resource);
    }
    case Resource::Floor: {
      if (counting != nullptr) throw std::invalid_argument("memres-workloads: the floor has no upstream to measure");
      auto& resource = kept_floor();
      resource.rewind();
      return body(&resource);
    }
  }
  // Rust can pass any u8 in a shared enum; cxx turns this into an Err.
  throw std::invalid_argument("memres-workloads: unknown Resource");
}

// Length of the i-th string of a batch: 8..=64, so both short strings (in
// libstdc++'s 15-byte SSO buffer) and heap-allocated ones occur.
std::size_t string_length(std::size_t i, std::size_t salt) { return 8 + (i * 7 + salt) % 57; }

char string_fill(std::size_t i, std::size_t salt) { return static_cast<char>('a' + (i + salt) % 26); }

std::uint64_t string_digest(const std::pmr::string& s) {
  return mix(mix(s.size(), static_cast<unsigned char>(s.front())), static_cast<unsigned char>(s.back()));
}

// n strings pushed into a vector that grows from empty (no reserve: the
// reallocations, and the memory a monotonic resource wastes on them, are part
// of the workload).
std::uint64_t fill_strings(std::pmr::memory_resource* resource, std::size_t n, std::size_t salt) {
  std::pmr::vector<std::pmr::string> strings(resource);
  for (std::size_t i = 0; i < n; ++i) {
    // uses-allocator construction: each string allocates from `resource` too.
    auto& s = strings.emplace_back(string_length(i, salt), string_fill(i, salt));
    s.back() = static_cast<char>('A' + i % 26);
  }
  std::uint64_t h = strings.size();
  for (const auto& s : strings) h = mix(h, string_digest(s));
  return h;
}

// n random replacements among 1000 live blocks of 16..=256 bytes.
std::uint64_t churn_on(std::pmr::memory_resource* resource, std::size_t n) {
  constexpr std::size_t live = 1000;
  struct slot {
    void* p;
    std::size_t size;
  };
  std::vector<slot> slots(live, slot{nullptr, 0});
  xorshift64 rng{0x9e3779b97f4a7c15ULL};
  std::uint64_t h = 0;
  for (std::size_t i = 0; i < n + live; ++i) {
    slot& s = slots[i < live ? i : rng.next() % live];
    if (s.p != nullptr) {
      h = mix(h, static_cast<unsigned char*>(s.p)[s.size - 1]);
      resource->deallocate(s.p, s.size, 8);
    }
    s.size = 16 + (rng.next() % 241);
    s.p = resource->allocate(s.size, 8);
    static_cast<unsigned char*>(s.p)[0] = static_cast<unsigned char>(i);
    static_cast<unsigned char*>(s.p)[s.size - 1] = static_cast<unsigned char>(s.size);
  }
  for (const slot& s : slots) resource->deallocate(s.p, s.size, 8);
  return h;
}

// The threaded workloads share one resource between threads: only kinds
// that allow it.
void require_shareable(Resource kind) {
  if (kind != Resource::NewDelete && kind != Resource::StdSyncPool && kind != Resource::MemresSyncPool &&
      kind != Resource::MemresHeap)
    throw std::invalid_argument("memres-workloads: threads may not share this resource");
}

}  // namespace

std::uint64_t vector_of_strings(Resource kind, std::size_t n) {
  return with_resource(kind, [n](std::pmr::memory_resource* resource) { return fill_strings(resource, n, 0); });
}

std::uint64_t list_build(Resource kind, std::size_t n) {
  return with_resource(kind, [n](std::pmr::memory_resource* resource) {
    std::pmr::list<int> list(resource);
    for (std::size_t i = 0; i < n; ++i) list.push_back(static_cast<int>(i * 2654435761u));
    std::uint64_t h = list.size();
    for (int v : list) h = mix(h, static_cast<std::uint32_t>(v));
    return h;
  });
}

std::uint64_t map_build(Resource kind, std::size_t n) {
  return with_resource(kind, [n](std::pmr::memory_resource* resource) {
    std::pmr::map<int, int> map(resource);
    xorshift64 rng{0x2545f4914f6cdd1dULL};
    for (std::size_t i = 0; i < n; ++i) {
      // A key seen before keeps its first value (emplace does not overwrite).
      map.emplace(static_cast<int>(rng.next() >> 33), static_cast<int>(i));
    }
    std::uint64_t h = map.size();
    for (const auto& [key, value] : map) h = mix(mix(h, static_cast<std::uint32_t>(key)), static_cast<std::uint32_t>(value));
    return h;
  });
}

std::uint64_t churn(Resource kind, std::size_t n) {
  return with_resource(kind, [n](std::pmr::memory_resource* resource) { return churn_on(resource, n); });
}

std::uint64_t churn_threads(Resource kind, std::size_t threads, std::size_t n) {
  require_shareable(kind);
  return with_resource(kind, [threads, n](std::pmr::memory_resource* resource) {
    std::vector<std::uint64_t> results(threads);
    std::vector<std::thread> workers;
    for (std::size_t t = 0; t < threads; ++t)
      workers.emplace_back([&results, resource, n, t] { results[t] = churn_on(resource, n); });
    for (std::thread& w : workers) w.join();
    std::uint64_t h = 0;
    for (std::uint64_t r : results) h = mix(h, r);
    return h;
  });
}

std::uint64_t producer_consumer(Resource kind, std::size_t n) {
  require_shareable(kind);
  return with_resource(kind, [n](std::pmr::memory_resource* resource) {
    // A bounded single-producer/single-consumer ring: `head` is written by
    // the consumer only, `tail` by the producer only.
    struct item {
      unsigned char* p;
      std::size_t size;
    };
    constexpr std::size_t capacity = 1024;
    std::vector<item> ring(capacity);
    alignas(64) std::atomic<std::size_t> head{0};
    alignas(64) std::atomic<std::size_t> tail{0};
    std::uint64_t h = 0;
    std::thread consumer([&] {
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t at = head.load(std::memory_order_relaxed);
        while (tail.load(std::memory_order_acquire) == at) std::this_thread::yield();
        const item it = ring[at % capacity];
        head.store(at + 1, std::memory_order_release);
        h = mix(mix(h, it.p[0]), it.p[it.size - 1]);
        resource->deallocate(it.p, it.size, 8);
      }
    });
    xorshift64 rng{0x9e3779b97f4a7c15ULL};
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t size = 16 + rng.next() % 241;
      auto* p = static_cast<unsigned char*>(resource->allocate(size, 8));
      p[0] = static_cast<unsigned char>(i);
      p[size - 1] = static_cast<unsigned char>(size);
      const std::size_t at = tail.load(std::memory_order_relaxed);
      while (at - head.load(std::memory_order_acquire) == capacity) std::this_thread::yield();
      ring[at % capacity] = item{p, size};
      tail.store(at + 1, std::memory_order_release);
    }
    consumer.join();
    return h;
  });
}

std::uint64_t map_churn(Resource kind, std::size_t n) {
  return with_resource(kind, [n](std::pmr::memory_resource* resource) {
    std::pmr::map<int, int> map(resource);
    std::pmr::unordered_map<int, int> hash(resource);
    xorshift64 rng{0x2545f4914f6cdd1dULL};
    std::vector<int> keys(1000);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      keys[i] = static_cast<int>(rng.next() >> 33);
      map.emplace(keys[i], static_cast<int>(i));
      hash.emplace(keys[i], static_cast<int>(i));
    }
    std::uint64_t h = 0;
    for (std::size_t i = 0; i < n; ++i) {
      int& key = keys[rng.next() % keys.size()];
      h = mix(h, map.erase(key) + hash.erase(key));
      key = static_cast<int>(rng.next() >> 33);
      map.emplace(key, static_cast<int>(i));
      hash.emplace(key, static_cast<int>(i));
    }
    std::uint64_t sum = 0;
    for (const auto& [k, v] : hash) sum += mix(static_cast<std::uint32_t>(k), static_cast<std::uint32_t>(v));
    for (const auto& [k, v] : map) h = mix(mix(h, static_cast<std::uint32_t>(k)), static_cast<std::uint32_t>(v));
    return mix(mix(h, sum), map.size() + hash.size());
  });
}

std::uint64_t list_churn(Resource kind, std::size_t n) {
  return with_resource(kind, [n](std::pmr::memory_resource* resource) {
    std::pmr::list<int> list(resource);
    for (int i = 0; i < 1000; ++i) list.push_back(i);
    std::uint64_t h = 0;
    for (std::size_t i = 0; i < n; ++i) {
      h = mix(h, static_cast<std::uint32_t>(list.front()));
      list.pop_front();
      list.push_back(static_cast<int>(i));
    }
    return mix(h, list.size());
  });
}

std::uint64_t lists_churn(Resource kind, std::size_t lists, std::size_t n) {
  if (lists == 0) throw std::invalid_argument("memres-workloads: lists_churn needs at least one list");
  std::vector<std::unique_ptr<std::pmr::memory_resource>> resources;
  std::vector<std::pmr::list<int>> churned;
  resources.reserve(lists);
  churned.reserve(lists);
  for (std::size_t l = 0; l < lists; ++l) {
    resources.push_back(make_resource(kind));
    churned.emplace_back(resources.back().get());
    for (int i = 0; i < 1000; ++i) churned.back().push_back(i);
  }
  std::uint64_t h = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto& list = churned[i % lists];
    h = mix(h, static_cast<std::uint32_t>(list.front()));
    list.pop_front();
    list.push_back(static_cast<int>(i));
  }
  for (const auto& list : churned) h = mix(h, list.size());
  churned.clear();  // the lists go before their resources
  return h;
}

void start_counting() {
  if (counting != nullptr) throw std::logic_error("memres-workloads: already counting upstream use");
  counting = new counting_resource();
}

UpstreamUse stop_counting() {
  if (counting == nullptr) throw std::logic_error("memres-workloads: not counting upstream use");
  const UpstreamUse use = counting->use();
  delete counting;
  counting = nullptr;
  return use;
}

std::uint64_t request_loop(Resource kind, std::size_t requests, std::size_t n) {
  std::uint64_t total = 0;
  for (std::size_t r = 0; r < requests; ++r) {
    // One resource per request: built, used by the request's containers, and
    // destroyed (or, for MemresMonotonicReset, reset before the next one).
    const std::uint64_t h = with_resource(kind, [r, n](std::pmr::memory_resource* resource) {
      // A list of names, as parsed from the request.
      std::uint64_t h = fill_strings(resource, n, r);

      // An index from id to name. Its iteration order depends on the bucket
      // count only, but a sum of per-entry digests does not depend on order.
      std::pmr::unordered_map<int, std::pmr::string> index(resource);
      for (std::size_t i = 0; i < n / 2; ++i) {
        index.try_emplace(static_cast<int>(i * 31 + r), string_length(i, r + 1), string_fill(i, r + 1));
      }
      std::uint64_t index_sum = index.size();
      for (const auto& [id, name] : index) index_sum += mix(static_cast<std::uint32_t>(id), string_digest(name));
      h = mix(h, index_sum);

      // Scratch numbers, grown from empty.
      std::pmr::vector<int> numbers(resource);
      for (std::size_t i = 0; i < n * 4; ++i) numbers.push_back(static_cast<int>(i ^ r));
      std::uint64_t numbers_sum = numbers.size();
      for (int v : numbers) numbers_sum += static_cast<std::uint32_t>(v);
      return mix(h, numbers_sum);
    });
    total = mix(total, h);
  }
  return total;
}

std::size_t rank_words_with(Resource kind, rust::Str text, rust::Slice<const WordCount> counts,
                            rust::Slice<WordCount> out) {
  return static_cast<std::size_t>(with_resource(kind, [&](std::pmr::memory_resource* resource) {
    return static_cast<std::uint64_t>(rank_words_in(resource, text, counts, out));
  }));
}

std::unique_ptr<std::pmr::memory_resource> make_resource(Resource kind) {
  switch (kind) {
    case Resource::StdMonotonic:
      return std::make_unique<std::pmr::monotonic_buffer_resource>();
    case Resource::MemresMonotonic:
      return std::make_unique<memres::monotonic_buffer_resource>();
    case Resource::StdUnsyncPool:
      return std::make_unique<std::pmr::unsynchronized_pool_resource>();
    case Resource::MemresUnsyncPool:
      return std::make_unique<memres::unsynchronized_pool_resource>();
    case Resource::StdSyncPool:
      return std::make_unique<std::pmr::synchronized_pool_resource>();
    case Resource::MemresSyncPool:
      return std::make_unique<memres::synchronized_pool_resource>();
    default:
      throw std::invalid_argument("memres-workloads: make_resource makes owning resources only");
  }
}

}  // namespace memres::workloads
