/* The C backend: turns a Module into readable, standalone C11 plus the
 * runtime it links (see "Generated code contract" in ARCHITECTURE.md).
 *
 *   c_emit.c     the model's header and source: names, symbols, workspace
 *                layout, typed run functions
 *   c_api.c      the header, and the tables the runtime's model glue reads
 *   c_kernels.c  one static C function per op (loops, runtime kernels)
 *   c_views.c    matmul operands read through strides instead of copies
 *   c_weights.c  how each weight is kept (transposed, 16 bits)
 *   c_build.c    writing files atomically and invoking the C compiler
 *
 * Invariants of the emitted code: deterministic (same Module, same bytes),
 * warning-free under -Wall -Wextra with gcc and clang, IEEE-exact: every IR
 * op becomes exactly one C operation in program order, float constants are
 * written as hex floats, nothing is folded or reassociated.
 */
#ifndef MC_CG_H
#define MC_CG_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "ir.h"

typedef struct CgOptions {
  int opt_level;               /* modelc -O0..2 */
  const char *default_weights; /* compiled-in weights path, or NULL */
  const char *cc;              /* NULL: $CC, else "cc" */
  const char *extra_cflags;    /* NULL: $MC_CFLAGS */
  /* DT_F16 / DT_BF16: matrices the model only multiplies by (as the right
   * operand) or gathers rows from are kept in 16 bits (c_weights.c) */
  DType weight_dtype;
  /* --emit exe: the CPU the program is built for, as the C compiler's
   * -march (NULL or "native": this machine's; "generic": the compiler's
   * default target, for a program that runs on any CPU of its kind). The
   * runtime's GEMM picks its kernels at run time either way. */
  const char *cpu;
  /* --check-plan: the program checks its memory plan at each call (no two
   * buffers live at once overlap; abort if they do) and fills the arena's
   * intermediates with 0xff bytes first, so a buffer read before it is
   * written reads NaNs (the C backend's code: MC_CHECK_PLAN defined) */
  bool check_plan;
} CgOptions;

/* Writes OUTDIR/<m->name>.h, OUTDIR/<m->name>.c, OUTDIR/<m->name>_main.c
 * (main() calling mc_main; leave it out to link the model into another
 * program) and the runtime sources (mc_runtime.h, mc_runtime.c, mc_main.c,
 * ...) from the copies embedded in modelc, creating OUTDIR if needed. Each
 * file is written to a temporary name and renamed. `o` may be NULL. Returns
 * false after reporting into d. */
bool cg_emit_c(const Module *m, const char *outdir, const CgOptions *o,
               Diag *d);

/* Emits into a fresh temporary directory (see cg_emit_c) and builds there
 * with `cc -std=c11 -ffp-contract=off -fno-fast-math -fno-trapping-math
 * -pthread -ffunction-sections -fdata-sections <extra>`: the runtime's
 * files to objects at -O2 (taken
 * from the runtime object cache, codegen/c_cache.c, when it holds them for
 * this exact command, compiler and runtime text), then the model's files
 * at -O3 and -march=<cpu> (none for cpu "generic") linked with them
 * (--gc-sections, -lm) into out_path.tmp (-O0 throughout when opt_level is 0),
 * renamed to out_path. The tokenizer's files are left out (no generated program
 * calls them). On failure reports the command and the compiler's output. The
 * temporary directory is removed in every case. */
bool cg_build_exe(const Module *m, const char *out_path, const CgOptions *o,
                  Diag *d);

/* Writes len bytes to path via "path.tmp.<pid>" and rename, so path is
 * either the whole new file or untouched; on failure the temporary file is
 * removed and the error reported into d (c_build.c; the LLVM backend writes
 * its .ll and .o files with it too). */
bool cg_write_file(const char *path, const char *text, size_t len, Diag *d);

/* The build of cg_build_exe with the model's files written by emit into
 * the temporary directory: C files (cg_emit_c), or an object file next to
 * the runtime's sources (the LLVM backend), which the link takes. */
bool cg_build_exe_with(const CgOptions *o, const char *out_path,
                       bool (*emit)(const char *dir, void *ctx, Diag *d),
                       void *ctx, Diag *d);

/* Files written all or none (--emit c's directory): cg_files_stage writes
 * each to "path.tmp.<pid>"; cg_files_commit renames them all into place
 * (only an OS failure between two renames could leave a subset, and it is
 * reported), or, after a failed stage, removes every temporary file. Both
 * report into d; cg_files_commit frees the set. */
typedef struct CgFiles {
  char **paths, **tmps;
  int n, cap;
  bool failed;
} CgFiles;
bool cg_files_stage(CgFiles *fs, const char *path, const char *text, size_t len,
                    Diag *d);
bool cg_files_commit(CgFiles *fs, Diag *d);

/* Writes the runtime's sources (mc_runtime.h, mc_*.c, ...) into dir, all or
 * none; cg_stage_runtime stages them into fs. */
bool cg_write_runtime(const char *dir, Diag *d);
bool cg_stage_runtime(CgFiles *fs, const char *dir, Diag *d);

/* The runtime sources, generated by codegen/embed.cmake; the table ends with
 * a {NULL, NULL, 0} row. */
typedef struct EmbeddedFile {
  const char *name;
  const char *text;
  size_t size;
} EmbeddedFile;

extern const EmbeddedFile mc_embedded_files[];

#endif
