/* `modelc inspect`: the model's interface as YAML, written with libyaml's
 * emitter so that quoting is always right:
 *   model: gpt2
 *   constants: {n_layer: 12, ...}
 *   symbols: [T]
 *   inputs:  [{name: tokens, dtype: i32, shape: [T]}]    (one entry only)
 *   outputs: [{name: logits, dtype: f32, shape: [T, 50257]}]
 *   entries: [{name: gpt2, inputs: [...], outputs: [...]}]
 *   weights: [{name: wte.weight, dtype: f32, shape: [50257, 768]}]
 */
#include <stdio.h>
#include <string.h>
#include <yaml.h>

#include "config.h"

typedef struct Emit {
  yaml_emitter_t em;
  int failed;
} Emit;

static void ev(Emit *e, yaml_event_t *event) {
  if (!e->failed && !yaml_emitter_emit(&e->em, event))
    e->failed = 1;
}

static void str(Emit *e, const char *s) {
  yaml_event_t event;
  yaml_scalar_event_initialize(&event, NULL, NULL, (yaml_char_t *)s,
                               (int)strlen(s), 1, 1, YAML_ANY_SCALAR_STYLE);
  ev(e, &event);
}

static void map_start(Emit *e, int flow) {
  yaml_event_t event;
  yaml_mapping_start_event_initialize(&event, NULL, NULL, 1,
                                      flow ? YAML_FLOW_MAPPING_STYLE
                                           : YAML_BLOCK_MAPPING_STYLE);
  ev(e, &event);
}

static void map_end(Emit *e) {
  yaml_event_t event;
  yaml_mapping_end_event_initialize(&event);
  ev(e, &event);
}

static void seq_start(Emit *e, int flow) {
  yaml_event_t event;
  yaml_sequence_start_event_initialize(&event, NULL, NULL, 1,
                                       flow ? YAML_FLOW_SEQUENCE_STYLE
                                            : YAML_BLOCK_SEQUENCE_STYLE);
  ev(e, &event);
}

static void seq_end(Emit *e) {
  yaml_event_t event;
  yaml_sequence_end_event_initialize(&event);
  ev(e, &event);
}

static void shape(Emit *e, const Module *m, const Shape *s) {
  seq_start(e, 1);
  for (int i = 0; i < s->rank; i++) {
    char buf[128];
    dim_print(buf, sizeof buf, s->dims[i], m);
    str(e, buf);
  }
  seq_end(e);
}

static void tensor(Emit *e, const Module *m, const char *name, const Type *t,
                   const FuncInput *in) {
  map_start(e, 0);
  str(e, "name");
  str(e, name);
  str(e, "dtype");
  str(e, dtype_name(t->dtype));
  str(e, "shape");
  shape(e, m, &t->shape);
  if (in && in->has_default) {
    char buf[64];
    str(e, "optional");
    str(e, "true");
    str(e, "default");
    if (t->dtype == DT_BOOL)
      snprintf(buf, sizeof buf, "%s",
               in->default_value != 0 ? "true" : "false");
    else
      snprintf(buf, sizeof buf, "%.17g", in->default_value);
    str(e, buf);
  }
  map_end(e);
}

static void interface(Emit *e, const Module *m, const Function *f) {
  str(e, "inputs");
  seq_start(e, 0);
  for (int i = 0; i < f->ninputs; i++)
    tensor(e, m, f->inputs[i].name, &f->inputs[i].value->type, &f->inputs[i]);
  seq_end(e);
  str(e, "outputs");
  seq_start(e, 0);
  for (int i = 0; i < f->noutputs; i++)
    tensor(e, m, f->outputs[i].name, &f->outputs[i].value->type, NULL);
  seq_end(e);
}

static int write_handler(void *data, unsigned char *buffer, size_t size) {
  return fwrite(buffer, 1, size, (FILE *)data) == size;
}

int inspect_write(FILE *out, const Module *m) {
  Emit e = {0};
  yaml_event_t event;
  yaml_emitter_initialize(&e.em);
  yaml_emitter_set_output(&e.em, write_handler, out);
  yaml_emitter_set_unicode(&e.em, 1);
  yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING);
  ev(&e, &event);
  yaml_document_start_event_initialize(&event, NULL, NULL, NULL, 1);
  ev(&e, &event);
  map_start(&e, 0);
  str(&e, "model");
  str(&e, m->name);
  str(&e, "file");
  str(&e, m->source_file ? m->source_file : "");

  str(&e, "constants");
  map_start(&e, 0);
  for (int i = 0; i < m->nconsts; i++) {
    char buf[64];
    if (m->consts[i].is_float)
      snprintf(buf, sizeof buf, "%.17g", m->consts[i].fvalue);
    else
      snprintf(buf, sizeof buf, "%lld", (long long)m->consts[i].value);
    str(&e, m->consts[i].name);
    str(&e, buf);
  }
  map_end(&e);

  str(&e, "symbols");
  seq_start(&e, 1);
  for (int i = 0; i < m->nsymbols; i++)
    str(&e, m->symbols[i]);
  seq_end(&e);

  /* A model with one entry point lists its inputs and outputs at the top;
   * every model lists its entries (the names programs take first when there
   * are several). */
  if (m->functions && !m->functions->next)
    interface(&e, m, m->functions);
  str(&e, "entries");
  seq_start(&e, 0);
  for (const Function *f = m->functions; f; f = f->next) {
    map_start(&e, 0);
    str(&e, "name");
    str(&e, f->name);
    interface(&e, m, f);
    map_end(&e);
  }
  seq_end(&e);

  str(&e, "weights");
  seq_start(&e, 0);
  for (int i = 0; i < m->nparams; i++)
    tensor(&e, m, m->params[i].name, &m->params[i].type, NULL);
  seq_end(&e);

  map_end(&e);
  yaml_document_end_event_initialize(&event, 1);
  ev(&e, &event);
  yaml_stream_end_event_initialize(&event);
  ev(&e, &event);
  yaml_emitter_flush(&e.em);
  int failed = e.failed;
  yaml_emitter_delete(&e.em);
  return failed ? -1 : 0;
}
