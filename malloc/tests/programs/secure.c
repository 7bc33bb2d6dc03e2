/* What memres's secure mode (MEMRES_SECURE=1) does, one case at a time.
 *
 *   secure <case>
 *
 * Cases that fault on purpose (run with MEMRES_GUARDED_SAMPLE_RATE=1 for the
 * sampled ones) die of SIGSEGV after memres's report; the others print
 * "ok <case>" and exit 0, or print what went wrong and exit 3.
 *
 * Built and run by malloc/tests/preload.rs under libmemres_malloc.so. */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void* opaque(void* p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}

static void fail(const char* what) {
  printf("FAILED: %s\n", what);
  exit(3);
}

static sigjmp_buf jump;
static void on_fault(int signal) {
  (void)signal;
  siglongjmp(jump, 1);
}

/* Whether reading the byte at p faults. */
static int faults(volatile unsigned char* p) {
  if (sigsetjmp(jump, 1) == 0) {
    (void)*p;
    return 0;
  }
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const char* c = argv[1];
  if (!strcmp(c, "use-after-free-sampled")) {
    unsigned char* p = malloc(40);
    volatile unsigned char* q = opaque(p);
    memset(p, 1, 40);
    free(p);
    q[3] = 2; /* faults */
    fail("a write after free did not fault");
  } else if (!strcmp(c, "overflow-sampled")) {
    volatile unsigned char* p = opaque(malloc(48));
    for (int i = 0; i < 64; ++i) p[i] = 1; /* faults at p[48] */
    fail("an overflow did not fault");
  } else if (!strcmp(c, "underflow-sampled")) {
    volatile unsigned char* p = opaque(malloc(4096));
    p[0] = 1;
    p[-1] = 1; /* faults */
    fail("an underflow did not fault");
  } else if (!strcmp(c, "large-use-after-free")) {
    unsigned char* p = malloc(1 << 20);
    volatile unsigned char* q = opaque(p);
    memset(p, 1, 1 << 20);
    free(p);
    q[4096] = 2; /* faults */
    fail("a write after free of a large block did not fault");
  } else if (!strcmp(c, "guard-pages")) {
    /* 1 KiB blocks fill a page's usable part exactly, so the last block of
     * each page ends at its guard: reading one byte past each block must
     * fault for at least one of them. */
    signal(SIGSEGV, on_fault);
    enum { N = 128 };
    unsigned char* blocks[N];
    int hits = 0;
    for (int i = 0; i < N; ++i) blocks[i] = malloc(1024);
    for (int i = 0; i < N; ++i) hits += faults(blocks[i] + 1024);
    if (hits == 0) fail("no block ends at a guard page");
    if (hits > N / 16) fail("too many guards");
    for (int i = 0; i < N; ++i) free(blocks[i]);
  } else if (!strcmp(c, "quarantine")) {
    unsigned char* a = malloc(48);
    uintptr_t was = (uintptr_t)a;
    free(a);
    for (int i = 0; i < 100; ++i) {
      unsigned char* b = malloc(48);
      if ((uintptr_t)b == was) fail("a freed block came back within 100 frees");
      free(b);
    }
  } else if (!strcmp(c, "zeroed")) {
    unsigned char* p = malloc(64);
    volatile unsigned char* q = opaque(p);
    memset(p, 0xab, 64);
    free(p);
    /* The first word and everything after the mark (the second word). */
    for (int i = 0; i < 64; ++i)
      if ((i < 8 || i >= 16) && q[i] != 0) fail("a freed block kept its data");
  } else if (!strcmp(c, "randomized")) {
    enum { N = 256 };
    unsigned char* blocks[N];
    int ascending = 0;
    for (int i = 0; i < N; ++i) blocks[i] = malloc(64);
    for (int i = 1; i < N; ++i) ascending += blocks[i] > blocks[i - 1];
    if (ascending > N * 3 / 4) fail("fresh blocks come in address order");
    for (int i = 0; i < N; ++i) free(blocks[i]);
  } else {
    return 2;
  }
  printf("ok %s\n", c);
  return 0;
}
