/* The IR text printer. The form is read back by ir/read.c and round-trips:
 * ir_print(ir_read(ir_print(m))) == ir_print(m).
 *
 *   module @gpt2 file "models/gpt2.model"
 *   symbols T, B
 *   const n_layer = 2
 *   const eps = 1.0000000000000001e-05 : f64
 *   param "wte.weight" : f32[50257, 768] @3:1
 *   func @main(%tokens: i32[T] @12:7, %pad: bool[B, T] = 0 @13:7) @1:1 {
 *     %0 = param 0 : f32[50257, 768] @20:5
 *     %h = gather %0, %tokens {axis = 0} : f32[T, 768] @20:5 "block"
 *     %2 = const [0.5] : f32[]
 *     return logits = %h @31:1
 *   }
 *
 * A scan prints its region as a nested block with its arguments, ending in
 * a yield (an op without results):
 *     %h_n, %ys = scan %h0, %xs {ncarry = 1, nseq = 1, length = T, reverse}
 *         (%h: f32[B, 4], %x: f32[B, 4]) {
 *       %1 = add %h, %x : f32[B, 4] @7:3
 *       yield %1, %1 @8:3
 *     } : f32[B, 4], f32[T, B, 4] @5:1
 * (on one line from "scan" to "{"; the region's ops indented two more).
 *
 * Values print as %name when their user name is unique in the function (and
 * is not an input's name), else as a number counted per function in order
 * of definition, so output is stable under passes. Constants print exactly:
 * the shortest decimal that reads back to the same bits, hex floats for
 * subnormals; a constant whose elements are all equal prints one element.
 * Locations: @line:col in the module's file, @"file":line:col otherwise,
 * then an optional "scope".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

typedef struct Printer {
  FILE *out;
  const Module *m;
  int *num; /* per value id: printed number, or -1 to print the name */
  int nids;
  int next_num;
} Printer;

static bool is_ident(const char *s) {
  if (!s ||
      !(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
    return false;
  for (s++; *s; s++)
    if (!(*s == '_' || *s == '.' || (*s >= 'a' && *s <= 'z') ||
          (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
      return false;
  return true;
}

void ir_print_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(out, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f)
      fprintf(out, "\\x%02x", ch);
    else
      fputc(ch, out);
  }
  fputc('"', out);
}

static void print_name(FILE *out, const char *s) {
  if (is_ident(s))
    fputs(s, out);
  else
    ir_print_string(out, s ? s : "");
}

/* Shortest decimal that reads back (strtof) to the same float; hex floats
 * for subnormals; "inf", "-inf", "nan", "-nan". */
int ir_format_f32(char *buf, size_t n, float f) {
  if (isnan(f))
    return snprintf(buf, n, "%s", signbit(f) ? "-nan" : "nan");
  if (isinf(f))
    return snprintf(buf, n, "%s", f < 0 ? "-inf" : "inf");
  if (fpclassify(f) == FP_SUBNORMAL)
    return snprintf(buf, n, "%a", (double)f);
  if (f == truncf(f) && fabsf(f) < 1e16f) /* integers read best as such */
    return snprintf(buf, n, "%.0f", (double)f);
  char tmp[64];
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, (double)f);
    float back = strtof(tmp, NULL);
    if (memcmp(&back, &f, sizeof f) == 0)
      break;
  }
  return snprintf(buf, n, "%s", tmp);
}

int ir_format_f64(char *buf, size_t n, double f) {
  if (isnan(f))
    return snprintf(buf, n, "%s", signbit(f) ? "-nan" : "nan");
  if (isinf(f))
    return snprintf(buf, n, "%s", f < 0 ? "-inf" : "inf");
  if (fpclassify(f) == FP_SUBNORMAL)
    return snprintf(buf, n, "%a", f);
  if (f == trunc(f) && fabs(f) < 1e16)
    return snprintf(buf, n, "%.0f", f);
  char tmp[64];
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*g", prec, f);
    double back = strtod(tmp, NULL);
    if (memcmp(&back, &f, sizeof f) == 0)
      break;
  }
  return snprintf(buf, n, "%s", tmp);
}

static void print_f32(FILE *out, float f) {
  char buf[64];
  ir_format_f32(buf, sizeof buf, f);
  fputs(buf, out);
}

static void print_f64(FILE *out, double f) {
  char buf[64];
  ir_format_f64(buf, sizeof buf, f);
  fputs(buf, out);
}

