/* The decoder's inference path (mv_infer, packed weights and hand kernels)
 * against the reference decoder (the double build, which decodes with the
 * training code's per-step GEMMs):
 *   - greedy labels equal the reference and logits agree to float rounding;
 *   - every kernel this CPU runs (AVX-512, AVX2, portable) gives bit-identical
 *     logits and labels;
 *   - a row decodes to the same bits alone or in a batch, on 1 or 2 threads;
 *   - f16 packing of weights that are f16 values is lossless (same bits as f32);
 *   - writing the parameters and calling mv_vae_params_changed re-packs;
 *   - encoding (mv_rnn: the encoder's recurrence on packed weights) agrees with the
 *     reference, with the same four guarantees (kernels, batch, threads, f16);
 *   - so does the groove model's flat decoder (dense inputs), free-running and with given hits.
 * Layer widths are not multiples of the 32-unit gate blocks, to cover the edges. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mv_infer.h"
#include "mv_vae.h"
#include "mvtest.h"

#define B 5

static void config(mv_vae_config *c) {
  memset(c, 0, sizeof *c);
  c->input_depth = 9;
  c->vocab = 40;
  c->z = 7;
  c->bars = 2;
  c->steps = 6;
  c->enc_layers = 1;
  c->enc[0] = 12;
  c->cond_layers = 1;
  c->cond[0] = 19;
  c->dec_layers = 2;
  c->dec[0] = 45;
  c->dec[1] = 37;
}

int infer_ref_decode(const mv_vae_config *c, const float *params, int B_, const float *z, int32_t *labels,
                     double *logits); /* infer_ref.c */
int infer_ref_encode(const mv_vae_config *c, const float *params, int B_, const int32_t *labels, double *mu);
int infer_ref_groove(const mv_vae_config *c, const float *params, int B_, const float *z, const float *hits,
                     double *out);

#define GL 12 /* groove steps */
#define GV 27

/* the groove model's decode (hits NULL: greedy) into out [B, GL, GV] */
static void groove_decode(mv_vae *m, mv_vae_ws *w, const float *z, const float *hits, float *out) {
  mv_err err;
  CHECK(mv_vae_decode_groove(m, w, z, 0.0f, NULL, hits, out, NULL, &err) == MV_OK);
}

static void groove_checks(void) {
  mv_vae_config c;
  memset(&c, 0, sizeof c);
  c.groove = 1;
  c.input_depth = GV;
  c.vocab = GV;
  c.z = 7;
  c.bars = 1;
  c.steps = GL;
  c.enc_layers = 1;
  c.enc[0] = 12;
  c.dec_layers = 2;
  c.dec[0] = 45;
  c.dec[1] = 37;
  mv_err err;
  mv_vae *m;
  mv_vae_ws *w, *w1;
  CHECK(mv_vae_new(&m, &c, &err) == MV_OK);
  CHECK(mv_vae_ws_new(&w, m, B, &err) == MV_OK);
  CHECK(mv_vae_ws_new(&w1, m, 1, &err) == MV_OK);
  mv_rng r;
  mv_rng_seed(&r, 7, mv_rng_purpose("test_infer_groove"), 0);
  for (int64_t k = 0; k < m->nfloats; k++) m->params[k] = mv_f16_to_f32(mv_f32_to_f16((float)(0.6 * mv_rng_normal(&r))));
  mv_vae_params_changed(m);
  static float z[B * 7], hits[B * GL * 9], out[B * GL * GV], out2[B * GL * GV];
  static double ref[B * GL * GV];
  for (int k = 0; k < B * 7; k++) z[k] = (float)mv_rng_normal(&r);
  for (int k = 0; k < B * GL * 9; k++) hits[k] = mv_rng_uniform(&r) < 0.3 ? 1.0f : 0.0f;
  for (int given = 0; given < 2; given++) {
    const float *h = given ? hits : NULL;
    groove_decode(m, w, z, h, out);
    CHECK(mv_vae_infer_f16(m) == 1);
    CHECK(infer_ref_groove(&c, m->params, B, z, h, ref) == 0);
    double worst = 0;
    int hits_differ = 0;
    for (int k = 0; k < B * GL * GV; k++) {
      if (k % GV < 9) hits_differ += out[k] != ref[k];
      else worst = fmax(worst, fabs(out[k] - ref[k]));
    }
    printf("# groove (%s hits): worst output error vs double %.2e, %d hits differ\n", given ? "given" : "greedy",
           worst, hits_differ);
    CHECK(hits_differ == 0);
    CHECK(worst < 1e-5);
    const char *isas[3] = {"portable", "avx2", "avx512"};
    const char *start = mv_infer_isa();
    for (int i = 0; i < 3; i++) {
      if (mv_infer_use_isa(isas[i]) != MV_OK) {
        SKIP("groove decoder, %s kernel: not supported on this CPU", isas[i]);
        continue;
      }
      groove_decode(m, w, z, h, out2);
      CHECK(memcmp(out, out2, sizeof out) == 0);
    }
    CHECK(mv_infer_use_isa(start) == MV_OK);
    int threads = mv_blas_get_num_threads();
    mv_blas_set_num_threads(threads > 1 ? 1 : 2);
    groove_decode(m, w, z, h, out2);
    CHECK(memcmp(out, out2, sizeof out) == 0);
    mv_blas_set_num_threads(threads);
    groove_decode(m, w1, z + 2 * 7, h ? h + 2 * GL * 9 : NULL, out2);
    CHECK(memcmp(out + 2 * GL * GV, out2, sizeof(float) * GL * GV) == 0);
  }
  mv_vae_ws_free(w1);
  mv_vae_ws_free(w);
  mv_vae_free(m);
}

