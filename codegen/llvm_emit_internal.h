/* Internal interface between the parts of the LLVM backend's translation
 * (llvm_emit.h): the module being built and the run function being built.
 *
 * The translation shares the C backend's analysis (c_emit.h: names,
 * storage, workspace buffers, memory plan) and the runtime's model glue
 * (mc_model.c, fed the same tables), so both backends agree on every
 * buffer, offset and message; only the code of the functions differs.
 * Data pointers are i8* everywhere but inside a kernel, sizes and symbols
 * are i64: 64-bit targets only.
 */
#ifndef MC_LLVM_EMIT_INTERNAL_H
#define MC_LLVM_EMIT_INTERNAL_H

#include <llvm-c/Core.h>

#include "c_emit.h"

typedef struct LlvmEmit {
  Emitter *e;
  LLVMContextRef ctx;
  LLVMModuleRef mod;
  LLVMBuilderRef b;
  LLVMTypeRef i1, i8, i32, i64, f32, f64, vd, ptr, pptr; /* ptr: i8* */
} LlvmEmit;

/* The run function of one entry (or the prepare function) being built. */
typedef struct LlvmFn {
  LlvmEmit *L;
  FnEmit *fe;
  LLVMValueRef fn;
  LLVMValueRef m, err;           /* its model and McError* parameters */
  LLVMValueRef sym[MAX_SYMBOLS]; /* i64 values of the symbols it takes */
  LLVMValueRef *in, *out;        /* its input and output parameters (i8*) */
  LLVMValueRef ws, off;          /* workspace (i8*), offsets ([n x i64]*) */
  LLVMValueRef rc;               /* i32 slot: the status of failing kernels */
  LLVMValueRef *local;           /* by value id: a scan region's arguments */
  LLVMBasicBlockRef done;        /* frees the workspace, returns rc */
} LlvmFn;

/* ---- llvm_builders.c ------------------------------------------------------
 */
/* The element type of t in memory (bool: i8). */
LLVMTypeRef llvm_type(LlvmEmit *L, DType t);
/* A dimension's i64 value from the symbols' values. */
LLVMValueRef llvm_dim(LlvmEmit *L, Dim d, const LLVMValueRef *sym);
/* The product of s's dims [from, to) as i64. */
LLVMValueRef llvm_numel(LlvmEmit *L, const Shape *s, int from, int to,
                        const LLVMValueRef *sym);
/* The function `name` of type ty in the module, declared if new. */
LLVMValueRef llvm_function(LlvmEmit *L, const char *name, LLVMTypeRef ty);
/* Calls `name` (declared with ty if new). */
LLVMValueRef llvm_call(LlvmEmit *L, const char *name, LLVMTypeRef ty,
                       LLVMValueRef *args, int n);
/* i8* constant of a NUL-terminated string (a private global). */
LLVMValueRef llvm_cstring(LlvmEmit *L, const char *s);
/* Element i of a constant's data as an LLVM constant of its type, bit for
 * bit. */
LLVMValueRef llvm_const_elem(LlvmEmit *L, DType t, const void *data, size_t i);
/* Kernel helpers: an i64 constant; &p[off] of element type t; the
 * row-major index into s of pos[] (NULL: 0); `return mc_fail(err, code,
 * fmt, a, b)` from fn when bad (a, b: NULL when fmt takes fewer);
 * noinline (a kernel stays a function of its own in the .ll). */
LLVMValueRef llvm_i64(LlvmEmit *L, int64_t v);
LLVMValueRef llvm_gep(LlvmEmit *L, LLVMTypeRef t, LLVMValueRef p,
                      LLVMValueRef off);
LLVMValueRef llvm_index(LlvmEmit *L, const Shape *s, LLVMValueRef *pos,
                        const LLVMValueRef *sym);
void llvm_fail_if(LlvmEmit *L, LLVMValueRef fn, LLVMValueRef err,
                  LLVMValueRef bad, int code, const char *fmt, LLVMValueRef a,
                  LLVMValueRef b);
void llvm_noinline(LlvmEmit *L, LLVMValueRef fn);
/* op's model-file line as a printf format ('%' doubled), for messages. */
const char *llvm_where_format(Emitter *e, const Op *op);
/* After a failing kernel's call in F's run function: a status rc other
 * than MC_OK stops the run (rc, then `done`). */
