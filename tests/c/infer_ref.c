/* The reference side of test_infer: the model compiled in double precision
 * (MV_VAE_DOUBLE), running the training code's per-step GEMMs. */
#include <stdlib.h>
#include <string.h>

#include "mv_vae.h"

int infer_ref_decode(const mv_vae_config *c, const float *params, int B, const float *z, int32_t *labels,
                     double *logits);
int infer_ref_encode(const mv_vae_config *c, const float *params, int B, const int32_t *labels, double *mu);
int infer_ref_groove(const mv_vae_config *c, const float *params, int B, const float *z, const float *hits,
                     double *out);

/* A double model with the given float weights and a workspace for B rows. 0 on success. */
static int ref_model(const mv_vae_config *c, const float *params, int B, mv_vae **m, mv_vae_ws **w) {
  mv_err err;
  if (mv_vae_new(m, c, &err)) return -1;
  if (mv_vae_ws_new(w, *m, B, &err)) {
    mv_vae_free(*m);
    return -1;
  }
  for (int64_t k = 0; k < (*m)->nfloats; k++) (*m)->params[k] = params[k];
  return 0;
}

static void ref_free(mv_vae *m, mv_vae_ws *w) {
  mv_vae_ws_free(w);
  mv_vae_free(m);
}

static double *widen(const float *x, size_t n) {
  double *d = malloc(sizeof(double) * (n ? n : 1));
  for (size_t k = 0; d && k < n; k++) d[k] = x[k];
  return d;
}

/* Greedy decode of B rows with z [B, z]: labels [B, bars*steps] and the last bar's logits
 * [B][steps][vocab]. 0 on success. */
int infer_ref_decode(const mv_vae_config *c, const float *params, int B, const float *z, int32_t *labels,
                     double *logits) {
  mv_vae *m;
  mv_vae_ws *w;
  mv_err err;
  if (ref_model(c, params, B, &m, &w)) return -1;
  double *zd = widen(z, (size_t)B * c->z);
  int rc = zd ? mv_vae_decode(m, w, zd, 0.0, NULL, labels, &err) : -1;
  for (int b = 0; b < B && !rc; b++)
    for (int t = 0; t < c->steps; t++)
      memcpy(logits + ((size_t)b * c->steps + t) * c->vocab, mv_vae_decode_logits(w, b, t),
             sizeof(double) * (size_t)c->vocab);
  free(zd);
  ref_free(m, w);
  return rc;
}

/* mu [B, z] of B label rows [B, bars*steps]. 0 on success. */
int infer_ref_encode(const mv_vae_config *c, const float *params, int B, const int32_t *labels, double *mu) {
  mv_vae *m;
  mv_vae_ws *w;
  mv_err err;
  if (ref_model(c, params, B, &m, &w)) return -1;
  int rc = mv_vae_encode(m, w, labels, mu, NULL, &err);
  ref_free(m, w);
  return rc;
}

/* A groove model's decode of B rows (greedy hits, or the given hits [B, L, 9]) with the training
 * code's flat decoder: out [B, L, vocab]. 0 on success. */
int infer_ref_groove(const mv_vae_config *c, const float *params, int B, const float *z, const float *hits,
                     double *out) {
  mv_vae *m;
  mv_vae_ws *w;
  mv_err err;
  if (ref_model(c, params, B, &m, &w)) return -1;
  int L = c->bars * c->steps, C = c->vocab / 3;
  double *zd = widen(z, (size_t)B * c->z), *hd = hits ? widen(hits, (size_t)B * L * C) : NULL;
  int rc = zd && (hd || !hits) ? mv_vae_decode_groove(m, w, zd, 0.0, NULL, hd, out, NULL, &err) : -1;
  free(zd);
  free(hd);
  ref_free(m, w);
  return rc;
}
