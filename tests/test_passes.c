/* Passes through the API: the pass manager, verify's structural checks,
 * infer_shapes, folding bit-exactness against the float functions, CSE
 * and DCE. IR-in/IR-out behaviour is covered by the golden files. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "mc_vmath.h"
#include "passes.h"

static Diag d;
static char *dbuf;
static size_t dlen;
static FILE *dout;

static void setup(void) {
  dout = open_memstream(&dbuf, &dlen);
  diag_init(&d, dout);
}
static void teardown(void) {
  diag_free(&d);
  fclose(dout);
  free(dbuf);
}
TestSuite(passes, .init = setup, .fini = teardown);

static const char *diag_text(void) {
  fflush(dout);
  return dbuf ? dbuf : "";
}

static Module *read_ok(const char *text) {
  Module *m = ir_read(text, "p.ir", &d);
  cr_assert_not_null(m, "%s", diag_text());
  return m;
}

static const char two_exps[] = "module @t\n"
                               "func @main(%x: f32[4]) {\n"
                               "  %0 = exp %x : f32[4]\n"
                               "  %1 = exp %x : f32[4]\n"
                               "  %2 = add %0, %1 : f32[4]\n"
                               "  %3 = neg %x : f32[4]\n"
                               "  return y = %2\n"
                               "}\n";

Test(passes, table_and_lookup) {
  int n;
  const PassInfo *list = pass_list(&n);
  cr_assert_eq(n, 12);
  cr_assert_str_eq(list[0].name, "verify");
  cr_assert_not_null(pass_find("hoist_weights"));
  cr_assert_not_null(pass_find("fold_constants"));
  cr_assert_not_null(pass_find("simplify"));
  cr_assert_not_null(pass_find("lazy_selects"));
  cr_assert_not_null(pass_find("sink_gathers"));
  cr_assert_null(pass_find("nope"));
  for (int i = 0; i < n; i++)
    cr_assert(strlen(list[i].summary) > 0);
}

Test(passes, run_list_and_print_after) {
  Module *m = read_ok(two_exps);
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  cr_assert(pass_run_list(m, " verify, cse ,dce", "cse", f, &d), "%s",
            diag_text());
  fclose(f);
  cr_assert(strstr(out, "// -----// IR after cse //----- //\n"
                        "module @t\n"
                        "func @main(%x: f32[4]) {\n"
                        "  %0 = exp %x : f32[4]\n"
                        "  %1 = add %0, %0 : f32[4]\n"
                        "  %2 = neg %x : f32[4]\n"),
            "%s", out);
  cr_assert_null(strstr(out, "after dce"));
  free(out);
  char *text = ir_print_to_string(m);
  cr_assert_null(strstr(text, "neg"));
  free(text);
  ir_module_free(m);
}

Test(passes, unknown_pass_fails_before_running) {
  Module *m = read_ok(two_exps);
  cr_assert(!pass_run_list(m, "cse,frob", NULL, NULL, &d));
  cr_assert(strstr(diag_text(), "unknown pass 'frob'"));
  char *text = ir_print_to_string(m);
  cr_assert(strstr(text, "%1 = exp %x")); /* cse did not run */
  free(text);
  cr_assert(!pass_run(m, "frob", &d));
  ir_module_free(m);
}

Test(passes, default_pipelines) {
  Module *m = read_ok(two_exps);
  cr_assert(pass_run_default(m, 0, &d));
  char *text = ir_print_to_string(m);
  cr_assert(strstr(text, "%1 = exp %x")); /* -O0 keeps duplicates */
  cr_assert_null(strstr(text, "neg"));
  free(text);
  cr_assert(pass_run_default(m, 2, &d));
  text = ir_print_to_string(m);
  cr_assert_null(strstr(text, "%1 = exp %x"));
  free(text);
  ir_module_free(m);
}

