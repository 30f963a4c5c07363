/* The IR text reader: parses what ir/print.c writes (see the grammar there
 * and below) into a Module. Types are taken as written (ir_build_typed);
 * pass_verify / pass_infer_shapes check them afterwards. The reader itself
 * guarantees only what later code needs not to crash: operand counts match
 * ops.def, every operand is defined earlier in the function, param indices
 * exist, constants have constant shapes and exactly the bytes they need.
 * Malformed text gives one located error and NULL; garbage never crashes.
 *
 *   module   := 'module' ['@' name] ['file' STRING] item*
 *   item     := 'symbols' IDENT (',' IDENT)*
 *             | 'const' name '=' number [':' 'f64']
 *             | 'param' STRING ':' type ['prepared'] [loc]
 *             | 'func' ['prepare'] '@' name '(' [input (',' input)*] ')' [loc]
 *               '{' op* 'return' [output (',' output)*] '}'
 *   input    := VALUE ':' type ['=' number] [loc]
 *   output   := name '=' VALUE [loc]
 *   op       := VALUE (',' VALUE)* '=' OPNAME ['[' number,* ']' | INT]
 *               [VALUE (',' VALUE)*] ['{' attr (',' attr)* '}'] [region]
 *               ':' type (',' type)* [loc]
 *             | 'yield' [VALUE (',' VALUE)*] [loc]      (last op of a region)
 *   region   := '(' [VALUE ':' type (',' VALUE ':' type)*] ')' '{' op* '}'
 * A region's values are visible only inside it.
 *   attr     := 'axis' '=' INT | 'trans_a' | 'trans_b' | 'keepdims'
 *             | 'axes' '=' '[' INT,* ']' | 'perm' '=' '[' INT,* ']'
 *             | 'start' '=' '[' dim,* ']' | 'step' '=' '[' INT,* ']'
 *             | 'ncarry' '=' INT | 'nseq' '=' INT | 'length' '=' dim
 *             | 'reverse' | 'index' | 'until'
 *   type     := DTYPE '[' [dim (',' dim)*] ']'
 *   dim      := ['-'] term (('+' | '-') term)*   term := factor ('*' factor)*
 *   factor   := INT | IDENT | '(' dim ')'
 *   loc      := '@' [STRING ':'] INT ':' INT [STRING]
 *   name     := IDENT | STRING          VALUE := '%' (IDENT | INT | STRING)
 * Comments run from // to the end of the line.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

#include "read_internal.h"

/* ---- ops ----------------------------------------------------------------- */

static bool parse_int_list(Reader *r, int64_t lo, int64_t hi, int64_t *vals,
                           int *n) {
  EXPECT(r, TK_LBRACKET, "'['");
  *n = 0;
  if (irlex_accept(&r->lx, TK_RBRACKET))
    return true;
  do {
    if (*n >= MAX_RANK) {
      irlex_error(&r->lx, "more than %d entries", MAX_RANK);
      return false;
    }
    if (!rd_parse_int(r, lo, hi, &vals[(*n)++]))
      return false;
  } while (irlex_accept(&r->lx, TK_COMMA));
  EXPECT(r, TK_RBRACKET, "']'");
  return true;
}

enum { MAX_RESULTS = 32, MAX_OPERANDS = 1 << 16, MAX_CONST = 1 << 24 };

