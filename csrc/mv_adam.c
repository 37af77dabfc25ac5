/* mv_adam.c -- global-norm clipping and Adam (TensorFlow's form) over the flat parameters. */
#include "mv_vae_impl.h"

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

int mv_vae_adam_alloc(mv_vae *m, mv_err *err) {
  if (!m->adam_m) m->adam_m = calloc((size_t)m->nfloats, sizeof(mv_real));
  if (!m->adam_v) m->adam_v = calloc((size_t)m->nfloats, sizeof(mv_real));
  if (!m->adam_m || !m->adam_v) return mv_seterr(err, MV_ENOMEM, "out of memory for Adam moments");
  return MV_OK;
}

int mv_vae_adam_step(mv_vae *m, const mv_adam_opts *o, double *grad_norm, int *skipped, mv_err *err) {
  int rc = mv_vae_adam_alloc(m, err);
  if (rc) return rc;
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
