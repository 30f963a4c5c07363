/* The scan op: construction with ir_scan_begin/finish, the verifier, the
 * text form's round trip, shape errors, and CSE/DCE inside its region. The
 * language side (scan builtin) and the C loop are covered by
 * tests/e2e/test_rnn.py and tests/golden/scan/. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "passes.h"

static Module *m;
static Function *fn;
static Diag d;
static char *dbuf;
static size_t dlen;
static FILE *dout;
static int T, B;

static void setup(void) {
  dout = open_memstream(&dbuf, &dlen);
  diag_init(&d, dout);
  m = ir_module_new("t");
  T = ir_symbol(m, "T");
  B = ir_symbol(m, "B");
  fn = ir_function_new(m, "main", loc_none());
}

static void teardown(void) {
  ir_module_free(m);
  diag_free(&d);
  fclose(dout);
  free(dbuf);
}

TestSuite(scan, .init = setup, .fini = teardown);

static const char *diag_text(void) {
  fflush(dout);
  return dbuf ? dbuf : "";
}

static Loc L(int line) {
  Loc l = {"t.model", line, 1, 0, NULL};
  return l;
}

static Type f32(int rank, const Dim *dims) {
  Type t = {DT_F32, {rank, {{0}}}};
  for (int i = 0; i < rank; i++)
    t.shape.dims[i] = dims[i];
  return t;
}

static Value *binop(Block *b, OpKind k, Value *x, Value *y, int line) {
  Value *ops[2] = {x, y};
  return ir_build(m, b, k, ops, 2, NULL, NULL, L(line), &d);
}

/* h_n, ys = scan(h0, xs): h' = tanh(h @ w + x) */
static Op *build_rnn(bool reverse, Value **w_out) {
  Dim bh[2] = {dim_sym(B), dim_const(4)},
      tbh[3] = {dim_sym(T), dim_sym(B), dim_const(4)};
  Dim hh[2] = {dim_const(4), dim_const(4)};
  Value *h0 = ir_add_input(m, fn, "h0", f32(2, bh), L(1));
  Value *xs = ir_add_input(m, fn, "xs", f32(3, tbh), L(2));
  Value *w = ir_add_input(m, fn, "w", f32(2, hh), L(3));
  Attrs a;
  memset(&a, 0, sizeof a);
  a.scan.ncarry = 1;
  a.scan.nseq = 1;
  a.scan.length = dim_sym(T);
  a.scan.reverse = reverse;
  Value *ops[2] = {h0, xs};
  const char *names[2] = {"h", "x"};
  Op *s = ir_scan_begin(m, fn->body, ops, 2, &a, names, L(5));
  Block *body = s->regions[0];
  Value *hw = binop(body, OP_MATMUL, body->args[0], w, 6);
  Value *h2 = ir_build(m, body, OP_TANH,
                       (Value *[]){binop(body, OP_ADD, hw, body->args[1], 6)},
                       1, NULL, NULL, L(6), &d);
  Value *ys[2] = {h2, h2};
  cr_assert(ir_scan_finish(m, s, ys, 2, L(7), &d), "%s", diag_text());
  if (w_out)
    *w_out = w;
  return s;
}

static void roundtrip(void) {
  char *a = ir_print_to_string(m);
  Module *r = ir_read(a, "rt.ir", &d);
  cr_assert_not_null(r, "%s\n%s", diag_text(), a);
  cr_assert(pass_verify(r, &d), "%s\n%s", diag_text(), a);
  char *b = ir_print_to_string(r);
  cr_assert_str_eq(a, b);
  free(a);
  free(b);
  ir_module_free(r);
}

Test(scan, builds_verifies_and_round_trips) {
  Op *s = build_rnn(true, NULL);
  cr_assert_eq(s->nresults, 2);
  char buf[128];
  type_print(buf, sizeof buf, &s->results[1]->type, m);
  cr_assert_str_eq(buf, "f32[T, B, 4]");
  ir_add_output(m, fn, "h_n", s->results[0], L(8));
  ir_add_output(m, fn, "ys", s->results[1], L(8));
  cr_assert(pass_verify(m, &d), "%s", diag_text());
  cr_assert(pass_infer_shapes(m, &d), "%s", diag_text());
  char *text = ir_print_to_string(m);
  cr_assert(strstr(text, "{ncarry = 1, nseq = 1, length = T, reverse} (%h: "
                         "f32[B, 4], %x: f32[B, 4]) {"),
            "%s", text);
  cr_assert(strstr(text, "    yield %"), "%s", text);
  free(text);
  roundtrip();
}

