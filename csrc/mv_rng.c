/* mv_rng.c -- explicit-state random numbers: xoshiro256** streams derived
 * from (seed, purpose, index) through SplitMix64. */
#include "mv.h"

#include <math.h>
#include <string.h>

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t mix(uint64_t v) {
  uint64_t x = v;
  return splitmix(&x);
}

uint64_t mv_fnv1a64(const void *data, size_t n) {
  const unsigned char *p = data;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t mv_rng_purpose(const char *name) { return mv_fnv1a64(name, strlen(name)); }

void mv_rng_seed(mv_rng *r, uint64_t seed, uint64_t purpose, uint64_t index) {
  uint64_t x = mix(mix(mix(seed) ^ purpose) ^ (index * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull));
  for (int i = 0; i < 4; i++) r->s[i] = splitmix(&x);
  if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1; /* the one forbidden state */
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mv_rng_next(mv_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double mv_rng_uniform(mv_rng *r) { return (double)(mv_rng_next(r) >> 11) * 0x1.0p-53; }

uint64_t mv_rng_below(mv_rng *r, uint64_t n) {
  if (n <= 1) return 0;
  uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the biased tail */
  uint64_t x;
  do x = mv_rng_next(r);
  while (x >= limit);
  return x % n;
}

double mv_rng_normal(mv_rng *r) {
  double u1 = 1.0 - mv_rng_uniform(r); /* (0, 1]: log is finite */
  double u2 = mv_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

int mv_rng_categorical(mv_rng *r, const float *w, int64_t n, int64_t stride, int64_t *out, mv_err *err) {
  if (n <= 0) return mv_seterr(err, MV_EINVAL, "categorical: no categories");
  double total = 0;
  for (int64_t i = 0; i < n; i++) {
    float v = w[i * stride];
    if (!(v >= 0.0f) || isinf(v))
      return mv_seterr(err, MV_EINVAL, "categorical: weight %lld is %g (weights must be finite and >= 0)",
                       (long long)i + 1, (double)v);
    total += v;
  }
  if (!(total > 0) || isinf(total)) return mv_seterr(err, MV_EINVAL, "categorical: the weights sum to %g", total);
  double u = mv_rng_uniform(r) * total, acc = 0;
  int64_t last = 0;
  for (int64_t i = 0; i < n; i++) {
    float v = w[i * stride];
    if (v <= 0.0f) continue;
    last = i;
    acc += v;
    if (u < acc) {
      *out = i;
      return MV_OK;
    }
  }
  *out = last; /* rounding: u landed at the very top */
  return MV_OK;
}

void mv_rng_save(const mv_rng *r, unsigned char out[MV_RNG_STATE_BYTES]) {
  for (int i = 0; i < 4; i++)
    for (int b = 0; b < 8; b++) out[i * 8 + b] = (unsigned char)(r->s[i] >> (8 * b));
}

int mv_rng_load(mv_rng *r, const unsigned char *in, size_t n, mv_err *err) {
  if (n != MV_RNG_STATE_BYTES)
    return mv_seterr(err, MV_EFORMAT, "random state must be %d bytes, got %zu", MV_RNG_STATE_BYTES, n);
  mv_rng t;
  for (int i = 0; i < 4; i++) {
    t.s[i] = 0;
    for (int b = 0; b < 8; b++) t.s[i] |= (uint64_t)in[i * 8 + b] << (8 * b);
  }
  if (!(t.s[0] | t.s[1] | t.s[2] | t.s[3])) return mv_seterr(err, MV_EFORMAT, "random state is all zeros");
  *r = t;
  return MV_OK;
}
