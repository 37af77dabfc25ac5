/* mv_safetensors.c -- the safetensors format, read and write.
 *
 * Layout: u64 little-endian N | N bytes of JSON header | data block.
 * Header: {"__metadata__": {str: str}, NAME: {"dtype": D, "shape": [..],
 * "data_offsets": [begin, end]}, ...}; offsets are relative to the data block.
 * The reader trusts nothing: header length, JSON syntax, UTF-8 escapes,
 * duplicate keys, dtype names, shapes (overflow), byte counts, and that the
 * tensors tile the data block exactly (as the reference implementation
 * demands: sorted by offset, no gap, no overlap, nothing left over). */
#define _POSIX_C_SOURCE 200809L
#include "mv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mv_safetensors.c assumes a little-endian host"
#endif

static const struct {
  const char *name;
  int size;
} DT[MV_DT_COUNT] = {
    [MV_DT_F32] = {"F32", 4},  [MV_DT_F16] = {"F16", 2}, [MV_DT_BF16] = {"BF16", 2}, [MV_DT_F64] = {"F64", 8},
    [MV_DT_I8] = {"I8", 1},    [MV_DT_U8] = {"U8", 1},   [MV_DT_I16] = {"I16", 2},   [MV_DT_U16] = {"U16", 2},
    [MV_DT_I32] = {"I32", 4},  [MV_DT_U32] = {"U32", 4}, [MV_DT_I64] = {"I64", 8},   [MV_DT_U64] = {"U64", 8},
    [MV_DT_BOOL] = {"BOOL", 1}, [MV_DT_F8_E4M3] = {"F8_E4M3", 1}, [MV_DT_F8_E5M2] = {"F8_E5M2", 1},
};

const char *mv_dtype_name(mv_dtype dt) { return (unsigned)dt < MV_DT_COUNT ? DT[dt].name : "?"; }
int mv_dtype_size(mv_dtype dt) { return (unsigned)dt < MV_DT_COUNT ? DT[dt].size : 0; }

int mv_dtype_from_name(const char *s, size_t len, mv_dtype *out) {
  for (int i = 0; i < MV_DT_COUNT; i++)
    if (strlen(DT[i].name) == len && memcmp(DT[i].name, s, len) == 0) {
      *out = (mv_dtype)i;
      return 1;
    }
  return 0;
}

struct mv_st_file {
  unsigned char *owned;
  const unsigned char *data;
  size_t data_len;
  int n, cap;
  mv_st_entry *e;
  int nmeta, metacap;
  char **mkey, **mval;
};

void mv_st_free(mv_st_file *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) free(f->e[i].name);
  for (int i = 0; i < f->nmeta; i++) {
    free(f->mkey[i]);
    free(f->mval[i]);
  }
  free(f->e);
  free(f->mkey);
  free(f->mval);
  free(f->owned);
  free(f);
}

/* ---- a strict JSON reader for the header --------------------------------- */
typedef struct {
  const char *p, *start, *end;
  mv_err *err;
} J;

static int jerr(J *j, const char *what) {
  return mv_seterr(j->err, MV_EFORMAT, "safetensors header: %s at byte %ld", what, (long)(j->p - j->start));
}

static void ws(J *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

static int expect(J *j, char c) {
  ws(j);
  if (j->p >= j->end || *j->p != c) {
    char m[40];
    snprintf(m, sizeof m, "expected '%c'", c);
    return jerr(j, m);
  }
  j->p++;
  return MV_OK;
}

static int peek(J *j, char c) {
  ws(j);
  return j->p < j->end && *j->p == c;
}

static int hex4(J *j, unsigned *out) {
  if (j->end - j->p < 4) return jerr(j, "truncated \\u escape");
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = j->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return jerr(j, "bad \\u escape");
  }
  j->p += 4;
  *out = v;
  return MV_OK;
}

