/* mc_main, the driver of emitted executables, run in-process on a fake model:
 *   y[i, j] = x[i, j] + 1 + bias        (bias a weight, 0 without weights)
 *   n = [numel(ids) or -1, sum(mask) or -1, sum(ids) or 0]
 * Checks argument handling, input conversion, error messages and that output
 * is all-or-nothing. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mc_runtime.h"

/* ---- the fake model ----------------------------------------------------- */

enum { RUN_OK, RUN_SECOND_OUTPUT_NULL, RUN_SECOND_OUTPUT_BF16, RUN_FAIL };
static int run_mode;
static int model_runs; /* add_run's calls */

static const McIOSpec add_inputs[] = {{"x", MC_F32, 2, 0, NULL},
                                      {"ids", MC_I32, 1, 1, NULL},
                                      {"mask", MC_BOOL, 1, 1, NULL}};
static const McIOSpec add_outputs[] = {{"y", MC_F32, 2, 0, NULL},
                                       {"n", MC_I64, 1, 0, NULL}};
static const McWeightSpec add_weights[] = {
    {.name = "bias", .rank = 1, .shape = {1}}};

typedef struct AddModel {
  McWeights *w;
  float bias;
} AddModel;

static int add_open(const char *weights, void **handle, McError *e) {
  AddModel *m = calloc(1, sizeof *m);
  if (weights) {
    int rc = mc_weights_load(weights, add_weights, 1, &m->w, e);
    if (rc) {
      free(m);
      return rc;
    }
    m->bias = mc_weights_get(m->w, 0)[0];
  }
  *handle = m;
  return MC_OK;
}

static void add_close(void *handle) {
  AddModel *m = handle;
  mc_weights_free(m->w);
  free(m);
}

static int add_run(void *handle, const McTensor *in, McTensor *out,
                   McError *e) {
  AddModel *m = handle;
  int rc;
  model_runs++;
  cr_assert_eq(out[0].dtype, MC_F32);
  cr_assert_null(out[0].data); /* a run starts with no output data */
  cr_assert_eq(out[1].rank, 1);
  if (run_mode == RUN_FAIL)
    return mc_fail(e, MC_ERR_RANGE, "model failed on purpose");
  if ((rc = mc_tensor_alloc(&out[0], MC_F32, 2, in[0].shape, e)))
    return rc;
  const float *x = in[0].data;
  float *y = out[0].data;
  for (int64_t i = 0; i < mc_tensor_numel(&in[0]); i++)
    y[i] = x[i] + 1 + m->bias;
  int64_t three = 3;
  if (run_mode == RUN_SECOND_OUTPUT_NULL) {
    out[1].rank = 1;
    out[1].shape[0] = 3; /* data stays NULL: writing it fails */
    return MC_OK;
  }
  if ((rc =
           mc_tensor_alloc(&out[1], run_mode ? MC_BF16 : MC_I64, 1, &three, e)))
    return rc;
  if (run_mode == RUN_SECOND_OUTPUT_BF16)
    return MC_OK;
  int64_t *n = out[1].data;
  n[0] = in[1].data ? mc_tensor_numel(&in[1]) : -1;
  n[1] = -1;
  if (in[2].data) {
    n[1] = 0;
    for (int64_t i = 0; i < mc_tensor_numel(&in[2]); i++)
      n[1] += ((uint8_t *)in[2].data)[i];
  }
  for (int64_t i = 0; in[1].data && i < mc_tensor_numel(&in[1]); i++)
    n[2] += ((int32_t *)in[1].data)[i];
  return MC_OK;
}

static McModelInfo add_info = {
    "add1",      NULL,     3,         add_inputs, 2,    add_outputs, 0,
    add_weights, add_open, add_close, add_run,    NULL, NULL};

/* ---- helpers ------------------------------------------------------------ */

static char tmpdir[64];
static char output[8192]; /* what the last run printed */

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mc_main_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
  run_mode = RUN_OK;
  add_info.nweights = 0;
  add_info.default_weights = NULL;
}

static void remove_tmpdir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

static const char *path(const char *name) {
  static char buf[8][256];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, 256, "%s/%s", tmpdir, name);
  return p;
}

