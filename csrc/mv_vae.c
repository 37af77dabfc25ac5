/* mv_vae.c -- the hierarchical MusicVAE: forward, backward, inference, Adam.
 *
 * Layout and names follow Magenta (see ../shared/spec/magenta-reference.md §4):
 * LSTM kernels [in + H, 4H] with rows [x ; h_prev], gate blocks i, j, f, o,
 * forget bias +1 inside; bidirectional encoder over the 10-dim roll; mu and
 * softplus sigma heads; a conductor fed zeros whose top h is each bar's
 * embedding; a bar decoder re-initialised from tanh(Dense(embedding)) with
 * input [previous label one-hot ; embedding]. The one-hot half of the decoder
 * input is a row gather from the kernel, never a multiplication.
 *
 * Time-major buffers: [steps, rows, width]. Decoder rows are n = u * B + b
 * (all bars of the batch decode together: bars are independent given the
 * conductor, with or without scheduled sampling). */
#include "mv_vae.h"
#ifndef MV_VAE_DOUBLE
#include "mv_infer.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define G4(H) (4 * (H))

/* One source, two precisions: float for use (SGEMM through mv_sgemm), and,
 * compiled with -DMV_VAE_DOUBLE (tests only), double with a plain GEMM, so the
 * gradient checks can use central differences without float32 noise. */
#ifdef MV_VAE_DOUBLE
#define EXP exp
#define TANH tanh
#define LOG1P log1p
#define SQRT sqrt
#define GEMM gemm_f64
#define MV_ISA_CLONES /* tests only: no per-ISA clones */
static void gemm_f64(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha, const double *a, int64_t lda,
                     const double *b, int64_t ldb, double beta, double *c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double acc = 0;
      for (int64_t p = 0; p < k; p++) acc += (ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      c[i * ldc + j] = alpha * acc + (beta == 0 ? 0 : beta * c[i * ldc + j]);
    }
}
#else
/* the gates' exp and tanh inline and vectorizable (mv_act.h); the losses keep libm's */
#include "mv_act.h"
#define EXP expf
#define TANH mv_tanh_act
#define LOG1P log1pf
#define SQRT sqrtf
#define GEMM mv_sgemm
#endif

#ifdef MV_VAE_DOUBLE
static inline mv_real sigm(mv_real x) { return 1.0f / (1.0f + EXP(-x)); }
#else
static inline mv_real sigm(mv_real x) { return mv_sigmoid_act(x); }
#endif

/* ---- configuration and parameters ------------------------------------------ */
int mv_vae_config_check(const mv_vae_config *c, mv_err *err) {
  if (c->input_depth < 1 || c->vocab < 2 || c->z < 1 || c->bars < 1 || c->steps < 1)
    return mv_seterr(err, MV_EINVAL, "config: input_depth, vocab, z, bars and steps must be positive");
  if ((int64_t)c->bars * c->steps > 4096) return mv_seterr(err, MV_EINVAL, "config: sequences of at most 4096 steps");
  if (c->groove) {
    if (c->vocab != c->input_depth || c->vocab % 3 != 0)
      return mv_seterr(err, MV_EINVAL, "config: a groove model's input and output depth are equal, 3 x classes");
    if (c->cond_layers != 0) return mv_seterr(err, MV_EINVAL, "config: a groove model has a flat decoder (no conductor)");
  }
  const int *ls[3] = {&c->enc_layers, &c->dec_layers, &c->cond_layers};
  const int *sz[3] = {c->enc, c->dec, c->cond};
  const char *nm[3] = {"encoder", "decoder", "conductor"};
  for (int k = 0; k < (c->groove ? 2 : 3); k++) {
    if (*ls[k] < 1 || *ls[k] > MV_MAXLAYERS)
      return mv_seterr(err, MV_EINVAL, "config: the %s has 1 to %d layers", nm[k], MV_MAXLAYERS);
    for (int l = 0; l < *ls[k]; l++)
      if (sz[k][l] < 1 || sz[k][l] > 8192) return mv_seterr(err, MV_EINVAL, "config: %s layer sizes are 1-8192", nm[k]);
  }
  return MV_OK;
}

static int add_param(mv_vae *m, const char *name, int64_t r, int64_t c, int init) {
  mv_param *p = &m->p[m->nparams];
  snprintf(p->name, sizeof p->name, "%s", name);
  p->ndim = c ? 2 : 1;
  p->shape[0] = r;
  p->shape[1] = c;
  p->numel = c ? r * c : r;
  p->offset = m->nfloats;
  p->init = init;
  m->nfloats += p->numel;
  return m->nparams++;
}

static mv_lstm_w add_lstm(mv_vae *m, const char *prefix, int in, int H) {
  char name[112];
  mv_lstm_w w = {in, H, 0, 0};
  snprintf(name, sizeof name, "%s/lstm_cell/kernel", prefix);
  w.kernel = add_param(m, name, in + H, G4(H), 1);
  snprintf(name, sizeof name, "%s/lstm_cell/bias", prefix);
  w.bias = add_param(m, name, G4(H), 0, 0);
  return w;
}

static mv_dense_w add_dense(mv_vae *m, const char *prefix, int in, int out, int init) {
  char name[112];
  mv_dense_w w = {in, out, 0, 0};
  snprintf(name, sizeof name, "%s/kernel", prefix);
  w.kernel = add_param(m, name, in, out, init);
  snprintf(name, sizeof name, "%s/bias", prefix);
  w.bias = add_param(m, name, out, 0, 0);
  return w;
}

static int state_size(const int *sizes, int n) {
  int s = 0;
  for (int l = 0; l < n; l++) s += 2 * sizes[l];
  return s;
}

static int max_size(const int *sizes, int n) {
  int s = 0;
  for (int l = 0; l < n; l++) s = sizes[l] > s ? sizes[l] : s;
  return s;
}

/* rows [k0, k1) of n for part 0 or 1 of two halves */
static void half_range(int64_t n, int part, int64_t *k0, int64_t *k1) {
  *k0 = part ? n / 2 : 0;
  *k1 = part ? n : n / 2;
}

int mv_vae_new(mv_vae **out, const mv_vae_config *c, mv_err *err) {
  *out = NULL;
  int rc = mv_vae_config_check(c, err);
  if (rc) return rc;
  mv_vae *m = calloc(1, sizeof *m);
  if (!m) return mv_seterr(err, MV_ENOMEM, "out of memory");
  m->cfg = *c;
  char name[112];
  int in = c->input_depth;
  for (int k = 0; k < c->enc_layers; k++) {
    snprintf(name, sizeof name, "encoder/cell_%d/bidirectional_rnn/fw/multi_rnn_cell/cell_0", k);
    m->enc_fw[k] = add_lstm(m, name, in, c->enc[k]);
    snprintf(name, sizeof name, "encoder/cell_%d/bidirectional_rnn/bw/multi_rnn_cell/cell_0", k);
    m->enc_bw[k] = add_lstm(m, name, in, c->enc[k]);
    in = 2 * c->enc[k];
  }
  m->mu = add_dense(m, "encoder/mu", in, c->z, 2);
  m->sigma = add_dense(m, "encoder/sigma", in, c->z, 2);
  if (c->groove) { /* magenta's flat decoder: input [previous step, z], state from z */
    m->dec_init = add_dense(m, "decoder/z_to_initial_state", c->z, state_size(c->dec, c->dec_layers), 2);
    in = c->vocab + c->z;
    for (int l = 0; l < c->dec_layers; l++) {
      snprintf(name, sizeof name, "decoder/multi_rnn_cell/cell_%d", l);
      m->dec[l] = add_lstm(m, name, in, c->dec[l]);
      in = c->dec[l];
    }
    m->out = add_dense(m, "decoder/output_projection", in, c->vocab, 1);
    goto alloc;
  }
  m->cond_init = add_dense(m, "decoder/hierarchical_level_0/initial_state", c->z, state_size(c->cond, c->cond_layers), 2);
  in = 1;
  for (int l = 0; l < c->cond_layers; l++) {
    snprintf(name, sizeof name, "decoder/hierarchical_level_0/cell_%d", l);
    m->cond[l] = add_lstm(m, name, in, c->cond[l]);
    in = c->cond[l];
  }
  int E = c->cond[c->cond_layers - 1];
  m->dec_init = add_dense(m, "core_decoder/decoder/z_to_initial_state", E, state_size(c->dec, c->dec_layers), 2);
  in = c->vocab + E;
  for (int l = 0; l < c->dec_layers; l++) {
    snprintf(name, sizeof name, "core_decoder/decoder/multi_rnn_cell/cell_%d", l);
    m->dec[l] = add_lstm(m, name, in, c->dec[l]);
    in = c->dec[l];
  }
  m->out = add_dense(m, "core_decoder/decoder/output_projection", in, c->vocab, 1);
alloc:
  m->params = calloc((size_t)m->nfloats, sizeof(mv_real));
  m->grads = calloc((size_t)m->nfloats, sizeof(mv_real));
  if (!m->params || !m->grads) {
    long long n = (long long)m->nfloats;
    mv_vae_free(m);
    return mv_seterr(err, MV_ENOMEM, "out of memory for %lld parameters", n);
  }
  *out = m;
  return MV_OK;
}

void mv_vae_free(mv_vae *m) {
  if (!m) return;
#ifndef MV_VAE_DOUBLE
  mv_pack_free(m->pack);
  for (int k = 0; k < MV_MAXLAYERS; k++)
    for (int d = 0; d < 2; d++) mv_rnn_free(m->epack[k][d]);
#endif
  free(m->params);
  free(m->grads);
  free(m->adam_m);
  free(m->adam_v);
  free(m);
}

void mv_vae_params_changed(mv_vae *m) { m->version++; }

#ifndef MV_VAE_DOUBLE
const char *mv_vae_infer_isa(void) { return mv_infer_isa(); }
int mv_vae_infer_f16(const mv_vae *m) { return m->pack && m->packed == m->version && mv_pack_is_f16(m->pack); }
#else
const char *mv_vae_infer_isa(void) { return "none"; }
int mv_vae_infer_f16(const mv_vae *m) { (void)m; return 0; }
#endif

void mv_vae_init(mv_vae *m, mv_rng *r) {
  m->version++;
  for (int i = 0; i < m->nparams; i++) {
    mv_param *p = &m->p[i];
    mv_real *d = m->params + p->offset;
    if (p->init == 0) {
      memset(d, 0, sizeof(mv_real) * (size_t)p->numel);
    } else if (p->init == 1) {
      double lim = sqrt(6.0 / (double)(p->shape[0] + p->shape[1]));
      for (int64_t k = 0; k < p->numel; k++) d[k] = (mv_real)((2.0 * mv_rng_uniform(r) - 1.0) * lim);
    } else {
      for (int64_t k = 0; k < p->numel; k++) d[k] = (mv_real)(0.001 * mv_rng_normal(r));
    }
  }
}

int mv_vae_find(const mv_vae *m, const char *name) {
  for (int i = 0; i < m->nparams; i++)
    if (strcmp(m->p[i].name, name) == 0) return i;
  return -1;
}

void mv_vae_zero_grad(mv_vae *m) { memset(m->grads, 0, sizeof(mv_real) * (size_t)m->nfloats); }

#define PW(m, i) ((m)->params + (m)->p[i].offset)
#define GW(m, i) ((m)->grads + (m)->p[i].offset)

