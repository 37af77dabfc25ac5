/* mvl_tensor.c -- the "musicvae.Tensor" userdata. 1-based at the Lua edge. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mvl.h"

mvl_tensor *mvl_testtensor(lua_State *L, int idx) { return luaL_testudata(L, idx, MVL_TENSOR_MT); }

mvl_tensor *mvl_checktensor(lua_State *L, int idx) {
  mvl_tensor *u = luaL_checkudata(L, idx, MVL_TENSOR_MT);
  if (u->closed || *u->owner_closed) luaL_error(L, "tensor is closed");
  if (u->touched) *u->touched = 1;
  return u;
}

static mvl_tensor *pushempty(lua_State *L) {
  mvl_tensor *u = lua_newuserdatauv(L, sizeof *u, 1);
  memset(u, 0, sizeof *u);
  u->closed = 1; /* valid and closed until it has data */
  u->owner_closed = &u->closed;
  luaL_setmetatable(L, MVL_TENSOR_MT);
  return u;
}

mvl_tensor *mvl_newtensor(lua_State *L, int ndim, const int64_t *size) {
  int64_t n;
  mv_err err;
  if (mv_shape_check(ndim, size, &n, &err)) mvl_raise(L, &err);
  mvl_tensor *u = pushempty(L);
  u->base = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
  if (!u->base) luaL_error(L, "out of memory allocating %I floats", (lua_Integer)n);
  mv_tensor_init(&u->t, u->base, ndim, size, NULL);
  u->closed = 0;
  return u;
}

mvl_tensor *mvl_pushview(lua_State *L, int owner_idx, const mv_tensor *t, const int *closed) {
  owner_idx = lua_absindex(L, owner_idx);
  mvl_tensor *u = pushempty(L);
  u->t = *t;
  u->owner_closed = closed;
  lua_pushvalue(L, owner_idx);
  lua_setiuservalue(L, -2, 1);
  u->closed = 0;
  return u;
}

mvl_tensor *mvl_pushview_touch(lua_State *L, int owner_idx, const mv_tensor *t, const int *closed, int *touched) {
  mvl_tensor *u = mvl_pushview(L, owner_idx, t, closed);
  u->touched = touched;
  return u;
}

/* A view of the tensor at idx: the user value points at the real owner. */
static mvl_tensor *pushview_of(lua_State *L, int idx, const mv_tensor *t) {
  idx = lua_absindex(L, idx);
  mvl_tensor *src = lua_touserdata(L, idx);
  if (src->base) return mvl_pushview(L, idx, t, &src->closed);
  lua_getiuservalue(L, idx, 1); /* the owner of a view */
  mvl_tensor *u = mvl_pushview_touch(L, -1, t, src->owner_closed, src->touched);
  lua_remove(L, -2);
  return u;
}

int mvl_checkshape(lua_State *L, int idx, int64_t *size) {
  int n = 0;
  if (lua_istable(L, idx)) {
    n = (int)luaL_len(L, idx);
    if (n > MV_MAXDIM) luaL_argerror(L, idx, "too many dimensions (at most 4)");
    for (int i = 0; i < n; i++) {
      lua_geti(L, idx, i + 1);
      int ok;
      lua_Integer v = lua_tointegerx(L, -1, &ok);
      if (!ok) luaL_argerror(L, idx, "sizes must be integers");
      size[i] = v;
      lua_pop(L, 1);
    }
  } else {
    int top = lua_gettop(L);
    n = top - idx + 1;
    if (n < 0) n = 0;
    if (n > MV_MAXDIM) luaL_argerror(L, idx, "too many dimensions (at most 4)");
    for (int i = 0; i < n; i++) size[i] = luaL_checkinteger(L, idx + i);
  }
  for (int i = 0; i < n; i++)
    if (size[i] < 0) luaL_argerror(L, idx, "sizes must be >= 0");
  return n;
}

static int l_zeros(lua_State *L) {
  int64_t size[MV_MAXDIM];
  int n = mvl_checkshape(L, 1, size);
  mvl_newtensor(L, n, size);
  return 1;
}

