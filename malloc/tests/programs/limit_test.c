/* Allocates 1 MiB blocks, touching each, until malloc fails; prints how
 * many it got. Under MEMRES_HEAP_LIMIT the program gets null and ENOMEM
 * instead of being killed (malloc/tests/preload.rs checks the count). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  size_t n = 0;
  void* blocks[4096];
  for (;;) {
    errno = 0;
    void* p = malloc(1u << 20);
    if (p == NULL) break;
    memset(p, 1, 1u << 20);
    blocks[n++] = p;
    if (n == 4096) break;
  }
  int failed_with_enomem = errno == ENOMEM;
  for (size_t i = 0; i < n; ++i) free(blocks[i]);
  void* again = malloc(1u << 20); /* works again once memory is freed */
  printf("%zu %d %d\n", n, failed_with_enomem, again != NULL);
  free(again);
  return 0;
}
