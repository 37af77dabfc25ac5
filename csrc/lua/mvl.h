/* mvl.h -- helpers shared by the Lua binding files (csrc/lua/; mvl_util.c and mvl_tensor.c). */
#ifndef MVL_H
#define MVL_H

#include <lauxlib.h>
#include <lua.h>

#include "../mv.h"

#if LUA_VERSION_NUM < 504
#error "musicvae needs Lua 5.4 (lua_newuserdatauv, __close)"
#endif

#define MVL_TENSOR_MT "musicvae.Tensor"
#define MVL_RNG_MT "musicvae.Rng"

/* A tensor handle. Owners hold their data in `base`; views share an owner's
 * data and keep the owner alive through user value 1. `owner_closed` points at
 * the owner's `closed` flag (the handle's own for owners), so a view of a closed
 * owner is closed too. */
typedef struct mvl_tensor {
  mv_tensor t;
  float *base;
  const int *owner_closed;
  int closed;
  int *touched; /* set on every access through this view (model parameters: re-pack for decoding) */
} mvl_tensor;

mvl_tensor *mvl_checktensor(lua_State *L, int idx);
mvl_tensor *mvl_testtensor(lua_State *L, int idx);
/* A new contiguous owner tensor (zero-filled). Raises on bad shapes. */
mvl_tensor *mvl_newtensor(lua_State *L, int ndim, const int64_t *size);
/* Pushes a view with header t whose memory belongs to the tensor (or other
 * userdata with a `closed` flag at `closed`) at owner_idx. */
mvl_tensor *mvl_pushview(lua_State *L, int owner_idx, const mv_tensor *t, const int *closed);
/* The same, with a flag the view (and views of it) set whenever they are used. */
mvl_tensor *mvl_pushview_touch(lua_State *L, int owner_idx, const mv_tensor *t, const int *closed, int *touched);
/* Shape from either a table {2, 3} at idx or integers idx..top. */
int mvl_checkshape(lua_State *L, int idx, int64_t *size);
/* Raises the error's message (never as a format string). */
int mvl_raise(lua_State *L, const mv_err *err);
/* Pushes nil, message; returns 2. */
int mvl_fail(lua_State *L, const mv_err *err);

mv_rng *mvl_checkrng(lua_State *L, int idx);
/* Registers a userdata class: metatable `name` with __gc and __close = close_fn
 * and __index = the methods. Leaves the stack as it was. */
void mvl_newclass(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close_fn);
/* Field k of the table at index t: a number (integer) or def when absent; raises otherwise. */
double mvl_optnum(lua_State *L, int t, const char *k, double def);
int mvl_optint(lua_State *L, int t, const char *k, int def); /* raises past int's range, never truncates */

void mvl_tensor_open(lua_State *L);
void mvl_rng_open(lua_State *L);
void mvl_st_open(lua_State *L);
void mvl_sys_open(lua_State *L);
void mvl_midi_open(lua_State *L);
void mvl_vae_open(lua_State *L);
void mvl_audio_open(lua_State *L);

#endif