static bool parse_attrs(Reader *r, OpKind kind, Attrs *a) {
  IrLexer *lx = &r->lx;
  AttrKind ak = ir_op_info[kind].attr;
  if (!irlex_accept(lx, TK_LBRACE))
    return true;
  do {
    if (lx->kind != TK_IDENT)
      return irlex_expect(lx, TK_IDENT, "an attribute name");
    char key[16];
    snprintf(key, sizeof key, "%s", lx->text);
    bool known = strlen(lx->text) < sizeof key;
    irlex_next(lx);
    int64_t v = 0, list[MAX_RANK];
    int n;
    if (known && ak == ATTR_AXIS && strcmp(key, "axis") == 0) {
      EXPECT(r, TK_EQUAL, "'='");
      if (!rd_parse_int(r, -1000000, 1000000, &v))
        return false;
      a->axis.axis = (int)v;
    } else if (known && ak == ATTR_MATMUL && strcmp(key, "trans_a") == 0) {
      a->matmul.trans_a = true;
    } else if (known && ak == ATTR_MATMUL && strcmp(key, "trans_b") == 0) {
      a->matmul.trans_b = true;
    } else if (known && ak == ATTR_REDUCE && strcmp(key, "keepdims") == 0) {
      a->reduce.keepdims = true;
    } else if (known && ak == ATTR_REDUCE && strcmp(key, "axes") == 0) {
      EXPECT(r, TK_EQUAL, "'='");
      if (!parse_int_list(r, 0, 31, list, &n))
        return false;
      for (int i = 0; i < n; i++)
        a->reduce.axes |= 1u << list[i];
    } else if (known && ak == ATTR_PERM && strcmp(key, "perm") == 0) {
      EXPECT(r, TK_EQUAL, "'='");
      if (!parse_int_list(r, -1000000, 1000000, list, &n))
        return false;
      for (int i = 0; i < n; i++)
        a->perm.perm[i] = (int)list[i];
    } else if (known && ak == ATTR_SLICE && strcmp(key, "step") == 0) {
      EXPECT(r, TK_EQUAL, "'='");
      if (!parse_int_list(r, INT64_MIN + 1, INT64_MAX, list, &n))
        return false;
      for (int i = 0; i < n; i++)
        a->slice.step[i] = list[i];
    } else if (known && ak == ATTR_SLICE && strcmp(key, "start") == 0) {
      EXPECT(r, TK_EQUAL, "'='");
      if (!rd_parse_dim_list(r, a->slice.start, &n))
        return false;
    } else if (known && ak == ATTR_SCAN &&
               (!strcmp(key, "ncarry") || !strcmp(key, "nseq"))) {
      EXPECT(r, TK_EQUAL, "'='");
      if (!rd_parse_int(r, 0, MAX_OPERANDS, &v))
        return false;
      *(key[1] == 'c' ? &a->scan.ncarry : &a->scan.nseq) = (int)v;
    } else if (known && ak == ATTR_SCAN && strcmp(key, "length") == 0) {
      EXPECT(r, TK_EQUAL, "'='");
      if (!rd_parse_dim(r, &a->scan.length))
        return false;
    } else if (known && ak == ATTR_SCAN && strcmp(key, "reverse") == 0) {
      a->scan.reverse = true;
    } else if (known && ak == ATTR_SCAN && strcmp(key, "index") == 0) {
      a->scan.with_index = true;
    } else if (known && ak == ATTR_SCAN && strcmp(key, "until") == 0) {
      a->scan.until = true;
    } else {
      irlex_error(lx, "unknown attribute '%s' for %s", key,
                  ir_op_info[kind].name);
      return false;
    }
  } while (irlex_accept(lx, TK_COMMA));
  EXPECT(r, TK_RBRACE, "'}'");
  return true;
}

typedef struct OpText {
  const char *names[MAX_RESULTS];
  bool numeric[MAX_RESULTS];
  int nresults;
  Value **operands;
  int noperands, cap_operands;
  const char **elems; /* CONST element texts (arena) */
  int64_t nelems, cap_elems;
} OpText;

static bool parse_const_elems(Reader *r, OpText *t) {
  EXPECT(r, TK_LBRACKET, "'['");
  if (irlex_accept(&r->lx, TK_RBRACKET))
    return true;
  do {
    char buf[128];
    if (!rd_number_text(r, buf, sizeof buf))
      return false;
    if (t->nelems == MAX_CONST) {
      irlex_error(&r->lx, "constant has more than %d elements", MAX_CONST);
      return false;
    }
    if (t->nelems == t->cap_elems) {
      t->cap_elems = t->cap_elems ? 2 * t->cap_elems : 16;
      t->elems = realloc(t->elems, (size_t)t->cap_elems * sizeof(char *));
      if (!t->elems)
        abort();
    }
    t->elems[t->nelems++] = ir_strdup(r->m, buf);
    irlex_next(&r->lx);
  } while (irlex_accept(&r->lx, TK_COMMA));
  EXPECT(r, TK_RBRACKET, "']'");
  return true;
}

