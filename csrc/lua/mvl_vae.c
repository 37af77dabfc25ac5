/* mvl_vae.c -- "musicvae.VAE": the model from Lua.
 *   core.vae_new{input_depth, vocab, z, bars, steps, enc = {...}, cond = {...}, dec = {...}}
 *   m:init(rng)  m:params() / m:grads() -> {name = Tensor view}  m:param_list() -> {{name, shape}}
 *   m:forward(labels [B, L], opts) -> stats    (opts: eps, p_sample, coins, draws, beta, free_nats, backward,
 *                                               enc_labels [B, L]: what the encoder reads, default labels)
 *   m:encode(labels) -> mu, sigma              m:decode(z, {temperature, rngs}) -> labels [B, L]
 *   m:logits() -> [B, L, V] of the last forward   m:latents() -> mu, sigma, z of the last forward
 *   m:adam_step{lr, beta1, beta2, eps, clip_norm, zero_above} -> grad_norm, skipped
 *   m:adam_state() -> t, m (views), v (views)      m:set_adam_t(t)
 *   core.adam_defaults() -> {lr, beta1, beta2, eps, clip_norm, zero_above} (MV_ADAM_DEFAULTS)
 * Groove models (groove = true; flat decoder, 27-float steps):
 *   m:forward(x [B, L, D], target [B, L, V], opts) -> stats  (opts also: keep_prob, dropout = rng)
 *   m:encode(x [B, L, D]) -> mu, sigma   m:decode(z, {temperature, rngs, hits}) -> [B, L, V] (hits 0/1 |
 *   velocities | offsets, for every class)   m:outputs() -> [B, L, V] activated outputs of the last forward
 * One file (about 710 lines): the binding of one userdata, the model with its workspace and
 * generators, whose methods share its checks and buffers. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "../mv_vae.h"
#include "mvl.h"

#define MVL_VAE_MT "musicvae.VAE"
#define MVL_GEN_MT "musicvae.Generator"

typedef struct {
  mv_vae *m;
  mv_vae_ws *ws;
  int32_t *lab;
  size_t labcap;
  int32_t *elab; /* training's encoder labels (opts.enc_labels) */
  size_t elabcap;
  int closed;
  int touched;       /* a parameter view was used since the last decode: re-pack */
  volatile int busy; /* a C call is running on this model */
} mvl_vae;

/* A model belongs to one Lua state; two threads entering it at once is a bug
 * in the host, caught here instead of corrupting the shared workspace. */
static void enter(lua_State *L, volatile int *busy) {
  if (__atomic_exchange_n(busy, 1, __ATOMIC_ACQUIRE))
    luaL_error(L, "this model is already running a call on another thread; a model (and its generators) "
                  "belongs to one Lua state and one thread at a time");
}

static void leave(volatile int *busy) { __atomic_store_n(busy, 0, __ATOMIC_RELEASE); }

/* Parameters written through views since the last call: the decoder re-packs. */
static void sync_params(mvl_vae *u) {
  if (u->touched) {
    mv_vae_params_changed(u->m);
    u->touched = 0;
  }
}

static mvl_vae *checkvae(lua_State *L, int idx) {
  mvl_vae *u = luaL_checkudata(L, idx, MVL_VAE_MT);
  if (u->closed || !u->m) luaL_error(L, "model is closed");
  return u;
}

static int m_close(lua_State *L) {
  mvl_vae *u = luaL_checkudata(L, 1, MVL_VAE_MT);
  mv_vae_ws_free(u->ws);
  mv_vae_free(u->m);
  free(u->lab);
  free(u->elab);
  u->ws = NULL;
  u->m = NULL;
  u->lab = NULL;
  u->elab = NULL;
  u->closed = 1;
  return 0;
}

