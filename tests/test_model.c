/* The generated model's glue in the runtime (runtime/mc_model.c), driven by
 * tables written here by hand: binding the sizes from the inputs and the
 * messages that name both sides, the outputs' shapes, opening with and
 * without weights, prepared weights, the run-time plan. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mc_runtime.h"

/* symbols: 0 = B, 1 = T */
static const char *const symbols[2] = {"B", "T"};
static const McModelDesc desc = {
    .name = "tm", .nsymbols = 2, .symbols = symbols};

#define SYM(s)                                                                 \
  {                                                                            \
    1, 1, {                                                                    \
      s                                                                        \
    }                                                                          \
  }
static const McDim in_dims[] = {
    {"B", 1, {SYM(0)}},                         /* x: f32[B, T] */
    {"T", 1, {SYM(1)}},                         /* */
    {"B", 1, {SYM(0)}},                         /* pad: bool[B, T], optional */
    {"T", 1, {SYM(1)}},                         /* */
    {"2*T + 1", 2, {{2, 1, {1}}, {1, 0, {0}}}}, /* z: f32[2*T + 1, 3] */
    {"3", 1, {{3, 0, {0}}}},                    /* */
    {"B*T", 1, {{1, 2, {0, 1}}}},               /* flat: f32[B*T], optional */
};
static const McDim out_dims[] = {
    {"B*T", 1, {{1, 2, {0, 1}}}}, /* y: f32[B*T] */
};
static const McIOSpec inputs[] = {
    {"x", MC_F32, 2, 0, in_dims},
    {"pad", MC_BOOL, 2, 1, in_dims + 2},
    {"z", MC_F32, 2, 0, in_dims + 4},
    {"flat", MC_F32, 1, 1, in_dims + 6},
};
static const McIOSpec outputs[] = {{"y", MC_F32, 1, 0, out_dims}};

static int64_t seen[2];
static int run_rc;

static int run(void *model, const int64_t *syms, void *const *in,
               void *const *out, McError *e) {
  (void)model;
  (void)in;
  seen[0] = syms[0];
  seen[1] = syms[1];
  float *y = out[0];
  for (int64_t i = 0; i < syms[0] * syms[1]; i++)
    y[i] = (float)i;
  return run_rc == MC_OK ? MC_OK : mc_fail(e, run_rc, "run failed");
}

static const McEntry entry = {.model = &desc,
                              .ninputs = 4,
                              .inputs = inputs,
                              .noutputs = 1,
                              .outputs = outputs,
                              .syms = 3,
                              .run = run};

static float xs[64], zs[64], flat[64];
static uint8_t pads[64];
static McTensor in[4];
static McTensor out[1];
static McError err;

static void tensor(int i, McDType t, void *data, int rank, int64_t d0,
                   int64_t d1) {
  in[i].dtype = t;
  in[i].rank = rank;
  in[i].shape[0] = d0;
  in[i].shape[1] = d1;
  in[i].data = data;
}

/* B = 2, T = 3: x [2, 3], z [7, 3], pad and flat absent */
static void setup(void) {
  memset(in, 0, sizeof in);
  memset(out, 0, sizeof out);
  memset(&err, 0, sizeof err);
  run_rc = MC_OK;
  tensor(0, MC_F32, xs, 2, 2, 3);
  tensor(1, MC_BOOL, NULL, 2, 0, 0);
  tensor(2, MC_F32, zs, 2, 7, 3);
  tensor(3, MC_F32, NULL, 1, 0, 0);
}

static int run_entry(void) {
  return mc_entry_run(&entry, NULL, in, out, &err);
}

static void expect_error(int code, const char *msg) {
  cr_expect_eq(run_entry(), code, "%s", err.msg);
  cr_expect_str_eq(err.msg, msg);
  cr_expect_null(out[0].data);
}

TestSuite(model, .init = setup);

Test(model, binds_the_symbols_and_allocates_the_outputs) {
  cr_assert_eq(run_entry(), MC_OK, "%s", err.msg);
  cr_expect(seen[0] == 2 && seen[1] == 3);
  cr_expect(out[0].rank == 1 && out[0].shape[0] == 6);
  cr_expect_eq(((float *)out[0].data)[5], 5.0f);
  mc_tensor_free(&out[0]);
  /* the optional inputs, when given, are checked too */
  tensor(1, MC_BOOL, pads, 2, 2, 3);
  tensor(3, MC_F32, flat, 1, 6, 0);
  cr_assert_eq(run_entry(), MC_OK, "%s", err.msg);
  mc_tensor_free(&out[0]);
}

