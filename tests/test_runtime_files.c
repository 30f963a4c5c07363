/* safetensors reading (valid files and every malformation we know of) and
 * model weight loading (name resolution, shape checks, f16/bf16/f64). */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc_runtime.h"

static char tmpdir[64];
static char st_path[128];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mc_st_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
  snprintf(st_path, sizeof st_path, "%s/w.safetensors", tmpdir);
}

static void remove_tmpdir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

/* A safetensors file: u64 LE header length, the header padded with spaces to
 * `align` bytes (8 as the reference writer does; other values to test
 * unaligned data), then the data section. Returns the file size. */
static size_t write_st_aligned(const char *header, const void *data, size_t n,
                               size_t align) {
  size_t len = strlen(header), hlen = (len + align - 1) / align * align;
  size_t total = 8 + hlen + n;
  unsigned char *buf = malloc(total);
  cr_assert_not_null(buf);
  for (int i = 0; i < 8; i++)
    buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
  memcpy(buf + 8, header, len);
  memset(buf + 8 + len, ' ', hlen - len);
  if (n)
    memcpy(buf + 8 + hlen, data, n);
  write_bytes(st_path, buf, total);
  free(buf);
  return total;
}

static void write_st(const char *header, const void *data, size_t n) {
  write_st_aligned(header, data, n, 8);
}

/* Opens st_path, expecting code and a message containing needle. */
static void st_expect(int code, const char *needle) {
  McSafetensors *st = (McSafetensors *)1;
  McError e = {0, ""};
  int rc = mc_st_open(st_path, &st, &e);
  cr_assert_eq(rc, code, "rc %d: %s", rc, e.msg);
  if (code) {
    cr_assert_null(st);
    cr_assert(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
  }
  mc_st_close(st);
}

#define ENTRY(name, dtype, shape, offs)                                        \
  "\"" name "\": {\"dtype\": \"" dtype "\", \"shape\": " shape                 \
  ", \"data_offsets\": " offs "}"

/* "{e1, e2, ...}" from n entries (in a static buffer). */
static const char *entries(int n, ...) {
  static char buf[4096];
  va_list ap;
  size_t len = 1;
  buf[0] = '{';
  va_start(ap, n);
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? ", " : "",
                            va_arg(ap, const char *));
  va_end(ap);
  snprintf(buf + len, sizeof buf - len, "}");
  return buf;
}

/* ---- valid files -------------------------------------------------------- */

