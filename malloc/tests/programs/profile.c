/* Run under the shim with MEMRES_PROFILE and MEMRES_PROFILE_PATH=<path>:
 * two call sites allocate a known proportion of bytes (parse_headers 2,
 * rank_words 1). Half-way, SIGUSR2 asks for a dump, which the next sample
 * writes to <path>.<pid>.*: the program says whether it appeared. Then
 * rank_words' blocks are freed, parse_headers' kept, and
 * memres_profile_dump("<path>.mid") writes the views as they stand. A
 * forked child exits (and writes its own files). Prints the true bytes of
 * each site, its pid and the child's. */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 10
#define EXTRA 2000

__attribute__((noinline)) void parse_headers(void** out, int n) {
  for (int i = 0; i < n; i++) {
    out[i] = malloc(48);
    memset(out[i], 1, 48);
  }
}

__attribute__((noinline)) void rank_words(void** out, int n) {
  for (int i = 0; i < n; i++) {
    out[i] = malloc(144);
    memset(out[i], 2, 144);
  }
}

int main(void) {
  int (*dump)(const char*) = (int (*)(const char*))dlsym(RTLD_DEFAULT, "memres_profile_dump");
  const char* path = getenv("MEMRES_PROFILE_PATH");
  if (dump == NULL || path == NULL) {
    fprintf(stderr, "profile: run under the shim with MEMRES_PROFILE_PATH set\n");
    return 1;
  }
  static void* headers[ROUNDS * 6000 + EXTRA];
  static void* words[ROUNDS * 1000];
  for (int r = 0; r < ROUNDS; r++) {
    parse_headers(headers + r * 6000, 6000);
    rank_words(words + r * 1000, 1000);
    if (r == ROUNDS / 2) {
      raise(SIGUSR2);
      /* The next sample writes the dump. */
      parse_headers(headers + ROUNDS * 6000, EXTRA);
      char file[4096];
      snprintf(file, sizeof file, "%s.%d.alloc.folded", path, (int)getpid());
      printf("dump after SIGUSR2: %s\n", access(file, R_OK) == 0 ? "written" : "missing");
    }
  }
  for (int i = 0; i < ROUNDS * 1000; i++) free(words[i]);
  char mid[4096];
  snprintf(mid, sizeof mid, "%s.mid", path);
  if (dump(mid) != 0) {
    perror("memres_profile_dump");
    return 1;
  }
  /* A child of fork() writes its own files at its exit, not the parent's. */
  fflush(stdout);
  const pid_t child = fork();
  if (child == 0) {
    parse_headers(headers, 10);
    exit(0);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "profile: the forked child failed\n");
    return 1;
  }
  printf("child %d\n", (int)child);
  printf("pid %d\nparse_headers %ld\nrank_words %ld\n", (int)getpid(), (ROUNDS * 6000L + EXTRA) * 48,
         ROUNDS * 1000L * 144);
  for (int i = 0; i < ROUNDS * 6000 + EXTRA; i++) free(headers[i]);
  return 0;
}