/* A JSON string as a malloc'd, NUL-terminated UTF-8 string (no NUL inside). */
static int jstring(J *j, char **out) {
  *out = NULL;
  ws(j);
  if (j->p >= j->end || *j->p != '"') return jerr(j, "expected a string");
  j->p++;
  size_t cap = 16, n = 0;
  char *s = malloc(cap);
  if (!s) return mv_seterr(j->err, MV_ENOMEM, "out of memory");
  for (;;) {
    if (j->p >= j->end) {
      free(s);
      return jerr(j, "unterminated string");
    }
    unsigned char c = (unsigned char)*j->p++;
    unsigned cp;
    char buf[4];
    int len = 1;
    if (c == '"') break;
    if (c < 0x20) {
      free(s);
      return jerr(j, "control character in a string");
    }
    if (c != '\\') {
      buf[0] = (char)c;
    } else {
      if (j->p >= j->end) {
        free(s);
        return jerr(j, "unterminated string");
      }
      char e = *j->p++;
      switch (e) {
      case '"': case '\\': case '/': buf[0] = e; break;
      case 'b': buf[0] = '\b'; break;
      case 'f': buf[0] = '\f'; break;
      case 'n': buf[0] = '\n'; break;
      case 'r': buf[0] = '\r'; break;
      case 't': buf[0] = '\t'; break;
      case 'u': {
        int rc = hex4(j, &cp);
        if (rc) { free(s); return rc; }
        if (cp >= 0xd800 && cp <= 0xdbff) {
          unsigned lo;
          if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') { free(s); return jerr(j, "lone surrogate"); }
          j->p += 2;
          rc = hex4(j, &lo);
          if (rc) { free(s); return rc; }
          if (lo < 0xdc00 || lo > 0xdfff) { free(s); return jerr(j, "bad surrogate pair"); }
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          free(s);
          return jerr(j, "lone surrogate");
        }
        if (cp == 0) { free(s); return jerr(j, "NUL character in a string"); }
        if (cp < 0x80) buf[0] = (char)cp;
        else if (cp < 0x800) { buf[0] = (char)(0xc0 | (cp >> 6)); buf[1] = (char)(0x80 | (cp & 0x3f)); len = 2; }
        else if (cp < 0x10000) {
          buf[0] = (char)(0xe0 | (cp >> 12)); buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
          buf[2] = (char)(0x80 | (cp & 0x3f)); len = 3;
        } else {
          buf[0] = (char)(0xf0 | (cp >> 18)); buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
          buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); buf[3] = (char)(0x80 | (cp & 0x3f)); len = 4;
        }
        break;
      }
      default: free(s); return jerr(j, "bad escape in a string");
      }
    }
    if (n + (size_t)len + 1 > cap) {
      cap = cap * 2 + (size_t)len;
      char *t = realloc(s, cap);
      if (!t) { free(s); return mv_seterr(j->err, MV_ENOMEM, "out of memory"); }
      s = t;
    }
    memcpy(s + n, buf, (size_t)len);
    n += (size_t)len;
  }
  s[n] = 0;
  *out = s;
  return MV_OK;
}

/* A non-negative integer below 2^63 (no sign, fraction or exponent). */
static int juint(J *j, uint64_t *out) {
  ws(j);
  const char *q = j->p;
  if (q < j->end && *q == '-') return jerr(j, "negative number");
  if (q >= j->end || *q < '0' || *q > '9') return jerr(j, "expected a non-negative integer");
  if (*q == '0' && q + 1 < j->end && q[1] >= '0' && q[1] <= '9') return jerr(j, "leading zero in a number");
  uint64_t v = 0;
  while (q < j->end && *q >= '0' && *q <= '9') {
    unsigned d = (unsigned)(*q - '0');
    if (v > (((uint64_t)INT64_MAX) - d) / 10) return jerr(j, "integer too large");
    v = v * 10 + d;
    q++;
  }
  if (q < j->end && (*q == '.' || *q == 'e' || *q == 'E')) return jerr(j, "expected an integer");
  j->p = q;
  *out = v;
  return MV_OK;
}

static int add_entry(mv_st_file *f, mv_err *err) {
  if (f->n >= MV_ST_MAX_TENSORS)
    return mv_seterr(err, MV_EFORMAT, "safetensors header: more than %d tensors", MV_ST_MAX_TENSORS);
  if (f->n == f->cap) {
    int nc = f->cap ? f->cap * 2 : 16;
    mv_st_entry *e = realloc(f->e, sizeof *e * (size_t)nc);
    if (!e) return mv_seterr(err, MV_ENOMEM, "out of memory");
    f->e = e;
    f->cap = nc;
  }
  memset(&f->e[f->n], 0, sizeof f->e[0]);
  f->n++;
  return MV_OK;
}

