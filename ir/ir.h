/* The graph IR: a Module of Functions (entry points) whose bodies are Blocks of
 * Ops in SSA form. Every Value has a dtype and a shape whose dimensions are
 * constants or polynomials of named symbols (T, B, ...).
 *
 * Invariants (checked by pass_verify):
 *  - every operand is defined before its use, in the same block or an
 *    enclosing one (regions, for scan, see only values defined above them);
 *  - an op's operand count and attribute kind match its row in ops.def;
 *  - result types equal what the shape rule of ir/shape.c infers;
 *  - every op carries the source location it was lowered from.
 * All IR memory belongs to the Module's arena and is freed with it.
 */
#ifndef MC_IR_H
#define MC_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

/* ---- dtypes ---------------------------------------------------------- */
typedef enum DType {
  DT_F32,
  DT_F64,
  DT_I32,
  DT_I64,
  DT_BOOL,
  DT_F16,  /* storage only: weights are widened to f32 on load */
  DT_BF16, /* storage only */
  DT_COUNT
} DType;

const char *dtype_name(DType t); /* "f32", "i32", "bool", ... */
bool dtype_from_name(const char *s, DType *out);
size_t dtype_size(DType t); /* bytes per element */
bool dtype_is_float(DType t);
bool dtype_is_int(DType t);

/* ---- symbolic dimensions -------------------------------------------- */
/* A dimension is a polynomial with integer coefficients over symbols:
 * sum of terms coef * sym[0] * sym[1] * ... Canonical form: terms sorted,
 * equal monomials merged, no zero coefficients, factors sorted. A constant is
 * one term with no factors (or no terms at all for 0). Value semantics. */
#define DIM_MAX_TERMS 4
#define DIM_MAX_FACTORS 3
#define MAX_RANK 8
#define MAX_SYMBOLS 64

typedef struct DimTerm {
  int64_t coef;
  uint8_t nfactors;
  uint8_t sym[DIM_MAX_FACTORS]; /* symbol ids, sorted */
} DimTerm;

typedef struct Dim {
  uint8_t nterms;
  DimTerm terms[DIM_MAX_TERMS];
} Dim;

typedef struct Shape {
  int rank;
  Dim dims[MAX_RANK];
} Shape;

typedef struct Type {
  DType dtype;
  Shape shape;
} Type;

struct Module;

Dim dim_const(int64_t c);
Dim dim_sym(int sym);
/* Arithmetic returns false when the result does not fit the fixed-size form
 * (too many terms or factors) or overflows int64. */
bool dim_add(Dim a, Dim b, Dim *out);
bool dim_sub(Dim a, Dim b, Dim *out);
bool dim_mul(Dim a, Dim b, Dim *out);
/* Exact division: succeeds only when b divides a as polynomials (e.g. 6*T by
 * 3, B*T by T, a constant by a constant that divides it). */
bool dim_div_exact(Dim a, Dim b, Dim *out);
bool dim_eq(Dim a, Dim b);
bool dim_is_const(Dim a, int64_t *value);
bool dim_has_sym(Dim a, int sym);
/* Evaluates with the given symbol values (indexed by symbol id). */
int64_t dim_eval(Dim a, const int64_t *symvals);
/* Replaces bound symbols by constants: bound[s] says whether value[s] is set.
 */
Dim dim_substitute(Dim a, const bool *bound, const int64_t *value);
/* Prints like "T", "768", "2*T + 1", "B*T". Returns chars written (snprintf
 * semantics). */
int dim_print(char *buf, size_t n, Dim a, const struct Module *m);
/* Whether an axis of a slice (its start and step, the result's extent, the
 * operand's size) reads only indices in [0, size) for every value of the
 * symbols that makes the extent positive: a full axis (start 0, step 1,
 * extent = size), a constant margin (start 1, extent T - 1), constants in
 * bounds, an empty axis. The backends check the other axes at run time. */
bool slice_axis_in_bounds(Dim start, int64_t step, Dim extent, Dim size);