/* ---- workspace ------------------------------------------------------------------ */
struct mv_vae_ws {
  int B, L, N, T, V; /* batch, U*T, U*B, steps per bar, vocab */
  mv_real *dmu, *dsp;  /* [B, Z] */
  void *blocks[256];
  int nblocks;
  /* encoder: per layer and direction [L, B, ...] */
  mv_real *e_xh[MV_MAXLAYERS][2], *e_g[MV_MAXLAYERS][2], *e_c[MV_MAXLAYERS][2], *e_h[MV_MAXLAYERS][2];
  mv_real *e_dh[MV_MAXLAYERS][2];
  mv_real *enc, *mu, *spre, *sigma, *z, *kl, *rloss; /* [B, 2H], [B, Z] x4, [B], [B] */
  /* conductor: [U, B, ...] */
  mv_real *cS; /* [B, state] */
  mv_real *c_xh[MV_MAXLAYERS], *c_g[MV_MAXLAYERS], *c_c[MV_MAXLAYERS], *c_h[MV_MAXLAYERS], *c_dh[MV_MAXLAYERS];
  /* decoder: [T, N, ...] */
  mv_real *dS; /* [N, state] */
  mv_real *d_xh[MV_MAXLAYERS], *d_g[MV_MAXLAYERS], *d_c[MV_MAXLAYERS], *d_h[MV_MAXLAYERS], *d_dh[MV_MAXLAYERS];
  int32_t *lab, *target; /* [T, N] */
  mv_real *logits, *probs; /* [T, N, V] */
  /* backward scratch */
  mv_real *dG, *dhrec, *dcar, *dx, *dS_grad, *demb, *dz, *tmp;
  /* a second set for the encoder's backward direction, run beside the forward one */
  mv_real *dG2, *dhrec2, *dcar2, *dx2, *tmp2;
  mv_real *s_h0, *s_c0, *s_dh0, *s_dc0; /* initial-state scratch */
  mv_real *emb_copy;                    /* [U, B, E] for decoding */
  /* groove: dropout scales (0 or 1/keep) on each layer's input, [steps, rows, in] */
  int drop;
  mv_real *e_mask[MV_MAXLAYERS][2], *d_mask[MV_MAXLAYERS];
  mv_real *gprev; /* [N, V] the previous step's output while decoding */
  /* inference scratch (allocated by the first decode): kernels, per-bar gates, initial states */
  mv_real *iscr, *igemb, *ih0, *ic0;
  size_t iscr_n, igemb_n;
};

static void *wsalloc(mv_vae_ws *w, size_t n) {
  if (w->nblocks >= 256) return NULL;
  void *p = calloc(n ? n : 1, 1);
  if (p) w->blocks[w->nblocks++] = p;
  return p;
}

void mv_vae_ws_free(mv_vae_ws *w) {
  if (!w) return;
  free(w->iscr);
  free(w->igemb);
  free(w->ih0);
  free(w->ic0);
  for (int i = 0; i < w->nblocks; i++) free(w->blocks[i]);
  free(w);
}

int mv_vae_ws_batch(const mv_vae_ws *w) { return w->B; }

int mv_vae_ws_new(mv_vae_ws **out, const mv_vae *m, int B, mv_err *err) {
  *out = NULL;
  if (B < 1 || B > 1 << 16) return mv_seterr(err, MV_EINVAL, "batch size must be 1-65536");
  const mv_vae_config *c = &m->cfg;
  mv_vae_ws *w = calloc(1, sizeof *w);
  if (!w) return mv_seterr(err, MV_ENOMEM, "out of memory");
  w->B = B;
  w->L = c->bars * c->steps;
  w->N = c->groove ? B : c->bars * B; /* groove: one flat sequence of L steps per example */
  w->T = c->groove ? w->L : c->steps;
  w->V = c->vocab;
  size_t L = (size_t)w->L, T = (size_t)w->T, U = (size_t)c->bars, N = (size_t)w->N, F = sizeof(mv_real);
  int ok = 1, maxH = 1, maxin = c->input_depth;
  if (c->groove && c->vocab + c->z > maxin) maxin = c->vocab + c->z;
#define A(ptr, count) ok = ok && ((ptr) = wsalloc(w, (count) * F)) != NULL
  for (int k = 0; k < c->enc_layers; k++) {
    int in = m->enc_fw[k].in, H = c->enc[k];
    if (H > maxH) maxH = H;
    if (2 * H > maxin) maxin = 2 * H;
    for (int d = 0; d < 2; d++) {
      A(w->e_xh[k][d], L * B * (size_t)(in + H));
      A(w->e_g[k][d], L * B * (size_t)G4(H));
      A(w->e_c[k][d], L * B * (size_t)H);
      A(w->e_h[k][d], L * B * (size_t)H);
      A(w->e_dh[k][d], L * B * (size_t)H);
      if (c->groove) A(w->e_mask[k][d], L * B * (size_t)in);
    }
  }
  int He = c->enc[c->enc_layers - 1];
  A(w->enc, (size_t)B * 2 * He);
  A(w->mu, (size_t)B * c->z);
  A(w->spre, (size_t)B * c->z);
  A(w->sigma, (size_t)B * c->z);
  A(w->z, (size_t)B * c->z);
  A(w->dz, (size_t)B * c->z);
  A(w->dmu, (size_t)B * c->z);
  A(w->dsp, (size_t)B * c->z);
  A(w->kl, (size_t)B);
  A(w->rloss, (size_t)B);
  int cs = state_size(c->cond, c->cond_layers), ds = state_size(c->dec, c->dec_layers);
  A(w->cS, (size_t)B * cs);
  for (int l = 0; l < c->cond_layers; l++) {
    int in = m->cond[l].in, H = c->cond[l];
    if (H > maxH) maxH = H;
    A(w->c_xh[l], U * B * (size_t)(in + H));
    A(w->c_g[l], U * B * (size_t)G4(H));
    A(w->c_c[l], U * B * (size_t)H);
    A(w->c_h[l], U * B * (size_t)H);
    A(w->c_dh[l], U * B * (size_t)H);
  }
  int E = c->groove ? 0 : c->cond[c->cond_layers - 1];
  A(w->dS, N * ds);
  for (int l = 0; l < c->dec_layers; l++) {
    int xin = l > 0 ? c->dec[l - 1] : c->groove ? c->vocab + c->z : E, H = c->dec[l];
    if (c->groove) A(w->d_mask[l], T * N * (size_t)xin);
    if (H > maxH) maxH = H;
    A(w->d_xh[l], T * N * (size_t)(xin + H));
    A(w->d_g[l], T * N * (size_t)G4(H));
    A(w->d_c[l], T * N * (size_t)H);
    A(w->d_h[l], T * N * (size_t)H);
    A(w->d_dh[l], T * N * (size_t)H);
  }
  ok = ok && (w->lab = wsalloc(w, T * N * sizeof(int32_t))) != NULL;
  ok = ok && (w->target = wsalloc(w, T * N * sizeof(int32_t))) != NULL;
  A(w->logits, T * N * (size_t)c->vocab);
  A(w->probs, T * N * (size_t)c->vocab);
  size_t rows = L * B > T * N ? L * B : T * N;
  A(w->dG, rows * (size_t)G4(maxH));
  A(w->dhrec, N * (size_t)maxH);
  A(w->dcar, N * (size_t)maxH);
  A(w->dx, rows * (size_t)(maxin > maxH ? maxin : maxH));
  A(w->dS_grad, N * (size_t)(cs > ds ? cs : ds));
  A(w->demb, N * (size_t)E);
  A(w->tmp, N * (size_t)(G4(maxH) > c->vocab ? G4(maxH) : c->vocab));
  {
    size_t er = (size_t)L * B;
    int eH = 0, ein = 0;
    for (int k = 0; k < c->enc_layers; k++) {
      if (c->enc[k] > eH) eH = c->enc[k];
      if (m->enc_fw[k].in > ein) ein = m->enc_fw[k].in;
    }
    A(w->dG2, er * (size_t)G4(eH));
    A(w->dhrec2, (size_t)B * eH);
    A(w->dcar2, (size_t)B * eH);
    A(w->dx2, er * (size_t)(ein > eH ? ein : eH));
    A(w->tmp2, (size_t)B * G4(eH));
  }
  int nl = c->dec_layers > c->cond_layers ? c->dec_layers : c->cond_layers;
  A(w->s_h0, N * (size_t)maxH);
  A(w->s_c0, N * (size_t)maxH * nl);
  A(w->s_dh0, N * (size_t)maxH);
  A(w->s_dc0, N * (size_t)maxH);
  A(w->emb_copy, N * (size_t)E);
  A(w->gprev, N * (size_t)c->vocab);
#undef A
  if (!ok) {
    mv_vae_ws_free(w);
    return mv_seterr(err, MV_ENOMEM, "out of memory for a batch-%d workspace", B);
  }
  *out = w;
  return MV_OK;
}

/* ---- the LSTM step ------------------------------------------------------------------ */
/* g[n] = b + xh[n] @ W (+ Wgather[lab[n]]), then i, j, f, o activations, c, h.
 * W: the kernel rows this input uses ([x ; h] rows), K = their count. */
/* One row's cell update in place: gates [i j f o] pre-activations -> activations, c and h.
 * Inlined twice (with and without c_prev) so that each loop is branch-free and vectorizes. */
static inline __attribute__((always_inline)) void cell_row(int H, mv_real *restrict gn, const mv_real *restrict cpn,
                                                           mv_real *restrict cn, mv_real *restrict hn) {
  for (int k = 0; k < H; k++) {
    mv_real i = sigm(gn[k]), j = TANH(gn[H + k]), f = sigm(gn[2 * H + k] + 1.0f), o = sigm(gn[3 * H + k]);
    mv_real cc = i * j + f * (cpn ? cpn[k] : 0.0f);
    gn[k] = i, gn[H + k] = j, gn[2 * H + k] = f, gn[3 * H + k] = o;
    cn[k] = cc;
    hn[k] = o * TANH(cc);
  }
}

/* The cell updates of N rows (elementwise, no FMA contraction: cloned per ISA, mv_act.h). */
MV_ISA_CLONES static void cells_fwd(int N, int H, mv_real *g, const mv_real *c_prev, mv_real *c, mv_real *h) {
  int H4 = G4(H);
  for (int n = 0; n < N; n++) {
    mv_real *gn = g + (size_t)n * H4;
    if (c_prev) cell_row(H, gn, c_prev + (size_t)n * H, c + (size_t)n * H, h + (size_t)n * H);
    else cell_row(H, gn, NULL, c + (size_t)n * H, h + (size_t)n * H);
  }
}

static void lstm_fwd_step(int N, int K, int H, const mv_real *W, const mv_real *b, const mv_real *xh, const mv_real *Wg,
                          const int32_t *lab, const mv_real *c_prev, mv_real *g, mv_real *c, mv_real *h) {
  int H4 = G4(H);
  for (int n = 0; n < N; n++) memcpy(g + (size_t)n * H4, b, sizeof(mv_real) * (size_t)H4);
  GEMM(0, 0, N, H4, K, 1.0f, xh, K, W, H4, 1.0f, g, H4);
  if (lab)
    for (int n = 0; n < N; n++)
      if (lab[n] >= 0) {
        const mv_real *row = Wg + (size_t)lab[n] * H4;
        mv_real *gn = g + (size_t)n * H4;
        for (int k = 0; k < H4; k++) gn[k] += row[k];
      }
  cells_fwd(N, H, g, c_prev, c, h);
}

/* One row of lstm_bwd_step, inlined with and without c_prev like cell_row. */
static inline __attribute__((always_inline)) void bwd_row(int H, const mv_real *restrict gn, const mv_real *restrict cn,
                                                          const mv_real *restrict cpn, const mv_real *restrict dhn,
                                                          mv_real *restrict dcn, mv_real *restrict dn) {
  for (int k = 0; k < H; k++) {
    mv_real i = gn[k], j = gn[H + k], f = gn[2 * H + k], o = gn[3 * H + k];
    mv_real tc = TANH(cn[k]);
    mv_real cp = cpn ? cpn[k] : 0.0f;
    mv_real dct = dcn[k] + dhn[k] * o * (1.0f - tc * tc);
    dn[k] = dct * j * i * (1.0f - i);
    dn[H + k] = dct * i * (1.0f - j * j);
    dn[2 * H + k] = dct * cp * f * (1.0f - f);
    dn[3 * H + k] = dhn[k] * tc * o * (1.0f - o);
    dcn[k] = dct * f;
  }
}

/* dh: total gradient on h_t; dc: in = gradient on c_t from the later step,
 * out = gradient on c_{t-1}. dG: gradient on the pre-activations. */
MV_ISA_CLONES static void lstm_bwd_step(int N, int H, const mv_real *g, const mv_real *c, const mv_real *c_prev,
                                        const mv_real *dh, mv_real *dc, mv_real *dG) {
  int H4 = G4(H);
  for (int n = 0; n < N; n++) {
    size_t x = (size_t)n * H;
    if (c_prev) bwd_row(H, g + (size_t)n * H4, c + x, c_prev + x, dh + x, dc + x, dG + (size_t)n * H4);
    else bwd_row(H, g + (size_t)n * H4, c + x, NULL, dh + x, dc + x, dG + (size_t)n * H4);
  }
}