static int parse_meta(J *j, mv_st_file *f) {
  int rc = expect(j, '{');
  if (rc) return rc;
  if (peek(j, '}')) { j->p++; return MV_OK; }
  for (;;) {
    char *k = NULL, *v = NULL;
    rc = jstring(j, &k);
    if (!rc) rc = expect(j, ':');
    if (!rc) {
      ws(j);
      if (j->p < j->end && *j->p != '"') rc = jerr(j, "__metadata__ values must be strings");
    }
    if (!rc) rc = jstring(j, &v);
    if (!rc && f->nmeta >= MV_ST_MAX_META)
      rc = mv_seterr(j->err, MV_EFORMAT, "safetensors header: more than %d __metadata__ entries", MV_ST_MAX_META);
    /* duplicate keys: found after parsing, by sorting (see validate) */
    if (!rc && f->nmeta == f->metacap) {
      int nc = f->metacap ? f->metacap * 2 : 8;
      char **a = realloc(f->mkey, sizeof *a * (size_t)nc);
      if (a) f->mkey = a;
      char **b = a ? realloc(f->mval, sizeof *b * (size_t)nc) : NULL;
      if (b) f->mval = b;
      if (!a || !b) rc = mv_seterr(j->err, MV_ENOMEM, "out of memory");
      else f->metacap = nc;
    }
    if (rc) {
      free(k);
      free(v);
      return rc;
    }
    f->mkey[f->nmeta] = k;
    f->mval[f->nmeta] = v;
    f->nmeta++;
    if (peek(j, ',')) { j->p++; continue; }
    return expect(j, '}');
  }
}

static int parse_tensor(J *j, mv_st_entry *e) {
  int rc = expect(j, '{');
  if (rc) return rc;
  int have_dt = 0, have_shape = 0, have_off = 0;
  if (!peek(j, '}'))
    for (;;) {
      char *k = NULL;
      rc = jstring(j, &k);
      if (!rc) rc = expect(j, ':');
      if (rc) { free(k); return rc; }
      if (strcmp(k, "dtype") == 0 && !have_dt) {
        char *d = NULL;
        rc = jstring(j, &d);
        if (!rc && !mv_dtype_from_name(d, strlen(d), &e->dtype))
          rc = mv_seterr(j->err, MV_EFORMAT, "tensor \"%.80s\": unknown dtype \"%.20s\"", e->name, d);
        free(d);
        have_dt = 1;
      } else if (strcmp(k, "shape") == 0 && !have_shape) {
        rc = expect(j, '[');
        e->ndim = 0;
        if (!rc && peek(j, ']')) j->p++;
        else
          while (!rc) {
            uint64_t v;
            rc = juint(j, &v);
            if (rc) break;
            if (e->ndim == MV_ST_MAXDIM) {
              rc = mv_seterr(j->err, MV_EFORMAT, "tensor \"%.80s\": more than %d dimensions", e->name, MV_ST_MAXDIM);
              break;
            }
            e->shape[e->ndim++] = (int64_t)v;
            if (peek(j, ',')) { j->p++; continue; }
            rc = expect(j, ']');
            break;
          }
        have_shape = 1;
      } else if (strcmp(k, "data_offsets") == 0 && !have_off) {
        rc = expect(j, '[');
        if (!rc) rc = juint(j, &e->begin);
        if (!rc) rc = expect(j, ',');
        if (!rc) rc = juint(j, &e->end);
        if (!rc) rc = expect(j, ']');
        have_off = 1;
      } else {
        rc = mv_seterr(j->err, MV_EFORMAT, "tensor \"%.80s\": unexpected or repeated field \"%.40s\"", e->name, k);
      }
      free(k);
      if (rc) return rc;
      if (peek(j, ',')) { j->p++; continue; }
      break;
    }
  rc = expect(j, '}');
  if (rc) return rc;
  if (!have_dt || !have_shape || !have_off)
    return mv_seterr(j->err, MV_EFORMAT, "tensor \"%.80s\": missing %s", e->name,
                     !have_dt ? "dtype" : !have_shape ? "shape" : "data_offsets");
  return MV_OK;
}