Shape shape_scalar(void);
bool shape_eq(const Shape *a, const Shape *b);
bool shape_is_const(const Shape *s);
/* Number of elements as a Dim (dim_const(-1) if it does not fit a Dim). */
Dim shape_numel(const Shape *s);
/* Same, false when the product does not fit the fixed-size Dim form. */
bool shape_numel_checked(const Shape *s, Dim *out);
/* Number of elements of a constant shape; false if symbolic or overflowing. */
bool shape_const_numel(const Shape *s, int64_t *out);
/* "[T, 768]" */
int shape_print(char *buf, size_t n, const Shape *s, const struct Module *m);
/* "f32[T, 768]"; scalars print as "f32[]" */
int type_print(char *buf, size_t n, const Type *t, const struct Module *m);
bool type_eq(const Type *a, const Type *b);

/* ---- ops -------------------------------------------------------------- */
typedef enum OpKind {
#define OP(id, text, noperands, attr, flags) OP_##id,
#include "ops.def"
#undef OP
  OP_COUNT
} OpKind;

enum {
  OPF_LEAF = 1 << 0,        /* no operands */
  OPF_ELEMENTWISE = 1 << 1, /* result[i] depends on operands[i] (broadcast) */
  OPF_COMMUTATIVE = 1 << 2,
  OPF_FLOAT = 1 << 3,    /* operands must be float */
  OPF_NUMERIC = 1 << 4,  /* operands must be float or int */
  OPF_LOGICAL = 1 << 5,  /* operands must be bool */
  OPF_COMPARE = 1 << 6,  /* numeric operands, bool result */
  OPF_MOVEMENT = 1 << 7, /* moves data without arithmetic */
  /* draws random numbers: a pure function of its explicit state operand
   * (so DCE may drop an unused one: no other draw changes), but CSE never
   * merges two draws and folding never evaluates one */
  OPF_RANDOM = 1 << 8,
};

typedef enum AttrKind {
  ATTR_NONE,
  ATTR_CONST,  /* cst */
  ATTR_PARAM,  /* param */
  ATTR_AXIS,   /* axis */
  ATTR_MATMUL, /* matmul */
  ATTR_REDUCE, /* reduce */
  ATTR_SLICE,  /* slice */
  ATTR_PERM,   /* perm */
  ATTR_SCAN,   /* scan */
  ATTR_COUNT
} AttrKind;

typedef struct OpInfo {
  const char *name;
  int noperands; /* -1: variadic */
  AttrKind attr;
  unsigned flags;
} OpInfo;

extern const OpInfo ir_op_info[OP_COUNT];
/* Finds an op by its text name; false if unknown. */
bool ir_op_from_name(const char *name, OpKind *out);

typedef union Attrs {
  /* CONST: the elements in the result's dtype, row-major; the result shape
   * is constant. Arena memory. */
  struct {
    void *data;
  } cst;
  /* PARAM: index into Module.params */
  struct {
    int index;
  } param;
  /* IOTA, SOFTMAX, LOG_SOFTMAX, GATHER, CONCAT: a non-negative axis */
  struct {
    int axis;
  } axis;
  struct {
    bool trans_a, trans_b;
  } matmul;
  /* bit i of axes set = reduce axis i (of the operand) */
  struct {
    uint32_t axes;
    bool keepdims;
  } reduce;
  /* SLICE: element j of the result along axis i is operand element
   * start[i] + j * step[i]; the result shape gives the extents. */
  struct {
    Dim start[MAX_RANK];
    int64_t step[MAX_RANK];
  } slice;
  /* PERMUTE: result axis i is operand axis perm[i] */
  struct {
    int perm[MAX_RANK];
  } perm;
  /* SCAN: operands are ncarry carry inits then nseq sequences; `length`
   * steps (the sequences' common axis-0 size, or the trip count when
   * nseq == 0); see ops.def and ir/scan.c. */
  struct {
    int ncarry, nseq;
    Dim length;
    bool reverse;
    bool with_index;
    bool until; /* early exit: yield has `done` after the carries */
  } scan;
} Attrs;

typedef struct Value Value;
typedef struct Op Op;
typedef struct Block Block;

struct Value {
  int id; /* unique within the module; printed as %id or %name */
  Type type;
  Op *def;          /* defining op, or NULL for a block argument */
  int def_index;    /* result index in def, or argument index */
  Block *block;     /* the block of the defining op / argument */
  const char *name; /* user variable name for readability, or NULL */
  int nuses;        /* operand uses + function outputs naming it; maintained
                       by builder and passes; see ir_recount_uses */
};

