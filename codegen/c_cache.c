/* A content-addressed cache of the compiled runtime objects.
 *
 * Every `--emit exe` build compiles the same dozen runtime files (mc_*.c as
 * cg_emit_c writes them) with the same command: under ASan+UBSan that is
 * ~12 s of a build whose model takes 1-4 s. The objects are kept in
 * <cache>/runtime-<key>/, the key being SHA-256 (its first 128 bits) of all
 * that decides their bytes: the compile command word by word, the
 * compiler's identity (`CC --version`, `CC -dumpmachine`, the driver's path,
 * size and mtime: the same command names another compiler after an
 * upgrade), this CPU's model and flags when the command says
 * -march=native, the environment variables that move gcc's and clang's header
 * search, and the name and text of every mc_*.c and mc_*.h in the build
 * directory. System headers can change under an unchanged compiler (a libc
 * update), so an entry also lists every absolute header its compile read
 * (`CC -M`) with its SHA-256, and is used only while all still match (as
 * ccache's direct mode does).
 *
 * An entry is written into a fresh <cache>/tmp-XXXXXX and renamed into
 * place, so no one reads a partial entry; when two builds race, the second
 * rename fails (the name exists) and that build drops its copy. An entry is
 * removed by first renaming it away, for the same reason. A hit hard-links
 * (else copies) the objects into the build directory: an entry that another
 * process evicts right after the lookup cannot fail the link. Any problem
 * with the cache means compiling as if it were not there, silently.
 *
 * Eviction, whenever an entry is stored: entries unused for EVICT_DAYS go,
 * then the least recently used beyond MAX_ENTRIES (a hit touches the
 * entry's mtime); staging directories older than STALE_TMP_SECONDS are the
 * leftovers of killed builds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "c_emit.h"
#include "read_file.h"

/* changing what an entry holds or how the key is made: bump it */
#define CACHE_FORMAT "modelc runtime cache 1"
#define MAX_ENTRIES 32
#define EVICT_DAYS 30
#define STALE_TMP_SECONDS 3600

/* ---- SHA-256 (FIPS 180-4) --------------------------------------------- */

typedef struct Sha256 {
  uint32_t h[8];
  uint8_t buf[64];
  uint64_t len; /* bytes so far */
} Sha256;

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t ror(uint32_t x, int n) {
  return (x >> n) | (x << (32 - n));
}

static void sha_block(Sha256 *s, const uint8_t *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4],
           f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
                  ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
    uint32_t t2 =
        (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s->h[0] += a;
  s->h[1] += b;
  s->h[2] += c;
  s->h[3] += d;
  s->h[4] += e;
  s->h[5] += f;
  s->h[6] += g;
  s->h[7] += h;
}

static void sha_init(Sha256 *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                 0xa54ff53a, 0x510e527f, 0x9b05688c,
                                 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->len = 0;
}

static void sha_update(Sha256 *s, const void *data, size_t n) {
  const uint8_t *p = data;
  while (n > 0) {
    size_t used = (size_t)(s->len % 64), take = 64 - used;
    if (used == 0 && n >= 64) { /* a whole block straight from the input */
      sha_block(s, p);
      s->len += 64;
      p += 64;
      n -= 64;
      continue;
    }
    if (take > n)
      take = n;
    memcpy(s->buf + used, p, take);
    s->len += take;
    p += take;
    n -= take;
    if (s->len % 64 == 0)
      sha_block(s, s->buf);
  }
}

static void sha_final(Sha256 *s, uint8_t out[32]) {
  uint64_t bits = s->len * 8;
  uint8_t pad[72] = {0x80};
  size_t used = (size_t)(s->len % 64);
  size_t n = (used < 56 ? 56 : 120) - used;
  for (int i = 0; i < 8; i++)
    pad[n + (size_t)i] = (uint8_t)(bits >> (56 - 8 * i));
  sha_update(s, pad, n + 8);
  for (int i = 0; i < 32; i++)
    out[i] = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));
}

void cg_sha256(const void *data, size_t n, unsigned char out[32]) {
  Sha256 s;
  sha_init(&s);
  sha_update(&s, data, n);
  sha_final(&s, out);
}

/* A tag, a length, then the bytes: no two different sequences of fields
 * hash the same stream. */