/* "name=<tmpdir>/file" */
static const char *arg(const char *name, const char *file) {
  static char buf[8][300];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, 300, "%s=%s", name, path(file));
  return p;
}

static void save(const char *file, McDType dtype, int rank,
                 const int64_t *shape, const void *data) {
  McTensor t = {dtype, rank, {0}, (void *)data};
  McError e;
  for (int i = 0; i < rank; i++)
    t.shape[i] = shape[i];
  cr_assert_eq(mc_npy_write(path(file), &t, &e), MC_OK, "%s", e.msg);
}

/* Runs mc_main on a NULL-terminated argv, capturing stdout and stderr. */
/* when set, run() drives mc_main_entries over {add1, other} */
static int use_entries;

static int run(const char *first, ...) {
  char *argv[32];
  int argc = 0;
  va_list ap;
  argv[argc++] = "/some/dir/add1";
  va_start(ap, first);
  for (const char *a = first; a; a = va_arg(ap, const char *))
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  fflush(stdout);
  fflush(stderr);
  int saved_out = dup(1), saved_err = dup(2);
  char captured[256];
  snprintf(captured, sizeof captured, "%s/captured.txt", tmpdir);
  int fd = open(captured, O_RDWR | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 1);
  dup2(fd, 2);
  McModelInfo other = add_info;
  other.name = "other";
  const McModelInfo *entries[2] = {&add_info, &other};
  int status = use_entries ? mc_main_entries(argc, argv, 2, entries)
                           : mc_main(argc, argv, &add_info);
  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  lseek(fd, 0, SEEK_SET);
  ssize_t n = read(fd, output, sizeof output - 1);
  output[n > 0 ? n : 0] = '\0';
  close(fd);
  unlink(captured);
  return status;
}

static void expect_error(int status, const char *needle) {
  cr_assert_eq(status, 1, "status %d, output: %s", status, output);
  cr_assert(strstr(output, "add1: error: "), "output: %s", output);
  cr_assert(strstr(output, needle), "output '%s' lacks '%s'", output, needle);
}

static int count_entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  if (!d)
    return -1;
  for (struct dirent *de; (de = readdir(d));)
    n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
  closedir(d);
  return n;
}

static const float x23[6] = {1, 2, 3, 4, 5, 6};
static const int64_t s23[2] = {2, 3};

/* ---- success paths ------------------------------------------------------ */

Test(mc_main, help_lists_inputs_and_outputs, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  cr_assert_eq(run("--help", NULL), 0);
  cr_assert(strstr(output, "usage: add1"), "%s", output);
  cr_assert(strstr(output, "x                f32, rank 2"), "%s", output);
  cr_assert(strstr(output, "mask             bool, rank 1 (optional)"), "%s",
            output);
  cr_assert(strstr(output, "n                i64, rank 1"), "%s", output);
}

