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
  AST_INT,      /* ival */
  AST_FLOAT,    /* fval; text keeps the literal as written */
  AST_BOOL,     /* ival 0/1 */
  AST_STRING,   /* text: contents without quotes, escapes resolved */
  AST_NAME,     /* text */
  AST_NONE,     /* `None` (new axis in an index) */
  AST_ELLIPSIS, /* `...` in an index */
  AST_UNARY,    /* op; kids[0] */
  AST_BINARY,   /* op; kids[0] op kids[1] */
  AST_CALL,     /* kids[0] callee (AST_NAME), kids[1..] args (AST_KWARG for
                   name=value) */
  AST_KWARG,    /* text = name; kids[0] value */
  AST_INDEX,    /* kids[0] base; kids[1..] index items */
  AST_SLICE,    /* index item lo:hi:step; kids[0..2] each may be NULL */
  AST_ATTR,     /* kids[0].text   (x.T, x.shape) */
  AST_LIST,     /* [kids...] */
  AST_TUPLE,    /* a, b  (multiple return values / assignment targets) */
  AST_TYPE,     /* text = dtype name; kids = dimension expressions; a scalar
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
  AST_ENTRY,   /* entry text kids[0] (AST_BLOCK): an entry point whose block
                  declares its inputs and outputs */
  AST_INCLUDE, /* include "text": another model file's statements, here */
  AST_MODULE,  /* kids: top-level statements */
  AST_COUNT
} AstKind;

/* Operators of AST_UNARY / AST_BINARY */
typedef enum AstOp {
  AOP_ADD,
  AOP_SUB,
  AOP_MUL,
  AOP_DIV,
  AOP_MOD,
  AOP_POW,
  AOP_MATMUL,
  AOP_EQ,
  AOP_NE,
  AOP_LT,
  AOP_LE,
  AOP_GT,
  AOP_GE,
  AOP_AND,
  AOP_OR,
  AOP_NOT,
  AOP_NEG,
  AOP_POS,
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
  int height; /* 1 + the largest height of its kids (0 for a leaf) */
};

typedef struct AstModule {
  Arena arena;
  const char *path;
  char *source;  /* NUL-terminated file contents (owned) */
  AstNode *root; /* AST_MODULE */
  /* The first node built higher than AST_MAX_DEPTH, and where (its
   * operator for a unary or binary node): parse_module reports it. */
  const AstNode *too_deep;
  Loc too_deep_at;
} AstModule;

/* Expressions and statements nested deeper than this are refused ("limit
 * exceeded"): lowering, which recurses on the tree, stays within the C stack.
 * The parser's stack bounds brackets and blocks; this also bounds long
 * chains of left-associative operators (x + x + ... + x). */
#define AST_MAX_DEPTH 1000

/* Model files larger than this are refused ("limit exceeded"). */
#define AST_MAX_FILE_BYTES (64 << 20)

/* Reads and parses a model file (reading stops at a NUL byte or past
 * AST_MAX_FILE_BYTES, so devices and endless pipes fail). Errors go to d
 * (registered source, so they quote the line); returns NULL if there were any.
 * `path` is not copied: it is the file of every Loc, so it must outlive them
 * (argv strings do). The source stays registered in d: free the module after
 * the last message that quotes it. */
AstModule *ast_parse_file(const char *path, Diag *d);
/* Parses text held in memory (tests); `path` is used in messages. */
AstModule *ast_parse_string(const char *text, const char *path, Diag *d);
void ast_free(AstModule *m);

/* Constructors used by the grammar actions.
 * A node's kids array always has room for at least 4 entries and unused
 * entries are NULL, so an optional trailing kid (the default of an input,
 * the `from` of a param, the else of an if) reads as NULL when absent even
 * though nkids does not count it. Positional kids that may be missing (the
 * type of an output, the bounds of a slice, kids[1] of a for) are counted
 * in nkids and NULL. An `else if` is kept as an else block holding the
 * inner if statement, so kids[2] of an AST_IF is always an AST_BLOCK. */
AstNode *ast_new(AstModule *m, AstKind kind, Loc loc);
/* Appends kid (may be NULL) and returns parent. */
AstNode *ast_add_kid(AstModule *m, AstNode *parent, AstNode *kid);
/* A leaf (INT, FLOAT, BOOL, STRING, NAME, NONE, ELLIPSIS); text is copied
 * into the arena when not NULL. */
AstNode *ast_new_leaf(AstModule *m, AstKind kind, Loc loc, const char *text,
                      int64_t ival, double fval);
/* A node with text (copied, may be NULL) and nkids kids given as AstNode *
 * arguments (each may be NULL). */
AstNode *ast_new_node(AstModule *m, AstKind kind, Loc loc, const char *text,
                      int nkids, ...);
/* A node whose kids are `first` (when not NULL) followed by the kids of
 * `list` (a node used to collect them while parsing, may be NULL). */
AstNode *ast_new_from_list(AstModule *m, AstKind kind, Loc loc,
                           const char *text, AstNode *first,
                           const AstNode *list);
/* Loc of an operator node: the span of both operands when they are on one
 * line, otherwise the operator token. */
AstNode *ast_new_unary(AstModule *m, AstOp op, Loc op_loc, AstNode *x);
AstNode *ast_new_binary(AstModule *m, AstOp op, Loc op_loc, AstNode *a,
                        AstNode *b);
/* dims NULL: scalar type (ival 0); otherwise a tensor type (ival 1) whose
 * dimensions are the kids of dims. */
AstNode *ast_new_type(AstModule *m, Loc loc, const char *dtype,
                      const AstNode *dims);
/* Sets n->loc and returns n (the span of a parenthesized expression). */
AstNode *ast_set_loc(AstNode *n, Loc loc);
/* The span from the start of `first` to the end of `last` when both are on
 * one line of one file; otherwise `first`. */
Loc ast_loc_join(Loc first, Loc last);

const char *ast_kind_name(AstKind k);
const char *ast_op_text(AstOp op);
/* Prints the tree as S-expressions, for parser tests: one statement per line
 * (indented two spaces per nesting level), everything else inline, missing
 * kids as `_`, a newline at the end:
 *   (module
 *     (const n (int 12))
 *     (assign (name x) (binary + (name a) (int 1))))
 * Leaves: (int 12) (float 1e-5) (bool true) (string "a\"b") (name x) (none)
 * (ellipsis); (unary - x); (binary @ a b); (call (name f) args...);
 * (kwarg axis x); (index base items...); (slice lo hi step); (attr T x);
 * (list ...); (tuple ...); (type f32) and (type f32 [dims...]);
 * (input x type [default]); (output y expr type); (param w type [from]);
 * (for i lo hi block); (if cond block [else]); (fn f (params ...) body). */
void ast_dump(FILE *out, const AstNode *n);

#endif
