/* Shared helpers of the fuzz targets (tests/fuzz/fuzz_*.c).
 *
 * The readers under test take paths, so inputs are written to a temporary
 * file that lives for the whole process (one per target and process, so
 * parallel fuzzing jobs do not clash). Diagnostics go to /dev/null: the
 * targets check that nothing crashes, leaks or hangs, not what is said.
 */
#ifndef MC_FUZZ_UTIL_H
#define MC_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Where targets store a checksum of the data they read, so the reads are
 * not optimized away. */
static volatile double fuzz_checksum;

/* The null sink for diagnostics, opened once. */
static inline FILE *fuzz_null_sink(void) {
  static FILE *sink;
  if (!sink)
    sink = fopen("/dev/null", "w");
  if (!sink)
    abort();
  return sink;
}

static char fuzz_temp_paths[4][256];
static int fuzz_temp_used;

static inline void fuzz_remove_temps(void) {
  for (int i = 0; i < fuzz_temp_used; i++)
    remove(fuzz_temp_paths[i]);
}

/* Writes data[0..size) to a per-process file named after tag (e.g.
 * "npy"), removed at exit, and returns its path; aborts on I/O failure. */
static inline const char *fuzz_write_temp(const char *tag, const uint8_t *data,
                                          size_t size) {
  char *path = NULL;
  char want[256];
  const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(want, sizeof want, "%s/mc_fuzz_%ld_%s", dir, (long)getpid(), tag);
  for (int i = 0; i < fuzz_temp_used && !path; i++)
    if (strcmp(fuzz_temp_paths[i], want) == 0)
      path = fuzz_temp_paths[i];
  if (!path) {
    if (fuzz_temp_used == 4)
      abort();
    if (fuzz_temp_used == 0)
      atexit(fuzz_remove_temps);
    path = fuzz_temp_paths[fuzz_temp_used++];
    memcpy(path, want, sizeof want);
  }
  FILE *f = fopen(path, "wb");
  if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0)
    abort();
  return path;
}

#endif
