/* safetensors: round trips (F32, F16, BF16), half-precision rounding, and a
 * corpus of malformed files that must each be refused with a message. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mv.h"
#include "mvtest.h"

/* 8-byte length + header + ndata zero bytes (or `hl` overriding the length) */
static unsigned char *make(const char *header, size_t ndata, uint64_t hl, size_t *len) {
  size_t h = strlen(header);
  if (hl == (uint64_t)-1) hl = h;
  *len = 8 + h + ndata;
  unsigned char *b = calloc(1, *len + 1);
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hl >> (8 * i));
  memcpy(b + 8, header, h);
  return b;
}

static int parse_rc(const char *header, size_t ndata, uint64_t hl, const char *expect) {
  size_t len;
  unsigned char *b = make(header, ndata, hl, &len);
  mv_st_file *f = NULL;
  mv_err err = {0, {0}};
  int rc = mv_st_parse(&f, b, len, 1, &err);
  if (rc == MV_OK) {
    fprintf(stderr, "accepted a bad file: %s\n", header);
    mv_st_free(f);
  } else if (expect && !strstr(err.msg, expect)) {
    fprintf(stderr, "message \"%s\" does not mention \"%s\"\n", err.msg, expect);
    rc = MV_OK;
  }
  free(b);
  return rc;
}

#define T1 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

