/* mc_st_write: safetensors files written by the runtime, read back by its
 * own reader (mc_st_open, which checks the whole format), byte for byte. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mc_runtime.h"

static char dir[64];
static char file[128];

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/mc_st_write_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(file, sizeof file, "%s/w.safetensors", dir);
}

static void remove_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

static int count_files(void) {
  DIR *d = opendir(dir);
  int n = 0;
  cr_assert_not_null(d);
  for (struct dirent *de; (de = readdir(d));)
    n += de->d_name[0] != '.';
  closedir(d);
  return n;
}

Test(st_write, round_trips_every_dtype_in_order, .init = make_dir,
     .fini = remove_dir) {
  float f[6] = {1.5f, -2, 0.25f, -0.0f, 1e-40f, 3};
  double d[2] = {1e300, -1};
  int32_t i32[3] = {-7, 0, 2147483647};
  int64_t i64[1] = {-9000000000LL};
  uint8_t b[4] = {0, 1, 7, 0}; /* any nonzero byte is written as 1 */
  uint16_t h[2] = {0x3c00, 0xc000};
  McTensor t[7] = {{MC_F32, 2, {2, 3}, f},    {MC_F64, 1, {2}, d},
                   {MC_I32, 1, {3}, i32},     {MC_I64, 0, {0}, i64},
                   {MC_BOOL, 2, {2, 2}, b},   {MC_F16, 1, {2}, h},
                   {MC_BF16, 2, {0, 5}, NULL}};
  const char *names[7] = {"fc.weight", "d", "ids", "n", "m", "h", "empty"};
  McError e;
  cr_assert_eq(mc_st_write(file, NULL, names, t, 7, &e), MC_OK, "%s", e.msg);
  McSafetensors *st;
  cr_assert_eq(mc_st_open(file, &st, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(mc_st_count(st), 7);
  for (int i = 0; i < 7; i++) {
    const McStTensor *r = mc_st_find(st, names[i], NULL);
    cr_assert_not_null(r, "%s", names[i]);
    cr_assert_eq(r->dtype, t[i].dtype, "%s", names[i]);
    cr_assert_eq(r->rank, t[i].rank, "%s", names[i]);
    for (int j = 0; j < r->rank; j++)
      cr_assert_eq(r->shape[j], t[i].shape[j]);
    size_t n = 0;
    cr_assert_eq(mc_tensor_nbytes(&t[i], &n, &e), MC_OK);
    cr_assert_eq(r->nbytes, n, "%s", names[i]);
    if (t[i].dtype == MC_BOOL) {
      const uint8_t *got = r->data;
      cr_assert(got[0] == 0 && got[1] == 1 && got[2] == 1 && got[3] == 0);
    } else if (n) {
      cr_assert_eq(memcmp(r->data, t[i].data, n), 0, "%s", names[i]);
    }
  }
  /* in the order given: each tensor's bytes follow the previous one's */
  for (int i = 1; i < 7; i++)
    cr_assert_eq((const char *)mc_st_get(st, i)->data,
                 (const char *)mc_st_get(st, i - 1)->data +
                     mc_st_get(st, i - 1)->nbytes);
  mc_st_close(st);
  cr_assert_eq(count_files(), 1); /* no temporary file left */
}

Test(st_write, escapes_names_and_pads_the_header, .init = make_dir,
     .fini = remove_dir) {
  float v = 1;
  McTensor t = {MC_F32, 0, {0}, &v};
  const char *name = "a \"quoted\" \\ name\twith\x01 ctl";
  McError e;
  cr_assert_eq(mc_st_write(file, NULL, &name, &t, 1, &e), MC_OK, "%s", e.msg);
  McSafetensors *st;
  cr_assert_eq(mc_st_open(file, &st, &e), MC_OK, "%s", e.msg);
  cr_assert_str_eq(mc_st_get(st, 0)->name, name);
  mc_st_close(st);
  FILE *f = fopen(file, "rb");
  unsigned char len[8];
  cr_assert_eq(fread(len, 1, 8, f), 8);
  fclose(f);
  cr_assert_eq((8 + len[0]) % 64, 0); /* data starts 64-byte aligned */
  /* no tensors at all is a valid file too */
  cr_assert_eq(mc_st_write(file, NULL, NULL, NULL, 0, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(mc_st_open(file, &st, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(mc_st_count(st), 0);
  mc_st_close(st);
}

Test(st_write, errors_leave_nothing_and_keep_the_old_file, .init = make_dir,
     .fini = remove_dir) {
  float v[2] = {1, 2};
  McTensor t[2] = {{MC_F32, 1, {2}, v}, {MC_F32, 1, {1}, v}};
  const char *names[2] = {"a", "b"};
  McError e;
  cr_assert_eq(mc_st_write(file, NULL, names, t, 2, &e), MC_OK, "%s", e.msg);
  const char *same[2] = {"a", "a"};
  cr_assert_eq(mc_st_write(file, NULL, same, t, 2, &e), MC_ERR_NAME);
  cr_assert(strstr(e.msg, "two tensors are named 'a'"), "%s", e.msg);
  const char *unnamed[2] = {"a", ""};
  cr_assert_eq(mc_st_write(file, NULL, unnamed, t, 2, &e), MC_ERR_NAME);
  McTensor nodata[1] = {{MC_F32, 1, {4}, NULL}};
  cr_assert_eq(mc_st_write(file, NULL, names, nodata, 1, &e), MC_ERR_USAGE);
  cr_assert(strstr(e.msg, "'a' has no data"), "%s", e.msg);
  McTensor huge[1] = {{MC_F32, 2, {INT64_MAX / 2, 4}, v}};
  cr_assert_neq(mc_st_write(file, NULL, names, huge, 1, &e), MC_OK);
  char missing[160];
  snprintf(missing, sizeof missing, "%s/no/such/dir/w.safetensors", dir);
  cr_assert_eq(mc_st_write(missing, NULL, names, t, 2, &e), MC_ERR_IO);
  cr_assert(strstr(e.msg, "cannot create"), "%s", e.msg);
  /* the first file is intact, and nothing else was left */
  McSafetensors *st;
  cr_assert_eq(mc_st_open(file, &st, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(mc_st_count(st), 2);
  mc_st_close(st);
  cr_assert_eq(count_files(), 1);
}
