/* Internal interface between the parts of the C backend (see cg.h).
 *
 * c_emit.c decides where every value lives (input, weight, constant array,
 * workspace buffer, caller's output buffer, or an alias of another value)
 * and calls cg_kernel_emit for each op that computes something; the kernel
 * emitter only sees operand and result pointers, literals for inlined
 * scalar constants, and the C names of the symbols.
 */
#ifndef MC_C_EMIT_H
#define MC_C_EMIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "arena.h"
#include "cg.h"
#include "ir.h"

/* ---- growable text buffer (c_emit.c) ------------------------------------ */
typedef struct CgBuf {
  char *data; /* NUL-terminated; NULL while empty */
  size_t len, cap;
} CgBuf;

void cg_buf_printf(CgBuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cg_buf_vprintf(CgBuf *b, const char *fmt, va_list ap);
void cg_buf_puts(CgBuf *b, const char *s);
/* text with `extra` more spaces before each of its lines */
void cg_buf_indented(CgBuf *b, const char *text, int extra);
const char *cg_buf_str(const CgBuf *b); /* "" while empty */
void cg_buf_free(CgBuf *b);

/* printf into memory of arena a */
char *cg_strf(Arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Whether expression text s is exactly lit ("1", "0"): a product that
 * folded to a constant needs no loop. */
bool cg_is_lit(const char *s, const char *lit);

/* ---- C spelling of IR things (c_text.c) --------------------------------- */
const char *cg_ctype(DType t);    /* "float", "int32_t", "uint8_t", ... */
const char *cg_mc_dtype(DType t); /* "MC_F32", ... */
/* Element i of `data` (dtype t) as a C expression of that type, bit-exact:
 * floats as hex floats (0x1p-140f), INFINITY/NAN, INT32_MIN spelled safely. */
char *cg_literal(Arena *a, DType t, const void *data, size_t i);
/* A dimension as a C int64_t expression over the symbols' C names ("T",
 * "(2 * T + 1)"); sets the bit of every symbol it reads in *used. */
char *cg_dim(Arena *a, Dim d, const char *const *symnames, uint64_t *used);
/* Product of dims[from..to) with constants folded: "T * 768", "1". */
char *cg_dims_product(Arena *a, const Dim *dims, int from, int to,
                      const char *const *symnames, uint64_t *used);
/* s as the body of a C string literal, also safe inside a printf format
 * when `format` is set ('%' doubled). */
char *cg_c_string(Arena *a, const char *s, bool format);

/* Where a view's element [i_0, ..., i_r-1] is: base's data at offset +
 * sum of i_j * stride[j] (elements). */
typedef struct CgView {
  const Value *base;
  Dim offset;
  Dim stride[MAX_RANK];
} CgView;

/* ---- one kernel --------------------------------------------------------- */
typedef struct CgKernel {
  /* in */
  Arena *arena;
  const Module *m;
  const Op *op;
  const char *const *symnames; /* C name per symbol id */
  const char *where;           /* "gpt2.model:34:5", format-escaped */
  /* per operand: a literal to inline (scalar constant of an elementwise
   * op), or NULL to read it through a pointer parameter */
  const char **literal;
  /* per operand: its view (read with the view's strides from the pointer
   * of its base plus the offset), or NULL for a dense array */
  const CgView **view;
  /* per operand, for weights (c_weights.c): kept in DT_F16 / DT_BF16 bits
   * (else DT_F32), kept transposed */
  const DType *store;
  const bool *transposed;
  const bool *packed; /* f32 weight kept in GEMM panels (mc_gemm_pack_b) */
  /* dynamic_update_slice only: y already holds operand 0 (the update is
   * made in place), which is then not a parameter */
  bool in_place;
  /* matmul and reductions: the elementwise op that reads the result and
   * runs as the kernel's epilogue (ir_is_gemm_epilogue,
   * ir_is_reduce_epilogue); y is its result, its operands but the product
   * are parameters named x<i> unless ep_literal[i] inlines them */
  const Op *epilogue;
  const char **ep_literal;
  /* reductions: the elementwise op whose result is operand 0, evaluated
   * at each element read (ir_is_reduce_prologue); its operands are
   * parameters named p<i> unless pro_literal[i] inlines them */
  const Op *prologue;
  const char **pro_literal;
  /* matmul only: attention, softmax(op's result, or its epilogue's) read
   * by the matmul pv as its left operand (ir_is_attention_*): the kernel
   * computes pv's result y; pv's right operand is parameter v (view
   * pv_view) */
  const Op *softmax, *pv;
  const CgView *pv_view;
  const char *name; /* the kernel's C name (the epilogue's is NAME_ep) */
  CgBuf defs;       /* definitions that precede the kernel (an epilogue) */
  /* out */
  CgBuf body;    /* statements, indented two spaces */
  uint64_t syms; /* symbols the body reads: become int64_t parameters */
  /* A ranged kernel's body is a loop over [begin, end) of 0..range (a C
   * expression) that runs in chunks of at least `grain` on the runtime's
   * threads (c_parallel.c); body_syms are the symbols the body itself
   * reads (the others only size the range). NULL range: a plain body. */
  const char *range, *grain;
  uint64_t body_syms;
  bool can_fail;    /* returns int and takes McError *err */
  bool softmax_row; /* calls mc_softmax.h's mc_softmax_row_f32 */
} CgKernel;

/* ---- loops and indexes of kernels (c_loops.c) ---------------------------- */
/* A statement at `depth` (two spaces each) of the kernel's body. */
void cg_line(CgKernel *k, int depth, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
extern const char *const cg_loop_vars[MAX_RANK]; /* "i0" .. "i7" */
/* A dimension / product of dims[from..to) as C, noting the symbols read. */
char *cg_kdim(CgKernel *k, Dim d);
char *cg_kproduct(CgKernel *k, const Shape *s, int from, int to);
bool cg_is_one(Dim d); /* the constant 1 */
/* Row-major flat index into a dense array of shape s: the sum of pos[j]
 * times the product of the dims after j; NULL positions are 0. */
char *cg_strided_index(CgKernel *k, const Shape *s, const char *const *pos);
/* Opens a loop per axis of s whose extent is not the constant 1 (axes in
 * `skip` get none either); vars[j] is the loop variable of axis j or NULL.
 * With `block`, the innermost loop opens a brace (or a bare block when no
 * loop was opened) that the caller closes with cg_close_block at the
 * returned depth. */
int cg_open_loops(CgKernel *k, int depth, const Shape *s, uint32_t skip,
                  const char **vars, bool block);
void cg_close_block(CgKernel *k, int depth);

/* A kernel parameter: C type, name, the argument the call passes, and
 * whether a ranged body reads it. */
typedef struct CgParam {
  const char *ctype, *name, *arg;
  bool in_body;
} CgParam;

/* "float *": the name follows without a space. */
static inline bool cg_ends_with_star(const char *ctype) {
  size_t n = strlen(ctype);
  return n > 0 && ctype[n - 1] == '*';
}

/* c_parallel.c: a ranged kernel (k->range set) as an argument struct and a
 * range function holding the body (the core), then the kernel `sig) {...}`
 * handing the range to mc_parallel_for (the wrapper; a row group,
 * c_row_group.c, calls the cores of its kernels instead); appended to out. */
void cg_emit_range_core(const CgKernel *k, const char *name, const CgParam *ps,
                        int np, CgBuf *out);
void cg_emit_range_wrapper(const CgKernel *k, const char *name,
                           const CgParam *ps, int np, const char *sig,
                           CgBuf *out);
/* Starts a ranged body: the range's and grain's C expressions are made
 * with the symbols they read kept apart from the body's. */
void cg_begin_range(CgKernel *k, const char *range, const char *grain);
/* Ends it: the symbols read since cg_begin_range are the body's. */
void cg_end_range(CgKernel *k);
/* A function of its own inside a kernel (an epilogue, attention's range):
 * cg_sub_begin sets the kernel's body aside, cg_sub_end hands the lines
 * written since to *body and returns the symbols they read, which the
 * kernel reads too (to pass them on). */
typedef struct CgSub {
  CgBuf body;
  uint64_t syms;
} CgSub;
void cg_sub_begin(CgKernel *k, CgSub *saved);
uint64_t cg_sub_end(CgKernel *k, CgSub *saved, CgBuf *body);

/* c_kernels.c: a matmul's GEMM arguments as C, from the operands' views
 * (NULL: dense) and whether B is a weight kept transposed. */
typedef struct CgGemm {
  const char *M, *N, *K, *rsa, *csa, *rsb, *csb;
  const char *sa[MAX_RANK], *sb[MAX_RANK]; /* the operands' strides */
  int ar, br;                              /* the operands' ranks */
} CgGemm;
void cg_gemm_layout(CgKernel *k, const Op *mm, const CgView *va,
                    const CgView *vb, bool b_kept_transposed, CgGemm *g);
/* Whether matmul mm ([..., M, K] x [K, N], A dense (not a view) and not
 * transposed, with the result's batch axes) runs as one GEMM of all the
 * rows of A: its epilogue ep (or NULL) must read each operand either
 * whole on the batch and row axes or the same for every row. The axis of
 * the result the epilogue's row index then runs along, else -1. */
int cg_matmul_rows_collapse(const Op *mm, const Op *ep, bool a_is_view);
/* sum of pos[j] * stride[j] over the n batch axes ("0" when none). */
const char *cg_batch_offset(CgKernel *k, const char *const *stride, int n,
                            const char *const *pos);
/* c_attention.c: k->op computes S (with k->epilogue), k->softmax P, k->pv
 * P @ V: blocks of rows at a time. */
bool cg_kernel_attention(CgKernel *k, Diag *d);
/* The epilogue operand of attention's scores S (shape ss, the product of
 * mm, ep its epilogue or NULL) that masks keys: when ep's result is
 * where(mask, ..., -inf) or where(mask, -inf, ...) with a mask that has
 * the key (last) axis (decoding's arange(n_ctx) <= pos over a cache, a
 * causal [T, T] mask, a padding mask [B, 1, 1, T]). Its index, else -1;
 * *true_masks tells whether a true element masks its key (the second
 * form) or keeps it. Both backends compute only the keys up to the last
 * one a block of rows keeps (see c_attention.c). */
int cg_attention_key_mask(const Op *mm, const Op *ep, const Shape *ss,
                          bool *true_masks);

/* Whether axis i of slice `op` needs no check at run time: its bounds
 * hold for every value of the symbols (slice_axis_in_bounds; constant
 * bounds outside the operand were refused by ir/shape.c). */
static inline bool cg_slice_axis_checked(const Op *op, int i) {
  return slice_axis_in_bounds(op->attrs.slice.start[i], op->attrs.slice.step[i],
                              op->results[0]->type.shape.dims[i],
                              op->operands[0]->type.shape.dims[i]);
}

/* c_elementwise.c: elementwise ops, non-alias broadcasts, fused ops. */
bool cg_kernel_elementwise(CgKernel *k, Diag *d);
/* c_elementwise.c: the stages of fused op `op`'s flat loop, which both
 * backends compile as one loop per stage over tiles of the range when
 * there are several: stage[j] for the j-th op of its region, kept[j]
 * whether a later stage reads its result (through a tile array); returns
 * their number. A region with two or more calls of mc_vmath.h's functions (each
 * a long chain of dependent operations) puts each call in a stage of its
 * own, and the ops between calls in stages of their own: a loop over the
 * whole chain keeps too few elements in flight for the CPU to overlap
 * their chains (the activation chain of bench/ ran 1.7x slower that way
 * on an AVX-512 Zen 5); else one stage. */
int cg_fused_stages(const Op *op, int *stage, bool *kept);
/* c_elementwise.c: k->epilogue as a GEMM epilogue: NAME_ep_args and
 * NAME_ep into k->defs, and at `depth` of the body the statements that
 * declare `ep` for the batch whose loop variables are vars (the result's
 * first nbatch axes; rows and cols: the result axes of the GEMM's rows and
 * columns, -1 when it has none) and whose first row is row0 (NULL: 0). */
bool cg_gemm_epilogue(CgKernel *k, int depth, const char *const *vars,
                      int nbatch, int rows, int cols, const char *row0,
                      Diag *d);
/* c_elementwise.c: the value of elementwise op `op` at the element of its
 * result whose loop variables are pos (NULL: position 0 on that axis),
 * its statements at `depth`; returns its expression. Operand i reads
 * <prefix><i> with broadcasting, or is literal[i], or for i == given is
 * the expression given_expr. */
const char *cg_element_at(CgKernel *k, const Op *op, int depth,
                          const char *const *pos, const char *prefix,
                          const char *const *literal, int given,
                          const char *given_expr, Diag *d);

/* c_kernels_decode.c: the decoding ops' kernels (dynamic slices,
 * take_along_axis, topk, cumsum, random_uniform, categorical). */
bool cg_kernel_decode(CgKernel *k, Diag *d);
/* c_movement.c: gather, scatter_add, slice, concat, permute, iota. */
bool cg_kernel_movement(CgKernel *k, Diag *d);

/* The name of operand i's pointer parameter ("x", "a", "table", ...). */
const char *cg_operand_name(const Op *op, int i);
/* Whether the elementwise op kind can take inlined scalar operands. */
bool cg_op_is_elementwise(OpKind k);
/* Whether op computes nothing and needs no kernel given that its result is
 * an alias of operand 0 (reshape, or a broadcast that adds only leading 1s
 * and keeps the element count). */
bool cg_op_is_alias(const Op *op);
/* Fills k->body and the out fields. Reports unsupported cases into d. */
bool cg_kernel_emit(CgKernel *k, Diag *d);

/* ---- the emitter's state (c_emit.c, c_api.c) ----------------------------- */
typedef struct NameSet {
  const char **names;
  int n, cap;
} NameSet;

/* base, or base_2, base_3, ... whichever is still free; then taken. */
const char *cg_names_unique(NameSet *s, Arena *a, const char *base);
/* Any text as a C identifier: other characters become '_'. */
char *cg_c_ident(Arena *a, const char *s);
/* Takes C's keywords and the names generated code declares itself. */
void cg_reserve_c_names(NameSet *s, Arena *a);
/* The C name of a model symbol: kept when it cannot clash with the
 * lowercase locals of kernels or reserved macro names, else "sym_" + it. */
const char *cg_symbol_c_name(Arena *a, const char *name);

typedef enum Storage {
  ST_NONE, /* dead, or an inlined scalar constant */
  ST_INPUT,
  ST_PARAM,
  ST_CONST,
  ST_WORKSPACE,
  ST_OUTPUT,
  ST_ALIAS,
  ST_LOCAL, /* a scan region's argument: a pointer the scan's loop sets */
  ST_CARRY, /* a carry's new value computed in place, into the carry's
               buffer (alias: the carry's region argument) */
  ST_SLOT,  /* a scan's per-step output computed into its row of the
               stacked result (alias: that result; the loop sets cname) */
  ST_VIEW,  /* strided elements of alias (c_views.c): no buffer, no kernel */
  ST_FUSED  /* computed inside the kernel of its only reader, the next op
               (a matmul or reduction with that reader as its epilogue,
               an elementwise loop as a reduction's prologue): no buffer */
} Storage;

typedef struct ValueInfo {
  Storage storage;
  const char *cname;  /* the pointer variable (or array) holding the data */
  int index;          /* input, param, output or buffer index */
  const Value *alias; /* ST_ALIAS, ST_VIEW: the value whose data this is */
  const CgView *view; /* ST_VIEW: how; alias is its base's alias root */
  int uses;           /* uses by live ops and outputs */
  bool referenced;    /* the emitted code reads its pointer variable */
  /* of an op's first result: the op runs only when the lazy select
   * guard_sel's scalar condition guard is guard_when (ir/lazy.c) */
  const Value *guard;
  const Op *guard_sel;
  bool guard_when;
} ValueInfo;

/* Kernels by their code (their name left out, KERNEL_NAME in its place):
 * a kernel whose code is that of one emitted before calls that one, so a
 * layer repeated or a loop unrolled makes its kernels once (c_kernel_call.c).
 */
typedef struct KernelSet {
  const char **code, **name; /* open addressing, cap a power of two; in
                              * the emitter's arena */
  size_t n, cap;
} KernelSet;

typedef struct Emitter {
  const Module *m;
  const CgOptions *o;
  Diag *d;
  Arena arena;
  const char *name; /* model name as a C identifier */
  const char *symnames[MAX_SYMBOLS];
  NameSet globals;
  KernelSet kernel_codes;
  /* sections of <name>.c in file order, and <name>.h's declarations */
  CgBuf consts, model, kernels, funcs, info, header;
  bool any_workspace;
  bool any_run_time_plan; /* some layout calls mc_plan_place */
  bool any_softmax_row;   /* some kernel includes mc_softmax.h's */
  DType *wstore;          /* by param: how the model keeps it (c_weights.c) */
  bool *wtrans;
  bool *wpacked;
  bool single; /* one entry point (besides a prepare function) */
} Emitter;

/* c_weights.c: e->wstore, e->wtrans and e->wpacked from the uses of every
 * weight. */
void cg_choose_weight_layouts(Emitter *e);

/* The memory plan of a function's workspace buffers (c_plan.c). */
typedef struct CgPlan {
  int *start, *end; /* by buffer: the steps of its first write, last read */
  int *order;       /* the buffers by start, then index: placement order */
  int last_step;    /* the step that copies the outputs out */
  bool constant;    /* every size is a constant: the plan below is made */
  size_t *bytes, *off, arena;
  size_t lower_bound; /* constant sizes: the most bytes live at one step */
} CgPlan;

typedef struct FnEmit {
  Emitter *e;
  const Function *f;
  const char *run;    /* "gpt2_run"; "crf_decode" with several entries */
  const char *run_v;  /* "gpt2_run_v": run as a McRunFn */
  const char *prefix; /* of the entry's McModelInfo: "gpt2" / "crf_decode" */
  const char *layout; /* "gpt2_run_layout" */
  const char *wsize;  /* "gpt2_workspace_size" */
  ValueInfo *vi;      /* by value id */
  uint64_t syms;      /* the symbols of the input shapes */
  const Value **buffers;
  int nbuffers;
  bool can_fail;
  const char **in_names, **out_names;
  bool *out_direct; /* output written in place by its kernel */
  NameSet locals;
  bool uses_m; /* a scan region reads weights through m */
  /* the prepare function: its run is static, called by the model's open,
   * with no workspace-size function, header entry or McModelInfo */
  bool internal;
  /* A training entry's optimizer states (the inputs an output updates,
   * FuncOutput.updates_input): buffers 0 .. nstates-1, placed first, so
   * they fill the arena's first state_bytes bytes; the model keeps that
   * arena between calls (mc_model_arena, with key `key`). Neither the
   * states nor the outputs updating them are in the entry's signature: an
   * update is computed into its state's buffer (ST_OUTPUT named as the
   * state, cg_state_update_in_place) or copied over it at the end. */
  int nstates, key;
  size_t state_bytes;
  int *state_update; /* by input: the output that updates it, or -1 */
  CgPlan plan;
  int *row_group; /* by the id of an op's first result: cg_row_group_of */
} FnEmit;

/* An entry's inputs and outputs as its run function and tables list them:
 * optimizer states and their updates left out; `step` is the index there
 * of a training entry's input `step`, else -1 (cg_entry_io, c_api.c). */
typedef struct CgEntryIO {
  int nin, nout, step;
  const char **in_name, **out_name;
  const Value **in_value, **out_value;
  bool *optional;
} CgEntryIO;
void cg_entry_io(FnEmit *fe, CgEntryIO *io);

/* Whether input / output i is a parameter of the entry's run function (not
 * an optimizer state kept in its arena, or its update). */
static inline bool cg_input_in_abi(const FnEmit *fe, int i) {
  return fe->state_update[i] < 0;
}
static inline bool cg_output_in_abi(const FnEmit *fe, int i) {
  return fe->f->outputs[i].updates_input < 0;
}

/* Sets e up for m: names, symbols, how each weight is kept. Free with
 * cg_emitter_free. Shared by both backends. */
void cg_emitter_init(Emitter *e, const Module *m, const CgOptions *o, Diag *d);
void cg_emitter_free(Emitter *e);
/* Names f's entry points and values and analyzes it (liveness, storage,
 * workspace buffers, memory plan) into fe. Shared by both backends. */
bool cg_function_begin(Emitter *e, const Function *f, bool single, FnEmit *fe);
ValueInfo *cg_info(FnEmit *fe, const Value *v);
/* c_weights.c: how the weight v, or the weight v is a view of, is kept
 * (e->wstore); DT_F32 for any other value. */
DType cg_weight_store(FnEmit *fe, const Value *v);
/* c_storage.c: liveness, storage and workspace buffers of one function,
 * then its memory plan (cg_plan_lifetimes). */
bool cg_analyze(FnEmit *fe);
/* A scalar constant an elementwise kernel inlines as a literal. */
bool cg_is_inlinable_const(const Value *v);
/* Whether op's kernel inlines scalar constants (elementwise, fused). */
bool cg_takes_literals(const Op *op);
/* The C expression of a value's data pointer in the run function. */
const char *cg_pointer(FnEmit *fe, const Value *v);
/* Byte size of a value's buffer as a C size_t expression. */
const char *cg_buffer_bytes(FnEmit *fe, const Value *v, uint64_t *used);
/* The model-file line at loc (for comments), or NULL (c_text.c). */
const char *cg_source_line(Emitter *e, Loc loc);
/* A value's C name, or "%id" for one without. */
const char *cg_value_text(FnEmit *fe, const Value *v);
/* "h_5: f32[T, 768] = add(x, h_3) axis=..." with literal[i] for inlined
 * operands. */
void cg_append_op_text(FnEmit *fe, CgBuf *b, const Op *op,
                       const char **literal);
/* c_kernel_call.c: op's kernel's name, "scope_L12_kind", made unique. */
const char *cg_kernel_name(Emitter *e, const Op *op);
/* ... of a GEMM with its epilogue: "conv1d_L28_matmul_gelu_L32". */
const char *cg_epilogue_kernel_name(Emitter *e, const Op *mm, const Op *ep);
/* Attention's kernel is named after its first matmul's line:
 * attention_L46_attention (c_kernel_call.c). */
const char *cg_attention_kernel_name(Emitter *e, const Op *mm);
/* c_kernel_call.c: the main op of the kernel that op emits: op, or the
 * matmul or reduction whose result op reads in its kernel (ST_FUSED; op is
 * then *ep, its epilogue); *pro is the main op's prologue, the elementwise
 * loop it evaluates at each element read, or NULL. */
const Op *cg_kernel_ops(FnEmit *fe, const Op *op, const Op **ep,
                        const Op **pro);
/* c_emit.c: whether op's result is read (a yield always runs), and whether
 * op emits a kernel of its own. */
bool cg_op_live(FnEmit *fe, const Op *op);
bool cg_op_emits_kernel(FnEmit *fe, const Op *op);
/* c_kernel_call.c: emits op's kernel and appends its call (indented two
 * spaces) to run. */
bool cg_emit_kernel(FnEmit *fe, const Op *op, CgBuf *run);
/* ... in three steps. A kernel made, not yet emitted: its code with a
 * placeholder for its name, as core (an epilogue's definitions, a ranged
 * kernel's args struct and range function) and wrapper (the function the
 * run function calls), its parameters, and the ops it is named after. */
typedef struct CgBuilt {
  CgKernel k;
  const Op *kop, *sm, *pv, *ep;
  CgParam *ps;
  int np;
  CgBuf core, wrapper, code; /* code = core + wrapper */
} CgBuilt;
/* Makes the kernel of op: a GEMM's product or reduction that op reads
 * (ST_FUSED) is computed by the same kernel, op as its epilogue. */
bool cg_kernel_build(FnEmit *fe, const Op *op, CgBuilt *b);
/* Its name: that of the kernel emitted before with this code, or a new
 * one, the kernel then emitted; with core_only (a row group's stage) only
 * its core is needed. */
const char *cg_kernel_place(FnEmit *fe, CgBuilt *b, bool core_only);
/* Appends the call of kernel `name` to run. */
void cg_kernel_call(FnEmit *fe, const CgBuilt *b, const char *name, CgBuf *run);
void cg_built_free(CgBuilt *b);
/* A kernel's name while its code is made: not an identifier, so that it
 * cannot be anything else in the code. */
#define KERNEL_NAME "@kernel@"
/* The kernels emitted so far, by their code (KERNEL_NAME in place of the
 * name): the name of the one with this code, or NULL; code remembered under
 * name; code written to out with its name. */
const char *cg_kernel_find(Emitter *e, const char *code);
void cg_kernel_remember(Emitter *e, const char *code, const char *name);
void cg_put_named(CgBuf *out, const char *code, const char *name);
/* c_row_group.c: kernels run one block of rows after the other as one
 * (see there). cg_find_row_groups marks them (FnEmit.row_group) before the
 * memory plan is made; cg_row_group_of(op) is a group's number of kernels
 * at its first op, -1 at its others, else 0; cg_row_group_last its last
 * op; cg_emit_row_group emits the group that starts at first. */
void cg_find_row_groups(FnEmit *fe);
int cg_row_group_of(const FnEmit *fe, const Op *op);
const Op *cg_row_group_last(FnEmit *fe, const Op *first);
bool cg_emit_row_group(FnEmit *fe, const Op *first, CgBuf *run);
/* The code of any live op: a kernel call, a scan's loop, or nothing. */
bool cg_emit_op(FnEmit *fe, const Op *op, CgBuf *run);
/* Declares the pointer variables of op's results (two-space indent). */
void cg_declare_pointers(FnEmit *fe, const Op *op, CgBuf *out, bool *uses_m);
/* c_in_place.c: whether a dynamic_update_slice may write into its
 * operand's buffer (then its result is an alias of that buffer and its
 * kernel takes k.in_place). Called in program order by the storage
 * assignment, after liveness. */
bool cg_update_in_place(FnEmit *fe, const Op *op);
/* Whether output o's value r (a training entry's update of its optimizer
 * state s) may be computed straight into s's buffer (c_in_place.c). */
bool cg_state_update_in_place(FnEmit *fe, const Value *s, const Value *r,
                              int o);
/* c_in_place.c: whether carry i of `scan` may be computed straight into
 * the carry's buffer (its new value then gets ST_CARRY). */
bool cg_carry_update_in_place(FnEmit *fe, const Op *scan, int i);
/* c_in_place.c: whether carry i of `scan` may live in its initial value's
 * buffer (its result then aliases that buffer, and the scan copies
 * nothing in). Called in program order by the storage assignment. */
bool cg_carry_starts_in_place(FnEmit *fe, const Op *scan, int i);
/* c_views.c: marks the operands of matmuls in b (and its regions) that
 * are read as views (ValueInfo.view); after liveness, before storage. */
void cg_find_views(FnEmit *fe, const Block *b);
/* c_plan.c: memory planning (see its header comment). The lifetimes of
 * fe->buffers, and with constant sizes their offsets; called once the
 * buffers are collected. */
void cg_plan_lifetimes(FnEmit *fe);
/* First fit over lifetimes [start[i], end[i]]: in order of start (then
 * index) each buffer goes at the lowest offset where its bytes[i] overlap
 * no buffer placed before it whose lifetime meets its own. Fills off;
 * returns the arena size. The runtime's mc_plan_place does the same at run
 * time. */
size_t cg_plan_first_fit(int n, const int *start, const int *end,
                         const size_t *bytes, size_t *off);
/* The buffers placed before the k-th in placement order (fe->plan.order)
 * whose lifetimes meet its own, into out (up to k of them); their count. */
int cg_plan_meets(const FnEmit *fe, int k, int *out);
/* <fn>_layout and the public <fn>_workspace_size; returns the symbols the
 * layout reads. */
uint64_t cg_emit_layout(FnEmit *fe);
/* The arena's size for the header: "123456 (gpt2_workspace_size())" or
 * "gpt2_workspace_size(T)". */
const char *cg_plan_arena_text(FnEmit *fe);
/* "int64_t T, int64_t B, " (decl) or "T, B, " for the symbols in syms. */
const char *cg_sym_args(FnEmit *fe, uint64_t syms, bool decl);
/* c_scan.c: a scan as a loop over its steps, appended to run. */
bool cg_emit_scan(FnEmit *fe, const Op *op, CgBuf *run);
/* The scan that runs at the same time as scan op, one per thread (see
 * passes/pair_scans.c): the next live op of the function body, when it is
 * a live scan over as many steps that reads nothing op computes; else
 * NULL. The memory plan keeps the two apart (c_plan.c); the C backend's
 * run function calls them through mc_parallel_for (c_emit.c). */
const Op *cg_scan_partner(FnEmit *fe, const Op *op);
/* Scans s1 and s2 (partners) into run, side by side: their loops in a
 * function appended to tasks, which run calls through mc_parallel_for;
 * in turn, into run, when a loop can fail. */
bool cg_emit_scan_pair(FnEmit *fe, const Op *s1, const Op *s2, CgBuf *run,
                       CgBuf *tasks);
const char *cg_base_name(const char *path);
/* "gpt2.model:34:5" (the model name when loc is unknown) */
const char *cg_where(Emitter *e, Loc loc);
/* The typed run function's parameter list "(gpt2_model *m, int64_t T, ...)",
 * with the header's per-parameter comments when `comments` is set. */
const char *cg_run_params(FnEmit *fe, bool comments);

/* c_api.c: the public surface of the generated model */
/* Declarations and documentation of one function in <name>.h. */
void cg_emit_header_function(FnEmit *fe);
/* McModelInfo.run for fe: binds symbols from the input tensors' shapes,
 * checks them, allocates the outputs and calls the typed run function.
 * Reports symbols no input shape determines. */
bool cg_emit_info_run(FnEmit *fe);
/* Weight specs, the model struct and open/close, shared by every entry. */
bool cg_emit_model_api(Emitter *e);
/* The file weights entry fe reads (every one for a model's only entry),
 * by index into which[] (room for all); their count. *prepare: whether
 * opening it computes the prepared weights. */
int cg_entry_weights(FnEmit *fe, int *which, bool *prepare);
/* How output o of the prepare function becomes a weight (the runtime's
 * McPreparedSpec): the weight's index, its floats, and with `packed` the
 * rows x cols matrix the GEMM's panels hold (of its transpose). */
typedef struct CgPrepared {
  int weight;
  int64_t floats;
  bool packed;
  int64_t rows, cols;
  bool transposed;
} CgPrepared;
CgPrepared cg_prepared(const Emitter *e, int o);
/* The McModelInfo <prefix>_info of one entry point. */
void cg_emit_entry_info(FnEmit *fe);

/* ---- files (c_build.c) -------------------------------------------------- */
/* mkdir -p */
bool cg_make_dirs(const char *path, Diag *d);
/* Runs argv in directory cwd (NULL: this one) with stdout and stderr into
 * log_path; returns the exit status, or -1 when it could not run. */
int cg_run_logged(char **argv, const char *cwd, const char *log_path);

/* ---- cache of the compiled runtime objects (c_cache.c) ------------------ */
/* The runtime's objects (mc_*.o) are the same for every model: they are
 * kept in <cache>/runtime-<key>/, the key a hash of the compile command, the
 * compiler's identity and the text of every mc_*.c and mc_*.h. <cache> is
 * $MODELC_CACHE_DIR (the value "off" disables the cache), else
 * $XDG_CACHE_HOME/modelc, else $HOME/.cache/modelc. A cache that cannot be
 * used is no error: the build compiles as without it. */
#define CG_CACHE_KEY_LEN 32 /* hex digits */
typedef struct CgCache {
  char *root; /* the cache directory; NULL: no caching for this build */
  char key[CG_CACHE_KEY_LEN + 1];
} CgCache;
/* The cache directory (malloc'd), NULL when it is off or has no place. */
char *cg_cache_root(void);
/* The key of the objects argv (the runtime's compile command, run in dir,
 * its first ncc words the compiler) makes from dir's files; false when the
 * compiler cannot be identified or a file read. */
bool cg_cache_key(char *const *argv, int ncc, const char *dir,
                  char key[CG_CACHE_KEY_LEN + 1]);
/* Looks the objects of argv up and on a hit places them into dir (true).
 * Sets *c up for cg_cache_store either way; free it with cg_cache_free. */
bool cg_cache_fetch(CgCache *c, char *const *argv, int ncc, const char *dir,
                    char *const *objects, int nobjects);
/* After a miss and a successful compile: stores dir's objects. */
void cg_cache_store(CgCache *c, char *const *argv, const char *dir,
                    char *const *objects, int nobjects);
void cg_cache_free(CgCache *c);
/* SHA-256 of n bytes. */
void cg_sha256(const void *data, size_t n, unsigned char out[32]);

#endif
