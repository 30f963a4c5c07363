/* AST construction, parsing entry points and the S-expression dump.
 *
 * Invariants: every node and string of a parse lives in the AstModule's
 * arena (the source text too), so ast_free releases everything at once; the
 * path is the caller's, so Locs stay valid after ast_free. A kids array is
 * allocated with room for at least 4 entries and grows by doubling; unused
 * entries are zero (see ast.h).
 */
#include "ast.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "lexer.h"
#include "read_file.h"

/* ---- parsing entry points ----------------------------------------------- */

static AstModule *ast_module_new(const char *path) {
  AstModule *m = calloc(1, sizeof *m);
  if (!m) {
    fprintf(stderr, "modelc: out of memory\n");
    abort();
  }
  arena_init(&m->arena);
  m->path = path; /* not copied: Locs outlive the AST in the IR */
  return m;
}

static AstModule *ast_parse_module(AstModule *m, Diag *d) {
  diag_add_source(d, m->path, m->source);
  if (!parse_module(m, d)) {
    ast_free(m);
    return NULL;
  }
  return m;
}

AstModule *ast_parse_string(const char *text, const char *path, Diag *d) {
  AstModule *m = ast_module_new(path);
  m->source = arena_strdup(&m->arena, text);
  return ast_parse_module(m, d);
}

AstModule *ast_parse_file(const char *path, Diag *d) {
  Loc loc = {path, 0, 0, 0, NULL};
  FILE *f = fopen(path, "rb");
  if (!f) {
    diag_error(d, loc, "cannot open: %s", strerror(errno));
    return NULL;
  }
  /* Reads at most a byte past the size limit, so a device or an endless
   * pipe (include "/dev/zero") ends with an error, not a hang. */
  size_t len;
  char *buf = read_stream(f, AST_MAX_FILE_BYTES, &len);
  int read_errno = errno;
  fclose(f);
  bool has_nul = buf && memchr(buf, 0, len) != NULL;
  bool too_big = buf && len > AST_MAX_FILE_BYTES;
  if (!buf || has_nul || too_big) {
    if (!buf)
      diag_error(d, loc, "cannot read: %s", strerror(read_errno));
    else if (has_nul) /* the lexer works on a NUL-terminated buffer */
      diag_error(d, loc, "the file contains a NUL byte");
    else
      diag_error(d, loc, "limit exceeded: the file is larger than %d MiB",
                 AST_MAX_FILE_BYTES >> 20);
    free(buf);
    return NULL;
  }
  AstModule *m = ast_module_new(path);
  m->source = arena_strndup(&m->arena, buf, len);
  free(buf);
  return ast_parse_module(m, d);
}

void ast_free(AstModule *m) {
  if (!m)
    return;
  arena_free(&m->arena);
  free(m);
}

/* ---- constructors ------------------------------------------------------- */

AstNode *ast_new(AstModule *m, AstKind kind, Loc loc) {
  AstNode *n = arena_alloc(&m->arena, sizeof *n);
  n->kind = kind;
  n->loc = loc;
  return n;
}

AstNode *ast_add_kid(AstModule *m, AstNode *parent, AstNode *kid) {
  int n = parent->nkids;
  /* Capacity is implied by the count: 4, then powers of two. */
  if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
    size_t old = (size_t)n * sizeof(AstNode *);
    size_t cap = n == 0 ? 4 : 2 * (size_t)n;
    parent->kids =
        arena_grow(&m->arena, parent->kids, old, cap * sizeof(AstNode *));
  }
  parent->kids[parent->nkids++] = kid;
  if (kid && kid->height >= parent->height) {
    parent->height = kid->height + 1;
    if (parent->height > AST_MAX_DEPTH && !m->too_deep) {
      m->too_deep = parent;
      m->too_deep_at = parent->loc;
    }
  }
  return parent;
}

AstNode *ast_new_leaf(AstModule *m, AstKind kind, Loc loc, const char *text,
                      int64_t ival, double fval) {
  AstNode *n = ast_new(m, kind, loc);
  n->text = text ? arena_strdup(&m->arena, text) : NULL;
  n->ival = ival;
  n->fval = fval;
  return n;
}

