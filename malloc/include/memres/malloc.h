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
 * (MEMRES_STATS=json: the totals and the classes in use, one line of JSON);
 * MEMRES_HEAP_LIMIT / MEMRES_HEAP_SOFT_LIMIT set memory limits (bytes, with
 * an optional K, M or G suffix): past the hard one allocations fail. */
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

#ifdef __cplusplus
}
#endif

#endif
