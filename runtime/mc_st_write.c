/* Writing safetensors files (the format mc_safetensors.c reads): an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype,
 * shape and data_offsets (relative to the end of the header), padded with
 * spaces to a multiple of 8 bytes, then the tensors' little-endian bytes
 * back to back in the order given, the first 64 bytes into the file's
 * pages. The header also carries "__metadata__": {"format": "pt"}, as
 * torch's writer does, so safetensors.torch.load_file and from_pretrained
 * take the file as a state_dict (or another format string: mc_model_save's
 * "modelc:prepared:...").
 *
 * All or nothing: the file is written as path.tmp.<pid>, flushed to disk
 * and renamed over path; on any error nothing is left at either name and
 * path keeps what it held.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mc_io.h"
#include "mc_runtime.h"

static const char *const st_dtype_names[MC_DTYPE_COUNT] = {
    [MC_F32] = "F32",   [MC_F64] = "F64", [MC_I32] = "I32",  [MC_I64] = "I64",
    [MC_BOOL] = "BOOL", [MC_F16] = "F16", [MC_BF16] = "BF16"};

/* A growable string; on allocation failure it stays failed. */
typedef struct StBuf {
  char *s;
  size_t len, cap;
  int failed;
} StBuf;

static void st_put(StBuf *b, const char *s, size_t n) {
  if (b->failed)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) {
      b->failed = 1;
      return;
    }
    b->s = p;
    b->cap = cap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = 0;
}

static void st_puts(StBuf *b, const char *s) {
  st_put(b, s, strlen(s));
}

static void st_putu(StBuf *b, uint64_t v) {
  char num[24];
  snprintf(num, sizeof num, "%llu", (unsigned long long)v);
  st_puts(b, num);
}

/* name as a JSON string: quotes, backslashes and control bytes escaped,
 * other bytes (UTF-8) as they are. */
static void st_put_name(StBuf *b, const char *name) {
  st_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      st_put(b, esc, 2);
    } else if (*p < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
      st_puts(b, esc);
    } else {
      st_put(b, (const char *)p, 1);
    }
  }
  st_put(b, "\"", 1);
}

/* The header for n tensors whose sizes are nbytes[], padded with spaces
 * so that the data starts 64 bytes into a page (8 + header length). */
static int st_header(const char *format, const char *const *names,
                     const McTensor *t, const size_t *nbytes, int n, StBuf *h,
                     McError *e) {
  st_puts(h, "{\"__metadata__\":{\"format\":");
  st_put_name(h, format);
  st_put(h, "}", 1);
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    st_put(h, ",", 1);
    st_put_name(h, names[i]);
    st_puts(h, ":{\"dtype\":\"");
    st_puts(h, st_dtype_names[t[i].dtype]);
    st_puts(h, "\",\"shape\":[");
    for (int j = 0; j < t[i].rank; j++) {
      if (j)
        st_put(h, ",", 1);
      st_putu(h, (uint64_t)t[i].shape[j]);
    }
    st_puts(h, "],\"data_offsets\":[");
    st_putu(h, off);
    st_put(h, ",", 1);
    off += nbytes[i];
    st_putu(h, off);
    st_puts(h, "]}");
  }
  st_put(h, "}", 1);
  while (!h->failed && (8 + h->len) % 64)
    st_put(h, " ", 1);
  return h->failed ? mc_fail(e, MC_ERR_NOMEM, "out of memory") : MC_OK;
}

/* Writes the file at path (no rename); removes it on failure. */
static int st_write_direct(const char *path, const StBuf *h, const McTensor *t,
                           const size_t *nbytes, int n, McError *e) {
  errno = 0;
  FILE *f = fopen(path, "wb");
  if (!f)
    return mc_fail(e, MC_ERR_IO, "cannot create %s: %s", path, strerror(errno));
  unsigned char len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (unsigned char)((uint64_t)h->len >> (8 * i));
  int ok = fwrite(len, 1, 8, f) == 8 && fwrite(h->s, 1, h->len, f) == h->len;
  for (int i = 0; ok && i < n; i++)
    ok = mc_io_write_elements(f, t[i].dtype, t[i].data, nbytes[i]);
  return mc_io_close(f, path, ok, e);
}

int mc_st_write(const char *path, const char *format, const char *const *names,
                const McTensor *tensors, int n, McError *e) {
  if (!path || n < 0 || (n > 0 && (!names || !tensors)))
    return mc_fail(e, MC_ERR_USAGE, "mc_st_write: NULL argument");
  size_t *nbytes = calloc((size_t)n + 1, sizeof *nbytes);
  if (!nbytes)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  int rc = MC_OK;
  for (int i = 0; !rc && i < n; i++) {
    const McTensor *t = &tensors[i];
    if (!names[i] || !names[i][0])
      rc = mc_fail(e, MC_ERR_NAME, "%s: tensor %d has no name", path, i);
    else if ((unsigned)t->dtype >= MC_DTYPE_COUNT)
      rc = mc_fail(e, MC_ERR_DTYPE, "%s: tensor '%s' has no dtype", path,
                   names[i]);
    else if (!(rc = mc_tensor_nbytes(t, &nbytes[i], e)) && nbytes[i] > 0 &&
             !t->data)
      rc = mc_fail(e, MC_ERR_USAGE, "%s: tensor '%s' has no data", path,
                   names[i]);
    for (int j = 0; !rc && j < i; j++)
      if (!strcmp(names[i], names[j]))
        rc = mc_fail(e, MC_ERR_NAME, "%s: two tensors are named '%s'", path,
                     names[i]);
  }
  StBuf h = {0};
  if (!rc)
    rc = st_header(format ? format : "pt", names, tensors, nbytes, n, &h, e);
  char *tmp = NULL;
  if (!rc) {
    size_t len = strlen(path) + 32;
    if (!(tmp = malloc(len)))
      rc = mc_fail(e, MC_ERR_NOMEM, "out of memory");
    else
      snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
  }
  if (!rc)
    rc = st_write_direct(tmp, &h, tensors, nbytes, n, e);
  if (!rc && rename(tmp, path) != 0) {
    rc = mc_fail(e, MC_ERR_IO, "cannot rename %s to %s: %s", tmp, path,
                 strerror(errno));
    unlink(tmp);
  }
  free(tmp);
  free(h.s);
  free(nbytes);
  return rc;
}