AstNode *ast_new_node(AstModule *m, AstKind kind, Loc loc, const char *text,
                      int nkids, ...) {
  AstNode *n = ast_new(m, kind, loc);
  n->text = text ? arena_strdup(&m->arena, text) : NULL;
  va_list ap;
  va_start(ap, nkids);
  for (int i = 0; i < nkids; i++)
    ast_add_kid(m, n, va_arg(ap, AstNode *));
  va_end(ap);
  return n;
}

AstNode *ast_new_from_list(AstModule *m, AstKind kind, Loc loc,
                           const char *text, AstNode *first,
                           const AstNode *list) {
  AstNode *n = ast_new(m, kind, loc);
  n->text = text ? arena_strdup(&m->arena, text) : NULL;
  if (first)
    ast_add_kid(m, n, first);
  for (int i = 0; list && i < list->nkids; i++)
    ast_add_kid(m, n, list->kids[i]);
  return n;
}

static bool ast_same_line(Loc a, Loc b) {
  return a.file && b.file && a.line == b.line &&
         (a.file == b.file || strcmp(a.file, b.file) == 0);
}

Loc ast_loc_join(Loc first, Loc last) {
  int end = last.col + (last.len > 0 ? last.len : 1);
  if (!ast_same_line(first, last) || end <= first.col)
    return first;
  first.len = end - first.col;
  return first;
}

AstNode *ast_new_unary(AstModule *m, AstOp op, Loc op_loc, AstNode *x) {
  AstNode *n =
      ast_new_node(m, AST_UNARY, ast_loc_join(op_loc, x->loc), NULL, 1, x);
  n->op = op;
  if (m->too_deep == n)
    m->too_deep_at = op_loc;
  return n;
}

AstNode *ast_new_binary(AstModule *m, AstOp op, Loc op_loc, AstNode *a,
                        AstNode *b) {
  Loc loc =
      ast_same_line(a->loc, b->loc) ? ast_loc_join(a->loc, b->loc) : op_loc;
  AstNode *n = ast_new_node(m, AST_BINARY, loc, NULL, 2, a, b);
  n->op = op;
  if (m->too_deep == n)
    m->too_deep_at = op_loc;
  return n;
}

AstNode *ast_new_type(AstModule *m, Loc loc, const char *dtype,
                      const AstNode *dims) {
  AstNode *n = ast_new_from_list(m, AST_TYPE, loc, dtype, NULL, dims);
  n->ival = dims != NULL;
  return n;
}

AstNode *ast_set_loc(AstNode *n, Loc loc) {
  n->loc = loc;
  return n;
}

/* ---- names -------------------------------------------------------------- */

const char *ast_kind_name(AstKind k) {
  switch (k) {
  case AST_INT:
    return "int";
  case AST_FLOAT:
    return "float";
  case AST_BOOL:
    return "bool";
  case AST_STRING:
    return "string";
  case AST_NAME:
    return "name";
  case AST_NONE:
    return "none";
  case AST_ELLIPSIS:
    return "ellipsis";
  case AST_UNARY:
    return "unary";
  case AST_BINARY:
    return "binary";
  case AST_CALL:
    return "call";
  case AST_KWARG:
    return "kwarg";
  case AST_INDEX:
    return "index";
  case AST_SLICE:
    return "slice";
  case AST_ATTR:
    return "attr";
  case AST_LIST:
    return "list";
  case AST_TUPLE:
    return "tuple";
  case AST_TYPE:
    return "type";
  case AST_CONST:
    return "const";
  case AST_INPUT:
    return "input";
  case AST_OUTPUT:
    return "output";
  case AST_PARAM:
    return "param";
  case AST_ASSIGN:
    return "assign";
  case AST_EXPR:
    return "expr";
  case AST_FOR:
    return "for";
  case AST_IF:
    return "if";
  case AST_RETURN:
    return "return";
  case AST_BLOCK:
    return "block";
  case AST_FN:
    return "fn";
  case AST_PARAMS:
    return "params";
  case AST_ENTRY:
    return "entry";
  case AST_INCLUDE:
    return "include";
  case AST_MODULE:
    return "module";
  case AST_COUNT:
    break;
  }
  return "?";
}

