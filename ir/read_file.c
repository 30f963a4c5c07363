#include "read_file.h"

#include <errno.h>
#include <stdlib.h>

char *read_stream(FILE *f, size_t limit, size_t *len) {
  size_t n = 0, cap = 4096, got;
  char *buf = malloc(cap);
  while (buf && n <= limit && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += got;
    if (n + 1 == cap) {
      char *bigger = realloc(buf, cap *= 2);
      if (!bigger)
        free(buf);
      buf = bigger;
    }
  }
  if (!buf) {
    errno = ENOMEM;
    return NULL;
  }
  if (ferror(f)) {
    int saved = errno;
    free(buf);
    errno = saved ? saved : EIO;
    return NULL;
  }
  buf[n] = 0;
  *len = n;
  return buf;
}

char *read_path(const char *path, size_t limit, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *text = read_stream(f, limit, len);
  int saved = errno;
  fclose(f);
  errno = saved;
  return text;
}