static void sha_field(Sha256 *s, const char *tag, const void *data, size_t n) {
  uint8_t len[8];
  for (int i = 0; i < 8; i++)
    len[i] = (uint8_t)((uint64_t)n >> (8 * i));
  sha_update(s, tag, strlen(tag) + 1);
  sha_update(s, len, sizeof len);
  sha_update(s, data, n);
}

static void sha_str(Sha256 *s, const char *tag, const char *text) {
  sha_field(s, tag, text, strlen(text));
}

/* The first 128 bits in hex: plenty against collisions, and a short name. */
static void sha_hex(Sha256 *s, char hex[CG_CACHE_KEY_LEN + 1]) {
  uint8_t d[32];
  sha_final(s, d);
  for (int i = 0; i < CG_CACHE_KEY_LEN / 2; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* ---- files ---------------------------------------------------------------
 */

static bool hash_file(const char *path, char hex[CG_CACHE_KEY_LEN + 1]) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  Sha256 s;
  sha_init(&s);
  char chunk[16384];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    sha_update(&s, chunk, n);
  bool ok = !ferror(f);
  fclose(f);
  sha_hex(&s, hex);
  return ok;
}

typedef struct Name {
  char *name;
  time_t mtime;
  bool is_dir;
} Name;

static int name_order(const void *a, const void *b) {
  return strcmp(((const Name *)a)->name, ((const Name *)b)->name);
}

static int mtime_order(const void *a, const void *b) {
  time_t x = ((const Name *)a)->mtime, y = ((const Name *)b)->mtime;
  return x < y ? -1 : x > y;
}

/* The entries of dir, sorted by name, with their mtimes (lstat). */
static Name *list_names(const char *dir, int *count, Arena *a) {
  *count = 0;
  DIR *dp = opendir(dir);
  if (!dp)
    return NULL;
  Name *v = NULL;
  int cap = 0;
  struct dirent *de;
  while ((de = readdir(dp))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    struct stat st;
    char *path = cg_strf(a, "%s/%s", dir, de->d_name);
    if (lstat(path, &st) != 0)
      continue;
    if (*count == cap) {
      v = arena_grow(a, v, (size_t)cap * sizeof *v,
                     (size_t)(cap ? 2 * cap : 16) * sizeof *v);
      cap = cap ? 2 * cap : 16;
    }
    v[(*count)++] =
        (Name){arena_strdup(a, de->d_name), st.st_mtime, S_ISDIR(st.st_mode)};
  }
  closedir(dp);
  if (*count > 1)
    qsort(v, (size_t)*count, sizeof *v, name_order);
  return v;
}

/* Removes a directory of plain files (what the cache holds). */
static void remove_flat(const char *dir) {
  Arena a;
  arena_init(&a);
  int n;
  Name *names = list_names(dir, &n, &a);
  for (int i = 0; i < n; i++)
    unlink(cg_strf(&a, "%s/%s", dir, names[i].name));
  rmdir(dir);
  arena_free(&a);
}

/* Takes an entry out of the cache: renamed onto a fresh empty staging
 * directory first (atomic), so no lookup sees it half removed. */
static void discard(const char *root, const char *entry) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s/tmp-XXXXXX", root);
  if (!mkdtemp(tmp))
    return;
  if (rename(entry, tmp) != 0) {
    rmdir(tmp); /* gone already: another build discarded it */
    return;
  }
  remove_flat(tmp);
}

/* mkdir -p, quietly: a cache that cannot be made is no error. */
static bool make_dirs(const char *path) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return false;
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != 0)
      continue;
    char c = *p;
    *p = 0;
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
      return false;
    *p = c;
    if (!c)
      break;
  }
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Hard link (no copy of the bytes) where the file systems allow it. */
static bool link_or_copy(const char *from, const char *to) {
  if (link(from, to) == 0)
    return true;
  int in = open(from, O_RDONLY);
  if (in < 0)
    return false;
  int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0644);
  bool ok = out >= 0;
  char chunk[65536];
  ssize_t n;
  while (ok && (n = read(in, chunk, sizeof chunk)) != 0) {
    if (n < 0) {
      ok = errno == EINTR;
      continue;
    }
    ssize_t done = 0;
    while (ok && done < n) {
      ssize_t w = write(out, chunk + done, (size_t)(n - done));
      if (w > 0)
        done += w;
      else
        ok = w < 0 && errno == EINTR;
    }
  }
  close(in);
  if (out >= 0) {
    ok = (close(out) == 0) && ok;
    if (!ok)
      unlink(to);
  }
  return ok;
}