Test(safetensors, reads_a_valid_file, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  unsigned char data[64] = {0};
  float a[6] = {1, 2, 3, 4, 5, 6};
  int64_t b[2] = {-7, 1LL << 40};
  memcpy(data, a, 24);
  memcpy(data + 24, b, 16);
  data[40] = 1;
  write_st("{\"__metadata__\": {\"format\": \"pt\"}, "
           "\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], "
           "\"data_offsets\": [0, 24]}, "
           "\"b\": {\"shape\": [2], \"data_offsets\": [24, 40], \"dtype\": "
           "\"I64\", \"extra\": [1, {\"x\": null}]}, "
           "\"c\\u00e9\": {\"dtype\": \"BOOL\", \"shape\": [3], "
           "\"data_offsets\": [40, 43]}, "
           "\"empty\": {\"dtype\": \"F16\", \"shape\": [0, 4], "
           "\"data_offsets\": [43, 43]}, "
           "\"s\": {\"dtype\": \"F64\", \"shape\": [], "
           "\"data_offsets\": [48, 56]}}",
           data, 64);
  McSafetensors *st;
  McError e;
  cr_assert_eq(mc_st_open(st_path, &st, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(mc_st_count(st), 5);
  const McStTensor *t = mc_st_get(st, 0);
  cr_assert_str_eq(t->name, "a");
  cr_assert_eq(t->dtype, MC_F32);
  cr_assert_eq(t->rank, 2);
  cr_assert_eq(t->shape[1], 3);
  cr_assert_eq(t->nbytes, 24);
  cr_assert_eq(memcmp(t->data, a, 24), 0);
  t = mc_st_find(st, "b", NULL);
  cr_assert_eq(t->dtype, MC_I64);
  cr_assert_eq(memcmp(t->data, b, 16), 0);
  t = mc_st_find(st, "c\xc3\xa9", NULL); /* \u00e9 decoded to UTF-8 */
  cr_assert_not_null(t);
  cr_assert_eq(t->dtype, MC_BOOL);
  t = mc_st_find(st, "empty", NULL);
  cr_assert_eq(t->nbytes, 0);
  t = mc_st_find(st, "s", NULL);
  cr_assert_eq(t->rank, 0);
  cr_assert_eq(t->nbytes, 8);
  cr_assert_null(mc_st_get(st, 5));
  cr_assert_null(mc_st_get(st, -1));
  mc_st_close(st);
}

Test(safetensors, empty_header_object, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  write_st("{}", NULL, 0);
  st_expect(MC_OK, NULL);
  write_st(" { \"__metadata__\" : { } } ", NULL, 0);
  st_expect(MC_OK, NULL);
}

Test(safetensors, name_resolution, .init = make_tmpdir, .fini = remove_tmpdir) {
  float z[4] = {0};
  write_st("{\"transformer.h.0.ln_1.weight\": {\"dtype\": \"F32\", \"shape\": "
           "[1], \"data_offsets\": [0, 4]}, "
           "\"a.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
           "[4, 8]}, "
           "\"b.w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
           "[8, 12]}, "
           "\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": "
           "[12, 16]}, "
           "\"x.v\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": "
           "[16, 16]}, "
           "\"y.v\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": "
           "[16, 16]}}",
           z, 16);
  McSafetensors *st;
  McError e;
  int amb = 7;
  cr_assert_eq(mc_st_open(st_path, &st, &e), MC_OK, "%s", e.msg);
  const McStTensor *t = mc_st_find(st, "h.0.ln_1.weight", &amb);
  cr_assert_not_null(t);
  cr_assert_str_eq(t->name, "transformer.h.0.ln_1.weight");
  cr_assert_eq(amb, 0);
  cr_assert_not_null(mc_st_find(st, "transformer.h.0.ln_1.weight", &amb));
  cr_assert_null(mc_st_find(st, "0.ln_1.weigh", &amb)); /* not at a dot */
  cr_assert_null(mc_st_find(st, "ln_1.weight.x", &amb));
  cr_assert_eq(amb, 0);
  t = mc_st_find(st, "w", &amb); /* exact beats the suffix matches */
  cr_assert_str_eq(t->name, "w");
  cr_assert_null(mc_st_find(st, "v", &amb));
  cr_assert_eq(amb, 1);
  cr_assert_null(mc_st_find(st, "v", NULL));
  cr_assert_null(mc_st_find(NULL, "v", &amb));
  mc_st_close(st);
}

Test(safetensors, decodes_escaped_names, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  write_st("{" ENTRY("\\ud83d\\ude00\\n\\\"x\\/", "F32", "[0]", "[0, 0]") "}",
           NULL, 0);
  McSafetensors *st;
  McError e;
  cr_assert_eq(mc_st_open(st_path, &st, &e), MC_OK, "%s", e.msg);
  cr_assert_str_eq(mc_st_get(st, 0)->name, "\xf0\x9f\x98\x80\n\"x/");
  mc_st_close(st);
}

/* ---- malformed files ---------------------------------------------------- */

Test(safetensors, rejects_truncated_and_bad_lengths, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  write_bytes(st_path, "", 0);
  st_expect(MC_ERR_FORMAT, "not a safetensors file");
  write_bytes(st_path, "\x02\0\0\0", 4);
  st_expect(MC_ERR_FORMAT, "not a safetensors file");
  write_bytes(st_path, "\x10\0\0\0\0\0\0\0{}", 10);
  st_expect(MC_ERR_FORMAT, "runs past the end");
  write_bytes(st_path, "\xff\xff\xff\xff\xff\xff\xff\xff{}", 10);
  st_expect(MC_ERR_FORMAT, "runs past the end");
  write_bytes(st_path, "\0\0\0\0\0\0\0\0", 8);
  st_expect(MC_ERR_FORMAT, "not a JSON object");
  float z[2] = {0};
  write_st("{" ENTRY("a", "F32", "[2]", "[0, 8]") "}", z, 4); /* data cut */
  st_expect(MC_ERR_FORMAT, "outside the data section");
  McSafetensors *st;
  McError e;
  cr_assert_eq(mc_st_open("/nonexistent/x.safetensors", &st, &e), MC_ERR_IO);
  cr_assert_eq(mc_st_open(tmpdir, &st, &e), MC_ERR_IO); /* a directory */
}

Test(safetensors, rejects_bad_json, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  static const struct {
    const char *header, *needle;
  } cases[] = {
      {"[]", "not a JSON object"},
      {"\"a\"", "not a JSON object"},
      {"{", "expected a string"},
      {"{\"a\" {}}", "expected :"},
      {"{\"a\": {\"dtype\": \"F32\",}}", "expected a string"},
      {"{" ENTRY("a", "F32", "[0]", "[0, 0]") ", }", "expected a string"},
      {"{" ENTRY("a", "F32", "[0]", "[0, 0]") "} x", "junk after"},
      {"{\"a", "unterminated string"},
      {"{\"a\\q\": {}}", "bad escape"},
      {"{\"a\\u12\": {}}", "bad \\u escape"},
      {"{\"a\\ud800\": {}}", "bad \\u escape"},
      {"{\"a\\u0000b\": {}}", "NUL"},
      {"{\"a\xff\": {}}", "invalid UTF-8"},
      {"{\"a\xc0\x80\": {}}", "invalid UTF-8"},
      {"{\"a\tb\": {}}", "control character"},
      {"{\"__metadata__\": {\"x\": 01}}", "leading zero"},
      {"{\"__metadata__\": {\"x\": 1.}}", "bad number"},
      {"{\"__metadata__\": {\"x\": -}}", "bad number"},
      {"{\"__metadata__\": {\"x\": tru}}", "unexpected token"},
      {"{\"__metadata__\": {\"x\": [1 2]}}", "expected , or ]"},
      {"{\"__metadata__\": \"x\"}", "__metadata__ is not an object"},
      {"{\"a\": 5}", "not a JSON object"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", "lacks data_offsets"},
      {"{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", "lacks a dtype"},
      {"{\"a\": {\"dtype\": \"F32\", \"dtype\": \"F32\"}}", "repeated key"},
      {"{\"a\": {\"dtype\": 3}}", "expected a string"},
      {"{\"a\": {\"dtype\": \"F32\", \"shape\": 1}}", "not an array"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_st(cases[i].header, NULL, 0);
    st_expect(MC_ERR_FORMAT, cases[i].needle);
  }
  char deep[2100] = "{\"__metadata__\": {\"x\": ";
  size_t len = strlen(deep);
  for (int i = 0; i < 1000; i++)
    deep[len++] = '[';
  deep[len] = '\0';
  write_st(deep, NULL, 0);
  st_expect(MC_ERR_FORMAT, "nesting too deep");
}

Test(safetensors, rejects_bad_entries, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  unsigned char z[32] = {0};
  static const struct {
    const char *header, *needle;
    int code;
  } cases[] = {
      {"{" ENTRY("a", "F33", "[1]", "[0, 4]") "}", "unknown dtype 'F33'",
       MC_ERR_FORMAT},
      {"{" ENTRY("a", "U8", "[4]", "[0, 4]") "}", "unsupported dtype 'U8'",
       MC_ERR_DTYPE},
      {"{" ENTRY("a", "F32", "[1]", "[0, 40]") "}", "outside the data section",
       MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[1]", "[8, 4]") "}", "outside the data section",
       MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[1]", "[0, 8]") "}", "span 8 bytes",
       MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[2]", "[0, 8]") ", " ENTRY("b", "F32", "[2]",
                                                         "[4, 12]") "}",
       "overlap", MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[4]", "[0, 16]") ", " ENTRY("b", "F32", "[1]",
                                                          "[4, 8]") "}",
       "overlap", MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[1]", "[0, 4]") ", " ENTRY("a", "F32", "[1]",
                                                         "[4, 8]") "}",
       "appears twice", MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[4294967296, 4294967296, 4294967296]",
                 "[0, 4]") "}",
       "too large", MC_ERR_SHAPE},
      {"{" ENTRY("a", "F32", "[4611686018427387904]", "[0, 4]") "}",
       "too large", MC_ERR_SHAPE},
      {"{" ENTRY("a", "F32", "[99999999999999999999]", "[0, 4]") "}",
       "non-negative integers", MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[-1]", "[0, 4]") "}", "non-negative integers",
       MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[1.0]", "[0, 4]") "}", "non-negative integers",
       MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[1e0]", "[0, 4]") "}", "non-negative integers",
       MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[1,1,1,1,1,1,1,1,1]", "[0, 4]") "}",
       "more than 8", MC_ERR_SHAPE},
      {"{" ENTRY("a", "F32", "[1]", "[0, 4, 8]") "}", "more than 2",
       MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[1]", "[0]") "}", "[begin, end]", MC_ERR_FORMAT},
      {"{" ENTRY("a", "F32", "[1]", "[\"0\", 4]") "}", "bad number",
       MC_ERR_FORMAT},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_st(cases[i].header, z, 32);
    st_expect(cases[i].code, cases[i].needle);
  }
  /* touching and zero-size tensors are fine */
  write_st(entries(3, ENTRY("a", "F32", "[2]", "[0, 8]"),
                   ENTRY("e", "F32", "[0]", "[4, 4]"),
                   ENTRY("b", "F32", "[2]", "[8, 16]")),
           z, 32);
  st_expect(MC_OK, NULL);
}

