/* The cache of compiled runtime objects (codegen/c_cache.c): SHA-256, the
 * cache's location, what the key covers, store and hit, entries that must
 * not be used (missing or truncated objects, a changed system header,
 * leftover staging directories), eviction, concurrent builds, and a cache
 * that is off or cannot be written. The builds here compile two tiny
 * mc_*.c files the way codegen/c_build.c compiles the runtime's. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "c_emit.h"

static char tmp[64];
static char root[128];    /* the cache */
static char include[128]; /* a "system" include directory */

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  cr_assert_eq(fclose(f), 0);
}

static char *path_in(const char *dir, const char *name) {
  static char buf[8][2048];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, sizeof buf[0], "%s/%s", dir, name);
  return p;
}

static void setup(void) {
  snprintf(tmp, sizeof tmp, "/tmp/test_cache-XXXXXX");
  cr_assert_not_null(mkdtemp(tmp));
  snprintf(root, sizeof root, "%s/cache", tmp);
  snprintf(include, sizeof include, "%s/include", tmp);
  cr_assert_eq(mkdir(include, 0777), 0);
  write_text(path_in(include, "sys_h.h"), "#define SYS_H 2\n");
  setenv("MODELC_CACHE_DIR", root, 1);
}

static void teardown(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "chmod -R u+w '%s'; rm -rf '%s'", tmp, tmp);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", tmp);
}

TestSuite(cache, .init = setup, .fini = teardown);

/* A build directory as cg_emit_c leaves it: runtime files and the model's. */
static char *make_build_dir(const char *name) {
  static char dirs[8][256];
  static int next;
  char *dir = dirs[next++ % 8];
  snprintf(dir, sizeof dirs[0], "%s/%s", tmp, name);
  cr_assert_eq(mkdir(dir, 0777), 0, "%s", dir);
  write_text(path_in(dir, "mc_a.h"), "#define MC_A 1\n");
  write_text(path_in(dir, "mc_a.c"), "#include \"mc_a.h\"\n#include "
                                     "<sys_h.h>\nint mc_a(void);\n"
                                     "int mc_a(void) { return MC_A + SYS_H; "
                                     "}\n");
  write_text(path_in(dir, "mc_b.c"), "int mc_b(void);\n"
                                     "int mc_b(void) { return 3; }\n");
  write_text(path_in(dir, "tm.c"), "int tm(void) { return 4; }\n");
  return dir;
}

static char *const objects[] = {"mc_a.o", "mc_b.o"};

/* The runtime's compile command of c_build.c, shortened. */
static void command(char **argv, const char *cc, const char *opt) {
  static char inc_flag[256];
  snprintf(inc_flag, sizeof inc_flag, "-I%s", include);
  char *v[] = {(char *)cc, "-std=c11", (char *)opt, inc_flag,
               "-c",       "mc_a.c",   "mc_b.c",    NULL};
  memcpy(argv, v, sizeof v);
}

/* What compile() in c_build.c does for the runtime: fetch, else compile and
 * store. Returns whether it was a hit; the objects are in dir either way. */
static bool runtime_build_with(const char *dir, const char *opt) {
  char *argv[8];
  command(argv, "cc", opt);
  CgCache c;
  bool hit = cg_cache_fetch(&c, argv, 1, dir, objects, 2);
  if (!hit) {
    cr_assert_eq(cg_run_logged(argv, dir, path_in(dir, "cc.log")), 0);
    cg_cache_store(&c, argv, dir, objects, 2);
  }
  cg_cache_free(&c);
  struct stat st;
  for (int i = 0; i < 2; i++)
    cr_assert(stat(path_in(dir, objects[i]), &st) == 0 && st.st_size > 0,
              "%s/%s", dir, objects[i]);
  return hit;
}

static bool runtime_build(const char *dir) {
  return runtime_build_with(dir, "-O2");
}

/* Entries of dir whose name starts with prefix. */
static int count(const char *dir, const char *prefix) {
  DIR *dp = opendir(dir);
  if (!dp)
    return -1;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(dp)))
    n += de->d_name[0] != '.' && !strncmp(de->d_name, prefix, strlen(prefix));
  closedir(dp);
  return n;
}

