/* The grammar of the model language (LANGUAGE.md), for lemon.
 *
 * Every action is one ast_* builder call (SQLite style); nodes live in the
 * module's arena, so no %destructor is needed. Lists being parsed (arguments,
 * index items, dimensions, parameters, statements) are collected in a
 * scratch AST_LIST or AST_BLOCK node and copied into their final node when
 * the closing token is seen, so every node's loc can span its whole text.
 *
 * Error recovery: `stmt ::= error.` lets the parser drop the tokens of a bad
 * statement up to the next NEWLINE, `;` or `}` and go on, so one run reports
 * one error per bad statement (capped by the Diag's max_errors). The driver
 * parse_module() is at the end of this file.
 */

%name parse_lemon
%token_prefix TK_
%token_type {Token}
%default_type {AstNode *}
%extra_argument {ParseState *ps}
%stack_size 1000
%start_symbol module

%include {
#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "lexer.h"

typedef struct ParseState {
  AstModule *m;
  Diag *diag;
  bool failed; /* the parse cannot go on (stack overflow) */
  Loc at;      /* the token being parsed */
  const Lexer *lx;
  int lex_error_line; /* line of the last lexing error, 0 if none */
} ParseState;

static void parse_syntax_error(ParseState *ps, void *parser, int major,
                               Token tok);
}

%syntax_error { parse_syntax_error(ps, yypParser, yymajor, TOKEN); }
%stack_overflow {
  diag_error(ps->diag, ps->at,
             "limit exceeded: brackets, calls or blocks nested too deeply");
  ps->failed = true;
}

/* Token codes: the order here is the order of the TK_* numbers. */
%token NEWLINE SEMI CONST INPUT OUTPUT PARAM FROM FN RETURN FOR IN RANGE IF
       ELSE TRUE FALSE NONE NAME INT FLOAT STRING LPAREN RPAREN LBRACKET
       RBRACKET LBRACE RBRACE COMMA COLON ASSIGN DOT ELLIPSIS ENTRY INCLUDE.

/* Precedence, lowest first (LANGUAGE.md). Unary minus binds looser than
 * power, so -x^2 is -(x^2); postfix operators bind tightest. */
%left OR.
%left AND.
%right NOT.
%nonassoc EQ NE LT LE GT GE.
%left PLUS MINUS.
%left STAR SLASH PERCENT AT.
%right UNARY.
%right CARET POW.
%left LPAREN LBRACKET DOT.

/* ---- module and statement lists ---------------------------------------- */

/* module ::= { stmt (NEWLINE | ';') | NEWLINE | ';' } */
module ::= stmts(L). {
  ps->m->root = ast_new_from_list(ps->m, AST_MODULE, ps->m->root->loc, NULL,
                                  NULL, L);
}

stmts(A) ::= . { A = ast_new(ps->m, AST_BLOCK, ps->m->root->loc); }
stmts(A) ::= stmts(L) NEWLINE. { A = L; }
stmts(A) ::= stmts(L) SEMI. { A = L; }
stmts(A) ::= stmts(L) stmt(S) NEWLINE. { A = ast_add_kid(ps->m, L, S); }
stmts(A) ::= stmts(L) stmt(S) SEMI. { A = ast_add_kid(ps->m, L, S); }

/* block ::= '{' stmts [stmt] '}'   (the last statement needs no end) */
block(A) ::= LBRACE(B) stmts(L) RBRACE(E). {
  A = ast_new_from_list(ps->m, AST_BLOCK, ast_loc_join(B.loc, E.loc), NULL,
                        NULL, L);
}
block(A) ::= LBRACE(B) stmts(L) stmt(S) RBRACE(E). {
  A = ast_new_from_list(ps->m, AST_BLOCK, ast_loc_join(B.loc, E.loc), NULL,
                        NULL, ast_add_kid(ps->m, L, S));
}

/* ---- statements -------------------------------------------------------- */

/* A bad statement: its tokens up to the statement's end are dropped. */
stmt(A) ::= error. { A = NULL; }

