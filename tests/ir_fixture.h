/* The fixture of the IR core's tests (test_ir.c: shape rules and editing;
 * test_ir_text.c: the text form): a module "t" with symbols T and B and a
 * function main, a Diag writing to memory, and builders of types, inputs
 * and ops at known locations. */
#ifndef MC_TESTS_IR_FIXTURE_H
#define MC_TESTS_IR_FIXTURE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "type_fixture.h"

static Module *m;
static Function *fn;
static Diag d;
static char *dbuf;
static size_t dlen;
static FILE *dout;

static inline void setup(void) {
  m = ir_module_new("t");
  m->source_file = "m.model";
  ir_symbol(m, "T");
  ir_symbol(m, "B");
  fn = ir_function_new(m, "main", loc_none());
  dout = open_memstream(&dbuf, &dlen);
  diag_init(&d, dout);
}

static inline void teardown(void) {
  diag_free(&d);
  fclose(dout);
  free(dbuf);
  ir_module_free(m);
}

static inline const char *diag_text(void) {
  fflush(dout);
  return dbuf ? dbuf : "";
}

static inline Loc L(int line, int col) {
  Loc l = {"m.model", line, col, 0, NULL};
  return l;
}

static inline Value *input(const char *name, Type t, int line) {
  return ir_add_input(m, fn, name, t, L(line, 7));
}

static inline Value *op1(OpKind k, Value *a, const Attrs *at,
                         const Type *hint) {
  return ir_build(m, fn->body, k, &a, 1, at, hint, L(20, 5), &d);
}
static inline Value *op2(OpKind k, Value *a, Value *b, const Attrs *at) {
  Value *ops[2] = {a, b};
  return ir_build(m, fn->body, k, ops, 2, at, NULL, L(20, 5), &d);
}

static inline const char *tstr(const Value *v) {
  static char buf[4][128];
  static int k;
  char *b = buf[k++ % 4];
  type_print(b, 128, &v->type, m);
  return b;
}

#endif
