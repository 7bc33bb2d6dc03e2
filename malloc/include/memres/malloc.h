/* memres's heap as the process allocator (libmemres_malloc.so).
 *
 * Preload the library to serve malloc, free, calloc, realloc, ... and C++'s
 * operator new/delete from memres's heap:
 *
 *     LD_PRELOAD=/path/to/libmemres_malloc.so program
 *
 * This header declares what the library adds: the heap's statistics. A
 * program that may run without the library can look them up with
 * dlsym(RTLD_DEFAULT, "memres_stats"). MEMRES_STATS=1 prints them at exit
 * (MEMRES_STATS=json: the totals and the classes in use, one line of JSON),
 * and MEMRES_STATS_EVERY=10s (or 500ms) every period as well, from a thread
 * of the library's own;
 * MEMRES_HEAP_LIMIT / MEMRES_HEAP_SOFT_LIMIT set memory limits (bytes, with
 * an optional K, M or G suffix): past the hard one allocations fail.
 *
 * MEMRES_PROFILE=interval (bytes, K/M/G suffixes; "on" for 512K) samples
 * allocations from the start, about one per interval bytes, with their call
 * stacks, and writes three views as folded stacks (flame-graph input) at
 * exit, on SIGUSR2 and on memres_profile_dump(NULL):
 * <path>.<pid>.alloc.folded (everything allocated), .live.folded (not freed
 * yet) and .peak.folded (live when the live bytes peaked), where path is
 * MEMRES_PROFILE_PATH or "memres-profile". Bytes are estimates, unbiased.
 * Stacks are walked by the modules' unwind tables, rules cached;
 * MEMRES_PROFILE_WALK=fp walks them by frame pointers (cheaper still, for
 * programs built with -fno-omit-frame-pointer), =unwinder by libgcc's
 * unwinder. */
#ifndef MEMRES_MALLOC_H
#define MEMRES_MALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct memres_stats {
  size_t allocated; /* bytes in live blocks */
  size_t active;    /* bytes of pages holding live blocks */
  size_t resident;  /* bytes touched and not handed back to the OS (upper bound) */
  size_t mapped;    /* bytes mapped from the OS */
  size_t retained;  /* mapped - resident: address space only */
};

/* Fills *out with the heap's totals. */
void memres_stats(struct memres_stats* out);

/* Prints the heap's totals to stderr, one line. */
void memres_stats_print(void);

/* Writes the heap's totals and the size classes in use as one JSON object
 * ({"allocated":...,"active":...,"resident":...,"mapped":...,"retained":...,
 * "classes":[{"size":48,"live":1000,"active":65536},...]}, sizes in bytes;
 * size 0 is the medium and large blocks) into buf, as snprintf does: at most
 * len - 1 bytes and a NUL. Returns the JSON's length: a return of len or
 * more means it was cut short. */
size_t memres_stats_json(char* buf, size_t len);

/* Starts the heap profiler at a mean interval of `interval` bytes (0 stops
 * it); samples taken before are kept. */
void memres_profile_start(size_t interval);

/* Writes the profile's three views now to <prefix>.alloc.folded,
 * <prefix>.live.folded and <prefix>.peak.folded (prefix NULL: the one
 * MEMRES_PROFILE_PATH gives, <path>.<pid>). Returns 0, or -1 with errno set. */
int memres_profile_dump(const char* prefix);

#ifdef __cplusplus
}
#endif

#endif