/* Every truncation and every single-byte corruption of a valid file either
 * opens or fails cleanly (ASan/UBSan watch the rest). */
Test(safetensors, survives_truncation_and_corruption, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  const char *header = entries(3, ENTRY("a", "F32", "[2, 2]", "[0, 16]"),
                               ENTRY("b", "BF16", "[3]", "[16, 22]"),
                               "\"__metadata__\": {\"k\": \"v\"}");
  unsigned char z[24] = {1, 2, 3};
  size_t total = write_st_aligned(header, z, 24, 8);
  FILE *f = fopen(st_path, "rb");
  unsigned char *orig = malloc(total), *buf = malloc(total);
  cr_assert_eq(fread(orig, 1, total, f), total);
  fclose(f);
  for (size_t cut = 0; cut < total; cut++) {
    write_bytes(st_path, orig, cut);
    McSafetensors *st = NULL;
    McError e;
    int rc = mc_st_open(st_path, &st, &e);
    cr_assert(rc != MC_OK || cut >= total - 2, "cut %zu opened", cut);
    mc_st_close(st);
  }
  static const unsigned char junk[] = {0, '"', '{', ']', '9', 0xff, ' ', '\\'};
  for (size_t i = 0; i < total - 24; i++)
    for (size_t k = 0; k < sizeof junk; k++) {
      memcpy(buf, orig, total);
      buf[i] = junk[k];
      write_bytes(st_path, buf, total);
      McSafetensors *st = NULL;
      McError e;
      if (mc_st_open(st_path, &st, &e) == MC_OK) {
        for (int t = 0; t < mc_st_count(st); t++)
          cr_assert_leq(mc_st_get(st, t)->nbytes, 24);
        mc_st_close(st);
      }
    }
  free(orig);
  free(buf);
}

