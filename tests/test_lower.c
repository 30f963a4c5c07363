/* Lowering: model text in, IR (via its API and text form) or located errors
 * out. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../frontend/ast.h"
#include "../frontend/lower.h"

typedef struct Result {
  AstModule *ast;
  Module *m;
  char *errors;
  size_t errlen;
} Result;

static Result lower_entry_text(const char *text, const char *defs,
                               const char *entry) {
  Result r = {0};
  FILE *mem = open_memstream(&r.errors, &r.errlen);
  Diag d;
  diag_init(&d, mem);
  r.ast = ast_parse_string(text, "t.model", &d);
  static LowerDefine dbuf[8];
  int nd = 0;
  static char copy[256];
  if (defs) {
    snprintf(copy, sizeof copy, "%s", defs);
    for (char *tok = strtok(copy, " "); tok && nd < 8;
         tok = strtok(NULL, " ")) {
      char *eq = strchr(tok, '=');
      *eq = 0;
      dbuf[nd].name = tok;
      dbuf[nd].value = eq + 1;
      dbuf[nd].loc = loc_none();
      dbuf[nd].used = false;
      nd++;
    }
  }
  if (r.ast) {
    LowerOptions o = {nd, dbuf, 0, 0, 0, entry, 0, NULL};
    r.m = lower_module(r.ast, &o, &d);
    lower_free_includes(&o);
  }
  diag_free(&d);
  fclose(mem);
  return r;
}

static Result lower_text(const char *text, const char *defs) {
  return lower_entry_text(text, defs, NULL);
}

static void result_free(Result *r) {
  if (r->m)
    ir_module_free(r->m);
  if (r->ast)
    ast_free(r->ast);
  free(r->errors);
}

static char *type_str(const Module *m, const Type *t) {
  static char buf[256];
  type_print(buf, sizeof buf, t, m);
  return buf;
}

static int count_ops(const Module *m, OpKind k) {
  int n = 0;
  for (Op *op = m->functions->body->first; op; op = op->next)
    n += op->kind == k;
  return n;
}

Test(lower, mlp_types_and_params) {
  Result r = lower_text("const n_in = 4\n"
                        "const n_hidden = 8\n"
                        "input x: f32[B, n_in]\n"
                        "param w1: f32[n_hidden, n_in] from \"fc1.weight\"\n"
                        "param b1: f32[n_hidden] from \"fc1.bias\"\n"
                        "fn relu_(x) = maximum(x, 0)\n"
                        "output y = relu_(x @ w1.T + b1)\n",
                        NULL);
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_eq(r.m->nparams, 2);
  cr_assert_str_eq(r.m->params[0].name, "fc1.weight");
  cr_assert_str_eq(r.m->symbols[0], "B");
  cr_assert_str_eq(type_str(r.m, &r.m->functions->outputs[0].value->type),
                   "f32[B, 8]");
  result_free(&r);
}

Test(lower, loops_interpolate_weight_names) {
  Result r = lower_text("const n_layer = 3\n"
                        "input x: f32[4]\n"
                        "fn layer(x, i) {\n"
                        "  param g: f32[4] from \"h.{i}.ln_1.weight\"\n"
                        "  return x * g\n"
                        "}\n"
                        "h = x\n"
                        "for i in range(n_layer) { h = layer(h, i) }\n"
                        "output y = h\n",
                        "n_layer=2");
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_eq(r.m->nparams, 2);
  cr_assert_str_eq(r.m->params[1].name, "h.1.ln_1.weight");
  cr_assert_eq(r.m->consts[0].value, 2);
  /* ops inside `layer` carry its name as their scope */
  Op *mul = NULL;
  for (Op *op = r.m->functions->body->first; op; op = op->next)
    if (op->kind == OP_MUL)
      mul = op;
  cr_assert_not_null(mul);
  cr_assert_str_eq(mul->loc.scope, "layer");
  cr_assert_eq(mul->loc.line, 5);
  result_free(&r);
}

Test(lower, rounding_constants_are_not_folded) {
  Result r = lower_text("input x: f32[N]\n"
                        "output y = x * 2.0^-140 * 2.0^140\n",
                        NULL);
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_eq(count_ops(r.m, OP_MUL), 2);
  result_free(&r);
}