static int l_full(lua_State *L) {
  int64_t size[MV_MAXDIM];
  float v = (float)luaL_checknumber(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  int n = mvl_checkshape(L, 1, size);
  mvl_tensor *u = mvl_newtensor(L, n, size);
  mv_tensor_fill(&u->t, v);
  return 1;
}

static int l_ones(lua_State *L) {
  int64_t size[MV_MAXDIM];
  int n = mvl_checkshape(L, 1, size);
  mvl_tensor *u = mvl_newtensor(L, n, size);
  mv_tensor_fill(&u->t, 1.0f);
  return 1;
}

/* mv.tensor(nested table | number): copies. */
static void infer_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *size) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    *ndim = depth;
    return;
  }
  if (!lua_istable(L, idx)) luaL_error(L, "tensor: expected numbers or nested tables of numbers");
  if (depth >= MV_MAXDIM) luaL_error(L, "tensor: more than %d levels of nesting", MV_MAXDIM);
  size[depth] = (int64_t)luaL_len(L, idx);
  if (size[depth] == 0) {
    *ndim = depth + 1;
    return;
  }
  lua_geti(L, idx, 1);
  infer_shape(L, lua_gettop(L), depth + 1, ndim, size);
  lua_pop(L, 1);
}

static void fill_from(lua_State *L, int idx, int depth, int ndim, const int64_t *size, float **out) {
  if (depth >= ndim || depth >= MV_MAXDIM) {
    int ok;
    lua_Number v = lua_tonumberx(L, idx, &ok);
    if (!ok) luaL_error(L, "tensor: expected a number at depth %d", depth);
    *(*out)++ = (float)v;
    return;
  }
  if (!lua_istable(L, idx) || (int64_t)luaL_len(L, idx) != size[depth])
    luaL_error(L, "tensor: ragged nested table (dimension %d should have %I entries)", depth + 1,
               (lua_Integer)size[depth]);
  for (int64_t i = 1; i <= size[depth]; i++) {
    lua_geti(L, idx, i);
    fill_from(L, lua_gettop(L), depth + 1, ndim, size, out);
    lua_pop(L, 1);
  }
}

static int l_tensor(lua_State *L) {
  int64_t size[MV_MAXDIM] = {0};
  int ndim = 0;
  luaL_checkany(L, 1);
  infer_shape(L, 1, 0, &ndim, size);
  mvl_tensor *u = mvl_newtensor(L, ndim, size);
  float *p = u->base;
  fill_from(L, 1, 0, ndim, size, &p);
  return 1;
}

static int l_frombytes(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int64_t size[MV_MAXDIM];
  int n = mvl_checkshape(L, 2, size);
  int64_t numel;
  mv_err err;
  if (mv_shape_check(n, size, &numel, &err)) return mvl_raise(L, &err);
  if ((uint64_t)numel * 4 != len)
    return luaL_error(L, "frombytes: %I bytes do not hold %I float32 values", (lua_Integer)len,
                      (lua_Integer)numel);
  mvl_tensor *u = mvl_newtensor(L, n, size);
  memcpy(u->base, s, len);
  return 1;
}

static void fill_random(lua_State *L, int normal) {
  mv_rng *r = mvl_checkrng(L, 1);
  int64_t size[MV_MAXDIM];
  luaL_checktype(L, 2, LUA_TTABLE);
  int n = mvl_checkshape(L, 2, size);
  double a = luaL_optnumber(L, 3, 0.0), b = luaL_optnumber(L, 4, 1.0); /* mean, std or lo, hi */
  mvl_tensor *u = mvl_newtensor(L, n, size);
  int64_t numel = mv_tensor_numel(&u->t);
  for (int64_t i = 0; i < numel; i++)
    u->base[i] = (float)(normal ? a + b * mv_rng_normal(r) : a + (b - a) * mv_rng_uniform(r));
}

