/* bpe_tool: GPT-2's BPE tokenizer (runtime/mc_bpe.h) on stdin and stdout,
 * for tests/e2e/test_bpe.py.
 *
 *   bpe_tool encode ENCODER.json VOCAB.bpe [--whole] < text > ids
 *   bpe_tool decode ENCODER.json VOCAB.bpe [--whole] < ids > text
 *
 * By lines (the default), every input line (without its '\n') is one text or
 * one list of ids, and gives one output line. With --whole, all of stdin is
 * one text (encode: one line of ids) or one list of ids (decode: the bytes,
 * no newline added). Ids are decimal, separated by white space.
 * Exit status: 0, or 1 with "bpe_tool: error: ..." on stderr, 2 for usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc_bpe.h"

static int read_stdin(char **data, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  char *p = malloc(cap);
  if (!p)
    return 0;
  for (;;) {
    if (n == cap) {
      char *q = realloc(p, cap *= 2);
      if (!q) {
        free(p);
        return 0;
      }
      p = q;
    }
    size_t got = fread(p + n, 1, cap - n, stdin);
    n += got;
    if (got == 0)
      break;
  }
  if (ferror(stdin)) {
    free(p);
    return 0;
  }
  *data = p;
  *len = n;
  return 1;
}

static int encode_text(const McBpe *bpe, const char *text, size_t len,
                       McError *e) {
  int32_t *ids;
  size_t n;
  int rc = mc_bpe_encode(bpe, text, len, &ids, &n, e);
  if (rc != MC_OK)
    return rc;
  for (size_t i = 0; i < n; i++)
    printf(i ? " %ld" : "%ld", (long)ids[i]);
  putchar('\n');
  free(ids);
  return MC_OK;
}

/* Parses the ids of text[0..len) and writes their bytes to stdout. */
static int decode_text(const McBpe *bpe, const char *text, size_t len,
                       McError *e) {
  int32_t *ids = malloc((len / 2 + 1) * sizeof *ids);
  size_t n = 0;
  if (!ids)
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  char *copy = malloc(len + 1);
  if (!copy) {
    free(ids);
    return mc_fail(e, MC_ERR_NOMEM, "out of memory");
  }
  memcpy(copy, text, len);
  copy[len] = 0;
  int rc = MC_OK;
  for (char *p = copy;;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
      p++;
    if (!*p)
      break;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
        (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) {
      rc = mc_fail(e, MC_ERR_USAGE, "bad token id near '%.20s'", p);
      break;
    }
    ids[n++] = (int32_t)v;
    p = end;
  }
  char *out = NULL;
  size_t olen = 0;
  if (rc == MC_OK)
    rc = mc_bpe_decode(bpe, ids, n, &out, &olen, e);
  if (rc == MC_OK)
    fwrite(out, 1, olen, stdout);
  free(out);
  free(copy);
  free(ids);
  return rc;
}

int main(int argc, char **argv) {
  int whole = argc == 5 && strcmp(argv[4], "--whole") == 0;
  if ((argc != 4 && !whole) ||
      (strcmp(argv[1], "encode") != 0 && strcmp(argv[1], "decode") != 0)) {
    fprintf(stderr, "usage: bpe_tool encode|decode ENCODER.json VOCAB.bpe "
                    "[--whole] < in > out\n");
    return 2;
  }
  int encode = strcmp(argv[1], "encode") == 0;
  McError e = {0};
  McBpe *bpe = NULL;
  char *data = NULL;
  size_t len = 0;
  int rc = mc_bpe_load(argv[2], argv[3], &bpe, &e);
  if (rc == MC_OK && !read_stdin(&data, &len))
    rc = mc_fail(&e, MC_ERR_IO, "cannot read stdin");
  if (rc == MC_OK && whole) {
    rc = encode ? encode_text(bpe, data, len, &e)
                : decode_text(bpe, data, len, &e);
  } else if (rc == MC_OK) {
    for (size_t i = 0; i < len && rc == MC_OK;) {
      const char *nl = memchr(data + i, '\n', len - i);
      size_t end = nl ? (size_t)(nl - data) : len;
      rc = encode ? encode_text(bpe, data + i, end - i, &e)
                  : decode_text(bpe, data + i, end - i, &e);
      if (rc == MC_OK && !encode)
        putchar('\n');
      i = end + 1;
    }
  }
  free(data);
  mc_bpe_free(bpe);
  if (fflush(stdout) != 0 && rc == MC_OK)
    rc = mc_fail(&e, MC_ERR_IO, "cannot write stdout");
  if (rc != MC_OK) {
    fprintf(stderr, "bpe_tool: error: %s\n", e.msg);
    return 1;
  }
  return 0;
}