static void print_elem(FILE *out, DType t, const void *data, size_t i) {
  switch (t) {
  case DT_F32:
    print_f32(out, ((const float *)data)[i]);
    return;
  case DT_F64:
    print_f64(out, ((const double *)data)[i]);
    return;
  case DT_I32:
    fprintf(out, "%d", (int)((const int32_t *)data)[i]);
    return;
  case DT_I64:
    fprintf(out, "%lld", (long long)((const int64_t *)data)[i]);
    return;
  case DT_BOOL:
    fputs(((const uint8_t *)data)[i] ? "true" : "false", out);
    return;
  case DT_F16:
  case DT_BF16:
    fprintf(out, "0x%04x", (unsigned)((const uint16_t *)data)[i]);
    return;
  case DT_COUNT:
    break;
  }
  fputs("?", out);
}

static void print_loc(Printer *p, Loc loc) {
  if (loc.line <= 0 && !loc.scope)
    return;
  fputs(" @", p->out);
  const char *mf = p->m->source_file;
  if (loc.file && !(mf && strcmp(mf, loc.file) == 0)) {
    ir_print_string(p->out, loc.file);
    fputc(':', p->out);
  }
  fprintf(p->out, "%d:%d", loc.line, loc.col);
  if (loc.scope) {
    fputc(' ', p->out);
    ir_print_string(p->out, loc.scope);
  }
}

static void print_type(Printer *p, const Type *t) {
  char buf[1024];
  type_print(buf, sizeof buf, t, p->m);
  fputs(buf, p->out);
}

static void print_dim(Printer *p, Dim d) {
  char buf[256];
  dim_print(buf, sizeof buf, d, p->m);
  fputs(buf, p->out);
}

static void print_value(Printer *p, const Value *v) {
  if (!v) {
    fputs("%<null>", p->out);
    return;
  }
  if (v->id < 0 || v->id >= p->nids || p->num[v->id] == -2)
    fprintf(p->out, "%%<undefined %d>", v->id);
  else if (p->num[v->id] == -1)
    fputc('%', p->out), print_name(p->out, v->name);
  else
    fprintf(p->out, "%%%d", p->num[v->id]);
}

/* ---- naming ------------------------------------------------------------ */

typedef struct NameCount {
  const char *name;
  int count;
} NameCount;

typedef struct NameTable {
  NameCount *slots;
  size_t cap;
} NameTable;

static size_t hash_str(const char *s) {
  size_t h = 1469598103934665603u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

static NameCount *name_slot(NameTable *t, const char *name) {
  size_t i = hash_str(name) & (t->cap - 1);
  while (t->slots[i].name && strcmp(t->slots[i].name, name) != 0)
    i = (i + 1) & (t->cap - 1);
  t->slots[i].name = name;
  return &t->slots[i];
}

static int count_values(const Block *b) {
  int n = b->nargs;
  for (const Op *op = b->first; op; op = op->next) {
    n += op->nresults;
    for (int r = 0; r < op->nregions; r++)
      n += count_values(op->regions[r]);
  }
  return n;
}

static void count_names(NameTable *t, const Block *b) {
  for (int i = 0; i < b->nargs; i++)
    if (b->args[i]->name)
      name_slot(t, b->args[i]->name)->count++;
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nresults; i++)
      if (op->results[i]->name)
        name_slot(t, op->results[i]->name)->count++;
    for (int r = 0; r < op->nregions; r++)
      count_names(t, op->regions[r]);
  }
}

static void assign(Printer *p, NameTable *t, const Value *v) {
  if (v->id < 0 || v->id >= p->nids)
    return;
  if (is_ident(v->name) && name_slot(t, v->name)->count == 1)
    p->num[v->id] = -1;
  else
    p->num[v->id] = p->next_num++;
}

static void assign_block(Printer *p, NameTable *t, const Block *b) {
  for (int i = 0; i < b->nargs; i++)
    if (!b->parent_op) /* function inputs are named by their input */
      p->num[b->args[i]->id] = -1;
    else
      assign(p, t, b->args[i]);
  for (const Op *op = b->first; op; op = op->next) {
    for (int i = 0; i < op->nresults; i++)
      assign(p, t, op->results[i]);
    for (int r = 0; r < op->nregions; r++)
      assign_block(p, t, op->regions[r]);
  }
}

/* ---- ops --------------------------------------------------------------- */