const char *ast_op_text(AstOp op) {
  switch (op) {
  case AOP_ADD:
    return "+";
  case AOP_SUB:
    return "-";
  case AOP_MUL:
    return "*";
  case AOP_DIV:
    return "/";
  case AOP_MOD:
    return "%";
  case AOP_POW:
    return "^";
  case AOP_MATMUL:
    return "@";
  case AOP_EQ:
    return "==";
  case AOP_NE:
    return "!=";
  case AOP_LT:
    return "<";
  case AOP_LE:
    return "<=";
  case AOP_GT:
    return ">";
  case AOP_GE:
    return ">=";
  case AOP_AND:
    return "and";
  case AOP_OR:
    return "or";
  case AOP_NOT:
    return "not";
  case AOP_NEG:
    return "-";
  case AOP_POS:
    return "+";
  case AOP_COUNT:
    break;
  }
  return "?";
}

/* ---- dump --------------------------------------------------------------- */

static void ast_dump_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; s && *s; s++) {
    if (*s == '"' || *s == '\\')
      fputc('\\', out);
    fputc(*s, out);
  }
  fputc('"', out);
}

/* `indent` is the indentation of the statement that contains n. */
static void ast_dump_node(FILE *out, const AstNode *n, int indent) {
  if (!n) {
    fputs("_", out);
    return;
  }
  fprintf(out, "(%s", ast_kind_name(n->kind));
  bool stmt_list = false;
  switch (n->kind) {
  case AST_INT:
    fprintf(out, " %lld", (long long)n->ival);
    break;
  case AST_FLOAT:
    if (n->text)
      fprintf(out, " %s", n->text);
    else
      fprintf(out, " %.17g", n->fval);
    break;
  case AST_BOOL:
    fputs(n->ival ? " true" : " false", out);
    break;
  case AST_STRING:
    fputc(' ', out);
    ast_dump_string(out, n->text);
    break;
  case AST_UNARY:
  case AST_BINARY:
    fprintf(out, " %s", ast_op_text(n->op));
    break;
  case AST_TYPE:
    fprintf(out, " %s", n->text ? n->text : "?");
    if (n->ival) {
      fputs(" [", out);
      for (int i = 0; i < n->nkids; i++) {
        if (i)
          fputc(' ', out);
        ast_dump_node(out, n->kids[i], indent);
      }
      fputc(']', out);
    }
    fputc(')', out);
    return;
  case AST_BLOCK:
  case AST_MODULE:
    stmt_list = true;
    break;
  case AST_NAME:
  case AST_NONE:
  case AST_ELLIPSIS:
  case AST_CALL:
  case AST_KWARG:
  case AST_INDEX:
  case AST_SLICE:
  case AST_ATTR:
  case AST_LIST:
  case AST_TUPLE:
  case AST_CONST:
  case AST_INPUT:
  case AST_OUTPUT:
  case AST_PARAM:
  case AST_ASSIGN:
  case AST_EXPR:
  case AST_FOR:
  case AST_IF:
  case AST_RETURN:
  case AST_FN:
  case AST_PARAMS:
  case AST_ENTRY:
  case AST_INCLUDE:
  case AST_COUNT:
    if (n->text)
      fprintf(out, " %s", n->text);
    break;
  }
  for (int i = 0; i < n->nkids; i++) {
    if (stmt_list) {
      fprintf(out, "\n%*s", indent + 2, "");
      ast_dump_node(out, n->kids[i], indent + 2);
    } else {
      fputc(' ', out);
      ast_dump_node(out, n->kids[i], indent);
    }
  }
  fputc(')', out);
}

void ast_dump(FILE *out, const AstNode *n) {
  ast_dump_node(out, n, 0);
  fputc('\n', out);
}