/* const NAME '=' expr */
stmt(A) ::= CONST(K) NAME(N) ASSIGN expr(E). {
  A = ast_new_node(ps->m, AST_CONST, ast_loc_join(K.loc, E->loc), N.text, 1,
                   E);
}
/* input NAME ':' type ['=' expr] */
stmt(A) ::= INPUT(K) NAME(N) COLON type(T). {
  A = ast_new_node(ps->m, AST_INPUT, ast_loc_join(K.loc, T->loc), N.text, 1,
                   T);
}
stmt(A) ::= INPUT(K) NAME(N) COLON type(T) ASSIGN expr(E). {
  A = ast_new_node(ps->m, AST_INPUT, ast_loc_join(K.loc, E->loc), N.text, 2,
                   T, E);
}
/* output NAME [':' type] '=' expr */
stmt(A) ::= OUTPUT(K) NAME(N) ASSIGN expr(E). {
  A = ast_new_node(ps->m, AST_OUTPUT, ast_loc_join(K.loc, E->loc), N.text, 2,
                   E, NULL);
}
stmt(A) ::= OUTPUT(K) NAME(N) COLON type(T) ASSIGN expr(E). {
  A = ast_new_node(ps->m, AST_OUTPUT, ast_loc_join(K.loc, E->loc), N.text, 2,
                   E, T);
}
/* param NAME ':' type [from STRING] */
stmt(A) ::= PARAM(K) NAME(N) COLON type(T). {
  A = ast_new_node(ps->m, AST_PARAM, ast_loc_join(K.loc, T->loc), N.text, 1,
                   T);
}
stmt(A) ::= PARAM(K) NAME(N) COLON type(T) FROM STRING(S). {
  A = ast_new_node(ps->m, AST_PARAM, ast_loc_join(K.loc, S.loc), N.text, 2, T,
                   ast_new_leaf(ps->m, AST_STRING, S.loc, S.text, 0, 0));
}
/* NAME '=' expr  |  targets '=' expr */
stmt(A) ::= NAME(N) ASSIGN expr(E). {
  A = ast_new_node(ps->m, AST_ASSIGN, ast_loc_join(N.loc, E->loc), NULL, 2,
                   ast_new_leaf(ps->m, AST_NAME, N.loc, N.text, 0, 0), E);
}
stmt(A) ::= targets(T) ASSIGN expr(E). {
  A = ast_new_node(ps->m, AST_ASSIGN, ast_loc_join(T->loc, E->loc), NULL, 2,
                   T, E);
}
/* expr */
stmt(A) ::= expr(E). { A = ast_new_node(ps->m, AST_EXPR, E->loc, NULL, 1, E); }
/* for NAME in range '(' expr [',' expr] ')' block */
stmt(A) ::= FOR(K) NAME(N) IN RANGE LPAREN expr(H) RPAREN block(B). {
  A = ast_new_node(ps->m, AST_FOR, ast_loc_join(K.loc, B->loc), N.text, 3, H,
                   NULL, B);
}
stmt(A) ::= FOR(K) NAME(N) IN RANGE LPAREN expr(L) COMMA expr(H) RPAREN
            block(B). {
  A = ast_new_node(ps->m, AST_FOR, ast_loc_join(K.loc, B->loc), N.text, 3, L,
                   H, B);
}
stmt(A) ::= ifstmt(I). { A = I; }
/* return expr {',' expr} */
stmt(A) ::= RETURN(K) expr(E). {
  A = ast_new_node(ps->m, AST_RETURN, ast_loc_join(K.loc, E->loc), NULL, 1, E);
}
stmt(A) ::= RETURN(K) tuple(T). {
  A = ast_new_node(ps->m, AST_RETURN, ast_loc_join(K.loc, T->loc), NULL, 1, T);
}
/* fn NAME '(' params ')' ('=' expr | block) */
stmt(A) ::= FN(K) NAME(N) LPAREN(P) params(L) RPAREN(R) ASSIGN expr(E). {
  A = ast_new_node(ps->m, AST_FN, ast_loc_join(K.loc, E->loc), N.text, 2,
                   ast_new_from_list(ps->m, AST_PARAMS,
                                     ast_loc_join(P.loc, R.loc), NULL, NULL,
                                     L),
                   E);
}
stmt(A) ::= FN(K) NAME(N) LPAREN(P) params(L) RPAREN(R) block(B). {
  A = ast_new_node(ps->m, AST_FN, ast_loc_join(K.loc, B->loc), N.text, 2,
                   ast_new_from_list(ps->m, AST_PARAMS,
                                     ast_loc_join(P.loc, R.loc), NULL, NULL,
                                     L),
                   B);
}

