/* Internals shared by lower.c (statements, scopes, calls) and
 * lower_builtins.c (builtin functions, operators, indexing). */
#ifndef MC_LOWER_INTERNAL_H
#define MC_LOWER_INTERNAL_H

#include "lower.h"

/* A compile-time value of the lowering's interpreter. Integers are Dims, so
 * `T - 1` and `n_embd / n_head` compute the same way whether symbolic or
 * constant. */
typedef enum LKind {
  LV_VOID,    /* no value (a function that returns nothing) */
  LV_INT,     /* dim */
  LV_FLOAT,   /* f */
  LV_BOOL,    /* b */
  LV_STRING,  /* s */
  LV_TENSOR,  /* v */
  LV_LIST,    /* items: [a, b] and x.shape */
  LV_TUPLE,   /* items: several results */
  LV_FUNC,    /* fn: a user function */
  LV_BUILTIN, /* s: builtin name (also dtype names, for dtype=f32) */
  LV_NONE,    /* None */
  LV_ELLIPSIS,
  LV_SLICE, /* items[0..2]: lo, hi, step, each LV_NONE when absent */
} LKind;

typedef struct LVal LVal;
struct LVal {
  LKind kind;
  Dim dim;
  double f;
  bool b;
  const char *s;
  Value *v;
  const AstNode *fn;
  int nitems;
  LVal *items;
};

typedef struct Binding {
  const char *name;
  LVal val;
  struct Binding *next;
} Binding;

typedef struct Scope {
  Binding *bindings;
  struct Scope *parent; /* globals for a function's scope, NULL for globals */
  const char *fn_name;  /* user function being run, NULL at top level */
} Scope;

typedef struct LowerTrain LowerTrain; /* lower_train.c */

typedef struct Lowerer {
  Module *m;
  Function *fn;
  Block *body;
  Diag *d;
  LowerOptions *opt;
  Scope *globals;
  int depth;
  int nesting;           /* lower_expr and lower_stmt frames: lower_enter */
  bool nesting_reported; /* a limit's error, once */
  const char *scope;     /* user function being inlined, for Loc.scope */
  long unrolled;
  const AstModule *ast;
  LowerTrain *train; /* the entry's minimize calls so far, or NULL */
} Lowerer;

/* Nesting of expressions and statements being lowered, counted through
 * calls: past it, "limit exceeded" (the C stack holds a few frames a level). */
#define LOWER_MAX_NESTING 5000
/* Values a model may lower to by default (LowerOptions.max_values; GPT-2 XL
 * has about 4,000): past it, "limit exceeded" (lowering takes about 10 s
 * and 500 MB to get there). */
#define LOWER_MAX_VALUES 250000

/* Status of running statements */
typedef enum LStatus { LS_OK, LS_RETURN, LS_ERROR } LStatus;

/* lower.c */
LVal lv_void(void);
LVal lv_int(int64_t v);
LVal lv_dim(Dim d);
LVal lv_float(double f);
LVal lv_bool(bool b);
LVal lv_tensor(Value *v);
LVal lv_error(void); /* kind LV_VOID with s = "error" marker */
bool lv_is_error(LVal v);
const char *lv_kind_name(LKind k);
Loc lower_loc(Lowerer *L, const AstNode *n);
LVal lower_expr(Lowerer *L, Scope *s, const AstNode *n);
bool lower_lookup(Lowerer *L, Scope *s, const char *name, LVal *out);
/* Compile-time integer of an expression that must be a constant. */
bool lower_const_int(Lowerer *L, Scope *s, const AstNode *n, int64_t *out);
LVal lower_call_user(Lowerer *L, const AstNode *fn, const AstNode *call,
                     LVal *args, int nargs, const char **kwnames, LVal *kwargs,
                     int nkw);

void scope_bind(Lowerer *L, Scope *s, const char *name, LVal v);
bool scope_find(Scope *s, const char *name, LVal *out);
LStatus lower_stmt(Lowerer *L, Scope *s, const AstNode *n, LVal *ret);

/* lower_decls.c */
LStatus lower_param(Lowerer *L, Scope *s, const AstNode *n);
/* A string literal with {name} replaced by compile-time values in scope. */
const char *lower_interpolate(Lowerer *L, Scope *s, const AstNode *str);

/* lower_scan.c: scan(step, [carries], [sequences], axis=, reverse=, ...) */
LVal lower_scan(Lowerer *L, const AstNode *call, LVal *args,
                const AstNode **argnodes, int nargs, const char **kwnames,
                LVal *kwargs, const AstNode **kwnodes, int nkw);

/* lower_grad.c: grad(f, args..., wrt=[...], f_kwarg=...) */
LVal lower_grad(Lowerer *L, const AstNode *call, LVal *args,
                const AstNode **argnodes, int nargs, const char **kwnames,
                LVal *kwargs, const AstNode **kwnodes, int nkw);

/* lower_train.c: minimize(opt, loss_fn, args..., params=[...], ...) */
LVal lower_minimize(Lowerer *L, const AstNode *call, LVal *args,
                    const AstNode **argnodes, int nargs, const char **kwnames,
                    LVal *kwargs, const AstNode **kwnodes, int nkw);
/* assign("weight.name", value): a training entry sets a weight that no
 * optimizer trains (spectral normalization's u); stop_gradient(x). */
LVal lower_train_builtin(Lowerer *L, const char *name, const AstNode *call,
                         LVal *args, const AstNode **argnodes, int nargs,
                         int nkw);
/* A read of weight p: its value after the entry's last update of it, else
 * a param op (of type t). NULL after an error. */
Value *lower_weight_read(Lowerer *L, int p, const Type *t, Loc loc);
/* Adds the training entry's update outputs (none without minimize). */
void lower_train_outputs(Lowerer *L);

/* lower_decode.c: dynamic slices, take_along_axis, topk, cumsum, uniform,
 * categorical */
bool lower_is_decode_builtin(const char *name);
LVal lower_decode_builtin(Lowerer *L, const char *name, const AstNode *call,
                          LVal *args, const AstNode **argnodes, int nargs,
                          const char **kwnames, LVal *kwargs,
                          const AstNode **kwnodes, int nkw);

/* lower_builtins.c */
bool lower_is_builtin(const char *name);
/* The i-th builtin's name (i from 0), NULL past the last: for suggestions. */
const char *lower_builtin_name(int i);
LVal lower_call_builtin(Lowerer *L, const char *name, const AstNode *call,
                        LVal *args, const AstNode **argnodes, int nargs,
                        const char **kwnames, LVal *kwargs,
                        const AstNode **kwnodes, int nkw);
LVal lower_binary(Lowerer *L, AstOp op, LVal a, LVal b, const AstNode *n);
LVal lower_unary(Lowerer *L, AstOp op, LVal a, const AstNode *n);
LVal lower_index(Lowerer *L, LVal base, LVal *items, const AstNode **nodes,
                 int nitems, const AstNode *n);
LVal lower_attr(Lowerer *L, LVal base, const char *name, const AstNode *n);
/* Turns a number into a tensor of the given dtype (a scalar CONST). */
Value *lower_to_tensor(Lowerer *L, LVal v, DType like, Loc loc);
/* Builds an op; NULL after an error (already reported). */
Value *lower_op(Lowerer *L, OpKind k, Value **ops, int n, const Attrs *a,
                const Type *hint, Loc loc);
/* Parses a dtype name; false if it is not one. */
bool lower_dtype(const char *name, DType *out);

#endif
