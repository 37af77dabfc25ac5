/* mvl_dist.c -- musicvae.dist: data-parallel training over MPI (optional
 * module, built when CMake finds MPI). Ranks are MPI's, 0-based.
 *   dist.init() -> rank, size        dist.rank(), dist.size()
 *   dist.allreduce_mean(tensor)      in place, over every rank
 *   dist.broadcast(tensor, root)     in place, from root
 *   dist.barrier(), dist.finalize(), dist.bytes() (allreduce payload so far) */
#include <mpi.h>
#include <string.h>

#include "mvl.h"

static int inited = 0;
static double bytes = 0;

static void need(lua_State *L) {
  if (!inited) luaL_error(L, "musicvae.dist: call dist.init() first");
}

static int check(lua_State *L, int rc, const char *what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return luaL_error(L, "musicvae.dist: %s failed: %s", what, msg);
  }
  return 0;
}

static int l_init(lua_State *L) {
  int flag = 0;
  MPI_Initialized(&flag);
  if (!flag) check(L, MPI_Init(NULL, NULL), "MPI_Init");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  inited = 1;
  int r, s;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  lua_pushinteger(L, r);
  lua_pushinteger(L, s);
  return 2;
}

static int l_rank(lua_State *L) {
  need(L);
  int r;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  lua_pushinteger(L, r);
  return 1;
}

static int l_size(lua_State *L) {
  need(L);
  int s;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  lua_pushinteger(L, s);
  return 1;
}

static mvl_tensor *flat_arg(lua_State *L, int idx) {
  mvl_tensor *t = luaL_checkudata(L, idx, MVL_TENSOR_MT); /* same layout as musicvae.core's */
  if (t->closed || *t->owner_closed) luaL_error(L, "tensor is closed");
  if (!mv_tensor_is_contiguous(&t->t)) luaL_argerror(L, idx, "needs a contiguous tensor");
  if (mv_tensor_numel(&t->t) > 0x7fffffff) luaL_argerror(L, idx, "tensor too large for one MPI call");
  return t;
}

static int l_allreduce_mean(lua_State *L) {
  need(L);
  mvl_tensor *t = flat_arg(L, 1);
  int n = (int)mv_tensor_numel(&t->t), size;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  check(L, MPI_Allreduce(MPI_IN_PLACE, t->t.data, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "allreduce");
  float inv = 1.0f / (float)size;
  for (int i = 0; i < n; i++) t->t.data[i] *= inv;
  bytes += 4.0 * n;
  lua_settop(L, 1);
  return 1;
}

static int l_broadcast(lua_State *L) {
  need(L);
  mvl_tensor *t = flat_arg(L, 1);
  int root = (int)luaL_optinteger(L, 2, 0);
  check(L, MPI_Bcast(t->t.data, (int)mv_tensor_numel(&t->t), MPI_FLOAT, root, MPI_COMM_WORLD), "broadcast");
  lua_settop(L, 1);
  return 1;
}

static int l_barrier(lua_State *L) {
  need(L);
  check(L, MPI_Barrier(MPI_COMM_WORLD), "barrier");
  return 0;
}

static int l_finalize(lua_State *L) {
  (void)L;
  int fin = 0;
  MPI_Finalized(&fin);
  if (inited && !fin) MPI_Finalize();
  inited = 0;
  return 0;
}

static int l_bytes(lua_State *L) {
  lua_pushnumber(L, bytes);
  return 1;
}

static const luaL_Reg functions[] = {{"init", l_init},       {"rank", l_rank},       {"size", l_size},
                                     {"allreduce_mean", l_allreduce_mean}, {"broadcast", l_broadcast},
                                     {"barrier", l_barrier}, {"finalize", l_finalize}, {"bytes", l_bytes},
                                     {NULL, NULL}};

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
int luaopen_musicvae_dist(lua_State *L);

int luaopen_musicvae_dist(lua_State *L) {
  /* tensors come from musicvae.core: make sure its metatable exists */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "musicvae.core");
  lua_call(L, 1, 0);
  luaL_newlib(L, functions);
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "available");
  return 1;
}
