/* mv_tensor.c -- strided float32 tensor headers: shapes, views, elementwise
 * ops, reductions, matmul. Memory is owned by the caller. */
#include "mv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mv_shape_check(int ndim, const int64_t *size, int64_t *numel, mv_err *err) {
  if (ndim < 0 || ndim > MV_MAXDIM)
    return mv_seterr(err, MV_ESHAPE, "tensors have 0 to %d dimensions, got %d", MV_MAXDIM, ndim);
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (size[i] < 0) return mv_seterr(err, MV_ESHAPE, "negative size %lld in dimension %d", (long long)size[i], i + 1);
    if (size[i] != 0 && n > (INT64_MAX / 8) / size[i])
      return mv_seterr(err, MV_ESHAPE, "shape too large (element count overflows)");
    n *= size[i];
  }
  if (numel) *numel = n;
  return MV_OK;
}

int mv_tensor_init(mv_tensor *t, float *data, int ndim, const int64_t *size, mv_err *err) {
  int rc = mv_shape_check(ndim, size, NULL, err);
  if (rc) return rc;
  memset(t, 0, sizeof *t);
  t->data = data;
  t->ndim = ndim;
  int64_t st = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t->size[i] = size[i];
    t->stride[i] = st;
    st *= size[i] > 0 ? size[i] : 1;
  }
  return MV_OK;
}

int64_t mv_tensor_numel(const mv_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->size[i];
  return n;
}

int mv_tensor_is_contiguous(const mv_tensor *t) {
  int64_t st = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->size[i] == 1) continue;
    if (t->size[i] == 0) return 1;
    if (t->stride[i] != st) return 0;
    st *= t->size[i];
  }
  return 1;
}

int mv_tensor_same_shape(const mv_tensor *a, const mv_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->size[i] != b->size[i]) return 0;
  return 1;
}

void mv_shape_str(char *buf, size_t n, const mv_tensor *t) {
  size_t used = 0;
  if (n == 0) return;
  buf[0] = 0;
  used += (size_t)snprintf(buf + used, n - used, "[");
  for (int i = 0; i < t->ndim && used < n; i++)
    used += (size_t)snprintf(buf + used, n - used, i ? ",%lld" : "%lld", (long long)t->size[i]);
  if (used < n) snprintf(buf + used, n - used, "]");
}

static int shape_err(mv_err *err, const char *what, const mv_tensor *a, const mv_tensor *b) {
  char sa[96], sb[96];
  mv_shape_str(sa, sizeof sa, a);
  mv_shape_str(sb, sizeof sb, b);
  return mv_seterr(err, MV_ESHAPE, "%s: shapes %s and %s do not match", what, sa, sb);
}

static int check_dim(const mv_tensor *t, int dim, mv_err *err) {
  if (dim < 0 || dim >= t->ndim)
    return mv_seterr(err, MV_ERANGE, "dimension %d out of range for a %d-dimensional tensor", dim + 1, t->ndim);
  return MV_OK;
}

int mv_tensor_narrow(mv_tensor *out, const mv_tensor *t, int dim, int64_t start, int64_t len, mv_err *err) {
  int rc = check_dim(t, dim, err);
  if (rc) return rc;
  if (start < 0 || len < 0 || start > t->size[dim] || len > t->size[dim] - start)
    return mv_seterr(err, MV_ERANGE, "narrow(%d, %lld, %lld) out of range for size %lld", dim + 1,
                     (long long)start + 1, (long long)len, (long long)t->size[dim]);
  mv_tensor r = *t;
  if (len > 0) r.data = t->data + start * t->stride[dim];
  r.size[dim] = len;
  *out = r;
  return MV_OK;
}

