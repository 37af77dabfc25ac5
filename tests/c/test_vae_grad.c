/* Gradient checks of the whole model, component by component, in double
 * precision (the same source compiled with MV_VAE_DOUBLE): central
 * differences against the analytic gradient of every parameter tensor, in
 * configurations that exercise each part: bidirectional and stacked LSTMs,
 * heads with a fixed eps, KL with and without free bits, the conductor, the
 * bar decoder with the carried previous label, projection + cross-entropy, and
 * scheduled sampling with fixed coins and draws. */
#include <stdlib.h>
#include <string.h>

#include "mv_vae.h"
#include "mvtest.h"

typedef struct {
  const char *what;
  int layers;
  double p_sample, free_nats, beta;
  int use_eps;
} scenario;

static double loss_of(mv_vae *m, mv_vae_ws *w, const int32_t *lab, mv_vae_train_opts *o) {
  mv_vae_stats st;
  mv_err err;
  o->backward = 0;
  if (mv_vae_forward(m, w, lab, o, &st, NULL, NULL, &err)) return NAN;
  return st.loss;
}

static int same_inputs(const int32_t *a, const int32_t *b, size_t n) { return memcmp(a, b, n * sizeof *a) == 0; }

static void run(const scenario *sc, double *worst_out) {
  mv_vae_config c;
  memset(&c, 0, sizeof c);
  c.input_depth = 6;
  c.vocab = 32;
  c.z = 5;
  c.bars = 3;
  c.steps = 4;
  c.enc_layers = c.cond_layers = c.dec_layers = sc->layers;
  int es[2] = {6, 5}, cs[2] = {5, 4}, ds[2] = {7, 6};
  for (int l = 0; l < sc->layers; l++) c.enc[l] = es[l], c.cond[l] = cs[l], c.dec[l] = ds[l];
  mv_vae *m;
  mv_vae_ws *w;
  mv_err err;
  CHECK(mv_vae_new(&m, &c, &err) == MV_OK);
  int B = 3, L = c.bars * c.steps;
  CHECK(mv_vae_ws_new(&w, m, B, &err) == MV_OK);
  mv_rng r;
  mv_rng_seed(&r, 11, mv_rng_purpose("gradcheck"), (uint64_t)sc->layers);
  for (int64_t k = 0; k < m->nfloats; k++) m->params[k] = 0.5 * mv_rng_normal(&r);
  int32_t lab[3 * 12];
  for (int k = 0; k < B * L; k++) lab[k] = (int32_t)mv_rng_below(&r, (uint64_t)c.vocab);
  lab[0] = 0; /* an empty step: the roll's "nothing hit" bit */
  double eps[3 * 5], coins[3 * 12], draws[3 * 12];
  for (int k = 0; k < B * c.z; k++) eps[k] = mv_rng_normal(&r);
  for (int k = 0; k < B * L; k++) coins[k] = mv_rng_uniform(&r), draws[k] = mv_rng_uniform(&r);
  mv_vae_train_opts o;
  memset(&o, 0, sizeof o);
  o.eps = sc->use_eps ? eps : NULL;
  o.p_sample = sc->p_sample;
  o.coins = coins;
  o.draws = draws;
  o.beta = sc->beta;
  o.free_nats = sc->free_nats;
  mv_vae_zero_grad(m);
  o.backward = 1;
  mv_vae_stats st;
  CHECK(mv_vae_forward(m, w, lab, &o, &st, NULL, NULL, &err) == MV_OK);
  size_t nin = (size_t)c.steps * c.bars * B;
  int32_t *base_in = malloc(nin * sizeof *base_in);
  memcpy(base_in, mv_vae_inputs(w), nin * sizeof *base_in);
  if (sc->p_sample > 0) CHECK(st.sampled_inputs > 0);
  double worst_all = 0;
  for (int i = 0; i < m->nparams; i++) {
    const mv_param *p = &m->p[i];
    double worst = 0;
    int checked = 0;
    for (int k = 0; k < 12; k++) {
      int64_t j = p->offset + (int64_t)mv_rng_below(&r, (uint64_t)p->numel);
      double v = m->params[j], h = 1e-5;
      m->params[j] = v + h;
      double lp = loss_of(m, w, lab, &o);
      int same1 = same_inputs(base_in, mv_vae_inputs(w), nin);
      m->params[j] = v - h;
      double lm = loss_of(m, w, lab, &o);
      int same2 = same_inputs(base_in, mv_vae_inputs(w), nin);
      m->params[j] = v;
      if (!same1 || !same2) continue; /* a sampled input flipped: not differentiable here */
      double num = (lp - lm) / (2 * h), an = m->grads[j];
      /* relative error, with an absolute floor for the double loss's rounding (|loss| 1e-16 / h) */
      double err_ = fabs(num - an) / fmax(1e-3, fabs(num) + fabs(an));
      if (err_ > worst) worst = err_;
      checked++;
    }
    if (worst > 1e-5 || checked < 6)
      fprintf(stderr, "%s: %s: worst relative error %.3g over %d points\n", sc->what, p->name, worst, checked);
    CHECK(worst <= 1e-5);
    CHECK(checked >= 6);
    if (worst > worst_all) worst_all = worst;
  }
  *worst_out = worst_all;
  free(base_in);
  mv_vae_ws_free(w);
  mv_vae_free(m);
}

