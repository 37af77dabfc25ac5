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

int main(void) {
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