/* mu [B, z] of the rows [B, L] (fast path) */
static void encode(mv_vae *m, mv_vae_ws *w, const int32_t *rows, float *mu) {
  mv_err err;
  CHECK(mv_vae_encode(m, w, rows, mu, NULL, &err) == MV_OK);
}

/* The encoder's guarantees, on p's weights (f16 values). */
static void encoder_checks(mv_vae *m, mv_vae_ws *w) {
  const mv_vae_config *c = &m->cfg;
  int L = c->bars * c->steps, Z = c->z;
  int32_t rows[B * 12];
  float mu[B * 7], mu2[B * 7];
  double mud[B * 7];
  mv_rng r;
  mv_rng_seed(&r, 6, mv_rng_purpose("test_infer_enc"), 0);
  for (int k = 0; k < B * L; k++) rows[k] = (int32_t)(mv_rng_uniform(&r) * c->vocab);
  encode(m, w, rows, mu);
  CHECK(infer_ref_encode(c, m->params, B, rows, mud) == 0);
  double worst = 0;
  for (int k = 0; k < B * Z; k++) worst = fmax(worst, fabs(mu[k] - mud[k]) / (1 + fabs(mud[k])));
  printf("# encoder: worst relative mu error vs double %.2e\n", worst);
  CHECK(worst < 1e-5);
  const char *isas[3] = {"portable", "avx2", "avx512"};
  const char *start = mv_infer_isa();
  for (int i = 0; i < 3; i++) {
    if (mv_infer_use_isa(isas[i]) != MV_OK) {
      SKIP("encoder, %s kernel: not supported on this CPU", isas[i]);
      continue;
    }
    encode(m, w, rows, mu2);
    printf("# encoder kernel %s: %s\n", isas[i], memcmp(mu, mu2, sizeof mu) == 0 ? "identical" : "DIFFERS");
    CHECK(memcmp(mu, mu2, sizeof mu) == 0);
  }
  CHECK(mv_infer_use_isa(start) == MV_OK);
  int threads = mv_blas_get_num_threads();
  for (int t = 1; t <= 2; t++) {
    mv_blas_set_num_threads(t);
    encode(m, w, rows, mu2);
    CHECK(memcmp(mu, mu2, sizeof mu) == 0);
  }
  mv_blas_set_num_threads(threads);
  mv_vae_ws *w1;
  mv_err err;
  CHECK(mv_vae_ws_new(&w1, m, 1, &err) == MV_OK);
  encode(m, w1, rows + 2 * L, mu2);
  CHECK(memcmp(mu + 2 * Z, mu2, sizeof(float) * (size_t)Z) == 0);
  mv_vae_ws_free(w1);
  mv_infer_allow_f16(0);
  mv_vae_params_changed(m);
  encode(m, w, rows, mu2);
  CHECK(memcmp(mu, mu2, sizeof mu) == 0);
  mv_infer_allow_f16(1);
  mv_vae_params_changed(m);
  /* a changed encoder weight re-packs */
  int k0 = mv_vae_find(m, "encoder/cell_0/bidirectional_rnn/fw/multi_rnn_cell/cell_0/lstm_cell/kernel");
  CHECK(k0 >= 0);
  float *wk = m->params + m->p[k0].offset + (size_t)(m->enc_fw[0].in + 1) * 4 * c->enc[0]; /* an h row */
  float keep = *wk;
  *wk += 0.5f;
  mv_vae_params_changed(m);
  encode(m, w, rows, mu2);
  CHECK(memcmp(mu, mu2, sizeof mu) != 0);
  *wk = keep;
  mv_vae_params_changed(m);
  encode(m, w, rows, mu2);
  CHECK(memcmp(mu, mu2, sizeof mu) == 0);
}

