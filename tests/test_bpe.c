/* GPT-2's BPE tokenizer (runtime/mc_bpe.h) on a tiny hand-made vocabulary:
 * the pre-tokenizer, merge order, decoding, and every malformation of
 * encoder.json and vocab.bpe we know of (plus truncations and random
 * mutations), which must fail with a message and never crash. The agreement
 * with the real GPT-2 files is tests/e2e/test_bpe.py. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mc_bpe.h"

static char tmpdir[64], enc_path[128], voc_path[128];

static void make_tmpdir(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/mc_bpe_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
  snprintf(enc_path, sizeof enc_path, "%s/encoder.json", tmpdir);
  snprintf(voc_path, sizeof voc_path, "%s/vocab.bpe", tmpdir);
}

static void remove_tmpdir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

static void write_bytes(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

/* GPT-2's bytes_to_unicode. */
static unsigned char_of(unsigned b) {
  if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
    return b;
  unsigned n = 0;
  for (unsigned k = 0; k < b; k++)
    n += !((k >= 0x21 && k <= 0x7E) || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE);
  return 0x100 + n;
}

/* The tiny vocabulary: byte b is id b, then these (Ġ = U+0120 = space). */
static const char *const extra_tokens[] = {
    "he", "ll", "hell", "hello", "\\u0120w", "aa", "<|endoftext|>", NULL};
enum { ID_HE = 256, ID_LL, ID_HELL, ID_HELLO, ID_SPACE_W, ID_AA, ID_EOT };
static const char tiny_vocab[] = "#version: 0.2\nh e\nl l\nhe ll\nhell o\n"
                                 "\xC4\xA0 w\na a\n";

/* The encoder.json of the tiny vocabulary; `tail` replaces the closing
 * "}" when given (to append entries). */
static char *tiny_encoder(const char *tail) {
  size_t cap = 16384, n = 0;
  char *s = malloc(cap);
  n += (size_t)snprintf(s + n, cap - n, "{");
  for (unsigned b = 0; b < 256; b++)
    n += (size_t)snprintf(s + n, cap - n, "%s\"\\u%04X\": %u", b ? ", " : "",
                          char_of(b), b);
  for (int i = 0; extra_tokens[i]; i++)
    n += (size_t)snprintf(s + n, cap - n, ",\n \"%s\": %d", extra_tokens[i],
                          256 + i);
  snprintf(s + n, cap - n, "%s", tail ? tail : "}\n");
  return s;
}

static McBpe *load_tiny(void) {
  char *enc = tiny_encoder(NULL);
  write_bytes(enc_path, enc, strlen(enc));
  write_bytes(voc_path, tiny_vocab, strlen(tiny_vocab));
  free(enc);
  McBpe *bpe = NULL;
  McError e = {0};
  int rc = mc_bpe_load(enc_path, voc_path, &bpe, &e);
  cr_assert_eq(rc, MC_OK, "%s", e.msg);
  return bpe;
}

static void expect_ids(const McBpe *bpe, const char *text, size_t len,
                       const int32_t *want, size_t nwant) {
  int32_t *ids;
  size_t n;
  char *back;
  size_t blen;
  McError e = {0};
  cr_assert_eq(mc_bpe_encode(bpe, text, len, &ids, &n, &e), MC_OK, "%s", e.msg);
  cr_assert_eq(n, nwant, "\"%s\": %zu ids, expected %zu", text, n, nwant);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(ids[i], want[i], "\"%s\": id %zu is %d, expected %d", text, i,
                 ids[i], want[i]);
  cr_assert_eq(mc_bpe_decode(bpe, ids, n, &back, &blen, &e), MC_OK);
  cr_assert_eq(blen, len);
  cr_assert(memcmp(back, text, len) == 0);
  cr_assert_eq(back[len], 0);
  free(back);
  free(ids);
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__})
#define NIDS(...) (sizeof((const int32_t[]){__VA_ARGS__}) / sizeof(int32_t))
#define EXPECT(text, ...)                                                      \
  expect_ids(bpe, text, sizeof text - 1, IDS(__VA_ARGS__), NIDS(__VA_ARGS__))

TestSuite(bpe, .init = make_tmpdir, .fini = remove_tmpdir);

