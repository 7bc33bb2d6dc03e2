/* Classic allocator benchmark shapes as one plain C program, for comparing
 * process allocators by LD_PRELOAD (benches/malloc.sh):
 *
 *   bench <workload> [iterations]      prints "<median ns> <peak RSS KiB> <checksum>"
 *
 * churn      single thread: random replacement among 10k live blocks of 8-512 B
 * prodcons   one thread allocates 64-byte messages, another frees them
 * larson     4 threads replace random slots of a shared array (blocks move
 *            between threads, as in Larson & Krishnan's server simulation)
 * bigblocks  allocate, touch and free blocks of 5-25 MiB in a loop */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static uint64_t churn(void) {
  enum { LIVE = 10000, OPS = 1000000 };
  static unsigned char* slots[LIVE];
  uint64_t s = 0x9e3779b97f4a7c15u, sum = 0;
  for (int i = 0; i < OPS + LIVE; ++i) {
    int k = i < LIVE ? i : (int)(rng(&s) % LIVE);
    if (slots[k]) {
      sum += slots[k][0];
      free(slots[k]);
    }
    size_t n = 8 + rng(&s) % 505;
    slots[k] = malloc(n);
    slots[k][0] = (unsigned char)n;
  }
  for (int k = 0; k < LIVE; ++k) free(slots[k]), slots[k] = NULL;
  return sum;
}

/* A bounded single-producer single-consumer ring of pointers. */
enum { RING = 4096, MESSAGES = 1000000 };
static _Atomic(void*) ring[RING];

static void* consumer(void* arg) {
  uint64_t* sum = arg;
  for (size_t i = 0; i < MESSAGES; ++i) {
    void* p;
    while ((p = atomic_exchange_explicit(&ring[i % RING], NULL, memory_order_acquire)) == NULL) {
    }
    *sum += ((unsigned char*)p)[7];
    free(p);
  }
  return NULL;
}

static uint64_t prodcons(void) {
  uint64_t sum = 0;
  pthread_t t;
  pthread_create(&t, NULL, consumer, &sum);
  for (size_t i = 0; i < MESSAGES; ++i) {
    unsigned char* p = malloc(64);
    memset(p, (int)(i & 0xff), 64);
    while (atomic_load_explicit(&ring[i % RING], memory_order_relaxed) != NULL) {
    }
    atomic_store_explicit(&ring[i % RING], p, memory_order_release);
  }
  pthread_join(t, NULL);
  return sum;
}

enum { LARSON_THREADS = 4, LARSON_SLOTS = 8192, LARSON_OPS = 400000 };
static _Atomic(unsigned char*) larson_slots[LARSON_SLOTS];

static void* larson_worker(void* arg) {
  uint64_t s = (uintptr_t)arg * 0x9e3779b97f4a7c15u + 1, sum = 0;
  for (int i = 0; i < LARSON_OPS; ++i) {
    size_t n = 16 + rng(&s) % 1000;
    unsigned char* fresh = malloc(n);
    fresh[0] = (unsigned char)n;
    unsigned char* old = atomic_exchange(&larson_slots[rng(&s) % LARSON_SLOTS], fresh);
    if (old) {
      sum += old[0];
      free(old);
    }
  }
  return (void*)(uintptr_t)sum;
}

static uint64_t larson(void) {
  pthread_t t[LARSON_THREADS];
  uint64_t sum = 0;
  for (uintptr_t i = 0; i < LARSON_THREADS; ++i) pthread_create(&t[i], NULL, larson_worker, (void*)(i + 1));
  for (int i = 0; i < LARSON_THREADS; ++i) {
    void* r;
    pthread_join(t[i], &r);
    sum += (uintptr_t)r;
  }
  for (int k = 0; k < LARSON_SLOTS; ++k) {
    unsigned char* p = atomic_exchange(&larson_slots[k], NULL);
    if (p) sum += p[0], free(p);
  }
  /* Which thread frees a block depends on timing, but every block is freed
   * once: the total over all of them is reproducible. */
  return sum;
}

static uint64_t bigblocks(void) {
  uint64_t sum = 0;
  for (size_t i = 0; i < 20; ++i) {
    size_t n = ((5 + i % 21) << 20);
    unsigned char* p = malloc(n);
    for (size_t j = 0; j < n; j += 4096) p[j] = (unsigned char)j;
    sum += p[n / 2];
    free(p);
  }
  return sum;
}

static long peak_rss_kib(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = 0;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kib = strtol(line + 6, NULL, 10);
  if (f) fclose(f);
  return kib;
}

static int cmp(const void* a, const void* b) {
  uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
  return (x > y) - (x < y);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench <churn|prodcons|larson|bigblocks> [iterations]\n");
    return 2;
  }
  uint64_t (*work)(void) = strcmp(argv[1], "churn") == 0      ? churn
                           : strcmp(argv[1], "prodcons") == 0  ? prodcons
                           : strcmp(argv[1], "larson") == 0    ? larson
                           : strcmp(argv[1], "bigblocks") == 0 ? bigblocks
                                                               : NULL;
  if (!work) {
    fprintf(stderr, "bench: no workload named '%s'\n", argv[1]);
    return 2;
  }
  int iterations = argc > 2 ? atoi(argv[2]) : 5;
  if (iterations < 1 || iterations > 1000) iterations = 5;
  uint64_t times[1000], check = work(); /* one warm-up run */
  for (int i = 0; i < iterations; ++i) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint64_t c = work();
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (c != check) {
      fprintf(stderr, "bench: %s gave %llu, then %llu\n", argv[1], (unsigned long long)check, (unsigned long long)c);
      return 1;
    }
    times[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)(b.tv_nsec - a.tv_nsec);
  }
  qsort(times, (size_t)iterations, sizeof times[0], cmp);
  printf("%llu %ld %llu\n", (unsigned long long)times[iterations / 2], peak_rss_kib(), (unsigned long long)check);
  return 0;
}
