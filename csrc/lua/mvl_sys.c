/* mvl_sys.c -- BLAS information and threads, the clock. */
#include "mvl.h"

static int l_blas_info(lua_State *L) {
  mv_blas_info i;
  mv_blas_get_info(&i);
  lua_createtable(L, 0, 8);
  lua_pushstring(L, i.core);
  lua_setfield(L, -2, "core");
  lua_pushstring(L, i.how);
  lua_setfield(L, -2, "how");
  lua_pushstring(L, i.library);
  lua_setfield(L, -2, "library");
  lua_pushstring(L, i.config);
  lua_setfield(L, -2, "config");
  lua_pushinteger(L, i.threads);
  lua_setfield(L, -2, "threads");
  lua_pushboolean(L, i.cpu_avx2);
  lua_setfield(L, -2, "cpu_avx2");
  lua_pushboolean(L, i.cpu_avx512);
  lua_setfield(L, -2, "cpu_avx512");
  return 1;
}

static int l_set_num_threads(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1 && n <= 1024, 1, "threads must be between 1 and 1024");
  mv_blas_set_num_threads((int)n);
  return 0;
}

static int l_get_num_threads(lua_State *L) {
  lua_pushinteger(L, mv_blas_get_num_threads());
  return 1;
}

static int l_clock(lua_State *L) {
  lua_pushnumber(L, mv_clock());
  return 1;
}

/* f16/bf16 rounding as the checkpoint writer does it, for tests and tools. */
static int l_round_f16(lua_State *L) {
  lua_pushnumber(L, mv_f16_to_f32(mv_f32_to_f16((float)luaL_checknumber(L, 1))));
  return 1;
}

static const luaL_Reg functions[] = {{"blas_info", l_blas_info},   {"set_num_threads", l_set_num_threads},
                                     {"get_num_threads", l_get_num_threads}, {"clock", l_clock},
                                     {"round_f16", l_round_f16},   {NULL, NULL}};

void mvl_sys_open(lua_State *L) { luaL_setfuncs(L, functions, 0); }