/* One layer over T steps when its x parts are already in xh (layer-outer
 * order). h0/c0: [N, H] or NULL (zeros). reverse: time runs T-1 .. 0. */
static void layer_fwd(int T, int N, int xin, int H, const mv_real *W, const mv_real *b, mv_real *xh, mv_real *g, mv_real *c,
                      mv_real *h, const mv_real *h0, const mv_real *c0, int reverse) {
  int K = xin + H;
  for (int s = 0; s < T; s++) {
    int t = reverse ? T - 1 - s : s, tp = reverse ? t + 1 : t - 1;
    const mv_real *hp = s ? h + (size_t)tp * N * H : h0;
    const mv_real *cp = s ? c + (size_t)tp * N * H : c0;
    mv_real *x = xh + (size_t)t * N * K;
    for (int n = 0; n < N; n++) {
      if (hp) memcpy(x + (size_t)n * K + xin, hp + (size_t)n * H, sizeof(mv_real) * (size_t)H);
      else memset(x + (size_t)n * K + xin, 0, sizeof(mv_real) * (size_t)H);
    }
    lstm_fwd_step(N, K, H, W, b, x, NULL, NULL, cp, g + (size_t)t * N * G4(H), c + (size_t)t * N * H,
                  h + (size_t)t * N * H);
  }
}

/* Backward through one layer: dh [T, N, H] (gradients on its outputs) in;
 * accumulates dW (the same rows as W) and db; dx [T, N, xin] (if given) gets
 * the gradients on the x parts; dh0/dc0 (if given) on the initial state.
 * Gather rows (lab, dWg) get their share too. */
typedef struct {
  mv_real *dG, *dhrec, *dcar, *tmp; /* [T*N, 4H], [N, H], [N, H], [N, 4H] */
} bwd_scratch;

static bwd_scratch scratch_of(mv_vae_ws *w, int second) {
  bwd_scratch s = {second ? w->dG2 : w->dG, second ? w->dhrec2 : w->dhrec, second ? w->dcar2 : w->dcar,
                   second ? w->tmp2 : w->tmp};
  return s;
}

/* The recurrence of layer_bwd for rows n0 .. n1-1 of N: dG (the gradients on the
 * pre-activations) for every step, dh0/dc0 (if given) on the initial state. Rows are
 * independent: two row ranges may run side by side on the same scratch. */
static void layer_bwd_rows(bwd_scratch sc, int T, int N, int n0, int n1, int xin, int H, const mv_real *W, const mv_real *g,
                           const mv_real *c, const mv_real *c0, const mv_real *dh, mv_real *dh0, mv_real *dc0,
                           int reverse) {
  int H4 = G4(H), R = n1 - n0;
  size_t rh = (size_t)R * H;
  mv_real *dhrec = sc.dhrec + (size_t)n0 * H, *dc = sc.dcar + (size_t)n0 * H, *dht = sc.tmp + (size_t)n0 * H;
  memset(dhrec, 0, sizeof(mv_real) * rh);
  memset(dc, 0, sizeof(mv_real) * rh);
  for (int s = T - 1; s >= 0; s--) {
    int t = reverse ? T - 1 - s : s, tp = reverse ? t + 1 : t - 1;
    size_t r0 = (size_t)t * N + n0;
    const mv_real *cp = s ? c + ((size_t)tp * N + n0) * H : c0 ? c0 + (size_t)n0 * H : NULL;
    const mv_real *dh_t = dh + r0 * H;
    for (size_t k = 0; k < rh; k++) dht[k] = dh_t[k] + dhrec[k];
    mv_real *dGt = sc.dG + r0 * H4;
    lstm_bwd_step(R, H, g + r0 * H4, c + r0 * H, cp, dht, dc, dGt);
    GEMM(0, 1, R, H, H4, 1.0f, dGt, H4, W + (size_t)xin * H4, H4, 0.0f, dhrec, H);
  }
  if (dh0) memcpy(dh0 + (size_t)n0 * H, dhrec, sizeof(mv_real) * rh);
  if (dc0) memcpy(dc0 + (size_t)n0 * H, dc, sizeof(mv_real) * rh);
}

/* The rest of layer_bwd, over all rows at once: dW, db, the gather rows, dx. */
static void layer_bwd_weights(bwd_scratch sc, int T, int N, int xin, int H, const mv_real *W, mv_real *dW, mv_real *db,
                              const mv_real *xh, mv_real *dx, const int32_t *lab, mv_real *dWg) {
  int K = xin + H, H4 = G4(H);
  const mv_real *dG = sc.dG;
  int64_t R = (int64_t)T * N;
  GEMM(1, 0, K, H4, R, 1.0f, xh, K, dG, H4, 1.0f, dW, H4);
  for (int64_t r = 0; r < R; r++) {
    const mv_real *d = dG + r * H4;
    for (int k = 0; k < H4; k++) db[k] += d[k];
  }
  if (lab)
    for (int64_t r = 0; r < R; r++)
      if (lab[r] >= 0) {
        mv_real *row = dWg + (size_t)lab[r] * H4;
        const mv_real *d = dG + r * H4;
        for (int k = 0; k < H4; k++) row[k] += d[k];
      }
  if (dx && xin > 0) GEMM(0, 1, R, xin, H4, 1.0f, dG, H4, W, H4, 0.0f, dx, xin);
}

static void layer_bwd(bwd_scratch sc, int T, int N, int xin, int H, const mv_real *W, mv_real *dW, mv_real *db,
                      const mv_real *xh, const mv_real *g, const mv_real *c, const mv_real *c0, const mv_real *dh, mv_real *dx,
                      mv_real *dh0, mv_real *dc0, int reverse, const int32_t *lab, mv_real *dWg) {
  layer_bwd_rows(sc, T, N, 0, N, xin, H, W, g, c, c0, dh, dh0, dc0, reverse);
  layer_bwd_weights(sc, T, N, xin, H, W, dW, db, xh, dx, lab, dWg);
}

/* out[r] = x[r] @ W + b for R rows */
static void dense_fwd(int64_t R, int in, int out, const mv_real *x, const mv_real *W, const mv_real *b, mv_real *y) {
  for (int64_t r = 0; r < R; r++) memcpy(y + r * out, b, sizeof(mv_real) * (size_t)out);
  GEMM(0, 0, R, out, in, 1.0f, x, in, W, out, 1.0f, y, out);
}

/* dW += x^T dy, db += sum dy, dx (+)= dy W^T (accumulate if dx_beta == 1) */
static void dense_bwd(int64_t R, int in, int out, const mv_real *x, const mv_real *W, const mv_real *dy, mv_real *dW, mv_real *db,
                      mv_real *dx, mv_real dx_beta) {
  GEMM(1, 0, in, out, R, 1.0f, x, in, dy, out, 1.0f, dW, out);
  for (int64_t r = 0; r < R; r++)
    for (int k = 0; k < out; k++) db[k] += dy[r * out + k];
  if (dx) GEMM(0, 1, R, in, out, 1.0f, dy, out, W, out, dx_beta, dx, in);
}

/* ---- encoder ---------------------------------------------------------------------- */
/* Scales x [n] by a dropout mask when this forward drops out. */
static void drop_apply(mv_real *x, const mv_real *mask, int n) {
  for (int q = 0; q < n; q++) x[q] *= mask[q];
}

/* The encoder over labels (the roll) or, for groove models, float inputs xf [B, L, D]. */
/* One encoder layer's two directions, forward (bwd = 0) or backward (bwd = 1): with two or more
 * threads they run side by side, each with single-threaded BLAS (small per-step GEMMs scale
 * better this way than split inside BLAS); the results are the same either way. */
typedef struct {
  mv_vae *m;
  mv_vae_ws *w;
  int k, bwd;
} enc_job;

static void enc_direction(void *vctx, int d) {
  enc_job *j = vctx;
  mv_vae *m = j->m;
  mv_vae_ws *w = j->w;
  int k = j->k, H = m->cfg.enc[k], xin = m->enc_fw[k].in, B = w->B, L = w->L;
  const mv_lstm_w *lw = d ? &m->enc_bw[k] : &m->enc_fw[k];
  if (!j->bwd)
    layer_fwd(L, B, xin, H, PW(m, lw->kernel), PW(m, lw->bias), w->e_xh[k][d], w->e_g[k][d], w->e_c[k][d],
              w->e_h[k][d], NULL, NULL, d);
  else
    layer_bwd(scratch_of(w, d), L, B, xin, H, PW(m, lw->kernel), GW(m, lw->kernel), GW(m, lw->bias), w->e_xh[k][d],
              w->e_g[k][d], w->e_c[k][d], NULL, w->e_dh[k][d], k > 0 ? (d ? w->dx2 : w->dx) : NULL, NULL, NULL, d, NULL,
              NULL);
}

/* fn(ctx, 0) and fn(ctx, 1): side by side with single-threaded BLAS when two or more threads are
 * allowed, else one after the other */
static void side_by_side(void (*fn)(void *ctx, int d), void *ctx) {
#ifndef MV_VAE_DOUBLE
  int threads = mv_blas_get_num_threads();
  if (threads >= 2) {
    mv_blas_set_num_threads(1);
    int ran = mv_par_tasks(fn, ctx, 2);
    mv_blas_set_num_threads(threads);
    if (ran) return;
  }
#endif
  fn(ctx, 0);
  fn(ctx, 1);
}

static void both_directions(enc_job *j) { side_by_side(enc_direction, j); }

/* Layer k's inputs for both directions into e_xh[k][d] (rows [T, B], the first xin of K columns):
 * the roll or the float steps for layer 0, the layer below's two directions after. */
static void encoder_inputs(mv_vae *m, mv_vae_ws *w, int k, const int32_t *labels, const mv_real *xf) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, L = w->L, D = c->input_depth;
  int H = c->enc[k], xin = m->enc_fw[k].in, K = xin + H;
  for (int d = 0; d < 2; d++) {
    mv_real *xh = w->e_xh[k][d];
    for (int t = 0; t < L; t++)
      for (int b = 0; b < B; b++) {
        mv_real *x = xh + ((size_t)t * B + b) * K;
        if (k == 0 && xf) {
          memcpy(x, xf + ((size_t)b * L + t) * D, sizeof(mv_real) * (size_t)D);
        } else if (k == 0) { /* the roll: 9 class bits + "nothing hit" (generalised: D-1 bits + NOR) */
          int32_t l = labels[(size_t)b * L + t];
          for (int q = 0; q < D - 1; q++) x[q] = (mv_real)((l >> q) & 1);
          x[D - 1] = l == 0 ? 1.0f : 0.0f;
        } else {
          int Hp = c->enc[k - 1];
          memcpy(x, w->e_h[k - 1][0] + ((size_t)t * B + b) * Hp, sizeof(mv_real) * (size_t)Hp);
          memcpy(x + Hp, w->e_h[k - 1][1] + ((size_t)t * B + b) * Hp, sizeof(mv_real) * (size_t)Hp);
        }
        if (w->drop) drop_apply(x, w->e_mask[k][d] + ((size_t)t * B + b) * xin, xin);
      }
  }
}

/* The encoding: the top layer's last forward and first backward outputs, side by side. */
static void encoder_output(mv_vae *m, mv_vae_ws *w) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, L = w->L, k = c->enc_layers - 1, H = c->enc[k];
  for (int b = 0; b < B; b++) {
    memcpy(w->enc + (size_t)b * 2 * H, w->e_h[k][0] + ((size_t)(L - 1) * B + b) * H, sizeof(mv_real) * (size_t)H);
    memcpy(w->enc + (size_t)b * 2 * H + H, w->e_h[k][1] + (size_t)b * H, sizeof(mv_real) * (size_t)H);
  }
}

static void encoder_fwd(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_real *xf) {
  for (int k = 0; k < m->cfg.enc_layers; k++) {
    encoder_inputs(m, w, k, labels, xf);
    enc_job ej = {m, w, k, 0};
    both_directions(&ej);
  }
  encoder_output(m, w);
}

/* y[r] = b + x[r] . W for R rows (x's rows ldx apart), one row at a time in a fixed order, so a row's
 * result does not depend on R (a GEMM may take another path for another R). Zero inputs are skipped
 * (the roll and the hits are mostly zeros; adding 0 . w changes nothing). */
