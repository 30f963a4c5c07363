/* The IR core: module tables (symbols, params, consts), functions, blocks,
 * op construction and editing, dtype helpers and the op table.
 *
 * Invariants kept here:
 *  - every Value gets a module-unique id from Module.next_value_id;
 *  - Value.nuses counts operand references plus function-output references,
 *    so an op whose results all have nuses == 0 is dead;
 *  - CONST data is copied into the module arena when the op is built, so
 *    callers may pass stack buffers;
 *  - ops are linked into exactly one block (prev/next/parent) until removed.
 */
#include "ir.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtypes ---------------------------------------------------------- */

static const char *const dtype_names[DT_COUNT] = {
    [DT_F32] = "f32",   [DT_F64] = "f64", [DT_I32] = "i32",   [DT_I64] = "i64",
    [DT_BOOL] = "bool", [DT_F16] = "f16", [DT_BF16] = "bf16",
};

const char *dtype_name(DType t) {
  if ((unsigned)t >= DT_COUNT)
    return "?";
  return dtype_names[t];
}

bool dtype_from_name(const char *s, DType *out) {
  for (int i = 0; i < DT_COUNT; i++) {
    if (strcmp(s, dtype_names[i]) == 0) {
      *out = (DType)i;
      return true;
    }
  }
  return false;
}

size_t dtype_size(DType t) {
  switch (t) {
  case DT_F32:
  case DT_I32:
    return 4;
  case DT_F64:
  case DT_I64:
    return 8;
  case DT_BOOL:
    return 1;
  case DT_F16:
  case DT_BF16:
    return 2;
  case DT_COUNT:
    break;
  }
  return 0;
}

bool dtype_is_float(DType t) {
  return t == DT_F32 || t == DT_F64 || t == DT_F16 || t == DT_BF16;
}

bool dtype_is_int(DType t) {
  return t == DT_I32 || t == DT_I64;
}

/* ---- op table ---------------------------------------------------------- */

const OpInfo ir_op_info[OP_COUNT] = {
#define OP(id, text, noperands, attr, flags) {text, noperands, attr, flags},
#include "ops.def"
#undef OP
};

bool ir_op_from_name(const char *name, OpKind *out) {
  for (int i = 0; i < OP_COUNT; i++) {
    if (strcmp(ir_op_info[i].name, name) == 0) {
      *out = (OpKind)i;
      return true;
    }
  }
  return false;
}

/* ---- module ------------------------------------------------------------ */

Module *ir_module_new(const char *name) {
  Module *m = calloc(1, sizeof(Module));
  if (!m)
    abort();
  arena_init(&m->arena);
  m->name = name ? arena_strdup(&m->arena, name) : NULL;
  return m;
}

void ir_module_free(Module *m) {
  if (!m)
    return;
  arena_free(&m->arena);
  free(m);
}

const char *ir_strdup(Module *m, const char *s) {
  return s ? arena_strdup(&m->arena, s) : NULL;
}

int ir_find_symbol(const Module *m, const char *name) {
  for (int i = 0; i < m->nsymbols; i++)
    if (strcmp(m->symbols[i], name) == 0)
      return i;
  return -1;
}

int ir_symbol(Module *m, const char *name) {
  int i = ir_find_symbol(m, name);
  if (i >= 0)
    return i;
  if (m->nsymbols >= MAX_SYMBOLS)
    return -1;
  m->symbols[m->nsymbols] = ir_strdup(m, name);
  return m->nsymbols++;
}

int ir_add_param(Module *m, const char *name, Type type, Loc loc, Diag *d) {
  for (int i = 0; i < m->nparams; i++) {
    Param *p = &m->params[i];
    if (strcmp(p->name, name) != 0)
      continue;
    if (type_eq(&p->type, &type))
      return i;
    char a[256], b[256];
    type_print(a, sizeof a, &p->type, m);
    type_print(b, sizeof b, &type, m);
    if (d) {
      diag_error(d, loc, "parameter \"%s\" declared as %s, but earlier as %s",
                 name, b, a);
      diag_note(d, p->loc, "\"%s\" first declared here as %s", name, a);
    }
    return -1;
  }
  if (m->nparams == m->cap_params) {
    int cap = m->cap_params ? 2 * m->cap_params : 16;
    m->params = arena_grow(&m->arena, m->params, m->nparams * sizeof(Param),
                           cap * sizeof(Param));
    m->cap_params = cap;
  }
  Param *p = &m->params[m->nparams];
  p->name = ir_strdup(m, name);
  p->type = type;
  p->loc = loc;
  p->prepared = false;
  return m->nparams++;
}