struct Op {
  OpKind kind;
  Loc loc;
  int noperands;
  Value **operands;
  int nresults;
  Value **results;
  Attrs attrs;
  int nregions; /* 1 for scan (its body), else 0 */
  Block **regions;
  Op *prev, *next;
  Block *parent;
};

struct Block {
  int nargs;
  Value **args;
  Op *first, *last;
  Op *parent_op; /* NULL for a function body */
};

typedef struct FuncInput {
  const char *name;
  Value *value;     /* the body block's argument */
  bool has_default; /* optional input: absent means every element = default */
  double default_value;
  /* a training entry's step number (f32[], 1 at the first step), which
   * the program that runs the entry counts */
  bool step;
  Loc loc;
} FuncInput;

/* A training entry's outputs include the new value of each weight it
 * updates (updates_param: the param's index) and of each optimizer state
 * input (updates_input: the input's index). The backends keep the states
 * in the entry's arena, each update written into its state (in place, or
 * copied at the end of a call); the program that runs it feeds the weights
 * back before the next step. -1 for an ordinary output. */
typedef struct FuncOutput {
  const char *name;
  Value *value;
  Loc loc;
  int updates_param, updates_input;
} FuncOutput;

typedef struct Function {
  const char *name;
  Block *body;
  int ninputs, noutputs;
  FuncInput *inputs;
  FuncOutput *outputs;
  Loc loc;
  /* The module's prepare function (passes/hoist_weights.c), at most one:
   * no inputs; it runs once, when the weights are loaded, and each output
   * is the value of the prepared param of its name. Not an entry point. */
  bool prepares;
  struct Function *next;
} Function;

/* A weight the model reads from the weights file, shared by all functions. */
typedef struct Param {
  const char *name; /* weight name in the safetensors file */
  Type type;        /* dtype f32 (storage dtypes are converted); const shape */
  Loc loc;          /* first declaration */
  /* not in the weights file: the prepare function's output of this name
   * (computed from other weights once, when they are loaded) */
  bool prepared;
} Param;

/* A compile-time integer constant of the model (for inspect and the header). */
typedef struct ModelConst {
  const char *name;
  int64_t value;
  bool is_float;
  double fvalue;
} ModelConst;

typedef struct Module {
  Arena arena;
  const char *name; /* model name: file stem, a C identifier */
  const char *source_file;
  int nsymbols;
  const char *symbols[MAX_SYMBOLS];
  int nparams, cap_params;
  Param *params;
  int nconsts, cap_consts;
  ModelConst *consts;
  Function *functions, *last_function;
  int next_value_id;
} Module;

/* ---- construction ---------------------------------------------------- */
Module *ir_module_new(const char *name);
void ir_module_free(Module *m);
const char *ir_strdup(Module *m, const char *s);
/* Finds or adds a symbol; -1 if the table is full. */
int ir_symbol(Module *m, const char *name);
int ir_find_symbol(const Module *m, const char *name);
/* Finds or adds a parameter by weight name. If it exists with another type,
 * reports an error naming both declarations and returns -1. */
int ir_add_param(Module *m, const char *name, Type type, Loc loc, Diag *d);
/* The params read from the weights file: the first ones, before any
 * prepared param (pass_verify checks the order). */
int ir_file_params(const Module *m);
/* Whether an output of some function updates param p (a training entry's
 * weight: kept as plain f32, never hoisted into the prepare function). */
bool ir_param_trained(const Module *m, int p);
/* The module's prepare function, or NULL. */
const Function *ir_prepare_function(const Module *m);
void ir_add_const(Module *m, const char *name, int64_t value);
void ir_add_const_float(Module *m, const char *name, double value);

Function *ir_function_new(Module *m, const char *name, Loc loc);
Function *ir_find_function(const Module *m, const char *name);
Value *ir_add_input(Module *m, Function *f, const char *name, Type type,
                    Loc loc);
void ir_add_output(Module *m, Function *f, const char *name, Value *v, Loc loc);

Block *ir_block_new(Module *m);
Value *ir_block_add_arg(Module *m, Block *b, Type type, const char *name);

/* Infers the result type of an op from its operands and attributes.
 * `hint` is the declared result type for ops whose result the operands do
 * not determine (CONST, IOTA, CAST, RESHAPE, BROADCAST, SLICE extents); NULL
 * otherwise. On a mismatch reports an error at `loc` naming the shapes and a
 * note at each operand's source location, and returns false. */
