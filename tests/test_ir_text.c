/* IR text form: print/read round trip of every op, exact floats, located
 * reader errors, robustness against garbage, and whole files read up to
 * the limit. */
#include <criterion/criterion.h>
#include <errno.h>
#include <unistd.h>

#include "ir_fixture.h"
#include "read_file.h"

TestSuite(text, .init = setup, .fini = teardown);

/* ---- text form ------------------------------------------------------------
 */

static const char sample[] =
    "module @gpt2 file \"models/gpt2.model\"\n"
    "symbols T, B\n"
    "const n_layer = 2\n"
    "const eps = 1e-05 : f64\n"
    "param \"wte.weight\" : f32[16, 8] @3:1\n"
    "func @main(%tokens: i32[T] @12:7, %pad: bool[B, T] = -inf @13:7) "
    "@\"other.model\":1:1 {\n"
    "  %0 = param 0 : f32[16, 8] @20:5\n"
    "  %h = gather %0, %tokens {axis = 0} : f32[T, 8] @20:5 \"block\"\n"
    "  %1 = const [0.5] : f32[]\n"
    "  %c = const [0x1p-140, -0, 0.1, inf, 3.4028235e+38] : f32[5]\n"
    "  %s = const [7] : i64[2, 2]\n"
    "  %2 = matmul %h, %0 {trans_b} : f32[T, 16] @31:10\n"
    "  %3 = reduce_sum %2 {axes = [1], keepdims} : f32[T, 1]\n"
    "  %4 = slice %0 {start = [0, 0], step = [1, 2]} : f32[T, 4]\n"
    "  %5 = mul %h, %1 : f32[T, 8]\n"
    "  %6 = concat %h, %h {axis = 0} : f32[2*T, 8]\n"
    "  %7 = permute %6 {perm = [1, 0]} : f32[8, 2*T]\n"
    "  %8 = iota {axis = 0} : i32[T]\n"
    "  return logits = %2 @31:1, y = %3, \"odd name\" = %5\n"
    "}\n";

Test(text, sample_prints_as_written) {
  Module *r = ir_read(sample, "s.ir", &d);
  cr_assert_not_null(r, "%s", diag_text());
  char *out = ir_print_to_string(r);
  cr_assert_str_eq(out, sample);
  Function *f = r->functions;
  cr_assert(f->inputs[1].has_default);
  cr_assert(f->inputs[1].default_value < -1e300);
  cr_assert_str_eq(f->body->first->next->loc.scope, "block");
  cr_assert_str_eq(f->loc.file, "other.model");
  cr_assert_str_eq(f->body->first->loc.file, "models/gpt2.model");
  cr_assert_eq(f->outputs[0].value->nuses, 2);
  free(out);
  ir_module_free(r);
}

/* Unnamed values print as numbers counted per function, so printing is
 * stable however ids were assigned; duplicate names fall back to numbers. */
Test(text, names_and_numbers) {
  Value *x = input("x", ty(DT_F32, 1, 4), 1);
  Value *a = op1(OP_EXP, x, NULL, NULL);
  a->name = "h";
  Value *b = op1(OP_EXP, a, NULL, NULL);
  b->name = "h";
  Value *c = op1(OP_EXP, b, NULL, NULL);
  c->name = "x"; /* collides with the input */
  Value *e = op1(OP_EXP, c, NULL, NULL);
  e->name = "ok";
  ir_add_output(m, fn, "y", e, loc_none());
  char *out = ir_print_to_string(m);
  cr_assert(strstr(out, "func @main(%x: f32[4] @1:7) {\n"
                        "  %0 = exp %x : f32[4] @20:5\n"
                        "  %1 = exp %0 : f32[4] @20:5\n"
                        "  %2 = exp %1 : f32[4] @20:5\n"
                        "  %ok = exp %2 : f32[4] @20:5\n"
                        "  return y = %ok\n}\n"),
            "%s", out);
  free(out);
}

