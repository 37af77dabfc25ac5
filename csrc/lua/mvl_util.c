/* mvl_util.c -- the helpers every binding file (mvl_*.c) shares: errors, classes, option fields. */
#include <limits.h>

#include "mvl.h"

int mvl_raise(lua_State *L, const mv_err *err) { return luaL_error(L, "%s", err->msg); }

void mvl_newclass(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close_fn) {
  luaL_newmetatable(L, name);
  lua_pushcfunction(L, close_fn);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close_fn);
  lua_setfield(L, -2, "__close");
  lua_newtable(L); /* luaL_newlib needs an array, not a pointer */
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

int mvl_fail(lua_State *L, const mv_err *err) {
  luaL_pushfail(L);
  lua_pushstring(L, err->msg);
  return 2;
}

double mvl_optnum(lua_State *L, int t, const char *k, double def) {
  lua_getfield(L, t, k);
  double v = luaL_optnumber(L, -1, def);
  lua_pop(L, 1);
  return v;
}

int mvl_optint(lua_State *L, int t, const char *k, int def) {
  lua_getfield(L, t, k);
  lua_Integer v = luaL_optinteger(L, -1, def);
  if (v < INT_MIN || v > INT_MAX) luaL_error(L, "option %s is out of range", k); /* never truncated by a cast */
  lua_pop(L, 1);
  return (int)v;
}
