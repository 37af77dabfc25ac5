/* The guard against a model entered from two threads at once (mvl_vae.c's enter/leave): a
 * second thread, with its own Lua state, holds the model's busy flag exactly as a call in
 * progress on another thread does; every model call on the main state must then raise (not run
 * on the shared workspace) and leave the other thread's flag set, and once it is released the
 * calls run again. No Lua state is used by two threads. mvl_vae.c is included for its static
 * enter/leave and the userdata's layout. */
#include "../../csrc/lua/mvl_vae.c"

#include <lualib.h>
#include <pthread.h>
#include <string.h>

#include "mvtest.h"

int luaopen_musicvae_core(lua_State *L);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int phase = 0; /* 1: the holder has entered; 2: the holder may leave */
static volatile int *flag;

static void *holder(void *arg) {
  (void)arg;
  lua_State *L2 = luaL_newstate(); /* enter() raises through it only if the flag were already set */
  enter(L2, flag);
  pthread_mutex_lock(&lock);
  phase = 1;
  pthread_cond_broadcast(&cond);
  while (phase != 2) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
  leave(flag);
  lua_close(L2);
  return NULL;
}

/* runs `code` (a chunk returning pcall's results); 1 if it raised a message containing `want` */
static int raises(lua_State *L, const char *code, const char *want) {
  if (luaL_dostring(L, code) != LUA_OK) {
    fprintf(stderr, "chunk failed: %s\n", lua_tostring(L, -1));
    lua_settop(L, 0);
    return 0;
  }
  int ok = lua_toboolean(L, 1), hit = !ok && lua_isstring(L, 2) && strstr(lua_tostring(L, 2), want);
  if (!hit) fprintf(stderr, "%s: %s\n", code, ok ? "ran" : lua_tostring(L, 2));
  lua_settop(L, 0);
  return hit;
}

static int runs(lua_State *L, const char *code) {
  int ok = luaL_dostring(L, code) == LUA_OK;
  if (!ok) fprintf(stderr, "%s: %s\n", code, lua_tostring(L, -1));
  lua_settop(L, 0);
  return ok;
}

int main(void) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, "musicvae.core", luaopen_musicvae_core, 0);
  lua_pop(L, 1);
  CHECK(runs(L, "core = require 'musicvae.core'\n"
                "m = core.vae_new { z = 4, enc = { 8 }, cond = { 6 }, dec = { 8 }, input_depth = 10, vocab = 512,\n"
                "  bars = 4, steps = 16 }\n"
                "m:init(core.rng(1, 'init'))\n"
                "x = core.zeros(1, 64)\n"
                "z = core.zeros(1, 4)\n"
                "g = m:generator(z, 0)\n"
                "mu0 = m:encode(x):totable()[1][1]"));
  lua_getglobal(L, "m");
  mvl_vae *u = luaL_checkudata(L, -1, MVL_VAE_MT);
  lua_pop(L, 1);
  flag = &u->busy;
  CHECK(*flag == 0);

  pthread_t t;
  CHECK(pthread_create(&t, NULL, holder, NULL) == 0);
  pthread_mutex_lock(&lock);
  while (phase != 1) pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);

  const char *busy = "already running a call on another thread";
  CHECK(raises(L, "return pcall(m.encode, m, x)", busy));
  CHECK(raises(L, "return pcall(m.decode, m, z)", busy));
  CHECK(raises(L, "return pcall(m.forward, m, x, {})", busy));
  CHECK(raises(L, "return pcall(m.generator, m, z, 0)", busy));
  CHECK(raises(L, "return pcall(g.step, g, 4)", busy)); /* generators share the model's flag */
  CHECK(*flag == 1); /* a refused call does not release the other thread's hold */

  pthread_mutex_lock(&lock);
  phase = 2;
  pthread_cond_broadcast(&cond);
  pthread_mutex_unlock(&lock);
  CHECK(pthread_join(t, NULL) == 0);
  CHECK(*flag == 0);

  /* released: the same calls run, with the same result as before the hold */
  CHECK(runs(L, "assert(m:encode(x):totable()[1][1] == mu0)\n"
                "m:decode(z)\n"
                "m:forward(x, {})\n"
                "assert(#g:step(4) == 4)"));
  CHECK(*flag == 0);
  lua_close(L);
  MVT_DONE();
}