/* GrooVAE: the flat decoder, the groove head and loss, and dropout with a
 * fixed mask (every evaluation replays the same stream). */
typedef struct {
  const char *what;
  int layers, humanize;
  double keep;
} groove_scenario;

static double groove_loss(mv_vae *m, mv_vae_ws *w, const double *x, const double *tg, mv_vae_train_opts *o,
                          const mv_rng *drop0, mv_rng *drop) {
  mv_vae_stats st;
  mv_err err;
  *drop = *drop0;
  o->backward = 0;
  if (mv_vae_forward_groove(m, w, x, tg, o, &st, NULL, NULL, &err)) return NAN;
  return st.loss;
}

static void run_groove(const groove_scenario *sc, double *worst_out) {
  mv_vae_config c;
  memset(&c, 0, sizeof c);
  c.groove = 1;
  c.input_depth = c.vocab = 9; /* 3 classes */
  c.z = 4;
  c.bars = 2;
  c.steps = 3;
  c.enc_layers = c.dec_layers = sc->layers;
  int es[2] = {5, 4}, ds[2] = {6, 5};
  for (int l = 0; l < sc->layers; l++) c.enc[l] = es[l], c.dec[l] = ds[l];
  mv_vae *m;
  mv_vae_ws *w;
  mv_err err;
  CHECK(mv_vae_new(&m, &c, &err) == MV_OK);
  CHECK(mv_vae_find(m, "decoder/multi_rnn_cell/cell_0/lstm_cell/kernel") >= 0);
  CHECK(mv_vae_find(m, "decoder/z_to_initial_state/kernel") >= 0);
  CHECK(mv_vae_find(m, "decoder/output_projection/bias") >= 0);
  int B = 3, L = c.bars * c.steps, V = c.vocab, C = V / 3;
  CHECK(mv_vae_ws_new(&w, m, B, &err) == MV_OK);
  mv_rng r;
  mv_rng_seed(&r, 12, mv_rng_purpose("gradcheck-groove"), (uint64_t)(sc->layers * 10 + sc->humanize));
  for (int64_t k = 0; k < m->nfloats; k++) m->params[k] = 0.5 * mv_rng_normal(&r);
  double tg[3 * 6 * 9], x[3 * 6 * 9], eps[3 * 4];
  for (int k = 0; k < B * L; k++)
    for (int q = 0; q < C; q++) {
      int hit = mv_rng_uniform(&r) < 0.5;
      tg[k * V + q] = hit;
      tg[k * V + C + q] = hit ? mv_rng_uniform(&r) : 0;
      tg[k * V + 2 * C + q] = hit ? 2 * mv_rng_uniform(&r) - 1 : 0;
    }
  for (int k = 0; k < B * L * V; k++) x[k] = sc->humanize && k % V >= C ? 0 : tg[k];
  for (int k = 0; k < B * c.z; k++) eps[k] = mv_rng_normal(&r);
  mv_rng drop0, drop;
  mv_rng_seed(&drop0, 12, mv_rng_purpose("dropout"), 0);
  mv_vae_train_opts o;
  memset(&o, 0, sizeof o);
  o.eps = eps;
  o.beta = 0.5;
  o.keep_prob = sc->keep;
  o.dropout = &drop;
  mv_vae_zero_grad(m);
  drop = drop0;
  o.backward = 1;
  mv_vae_stats st;
  CHECK(mv_vae_forward_groove(m, w, x, tg, &o, &st, NULL, NULL, &err) == MV_OK);
  CHECK(st.recon > 0 && st.accuracy >= 0 && st.accuracy <= 1);
  const double *mask = mv_vae_dropout_masks(w, 0, 0);
  if (sc->keep < 1) { /* the mask drops some inputs and scales the rest by 1 / keep */
    CHECK(mask != NULL);
    int zeros = 0, kept = 0;
    for (int k = 0; mask && k < L * B * m->dec[0].in; k++) {
      if (mask[k] == 0) zeros++;
      else if (fabs(mask[k] - 1 / sc->keep) < 1e-12) kept++;
    }
    CHECK(zeros > 0 && kept > 0 && zeros + kept == L * B * m->dec[0].in);
  } else {
    CHECK(mask == NULL);
  }
  double worst_all = 0;
  for (int i = 0; i < m->nparams; i++) {
    const mv_param *p = &m->p[i];
    double worst = 0;
    for (int k = 0; k < 10; k++) {
      int64_t j = p->offset + (int64_t)mv_rng_below(&r, (uint64_t)p->numel);
      double v = m->params[j], h = 1e-5;
      m->params[j] = v + h;
      double lp = groove_loss(m, w, x, tg, &o, &drop0, &drop);
      m->params[j] = v - h;
      double lm = groove_loss(m, w, x, tg, &o, &drop0, &drop);
      m->params[j] = v;
      double num = (lp - lm) / (2 * h), an = m->grads[j];
      double e = fabs(num - an) / fmax(1e-3, fabs(num) + fabs(an));
      if (e > worst) worst = e;
    }
    if (worst > 1e-5) fprintf(stderr, "%s: %s: worst relative error %.3g\n", sc->what, p->name, worst);
    CHECK(worst <= 1e-5);
    if (worst > worst_all) worst_all = worst;
  }
  *worst_out = worst_all;
  mv_vae_ws_free(w);
  mv_vae_free(m);
}

