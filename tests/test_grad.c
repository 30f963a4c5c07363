/* Reverse-mode differentiation: the `grad` builtin's lowering and the
 * autodiff pass. Gradients of constants are checked numerically after
 * fold_constants (which evaluates them as the runtime would); the
 * end-to-end test (tests/e2e/test_grad.py) checks every rule against
 * torch.autograd through compiled programs. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../frontend/ast.h"
#include "../frontend/lower.h"
#include "ir.h"
#include "passes.h"

typedef struct Result {
  AstModule *ast;
  Module *m;
  char *errors;
  size_t errlen;
} Result;

/* Lowers a model and runs the passes (NULL module after any error). */
static Result compile(const char *text, const char *passes) {
  Result r = {0};
  FILE *mem = open_memstream(&r.errors, &r.errlen);
  Diag d;
  diag_init(&d, mem);
  r.ast = ast_parse_string(text, "g.model", &d);
  if (r.ast) {
    LowerOptions o = {0};
    r.m = lower_module(r.ast, &o, &d);
    lower_free_includes(&o);
  }
  if (r.m && !pass_run_list(r.m, passes, NULL, NULL, &d)) {
    ir_module_free(r.m);
    r.m = NULL;
  }
  diag_free(&d);
  fclose(mem);
  return r;
}

static void result_free(Result *r) {
  if (r->m)
    ir_module_free(r->m);
  if (r->ast)
    ast_free(r->ast);
  free(r->errors);
}

static int count_kind(const Block *b, OpKind k) {
  int n = 0;
  for (const Op *op = b->first; op; op = op->next) {
    n += op->kind == k;
    for (int r = 0; r < op->nregions; r++)
      n += count_kind(op->regions[r], k);
  }
  return n;
}

/* The output's elements, which folding made a constant. */
static const float *folded(const Module *m, const char *name, int n) {
  const Function *f = m->functions;
  for (int i = 0; i < f->noutputs; i++) {
    if (strcmp(f->outputs[i].name, name))
      continue;
    const Value *v = f->outputs[i].value;
    cr_assert(v->def && v->def->kind == OP_CONST, "%s is not folded", name);
    int64_t numel;
    cr_assert(shape_const_numel(&v->type.shape, &numel) && numel == n);
    return v->def->attrs.cst.data;
  }
  cr_assert_fail("no output %s", name);
  return NULL;
}

static const char *const fold = "verify,infer_shapes,autodiff,fold_constants";

Test(grad, lowers_to_grad_ops_that_autodiff_replaces) {
  const char *src = "input x: f32[B, 3]\n"
                    "param w: f32[3] from \"w\"\n"
                    "fn f(x) = sum(tanh(x * w))\n"
                    "l, dx, dw = grad(f, x, wrt=[\"x\", \"w\"])\n"
                    "output dx = dx\n"
                    "output dw = dw\n";
  Result r = compile(src, "verify,infer_shapes");
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_eq(count_kind(r.m->functions->body, OP_GRAD), 2);
  result_free(&r);
  r = compile(src, "verify,infer_shapes,autodiff,dce");
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_eq(count_kind(r.m->functions->body, OP_GRAD), 0);
  /* dx: [B, 3]; dw: [3] (summed over the broadcast batch axis) */
  char t[64];
  type_print(t, sizeof t, &r.m->functions->outputs[0].value->type, r.m);
  cr_assert_str_eq(t, "f32[B, 3]");
  type_print(t, sizeof t, &r.m->functions->outputs[1].value->type, r.m);
  cr_assert_str_eq(t, "f32[3]");
  result_free(&r);
}

Test(grad, elementwise_chain_folds_to_its_derivative) {
  /* d/dx sum(exp(x) * x) = exp(x) * (1 + x) */
  Result r =
      compile("x = concat([full([1], -1.5), full([1], -0.5), full([1], 0.5), "
              "full([1], 1.5)])\n"
              "fn f(x) = sum(exp(x) * x)\n"
              "l, g = grad(f, x, wrt=[\"x\"])\n"
              "output g = g\n",
              fold);
  cr_assert_not_null(r.m, "%s", r.errors);
  const float *g = folded(r.m, "g", 4);
  for (int i = 0; i < 4; i++) {
    double x = i - 1.5;
    cr_assert(fabs(g[i] - exp(x) * (1 + x)) < 1e-6, "g[%d] = %g", i, g[i]);
  }
  result_free(&r);
}

