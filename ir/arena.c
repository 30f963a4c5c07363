/* Bump allocator over a list of chunks; see arena.h. */
#include "arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ArenaChunk {
  ArenaChunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

enum { ARENA_CHUNK = 64 * 1024 };

void arena_init(Arena *a) {
  a->chunks = NULL;
}

void arena_free(Arena *a) {
  ArenaChunk *c = a->chunks;
  while (c) {
    ArenaChunk *next = c->next;
    free(c);
    c = next;
  }
  a->chunks = NULL;
}

static ArenaChunk *chunk_new(size_t cap, ArenaChunk *next) {
  ArenaChunk *c = malloc(sizeof(ArenaChunk) + cap);
  if (!c) {
    fprintf(stderr, "modelc: out of memory\n");
    abort();
  }
  c->next = next;
  c->used = 0;
  c->cap = cap;
  return c;
}

void *arena_alloc(Arena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (size == 0)
    size = 16;
#ifdef MC_ARENA_MALLOC
  ArenaChunk *c = chunk_new(size, a->chunks);
  a->chunks = c;
  c->used = size;
  memset(c->data, 0, size);
  return c->data;
#else
  ArenaChunk *c = a->chunks;
  if (!c || c->cap - c->used < size) {
    if (size > ARENA_CHUNK / 4) {
      /* Big objects get their own chunk behind the current one. */
      ArenaChunk *big = chunk_new(size, c ? c->next : NULL);
      big->used = size;
      if (c)
        c->next = big;
      else
        a->chunks = big;
      memset(big->data, 0, size);
      return big->data;
    }
    c = chunk_new(ARENA_CHUNK, a->chunks);
    a->chunks = c;
  }
  void *p = c->data + c->used;
  c->used += size;
  memset(p, 0, size);
  return p;
#endif
}

char *arena_strndup(Arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  memcpy(p, s, n);
  p[n] = 0;
  return p;
}

char *arena_strdup(Arena *a, const char *s) {
  return arena_strndup(a, s, strlen(s));
}

void *arena_grow(Arena *a, void *old, size_t old_bytes, size_t new_bytes) {
  void *p = arena_alloc(a, new_bytes);
  if (old && old_bytes)
    memcpy(p, old, old_bytes < new_bytes ? old_bytes : new_bytes);
  return p;
}