Test(lower, power_two_and_three_are_products) {
  Result r = lower_text("input x: f32[N]\noutput y = x^3 + x**2\n", NULL);
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_eq(count_ops(r.m, OP_MUL), 3);
  cr_assert_eq(count_ops(r.m, OP_POW), 0);
  result_free(&r);
}

Test(lower, indexing_slicing_gather) {
  Result r = lower_text("input tokens: i32[T]\n"
                        "input x: f32[B, T, 6]\n"
                        "param wte: f32[10, 4]\n"
                        "param wpe: f32[16, 4]\n"
                        "output e = wte[tokens] + wpe[0:T]\n"
                        "output last = x[:, -1]\n"
                        "output col = x[..., 2:4, None]\n"
                        "q, k = split(x, 2, axis=-1)\n"
                        "output k2 = reshape(k, [B, -1])\n",
                        NULL);
  cr_assert_not_null(r.m, "%s", r.errors);
  Function *f = r.m->functions;
  cr_assert_str_eq(type_str(r.m, &f->outputs[0].value->type), "f32[T, 4]");
  cr_assert_str_eq(type_str(r.m, &f->outputs[1].value->type), "f32[B, 6]");
  cr_assert_str_eq(type_str(r.m, &f->outputs[2].value->type),
                   "f32[B, T, 2, 1]");
  cr_assert_str_eq(type_str(r.m, &f->outputs[3].value->type), "f32[B, 3*T]");
  result_free(&r);
}

Test(lower, attention_shapes) {
  Result r =
      lower_text("const d = 8\nconst h = 2\n"
                 "input x: f32[T, d]\n"
                 "fn heads(t) = permute(reshape(t, [T, h, d / h]), [1, 0, 2])\n"
                 "q = heads(x)\n"
                 "s = q @ transpose(q, -1, -2) / sqrt(d / h)\n"
                 "mask = arange(T)[:, None] >= arange(T)[None, :]\n"
                 "p = softmax(where(mask, s, -inf), axis=-1)\n"
                 "output y = reshape(permute(p @ q, [1, 0, 2]), [T, d])\n"
                 "output m = mean(x, axis=-1, keepdims=true)\n",
                 NULL);
  cr_assert_not_null(r.m, "%s", r.errors);
  Function *f = r.m->functions;
  cr_assert_str_eq(type_str(r.m, &f->outputs[0].value->type), "f32[T, 8]");
  cr_assert_str_eq(type_str(r.m, &f->outputs[1].value->type), "f32[T, 1]");
  result_free(&r);
}

Test(lower, symbol_bound_by_define) {
  Result r = lower_text("input x: f32[T, 4]\noutput y = x + 1\n", "T=5");
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_eq(r.m->nsymbols, 0);
  cr_assert_str_eq(type_str(r.m, &r.m->functions->outputs[0].value->type),
                   "f32[5, 4]");
  result_free(&r);
}

Test(lower, error_unknown_name_suggests) {
  Result r = lower_text("input x: f32[4]\noutput y = tanh(xx)\n", NULL);
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "t.model:2:17: error: unknown name 'xx'; did you "
                             "mean 'x'?"),
            "%s", r.errors);
  result_free(&r);
}

Test(lower, error_shape_mismatch_names_both) {
  Result r = lower_text("input a: f32[T, 4]\n"
                        "input b: f32[T, 5]\n"
                        "output y = a + b\n",
                        NULL);
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "t.model:3:"), "%s", r.errors);
  cr_assert(strstr(r.errors, "[T, 4]") && strstr(r.errors, "[T, 5]"), "%s",
            r.errors);
  result_free(&r);
}

Test(lower, error_declared_output_type) {
  Result r = lower_text("input a: f32[T, 4]\n"
                        "output y: f32[T, 5] = a * 2\n",
                        NULL);
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "output 'y' is declared f32[T, 5] but computes "
                             "f32[T, 4]"),
            "%s", r.errors);
  result_free(&r);
}

