/* mv_blas.c -- loads OpenBLAS at run time with a kernel that fits the CPU.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels from CPUID in a
 * constructor that runs when the library is loaded, and on some AVX-512 CPUs
 * (AMD Zen 4) it falls back to "Prescott" (SSE3), 3-5x slower. The core is
 * therefore not linked against OpenBLAS: mv_blas_init() looks at the CPU's
 * features first, sets OPENBLAS_CORETYPE for the load (unless the user set
 * it, or the host process already has OpenBLAS), dlopen()s the library,
 * checks a GEMM against the naive loop, and restores the environment.
 * Without a usable OpenBLAS a portable built-in GEMM is used.
 */
#define _GNU_SOURCE
#include "mv.h"

#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MV_OPENBLAS_PATH
#define MV_OPENBLAS_PATH "libopenblas.so.0"
#endif

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                         const float *b, int ldb, float beta, float *c, int ldc);
typedef char *(*corename_fn)(void);
typedef char *(*config_fn)(void);
typedef void (*setthreads_fn)(int);
typedef int (*getthreads_fn)(void);

static struct {
  sgemm_fn sgemm;
  corename_fn corename;
  config_fn config;
  setthreads_fn set_threads;
  getthreads_fn get_threads;
  int builtin_threads;
  mv_blas_info info;
} B;

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void cpu_features(int *avx2, int *avx512, int *bf16) {
  *avx2 = *avx512 = *bf16 = 0;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  /* __builtin_cpu_supports also checks that the OS saves the wide registers */
  *avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  *avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512cd");
  *bf16 = *avx512 && __builtin_cpu_supports("avx512bf16");
#endif
}

static void builtin_gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                         const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++) {
    float *ci = c + i * ldc;
    if (beta == 0.0f)
      for (int64_t j = 0; j < n; j++) ci[j] = 0.0f;
    else if (beta != 1.0f)
      for (int64_t j = 0; j < n; j++) ci[j] *= beta;
    for (int64_t p = 0; p < k; p++) {
      float av = alpha * (ta ? a[p * lda + i] : a[i * lda + p]);
      if (av == 0.0f) continue;
      if (!tb) {
        const float *bp = b + p * ldb;
        for (int64_t j = 0; j < n; j++) ci[j] += av * bp[j];
      } else {
        for (int64_t j = 0; j < n; j++) ci[j] += av * b[j * ldb + p];
      }
    }
  }
}

void mv_sgemm_naive(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double acc = 0;
      for (int64_t p = 0; p < k; p++) {
        double av = ta ? a[p * lda + i] : a[i * lda + p];
        double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        acc += av * bv;
      }
      float *cij = &c[i * ldc + j];
      *cij = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *cij));
    }
}

