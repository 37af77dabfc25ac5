/* mvl_st.c -- safetensors from Lua.
 *   core.st_load(path) / core.st_loads(bytes)
 *       -> tensors {name = Tensor}, metadata {key = value}, names {..} (file
 *          order), dtypes {name = "F16"}; or nil, err for any bad file.
 *   core.st_save(path, entries, metadata) / core.st_dumps(entries, metadata)
 *       entries: array of {name = s, tensor = T, dtype = "F32"|"F16"|"BF16"}.
 *       -> true (string for dumps), or nil, err when the file cannot be written.
 *       Bad arguments raise. */
#include <stdlib.h>
#include <string.h>

#include "mvl.h"

static int push_file(lua_State *L, mv_st_file *f, const char *path) {
  mv_err err;
  int n = mv_st_count(f);
  for (int i = 0; i < n; i++) {
    const mv_st_entry *e = mv_st_get(f, i);
    if (e->ndim > MV_MAXDIM) {
      mv_seterr(&err, MV_EUNSUPPORTED, "%s%stensor \"%.80s\" has %d dimensions; at most %d are supported",
                path ? path : "", path ? ": " : "", e->name, e->ndim, MV_MAXDIM);
      mv_st_free(f);
      return mvl_fail(L, &err);
    }
    if (e->dtype != MV_DT_F32 && e->dtype != MV_DT_F16 && e->dtype != MV_DT_BF16) {
      mv_seterr(&err, MV_EUNSUPPORTED, "%s%stensor \"%.80s\" has dtype %s; only F32, F16 and BF16 are supported",
                path ? path : "", path ? ": " : "", e->name, mv_dtype_name(e->dtype));
      mv_st_free(f);
      return mvl_fail(L, &err);
    }
  }
  lua_createtable(L, 0, n); /* tensors */
  lua_createtable(L, 0, 0); /* metadata */
  lua_createtable(L, n, 0); /* names */
  lua_createtable(L, 0, n); /* dtypes */
  int base = lua_gettop(L) - 3;
  for (int i = 0; i < n; i++) {
    const mv_st_entry *e = mv_st_get(f, i);
    mvl_tensor *t = mvl_newtensor(L, e->ndim, e->shape); /* raises only on OOM */
    mv_st_entry_to_f32(e, t->base, NULL);
    lua_setfield(L, base, e->name);
    lua_pushstring(L, e->name);
    lua_rawseti(L, base + 2, i + 1);
    lua_pushstring(L, mv_dtype_name(e->dtype));
    lua_setfield(L, base + 3, e->name);
  }
  for (int i = 0; i < mv_st_meta_count(f); i++) {
    const char *k, *v;
    mv_st_meta_get(f, i, &k, &v);
    lua_pushstring(L, v);
    lua_setfield(L, base + 1, k);
  }
  mv_st_free(f);
  return 4;
}

static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mv_st_file *f;
  mv_err err;
  if (mv_st_read(&f, path, &err)) return mvl_fail(L, &err);
  return push_file(L, f, path);
}

static int l_loads(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  mv_st_file *f;
  mv_err err;
  if (mv_st_parse(&f, s, len, 0, &err)) return mvl_fail(L, &err);
  /* the tensors are copied out before the string can be collected */
  return push_file(L, f, NULL);
}

/* Builds a writer from (entries, metadata) at idx, idx+1. Raises on bad
 * arguments; the writer is anchored in a userdata so a raise cannot leak it. */
static int l_wgc(lua_State *L) {
  mv_st_writer **w = lua_touserdata(L, 1);
  mv_st_writer_free(*w);
  *w = NULL;
  return 0;
}

static mv_st_writer **build(lua_State *L, int idx) {
  luaL_checktype(L, idx, LUA_TTABLE);
  mv_st_writer **w = lua_newuserdatauv(L, sizeof *w, 0);
  *w = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_wgc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  *w = mv_st_writer_new();
  if (!*w) luaL_error(L, "out of memory");
  mv_err err;
  lua_Integer n = luaL_len(L, idx);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    if (!lua_istable(L, -1)) luaL_error(L, "entry %d: expected {name = ..., tensor = ..., dtype = ...}", (int)i);
    lua_getfield(L, -1, "name");
    const char *name = lua_tostring(L, -1);
    if (!name || lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "entry %d: name must be a string", (int)i);
    lua_getfield(L, -2, "tensor");
    mvl_tensor *t = mvl_checktensor(L, -1);
    lua_getfield(L, -3, "dtype");
    size_t dl;
    const char *ds = lua_isnil(L, -1) ? "F32" : lua_tolstring(L, -1, &dl);
    mv_dtype dt;
    if (!ds || !mv_dtype_from_name(ds, strlen(ds), &dt)) luaL_error(L, "entry %d: unknown dtype", (int)i);
    if (mv_st_writer_add(*w, name, dt, &t->t, &err)) mvl_raise(L, &err);
    lua_pop(L, 4);
  }
  if (!lua_isnoneornil(L, idx + 1)) {
    luaL_checktype(L, idx + 1, LUA_TTABLE);
    /* sorted keys, so the same metadata always gives the same bytes */
    lua_newtable(L);
    int keys = lua_gettop(L);
    int nk = 0;
    lua_pushnil(L);
    while (lua_next(L, idx + 1)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "metadata keys and values must be strings");
      lua_pop(L, 1);
      lua_pushvalue(L, -1);
      lua_rawseti(L, keys, ++nk);
    }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_pushvalue(L, keys);
    lua_call(L, 1, 0);
    lua_pop(L, 1);
    for (int i = 1; i <= nk; i++) {
      lua_rawgeti(L, keys, i);
      lua_pushvalue(L, -1);
      lua_gettable(L, idx + 1);
      if (mv_st_writer_meta(*w, lua_tostring(L, -2), lua_tostring(L, -1), &err)) mvl_raise(L, &err);
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  return w;
}

static int l_save(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mv_st_writer **w = build(L, 2);
  mv_err err;
  int rc = mv_st_writer_save(*w, path, &err);
  mv_st_writer_free(*w);
  *w = NULL;
  if (rc) return mvl_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_dumps(lua_State *L) {
  mv_st_writer **w = build(L, 1);
  unsigned char *buf;
  size_t len;
  mv_err err;
  int rc = mv_st_writer_bytes(*w, &buf, &len, &err);
  mv_st_writer_free(*w);
  *w = NULL;
  if (rc) return mvl_raise(L, &err);
  lua_pushlstring(L, (const char *)buf, len);
  free(buf);
  return 1;
}

static const luaL_Reg functions[] = {
    {"st_load", l_load}, {"st_loads", l_loads}, {"st_save", l_save}, {"st_dumps", l_dumps}, {NULL, NULL}};

void mvl_st_open(lua_State *L) { luaL_setfuncs(L, functions, 0); }