static bool parse_operands(Reader *r, OpText *t) {
  if (r->lx.kind != TK_VALUE)
    return true;
  do {
    if (t->noperands == MAX_OPERANDS) {
      irlex_error(&r->lx, "too many operands");
      return false;
    }
    if (t->noperands == t->cap_operands) {
      t->cap_operands = t->cap_operands ? 2 * t->cap_operands : 8;
      t->operands =
          realloc(t->operands, (size_t)t->cap_operands * sizeof(Value *));
      if (!t->operands)
        abort();
    }
    if (!rd_value_use(r, &t->operands[t->noperands++]))
      return false;
  } while (irlex_accept(&r->lx, TK_COMMA));
  return true;
}

static bool parse_results(Reader *r, OpText *t) {
  IrLexer *lx = &r->lx;
  do {
    if (lx->kind != TK_VALUE)
      return irlex_expect(lx, TK_VALUE, "a result value");
    if (t->nresults == MAX_RESULTS) {
      irlex_error(lx, "too many results");
      return false;
    }
    bool dup = rd_value_slot(r, lx->text, lx->numeric)->key != NULL;
    for (int i = 0; i < t->nresults; i++)
      dup |= t->numeric[i] == lx->numeric && strcmp(t->names[i], lx->text) == 0;
    if (dup) {
      irlex_error(lx, "value %%%s is defined twice", lx->text);
      return false;
    }
    t->names[t->nresults] = ir_strdup(r->m, lx->text);
    t->numeric[t->nresults++] = lx->numeric;
    irlex_next(lx);
  } while (irlex_accept(lx, TK_COMMA));
  EXPECT(r, TK_EQUAL, "'='");
  return true;
}

static void define(Reader *r, const char *key, bool numeric, Value *v) {
  if (2 * (r->vcount + 1) > r->vcap)
    rd_values_resize(r, 2 * r->vcap, true);
  ValueEntry *e = rd_value_slot(r, key, numeric);
  e->key = key;
  e->numeric = numeric;
  e->scope = r->nscopes ? r->scopes[r->nscopes - 1] : 0;
  e->value = v;
  r->vcount++;
  if (!numeric)
    v->name = key;
}

/* Checks what later code relies on, then builds the op. */
static bool build_op(Reader *r, OpKind kind, OpText *t, const Attrs *a,
                     const Type *types, Loc loc, Block *region) {
  IrLexer *lx = &r->lx;
  const OpInfo *info = &ir_op_info[kind];
  if (info->noperands >= 0 ? t->noperands != info->noperands
                           : t->noperands < ir_op_min_operands(kind)) {
    irlex_error(lx, "%s takes %d operands, got %d", info->name, info->noperands,
                t->noperands);
    return false;
  }
  if (kind == OP_PARAM && (a->param.index >= r->m->nparams)) {
    irlex_error(lx, "param index %d out of range (%d params)", a->param.index,
                r->m->nparams);
    return false;
  }
  void *data = NULL;
  if (kind == OP_CONST) {
    int64_t n;
    if (t->nresults != 1 || !shape_const_numel(&types[0].shape, &n) ||
        n > MAX_CONST) {
      irlex_error(lx, "const needs one result of a constant, small shape");
      return false;
    }
    if (t->nelems != n && !(t->nelems == 1 && n > 0)) {
      irlex_error(lx, "const has %lld elements, its type needs %lld",
                  (long long)t->nelems, (long long)n);
      return false;
    }
    data =
        arena_alloc(&r->m->arena, (size_t)n * dtype_size(types[0].dtype) + 1);
    for (int64_t i = 0; i < n; i++)
      if (!rd_convert_elem(r, types[0].dtype, t->elems[t->nelems == 1 ? 0 : i],
                           data, (size_t)i))
        return false;
  }
  bool regional = kind == OP_SCAN || kind == OP_FUSED;
  if (regional != (region != NULL)) {
    irlex_error(
        lx, region ? "only scan and fused have a region" : "%s needs a region",
        ir_op_info[kind].name);
    return false;
  }
  Op *op = ir_build_typed(r->m, r->block, kind, t->operands, t->noperands, a,
                          types, t->nresults, loc);
  if (region) {
    op->nregions = 1;
    op->regions = arena_alloc(&r->m->arena, sizeof(Block *));
    op->regions[0] = region;
    region->parent_op = op;
  }
  if (kind == OP_CONST)
    op->attrs.cst.data = data;
  for (int i = 0; i < t->nresults; i++)
    define(r, t->names[i], t->numeric[i], op->results[i]);
  return true;
}