Test(lower, error_arity_and_unknown_define) {
  Result r = lower_text(
      "fn f(a, b) = a + b\ninput x: f32[2]\noutput y = f(x)\n", NULL);
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "missing argument 'b' of 'f'"), "%s", r.errors);
  result_free(&r);
  r = lower_text("input x: f32[2]\noutput y = x\n", "nope=3");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "no constant or dimension named 'nope'"), "%s",
            r.errors);
  result_free(&r);
}

Test(lower, error_recursion_limit) {
  Result r =
      lower_text("fn f(x) = f(x)\ninput x: f32[2]\noutput y = f(x)\n", NULL);
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "limit exceeded"), "%s", r.errors);
  result_free(&r);
}

/* Each function's body is within the parser's depth limit, but lowering
 * recurses through the calls: f0(x) = f1(x) + x + ... (900 terms, f1(x) at
 * the bottom of the tree), and so on. Ten of them nest 9,000 deep: refused
 * with one located "limit exceeded" (where the count passes the limit),
 * not a stack overflow; five (4,500) lower. */
static char *nested_calls(int nfn) {
  size_t cap = (size_t)nfn * 4000 + 256, len = 0;
  char *text = malloc(cap);
  for (int i = 0; i < nfn; i++) {
    len +=
        (size_t)snprintf(text + len, cap - len, "fn f%d(x) = f%d(x)", i, i + 1);
    for (int k = 0; k < 900; k++)
      len += (size_t)snprintf(text + len, cap - len, " + x");
    len += (size_t)snprintf(text + len, cap - len, "\n");
  }
  snprintf(text + len, cap - len,
           "fn f%d(x) = x\ninput x: f32[4]\noutput y: f32[4] = f0(x)\n", nfn);
  return text;
}

Test(lower, nesting_through_calls_is_limited) {
  char *text = nested_calls(10);
  Result r = lower_text(text, NULL);
  cr_assert_null(r.m);
  cr_assert(strncmp(r.errors,
                    "t.model:6:12: error: limit exceeded: expressions and "
                    "statements nested deeper than 5000, counting through "
                    "calls\n",
                    110) == 0,
            "%.300s", r.errors);
  cr_assert_null(strstr(strchr(r.errors, '\n'), "error:"), "%.600s", r.errors);
  result_free(&r);
  free(text);
  text = nested_calls(5);
  r = lower_text(text, NULL);
  cr_assert_not_null(r.m, "%.300s", r.errors);
  result_free(&r);
  free(text);
}

/* Loops and calls cannot make a model of unbounded size: past
 * LowerOptions.max_values values (default 250,000) or max_unroll loop
 * iterations (default 100,000), "limit exceeded" where it happened. Small
 * limits here, the defaults' costs in the commit that set them. */
Test(lower, values_and_unrolling_are_limited) {
  const char *text = "input x: f32[4]\nh = x\nfor i in range(1000) {\n"
                     "  h = tanh(h) + 1\n}\noutput y: f32[4] = h\n";
  for (int k = 0; k < 2; k++) {
    FILE *mem;
    Result r = {0};
    mem = open_memstream(&r.errors, &r.errlen);
    Diag d;
    diag_init(&d, mem);
    r.ast = ast_parse_string(text, "t.model", &d);
    LowerOptions o = {0, NULL, 0, 0, 0, NULL, 0, NULL};
    if (k == 0)
      o.max_values = 500;
    else
      o.max_unroll = 300;
    r.m = lower_module(r.ast, &o, &d);
    diag_free(&d);
    fclose(mem);
    cr_assert_null(r.m);
    const char *want =
        k == 0 ? "t.model:4:3: error: limit exceeded: the model lowers to "
                 "more than 500 values\n"
               : "t.model:3:1: error: limit exceeded: more than 300 loop "
                 "iterations unrolled\n";
    cr_assert(strncmp(r.errors, want, strlen(want)) == 0, "%s", r.errors);
    cr_assert_null(strstr(strchr(r.errors, '\n'), "error:"), "%s", r.errors);
    result_free(&r);
  }
}