/* ---- the key ---------------------------------------------------------------
 */

char *cg_cache_root(void) {
  const char *env = getenv("MODELC_CACHE_DIR");
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  char cwd[4096];
  CgBuf b = {0};
  if (env && !strcmp(env, "off"))
    return NULL;
  /* an empty value is unset; a relative one is from here (made absolute:
   * the compiler runs in the build directory) */
  if (env && env[0] == '/')
    cg_buf_puts(&b, env);
  else if (env && *env && getcwd(cwd, sizeof cwd))
    cg_buf_printf(&b, "%s/%s", cwd, env);
  else if (env && *env)
    return NULL;
  /* XDG: a relative $XDG_CACHE_HOME is to be ignored */
  else if (xdg && xdg[0] == '/')
    cg_buf_printf(&b, "%s/modelc", xdg);
  else if (home && *home)
    cg_buf_printf(&b, "%s/.cache/modelc", home);
  char *r = b.data ? strdup(b.data) : NULL;
  cg_buf_free(&b);
  return r;
}

/* Runs argv in cwd with its output into log; returns the output (malloc'd,
 * *len set) when it exited 0, else NULL. */
static char *capture(char **argv, const char *cwd, const char *log,
                     size_t *len) {
  int status = cg_run_logged(argv, cwd, log);
  char *text = status == 0 ? read_path(log, SIZE_MAX, len) : NULL;
  unlink(log);
  return text;
}

/* The file execvp would run for `name`, stat'ed. */
static bool find_program(const char *name, struct stat *st, char *path,
                         size_t size) {
  if (strchr(name, '/')) {
    snprintf(path, size, "%s", name);
    return stat(path, st) == 0;
  }
  const char *dirs = getenv("PATH");
  size_t n;
  for (const char *p = dirs ? dirs : "/usr/bin:/bin";; p += n + 1) {
    n = strcspn(p, ":"); /* an empty entry is the current directory */
    snprintf(path, size, "%.*s/%s", (int)(n ? n : 1), n ? p : ".", name);
    if (stat(path, st) == 0 && S_ISREG(st->st_mode) && access(path, X_OK) == 0)
      return true;
    if (!p[n])
      return false;
  }
}

/* SHA-256 of the compiler's identity (argv's first ncc words), asked once
 * per process and compiler. False when `CC --version` fails: a compiler we
 * cannot identify is not cached. */
static bool compiler_identity(char *const *argv, int ncc, const char *scratch,
                              uint8_t out[32]) {
  static char *last_cc;
  static uint8_t last_id[32];
  static bool last_ok;
  CgBuf cc = {0};
  for (int i = 0; i < ncc; i++)
    cg_buf_printf(&cc, "%s%s", i ? " " : "", argv[i]);
  if (last_cc && !strcmp(last_cc, cg_buf_str(&cc))) {
    cg_buf_free(&cc);
    memcpy(out, last_id, 32);
    return last_ok;
  }
  Sha256 s;
  sha_init(&s);
  bool ok = true;
  char **v = malloc((size_t)(ncc + 2) * sizeof *v);
  char log[4096];
  snprintf(log, sizeof log, "%s/cache-cc-identity.log", scratch);
  static const char *const asks[] = {"--version", "-dumpmachine"};
  for (size_t k = 0; v && k < sizeof asks / sizeof *asks; k++) {
    memcpy(v, argv, (size_t)ncc * sizeof *v);
    v[ncc] = (char *)asks[k];
    v[ncc + 1] = NULL;
    size_t len = 0;
    char *text = capture(v, NULL, log, &len);
    ok = ok && (text || k > 0); /* -dumpmachine: gcc's and clang's only */
    sha_str(&s, asks[k], text ? "ok" : "failed");
    sha_field(&s, "output", text, text ? len : 0);
    free(text);
  }
  bool allocated = v != NULL;
  free(v);
  struct stat st;
  char path[4096];
  if (find_program(argv[0], &st, path, sizeof path)) {
    long long t[3] = {(long long)st.st_size, (long long)st.st_mtim.tv_sec,
                      (long long)st.st_mtim.tv_nsec};
    sha_str(&s, "driver", path);
    sha_field(&s, "stat", t, sizeof t);
  }
  sha_final(&s, out);
  free(last_cc);
  last_cc = strdup(cg_buf_str(&cc));
  memcpy(last_id, out, 32);
  last_ok = ok && allocated;
  cg_buf_free(&cc);
  return last_ok;
}