int mv_tensor_select(mv_tensor *out, const mv_tensor *t, int dim, int64_t index, mv_err *err) {
  int rc = check_dim(t, dim, err);
  if (rc) return rc;
  if (index < 0 || index >= t->size[dim])
    return mv_seterr(err, MV_ERANGE, "index %lld out of range for dimension %d of size %lld", (long long)index + 1,
                     dim + 1, (long long)t->size[dim]);
  mv_tensor r;
  memset(&r, 0, sizeof r);
  r.data = t->data + index * t->stride[dim];
  r.ndim = t->ndim - 1;
  for (int i = 0, j = 0; i < t->ndim; i++) {
    if (i == dim) continue;
    r.size[j] = t->size[i];
    r.stride[j] = t->stride[i];
    j++;
  }
  *out = r;
  return MV_OK;
}

int mv_tensor_transpose(mv_tensor *out, const mv_tensor *t, int d0, int d1, mv_err *err) {
  int rc = check_dim(t, d0, err);
  if (!rc) rc = check_dim(t, d1, err);
  if (rc) return rc;
  mv_tensor r = *t;
  r.size[d0] = t->size[d1];
  r.size[d1] = t->size[d0];
  r.stride[d0] = t->stride[d1];
  r.stride[d1] = t->stride[d0];
  *out = r;
  return MV_OK;
}

int mv_tensor_view(mv_tensor *out, const mv_tensor *t, int ndim, const int64_t *size, mv_err *err) {
  int64_t n;
  int rc = mv_shape_check(ndim, size, &n, err);
  if (rc) return rc;
  mv_tensor r;
  mv_tensor_init(&r, t->data, ndim, size, NULL);
  if (n != mv_tensor_numel(t)) return shape_err(err, "view", t, &r);
  if (!mv_tensor_is_contiguous(t))
    return mv_seterr(err, MV_ESHAPE, "view needs a contiguous tensor (use reshape, which copies)");
  *out = r;
  return MV_OK;
}

float *mv_tensor_at(const mv_tensor *t, const int64_t *idx) {
  float *p = t->data;
  for (int i = 0; i < t->ndim; i++) p += idx[i] * t->stride[i];
  return p;
}

/* Pads a header to 4 dimensions (leading size-1 dims) for the loops below. */
static void pad4(const mv_tensor *t, int64_t sz[4], int64_t st[4]) {
  int off = 4 - t->ndim;
  for (int i = 0; i < 4; i++) {
    sz[i] = i < off ? 1 : t->size[i - off];
    st[i] = i < off ? 0 : t->stride[i - off];
  }
}

/* Calls the kernel on every element of up to three same-shaped tensors, in
 * row-major order. */
enum { OP_COPY, OP_ADD, OP_MUL, OP_SCALE, OP_FILL };

static void apply(int op, const mv_tensor *o, const mv_tensor *a, const mv_tensor *b, float s) {
  int64_t sz[4], so[4], sa[4] = {0, 0, 0, 0}, sb[4] = {0, 0, 0, 0};
  pad4(o, sz, so);
  if (a) pad4(a, sz, sa);
  if (b) pad4(b, sz, sb);
  pad4(o, sz, so);
  for (int64_t i0 = 0; i0 < sz[0]; i0++)
    for (int64_t i1 = 0; i1 < sz[1]; i1++)
      for (int64_t i2 = 0; i2 < sz[2]; i2++) {
        float *po = o->data + i0 * so[0] + i1 * so[1] + i2 * so[2];
        const float *pa = a ? a->data + i0 * sa[0] + i1 * sa[1] + i2 * sa[2] : NULL;
        const float *pb = b ? b->data + i0 * sb[0] + i1 * sb[1] + i2 * sb[2] : NULL;
        int64_t n = sz[3], xo = so[3], xa = sa[3], xb = sb[3];
        switch (op) {
        case OP_COPY: for (int64_t i = 0; i < n; i++) po[i * xo] = pa[i * xa]; break;
        case OP_ADD: for (int64_t i = 0; i < n; i++) po[i * xo] = pa[i * xa] + s * pb[i * xb]; break;
        case OP_MUL: for (int64_t i = 0; i < n; i++) po[i * xo] = pa[i * xa] * pb[i * xb]; break;
        case OP_SCALE: for (int64_t i = 0; i < n; i++) po[i * xo] = pa[i * xa] * s; break;
        case OP_FILL: for (int64_t i = 0; i < n; i++) po[i * xo] = s; break;
        }
      }
}