static void print_dims_list(Printer *p, const Dim *dims, int n) {
  fputc('[', p->out);
  for (int i = 0; i < n; i++) {
    if (i)
      fputs(", ", p->out);
    print_dim(p, dims[i]);
  }
  fputc(']', p->out);
}

static void print_attrs(Printer *p, const Op *op) {
  FILE *out = p->out;
  const Attrs *a = &op->attrs;
  int rank = op->noperands > 0 && op->operands[0]
                 ? op->operands[0]->type.shape.rank
                 : 0;
  if (rank < 0 || rank > MAX_RANK)
    rank = 0;
  switch (ir_op_info[op->kind].attr) {
  case ATTR_NONE:
  case ATTR_CONST:
  case ATTR_PARAM:
  case ATTR_COUNT:
    return;
  case ATTR_AXIS:
    fprintf(out, " {axis = %d}", a->axis.axis);
    return;
  case ATTR_MATMUL:
    if (a->matmul.trans_a && a->matmul.trans_b)
      fputs(" {trans_a, trans_b}", out);
    else if (a->matmul.trans_a)
      fputs(" {trans_a}", out);
    else if (a->matmul.trans_b)
      fputs(" {trans_b}", out);
    return;
  case ATTR_REDUCE: {
    fputs(" {axes = [", out);
    bool first = true;
    for (int i = 0; i < 32; i++) {
      if (a->reduce.axes & (1u << i)) {
        fprintf(out, first ? "%d" : ", %d", i);
        first = false;
      }
    }
    fputs(a->reduce.keepdims ? "], keepdims}" : "]}", out);
    return;
  }
  case ATTR_SLICE:
    fputs(" {start = ", out);
    print_dims_list(p, a->slice.start, rank);
    fputs(", step = [", out);
    for (int i = 0; i < rank; i++)
      fprintf(out, i ? ", %lld" : "%lld", (long long)a->slice.step[i]);
    fputs("]}", out);
    return;
  case ATTR_PERM:
    fputs(" {perm = [", out);
    for (int i = 0; i < rank; i++)
      fprintf(out, i ? ", %d" : "%d", a->perm.perm[i]);
    fputs("]}", out);
    return;
  case ATTR_SCAN:
    fprintf(out, " {ncarry = %d, nseq = %d, length = ", a->scan.ncarry,
            a->scan.nseq);
    print_dim(p, a->scan.length);
    fputs(a->scan.reverse ? ", reverse" : "", out);
    fputs(a->scan.with_index ? ", index" : "", out);
    fputs(a->scan.until ? ", until}" : "}", out);
    return;
  }
}

static void print_const_data(Printer *p, const Op *op) {
  const Type *t = &op->results[0]->type;
  int64_t n;
  const unsigned char *data = op->attrs.cst.data;
  if (!data || !shape_const_numel(&t->shape, &n)) {
    fputs(" []", p->out);
    return;
  }
  size_t es = dtype_size(t->dtype);
  bool splat = n > 1;
  for (int64_t i = 1; splat && i < n; i++)
    splat = memcmp(data, data + i * es, es) == 0;
  if (splat)
    n = 1;
  fputs(" [", p->out);
  for (int64_t i = 0; i < n; i++) {
    if (i)
      fputs(", ", p->out);
    print_elem(p->out, t->dtype, data, (size_t)i);
  }
  fputc(']', p->out);
}

static void print_block_ops(Printer *p, const Block *b, int indent);

static void print_op(Printer *p, const Op *op, int indent) {
  FILE *out = p->out;
  fprintf(out, "%*s", indent, "");
  for (int i = 0; i < op->nresults; i++) {
    if (i)
      fputs(", ", out);
    print_value(p, op->results[i]);
  }
  if (op->nresults)
    fputs(" = ", out);
  fputs(ir_op_info[op->kind].name, out);
  if (op->kind == OP_CONST && op->nresults == 1)
    print_const_data(p, op);
  if (op->kind == OP_PARAM)
    fprintf(out, " %d", op->attrs.param.index);
  for (int i = 0; i < op->noperands; i++) {
    fputs(i ? ", " : " ", out);
    print_value(p, op->operands[i]);
  }
  print_attrs(p, op);
  for (int r = 0; r < op->nregions; r++) {
    const Block *b = op->regions[r];
    fputs(" (", out);
    for (int i = 0; i < b->nargs; i++) {
      if (i)
        fputs(", ", out);
      print_value(p, b->args[i]);
      fputs(": ", out);
      print_type(p, &b->args[i]->type);
    }
    fputs(") {\n", out);
    print_block_ops(p, b, indent + 2);
    fprintf(out, "%*s}", indent, "");
  }
  if (op->nresults)
    fputs(" : ", out);
  for (int i = 0; i < op->nresults; i++) {
    if (i)
      fputs(", ", out);
    print_type(p, &op->results[i]->type);
  }
  print_loc(p, op->loc);
  fputc('\n', out);
}