static void roundtrip(Module *src) {
  char *a = ir_print_to_string(src);
  Module *r = ir_read(a, "rt.ir", &d);
  cr_assert_not_null(r, "%s\n%s", diag_text(), a);
  char *b = ir_print_to_string(r);
  cr_assert_str_eq(a, b);
  free(a);
  free(b);
  ir_module_free(r);
}

Test(text, every_op_round_trips) {
  Value *x = input("x", ty(DT_F32, 2, -1, 8), 1);
  Value *bo = input("mask", ty(DT_BOOL, 2, -1, 8), 2);
  Value *ix = input("ix", ty(DT_I64, 1, 3), 3);
  Value *ix2 = input("ix2", ty(DT_I32, 2, -1, 3), 4);
  Value *seed = input("seed", ty(DT_I64, 0), 5);
  Value *u = input("u", ty(DT_F32, 1, -1), 6);
  Attrs a;
  for (int k = 0; k < OP_COUNT; k++) {
    memset(&a, 0, sizeof a);
    unsigned fl = ir_op_info[k].flags;
    Value *v = (fl & OPF_LOGICAL) ? bo : x, *r = NULL;
    Value *ops[3] = {v, v, v};
    Type h = x->type;
    switch (k) { /* an int: the default covers elementwise ops */
    case OP_CONST:
      r = ir_const_scalar(m, fn->body, DT_I32, -7, L(1, 1));
      break;
    case OP_PARAM:
      ir_add_param(m, "w", ty(DT_F32, 2, 8, 8), L(1, 1), &d);
      r = ir_build(m, fn->body, OP_PARAM, NULL, 0, &a, NULL, L(1, 1), &d);
      break;
    case OP_IOTA:
      h.dtype = DT_I64;
      r = ir_build(m, fn->body, OP_IOTA, NULL, 0, &a, &h, L(1, 1), &d);
      break;
    case OP_SELECT:
      ops[0] = bo;
      r = ir_build(m, fn->body, OP_SELECT, ops, 3, &a, NULL, L(1, 1), &d);
      break;
    case OP_GATHER:
      ops[1] = ix;
      a.axis.axis = 1;
      r = ir_build(m, fn->body, OP_GATHER, ops, 2, &a, NULL, L(1, 1), &d);
      break;
    case OP_SCATTER_ADD: /* the gradient of the gather above */
      ops[1] = ix;
      a.axis.axis = 1;
      ops[0] = ir_build(m, fn->body, OP_GATHER, ops, 2, &a, NULL, L(1, 1), &d);
      r = ir_build(m, fn->body, OP_SCATTER_ADD, ops, 2, &a, &h, L(1, 1), &d);
      break;
    case OP_MATMUL:
      a.matmul.trans_b = true;
      r = ir_build(m, fn->body, OP_MATMUL, ops, 2, &a, NULL, L(1, 1), &d);
      break;
    case OP_GRAD:
      a.reduce.axes = 3;
      ops[0] = op1(OP_REDUCE_SUM, x, &a, NULL);
      r = ir_build(m, fn->body, OP_GRAD, ops, 2, NULL, NULL, L(1, 1), &d);
      break;
    case OP_SLICE:
      a.slice.start[0] = dim_const(0);
      a.slice.start[1] = dim_const(1);
      a.slice.step[0] = 1;
      a.slice.step[1] = 3;
      h.shape.dims[1] = dim_const(3);
      r = op1(OP_SLICE, x, &a, &h);
      break;
    case OP_PERMUTE:
      a.perm.perm[0] = 1;
      r = op1(OP_PERMUTE, x, &a, NULL);
      break;
    case OP_RESHAPE:
      h.shape.rank = 3;
      h.shape.dims[1] = dim_const(2);
      h.shape.dims[2] = dim_const(4);
      r = op1(OP_RESHAPE, x, &a, &h);
      break;
    case OP_BROADCAST:
      h.shape.rank = 3;
      h.shape.dims[0] = dim_sym(1);
      h.shape.dims[1] = dim_sym(0);
      h.shape.dims[2] = dim_const(8);
      r = op1(OP_BROADCAST, x, &a, &h);
      break;
    case OP_CAST:
      h.dtype = DT_F64;
      r = op1(OP_CAST, x, &a, &h);
      break;
    case OP_REDUCE_SUM:
    case OP_REDUCE_MEAN:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN:
    case OP_LOGSUMEXP:
    case OP_ARGMAX:
    case OP_ARGMIN:
      a.reduce.axes = 2;
      a.reduce.keepdims = k % 2;
      r = op1((OpKind)k, x, &a, NULL);
      break;
    case OP_CONCAT:
      a.axis.axis = 1;
      r = ir_build(m, fn->body, OP_CONCAT, ops, 3, &a, NULL, L(1, 1), &d);
      break;
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
      a.axis.axis = 1;
      r = op1((OpKind)k, x, &a, NULL);
      break;
    case OP_SCAN: { /* with its yield: cumulative sums over axis 0 of x */
      a.scan.ncarry = 1;
      a.scan.nseq = 1;
      a.scan.length = x->type.shape.dims[0];
      a.scan.reverse = a.scan.with_index = true;
      Value *init = ir_const_scalar(m, fn->body, DT_F32, 0, L(1, 1));
      Value *sops[2] = {init, x};
      Op *s = ir_scan_begin(m, fn->body, sops, 2, &a, NULL, L(1, 1));
      Block *b = s->regions[0];
      Value *bc[2] = {b->args[0], b->args[1]};
      Value *sum = ir_build(m, b, OP_REDUCE_SUM, &bc[1], 1,
                            &(Attrs){.reduce = {1, false}}, NULL, L(1, 1), &d);
      Value *ys[3] = {sum, b->args[1], b->args[2]};
      cr_assert(ir_scan_finish(m, s, ys, 3, L(1, 1), &d), "%s", diag_text());
      r = s->results[1];
      break;
    }
    case OP_FUSED: { /* x * 0.5 + x, one loop */
      Op *f = ir_fused_begin(m, fn->body, (Value *[]){x}, 1, DT_F32, L(1, 1));
      Block *b = f->regions[0];
      Value *half = ir_const_scalar(m, b, DT_F32, 0.5, L(1, 1));
      Value *p = ir_build(m, b, OP_MUL, (Value *[]){b->args[0], half}, 2, NULL,
                          NULL, L(1, 1), &d);
      Value *s = ir_build(m, b, OP_ADD, (Value *[]){p, b->args[0]}, 2, NULL,
                          NULL, L(1, 1), &d);
      ir_fused_finish(m, f, s, L(1, 1));
      f->results[0]->type = x->type;
      r = f->results[0];
      break;
    }
    case OP_DYNAMIC_SLICE:
    case OP_DYNAMIC_UPDATE_SLICE: {
      Value *z = ir_const_scalar(m, fn->body, DT_I32, 0, L(1, 1));
      Value *dops[4] = {x, x, z, z};
      h.shape.dims[0] = dim_const(1);
      h.shape.dims[1] = dim_const(4);
      r = k == OP_DYNAMIC_SLICE
              ? ir_build(m, fn->body, OP_DYNAMIC_SLICE, (Value *[]){x, z, z}, 3,
                         &a, &h, L(1, 1), &d)
              : ir_build(m, fn->body, OP_DYNAMIC_UPDATE_SLICE, dops, 4, &a,
                         NULL, L(1, 1), &d);
      break;
    }
    case OP_TAKE_ALONG_AXIS:
      a.axis.axis = 1;
      r = op2(OP_TAKE_ALONG_AXIS, x, ix2, &a);
      break;
    case OP_TOPK:
      a.axis.axis = 1;
      h.dtype = DT_I32;
      h.shape.dims[1] = dim_const(3);
      r = op1(OP_TOPK, x, &a, &h);
      break;
    case OP_CUMSUM:
      a.axis.axis = 1;
      r = op1(OP_CUMSUM, x, &a, NULL);
      break;
    case OP_RANDOM_UNIFORM:
      r = op1(OP_RANDOM_UNIFORM, seed, &a, &h);
      break;
    case OP_CATEGORICAL:
      a.axis.axis = 1;
      r = op2(OP_CATEGORICAL, x, u, &a);
      break;
    case OP_YIELD: /* built with the scan */
      continue;
    default:
      r = ir_build(m, fn->body, (OpKind)k, ops, ir_op_info[k].noperands, &a,
                   NULL, L(1, 1), &d);
      break;
    }
    cr_assert_not_null(r, "%s: %s", ir_op_info[k].name, diag_text());
    ir_add_output(m, fn, ir_op_info[k].name, r, loc_none());
  }
  roundtrip(m);
}