Test(model, names_both_sides_of_a_mismatch) {
  tensor(1, MC_BOOL, pads, 2, 2, 7);
  expect_error(MC_ERR_SHAPE,
               "input 'pad': dimension 1 is 7 but T = 3 from input 'x'");
}

Test(model, names_the_symbol_inside_an_expression) {
  tensor(3, MC_F32, flat, 1, 5, 0);
  expect_error(MC_ERR_SHAPE, "input 'flat': dimension 0 is 5 but B*T = 6");
  tensor(2, MC_F32, zs, 2, 8, 3);
  tensor(3, MC_F32, NULL, 1, 0, 0);
  expect_error(MC_ERR_SHAPE, "input 'z': dimension 0 is 8 but 2*T + 1 = 7 "
                             "(T from input 'x')");
}

Test(model, checks_constants_dtypes_ranks_and_presence) {
  tensor(2, MC_F32, zs, 2, 7, 4);
  expect_error(MC_ERR_SHAPE, "input 'z': dimension 1 is 4 but must be 3");
  tensor(2, MC_F64, zs, 2, 7, 3);
  expect_error(MC_ERR_DTYPE, "input 'z' has dtype f64, expected f32");
  tensor(2, MC_F32, zs, 1, 7, 0);
  expect_error(MC_ERR_SHAPE,
               "input 'z' has rank 1, expected 2 (f32[2*T + 1, 3])");
  tensor(2, MC_F32, NULL, 2, 7, 3);
  expect_error(MC_ERR_USAGE, "input 'z' is required");
}

Test(model, solves_a_linear_dimension_and_rejects_other_forms) {
  /* z first: T is solved from 2*T + 1, then x checks against it */
  McIOSpec zfirst[2] = {inputs[2], inputs[0]};
  McEntry e2 = entry;
  e2.ninputs = 2;
  e2.inputs = zfirst;
  McTensor in2[2];
  memset(in2, 0, sizeof in2);
  in2[0] = in[2];
  in2[1] = in[0];
  cr_assert_eq(mc_entry_run(&e2, NULL, in2, out, &err), MC_OK, "%s", err.msg);
  cr_expect_eq(seen[1], 3);
  mc_tensor_free(&out[0]);
  in2[0].shape[0] = 8;
  cr_expect_eq(mc_entry_run(&e2, NULL, in2, out, &err), MC_ERR_SHAPE);
  cr_expect_str_eq(err.msg,
                   "input 'z': dimension 0 is 8, not of the form 2*T + 1");
}

Test(model, a_symbol_only_absent_inputs_give_is_a_usage_error) {
  McIOSpec only[1] = {inputs[1]}; /* pad gives B and T, and is optional */
  McEntry e2 = entry;
  e2.ninputs = 1;
  e2.inputs = only;
  McTensor none[1];
  memset(none, 0, sizeof none);
  cr_expect_eq(mc_entry_run(&e2, NULL, none, out, &err), MC_ERR_USAGE);
  cr_expect_str_eq(err.msg,
                   "cannot determine B: the inputs that give it are absent");
}

Test(model, a_failed_run_leaves_no_output) {
  run_rc = MC_ERR_RANGE;
  expect_error(MC_ERR_RANGE, "run failed");
}

/* ---- opening ------------------------------------------------------------ */

static const McWeightSpec wspec[1] = {{"w", 2, {2, 3}, MC_F32, 0, 0}};

static int prepare(void *model, const int64_t *syms, void *const *in_,
                   void *const *out_, McError *e) {
  (void)syms;
  (void)in_;
  (void)e;
  const McModel *m = model;
  cr_assert_null(m->w[0], "the prepared weight is set after prepare");
  float *p = out_[0];
  for (int i = 0; i < 6; i++)
    p[i] = (float)(i + 1);
  return MC_OK;
}