/* The prepare function and prepared params agree one to one, by name and
 * type; prepared params follow the file's; the prepare function takes no
 * inputs and reads no prepared param. */
Test(passes, verify_checks_prepared_weights) {
  static const char *const bad[][2] = {
      {"param \"p\" : f32[2] prepared\n",
       "prepared param \"p\" is no prepare function's output"},
      {"param \"p\" : f32[2] prepared\nparam \"w\" : f32[2]\n"
       "func prepare @prep() {\n  %0 = param 1 : f32[2]\n  return p = %0\n}\n",
       "param \"w\" of the weights file after a prepared one"},
      {"param \"w\" : f32[2]\nparam \"p\" : f32[3] prepared\n"
       "func prepare @prep() {\n  %0 = param 0 : f32[2]\n  return p = %0\n}\n",
       "prepared param \"p\" and its output differ in type"},
      {"param \"w\" : f32[2]\nparam \"p\" : f32[2] prepared\n"
       "func prepare @prep() {\n  %0 = param 1 : f32[2]\n  return p = %0\n}\n",
       "prepare function @prep reads prepared param \"p\""},
      {"param \"w\" : f32[2]\n"
       "func prepare @prep(%x: f32[2]) {\n  %0 = param 0 : f32[2]\n"
       "  return q = %0\n}\n",
       "prepare function @prep has inputs"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char text[512];
    snprintf(text, sizeof text, "module @t\n%s", bad[i][0]);
    Module *m = read_ok(text);
    cr_assert(!pass_verify(m, &d), "case %zu verified", i);
    cr_assert(strstr(diag_text(), bad[i][1]), "case %zu: %s", i, diag_text());
    ir_module_free(m);
  }
  Module *m = read_ok("module @t\nparam \"w\" : f32[2]\n"
                      "param \"p\" : f32[2] prepared\n"
                      "func prepare @prep() {\n  %0 = param 0 : f32[2]\n"
                      "  %1 = neg %0 : f32[2]\n  return p = %1\n}\n");
  cr_assert(pass_verify(m, &d), "%s", diag_text());
  ir_module_free(m);
}

Test(passes, verify_catches_broken_structure) {
  Module *m = read_ok(two_exps);
  Function *f = m->functions;
  Op *first = f->body->first, *second = first->next;
  cr_assert(pass_verify(m, &d));
  /* a use count out of sync */
  first->results[0]->nuses += 3;
  cr_assert(!pass_verify(m, &d));
  cr_assert(strstr(diag_text(), "exp result has nuses 4 but 1 uses"), "%s",
            diag_text());
  ir_recount_uses(m);
  cr_assert(pass_verify(m, &d));
  /* use before definition */
  ir_op_move_before(second->next, first); /* add now precedes the exps */
  cr_assert(!pass_verify(m, &d));
  cr_assert(strstr(diag_text(), "add operand 0 is not defined before its use"));
  ir_op_move_before(first, f->body->first);
  ir_op_move_before(second, f->body->first->next);
  cr_assert(pass_verify(m, &d), "%s", diag_text());
  /* a bad param index */
  first->kind = OP_PARAM;
  first->noperands = 0;
  first->attrs.param.index = 7;
  cr_assert(!pass_verify(m, &d));
  cr_assert(strstr(diag_text(), "param index 7 out of range"));
  ir_module_free(m);
}

Test(passes, verify_catches_value_from_another_function) {
  Module *m = read_ok("module @t\n"
                      "func @a(%x: f32[2]) {\n  return y = %x\n}\n"
                      "func @b(%x: f32[2]) {\n"
                      "  %0 = neg %x : f32[2]\n  return y = %0\n}\n");
  Function *a = m->functions, *b = a->next;
  Op *neg = b->body->first;
  a->body->args[0]->nuses++;
  b->body->args[0]->nuses--;
  neg->operands[0] = a->body->args[0];
  cr_assert(!pass_verify(m, &d));
  cr_assert(strstr(diag_text(), "neg operand 0 is not defined before its use"));
  ir_module_free(m);
}

Test(passes, infer_shapes_reports_both_types) {
  Module *m = read_ok("module @t file \"m.model\"\n"
                      "func @main(%x: f32[2, 3]) {\n"
                      "  %0 = reduce_max %x {axes = [0]} : f32[2] @7:9\n"
                      "  return y = %0\n}\n");
  cr_assert(!pass_infer_shapes(m, &d));
  cr_assert(strstr(diag_text(), "m.model:7:9: error: reduce_max result is "
                                "declared f32[2] but infers as f32[3]"),
            "%s", diag_text());
  ir_module_free(m);
}

/* Folding computes exactly what the generated float code computes (the
 * mc_vmath.h functions, libm for the rest). */
Test(passes, fold_matches_float_functions_bit_for_bit) {
  enum { N = 512 };
  float xs[N];
  for (int i = 0; i < N; i++)
    xs[i] = (float)(i - N / 2) * 0.037f + 1e-3f * (float)(i % 7);
  Module *m = ir_module_new("t");
  Function *f = ir_function_new(m, "main", loc_none());
  Type t = {DT_F32, {1, {{0}}}};
  t.shape.dims[0] = dim_const(N);
  Value *c = ir_const_tensor(m, f->body, &t, xs, loc_none());
  static const OpKind kinds[] = {OP_EXP,   OP_SIGMOID, OP_TANH, OP_ERF,
                                 OP_LOG1P, OP_EXPM1,   OP_SIN,  OP_SQRT};
  enum { K = sizeof kinds / sizeof kinds[0] };
  for (int k = 0; k < K; k++) {
    Value *r =
        ir_build(m, f->body, kinds[k], &c, 1, NULL, NULL, loc_none(), &d);
    ir_add_output(m, f, ir_op_info[kinds[k]].name, r, loc_none());
  }
  Value *ops[2] = {c, c};
  ir_add_output(
      m, f, "pow",
      ir_build(m, f->body, OP_POW, ops, 2, NULL, NULL, loc_none(), &d),
      loc_none());
  cr_assert(pass_run_list(m, "fold_constants,dce,verify", NULL, NULL, &d), "%s",
            diag_text());
  for (int k = 0; k <= K; k++) {
    Op *op = f->outputs[k].value->def;
    cr_assert_eq(op->kind, OP_CONST);
    const float *got = op->attrs.cst.data;
    for (int i = 0; i < N; i++) {
      float x = xs[i], want = 0;
      switch (k) {
      case 0:
        want = mc_expf(x);
        break;
      case 1:
        want = mc_sigmoidf(x);
        break;
      case 2:
        want = mc_tanhf(x);
        break;
      case 3:
        want = mc_erff(x);
        break;
      case 4:
        want = mc_log1pf(x);
        break;
      case 5:
        want = mc_expm1f(x);
        break;
      case 6:
        want = sinf(x);
        break;
      case 7:
        want = sqrtf(x);
        break;
      default:
        want = powf(x, x);
        break;
      }
      cr_assert(memcmp(&got[i], &want, 4) == 0 ||
                    (isnan(got[i]) && isnan(want)),
                "op %d x=%a got %a want %a", k, x, got[i], want);
    }
  }
  ir_module_free(m);
}

Test(passes, fold_leaves_runtime_defined_cases_alone) {
  Module *m = read_ok("module @t\n"
                      "func @main() {\n"
                      "  %a = const [-0, 1] : f32[2]\n"
                      "  %b = const [0, nan] : f32[2]\n"
                      "  %0 = maximum %a, %b : f32[2]\n"
                      "  %i = const [7] : i32[]\n"
                      "  %j = const [-2] : i32[]\n"
                      "  %1 = div %i, %j : i32[]\n"
                      "  %2 = mod %i, %j : i32[]\n"
                      "  %f = const [3e9] : f32[]\n"
                      "  %3 = cast %f : i32[]\n"
                      "  %4 = softmax %a {axis = 0} : f32[2]\n"
                      "  return a = %0, b = %1, c = %2, d = %3, e = %4\n}\n");
  cr_assert(pass_run_list(m, "fold_constants", NULL, NULL, &d));
  for (Function *f = m->functions; f; f = f->next)
    for (int i = 0; i < f->noutputs; i++)
      cr_assert_neq(f->outputs[i].value->def->kind, OP_CONST, "output %d", i);
  ir_module_free(m);
}

Test(passes, cse_merges_params_consts_and_keeps_outputs) {
  Module *m = read_ok("module @t\n"
                      "param \"w\" : f32[2]\n"
                      "func @main() {\n"
                      "  %0 = param 0 : f32[2]\n"
                      "  %1 = param 0 : f32[2]\n"
                      "  %a = const [1, 2] : f32[2]\n"
                      "  %b = const [1, 2] : f32[2]\n"
                      "  %c = const [1, 2] : f64[2]\n"
                      "  return p = %1, q = %b, r = %c, s = %0\n}\n");
  cr_assert(pass_run_list(m, "cse,dce,verify", NULL, NULL, &d), "%s",
            diag_text());
  char *text = ir_print_to_string(m);
  cr_assert(strstr(text, "  %0 = param 0 : f32[2]\n"
                         "  %a = const [1, 2] : f32[2]\n"
                         "  %c = const [1, 2] : f64[2]\n"
                         "  return p = %0, q = %a, r = %c, s = %0\n"),
            "%s", text);
  free(text);
  ir_module_free(m);
}

Test(passes, dce_removes_dead_chains) {
  Module *m = read_ok("module @t\n"
                      "func @main(%x: f32[2]) {\n"
                      "  %0 = exp %x : f32[2]\n"
                      "  %1 = exp %0 : f32[2]\n"
                      "  %2 = exp %1 : f32[2]\n"
                      "  return\n}\n");
  cr_assert(pass_dce(m, &d));
  cr_assert_null(m->functions->body->first);
  cr_assert_eq(m->functions->body->args[0]->nuses, 0);
  cr_assert(pass_verify(m, &d));
  ir_module_free(m);
}

/* A chain of 1000 elementwise ops (a model of 1000 activation layers) is
 * cut into fused loops of at most 64 ops: grouping's cost grows with the
 * cube of a group's size, and one group of 10,000 layers took hours. */
Test(passes, fuse_bounds_a_group_of_a_long_chain) {
  enum { N = 1000, CAP = 64 };
  size_t cap = 64 * N + 128, len = 0;
  char *text = malloc(cap);
  len += (size_t)snprintf(text + len, cap - len,
                          "module @t\nfunc @main(%%x: f32[4]) {\n"
                          "  %%0 = tanh %%x : f32[4]\n");
  for (int i = 1; i < N; i++)
    len += (size_t)snprintf(text + len, cap - len,
                            "  %%%d = tanh %%%d : f32[4]\n", i, i - 1);
  snprintf(text + len, cap - len, "  return y = %%%d\n}\n", N - 1);
  Module *m = read_ok(text);
  free(text);
  cr_assert(pass_run_list(m, "fuse,verify", NULL, NULL, &d), "%s", diag_text());
  char *out = ir_print_to_string(m), *save = NULL;
  int groups = 0, ops = 0, largest = 0;
  for (char *line = strtok_r(out, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    if (strstr(line, "= fused ")) {
      groups++;
      ops = 0;
    } else if (strncmp(line, "    %", 5) == 0) {
      ops++;
      largest = ops > largest ? ops : largest;
    }
  }
  free(out);
  ir_module_free(m);
  cr_assert_eq(groups, (N + CAP - 1) / CAP);
  cr_assert_eq(largest, CAP);
}