static void print_block_ops(Printer *p, const Block *b, int indent) {
  for (const Op *op = b->first; op; op = op->next)
    print_op(p, op, indent);
}

static void print_function(Printer *p, const Function *f) {
  FILE *out = p->out;
  int nvals = count_values(f->body);
  NameTable t;
  t.cap = 16;
  while (t.cap < 2 * (size_t)nvals + 2)
    t.cap *= 2;
  t.slots = calloc(t.cap, sizeof(NameCount));
  if (!t.slots)
    abort();
  for (int i = 0; i < p->nids; i++)
    p->num[i] = -2;
  p->next_num = 0;
  count_names(&t, f->body);
  assign_block(p, &t, f->body);
  free(t.slots);

  fputs(f->prepares ? "func prepare @" : "func @", out);
  print_name(out, f->name);
  fputc('(', out);
  for (int i = 0; i < f->ninputs; i++) {
    const FuncInput *in = &f->inputs[i];
    if (i)
      fputs(", ", out);
    fputc('%', out);
    print_name(out, in->name);
    fputs(": ", out);
    if (in->value)
      print_type(p, &in->value->type);
    if (in->has_default) {
      fputs(" = ", out);
      print_f64(out, in->default_value);
    }
    if (in->step)
      fputs(" step", out);
    print_loc(p, in->loc);
  }
  fputc(')', out);
  print_loc(p, f->loc);
  fputs(" {\n", out);
  print_block_ops(p, f->body, 2);
  fputs("  return", out);
  for (int i = 0; i < f->noutputs; i++) {
    fputs(i ? ", " : " ", out);
    print_name(out, f->outputs[i].name);
    fputs(" = ", out);
    print_value(p, f->outputs[i].value);
    if (f->outputs[i].updates_param >= 0)
      fprintf(out, " updates param %d", f->outputs[i].updates_param);
    if (f->outputs[i].updates_input >= 0)
      fprintf(out, " updates input %d", f->outputs[i].updates_input);
    print_loc(p, f->outputs[i].loc);
  }
  fputs("\n}\n", out);
}

void ir_print(FILE *out, const Module *m) {
  Printer p = {out, m, NULL, m->next_value_id, 0};
  p.num = malloc(((size_t)p.nids + 1) * sizeof(int));
  if (!p.num)
    abort();
  fputs("module", out);
  if (m->name) {
    fputs(" @", out);
    print_name(out, m->name);
  }
  if (m->source_file) {
    fputs(" file ", out);
    ir_print_string(out, m->source_file);
  }
  fputc('\n', out);
  if (m->nsymbols > 0) {
    fputs("symbols", out);
    for (int i = 0; i < m->nsymbols; i++) {
      fputs(i ? ", " : " ", out);
      print_name(out, m->symbols[i]);
    }
    fputc('\n', out);
  }
  for (int i = 0; i < m->nconsts; i++) {
    const ModelConst *c = &m->consts[i];
    fputs("const ", out);
    print_name(out, c->name);
    fputs(" = ", out);
    if (c->is_float) {
      print_f64(out, c->fvalue);
      fputs(" : f64", out);
    } else {
      fprintf(out, "%lld", (long long)c->value);
    }
    fputc('\n', out);
  }
  for (int i = 0; i < m->nparams; i++) {
    fputs("param ", out);
    ir_print_string(out, m->params[i].name);
    fputs(" : ", out);
    print_type(&p, &m->params[i].type);
    if (m->params[i].prepared)
      fputs(" prepared", out);
    print_loc(&p, m->params[i].loc);
    fputc('\n', out);
  }
  for (const Function *f = m->functions; f; f = f->next)
    print_function(&p, f);
  free(p.num);
}

char *ir_print_to_string(const Module *m) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  ir_print(f, m);
  fclose(f);
  return buf;
}
