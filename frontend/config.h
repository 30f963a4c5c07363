/* Build options of `modelc compile`, from the command line and from a YAML
 * --config file (config.c), and the YAML interface description of
 * `modelc inspect` (inspect.c). Both use libyaml. */
#ifndef MC_CONFIG_H
#define MC_CONFIG_H

#include <stdio.h>

#include "../ir/ir.h"
#include "lower.h"

typedef enum EmitKind {
  EMIT_EXE,
  EMIT_C,
  EMIT_IR,
  EMIT_LLVM, /* textual LLVM IR (.ll) */
  EMIT_OBJ,  /* an object file, through LLVM */
  EMIT_COUNT
} EmitKind;

typedef struct BuildOptions {
  const char *model;   /* model file */
  const char *weights; /* --weights, or NULL */
  const char *output;  /* -o */
  const char *entry;   /* --entry: compile only this entry point */
  EmitKind emit;
  int opt_level;
  DType weight_dtype; /* --weight-dtype: DT_F32, DT_F16 or DT_BF16 */
  const char *cpu;    /* --cpu: NULL (native), "generic" or a -march value */
  int llvm;           /* --backend llvm (--emit llvm and obj imply it) */
  const char *target, *features; /* --target TRIPLE, --features +a,-b */
  const char *prepare_weights;   /* --prepare-weights OUT: see modelc --help */
  int check_plan;                /* --check-plan: see CgOptions.check_plan */
  int ndefines, cap_defines;
  LowerDefine *defines;
  /* strings copied from a config file, freed by options_free */
  int nowned, cap_owned;
  char **owned;
  /* which options the command line set (they win over the config file) */
  unsigned char set_weights, set_output, set_emit, set_opt, set_entry,
      set_weight_dtype, set_cpu, set_backend;
} BuildOptions;

/* Adds or replaces -D name=value. from_cli: replaces a config value, and a
 * config value never replaces a command-line one. */
void options_define(BuildOptions *o, const char *name, const char *value,
                    Loc loc, int from_cli);
/* Keeps a copy of s until options_free. */
const char *options_own(BuildOptions *o, const char *s);
void options_free(BuildOptions *o);
/* "f32", "f16" or "bf16" into *t; -1 for anything else. */
int options_parse_weight_dtype(const char *s, DType *t);
/* Whether s can name a CPU for --cpu: letters, digits, '-', '_' and '.',
 * 1 to 64 of them. */
bool options_valid_cpu(const char *s);
/* Parses "c", "ir", "exe". */
int options_parse_emit(const char *s, EmitKind *out);

/* Reads a YAML config: a mapping with keys D (or defines: a mapping of
 * constant names to numbers), weights, emit, O (0..2), o (or output),
 * entry. Values
 * already given on the command line are kept. Unknown keys and wrong types
 * are located errors. Returns 0 on success. */
int config_read(const char *path, BuildOptions *o, Diag *d);

/* Writes the model's interface as YAML. Returns 0 on success. */
int inspect_write(FILE *out, const Module *m);

#endif