Test(grad, gradient_of_a_gradient) {
  /* d/dx sum(d/dx sum(x^3)) = d/dx sum(3 x^2) = 6 x */
  Result r = compile("x = concat([full([1], 1), full([1], 2), full([1], 3)])\n"
                     "fn cube(x) = sum(x * x * x)\n"
                     "fn slope(x) {\n"
                     "  v, g = grad(cube, x, wrt=[\"x\"])\n"
                     "  return sum(g)\n"
                     "}\n"
                     "s, h = grad(slope, x, wrt=[\"x\"])\n"
                     "output h = h\n",
                     fold);
  cr_assert_not_null(r.m, "%s", r.errors);
  const float *h = folded(r.m, "h", 3);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(h[i], 6 * (i + 1));
  result_free(&r);
}

Test(grad, maximum_ties_follow_torch) {
  /* maximum(x, y) at x == y: half each (torch.maximum) */
  Result r = compile("x = full([4], 2)\n"
                     "y = concat([full([1], 0), full([1], 1), full([1], 2), "
                     "full([1], 3)])\n"
                     "fn f(x, y) = sum(maximum(x, y))\n"
                     "l, dx, dy = grad(f, x, y, wrt=[\"x\", \"y\"])\n"
                     "output dx = dx\n"
                     "output dy = dy\n",
                     fold);
  cr_assert_not_null(r.m, "%s", r.errors);
  const float *dx = folded(r.m, "dx", 4), *dy = folded(r.m, "dy", 4);
  /* x = 2 2 2 2, y = 0 1 2 3 */
  const float want_x[4] = {1, 1, 0.5f, 0};
  const float want_y[4] = {0, 0, 0.5f, 1};
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(dx[i], want_x[i], "dx[%d] = %g", i, dx[i]);
    cr_assert_eq(dy[i], want_y[i], "dy[%d] = %g", i, dy[i]);
  }
  result_free(&r);
}

Test(grad, weight_read_twice_sums_both_reads) {
  const char *src = "param w: f32[2] from \"w\"\n"
                    "fn f(x) {\n"
                    "  param v: f32[2] from \"w\"\n"
                    "  return sum(x * w) + sum(v * v)\n"
                    "}\n"
                    "input x: f32[2]\n"
                    "l, dw = grad(f, x, wrt=[\"w\"])\n"
                    "output dw = dw\n";
  Result r = compile(src, "verify,infer_shapes,autodiff,dce");
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_eq(r.m->nparams, 1);
  cr_assert_eq(count_kind(r.m->functions->body, OP_GRAD), 0);
  /* x + 2 w: the adjoint of every read, added */
  cr_assert_geq(count_kind(r.m->functions->body, OP_ADD), 1);
  result_free(&r);
}

Test(grad, unrelated_wrt_gets_zeros) {
  Result r = compile("x = full([3], 1)\n"
                     "y = full([2], 2)\n"
                     "fn f(x, y) = sum(x * x)\n"
                     "l, dy = grad(f, x, y, wrt=[\"y\"])\n"
                     "output dy = dy\n",
                     fold);
  cr_assert_not_null(r.m, "%s", r.errors);
  const float *dy = folded(r.m, "dy", 2);
  cr_assert(dy[0] == 0 && dy[1] == 0);
  result_free(&r);
}

Test(grad, op_without_a_rule_is_a_located_error) {
  Result r = compile("input x: f32[T]\n"
                     "fn f(x) = sum(cumsum(x, 0) * x)\n"
                     "l, dx = grad(f, x, wrt=[\"x\"])\n"
                     "output dx = dx\n",
                     "verify,infer_shapes,autodiff");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "g.model:2:15: error: cannot differentiate "
                             "a cumsum along an axis of symbolic extent: "
                             "there is no derivative rule for it yet"),
            "%s", r.errors);
  cr_assert(strstr(r.errors, "g.model:3:9: note: the gradient is taken here"),
            "%s", r.errors);
  result_free(&r);
  r = compile("input x: f32[8]\n"
              "fn f(x) = sum(x[::2])\n"
              "l, dx = grad(f, x, wrt=[\"x\"])\n"
              "output dx = dx\n",
              "verify,infer_shapes,autodiff");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "a slice with a step other than 1"), "%s",
            r.errors);
  result_free(&r);
}

Test(grad, frontend_errors) {
  Result r = compile("input x: f32[3]\n"
                     "fn f(x) = x * 2\n"
                     "l, dx = grad(f, x, wrt=[\"x\"])\n"
                     "output dx = dx\n",
                     "verify");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "g.model:3:9: error: grad differentiates a "
                             "function that returns a float scalar; 'f' "
                             "returns f32[3]"),
            "%s", r.errors);
  result_free(&r);
  r = compile("input x: f32[3]\n"
              "fn f(x) = sum(x)\n"
              "l, dx = grad(f, x, wrt=[\"z\"])\n"
              "output dx = dx\n",
              "verify");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "grad with respect to 'z': 'f' has no argument "
                             "of that name and reads no weight of that name"),
            "%s", r.errors);
  result_free(&r);
  r = compile("input x: f32[3]\n"
              "fn f(x) = sum(x)\n"
              "l, dx = grad(f, x)\n"
              "output dx = dx\n",
              "verify");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "grad needs wrt=[...]"), "%s", r.errors);
  result_free(&r);
}

