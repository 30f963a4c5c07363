/* .npy files (NumPy format 1.0, 2.0 and 3.0).
 *
 * Layout: "\x93NUMPY", major, minor, header length (u16 for 1.x, u32 for
 * 2.x/3.x), then a Python dict literal
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ended by '\n', then the raw data in C order.
 *
 * Invariants: input files are untrusted, so the header is parsed strictly and
 * the data size implied by the shape (overflow-checked) must equal the bytes
 * left in the file before anything is allocated from it; a failed read leaves
 * nothing allocated. Writes go through a buffer that normalizes bools and
 * byte-swaps on big-endian hosts, so files are always little-endian.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "mc_io.h"
#include "mc_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int npy_little_endian(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

/* Reverses the bytes of each of n elements of `size` bytes. */
static void npy_swap_bytes(void *data, size_t n, size_t size) {
  unsigned char *p = data;
  for (size_t i = 0; i < n; i++, p += size)
    for (size_t a = 0, b = size - 1; a < b; a++, b--) {
      unsigned char t = p[a];
      p[a] = p[b];
      p[b] = t;
    }
}

typedef struct NpyCursor {
  const char *p, *end;
} NpyCursor;

static void npy_skip_space(NpyCursor *c) {
  while (c->p < c->end &&
         (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static int npy_accept(NpyCursor *c, char ch) {
  npy_skip_space(c);
  if (c->p < c->end && *c->p == ch) {
    c->p++;
    return 1;
  }
  return 0;
}

/* A quoted Python string without escapes, into buf. */
static int npy_string(NpyCursor *c, char *buf, size_t size) {
  npy_skip_space(c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return 0;
  char q = *c->p++;
  size_t n = 0;
  while (c->p < c->end && *c->p != q) {
    if (*c->p == '\\' || n + 1 >= size)
      return 0;
    buf[n++] = *c->p++;
  }
  if (c->p >= c->end)
    return 0;
  c->p++;
  buf[n] = '\0';
  return 1;
}

static int npy_word(NpyCursor *c, const char *w) {
  size_t n = strlen(w);
  npy_skip_space(c);
  if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
    c->p += n;
    return 1;
  }
  return 0;
}

/* "(2, 3)", "(3,)" or "()"; dims are non-negative, an 'L' suffix is allowed
 * (Python 2 longs). */
static int npy_shape(NpyCursor *c, McTensor *t, const char *path, McError *e) {
  if (!npy_accept(c, '('))
    return mc_fail(e, MC_ERR_FORMAT,
                   "%s: bad .npy header: shape is not a tuple", path);
  t->rank = 0;
  while (!npy_accept(c, ')')) {
    npy_skip_space(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
      return mc_fail(e, MC_ERR_FORMAT,
                     "%s: bad .npy header: shape entries must be "
                     "non-negative integers",
                     path);
    int64_t d = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
      int digit = *c->p++ - '0';
      if (d > (INT64_MAX - digit) / 10)
        return mc_fail(e, MC_ERR_SHAPE, "%s: .npy shape dimension overflows",
                       path);
      d = d * 10 + digit;
    }
    if (c->p < c->end && *c->p == 'L')
      c->p++;
    if (t->rank == MC_MAX_RANK)
      return mc_fail(e, MC_ERR_SHAPE, "%s: .npy rank exceeds %d", path,
                     MC_MAX_RANK);
    t->shape[t->rank++] = d;
    if (!npy_accept(c, ',')) {
      if (!npy_accept(c, ')'))
        return mc_fail(e, MC_ERR_FORMAT, "%s: bad .npy header: bad shape tuple",
                       path);
      break;
    }
  }
  return MC_OK;
}

static int npy_descr(const char *d, McDType *t, const char *path, McError *e) {
  static const struct {
    const char *descr;
    McDType dtype;
  } table[] = {{"<f4", MC_F32}, {"<f8", MC_F64},  {"<i4", MC_I32},
               {"<i8", MC_I64}, {"|b1", MC_BOOL}, {"<f2", MC_F16}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(d, table[i].descr) == 0) {
      *t = table[i].dtype;
      return MC_OK;
    }
  if (d[0] == '>')
    return mc_fail(e, MC_ERR_DTYPE,
                   "%s: big-endian .npy data ('%s') is not supported", path, d);
  return mc_fail(e, MC_ERR_DTYPE,
                 "%s: unsupported .npy dtype '%s' (supported: <f2 <f4 <f8 <i4 "
                 "<i8 |b1)",
                 path, d);
}

static int npy_parse_header(const char *h, size_t len, McTensor *t,
                            const char *path, McError *e) {
  NpyCursor c = {h, h + len};
  int have_descr = 0, have_order = 0, have_shape = 0, rc;
  char key[32], descr[32];
  if (!npy_accept(&c, '{'))
    return mc_fail(e, MC_ERR_FORMAT, "%s: bad .npy header: not a dict", path);
  while (!npy_accept(&c, '}')) {
    if (!npy_string(&c, key, sizeof key) || !npy_accept(&c, ':'))
      return mc_fail(e, MC_ERR_FORMAT,
                     "%s: bad .npy header: expected 'key':", path);
    if (strcmp(key, "descr") == 0 && !have_descr++) {
      if (!npy_string(&c, descr, sizeof descr))
        return mc_fail(e, MC_ERR_FORMAT,
                       "%s: bad .npy header: descr is not a simple string",
                       path);
      if ((rc = npy_descr(descr, &t->dtype, path, e)))
        return rc;
    } else if (strcmp(key, "fortran_order") == 0 && !have_order++) {
      if (npy_word(&c, "True"))
        return mc_fail(e, MC_ERR_FORMAT,
                       "%s: Fortran-order .npy arrays are not supported; save "
                       "a C-contiguous array",
                       path);
      if (!npy_word(&c, "False"))
        return mc_fail(e, MC_ERR_FORMAT,
                       "%s: bad .npy header: fortran_order must be True or "
                       "False",
                       path);
    } else if (strcmp(key, "shape") == 0 && !have_shape++) {
      if ((rc = npy_shape(&c, t, path, e)))
        return rc;
    } else {
      return mc_fail(e, MC_ERR_FORMAT,
                     "%s: bad .npy header: unexpected or repeated key '%s'",
                     path, key);
    }
    if (!npy_accept(&c, ',')) {
      if (!npy_accept(&c, '}'))
        return mc_fail(e, MC_ERR_FORMAT, "%s: bad .npy header: expected , or }",
                       path);
      break;
    }
  }
  npy_skip_space(&c);
  if (c.p != c.end)
    return mc_fail(e, MC_ERR_FORMAT, "%s: bad .npy header: junk after dict",
                   path);
  if (!have_descr || !have_order || !have_shape)
    return mc_fail(e, MC_ERR_FORMAT,
                   "%s: bad .npy header: needs descr, fortran_order and shape",
                   path);
  return MC_OK;
}

/* Reads exactly n bytes; a short read is reported as truncation. */
static int npy_read_full(int fd, void *buf, size_t n, const char *path,
                         McError *e) {
  unsigned char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return mc_fail(e, MC_ERR_IO, "%s: read failed: %s", path,
                     strerror(errno));
    if (r == 0)
      return mc_fail(e, MC_ERR_FORMAT, "%s: file is truncated", path);
    p += r;
    n -= (size_t)r;
  }
  return MC_OK;
}

static int npy_read_fd(int fd, const char *path, McTensor *out, McError *e) {
  struct stat sb;
  unsigned char pre[12];
  McTensor t;
  size_t nbytes;
  int rc;
  memset(&t, 0, sizeof t);
  if (fstat(fd, &sb) != 0)
    return mc_fail(e, MC_ERR_IO, "%s: %s", path, strerror(errno));
  if (!S_ISREG(sb.st_mode))
    return mc_fail(e, MC_ERR_IO, "%s: not a regular file", path);
  uint64_t fsize = (uint64_t)sb.st_size;
  if (fsize < 10)
    return mc_fail(e, MC_ERR_FORMAT, "%s: not a .npy file (too short)", path);
  if ((rc = npy_read_full(fd, pre, 10, path, e)))
    return rc;
  if (memcmp(pre, "\x93NUMPY", 6) != 0)
    return mc_fail(e, MC_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
  uint64_t hlen, off;
  if (pre[6] == 1) {
    hlen = pre[8] | (uint64_t)pre[9] << 8;
    off = 10;
  } else if (pre[6] == 2 || pre[6] == 3) {
    if (fsize < 12)
      return mc_fail(e, MC_ERR_FORMAT, "%s: .npy file is truncated", path);
    if ((rc = npy_read_full(fd, pre + 10, 2, path, e)))
      return rc;
    hlen = pre[8] | (uint64_t)pre[9] << 8 | (uint64_t)pre[10] << 16 |
           (uint64_t)pre[11] << 24;
    off = 12;
  } else {
    return mc_fail(e, MC_ERR_FORMAT, "%s: unsupported .npy version %d.%d", path,
                   pre[6], pre[7]);
  }
  if (hlen > fsize - off)
    return mc_fail(e, MC_ERR_FORMAT,
                   "%s: .npy header length %" PRIu64 " runs past the end of "
                   "the file",
                   path, hlen);
  char *h = malloc(hlen + 1);
  if (!h)
    return mc_fail(e, MC_ERR_NOMEM, "%s: out of memory", path);
  rc = npy_read_full(fd, h, hlen, path, e);
  if (!rc) {
    h[hlen] = '\0';
    rc = npy_parse_header(h, hlen, &t, path, e);
  }
  free(h);
  if (rc)
    return rc;
  if ((rc = mc_tensor_nbytes(&t, &nbytes, e)))
    return mc_fail(e, rc, "%s: .npy shape is too large", path);
  uint64_t avail = fsize - off - hlen;
  if (avail < nbytes)
    return mc_fail(e, MC_ERR_FORMAT,
                   "%s: .npy data is truncated: %zu bytes expected, %" PRIu64
                   " present",
                   path, nbytes, avail);
  if (avail > nbytes)
    return mc_fail(e, MC_ERR_FORMAT,
                   "%s: .npy file has %" PRIu64 " bytes of trailing data", path,
                   avail - nbytes);
  if ((rc = mc_tensor_alloc(&t, t.dtype, t.rank, t.shape, e)))
    return rc;
  if ((rc = npy_read_full(fd, t.data, nbytes, path, e))) {
    mc_tensor_free(&t);
    return rc;
  }
  size_t size = mc_dtype_size(t.dtype), n = nbytes / size;
  if (!npy_little_endian() && size > 1)
    npy_swap_bytes(t.data, n, size);
  if (t.dtype == MC_BOOL)
    for (size_t i = 0; i < n; i++)
      if (((uint8_t *)t.data)[i] > 1) {
        int v = ((uint8_t *)t.data)[i];
        mc_tensor_free(&t);
        return mc_fail(e, MC_ERR_FORMAT,
                       "%s: bool value %d at index %zu is not 0 or 1", path, v,
                       i);
      }
  *out = t;
  return MC_OK;
}

int mc_npy_read(const char *path, McTensor *out, McError *e) {
  if (!path || !out)
    return mc_fail(e, MC_ERR_USAGE, "mc_npy_read: NULL argument");
  int fd = open(path, O_RDONLY);
  if (fd < 0)
    return mc_fail(e, MC_ERR_IO, "cannot open %s: %s", path, strerror(errno));
  int rc = npy_read_fd(fd, path, out, e);
  close(fd);
  return rc;
}

static int npy_header(const McTensor *t, char *buf, size_t size, size_t *len,
                      McError *e) {
  const char *descr = NULL;
  switch (t->dtype) {
  case MC_F32:
    descr = "<f4";
    break;
  case MC_F64:
    descr = "<f8";
    break;
  case MC_I32:
    descr = "<i4";
    break;
  case MC_I64:
    descr = "<i8";
    break;
  case MC_BOOL:
    descr = "|b1";
    break;
  case MC_F16:
    descr = "<f2";
    break;
  case MC_BF16:
  case MC_DTYPE_COUNT:
    break;
  }
  if (!descr)
    return mc_fail(e, MC_ERR_DTYPE, ".npy cannot hold %s data",
                   mc_dtype_name(t->dtype));
  /* magic(6) version(2) length(2), then the dict */
  int n = snprintf(buf + 10, size - 10,
                   "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < t->rank; i++)
    n += snprintf(buf + 10 + n, size - 10 - (size_t)n, "%s%" PRId64,
                  i ? ", " : "", t->shape[i]);
  n += snprintf(buf + 10 + n, size - 10 - (size_t)n, "%s), }",
                t->rank == 1 ? "," : "");
  size_t total = 10 + (size_t)n + 1; /* + '\n'; pad to a multiple of 64 */
  total = (total + 63) / 64 * 64;
  memset(buf + 10 + n, ' ', total - 10 - (size_t)n);
  buf[total - 1] = '\n';
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (char)((total - 10) & 0xff);
  buf[9] = (char)((total - 10) >> 8);
  *len = total;
  return MC_OK;
}

int mc_npy_write_direct(const char *path, const McTensor *t, McError *e) {
  char header[512];
  size_t hlen = 0, nbytes = 0;
  int rc;
  if (!path || !t)
    return mc_fail(e, MC_ERR_USAGE, "mc_npy_write: NULL argument");
  if ((rc = mc_tensor_nbytes(t, &nbytes, e)) ||
      (rc = npy_header(t, header, sizeof header, &hlen, e)))
    return rc;
  if (!t->data && nbytes > 0)
    return mc_fail(e, MC_ERR_USAGE, "%s: tensor has no data", path);
  errno = 0;
  FILE *f = fopen(path, "wb");
  if (!f)
    return mc_fail(e, MC_ERR_IO, "cannot create %s: %s", path, strerror(errno));
  int ok = fwrite(header, 1, hlen, f) == hlen &&
           mc_io_write_elements(f, t->dtype, t->data, nbytes);
  return mc_io_close(f, path, ok, e);
}

int mc_io_write_elements(FILE *f, McDType t, const void *data, size_t nbytes) {
  size_t size = mc_dtype_size(t), chunk = 65536 / size * size;
  unsigned char buf[65536];
  const unsigned char *src = data;
  int ok = 1;
  for (size_t done = 0; ok && done < nbytes; done += chunk) {
    size_t len = nbytes - done < chunk ? nbytes - done : chunk;
    memcpy(buf, src + done, len);
    if (t == MC_BOOL)
      for (size_t i = 0; i < len; i++)
        buf[i] = buf[i] != 0;
    if (!npy_little_endian() && size > 1)
      npy_swap_bytes(buf, len / size, size);
    ok = fwrite(buf, 1, len, f) == len;
  }
  return ok;
}

int mc_io_close(FILE *f, const char *path, int ok, McError *e) {
  ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
  int err = ok ? 0 : errno;
  ok = (fclose(f) == 0) && ok;
  if (!ok) {
    unlink(path);
    return mc_fail(e, MC_ERR_IO, "cannot write %s: %s", path,
                   strerror(err ? err : errno));
  }
  return MC_OK;
}

int mc_npy_write(const char *path, const McTensor *t, McError *e) {
  if (!path)
    return mc_fail(e, MC_ERR_USAGE, "mc_npy_write: NULL path");
  size_t len = strlen(path) + 32;
  char *tmp = malloc(len);
  if (!tmp)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
  int rc = mc_npy_write_direct(tmp, t, e);
  if (!rc && rename(tmp, path) != 0) {
    rc = mc_fail(e, MC_ERR_IO, "cannot rename %s to %s: %s", tmp, path,
                 strerror(errno));
    unlink(tmp);
  }
  free(tmp);
  return rc;
}