/* A GEMM on awkward shapes against the naive loop, with every transpose. */
static int self_check(sgemm_fn f) {
  enum { M = 19, N = 23, K = 37 };
  float a[M * K], b[K * N], c1[M * N], c2[M * N];
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < M * K; i++) a[i] = (float)((s = s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
  for (int i = 0; i < K * N; i++) b[i] = (float)((s = s * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
  for (int t = 0; t < 4; t++) {
    int ta = t & 1, tb = t >> 1;
    for (int i = 0; i < M * N; i++) c1[i] = c2[i] = (float)i * 0.01f;
    f(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS, tb ? CBLAS_TRANS : CBLAS_NO_TRANS, M, N, K, 0.75f, a,
      ta ? M : K, b, tb ? K : N, 0.5f, c1, N);
    mv_sgemm_naive(ta, tb, M, N, K, 0.75f, a, ta ? M : K, b, tb ? K : N, 0.5f, c2, N);
    for (int i = 0; i < M * N; i++)
      if (!(fabsf(c1[i] - c2[i]) <= 1e-4f * (1.0f + fabsf(c2[i])))) return 0;
  }
  return 1;
}

static const char *kernel_for_cpu(int avx2, int avx512, int bf16) {
  if (avx512) return bf16 ? "Cooperlake" : "SkylakeX";
  if (avx2) return "Haswell";
  return NULL;
}

static int bind_symbols(void *h) {
  B.sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
  B.corename = (corename_fn)dlsym(h, "openblas_get_corename");
  B.config = (config_fn)dlsym(h, "openblas_get_config");
  B.set_threads = (setthreads_fn)dlsym(h, "openblas_set_num_threads");
  B.get_threads = (getthreads_fn)dlsym(h, "openblas_get_num_threads");
  return B.sgemm != NULL;
}

static void use_builtin(const char *why) {
  B.sgemm = NULL;
  B.corename = NULL;
  B.config = NULL;
  B.set_threads = NULL;
  B.get_threads = NULL;
  snprintf(B.info.core, sizeof B.info.core, "builtin");
  snprintf(B.info.how, sizeof B.info.how, "%s; using the portable built-in GEMM (slow)", why);
}

static void blas_load(void) {
  memset(&B, 0, sizeof B);
  B.builtin_threads = 1;
  int avx2, avx512, bf16;
  cpu_features(&avx2, &avx512, &bf16);
  B.info.cpu_avx2 = avx2;
  B.info.cpu_avx512 = avx512;

  if (getenv("MUSICVAE_BLAS") && strcmp(getenv("MUSICVAE_BLAS"), "builtin") == 0) {
    use_builtin("MUSICVAE_BLAS=builtin");
    snprintf(B.info.library, sizeof B.info.library, "none");
    return;
  }

  /* 1. The host process already has OpenBLAS: use that instance as it is. */
  void *h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_NOLOAD);
  if (!h) h = dlopen("libopenblas.so", RTLD_NOW | RTLD_NOLOAD);
  if (!h && dlsym(RTLD_DEFAULT, "openblas_get_corename") && dlsym(RTLD_DEFAULT, "cblas_sgemm")) h = RTLD_DEFAULT;
  if (h) {
    bind_symbols(h);
    snprintf(B.info.how, sizeof B.info.how, "OpenBLAS was already loaded by the host process; its kernel kept");
  } else {
    /* 2. Choose the kernel, unless the user did. */
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *pick = NULL;
    if (user && *user) {
      snprintf(B.info.how, sizeof B.info.how, "OPENBLAS_CORETYPE=%s set by the user", user);
    } else {
      pick = kernel_for_cpu(avx2, avx512, bf16);
      if (pick) {
        setenv("OPENBLAS_CORETYPE", pick, 1);
        snprintf(B.info.how, sizeof B.info.how, "chosen by musicvae from CPU features (%s): OPENBLAS_CORETYPE=%s",
                 avx512 ? (bf16 ? "AVX-512, BF16" : "AVX-512") : "AVX2, FMA", pick);
      } else {
        snprintf(B.info.how, sizeof B.info.how, "no AVX2 on this CPU: OpenBLAS's own detection");
      }
    }
    /* 3. Idle OpenBLAS threads spin (sched_yield) for 2^28 cycles after a threaded GEMM, about
     * 0.1 s: long enough to starve musicvae's own worker thread on a 2-core machine (a first
     * decode soon after loading took 145 ms instead of 30). 2^16 cycles keeps back-to-back GEMMs
     * hot. Read by OpenBLAS when it loads; the user's own setting wins. */
    const char *user_timeout = getenv("OPENBLAS_THREAD_TIMEOUT");
    int set_timeout = !(user_timeout && *user_timeout), was_set = user_timeout != NULL;
    if (set_timeout) setenv("OPENBLAS_THREAD_TIMEOUT", "16", 1);
    size_t hl = strlen(B.info.how);
    snprintf(B.info.how + hl, sizeof B.info.how - hl, "; OPENBLAS_THREAD_TIMEOUT=%s%s",
             set_timeout ? "16" : user_timeout, set_timeout ? "" : " set by the user");
    const char *names[] = {MV_OPENBLAS_PATH, "libopenblas.so.0", "libopenblas.so"};
    const char *lasterr = "not found";
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++) {
      h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
      if (!h) lasterr = dlerror();
    }
    if (pick) unsetenv("OPENBLAS_CORETYPE");
    if (set_timeout) { /* the environment as it was (unset, or set to "") */
      if (was_set) setenv("OPENBLAS_THREAD_TIMEOUT", "", 1);
      else unsetenv("OPENBLAS_THREAD_TIMEOUT");
    }
    if (!h) {
      use_builtin("OpenBLAS could not be loaded");
      snprintf(B.info.library, sizeof B.info.library, "%s", lasterr ? lasterr : "not found");
      return;
    }
    if (!bind_symbols(h)) {
      use_builtin("the loaded library has no cblas_sgemm");
      return;
    }
  }
  Dl_info dl;
  if (dladdr((void *)B.sgemm, &dl) && dl.dli_fname)
    snprintf(B.info.library, sizeof B.info.library, "%s", dl.dli_fname);
  if (B.corename) snprintf(B.info.core, sizeof B.info.core, "%s", B.corename());
  else snprintf(B.info.core, sizeof B.info.core, "unknown (not OpenBLAS)");
  if (B.config) snprintf(B.info.config, sizeof B.info.config, "%s", B.config());
  if (!self_check(B.sgemm)) {
    char why[128];
    snprintf(why, sizeof why, "kernel %s failed the GEMM self-check", B.info.core);
    use_builtin(why);
  }
}

void mv_blas_init(void) { pthread_once(&blas_once, blas_load); }

void mv_blas_get_info(mv_blas_info *info) {
  mv_blas_init();
  *info = B.info;
  info->threads = mv_blas_get_num_threads();
}

void mv_blas_set_num_threads(int n) {
  mv_blas_init();
  if (n < 1) n = 1;
  if (B.set_threads) B.set_threads(n);
  else B.builtin_threads = 1;
}

int mv_blas_get_num_threads(void) {
  mv_blas_init();
  return B.get_threads ? B.get_threads() : B.builtin_threads;
}

void mv_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
              const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  mv_blas_init();
  if (m <= 0 || n <= 0) return;
  if (k <= 0) { /* C = beta * C; BLAS argument rules get fussy here */
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  if (B.sgemm && m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
      ldc <= INT_MAX) {
    B.sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS, tb ? CBLAS_TRANS : CBLAS_NO_TRANS, (int)m, (int)n,
            (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
    return;
  }
  builtin_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