/* entry NAME block: an entry point (its inputs and outputs are inside) */
stmt(A) ::= ENTRY(K) NAME(N) block(B). {
  A = ast_new_node(ps->m, AST_ENTRY, ast_loc_join(K.loc, B->loc), N.text, 1,
                   B);
}

/* include "file.model": that file's statements, in place */
stmt(A) ::= INCLUDE(K) STRING(S). {
  A = ast_new_node(ps->m, AST_INCLUDE, ast_loc_join(K.loc, S.loc), S.text, 0);
}

/* ifstmt ::= 'if' expr block ['else' (block | ifstmt)] */
ifstmt(A) ::= IF(K) expr(C) block(B). {
  A = ast_new_node(ps->m, AST_IF, ast_loc_join(K.loc, B->loc), NULL, 2, C, B);
}
ifstmt(A) ::= IF(K) expr(C) block(B) ELSE block(E). {
  A = ast_new_node(ps->m, AST_IF, ast_loc_join(K.loc, E->loc), NULL, 3, C, B,
                   E);
}
ifstmt(A) ::= IF(K) expr(C) block(B) ELSE ifstmt(E). {
  A = ast_new_node(ps->m, AST_IF, ast_loc_join(K.loc, E->loc), NULL, 3, C, B,
                   ast_new_node(ps->m, AST_BLOCK, E->loc, NULL, 1, E));
}

/* targets ::= NAME ',' NAME {',' NAME}   (a single NAME is its own rule,
 * so that after a NAME the next token alone decides the statement kind) */
targets(A) ::= NAME(N) COMMA NAME(M). {
  A = ast_new_node(ps->m, AST_TUPLE, ast_loc_join(N.loc, M.loc), NULL, 2,
                   ast_new_leaf(ps->m, AST_NAME, N.loc, N.text, 0, 0),
                   ast_new_leaf(ps->m, AST_NAME, M.loc, M.text, 0, 0));
}
targets(A) ::= targets(L) COMMA NAME(M). {
  A = ast_set_loc(
      ast_add_kid(ps->m, L, ast_new_leaf(ps->m, AST_NAME, M.loc, M.text, 0, 0)),
      ast_loc_join(L->loc, M.loc));
}

/* tuple ::= expr ',' expr {',' expr}   (several return values) */
tuple(A) ::= expr(X) COMMA expr(Y). {
  A = ast_new_node(ps->m, AST_TUPLE, ast_loc_join(X->loc, Y->loc), NULL, 2, X,
                   Y);
}
tuple(A) ::= tuple(L) COMMA expr(Y). {
  A = ast_set_loc(ast_add_kid(ps->m, L, Y), ast_loc_join(L->loc, Y->loc));
}

/* params ::= [param {',' param} [',']]    param ::= NAME ['=' expr] */
params(A) ::= . { A = NULL; }
params(A) ::= paramlist(L). { A = L; }
params(A) ::= paramlist(L) COMMA. { A = L; }
paramlist(A) ::= fparam(P). {
  A = ast_new_node(ps->m, AST_LIST, P->loc, NULL, 1, P);
}
paramlist(A) ::= paramlist(L) COMMA fparam(P). { A = ast_add_kid(ps->m, L, P); }
fparam(A) ::= NAME(N). { A = ast_new_leaf(ps->m, AST_NAME, N.loc, N.text, 0, 0); }
fparam(A) ::= NAME(N) ASSIGN expr(E). {
  A = ast_new_node(ps->m, AST_KWARG, ast_loc_join(N.loc, E->loc), N.text, 1,
                   E);
}

