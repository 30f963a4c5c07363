/* Build options: -D handling and the YAML --config file (libyaml document
 * API). Every error in a config file is located at its YAML node:
 *     build.yaml:3:4: error: unknown key 'wieghts' (known: D, defines, ...)
 * The config text stays alive until the process ends (the Diag quotes it). */
#include "config.h"
#include "read_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

void options_define(BuildOptions *o, const char *name, const char *value,
                    Loc loc, int from_cli) {
  for (int i = 0; i < o->ndefines; i++)
    if (strcmp(o->defines[i].name, name) == 0) {
      if (from_cli) {
        o->defines[i].value = value;
        o->defines[i].loc = loc;
      }
      return;
    }
  if (o->ndefines == o->cap_defines) {
    o->cap_defines = o->cap_defines ? 2 * o->cap_defines : 8;
    LowerDefine *nd =
        realloc(o->defines, sizeof(LowerDefine) * (size_t)o->cap_defines);
    if (!nd) {
      fprintf(stderr, "modelc: out of memory\n");
      exit(1);
    }
    o->defines = nd;
  }
  LowerDefine *d = &o->defines[o->ndefines++];
  d->name = name;
  d->value = value;
  d->loc = loc;
  d->used = false;
}

const char *options_own(BuildOptions *o, const char *s) {
  if (o->nowned == o->cap_owned) {
    o->cap_owned = o->cap_owned ? 2 * o->cap_owned : 8;
    char **n = realloc(o->owned, sizeof(char *) * (size_t)o->cap_owned);
    if (!n) {
      fprintf(stderr, "modelc: out of memory\n");
      exit(1);
    }
    o->owned = n;
  }
  char *c = strdup(s);
  if (!c) {
    fprintf(stderr, "modelc: out of memory\n");
    exit(1);
  }
  return o->owned[o->nowned++] = c;
}

void options_free(BuildOptions *o) {
  for (int i = 0; i < o->nowned; i++)
    free(o->owned[i]);
  free(o->owned);
  free(o->defines);
  o->owned = NULL;
  o->defines = NULL;
}

int options_parse_emit(const char *s, EmitKind *out) {
  if (strcmp(s, "c") == 0)
    *out = EMIT_C;
  else if (strcmp(s, "ir") == 0)
    *out = EMIT_IR;
  else if (strcmp(s, "exe") == 0)
    *out = EMIT_EXE;
  else if (strcmp(s, "llvm") == 0)
    *out = EMIT_LLVM;
  else if (strcmp(s, "obj") == 0)
    *out = EMIT_OBJ;
  else
    return -1;
  return 0;
}

bool options_valid_cpu(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' ||
          s[i] == '.'))
      return false;
  return true;
}

int options_parse_weight_dtype(const char *s, DType *t) {
  if (strcmp(s, "f32") == 0)
    *t = DT_F32;
  else if (strcmp(s, "f16") == 0)
    *t = DT_F16;
  else if (strcmp(s, "bf16") == 0)
    *t = DT_BF16;
  else
    return -1;
  return 0;
}

typedef struct Cfg {
  const char *path;
  yaml_document_t *doc;
  BuildOptions *o;
  Diag *d;
} Cfg;

static Loc node_loc(Cfg *c, yaml_node_t *n) {
  Loc l = {c->path, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1,
           0, NULL};
  if (n->end_mark.line == n->start_mark.line &&
      n->end_mark.column > n->start_mark.column)
    l.len = (int)(n->end_mark.column - n->start_mark.column);
  return l;
}

static const char *scalar(Cfg *c, yaml_node_t *n, const char *key) {
  if (n->type != YAML_SCALAR_NODE) {
    diag_error(c->d, node_loc(c, n), "'%s' must be a single value", key);
    return NULL;
  }
  return (const char *)n->data.scalar.value;
}

static int read_defines(Cfg *c, yaml_node_t *map) {
  if (map->type != YAML_MAPPING_NODE) {
    diag_error(c->d, node_loc(c, map),
               "'D' must be a mapping of constant names to numbers, e.g. "
               "{n_layer: 2}");
    return -1;
  }
  int bad = 0;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
       p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
    const char *name = scalar(c, k, "D");
    const char *val = name ? scalar(c, v, name) : NULL;
    if (!val) {
      bad = 1;
      continue;
    }
    char *end;
    errno = 0;
    (void)strtod(val, &end);
    if (*val == 0 || *end || errno) {
      diag_error(c->d, node_loc(c, v), "'%s' must be a number, not '%s'", name,
                 val);
      bad = 1;
      continue;
    }
    options_define(c->o, options_own(c->o, name), options_own(c->o, val),
                   node_loc(c, v), 0);
  }
  return bad ? -1 : 0;
}