Test(grad, integer_paths_carry_no_gradient) {
  /* the i32 cast cuts the path: only the direct term counts */
  Result r = compile(
      "x = concat([full([1], 0.25), full([1], 1.25), full([1], 2.25)])\n"
      "fn f(x) = sum(f32(i32(x * 4)) * x) + sum(x)\n"
      "l, g = grad(f, x, wrt=[\"x\"])\n"
      "output g = g\n",
      fold);
  cr_assert_not_null(r.m, "%s", r.errors);
  const float *g = folded(r.m, "g", 3);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(g[i], (float)(int)((i + 0.25) * 4) + 1, "g[%d] = %g", i, g[i]);
  result_free(&r);
}

static const Op *first_of_kind(const Block *b, OpKind k) {
  for (const Op *op = b->first; op; op = op->next)
    if (op->kind == k)
      return op;
  return NULL;
}

Test(grad, scan_gradient_is_a_reverse_scan_over_the_kept_carries) {
  Result r = compile("input x: f32[T, 3]\n"
                     "input h0: f32[3]\n"
                     "fn step(h, x_t) {\n"
                     "  param w: f32[3] from \"w\"\n"
                     "  h2 = tanh(h * w + x_t)\n"
                     "  return h2, h2 * 2\n"
                     "}\n"
                     "fn f(x, h0) {\n"
                     "  h, ys = scan(step, h0, x)\n"
                     "  return sum(h) + sum(ys)\n"
                     "}\n"
                     "l, dx, dh0, dw = grad(f, x, h0, wrt=[\"x\", \"h0\", "
                     "\"w\"])\n"
                     "output dx = dx\n"
                     "output dh0 = dh0\n"
                     "output dw = dw\n",
                     "verify,infer_shapes,autodiff,verify,dce");
  cr_assert_not_null(r.m, "%s", r.errors);
  const Block *body = r.m->functions->body;
  cr_assert_eq(count_kind(body, OP_GRAD), 0);
  const Op *fwd = first_of_kind(body, OP_SCAN);
  cr_assert_not_null(fwd);
  /* the weight's read moved above the scan; the forward stacks its carry
   * (h, final h, ys, stacked h) */
  cr_assert_eq(count_kind(fwd->regions[0], OP_PARAM), 0);
  cr_assert_eq(fwd->nresults, 3);
  char t[64];
  type_print(t, sizeof t, &fwd->results[2]->type, r.m);
  cr_assert_str_eq(t, "f32[T, 3]");
  const Op *bwd = fwd->next;
  while (bwd && bwd->kind != OP_SCAN)
    bwd = bwd->next;
  cr_assert_not_null(bwd);
  cr_assert(bwd->attrs.scan.reverse && !fwd->attrs.scan.reverse);
  /* carries: dh, the weight's summed gradient; sequences: the stacked
   * carries, x, d ys; outputs: dx */
  cr_assert_eq(bwd->attrs.scan.ncarry, 2);
  cr_assert_eq(bwd->attrs.scan.nseq, 3);
  cr_assert_eq(bwd->operands[2], fwd->results[2]);
  cr_assert_eq(r.m->functions->outputs[0].value, bwd->results[2]);
  cr_assert_eq(r.m->functions->outputs[1].value, bwd->results[0]);
  result_free(&r);
}

Test(grad, scan_with_until_is_a_located_error) {
  Result r = compile("input x: f32[3]\n"
                     "fn step(h) {\n"
                     "  return h * 0.5, sum(h) < 1.0, h\n"
                     "}\n"
                     "fn f(x) {\n"
                     "  h, ys, n = scan(step, x, length=5, until=true)\n"
                     "  return sum(h)\n"
                     "}\n"
                     "l, dx = grad(f, x, wrt=[\"x\"])\n"
                     "output dx = dx\n",
                     "verify,infer_shapes,autodiff");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "g.model:6:14: error: cannot differentiate a "
                             "scan with until=true (an early exit): there is "
                             "no derivative rule for it yet"),
            "%s", r.errors);
  cr_assert(strstr(r.errors, "g.model:9:9: note: the gradient is taken here"),
            "%s", r.errors);
  result_free(&r);
}