/* type ::= NAME ['[' [expr {',' expr} [',']] ']'] */
type(A) ::= NAME(N). { A = ast_new_type(ps->m, N.loc, N.text, NULL); }
type(A) ::= NAME(N) LBRACKET RBRACKET(E). {
  A = ast_new_type(ps->m, ast_loc_join(N.loc, E.loc), N.text,
                   ast_new(ps->m, AST_LIST, E.loc));
}
type(A) ::= NAME(N) LBRACKET exprs(L) RBRACKET(E). {
  A = ast_new_type(ps->m, ast_loc_join(N.loc, E.loc), N.text, L);
}
type(A) ::= NAME(N) LBRACKET exprs(L) COMMA RBRACKET(E). {
  A = ast_new_type(ps->m, ast_loc_join(N.loc, E.loc), N.text, L);
}

/* ---- expressions ------------------------------------------------------- */

/* primary ::= INT | FLOAT | STRING | true | false | None | '...' | NAME */
expr(A) ::= INT(T). {
  A = ast_new_leaf(ps->m, AST_INT, T.loc, T.text, T.ival, 0);
}
expr(A) ::= FLOAT(T). {
  A = ast_new_leaf(ps->m, AST_FLOAT, T.loc, T.text, 0, T.fval);
}
expr(A) ::= STRING(T). {
  A = ast_new_leaf(ps->m, AST_STRING, T.loc, T.text, 0, 0);
}
expr(A) ::= TRUE(T). { A = ast_new_leaf(ps->m, AST_BOOL, T.loc, NULL, 1, 0); }
expr(A) ::= FALSE(T). { A = ast_new_leaf(ps->m, AST_BOOL, T.loc, NULL, 0, 0); }
expr(A) ::= NONE(T). { A = ast_new_leaf(ps->m, AST_NONE, T.loc, NULL, 0, 0); }
expr(A) ::= ELLIPSIS(T). {
  A = ast_new_leaf(ps->m, AST_ELLIPSIS, T.loc, NULL, 0, 0);
}
expr(A) ::= NAME(T). {
  A = ast_new_leaf(ps->m, AST_NAME, T.loc, T.text, 0, 0);
}
/* '(' expr ')' */
expr(A) ::= LPAREN(B) expr(E) RPAREN(F). {
  A = ast_set_loc(E, ast_loc_join(B.loc, F.loc));
}
/* '[' [expr {',' expr} [',']] ']' */
expr(A) ::= LBRACKET(B) RBRACKET(F). {
  A = ast_new(ps->m, AST_LIST, ast_loc_join(B.loc, F.loc));
}
expr(A) ::= LBRACKET(B) exprs(L) RBRACKET(F). {
  A = ast_new_from_list(ps->m, AST_LIST, ast_loc_join(B.loc, F.loc), NULL,
                        NULL, L);
}
expr(A) ::= LBRACKET(B) exprs(L) COMMA RBRACKET(F). {
  A = ast_new_from_list(ps->m, AST_LIST, ast_loc_join(B.loc, F.loc), NULL,
                        NULL, L);
}
/* call ::= NAME '(' [arg {',' arg} [',']] ')'    arg ::= [NAME '='] expr */
expr(A) ::= NAME(N) LPAREN args(L) RPAREN(F). {
  A = ast_new_from_list(ps->m, AST_CALL, ast_loc_join(N.loc, F.loc), NULL,
                        ast_new_leaf(ps->m, AST_NAME, N.loc, N.text, 0, 0), L);
}
/* index ::= expr '[' item {',' item} [','] ']' */
expr(A) ::= expr(X) LBRACKET items(L) RBRACKET(F). {
  A = ast_new_from_list(ps->m, AST_INDEX, ast_loc_join(X->loc, F.loc), NULL, X,
                        L);
}
/* attr ::= expr '.' NAME */
expr(A) ::= expr(X) DOT NAME(N). {
  A = ast_new_node(ps->m, AST_ATTR, ast_loc_join(X->loc, N.loc), N.text, 1, X);
}
/* unary ::= ('-' | '+') expr | 'not' expr */
expr(A) ::= MINUS(O) expr(X). [UNARY] {
  A = ast_new_unary(ps->m, AOP_NEG, O.loc, X);
}
expr(A) ::= PLUS(O) expr(X). [UNARY] {
  A = ast_new_unary(ps->m, AOP_POS, O.loc, X);
}
expr(A) ::= NOT(O) expr(X). { A = ast_new_unary(ps->m, AOP_NOT, O.loc, X); }
/* binary ::= expr op expr */
expr(A) ::= expr(X) OR(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_OR, O.loc, X, Y);
}
expr(A) ::= expr(X) AND(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_AND, O.loc, X, Y);
}
expr(A) ::= expr(X) EQ(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_EQ, O.loc, X, Y);
}
expr(A) ::= expr(X) NE(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_NE, O.loc, X, Y);
}
expr(A) ::= expr(X) LT(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_LT, O.loc, X, Y);
}
expr(A) ::= expr(X) LE(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_LE, O.loc, X, Y);
}
expr(A) ::= expr(X) GT(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_GT, O.loc, X, Y);
}
expr(A) ::= expr(X) GE(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_GE, O.loc, X, Y);
}
expr(A) ::= expr(X) PLUS(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_ADD, O.loc, X, Y);
}
expr(A) ::= expr(X) MINUS(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_SUB, O.loc, X, Y);
}
expr(A) ::= expr(X) STAR(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_MUL, O.loc, X, Y);
}
expr(A) ::= expr(X) SLASH(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_DIV, O.loc, X, Y);
}
expr(A) ::= expr(X) PERCENT(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_MOD, O.loc, X, Y);
}
expr(A) ::= expr(X) AT(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_MATMUL, O.loc, X, Y);
}
expr(A) ::= expr(X) CARET(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_POW, O.loc, X, Y);
}
expr(A) ::= expr(X) POW(O) expr(Y). {
  A = ast_new_binary(ps->m, AOP_POW, O.loc, X, Y);
}