int ir_file_params(const Module *m) {
  int n = 0;
  while (n < m->nparams && !m->params[n].prepared)
    n++;
  return n;
}

const Function *ir_prepare_function(const Module *m) {
  for (const Function *f = m->functions; f; f = f->next)
    if (f->prepares)
      return f;
  return NULL;
}

static ModelConst *const_slot(Module *m, const char *name) {
  for (int i = 0; i < m->nconsts; i++)
    if (strcmp(m->consts[i].name, name) == 0)
      return &m->consts[i];
  if (m->nconsts == m->cap_consts) {
    int cap = m->cap_consts ? 2 * m->cap_consts : 16;
    m->consts =
        arena_grow(&m->arena, m->consts, m->nconsts * sizeof(ModelConst),
                   cap * sizeof(ModelConst));
    m->cap_consts = cap;
  }
  ModelConst *c = &m->consts[m->nconsts++];
  c->name = ir_strdup(m, name);
  return c;
}

void ir_add_const(Module *m, const char *name, int64_t value) {
  ModelConst *c = const_slot(m, name);
  c->value = value;
  c->is_float = false;
  c->fvalue = (double)value;
}

void ir_add_const_float(Module *m, const char *name, double value) {
  ModelConst *c = const_slot(m, name);
  c->is_float = true;
  c->fvalue = value;
  c->value = (value > -9e18 && value < 9e18) ? (int64_t)value : 0;
}

/* ---- functions and blocks ---------------------------------------------- */

Function *ir_function_new(Module *m, const char *name, Loc loc) {
  Function *f = arena_alloc(&m->arena, sizeof(Function));
  f->name = ir_strdup(m, name);
  f->body = ir_block_new(m);
  f->loc = loc;
  if (m->last_function)
    m->last_function->next = f;
  else
    m->functions = f;
  m->last_function = f;
  return f;
}

Function *ir_find_function(const Module *m, const char *name) {
  for (Function *f = m->functions; f; f = f->next)
    if (strcmp(f->name, name) == 0)
      return f;
  return NULL;
}

Block *ir_block_new(Module *m) {
  return arena_alloc(&m->arena, sizeof(Block));
}

static Value *value_new(Module *m, Type type, const char *name) {
  Value *v = arena_alloc(&m->arena, sizeof(Value));
  v->id = m->next_value_id++;
  v->type = type;
  v->name = ir_strdup(m, name);
  return v;
}

Value *ir_block_add_arg(Module *m, Block *b, Type type, const char *name) {
  Value *v = value_new(m, type, name);
  v->block = b;
  v->def_index = b->nargs;
  /* Arrays grow by copying: block args are few. */
  b->args = arena_grow(&m->arena, b->args, b->nargs * sizeof(Value *),
                       (b->nargs + 1) * sizeof(Value *));
  b->args[b->nargs++] = v;
  return v;
}

Value *ir_add_input(Module *m, Function *f, const char *name, Type type,
                    Loc loc) {
  Value *v = ir_block_add_arg(m, f->body, type, name);
  f->inputs = arena_grow(&m->arena, f->inputs, f->ninputs * sizeof(FuncInput),
                         (f->ninputs + 1) * sizeof(FuncInput));
  FuncInput *in = &f->inputs[f->ninputs++];
  in->name = v->name;
  in->value = v;
  in->loc = loc;
  return v;
}

void ir_add_output(Module *m, Function *f, const char *name, Value *v,
                   Loc loc) {
  f->outputs =
      arena_grow(&m->arena, f->outputs, f->noutputs * sizeof(FuncOutput),
                 (f->noutputs + 1) * sizeof(FuncOutput));
  FuncOutput *out = &f->outputs[f->noutputs++];
  out->name = ir_strdup(m, name);
  out->value = v;
  out->loc = loc;
  out->updates_param = out->updates_input = -1;
  if (v)
    v->nuses++;
}

bool ir_param_trained(const Module *m, int p) {
  for (const Function *f = m->functions; f; f = f->next)
    for (int i = 0; i < f->noutputs; i++)
      if (f->outputs[i].updates_param == p)
        return true;
  return false;
}

/* ---- op construction --------------------------------------------------- */

static void block_append(Block *b, Op *op) {
  op->parent = b;
  op->prev = b->last;
  op->next = NULL;
  if (b->last)
    b->last->next = op;
  else
    b->first = op;
  b->last = op;
}

bool shape_const_numel(const Shape *s, int64_t *out) {
  int64_t n = 1;
  for (int i = 0; i < s->rank; i++) {
    int64_t d;
    if (!dim_is_const(s->dims[i], &d) || d < 0)
      return false;
    if (d != 0 && n > INT64_MAX / d)
      return false;
    n *= d;
  }
  *out = n;
  return true;
}