/* The one entry's path. */
static char *entry_path(void) {
  static char path[512];
  DIR *dp = opendir(root);
  cr_assert_not_null(dp);
  struct dirent *de;
  path[0] = 0;
  while ((de = readdir(dp)))
    if (!strncmp(de->d_name, "runtime-", 8))
      snprintf(path, sizeof path, "%s/%s", root, de->d_name);
  closedir(dp);
  cr_assert(path[0], "no entry in %s", root);
  return path;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  static char buf[1 << 20];
  *len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  char *r = malloc(*len + 1);
  memcpy(r, buf, *len);
  return r;
}

static bool same_file(const char *a, const char *b) {
  size_t na, nb;
  char *x = slurp(a, &na), *y = slurp(b, &nb);
  bool same = na == nb && !memcmp(x, y, na);
  free(x);
  free(y);
  return same;
}

static void key_of(const char *dir, const char *cc, const char *opt,
                   char key[CG_CACHE_KEY_LEN + 1]) {
  char *argv[8];
  command(argv, cc, opt);
  cr_assert(cg_cache_key(argv, 1, dir, key), "no key with %s", cc);
  cr_assert_eq(strlen(key), CG_CACHE_KEY_LEN);
}

static void set_mtime(const char *path, time_t t) {
  struct timespec ts[2] = {{t, 0}, {t, 0}};
  cr_assert_eq(utimensat(AT_FDCWD, path, ts, 0), 0, "%s", path);
}

/* ---- SHA-256
 * ------------------------------------------------------------ */

