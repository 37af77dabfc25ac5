/* test_hostile.c -- issue 16: NaN never reaches an integer conversion in the
 * activations (UBSan in the full tier aborts on one), and the quantizer is
 * defined on its whole domain (no overflow, no divide by zero). */
#include <limits.h>
#include <math.h>
#include <stdint.h>

#include "mv.h"
#include "mv_act.h"
#include "mvtest.h"

/* the quantizer's old formula, where it does not overflow */
static int64_t quantize_ref(int64_t tick, int ppq, int spq) {
  int64_t num = 2 * (int64_t)spq * tick + ppq, den = 2 * (int64_t)ppq;
  int64_t q = num / den;
  if (num % den != 0 && num < 0) q--;
  return q;
}

int main(void) {
  volatile float nan = NAN, inf = INFINITY;
  CHECK(isnan(mv_exp_act(nan)));
  CHECK(isnan(mv_sigmoid_act(nan)));
  CHECK(isnan(mv_tanh_act(nan)));
  CHECK(isfinite(mv_exp_act(inf)) && mv_exp_act(inf) > 1e38f);
  CHECK(mv_exp_act(-inf) >= 0 && mv_exp_act(-inf) < 1e-37f);
  CHECK(mv_sigmoid_act(inf) == 1.0f && mv_sigmoid_act(-inf) < 1e-37f);
  CHECK_NEAR(mv_tanh_act(inf), 1.0, 1e-7);
  CHECK_NEAR(mv_tanh_act(-inf), -1.0, 1e-7);
  CHECK_NEAR(mv_exp_act(1.0f), 2.718281828, 1e-6);
  CHECK_NEAR(mv_exp_act(-87.5f), expf(-87.0f), 1e-40); /* clamped as before */

  /* the quantizer agrees with the plain formula where that one is defined */
  static const int ppqs[] = {1, 3, 96, 480, 32767}, spqs[] = {1, 3, 4, 96};
  int agree = 1;
  for (int a = 0; a < 5; a++)
    for (int b = 0; b < 4; b++)
      for (int64_t t = -5000; t <= 5000; t += 7)
        agree &= mv_quantize_tick(t, ppqs[a], spqs[b]) == quantize_ref(t, ppqs[a], spqs[b]);
  CHECK(agree);
  CHECK(mv_quantize_tick(300, 480, 4) == 3 && mv_quantize_tick(299, 480, 4) == 2);
  /* bad ppq / steps give 0, not SIGFPE; huge ticks saturate, never overflow */
  CHECK(mv_quantize_tick(12345, 0, 4) == 0);
  CHECK(mv_quantize_tick(12345, 480, 0) == 0);
  CHECK(mv_quantize_tick(12345, -480, 4) == 0);
  CHECK(mv_quantize_tick(INT64_MAX, 1, 96) == INT64_MAX);
  CHECK(mv_quantize_tick(INT64_MIN, 1, 96) == INT64_MIN);
  CHECK(mv_quantize_tick(INT64_MAX, INT_MAX, INT_MAX) > 0);
  int64_t big = (int64_t)1 << 62; /* round(big / 120), ties up */
  CHECK(mv_quantize_tick(big, 480, 4) == big / 120 + (big % 120 >= 60));
  MVT_DONE();
}