/* mv.randn(rng, shape[, mean, std]) */
static int l_randn(lua_State *L) {
  fill_random(L, 1);
  return 1;
}

/* mv.rand(rng, shape[, lo, hi]) */
static int l_rand(lua_State *L) {
  fill_random(L, 0);
  return 1;
}

/* ---- methods ---------------------------------------------------------------- */
static int checkdim(lua_State *L, const mvl_tensor *u, int arg) {
  lua_Integer d = luaL_checkinteger(L, arg);
  if (d < 1 || d > u->t.ndim)
    luaL_error(L, "dimension %d out of range for a %d-dimensional tensor", (int)d, u->t.ndim);
  return (int)d - 1;
}

static int m_size(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, u->t.size[checkdim(L, u, 2)]);
    return 1;
  }
  lua_createtable(L, u->t.ndim, 0);
  for (int i = 0; i < u->t.ndim; i++) {
    lua_pushinteger(L, u->t.size[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_stride(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, u->t.stride[checkdim(L, u, 2)]);
    return 1;
  }
  lua_createtable(L, u->t.ndim, 0);
  for (int i = 0; i < u->t.ndim; i++) {
    lua_pushinteger(L, u->t.stride[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_dim(lua_State *L) {
  lua_pushinteger(L, mvl_checktensor(L, 1)->t.ndim);
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, mv_tensor_numel(&mvl_checktensor(L, 1)->t));
  return 1;
}

static int m_is_contiguous(lua_State *L) {
  lua_pushboolean(L, mv_tensor_is_contiguous(&mvl_checktensor(L, 1)->t));
  return 1;
}

static int m_isview(lua_State *L) {
  lua_pushboolean(L, mvl_checktensor(L, 1)->base == NULL);
  return 1;
}

static int m_len(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  lua_pushinteger(L, u->t.ndim ? u->t.size[0] : 1);
  return 1;
}

static int m_narrow(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  int d = checkdim(L, u, 2);
  lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
  mv_tensor v;
  mv_err err;
  if (mv_tensor_narrow(&v, &u->t, d, start - 1, len, &err)) return mvl_raise(L, &err);
  pushview_of(L, 1, &v);
  return 1;
}

static int m_select(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  int d = checkdim(L, u, 2);
  lua_Integer i = luaL_checkinteger(L, 3);
  mv_tensor v;
  mv_err err;
  if (mv_tensor_select(&v, &u->t, d, i - 1, &err)) return mvl_raise(L, &err);
  pushview_of(L, 1, &v);
  return 1;
}

static int m_transpose(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  int d0, d1;
  if (lua_isnoneornil(L, 2)) {
    if (u->t.ndim != 2) return luaL_error(L, "transpose() without dimensions needs a 2-dimensional tensor");
    d0 = 0;
    d1 = 1;
  } else {
    d0 = checkdim(L, u, 2);
    d1 = checkdim(L, u, 3);
  }
  mv_tensor v;
  mv_err err;
  if (mv_tensor_transpose(&v, &u->t, d0, d1, &err)) return mvl_raise(L, &err);
  pushview_of(L, 1, &v);
  return 1;
}

/* Shape arguments for view/reshape, with one -1 inferred. */
static int newshape(lua_State *L, const mvl_tensor *u, int idx, int64_t *size) {
  int n = 0, infer = -1;
  int64_t known = 1;
  if (lua_istable(L, idx)) {
    n = (int)luaL_len(L, idx);
    if (n > MV_MAXDIM) luaL_argerror(L, idx, "too many dimensions (at most 4)");
    for (int i = 0; i < n; i++) {
      lua_geti(L, idx, i + 1);
      size[i] = luaL_checkinteger(L, -1);
      lua_pop(L, 1);
    }
  } else {
    n = lua_gettop(L) - idx + 1;
    if (n > MV_MAXDIM) luaL_argerror(L, idx, "too many dimensions (at most 4)");
    for (int i = 0; i < n; i++) size[i] = luaL_checkinteger(L, idx + i);
  }
  for (int i = 0; i < n; i++) {
    if (size[i] == -1) {
      if (infer >= 0) luaL_error(L, "only one size may be -1");
      infer = i;
    } else if (size[i] < 0) {
      luaL_error(L, "sizes must be >= 0 (or one -1)");
    } else if (size[i] != 0 && known > INT64_MAX / size[i]) {
      luaL_error(L, "shape too large (element count overflows)");
    } else {
      known *= size[i];
    }
  }
  if (infer >= 0) {
    int64_t total = mv_tensor_numel(&u->t);
    if (known == 0 || total % known) luaL_error(L, "cannot infer the -1 size: %I elements", (lua_Integer)total);
    size[infer] = total / known;
  }
  return n;
}

static int m_view(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  int64_t size[MV_MAXDIM];
  int n = newshape(L, u, 2, size);
  mv_tensor v;
  mv_err err;
  if (mv_tensor_view(&v, &u->t, n, size, &err)) return mvl_raise(L, &err);
  pushview_of(L, 1, &v);
  return 1;
}

static mvl_tensor *clone(lua_State *L, const mvl_tensor *u) {
  mvl_tensor *c = mvl_newtensor(L, u->t.ndim, u->t.size);
  mv_tensor_copy(&c->t, &u->t, NULL);
  return c;
}

static int m_reshape(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  int64_t size[MV_MAXDIM];
  int n = newshape(L, u, 2, size);
  if (mv_tensor_is_contiguous(&u->t)) return m_view(L);
  mv_tensor v;
  mv_err err;
  mvl_tensor *c = clone(L, u);
  if (mv_tensor_view(&v, &c->t, n, size, &err)) return mvl_raise(L, &err);
  c->t = v;
  return 1;
}

static int m_clone(lua_State *L) {
  clone(L, mvl_checktensor(L, 1));
  return 1;
}

static int m_contiguous(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  if (mv_tensor_is_contiguous(&u->t)) lua_settop(L, 1);
  else clone(L, u);
  return 1;
}

static int m_copy(lua_State *L) {
  mvl_tensor *d = mvl_checktensor(L, 1), *s = mvl_checktensor(L, 2);
  mv_err err;
  if (mv_tensor_copy(&d->t, &s->t, &err)) return mvl_raise(L, &err);
  lua_settop(L, 1);
  return 1;
}

static int m_fill(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  mv_tensor_fill(&u->t, (float)luaL_checknumber(L, 2));
  lua_settop(L, 1);
  return 1;
}

/* Elementwise binary op; out is a new tensor or (inplace) the first. */
static int binop(lua_State *L, int kind, int inplace) {
  mvl_tensor *a = mvl_checktensor(L, 1);
  mv_err err;
  mvl_tensor *o = inplace ? a : NULL;
  if (kind == 3) { /* scale */
    float s = (float)luaL_checknumber(L, 2);
    if (!o) o = mvl_newtensor(L, a->t.ndim, a->t.size);
    mv_tensor_scale(&o->t, &a->t, s, NULL);
  } else {
    mvl_tensor *b = mvl_checktensor(L, 2);
    if (!mv_tensor_same_shape(&a->t, &b->t)) {
      char sa[96], sb[96];
      mv_shape_str(sa, sizeof sa, &a->t);
      mv_shape_str(sb, sizeof sb, &b->t);
      return luaL_error(L, "%s: shapes %s and %s do not match", kind == 2 ? "mul" : kind == 1 ? "sub" : "add", sa,
                        sb);
    }
    float alpha = (float)luaL_optnumber(L, 3, 1.0);
    if (!o) o = mvl_newtensor(L, a->t.ndim, a->t.size);
    int rc = kind == 2 ? mv_tensor_mul(&o->t, &a->t, &b->t, &err)
                       : mv_tensor_add(&o->t, &a->t, &b->t, kind == 1 ? -alpha : alpha, &err);
    if (rc) return mvl_raise(L, &err);
  }
  if (inplace) lua_settop(L, 1);
  return 1;
}

static int m_add(lua_State *L) { return binop(L, 0, 0); }
static int m_sub(lua_State *L) { return binop(L, 1, 0); }
static int m_mul(lua_State *L) { return binop(L, 2, 0); }
static int m_scale(lua_State *L) { return binop(L, 3, 0); }
static int m_add_(lua_State *L) { return binop(L, 0, 1); }
static int m_sub_(lua_State *L) { return binop(L, 1, 1); }
static int m_mul_(lua_State *L) { return binop(L, 2, 1); }
static int m_scale_(lua_State *L) { return binop(L, 3, 1); }

/* __mul: tensor * tensor elementwise, number * tensor scales. */
static int mm_mul(lua_State *L) {
  if (lua_type(L, 1) == LUA_TNUMBER) lua_rotate(L, 1, 1);
  if (lua_type(L, 2) == LUA_TNUMBER) return binop(L, 3, 0);
  return binop(L, 2, 0);
}

static int mm_unm(lua_State *L) {
  lua_settop(L, 1);
  lua_pushnumber(L, -1);
  return binop(L, 3, 0);
}

static int m_sum_mean(lua_State *L, int mean) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  if (lua_isnoneornil(L, 2)) {
    double s = mv_tensor_sum_all(&u->t);
    int64_t n = mv_tensor_numel(&u->t);
    lua_pushnumber(L, mean ? (n ? s / (double)n : NAN) : s);
    return 1;
  }
  int d = checkdim(L, u, 2);
  mv_tensor shape;
  mv_tensor tmp = u->t;
  tmp.size[d] = 1;
  mv_tensor_select(&shape, &tmp, d, 0, NULL);
  mvl_tensor *o = mvl_newtensor(L, shape.ndim, shape.size);
  mv_err err;
  if (mv_tensor_sum_dim(&o->t, &u->t, d, mean, &err)) return mvl_raise(L, &err);
  return 1;
}

static int m_sum(lua_State *L) { return m_sum_mean(L, 0); }
static int m_mean(lua_State *L) { return m_sum_mean(L, 1); }

/* argmax(dim): a tensor of 1-based indices (float); argmax() of all elements:
 * the 1-based flat index as an integer. */
static int m_argmax(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  mv_err err;
  if (lua_isnoneornil(L, 2)) {
    int64_t n = mv_tensor_numel(&u->t);
    if (n == 0) return luaL_error(L, "argmax of an empty tensor");
    mvl_tensor *c = clone(L, u);
    int64_t best = 0;
    for (int64_t i = 1; i < n && !isnan(c->base[best]); i++)
      if (c->base[i] > c->base[best] || isnan(c->base[i])) best = i;
    lua_pushinteger(L, best + 1);
    return 1;
  }
  int d = checkdim(L, u, 2);
  mv_tensor shape;
  if (u->t.size[d] == 0) return luaL_error(L, "argmax over an empty dimension");
  mv_tensor_select(&shape, &u->t, d, 0, NULL);
  mvl_tensor *o = mvl_newtensor(L, shape.ndim, shape.size);
  if (mv_tensor_argmax_dim(&o->t, &u->t, d, &err)) return mvl_raise(L, &err);
  int64_t n = mv_tensor_numel(&o->t);
  for (int64_t i = 0; i < n; i++) o->base[i] += 1.0f;
  return 1;
}

static int transposeflag(lua_State *L, int opts, const char *key) {
  if (!lua_istable(L, opts)) return 0;
  lua_getfield(L, opts, key);
  int v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static double optfield(lua_State *L, int opts, const char *key, double def) {
  if (!lua_istable(L, opts)) return def;
  lua_getfield(L, opts, key);
  double v = luaL_optnumber(L, -1, def);
  lua_pop(L, 1);
  return v;
}

/* a:matmul(b[, {ta = bool, tb = bool}]) -> new [m, n] tensor */
static int m_matmul(lua_State *L) {
  mvl_tensor *a = mvl_checktensor(L, 1), *b = mvl_checktensor(L, 2);
  int ta = transposeflag(L, 3, "ta"), tb = transposeflag(L, 3, "tb");
  if (a->t.ndim != 2 || b->t.ndim != 2)
    return luaL_error(L, "matmul takes 2-dimensional tensors (got %d and %d dimensions)", a->t.ndim, b->t.ndim);
  int64_t size[2] = {ta ? a->t.size[1] : a->t.size[0], tb ? b->t.size[0] : b->t.size[1]};
  mvl_tensor *c = mvl_newtensor(L, 2, size);
  mv_err err;
  if (mv_tensor_matmul(&c->t, &a->t, ta, &b->t, tb, 1.0f, 0.0f, &err)) return mvl_raise(L, &err);
  return 1;
}

/* mv.gemm(c, a, b[, {ta, tb, alpha = 1, beta = 0}]) -> c, in place */
static int l_gemm(lua_State *L) {
  mvl_tensor *c = mvl_checktensor(L, 1), *a = mvl_checktensor(L, 2), *b = mvl_checktensor(L, 3);
  int ta = transposeflag(L, 4, "ta"), tb = transposeflag(L, 4, "tb");
  float alpha = (float)optfield(L, 4, "alpha", 1.0), beta = (float)optfield(L, 4, "beta", 0.0);
  mv_err err;
  if (mv_tensor_matmul(&c->t, &a->t, ta, &b->t, tb, alpha, beta, &err)) return mvl_raise(L, &err);
  lua_settop(L, 1);
  return 1;
}

static int64_t *indices(lua_State *L, const mvl_tensor *u, int first, int64_t *idx) {
  int n = lua_gettop(L) - first + 1;
  if (n != u->t.ndim) luaL_error(L, "expected %d indices, got %d", u->t.ndim, n < 0 ? 0 : n);
  for (int i = 0; i < u->t.ndim; i++) {
    lua_Integer v = luaL_checkinteger(L, first + i);
    if (v < 1 || v > u->t.size[i])
      luaL_error(L, "index %d out of range for dimension %d of size %d", (int)v, i + 1, (int)u->t.size[i]);
    idx[i] = v - 1;
  }
  return idx;
}

static int m_get(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  int64_t idx[MV_MAXDIM];
  lua_pushnumber(L, *mv_tensor_at(&u->t, indices(L, u, 2, idx)));
  return 1;
}

static int m_set(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  float v = (float)luaL_checknumber(L, 2);
  int64_t idx[MV_MAXDIM];
  *mv_tensor_at(&u->t, indices(L, u, 3, idx)) = v;
  lua_settop(L, 1);
  return 1;
}

static void push_table(lua_State *L, const mv_tensor *t, int d, const float *p) {
  if (d >= t->ndim || d >= MV_MAXDIM) {
    lua_pushnumber(L, *p);
    return;
  }
  lua_createtable(L, (int)t->size[d], 0);
  for (int64_t i = 0; i < t->size[d]; i++) {
    push_table(L, t, d + 1, p + i * t->stride[d]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int m_totable(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  luaL_checkstack(L, MV_MAXDIM + 4, NULL);
  push_table(L, &u->t, 0, u->t.data);
  return 1;
}

static int m_tobytes(lua_State *L) {
  mvl_tensor *u = mvl_checktensor(L, 1);
  int64_t n = mv_tensor_numel(&u->t);
  if (mv_tensor_is_contiguous(&u->t)) {
    lua_pushlstring(L, (const char *)u->t.data, (size_t)n * 4);
  } else {
    mvl_tensor *c = clone(L, u);
    lua_pushlstring(L, (const char *)c->base, (size_t)n * 4);
  }
  return 1;
}

static int m_tostring(lua_State *L) {
  mvl_tensor *u = luaL_checkudata(L, 1, MVL_TENSOR_MT);
  if (u->closed || *u->owner_closed) {
    lua_pushliteral(L, "musicvae.Tensor (closed)");
    return 1;
  }
  char shape[96];
  mv_shape_str(shape, sizeof shape, &u->t);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_pushfstring(L, "musicvae.Tensor%s%s", shape, u->base ? "" : " (view)");
  luaL_addvalue(&b);
  int64_t n = mv_tensor_numel(&u->t);
  if (u->t.ndim <= 2 && n <= 400) {
    int64_t rows = u->t.ndim == 2 ? u->t.size[0] : 1;
    int64_t cols = u->t.ndim == 0 ? 1 : u->t.size[u->t.ndim - 1];
    int64_t rs = u->t.ndim == 2 ? u->t.stride[0] : 0, cs = u->t.ndim ? u->t.stride[u->t.ndim - 1] : 0;
    for (int64_t i = 0; i < rows; i++) {
      luaL_addstring(&b, "\n ");
      for (int64_t j = 0; j < cols; j++) {
        char num[32];
        snprintf(num, sizeof num, " %10.4g", (double)u->t.data[i * rs + j * cs]);
        luaL_addstring(&b, num);
      }
    }
  }
  luaL_pushresult(&b);
  return 1;
}

static int m_close(lua_State *L) {
  mvl_tensor *u = luaL_checkudata(L, 1, MVL_TENSOR_MT);
  if (u->base) {
    free(u->base);
    u->base = NULL;
    /* keep base == NULL meaning "view" false for a closed owner: owner_closed
     * points at our own flag, which is what views check */
  }
  u->closed = 1;
  return 0;
}

static int m_isclosed(lua_State *L) {
  mvl_tensor *u = luaL_checkudata(L, 1, MVL_TENSOR_MT);
  lua_pushboolean(L, u->closed || *u->owner_closed);
  return 1;
}

static int l_istensor(lua_State *L) {
  lua_pushboolean(L, mvl_testtensor(L, 1) != NULL);
  return 1;
}

static const luaL_Reg methods[] = {
    {"size", m_size},       {"stride", m_stride},       {"dim", m_dim},         {"numel", m_numel},
    {"is_contiguous", m_is_contiguous}, {"isview", m_isview},  {"narrow", m_narrow}, {"select", m_select},
    {"transpose", m_transpose}, {"t", m_transpose},     {"view", m_view},       {"reshape", m_reshape},
    {"clone", m_clone},     {"contiguous", m_contiguous}, {"copy", m_copy},     {"fill", m_fill},
    {"add", m_add},         {"sub", m_sub},             {"mul", m_mul},         {"scale", m_scale},
    {"add_", m_add_},       {"sub_", m_sub_},           {"mul_", m_mul_},       {"scale_", m_scale_},
    {"sum", m_sum},         {"mean", m_mean},           {"argmax", m_argmax},   {"matmul", m_matmul},
    {"get", m_get},         {"set", m_set},             {"totable", m_totable}, {"tobytes", m_tobytes},
    {"close", m_close},     {"isclosed", m_isclosed},   {NULL, NULL}};

static const luaL_Reg metamethods[] = {{"__gc", m_close},      {"__close", m_close}, {"__len", m_len},
                                       {"__tostring", m_tostring}, {"__add", m_add},  {"__sub", m_sub},
                                       {"__mul", mm_mul},      {"__unm", mm_unm},    {NULL, NULL}};

static const luaL_Reg functions[] = {{"zeros", l_zeros},     {"ones", l_ones},   {"full", l_full},
                                     {"tensor", l_tensor},   {"frombytes", l_frombytes}, {"randn", l_randn},
                                     {"rand", l_rand},       {"gemm", l_gemm},   {"istensor", l_istensor},
                                     {NULL, NULL}};

void mvl_tensor_open(lua_State *L) {
  luaL_newmetatable(L, MVL_TENSOR_MT);
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushliteral(L, "musicvae.Tensor");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_setfuncs(L, functions, 0);
  /* the method table, for users who want mv.Tensor.sum(t) */
  luaL_getmetatable(L, MVL_TENSOR_MT);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "Tensor");
  lua_pop(L, 1);
}
