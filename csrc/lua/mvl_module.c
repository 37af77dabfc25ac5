/* mvl_module.c -- luaopen_musicvae_core: builds the module table. */
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

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_musicvae_core(lua_State *L);

int luaopen_musicvae_core(lua_State *L) {
  lua_newtable(L);
  lua_pushliteral(L, MV_VERSION);
  lua_setfield(L, -2, "_VERSION");
  mvl_tensor_open(L); /* first: the others push tensors */
  mvl_rng_open(L);
  mvl_st_open(L);
  mvl_sys_open(L);
  mvl_midi_open(L);
  mvl_vae_open(L);
  mvl_audio_open(L);
  return 1;
}