static const char *two_entries = "const n = 4\n"
                                 "param w: f32[n, n]\n"
                                 "fn proj(x) = x @ w\n"
                                 "entry encode {\n"
                                 "  input x: f32[B, n]\n"
                                 "  output y = proj(x)\n"
                                 "}\n"
                                 "entry score {\n"
                                 "  input x: f32[n]\n"
                                 "  input k: i32[]\n"
                                 "  output s = sum(proj(x))\n"
                                 "}\n";

Test(lower, entries_share_weights_and_functions) {
  Result r = lower_text(two_entries, NULL);
  cr_assert_not_null(r.m, "%s", r.errors);
  Function *f = r.m->functions;
  cr_assert_str_eq(f->name, "encode");
  cr_assert_str_eq(f->next->name, "score");
  cr_assert_null(f->next->next);
  cr_assert_eq(r.m->nparams, 1);
  cr_assert_eq(r.m->nconsts, 1);
  cr_assert_eq(f->next->ninputs, 2);
  cr_assert_str_eq(type_str(r.m, &f->outputs[0].value->type), "f32[B, 4]");
  result_free(&r);
}

Test(lower, entry_option_selects_one) {
  Result r = lower_entry_text(two_entries, NULL, "score");
  cr_assert_not_null(r.m, "%s", r.errors);
  cr_assert_str_eq(r.m->functions->name, "score");
  cr_assert_null(r.m->functions->next);
  result_free(&r);
  r = lower_entry_text(two_entries, NULL, "decode");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "no entry point named 'decode'"), "%s", r.errors);
  result_free(&r);
}

Test(lower, entries_errors) {
  Result r = lower_text("input x: f32[2]\nentry a { output y = x }\n", NULL);
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "t.model:1:1: error: this model has entry points: "
                             "declare inputs inside an entry"),
            "%s", r.errors);
  result_free(&r);
  r = lower_text("entry a { input x: f32[2] }\n", NULL);
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "entry 'a' declares no output"), "%s", r.errors);
  result_free(&r);
}

/* include: files written to a temporary directory */
static char incdir[64];

static void write_file(const char *name, const char *text) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", incdir, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

static Result lower_path(const char *name) {
  Result r = {0};
  char path[128];
  snprintf(path, sizeof path, "%s/%s", incdir, name);
  FILE *mem = open_memstream(&r.errors, &r.errlen);
  Diag d;
  diag_init(&d, mem);
  r.ast = ast_parse_file(path, &d);
  LowerOptions o = {0, NULL, 0, 0, 0, NULL, 0, NULL};
  if (r.ast)
    r.m = lower_module(r.ast, &o, &d);
  diag_free(&d);
  lower_free_includes(&o);
  fclose(mem);
  return r;
}

Test(lower, include_shares_definitions_and_locates_errors) {
  snprintf(incdir, sizeof incdir, "/tmp/mc_include_XXXXXX");
  cr_assert_not_null(mkdtemp(incdir));
  char sub[96];
  snprintf(sub, sizeof sub, "%s/lib", incdir);
  mkdir(sub, 0755);
  write_file("lib/layers.model", "const d = 3\nfn act(x) = tanh(x) * 2\n");
  write_file("ok.model", "include \"lib/layers.model\"\n"
                         "input x: f32[d]\noutput y = act(x)\n");
  Result r = lower_path("ok.model");
  cr_assert_not_null(r.m, "%s", r.errors);
  Op *t = r.m->functions->body->first;
  cr_assert_eq(t->kind, OP_TANH);
  cr_assert(strstr(t->loc.file, "lib/layers.model"), "%s", t->loc.file);
  result_free(&r);

  write_file("self.model", "include \"self.model\"\n");
  r = lower_path("self.model");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "self.model:1:1: error: "), "%s", r.errors);
  cr_assert(strstr(r.errors, "is already included"), "%s", r.errors);
  result_free(&r);

  write_file("missing.model", "include \"lib/none.model\"\n");
  r = lower_path("missing.model");
  cr_assert_null(r.m);
  cr_assert(strstr(r.errors, "lib/none.model: error: cannot open"), "%s",
            r.errors);
  cr_assert(strstr(r.errors, "note: included from here"), "%s", r.errors);
  result_free(&r);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", incdir);
  cr_assert_eq(system(cmd), 0);
}