void llvm_check_status(LlvmFn *F, LLVMValueRef rc);

/* ---- llvm_emit.c ----------------------------------------------------------
 */
/* A value's data pointer (i8*) in F's run function. */
LLVMValueRef llvm_pointer(LlvmFn *F, const Value *v);
/* The code of a live op in F's run function (or a scan's loop): its
 * kernel and call, a scan's loop, or nothing. */
bool llvm_emit_op(LlvmFn *F, const Op *op, Diag *d);
/* llvm_scan.c: a scan as a loop over its steps. */
bool llvm_emit_scan(LlvmFn *F, const Op *op, Diag *d);
/* Scans s1 and s2 (cg_scan_partner) side by side, as the C backend runs
 * them: a function <run>_L<line>_scans of (ctx, begin, end) holding both
 * loops, called through mc_parallel_for; a loop that can fail stops its
 * own task, and the run function reports the first failed task's error. */
bool llvm_emit_scan_pair(LlvmFn *F, const Op *s1, const Op *s2, Diag *d);
/* llvm_builders.c: counted loops: head/body/exit blocks, the i64 index i from
 * `from` (NULL: 0) while below n. */
typedef struct LlvmLoop {
  LLVMBasicBlockRef head, exit;
  LLVMValueRef i;
} LlvmLoop;
void llvm_loop_begin(LlvmEmit *L, LlvmLoop *lp, LLVMValueRef from,
                     LLVMValueRef n, const char *name);
void llvm_loop_end(LlvmEmit *L, LlvmLoop *lp);

/* ---- llvm_kernels.c --------------------------------------------------------
 */
/* The most operands of an elementwise or fused op (passes/fuse.c's
 * groups take up to 16) a kernel, an epilogue or a prologue compiles. */
#define LLVM_MAX_OPERANDS 16

/* A kernel being built. */
typedef struct LlvmK {
  LlvmEmit *L;
  LlvmFn *F;
  const Op *op;
  LLVMValueRef fn;
  LLVMValueRef sym[MAX_SYMBOLS]; /* the kernel's own symbols' values */
  Diag *d;
} LlvmK;
/* One element of elementwise or fused op from its operands' elements x[]:
 * one instruction (or call) per IR op; NULL for an op it cannot compute. */
LLVMValueRef llvm_element(LlvmK *k, const Op *op, LLVMValueRef *x);
/* llvm_matmul.c: a GEMM's arguments (cg_gemm_layout's), as i64 values in
 * kernel k, from the operands' views (NULL: dense) and whether B is a
 * weight kept transposed: sizes, row and column strides, and the strides
 * of every axis of A and B (sa, sb). */
typedef struct LlvmGemm {
  LLVMValueRef M, K, N, rsa, csa, rsb, csb;
  LLVMValueRef sa[MAX_RANK], sb[MAX_RANK];
} LlvmGemm;
void llvm_gemm_layout(LlvmK *k, const Op *mm, const CgView *va,
                      const CgView *vb, bool b_kept_transposed, LlvmGemm *g);
/* llvm_matmul.c: a matmul's kernel, with `ep` (or NULL) as its epilogue,
 * and its call. */
bool llvm_matmul_kernel(LlvmFn *F, const Op *mm, const Op *ep, Diag *d);
/* NAME_ep(ctx, c, ldc, i0, i1, j0, j1), internal: ep (the epilogue of mm)
 * on rows [i0, i1) and columns [j0, j1) of the product c, in place, for
 * mc_gemm_f32_ep. Its context ctx_t: ep's pointer operands (those not
 * mm's result nor literal[i], already at the block's position), then the
 * symbols of k's run function. rows/cols: the result axes of the GEMM's
 * rows and columns (-1: none). NULL when an element cannot be computed. */
/* Whether the epilogue ep (or NULL) has at most 8 operands, which
 * llvm_gemm_epilogue_fn compiles; else an error at ep's line. */
bool llvm_epilogue_fits(const Op *ep, Diag *d);
LLVMValueRef llvm_gemm_epilogue_fn(LlvmK *k, const Op *mm, const Op *ep,
                                   const char *name, LLVMTypeRef ctx_t,
                                   const bool *literal, int rows, int cols);