/* a float model and z [B, z] */
typedef struct {
  mv_vae *m;
  mv_vae_ws *w;
  float z[B * 7];
} pair;

static void make(pair *p, int f16_weights) {
  mv_vae_config c;
  config(&c);
  mv_err err;
  CHECK(mv_vae_new(&p->m, &c, &err) == MV_OK);
  CHECK(mv_vae_ws_new(&p->w, p->m, B, &err) == MV_OK);
  mv_rng r;
  mv_rng_seed(&r, 5, mv_rng_purpose("test_infer"), 0);
  for (int64_t k = 0; k < p->m->nfloats; k++) {
    float v = (float)(0.6 * mv_rng_normal(&r));
    if (f16_weights) v = mv_f16_to_f32(mv_f32_to_f16(v));
    p->m->params[k] = v;
  }
  mv_vae_params_changed(p->m);
  for (int k = 0; k < B * c.z; k++) p->z[k] = (float)mv_rng_normal(&r);
}

static void unmake(pair *p) {
  mv_vae_ws_free(p->w);
  mv_vae_free(p->m);
}

/* greedy decode; copies labels [B*L] and the last bar's logits [B][steps][vocab] */
static void decode(pair *p, int32_t *lab, float *lg) {
  mv_err err;
  const mv_vae_config *c = &p->m->cfg;
  CHECK(mv_vae_decode(p->m, p->w, p->z, 0.0f, NULL, lab, &err) == MV_OK);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < c->steps; t++)
      memcpy(lg + ((size_t)b * c->steps + t) * c->vocab, mv_vae_decode_logits(p->w, b, t),
             sizeof(float) * (size_t)c->vocab);
}