static int read_key(Cfg *c, yaml_node_t *k, const char *key, yaml_node_t *v) {
  BuildOptions *o = c->o;
  if (strcmp(key, "D") == 0 || strcmp(key, "defines") == 0)
    return read_defines(c, v);
  const char *s = scalar(c, v, key);
  if (!s)
    return -1;
  if (strcmp(key, "weights") == 0) {
    if (!o->set_weights)
      o->weights = options_own(o, s);
  } else if (strcmp(key, "o") == 0 || strcmp(key, "output") == 0) {
    if (!o->set_output)
      o->output = options_own(o, s);
  } else if (strcmp(key, "entry") == 0) {
    if (!o->set_entry)
      o->entry = options_own(o, s);
  } else if (strcmp(key, "emit") == 0) {
    EmitKind e;
    if (options_parse_emit(s, &e) != 0) {
      diag_error(c->d, node_loc(c, v),
                 "'emit' must be c, ir, exe, llvm or obj, not '%s'", s);
      return -1;
    }
    if (!o->set_emit)
      o->emit = e;
  } else if (strcmp(key, "weight_dtype") == 0) {
    DType t;
    if (options_parse_weight_dtype(s, &t) != 0) {
      diag_error(c->d, node_loc(c, v),
                 "'weight_dtype' must be f32, f16 or bf16, not '%s'", s);
      return -1;
    }
    if (!o->set_weight_dtype)
      o->weight_dtype = t;
  } else if (strcmp(key, "backend") == 0) {
    bool llvm = strcmp(s, "llvm") == 0;
    if (!llvm && strcmp(s, "c") != 0) {
      diag_error(c->d, node_loc(c, v), "'backend' must be c or llvm, not '%s'",
                 s);
      return -1;
    }
    if (!o->set_backend)
      o->llvm = llvm;
  } else if (strcmp(key, "cpu") == 0) {
    if (!options_valid_cpu(s)) {
      diag_error(c->d, node_loc(c, v),
                 "'cpu' must be native, generic or a CPU name of the C "
                 "compiler's -march, not '%s'",
                 s);
      return -1;
    }
    if (!o->set_cpu)
      o->cpu = options_own(o, s);
  } else if (strcmp(key, "O") == 0 || strcmp(key, "opt_level") == 0) {
    if (!((s[0] >= '0' && s[0] <= '2') && s[1] == 0)) {
      diag_error(c->d, node_loc(c, v), "'%s' must be 0, 1 or 2, not '%s'", key,
                 s);
      return -1;
    }
    if (!o->set_opt)
      o->opt_level = s[0] - '0';
  } else {
    diag_error(c->d, node_loc(c, k),
               "unknown key '%s' (known: D, defines, weights, emit, O, "
               "opt_level, o, output, entry, weight_dtype, cpu, backend)",
               key);
    return -1;
  }
  return 0;
}

int config_read(const char *path, BuildOptions *o, Diag *d) {
  size_t len;
  char *text = read_path(path, SIZE_MAX, &len);
  if (!text) {
    diag_error(d, loc_none(), "cannot read config file '%s': %s", path,
               strerror(errno));
    return -1;
  }
  /* kept alive for messages until options_free */
  options_own(o, "");
  free(o->owned[o->nowned - 1]);
  o->owned[o->nowned - 1] = text;
  diag_add_source(d, path, text);
  yaml_parser_t parser;
  yaml_document_t doc;
  yaml_parser_initialize(&parser);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text,
                               strlen(text));
  if (!yaml_parser_load(&parser, &doc)) {
    Loc l = {path, (int)parser.problem_mark.line + 1,
             (int)parser.problem_mark.column + 1, 0, NULL};
    diag_error(d, l, "invalid YAML: %s",
               parser.problem ? parser.problem : "parse error");
    yaml_parser_delete(&parser);
    return -1;
  }
  Cfg c = {path, &doc, o, d};
  int rc = 0;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (!root) {
    /* an empty file sets nothing */
  } else if (root->type != YAML_MAPPING_NODE) {
    diag_error(d, node_loc(&c, root),
               "a config file is a mapping of option names to values");
    rc = -1;
  } else {
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
      yaml_node_t *k = yaml_document_get_node(&doc, p->key);
      yaml_node_t *v = yaml_document_get_node(&doc, p->value);
      const char *key = scalar(&c, k, "key");
      if (!key) {
        rc = -1;
        continue;
      }
      if (read_key(&c, k, key, v) != 0)
        rc = -1;
    }
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rc;
}
