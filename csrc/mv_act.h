/* mv_act.h -- exp and tanh for the LSTM gates, from +, -, *, / and bit
 * operations only (internal to the core).
 *
 * glibc's expf and tanhf are calls the compiler cannot vectorize; they took a
 * third of a batch-1 decode and a seventh of a training step. These inline
 * versions vectorize (with -fno-trapping-math, which lets the compiler turn
 * the clamps into selects) and, compiled without FMA contraction, give the
 * same bits on every x86-64 code path. exp: Cephes' range reduction and
 * degree-6 polynomial, within 2 ulp of expf on [-87, 88]; tanh(x) =
 * 1 - 2 / (exp(2|x|) + 1) with the sign restored, absolute error < 1e-7. */
#ifndef MV_ACT_H
#define MV_ACT_H

#include <stdint.h>
#include <string.h>

/* Elementwise loops built on these give the same bits at every vector width, so they may be
 * cloned per ISA (the library itself is built for baseline x86-64): MV_ISA_CLONES. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__)
#define MV_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MV_ISA_CLONES
#endif

/* A NaN argument gives NaN: the clamp is written so that NaN fails both comparisons and
 * becomes -87 before the int32 conversion (converting NaN is undefined behaviour), and the
 * result is NaN again at the end. */
static inline float mv_exp_act(float x0) {
  float x = x0 > -87.0f ? x0 : -87.0f;
  x = x < 88.0f ? x : 88.0f;
  float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t ei = ((int32_t)n + 127) * (1 << 23);
  float e;
  memcpy(&e, &ei, sizeof e);
  return x0 == x0 ? p * e : x0;
}

static inline float mv_sigmoid_act(float x) { return 1.0f / (1.0f + mv_exp_act(-x)); }

static inline float mv_tanh_act(float x) {
  float a = x < 0 ? -x : x;
  float t = 1.0f - 2.0f / (mv_exp_act(2.0f * (a > 9.0f ? 9.0f : a)) + 1.0f);
  return x < 0 ? -t : t;
}

#endif