bool ir_infer_type(const Module *m, OpKind kind, Value *const *operands,
                   int noperands, const Attrs *attrs, const Type *hint,
                   Type *out, Loc loc, Diag *d);

/* Creates an op with one result appended to block b: infers its type (see
 * ir_infer_type), counts uses. Returns the result, or NULL after reporting an
 * error. `attrs` may be NULL for ATTR_NONE ops. */
Value *ir_build(Module *m, Block *b, OpKind kind, Value *const *operands,
                int noperands, const Attrs *attrs, const Type *hint, Loc loc,
                Diag *d);
/* Same, with the result type given (no inference): used by the IR reader and
 * by passes that keep types; pass_verify checks it later. */
Op *ir_build_typed(Module *m, Block *b, OpKind kind, Value *const *operands,
                   int noperands, const Attrs *attrs, const Type *types,
                   int nresults, Loc loc);

/* Convenience constructors */
Value *ir_const_scalar(Module *m, Block *b, DType t, double v, Loc loc);
/* A CONST of a constant-shape type; `data` (numel * dtype_size bytes,
 * row-major) is copied into the arena. */
Value *ir_const_tensor(Module *m, Block *b, const Type *type, const void *data,
                       Loc loc);
/* Parses the text form of one element (as ir_print writes it: numbers,
 * inf/nan, true/false, 0x.... for f16/bf16) into element i of data; false
 * if malformed or out of the dtype's range. */
bool ir_const_parse(DType t, const char *s, void *data, size_t i);
/* Element i of CONST data of dtype t, as a double (i64 beyond 2^53 rounds),
 * and the converse store (C conversion rules; bool is v != 0). */
double ir_const_load(DType t, const void *data, size_t i);
void ir_const_store(DType t, void *data, size_t i, double v);

/* ---- editing --------------------------------------------------------- */
void ir_op_remove(Op *op); /* unlinks; operand use counts decrease */
/* Unlinks from its block without touching use counts (to re-insert). */
void ir_op_unlink(Op *op);
/* Moves op before `before` in before's block. */
void ir_op_move_before(Op *op, Op *before);
/* Replaces every use of `from` (operands and function outputs) by `to`. */
void ir_replace_uses(Module *m, Value *from, Value *to);
void ir_recount_uses(Module *m);

/* ---- scan (ir/scan.c) ----------------------------------------------- */
/* Minimum operand count of op kind k: the row's count, or for variadic
 * rows 1 (concat) / 0 (scan, yield). */
int ir_op_min_operands(OpKind k);
/* Appends a SCAN without results to b and gives it its region: a block
 * whose arguments are the carries, the sequences' slices and (with_index)
 * the step index; `names` (may be NULL) names them. The caller fills the
 * region and calls ir_scan_finish. */
Op *ir_scan_begin(Module *m, Block *b, Value *const *operands, int noperands,
                  const Attrs *attrs, const char *const *names, Loc loc);
/* Appends the region's yield and creates the scan's results by
 * ir_scan_infer. False after reporting an error. */
bool ir_scan_finish(Module *m, Op *scan, Value *const *yields, int nyields,
                    Loc loc, Diag *d);
/* Checks a scan's structure (operand counts, region arguments, the yield
 * at the end, carry types, sequence lengths) and computes its result types
 * into out (room for ncarry + yield outputs; *nout receives the count). */
bool ir_scan_infer(const Module *m, const Op *scan, Type *out, int cap,
                   int *nout, Diag *d);
/* The yield ending a scan's region, or NULL. */
Op *ir_scan_yield(const Op *scan);
/* Index in the yield of per-step output 0: ncarry, + 1 with `until` (the
 * done flag). Result j of the scan for j >= ncarry is yield operand
 * j + (until ? 1 : 0); with `until` the last result is the step count. */
int ir_scan_first_output(const Op *scan);
/* The number of per-step outputs (stacked results) of a scan. */
int ir_scan_noutputs(const Op *scan);
/* Whether op, or an op of its regions (a value a region reads from above
 * it), has an operand v for which reads(v, ctx) holds. */
bool ir_op_reads_any(const Op *op,
                     bool (*reads)(const Value *v, const void *ctx),
                     const void *ctx);