static int getsizes(lua_State *L, int t, const char *k, int *out) {
  lua_getfield(L, t, k);
  if (!lua_istable(L, -1)) luaL_error(L, "config: %s must be a list of layer sizes", k);
  int n = (int)luaL_len(L, -1);
  if (n < 1 || n > MV_MAXLAYERS) luaL_error(L, "config: %s has 1 to %d layers", k, MV_MAXLAYERS);
  for (int i = 0; i < n; i++) {
    lua_geti(L, -1, i + 1);
    out[i] = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n;
}

/* A required integer field: the defaults live in Lua's Model.config, not here. */
static int getint(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  if (!lua_isinteger(L, -1)) luaL_error(L, "config: %s must be an integer", k);
  int v = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  mv_vae_config c;
  memset(&c, 0, sizeof c);
  lua_getfield(L, 1, "groove");
  c.groove = lua_toboolean(L, -1);
  lua_pop(L, 1);
  c.input_depth = getint(L, 1, "input_depth");
  c.vocab = getint(L, 1, "vocab");
  c.z = getint(L, 1, "z");
  c.bars = getint(L, 1, "bars");
  c.steps = getint(L, 1, "steps");
  c.enc_layers = getsizes(L, 1, "enc", c.enc);
  lua_getfield(L, 1, "cond");
  int has_cond = !lua_isnil(L, -1);
  lua_pop(L, 1);
  c.cond_layers = c.groove && !has_cond ? 0 : getsizes(L, 1, "cond", c.cond);
  c.dec_layers = getsizes(L, 1, "dec", c.dec);
  mvl_vae *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, MVL_VAE_MT);
  mv_err err;
  if (mv_vae_new(&u->m, &c, &err)) return mvl_raise(L, &err);
  return 1;
}

static int m_init(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  mv_vae_init(u->m, mvl_checkrng(L, 2));
  lua_settop(L, 1);
  return 1;
}

static int push_views(lua_State *L, mvl_vae *u, float *base) {
  lua_createtable(L, 0, u->m->nparams);
  for (int i = 0; i < u->m->nparams; i++) {
    const mv_param *p = &u->m->p[i];
    mv_tensor t;
    mv_tensor_init(&t, base + p->offset, p->ndim, p->shape, NULL);
    mvl_pushview_touch(L, 1, &t, &u->closed, base == u->m->params ? &u->touched : NULL);
    lua_setfield(L, -2, p->name);
  }
  return 1;
}

static int m_params(lua_State *L) { return push_views(L, checkvae(L, 1), checkvae(L, 1)->m->params); }
static int m_grads(lua_State *L) { return push_views(L, checkvae(L, 1), checkvae(L, 1)->m->grads); }

/* The whole block as one flat view (for allreduce, norms, copies). */
static int m_flat(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  const char *which = luaL_optstring(L, 2, "params");
  float *base = strcmp(which, "grads") == 0 ? u->m->grads : u->m->params;
  mv_tensor t;
  int64_t n = u->m->nfloats;
  mv_tensor_init(&t, base, 1, &n, NULL);
  mvl_pushview_touch(L, 1, &t, &u->closed, base == u->m->params ? &u->touched : NULL);
  return 1;
}