Test(model, opens_without_weights_and_asks_for_a_file_when_it_needs_one) {
  McModel *m = mc_model_open(&desc, NULL, &err);
  cr_assert_not_null(m, "%s", err.msg);
  mc_model_close(m);
  McModelDesc d = desc;
  d.nweights = 1;
  d.weights = wspec;
  cr_expect_null(mc_model_open(&d, NULL, &err));
  cr_expect_eq(err.code, MC_ERR_USAGE);
  cr_expect_str_eq(err.msg, "tm_open: no weights file given");
  cr_expect_null(mc_model_open(&d, "/nonexistent/w.safetensors", &err));
  cr_expect_eq(err.code, MC_ERR_IO, "%s", err.msg);
  /* an entry that reads none of the weights needs no file */
  McEntry e2 = entry;
  e2.model = &d;
  void *h = NULL;
  cr_expect_eq(mc_entry_open(&e2, NULL, &h, &err), MC_OK, "%s", err.msg);
  mc_model_close(h);
}

Test(model, computes_and_packs_the_prepared_weights) {
  McPreparedSpec plain = {0, 6, 0, 0, 0, 0};
  McPreparedSpec packed = {0, 6, 1, 2, 3, 1};
  for (int k = 0; k < 2; k++) {
    McModelDesc d = desc;
    d.nprepared = 1;
    d.prepared = k ? &packed : &plain;
    d.prepare = prepare;
    McModel *m = mc_model_open(&d, NULL, &err);
    cr_assert_not_null(m, "%s", err.msg);
    const float *w = m->w[0];
    if (!k) {
      for (int i = 0; i < 6; i++)
        cr_expect_eq(w[i], (float)(i + 1));
    } else {
      float src[6] = {1, 2, 3, 4, 5, 6};
      int64_t n = mc_gemm_weight_floats(2, 3, 1);
      float *want = calloc((size_t)n, sizeof *want);
      mc_gemm_pack_weight(2, 3, 1, src, want);
      cr_expect_eq(memcmp(w, want, sizeof(float) * (size_t)n), 0);
      free(want);
    }
    mc_model_close(m);
  }
}

/* ---- prepared weights files (mc_prepared.c) ------------------------------ */

/* prepared weight 0 (slot 1) from weight 0, kept in f16: its bits */
static int prepare_bits(void *model, const int64_t *syms, void *const *in_,
                        void *const *out_, McError *e) {
  (void)syms;
  (void)in_;
  (void)e;
  const uint16_t *w = ((const McModel *)model)->w[0];
  for (int i = 0; i < 6; i++)
    ((float *)out_[0])[i] = (float)w[i];
  return MC_OK;
}

static int prepares;

static int prepare_counted(void *model, const int64_t *syms, void *const *in_,
                           void *const *out_, McError *e) {
  prepares++;
  return prepare_bits(model, syms, in_, out_, e);
}

Test(model, saves_and_maps_prepared_weights) {
  char dir[] = "/tmp/mc_prepared_XXXXXX", src[64], saved[64], bad[64];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(src, sizeof src, "%s/w.safetensors", dir);
  snprintf(saved, sizeof saved, "%s/p.safetensors", dir);
  snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
  float w[6] = {1, 2, 3, 4, 5, 6};
  McTensor wt = {MC_F32, 2, {2, 3}, w};
  const char *wname = "w";
  cr_assert_eq(mc_st_write(src, NULL, &wname, &wt, 1, &err), MC_OK);
  McPreparedSpec packed = {1, 6, 1, 2, 3, 1};
  McWeightSpec f16 = wspec[0];
  f16.store = MC_F16;
  McModelDesc d = desc;
  d.nweights = 1;
  d.weights = &f16;
  d.nprepared = 1;
  d.prepared = &packed;
  d.prepare = prepare_counted;
  prepares = 0;
  McModel *m = mc_model_open(&d, src, &err);
  cr_assert_not_null(m, "%s", err.msg);
  cr_assert_eq(mc_model_save(m, saved, &err), MC_OK, "%s", err.msg);
  McModel *p = mc_model_open(&d, saved, &err);
  cr_assert_not_null(p, "%s", err.msg);
  cr_expect_eq(prepares, 1, "the prepared file is mapped, not computed");
  cr_expect_eq(memcmp(p->w[0], m->w[0], 6 * sizeof(uint16_t)), 0);
  int64_t n = mc_gemm_weight_floats(2, 3, 1);
  cr_expect_eq(memcmp(p->w[1], m->w[1], (size_t)n * sizeof(float)), 0);
  mc_model_close(p);
  /* another layout: the same weight kept in f32 */
  McModelDesc other = d;
  other.weights = wspec;
  cr_expect_null(mc_model_open(&other, saved, &err));
  cr_expect(strstr(err.msg, "prepared for another build"), "%s", err.msg);
  /* the right format, a tensor missing or of another size */
  McSafetensors *st;
  cr_assert_eq(mc_st_open(saved, &st, &err), MC_OK);
  char format[64];
  snprintf(format, sizeof format, "%s", mc_st_format(st));
  mc_st_close(st);
  uint16_t h[6] = {0};
  McTensor ht = {MC_F16, 1, {6}, h};
  cr_assert_eq(mc_st_write(bad, format, &wname, &ht, 1, &err), MC_OK);
  cr_expect_null(mc_model_open(&d, bad, &err));
  cr_expect(strstr(err.msg, "prepared weight 'prepared.0' is missing"), "%s",
            err.msg);
  ht.shape[0] = 5;
  cr_assert_eq(mc_st_write(bad, format, &wname, &ht, 1, &err), MC_OK);
  cr_expect_null(mc_model_open(&d, bad, &err));
  cr_expect(strstr(err.msg, "'w' is not kept as this model keeps it (f16[6]"),
            "%s", err.msg);
  mc_model_close(m);
  for (const char *f = src; f; f = f == src ? saved : f == saved ? bad : NULL)
    unlink(f);
  rmdir(dir);
}

