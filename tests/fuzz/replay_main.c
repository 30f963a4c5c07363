/* Replays fuzz inputs without libFuzzer: each argument is a file or a
 * directory whose files (not recursive, in name order) are each passed once
 * to LLVMFuzzerTestOneInput. Linked with a fuzz target in the normal build,
 * so ctest replays the seed corpora and the crash regressions in seconds
 * (under AddressSanitizer in build-san). Exits non-zero when an argument
 * cannot be read or holds no input at all; a crash ends the process. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_util.h"

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "replay: cannot open '%s'\n", path);
    return -1;
  }
  size_t cap = 4096, n = 0, r;
  uint8_t *buf = malloc(cap);
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb)
        free(buf);
      buf = nb;
    }
  }
  fclose(f);
  if (!buf) {
    fprintf(stderr, "replay: out of memory reading '%s'\n", path);
    return -1;
  }
  /* an exact-size copy, so ASan sees reads past the input's end */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays the regular files of dir; returns how many, or -1. */
static int replay_dir(const char *dir) {
  DIR *dp = opendir(dir);
  if (!dp) {
    fprintf(stderr, "replay: cannot open directory '%s'\n", dir);
    return -1;
  }
  int n = 0, cap = 0;
  char **names = NULL;
  struct dirent *ent;
  while ((ent = readdir(dp))) {
    if (ent->d_name[0] == '.')
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **nn = realloc(names, sizeof *names * (size_t)cap);
      if (!nn)
        abort();
      names = nn;
    }
    size_t len = strlen(dir) + strlen(ent->d_name) + 2;
    names[n] = malloc(len);
    if (!names[n])
      abort();
    snprintf(names[n], len, "%s/%s", dir, ent->d_name);
    n++;
  }
  closedir(dp);
  if (n)
    qsort(names, (size_t)n, sizeof *names, by_name);
  int done = 0, rc = 0;
  for (int i = 0; i < n; i++) {
    struct stat sb;
    if (stat(names[i], &sb) == 0 && S_ISREG(sb.st_mode)) {
      if (replay_file(names[i]))
        rc = -1;
      done++;
    }
    free(names[i]);
  }
  free(names);
  return rc ? -1 : done;
}

int main(int argc, char **argv) {
  int total = 0;
  for (int i = 1; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) != 0) {
      fprintf(stderr, "replay: no such file or directory '%s'\n", argv[i]);
      return 1;
    }
    int n = S_ISDIR(sb.st_mode) ? replay_dir(argv[i])
                                : (replay_file(argv[i]) ? -1 : 1);
    if (n < 0)
      return 1;
    total += n;
  }
  printf("replayed %d inputs\n", total);
  return total > 0 ? 0 : 1;
}
