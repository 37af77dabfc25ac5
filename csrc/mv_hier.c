/* mv_hier.c -- the hierarchical model: conductor, bar decoder, the training forward and
 * backward, encoding and decoding of labels, and the incremental generator. */
#include "mv_vae_impl.h"

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
  int B = w->B, L = w->L, V = m->cfg.vocab;
  if (m->cfg.groove) return mv_seterr(err, MV_EINVAL, "a groove model encodes float steps (mv_vae_encode_x)");
  w->drop = 0;
  for (int64_t k = 0; k < (int64_t)B * L; k++)
    if (labels[k] < 0 || labels[k] >= V)
      return mv_seterr(err, MV_EINVAL, "label %d at position %lld is outside 0-%d", labels[k], (long long)k, V - 1);
  return encode_rows(m, w, labels, NULL, mu, sigma, err);
}

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
#else
  /* the double build (gradient checks and the reference of tests/c/test_infer.c): the training
   * arithmetic, step by step */
  state_bufs sb;
  state_bufs_of(&sb, w);
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
#endif
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
