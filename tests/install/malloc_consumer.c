/* Linked against memres::malloc: malloc is memres's heap, whose statistics
 * see this program's blocks. Prints "malloc_consumer: ok". */
#include <memres/malloc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  enum { N = 1000 };
  void* blocks[N];
  for (int i = 0; i < N; ++i) {
    blocks[i] = malloc(100);
    memset(blocks[i], i & 0xff, 100);
  }
  struct memres_stats stats;
  memres_stats(&stats);
  int ok = stats.allocated >= N * 100;
  for (int i = 0; i < N; ++i) free(blocks[i]);
  puts(ok ? "malloc_consumer: ok" : "malloc_consumer: FAILED: the heap's stats do not see the blocks");
  return ok ? 0 : 1;
}
