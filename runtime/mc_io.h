/* Writing a file of tensor data, shared by the runtime's writers (.npy in
 * mc_npy.c, safetensors in mc_st_write.c; defined in mc_npy.c), and what
 * the programs' two drivers share (mc_main.c, mc_train.c). */
#ifndef MC_IO_H
#define MC_IO_H

#include <stdio.h>

#include "mc_runtime.h"

/* Appends nbytes of dtype t's elements from data to f, little-endian,
 * bools as 0 or 1 (through a buffer: data is not changed). 0 on a write
 * error. */
int mc_io_write_elements(FILE *f, McDType t, const void *data, size_t nbytes);

/* Finishes the file at path that f wrote (ok: whether every write
 * succeeded): flushed to disk and closed; on any failure the file is
 * removed and the error says why. */
int mc_io_close(FILE *f, const char *path, int ok, McError *e);

/* The value of a count option (--threads 4): a positive integer up to max. */
int mc_main_parse_count(const char *opt, const char *s, long max, int *out,
                        McError *e);
/* Reads a .npy file into *t in spec's dtype, checking its dtype class and
 * rank; the message names the input. */
int mc_main_read_input(const McIOSpec *spec, const char *file, McTensor *t,
                       McError *e);

#endif
