/* mv_vae.c -- the MusicVAE model's frame: configuration, parameters in Magenta's names, the
 * workspace, the initial-state helpers both decoders share, and the glue to the packed-weight
 * inference kernels (mv_infer.c). The model's parts are in mv_lstm.c, mv_encoder.c, mv_hier.c,
 * mv_groove.c and mv_adam.c (mv_vae_impl.h lists them).
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
#include "mv_vae_impl.h"

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

int state_size(const int *sizes, int n) {
  int s = 0;
  for (int l = 0; l < n; l++) s += 2 * sizes[l];
  return s;
}

int max_size(const int *sizes, int n) {
  int s = 0;
  for (int l = 0; l < n; l++) s = sizes[l] > s ? sizes[l] : s;
  return s;
}

/* rows [k0, k1) of n for part 0 or 1 of two halves */
void half_range(int64_t n, int part, int64_t *k0, int64_t *k1) {
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

/* fn(ctx, 0) and fn(ctx, 1): side by side with single-threaded BLAS when two or more threads are
 * allowed, else one after the other */
void side_by_side(void (*fn)(void *ctx, int d), void *ctx) {
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

/* ---- conductor ------------------------------------------------------------------------ */
mv_real *split_state(mv_real *S, const int *sizes, int l, int B, int total, int which /*0 c, 1 h*/, mv_real *buf) {
  int off = 0;
  for (int q = 0; q < l; q++) off += 2 * sizes[q];
  int H = sizes[l];
  for (int b = 0; b < B; b++)
    memcpy(buf + (size_t)b * H, S + (size_t)b * total + off + which * H, sizeof(mv_real) * (size_t)H);
  return buf;
}

/* Layer l's initial-state gradients into the flat state gradient dS [N, ds]
 * (magenta's order [c0, h0, c1, h1, ...]; sizes Hs). */
void put_state_grad(mv_real *dS, int N, int ds, const int *Hs, int l, const mv_real *dc0, const mv_real *dh0) {
  int off = 0, H = Hs[l];
  for (int q = 0; q < l; q++) off += 2 * Hs[q];
  for (int n = 0; n < N; n++) {
    memcpy(dS + (size_t)n * ds + off, dc0 + (size_t)n * H, sizeof(mv_real) * (size_t)H);
    memcpy(dS + (size_t)n * ds + off + H, dh0 + (size_t)n * H, sizeof(mv_real) * (size_t)H);
  }
}

void state_bufs_of(state_bufs *s, mv_vae_ws *w) {
  s->h0 = w->s_h0;
  s->c0 = w->s_c0;
  s->dh0 = w->s_dh0;
  s->dc0 = w->s_dc0;
}

/* The batch means of a forward's losses, from the summed reconstruction rsum. */
void fill_stats(const mv_vae_ws *w, const mv_vae_train_opts *o, double rsum, double accuracy, int64_t sampled,
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

#ifndef MV_VAE_DOUBLE
/* ---- inference on packed weights (mv_infer.c) ------------------------------------------ */
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

/* The packed decoder of the current parameters, and scratch for N rows. */
int infer_ready(mv_vae *m, mv_vae_ws *w, int N, mv_err *err) {
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
void infer_bar(mv_vae *m, mv_vae_ws *w, int N, const mv_real *emb) {
  mv_infer_bar(m->pack, N, emb, w->dS, w->igemb, w->iscr);
}

/* Decoder step t of the bar for N rows (w->lab[t] set): states into d_h/d_c[t],
 * logits and softmax(logits / temperature) into w->logits/probs[t]. */
void infer_step(mv_vae *m, mv_vae_ws *w, int N, int t, mv_real temperature, const float *prev) {
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
