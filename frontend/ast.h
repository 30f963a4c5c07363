/* The abstract syntax tree of a model file.
 *
 * One node type with a kind and a children array; the layout of children for
 * each kind is stated below and built only by the ast_* constructors that the
 * grammar actions call. Every node carries the span of source it came from.
 * Nodes live in the parse's arena.
 */
#ifndef MC_AST_H
#define MC_AST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../ir/arena.h"
#include "../ir/diag.h"

typedef enum AstKind {
  /* expressions */
  AST_INT,     /* ival */
  AST_FLOAT,   /* fval; text keeps the literal as written */
  AST_BOOL,    /* ival 0/1 */
  AST_STRING,  /* text: contents without quotes, escapes resolved */
  AST_NAME,    /* text */
  AST_NONE,    /* `None` (new axis in an index) */
  AST_ELLIPSIS,/* `...` in an index */
  AST_UNARY,   /* op; kids[0] */
  AST_BINARY,  /* op; kids[0] op kids[1] */
  AST_CALL,    /* kids[0] callee (AST_NAME), kids[1..] args (AST_KWARG for
                  name=value) */
  AST_KWARG,   /* text = name; kids[0] value */
  AST_INDEX,   /* kids[0] base; kids[1..] index items */
  AST_SLICE,   /* index item lo:hi:step; kids[0..2] each may be NULL */
  AST_ATTR,    /* kids[0].text   (x.T, x.shape) */
  AST_LIST,    /* [kids...] */
  AST_TUPLE,   /* a, b  (multiple return values / assignment targets) */
  AST_TYPE,    /* text = dtype name; kids = dimension expressions; a scalar
                  type has no kids and ival 0, a tensor type ival 1 */

  /* statements */
  AST_CONST,   /* const text = kids[0] */
  AST_INPUT,   /* input text: kids[0] (AST_TYPE) [= kids[1] default] */
  AST_OUTPUT,  /* output text[: kids[1] type] = kids[0]; kids[1] may be NULL */
  AST_PARAM,   /* param text: kids[0] (AST_TYPE) [from kids[1] (AST_STRING)];
                  without `from` the weight name is text */
  AST_ASSIGN,  /* kids[0] target (AST_NAME or AST_TUPLE of names) = kids[1] */
  AST_EXPR,    /* expression statement: kids[0] */
  AST_FOR,     /* for text in range(kids[0] [, kids[1]]) kids[2] (AST_BLOCK);
                  with one bound kids[1] is NULL and the range is 0..kids[0] */
  AST_IF,      /* if kids[0] kids[1] (AST_BLOCK) [else kids[2]] */
  AST_RETURN,  /* return kids[0] (expression or AST_TUPLE) */
  AST_BLOCK,   /* { kids... } */
  AST_FN,      /* fn text(kids[0] = AST_PARAMS) kids[1]: AST_BLOCK, or an
                  expression for `fn f(x) = expr` */
  AST_PARAMS,  /* kids: AST_NAME, or AST_KWARG for a parameter with default */
  AST_MODULE,  /* kids: top-level statements */
  AST_COUNT
} AstKind;

/* Operators of AST_UNARY / AST_BINARY */
typedef enum AstOp {
  AOP_ADD, AOP_SUB, AOP_MUL, AOP_DIV, AOP_MOD, AOP_POW, AOP_MATMUL,
  AOP_EQ, AOP_NE, AOP_LT, AOP_LE, AOP_GT, AOP_GE,
  AOP_AND, AOP_OR, AOP_NOT, AOP_NEG, AOP_POS,
  AOP_COUNT
} AstOp;

typedef struct AstNode AstNode;
struct AstNode {
  AstKind kind;
  Loc loc;
  AstOp op;
  const char *text;
  int64_t ival;
  double fval;
  int nkids;
  AstNode **kids;
};

typedef struct AstModule {
  Arena arena;
  const char *path;
  char *source;   /* NUL-terminated file contents (owned) */
  AstNode *root;  /* AST_MODULE */
} AstModule;

/* Reads and parses a model file. Errors go to d (registered source, so they
 * quote the line); returns NULL if there were any. */
AstModule *ast_parse_file(const char *path, Diag *d);
/* Parses text held in memory (tests); `path` is used in messages. */
AstModule *ast_parse_string(const char *text, const char *path, Diag *d);
void ast_free(AstModule *m);

/* Constructors used by the grammar actions. */
AstNode *ast_new(AstModule *m, AstKind kind, Loc loc);
AstNode *ast_add_kid(AstModule *m, AstNode *parent, AstNode *kid);
const char *ast_kind_name(AstKind k);
const char *ast_op_text(AstOp op);
/* Prints the tree as S-expressions, for parser tests:
 * (module (const n 12) (assign x (binary + (name a) (int 1)))) */
void ast_dump(FILE *out, const AstNode *n);

#endif
