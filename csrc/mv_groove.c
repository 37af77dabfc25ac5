/* mv_groove.c -- GrooVAE: the flat decoder over 27-float steps (hits, velocities, offsets),
 * its training forward and backward with dropout, encoding and decoding. */
#include "mv_vae_impl.h"

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
  int rc = check_groove(m, x, (int64_t)w->B * w->L * m->cfg.input_depth, NULL, 0, err);
  if (rc) return rc;
  w->drop = 0;
  return encode_rows(m, w, NULL, x, mu, sigma, err);
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