Test(text, floats_are_exact) {
  enum { N = 4000 };
  float *f = malloc(N * sizeof(float));
  double *g = malloc(N * sizeof(double));
  uint64_t s = 88172645463325252ull;
  for (int i = 0; i < N; i++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    uint32_t bits = (uint32_t)s;
    if (i % 4 == 1)
      bits &= 0x807fffffu; /* subnormals */
    memcpy(&f[i], &bits, 4);
    if (f[i] != f[i])
      f[i] = 0.1f;
    memcpy(&g[i], &s, 8);
    if (g[i] != g[i] || i % 5 == 0)
      g[i] = (double)f[i] / 3;
  }
  f[0] = -0.0f;
  g[0] = 1e-320;
  Type tf = ty(DT_F32, 1, N), tg = ty(DT_F64, 1, N);
  Value *cf = ir_const_tensor(m, fn->body, &tf, f, loc_none());
  Value *cg = ir_const_tensor(m, fn->body, &tg, g, loc_none());
  ir_add_output(m, fn, "f", cf, loc_none());
  ir_add_output(m, fn, "g", cg, loc_none());
  char *text = ir_print_to_string(m);
  Module *r = ir_read(text, "f.ir", &d);
  cr_assert_not_null(r, "%s", diag_text());
  Op *a = r->functions->body->first, *b = a->next;
  cr_assert(memcmp(a->attrs.cst.data, f, N * sizeof(float)) == 0);
  cr_assert(memcmp(b->attrs.cst.data, g, N * sizeof(double)) == 0);
  char buf[64];
  ir_format_f32(buf, sizeof buf, 0x1p-140f);
  cr_assert_str_eq(buf, "0x1p-140");
  ir_format_f32(buf, sizeof buf, 0.1f);
  cr_assert_str_eq(buf, "0.1");
  free(text);
  free(f);
  free(g);
  ir_module_free(r);
}