static bool is_runtime_text(const char *name) {
  size_t n = strlen(name);
  return !strncmp(name, "mc_", 3) && n > 5 &&
         (!strcmp(name + n - 2, ".c") || !strcmp(name + n - 2, ".h"));
}

/* -march=native means this machine's CPU: its model and feature flags
 * (/proc/cpuinfo's first "model name" and "flags" lines) go into the key,
 * so a cache shared by machines never hands one another's objects. */
static void sha_native_cpu(Sha256 *s) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[8192];
  bool model = false, flags = false;
  while (f && (!model || !flags) && fgets(line, sizeof line, f)) {
    bool *seen = !strncmp(line, "model name", 10) ? &model
                 : !strncmp(line, "flags", 5)     ? &flags
                                                  : NULL;
    if (seen && !*seen) {
      *seen = true;
      sha_str(s, "cpu", line);
    }
  }
  if (f)
    fclose(f);
}

bool cg_cache_key(char *const *argv, int ncc, const char *dir,
                  char key[CG_CACHE_KEY_LEN + 1]) {
  uint8_t id[32];
  if (ncc < 1 || !compiler_identity(argv, ncc, dir, id))
    return false;
  Sha256 s;
  sha_init(&s);
  sha_str(&s, "format", CACHE_FORMAT);
  sha_field(&s, "compiler", id, sizeof id);
  for (int i = 0; argv[i]; i++) {
    sha_str(&s, "arg", argv[i]);
    if (!strcmp(argv[i], "-march=native"))
      sha_native_cpu(&s);
  }
  /* what moves gcc's or clang's header search without a flag */
  static const char *const vars[] = {"CPATH", "C_INCLUDE_PATH",
                                     "GCC_EXEC_PREFIX", "COMPILER_PATH"};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
    const char *v = getenv(vars[i]);
    sha_str(&s, v ? "env" : "unset", vars[i]);
    sha_str(&s, "value", v ? v : "");
  }
  Arena a;
  arena_init(&a);
  int n;
  Name *names = list_names(dir, &n, &a);
  bool ok = true;
  for (int i = 0; ok && i < n; i++) {
    if (!is_runtime_text(names[i].name))
      continue;
    size_t len;
    char *text =
        read_path(cg_strf(&a, "%s/%s", dir, names[i].name), SIZE_MAX, &len);
    ok = text != NULL;
    sha_str(&s, "file", names[i].name);
    sha_field(&s, "text", text, ok ? len : 0);
    free(text);
  }
  arena_free(&a);
  sha_hex(&s, key);
  return ok;
}

/* ---- entries ----------------------------------------------------------------
 * An entry is its objects and `manifest`:
 *   modelc runtime cache 1
 *   key <key>
 *   object <size> <name>        one per object
 *   header <sha256/128> <path>  one per absolute header the compile read
 */

/* Whether entry is a complete store for key: its manifest names exactly
 * `objects`, each there with its recorded size, and every header it lists
 * still has the recorded SHA-256. */
