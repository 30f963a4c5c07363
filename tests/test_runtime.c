/* Runtime core: tensors, half floats, dtype conversion, .npy files, kernels,
 * a model's kept workspaces.
 * (safetensors and weights: test_runtime_files.c; mc_main:
 * test_runtime_main.c.) */
#include <criterion/criterion.h>

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mc_runtime.h"
#include "mc_softmax.h"

static char tmpdir[64];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mc_rt_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void) {
  /* only flat files are created here */
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

static const char *tmp_path(const char *name) {
  static char buf[4][256];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, 256, "%s/%s", tmpdir, name);
  return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

/* ---- dtypes, tensors --------------------------------------------------- */

Test(runtime, dtype_names_and_sizes) {
  cr_assert_str_eq(mc_dtype_name(MC_F32), "f32");
  cr_assert_str_eq(mc_dtype_name(MC_BF16), "bf16");
  cr_assert_str_eq(mc_dtype_name(MC_DTYPE_COUNT), "?");
  cr_assert_eq(mc_dtype_size(MC_F64), 8);
  cr_assert_eq(mc_dtype_size(MC_BOOL), 1);
  cr_assert_eq(mc_dtype_size(MC_F16), 2);
  cr_assert_eq(mc_dtype_size(MC_DTYPE_COUNT), 0);
}

Test(runtime, mc_fail_fills_error_and_accepts_null) {
  McError e;
  cr_assert_eq(mc_fail(&e, MC_ERR_IO, "x=%d", 3), MC_ERR_IO);
  cr_assert_eq(e.code, MC_ERR_IO);
  cr_assert_str_eq(e.msg, "x=3");
  cr_assert_eq(mc_fail(NULL, MC_ERR_NAME, "ignored"), MC_ERR_NAME);
}

/* Two scans side by side, each with its own status and error: the first
 * failed one's is reported (codegen/c_scan.c, llvm_scan.c). */
Test(runtime, tasks_status_reports_the_first_failed_task) {
  McError errs[3] = {{0}}, e = {0};
  int rc[3] = {MC_OK, MC_OK, MC_OK};
  cr_assert_eq(mc_tasks_status(rc, errs, 3, &e), MC_OK);
  cr_assert_eq(e.code, 0);
  rc[2] = mc_fail(&errs[2], MC_ERR_RANGE, "index %d", 9);
  rc[1] = mc_fail(&errs[1], MC_ERR_SHAPE, "shape");
  cr_assert_eq(mc_tasks_status(rc, errs, 3, &e), MC_ERR_SHAPE);
  cr_assert_str_eq(e.msg, "shape");
  cr_assert_eq(mc_tasks_status(rc, errs, 3, NULL), MC_ERR_SHAPE);
  rc[1] = MC_OK;
  cr_assert_eq(mc_tasks_status(rc, errs, 3, &e), MC_ERR_RANGE);
  cr_assert_eq(e.code, MC_ERR_RANGE);
  cr_assert_str_eq(e.msg, "index 9");
}

Test(runtime, numel_and_alloc) {
  McTensor t = {MC_F32, 3, {2, 3, 4}, NULL};
  McError e;
  cr_assert_eq(mc_tensor_numel(&t), 24);
  t.shape[1] = -1;
  cr_assert_eq(mc_tensor_numel(&t), -1);
  t.rank = 2;
  t.shape[0] = INT64_MAX / 2;
  t.shape[1] = 3;
  cr_assert_eq(mc_tensor_numel(&t), -1);
  int64_t shape[2] = {INT64_MAX / 4, 3};
  cr_assert_eq(mc_tensor_alloc(&t, MC_F64, 2, shape, &e), MC_ERR_SHAPE);
  cr_assert_eq(mc_tensor_alloc(&t, MC_F64, 9, shape, &e), MC_ERR_SHAPE);
  int64_t empty[1] = {0};
  cr_assert_eq(mc_tensor_alloc(&t, MC_I32, 1, empty, &e), MC_OK);
  cr_assert_not_null(t.data);
  mc_tensor_free(&t);
  cr_assert_null(t.data);
  cr_assert_eq(mc_tensor_alloc(&t, MC_F32, 0, NULL, &e), MC_OK);
  cr_assert_eq(mc_tensor_numel(&t), 1);
  mc_tensor_free(&t);
}

Test(runtime, shape_str) {
  char buf[64];
  int64_t s[3] = {2, 5, 7};
  cr_assert_str_eq(mc_shape_str(2, s, buf, sizeof buf), "[2, 5]");
  cr_assert_str_eq(mc_shape_str(0, s, buf, sizeof buf), "[]");
  cr_assert_str_eq(mc_shape_str(3, s, buf, 5), "[2, ");
}

/* ---- half floats -------------------------------------------------------- */

Test(runtime, f16_known_values) {
  cr_assert_eq(mc_f16_to_f32(0x3c00), 1.0f);
  cr_assert_eq(mc_f16_to_f32(0xc000), -2.0f);
  cr_assert_eq(mc_f16_to_f32(0x7bff), 65504.0f);
  cr_assert_eq(mc_f16_to_f32(0x0001), ldexpf(1, -24));
  cr_assert(isinf(mc_f16_to_f32(0x7c00)));
  cr_assert(isnan(mc_f16_to_f32(0x7e00)));
  cr_assert_eq(mc_f32_to_f16(1.0f), 0x3c00);
  cr_assert_eq(mc_f32_to_f16(65504.0f), 0x7bff);
  cr_assert_eq(mc_f32_to_f16(65519.0f), 0x7bff);       /* rounds down */
  cr_assert_eq(mc_f32_to_f16(65520.0f), 0x7c00);       /* ties to even: inf */
  cr_assert_eq(mc_f32_to_f16(ldexpf(1, -25)), 0x0000); /* tie to even 0 */
  cr_assert_eq(mc_f32_to_f16(ldexpf(3, -26)), 0x0001);
  cr_assert_eq(mc_f32_to_f16(-0.0f), 0x8000);
  cr_assert_eq(mc_f32_to_f16(1.0f + ldexpf(1, -11)), 0x3c00); /* tie even */
  cr_assert_eq(mc_f32_to_f16(1.0f + ldexpf(3, -11)), 0x3c02);
  cr_assert_eq(mc_f32_to_f16(NAN) & 0x7e00, 0x7e00);
}

Test(runtime, f16_round_trips_every_value) {
  for (uint32_t h = 0; h < 0x10000; h++) {
    float f = mc_f16_to_f32((uint16_t)h);
    if (isnan(f))
      continue;
    cr_assert_eq(mc_f32_to_f16(f), h, "f16 0x%04x", h);
  }
}

Test(runtime, bf16_values) {
  cr_assert_eq(mc_bf16_to_f32(0x3f80), 1.0f);
  cr_assert_eq(mc_bf16_to_f32(0xc0a0), -5.0f);
  cr_assert_eq(mc_f32_to_bf16(1.0f), 0x3f80);
  cr_assert_eq(mc_f32_to_bf16(1.0f + ldexpf(1, -8)), 0x3f80); /* tie even */
  cr_assert_eq(mc_f32_to_bf16(1.0f + ldexpf(3, -8)), 0x3f82);
  cr_assert_eq(mc_f32_to_bf16(FLT_MAX), 0x7f80); /* rounds to inf */
  cr_assert(isnan(mc_bf16_to_f32(mc_f32_to_bf16(NAN))));
}

/* ---- conversion --------------------------------------------------------- */

Test(runtime, convert_f64_to_f32_range_checked) {
  double v[4] = {1.5, -2.25, 1e39, 0};
  McTensor in = {MC_F64, 1, {4}, v}, out;
  McError e;
  cr_assert_eq(mc_tensor_convert(&in, MC_F32, &out, &e), MC_ERR_RANGE);
  cr_assert(strstr(e.msg, "1e+39") && strstr(e.msg, "index 2"), "%s", e.msg);
  v[2] = INFINITY;
  v[3] = -3.4028235e38; /* FLT_MAX as written by numpy: rounds to it */
  cr_assert_eq(mc_tensor_convert(&in, MC_F32, &out, &e), MC_OK, "%s", e.msg);
  float *f = out.data;
  cr_assert_eq(out.dtype, MC_F32);
  cr_assert_eq(out.rank, 1);
  cr_assert_eq(out.shape[0], 4);
  cr_assert_eq(f[0], 1.5f);
  cr_assert_eq(f[1], -2.25f);
  cr_assert(isinf(f[2]));
  cr_assert_eq(f[3], -FLT_MAX);
  mc_tensor_free(&out);
  v[3] = NAN;
  cr_assert_eq(mc_tensor_convert(&in, MC_F32, &out, &e), MC_OK);
  cr_assert(isnan(((float *)out.data)[3]));
  mc_tensor_free(&out);
}

Test(runtime, convert_integers_range_checked) {
  int64_t v[3] = {7, -8, (int64_t)INT32_MAX + 1};
  McTensor in = {MC_I64, 1, {3}, v}, out;
  McError e;
  cr_assert_eq(mc_tensor_convert(&in, MC_I32, &out, &e), MC_ERR_RANGE);
  cr_assert(strstr(e.msg, "2147483648") && strstr(e.msg, "index 2"), "%s",
            e.msg);
  v[2] = INT32_MIN;
  cr_assert_eq(mc_tensor_convert(&in, MC_I32, &out, &e), MC_OK);
  cr_assert_eq(((int32_t *)out.data)[2], INT32_MIN);
  McTensor back;
  cr_assert_eq(mc_tensor_convert(&out, MC_I64, &back, &e), MC_OK);
  cr_assert_eq(memcmp(back.data, v, sizeof v), 0);
  mc_tensor_free(&out);
  mc_tensor_free(&back);
}

Test(runtime, convert_bool_and_int) {
  uint8_t b[3] = {1, 0, 1};
  int32_t i[3] = {0, 1, 2};
  McTensor tb = {MC_BOOL, 1, {3}, b}, ti = {MC_I32, 1, {3}, i}, out;
  McError e;
  cr_assert_eq(mc_tensor_convert(&tb, MC_I64, &out, &e), MC_OK);
  cr_assert_eq(((int64_t *)out.data)[2], 1);
  mc_tensor_free(&out);
  cr_assert_eq(mc_tensor_convert(&ti, MC_BOOL, &out, &e), MC_ERR_RANGE);
  cr_assert(strstr(e.msg, "value 2 at index 2"), "%s", e.msg);
  i[2] = 1;
  cr_assert_eq(mc_tensor_convert(&ti, MC_BOOL, &out, &e), MC_OK);
  cr_assert_eq(((uint8_t *)out.data)[1], 1);
  mc_tensor_free(&out);
}

Test(runtime, convert_refuses_float_int_and_handles_halves) {
  float f[2] = {1.0f, 70000.0f};
  McTensor in = {MC_F32, 1, {2}, f}, out;
  McError e;
  cr_assert_eq(mc_tensor_convert(&in, MC_I32, &out, &e), MC_ERR_DTYPE);
  cr_assert_eq(mc_tensor_convert(&in, MC_F16, &out, &e), MC_ERR_RANGE);
  cr_assert(strstr(e.msg, "70000") && strstr(e.msg, "f16"), "%s", e.msg);
  cr_assert_eq(mc_tensor_convert(&in, MC_BF16, &out, &e), MC_OK);
  McTensor back;
  cr_assert_eq(mc_tensor_convert(&out, MC_F64, &back, &e), MC_OK);
  cr_assert_eq(((double *)back.data)[0], 1.0);
  cr_assert_eq(((double *)back.data)[1], 70144.0); /* bf16 rounding */
  mc_tensor_free(&out);
  mc_tensor_free(&back);
}

/* ---- .npy --------------------------------------------------------------- */

static void npy_round_trip(McDType dtype, const void *data, int rank,
                           const int64_t *shape) {
  McTensor t = {dtype, rank, {0}, (void *)data}, r;
  McError e;
  for (int i = 0; i < rank; i++)
    t.shape[i] = shape[i];
  size_t nbytes;
  cr_assert_eq(mc_tensor_nbytes(&t, &nbytes, &e), MC_OK);
  const char *path = tmp_path("rt.npy");
  cr_assert_eq(mc_npy_write(path, &t, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(mc_npy_read(path, &r, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(r.dtype, dtype);
  cr_assert_eq(r.rank, rank);
  for (int i = 0; i < rank; i++)
    cr_assert_eq(r.shape[i], shape[i]);
  cr_assert_eq(memcmp(r.data, data, nbytes), 0);
  mc_tensor_free(&r);
  /* the header is 64-byte aligned and ends in a newline, like numpy's */
  FILE *f = fopen(path, "rb");
  unsigned char head[10];
  cr_assert_eq(fread(head, 1, 10, f), 10);
  fclose(f);
  size_t hlen = head[8] | (size_t)head[9] << 8;
  cr_assert_eq((10 + hlen) % 64, 0);
}

Test(npy, round_trip_every_dtype, .init = make_tmpdir, .fini = remove_tmpdir) {
  float f32[6] = {1, -2.5f, 3e-38f, INFINITY, -0.0f, 6};
  double f64[3] = {1e300, -1e-300, 0.1};
  int32_t i32[4] = {INT32_MIN, -1, 0, INT32_MAX};
  int64_t i64[2] = {INT64_MIN, INT64_MAX};
  uint8_t b[5] = {1, 0, 0, 1, 1};
  uint16_t f16[2] = {0x3c00, 0xfbff};
  int64_t s23[2] = {2, 3}, s3[1] = {3}, s4[4] = {1, 2, 1, 2}, s2[1] = {2},
          s5[2] = {5, 1};
  npy_round_trip(MC_F32, f32, 2, s23);
  npy_round_trip(MC_F64, f64, 1, s3);
  npy_round_trip(MC_I32, i32, 4, s4);
  npy_round_trip(MC_I64, i64, 1, s2);
  npy_round_trip(MC_BOOL, b, 2, s5);
  npy_round_trip(MC_F16, f16, 1, s2);
  npy_round_trip(MC_F32, f32, 0, NULL); /* scalar */
  int64_t s0[2] = {0, 4};
  npy_round_trip(MC_F32, f32, 2, s0); /* empty */
}

Test(npy, write_refuses_bf16_and_leaves_no_file, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  uint16_t v[1] = {0};
  McTensor t = {MC_BF16, 1, {1}, v};
  McError e;
  cr_assert_eq(mc_npy_write(tmp_path("b.npy"), &t, &e), MC_ERR_DTYPE);
  cr_assert_neq(access(tmp_path("b.npy"), F_OK), 0);
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", tmp_path("b.npy"), (long)getpid());
  cr_assert_neq(access(tmp, F_OK), 0);
}

Test(npy, write_into_missing_dir_fails_cleanly, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  float v = 1;
  McTensor t = {MC_F32, 0, {0}, &v};
  McError e;
  cr_assert_eq(mc_npy_write(tmp_path("nodir/x.npy"), &t, &e), MC_ERR_IO);
  cr_assert(strstr(e.msg, "nodir"), "%s", e.msg);
}

/* Builds a .npy file: a given header dict (padded as numpy does) + data. */
static void write_npy_raw(const char *path, int version, const char *dict,
                          const void *data, size_t n) {
  unsigned char buf[1024];
  size_t pre = version == 1 ? 10 : 12, len = strlen(dict);
  size_t total = (pre + len + 1 + 63) / 64 * 64, hlen = total - pre;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)version;
  buf[7] = 0;
  buf[8] = (unsigned char)(hlen & 0xff);
  buf[9] = (unsigned char)(hlen >> 8);
  if (version != 1)
    buf[10] = buf[11] = 0;
  memcpy(buf + pre, dict, len);
  memset(buf + pre + len, ' ', total - pre - len);
  buf[total - 1] = '\n';
  memcpy(buf + total, data, n);
  write_bytes(path, buf, total + n);
}

static int npy_read_expect(int code, const char *needle) {
  McTensor t = {MC_F32, 0, {0}, NULL};
  McError e = {0, ""};
  int rc = mc_npy_read(tmp_path("h.npy"), &t, &e);
  cr_assert_eq(rc, code, "rc %d: %s", rc, e.msg);
  if (needle)
    cr_assert(strstr(e.msg, needle), "message '%s' lacks '%s'", e.msg, needle);
  cr_assert_null(t.data);
  return rc;
}

Test(npy, reads_numpy_style_files, .init = make_tmpdir, .fini = remove_tmpdir) {
  int32_t v[3] = {4, 5, 6};
  McTensor t;
  McError e;
  write_npy_raw(tmp_path("h.npy"), 1,
                "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", v,
                sizeof v);
  cr_assert_eq(mc_npy_read(tmp_path("h.npy"), &t, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(((int32_t *)t.data)[2], 6);
  mc_tensor_free(&t);
  /* version 2, key order changed, double quotes, Python 2 long */
  write_npy_raw(tmp_path("h.npy"), 2,
                "{\"shape\": (1L, 3), \"fortran_order\": False, \"descr\": "
                "\"<i4\"}",
                v, sizeof v);
  cr_assert_eq(mc_npy_read(tmp_path("h.npy"), &t, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(t.rank, 2);
  cr_assert_eq(t.shape[1], 3);
  mc_tensor_free(&t);
}

Test(npy, hostile_files_are_rejected, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  float v[4] = {1, 2, 3, 4};
  uint8_t bools[2] = {1, 2};
  const char *h = tmp_path("h.npy");
  McError e;
  McTensor t;
  cr_assert_eq(mc_npy_read(tmp_path("missing.npy"), &t, &e), MC_ERR_IO);
  write_bytes(h, "", 0);
  npy_read_expect(MC_ERR_FORMAT, "too short");
  write_bytes(h, "\x93NUMPX\x01\x00\x10\x00{}", 12);
  npy_read_expect(MC_ERR_FORMAT, "bad magic");
  write_bytes(h, "\x93NUMPY\x07\x00\x10\x00{}", 12);
  npy_read_expect(MC_ERR_FORMAT, "version");
  write_bytes(h, "\x93NUMPY\x01\x00\xff\x7f{'descr'", 18);
  npy_read_expect(MC_ERR_FORMAT, "past the end");
  write_bytes(h, "\x93NUMPY\x02\x00\xff\xff\xff\xff{}", 14);
  npy_read_expect(MC_ERR_FORMAT, "past the end");
  write_npy_raw(
      h, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", v, 16);
  npy_read_expect(MC_ERR_DTYPE, "big-endian");
  write_npy_raw(h, 1,
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", v,
                16);
  npy_read_expect(MC_ERR_FORMAT, "Fortran");
  write_npy_raw(
      h, 1, "{'descr': '<u2', 'fortran_order': False, 'shape': (4,), }", v, 8);
  npy_read_expect(MC_ERR_DTYPE, "unsupported");
  write_npy_raw(
      h, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }", v, 16);
  npy_read_expect(MC_ERR_FORMAT, "truncated");
  write_npy_raw(
      h, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", v, 16);
  npy_read_expect(MC_ERR_FORMAT, "trailing");
  write_npy_raw(h, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': "
                "(4294967296, 4294967296, 4294967296), }",
                v, 16);
  npy_read_expect(MC_ERR_SHAPE, "too large");
  write_npy_raw(h, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': "
                "(99999999999999999999,), }",
                v, 16);
  npy_read_expect(MC_ERR_SHAPE, "overflow");
  write_npy_raw(h, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': "
                "(1099511627776,), }",
                v, 16);
  npy_read_expect(MC_ERR_FORMAT, "truncated");
  write_npy_raw(h, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': "
                "(1, 1, 1, 1, 1, 1, 1, 1, 1), }",
                v, 4);
  npy_read_expect(MC_ERR_SHAPE, "rank");
  write_npy_raw(h, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", v,
                16);
  npy_read_expect(MC_ERR_FORMAT, "non-negative");
  write_npy_raw(h, 1, "{'descr': '<f4', 'shape': (4,), }", v, 16);
  npy_read_expect(MC_ERR_FORMAT, "needs descr");
  write_npy_raw(h, 1,
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), "
                "'descr': '<f4'}",
                v, 16);
  npy_read_expect(MC_ERR_FORMAT, "repeated");
  write_npy_raw(h, 1, "['descr', '<f4']", v, 16);
  npy_read_expect(MC_ERR_FORMAT, "not a dict");
  write_npy_raw(
      h, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,)} x", v, 16);
  npy_read_expect(MC_ERR_FORMAT, "junk");
  write_npy_raw(h, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,",
                v, 16);
  npy_read_expect(MC_ERR_FORMAT, "shape");
  write_npy_raw(h, 1,
                "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }",
                bools, 2);
  npy_read_expect(MC_ERR_FORMAT, "not 0 or 1");
}

/* ---- kernels ------------------------------------------------------------ */

static uint32_t rng_state = 12345;
static float rnd(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)(rng_state >> 8) / (float)(1 << 24) * 2.0f - 1.0f;
}

/* C = A B for M x K A and K x N B, every layout of A and B. */
Test(kernels, gemm_f32_matches_reference_for_all_layouts) {
  enum { M = 7, N = 9, K = 13, LDC = 11 };
  float a[M * K], at[K * M], b[K * N], bt[N * K], c[M * LDC], c0[M * LDC];
  double ref[M * N];
  for (int i = 0; i < M; i++)
    for (int k = 0; k < K; k++)
      at[k * M + i] = a[i * K + k] = rnd();
  for (int k = 0; k < K; k++)
    for (int j = 0; j < N; j++)
      bt[j * K + k] = b[k * N + j] = rnd();
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      ref[i * N + j] = 0;
      for (int k = 0; k < K; k++)
        ref[i * N + j] += (double)a[i * K + k] * b[k * N + j];
    }
  for (int layout = 0; layout < 4; layout++) {
    int ta = layout & 1, tb = layout >> 1;
    for (int i = 0; i < M * LDC; i++)
      c[i] = 100.0f; /* overwritten where it matters, kept elsewhere */
    mc_gemm_f32(M, N, K, ta ? at : a, ta ? 1 : K, ta ? M : 1, tb ? bt : b,
                tb ? 1 : N, tb ? K : 1, c, LDC, 0);
    for (int i = 0; i < M; i++) {
      for (int j = 0; j < N; j++)
        cr_assert_float_eq(c[i * LDC + j], ref[i * N + j], 1e-5,
                           "layout %d at %d,%d", layout, i, j);
      cr_assert_eq(c[i * LDC + N], 100.0f);
    }
    if (layout == 0)
      memcpy(c0, c, sizeof c);
    else /* same summation order whatever the strides: same bits */
      cr_assert_eq(memcmp(c, c0, sizeof c), 0, "layout %d", layout);
    mc_gemm_f32(M, N, K, ta ? at : a, ta ? 1 : K, ta ? M : 1, tb ? bt : b,
                tb ? 1 : N, tb ? K : 1, c, LDC, 1);
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++)
        cr_assert_float_eq(c[i * LDC + j], 2 * ref[i * N + j], 2e-5);
  }
}

Test(kernels, gemm_f64_and_edge_sizes) {
  double a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12}, c[4];
  mc_gemm_f64(2, 2, 3, a, 3, 1, b, 2, 1, c, 2, 0);
  cr_assert_eq(c[0], 58);
  cr_assert_eq(c[1], 64);
  cr_assert_eq(c[2], 139);
  cr_assert_eq(c[3], 154);
  mc_gemm_f64(2, 2, 0, a, 3, 1, b, 2, 1, c, 2, 0); /* K = 0: zeros */
  cr_assert_eq(c[3], 0);
  c[0] = 5;
  mc_gemm_f64(1, 1, 0, a, 3, 1, b, 2, 1, c, 2, 1);
  cr_assert_eq(c[0], 5);
  mc_gemm_f64(0, 2, 3, a, 3, 1, b, 2, 1, c, 2, 0); /* M = 0: no-op */
  float fa[1] = {2}, fb[1] = {3}, fc[1] = {1};
  mc_gemm_f32(1, 1, 1, fa, 1, 1, fb, 1, 1, fc, 1, 1);
  cr_assert_eq(fc[0], 7);
}

static void softmax_ref(const double *x, double *y, int64_t outer, int64_t n,
                        int64_t inner, int logarithmic) {
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double m = -INFINITY, s = 0;
      for (int64_t j = 0; j < n; j++)
        m = fmax(m, x[(o * n + j) * inner + i]);
      for (int64_t j = 0; j < n; j++)
        s += exp(x[(o * n + j) * inner + i] - m);
      for (int64_t j = 0; j < n; j++) {
        double d = x[(o * n + j) * inner + i] - m;
        y[(o * n + j) * inner + i] = logarithmic ? d - log(s) : exp(d) / s;
      }
    }
}

Test(kernels, softmax_matches_reference_with_inner_stride) {
  enum { O = 3, NN = 5, I = 4, T = O * NN * I };
  float x[T], y[T], ly[T];
  double xd[T], ref[T], lref[T], yd[T];
  for (int i = 0; i < T; i++)
    xd[i] = x[i] = rnd() * 10;
  x[7] = -INFINITY; /* one masked entry */
  xd[7] = -INFINITY;
  softmax_ref(xd, ref, O, NN, I, 0);
  softmax_ref(xd, lref, O, NN, I, 1);
  mc_softmax_f32(x, y, O, NN, I);
  mc_log_softmax_f32(x, ly, O, NN, I);
  for (int i = 0; i < T; i++) {
    cr_assert_float_eq(y[i], ref[i], 1e-6, "at %d", i);
    if (i == 7)
      cr_assert(isinf(ly[i]) && ly[i] < 0);
    else
      cr_assert_float_eq(ly[i], lref[i], 1e-5, "at %d", i);
  }
  mc_softmax_f64(xd, yd, O, NN, I);
  for (int i = 0; i < T; i++)
    cr_assert_float_eq(yd[i], ref[i], 1e-14);
  mc_log_softmax_f64(xd, xd, O, NN, I); /* in place */
  for (int i = 0; i < T; i++)
    if (i != 7)
      cr_assert_float_eq(xd[i], lref[i], 1e-12);
}

/* Rows of every length around the 8 lanes, contiguous and strided, on 1
 * and 3 threads: the same bits everywhere, within 2e-7 of the reference. */
Test(kernels, softmax_bits_independent_of_layout_and_threads) {
  enum { R = 7, NMAX = 37, I = 3 };
  static float x[R * NMAX], xt[R * NMAX * I], y[R * NMAX], yt[R * NMAX * I],
      y3[R * NMAX];
  static double xd[R * NMAX], ref[R * NMAX];
  for (int n = 1; n <= NMAX; n++) {
    for (int i = 0; i < R * n; i++) {
      xd[i] = x[i] = rnd() * 20;
      for (int c = 0; c < I; c++) /* x as column c of [R, n, I] */
        xt[(i / n * n + i % n) * I + c] = c == 1 ? x[i] : 0.0f;
    }
    for (int logarithmic = 0; logarithmic < 2; logarithmic++) {
      void (*sm)(const float *, float *, int64_t, int64_t, int64_t) =
          logarithmic ? mc_log_softmax_f32 : mc_softmax_f32;
      softmax_ref(xd, ref, R, n, 1, logarithmic);
      mc_set_threads(1);
      sm(x, y, R, n, 1);
      sm(xt, yt, R, n, I);
      mc_set_threads(3);
      sm(x, y3, R, n, 1);
      for (int i = 0; i < R * n; i++) {
        float ys = yt[(i / n * n + i % n) * I + 1];
        cr_assert(!memcmp(&y[i], &ys, 4) && !memcmp(&y[i], &y3[i], 4),
                  "n %d log %d at %d: %a %a %a", n, logarithmic, i, y[i], ys,
                  y3[i]);
        cr_assert_float_eq(y[i], ref[i], 2e-7 + 2e-7 * fabs(ref[i]),
                           "n %d log %d at %d", n, logarithmic, i);
      }
    }
  }
  mc_set_threads(1);
}

Test(kernels, softmax_all_masked_row_is_nan_like_torch) {
  float x[6] = {-INFINITY, -INFINITY, -INFINITY, 0, 1000, -INFINITY}, y[6],
        ly[6];
  mc_softmax_f32(x, y, 2, 3, 1);
  mc_log_softmax_f32(x, ly, 2, 3, 1);
  for (int j = 0; j < 3; j++) {
    cr_assert(isnan(y[j]));
    cr_assert(isnan(ly[j]));
  }
  cr_assert_eq(y[3], 0.0f); /* large values do not overflow */
  cr_assert_eq(y[4], 1.0f);
  cr_assert_eq(y[5], 0.0f);
  cr_assert_eq(ly[4], 0.0f);
  cr_assert_eq(ly[3], -1000.0f);
  float nan_row[3] = {1, NAN, 2};
  mc_softmax_f32(nan_row, nan_row, 1, 3, 1);
  for (int j = 0; j < 3; j++)
    cr_assert(isnan(nan_row[j]));
  mc_softmax_f32(x, y, 0, 3, 1); /* empty: no-op */
}

/* mc_softmax.h's row (what generated kernels call, compiled
 * with the model's -march) against the runtime's strided rows: the same
 * bits for every length around the lanes, and a NaN anywhere (any lane,
 * body or tail) makes the row NaN. */
Test(kernels, softmax_row_matches_strided_rows) {
  enum { NMAX = 41, I = 2 };
  static float x[NMAX], xt[NMAX * I], y[NMAX], yt[NMAX * I];
  for (int n = 1; n <= NMAX; n++) {
    for (int i = 0; i < n; i++) {
      x[i] = rnd() * 30;
      xt[i * I] = x[i];
      xt[i * I + 1] = 0;
    }
    mc_softmax_row_f32(x, y, n);
    mc_softmax_f32(xt, yt, 1, n, I);
    for (int i = 0; i < n; i++)
      cr_assert(!memcmp(&y[i], &yt[i * I], 4), "n %d at %d: %a %a", n, i, y[i],
                yt[i * I]);
    for (int at = 0; at < n; at++) {
      memcpy(y, x, sizeof x);
      y[at] = NAN;
      mc_softmax_row_f32(y, y, n); /* in place */
      for (int i = 0; i < n; i++)
        cr_assert(isnan(y[i]), "n %d NaN at %d: %a at %d", n, at, y[i], i);
    }
  }
}

/* mc_alloc_zeroed: zeroed memory for free(), 2 MB-aligned from 2 MB on
 * (so the kernel can back it with huge pages). */
Test(runtime, alloc_zeroed_large_and_small) {
  const size_t sizes[] = {0, 1, 4096, (2u << 20) - 1, 2u << 20, (5u << 20) + 3};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    unsigned char *p = mc_alloc_zeroed(sizes[s]);
    cr_assert_not_null(p);
    for (size_t i = 0; i < sizes[s]; i++)
      if (p[i])
        cr_assert_fail("byte %zu of %zu is %d", i, sizes[s], p[i]);
    if (sizes[s] >= (2u << 20))
      cr_assert_eq((uintptr_t)p % (2u << 20), 0);
    memset(p, 0xab, sizes[s]);
    free(p);
  }
}

/* mc_model_workspace: a function's arena is kept between calls (as the
 * last call left it), grown on demand, and never handed to two calls at
 * once: a call that overlaps gets a fresh one, freed when it is done. */
Test(runtime, model_workspace_is_kept_and_never_shared) {
  McModel *m = calloc(1, sizeof *m);
  cr_assert_not_null(m);
  unsigned char *a = mc_model_workspace(m, 3, 100);
  cr_assert_not_null(a);
  for (int i = 0; i < 100; i++)
    cr_assert_eq(a[i], 0);
  a[0] = 7;
  unsigned char *b = mc_model_workspace(m, 3, 100); /* overlapping call */
  unsigned char *c = mc_model_workspace(m, 4, 10);  /* another function */
  cr_assert(b && b != a && b[0] == 0);
  cr_assert(c && c != a && c != b);
  mc_model_workspace_done(m, 3, b);
  mc_model_workspace_done(m, 4, c);
  mc_model_workspace_done(m, 3, a);
  unsigned char *d = mc_model_workspace(m, 3, 50);
  cr_assert_eq(d, a);
  cr_assert_eq(d[0], 7);
  mc_model_workspace_done(m, 3, d);
  size_t big = (size_t)5 << 20;
  unsigned char *g = mc_model_workspace(m, 3, big);
  cr_assert_not_null(g);
  g[big - 1] = 1;
  mc_model_workspace_done(m, 3, g);
  cr_assert_eq(mc_model_workspace(m, 3, 100), g);
  mc_model_workspace_done(m, 3, g);
  mc_model_close(m);
}

typedef struct WorkspaceUser {
  McModel *m;
  unsigned char id;
  int clashes;
} WorkspaceUser;

static void *use_workspace(void *arg) {
  WorkspaceUser *u = arg;
  for (int i = 0; i < 2000; i++) {
    unsigned char *ws = mc_model_workspace(u->m, 0, 256);
    if (!ws) {
      u->clashes++;
      continue;
    }
    memset(ws, u->id, 256);
    sched_yield();
    for (int j = 0; j < 256; j++)
      u->clashes += ws[j] != u->id;
    mc_model_workspace_done(u->m, 0, ws);
  }
  return NULL;
}

Test(runtime, model_workspace_calls_from_threads_never_share) {
  McModel *m = calloc(1, sizeof *m);
  cr_assert_not_null(m);
  WorkspaceUser users[4];
  pthread_t threads[4];
  for (int t = 0; t < 4; t++) {
    users[t] = (WorkspaceUser){m, (unsigned char)(t + 1), 0};
    cr_assert_eq(pthread_create(&threads[t], NULL, use_workspace, &users[t]),
                 0);
  }
  for (int t = 0; t < 4; t++) {
    pthread_join(threads[t], NULL);
    cr_expect_eq(users[t].clashes, 0, "thread %d saw %d foreign bytes", t,
                 users[t].clashes);
  }
  mc_model_close(m);
}
