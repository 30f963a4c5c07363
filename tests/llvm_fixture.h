/* What the LLVM tests (test_llvm.c, test_llvm_vmath.c) share: a Diag that
 * collects messages, a temporary directory, an LLVM context for modules
 * that are not JIT'd, and readers of what LLVM wrote. Each test file calls
 * llvm_fixture_setup("its name") and llvm_fixture_teardown() from its
 * suite's init and fini. */
#ifndef MC_TEST_LLVM_FIXTURE_H
#define MC_TEST_LLVM_FIXTURE_H

#include <criterion/criterion.h>
#include <elf.h>
#include <llvm-c/Core.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"

static Diag d;
static char *dbuf;
static size_t dlen;
static FILE *dout;
static char dir[256];
static LLVMContextRef ctx; /* for modules that are not JIT'd */

static inline void llvm_fixture_setup(const char *name) {
  dout = open_memstream(&dbuf, &dlen);
  diag_init(&d, dout);
  snprintf(dir, sizeof dir, "/tmp/%s-XXXXXX", name);
  cr_assert(mkdtemp(dir));
  ctx = LLVMContextCreate();
}

static inline void llvm_fixture_teardown(void) {
  LLVMContextDispose(ctx);
  diag_free(&d);
  fclose(dout);
  free(dbuf);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", dir);
}

static inline const char *diag_text(void) {
  fflush(dout);
  return dbuf ? dbuf : "";
}

#define assert_diag(text)                                                      \
  cr_assert(strstr(diag_text(), text), "expected '%s' in:\n%s", text,          \
            diag_text())

/* The e_machine of a 64-bit little-endian ELF file of type `type`. */
static inline int elf_machine_of(const char *path, int type) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "no %s", path);
  Elf64_Ehdr h;
  cr_assert_eq(fread(&h, sizeof h, 1, f), 1);
  fclose(f);
  cr_assert_eq(memcmp(h.e_ident, ELFMAG, SELFMAG), 0);
  cr_assert_eq(h.e_ident[EI_CLASS], ELFCLASS64);
  cr_assert_eq(h.e_ident[EI_DATA], ELFDATA2LSB);
  if (type >= 0)
    cr_assert_eq(h.e_type, type);
  return h.e_machine;
}

/* The machine of an object file (ET_REL). */
static inline int elf_machine(const char *path) {
  return elf_machine_of(path, ET_REL);
}

/* m as text, malloc'd. */
static inline char *module_text(LLVMModuleRef m) {
  char *text = LLVMPrintModuleToString(m);
  char *copy = strdup(text);
  LLVMDisposeMessage(text);
  return copy;
}

#endif