Test(text, reader_errors_are_located) {
  static const struct {
    const char *text, *error;
  } cases[] = {
      {"module\nfunc @f() {\n  %0 = frob : f32[]\n  return\n}",
       "e.ir:3:8: error: unknown op 'frob'"},
      {"module\nfunc @f() {\n  %0 = exp %x : f32[]\n  return\n}",
       "e.ir:3:12: error: unknown value %x"},
      {"module\nfunc @f(%x: f33[2]) {\n  return\n}",
       "e.ir:2:13: error: expected a type such as f32[T, 768], found 'f33'"},
      {"module\nfunc @f(%x: f32[2]) {\n  %0 = add %x : f32[2]\n  return\n}",
       "e.ir:3:8: error: add takes 2 operands, got 1"},
      {"module\nfunc @f(%x: f32[2]) {\n  %x = neg %x : f32[2]\n  return\n}",
       "e.ir:3:3: error: value %x is defined twice"},
      {"module\nfunc @f() {\n  %0 = param 0 : f32[2]\n  return\n}",
       "error: param index 0 out of range (0 params)"},
      {"module\nfunc @f() {\n  %0 = const [1, 2] : f32[3]\n  return\n}",
       "error: const has 2 elements, its type needs 3"},
      {"module\nfunc @f() {\n  %0 = const [1.5] : i32[]\n  return\n}",
       "error: bad i32 constant '1.5'"},
      {"module @\"abc", "e.ir:1:9: error: unterminated string"},
      {"module\n$", "e.ir:2:1: error: unexpected character '$'"},
      {"modle", "e.ir:1:1: error: expected 'module', found 'modle'"},
      {"module\nfunc @f() {\n  %0 = neg : f32[2] {axis = 1}\n",
       "error: neg takes 1 operands, got 0"},
      {"module\nfunc @f(%x: f32[2]) {\n  %0 = reduce_sum %x {axis = 0} : "
       "f32[]\n  return\n}",
       "error: unknown attribute 'axis' for reduce_sum"},
      {"module\nfunc @f() {\n  return y = %0\n}", "unknown value %0"},
      {"module\nfunc @f() {\n", "expected an op or 'return', found end"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fflush(dout);
    size_t before = dlen;
    Module *r = ir_read(cases[i].text, "e.ir", &d);
    cr_assert_null(r, "case %zu parsed", i);
    fflush(dout);
    cr_assert(strstr(dbuf + before, cases[i].error), "case %zu: got %s", i,
              dbuf + before);
  }
}

/* Random mutations of valid text must never crash the reader or the
 * printer (run under ASan in the sanitizer build). */
Test(text, garbage_never_crashes) {
  size_t n = strlen(sample);
  char *buf = malloc(n + 64);
  uint64_t s = 12345;
  static const char alphabet[] = "%@[]{}(),:=*+-\"0123456789.pxTf32 \n/";
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(buf, sample, n + 1);
    size_t len = n;
    for (int k = 0; k < 1 + iter % 4; k++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      size_t pos = (size_t)(s >> 8) % len;
      switch ((s >> 40) % 4) {
      case 0:
        buf[pos] = alphabet[(s >> 20) % (sizeof alphabet - 1)];
        break;
      case 1:
        memmove(buf + pos, buf + pos + 1, len - pos);
        len--;
        break;
      case 2:
        buf[pos] = 0;
        len = pos;
        break;
      default:
        buf[pos] = (char)(s >> 48);
        break;
      }
      if (len == 0)
        break;
    }
    buf[len] = 0;
    Module *r = ir_read(buf, "g.ir", &d);
    if (r) {
      char *out = ir_print_to_string(r);
      free(out);
      ir_module_free(r);
    }
  }
  free(buf);
}

