/* The chosen BLAS kernel against the naive loop on odd shapes, every
 * transpose combination, alpha/beta, and padded leading dimensions. */
#include <stdlib.h>
#include <string.h>

#include "mv.h"
#include "mvtest.h"

static void check_shape(mv_rng *r, int64_t m, int64_t n, int64_t k) {
  for (int t = 0; t < 4; t++) {
    int ta = t & 1, tb = t >> 1;
    int64_t pad = 3; /* leading dimensions larger than the rows */
    int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
    int64_t arows = ta ? k : m, brows = tb ? n : k;
    float *a = malloc(sizeof(float) * (size_t)(arows * lda));
    float *b = malloc(sizeof(float) * (size_t)(brows * ldb));
    float *c1 = malloc(sizeof(float) * (size_t)(m * ldc));
    float *c2 = malloc(sizeof(float) * (size_t)(m * ldc));
    for (int64_t i = 0; i < arows * lda; i++) a[i] = (float)(mv_rng_uniform(r) - 0.5);
    for (int64_t i = 0; i < brows * ldb; i++) b[i] = (float)(mv_rng_uniform(r) - 0.5);
    for (int64_t i = 0; i < m * ldc; i++) c1[i] = c2[i] = (float)(mv_rng_uniform(r) - 0.5);
    mv_sgemm(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, c1, ldc);
    mv_sgemm_naive(ta, tb, m, n, k, 0.7f, a, lda, b, ldb, 0.3f, c2, ldc);
    double worst = 0;
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < ldc; j++) {
        double d = fabs((double)c1[i * ldc + j] - c2[i * ldc + j]) / (1.0 + sqrt((double)k));
        if (j >= n && c1[i * ldc + j] != c2[i * ldc + j]) d = 1; /* padding must be untouched */
        if (d > worst) worst = d;
      }
    if (worst > 1e-5)
      fprintf(stderr, "gemm %lldx%lldx%lld ta=%d tb=%d: worst scaled error %g\n", (long long)m, (long long)n,
              (long long)k, ta, tb, worst);
    CHECK(worst <= 1e-5);
    free(a);
    free(b);
    free(c1);
    free(c2);
  }
}

int main(void) {
  mv_blas_info info;
  mv_blas_get_info(&info);
  printf("BLAS core %s (%s), %d threads\n", info.core, info.how, info.threads);
  mv_rng r;
  mv_rng_seed(&r, 7, mv_rng_purpose("test"), 0);
  static const int64_t shapes[][3] = {{1, 1, 1},    {7, 13, 5},    {257, 129, 65}, {1, 300, 17},
                                      {300, 1, 17}, {33, 65, 1},   {64, 2048, 266}, {5, 3, 1000}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) check_shape(&r, shapes[s][0], shapes[s][1], shapes[s][2]);
  /* single-threaded gives the same answers */
  mv_blas_set_num_threads(1);
  CHECK(mv_blas_get_num_threads() == 1);
  check_shape(&r, 257, 129, 65);
  mv_blas_set_num_threads(2);
  /* k == 0: C = beta * C */
  float c[4] = {1, 2, 3, 4}, dummy[1] = {0};
  mv_sgemm(0, 0, 2, 2, 0, 1.0f, dummy, 1, dummy, 2, 0.5f, c, 2);
  CHECK(c[0] == 0.5f && c[3] == 2.0f);
  MVT_DONE();
}
