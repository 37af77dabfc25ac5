/* mv_half.c -- IEEE half and bfloat16 conversions (round to nearest even). */
#include "mv.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(__clang__) /* clang 14: no "f16c" in __builtin_cpu_supports */
#include <immintrin.h>
#define MV_HALF_X86 1
#endif

static uint32_t f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

uint16_t mv_f32_to_f16(float f) {
  uint32_t x = f2u(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) /* inf or NaN (keep NaN quiet and non-zero) */
    return (uint16_t)(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u | ((absx >> 13) & 0x3ffu) : 0));
  if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
  if (absx < 0x38800000u) {                                  /* below 2^-14: subnormal or zero */
    if (absx < 0x33000000u) return (uint16_t)sign;           /* < 2^-25: rounds to 0 */
    uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(absx >> 23); /* value / 2^-24 = mant * 2^(exp - 126) */
    uint32_t h = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1u))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((absx - 0x38000000u) >> 13);
  uint32_t rem = absx & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
  return (uint16_t)(sign | h);
}

float mv_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    if (mant == 0) return u2f(sign);
    /* subnormal: mant * 2^-24 */
    float v = (float)mant * 0x1.0p-24f;
    return sign ? -v : v;
  }
  if (exp == 31) return u2f(sign | 0x7f800000u | (mant << 13));
  return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t mv_f32_to_bf16(float f) {
  uint32_t x = f2u(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
  uint32_t lsb = (x >> 16) & 1u;
  x += 0x7fffu + lsb;
  return (uint16_t)(x >> 16);
}

float mv_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

/* ---- whole arrays (model loading, weight packing) ---------------------------------- */
#ifdef MV_HALF_X86
static int have_f16c(void) {
  static int have = -1;
  int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
  if (h < 0) {
    __builtin_cpu_init();
    h = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
    __atomic_store_n(&have, h, __ATOMIC_RELAXED);
  }
  return h;
}

/* vcvtph2ps is exact for every half (a signalling NaN comes back quiet, as it would from any
 * arithmetic); vcvtps2ph rounds to nearest even and overflows to infinity, as mv_f32_to_f16. */
__attribute__((target("avx,f16c"))) static size_t f16_to_f32_f16c(const void *src, float *out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const char *)src + 2 * i))));
  return i;
}

__attribute__((target("avx,f16c"))) static size_t count_f16_f16c(const float *w, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(w + i);
    __m256 y = _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    if (_mm256_movemask_ps(_mm256_cmp_ps(x, y, _CMP_NEQ_UQ))) return i; /* NaN or inexact */
  }
  return i;
}
#endif

void mv_f16_to_f32_n(const void *src, float *out, size_t n) {
  size_t i = 0;
#if defined(MV_HALF_X86) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (have_f16c()) i = f16_to_f32_f16c(src, out, n);
#endif
  const unsigned char *p = src;
  for (; i < n; i++) out[i] = mv_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
}

int mv_all_f16(const float *w, size_t n) {
  size_t i = 0;
#ifdef MV_HALF_X86
  if (have_f16c()) {
    i = count_f16_f16c(w, n);
    if (i + 8 <= n) return 0;
  }
#endif
  for (; i < n; i++)
    if (mv_f16_to_f32(mv_f32_to_f16(w[i])) != w[i]) return 0;
  return 1;
}