/* Two headers overlap in memory in a way an elementwise pass could trip over
 * (anything but exact aliasing). */
static int bad_overlap(const mv_tensor *o, const mv_tensor *a) {
  if (o->data == a->data && mv_tensor_same_shape(o, a)) {
    int same = 1;
    for (int i = 0; i < o->ndim; i++)
      if (o->size[i] > 1 && o->stride[i] != a->stride[i]) same = 0;
    if (same) return 0;
  }
  int64_t n = mv_tensor_numel(o), m = mv_tensor_numel(a);
  if (n == 0 || m == 0) return 0;
  const float *lo = o->data, *hi = o->data, *alo = a->data, *ahi = a->data;
  for (int i = 0; i < o->ndim; i++) {
    int64_t e = (o->size[i] - 1) * o->stride[i];
    if (e > 0) hi += e; else lo += e;
  }
  for (int i = 0; i < a->ndim; i++) {
    int64_t e = (a->size[i] - 1) * a->stride[i];
    if (e > 0) ahi += e; else alo += e;
  }
  return !(hi < alo || ahi < lo);
}

/* Elementwise ops take a temporary copy when the output partially overlaps
 * an input (e.g. t:copy(t:transpose(1, 2)) on a square tensor). */
static int run_op(int op, mv_tensor *o, const mv_tensor *a, const mv_tensor *b, float s, mv_err *err) {
  mv_tensor ca, cb;
  float *fa = NULL, *fb = NULL;
  if (a && bad_overlap(o, a)) {
    fa = malloc(sizeof(float) * (size_t)(mv_tensor_numel(a) ? mv_tensor_numel(a) : 1));
    if (!fa) return mv_seterr(err, MV_ENOMEM, "out of memory");
    mv_tensor_init(&ca, fa, a->ndim, a->size, NULL);
    apply(OP_COPY, &ca, a, NULL, 0);
    a = &ca;
  }
  if (b && bad_overlap(o, b)) {
    fb = malloc(sizeof(float) * (size_t)(mv_tensor_numel(b) ? mv_tensor_numel(b) : 1));
    if (!fb) {
      free(fa);
      return mv_seterr(err, MV_ENOMEM, "out of memory");
    }
    mv_tensor_init(&cb, fb, b->ndim, b->size, NULL);
    apply(OP_COPY, &cb, b, NULL, 0);
    b = &cb;
  }
  apply(op, o, a, b, s);
  free(fa);
  free(fb);
  return MV_OK;
}

int mv_tensor_copy(mv_tensor *dst, const mv_tensor *src, mv_err *err) {
  if (!mv_tensor_same_shape(dst, src)) return shape_err(err, "copy", dst, src);
  return run_op(OP_COPY, dst, src, NULL, 0, err);
}

void mv_tensor_fill(mv_tensor *t, float v) { apply(OP_FILL, t, NULL, NULL, v); }

int mv_tensor_add(mv_tensor *out, const mv_tensor *a, const mv_tensor *b, float alpha, mv_err *err) {
  if (!mv_tensor_same_shape(a, b)) return shape_err(err, "add", a, b);
  if (!mv_tensor_same_shape(out, a)) return shape_err(err, "add (output)", out, a);
  return run_op(OP_ADD, out, a, b, alpha, err);
}

int mv_tensor_mul(mv_tensor *out, const mv_tensor *a, const mv_tensor *b, mv_err *err) {
  if (!mv_tensor_same_shape(a, b)) return shape_err(err, "mul", a, b);
  if (!mv_tensor_same_shape(out, a)) return shape_err(err, "mul (output)", out, a);
  return run_op(OP_MUL, out, a, b, 0, err);
}