int main(void) {
  mv_err err;
  /* ---- half precision ---- */
  CHECK(mv_f32_to_f16(1.0f) == 0x3c00);
  CHECK(mv_f32_to_f16(-2.0f) == 0xc000);
  CHECK(mv_f32_to_f16(65504.0f) == 0x7bff);
  CHECK(mv_f32_to_f16(65520.0f) == 0x7c00);
  CHECK(mv_f32_to_f16(0.1f) == 0x2e66);
  CHECK(mv_f32_to_f16(0x1.0p-24f) == 0x0001);
  CHECK(mv_f32_to_f16(0x1.0p-25f) == 0x0000);   /* tie to even */
  CHECK(mv_f32_to_f16(0x1.8p-24f) == 0x0002);   /* 1.5 ulp: tie to even */
  CHECK(mv_f32_to_f16(1e-9f) == 0x0000);
  CHECK(mv_f32_to_f16(1.0f + 0x1.0p-11f) == 0x3c00); /* tie to even */
  CHECK(mv_f32_to_f16(1.0f + 0x1.8p-10f) == 0x3c02);
  /* halfway between the largest subnormal (0x03ff, odd) and the smallest normal (0x0400, even) */
  CHECK(mv_f32_to_f16(0x1.ffcp-15f) == 0x0400);
  CHECK(mv_f32_to_f16(0x1.ffbfep-15f) == 0x03ff); /* just below halfway */
  CHECK(mv_f32_to_f16(INFINITY) == 0x7c00 && mv_f32_to_f16(-INFINITY) == 0xfc00);
  CHECK(isnan(mv_f16_to_f32(mv_f32_to_f16(NAN))));
  CHECK(mv_f16_to_f32(0x0001) == 0x1.0p-24f);
  CHECK(mv_f16_to_f32(0x3555) == 0x1.554p-2f);
  /* every finite half survives half -> float -> half */
  int bad = 0;
  for (unsigned h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00) continue;
    if (mv_f32_to_f16(mv_f16_to_f32((uint16_t)h)) != h) bad++;
  }
  CHECK(bad == 0);
  CHECK(mv_f32_to_bf16(1.0f) == 0x3f80 && mv_bf16_to_f32(0x3f80) == 1.0f);
  CHECK(mv_f32_to_bf16(1.0f + 0x1.0p-8f) == 0x3f80); /* tie to even */

  /* ---- round trip ---- */
  float v[6] = {1.5f, -2.25f, 0.1f, 1000.0f, -0.0f, 3.0e-5f};
  mv_tensor t, t1;
  int64_t s23[2] = {2, 3}, s0[1] = {0};
  mv_tensor_init(&t, v, 2, s23, NULL);
  mv_tensor_init(&t1, v, 1, s0, NULL);
  mv_tensor tt;
  mv_tensor_transpose(&tt, &t, 0, 1, NULL); /* non-contiguous source */
  mv_st_writer *w = mv_st_writer_new();
  CHECK(mv_st_writer_add(w, "w/f32", MV_DT_F32, &t, &err) == MV_OK);
  CHECK(mv_st_writer_add(w, "w/f16", MV_DT_F16, &t, &err) == MV_OK);
  CHECK(mv_st_writer_add(w, "w/bf16", MV_DT_BF16, &tt, &err) == MV_OK);
  CHECK(mv_st_writer_add(w, "empty", MV_DT_F32, &t1, &err) == MV_OK);
  CHECK(mv_st_writer_add(w, "w/f32", MV_DT_F32, &t, &err) == MV_EINVAL);
  CHECK(mv_st_writer_add(w, "__metadata__", MV_DT_F32, &t, &err) == MV_EINVAL);
  CHECK(mv_st_writer_add(w, "i", MV_DT_I32, &t, &err) == MV_EINVAL);
  CHECK(mv_st_writer_meta(w, "format_version", "1", &err) == MV_OK);
  CHECK(mv_st_writer_meta(w, "quote\"and\\slash\n", "caf\xc3\xa9", &err) == MV_OK);
  unsigned char *buf;
  size_t len;
  CHECK(mv_st_writer_bytes(w, &buf, &len, &err) == MV_OK);
  uint64_t hl = 0;
  for (int i = 0; i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
  CHECK((8 + hl) % 8 == 0);
  mv_st_file *f;
  CHECK(mv_st_parse(&f, buf, len, 0, &err) == MV_OK);
  if (f) {
    CHECK(mv_st_count(f) == 4);
    const mv_st_entry *e = mv_st_find(f, "w/f32");
    float out[6];
    CHECK(e && e->dtype == MV_DT_F32 && e->ndim == 2 && e->shape[1] == 3);
    CHECK(e && mv_st_entry_to_f32(e, out, &err) == MV_OK && memcmp(out, v, sizeof v) == 0);
    e = mv_st_find(f, "w/f16");
    CHECK(e && e->dtype == MV_DT_F16 && mv_st_entry_to_f32(e, out, &err) == MV_OK);
    for (int i = 0; i < 6; i++) CHECK(out[i] == mv_f16_to_f32(mv_f32_to_f16(v[i])));
    e = mv_st_find(f, "w/bf16");
    CHECK(e && e->shape[0] == 3 && mv_st_entry_to_f32(e, out, &err) == MV_OK);
    CHECK(out[1] == mv_bf16_to_f32(mv_f32_to_bf16(v[3]))); /* transposed order */
    e = mv_st_find(f, "empty");
    CHECK(e && e->numel == 0);
    CHECK(strcmp(mv_st_meta_find(f, "format_version"), "1") == 0);
    CHECK(strcmp(mv_st_meta_find(f, "quote\"and\\slash\n"), "caf\xc3\xa9") == 0);
    mv_st_free(f);
  }
  free(buf);

  /* atomic save: a failure mid-write (here the file size limit, so write() fails with EFBIG
   * after a few bytes) leaves the old file intact and no temporary behind; a missing folder
   * fails cleanly */
  char dir[] = "/tmp/mvst.XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256], missing[256];
  snprintf(path, sizeof path, "%s/m.safetensors", dir);
  snprintf(missing, sizeof missing, "%s/no/such/dir/m.safetensors", dir);
  CHECK(mv_st_writer_save(w, path, &err) == MV_OK);
  unsigned char *old;
  size_t oldlen;
  CHECK(mv_read_file(path, 1 << 20, &old, &oldlen, &err) == MV_OK);
  {
    mv_st_writer *w2 = mv_st_writer_new();
    CHECK(mv_st_writer_add(w2, "other", MV_DT_F32, &t, &err) == MV_OK);
    struct rlimit saved, lim;
    CHECK(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    lim = saved;
    lim.rlim_cur = 16;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = mv_st_writer_save(w2, path, &err);
    CHECK(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    signal(SIGXFSZ, prev);
    CHECK(rc == MV_EIO && strstr(err.msg, "m.safetensors"));
    mv_st_writer_free(w2);
  }
  unsigned char *now = NULL;
  size_t nowlen = 0;
  CHECK(mv_read_file(path, 1 << 20, &now, &nowlen, &err) == MV_OK);
  CHECK(now && nowlen == oldlen && memcmp(now, old, oldlen) == 0);
  free(now);
  free(old);
  int entries = 0;
  DIR *d = opendir(dir);
  CHECK(d != NULL);
  for (struct dirent *de; d && (de = readdir(d));)
    if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
      entries++;
      CHECK(strcmp(de->d_name, "m.safetensors") == 0);
    }
  if (d) closedir(d);
  CHECK(entries == 1);
  CHECK(mv_st_writer_save(w, missing, &err) == MV_EIO);
  CHECK(mv_st_read(&f, path, &err) == MV_OK);
  if (f) mv_st_free(f);
  CHECK(mv_st_read(&f, missing, &err) == MV_EIO && strstr(err.msg, "no/such"));
  CHECK(mv_st_read(&f, dir, &err) == MV_EIO);
  CHECK(unlink(path) == 0);
  CHECK(rmdir(dir) == 0); /* nothing else was left in it */
  mv_st_writer_free(w);

  /* ---- the malformed corpus ---- */
  const uint64_t D = (uint64_t)-1;
  {
    mv_st_file *g = NULL;
    CHECK(mv_st_parse(&g, "", 0, 0, &err) == MV_EFORMAT && strstr(err.msg, "shorter")); /* empty */
    CHECK(mv_st_parse(&g, "\x02\0\0\0\0\0\0", 7, 0, &err) == MV_EFORMAT);           /* 7 bytes */
  }
  CHECK(parse_rc("{}", 0, 1ull << 40, "limit") != MV_OK);               /* huge header length */
  CHECK(parse_rc("{}", 0, 500, "truncated") != MV_OK);                  /* header past the end */
  CHECK(parse_rc("[]", 0, D, "not a JSON object") != MV_OK);            /* not an object */
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\"", 0, D, NULL) != MV_OK);   /* cut JSON */
  CHECK(parse_rc("{" T1 ",}", 8, D, NULL) != MV_OK);                    /* trailing comma */
  CHECK(parse_rc("{" T1 "} x", 8, D, "trailing") != MV_OK);             /* junk after the object */
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, D, "unknown dtype") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, D, "needs") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, D, "past the data") != MV_OK);
  CHECK(parse_rc("{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, D, "overlaps") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, D, "negative") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, D,
                 "too large") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8, D,
                 "too large") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, D, "end before") != MV_OK);
  CHECK(parse_rc("{" T1 "," T1 "}", 16, D, "twice") != MV_OK);          /* duplicate name */
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, D, "missing data_offsets") != MV_OK);
  CHECK(parse_rc("{\"__metadata__\":{\"k\":1}," T1 "}", 8, D, "strings") != MV_OK);
  CHECK(parse_rc("{" T1 ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16, D, "gap") != MV_OK);
  CHECK(parse_rc("{" T1 "}", 12, D, "not described") != MV_OK);         /* bytes left over */
  CHECK(parse_rc("{\"a\\x\":{}}", 0, D, "escape") != MV_OK);
  CHECK(parse_rc("{\"a\\ud800\":{}}", 0, D, "surrogate") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, D, "integer") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, D,
                 "dimensions") != MV_OK);
  CHECK(parse_rc("{}", 0, 0, "not a JSON object") != MV_OK);             /* zero header length */
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, D, "unexpected") != MV_OK);
  CHECK(parse_rc("{\"\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, D, "empty tensor name") != MV_OK);
  CHECK(parse_rc("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,18446744073709551615]}}", 8, D,
                 "too large") != MV_OK);
  CHECK(parse_rc("{\"a\001\":{}}", 0, D, "control") != MV_OK);
  CHECK(parse_rc("{\"__metadata__\":{\"k\":\"v\"},\"__metadata__\":{}}", 0, D, "two __metadata__") != MV_OK);
  /* an unsupported (but valid) dtype parses and then refuses conversion */
  {
    size_t l;
    unsigned char *b = make("{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, D, &l);
    CHECK(mv_st_parse(&f, b, l, 0, &err) == MV_OK);
    if (f) {
      float o[2];
      CHECK(mv_st_entry_to_f32(mv_st_get(f, 0), o, &err) == MV_EUNSUPPORTED);
      mv_st_free(f);
    }
    free(b);
  }
  /* an empty file set: "{}" with no data is valid */
  {
    size_t l;
    unsigned char *b = make("{}      ", 0, D, &l);
    CHECK(mv_st_parse(&f, b, l, 0, &err) == MV_OK);
    if (f) {
      CHECK(mv_st_count(f) == 0);
      mv_st_free(f);
    }
    free(b);
  }
  /* every truncation of a valid file is refused */
  w = mv_st_writer_new();
  mv_st_writer_add(w, "x", MV_DT_F16, &t, &err);
  mv_st_writer_bytes(w, &buf, &len, &err);
  int accepted = 0;
  for (size_t cut = 0; cut < len; cut++) {
    if (mv_st_parse(&f, buf, cut, 1, &err) == MV_OK) {
      accepted++;
      mv_st_free(f);
    }
  }
  CHECK(accepted == 0);
  free(buf);
  mv_st_writer_free(w);
  MVT_DONE();
}