static void expect_sha(const void *data, size_t n, const char *want) {
  unsigned char d[32];
  char hex[65];
  cg_sha256(data, n, d);
  for (int i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", d[i]);
  cr_expect_str_eq(hex, want, "SHA-256 of %zu bytes", n);
}

Test(cache, sha256_known_answers) {
  expect_sha(
      "", 0,
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  expect_sha(
      "abc", 3,
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  expect_sha(
      two, strlen(two),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  /* lengths at the padding's edges: 55, 56 and 64 bytes of a..z */
  char az[64];
  for (int i = 0; i < 64; i++)
    az[i] = (char)('a' + i % 26);
  expect_sha(
      az, 55,
      "595615dbe4f0f407ae397d08b4c2cb870cb9b0e11937416f950c5160acf9c005");
  expect_sha(
      az, 56,
      "784f623b787495078e93ff28a25b581df0584055a7e71d8cd90c454716b92f51");
  expect_sha(
      az, 64,
      "2fcd5a0d60e4c941381fcc4e00a4bf8be422c3ddfafb93c809e8d1e2bfffae8e");
  char *million = malloc(1000000);
  memset(million, 'a', 1000000);
  expect_sha(
      million, 1000000,
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  free(million);
}

/* ---- where the cache is
 * ------------------------------------------------- */

static void expect_root(const char *want) {
  char *got = cg_cache_root();
  if (want)
    cr_expect(got && !strcmp(got, want), "cache root %s, expected %s",
              got ? got : "(none)", want);
  else
    cr_expect_null(got, "cache root %s, expected none", got);
  free(got);
}

Test(cache, location_from_the_environment) {
  setenv("HOME", "/home/someone", 1);
  setenv("XDG_CACHE_HOME", "/xdg/cache", 1);
  setenv("MODELC_CACHE_DIR", "/my/cache", 1);
  expect_root("/my/cache");
  setenv("MODELC_CACHE_DIR", "off", 1);
  expect_root(NULL);
  /* relative: from the current directory, as the compiler runs elsewhere */
  char cwd[300], want[400];
  cr_assert_not_null(getcwd(cwd, sizeof cwd));
  snprintf(want, sizeof want, "%s/rel/cache", cwd);
  setenv("MODELC_CACHE_DIR", "rel/cache", 1);
  expect_root(want);
  /* empty is unset */
  setenv("MODELC_CACHE_DIR", "", 1);
  expect_root("/xdg/cache/modelc");
  unsetenv("MODELC_CACHE_DIR");
  expect_root("/xdg/cache/modelc");
  /* a relative XDG_CACHE_HOME is ignored, as the XDG spec says */
  setenv("XDG_CACHE_HOME", "relative", 1);
  expect_root("/home/someone/.cache/modelc");
  unsetenv("XDG_CACHE_HOME");
  expect_root("/home/someone/.cache/modelc");
  unsetenv("HOME");
  expect_root(NULL);
}

/* ---- the key
 * ------------------------------------------------------------ */

Test(cache, key_covers_command_and_runtime_text) {
  char *dir = make_build_dir("k");
  char k0[40], k[40];
  key_of(dir, "cc", "-O2", k0);
  key_of(dir, "cc", "-O2", k);
  cr_expect_str_eq(k, k0, "the same inputs give the same key");
  key_of(dir, "cc", "-O0", k);
  cr_expect_str_neq(k, k0, "another flag");
  write_text(path_in(dir, "tm.c"), "int tm(void) { return 5; }\n");
  key_of(dir, "cc", "-O2", k);
  cr_expect_str_eq(k, k0, "the model's files are not the runtime's");
  write_text(path_in(dir, "mc_a.h"), "#define MC_A 2\n");
  key_of(dir, "cc", "-O2", k);
  cr_expect_str_neq(k, k0, "a runtime header's text");
  write_text(path_in(dir, "mc_a.h"), "#define MC_A 1\n");
  key_of(dir, "cc", "-O2", k);
  cr_expect_str_eq(k, k0, "back to the same text");
  write_text(path_in(dir, "mc_new.h"), "\n");
  key_of(dir, "cc", "-O2", k);
  cr_expect_str_neq(k, k0, "one runtime file more");
  cr_assert_eq(rename(path_in(dir, "mc_new.h"), path_in(dir, "mc_old.h")), 0);
  char k1[40];
  key_of(dir, "cc", "-O2", k1);
  cr_expect_str_neq(k1, k, "a runtime file's name");
  setenv("CPATH", include, 1);
  key_of(dir, "cc", "-O2", k);
  cr_expect_str_neq(k, k1, "$CPATH moves the header search");
  char *argv[8];
  command(argv, "no-such-compiler-here", "-O2");
  cr_expect_not(cg_cache_key(argv, 1, dir, k),
                "a compiler that cannot say its version is not cached");
}

/* The compiler's identity, not only its name: a fake `cc` whose --version
 * changes (each key from a fresh process: it is asked once per process). */
static void key_in_child(const char *dir, const char *cc, char *key) {
  int fd[2];
  cr_assert_eq(pipe(fd), 0);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    char k[40] = {0};
    char *argv[8];
    command(argv, cc, "-O2");
    bool ok = cg_cache_key(argv, 1, dir, k);
    _exit(ok && write(fd[1], k, CG_CACHE_KEY_LEN) == CG_CACHE_KEY_LEN ? 0 : 1);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  cr_assert_eq(read(fd[0], key, CG_CACHE_KEY_LEN), CG_CACHE_KEY_LEN);
  key[CG_CACHE_KEY_LEN] = 0;
  close(fd[0]);
  close(fd[1]);
}

Test(cache, key_covers_the_compiler_version) {
  char *dir = make_build_dir("v");
  char script[600], version[600], k1[40], k2[40];
  snprintf(version, sizeof version, "%s/version", tmp);
  snprintf(script, sizeof script, "%s/fakecc", tmp);
  char text[1400];
  snprintf(text, sizeof text,
           "#!/bin/sh\nif [ \"$1\" = --version ]; then cat '%s'; exit 0; "
           "fi\nexec cc \"$@\"\n",
           version);
  write_text(script, text);
  cr_assert_eq(chmod(script, 0755), 0);
  write_text(version, "fakecc 1.0\n");
  key_in_child(dir, script, k1);
  write_text(version, "fakecc 1.1\n");
  key_in_child(dir, script, k2);
  cr_expect_str_neq(k1, k2, "the compiler's --version");
}

/* ---- store and hit
 * ------------------------------------------------------ */

Test(cache, second_build_hits_the_one_entry) {
  char *a = make_build_dir("a"), *b = make_build_dir("b");
  cr_expect_not(runtime_build(a), "an empty cache misses");
  cr_expect_eq(count(root, "runtime-"), 1);
  cr_expect_eq(count(root, "tmp-"), 0, "no staging directory left");
  cr_expect(runtime_build(b), "the same command and text hit");
  cr_expect_eq(count(root, "runtime-"), 1);
  for (int i = 0; i < 2; i++)
    cr_expect(same_file(path_in(a, objects[i]), path_in(b, objects[i])),
              "%s as compiled", objects[i]);
  /* the entry: the objects (read-only) and the manifest */
  char *e = entry_path();
  struct stat st;
  cr_expect(stat(path_in(e, "manifest"), &st) == 0);
  cr_expect(stat(path_in(e, "mc_a.o"), &st) == 0 && !(st.st_mode & 0222));
  size_t n;
  char *manifest = slurp(path_in(e, "manifest"), &n);
  manifest[n] = 0;
  cr_expect(strstr(manifest, "sys_h.h"), "headers are listed:\n%s", manifest);
  free(manifest);
  /* another flag: another entry */
  cr_expect_not(runtime_build_with(make_build_dir("c"), "-O0"));
  cr_expect_eq(count(root, "runtime-"), 2);
}

Test(cache, a_hit_touches_the_entry) {
  runtime_build(make_build_dir("a"));
  char *e = entry_path();
  set_mtime(e, time(NULL) - 86400);
  cr_assert(runtime_build(make_build_dir("b")));
  struct stat st;
  cr_assert_eq(stat(e, &st), 0);
  cr_expect_gt(st.st_mtime, time(NULL) - 3600);
}

/* ---- entries not to use
 * ------------------------------------------------- */

Test(cache, an_entry_missing_an_object_is_replaced) {
  runtime_build(make_build_dir("a"));
  char *e = entry_path();
  cr_assert_eq(unlink(path_in(e, "mc_b.o")), 0);
  cr_expect_not(runtime_build(make_build_dir("b")), "not used");
  cr_expect_eq(count(root, "runtime-"), 1);
  cr_expect_eq(count(root, "tmp-"), 0);
  cr_expect(runtime_build(make_build_dir("c")), "replaced by a whole one");
}

Test(cache, a_truncated_object_is_not_used) {
  runtime_build(make_build_dir("a"));
  char *e = entry_path();
  cr_assert_eq(chmod(path_in(e, "mc_a.o"), 0644), 0);
  cr_assert_eq(truncate(path_in(e, "mc_a.o"), 10), 0);
  char *b = make_build_dir("b");
  cr_expect_not(runtime_build(b));
  struct stat st;
  cr_expect(stat(path_in(b, "mc_a.o"), &st) == 0 && st.st_size > 10);
  cr_expect(runtime_build(make_build_dir("c")));
}

Test(cache, a_bad_manifest_is_not_used) {
  static const char *const bad[] = {"", "modelc runtime cache 0\n",
                                    "modelc runtime cache 1\nkey 00\n",
                                    "modelc runtime cache 1\nsomething else\n"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char name[32];
    snprintf(name, sizeof name, "a%zu", i);
    runtime_build(make_build_dir(name));
    char *e = entry_path();
    write_text(path_in(e, "manifest"), bad[i]);
    snprintf(name, sizeof name, "b%zu", i);
    cr_expect_not(runtime_build(make_build_dir(name)), "manifest '%s'", bad[i]);
  }
}

Test(cache, a_changed_system_header_is_a_miss) {
  runtime_build(make_build_dir("a"));
  write_text(path_in(include, "sys_h.h"), "#define SYS_H 3\n");
  cr_expect_not(runtime_build(make_build_dir("b")));
  cr_expect(runtime_build(make_build_dir("c")));
}

Test(cache, staging_directories_are_never_read) {
  runtime_build(make_build_dir("a"));
  /* a complete-looking entry under a staging name, from a killed build */
  char *e = entry_path(), old[700], fresh[700], cmd[2000];
  snprintf(old, sizeof old, "%s/tmp-old123", root);
  snprintf(fresh, sizeof fresh, "%s/tmp-new123", root);
  snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && cp -r '%s' '%s' && rm -rf '%s'",
           e, old, e, fresh, e);
  cr_assert_eq(system(cmd), 0);
  set_mtime(old, time(NULL) - 2 * 3600);
  cr_expect_not(runtime_build(make_build_dir("b")));
  cr_expect_eq(count(root, "runtime-"), 1);
  struct stat st;
  cr_expect_neq(stat(old, &st), 0, "a staging directory hours old goes");
  cr_expect_eq(stat(fresh, &st), 0, "a fresh one may be another build's");
}

/* ---- eviction
 * ----------------------------------------------------------- */

Test(cache, eviction_keeps_recent_entries_and_at_most_32) {
  cr_assert_eq(mkdir(root, 0777), 0);
  time_t now = time(NULL);
  char name[700];
  /* 40 entries used 1..40 hours ago, one 40 days ago */
  for (int i = 0; i < 41; i++) {
    snprintf(name, sizeof name, "%s/runtime-%032d", root, i);
    cr_assert_eq(mkdir(name, 0777), 0);
    write_text(path_in(name, "mc_a.o"), "x");
    set_mtime(name, i < 40 ? now - 3600 * (i + 1) : now - 40 * 86400);
  }
  runtime_build(make_build_dir("a"));
  cr_expect_eq(count(root, "runtime-"), 32);
  cr_expect_eq(count(root, "tmp-"), 0);
  struct stat st;
  snprintf(name, sizeof name, "%s/runtime-%032d", root, 0);
  cr_expect_eq(stat(name, &st), 0, "the most recently used stays");
  snprintf(name, sizeof name, "%s/runtime-%032d", root, 30);
  cr_expect_eq(stat(name, &st), 0, "the 31st most recent stays");
  snprintf(name, sizeof name, "%s/runtime-%032d", root, 31);
  cr_expect_neq(stat(name, &st), 0, "the 32nd goes: room for the new one");
  snprintf(name, sizeof name, "%s/runtime-%032d", root, 40);
  cr_expect_neq(stat(name, &st), 0, "unused for 40 days");
  cr_expect(runtime_build(make_build_dir("b")), "the new entry is there");
}

/* ---- concurrency
 * -------------------------------------------------------- */

Test(cache, concurrent_builds_share_one_entry) {
  enum { N = 4 };
  char *dirs[N];
  char name[16];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof name, "p%d", i);
    dirs[i] = strdup(make_build_dir(name));
  }
  pid_t pids[N];
  for (int i = 0; i < N; i++) {
    pids[i] = fork();
    cr_assert(pids[i] >= 0);
    if (pids[i] == 0) {
      /* all miss, all compile, all store: one rename wins */
      char *argv[8];
      command(argv, "cc", "-O2");
      CgCache c;
      bool hit = cg_cache_fetch(&c, argv, 1, dirs[i], objects, 2);
      if (!hit && cg_run_logged(argv, dirs[i], path_in(dirs[i], "cc.log")))
        _exit(1);
      if (!hit)
        cg_cache_store(&c, argv, dirs[i], objects, 2);
      cg_cache_free(&c);
      _exit(0);
    }
  }
  for (int i = 0; i < N; i++) {
    int status;
    cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  cr_expect_eq(count(root, "runtime-"), 1);
  cr_expect_eq(count(root, "tmp-"), 0, "the losers removed their copies");
  cr_expect(runtime_build(make_build_dir("after")));
  char *e = entry_path();
  for (int i = 0; i < N; i++) {
    cr_expect(same_file(path_in(dirs[i], "mc_a.o"), path_in(e, "mc_a.o")),
              "%s: the same object", dirs[i]);
    free(dirs[i]);
  }
}

/* ---- off, or no place to write
 * ------------------------------------------ */

Test(cache, off_touches_no_cache) {
  char home[400];
  snprintf(home, sizeof home, "%s/home", tmp);
  cr_assert_eq(mkdir(home, 0777), 0);
  setenv("HOME", home, 1);
  unsetenv("XDG_CACHE_HOME");
  setenv("MODELC_CACHE_DIR", "off", 1);
  cr_expect_not(runtime_build(make_build_dir("a")));
  cr_expect_not(runtime_build(make_build_dir("b")));
  cr_expect_eq(count(home, ""), 0, "nothing under $HOME");
  struct stat st;
  cr_expect_neq(stat(root, &st), 0);
}

Test(cache, an_unwritable_cache_still_builds) {
  /* a path under a regular file: cannot be created, even by root */
  char file[400], below[500];
  snprintf(file, sizeof file, "%s/a-file", tmp);
  write_text(file, "not a directory\n");
  snprintf(below, sizeof below, "%s/cache", file);
  setenv("MODELC_CACHE_DIR", below, 1);
  cr_expect_not(runtime_build(make_build_dir("a")));
  cr_expect_not(runtime_build(make_build_dir("b")));
  if (geteuid() != 0) { /* permissions do not stop root */
    cr_assert_eq(mkdir(root, 0555), 0);
    setenv("MODELC_CACHE_DIR", root, 1);
    cr_expect_not(runtime_build(make_build_dir("c")));
    cr_expect_eq(count(root, ""), 0);
  }
}