static void rows_affine(int64_t R, int in, int out, const mv_real *x, size_t ldx, const mv_real *W, const mv_real *b,
                        mv_real *y) {
  for (int64_t r = 0; r < R; r++) {
    mv_real *restrict yr = y + r * out;
    const mv_real *xr = x + (size_t)r * ldx;
    memcpy(yr, b, sizeof(mv_real) * (size_t)out);
    for (int k = 0; k < in; k++) {
      mv_real a = xr[k];
      if (a == 0) continue;
      const mv_real *restrict wk = W + (size_t)k * out;
      for (int q = 0; q < out; q++) yr[q] += a * wk[q];
    }
  }
}

#ifndef MV_VAE_DOUBLE
/* Encoding at inference: each direction's input part for all steps row by row (rows_affine), then
 * the recurrence on packed weights (mv_rnn), the directions side by side on two threads. Every
 * row's mu is the same bits in any batch. */
static int encoder_ready(mv_vae *m, mv_err *err) {
  const mv_vae_config *c = &m->cfg;
  if (m->epacked == m->version && m->epack[0][0]) return MV_OK;
  for (int k = 0; k < MV_MAXLAYERS; k++)
    for (int d = 0; d < 2; d++) {
      mv_rnn_free(m->epack[k][d]);
      m->epack[k][d] = NULL;
    }
  for (int k = 0; k < c->enc_layers; k++)
    for (int d = 0; d < 2; d++) {
      const mv_lstm_w *lw = d ? &m->enc_bw[k] : &m->enc_fw[k];
      int rc = mv_rnn_new(&m->epack[k][d], PW(m, lw->kernel), lw->in, c->enc[k], err);
      if (rc) return rc;
    }
  m->epacked = m->version;
  return MV_OK;
}

typedef struct {
  mv_vae *m;
  mv_vae_ws *w;
  int k;
  float *scr[2];
} enc_infer_job;

static void enc_infer_direction(void *vctx, int d) {
  enc_infer_job *j = vctx;
  mv_vae *m = j->m;
  mv_vae_ws *w = j->w;
  int k = j->k, H = m->cfg.enc[k], xin = m->enc_fw[k].in, K = xin + H, H4 = G4(H);
  int64_t R = (int64_t)w->L * w->B;
  const mv_lstm_w *lw = d ? &m->enc_bw[k] : &m->enc_fw[k];
  mv_real *xg = w->e_g[k][d];
  rows_affine(R, xin, H4, w->e_xh[k][d], (size_t)K, PW(m, lw->kernel), PW(m, lw->bias), xg);
  mv_rnn_run(m->epack[k][d], w->L, w->B, xg, d, w->e_h[k][d], j->scr[d]);
}

static int encoder_infer(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_real *xf, mv_err *err) {
  const mv_vae_config *c = &m->cfg;
  int rc = encoder_ready(m, err);
  if (rc) return rc;
  size_t need = 0;
  for (int k = 0; k < c->enc_layers; k++) {
    size_t n = mv_rnn_scratch(m->epack[k][0], w->B);
    need = n > need ? n : need;
  }
  float *scr = malloc(2 * need * sizeof(float));
  if (!scr) return mv_seterr(err, MV_ENOMEM, "out of memory for encoding");
  for (int k = 0; k < c->enc_layers; k++) {
    encoder_inputs(m, w, k, labels, xf);
    enc_infer_job j = {m, w, k, {scr, scr + need}};
    side_by_side(enc_infer_direction, &j);
  }
  free(scr);
  encoder_output(m, w);
  return MV_OK;
}
#endif

/* mu, sigma and z of the encodings; rows: one row at a time (inference: batch-independent bits) */
static void heads_fwd(mv_vae *m, mv_vae_ws *w, const mv_real *eps, int rows) {
  int B = w->B, Z = m->cfg.z, in = m->mu.in;
  if (rows) {
    rows_affine(B, in, Z, w->enc, (size_t)in, PW(m, m->mu.kernel), PW(m, m->mu.bias), w->mu);
    rows_affine(B, in, Z, w->enc, (size_t)in, PW(m, m->sigma.kernel), PW(m, m->sigma.bias), w->spre);
  } else {
    dense_fwd(B, in, Z, w->enc, PW(m, m->mu.kernel), PW(m, m->mu.bias), w->mu);
    dense_fwd(B, in, Z, w->enc, PW(m, m->sigma.kernel), PW(m, m->sigma.bias), w->spre);
  }
  for (int b = 0; b < B; b++) {
    double kl = 0;
    for (int q = 0; q < Z; q++) {
      size_t x = (size_t)b * Z + q;
      mv_real s = w->spre[x];
      mv_real sg = s > 20.0f ? s : LOG1P(EXP(s));
      if (sg < 1e-30f) sg = 1e-30f;
      w->sigma[x] = sg;
      w->z[x] = w->mu[x] + (eps ? sg * eps[x] : 0.0f);
      kl += -log((double)sg) + 0.5 * ((double)sg * sg + (double)w->mu[x] * w->mu[x]) - 0.5;
    }
    w->kl[b] = (mv_real)kl;
  }
}

static void encoder_bwd(mv_vae *m, mv_vae_ws *w) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, L = w->L;
  for (int k = c->enc_layers - 1; k >= 0; k--) {
    int xin = m->enc_fw[k].in;
    if (k > 0) {
      int Hp = c->enc[k - 1];
      memset(w->e_dh[k - 1][0], 0, sizeof(mv_real) * (size_t)L * B * Hp);
      memset(w->e_dh[k - 1][1], 0, sizeof(mv_real) * (size_t)L * B * Hp);
    }
    enc_job ej = {m, w, k, 1};
    both_directions(&ej);
    if (k > 0) {
      int Hp = c->enc[k - 1];
      for (int d = 0; d < 2; d++) {
        mv_real *dx = d ? w->dx2 : w->dx;
        if (w->drop) drop_apply(dx, w->e_mask[k][d], L * B * xin);
        for (size_t r = 0; r < (size_t)L * B; r++)
          for (int q = 0; q < Hp; q++) {
            w->e_dh[k - 1][0][r * Hp + q] += dx[r * xin + q];
            w->e_dh[k - 1][1][r * Hp + q] += dx[r * xin + Hp + q];
          }
      }
    }
  }
}

/* ---- conductor ------------------------------------------------------------------------ */
static mv_real *split_state(mv_real *S, const int *sizes, int l, int B, int total, int which /*0 c, 1 h*/, mv_real *buf) {
  int off = 0;
  for (int q = 0; q < l; q++) off += 2 * sizes[q];
  int H = sizes[l];
  for (int b = 0; b < B; b++)
    memcpy(buf + (size_t)b * H, S + (size_t)b * total + off + which * H, sizeof(mv_real) * (size_t)H);
  return buf;
}

static void conductor_fwd(mv_vae *m, mv_vae_ws *w, mv_real *h0buf, mv_real *c0buf) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, U = c->bars, cs = state_size(c->cond, c->cond_layers);
  dense_fwd(B, c->z, cs, w->z, PW(m, m->cond_init.kernel), PW(m, m->cond_init.bias), w->cS);
  for (size_t k = 0; k < (size_t)B * cs; k++) w->cS[k] = TANH(w->cS[k]);
  for (int l = 0; l < c->cond_layers; l++) {
    int H = c->cond[l], xin = m->cond[l].in, K = xin + H;
    for (int u = 0; u < U; u++)
      for (int b = 0; b < B; b++) {
        mv_real *x = w->c_xh[l] + ((size_t)u * B + b) * K;
        if (l == 0) x[0] = 0.0f; /* the conductor's input is a zero */
        else memcpy(x, w->c_h[l - 1] + ((size_t)u * B + b) * xin, sizeof(mv_real) * (size_t)xin);
      }
    split_state(w->cS, c->cond, l, B, cs, 0, c0buf);
    split_state(w->cS, c->cond, l, B, cs, 1, h0buf);
    layer_fwd(U, B, xin, H, PW(m, m->cond[l].kernel), PW(m, m->cond[l].bias), w->c_xh[l], w->c_g[l], w->c_c[l],
              w->c_h[l], h0buf, c0buf, 0);
  }
}

/* Layer l's initial-state gradients into the flat state gradient dS [N, ds]
 * (magenta's order [c0, h0, c1, h1, ...]; sizes Hs). */
static void put_state_grad(mv_real *dS, int N, int ds, const int *Hs, int l, const mv_real *dc0, const mv_real *dh0) {
  int off = 0, H = Hs[l];
  for (int q = 0; q < l; q++) off += 2 * Hs[q];
  for (int n = 0; n < N; n++) {
    memcpy(dS + (size_t)n * ds + off, dc0 + (size_t)n * H, sizeof(mv_real) * (size_t)H);
    memcpy(dS + (size_t)n * ds + off + H, dh0 + (size_t)n * H, sizeof(mv_real) * (size_t)H);
  }
}

/* demb [U*B, E] -> conductor grads, then dz (overwritten). */
static void conductor_bwd(mv_vae *m, mv_vae_ws *w, mv_real *c0buf, mv_real *dh0, mv_real *dc0) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, U = c->bars, cs = state_size(c->cond, c->cond_layers), top = c->cond_layers - 1;
  memcpy(w->c_dh[top], w->demb, sizeof(mv_real) * (size_t)U * B * c->cond[top]);
  mv_real *dS = w->dS_grad;
  for (int l = top; l >= 0; l--) {
    int H = c->cond[l], xin = m->cond[l].in;
    split_state(w->cS, c->cond, l, B, cs, 0, c0buf);
    layer_bwd(scratch_of(w, 0), U, B, xin, H, PW(m, m->cond[l].kernel), GW(m, m->cond[l].kernel), GW(m, m->cond[l].bias), w->c_xh[l],
              w->c_g[l], w->c_c[l], c0buf, w->c_dh[l], l > 0 ? w->dx : NULL, dh0, dc0, 0, NULL, NULL);
    if (l > 0) memcpy(w->c_dh[l - 1], w->dx, sizeof(mv_real) * (size_t)U * B * xin);
    put_state_grad(dS, B, cs, c->cond, l, dc0, dh0);
  }
  for (size_t k = 0; k < (size_t)B * cs; k++) dS[k] *= 1.0f - w->cS[k] * w->cS[k];
  dense_bwd(B, c->z, cs, w->z, PW(m, m->cond_init.kernel), dS, GW(m, m->cond_init.kernel), GW(m, m->cond_init.bias),
            w->dz, 0.0f);
}

/* ---- decoder ---------------------------------------------------------------------------- */
/* Softmax of one row into p; returns log-sum-exp. */
static double softmax_row(const mv_real *x, int V, mv_real *p, mv_real temperature) {
  mv_real mx = x[0];
  for (int k = 1; k < V; k++)
    if (x[k] > mx) mx = x[k];
  double s = 0;
  for (int k = 0; k < V; k++) {
    mv_real e = EXP((x[k] - mx) / temperature);
    p[k] = e;
    s += e;
  }
  mv_real inv = (mv_real)(1.0 / s);
  for (int k = 0; k < V; k++) p[k] *= inv;
  return mx / temperature + log(s);
}

#ifndef MV_VAE_DOUBLE
/* Sampling's softmax (inference only): the exps through mv_act.h's vectorized exp. */
static void softmax_draw_row(const float *x, int V, float *p, float temperature) {
  float mx = x[0];
  for (int k = 1; k < V; k++) mx = x[k] > mx ? x[k] : mx;
  float inv_t = 1.0f / temperature;
  for (int k = 0; k < V; k++) p[k] = mv_exp_act((x[k] - mx) * inv_t);
  double s = 0;
  for (int k = 0; k < V; k++) s += p[k];
  float inv = (float)(1.0 / s);
  for (int k = 0; k < V; k++) p[k] *= inv;
}
#endif

static int draw_from(const mv_real *p, int V, double u) {
  double acc = 0;
  int last = 0;
  for (int k = 0; k < V; k++) {
    if (!(p[k] > 0)) continue; /* NaN too: NaN logits draw class 0 (silence), never the last class */
    last = k;
    acc += p[k];
    if (u < acc) return k;
  }
  return last;
}

static int argmax_row(const mv_real *x, int V) {
  int best = 0;
  for (int k = 1; k < V; k++)
    if (x[k] > x[best]) best = k;
  return best;
}

/* Runs the decoder stack for steps t0..t1-1 over N rows whose embeddings are
 * emb [N, E] and initial state from S (already tanh'd) when t0 == 0; fills
 * w->logits/probs. lab[t][n] must be set for t before its step runs; with
 * next_label != NULL it is called after each step to choose lab[t+1]. */