Test(mc_main, runs_and_writes_every_output, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  int64_t ids[2] = {5, 7}, s2[1] = {2};
  uint8_t mask[3] = {1, 0, 1};
  int64_t s3[1] = {3};
  save("x.npy", MC_F32, 2, s23, x23);
  save("ids.npy", MC_I64, 1, s2, ids); /* i64 accepted for an i32 input */
  save("mask.npy", MC_BOOL, 1, s3, mask);
  cr_assert_eq(run(arg("x", "x.npy"), arg("ids", "ids.npy"),
                   arg("mask", "mask.npy"), "-o", path("out/a/b"), NULL),
               0, "%s", output);
  cr_assert_str_eq(output, "");
  McTensor y, n;
  McError e;
  cr_assert_eq(mc_npy_read(path("out/a/b/y.npy"), &y, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(y.rank, 2);
  cr_assert_eq(y.shape[1], 3);
  cr_assert_eq(((float *)y.data)[5], 7.0f);
  cr_assert_eq(mc_npy_read(path("out/a/b/n.npy"), &n, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(((int64_t *)n.data)[0], 2);
  cr_assert_eq(((int64_t *)n.data)[1], 2);
  cr_assert_eq(((int64_t *)n.data)[2], 12);
  mc_tensor_free(&y);
  mc_tensor_free(&n);
  cr_assert_eq(count_entries(path("out/a/b")), 2); /* no temp files left */
}

/* --time R: R more runs after the first, their times on stderr, the
 * outputs of the last; bad counts are usage errors. */
Test(mc_main, time_runs_the_model_again_and_reports, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  save("x.npy", MC_F32, 2, s23, x23);
  model_runs = 0;
  cr_assert_eq(run("--time", "3", arg("x", "x.npy"), "-o", path("out"), NULL),
               0, "%s", output);
  cr_assert_eq(model_runs, 4);
  cr_assert(strstr(output, "add1: time: median ") &&
                strstr(output, " ms, fastest ") && strstr(output, ", 3 runs\n"),
            "%s", output);
  McTensor y;
  McError e;
  cr_assert_eq(mc_npy_read(path("out/y.npy"), &y, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(((float *)y.data)[5], 7.0f);
  mc_tensor_free(&y);
  cr_assert_eq(run("--time=1", arg("x", "x.npy"), "-o", path("out"), NULL), 0,
               "%s", output);
  expect_error(run("--time", "0", arg("x", "x.npy"), "-o", path("o2"), NULL),
               "--time: '0' is not a positive integer");
  expect_error(run("--time=x", arg("x", "x.npy"), "-o", path("o2"), NULL),
               "--time: 'x' is not a positive integer");
  expect_error(run(arg("x", "x.npy"), "-o", path("o2"), "--time", NULL),
               "--time needs an argument");
  expect_error(run("--threads=0", arg("x", "x.npy"), "-o", path("o2"), NULL),
               "--threads: '0' is not a positive integer");
  cr_assert_eq(count_entries(path("o2")), -1);
}

Test(mc_main, converts_f64_and_skips_absent_optionals, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  double xd[6] = {0.5, 1, 2, 3, 4, 5};
  save("x.npy", MC_F64, 2, s23, xd);
  cr_assert_eq(run("-o", path("out"), arg("x", "x.npy"), NULL), 0, "%s",
               output);
  McTensor y, n;
  McError e;
  cr_assert_eq(mc_npy_read(path("out/y.npy"), &y, &e), MC_OK);
  cr_assert_eq(y.dtype, MC_F32);
  cr_assert_eq(((float *)y.data)[0], 1.5f);
  cr_assert_eq(mc_npy_read(path("out/n.npy"), &n, &e), MC_OK);
  cr_assert_eq(((int64_t *)n.data)[0], -1);
  cr_assert_eq(((int64_t *)n.data)[1], -1);
  mc_tensor_free(&y);
  mc_tensor_free(&n);
}

Test(mc_main, weights_from_flag_or_default, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  /* a one-tensor safetensors file: bias = 10, under a "model." prefix */
  const char header[] = "{\"model.bias\": {\"dtype\": \"F32\", \"shape\": [1], "
                        "\"data_offsets\": [0, 4]}}";
  unsigned char file[128] = {0};
  size_t hlen = sizeof header - 1;
  float ten = 10;
  file[0] = (unsigned char)hlen;
  memcpy(file + 8, header, hlen);
  memcpy(file + 8 + hlen, &ten, 4);
  FILE *f = fopen(path("w.safetensors"), "wb");
  fwrite(file, 1, 8 + hlen + 4, f);
  fclose(f);
  save("x.npy", MC_F32, 2, s23, x23);
  add_info.nweights = 1;
  expect_error(run(arg("x", "x.npy"), "-o", path("out"), NULL),
               "needs weights: pass --weights");
  cr_assert_eq(run("--weights", path("w.safetensors"), arg("x", "x.npy"), "-o",
                   path("out"), NULL),
               0, "%s", output);
  McTensor y;
  McError e;
  cr_assert_eq(mc_npy_read(path("out/y.npy"), &y, &e), MC_OK);
  cr_assert_eq(((float *)y.data)[0], 12.0f);
  mc_tensor_free(&y);
  add_info.default_weights = path("w.safetensors");
  cr_assert_eq(run(arg("x", "x.npy"), "-o", path("out2"), NULL), 0, "%s",
               output);
  expect_error(run("--weights=/nonexistent.safetensors", arg("x", "x.npy"),
                   "-o", path("out3"), NULL),
               "cannot open /nonexistent.safetensors");
  cr_assert_eq(count_entries(path("out3")), -1);
}

/* ---- errors ------------------------------------------------------------- */

Test(mc_main, usage_errors, .init = make_tmpdir, .fini = remove_tmpdir) {
  save("x.npy", MC_F32, 2, s23, x23);
  expect_error(run(arg("x", "x.npy"), NULL), "pass -o OUTDIR");
  expect_error(run(arg("x", "x.npy"), "-o", NULL), "-o needs an argument");
  expect_error(run("-o", path("out"), NULL),
               "missing input 'x' (f32, rank 2): pass x=FILE.npy");
  expect_error(run(arg("z", "x.npy"), "-o", path("out"), NULL),
               "unknown input 'z'");
  expect_error(
      run(arg("x", "x.npy"), arg("x", "x.npy"), "-o", path("out"), NULL),
      "input 'x' given twice");
  expect_error(run("x=", "-o", path("out"), NULL), "missing file name");
  expect_error(run("--frobnicate", arg("x", "x.npy"), "-o", path("out"), NULL),
               "unexpected argument '--frobnicate'");
  cr_assert(strstr(output, "--help"));
  expect_error(run(arg("x", "nothere.npy"), "-o", path("out"), NULL),
               "input 'x': cannot open");
  cr_assert_eq(count_entries(path("out")), -1);
}

Test(mc_main, input_type_errors, .init = make_tmpdir, .fini = remove_tmpdir) {
  int64_t s3[1] = {3}, s2[1] = {2}, big[2] = {1, 1LL << 31};
  int32_t i3[3] = {1, 2, 3};
  double huge[6] = {1, 2, 3, 4, 1e39, 6};
  save("x.npy", MC_F32, 2, s23, x23);
  save("x1.npy", MC_F32, 1, s3, x23);
  save("xi.npy", MC_I32, 1, s3, i3);
  save("huge.npy", MC_F64, 2, s23, huge);
  save("big.npy", MC_I64, 1, s2, big);
  expect_error(run(arg("x", "x1.npy"), "-o", path("out"), NULL),
               "input 'x': expected rank 2 (f32), found shape [3]");
  expect_error(run(arg("x", "xi.npy"), "-o", path("out"), NULL),
               "input 'x': expected f32 data (an f32 or f64 .npy), found i32");
  expect_error(
      run(arg("x", "x.npy"), arg("ids", "x1.npy"), "-o", path("out"), NULL),
      "input 'ids': expected i32 data (an i32 or i64 .npy), found f32");
  expect_error(
      run(arg("x", "x.npy"), arg("mask", "xi.npy"), "-o", path("out"), NULL),
      "input 'mask': expected bool data (a bool .npy), found i32");
  expect_error(run(arg("x", "huge.npy"), "-o", path("out"), NULL),
               "input 'x': value 1e+39 at index 4 is out of the f32 range");
  expect_error(
      run(arg("x", "x.npy"), arg("ids", "big.npy"), "-o", path("out"), NULL),
      "input 'ids': value 2147483648 at index 1 is out of the i32 "
      "range");
  cr_assert_eq(count_entries(path("out")), -1);
}

/* ---- all or nothing ----------------------------------------------------- */

static void expect_untouched(const char *outdir, int entries) {
  cr_assert_eq(count_entries(outdir), entries, "%s", output);
}

Test(mc_main, failed_second_output_writes_nothing, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  save("x.npy", MC_F32, 2, s23, x23);
  run_mode = RUN_SECOND_OUTPUT_NULL;
  expect_error(run(arg("x", "x.npy"), "-o", path("out/new"), NULL),
               "output 'n'");
  expect_untouched(path("out"), -1); /* the directories it made are gone */
  run_mode = RUN_SECOND_OUTPUT_BF16;
  expect_error(run(arg("x", "x.npy"), "-o", path("out/new"), NULL),
               "output 'n': .npy cannot hold bf16 data");
  expect_untouched(path("out"), -1);
  /* into an existing directory holding an older result */
  run_mode = RUN_OK;
  cr_assert_eq(run(arg("x", "x.npy"), "-o", path("res"), NULL), 0);
  double xd[6] = {9, 9, 9, 9, 9, 9};
  save("x.npy", MC_F64, 2, s23, xd);
  run_mode = RUN_SECOND_OUTPUT_BF16;
  expect_error(run(arg("x", "x.npy"), "-o", path("res"), NULL), "output 'n'");
  expect_untouched(path("res"), 2);
  McTensor y;
  McError e;
  cr_assert_eq(mc_npy_read(path("res/y.npy"), &y, &e), MC_OK);
  cr_assert_eq(((float *)y.data)[0], 2.0f); /* still the old y */
  mc_tensor_free(&y);
  run_mode = RUN_FAIL;
  expect_error(run(arg("x", "x.npy"), "-o", path("res"), NULL),
               "model failed on purpose");
  expect_untouched(path("res"), 2);
}

Test(mc_main, writes_every_output_into_one_safetensors_file,
     .init = make_tmpdir, .fini = remove_tmpdir) {
  save("x.npy", MC_F32, 2, s23, x23);
  cr_assert_eq(run(arg("x", "x.npy"), "-o", path("out.safetensors"), NULL), 0,
               "%s", output);
  McSafetensors *st;
  McError e;
  cr_assert_eq(mc_st_open(path("out.safetensors"), &st, &e), MC_OK, "%s",
               e.msg);
  cr_assert_eq(mc_st_count(st), 2);
  const McStTensor *y = mc_st_find(st, "y", NULL),
                   *n = mc_st_find(st, "n", NULL);
  cr_assert(y && n);
  cr_assert(y->dtype == MC_F32 && y->rank == 2 && y->shape[1] == 3);
  float y0;
  memcpy(&y0, y->data, sizeof y0);
  cr_assert_eq(y0, 2.0f);
  cr_assert(n->dtype == MC_I64 && n->shape[0] == 3);
  mc_st_close(st);
  /* a failed run leaves the old file as it was and nothing else */
  run_mode = RUN_SECOND_OUTPUT_NULL;
  expect_error(run(arg("x", "x.npy"), "-o", path("out.safetensors"), NULL),
               "'n' has no data");
  run_mode = RUN_FAIL;
  expect_error(run(arg("x", "x.npy"), "-o", path("out.safetensors"), NULL),
               "model failed on purpose");
  cr_assert_eq(count_entries(tmpdir), 2); /* x.npy, out.safetensors */
  cr_assert_eq(mc_st_open(path("out.safetensors"), &st, &e), MC_OK);
  mc_st_close(st);
}

Test(mc_main, output_dir_that_is_a_file, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  save("x.npy", MC_F32, 2, s23, x23);
  expect_error(run(arg("x", "x.npy"), "-o", path("x.npy"), NULL),
               "is not a directory");
  expect_error(run(arg("x", "x.npy"), "-o", path("x.npy/sub"), NULL),
               "cannot create directory");
}

Test(mc_main, rejects_invalid_model_description) {
  McModelInfo bad = add_info;
  char *argv[2] = {"prog", NULL};
  bad.run = NULL;
  cr_assert_eq(mc_main(1, argv, &bad), 1);
  cr_assert_eq(mc_main(1, argv, NULL), 1);
}

/* ---- several entry points ------------------------------------------------ */

Test(mc_main, entries_pick_by_first_argument, .init = make_tmpdir,
     .fini = remove_tmpdir) {
  use_entries = 1;
  int64_t ids[2] = {5, 7}, s2[1] = {2};
  save("x.npy", MC_F32, 2, s23, x23);
  save("ids.npy", MC_I64, 1, s2, ids);
  cr_assert_eq(run("add1", arg("x", "x.npy"), arg("ids", "ids.npy"), "-o",
                   path("out"), NULL),
               0, "%s", output);
  cr_assert_eq(count_entries(path("out")), 2);
  cr_assert_eq(run("--help", NULL), 0);
  cr_assert(strstr(output, "entries: add1 other"), "%s", output);
  cr_assert_eq(run("nope", "-o", path("out2"), NULL), 1);
  cr_assert(strstr(output, "unknown entry 'nope' (entries: add1 other)"), "%s",
            output);
  cr_assert_eq(run(arg("x", "x.npy"), "-o", path("out3"), NULL), 1);
  cr_assert(strstr(output, "usage:"), "%s", output);
  cr_assert_eq(count_entries(path("out3")), -1);
  use_entries = 0;
}