Test(bpe, merges_by_rank) {
  McBpe *bpe = load_tiny();
  cr_assert_eq(mc_bpe_vocab_size(bpe), 263);
  EXPECT("hello", ID_HELLO);
  EXPECT("hell", ID_HELL);
  EXPECT("he", ID_HE);
  EXPECT("h", 'h');
  EXPECT("ello", 'e', ID_LL, 'o');
  EXPECT(" hello", ' ', ID_HELLO); /* "Ġ h" has no rank */
  EXPECT(" w", ID_SPACE_W);
  EXPECT(" wa", ID_SPACE_W, 'a');
  EXPECT("aaa", ID_AA, 'a'); /* leftmost first */
  EXPECT("aaaaa", ID_AA, ID_AA, 'a');
  EXPECT("hhello", 'h', ID_HELLO); /* "h h" has no rank */
  EXPECT("<|endoftext|>", '<', '|', 'e', 'n', 'd', 'o', 'f', 't', 'e', 'x', 't',
         '|', '>'); /* a special token is not split out */
  expect_ids(bpe, "", 0, NULL, 0);
  mc_bpe_free(bpe);
}

Test(bpe, any_bytes_round_trip) {
  McBpe *bpe = load_tiny();
  /* invalid UTF-8, NUL, a lone continuation byte, an overlong form, a cut
   * sequence at the end: each byte is an "other" character of its own */
  EXPECT("a\xFF\x80he\x00\xC0\xAF\xE6\x97", 'a', 0xFF, 0x80, ID_HE, 0, 0xC0,
         0xAF, 0xE6, 0x97);
  unsigned char all[512];
  for (int i = 0; i < 512; i++)
    all[i] = (unsigned char)(i * 7 + 3);
  int32_t *ids;
  size_t n, blen;
  char *back;
  cr_assert_eq(
      mc_bpe_encode(bpe, (const char *)all, sizeof all, &ids, &n, NULL), MC_OK);
  cr_assert_eq(mc_bpe_decode(bpe, ids, n, &back, &blen, NULL), MC_OK);
  cr_assert_eq(blen, sizeof all);
  cr_assert(memcmp(back, all, sizeof all) == 0);
  free(back);
  free(ids);
  mc_bpe_free(bpe);
}

Test(bpe, long_pieces) {
  McBpe *bpe = load_tiny();
  size_t len = 100001;
  char *text = malloc(len);
  memset(text, 'a', len);
  int32_t *ids;
  size_t n;
  cr_assert_eq(mc_bpe_encode(bpe, text, len, &ids, &n, NULL), MC_OK);
  cr_assert_eq(n, len / 2 + 1);
  for (size_t i = 0; i + 1 < n; i++)
    cr_assert_eq(ids[i], ID_AA);
  cr_assert_eq(ids[n - 1], 'a');
  free(ids);
  free(text);
  mc_bpe_free(bpe);
}

Test(bpe, decode_out_of_range) {
  McBpe *bpe = load_tiny();
  char *text = (char *)1;
  size_t len = 1;
  McError e = {0};
  cr_assert_eq(mc_bpe_decode(bpe, IDS(1, 263), 2, &text, &len, &e),
               MC_ERR_RANGE);
  cr_assert_null(text);
  cr_assert(strstr(e.msg, "263") && strstr(e.msg, "index 1"), "%s", e.msg);
  cr_assert_eq(mc_bpe_decode(bpe, IDS(-5), 1, &text, &len, &e), MC_ERR_RANGE);
  cr_assert_eq(mc_bpe_decode(bpe, NULL, 0, &text, &len, &e), MC_OK);
  cr_assert_eq(len, 0);
  cr_assert_str_eq(text, "");
  free(text);
  mc_bpe_free(bpe);
}

/* ---- the pre-tokenizer -------------------------------------------------- */
/* text's pieces joined by '|' */
static void expect_split(const char *text, const char *want) {
  char got[256];
  size_t len = strlen(text), o = 0;
  for (size_t i = 0; i < len;) {
    size_t j = mc_bpe_split(text, len, i);
    cr_assert(j > i && j <= len);
    if (i)
      got[o++] = '|';
    memcpy(got + o, text + i, j - i);
    o += j - i;
    i = j;
  }
  got[o] = 0;
  cr_assert_str_eq(got, want, "split of \"%s\"", text);
}