static int cmp_begin(const void *a, const void *b) {
  const mv_st_entry *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int parse_header(mv_st_file *f, const char *h, size_t hlen, mv_err *err) {
  J j = {h, h, h + hlen, err};
  int rc = expect(&j, '{');
  if (rc) return rc;
  int have_meta = 0;
  if (!peek(&j, '}'))
    for (;;) {
      char *k = NULL;
      rc = jstring(&j, &k);
      if (!rc) rc = expect(&j, ':');
      if (rc) { free(k); return rc; }
      if (strcmp(k, "__metadata__") == 0) {
        free(k);
        if (have_meta) return mv_seterr(err, MV_EFORMAT, "safetensors header: two __metadata__ entries");
        have_meta = 1;
        rc = parse_meta(&j, f);
      } else {
        if (!*k) { free(k); return mv_seterr(err, MV_EFORMAT, "safetensors header: empty tensor name"); }
        rc = add_entry(f, err);
        if (rc) { free(k); return rc; }
        f->e[f->n - 1].name = k;
        rc = parse_tensor(&j, &f->e[f->n - 1]);
      }
      if (rc) return rc;
      if (peek(&j, ',')) { j.p++; continue; }
      break;
    }
  rc = expect(&j, '}');
  if (rc) return rc;
  ws(&j);
  if (j.p != j.end) return jerr(&j, "trailing bytes after the header object");
  return MV_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The first name (in sorted order) that appears twice among n, or NULL; O(n log n).
 * *oom is set when the index cannot be allocated. */
static const char *find_duplicate(char **names, size_t stride, int n, int *oom) {
  *oom = 0;
  if (n < 2) return NULL;
  char **idx = malloc(sizeof *idx * (size_t)n);
  if (!idx) {
    *oom = 1;
    return NULL;
  }
  for (int i = 0; i < n; i++) idx[i] = *(char **)((char *)names + stride * (size_t)i);
  qsort(idx, (size_t)n, sizeof *idx, cmp_str);
  const char *dup = NULL;
  for (int i = 1; i < n && !dup; i++)
    if (strcmp(idx[i - 1], idx[i]) == 0) dup = idx[i];
  free(idx);
  return dup;
}

static int validate(mv_st_file *f, mv_err *err) {
  int oom;
  const char *dup = find_duplicate(f->nmeta ? f->mkey : NULL, sizeof(char *), f->nmeta, &oom);
  if (!oom && dup) return mv_seterr(err, MV_EFORMAT, "safetensors header: duplicate __metadata__ key \"%.60s\"", dup);
  if (!oom) dup = find_duplicate(f->n ? &f->e[0].name : NULL, sizeof f->e[0], f->n, &oom);
  if (oom) return mv_seterr(err, MV_ENOMEM, "out of memory");
  if (dup) return mv_seterr(err, MV_EFORMAT, "safetensors header: tensor \"%.80s\" appears twice", dup);
  for (int i = 0; i < f->n; i++) {
    mv_st_entry *e = &f->e[i];
    uint64_t n = 1;
    for (int d = 0; d < e->ndim; d++) {
      uint64_t s = (uint64_t)e->shape[d];
      if (s != 0 && n > ((uint64_t)INT64_MAX / 8) / s)
        return mv_seterr(err, MV_EFORMAT, "tensor \"%.80s\": shape too large", e->name);
      n *= s;
    }
    e->numel = (int64_t)n;
    uint64_t bytes = n * (uint64_t)mv_dtype_size(e->dtype);
    if (e->end < e->begin)
      return mv_seterr(err, MV_EFORMAT, "tensor \"%.80s\": data_offsets end before they begin", e->name);
    if (e->end - e->begin != bytes)
      return mv_seterr(err, MV_EFORMAT,
                       "tensor \"%.80s\": %llu bytes in data_offsets, but shape x %s needs %llu", e->name,
                       (unsigned long long)(e->end - e->begin), mv_dtype_name(e->dtype), (unsigned long long)bytes);
    if (e->end > f->data_len)
      return mv_seterr(err, MV_EFORMAT, "tensor \"%.80s\": data_offsets end at %llu, past the data (%zu bytes)",
                       e->name, (unsigned long long)e->end, f->data_len);
  }
  if (f->n > 1) qsort(f->e, (size_t)f->n, sizeof f->e[0], cmp_begin);
  uint64_t at = 0;
  for (int i = 0; i < f->n; i++) {
    mv_st_entry *e = &f->e[i];
    if (e->begin < at)
      return mv_seterr(err, MV_EFORMAT, "tensor \"%.80s\" overlaps tensor \"%.80s\"", e->name, f->e[i - 1].name);
    if (e->begin > at)
      return mv_seterr(err, MV_EFORMAT, "gap in the data before tensor \"%.80s\" (bytes %llu to %llu unused)", e->name,
                       (unsigned long long)at, (unsigned long long)e->begin);
    e->data = f->data + e->begin;
    at = e->end;
  }
  if (at != f->data_len)
    return mv_seterr(err, MV_EFORMAT, "%llu bytes after the last tensor are not described by the header",
                     (unsigned long long)(f->data_len - at));
  return MV_OK;
}

int mv_st_parse(mv_st_file **out, const void *buf, size_t len, int copy, mv_err *err) {
  *out = NULL;
  const unsigned char *b = buf;
  if (len < 8) return mv_seterr(err, MV_EFORMAT, "not a safetensors file: %zu bytes, shorter than the 8-byte header length", len);
  uint64_t hl = 0;
  for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
  if (hl > MV_ST_MAX_HEADER)
    return mv_seterr(err, MV_EFORMAT, "not a safetensors file: header length %llu is over the %u-byte limit",
                     (unsigned long long)hl, MV_ST_MAX_HEADER);
  if (hl > len - 8)
    return mv_seterr(err, MV_EFORMAT, "truncated safetensors file: header length %llu, but only %zu bytes follow",
                     (unsigned long long)hl, len - 8);
  if (hl < 2 || b[8] != '{') return mv_seterr(err, MV_EFORMAT, "not a safetensors file: the header is not a JSON object");
  mv_st_file *f = calloc(1, sizeof *f);
  if (!f) return mv_seterr(err, MV_ENOMEM, "out of memory");
  if (copy) {
    f->owned = malloc(len ? len : 1);
    if (!f->owned) {
      free(f);
      return mv_seterr(err, MV_ENOMEM, "out of memory");
    }
    memcpy(f->owned, buf, len);
    b = f->owned;
  }
  f->data = b + 8 + hl;
  f->data_len = len - 8 - (size_t)hl;
  int rc = parse_header(f, (const char *)b + 8, (size_t)hl, err);
  if (!rc) rc = validate(f, err);
  if (rc) {
    mv_st_free(f);
    return rc;
  }
  *out = f;
  return MV_OK;
}

int mv_st_read(mv_st_file **out, const char *path, mv_err *err) {
  *out = NULL;
  unsigned char *buf;
  size_t len;
  int rc = mv_read_file(path, (size_t)1 << 40, &buf, &len, err);
  if (rc) return rc;
  mv_err e2 = {0, {0}};
  mv_st_file *f = NULL;
  rc = mv_st_parse(&f, buf, len, 0, &e2);
  if (rc) {
    free(buf);
    return mv_seterr(err, rc, "%s: %s", path, e2.msg);
  }
  f->owned = buf;
  *out = f;
  return MV_OK;
}

int mv_st_count(const mv_st_file *f) { return f->n; }
const mv_st_entry *mv_st_get(const mv_st_file *f, int i) { return i >= 0 && i < f->n ? &f->e[i] : NULL; }

const mv_st_entry *mv_st_find(const mv_st_file *f, const char *name) {
  for (int i = 0; i < f->n; i++)
    if (strcmp(f->e[i].name, name) == 0) return &f->e[i];
  return NULL;
}

int mv_st_meta_count(const mv_st_file *f) { return f->nmeta; }

void mv_st_meta_get(const mv_st_file *f, int i, const char **key, const char **value) {
  *key = f->mkey[i];
  *value = f->mval[i];
}

const char *mv_st_meta_find(const mv_st_file *f, const char *key) {
  for (int i = 0; i < f->nmeta; i++)
    if (strcmp(f->mkey[i], key) == 0) return f->mval[i];
  return NULL;
}

int mv_st_entry_to_f32(const mv_st_entry *e, float *out, mv_err *err) {
  const unsigned char *p = e->data;
  int64_t n = e->numel;
  switch (e->dtype) {
  case MV_DT_F32: memcpy(out, p, (size_t)n * 4); return MV_OK;
  case MV_DT_F16:
    mv_f16_to_f32_n(p, out, (size_t)n);
    return MV_OK;
  case MV_DT_BF16:
    for (int64_t i = 0; i < n; i++) out[i] = mv_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
    return MV_OK;
  default:
    return mv_seterr(err, MV_EUNSUPPORTED, "tensor \"%.80s\" has dtype %s; only F32, F16 and BF16 load as float32",
                     e->name, mv_dtype_name(e->dtype));
  }
}

/* ---- writer ---------------------------------------------------------------- */
typedef struct {
  char *name;
  mv_dtype dtype;
  int ndim;
  int64_t shape[MV_MAXDIM];
  unsigned char *bytes;
  size_t nbytes;
} wentry;

struct mv_st_writer {
  int n, cap;
  wentry *e;
  int nmeta, metacap;
  char **mkey, **mval;
};

mv_st_writer *mv_st_writer_new(void) { return calloc(1, sizeof(mv_st_writer)); }

void mv_st_writer_free(mv_st_writer *w) {
  if (!w) return;
  for (int i = 0; i < w->n; i++) {
    free(w->e[i].name);
    free(w->e[i].bytes);
  }
  for (int i = 0; i < w->nmeta; i++) {
    free(w->mkey[i]);
    free(w->mval[i]);
  }
  free(w->e);
  free(w->mkey);
  free(w->mval);
  free(w);
}

static char *dupstr(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

int mv_st_writer_add(mv_st_writer *w, const char *name, mv_dtype dtype, const mv_tensor *t, mv_err *err) {
  if (!*name || strcmp(name, "__metadata__") == 0)
    return mv_seterr(err, MV_EINVAL, "bad tensor name \"%s\"", name);
  if (dtype != MV_DT_F32 && dtype != MV_DT_F16 && dtype != MV_DT_BF16)
    return mv_seterr(err, MV_EINVAL, "can write F32, F16 or BF16, not %s", mv_dtype_name(dtype));
  for (int i = 0; i < w->n; i++)
    if (strcmp(w->e[i].name, name) == 0) return mv_seterr(err, MV_EINVAL, "tensor \"%s\" added twice", name);
  if (w->n == w->cap) {
    int nc = w->cap ? w->cap * 2 : 16;
    wentry *e = realloc(w->e, sizeof *e * (size_t)nc);
    if (!e) return mv_seterr(err, MV_ENOMEM, "out of memory");
    w->e = e;
    w->cap = nc;
  }
  int64_t n = mv_tensor_numel(t);
  size_t es = (size_t)mv_dtype_size(dtype);
  wentry we;
  memset(&we, 0, sizeof we);
  we.name = dupstr(name);
  we.dtype = dtype;
  we.ndim = t->ndim;
  for (int i = 0; i < t->ndim; i++) we.shape[i] = t->size[i];
  we.nbytes = (size_t)n * es;
  we.bytes = malloc(we.nbytes ? we.nbytes : 1);
  float *tmp = malloc(sizeof(float) * (size_t)(n ? n : 1));
  if (!we.name || !we.bytes || !tmp) {
    free(we.name);
    free(we.bytes);
    free(tmp);
    return mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  mv_tensor c;
  mv_tensor_init(&c, tmp, t->ndim, t->size, NULL);
  mv_tensor_copy(&c, t, NULL);
  for (int64_t i = 0; i < n; i++) {
    if (dtype == MV_DT_F32) {
      memcpy(we.bytes + 4 * i, &tmp[i], 4);
    } else {
      uint16_t h = dtype == MV_DT_F16 ? mv_f32_to_f16(tmp[i]) : mv_f32_to_bf16(tmp[i]);
      we.bytes[2 * i] = (unsigned char)(h & 0xff);
      we.bytes[2 * i + 1] = (unsigned char)(h >> 8);
    }
  }
  free(tmp);
  w->e[w->n++] = we;
  return MV_OK;
}

int mv_st_writer_meta(mv_st_writer *w, const char *key, const char *value, mv_err *err) {
  for (int i = 0; i < w->nmeta; i++)
    if (strcmp(w->mkey[i], key) == 0) {
      char *v = dupstr(value);
      if (!v) return mv_seterr(err, MV_ENOMEM, "out of memory");
      free(w->mval[i]);
      w->mval[i] = v;
      return MV_OK;
    }
  if (w->nmeta == w->metacap) {
    int nc = w->metacap ? w->metacap * 2 : 8;
    char **a = realloc(w->mkey, sizeof *a * (size_t)nc);
    if (!a) return mv_seterr(err, MV_ENOMEM, "out of memory");
    w->mkey = a;
    char **b = realloc(w->mval, sizeof *b * (size_t)nc);
    if (!b) return mv_seterr(err, MV_ENOMEM, "out of memory");
    w->mval = b;
    w->metacap = nc;
  }
  char *k = dupstr(key), *v = dupstr(value);
  if (!k || !v) {
    free(k);
    free(v);
    return mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  w->mkey[w->nmeta] = k;
  w->mval[w->nmeta] = v;
  w->nmeta++;
  return MV_OK;
}

/* A growable byte buffer for the header. */
typedef struct {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *s, const char *d, size_t n) {
  if (s->oom) return;
  if (s->n + n + 1 > s->cap) {
    size_t nc = (s->cap + n + 1) * 2;
    char *t = realloc(s->p, nc);
    if (!t) {
      s->oom = 1;
      return;
    }
    s->p = t;
    s->cap = nc;
  }
  memcpy(s->p + s->n, d, n);
  s->n += n;
}

static void sb_str(sbuf *s, const char *str) {
  sb_put(s, "\"", 1);
  for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
    char esc[8];
    if (*c == '"' || *c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*c;
      sb_put(s, esc, 2);
    } else if (*c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *c);
      sb_put(s, esc, 6);
    } else {
      sb_put(s, (const char *)c, 1);
    }
  }
  sb_put(s, "\"", 1);
}

int mv_st_writer_bytes(mv_st_writer *w, unsigned char **out, size_t *len, mv_err *err) {
  sbuf s = {0, 0, 0, 0};
  char num[64];
  sb_put(&s, "{", 1);
  int first = 1;
  if (w->nmeta) {
    sb_put(&s, "\"__metadata__\":{", 16);
    for (int i = 0; i < w->nmeta; i++) {
      if (i) sb_put(&s, ",", 1);
      sb_str(&s, w->mkey[i]);
      sb_put(&s, ":", 1);
      sb_str(&s, w->mval[i]);
    }
    sb_put(&s, "}", 1);
    first = 0;
  }
  uint64_t off = 0;
  for (int i = 0; i < w->n; i++) {
    wentry *e = &w->e[i];
    if (!first) sb_put(&s, ",", 1);
    first = 0;
    sb_str(&s, e->name);
    sb_put(&s, ":{\"dtype\":", 10);
    sb_str(&s, mv_dtype_name(e->dtype));
    sb_put(&s, ",\"shape\":[", 10);
    for (int d = 0; d < e->ndim; d++) {
      int k = snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)e->shape[d]);
      sb_put(&s, num, (size_t)k);
    }
    int k = snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                     (unsigned long long)(off + e->nbytes));
    sb_put(&s, num, (size_t)k);
    off += e->nbytes;
  }
  sb_put(&s, "}", 1);
  while (!s.oom && (8 + s.n) % 8 != 0) sb_put(&s, " ", 1); /* align the data block */
  if (s.oom) {
    free(s.p);
    return mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  size_t total = 8 + s.n + (size_t)off;
  unsigned char *buf = malloc(total);
  if (!buf) {
    free(s.p);
    return mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)s.n >> (8 * i));
  memcpy(buf + 8, s.p, s.n);
  free(s.p);
  unsigned char *d = buf + 8 + s.n;
  for (int i = 0; i < w->n; i++) {
    memcpy(d, w->e[i].bytes, w->e[i].nbytes);
    d += w->e[i].nbytes;
  }
  *out = buf;
  *len = total;
  return MV_OK;
}

int mv_st_writer_save(mv_st_writer *w, const char *path, mv_err *err) {
  unsigned char *buf;
  size_t len;
  int rc = mv_st_writer_bytes(w, &buf, &len, err);
  if (rc) return rc;
  rc = mv_write_file_atomic(path, buf, len, err);
  free(buf);
  return rc;
}
