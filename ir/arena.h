/* A bump allocator: a compilation's memory is freed at once.
 * Built with -DMC_ARENA_MALLOC (the sanitizer build), every allocation is its
 * own malloc so AddressSanitizer sees overruns of each object. */
#ifndef MC_ARENA_H
#define MC_ARENA_H

#include <stddef.h>

typedef struct ArenaChunk ArenaChunk;

typedef struct Arena {
  ArenaChunk *chunks;
} Arena;

void arena_init(Arena *a);
void arena_free(Arena *a);
/* Zeroed memory aligned for any type; aborts on out-of-memory. */
void *arena_alloc(Arena *a, size_t size);
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
/* Grows an arena array: returns a new copy with room for new_cap elements. */
void *arena_grow(Arena *a, void *old, size_t old_bytes, size_t new_bytes);

#endif
