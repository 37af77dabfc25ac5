/* mvl_sys.c -- BLAS information and threads, the clock. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mv_vae.h"
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
  lua_pushstring(L, mv_vae_infer_isa());
  lua_setfield(L, -2, "decode_kernel");
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

/* FNV-1a 64 of a string, as 16 hex digits (dataset checksums). */
static int l_fnv1a64(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  uint64_t h = mv_fnv1a64(s, n);
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
  lua_pushstring(L, hex);
  return 1;
}

/* core.sha256(s) -> 64 hex digits */
static int l_sha256(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned char d[32];
  char hex[65];
  mv_sha256(s, n, d);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  lua_pushstring(L, hex);
  return 1;
}

/* core.listdir(path) -> {{name = s, dir = bool}, ...} sorted by name, or nil, err */
static int l_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
  }
  lua_newtable(L);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    lua_pushstring(L, path);
    lua_pushliteral(L, "/");
    lua_pushstring(L, e->d_name);
    lua_concat(L, 3);
    struct stat st;
    int isdir = stat(lua_tostring(L, -1), &st) == 0 && S_ISDIR(st.st_mode);
    int isreg = !isdir && stat(lua_tostring(L, -1), &st) == 0 && S_ISREG(st.st_mode);
    lua_pop(L, 1);
    if (!isdir && !isreg) continue;
    lua_createtable(L, 0, 2);
    lua_pushstring(L, e->d_name);
    lua_setfield(L, -2, "name");
    lua_pushboolean(L, isdir);
    lua_setfield(L, -2, "dir");
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  return 1;
}

/* core.isdir(path), core.isfile(path) */
static int l_isdir(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0 && S_ISDIR(st.st_mode));
  return 1;
}

static int l_isfile(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0 && S_ISREG(st.st_mode));
  return 1;
}

/* core.write_atomic(path, bytes) -> true or nil, err */
static int l_write_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t n;
  const char *s = luaL_checklstring(L, 2, &n);
  mv_err err;
  if (mv_write_file_atomic(path, s, n, &err)) return mvl_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.mkdir_p(path) -> true or nil, err (one line) */
static int l_mkdir_p(lua_State *L) {
  mv_err err;
  if (mv_mkdir_p(luaL_checkstring(L, 1), &err)) return mvl_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* SIGINT as a flag, for the training loop (opt-in: a host keeps its own handler). */
static volatile sig_atomic_t got_sigint = 0;
static struct sigaction old_sigint;
static int sigint_installed = 0;

static void on_sigint(int s) {
  (void)s;
  got_sigint = 1;
}

/* core.trap_sigint(on) ; core.sigint() -> true once after a Ctrl-C */
static int l_trap_sigint(lua_State *L) {
  int on = lua_toboolean(L, 1);
  if (on && !sigint_installed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_sigint);
    sigint_installed = 1;
  } else if (!on && sigint_installed) {
    sigaction(SIGINT, &old_sigint, NULL);
    sigint_installed = 0;
  }
  got_sigint = 0;
  return 0;
}

static int l_sigint(lua_State *L) {
  lua_pushboolean(L, got_sigint);
  got_sigint = 0;
  return 1;
}

static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

static const luaL_Reg functions[] = {{"fnv1a64", l_fnv1a64}, {"sha256", l_sha256}, {"listdir", l_listdir}, {"isdir", l_isdir},
                                     {"isfile", l_isfile}, {"write_atomic", l_write_atomic}, {"isatty", l_isatty},
                                     {"mkdir_p", l_mkdir_p},
                                     {"trap_sigint", l_trap_sigint}, {"sigint", l_sigint},{"blas_info", l_blas_info},   {"set_num_threads", l_set_num_threads},
                                     {"get_num_threads", l_get_num_threads}, {"clock", l_clock},
                                     {"round_f16", l_round_f16},   {NULL, NULL}};

void mvl_sys_open(lua_State *L) { luaL_setfuncs(L, functions, 0); }
