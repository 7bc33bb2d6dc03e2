/* One misuse of the C allocator API, then a checked workload.
 *
 *   misuse <case>
 *
 * The case does one misuse (a double free, a write after free, an interior
 * free, ...). Then 10 000 mallocs of the case's size (300 of a large one)
 * are checked: every live
 * block distinct, filled with its own byte and read back intact, and never
 * the address the program planted. Prints "CORRUPTED: ..." and exits 3 if
 * the allocator handed out a live block twice or the planted address;
 * prints "survived <case>" and exits 0 if the program got through. An
 * allocator that detects the misuse usually aborts before either.
 *
 * Built and run by malloc/tests/preload.rs (under libmemres_malloc.so) and
 * by benches/misuse_table.sh (under each allocator it finds). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void* planted; /* an address the program chose (on the stack) */

static void* opaque(void* p) {
  /* Keeps the compiler from reasoning about the misuses. */
  __asm__ volatile("" : "+r"(p));
  return p;
}

static void checked_workload(size_t size) {
  enum { LIVE = 100 };
  const int rounds = size >= 65536 ? 3 : 100;
  for (int round = 0; round < rounds; ++round) {
    unsigned char* blocks[LIVE];
    for (int i = 0; i < LIVE; ++i) {
      blocks[i] = malloc(size);
      if (blocks[i] == NULL) {
        printf("malloc failed\n");
        exit(4);
      }
      if ((void*)blocks[i] == planted) {
        printf("CORRUPTED: malloc returned the planted address %p\n", planted);
        exit(3);
      }
      for (int j = 0; j < i; ++j) {
        if (blocks[j] == blocks[i]) {
          printf("CORRUPTED: malloc returned live block %p twice\n", (void*)blocks[i]);
          exit(3);
        }
      }
      memset(blocks[i], (unsigned char)(round + i), size);
    }
    for (int i = 0; i < LIVE; ++i)
      for (size_t k = 0; k < size; ++k)
        if (blocks[i][k] != (unsigned char)(round + i)) {
          printf("CORRUPTED: live block %p was overwritten\n", (void*)blocks[i]);
          exit(3);
        }
    for (int i = 0; i < LIVE; ++i) free(blocks[i]);
  }
}

/* Writes `len` bytes of `value` just past a live 24-byte block, into its
 * free neighbour's first word (its link, in most allocators), then mallocs
 * twice: neither may return the live block. */
static void overflow_into_free_neighbour(int value, size_t len) {
  char* a = malloc(24);
  char* b = malloc(24);
  free(b);
  size_t usable = b > a ? (size_t)(b - a) : 24;
  memset(opaque(a + (usable < 64 ? usable : 24)), value, len);
  void* x = malloc(24);
  void* y = malloc(24);
  if (x == a || y == a) {
    printf("CORRUPTED: malloc returned live block %p\n", (void*)a);
    exit(3);
  }
}

static void* free_twice(void* p) {
  free(p);
  free(opaque(p));
  return NULL;
}

/* A wild pointer below 4 MiB, freed by a thread that has freed nothing yet. */
static void* free_low(void* unused) {
  (void)unused;
  free(opaque((void*)(uintptr_t)0x200010));
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: misuse <case>\n");
    return 2;
  }
  const char* c = argv[1];
  void* stack_target[8] = {0};
  planted = stack_target;
  size_t size = 32;
  setvbuf(stdout, NULL, _IONBF, 0);

  if (!strcmp(c, "double-free")) {
    void* p = malloc(32);
    free(p);
    free(opaque(p));
  } else if (!strcmp(c, "delayed-double-free")) {
    void *a = malloc(32), *b = malloc(32);
    free(a);
    free(b);
    free(opaque(a));
  } else if (!strcmp(c, "double-free-large")) {
    size = 1 << 20;
    void* p = malloc(size);
    free(p);
    free(opaque(p));
  } else if (!strcmp(c, "double-free-large-later")) {
    size = 1 << 20;
    void* p = malloc(size);
    free(p);
    usleep(1500 * 1000); /* past the cache's decay of freed mappings */
    void* q = malloc(64);   /* a call that lets the heap expire them */
    free(q);
    free(opaque(p));
  } else if (!strcmp(c, "double-free-huge")) {
    size = 64 << 20;
    void* p = malloc(size);
    free(p);
    free(opaque(p));
  } else if (!strcmp(c, "double-free-thread")) {
    void* p = malloc(32);
    pthread_t t;
    pthread_create(&t, NULL, free_twice, p);
    pthread_join(t, NULL);
  } else if (!strcmp(c, "double-free-across-sizes")) {
    void* p = malloc(48);
    free(p);
    void* q = malloc(200);
    free(opaque(p));
    free(q);
    size = 48;
  } else if (!strcmp(c, "realloc-after-free")) {
    void* p = malloc(40);
    free(p);
    void* q = realloc(opaque(p), 44);
    void* r = malloc(40);
    if (q != NULL && q == r) {
      printf("CORRUPTED: realloc of a freed block and malloc returned the same block %p\n", q);
      return 3;
    }
    size = 40;
  } else if (!strcmp(c, "write-after-free")) {
    void** p = malloc(32);
    free(p);
    *(void* volatile*)opaque(p) = planted;
    void* a = malloc(32);
    void* b = malloc(32);
    if (b == planted || a == planted) {
      printf("CORRUPTED: malloc returned the planted address %p\n", planted);
      return 3;
    }
  } else if (!strcmp(c, "overflow-8")) {
    overflow_into_free_neighbour(0x41, 8);
    size = 24;
  } else if (!strcmp(c, "overflow-1")) {
    overflow_into_free_neighbour(0, 1); /* a NUL past the end */
    size = 24;
  } else if (!strcmp(c, "interior-free")) {
    char* p = malloc(64);
    free(opaque(p + 16));
    size = 64;
  } else if (!strcmp(c, "misaligned-free")) {
    char* p = malloc(64);
    free(opaque(p + 1));
    size = 64;
  } else if (!strcmp(c, "interior-free-large")) {
    char* p = malloc(1 << 20);
    free(opaque(p + 65536));
    size = 1 << 20;
  } else if (!strcmp(c, "misaligned-free-large")) {
    char* p = malloc(1 << 20);
    free(opaque(p + 1));
    size = 1 << 20;
  } else if (!strcmp(c, "stack-free")) {
    char local[64];
    free(opaque(local));
  } else if (!strcmp(c, "wild-free")) {
    free(opaque((void*)(uintptr_t)0x10000000dead0));
  } else if (!strcmp(c, "wild-free-low")) {
    pthread_t t;
    pthread_create(&t, NULL, free_low, NULL);
    pthread_join(t, NULL);
  } else {
    fprintf(stderr, "misuse: no case '%s'\n", c);
    return 2;
  }
  checked_workload(size);
  printf("survived %s\n", c);
  return 0;
}