int main(void) {
  groove_scenario gs[] = {
      {"groove: flat decoder, 1 layer, no dropout", 1, 0, 1.0},
      {"groove: 2 layers, dropout keep 0.6 (fixed mask)", 2, 0, 0.6},
      {"groove: humanize inputs (hits only), keep 0.3", 2, 1, 0.3},
  };
  for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
    double worst = 0;
    run_groove(&gs[i], &worst);
    printf("%-55s worst relative error %.2e\n", gs[i].what, worst);
  }
  scenario sc[] = {
      {"1 layer, teacher forcing, KL active", 1, 0.0, 0.0, 0.8, 1},
      {"2 layers (stacked), teacher forcing", 2, 0.0, 0.0, 0.5, 1},
      {"free bits above every KL (no KL gradient)", 1, 0.0, 1e6, 1.0, 1},
      {"free bits between the KLs", 2, 0.0, 2.0, 1.0, 1},
      {"z = mu (no eps)", 1, 0.0, 0.0, 0.3, 0},
      {"scheduled sampling p = 0.5, fixed coins and draws", 2, 0.5, 0.0, 0.5, 1},
      {"scheduled sampling p = 1", 1, 1.0, 0.0, 0.5, 1},
  };
  for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
    double worst = 0;
    run(&sc[i], &worst);
    printf("%-55s worst relative error %.2e\n", sc[i].what, worst);
  }
  MVT_DONE();
}
