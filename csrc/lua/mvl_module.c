/* mvl_module.c -- luaopen_musicvae_core: builds the module table (the helpers every binding
 * file shares are in mvl_util.c). */
#include "mvl.h"

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
