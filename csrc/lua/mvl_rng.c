/* mvl_rng.c -- "musicvae.Rng": explicit random streams for Lua.
 *   mv.rng(seed[, purpose[, index]]) -- purpose: a name ("z", "data", ...) or
 *   an integer; index: the example index for per-example streams. */
#include <string.h>

#include "mvl.h"

mv_rng *mvl_checkrng(lua_State *L, int idx) { return luaL_checkudata(L, idx, MVL_RNG_MT); }

static uint64_t purpose_arg(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) return mv_rng_purpose("default");
  if (lua_type(L, idx) == LUA_TSTRING) return mv_rng_purpose(lua_tostring(L, idx));
  return (uint64_t)luaL_checkinteger(L, idx);
}

static mv_rng *newrng(lua_State *L) {
  mv_rng *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->s[0] = 1;
  luaL_setmetatable(L, MVL_RNG_MT);
  return r;
}

static int l_rng(lua_State *L) {
  uint64_t seed = (uint64_t)luaL_checkinteger(L, 1);
  uint64_t purpose = purpose_arg(L, 2);
  uint64_t index = (uint64_t)luaL_optinteger(L, 3, 0);
  mv_rng_seed(newrng(L), seed, purpose, index);
  return 1;
}

static int m_uniform(lua_State *L) {
  mv_rng *r = mvl_checkrng(L, 1);
  double u = mv_rng_uniform(r);
  if (lua_isnoneornil(L, 2)) lua_pushnumber(L, u);
  else {
    double a = luaL_checknumber(L, 2), b = luaL_checknumber(L, 3);
    lua_pushnumber(L, a + (b - a) * u);
  }
  return 1;
}

static int m_normal(lua_State *L) {
  mv_rng *r = mvl_checkrng(L, 1);
  double mean = luaL_optnumber(L, 2, 0.0), std = luaL_optnumber(L, 3, 1.0);
  lua_pushnumber(L, mean + std * mv_rng_normal(r));
  return 1;
}

/* r:integer(n) -> uniform in 1..n; r:integer(a, b) -> uniform in a..b */
static int m_integer(lua_State *L) {
  mv_rng *r = mvl_checkrng(L, 1);
  lua_Integer a = 1, b = luaL_checkinteger(L, 2);
  if (!lua_isnoneornil(L, 3)) {
    a = b;
    b = luaL_checkinteger(L, 3);
  }
  luaL_argcheck(L, a <= b, 2, "empty range");
  lua_pushinteger(L, a + (lua_Integer)mv_rng_below(r, (uint64_t)(b - a) + 1));
  return 1;
}

/* r:categorical(weights) -> 1-based index; weights: table or 1-D tensor */
static int m_categorical(lua_State *L) {
  mv_rng *r = mvl_checkrng(L, 1);
  mv_err err;
  int64_t out;
  mvl_tensor *t = mvl_testtensor(L, 2);
  if (t) {
    t = mvl_checktensor(L, 2);
    if (t->t.ndim != 1) return luaL_argerror(L, 2, "categorical weights must be a 1-D tensor");
    if (mv_rng_categorical(r, t->t.data, t->t.size[0], t->t.stride[0], &out, &err)) return mvl_raise(L, &err);
  } else {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer n = luaL_len(L, 2);
    float *w = lua_newuserdatauv(L, sizeof(float) * (size_t)(n > 0 ? n : 1), 0);
    for (lua_Integer i = 0; i < n; i++) {
      lua_geti(L, 2, i + 1);
      w[i] = (float)luaL_checknumber(L, -1);
      lua_pop(L, 1);
    }
    if (mv_rng_categorical(r, w, n, 1, &out, &err)) return mvl_raise(L, &err);
  }
  lua_pushinteger(L, out + 1);
  return 1;
}

static int m_state(lua_State *L) {
  unsigned char s[MV_RNG_STATE_BYTES];
  mv_rng_save(mvl_checkrng(L, 1), s);
  lua_pushlstring(L, (const char *)s, sizeof s);
  return 1;
}

/* r:set_state(s) -> r, or nil, err for a malformed state string */
static int m_set_state(lua_State *L) {
  mv_rng *r = mvl_checkrng(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  mv_err err;
  if (mv_rng_load(r, (const unsigned char *)s, n, &err)) return mvl_fail(L, &err);
  lua_settop(L, 1);
  return 1;
}

static int m_clone(lua_State *L) {
  mv_rng *r = mvl_checkrng(L, 1);
  *newrng(L) = *r;
  return 1;
}

static int m_tostring(lua_State *L) {
  mv_rng *r = mvl_checkrng(L, 1);
  lua_pushfstring(L, "musicvae.Rng (%p)", (void *)r);
  return 1;
}

static const luaL_Reg methods[] = {{"uniform", m_uniform},         {"normal", m_normal}, {"integer", m_integer},
                                   {"categorical", m_categorical}, {"state", m_state},   {"set_state", m_set_state},
                                   {"clone", m_clone},             {NULL, NULL}};

static int l_purpose(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)mv_rng_purpose(luaL_checkstring(L, 1)));
  return 1;
}

void mvl_rng_open(lua_State *L) {
  luaL_newmetatable(L, MVL_RNG_MT);
  lua_pushcfunction(L, m_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_rng);
  lua_setfield(L, -2, "rng");
  lua_pushcfunction(L, l_purpose);
  lua_setfield(L, -2, "rng_purpose");
}