typedef void (*next_label_fn)(void *ctx, int t, int N, int n0, int n1, const mv_real *logits, const mv_real *probs,
                              int32_t *lab_next);

/* One decoder time step t over rows n0 .. n1-1 of N: the stack, then logits and
 * softmax(logits / temperature) for that step. Step 0 starts from the state S
 * (already tanh'd); later steps from step t - 1. lab[t] must be set. Rows are
 * independent: two row ranges may run side by side (each writes only its own part of
 * h0buf [N, maxH] and c0buf [layers, N, maxH]). */
static void decoder_step(mv_vae *m, mv_vae_ws *w, int N, int n0, int n1, int t, const mv_real *emb, const mv_real *S,
                         mv_real temperature, mv_real *h0buf, mv_real *c0buf) {
  const mv_vae_config *c = &m->cfg;
  int V = c->vocab, E = c->cond[c->cond_layers - 1], ds = state_size(c->dec, c->dec_layers), R = n1 - n0;
  int maxH = max_size(c->dec, c->dec_layers);
  size_t r0 = (size_t)t * N + n0; /* this step's first row */
  for (int l = 0; l < c->dec_layers; l++) {
    int H = c->dec[l], xin = l == 0 ? E : c->dec[l - 1], K = xin + H;
    mv_real *xh = w->d_xh[l] + r0 * K;
    const mv_real *hp, *cp;
    if (t == 0) {
      /* this range's own part of the buffers (rows maxH apart, layers N * maxH apart) */
      hp = split_state((mv_real *)S + (size_t)n0 * ds, c->dec, l, R, ds, 1, h0buf + (size_t)n0 * maxH);
      cp = split_state((mv_real *)S + (size_t)n0 * ds, c->dec, l, R, ds, 0, c0buf + ((size_t)l * N + n0) * maxH);
    } else {
      hp = w->d_h[l] + (r0 - N) * H;
      cp = w->d_c[l] + (r0 - N) * H;
    }
    for (int n = 0; n < R; n++) {
      mv_real *x = xh + (size_t)n * K;
      if (l == 0) memcpy(x, emb + (size_t)(n0 + n) * E, sizeof(mv_real) * (size_t)E);
      else memcpy(x, w->d_h[l - 1] + (r0 + n) * xin, sizeof(mv_real) * (size_t)xin);
      memcpy(x + xin, hp + (size_t)n * H, sizeof(mv_real) * (size_t)H);
    }
    const mv_real *W = PW(m, m->dec[l].kernel);
    lstm_fwd_step(R, K, H, l == 0 ? W + (size_t)V * G4(H) : W, PW(m, m->dec[l].bias), xh, l == 0 ? W : NULL,
                  l == 0 ? w->lab + r0 : NULL, cp, w->d_g[l] + r0 * G4(H), w->d_c[l] + r0 * H, w->d_h[l] + r0 * H);
  }
  int Ht = c->dec[c->dec_layers - 1];
  mv_real *lg = w->logits + r0 * V, *pr = w->probs + r0 * V;
  dense_fwd(R, Ht, V, w->d_h[c->dec_layers - 1] + r0 * Ht, PW(m, m->out.kernel), PW(m, m->out.bias), lg);
  for (int n = 0; n < R; n++)
    softmax_row(lg + (size_t)n * V, V, pr + (size_t)n * V, temperature > 0 ? temperature : 1.0f);
}

/* Runs the decoder for steps 0..T-1 over rows n0 .. n1-1 of N; after each
 * step, next() chooses those rows' following inputs (lab[t + 1]). */
static void decoder_run(mv_vae *m, mv_vae_ws *w, int N, int n0, int n1, int T, const mv_real *emb, const mv_real *S,
                        next_label_fn next, void *ctx, mv_real temperature, mv_real *h0buf, mv_real *c0buf) {
  int V = m->cfg.vocab;
  for (int t = 0; t < T; t++) {
    decoder_step(m, w, N, n0, n1, t, emb, S, temperature, h0buf, c0buf);
    const mv_real *lg = w->logits + (size_t)t * N * V, *pr = w->probs + (size_t)t * N * V;
    if (next) next(ctx, t, N, n0, n1, lg, pr, t + 1 < T ? w->lab + (size_t)(t + 1) * N : NULL);
  }
}

typedef struct {
  const mv_vae_train_opts *o;
  const int32_t *target; /* [T, N] */
  int B, U, T, V;
  int64_t sampled;
} train_ctx;

/* Scheduled sampling (magenta's ScheduledOutputTrainingHelper, per bar): with
 * probability p the next input is drawn from softmax(logits) (T = 1). */
static void train_next(void *vctx, int t, int N, int n0, int n1, const mv_real *logits, const mv_real *probs,
                       int32_t *lab_next) {
  train_ctx *x = vctx;
  (void)logits;
  if (!lab_next) return;
  for (int n = n0; n < n1; n++) {
    int u = n / x->B, b = n % x->B;
    size_t ci = ((size_t)b * x->U + u) * x->T + (t + 1);
    int32_t truth = x->target[(size_t)t * N + n];
    if (x->o->p_sample > 0 && x->o->coins && x->o->coins[ci] < x->o->p_sample) {
      lab_next[n] = draw_from(probs + (size_t)n * x->V, x->V, x->o->draws ? x->o->draws[ci] : 0.5);
      x->sampled++;
    } else {
      lab_next[n] = truth;
    }
  }
}

/* initial-state scratch, from the workspace */
typedef struct {
  mv_real *h0, *c0, *dh0, *dc0;
} state_bufs;

/* The teacher-forced decoder of a training forward in two halves of its rows (bars x batch):
 * rows are independent, so the halves run side by side with no joins inside the 16 steps. Each
 * half has its own train_ctx (its own count of sampled inputs). */
typedef struct {
  mv_vae *m;
  mv_vae_ws *w;
  int N, T;
  const mv_real *emb;
  train_ctx ctx[2];
  const state_bufs *sb;
} dec_half_job;

static void dec_half(void *vctx, int d) {
  dec_half_job *j = vctx;
  int64_t n0, n1;
  half_range(j->N, d, &n0, &n1);
  decoder_run(j->m, j->w, j->N, (int)n0, (int)n1, j->T, j->emb, j->w->dS, train_next, &j->ctx[d], 1.0f, j->sb->h0,
              j->sb->c0);
}

/* The decoder's backward recurrence in the same two halves of its rows. */
typedef struct {
  bwd_scratch sc;
  int T, N, xin, H;
  const mv_real *W, *g, *c, *c0, *dh;
  mv_real *dh0, *dc0;
} dec_bwd_job;

static void dec_bwd_half(void *vctx, int d) {
  dec_bwd_job *j = vctx;
  int64_t n0, n1;
  half_range(j->N, d, &n0, &n1);
  layer_bwd_rows(j->sc, j->T, j->N, (int)n0, (int)n1, j->xin, j->H, j->W, j->g, j->c, j->c0, j->dh, j->dh0, j->dc0, 0);
}

static void decoder_init_state(mv_vae *m, mv_vae_ws *w, int N, const mv_real *emb) {
  const mv_vae_config *c = &m->cfg;
  int E = c->cond[c->cond_layers - 1], ds = state_size(c->dec, c->dec_layers);
  dense_fwd(N, E, ds, emb, PW(m, m->dec_init.kernel), PW(m, m->dec_init.bias), w->dS);
  for (size_t k = 0; k < (size_t)N * ds; k++) w->dS[k] = TANH(w->dS[k]);
}

static void state_bufs_of(state_bufs *s, mv_vae_ws *w) {
  s->h0 = w->s_h0;
  s->c0 = w->s_c0;
  s->dh0 = w->s_dh0;
  s->dc0 = w->s_dc0;
}

/* The batch means of a forward's losses, from the summed reconstruction rsum. */
static void fill_stats(const mv_vae_ws *w, const mv_vae_train_opts *o, double rsum, double accuracy, int64_t sampled,
                       mv_vae_stats *st, mv_real *recon_per_seq, mv_real *kl_per_seq) {
  int B = w->B;
  double klsum = 0, kcsum = 0;
  for (int b = 0; b < B; b++) {
    klsum += w->kl[b];
    double kc = w->kl[b] - o->free_nats;
    kcsum += kc > 0 ? kc : 0;
  }
  if (st) {
    st->recon = rsum / B;
    st->kl = klsum / B;
    st->kl_cost = kcsum / B;
    st->loss = st->recon + o->beta * st->kl_cost;
    st->accuracy = accuracy;
    st->sampled_inputs = sampled;
  }
  if (recon_per_seq) memcpy(recon_per_seq, w->rloss, sizeof(mv_real) * (size_t)B);
  if (kl_per_seq) memcpy(kl_per_seq, w->kl, sizeof(mv_real) * (size_t)B);
}

/* Backward from dz [B, z] (the decoder's gradient) through the heads, the KL
 * term (beta * d kl_cost / B) and the encoder. */
static void heads_encoder_bwd(mv_vae *m, mv_vae_ws *w, const mv_vae_train_opts *o) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, L = w->L;
  mv_real invB = 1.0f / (mv_real)B;
  int Z = c->z, in = m->mu.in;
  mv_real *dmu = w->dmu, *dsp = w->dsp;
  for (int b = 0; b < B; b++) {
    mv_real kw = (w->kl[b] - o->free_nats > 0) ? o->beta * invB : 0.0f;
    for (int q = 0; q < Z; q++) {
      size_t x = (size_t)b * Z + q;
      mv_real sg = w->sigma[x], e = o->eps ? o->eps[x] : 0.0f;
      dmu[x] = w->dz[x] + kw * w->mu[x];
      mv_real dsg = w->dz[x] * e + kw * (sg - 1.0f / sg);
      mv_real s = w->spre[x];
      dsp[x] = dsg * (s > 20.0f ? 1.0f : sigm(s));
    }
  }
  mv_real *denc = w->dx;
  dense_bwd(B, in, Z, w->enc, PW(m, m->mu.kernel), dmu, GW(m, m->mu.kernel), GW(m, m->mu.bias), denc, 0.0f);
  dense_bwd(B, in, Z, w->enc, PW(m, m->sigma.kernel), dsp, GW(m, m->sigma.kernel), GW(m, m->sigma.bias), denc, 1.0f);
  int k = c->enc_layers - 1, He = c->enc[k];
  memset(w->e_dh[k][0], 0, sizeof(mv_real) * (size_t)L * B * He);
  memset(w->e_dh[k][1], 0, sizeof(mv_real) * (size_t)L * B * He);
  for (int b = 0; b < B; b++) {
    memcpy(w->e_dh[k][0] + ((size_t)(L - 1) * B + b) * He, denc + (size_t)b * 2 * He, sizeof(mv_real) * (size_t)He);
    memcpy(w->e_dh[k][1] + (size_t)b * He, denc + (size_t)b * 2 * He + He, sizeof(mv_real) * (size_t)He);
  }
  encoder_bwd(m, w);
}