Test(scan, carry_type_mismatch_names_both) {
  Dim bh[2] = {dim_sym(B), dim_const(4)},
      tb8[3] = {dim_sym(T), dim_sym(B), dim_const(8)};
  Value *h0 = ir_add_input(m, fn, "h0", f32(2, bh), L(1));
  Value *xs = ir_add_input(m, fn, "xs", f32(3, tb8), L(2));
  Attrs a;
  memset(&a, 0, sizeof a);
  a.scan.ncarry = 1;
  a.scan.nseq = 1;
  a.scan.length = dim_sym(T);
  Op *s = ir_scan_begin(m, fn->body, (Value *[]){h0, xs}, 2, &a, NULL, L(5));
  Value *x = s->regions[0]->args[1];
  Value *e = ir_build(m, s->regions[0], OP_EXP, &x, 1, NULL, NULL, L(6), &d);
  cr_assert_not(ir_scan_finish(m, s, (Value *[]){e}, 1, L(7), &d));
  cr_assert(strstr(diag_text(), "t.model:5:1: error: scan carry 0 is f32[B, "
                                "4], but the step yields f32[B, 8]"),
            "%s", diag_text());
  cr_assert(strstr(diag_text(), "t.model:6:1: note: the new carry"), "%s",
            diag_text());
}

Test(scan, region_value_used_outside_fails_verify) {
  Op *s = build_rnn(false, NULL);
  Value *inner = s->regions[0]->first->results[0];
  ir_add_output(m, fn, "bad", inner, L(9));
  cr_assert_not(pass_verify(m, &d));
  cr_assert(strstr(diag_text(), "output bad is not defined"), "%s",
            diag_text());
}

static Module *read_ir(const char *text) {
  Module *r = ir_read(text, "t.ir", &d);
  cr_assert_not_null(r, "%s", diag_text());
  cr_assert(pass_verify(r, &d), "%s", diag_text());
  return r;
}

static const char *region_ir =
    "module @t\n"
    "symbols T\n"
    "func @main(%w: f32[2], %xs: f32[T, 2]) {\n"
    "  %e = exp %w : f32[2]\n"
    "  %r = scan %xs {ncarry = 0, nseq = 1, length = T} (%x: f32[2]) {\n"
    "    %0 = exp %w : f32[2]\n"
    "    %1 = add %0, %x : f32[2]\n"
    "    %2 = add %0, %x : f32[2]\n"
    "    %3 = mul %1, %2 : f32[2]\n"
    "    %dead = neg %3 : f32[2]\n"
    "    yield %3\n"
    "  } : f32[T, 2]\n"
    "  return r = %r, e = %e\n"
    "}\n";

static int count_ops(const Block *b, OpKind k) {
  int n = 0;
  for (const Op *o = b->first; o; o = o->next)
    n += o->kind == k;
  return n;
}

Test(scan, dce_keeps_yield_and_drops_dead_scan) {
  Module *r = read_ir(region_ir);
  Op *s = r->functions->body->last;
  cr_assert_eq(s->kind, OP_SCAN);
  cr_assert(pass_dce(r, &d));
  cr_assert(pass_verify(r, &d), "%s", diag_text());
  cr_assert_eq(s->regions[0]->last->kind, OP_YIELD);
  cr_assert_eq(count_ops(s->regions[0], OP_NEG), 0);
  /* the scan's result unused: the scan goes, then what only it used */
  Function *f = r->functions;
  f->outputs[0].value = f->body->args[0];
  cr_assert(pass_dce(r, &d));
  cr_assert(pass_verify(r, &d), "%s", diag_text());
  cr_assert_eq(count_ops(f->body, OP_SCAN), 0);
  ir_module_free(r);
}

Test(scan, cse_does_not_merge_across_the_region) {
  Module *r = read_ir(region_ir);
  cr_assert(pass_cse(r, &d));
  cr_assert(pass_verify(r, &d), "%s", diag_text());
  Function *f = r->functions;
  Op *s = f->body->last;
  Block *body = s->regions[0];
  cr_assert_eq(count_ops(f->body, OP_EXP), 1);
  cr_assert_eq(count_ops(body, OP_EXP), 1); /* not replaced by the outer */
  cr_assert_eq(count_ops(body, OP_ADD), 1); /* equal adds merged */
  Op *mul = body->first;
  while (mul->kind != OP_MUL)
    mul = mul->next;
  cr_assert_eq(mul->operands[0], mul->operands[1]);
  ir_module_free(r);
}

Test(scan, reader_rejects_region_values_outside) {
  const char *bad = "module @t\nsymbols T\nfunc @main(%a: f32[T, 2]) {\n"
                    "  %r = scan %a {ncarry = 0, nseq = 1, length = T} (%x: "
                    "f32[2]) {\n    yield %x\n  } : f32[T, 2]\n"
                    "  return r = %r, bad = %x\n}\n";
  cr_assert_null(ir_read(bad, "t.ir", &d));
  cr_assert(strstr(diag_text(), "t.ir:7:24: error: value %x is defined "
                                "inside a region"),
            "%s", diag_text());
}