int mv_tensor_scale(mv_tensor *out, const mv_tensor *a, float s, mv_err *err) {
  if (!mv_tensor_same_shape(out, a)) return shape_err(err, "scale (output)", out, a);
  return run_op(OP_SCALE, out, a, NULL, s, err);
}

double mv_tensor_sum_all(const mv_tensor *t) {
  int64_t sz[4], st[4];
  pad4(t, sz, st);
  double acc = 0;
  for (int64_t i0 = 0; i0 < sz[0]; i0++)
    for (int64_t i1 = 0; i1 < sz[1]; i1++)
      for (int64_t i2 = 0; i2 < sz[2]; i2++) {
        const float *p = t->data + i0 * st[0] + i1 * st[1] + i2 * st[2];
        for (int64_t i = 0; i < sz[3]; i++) acc += p[i * st[3]];
      }
  return acc;
}

/* Shared walk for the reductions along one dimension: for every index of the
 * output, visit the `dim` line of t. */
static int reduce_dim(mv_tensor *out, const mv_tensor *t, int dim, int kind, mv_err *err) {
  int rc = check_dim(t, dim, err);
  if (rc) return rc;
  mv_tensor first;
  if (t->size[dim] == 0) {
    if (kind == 2) return mv_seterr(err, MV_ESHAPE, "argmax over an empty dimension");
    mv_tensor tmp = *t;
    tmp.size[dim] = 1;
    mv_tensor_select(&first, &tmp, dim, 0, NULL);
  } else {
    mv_tensor_select(&first, t, dim, 0, NULL);
  }
  if (!mv_tensor_same_shape(out, &first)) return shape_err(err, "reduction output", out, &first);
  int64_t n = t->size[dim], step = t->stride[dim];
  int64_t sz[4], st[4], so[4];
  pad4(&first, sz, st);
  pad4(out, sz, so);
  for (int64_t i0 = 0; i0 < sz[0]; i0++)
    for (int64_t i1 = 0; i1 < sz[1]; i1++)
      for (int64_t i2 = 0; i2 < sz[2]; i2++)
        for (int64_t i3 = 0; i3 < sz[3]; i3++) {
          const float *p = first.data + i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3];
          float *o = out->data + i0 * so[0] + i1 * so[1] + i2 * so[2] + i3 * so[3];
          if (kind == 2) {
            int64_t best = 0;
            float bv = p[0];
            for (int64_t k = 1; k < n && !isnan(bv); k++) {
              float v = p[k * step];
              if (v > bv || isnan(v)) {
                bv = v;
                best = k;
              }
            }
            *o = (float)best;
          } else {
            double acc = 0;
            for (int64_t k = 0; k < n; k++) acc += p[k * step];
            *o = (float)(kind == 1 ? (n ? acc / (double)n : NAN) : acc);
          }
        }
  return MV_OK;
}

int mv_tensor_sum_dim(mv_tensor *out, const mv_tensor *t, int dim, int mean, mv_err *err) {
  return reduce_dim(out, t, dim, mean ? 1 : 0, err);
}

int mv_tensor_argmax_dim(mv_tensor *out, const mv_tensor *t, int dim, mv_err *err) {
  return reduce_dim(out, t, dim, 2, err);
}

/* How a 2-D operand [r, c] reaches SGEMM: stored by rows (unit column
 * stride, row stride ld >= c), stored by columns (a transposed view: SGEMM
 * gets its transpose for free), or, with neither unit stride, a contiguous
 * copy in *tmp. Size-1 dimensions can have any stride. */
