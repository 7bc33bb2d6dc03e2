/* memres_stats_json under the preloaded library: its snprintf-like
 * contract, then the report printed on stdout for preload.rs to parse (with
 * 1000 live blocks of 48 bytes in it). Run with MEMRES_STATS=json, the
 * report at exit follows on stderr. */
#include <dlfcn.h>
#include <memres/malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "stats_json: check failed: %s (line %d)\n", #cond, __LINE__); \
      return 1;                                                       \
    }                                                                 \
  } while (0)

int main(void) {
  size_t (*json)(char*, size_t) = (size_t (*)(char*, size_t))dlsym(RTLD_DEFAULT, "memres_stats_json");
  CHECK(json != NULL); /* the library is loaded */
  static void* blocks[1000];
  for (int i = 0; i < 1000; ++i) {
    blocks[i] = malloc(48);
    CHECK(blocks[i] != NULL);
    memset(blocks[i], i & 0xff, 48);
  }
  /* Nothing written for a zero length; the length is still the JSON's. */
  const size_t need = json(NULL, 0);
  CHECK(need > 20);
  /* Cut short: len - 1 bytes and a NUL. */
  char small[8];
  memset(small, 'x', sizeof small);
  CHECK(json(small, sizeof small) >= sizeof small);
  CHECK(strlen(small) == sizeof small - 1 && memcmp(small, "{\"alloc", 7) == 0);
  /* Whole (the report may grow by a digit or two between calls). */
  const size_t room = need + 4096;
  char* buf = malloc(room);
  CHECK(buf != NULL);
  const size_t len = json(buf, room);
  CHECK(len < room && strlen(buf) == len);
  puts(buf);
  free(buf);
  for (int i = 0; i < 1000; ++i) free(blocks[i]);
  return 0;
}