Op *ir_build_typed(Module *m, Block *b, OpKind kind, Value *const *operands,
                   int noperands, const Attrs *attrs, const Type *types,
                   int nresults, Loc loc) {
  Op *op = arena_alloc(&m->arena, sizeof(Op));
  op->kind = kind;
  op->loc = loc;
  op->noperands = noperands;
  if (noperands > 0) {
    op->operands = arena_alloc(&m->arena, noperands * sizeof(Value *));
    for (int i = 0; i < noperands; i++) {
      op->operands[i] = operands[i];
      if (operands[i])
        operands[i]->nuses++;
    }
  }
  if (attrs)
    op->attrs = *attrs;
  op->nresults = nresults;
  op->results =
      arena_alloc(&m->arena, (nresults ? nresults : 1) * sizeof(Value *));
  for (int i = 0; i < nresults; i++) {
    Value *v = value_new(m, types[i], NULL);
    v->def = op;
    v->def_index = i;
    v->block = b;
    op->results[i] = v;
  }
  if (kind == OP_CONST && attrs && attrs->cst.data && nresults == 1) {
    int64_t n;
    if (shape_const_numel(&types[0].shape, &n)) {
      size_t bytes = (size_t)n * dtype_size(types[0].dtype);
      void *copy = arena_alloc(&m->arena, bytes);
      memcpy(copy, attrs->cst.data, bytes);
      op->attrs.cst.data = copy;
    }
  }
  if (b)
    block_append(b, op);
  return op;
}

Value *ir_build(Module *m, Block *b, OpKind kind, Value *const *operands,
                int noperands, const Attrs *attrs, const Type *hint, Loc loc,
                Diag *d) {
  Attrs none;
  if (!attrs) {
    memset(&none, 0, sizeof none);
    attrs = &none;
  }
  Type t;
  if (!ir_infer_type(m, kind, operands, noperands, attrs, hint, &t, loc, d))
    return NULL;
  Op *op = ir_build_typed(m, b, kind, operands, noperands, attrs, &t, 1, loc);
  return op->results[0];
}

bool ir_const_parse(DType t, const char *s, void *data, size_t i) {
  char *end = NULL;
  errno = 0;
  switch (t) {
  case DT_F32:
    ((float *)data)[i] = strtof(s, &end);
    if (isinf(((float *)data)[i]) && !strstr(s, "inf"))
      end = NULL; /* overflow: 0x1p140 is not an f32 */
    break;
  case DT_F64:
    ((double *)data)[i] = strtod(s, &end);
    if (isinf(((double *)data)[i]) && !strstr(s, "inf"))
      end = NULL;
    break;
  case DT_I32:
  case DT_I64: {
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || (t == DT_I32 && (v < INT32_MIN || v > INT32_MAX)))
      end = NULL;
    else if (t == DT_I32)
      ((int32_t *)data)[i] = (int32_t)v;
    else
      ((int64_t *)data)[i] = v;
    break;
  }
  case DT_BOOL: {
    bool tv = strcmp(s, "true") == 0 || strcmp(s, "1") == 0;
    bool fv = strcmp(s, "false") == 0 || strcmp(s, "0") == 0;
    if (tv || fv) {
      ((uint8_t *)data)[i] = tv;
      end = (char *)s + strlen(s);
    }
    break;
  }
  case DT_F16:
  case DT_BF16: {
    unsigned long v = strtoul(s, &end, 0);
    if (v > 0xffff || s[0] == '-')
      end = NULL;
    else
      ((uint16_t *)data)[i] = (uint16_t)v;
    break;
  }
  case DT_COUNT:
    break;
  }
  return end && !*end && end != s;
}

void ir_const_store(DType t, void *data, size_t i, double v) {
  switch (t) {
  case DT_F32:
    ((float *)data)[i] = (float)v;
    return;
  case DT_F64:
    ((double *)data)[i] = v;
    return;
  case DT_I32:
    ((int32_t *)data)[i] = (int32_t)v;
    return;
  case DT_I64:
    ((int64_t *)data)[i] = (int64_t)v;
    return;
  case DT_BOOL:
    ((uint8_t *)data)[i] = v != 0;
    return;
  case DT_F16:
  case DT_BF16: {
    /* bf16 by truncation of the f32 bits; f16 values are not built by the
     * compiler (storage only), so both use the bf16 encoding's top half. */
    float f = (float)v;
    uint32_t bits;
    memcpy(&bits, &f, 4);
    ((uint16_t *)data)[i] = (uint16_t)(bits >> 16);
    return;
  }
  case DT_COUNT:
    return;
  }
}