static int gemm_operand(const mv_tensor *t, int want_t, const float **p, int *trans, int64_t *ld, float **tmp,
                        mv_err *err) {
  int64_t r = t->size[0], c = t->size[1], s0 = t->stride[0], s1 = t->stride[1];
  int64_t cmin = c > 1 ? c : 1, rmin = r > 1 ? r : 1;
  *tmp = NULL;
  *p = t->data;
  if ((c == 1 || s1 == 1) && (r == 1 || s0 >= cmin)) {
    *trans = want_t;
    *ld = r == 1 ? cmin : s0;
    return MV_OK;
  }
  if ((r == 1 || s0 == 1) && (c == 1 || s1 >= rmin)) {
    *trans = !want_t;
    *ld = c == 1 ? rmin : s1;
    return MV_OK;
  }
  float *buf = malloc(sizeof(float) * (size_t)(r * c));
  if (!buf) return mv_seterr(err, MV_ENOMEM, "out of memory");
  mv_tensor d;
  mv_tensor_init(&d, buf, 2, t->size, NULL);
  apply(OP_COPY, &d, t, NULL, 0);
  *tmp = buf;
  *p = buf;
  *trans = want_t;
  *ld = cmin;
  return MV_OK;
}

int mv_tensor_matmul(mv_tensor *c, const mv_tensor *a, int ta, const mv_tensor *b, int tb, float alpha, float beta,
                     mv_err *err) {
  if (a->ndim != 2 || b->ndim != 2 || c->ndim != 2)
    return mv_seterr(err, MV_ESHAPE, "matmul takes 2-dimensional tensors (got %d, %d and %d dimensions)", a->ndim,
                     b->ndim, c->ndim);
  int64_t m = ta ? a->size[1] : a->size[0], k = ta ? a->size[0] : a->size[1];
  int64_t k2 = tb ? b->size[1] : b->size[0], n = tb ? b->size[0] : b->size[1];
  if (k != k2) {
    char sa[96], sb[96];
    mv_shape_str(sa, sizeof sa, a);
    mv_shape_str(sb, sizeof sb, b);
    return mv_seterr(err, MV_ESHAPE, "matmul: shapes %s%s and %s%s do not fit", sa, ta ? "^T" : "", sb,
                     tb ? "^T" : "");
  }
  if (c->size[0] != m || c->size[1] != n) {
    char sc[96];
    mv_shape_str(sc, sizeof sc, c);
    return mv_seterr(err, MV_ESHAPE, "matmul: output shape %s, expected [%lld,%lld]", sc, (long long)m,
                     (long long)n);
  }
  if (m == 0 || n == 0) return MV_OK;
  if (bad_overlap(c, a) || bad_overlap(c, b) || (c->data == a->data) || (c->data == b->data))
    return mv_seterr(err, MV_EINVAL, "matmul: the output must not overlap an input");
  /* The output needs unit column stride for SGEMM; otherwise use a temporary. */
  float *ctmp = NULL;
  float *cp = c->data;
  int64_t ldc = c->stride[0];
  if (!((n == 1 || c->stride[1] == 1) && (m == 1 || c->stride[0] >= n))) {
    ctmp = malloc(sizeof(float) * (size_t)(m * n));
    if (!ctmp) return mv_seterr(err, MV_ENOMEM, "out of memory");
    mv_tensor d;
    mv_tensor_init(&d, ctmp, 2, c->size, NULL);
    apply(OP_COPY, &d, c, NULL, 0);
    cp = ctmp;
    ldc = n;
  }
  if (m == 1 || ldc < n) ldc = n;
  const float *pa, *pb;
  int tra, trb;
  int64_t lda, ldb;
  float *atmp = NULL, *btmp = NULL;
  int rc = gemm_operand(a, ta, &pa, &tra, &lda, &atmp, err);
  if (!rc) rc = gemm_operand(b, tb, &pb, &trb, &ldb, &btmp, err);
  if (!rc) {
    mv_sgemm(tra, trb, m, n, k, alpha, pa, lda, pb, ldb, beta, cp, ldc);
    if (ctmp) {
      mv_tensor s;
      mv_tensor_init(&s, ctmp, 2, c->size, NULL);
      apply(OP_COPY, c, &s, NULL, 0);
    }
  }
  free(atmp);
  free(btmp);
  free(ctmp);
  return rc;
}
