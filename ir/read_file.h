/* Whole files into memory: the model files, configs, cache manifests and
 * compiler logs that modelc reads. */
#ifndef MC_READ_FILE_H
#define MC_READ_FILE_H

#include <stddef.h>
#include <stdio.h>

/* The rest of f as a NUL-terminated malloc'ed buffer, its length (without
 * the NUL) in *len. Stops once more than `limit` bytes are read, so that a
 * device or an endless pipe cannot exhaust memory: *len > limit then tells
 * the caller. NULL on a read error (errno set) or out of memory. */
char *read_stream(FILE *f, size_t limit, size_t *len);

/* read_stream of the file at path, opened and closed here; NULL (errno
 * set) also when it cannot be opened. */
char *read_path(const char *path, size_t limit, size_t *len);

#endif
