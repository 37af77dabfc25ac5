/* mv_util.c -- errors, clock, atomic file writes. */
#define _POSIX_C_SOURCE 200809L
#include "mv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mv_seterr(mv_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

const char *mv_strerror(int code) {
  switch (code) {
  case MV_OK: return "ok";
  case MV_ENOMEM: return "out of memory";
  case MV_EINVAL: return "invalid argument";
  case MV_ESHAPE: return "shape mismatch";
  case MV_EIO: return "input/output error";
  case MV_EFORMAT: return "malformed data";
  case MV_ERANGE: return "out of range";
  case MV_EUNSUPPORTED: return "not supported";
  case MV_EVERSION: return "needs a newer version";
  default: return "unknown error";
  }
}

double mv_clock(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int mv_read_file(const char *path, size_t max_size, unsigned char **out, size_t *len, mv_err *err) {
  *out = NULL;
  *len = 0;
  FILE *fp = fopen(path, "rb");
  if (!fp) return mv_seterr(err, MV_EIO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(fp);
    return mv_seterr(err, MV_EIO, "%s: not a regular file", path);
  }
  if ((uint64_t)st.st_size > max_size) {
    fclose(fp);
    return mv_seterr(err, MV_EFORMAT, "%s: too large (%lld bytes)", path, (long long)st.st_size);
  }
  size_t n = (size_t)st.st_size;
  unsigned char *buf = malloc(n ? n : 1);
  if (!buf) {
    fclose(fp);
    return mv_seterr(err, MV_ENOMEM, "%s: out of memory (%zu bytes)", path, n);
  }
  size_t got = fread(buf, 1, n, fp);
  fclose(fp);
  if (got != n) {
    free(buf);
    return mv_seterr(err, MV_EIO, "%s: short read", path);
  }
  *out = buf;
  *len = n;
  return MV_OK;
}

int mv_write_atomic_with(const char *path, int (*fill)(const char *tmp, void *ctx, mv_err *err), void *ctx,
                         mv_err *err) {
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 32);
  if (!tmp) return mv_seterr(err, MV_ENOMEM, "out of memory");
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
  int rc = fill(tmp, ctx, err);
  if (!rc) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) {
      int e = errno;
      rc = mv_seterr(err, MV_EIO, "%s: write failed: %s", path, strerror(e));
    }
    if (fd >= 0) close(fd);
  }
  if (!rc && rename(tmp, path) != 0) {
    int e = errno;
    rc = mv_seterr(err, MV_EIO, "%s: cannot rename into place: %s", path, strerror(e));
  }
  if (rc) unlink(tmp);
  free(tmp);
  return rc;
}

typedef struct {
  const char *path;
  const unsigned char *data;
  size_t len;
} bytes_job;

static int fill_bytes(const char *tmp, void *ctx, mv_err *err) {
  const bytes_job *j = ctx;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    return mv_seterr(err, MV_EIO, "%s: cannot write: %s", j->path, strerror(e));
  }
  const unsigned char *p = j->data;
  size_t left = j->len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return mv_seterr(err, MV_EIO, "%s: write failed: %s", j->path, strerror(e));
    }
    p += w;
    left -= (size_t)w;
  }
  if (close(fd) != 0) {
    int e = errno;
    return mv_seterr(err, MV_EIO, "%s: write failed: %s", j->path, strerror(e));
  }
  return MV_OK;
}

int mv_write_file_atomic(const char *path, const void *data, size_t len, mv_err *err) {
  bytes_job j = {path, data, len};
  return mv_write_atomic_with(path, fill_bytes, &j, err);
}

/* ---- SHA-256 (FIPS 180-4), for model fingerprints in sidecar files ---- */
static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(uint32_t h[8], const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) | ((uint32_t)p[4 * i + 2] << 8) | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
    uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
}