int main(void) {
  mv_vae_config c;
  config(&c);
  int L = c.bars * c.steps, NL = B * c.steps * c.vocab;
  int32_t lab[B * 12], lab2[B * 12], labd[B * 12];
  static float lg[B * 6 * 40], lg2[B * 6 * 40];
  static double lgd[B * 6 * 40];
  mv_err err;
  pair p;

  /* reference: the double build's decoder */
  make(&p, 1);
  CHECK(infer_ref_decode(&c, p.m->params, B, p.z, labd, lgd) == 0);
  decode(&p, lab, lg);
  CHECK(mv_vae_infer_f16(p.m) == 1);
  CHECK(memcmp(lab, labd, sizeof lab) == 0);
  double worst = 0;
  for (int b = 0; b < B; b++)
    for (int t = 0; t < c.steps; t++)
      for (int v = 0; v < c.vocab; v++) {
        double ref = lgd[((size_t)b * c.steps + t) * c.vocab + v];
        double e = fabs(lg[((size_t)b * c.steps + t) * c.vocab + v] - ref) / (1 + fabs(ref));
        if (e > worst) worst = e;
      }
  printf("# %s kernel: worst relative logit error vs double %.2e\n", mv_infer_isa(), worst);
  CHECK(worst < 1e-5);

  /* every kernel the CPU runs gives the same bits */
  const char *isas[3] = {"portable", "avx2", "avx512"};
  const char *start = mv_infer_isa();
  for (int i = 0; i < 3; i++) {
    if (mv_infer_use_isa(isas[i]) != MV_OK) {
      SKIP("decoder, %s kernel: not supported on this CPU", isas[i]);
      continue;
    }
    decode(&p, lab2, lg2);
    printf("# kernel %s: %s\n", isas[i], memcmp(lg, lg2, sizeof(float) * NL) == 0 ? "identical" : "DIFFERS");
    CHECK(memcmp(lab, lab2, sizeof(int32_t) * B * L) == 0);
    CHECK(memcmp(lg, lg2, sizeof(float) * NL) == 0);
  }
  CHECK(mv_infer_use_isa(start) == MV_OK);
  CHECK(mv_infer_use_isa("sse9") == MV_EINVAL);

  /* one thread and two threads */
  int threads = mv_blas_get_num_threads();
  mv_blas_set_num_threads(threads > 1 ? 1 : 2);
  decode(&p, lab2, lg2);
  CHECK(memcmp(lg, lg2, sizeof(float) * NL) == 0);
  /* a forked child (none of the parent's worker threads) still decodes, to the same bits */
  mv_blas_set_num_threads(2);
  decode(&p, lab2, lg2);
  fflush(stdout);
  pid_t child = fork();
  if (child == 0) {
    alarm(20); /* a child waiting for workers it does not have would hang */
    decode(&p, lab2, lg2);
    _exit(memcmp(lg, lg2, sizeof(float) * NL) == 0 ? 0 : 3);
  }
  int status = -1;
  CHECK(child > 0 && waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  mv_blas_set_num_threads(threads);

  /* row 3 alone (batch 1, same z) decodes to the same bits as in the batch */
  {
    mv_vae_ws *w1;
    CHECK(mv_vae_ws_new(&w1, p.m, 1, &err) == MV_OK);
    int32_t l1[12];
    CHECK(mv_vae_decode(p.m, w1, p.z + 3 * c.z, 0.0f, NULL, l1, &err) == MV_OK);
    CHECK(memcmp(l1, lab + 3 * L, sizeof l1) == 0);
    double d1 = 0;
    for (int t = 0; t < c.steps; t++)
      for (int v = 0; v < c.vocab; v++)
        d1 = fmax(d1, fabs(mv_vae_decode_logits(w1, 0, t)[v] - lg[((size_t)3 * c.steps + t) * c.vocab + v]));
    printf("# batch 1 vs batch %d: largest logit difference %.3g\n", B, d1);
    CHECK(d1 == 0);
    mv_vae_ws_free(w1);
  }

  encoder_checks(p.m, p.w);
  groove_checks();

  /* f16 packing is lossless: forbidding it gives the same bits from f32 */
  mv_infer_allow_f16(0);
  mv_vae_params_changed(p.m);
  decode(&p, lab2, lg2);
  CHECK(mv_vae_infer_f16(p.m) == 0);
  CHECK(memcmp(lg, lg2, sizeof(float) * NL) == 0);
  mv_infer_allow_f16(1);

  /* writes re-pack: a decoder weight that is no f16 value turns the pack to f32 */
  int k0 = mv_vae_find(p.m, "core_decoder/decoder/multi_rnn_cell/cell_0/lstm_cell/kernel");
  CHECK(k0 >= 0);
  p.m->params[p.m->p[k0].offset] += 1e-4f;
  mv_vae_params_changed(p.m);
  decode(&p, lab2, lg2);
  CHECK(mv_vae_infer_f16(p.m) == 0);
  p.m->params[p.m->p[k0].offset] -= 1e-4f;
  /* the same shift on every output bias moves every logit by it and keeps the labels */
  int ob = mv_vae_find(p.m, "core_decoder/decoder/output_projection/bias");
  CHECK(ob >= 0);
  for (int v = 0; v < c.vocab; v++) p.m->params[p.m->p[ob].offset + v] += 3.0f;
  mv_vae_params_changed(p.m);
  decode(&p, lab2, lg2);
  CHECK(mv_vae_infer_f16(p.m) == 1);
  CHECK(memcmp(lab, lab2, sizeof(int32_t) * B * L) == 0);
  double off = 0;
  for (int k = 0; k < NL; k++) off = fmax(off, fabs(lg2[k] - lg[k] - 3.0));
  CHECK(off < 1e-4);
  unmake(&p);

  /* f32 weights (not f16 values): still equal to the reference */
  make(&p, 0);
  CHECK(infer_ref_decode(&c, p.m->params, B, p.z, labd, lgd) == 0);
  decode(&p, lab, lg);
  CHECK(mv_vae_infer_f16(p.m) == 0);
  CHECK(memcmp(lab, labd, sizeof lab) == 0);
  unmake(&p);
  MVT_DONE();
}