static bool parse_block_ops(Reader *r, Block *b);

/* '(' args ')' '{' op* '}' into a new block, its values in a new scope */
static bool parse_region(Reader *r, Block **out) {
  IrLexer *lx = &r->lx;
  if (r->nscopes == (int)(sizeof r->scopes / sizeof r->scopes[0])) {
    irlex_error(lx, "regions nested too deeply");
    return false;
  }
  Block *b = ir_block_new(r->m), *outer = r->block;
  r->scopes[r->nscopes++] = ++r->last_scope;
  EXPECT(r, TK_LPAREN, "'(' and the region's arguments");
  if (!irlex_accept(lx, TK_RPAREN)) {
    do {
      if (lx->kind != TK_VALUE)
        return irlex_expect(lx, TK_VALUE, "a region argument");
      if (rd_value_slot(r, lx->text, lx->numeric)->key) {
        irlex_error(lx, "value %%%s is defined twice", lx->text);
        return false;
      }
      const char *key = ir_strdup(r->m, lx->text);
      bool numeric = lx->numeric;
      Type t;
      irlex_next(lx);
      EXPECT(r, TK_COLON, "':'");
      if (!rd_parse_type(r, &t))
        return false;
      define(r, key, numeric, ir_block_add_arg(r->m, b, t, NULL));
    } while (irlex_accept(lx, TK_COMMA));
    EXPECT(r, TK_RPAREN, "')'");
  }
  EXPECT(r, TK_LBRACE, "'{'");
  r->block = b;
  bool ok = parse_block_ops(r, b);
  r->block = outer;
  r->nscopes--;
  if (!ok)
    return false;
  if (!b->last || b->last->kind != OP_YIELD) {
    irlex_error(lx, "a region must end with a yield");
    return false;
  }
  EXPECT(r, TK_RBRACE, "'}'");
  *out = b;
  return true;
}

static bool parse_yield(Reader *r, OpText *t) {
  IrLexer *lx = &r->lx;
  Loc loc;
  irlex_next(lx);
  if (!parse_operands(r, t) || !rd_parse_loc(r, &loc))
    return false;
  if (!r->nscopes) {
    irlex_error(lx, "yield outside a region");
    return false;
  }
  Attrs a;
  memset(&a, 0, sizeof a);
  return build_op(r, OP_YIELD, t, &a, NULL, loc, NULL);
}

static bool parse_op_body(Reader *r, OpText *t) {
  IrLexer *lx = &r->lx;
  if (irlex_is(lx, "yield"))
    return parse_yield(r, t);
  if (!parse_results(r, t))
    return false;
  OpKind kind = OP_CONST;
  if (lx->kind != TK_IDENT)
    return irlex_expect(lx, TK_IDENT, "an op name");
  if (!ir_op_from_name(lx->text, &kind)) {
    irlex_error(lx, "unknown op '%s'", lx->text);
    return false;
  }
  Loc oploc = {lx->path, lx->tok_line, lx->tok_col, 0, NULL};
  irlex_next(lx);
  Attrs a;
  memset(&a, 0, sizeof a);
  if (kind == OP_CONST && !parse_const_elems(r, t))
    return false;
  if (kind == OP_PARAM) {
    int64_t idx = 0;
    if (!rd_parse_int(r, 0, 1 << 30, &idx))
      return false;
    a.param.index = (int)idx;
  }
  if (!parse_operands(r, t) || !parse_attrs(r, kind, &a))
    return false;
  Block *region = NULL;
  if (lx->kind == TK_LPAREN && !parse_region(r, &region))
    return false;
  EXPECT(r, TK_COLON, "':' and the result type");
  Type types[MAX_RESULTS];
  for (int i = 0; i < t->nresults; i++) {
    if (i > 0)
      EXPECT(r, TK_COMMA, "',' and another result type");
    if (!rd_parse_type(r, &types[i]))
      return false;
  }
  Loc loc;
  if (!rd_parse_loc(r, &loc))
    return false;
  /* Errors about the whole op point at its name. */
  lx->tok_line = oploc.line;
  lx->tok_col = oploc.col;
  return build_op(r, kind, t, &a, types, loc, region);
}