double ir_const_load(DType t, const void *data, size_t i) {
  switch (t) {
  case DT_F32:
    return ((const float *)data)[i];
  case DT_F64:
    return ((const double *)data)[i];
  case DT_I32:
    return ((const int32_t *)data)[i];
  case DT_I64:
    return (double)((const int64_t *)data)[i];
  case DT_BOOL:
    return ((const uint8_t *)data)[i] != 0;
  case DT_F16:
  case DT_BF16: {
    uint32_t bits = (uint32_t)((const uint16_t *)data)[i] << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
  }
  case DT_COUNT:
    break;
  }
  return 0;
}

Value *ir_const_tensor(Module *m, Block *b, const Type *type, const void *data,
                       Loc loc) {
  Attrs a;
  memset(&a, 0, sizeof a);
  a.cst.data = (void *)data;
  Op *op = ir_build_typed(m, b, OP_CONST, NULL, 0, &a, type, 1, loc);
  return op->results[0];
}

Value *ir_const_scalar(Module *m, Block *b, DType t, double v, Loc loc) {
  unsigned char buf[16] = {0};
  ir_const_store(t, buf, 0, v);
  Type type;
  type.dtype = t;
  type.shape = shape_scalar();
  return ir_const_tensor(m, b, &type, buf, loc);
}

/* ---- editing ----------------------------------------------------------- */

void ir_op_unlink(Op *op) {
  Block *b = op->parent;
  if (!b)
    return;
  if (op->prev)
    op->prev->next = op->next;
  else
    b->first = op->next;
  if (op->next)
    op->next->prev = op->prev;
  else
    b->last = op->prev;
  op->prev = op->next = NULL;
  op->parent = NULL;
}

void ir_op_remove(Op *op) {
  ir_op_unlink(op);
  for (int i = 0; i < op->noperands; i++)
    if (op->operands[i])
      op->operands[i]->nuses--;
}

void ir_op_move_before(Op *op, Op *before) {
  Block *b = before->parent;
  ir_op_unlink(op);
  op->parent = b;
  op->next = before;
  op->prev = before->prev;
  if (before->prev)
    before->prev->next = op;
  else
    b->first = op;
  before->prev = op;
  for (int i = 0; i < op->nresults; i++)
    op->results[i]->block = b;
}

/* Replaces the uses of from in ops first, first->next, ... and their
 * regions; stops once from has no use left (nuses is exact). */
static void replace_from(Op *first, Value *from, Value *to);

static void replace_in_block(Block *b, Value *from, Value *to) {
  replace_from(b->first, from, to);
}

static void replace_from(Op *first, Value *from, Value *to) {
  for (Op *op = first; op && from->nuses > 0; op = op->next) {
    for (int i = 0; i < op->noperands; i++) {
      if (op->operands[i] == from) {
        op->operands[i] = to;
        from->nuses--;
        to->nuses++;
      }
    }
    for (int r = 0; r < op->nregions; r++)
      replace_in_block(op->regions[r], from, to);
  }
}

void ir_replace_uses(Module *m, Value *from, Value *to) {
  if (from == to)
    return;
  /* an op's uses follow it in its block (or in the regions of later ops):
   * the walk starts there, and long blocks of many replacements (folded
   * constants, fused loops) stay linear; function outputs and anything else
   * left go through the whole module */
  if (from->def)
    replace_from(from->def->next, from, to);
  for (Function *f = m->functions; f && from->nuses > 0; f = f->next) {
    replace_in_block(f->body, from, to);
    for (int i = 0; i < f->noutputs; i++) {
      if (f->outputs[i].value == from) {
        f->outputs[i].value = to;
        from->nuses--;
        to->nuses++;
      }
    }
  }
}

static void zero_uses(Block *b) {
  for (int i = 0; i < b->nargs; i++)
    b->args[i]->nuses = 0;
  for (Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nresults; i++)
      op->results[i]->nuses = 0;
    for (int r = 0; r < op->nregions; r++)
      zero_uses(op->regions[r]);
  }
}

static void count_uses(Block *b) {
  for (Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->noperands; i++)
      if (op->operands[i])
        op->operands[i]->nuses++;
    for (int r = 0; r < op->nregions; r++)
      count_uses(op->regions[r]);
  }
}

void ir_recount_uses(Module *m) {
  for (Function *f = m->functions; f; f = f->next)
    zero_uses(f->body);
  for (Function *f = m->functions; f; f = f->next) {
    count_uses(f->body);
    for (int i = 0; i < f->noutputs; i++)
      if (f->outputs[i].value)
        f->outputs[i].value->nuses++;
  }
}