Test(bpe, split) {
  expect_split("Hello world", "Hello| world");
  expect_split("it's we're they've I'm we'll he'd don't",
               "it|'s| we|'re| they|'ve| I|'m| we|'ll| he|'d| don|'t");
  expect_split("IT'S 'sx ''s 'x", "IT|'|S| '|sx| ''|s| '|x");
  expect_split("a1b2 12 x", "a|1|b|2| 12| x");
  expect_split("hi!! ?? (x)", "hi|!!| ??| (|x|)");
  expect_split("a  b", "a| | b");
  expect_split("a   b", "a|  | b");
  expect_split("a \t b", "a| \t| b");
  expect_split("a\t\tb", "a|\t|\t|b");
  expect_split("end  ", "end|  ");
  expect_split("x\n\ny", "x|\n|\n|y");
  expect_split("  ", "  ");
  expect_split(" ", " ");
  /* \p{L} and \p{N} beyond ASCII; U+3000 and U+00A0 are \s */
  expect_split("caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC 42\xD9\xA3",
               "caf\xC3\xA9| \xE6\x97\xA5\xE6\x9C\xAC| 42\xD9\xA3");
  expect_split("x\xE3\x80\x80y", "x|\xE3\x80\x80|y");
  expect_split("x\xC2\xA0\xC2\xA0y", "x|\xC2\xA0|\xC2\xA0|y");
  /* emoji are neither letters nor numbers */
  expect_split("a\xF0\x9F\x98\x80\xF0\x9F\x98\x81"
               "b",
               "a|\xF0\x9F\x98\x80\xF0\x9F\x98\x81|"
               "b");
  /* invalid bytes join a run of "other" */
  expect_split("a\xFF!b", "a|\xFF!|b");
}

Test(bpe, unicode_classes) {
  cr_assert_eq(mc_unicode_class('A'), MC_UCLASS_LETTER);
  cr_assert_eq(mc_unicode_class(0x4E00), MC_UCLASS_LETTER);
  cr_assert_eq(mc_unicode_class(0x0663), MC_UCLASS_NUMBER);
  cr_assert_eq(mc_unicode_class(0x00BD), MC_UCLASS_NUMBER);
  cr_assert_eq(mc_unicode_class(0x3000), MC_UCLASS_SPACE);
  cr_assert_eq(mc_unicode_class(0xFEFF), MC_UCLASS_SPACE);
  cr_assert_eq(mc_unicode_class(0x2029), MC_UCLASS_SPACE);
  cr_assert_eq(mc_unicode_class(0x0085), MC_UCLASS_OTHER);
  cr_assert_eq(mc_unicode_class(0x1F600), MC_UCLASS_OTHER);
  cr_assert_eq(mc_unicode_class(0x0301), MC_UCLASS_OTHER); /* a mark */
  cr_assert_eq(mc_unicode_class(0x110000), MC_UCLASS_OTHER);
}

/* ---- hostile files ------------------------------------------------------ */
/* Loads the given files, expecting code and a message containing needle. */
static void expect_load(const void *enc, size_t enc_len, const void *voc,
                        size_t voc_len, int code, const char *needle) {
  write_bytes(enc_path, enc, enc_len);
  write_bytes(voc_path, voc, voc_len);
  McBpe *bpe = (McBpe *)1;
  McError e = {0};
  int rc = mc_bpe_load(enc_path, voc_path, &bpe, &e);
  cr_assert_eq(rc, code, "expected %d, got %d: %s", code, rc, e.msg);
  if (code != MC_OK) {
    cr_assert_null(bpe);
    cr_assert(e.msg[0]);
    cr_assert(!needle || strstr(e.msg, needle), "message \"%s\" lacks \"%s\"",
              e.msg, needle);
  }
  mc_bpe_free(rc == MC_OK ? bpe : NULL);
}

static void bad_encoder(const char *tail, const char *needle) {
  char *enc = tiny_encoder(tail);
  expect_load(enc, strlen(enc), tiny_vocab, strlen(tiny_vocab), MC_ERR_FORMAT,
              needle);
  free(enc);
}

static void bad_encoder_text(const char *enc, const char *needle) {
  expect_load(enc, strlen(enc), tiny_vocab, strlen(tiny_vocab), MC_ERR_FORMAT,
              needle);
}

static void bad_vocab(const char *voc, const char *needle) {
  char *enc = tiny_encoder(NULL);
  expect_load(enc, strlen(enc), voc, strlen(voc), MC_ERR_FORMAT, needle);
  free(enc);
}