int mv_vae_forward(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_vae_train_opts *o, mv_vae_stats *st,
                   mv_real *recon_per_seq, mv_real *kl_per_seq, mv_err *err) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, U = c->bars, T = c->steps, L = w->L, N = w->N, V = c->vocab;
  if (c->groove) return mv_seterr(err, MV_EINVAL, "a groove model takes float steps (mv_vae_forward_groove), not labels");
  for (int64_t k = 0; k < (int64_t)B * L; k++)
    if (labels[k] < 0 || labels[k] >= V)
      return mv_seterr(err, MV_EINVAL, "label %d at position %lld is outside 0-%d", labels[k], (long long)k, V - 1);
  if (o->enc_labels)
    for (int64_t k = 0; k < (int64_t)B * L; k++)
      if (o->enc_labels[k] < 0 || o->enc_labels[k] >= V)
        return mv_seterr(err, MV_EINVAL, "encoder label %d at position %lld is outside 0-%d", o->enc_labels[k],
                         (long long)k, V - 1);
  w->drop = 0;
  state_bufs sb;
  state_bufs_of(&sb, w);
  encoder_fwd(m, w, o->enc_labels ? o->enc_labels : labels, NULL);
  heads_fwd(m, w, o->eps, 0);
  conductor_fwd(m, w, sb.h0, sb.c0);
  const mv_real *emb = w->c_h[c->cond_layers - 1]; /* [U, B, E] = [N, E] */
  decoder_init_state(m, w, N, emb);
  /* targets and teacher-forced first inputs of every bar */
  for (int t = 0; t < T; t++)
    for (int u = 0; u < U; u++)
      for (int b = 0; b < B; b++) {
        int n = u * B + b;
        w->target[(size_t)t * N + n] = labels[(size_t)b * L + u * T + t];
      }
  for (int u = 0; u < U; u++)
    for (int b = 0; b < B; b++) w->lab[u * B + b] = u == 0 ? -1 : labels[(size_t)b * L + u * T - 1];
  train_ctx ctx = {o, w->target, B, U, T, V, 0};
  dec_half_job dj = {m, w, N, T, emb, {ctx, ctx}, &sb};
  side_by_side(dec_half, &dj);
  /* losses */
  int64_t correct = 0;
  for (int b = 0; b < B; b++) w->rloss[b] = 0;
  double rsum = 0;
  for (int t = 0; t < T; t++)
    for (int n = 0; n < N; n++) {
      const mv_real *lg = w->logits + ((size_t)t * N + n) * V;
      int tg = w->target[(size_t)t * N + n];
      /* exact log-softmax from the logits for the loss */
      mv_real mx = lg[0];
      for (int k = 1; k < V; k++) mx = lg[k] > mx ? lg[k] : mx;
      double s = 0;
      for (int k = 0; k < V; k++) s += exp((double)lg[k] - mx);
      double lp = (double)lg[tg] - mx - log(s);
      w->rloss[n % B] += (mv_real)-lp;
      rsum += -lp;
      if (argmax_row(lg, V) == tg) correct++;
    }
  fill_stats(w, o, rsum, (double)correct / ((double)B * L), dj.ctx[0].sampled + dj.ctx[1].sampled, st, recon_per_seq,
             kl_per_seq);
  if (!o->backward) return MV_OK;

  /* ---- backward ---- */
  int Ht = c->dec[c->dec_layers - 1], E = c->cond[c->cond_layers - 1], ds = state_size(c->dec, c->dec_layers);
  int64_t R = (int64_t)T * N;
  mv_real *dlog = w->probs; /* dlogits in place: (p - onehot) / B */
  mv_real invB = 1.0f / (mv_real)B;
  for (int64_t r = 0; r < R; r++) {
    mv_real *d = dlog + r * V;
    for (int k = 0; k < V; k++) d[k] *= invB;
    d[w->target[r]] -= invB;
  }
  int top = c->dec_layers - 1;
  dense_bwd(R, Ht, V, w->d_h[top], PW(m, m->out.kernel), dlog, GW(m, m->out.kernel), GW(m, m->out.bias), w->d_dh[top],
            0.0f);
  mv_real *dS = w->dS_grad;
  memset(w->demb, 0, sizeof(mv_real) * (size_t)N * E);
  for (int l = top; l >= 0; l--) {
    int H = c->dec[l], xin = l == 0 ? E : c->dec[l - 1];
    const mv_real *W = PW(m, m->dec[l].kernel);
    mv_real *dW = GW(m, m->dec[l].kernel);
    split_state(w->dS, c->dec, l, N, ds, 0, sb.c0);
    const mv_real *Wl = l == 0 ? W + (size_t)V * G4(H) : W;
    dec_bwd_job bj = {scratch_of(w, 0), T, N, xin, H, Wl, w->d_g[l], w->d_c[l], sb.c0, w->d_dh[l], sb.dh0, sb.dc0};
    side_by_side(dec_bwd_half, &bj);
    layer_bwd_weights(bj.sc, T, N, xin, H, Wl, l == 0 ? dW + (size_t)V * G4(H) : dW, GW(m, m->dec[l].bias), w->d_xh[l],
                      w->dx, l == 0 ? w->lab : NULL, l == 0 ? dW : NULL);
    if (l > 0) {
      memcpy(w->d_dh[l - 1], w->dx, sizeof(mv_real) * (size_t)R * xin);
    } else {
      for (int t = 0; t < T; t++)
        for (size_t k = 0; k < (size_t)N * E; k++) w->demb[k] += w->dx[(size_t)t * N * E + k];
    }
    put_state_grad(dS, N, ds, c->dec, l, sb.dc0, sb.dh0);
  }
  for (size_t k = 0; k < (size_t)N * ds; k++) dS[k] *= 1.0f - w->dS[k] * w->dS[k];
  dense_bwd(N, E, ds, emb, PW(m, m->dec_init.kernel), dS, GW(m, m->dec_init.kernel), GW(m, m->dec_init.bias), w->demb,
            1.0f);
  conductor_bwd(m, w, sb.c0, sb.dh0, sb.dc0);
  heads_encoder_bwd(m, w, o);
  return MV_OK;
}

const mv_real *mv_vae_logits(const mv_vae_ws *w, int b, int s) {
  int u = s / w->T, t = s % w->T, n = u * w->B + b;
  return w->logits + ((size_t)t * w->N + n) * w->V;
}

const mv_real *mv_vae_decode_logits(const mv_vae_ws *w, int b, int t) {
  return w->logits + ((size_t)t * w->B + b) * w->V;
}

const mv_real *mv_vae_mu(const mv_vae_ws *w) { return w->mu; }
const int32_t *mv_vae_inputs(const mv_vae_ws *w) { return w->lab; }
const mv_real *mv_vae_sigma(const mv_vae_ws *w) { return w->sigma; }
const mv_real *mv_vae_z(const mv_vae_ws *w) { return w->z; }

int mv_vae_encode(mv_vae *m, mv_vae_ws *w, const int32_t *labels, mv_real *mu, mv_real *sigma, mv_err *err) {
  int B = w->B, L = w->L, V = m->cfg.vocab, Z = m->cfg.z;
  if (m->cfg.groove) return mv_seterr(err, MV_EINVAL, "a groove model encodes float steps (mv_vae_encode_x)");
  w->drop = 0;
  for (int64_t k = 0; k < (int64_t)B * L; k++)
    if (labels[k] < 0 || labels[k] >= V)
      return mv_seterr(err, MV_EINVAL, "label %d at position %lld is outside 0-%d", labels[k], (long long)k, V - 1);
#ifndef MV_VAE_DOUBLE
  int rc = encoder_infer(m, w, labels, NULL, err);
  if (rc) return rc;
#else
  encoder_fwd(m, w, labels, NULL);
#endif
  heads_fwd(m, w, NULL, 1);
  if (mu) memcpy(mu, w->mu, sizeof(mv_real) * (size_t)B * Z);
  if (sigma) memcpy(sigma, w->sigma, sizeof(mv_real) * (size_t)B * Z);
  return MV_OK;
}

#ifndef MV_VAE_DOUBLE
/* ---- inference on packed weights (mv_infer.c) ------------------------------------------ */
/* The packed decoder of the current parameters, and scratch for N rows. */
static int infer_ready(mv_vae *m, mv_vae_ws *w, int N, mv_err *err) {
  const mv_vae_config *c = &m->cfg;
  if (!m->pack || m->packed != m->version) {
    mv_pack_free(m->pack);
    m->pack = NULL;
    mv_pack_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.vocab = c->vocab;
    sh.E = c->groove ? c->z : c->cond[c->cond_layers - 1]; /* the flat decoder's "bar embedding" is z */
    sh.dense_in = c->groove;
    sh.layers = c->dec_layers;
    mv_pack_src src;
    memset(&src, 0, sizeof src);
    src.init_k = PW(m, m->dec_init.kernel);
    src.init_b = PW(m, m->dec_init.bias);
    for (int l = 0; l < c->dec_layers; l++) {
      sh.H[l] = c->dec[l];
      src.lstm_k[l] = PW(m, m->dec[l].kernel);
      src.lstm_b[l] = PW(m, m->dec[l].bias);
    }
    src.out_k = PW(m, m->out.kernel);
    src.out_b = PW(m, m->out.bias);
    if (!c->groove) {
      sh.z = c->z;
      sh.clayers = c->cond_layers;
      src.cinit_k = PW(m, m->cond_init.kernel);
      src.cinit_b = PW(m, m->cond_init.bias);
      for (int l = 0; l < c->cond_layers; l++) {
        sh.cH[l] = c->cond[l];
        src.clstm_k[l] = PW(m, m->cond[l].kernel);
        src.clstm_b[l] = PW(m, m->cond[l].bias);
      }
    }
    int rc = mv_pack_new(&m->pack, &sh, &src, err);
    if (rc) return rc;
    m->packed = m->version;
  }
  size_t need = mv_infer_scratch(m->pack, N), gneed = mv_infer_gemb_size(m->pack, N);
  if (need > w->iscr_n || gneed > w->igemb_n || !w->ih0) {
    int maxH = max_size(c->dec, c->dec_layers);
    free(w->iscr);
    free(w->igemb);
    free(w->ih0);
    free(w->ic0);
    w->iscr = malloc(need * sizeof(float));
    w->igemb = malloc(gneed * sizeof(float));
    w->ih0 = malloc((size_t)c->dec_layers * w->N * maxH * sizeof(float));
    w->ic0 = malloc((size_t)c->dec_layers * w->N * maxH * sizeof(float));
    w->iscr_n = need;
    w->igemb_n = gneed;
    if (!w->iscr || !w->igemb || !w->ih0 || !w->ic0) {
      w->iscr_n = w->igemb_n = 0;
      return mv_seterr(err, MV_ENOMEM, "out of memory for decoding");
    }
  }
  return MV_OK;
}

/* Bar start for N rows with embeddings emb: w->dS and the per-bar gates. */
static void infer_bar(mv_vae *m, mv_vae_ws *w, int N, const mv_real *emb) {
  mv_infer_bar(m->pack, N, emb, w->dS, w->igemb, w->iscr);
}

/* Decoder step t of the bar for N rows (w->lab[t] set): states into d_h/d_c[t],
 * logits and softmax(logits / temperature) into w->logits/probs[t]. */
static void infer_step(mv_vae *m, mv_vae_ws *w, int N, int t, mv_real temperature, const float *prev) {
  const mv_vae_config *c = &m->cfg;
  int V = c->vocab, ds = state_size(c->dec, c->dec_layers), maxH = max_size(c->dec, c->dec_layers);
  const float *hp[MV_MAXLAYERS], *cp[MV_MAXLAYERS];
  float *h[MV_MAXLAYERS], *cc[MV_MAXLAYERS];
  for (int l = 0; l < c->dec_layers; l++) {
    int H = c->dec[l];
    if (t == 0) {
      hp[l] = split_state(w->dS, c->dec, l, N, ds, 1, w->ih0 + (size_t)l * N * maxH);
      cp[l] = split_state(w->dS, c->dec, l, N, ds, 0, w->ic0 + (size_t)l * N * maxH);
    } else {
      hp[l] = w->d_h[l] + (size_t)(t - 1) * N * H;
      cp[l] = w->d_c[l] + (size_t)(t - 1) * N * H;
    }
    h[l] = w->d_h[l] + (size_t)t * N * H;
    cc[l] = w->d_c[l] + (size_t)t * N * H;
  }
  mv_real *lg = w->logits + (size_t)t * N * V, *pr = w->probs + (size_t)t * N * V;
  if (prev) mv_infer_step_dense(m->pack, N, prev, w->igemb, hp, cp, h, cc, lg, w->iscr);
  else mv_infer_step(m->pack, N, w->lab + (size_t)t * N, w->igemb, hp, cp, h, cc, lg, w->iscr);
  if (temperature > 0) /* argmax needs no probabilities */
    for (int n = 0; n < N; n++) softmax_draw_row(lg + (size_t)n * V, V, pr + (size_t)n * V, temperature);
}
#endif

typedef struct {
  mv_real temperature;
  mv_rng *rngs;
  int32_t *out; /* [B, L] */
  int L, T, V, u;
} decode_ctx;

/* Chooses step t's output (argmax, or a draw from softmax(logits / T) on the
 * sequence's own stream) and feeds it to step t + 1. */
static void decode_next(void *vctx, int t, int N, int n0, int n1, const mv_real *logits, const mv_real *probs,
                        int32_t *lab_next) {
  decode_ctx *x = vctx;
  (void)N;
  for (int n = n0; n < n1; n++) {
    int k = x->temperature > 0 ? draw_from(probs + (size_t)n * x->V, x->V, mv_rng_uniform(&x->rngs[n]))
                               : argmax_row(logits + (size_t)n * x->V, x->V);
    x->out[(size_t)n * x->L + x->u * x->T + t] = k;
    if (lab_next) lab_next[n] = k;
  }
}