static bool parse_op(Reader *r) {
  OpText t;
  memset(&t, 0, sizeof t);
  bool ok = parse_op_body(r, &t);
  free(t.operands);
  free(t.elems);
  return ok;
}

/* Ops until something else; a yield ends a region's ops. */
static bool parse_block_ops(Reader *r, Block *b) {
  while (r->lx.kind == TK_VALUE || irlex_is(&r->lx, "yield")) {
    if (!parse_op(r))
      return false;
    if (b->last && b->last->kind == OP_YIELD)
      break;
  }
  return true;
}

/* ---- functions and the module -------------------------------------------- */

static bool parse_input(Reader *r, Function *f) {
  IrLexer *lx = &r->lx;
  if (lx->kind != TK_VALUE)
    return irlex_expect(lx, TK_VALUE, "an input such as %x");
  if (rd_value_slot(r, lx->text, lx->numeric)->key) {
    irlex_error(lx, "input %%%s is declared twice", lx->text);
    return false;
  }
  const char *name = ir_strdup(r->m, lx->text);
  irlex_next(lx);
  EXPECT(r, TK_COLON, "':'");
  Type type;
  if (!rd_parse_type(r, &type))
    return false;
  double def = 0;
  bool has_default = irlex_accept(lx, TK_EQUAL);
  if (has_default && !rd_parse_double(r, &def))
    return false;
  bool step = irlex_is(lx, "step");
  if (step)
    irlex_next(lx);
  Loc loc;
  if (!rd_parse_loc(r, &loc))
    return false;
  Value *v = ir_add_input(r->m, f, name, type, loc);
  f->inputs[f->ninputs - 1].has_default = has_default;
  f->inputs[f->ninputs - 1].default_value = def;
  f->inputs[f->ninputs - 1].step = step;
  define(r, v->name, false, v);
  return true;
}

/* A training entry's output: "updates param N" or "updates input N". */
static bool parse_updates(Reader *r, const Function *f, int64_t *param,
                          int64_t *input) {
  IrLexer *lx = &r->lx;
  if (!irlex_is(lx, "updates"))
    return true;
  irlex_next(lx);
  if (irlex_is(lx, "param")) {
    irlex_next(lx);
    return rd_parse_int(r, 0, r->m->nparams - 1, param);
  }
  if (!irlex_is(lx, "input"))
    return irlex_expect(lx, TK_NONE, "'param' or 'input'");
  irlex_next(lx);
  return rd_parse_int(r, 0, f->ninputs - 1, input);
}

static bool parse_function(Reader *r) {
  IrLexer *lx = &r->lx;
  const char *name = NULL;
  EXPECT(r, TK_AT, "'@' and the function name");
  if (lx->kind == TK_IDENT || lx->kind == TK_STRING) {
    if (ir_find_function(r->m, lx->text)) {
      irlex_error(lx, "function @%s is defined twice", lx->text);
      return false;
    }
  }
  if (!rd_parse_name(r, &name))
    return false;
  Function *f = ir_function_new(r->m, name, loc_none());
  r->fn = f;
  rd_values_resize(r, 64, false);
  EXPECT(r, TK_LPAREN, "'('");
  if (!irlex_accept(lx, TK_RPAREN)) {
    do {
      if (!parse_input(r, f))
        return false;
    } while (irlex_accept(lx, TK_COMMA));
    EXPECT(r, TK_RPAREN, "')'");
  }
  if (!rd_parse_loc(r, &f->loc))
    return false;
  EXPECT(r, TK_LBRACE, "'{'");
  r->block = f->body;
  if (!parse_block_ops(r, f->body))
    return false;
  if (!irlex_is(lx, "return"))
    return irlex_expect(lx, TK_NONE, "an op or 'return'");
  irlex_next(lx);
  if (lx->kind != TK_RBRACE) {
    do {
      const char *oname = NULL;
      Value *v = NULL;
      Loc loc;
      if (!rd_parse_name(r, &oname))
        return false;
      EXPECT(r, TK_EQUAL, "'='");
      int64_t param = -1, input = -1;
      if (!rd_value_use(r, &v) || !parse_updates(r, f, &param, &input) ||
          !rd_parse_loc(r, &loc))
        return false;
      ir_add_output(r->m, f, oname, v, loc);
      f->outputs[f->noutputs - 1].updates_param = (int)param;
      f->outputs[f->noutputs - 1].updates_input = (int)input;
    } while (irlex_accept(lx, TK_COMMA));
  }
  EXPECT(r, TK_RBRACE, "'}'");
  return true;
}