/* ---- fused (ir/fused.c) ---------------------------------------------- */
/* Appends a FUSED of the given operands and result type to b, with its
 * region: one scalar argument per operand (named like the operand). The
 * caller fills the region (ops on scalars) and ends it with
 * ir_fused_finish. */
Op *ir_fused_begin(Module *m, Block *b, Value *const *operands, int noperands,
                   DType result, Loc loc);
void ir_fused_finish(Module *m, Op *fused, Value *yield, Loc loc);
/* Checks a fused op's region (see ops.def); reports at the op's location. */
bool ir_fused_check(const Module *m, const Op *fused, Diag *d);
/* Whether an op may sit in a fused region: an elementwise op (not a random
 * draw) or a scalar constant. */
bool ir_fusable_kind(OpKind k);
/* Whether `reader` can run as the epilogue of the f32 matmul `mm`: it is an
 * elementwise loop (a fused op or one elementwise op) over mm's result
 * shape, of f32 results, that reads mm's result once, and nothing else
 * reads that result. The C backend then applies it to the GEMM's output
 * while it is in cache, and passes/fuse.c moves mm right before it. */
bool ir_is_gemm_epilogue(const Op *mm, const Op *reader);
/* Whether the elementwise op `producer` can be computed inside the
 * reduction `red` (reduce_*, logsumexp) that is its only reader: the
 * reduction evaluates it at each element it reads instead of reading a
 * buffer. And whether `reader` can be that reduction's epilogue: an
 * elementwise loop over its result shape that reads its result once, and
 * nothing else reads it. passes/fuse.c moves them next to each other. */
bool ir_is_reduce_prologue(const Op *producer, const Op *red);
bool ir_is_reduce_epilogue(const Op *red, const Op *reader);
/* Attention, softmax(S) @ V with S = Q @ K.T (then optionally an
 * elementwise loop: scale, mask): whether sm, an f32 softmax along the
 * last axis, is read only by the matmul mm as its left operand with the
 * same batch axes; and whether `scores` (that matmul, or the loop that is
 * its epilogue) is read only by sm. The C backend then computes a block of
 * rows of S, its softmax and its product with V at a time (never all of
 * S); passes/fuse.c moves them next to each other. */
bool ir_is_attention_softmax(const Op *sm, const Op *mm);
bool ir_is_attention_scores(const Op *scores, const Op *sm);

/* Lazy selects (ir/lazy.c): select(c, a, b) with a scalar c whose side a
 * or b has work of its own (its cone: ops only that side reads) costly
 * enough to skip when the other side is picked. ir_lazy_first_op: the
 * first op of the lazy sides' cones in block order (NULL: not lazy).
 * ir_lazy_guards fills guards[op->results[0]->id] for each op of b (not
 * in regions): {select, c, true} for an op only a lazy select's true side
 * needs and that follows c's definition (it runs only when c holds),
 * {select, c, false} for the false side, {NULL} for the rest; guards has
 * room for every value id of the module. */
typedef struct IrGuard {
  const Op *sel;
  const Value *cond;
  bool when;
} IrGuard;
bool ir_select_is_lazy(const Op *sel);
const Op *ir_lazy_first_op(const Op *sel);
void ir_lazy_guards(const Block *b, IrGuard *guards);

/* Iteration helper: for (Op *op = b->first; op; op = op->next) */

/* ---- text form (ir/print.c, ir/read.c) -------------------------------- */
/* The text form round-trips: ir_read(ir_print(m)) prints identically. */
void ir_print(FILE *out, const Module *m);
char *ir_print_to_string(const Module *m); /* malloc'd */
/* Parses IR text; `path` names it in diagnostics. NULL after errors. */
Module *ir_read(const char *text, const char *path, Diag *d);
/* Exact float text, as the printer writes constants: integral values below
 * 1e16 as integers ("16777216", "-0"), else the shortest %g that reads back
 * (strtof / strtod) to the same bits; C99 hex floats for subnormals
 * ("0x1p-140"); "inf", "-inf", "nan", "-nan". snprintf semantics. */
int ir_format_f32(char *buf, size_t n, float f);
int ir_format_f64(char *buf, size_t n, double f);
/* Writes s as a double-quoted string with \" \\ and \xHH escapes. */
void ir_print_string(FILE *out, const char *s);

#endif
