/* The IR reader's state and the pieces its parts share (ir/read.c: ops,
 * functions and the module; ir/read_parts.c: the value table and the small
 * pieces: names, integers, dimensions, types, locations, numbers). */
#ifndef MC_READ_INTERNAL_H
#define MC_READ_INTERNAL_H

#include "ir.h"
#include "read_lex.h"

typedef struct ValueEntry {
  const char *key; /* arena copy of the text after '%' */
  bool numeric;
  int scope; /* 0: the function body, else the region that defined it */
  Value *value;
} ValueEntry;

typedef struct Reader {
  IrLexer lx;
  Module *m;
  Function *fn;
  ValueEntry *vals;
  size_t vcap, vcount;
  int depth;
  Block *block;   /* where ops go: the function body or a region */
  int scopes[32]; /* the regions being read, innermost last */
  int nscopes, last_scope;
} Reader;

#define EXPECT(r, kind, what)                                                  \
  do {                                                                         \
    if (!irlex_expect(&(r)->lx, kind, what))                                   \
      return false;                                                            \
  } while (0)

/* The entry of value %key (numeric: %12 rather than %x), empty if none. */
ValueEntry *rd_value_slot(Reader *r, const char *key, bool numeric);
/* Rehashes the table into `cap` slots; keep=false empties it. */
void rd_values_resize(Reader *r, size_t cap, bool keep);
/* A use of a value defined earlier and visible here. */
bool rd_value_use(Reader *r, Value **out);
bool rd_parse_name(Reader *r, const char **out);
bool rd_parse_int(Reader *r, int64_t lo, int64_t hi, int64_t *out);
bool rd_parse_dim(Reader *r, Dim *out);
bool rd_parse_dim_list(Reader *r, Dim *dims, int *n);
bool rd_parse_type(Reader *r, Type *t);
bool rd_parse_loc(Reader *r, Loc *loc);
/* The text of a number token (sign included) into buf. */
bool rd_number_text(Reader *r, char *buf, size_t n);
bool rd_parse_double(Reader *r, double *out);
/* Element i of a constant of dtype t from its text s. */
bool rd_convert_elem(Reader *r, DType t, const char *s, void *data, size_t i);

#endif