/* A prepared file's tensors of 2 MB or more are copied out of the mapping
 * (into 2 MB pages); smaller ones are read where they are mapped. */
Test(model, copies_large_prepared_weights_out_of_the_mapping) {
  char dir[] = "/tmp/mc_prepared_XXXXXX", src[64], saved[64];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(src, sizeof src, "%s/w.safetensors", dir);
  snprintf(saved, sizeof saved, "%s/p.safetensors", dir);
  enum { R = 1024, C = 513 }; /* 2,101,248 bytes */
  float *big = malloc(sizeof *big * R * C), small[6] = {1, 2, 3, 4, 5, 6};
  cr_assert_not_null(big);
  for (int i = 0; i < R * C; i++)
    big[i] = (float)i;
  McTensor ts[2] = {{MC_F32, 2, {R, C}, big}, {MC_F32, 2, {2, 3}, small}};
  const char *names[2] = {"big", "w"};
  cr_assert_eq(mc_st_write(src, NULL, names, ts, 2, &err), MC_OK);
  McWeightSpec specs[2] = {{"big", 2, {R, C}, MC_F32, 0, 0}, wspec[0]};
  McModelDesc d = desc;
  d.nweights = 2;
  d.weights = specs;
  McModel *m = mc_model_open(&d, src, &err);
  cr_assert_not_null(m, "%s", err.msg);
  cr_assert_eq(mc_model_save(m, saved, &err), MC_OK, "%s", err.msg);
  McModel *p = mc_model_open(&d, saved, &err);
  cr_assert_not_null(p, "%s", err.msg);
  cr_assert_not_null(p->copies);
  cr_expect_eq(p->copies[0], p->w[0], "the large weight is a copy");
  cr_expect_null(p->copies[1], "the small one is read from the mapping");
  cr_expect_eq(memcmp(p->w[0], big, sizeof *big * R * C), 0);
  cr_expect_eq(memcmp(p->w[1], small, sizeof small), 0);
  mc_model_close(p);
  mc_model_close(m);
  free(big);
  unlink(src);
  unlink(saved);
  rmdir(dir);
}

/* ---- the run-time plan -------------------------------------------------- */

Test(model, plan_place_is_first_fit) {
  size_t off[3], size[3] = {64, 128, 64};
  size_t end = mc_plan_place(0, NULL, 0, off, size, 0);
  int meets0[1] = {0};
  end = mc_plan_place(1, meets0, 1, off, size, end);
  int meets1[1] = {1}; /* buffer 0 is dead by then: its bytes are reused */
  end = mc_plan_place(2, meets1, 1, off, size, end);
  cr_expect(off[0] == 0 && off[1] == 64 && off[2] == 0);
  cr_expect_eq(end, 192);
  int live[3][2] = {{0, 1}, {1, 2}, {2, 3}};
  mc_plan_check("t", 3, (const int(*)[2])live, off, size, end);
}