int mv_vae_decode(mv_vae *m, mv_vae_ws *w, const mv_real *z, mv_real temperature, mv_rng *rngs, int32_t *labels,
                  mv_err *err) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, U = c->bars, T = c->steps, L = w->L, E = c->cond[c->cond_layers - 1];
  if (c->groove) return mv_seterr(err, MV_EINVAL, "a groove model decodes with mv_vae_decode_groove");
  if (!(temperature >= 0)) return mv_seterr(err, MV_EINVAL, "temperature must be >= 0");
  if (temperature > 0 && !rngs) return mv_seterr(err, MV_EINVAL, "sampling needs random streams");
  w->drop = 0;
  state_bufs sb;
  state_bufs_of(&sb, w);
  mv_real *emb_all = w->emb_copy;
  memcpy(w->z, z, sizeof(mv_real) * (size_t)B * c->z);
  decode_ctx ctx = {temperature, rngs, labels, L, T, c->vocab, 0};
#ifndef MV_VAE_DOUBLE
  /* the conductor on the packed weights too: a row's embeddings are the same
   * bits in any batch (a batched GEMM may round differently with the batch size) */
  int rc = infer_ready(m, w, B, err);
  if (rc) return rc;
  if (mv_infer_conductor(m->pack, B, U, z, emb_all, w->iscr))
    return mv_seterr(err, MV_ENOMEM, "out of memory for decoding");
  for (int u = 0; u < U; u++) {
    infer_bar(m, w, B, emb_all + (size_t)u * B * E);
    for (int b = 0; b < B; b++) w->lab[b] = u == 0 ? -1 : labels[(size_t)b * L + u * T - 1];
    ctx.u = u;
    for (int t = 0; t < T; t++) {
      infer_step(m, w, B, t, temperature, NULL);
      const mv_real *lg = w->logits + (size_t)t * B * c->vocab, *pr = w->probs + (size_t)t * B * c->vocab;
      decode_next(&ctx, t, B, 0, B, lg, pr, t + 1 < T ? w->lab + (size_t)(t + 1) * B : NULL);
    }
  }
  return MV_OK;
#endif
  conductor_fwd(m, w, sb.h0, sb.c0);
  memcpy(emb_all, w->c_h[c->cond_layers - 1], sizeof(mv_real) * (size_t)U * B * E);
  for (int u = 0; u < U; u++) {
    const mv_real *emb = emb_all + (size_t)u * B * E;
    decoder_init_state(m, w, B, emb);
    /* the previous bar's last output carries over (zeros before the first) */
    for (int b = 0; b < B; b++) w->lab[b] = u == 0 ? -1 : labels[(size_t)b * L + u * T - 1];
    ctx.u = u;
    decoder_run(m, w, B, 0, B, T, emb, w->dS, decode_next, &ctx, temperature, sb.h0, sb.c0);
  }
  return MV_OK;
}

/* ---- incremental generation ---------------------------------------------------------- */
struct mv_vae_gen {
  mv_vae *m;
  mv_vae_ws *w; /* batch 1 */
  mv_real temperature;
  mv_rng rng;
  int pos, total;
  int32_t *labels;
  mv_real *emb; /* [U, E] */
};

int mv_vae_gen_new(mv_vae_gen **out, mv_vae *m, const mv_real *z, mv_real temperature, const mv_rng *rng, mv_err *err) {
  *out = NULL;
  if (!(temperature >= 0)) return mv_seterr(err, MV_EINVAL, "temperature must be >= 0");
  const mv_vae_config *c = &m->cfg;
  if (c->groove) return mv_seterr(err, MV_EINVAL, "incremental generation is for categorical models");
  mv_vae_gen *g = calloc(1, sizeof *g);
  if (!g) return mv_seterr(err, MV_ENOMEM, "out of memory");
  int rc = mv_vae_ws_new(&g->w, m, 1, err);
  int E = c->cond[c->cond_layers - 1];
  g->total = c->bars * c->steps;
  g->labels = calloc((size_t)g->total, sizeof *g->labels);
  g->emb = calloc((size_t)c->bars * E, sizeof *g->emb);
  if (rc || !g->labels || !g->emb) {
    mv_vae_gen_free(g);
    return rc ? rc : mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  g->m = m;
  g->temperature = temperature;
  if (rng) g->rng = *rng;
  memcpy(g->w->z, z, sizeof(mv_real) * (size_t)c->z);
#ifndef MV_VAE_DOUBLE
  rc = infer_ready(m, g->w, 1, err);
  if (!rc && mv_infer_conductor(m->pack, 1, c->bars, z, g->emb, g->w->iscr))
    rc = mv_seterr(err, MV_ENOMEM, "out of memory");
  if (rc) {
    mv_vae_gen_free(g);
    return rc;
  }
#else
  state_bufs sb;
  state_bufs_of(&sb, g->w);
  conductor_fwd(m, g->w, sb.h0, sb.c0);
  memcpy(g->emb, g->w->c_h[c->cond_layers - 1], sizeof(mv_real) * (size_t)c->bars * E);
#endif
  *out = g;
  return MV_OK;
}

void mv_vae_gen_free(mv_vae_gen *g) {
  if (!g) return;
  mv_vae_ws_free(g->w);
  free(g->labels);
  free(g->emb);
  free(g);
}

/* The same arithmetic as mv_vae_decode at batch 1, one step at a time. */
int mv_vae_gen_step(mv_vae_gen *g, int n) {
  const mv_vae_config *c = &g->m->cfg;
  int T = c->steps, V = c->vocab, E = c->cond[c->cond_layers - 1], made = 0;
  mv_vae_ws *w = g->w;
  state_bufs sb;
  state_bufs_of(&sb, w);
  while (made < n && g->pos < g->total) {
    int u = g->pos / T, t = g->pos % T;
    const mv_real *emb = g->emb + (size_t)u * E;
#ifndef MV_VAE_DOUBLE
    mv_err err;
    if (infer_ready(g->m, w, 1, &err)) break; /* out of memory: no more steps */
    if (t == 0) infer_bar(g->m, w, 1, emb);
#else
    if (t == 0) decoder_init_state(g->m, w, 1, emb);
#endif
    if (t == 0) w->lab[0] = u == 0 ? -1 : g->labels[g->pos - 1];
    else w->lab[t] = g->labels[g->pos - 1];
#ifndef MV_VAE_DOUBLE
    infer_step(g->m, w, 1, t, g->temperature, NULL);
#else
    decoder_step(g->m, w, 1, 0, 1, t, emb, w->dS, g->temperature, sb.h0, sb.c0);
#endif
    const mv_real *lg = w->logits + (size_t)t * V, *pr = w->probs + (size_t)t * V;
    g->labels[g->pos] =
        g->temperature > 0 ? draw_from(pr, V, mv_rng_uniform(&g->rng)) : argmax_row(lg, V);
    g->pos++;
    made++;
  }
  return made;
}

int mv_vae_gen_pos(const mv_vae_gen *g) { return g->pos; }
int mv_vae_gen_total(const mv_vae_gen *g) { return g->total; }
const int32_t *mv_vae_gen_labels(const mv_vae_gen *g) { return g->labels; }

/* ---- GrooVAE: the flat decoder over 27-float steps ------------------------------------ */
static void make_masks(mv_vae *m, mv_vae_ws *w, mv_real keep, mv_rng *r) {
  const mv_vae_config *c = &m->cfg;
  mv_real scale = 1.0f / keep;
  for (int k = 0; k < c->enc_layers; k++)
    for (int d = 0; d < 2; d++) {
      size_t n = (size_t)w->L * w->B * m->enc_fw[k].in;
      for (size_t q = 0; q < n; q++) w->e_mask[k][d][q] = mv_rng_uniform(r) < keep ? scale : 0.0f;
    }
  for (int l = 0; l < c->dec_layers; l++) {
    size_t n = (size_t)w->T * w->N * m->dec[l].in;
    for (size_t q = 0; q < n; q++) w->d_mask[l][q] = mv_rng_uniform(r) < keep ? scale : 0.0f;
  }
}

/* The groove outputs of N rows of logits [N, V]: sigmoid hits and velocities, tanh offsets. */
static void groove_act(const mv_real *lg, mv_real *out, int N, int V) {
  int C = V / 3;
  for (int n = 0; n < N; n++)
    for (int k = 0; k < C; k++) {
      size_t x = (size_t)n * V + k;
      out[x] = sigm(lg[x]);
      out[x + C] = sigm(lg[x + C]);
      out[x + 2 * C] = TANH(lg[x + 2 * C]);
    }
}

/* One flat-decoder step t over the N rows: layer 0's input is [prev row n (at
 * prev + n * stride; zeros when prev is NULL), z]; the stack starts from the
 * state w->dS (tanh'd) at t = 0. Fills logits and the activated outputs. */
static void flat_step(mv_vae *m, mv_vae_ws *w, int t, const mv_real *prev, size_t stride, mv_real *h0buf,
                      mv_real *c0buf) {
  const mv_vae_config *c = &m->cfg;
  int N = w->N, V = c->vocab, Z = c->z, ds = state_size(c->dec, c->dec_layers);
  for (int l = 0; l < c->dec_layers; l++) {
    int H = c->dec[l], xin = m->dec[l].in, K = xin + H;
    mv_real *xh = w->d_xh[l] + (size_t)t * N * K;
    const mv_real *hp, *cp;
    if (t == 0) {
      hp = split_state(w->dS, c->dec, l, N, ds, 1, h0buf);
      cp = split_state(w->dS, c->dec, l, N, ds, 0, c0buf + (size_t)l * N * H);
    } else {
      hp = w->d_h[l] + (size_t)(t - 1) * N * H;
      cp = w->d_c[l] + (size_t)(t - 1) * N * H;
    }
    for (int n = 0; n < N; n++) {
      mv_real *x = xh + (size_t)n * K;
      if (l > 0) memcpy(x, w->d_h[l - 1] + ((size_t)t * N + n) * xin, sizeof(mv_real) * (size_t)xin);
      else {
        if (prev) memcpy(x, prev + (size_t)n * stride, sizeof(mv_real) * (size_t)V);
        else memset(x, 0, sizeof(mv_real) * (size_t)V);
        memcpy(x + V, w->z + (size_t)n * Z, sizeof(mv_real) * (size_t)Z);
      }
      if (w->drop) drop_apply(x, w->d_mask[l] + ((size_t)t * N + n) * xin, xin);
      memcpy(x + xin, hp + (size_t)n * H, sizeof(mv_real) * (size_t)H);
    }
    lstm_fwd_step(N, K, H, PW(m, m->dec[l].kernel), PW(m, m->dec[l].bias), xh, NULL, NULL, cp,
                  w->d_g[l] + (size_t)t * N * G4(H), w->d_c[l] + (size_t)t * N * H, w->d_h[l] + (size_t)t * N * H);
  }
  int Ht = c->dec[c->dec_layers - 1];
  mv_real *lg = w->logits + (size_t)t * N * V, *out = w->probs + (size_t)t * N * V;
  dense_fwd(N, Ht, V, w->d_h[c->dec_layers - 1] + (size_t)t * N * Ht, PW(m, m->out.kernel), PW(m, m->out.bias), lg);
  groove_act(lg, out, N, V);
}

static void flat_init_state(mv_vae *m, mv_vae_ws *w) {
  int ds = state_size(m->cfg.dec, m->cfg.dec_layers);
  dense_fwd(w->N, m->cfg.z, ds, w->z, PW(m, m->dec_init.kernel), PW(m, m->dec_init.bias), w->dS);
  for (size_t k = 0; k < (size_t)w->N * ds; k++) w->dS[k] = TANH(w->dS[k]);
}

static int check_groove(const mv_vae *m, const mv_real *x, int64_t nx, const mv_real *target, int64_t nt, mv_err *err) {
  if (!m->cfg.groove) return mv_seterr(err, MV_EINVAL, "not a groove model");
  for (int64_t k = 0; k < nx; k++)
    if (!isfinite(x[k])) return mv_seterr(err, MV_EINVAL, "input value %lld is not finite", (long long)k);
  for (int64_t k = 0; target && k < nt; k++)
    if (!isfinite(target[k])) return mv_seterr(err, MV_EINVAL, "target value %lld is not finite", (long long)k);
  return MV_OK;
}

int mv_vae_forward_groove(mv_vae *m, mv_vae_ws *w, const mv_real *x, const mv_real *target, const mv_vae_train_opts *o,
                          mv_vae_stats *st, mv_real *recon_per_seq, mv_real *kl_per_seq, mv_err *err) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, L = w->L, N = w->N, V = c->vocab, C = V / 3, Z = c->z;
  int rc = check_groove(m, x, (int64_t)B * L * c->input_depth, target, (int64_t)B * L * V, err);
  if (rc) return rc;
  w->drop = o->keep_prob > 0 && o->keep_prob < 1;
  if (w->drop && !o->dropout) return mv_seterr(err, MV_EINVAL, "dropout (keep_prob < 1) needs a random stream");
  if (w->drop) make_masks(m, w, o->keep_prob, o->dropout);
  state_bufs sb;
  state_bufs_of(&sb, w);
  encoder_fwd(m, w, NULL, x);
  heads_fwd(m, w, o->eps, 0);
  flat_init_state(m, w);
  for (int t = 0; t < L; t++)
    flat_step(m, w, t, t ? target + (size_t)(t - 1) * V : NULL, (size_t)L * V, sb.h0, sb.c0);
  /* losses; the logits become their gradients (over the batch mean) */
  const mv_real eps7 = 1e-7f;
  mv_real invB = 1.0f / (mv_real)B;
  double rsum = 0;
  int64_t correct = 0;
  for (int b = 0; b < B; b++) w->rloss[b] = 0;
  for (int t = 0; t < L; t++)
    for (int n = 0; n < N; n++) {
      const mv_real *tg = target + ((size_t)n * L + t) * V;
      mv_real *lg = w->logits + ((size_t)t * N + n) * V;
      const mv_real *out = w->probs + ((size_t)t * N + n) * V;
      double r = 0;
      for (int k = 0; k < C; k++) {
        mv_real h = tg[k], p = out[k], v = out[C + k], q = out[2 * C + k];
        r += -(double)h * log((double)p + eps7) - (1.0 - h) * log(1.0 - p + eps7);
        r += (double)(tg[C + k] - v) * (tg[C + k] - v) + (double)(tg[2 * C + k] - q) * (tg[2 * C + k] - q);
        correct += (lg[k] > 0) == (h > 0.5f);
        lg[k] = invB * (-h / (p + eps7) + (1.0f - h) / (1.0f - p + eps7)) * p * (1.0f - p);
        lg[C + k] = invB * -2.0f * (tg[C + k] - v) * v * (1.0f - v);
        lg[2 * C + k] = invB * -2.0f * (tg[2 * C + k] - q) * (1.0f - q * q);
      }
      w->rloss[n] += (mv_real)r;
      rsum += r;
    }
  fill_stats(w, o, rsum, (double)correct / ((double)B * L * C), 0, st, recon_per_seq, kl_per_seq);
  if (!o->backward) return MV_OK;

  int top = c->dec_layers - 1, Ht = c->dec[top], ds = state_size(c->dec, c->dec_layers);
  int64_t R = (int64_t)L * N;
  dense_bwd(R, Ht, V, w->d_h[top], PW(m, m->out.kernel), w->logits, GW(m, m->out.kernel), GW(m, m->out.bias),
            w->d_dh[top], 0.0f);
  mv_real *dS = w->dS_grad;
  memset(w->dz, 0, sizeof(mv_real) * (size_t)B * Z);
  for (int l = top; l >= 0; l--) {
    int H = c->dec[l], xin = m->dec[l].in;
    split_state(w->dS, c->dec, l, N, ds, 0, sb.c0);
    layer_bwd(scratch_of(w, 0), L, N, xin, H, PW(m, m->dec[l].kernel), GW(m, m->dec[l].kernel), GW(m, m->dec[l].bias), w->d_xh[l],
              w->d_g[l], w->d_c[l], sb.c0, w->d_dh[l], w->dx, sb.dh0, sb.dc0, 0, NULL, NULL);
    if (w->drop) drop_apply(w->dx, w->d_mask[l], (int)(R * xin));
    if (l > 0) {
      memcpy(w->d_dh[l - 1], w->dx, sizeof(mv_real) * (size_t)R * xin);
    } else {
      for (int t = 0; t < L; t++)
        for (int n = 0; n < N; n++) {
          const mv_real *d = w->dx + ((size_t)t * N + n) * xin + V;
          for (int q = 0; q < Z; q++) w->dz[(size_t)n * Z + q] += d[q];
        }
    }
    put_state_grad(dS, N, ds, c->dec, l, sb.dc0, sb.dh0);
  }
  for (size_t k = 0; k < (size_t)N * ds; k++) dS[k] *= 1.0f - w->dS[k] * w->dS[k];
  dense_bwd(N, Z, ds, w->z, PW(m, m->dec_init.kernel), dS, GW(m, m->dec_init.kernel), GW(m, m->dec_init.bias), w->dz,
            1.0f);
  heads_encoder_bwd(m, w, o);
  return MV_OK;
}