static int m_param_list(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  lua_createtable(L, u->m->nparams, 0);
  for (int i = 0; i < u->m->nparams; i++) {
    const mv_param *p = &u->m->p[i];
    lua_createtable(L, 0, 2);
    lua_pushstring(L, p->name);
    lua_setfield(L, -2, "name");
    lua_createtable(L, p->ndim, 0);
    for (int d = 0; d < p->ndim; d++) {
      lua_pushinteger(L, p->shape[d]);
      lua_rawseti(L, -2, d + 1);
    }
    lua_setfield(L, -2, "shape");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int m_numel(lua_State *L) {
  lua_pushinteger(L, checkvae(L, 1)->m->nfloats);
  return 1;
}

static int m_zero_grad(lua_State *L) {
  mv_vae_zero_grad(checkvae(L, 1)->m);
  lua_settop(L, 1);
  return 1;
}

static mv_vae_ws *ws_for(lua_State *L, mvl_vae *u, int B) {
  if (u->ws && mv_vae_ws_batch(u->ws) == B) return u->ws;
  mv_vae_ws_free(u->ws);
  u->ws = NULL;
  mv_err err;
  if (mv_vae_ws_new(&u->ws, u->m, B, &err)) mvl_raise(L, &err);
  return u->ws;
}

/* labels tensor [B, U*T] -> int32 scratch; returns B */
/* A [batch, L] label tensor at idx into *buf (grown as needed); returns B. */
static int labels_into(lua_State *L, mvl_vae *u, int idx, int32_t **buf, size_t *cap, const char *what) {
  mvl_tensor *t = mvl_checktensor(L, idx);
  int Ls = u->m->cfg.bars * u->m->cfg.steps;
  if (t->t.ndim != 2 || t->t.size[1] != Ls)
    luaL_error(L, "%s must be a [batch, %d] tensor", what, Ls);
  int B = (int)t->t.size[0];
  if (B < 1) luaL_error(L, "empty batch");
  size_t need = (size_t)B * Ls;
  if (need > *cap) {
    int32_t *p = realloc(*buf, need * sizeof *p);
    if (!p) luaL_error(L, "out of memory");
    *buf = p;
    *cap = need;
  }
  for (int b = 0; b < B; b++)
    for (int s = 0; s < Ls; s++) {
      float v = t->t.data[b * t->t.stride[0] + s * t->t.stride[1]];
      if (!(v >= 0 && v < u->m->cfg.vocab) || v != (float)(int32_t)v)
        luaL_error(L, "%s: label %f at [%d, %d] is not an integer in 0-%d", what, (double)v, b + 1, s + 1,
                   u->m->cfg.vocab - 1);
      (*buf)[(size_t)b * Ls + s] = (int32_t)v;
    }
  return B;
}

static int labels_arg(lua_State *L, mvl_vae *u, int idx) { return labels_into(L, u, idx, &u->lab, &u->labcap, "labels"); }

static const float *opt_tensor(lua_State *L, int t, const char *k, int64_t numel, const char *shape) {
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  mvl_tensor *x = mvl_checktensor(L, -1);
  if (!mv_tensor_is_contiguous(&x->t) || mv_tensor_numel(&x->t) != numel)
    luaL_error(L, "%s must be a contiguous %s tensor", k, shape);
  lua_pop(L, 1); /* the tensor stays referenced by the options table */
  return x->t.data;
}

/* The training options table at index t, the top of the stack (created if absent). */
static void train_opts(lua_State *L, mvl_vae *u, int B, int t, mv_vae_train_opts *o_) {
  if (lua_isnoneornil(L, t)) lua_newtable(L);
  else luaL_checktype(L, t, LUA_TTABLE);
  lua_settop(L, t);
  const mv_vae_config *c = &u->m->cfg;
  mv_vae_train_opts o;
  memset(&o, 0, sizeof o);
  o.eps = opt_tensor(L, t, "eps", (int64_t)B * c->z, "[batch, z]");
  o.coins = opt_tensor(L, t, "coins", (int64_t)B * c->bars * c->steps, "[batch, bars, steps]");
  o.draws = opt_tensor(L, t, "draws", (int64_t)B * c->bars * c->steps, "[batch, bars, steps]");
  o.p_sample = (float)mvl_optnum(L, t, "p_sample", 0);
  o.beta = (float)mvl_optnum(L, t, "beta", 0);
  o.free_nats = (float)mvl_optnum(L, t, "free_nats", 0);
  lua_getfield(L, t, "backward");
  o.backward = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (o.p_sample > 0 && !o.coins) luaL_error(L, "p_sample > 0 needs coins (and draws)");
  o.keep_prob = (float)mvl_optnum(L, t, "keep_prob", 1);
  if (!(o.keep_prob > 0 && o.keep_prob <= 1)) luaL_error(L, "keep_prob must be in (0, 1]");
  lua_getfield(L, t, "dropout");
  if (!lua_isnil(L, -1)) o.dropout = mvl_checkrng(L, -1); /* stays referenced by the options table */
  lua_pop(L, 1);
  if (o.keep_prob < 1 && !o.dropout) luaL_error(L, "keep_prob < 1 needs a dropout stream (opts.dropout)");
  *o_ = o;
}

static int push_stats(lua_State *L, const mv_vae_stats *s_, int per_seq);
static int m_forward_groove(lua_State *L);

static int m_forward(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  if (u->m->cfg.groove) return m_forward_groove(L);
  int B = labels_arg(L, u, 2);
  mv_vae_train_opts o;
  train_opts(L, u, B, 3, &o);
  lua_getfield(L, 3, "enc_labels");
  if (!lua_isnil(L, -1)) {
    if (labels_into(L, u, -1, &u->elab, &u->elabcap, "enc_labels") != B)
      return luaL_error(L, "enc_labels and labels have different batch sizes");
    o.enc_labels = u->elab;
  }
  lua_pop(L, 1);
  mv_vae_ws *w = ws_for(L, u, B);
  mv_vae_stats st;
  mvl_tensor *rl = mvl_newtensor(L, 1, (int64_t[]){B}); /* index 4 */
  mvl_tensor *kl = mvl_newtensor(L, 1, (int64_t[]){B}); /* index 5 */
  mv_err err;
  enter(L, &u->busy);
  int rc = mv_vae_forward(u->m, w, u->lab, &o, &st, rl->base, kl->base, &err);
  leave(&u->busy);
  if (rc) return mvl_raise(L, &err);
  return push_stats(L, &st, 4);
}

/* [B, L, n] contiguous float tensor argument; returns B */
static int steps_arg(lua_State *L, mvl_vae *u, int idx, int n, const char *what) {
  mvl_tensor *t = mvl_checktensor(L, idx);
  int Ls = u->m->cfg.bars * u->m->cfg.steps;
  if (t->t.ndim != 3 || t->t.size[1] != Ls || t->t.size[2] != n || !mv_tensor_is_contiguous(&t->t))
    luaL_error(L, "%s must be a contiguous [batch, %d, %d] tensor", what, Ls, n);
  if (t->t.size[0] < 1) luaL_error(L, "empty batch");
  return (int)t->t.size[0];
}

/* m:forward(x [B, L, D], target [B, L, V], opts) -> stats, for a groove model (m:forward dispatches here) */
static int m_forward_groove(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  const mv_vae_config *c = &u->m->cfg;
  if (!c->groove) return luaL_error(L, "forward_groove needs a groove model");
  int B = steps_arg(L, u, 2, c->input_depth, "x");
  if (steps_arg(L, u, 3, c->vocab, "target") != B) return luaL_error(L, "x and target have different batch sizes");
  const float *x = mvl_checktensor(L, 2)->t.data, *tg = mvl_checktensor(L, 3)->t.data;
  mv_vae_train_opts o;
  train_opts(L, u, B, 4, &o);
  mv_vae_ws *w = ws_for(L, u, B);
  mv_vae_stats st;
  mvl_tensor *rl = mvl_newtensor(L, 1, (int64_t[]){B}); /* index 5 */
  mvl_tensor *kl = mvl_newtensor(L, 1, (int64_t[]){B}); /* index 6 */
  mv_err err;
  enter(L, &u->busy);
  int rc = mv_vae_forward_groove(u->m, w, x, tg, &o, &st, rl->base, kl->base, &err);
  leave(&u->busy);
  if (rc) return mvl_raise(L, &err);
  return push_stats(L, &st, 5);
}

/* The stats table; per_seq: the stack index of recon_per_seq (kl_per_seq follows). */
static int push_stats(lua_State *L, const mv_vae_stats *s_, int per_seq) {
  mv_vae_stats st = *s_;
  lua_createtable(L, 0, 8);
  lua_pushnumber(L, st.loss);
  lua_setfield(L, -2, "loss");
  lua_pushnumber(L, st.recon);
  lua_setfield(L, -2, "recon");
  lua_pushnumber(L, st.kl);
  lua_setfield(L, -2, "kl");
  lua_pushnumber(L, st.kl_cost);
  lua_setfield(L, -2, "kl_cost");
  lua_pushnumber(L, st.accuracy);
  lua_setfield(L, -2, "accuracy");
  lua_pushinteger(L, st.sampled_inputs);
  lua_setfield(L, -2, "sampled");
  lua_pushvalue(L, per_seq);
  lua_setfield(L, -2, "recon_per_seq");
  lua_pushvalue(L, per_seq + 1);
  lua_setfield(L, -2, "kl_per_seq");
  return 1;
}

/* m:inputs() -> [B, L] decoder inputs of the last forward (-1 = zeros) */
static int m_inputs(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  if (!u->ws) return luaL_error(L, "no forward pass yet");
  const mv_vae_config *c = &u->m->cfg;
  int B = mv_vae_ws_batch(u->ws), T = c->steps, U = c->bars, Ls = U * T, N = U * B;
  const int32_t *in = mv_vae_inputs(u->ws);
  mvl_tensor *t = mvl_newtensor(L, 2, (int64_t[]){B, Ls});
  for (int uu = 0; uu < U; uu++)
    for (int tt = 0; tt < T; tt++)
      for (int b = 0; b < B; b++) t->base[(size_t)b * Ls + uu * T + tt] = (float)in[(size_t)tt * N + uu * B + b];
  return 1;
}

static int m_logits(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  if (!u->ws) return luaL_error(L, "no forward pass yet");
  int B = mv_vae_ws_batch(u->ws), Ls = u->m->cfg.bars * u->m->cfg.steps, V = u->m->cfg.vocab;
  mvl_tensor *t = mvl_newtensor(L, 3, (int64_t[]){B, Ls, V});
  for (int b = 0; b < B; b++)
    for (int s = 0; s < Ls; s++)
      memcpy(t->base + ((size_t)b * Ls + s) * V, mv_vae_logits(u->ws, b, s), sizeof(float) * (size_t)V);
  return 1;
}

static void push_copy(lua_State *L, const float *src, int B, int Z) {
  mvl_tensor *t = mvl_newtensor(L, 2, (int64_t[]){B, Z});
  memcpy(t->base, src, sizeof(float) * (size_t)B * Z);
}

static int m_latents(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  if (!u->ws) return luaL_error(L, "no forward pass yet");
  int B = mv_vae_ws_batch(u->ws), Z = u->m->cfg.z;
  push_copy(L, mv_vae_mu(u->ws), B, Z);
  push_copy(L, mv_vae_sigma(u->ws), B, Z);
  push_copy(L, mv_vae_z(u->ws), B, Z);
  return 3;
}

static int m_outputs(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  if (!u->ws || !u->m->cfg.groove) return luaL_error(L, "no groove forward pass yet");
  int B = mv_vae_ws_batch(u->ws), Ls = u->m->cfg.bars * u->m->cfg.steps, V = u->m->cfg.vocab;
  mvl_tensor *t = mvl_newtensor(L, 3, (int64_t[]){B, Ls, V});
  for (int b = 0; b < B; b++)
    for (int s = 0; s < Ls; s++)
      memcpy(t->base + ((size_t)b * Ls + s) * V, mv_vae_outputs(u->ws, b, s), sizeof(float) * (size_t)V);
  return 1;
}

static int m_encode(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  if (u->m->cfg.groove) {
    int B = steps_arg(L, u, 2, u->m->cfg.input_depth, "x"), Z = u->m->cfg.z;
    const float *x = mvl_checktensor(L, 2)->t.data;
    mv_vae_ws *w = ws_for(L, u, B);
    mvl_tensor *mu = mvl_newtensor(L, 2, (int64_t[]){B, Z});
    mvl_tensor *sg = mvl_newtensor(L, 2, (int64_t[]){B, Z});
    mv_err err;
    enter(L, &u->busy);
    int rc = mv_vae_encode_x(u->m, w, x, mu->base, sg->base, &err);
    leave(&u->busy);
    if (rc) return mvl_raise(L, &err);
    return 2;
  }
  int B = labels_arg(L, u, 2), Z = u->m->cfg.z;
  mv_vae_ws *w = ws_for(L, u, B);
  mvl_tensor *mu = mvl_newtensor(L, 2, (int64_t[]){B, Z});
  mvl_tensor *sg = mvl_newtensor(L, 2, (int64_t[]){B, Z});
  mv_err err;
  enter(L, &u->busy);
  int rc = mv_vae_encode(u->m, w, u->lab, mu->base, sg->base, &err);
  leave(&u->busy);
  if (rc) return mvl_raise(L, &err);
  return 2;
}

/* m:decode(z [B, Z], {temperature = 0, rngs = {rng, ...}}) -> labels [B, L] */
static int m_decode(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  mvl_tensor *z = mvl_checktensor(L, 2);
  const mv_vae_config *c = &u->m->cfg;
  if (z->t.ndim != 2 || z->t.size[1] != c->z || !mv_tensor_is_contiguous(&z->t))
    return luaL_error(L, "z must be a contiguous [batch, %d] tensor", c->z);
  int B = (int)z->t.size[0];
  if (B < 1) return luaL_error(L, "empty batch");
  float temp = 0;
  mv_rng *rngs = NULL;
  const float *hits = NULL;
  int want_hitp = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    temp = (float)mvl_optnum(L, 3, "temperature", 0);
    if (!(temp >= 0 && temp <= FLT_MAX)) return luaL_error(L, "temperature must be a finite number >= 0");
    if (c->groove) hits = opt_tensor(L, 3, "hits", (int64_t)B * c->bars * c->steps * (c->vocab / 3), "[batch, steps, classes]");
    lua_getfield(L, 3, "hit_probs");
    want_hitp = c->groove && lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 3, "rngs");
    if (!lua_isnil(L, -1)) {
      luaL_checktype(L, -1, LUA_TTABLE);
      if (luaL_len(L, -1) != B) return luaL_error(L, "rngs must hold one stream per sequence (%d)", B);
      rngs = lua_newuserdatauv(L, sizeof(mv_rng) * (size_t)B, 0);
      for (int b = 0; b < B; b++) {
        lua_geti(L, -2, b + 1);
        rngs[b] = *mvl_checkrng(L, -1);
        lua_pop(L, 1);
      }
    }
  }
  int Ls = c->bars * c->steps;
  mv_vae_ws *w = ws_for(L, u, B);
  mvl_tensor *gout = NULL;
  mvl_tensor *hitp = NULL;
  if (c->groove) gout = mvl_newtensor(L, 3, (int64_t[]){B, Ls, c->vocab});
  if (want_hitp) hitp = mvl_newtensor(L, 3, (int64_t[]){B, Ls, c->vocab / 3});
  else if ((size_t)B * Ls > u->labcap) {
    int32_t *p = realloc(u->lab, (size_t)B * Ls * sizeof *p);
    if (!p) return luaL_error(L, "out of memory");
    u->lab = p;
    u->labcap = (size_t)B * Ls;
  }
  mv_err err;
  enter(L, &u->busy);
  sync_params(u);
  int rc = gout ? mv_vae_decode_groove(u->m, w, z->t.data, temp, rngs, hits, gout->base, hitp ? hitp->base : NULL, &err)
                : mv_vae_decode(u->m, w, z->t.data, temp, rngs, u->lab, &err);
  leave(&u->busy);
  if (rc) return mvl_raise(L, &err);
  if (rngs) { /* the streams advance: write their states back */
    lua_getfield(L, 3, "rngs");
    for (int b = 0; b < B; b++) {
      lua_geti(L, -1, b + 1);
      *mvl_checkrng(L, -1) = rngs[b];
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  if (gout) return hitp ? 2 : 1; /* on the top of the stack (out, then hit_probs) */
  mvl_tensor *out = mvl_newtensor(L, 2, (int64_t[]){B, Ls});
  for (size_t k = 0; k < (size_t)B * Ls; k++) out->base[k] = (float)u->lab[k];
  return 1;
}

static int m_adam_step(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  mv_adam_opts o = MV_ADAM_DEFAULTS;
  o.lr = (float)mvl_optnum(L, 2, "lr", o.lr);
  o.beta1 = (float)mvl_optnum(L, 2, "beta1", o.beta1);
  o.beta2 = (float)mvl_optnum(L, 2, "beta2", o.beta2);
  o.eps = (float)mvl_optnum(L, 2, "eps", o.eps);
  o.clip_norm = (float)mvl_optnum(L, 2, "clip_norm", o.clip_norm);
  o.zero_above = (float)mvl_optnum(L, 2, "zero_above", o.zero_above);
  double norm;
  int skipped;
  mv_err err;
  if (mv_vae_adam_step(u->m, &o, &norm, &skipped, &err)) return mvl_raise(L, &err);
  lua_pushnumber(L, norm);
  lua_pushboolean(L, skipped);
  return 2;
}

/* m:adam_state() -> t, m_flat, v_flat (views; allocates the moments if needed) */
static int m_adam_state(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  mv_vae *m = u->m;
  mv_err err;
  if (mv_vae_adam_alloc(m, &err)) return mvl_raise(L, &err);
  lua_pushinteger(L, m->adam_t);
  int64_t n = m->nfloats;
  mv_tensor t;
  mv_tensor_init(&t, m->adam_m, 1, &n, NULL);
  mvl_pushview(L, 1, &t, &u->closed);
  mv_tensor_init(&t, m->adam_v, 1, &n, NULL);
  mvl_pushview(L, 1, &t, &u->closed);
  return 3;
}

static int m_set_adam_t(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  lua_Integer t = luaL_checkinteger(L, 2);
  luaL_argcheck(L, t >= 0, 2, "step must be >= 0");
  u->m->adam_t = t;
  return 0;
}

static int m_config(lua_State *L) {
  const mv_vae_config *c = &checkvae(L, 1)->m->cfg;
  lua_createtable(L, 0, 9);
  lua_pushboolean(L, c->groove);
  lua_setfield(L, -2, "groove");
  lua_pushinteger(L, c->input_depth);
  lua_setfield(L, -2, "input_depth");
  lua_pushinteger(L, c->vocab);
  lua_setfield(L, -2, "vocab");
  lua_pushinteger(L, c->z);
  lua_setfield(L, -2, "z");
  lua_pushinteger(L, c->bars);
  lua_setfield(L, -2, "bars");
  lua_pushinteger(L, c->steps);
  lua_setfield(L, -2, "steps");
  const int *sz[3] = {c->enc, c->cond, c->dec};
  const int n[3] = {c->enc_layers, c->cond_layers, c->dec_layers};
  const char *k[3] = {"enc", "cond", "dec"};
  for (int q = 0; q < 3; q++) {
    if (n[q] == 0) continue;
    lua_createtable(L, n[q], 0);
    for (int l = 0; l < n[q]; l++) {
      lua_pushinteger(L, sz[q][l]);
      lua_rawseti(L, -2, l + 1);
    }
    lua_setfield(L, -2, k[q]);
  }
  return 1;
}

/* ---- incremental generators ---- */
typedef struct {
  mv_vae_gen *g;
  const int *model_closed;
  volatile int *model_busy;
  mvl_vae *model; /* kept alive by the user value */
} mvl_gen;

static mvl_gen *checkgen(lua_State *L, int idx) {
  mvl_gen *u = luaL_checkudata(L, idx, MVL_GEN_MT);
  if (!u->g) luaL_error(L, "generator is closed");
  if (*u->model_closed) luaL_error(L, "the generator's model is closed");
  return u;
}

/* vae:generator(z [Z] or [1, Z], temperature, rng) -> generator (copies the rng) */
static int m_generator(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  mvl_tensor *z = mvl_checktensor(L, 2);
  if (mv_tensor_numel(&z->t) != u->m->cfg.z || !mv_tensor_is_contiguous(&z->t))
    return luaL_error(L, "z must be a contiguous tensor of %d values", u->m->cfg.z);
  float temp = (float)luaL_checknumber(L, 3);
  if (!(temp >= 0 && temp <= FLT_MAX)) return luaL_error(L, "temperature must be a finite number >= 0");
  mv_rng *r = lua_isnoneornil(L, 4) ? NULL : mvl_checkrng(L, 4);
  if (temp > 0 && !r) return luaL_error(L, "sampling (temperature > 0) needs a random stream");
  mvl_gen *g = lua_newuserdatauv(L, sizeof *g, 1);
  g->g = NULL;
  g->model_closed = &u->closed;
  g->model_busy = &u->busy;
  g->model = u;
  luaL_setmetatable(L, MVL_GEN_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1); /* keeps the model alive */
  mv_err err;
  enter(L, &u->busy);
  sync_params(u); /* before the conductor and the packing: else the first step re-packs (tens of ms) */
  int rc = mv_vae_gen_new(&g->g, u->m, z->t.data, temp, r, &err);
  leave(&u->busy);
  if (rc) return mvl_raise(L, &err);
  return 1;
}

/* g:step(n) -> list of the new labels (empty when done) */
static int g_step(lua_State *L) {
  mvl_gen *g = checkgen(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 0, 2, "steps must be >= 0");
  int from = mv_vae_gen_pos(g->g);
  enter(L, g->model_busy); /* generators share the model's weights, not its workspace */
  sync_params(g->model);
  int made = mv_vae_gen_step(g->g, n > 1 << 20 ? 1 << 20 : (int)n);
  leave(g->model_busy);
  const int32_t *l = mv_vae_gen_labels(g->g);
  lua_createtable(L, made, 0);
  for (int i = 0; i < made; i++) {
    lua_pushinteger(L, l[from + i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int g_pos(lua_State *L) {
  mvl_gen *g = checkgen(L, 1);
  lua_pushinteger(L, mv_vae_gen_pos(g->g));
  lua_pushinteger(L, mv_vae_gen_total(g->g));
  return 2;
}

static int g_labels(lua_State *L) {
  mvl_gen *g = checkgen(L, 1);
  int n = mv_vae_gen_pos(g->g);
  const int32_t *l = mv_vae_gen_labels(g->g);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushinteger(L, l[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int g_close(lua_State *L) {
  mvl_gen *g = luaL_checkudata(L, 1, MVL_GEN_MT);
  mv_vae_gen_free(g->g);
  g->g = NULL;
  return 0;
}

/* vae:infer_info() -> {isa = "avx512"|"avx2"|"portable", f16 = bool}: the decoding
 * kernel, and whether the packed decoder weights are f16 (known after a decode). */
static int m_infer_info(lua_State *L) {
  mvl_vae *u = checkvae(L, 1);
  sync_params(u);
  lua_createtable(L, 0, 2);
  lua_pushstring(L, mv_vae_infer_isa());
  lua_setfield(L, -2, "isa");
  lua_pushboolean(L, mv_vae_infer_f16(u->m));
  lua_setfield(L, -2, "f16");
  return 1;
}

static const luaL_Reg gen_methods[] = {
    {"step", g_step}, {"pos", g_pos}, {"labels", g_labels}, {"close", g_close}, {NULL, NULL}};

static const luaL_Reg methods[] = {{"init", m_init},
                                   {"generator", m_generator},
                                   {"params", m_params},
                                   {"grads", m_grads},
                                   {"flat", m_flat},
                                   {"param_list", m_param_list},
                                   {"numel", m_numel},
                                   {"zero_grad", m_zero_grad},
                                   {"forward", m_forward},
                                   {"logits", m_logits},
                                   {"outputs", m_outputs},
                                   {"inputs", m_inputs},
                                   {"latents", m_latents},
                                   {"encode", m_encode},
                                   {"decode", m_decode},
                                   {"infer_info", m_infer_info},
                                   {"adam_step", m_adam_step},
                                   {"adam_state", m_adam_state},
                                   {"set_adam_t", m_set_adam_t},
                                   {"config", m_config},
                                   {"close", m_close},
                                   {NULL, NULL}};

/* core.adam_defaults() -> {lr, beta1, beta2, eps, clip_norm, zero_above}: MV_ADAM_DEFAULTS, which
 * Lua's configs take their learning rate and clipping defaults from */
static int l_adam_defaults(lua_State *L) {
  lua_createtable(L, 0, 6);
  const struct { const char *k; double v; } f[] = {{"lr", MV_ADAM_LR},           {"beta1", MV_ADAM_BETA1},
                                                   {"beta2", MV_ADAM_BETA2},     {"eps", MV_ADAM_EPS},
                                                   {"clip_norm", MV_ADAM_CLIP_NORM}, {"zero_above", MV_ADAM_ZERO_ABOVE}};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
    lua_pushnumber(L, f[i].v);
    lua_setfield(L, -2, f[i].k);
  }
  return 1;
}

void mvl_vae_open(lua_State *L) {
  mvl_newclass(L, MVL_VAE_MT, methods, m_close);
  mvl_newclass(L, MVL_GEN_MT, gen_methods, g_close);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "vae_new");
  lua_pushcfunction(L, l_adam_defaults);
  lua_setfield(L, -2, "adam_defaults");
}