/* The same compression with the x86 SHA extensions (Intel's SHA-NI, on AMD since Zen): about
 * ten times the portable loop, which took a quarter of a `musicvae sample` run hashing the model. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define MV_SHA_NI 1
__attribute__((target("sha,sse4.1,ssse3"))) static void sha_blocks_ni(uint32_t h[8], const unsigned char *p,
                                                                       size_t nblocks) {
  const __m128i swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL); /* big-endian words */
  __m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);      /* CDAB */
  __m128i s1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);     /* EFGH */
  __m128i s0 = _mm_alignr_epi8(t, s1, 8);                                              /* ABEF */
  s1 = _mm_blend_epi16(s1, t, 0xF0);                                                   /* CDGH */
  for (; nblocks > 0; nblocks--, p += 64) {
    __m128i abef = s0, cdgh = s1, m[4];
    for (int g = 0; g < 16; g++) { /* four rounds each; m holds the last four schedule words groups */
      __m128i w;
      if (g < 4) {
        w = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), swap);
      } else {
        w = _mm_sha256msg1_epu32(m[g & 3], m[(g - 3) & 3]);
        w = _mm_add_epi32(w, _mm_alignr_epi8(m[(g - 1) & 3], m[(g - 2) & 3], 4));
        w = _mm_sha256msg2_epu32(w, m[(g - 1) & 3]);
      }
      m[g & 3] = w;
      __m128i k = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)&K256[4 * g]));
      s1 = _mm_sha256rnds2_epu32(s1, s0, k);
      s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(k, 0x0E));
    }
    s0 = _mm_add_epi32(s0, abef);
    s1 = _mm_add_epi32(s1, cdgh);
  }
  /* back from ABEF / CDGH to h[0..3], h[4..7] */
  t = _mm_shuffle_epi32(s0, 0x1B);
  s1 = _mm_shuffle_epi32(s1, 0xB1);
  _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t, s1, 0xF0));
  _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(s1, t, 8));
}

static int sha_ni_ok(void) {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSE4_1) || !(c & bit_SSSE3)) return 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
  return (b >> 29) & 1; /* CPUID.7.0:EBX.SHA */
}
#endif

static int SHA_IMPL = -1; /* -1 unknown, 0 portable, 1 SHA-NI */

/* the implementation in use, chosen on first use */
static int sha_impl(void) {
  int impl = __atomic_load_n(&SHA_IMPL, __ATOMIC_RELAXED);
  if (impl < 0) {
    impl = 0;
#ifdef MV_SHA_NI
    const char *want = getenv("MUSICVAE_ISA");
    impl = !(want && strcmp(want, "portable") == 0) && sha_ni_ok();
#endif
    __atomic_store_n(&SHA_IMPL, impl, __ATOMIC_RELAXED);
  }
  return impl;
}

static void sha_blocks(uint32_t h[8], const unsigned char *p, size_t nblocks) {
#ifdef MV_SHA_NI
  if (sha_impl() == 1) {
    sha_blocks_ni(h, p, nblocks);
    return;
  }
#endif
  for (; nblocks > 0; nblocks--, p += 64) sha_block(h, p);
}

const char *mv_sha256_impl(void) { return sha_impl() == 1 ? "sha-ni" : "portable"; }

int mv_sha256_use(const char *name) {
  if (strcmp(name, "portable") == 0) {
    SHA_IMPL = 0;
    return MV_OK;
  }
#ifdef MV_SHA_NI
  if (strcmp(name, "sha-ni") == 0 && sha_ni_ok()) {
    SHA_IMPL = 1;
    return MV_OK;
  }
#endif
  return MV_EINVAL;
}

void mv_sha256(const void *data, size_t n, unsigned char out[32]) {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const unsigned char *p = data;
  size_t left = n;
  size_t whole = left / 64;
  sha_blocks(h, p, whole);
  p += whole * 64;
  left -= whole * 64;
  unsigned char tail[128];
  memset(tail, 0, sizeof tail);
  memcpy(tail, p, left);
  tail[left] = 0x80;
  size_t tl = left + 1 + 8 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)n * 8;
  for (int i = 0; i < 8; i++) tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
  sha_blocks(h, tail, tl / 64);
  for (int i = 0; i < 8; i++) {
    out[4 * i] = (unsigned char)(h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(h[i] >> 8);
    out[4 * i + 3] = (unsigned char)h[i];
  }
}

/* mkdir -p without a shell: each missing component is created (0777 & ~umask);
 * an empty path, or a component that exists and is not a folder, is an error. */
int mv_mkdir_p(const char *path, mv_err *err) {
  size_t n = strlen(path);
  if (n == 0) return mv_seterr(err, MV_EINVAL, "the folder name is empty");
  char *p = malloc(n + 1);
  if (!p) return mv_seterr(err, MV_ENOMEM, "out of memory");
  memcpy(p, path, n + 1);
  int rc = MV_OK;
  for (size_t i = 1; i <= n && !rc; i++) {
    if (p[i] != '/' && p[i] != '\0') continue;
    if (p[i - 1] == '/') continue; /* "a//b" */
    char c = p[i];
    p[i] = '\0';
    struct stat st;
    if (stat(p, &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        rc = mv_seterr(err, MV_EIO, "%s: cannot create the folder: %s exists and is not a folder", path, p);
    } else if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      rc = mv_seterr(err, MV_EIO, "%s: cannot create the folder: %s", path, strerror(errno));
    } else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
      rc = mv_seterr(err, MV_EIO, "%s: cannot create the folder", path);
    }
    p[i] = c;
  }
  free(p);
  return rc;
}
