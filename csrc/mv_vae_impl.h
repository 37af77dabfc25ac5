/* mv_vae_impl.h -- private to the model's sources: the arithmetic of the two builds (`mv_real`
 * is float, or double under MV_VAE_DOUBLE for the gradient checks), the workspace, and the
 * functions the files share. Not installed; the API is mv_vae.h.
 *   mv_vae.c     configuration, parameters, workspace, shared state helpers, packed inference glue
 *   mv_lstm.c    LSTM and dense layers, forward and backward (the primitives)
 *   mv_encoder.c the bidirectional encoder and the mu / sigma heads
 *   mv_hier.c    the hierarchical model: conductor, bar decoder, training forward, decoding, generators
 *   mv_groove.c  GrooVAE's flat decoder over 27-float steps
 *   mv_adam.c    clipping and Adam */
#ifndef MV_VAE_IMPL_H
#define MV_VAE_IMPL_H

#include "mv_vae.h"
#ifndef MV_VAE_DOUBLE
#include "mv_infer.h"
#include "mv_pool.h"
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
static inline void gemm_f64(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha, const double *a, int64_t lda,
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

/* Backward through one layer: dh [T, N, H] (gradients on its outputs) in;
 * accumulates dW (the same rows as W) and db; dx [T, N, xin] (if given) gets
 * the gradients on the x parts; dh0/dc0 (if given) on the initial state.
 * Gather rows (lab, dWg) get their share too. */
typedef struct {
  mv_real *dG, *dhrec, *dcar, *tmp; /* [T*N, 4H], [N, H], [N, H], [N, 4H] */
} bwd_scratch;

/* initial-state scratch, from the workspace */
typedef struct {
  mv_real *h0, *c0, *dh0, *dc0;
} state_bufs;

/* Shared internal functions get a per-build name, so that the float core and the double
 * test build (mv_vae64) link into one program. */
#ifdef MV_VAE_DOUBLE
#define MV_VAE_FN(n) mv_vae64__##n
#else
#define MV_VAE_FN(n) mv_vae__##n
#endif
#define state_size MV_VAE_FN(state_size)
#define max_size MV_VAE_FN(max_size)
#define half_range MV_VAE_FN(half_range)
#define side_by_side MV_VAE_FN(side_by_side)
#define split_state MV_VAE_FN(split_state)
#define put_state_grad MV_VAE_FN(put_state_grad)
#define state_bufs_of MV_VAE_FN(state_bufs_of)
#define fill_stats MV_VAE_FN(fill_stats)
#define lstm_fwd_step MV_VAE_FN(lstm_fwd_step)
#define layer_fwd MV_VAE_FN(layer_fwd)
#define scratch_of MV_VAE_FN(scratch_of)
#define layer_bwd_rows MV_VAE_FN(layer_bwd_rows)
#define layer_bwd_weights MV_VAE_FN(layer_bwd_weights)
#define layer_bwd MV_VAE_FN(layer_bwd)
#define dense_fwd MV_VAE_FN(dense_fwd)
#define dense_bwd MV_VAE_FN(dense_bwd)
#define drop_apply MV_VAE_FN(drop_apply)
#define encoder_fwd MV_VAE_FN(encoder_fwd)
#define encoder_infer MV_VAE_FN(encoder_infer)
#define heads_fwd MV_VAE_FN(heads_fwd)
#define heads_encoder_bwd MV_VAE_FN(heads_encoder_bwd)
#define encode_rows MV_VAE_FN(encode_rows)
#define infer_ready MV_VAE_FN(infer_ready)
#define infer_bar MV_VAE_FN(infer_bar)
#define infer_step MV_VAE_FN(infer_step)

/* mv_vae.c */
int state_size(const int *sizes, int n);
int max_size(const int *sizes, int n);
void half_range(int64_t n, int part, int64_t *k0, int64_t *k1);
void side_by_side(void (*fn)(void *ctx, int d), void *ctx);
mv_real *split_state(mv_real *S, const int *sizes, int l, int B, int total, int which /*0 c, 1 h*/, mv_real *buf);
void put_state_grad(mv_real *dS, int N, int ds, const int *Hs, int l, const mv_real *dc0, const mv_real *dh0);
void state_bufs_of(state_bufs *s, mv_vae_ws *w);
void fill_stats(const mv_vae_ws *w, const mv_vae_train_opts *o, double rsum, double accuracy, int64_t sampled,
                mv_vae_stats *st, mv_real *recon_per_seq, mv_real *kl_per_seq);
#ifndef MV_VAE_DOUBLE
int infer_ready(mv_vae *m, mv_vae_ws *w, int N, mv_err *err);
void infer_bar(mv_vae *m, mv_vae_ws *w, int N, const mv_real *emb);
void infer_step(mv_vae *m, mv_vae_ws *w, int N, int t, mv_real temperature, const float *prev);
#endif

/* mv_lstm.c */
void lstm_fwd_step(int N, int K, int H, const mv_real *W, const mv_real *b, const mv_real *xh, const mv_real *Wg,
                   const int32_t *lab, const mv_real *c_prev, mv_real *g, mv_real *c, mv_real *h);
void layer_fwd(int T, int N, int xin, int H, const mv_real *W, const mv_real *b, mv_real *xh, mv_real *g, mv_real *c,
               mv_real *h, const mv_real *h0, const mv_real *c0, int reverse);
bwd_scratch scratch_of(mv_vae_ws *w, int second);
void layer_bwd_rows(bwd_scratch sc, int T, int N, int n0, int n1, int xin, int H, const mv_real *W, const mv_real *g,
                    const mv_real *c, const mv_real *c0, const mv_real *dh, mv_real *dh0, mv_real *dc0,
                    int reverse);
void layer_bwd_weights(bwd_scratch sc, int T, int N, int xin, int H, const mv_real *W, mv_real *dW, mv_real *db,
                       const mv_real *xh, mv_real *dx, const int32_t *lab, mv_real *dWg);
void layer_bwd(bwd_scratch sc, int T, int N, int xin, int H, const mv_real *W, mv_real *dW, mv_real *db,
               const mv_real *xh, const mv_real *g, const mv_real *c, const mv_real *c0, const mv_real *dh, mv_real *dx,
               mv_real *dh0, mv_real *dc0, int reverse, const int32_t *lab, mv_real *dWg);
void dense_fwd(int64_t R, int in, int out, const mv_real *x, const mv_real *W, const mv_real *b, mv_real *y);
void dense_bwd(int64_t R, int in, int out, const mv_real *x, const mv_real *W, const mv_real *dy, mv_real *dW, mv_real *db,
               mv_real *dx, mv_real dx_beta);
void drop_apply(mv_real *x, const mv_real *mask, int n);

/* mv_encoder.c */
void encoder_fwd(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_real *xf);
void heads_fwd(mv_vae *m, mv_vae_ws *w, const mv_real *eps, int rows);
void heads_encoder_bwd(mv_vae *m, mv_vae_ws *w, const mv_vae_train_opts *o);
int encode_rows(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_real *xf, mv_real *mu, mv_real *sigma,
                mv_err *err);
#ifndef MV_VAE_DOUBLE
int encoder_infer(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_real *xf, mv_err *err);
#endif

#endif