static bool entry_valid(const char *entry, const char *key,
                        char *const *objects, int nobjects, Arena *a) {
  size_t len;
  char *text = read_path(cg_strf(a, "%s/manifest", entry), SIZE_MAX, &len);
  if (!text)
    return false;
  bool *seen = arena_alloc(a, (size_t)nobjects + 1);
  int found = 0;
  char *line = text, *next;
  bool ok = !strncmp(text, CACHE_FORMAT "\n", strlen(CACHE_FORMAT) + 1);
  bool key_ok = false;
  for (; ok && *line; line = next) {
    next = strchr(line, '\n');
    if (!next)
      break; /* a last line without its newline: cut short */
    *next++ = 0;
    char *sp = strchr(line, ' ');
    char *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
    if (!strncmp(line, "key ", 4)) {
      key_ok = !strcmp(line + 4, key);
    } else if (!strncmp(line, "object ", 7) && sp2) {
      *sp2 = 0;
      int i = 0;
      while (i < nobjects && strcmp(objects[i], sp2 + 1))
        i++;
      struct stat st;
      ok = i < nobjects && !seen[i] &&
           stat(cg_strf(a, "%s/%s", entry, sp2 + 1), &st) == 0 &&
           S_ISREG(st.st_mode) &&
           (long long)st.st_size == strtoll(sp + 1, NULL, 10);
      if (ok)
        seen[i] = true, found++;
    } else if (!strncmp(line, "header ", 7) && sp2) {
      char hex[CG_CACHE_KEY_LEN + 1];
      *sp2 = 0;
      ok = hash_file(sp2 + 1, hex) && !strcmp(hex, sp + 1);
    } else if (line != text) {
      ok = false;
    }
  }
  bool whole = !*line; /* read to the end */
  free(text);
  return ok && whole && key_ok && found == nobjects;
}

bool cg_cache_fetch(CgCache *c, char *const *argv, int ncc, const char *dir,
                    char *const *objects, int nobjects) {
  memset(c, 0, sizeof *c);
  if (nobjects < 1 || !(c->root = cg_cache_root()))
    return false;
  if (!cg_cache_key(argv, ncc, dir, c->key)) {
    free(c->root);
    c->root = NULL;
    return false;
  }
  Arena a;
  arena_init(&a);
  char *entry = cg_strf(&a, "%s/runtime-%s", c->root, c->key);
  struct stat st;
  bool hit = stat(entry, &st) == 0;
  if (hit && !entry_valid(entry, c->key, objects, nobjects, &a)) {
    discard(c->root, entry); /* the store after the compile replaces it */
    hit = false;
  }
  if (hit)
    utimensat(AT_FDCWD, entry, NULL, 0); /* the least recently used go */
  int placed = 0;
  while (hit && placed < nobjects &&
         link_or_copy(cg_strf(&a, "%s/%s", entry, objects[placed]),
                      cg_strf(&a, "%s/%s", dir, objects[placed])))
    placed++;
  if (placed < nobjects) {
    while (placed > 0)
      unlink(cg_strf(&a, "%s/%s", dir, objects[--placed]));
    hit = false;
  }
  arena_free(&a);
  return hit;
}

/* Removes the staging leftovers of killed builds, entries unused for
 * EVICT_DAYS and then the least recently used, to leave room for one. */
static void evict(const char *root, Arena *a) {
  int n, nentries = 0;
  Name *names = list_names(root, &n, a);
  Name *entries = arena_alloc(a, (size_t)(n + 1) * sizeof *entries);
  time_t now = time(NULL);
  for (int i = 0; i < n; i++) {
    char *path = cg_strf(a, "%s/%s", root, names[i].name);
    double age = difftime(now, names[i].mtime);
    if (!names[i].is_dir)
      continue;
    if (!strncmp(names[i].name, "tmp-", 4) && age > STALE_TMP_SECONDS)
      remove_flat(path);
    else if (!strncmp(names[i].name, "runtime-", 8) &&
             age > EVICT_DAYS * 86400.0)
      discard(root, path);
    else if (!strncmp(names[i].name, "runtime-", 8))
      entries[nentries++] = names[i];
  }
  if (nentries >= MAX_ENTRIES) {
    qsort(entries, (size_t)nentries, sizeof *entries, mtime_order);
    for (int i = 0; i <= nentries - MAX_ENTRIES; i++)
      discard(root, cg_strf(a, "%s/%s", root, entries[i].name));
  }
}