/* exprs ::= expr {',' expr}   (collected in a scratch list) */
exprs(A) ::= expr(X). { A = ast_new_node(ps->m, AST_LIST, X->loc, NULL, 1, X); }
exprs(A) ::= exprs(L) COMMA expr(X). { A = ast_add_kid(ps->m, L, X); }

args(A) ::= . { A = NULL; }
args(A) ::= arglist(L). { A = L; }
args(A) ::= arglist(L) COMMA. { A = L; }
arglist(A) ::= arg(X). { A = ast_new_node(ps->m, AST_LIST, X->loc, NULL, 1, X); }
arglist(A) ::= arglist(L) COMMA arg(X). { A = ast_add_kid(ps->m, L, X); }
arg(A) ::= expr(X). { A = X; }
arg(A) ::= NAME(N) ASSIGN expr(X). {
  A = ast_new_node(ps->m, AST_KWARG, ast_loc_join(N.loc, X->loc), N.text, 1,
                   X);
}

/* item ::= expr | [expr] ':' [expr] [':' [expr]] */
items(A) ::= item(X). { A = ast_new_node(ps->m, AST_LIST, X->loc, NULL, 1, X); }
items(A) ::= items(L) COMMA item(X). { A = ast_add_kid(ps->m, L, X); }
items(A) ::= items(L) COMMA. { A = L; }
item(A) ::= expr(X). { A = X; }
item(A) ::= oexpr(L) COLON(C) oexpr(H). {
  A = ast_new_node(ps->m, AST_SLICE,
                   ast_loc_join(L ? L->loc : C.loc, H ? H->loc : C.loc), NULL,
                   3, L, H, NULL);
}
item(A) ::= oexpr(L) COLON(C) oexpr(H) COLON(D) oexpr(S). {
  A = ast_new_node(ps->m, AST_SLICE,
                   ast_loc_join(L ? L->loc : C.loc, S ? S->loc : D.loc), NULL,
                   3, L, H, S);
}
oexpr(A) ::= . { A = NULL; }
oexpr(A) ::= expr(X). { A = X; }

