/* The reference side of test_infer: the model compiled in double precision
 * (MV_VAE_DOUBLE), decoding with the training code's per-step GEMMs. */
#include <stdlib.h>
#include <string.h>

#include "mv_vae.h"

int infer_ref_decode(const mv_vae_config *c, const float *params, int B, const float *z, int32_t *labels,
                     double *logits);

/* Greedy decode of B rows with the given float weights and z [B, z]: labels
 * [B, bars*steps] and the last bar's logits [B][steps][vocab]. 0 on success. */
int infer_ref_decode(const mv_vae_config *c, const float *params, int B, const float *z, int32_t *labels,
                     double *logits) {
  mv_vae *m;
  mv_vae_ws *w;
  mv_err err;
  if (mv_vae_new(&m, c, &err)) return -1;
  if (mv_vae_ws_new(&w, m, B, &err)) {
    mv_vae_free(m);
    return -1;
  }
  for (int64_t k = 0; k < m->nfloats; k++) m->params[k] = params[k];
  double *zd = malloc(sizeof(double) * (size_t)B * c->z);
  for (int k = 0; k < B * c->z; k++) zd[k] = z[k];
  int rc = mv_vae_decode(m, w, zd, 0.0, NULL, labels, &err);
  for (int b = 0; b < B && !rc; b++)
    for (int t = 0; t < c->steps; t++)
      memcpy(logits + ((size_t)b * c->steps + t) * c->vocab, mv_vae_decode_logits(w, b, t),
             sizeof(double) * (size_t)c->vocab);
  free(zd);
  mv_vae_ws_free(w);
  mv_vae_free(m);
  return rc;
}

int infer_ref_encode(const mv_vae_config *c, const float *params, int B, const int32_t *labels, double *mu);

/* mu [B, z] of B label rows [B, bars*steps] with the training code's encoder. 0 on success. */
int infer_ref_encode(const mv_vae_config *c, const float *params, int B, const int32_t *labels, double *mu) {
  mv_vae *m;
  mv_vae_ws *w;
  mv_err err;
  if (mv_vae_new(&m, c, &err)) return -1;
  if (mv_vae_ws_new(&w, m, B, &err)) {
    mv_vae_free(m);
    return -1;
  }
  for (int64_t k = 0; k < m->nfloats; k++) m->params[k] = params[k];
  int rc = mv_vae_encode(m, w, labels, mu, NULL, &err);
  mv_vae_ws_free(w);
  mv_vae_free(m);
  return rc;
}

int infer_ref_groove(const mv_vae_config *c, const float *params, int B, const float *z, const float *hits,
                     double *out);

/* A groove model's decode of B rows (greedy hits, or the given hits [B, L, 9]) with the training
 * code's flat decoder: out [B, L, vocab]. 0 on success. */
int infer_ref_groove(const mv_vae_config *c, const float *params, int B, const float *z, const float *hits,
                     double *out) {
  mv_vae *m;
  mv_vae_ws *w;
  mv_err err;
  if (mv_vae_new(&m, c, &err)) return -1;
  if (mv_vae_ws_new(&w, m, B, &err)) {
    mv_vae_free(m);
    return -1;
  }
  int L = c->bars * c->steps, C = c->vocab / 3;
  for (int64_t k = 0; k < m->nfloats; k++) m->params[k] = params[k];
  double *zd = malloc(sizeof(double) * (size_t)B * c->z), *hd = malloc(sizeof(double) * (size_t)B * L * C);
  for (int k = 0; k < B * c->z; k++) zd[k] = z[k];
  for (int k = 0; hits && k < B * L * C; k++) hd[k] = hits[k];
  int rc = mv_vae_decode_groove(m, w, zd, 0.0, NULL, hits ? hd : NULL, out, NULL, &err);
  free(zd);
  free(hd);
  mv_vae_ws_free(w);
  mv_vae_free(m);
  return rc;
}