Test(bpe, bad_encoder_json) {
  bad_encoder_text("", "expected '{'");
  bad_encoder_text("[]", "expected '{'");
  bad_encoder_text("{}", "no tokens");
  bad_encoder_text("{\"a\": 0", "truncated");
  bad_encoder(", \"x\": 263,}", "expected a string key");
  bad_encoder(", \"x\" 263}", "expected ':'");
  bad_encoder(", 5: 263}", "expected a string key");
  bad_encoder(", \"x\": 263} x", "unexpected data");
  bad_encoder(", \"x\": 263 \"y\": 264}", "expected ',' or '}'");
  bad_encoder(", \"x\": {}}", "expected a token id");
  bad_encoder(", \"x\": -1}", "negative");
  bad_encoder(", \"x\": 2.5}", "not an integer");
  bad_encoder(", \"x\": 263e0}", "not an integer");
  bad_encoder(", \"x\": 0263}", "leading zero");
  bad_encoder(", \"x\": 99999999999}", "too large");
  bad_encoder(", \"x\": 2147483647}", "not below the token count");
  bad_encoder(", \"x\": 300}", "not below the token count");
  bad_encoder(", \"x\": 5}", "token id 5 is given twice");
  bad_encoder(", \"he\": 263}", "token \"he\" is given twice");
  bad_encoder(", \"\\u0068\\u0065\": 263}", "token \"he\" is given twice");
  bad_encoder(", \"\": 263}", "empty token");
  bad_encoder(", \"a\tb\": 263}", "control character");
  bad_encoder(", \"a\\qb\": 263}", "bad escape");
  bad_encoder(", \"a\\u12\": 263}", "bad \\u escape");
  bad_encoder(", \"\\uD800\": 263}", "lone high surrogate");
  bad_encoder(", \"\\uD800\\u0041\": 263}", "lone high surrogate");
  bad_encoder(", \"\\uDC00\": 263}", "lone low surrogate");
  bad_encoder(", \"\\uD83D\\uDE00\": 263}", "U+1F600 is not in");
  bad_encoder(", \"a b\": 263}", "U+0020 is not in");
  bad_encoder(", \"\\u0000\": 263}", "U+0000 is not in");
  bad_encoder(", \"\xC3\x28\": 263}", "invalid UTF-8");
  bad_encoder(", \"\xC0\x80\": 263}", "invalid UTF-8");     /* overlong */
  bad_encoder(", \"\xED\xA0\x80\": 263}", "invalid UTF-8"); /* surrogate */
  bad_encoder(", \"\xF4\x90\x80\x80\": 263}", "invalid UTF-8");
  bad_encoder(", \"\xE6\x97\": 263}", "invalid UTF-8");
  bad_encoder(", \"\xFF\": 263}", "invalid UTF-8");
  /* ids must be 0..N-1: one byte token missing leaves a gap */
  char *enc = tiny_encoder(NULL);
  char *a = strstr(enc, "\"\\u0041\": 65, ");
  cr_assert_not_null(a);
  memmove(a, a + 14, strlen(a + 14) + 1);
  bad_encoder_text(enc, "not below the token count");
  free(enc);
  /* ... and with the gap filled, byte 'A' has no token */
  enc = tiny_encoder(NULL);
  a = strstr(enc, "\"\\u0041\": 65, ");
  memcpy(a, "\"AA\": 65,     ", 14);
  bad_encoder_text(enc, "no token for byte 0x41");
  free(enc);
}

Test(bpe, bad_vocab_bpe) {
  bad_vocab("", "#version");
  bad_vocab("h e\n", "#version");
  bad_vocab("#version: 0.2", "truncated");
  bad_vocab("#version: 0.2\nh e", "truncated");
  bad_vocab("#version: 0.2\nh e\nl", "truncated");
  bad_vocab("#version: 0.2\n\n", "two tokens");
  bad_vocab("#version: 0.2\nhe\n", "two tokens");
  bad_vocab("#version: 0.2\nh  e\n", "two tokens");
  bad_vocab("#version: 0.2\nh e l\n", "two tokens");
  bad_vocab("#version: 0.2\n h\n", "two tokens");
  bad_vocab("#version: 0.2\nh \n", "two tokens");
  bad_vocab("#version: 0.2\nh\te\n", "two tokens");
  bad_vocab("#version: 0.2\nh e\nh e\n", "already on line 2");
  bad_vocab("#version: 0.2\nhe x\n", "the merge of \"he x\"");
  bad_vocab("#version: 0.2\nzz e\n", "token \"zz\" is not in");
  bad_vocab("#version: 0.2\nh \xC3\x28\n", "invalid UTF-8");
  bad_vocab("#version: 0.2\nh \xE2\x82\xAC\n", "U+20AC is not in");
  /* what is fine: no merges at all, CRLF line ends */
  char *enc = tiny_encoder(NULL);
  const char *ok[] = {"#version: 0.2\n", "#version: 0.2\r\nh e\r\nl l\r\n"};
  for (int i = 0; i < 2; i++)
    expect_load(enc, strlen(enc), ok[i], strlen(ok[i]), MC_OK, NULL);
  free(enc);
}