%code {

/* Lists the tokens the parser could have shifted in its current state, for
 * "expected ..." in syntax errors. Tokens that start an expression are
 * folded into one "expression". Returns false if the list would be too long
 * to help. With default reductions the state may be one where the
 * expression before the bad token was already reduced, so the list can miss
 * operators that would also have been valid. */
static bool parse_expected(yyParser *p, int major, char *buf, size_t size) {
  static const int expr_start[] = {
      TK_NAME,  TK_INT,      TK_FLOAT,    TK_STRING, TK_TRUE,
      TK_FALSE, TK_NONE,     TK_ELLIPSIS, TK_LPAREN, TK_LBRACKET,
      TK_MINUS, TK_PLUS,     TK_NOT};
  const int nstart = (int)(sizeof expr_start / sizeof expr_start[0]);
  YYACTIONTYPE state = p->yytos->stateno;
  bool ok[YYNTOKEN];
  int nstart_ok = 0;
  for (int t = 0; t < YYNTOKEN; t++) {
    ok[t] = t != YYERRORSYMBOL &&
            yy_find_shift_action((YYCODETYPE)t, state) != YY_ERROR_ACTION;
  }
  for (int i = 0; i < nstart; i++)
    nstart_ok += ok[expr_start[i]];
  const char *names[8];
  int n = 0;
  if (major == 0 && ok[TK_RBRACE]) {
    /* At the end of the file the missing '}' is what matters. */
    snprintf(buf, size, "%s", lex_token_name(TK_RBRACE));
    return true;
  }
  if (nstart_ok == nstart) {
    names[n++] = "expression";
    for (int i = 0; i < nstart; i++)
      ok[expr_start[i]] = false;
  }
  for (int t = 0; t < YYNTOKEN; t++) {
    if (!ok[t])
      continue;
    if (n == 5)
      return false;
    names[n++] = lex_token_name(t);
  }
  if (n == 0)
    return false;
  size_t len = 0;
  buf[0] = 0;
  for (int i = 0; i < n && len < size; i++) {
    const char *sep = i == 0 ? "" : i == n - 1 ? " or " : ", ";
    len += (size_t)snprintf(buf + len, size - len, "%s%s", sep, names[i]);
  }
  return true;
}

/* A syntax error on the line of a lexing error is its echo: not reported.
 * Inside brackets newlines do not end statements, so an error on a later
 * line than the outermost unclosed bracket gets a note pointing at it. */
static void parse_syntax_error(ParseState *ps, void *parser, int major,
                               Token tok) {
  char what[96], expected[160];
  if (ps->lex_error_line && tok.loc.line == ps->lex_error_line)
    return;
  if (major == 0 || major == TK_NEWLINE)
    snprintf(what, sizeof what, "%s", lex_token_name(major));
  else
    snprintf(what, sizeof what, "'%.*s'", tok.len > 40 ? 40 : tok.len,
             tok.start);
  if (parse_expected(parser, major, expected, sizeof expected))
    diag_error(ps->diag, tok.loc, "unexpected %s, expected %s", what,
               expected);
  else
    diag_error(ps->diag, tok.loc, "unexpected %s", what);
  if (ps->lx->depth > 0 && ps->lx->open_loc.line < tok.loc.line)
    diag_note(ps->diag, ps->lx->open_loc, "this '%c' is not closed",
              ps->lx->open_char);
}

bool parse_module(AstModule *m, Diag *diag) {
  int errors = diag->nerrors;
  int cap = diag->max_errors > 0 ? diag->max_errors : 20;
  Loc start = {m->path, 1, 1, 1, NULL};
  ParseState ps = {m, diag, false, start, NULL, 0};
  /* A placeholder root gives the grammar the module's start location. */
  m->root = ast_new(m, AST_MODULE, start);
  Lexer lx;
  lex_init(&lx, m->source, strlen(m->source), m->path, &m->arena, diag);
  yyParser *p = parse_lemonAlloc(malloc);
  if (!p) {
    fprintf(stderr, "modelc: out of memory\n");
    abort();
  }
  ps.lx = &lx;
  for (;;) {
    int before = diag->nerrors;
    Token t = lex_next(&lx);
    if (diag->nerrors > before)
      ps.lex_error_line = t.loc.line;
    ps.at = t.loc;
    parse_lemon(p, t.kind, t, &ps);
    /* A statement has ended: report the next error even if it comes within
     * lemon's three-token quiet period after the previous one. */
    if (t.kind == TK_NEWLINE || t.kind == TK_SEMI)
      p->yyerrcnt = -1;
    if (t.kind == 0 || ps.failed || diag->nerrors > cap)
      break;
    if (m->too_deep) {
      diag_error(diag, m->too_deep_at,
                 "limit exceeded: expression nested deeper than %d levels",
                 AST_MAX_DEPTH);
      break;
    }
  }
  parse_lemonFree(p, free);
  return diag->nerrors == errors;
}

}
