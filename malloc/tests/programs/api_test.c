/* Every function libmemres_malloc.so exports, with C's edge cases, run
 * under LD_PRELOAD by malloc/tests/preload.rs. Prints "api_test: ok". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "memres/malloc.h"

#define CHECK(c)                                                            \
  do {                                                                      \
    if (!(c)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #c); \
      exit(1);                                                              \
    }                                                                       \
  } while (0)

/* Volatile sizes, so the compiler cannot fold or warn about them. */
static volatile size_t huge = SIZE_MAX;
static volatile size_t half = SIZE_MAX / 2 + 1;

static void (*stats)(struct memres_stats*);

static size_t allocated(void) {
  struct memres_stats s;
  stats(&s);
  return s.allocated;
}

static int aligned(const void* p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void zero_and_unique_pointers(void) {
  void* a = malloc(0);
  void* b = malloc(0);
  CHECK(a && b && a != b);
  errno = EDOM;
  free(a); /* free leaves errno alone (POSIX.1-2024, glibc 2.33+) */
  free(b);
  free(NULL);
  CHECK(errno == EDOM);
  CHECK(malloc_usable_size(NULL) == 0);
  /* The frees that reach the heap's slow paths too: large blocks (cached,
     or unmapped when the cache is full) and pages left empty. */
  enum { N = 64, SMALL = 4096 };
  static void* big[N];
  static void* small[SMALL];
  for (int i = 0; i < N; i++) CHECK((big[i] = malloc((size_t)(i + 1) << 16)) != NULL);
  for (int i = 0; i < SMALL; i++) CHECK((small[i] = malloc(48)) != NULL);
  errno = EDOM;
  for (int i = 0; i < N; i++) free(big[i]);
  for (int i = 0; i < SMALL; i++) free(small[i]);
  CHECK(errno == EDOM);
}

static void sizes_alignment_and_usable_size(void) {
  for (size_t n = 1; n < 200000; n = n * 3 / 2 + 1) {
    unsigned char* p = malloc(n);
    CHECK(p && aligned(p, 16));
    memset(p, 0xab, n);
    CHECK(malloc_usable_size(p) >= n);
    CHECK(p[n - 1] == 0xab);
    free(p);
  }
}

static void calloc_zeroes_and_detects_overflow(void) {
  unsigned char* dirty = malloc(1000);
  memset(dirty, 0xff, 1000);
  free(dirty);
  for (size_t n = 1; n <= (16u << 20); n *= 4) {
    unsigned char* p = calloc(n, 1);
    CHECK(p);
    for (size_t i = 0; i < n; i += 97) CHECK(p[i] == 0);
    CHECK(p[n - 1] == 0);
    free(p);
  }
  errno = 0;
  CHECK(calloc(half, 2) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(malloc(huge) == NULL && errno == ENOMEM);
  errno = 0;
  CHECK(malloc(huge / 2) == NULL && errno == ENOMEM);
}

static void realloc_keeps_contents(void) {
  char* p = realloc(NULL, 10);
  CHECK(p);
  memcpy(p, "memres!!!", 10);
  for (size_t n = 20; n < (8u << 20); n *= 3) {
    p = realloc(p, n);
    CHECK(p && memcmp(p, "memres!!!", 10) == 0);
    memset(p + 10, 1, n - 10);
  }
  p = realloc(p, 5);
  CHECK(p && memcmp(p, "memre", 5) == 0);
  errno = 0;
  CHECK(realloc(p, huge) == NULL && errno == ENOMEM);
  CHECK(memcmp(p, "memre", 5) == 0); /* untouched after a failed realloc */
  CHECK(realloc(p, 0) == NULL);    /* glibc: frees p */

  int* a = reallocarray(NULL, 100, sizeof(int));
  CHECK(a);
  for (int i = 0; i < 100; ++i) a[i] = i;
  errno = 0;
  CHECK(reallocarray(a, half, 2) == NULL && errno == ENOMEM);
  a = reallocarray(a, 1000, sizeof(int));
  CHECK(a && a[99] == 99);
  free(a);
}

static void aligned_allocations(void) {
  void* p = (void*)1;
  errno = EDOM;
  CHECK(posix_memalign(&p, 3, 10) == EINVAL && p == (void*)1);
  CHECK(posix_memalign(&p, 4, 10) == EINVAL); /* not a multiple of sizeof(void*) */
  CHECK(posix_memalign(&p, 64, huge) == ENOMEM && p == (void*)1);
  CHECK(errno == EDOM); /* posix_memalign reports through its result only */
  for (size_t a = 8; a <= (4u << 20); a *= 8) {
    CHECK(posix_memalign(&p, a, 100) == 0 && aligned(p, a));
    memset(p, 1, 100);
    free(p);
  }
  p = aligned_alloc(64, 100);
  CHECK(p && aligned(p, 64));
  free(p);
  errno = 0;
  CHECK(aligned_alloc(3, 10) == NULL && errno == EINVAL);
  errno = 0;
  CHECK(aligned_alloc(0, 10) == NULL && errno == EINVAL);
  p = memalign(100, 10); /* rounded up to 128, as glibc does */
  CHECK(p && aligned(p, 128));
  free(p);
  errno = 0;
  CHECK(memalign(half + 1, 10) == NULL && errno == EINVAL); /* no power of two above it */
  /* Aligned blocks, small and large, realloc'd: contents move, alignment
   * may drop to malloc's (as C allows). */
  for (size_t a = 4096; a <= (2u << 20); a *= 512) {
    char* q = memalign(a, a == 4096 ? 100 : (3u << 20));
    CHECK(q && aligned(q, a));
    memcpy(q, "aligned", 8);
    q = realloc(q, 5000);
    CHECK(q && aligned(q, 16) && memcmp(q, "aligned", 8) == 0);
    q = realloc(q, 8u << 20);
    CHECK(q && memcmp(q, "aligned", 8) == 0);
    free(q);
  }
  long page = sysconf(_SC_PAGESIZE);
  p = valloc(10);
  CHECK(p && aligned(p, (size_t)page));
  free(p);
  p = pvalloc(1);
  CHECK(p && aligned(p, (size_t)page) && malloc_usable_size(p) >= (size_t)page);
  free(p);
  p = pvalloc(0);
  CHECK(p && aligned(p, (size_t)page) && malloc_usable_size(p) >= (size_t)page);
  free(p);
}

/* Blocks stored here escape, so the compiler keeps their malloc and free. */
static void* volatile sink;

static void stats_follow_the_blocks(void) {
  size_t before = allocated();
  char* p = malloc(1u << 20);
  sink = p;
  memset(p, 1, 1u << 20);
  CHECK(allocated() >= before + (1u << 20));
  free(p);
  CHECK(allocated() == before);
}

/* Threads made with pthread_create: each frees what the previous made. */
#define THREADS 8
#define BLOCKS 20000
static void* handed[THREADS][BLOCKS];

static void* worker(void* arg) {
  size_t t = (size_t)arg;
  for (size_t i = 0; i < BLOCKS; ++i) {
    handed[t][i] = malloc(16 + (i * 7 + t) % 500);
    memset(handed[t][i], (int)t, 16);
  }
  return NULL;
}

static void threads_and_cross_thread_frees(void) {
  pthread_t threads[THREADS];
  for (size_t t = 0; t < THREADS; ++t) CHECK(pthread_create(&threads[t], NULL, worker, (void*)t) == 0);
  for (size_t t = 0; t < THREADS; ++t) CHECK(pthread_join(threads[t], NULL) == 0);
  /* The makers have exited: their blocks are still intact, and freed here. */
  for (size_t t = 0; t < THREADS; ++t)
    for (size_t i = 0; i < BLOCKS; ++i) {
      CHECK(((unsigned char*)handed[t][i])[15] == t);
      free(handed[t][i]);
    }
}

static volatile int stop;

/* Keeps the heap's slow paths and locks busy while the main thread forks:
 * small blocks, large ones (the large-block cache's lock), and threads that
 * start and exit (records, abandoned and empty segments). */
static void* churn_thread(void* arg) {
  (void)arg;
  for (int i = 0; i < 1000; ++i) free(malloc((size_t)i * 7 + 1));
  return NULL;
}

static void* busy(void* arg) {
  size_t kind = (size_t)arg;
  while (!stop) {
    if (kind == 0) free(malloc(100));
    if (kind == 1) free(malloc(1u << 20));
    if (kind == 2) {
      pthread_t t;
      if (pthread_create(&t, NULL, churn_thread, NULL) == 0) pthread_join(t, NULL);
    }
  }
  return NULL;
}

static void fork_while_other_threads_allocate(void) {
  pthread_t busy_threads[3];
  for (size_t k = 0; k < 3; ++k) CHECK(pthread_create(&busy_threads[k], NULL, busy, (void*)k) == 0);
  for (int round = 0; round < 20; ++round) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      void* blocks[1000];
      for (int i = 0; i < 1000; ++i) blocks[i] = malloc((size_t)i * 13 + 1);
      for (int i = 0; i < 1000; ++i) free(blocks[i]);
      free(malloc(8u << 20));
      _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  stop = 1;
  for (size_t k = 0; k < 3; ++k) CHECK(pthread_join(busy_threads[k], NULL) == 0);
}

static void foreign_pointers_are_left_alone(void) {
  static char not_ours[64];
  char* volatile foreign = not_ours + 16; /* hidden from the compiler's checks */
  free(foreign);                          /* reported on stderr, not freed */
  /* A report whose write fails (stderr closed: EBADF) leaves errno alone too. */
  int err_fd = dup(2);
  close(2);
  errno = EDOM;
  free(foreign);
  int kept = errno;
  dup2(err_fd, 2);
  close(err_fd);
  CHECK(kept == EDOM);
  errno = 0;
  CHECK(realloc(foreign, 100) == NULL && errno == ENOMEM);
  CHECK(malloc_usable_size(foreign) == 0);
}

/* Allocation during exit: atexit handlers and destructors still work. */
static void* at_exit_block;
static void at_exit(void) {
  free(at_exit_block);
  free(malloc(1000));
}
__attribute__((destructor)) static void destructor(void) { free(calloc(10, 10)); }

int main(void) {
  stats = (void (*)(struct memres_stats*))dlsym(RTLD_DEFAULT, "memres_stats");
  CHECK(stats != NULL); /* the library is loaded */
  zero_and_unique_pointers();
  sizes_alignment_and_usable_size();
  calloc_zeroes_and_detects_overflow();
  realloc_keeps_contents();
  aligned_allocations();
  stats_follow_the_blocks();
  threads_and_cross_thread_frees();
  fork_while_other_threads_allocate();
  foreign_pointers_are_left_alone();
  at_exit_block = malloc(100);
  CHECK(atexit(at_exit) == 0);
  void (*print)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "memres_stats_print");
  CHECK(print != NULL);
  print(); /* one line on stderr, checked by preload.rs */
  puts("api_test: ok");
  return 0;
}