/* ---- weights ------------------------------------------------------------ */

static const McWeightSpec *spec1(const char *name, int rank, int64_t d0,
                                 int64_t d1) {
  static McWeightSpec s;
  memset(&s, 0, sizeof s);
  s.name = name;
  s.rank = rank;
  s.shape[0] = d0;
  s.shape[1] = d1;
  return &s;
}

static int load_expect(const McWeightSpec *specs, int n, int code,
                       const char *needle, McWeights **out) {
  McError e = {0, ""};
  McWeights *w = NULL;
  int rc = mc_weights_load(st_path, specs, n, &w, &e);
  cr_assert_eq(rc, code, "rc %d: %s", rc, e.msg);
  if (needle)
    cr_assert(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
  if (out)
    *out = w;
  else
    mc_weights_free(w);
  return rc;
}

/* Weights kept transposed and/or in 16 bits: converted once at load from
 * F32 (rounded to nearest even), used in place when the file already holds
 * the store's 16-bit format untransposed. */
Test(weights, kept_transposed_and_in_16_bits, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  unsigned char data[64] = {0};
  float m[6] = {1, 2, 3, 4, 5, 1.00048828125f}; /* [2, 3]; the last a tie */
  uint16_t h[2] = {0x3c00, 0xc100};             /* f16 1, -2.5 */
  memcpy(data, m, 24);
  memcpy(data + 24, h, 4);
  write_st(entries(2, ENTRY("m", "F32", "[2, 3]", "[0, 24]"),
                   ENTRY("h", "F16", "[2]", "[24, 28]")),
           data, 28);
  McWeightSpec specs[5] = {
      {.name = "m", .rank = 2, .shape = {2, 3}, .transposed = 1},
      {.name = "m", .rank = 2, .shape = {2, 3}, .store = MC_F16},
      {.name = "m",
       .rank = 2,
       .shape = {2, 3},
       .store = MC_BF16,
       .transposed = 1},
      {.name = "h", .rank = 1, .shape = {2}, .store = MC_F16},
      {.name = "h", .rank = 1, .shape = {2}, .store = MC_BF16}};
  McWeights *w;
  load_expect(specs, 5, MC_OK, NULL, &w);
  const float *t = mc_weights_get(w, 0);
  const float want_t[6] = {1, 4, 2, 5, 3, 1.00048828125f};
  for (int i = 0; i < 6; i++)
    cr_assert_eq(t[i], want_t[i], "transposed [%d]", i);
  const uint16_t *f16 = mc_weights_data(w, 1);
  const uint16_t want16[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x3c00};
  for (int i = 0; i < 6; i++)
    cr_assert_eq(f16[i], want16[i], "f16 [%d]: %#x", i, f16[i]);
  const uint16_t *bf = mc_weights_data(w, 2);
  const uint16_t want_bf[6] = {0x3f80, 0x4080, 0x4000, 0x40a0, 0x4040, 0x3f80};
  for (int i = 0; i < 6; i++)
    cr_assert_eq(bf[i], want_bf[i], "bf16 transposed [%d]: %#x", i, bf[i]);
  const uint16_t *hh = mc_weights_data(w, 3);
  cr_assert(hh[0] == 0x3c00 && hh[1] == 0xc100);
  const uint16_t *hb = mc_weights_data(w, 4); /* f16 file, bf16 store */
  cr_assert(hb[0] == 0x3f80 && hb[1] == 0xc020);
  mc_weights_free(w);
}

/* Weights kept packed for the GEMM (mc_gemm_pack_b's panels of the matrix
 * or of its transpose), from F32 and from F16 data; a GEMM reading them
 * gives the bits of one reading the file's matrix. */
Test(weights, kept_packed_in_gemm_panels, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  enum { R = 5, C = 37 }; /* C crosses a panel */
  static unsigned char data[R * C * 4 + R * C * 2];
  float m[R * C];
  uint16_t h[R * C];
  for (int i = 0; i < R * C; i++) {
    m[i] = (float)(i % 7) - 2.5f;
    h[i] = (uint16_t)(0x3c00 + i % 5); /* f16 near 1 */
  }
  memcpy(data, m, sizeof m);
  memcpy(data + sizeof m, h, sizeof h);
  write_st(entries(2, ENTRY("m", "F32", "[5, 37]", "[0, 740]"),
                   ENTRY("h", "F16", "[5, 37]", "[740, 1110]")),
           data, sizeof data);
  McWeightSpec specs[3] = {
      {.name = "m", .rank = 2, .shape = {R, C}, .packed = 1},
      {.name = "m", .rank = 2, .shape = {R, C}, .transposed = 1, .packed = 1},
      {.name = "h", .rank = 2, .shape = {R, C}, .packed = 1}};
  McWeights *w;
  load_expect(specs, 3, MC_OK, NULL, &w);
  float hf[R * C];
  mc_f16_to_f32_n(h, hf, R * C);
  for (int s = 0; s < 3; s++) {
    const float *p = mc_weights_get(w, s), *src = s == 2 ? hf : m;
    int tr = s == 1;
    int64_t K = tr ? C : R, N = tr ? R : C;
    for (int64_t j = 0; j < (N + 31) / 32 * 32; j++)
      for (int64_t k = 0; k < K; k++) {
        float want = j >= N ? 0.0f : tr ? src[j * C + k] : src[k * C + j];
        cr_assert_eq(p[j / 32 * K * 32 + k * 32 + j % 32], want,
                     "spec %d: B[%lld][%lld]", s, (long long)k, (long long)j);
      }
    float a[3 * 37], y[3 * 37], ref[3 * 37];
    for (int i = 0; i < 3 * K; i++)
      a[i] = (float)i * 0.25f - 3.0f;
    mc_gemm_f32_packed(3, N, K, a, K, 1, p, y, N, 0);
    mc_gemm_f32(3, N, K, a, K, 1, src, tr ? 1 : C, tr ? C : 1, ref, N, 0);
    cr_assert(memcmp(y, ref, sizeof(float) * (size_t)(3 * N)) == 0, "spec %d",
              s);
  }
  mc_weights_free(w);
}

Test(weights, resolves_prefixed_names_and_converts, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  unsigned char data[64] = {0};
  float f32[2] = {1.5f, -2};
  uint16_t f16[3] = {0x3c00, 0xc100, 0x7bff}; /* 1, -2.5, 65504 */
  uint16_t bf16[2] = {0x3f80, 0xc0a0};        /* 1, -5 */
  double f64[2] = {0.1, -3.4028235e38};
  memcpy(data, f32, 8);
  memcpy(data + 8, f16, 6);
  memcpy(data + 14, bf16, 4);
  memcpy(data + 24, f64, 16);
  write_st(
      entries(5, ENTRY("transformer.h.0.ln_1.weight", "F32", "[2]", "[0, 8]"),
              ENTRY("transformer.h.0.ln_1.bias", "F16", "[3, 1]", "[8, 14]"),
              ENTRY("wte", "BF16", "[2]", "[14, 18]"),
              ENTRY("extra", "I64", "[1]", "[40, 48]"),
              ENTRY("lm.scale", "F64", "[2]", "[24, 40]")),
      data, 48);
  McWeightSpec specs[4] = {
      {.name = "h.0.ln_1.weight", .rank = 1, .shape = {2}},
      {.name = "h.0.ln_1.bias", .rank = 2, .shape = {3, 1}},
      {.name = "wte", .rank = 1, .shape = {2}},
      {.name = "scale", .rank = 1, .shape = {2}}};
  McWeights *w;
  load_expect(specs, 4, MC_OK, NULL, &w);
  const float *p = mc_weights_get(w, 0);
  cr_assert_eq(p[0], 1.5f);
  cr_assert_eq(p[1], -2.0f);
  p = mc_weights_get(w, 1);
  cr_assert_eq(p[0], 1.0f);
  cr_assert_eq(p[1], -2.5f);
  cr_assert_eq(p[2], 65504.0f);
  p = mc_weights_get(w, 2);
  cr_assert_eq(p[0], 1.0f);
  cr_assert_eq(p[1], -5.0f);
  p = mc_weights_get(w, 3);
  cr_assert_eq(p[0], 0.1f);
  cr_assert_eq(p[1], -FLT_MAX);
  cr_assert_null(mc_weights_get(w, 4));
  cr_assert_null(mc_weights_get(w, -1));
  mc_weights_free(w);
  load_expect(NULL, 0, MC_OK, NULL, NULL);
}

Test(weights, unaligned_f32_is_copied, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  float v[3] = {3, 4, 5};
  write_st_aligned("{" ENTRY("a", "F32", "[3]", "[0, 12]") "}", v, 12, 3);
  McWeights *w;
  load_expect(spec1("a", 1, 3, 0), 1, MC_OK, NULL, &w);
  cr_assert_eq(mc_weights_get(w, 0)[2], 5.0f);
  mc_weights_free(w);
}

Test(weights, errors_name_the_tensor, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  size_t n = 192 * 64 * 2;
  unsigned char *z = calloc(1, n + 32);
  double big = 1e300;
  memcpy(z + n + 16, &big, 8);
  write_st(entries(5,
                   ENTRY("transformer.h.0.attn.c_attn.weight", "F16",
                         "[192, 64]", "[0, 24576]"),
                   ENTRY("a.w", "F32", "[1]", "[24576, 24580]"),
                   ENTRY("b.w", "F32", "[1]", "[24580, 24584]"),
                   ENTRY("ids", "I64", "[1]", "[24584, 24592]"),
                   ENTRY("big", "F64", "[1]", "[24592, 24600]")),
           z, n + 32);
  free(z);
  load_expect(spec1("h.0.attn.c_attn.weight", 2, 64, 192), 1, MC_ERR_SHAPE,
              "weight 'h.0.attn.c_attn.weight': expected shape [64, 192], "
              "found [192, 64]",
              NULL);
  load_expect(spec1("h.0.attn.c_attn.weight", 1, 192, 0), 1, MC_ERR_SHAPE,
              "expected shape [192], found [192, 64]", NULL);
  char msg[256];
  snprintf(msg, sizeof msg, "weight 'x' not found in %s", st_path);
  load_expect(spec1("x", 1, 1, 0), 1, MC_ERR_NAME, msg, NULL);
  load_expect(spec1("h.0.attn.c_atn.weight", 2, 192, 64), 1, MC_ERR_NAME,
              "(did you mean 'transformer.h.0.attn.c_attn.weight'?)", NULL);
  load_expect(spec1("w", 1, 1, 0), 1, MC_ERR_NAME, "ambiguous", NULL);
  load_expect(spec1("w", 1, 1, 0), 1, MC_ERR_NAME, "'a.w' and 'b.w'", NULL);
  load_expect(spec1("ids", 1, 1, 0), 1, MC_ERR_DTYPE, "weight 'ids'", NULL);
  load_expect(spec1("big", 1, 1, 0), 1, MC_ERR_RANGE,
              "weight 'big': value 1e+300 at index 0", NULL);
  McWeightSpec two[2] = {{.name = "a.w", .rank = 1, .shape = {1}},
                         {.name = "missing", .rank = 1, .shape = {1}}};
  load_expect(two, 2, MC_ERR_NAME, "'missing'", NULL); /* frees the first */
  McWeights *w;
  McError e;
  cr_assert_eq(mc_weights_load("/nonexistent.safetensors", two, 1, &w, &e),
               MC_ERR_IO);
  cr_assert_null(w);
}
