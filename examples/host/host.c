/* host.c -- a small C program that embeds Lua 5.4 the way a music host does
 * (REAPER, pdlua, a custom engine): it runs a Lua script that requires
 * musicvae, then calls the script's on_beat(budget_ms) once per beat and
 * prints whatever finished bar comes back, and finally finish(path[, wav_path]).
 *
 *   mv_host SCRIPT.lua MODEL.safetensors [BEATS] [OUT.mid] [OUT.wav]
 *
 * The script gets the project root as its first argument (for package.path);
 * MV_HOST_ROOT is baked in by CMake and MUSICVAE_ROOT overrides it. */
#define _POSIX_C_SOURCE 200809L
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef MV_HOST_ROOT
#define MV_HOST_ROOT "."
#endif

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    fprintf(stderr, "mv_host: %s\n", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  return status;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: mv_host SCRIPT.lua MODEL.safetensors [BEATS] [OUT.mid] [OUT.wav]\n");
    return 2;
  }
  const char *root = getenv("MUSICVAE_ROOT") ? getenv("MUSICVAE_ROOT") : MV_HOST_ROOT;
  int beats = argc > 3 ? atoi(argv[3]) : 16;
  const char *out = argc > 4 ? argv[4] : "host-out.mid";
  const char *wav = argc > 5 ? argv[5] : NULL; /* also the audio, rendered with FluidSynth */
  lua_State *L = luaL_newstate();
  if (!L) return 1;
  luaL_openlibs(L);
  if (report(L, luaL_loadfile(L, argv[1])) != LUA_OK) return 1;
  lua_pushstring(L, root);
  lua_pushstring(L, argv[2]);
  if (report(L, lua_pcall(L, 2, 0, 0)) != LUA_OK) return 1;
  double worst = 0;
  for (int b = 1; b <= beats; b++) {
    lua_getglobal(L, "on_beat");
    lua_pushnumber(L, 2.0); /* the per-beat budget in milliseconds */
    double t0 = now_ms();
    if (report(L, lua_pcall(L, 1, 1, 0)) != LUA_OK) return 1;
    double dt = now_ms() - t0;
    if (dt > worst) worst = dt;
    if (lua_isstring(L, -1)) printf("beat %d: a new bar\n%s\n", b, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  lua_getglobal(L, "finish");
  lua_pushstring(L, out);
  if (wav)
    lua_pushstring(L, wav);
  else
    lua_pushnil(L);
  if (report(L, lua_pcall(L, 2, 1, 0)) != LUA_OK) return 1;
  printf("%s\nlongest on_beat call: %.2f ms\n", lua_tostring(L, -1), worst);
  lua_close(L);
  return 0;
}