static int path_order(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The absolute headers in `cc -M` output (sorted, unique) into *out; false
 * when it names a file we can neither hash nor find in the key (a relative
 * header other than the runtime's own). */
static bool parse_deps(char *text, char ***out, int *count, Arena *a) {
  int n = 0, cap = 0;
  char **v = NULL;
  for (char *p = text; *p;) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' ||
           (*p == '\\' && (p[1] == '\n' || p[1] == '\r')))
      p++;
    if (!*p)
      break;
    /* a word: "\ " is a blank inside it, "$$" a dollar */
    char *w = p, *q = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
      if (*p == '\\' && p[1] == ' ')
        p++;
      else if (*p == '$' && p[1] == '$')
        p++;
      *q++ = *p++;
    }
    bool end = *p == 0;
    *q = 0;
    if (!end)
      p++;
    size_t len = strlen(w);
    if (len == 0 || w[len - 1] == ':')
      continue; /* a target */
    if (w[0] != '/') {
      if (strchr(w, '/') || !is_runtime_text(w))
        return false;
      continue;
    }
    if (n == cap) {
      v = arena_grow(a, v, (size_t)cap * sizeof *v,
                     (size_t)(cap ? 2 * cap : 64) * sizeof *v);
      cap = cap ? 2 * cap : 64;
    }
    v[n++] = arena_strdup(a, w);
    if (end)
      break;
  }
  if (n > 1)
    qsort(v, (size_t)n, sizeof *v, path_order);
  int u = 0;
  for (int i = 0; i < n; i++)
    if (u == 0 || strcmp(v[u - 1], v[i]))
      v[u++] = v[i];
  *out = v;
  *count = u;
  return true;
}

/* The manifest's header lines: the compile command again, with -M (the
 * headers it reads, no object) and -w (nothing else on the output). */
static bool header_lines(char *const *argv, const char *dir, CgBuf *manifest,
                         Arena *a) {
  int argc = 0;
  while (argv[argc])
    argc++;
  char **v = arena_alloc(a, (size_t)(argc + 3) * sizeof *v);
  memcpy(v, argv, (size_t)argc * sizeof *v);
  v[argc] = (char *)"-w";
  v[argc + 1] = (char *)"-M";
  size_t len;
  char *text = capture(v, dir, cg_strf(a, "%s/cache-deps.log", dir), &len);
  char **headers = NULL;
  int n = 0;
  bool ok = text && parse_deps(text, &headers, &n, a);
  free(text);
  for (int i = 0; ok && i < n; i++) {
    char hex[CG_CACHE_KEY_LEN + 1];
    ok = hash_file(headers[i], hex) && !strchr(headers[i], '\n');
    if (ok)
      cg_buf_printf(manifest, "header %s %s\n", hex, headers[i]);
  }
  return ok;
}

void cg_cache_store(CgCache *c, char *const *argv, const char *dir,
                    char *const *objects, int nobjects) {
  if (!c->root || nobjects < 1 || !make_dirs(c->root))
    return;
  Arena a;
  arena_init(&a);
  evict(c->root, &a);
  CgBuf manifest = {0};
  cg_buf_printf(&manifest, "%s\nkey %s\n", CACHE_FORMAT, c->key);
  char *staging = cg_strf(&a, "%s/tmp-XXXXXX", c->root);
  bool made = header_lines(argv, dir, &manifest, &a) && mkdtemp(staging);
  bool ok = made;
  for (int i = 0; ok && i < nobjects; i++) {
    char *to = cg_strf(&a, "%s/%s", staging, objects[i]);
    struct stat st;
    /* read-only: a hit hard-links the entry's files into build directories */
    ok = link_or_copy(cg_strf(&a, "%s/%s", dir, objects[i]), to) &&
         chmod(to, 0444) == 0 && stat(to, &st) == 0;
    if (ok)
      cg_buf_printf(&manifest, "object %lld %s\n", (long long)st.st_size,
                    objects[i]);
  }
  if (ok) {
    FILE *f = fopen(cg_strf(&a, "%s/manifest", staging), "wb");
    ok = f && fwrite(manifest.data, 1, manifest.len, f) == manifest.len;
    ok = (f && fclose(f) == 0) && ok;
  }
  /* publish: fails when another build stored the same key first (its entry
   * is as good as ours) */
  if (ok)
    ok = rename(staging, cg_strf(&a, "%s/runtime-%s", c->root, c->key)) == 0;
  if (!ok && made)
    remove_flat(staging);
  cg_buf_free(&manifest);
  arena_free(&a);
}

void cg_cache_free(CgCache *c) {
  free(c->root);
  c->root = NULL;
}