Test(bpe, missing_files) {
  McBpe *bpe = (McBpe *)1;
  McError e = {0};
  cr_assert_eq(
      mc_bpe_load("/nonexistent/encoder.json", "/nonexistent/v", &bpe, &e),
      MC_ERR_IO);
  cr_assert_null(bpe);
  cr_assert(strstr(e.msg, "/nonexistent/encoder.json"), "%s", e.msg);
  char *enc = tiny_encoder(NULL);
  write_bytes(enc_path, enc, strlen(enc));
  free(enc);
  cr_assert_eq(mc_bpe_load(enc_path, tmpdir, &bpe, &e), MC_ERR_IO, "%s", e.msg);
  cr_assert_eq(mc_bpe_load(enc_path, "/nonexistent/v", &bpe, &e), MC_ERR_IO);
}

/* Every proper prefix of both files fails cleanly (a vocab.bpe cut right
 * after a line end is a shorter, valid list). */
Test(bpe, truncations) {
  char *enc = tiny_encoder(NULL);
  size_t elen = strlen(enc), vlen = strlen(tiny_vocab);
  /* the trailing "}\n": only the newline may go */
  for (size_t n = 0; n + 1 < elen; n++)
    expect_load(enc, n, tiny_vocab, vlen, MC_ERR_FORMAT, NULL);
  for (size_t n = 0; n < vlen; n++)
    expect_load(enc, elen, tiny_vocab, n,
                n > 0 && tiny_vocab[n - 1] == '\n' ? MC_OK : MC_ERR_FORMAT,
                NULL);
  free(enc);
}

/* Random byte mutations of both files: any outcome but a crash or a leak;
 * what loads must encode and decode. */
Test(bpe, mutations) {
  char *enc = tiny_encoder(NULL);
  size_t elen = strlen(enc), vlen = strlen(tiny_vocab);
  char *e2 = malloc(elen), *v2 = malloc(vlen);
  unsigned seed = 12345;
  int loaded = 0;
  for (int round = 0; round < 1500; round++) {
    memcpy(e2, enc, elen);
    memcpy(v2, tiny_vocab, vlen);
    for (int k = 0; k < 1 + round % 4; k++) {
      seed = seed * 1103515245u + 12345u;
      int in_vocab = (seed >> 8) % 3 == 0;
      size_t at = (seed >> 12) % (in_vocab ? vlen : elen);
      seed = seed * 1103515245u + 12345u;
      (in_vocab ? v2 : e2)[at] = (char)(seed >> 16);
    }
    write_bytes(enc_path, e2, elen);
    write_bytes(voc_path, v2, vlen);
    McBpe *bpe = NULL;
    McError e = {0};
    int rc = mc_bpe_load(enc_path, voc_path, &bpe, &e);
    cr_assert(rc == MC_OK || rc == MC_ERR_FORMAT, "rc %d: %s", rc, e.msg);
    if (rc == MC_OK) {
      loaded++;
      int32_t *ids;
      size_t n, blen;
      char *back;
      const char text[] = "hello world aaa he'll \xFF";
      cr_assert_eq(mc_bpe_encode(bpe, text, sizeof text - 1, &ids, &n, NULL),
                   MC_OK);
      cr_assert_eq(mc_bpe_decode(bpe, ids, n, &back, &blen, NULL), MC_OK);
      cr_assert_eq(blen, sizeof text - 1);
      cr_assert(memcmp(back, text, blen) == 0);
      free(back);
      free(ids);
      mc_bpe_free(bpe);
    } else {
      cr_assert(e.msg[0]);
    }
  }
  cr_log_info("%d of 1500 mutated files loaded", loaded);
  free(e2);
  free(v2);
  free(enc);
}