static bool parse_item(Reader *r) {
  IrLexer *lx = &r->lx;
  if (irlex_is(lx, "symbols")) {
    irlex_next(lx);
    do {
      if (lx->kind != TK_IDENT)
        return irlex_expect(lx, TK_IDENT, "a symbol name");
      if (ir_symbol(r->m, lx->text) < 0) {
        irlex_error(lx, "too many symbols");
        return false;
      }
      irlex_next(lx);
    } while (irlex_accept(lx, TK_COMMA));
    return true;
  }
  if (irlex_is(lx, "const")) {
    irlex_next(lx);
    const char *name = NULL;
    char buf[128];
    if (!rd_parse_name(r, &name))
      return false;
    EXPECT(r, TK_EQUAL, "'='");
    if (!rd_number_text(r, buf, sizeof buf))
      return false;
    irlex_next(lx);
    if (irlex_accept(lx, TK_COLON)) { /* float constants end in : f64 */
      double f;
      if (!irlex_is(lx, "f64"))
        return irlex_expect(lx, TK_NONE, "f64");
      irlex_next(lx);
      if (!rd_convert_elem(r, DT_F64, buf, &f, 0))
        return false;
      ir_add_const_float(r->m, name, f);
      return true;
    }
    int64_t v;
    if (!rd_convert_elem(r, DT_I64, buf, &v, 0))
      return false;
    ir_add_const(r->m, name, v);
    return true;
  }
  if (irlex_is(lx, "param")) {
    irlex_next(lx);
    if (lx->kind != TK_STRING)
      return irlex_expect(lx, TK_STRING, "a quoted weight name");
    const char *name = ir_strdup(r->m, lx->text);
    irlex_next(lx);
    EXPECT(r, TK_COLON, "':'");
    Type t;
    Loc loc;
    if (!rd_parse_type(r, &t))
      return false;
    bool prepared = irlex_is(lx, "prepared");
    if (prepared)
      irlex_next(lx);
    if (!rd_parse_loc(r, &loc))
      return false;
    if (!shape_is_const(&t.shape)) {
      irlex_error(lx, "param \"%s\" needs a constant shape", name);
      return false;
    }
    int index = ir_add_param(r->m, name, t, loc, lx->d);
    if (index < 0) {
      lx->failed = true;
      lx->kind = TK_ERROR;
      return false;
    }
    r->m->params[index].prepared = prepared;
    return true;
  }
  if (irlex_is(lx, "func")) {
    irlex_next(lx);
    bool prepares = irlex_is(lx, "prepare");
    if (prepares)
      irlex_next(lx);
    if (!parse_function(r))
      return false;
    r->m->last_function->prepares = prepares;
    return true;
  }
  return irlex_expect(lx, TK_NONE, "'symbols', 'const', 'param' or 'func'");
}

Module *ir_read(const char *text, const char *path, Diag *d) {
  Reader r;
  memset(&r, 0, sizeof r);
  irlex_init(&r.lx, text, path, d);
  r.m = ir_module_new(NULL);
  bool ok = false;
  if (irlex_is(&r.lx, "module")) {
    irlex_next(&r.lx);
    ok = true;
    if (irlex_accept(&r.lx, TK_AT))
      ok = rd_parse_name(&r, &r.m->name);
    if (ok && irlex_is(&r.lx, "file")) {
      irlex_next(&r.lx);
      if (r.lx.kind == TK_STRING) {
        r.m->source_file = ir_strdup(r.m, r.lx.text);
        irlex_next(&r.lx);
      } else {
        ok = irlex_expect(&r.lx, TK_STRING, "a quoted file name");
      }
    }
    while (ok && r.lx.kind != TK_EOF)
      ok = parse_item(&r);
  } else {
    irlex_expect(&r.lx, TK_NONE, "'module'");
  }
  ok = ok && !r.lx.failed;
  irlex_free(&r.lx);
  free(r.vals);
  if (!ok) {
    ir_module_free(r.m);
    return NULL;
  }
  return r.m;
}