const mv_real *mv_vae_outputs(const mv_vae_ws *w, int b, int s) { return w->probs + ((size_t)s * w->N + b) * w->V; }

const mv_real *mv_vae_dropout_masks(const mv_vae_ws *w, int enc, int l) {
  if (!w->drop || l < 0 || l >= MV_MAXLAYERS) return NULL;
  return enc ? w->e_mask[l][enc - 1 ? 1 : 0] : w->d_mask[l];
}

int mv_vae_encode_x(mv_vae *m, mv_vae_ws *w, const mv_real *x, mv_real *mu, mv_real *sigma, mv_err *err) {
  int B = w->B, Z = m->cfg.z;
  int rc = check_groove(m, x, (int64_t)B * w->L * m->cfg.input_depth, NULL, 0, err);
  if (rc) return rc;
  w->drop = 0;
#ifndef MV_VAE_DOUBLE
  rc = encoder_infer(m, w, NULL, x, err);
  if (rc) return rc;
#else
  encoder_fwd(m, w, NULL, x);
#endif
  heads_fwd(m, w, NULL, 1);
  if (mu) memcpy(mu, w->mu, sizeof(mv_real) * (size_t)B * Z);
  if (sigma) memcpy(sigma, w->sigma, sizeof(mv_real) * (size_t)B * Z);
  return MV_OK;
}

int mv_vae_decode_groove(mv_vae *m, mv_vae_ws *w, const mv_real *z, mv_real temperature, mv_rng *rngs,
                         const mv_real *hits, mv_real *out, mv_real *hit_prob, mv_err *err) {
  const mv_vae_config *c = &m->cfg;
  int B = w->B, L = w->L, N = w->N, V = c->vocab, C = V / 3;
  int rc = check_groove(m, z, (int64_t)B * c->z, NULL, 0, err);
  if (rc) return rc;
  if (!(temperature >= 0)) return mv_seterr(err, MV_EINVAL, "temperature must be >= 0");
  if (temperature > 0 && !rngs) return mv_seterr(err, MV_EINVAL, "sampling needs random streams");
  w->drop = 0;
  state_bufs sb;
  state_bufs_of(&sb, w);
  memcpy(w->z, z, sizeof(mv_real) * (size_t)B * c->z);
#ifndef MV_VAE_DOUBLE
  /* on the packed weights, as categorical decoding: the same bits alone or in any batch */
  rc = infer_ready(m, w, N, err);
  if (rc) return rc;
  mv_infer_bar(m->pack, N, w->z, w->dS, w->igemb, w->iscr);
  memset(w->gprev, 0, sizeof(mv_real) * (size_t)N * V);
#else
  flat_init_state(m, w);
#endif
  for (int t = 0; t < L; t++) {
#ifndef MV_VAE_DOUBLE
    infer_step(m, w, N, t, 0.0f, w->gprev);
    groove_act(w->logits + (size_t)t * N * V, w->probs + (size_t)t * N * V, N, V);
#else
    flat_step(m, w, t, t ? w->gprev : NULL, (size_t)V, sb.h0, sb.c0);
#endif
    const mv_real *lg = w->logits + (size_t)t * N * V, *act = w->probs + (size_t)t * N * V;
    for (int n = 0; n < N; n++) {
      mv_real *g = w->gprev + (size_t)n * V, *o = out + ((size_t)n * L + t) * V;
      for (int k = 0; k < C; k++) {
        mv_real l = lg[(size_t)n * V + k];
        if (hit_prob) hit_prob[((size_t)n * L + t) * C + k] = sigm(l);
        int hit = hits ? hits[((size_t)n * L + t) * C + k] > 0.5f
                  : temperature > 0 ? mv_rng_uniform(&rngs[n]) < sigm(l / temperature)
                                    : l > 0;
        g[k] = hit ? 1.0f : 0.0f;
      }
      memcpy(g + C, act + (size_t)n * V + C, sizeof(mv_real) * (size_t)(2 * C));
      memcpy(o, g, sizeof(mv_real) * (size_t)V);
    }
  }
  return MV_OK;
}

/* ---- Adam -------------------------------------------------------------------------------- */
/* Adam over the parameters in two halves, side by side when two threads are allowed: the sums of
 * squares of the two halves (added in that order whatever the thread count), then the update,
 * elementwise (the same bits either way). */
typedef struct {
  mv_vae *m;
  const mv_adam_opts *o;
  int zero;
  mv_real scale, lr_t;
  double ss[2];
} adam_job;

static void adam_sumsq(void *vctx, int part) {
  adam_job *j = vctx;
  int64_t k0, k1;
  half_range(j->m->nfloats, part, &k0, &k1);
  const mv_real *g = j->m->grads;
  double ss = 0;
  for (int64_t k = k0; k < k1; k++) ss += (double)g[k] * g[k];
  j->ss[part] = ss;
}

MV_ISA_CLONES static void adam_update(mv_real *restrict p, mv_real *restrict am, mv_real *restrict av,
                                      const mv_real *restrict grads, int64_t k0, int64_t k1, int zero, mv_real scale,
                                      mv_real lr_t, mv_real beta1, mv_real beta2, mv_real eps) {
  for (int64_t k = k0; k < k1; k++) {
    mv_real g = zero ? 0.0f : grads[k] * scale; /* 0 * NaN would be NaN */
    am[k] = beta1 * am[k] + (1.0f - beta1) * g;
    av[k] = beta2 * av[k] + (1.0f - beta2) * g * g;
    p[k] -= lr_t * am[k] / (SQRT(av[k]) + eps);
  }
}

static void adam_part(void *vctx, int part) {
  adam_job *j = vctx;
  mv_vae *m = j->m;
  int64_t k0, k1;
  half_range(m->nfloats, part, &k0, &k1);
  adam_update(m->params, m->adam_m, m->adam_v, m->grads, k0, k1, j->zero, j->scale, j->lr_t, j->o->beta1, j->o->beta2,
              j->o->eps);
}

int mv_vae_adam_step(mv_vae *m, const mv_adam_opts *o, double *grad_norm, int *skipped, mv_err *err) {
  if (!m->adam_m) {
    m->adam_m = calloc((size_t)m->nfloats, sizeof(mv_real));
    m->adam_v = calloc((size_t)m->nfloats, sizeof(mv_real));
    if (!m->adam_m || !m->adam_v) return mv_seterr(err, MV_ENOMEM, "out of memory for Adam moments");
  }
  adam_job j = {m, o, 0, 0.0f, 0.0f, {0, 0}};
  side_by_side(adam_sumsq, &j);
  double norm = sqrt(j.ss[0] + j.ss[1]);
  j.zero = !isfinite(norm) || norm >= o->zero_above;
  j.scale = j.zero ? 0.0f : (norm > o->clip_norm ? (mv_real)(o->clip_norm / norm) : 1.0f);
  m->adam_t++;
  m->version++;
  double b1t = pow(o->beta1, (double)m->adam_t), b2t = pow(o->beta2, (double)m->adam_t);
  j.lr_t = (mv_real)(o->lr * sqrt(1.0 - b2t) / (1.0 - b1t));
  side_by_side(adam_part, &j);
  if (grad_norm) *grad_norm = norm;
  if (skipped) *skipped = j.zero;
  return MV_OK;
}