/* llvm_attention.c: attention (c_attention.c): the kernel of the scores'
 * matmul mm with its epilogue ep (or NULL), the softmax and the matmul pv,
 * and its call. */
bool llvm_attention_kernel(LlvmFn *F, const Op *mm, const Op *ep, const Op *pv,
                           Diag *d);
/* llvm_movement.c: iota, permute, slice, concat and gather. */
bool llvm_is_movement(const Op *op);
bool llvm_movement_kernel(LlvmFn *F, const Op *op, Diag *d);
/* llvm_reduce.c: argmax/argmin, softmax and log_softmax, whose kernels
 * llvm_movement_kernel makes (reading x, writing y). */
bool llvm_is_reduce(const Op *op);
void llvm_reduce_body(LlvmK *k, const Op *op, LLVMValueRef xp, LLVMValueRef yp);
/* sum, mean, max, min, logsumexp: a kernel of their own, with the
 * elementwise prologue pro and epilogue ep (or NULL) computed in it, on
 * the runtime's threads, and its call. */
bool llvm_is_reduction(const Op *op);
bool llvm_reduce_kernel(LlvmFn *F, const Op *red, const Op *pro, const Op *ep,
                        Diag *d);
/* llvm_decode.c: the decoding ops (dynamic slices, take_along_axis, topk,
 * cumsum, random_uniform, categorical), kernels made the same way; `where`
 * is the op's line with '%' doubled, in_place: a dynamic_update_slice into
 * its operand's buffer. */
bool llvm_is_decode(const Op *op);
bool llvm_decode_can_fail(const Op *op);
void llvm_decode_body(LlvmK *k, const Op *op, LLVMValueRef *xp, LLVMValueRef yp,
                      LLVMValueRef err, const char *where, bool in_place);
/* A kernel whose work is a range [0, n) cut into pieces of at least
 * `grain` on the runtime's threads, as the C backend's ranged kernels:
 * NAME(params) stores its parameters in a struct and calls
 * mc_parallel_for(n, grain, NAME_range, &struct); NAME_range(args, begin,
 * end) loads them and runs body. params: the run function's symbols
 * (F->fe->syms, in order), then pointers named names[]. */
typedef struct LlvmRange {
  /* the range function's body: k->fn and k->sym are the range function's,
   * p[] the pointer parameters' values */
  bool (*body)(LlvmK *k, LLVMValueRef *p, LLVMValueRef begin, LLVMValueRef end,
               void *ctx);
  /* in the kernel (k->sym its parameters): n, and *grain */
  LLVMValueRef (*extent)(LlvmK *k, LLVMValueRef *grain, void *ctx);
  void *ctx;
} LlvmRange;
/* Builds the kernel and its range function, and the kernel's call (args)
 * at the builder's position; false when body fails. */
bool llvm_ranged_kernel(LlvmK *k, const char *name, LLVMTypeRef *params,
                        LLVMValueRef *args, int np, const char *const *names,
                        const LlvmRange *r);
/* llvm_builders.c: a kernel of F for op, to be built (fn and sym unset). */
LlvmK llvm_kernel(LlvmFn *F, const Op *op, Diag *d);
/* A kernel's first parameters and its call's arguments: the symbols F's
 * run function takes, in order (i64). Returns their count. */
int llvm_symbol_params(LlvmFn *F, LLVMTypeRef *params, LLVMValueRef *args);
/* Emits op's kernel (a function of its own, named after its model-file
 * line) and its call in F's run function at the builder's position.
 * Reports ops the LLVM backend does not compile yet. */
bool llvm_emit_kernel(LlvmFn *F, const Op *op, Diag *d);

/* ---- llvm_glue.c ----------------------------------------------------------
 */
/* The tables of mc_model.c (McModelDesc, the weights, symbols, prepared
 * weights) and <n>_open / <n>_close. */
bool llvm_emit_model_tables(LlvmEmit *L);
/* An entry's McRunFn, McEntry, McModelInfo and its open/run functions. */
LLVMValueRef llvm_emit_entry_tables(LlvmFn *F);
/* <n>_prepare_v's declaration (the prepare function's McRunFn). */
LLVMTypeRef llvm_run_fn_type(LlvmEmit *L);

#endif
