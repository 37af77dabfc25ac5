/* mv_encoder.c -- the bidirectional LSTM encoder and the mu / softplus-sigma heads: training
 * (through BLAS, dropout for groove models) and inference (on packed recurrent weights). */
#include "mv_vae_impl.h"

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

void encoder_fwd(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_real *xf) {
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

int encoder_infer(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_real *xf, mv_err *err) {
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
void heads_fwd(mv_vae *m, mv_vae_ws *w, const mv_real *eps, int rows) {
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

/* Backward from dz [B, z] (the decoder's gradient) through the heads, the KL
 * term (beta * d kl_cost / B) and the encoder. */
void heads_encoder_bwd(mv_vae *m, mv_vae_ws *w, const mv_vae_train_opts *o) {
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

/* Encoding at inference (mv_vae_encode, mv_vae_encode_x): labels or float steps xf through the
 * encoder (on the packed recurrent weights; the training arithmetic in the double build) and the
 * heads at z = mu; mu and sigma [B, z] out (either may be NULL). */
int encode_rows(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_real *xf, mv_real *mu, mv_real *sigma,
                mv_err *err) {
  int B = w->B, Z = m->cfg.z;
#ifndef MV_VAE_DOUBLE
  int rc = encoder_infer(m, w, labels, xf, err);
  if (rc) return rc;
#else
  (void)err;
  encoder_fwd(m, w, labels, xf);
#endif
  heads_fwd(m, w, NULL, 1);
  if (mu) memcpy(mu, w->mu, sizeof(mv_real) * (size_t)B * Z);
  if (sigma) memcpy(sigma, w->sigma, sizeof(mv_real) * (size_t)B * Z);
  return MV_OK;
}