/* ---- whole files ---- */

Test(read_file, reads_everything_up_to_the_limit) {
  char path[] = "/tmp/mc_test_read_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "w");
  for (int i = 0; i < 5000; i++) /* past the first buffer */
    fputc('a' + i % 26, f);
  fclose(f);
  size_t len = 0;
  char *text = read_path(path, SIZE_MAX, &len);
  cr_assert_not_null(text);
  cr_assert_eq(len, 5000);
  cr_assert_eq(text[4999], 'a' + 4999 % 26);
  cr_assert_eq(text[5000], 0);
  free(text);
  text = read_path(path, 100, &len); /* stops early, says so */
  cr_assert_not_null(text);
  cr_assert(len > 100 && len <= 5000);
  free(text);
  f = fopen(path, "w");
  fclose(f);
  text = read_path(path, SIZE_MAX, &len);
  cr_assert_not_null(text);
  cr_assert_eq(len, 0);
  cr_assert_str_eq(text, "");
  free(text);
  unlink(path);
  errno = 0;
  cr_assert_null(read_path(path, SIZE_MAX, &len));
  cr_assert_eq(errno, ENOENT);
  errno = 0;
  cr_assert_null(read_path("/tmp", SIZE_MAX, &len));
  cr_assert_eq(errno, EISDIR);
}
