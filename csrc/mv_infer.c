/* mv_infer.c -- packed, batch-independent kernels for decoding (see mv_infer.h).
 *
 * Layout: a matrix [K, M] is packed as column blocks of MV_INFER_CB columns,
 * [M / CB][K][CB], so a block streams contiguously while its accumulators stay
 * in registers. LSTM gate columns are permuted so that block b holds the i, j,
 * f and o columns of units 32b .. 32b + 31: the thread that owns a block owns
 * whole units and applies the cell update without waiting for the others.
 * Layer 0's one-hot rows are a table of rows added before the sum. Blocks are split between
 * the worker threads of mv_pool.c. One file (about 730 lines) on purpose: the packing, the kernels
 * and the drivers all depend on the packed layout and change together. */
#include "mv_act.h"
#include "mv_infer.h"
#include "mv_pool.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MV_X86 1
#endif

#define CB MV_INFER_CB
#define G (CB / 4) /* LSTM units per block */

typedef struct {
  int K, M, nb; /* rows, real columns, blocks */
  void *w;      /* [nb][K][CB], f16 or f32 */
  float *bias;  /* [nb * CB], packed order, zeros in padding */
} kmat;

struct mv_pack {
  mv_pack_shape s;
  int f16, ds;
  kmat init;            /* embedding -> initial state */
  kmat emb0;            /* layer 0's embedding rows (bias inside) */
  float *gather;        /* layer 0's one-hot rows: [vocab][nb0 * CB] */
  kmat in0;             /* dense_in: layer 0's first vocab rows */
  kmat lstm[4];         /* layer 0: h rows; layer l > 0: [x ; h] rows */
  kmat out;             /* output projection */
  kmat cinit, clstm[4]; /* the conductor: z -> initial state; layers (layer 0: h rows only) */
  int cs;               /* conductor state size */
  int maxcols, maxk;
};

/* ---- packing ------------------------------------------------------------------- */
/* original column of packed column p (-1 = padding) */
static int lstm_col(int p, int H) {
  int b = p / CB, q = p % CB, gate = q / G, unit = b * G + q % G;
  return unit < H ? gate * H + unit : -1;
}
static int plain_col(int p, int M) { return p < M ? p : -1; }

static int ALLOW_F16 = 1; /* mv_infer_allow_f16 */

static int fits_f16(const float *w, size_t n) { return mv_all_f16(w, n); }

static void put(void *dst, size_t i, float v, int f16) {
  if (f16) ((uint16_t *)dst)[i] = mv_f32_to_f16(v);
  else ((float *)dst)[i] = v;
}

/* rows [r0, r0 + K) of src [*, ld] into a kmat; lstm: H for the gate permutation, 0 = plain */
static int kmat_pack(kmat *k, const float *src, int ld, int r0, int K, int M, int H, const float *bias, int f16) {
  int Mp = H ? 4 * ((H + G - 1) / G) * G : ((M + CB - 1) / CB) * CB;
  k->K = K;
  k->M = M;
  k->nb = Mp / CB;
  size_t el = f16 ? 2 : 4;
  k->w = aligned_alloc(64, ((size_t)Mp * (K > 0 ? K : 1) * el + 63) / 64 * 64);
  k->bias = aligned_alloc(64, (size_t)Mp * sizeof(float));
  if (!k->w || !k->bias) return MV_ENOMEM;
  for (int p = 0; p < Mp; p++) {
    int col = H ? lstm_col(p, H) : plain_col(p, M);
    int b = p / CB, q = p % CB;
    k->bias[p] = col >= 0 && bias ? bias[col] : 0.0f;
    for (int r = 0; r < K; r++)
      put(k->w, ((size_t)b * K + r) * CB + q, col >= 0 ? src[(size_t)(r0 + r) * ld + col] : 0.0f, f16);
  }
  return MV_OK;
}

static void kmat_free(kmat *k) {
  free(k->w);
  free(k->bias);
  k->w = NULL;
  k->bias = NULL;
}

void mv_pack_free(mv_pack *p) {
  if (!p) return;
  kmat_free(&p->init);
  kmat_free(&p->emb0);
  free(p->gather);
  kmat_free(&p->in0);
  for (int l = 0; l < 4; l++) kmat_free(&p->lstm[l]);
  kmat_free(&p->out);
  kmat_free(&p->cinit);
  for (int l = 0; l < 4; l++) kmat_free(&p->clstm[l]);
  free(p);
}

int mv_pack_is_f16(const mv_pack *p) { return p->f16; }

int mv_pack_new(mv_pack **out, const mv_pack_shape *s, const mv_pack_src *w, mv_err *err) {
  *out = NULL;
  if (s->layers < 1 || s->layers > 4) return mv_seterr(err, MV_EINVAL, "pack: 1-4 decoder layers");
  if (s->clayers < 0 || s->clayers > 4 || (s->clayers > 0 && s->cH[s->clayers - 1] != s->E))
    return mv_seterr(err, MV_EINVAL, "pack: 0-4 conductor layers, the top one as wide as the embedding");
  mv_pack *p = calloc(1, sizeof *p);
  if (!p) return mv_seterr(err, MV_ENOMEM, "out of memory");
  p->s = *s;
  int V = s->vocab, E = s->E;
  p->ds = 0;
  for (int l = 0; l < s->layers; l++) p->ds += 2 * s->H[l];
  /* f16 when every weight is an f16 value (lossless), else f32 */
  int f16 = ALLOW_F16 && fits_f16(w->init_k, (size_t)E * p->ds) && fits_f16(w->out_k, (size_t)s->H[s->layers - 1] * V);
  for (int l = 0; l < s->layers && f16; l++) {
    int xin = l == 0 ? V + E : s->H[l - 1];
    f16 = fits_f16(w->lstm_k[l], (size_t)(xin + s->H[l]) * 4 * s->H[l]);
  }
  if (s->clayers > 0) {
    int cs = 0;
    for (int l = 0; l < s->clayers && l < 4; l++) cs += 2 * s->cH[l];
    f16 = f16 && fits_f16(w->cinit_k, (size_t)s->z * cs);
    for (int l = 0; l < s->clayers && l < 4 && f16; l++) {
      int xin = l == 0 ? 1 : s->cH[l - 1];
      f16 = fits_f16(w->clstm_k[l], (size_t)(xin + s->cH[l]) * 4 * s->cH[l]);
    }
  }
  p->f16 = f16;
  int rc = kmat_pack(&p->init, w->init_k, p->ds, 0, E, p->ds, 0, w->init_b, f16);
  int H0 = s->H[0], M0 = 4 * H0;
  rc = rc ? rc : kmat_pack(&p->emb0, w->lstm_k[0], M0, V, E, M0, H0, w->lstm_b[0], f16);
  rc = rc ? rc : kmat_pack(&p->lstm[0], w->lstm_k[0], M0, V + E, H0, M0, H0, NULL, f16);
  for (int l = 1; l < s->layers && !rc; l++) {
    int H = s->H[l];
    rc = kmat_pack(&p->lstm[l], w->lstm_k[l], 4 * H, 0, s->H[l - 1] + H, 4 * H, H, w->lstm_b[l], f16);
  }
  int Ht = s->H[s->layers - 1];
  rc = rc ? rc : kmat_pack(&p->out, w->out_k, V, 0, Ht, V, 0, w->out_b, f16);
  if (s->clayers > 0) {
    for (int l = 0; l < s->clayers; l++) p->cs += 2 * s->cH[l];
    rc = rc ? rc : kmat_pack(&p->cinit, w->cinit_k, p->cs, 0, s->z, p->cs, 0, w->cinit_b, f16);
    for (int l = 0; l < s->clayers && !rc; l++) {
      int H = s->cH[l], xin = l == 0 ? 1 : s->cH[l - 1];
      /* layer 0's input is a zero: only its h rows matter */
      rc = kmat_pack(&p->clstm[l], w->clstm_k[l], 4 * H, l == 0 ? 1 : 0, l == 0 ? H : xin + H, 4 * H, H,
                     w->clstm_b[l], f16);
    }
  }
  if (!rc && s->dense_in) rc = kmat_pack(&p->in0, w->lstm_k[0], M0, 0, V, M0, H0, NULL, f16);
  if (!rc && !s->dense_in) {
    int Mp0 = p->emb0.nb * CB;
    p->gather = malloc((size_t)V * Mp0 * sizeof(float)); /* f32: one row is read per step */
    if (!p->gather) rc = MV_ENOMEM;
    for (int v = 0; v < V && !rc; v++)
      for (int q = 0; q < Mp0; q++) {
        int col = lstm_col(q, H0);
        p->gather[(size_t)v * Mp0 + q] = col >= 0 ? w->lstm_k[0][(size_t)v * M0 + col] : 0.0f;
      }
  }
  if (rc) {
    mv_pack_free(p);
    return mv_seterr(err, MV_ENOMEM, "out of memory packing the decoder");
  }
  p->maxcols = p->init.nb;
  p->maxk = E;
  const kmat *all[12] = {&p->emb0,     &p->out,      &p->lstm[0],  &p->lstm[1],  &p->lstm[2], &p->lstm[3],
                        &p->cinit,    &p->clstm[0], &p->clstm[1], &p->clstm[2], &p->clstm[3], &p->in0};
  for (int i = 0; i < 12; i++) {
    if (!all[i]->w) continue;
    if (all[i]->nb > p->maxcols) p->maxcols = all[i]->nb;
    if (all[i]->K > p->maxk) p->maxk = all[i]->K;
  }
  p->maxcols *= CB;
  for (int l = 1; l < s->layers; l++)
    if (s->H[l - 1] + s->H[l] > p->maxk) p->maxk = s->H[l - 1] + s->H[l];
  for (int l = 1; l < s->clayers; l++)
    if (s->cH[l - 1] + s->cH[l] > p->maxk) p->maxk = s->cH[l - 1] + s->cH[l];
  *out = p;
  return MV_OK;
}

size_t mv_infer_scratch(const mv_pack *p, int N) { return (size_t)N * ((size_t)p->maxcols + (size_t)p->maxk) + 16; }
size_t mv_infer_gemb_size(const mv_pack *p, int N) { return (size_t)N * p->emb0.nb * CB; }

/* ---- kernels: y[n][block b] += x[n] . W[b], one accumulator per element, k ascending ---- */
typedef void (*kern_fn)(const kmat *W, int f16, int b, int N, const float *x, size_t xs, float *y, size_t ys);

static void kern_portable(const kmat *W, int f16, int b, int N, const float *x, size_t xs, float *y, size_t ys) {
  int K = W->K;
  for (int n = 0; n < N; n++) {
    float *yn = y + (size_t)n * ys + (size_t)b * CB;
    const float *xn = x + (size_t)n * xs;
    for (int q = 0; q < CB; q++) {
      float acc = yn[q];
      for (int k = 0; k < K; k++) {
        size_t i = ((size_t)b * K + k) * CB + q;
        float wv = f16 ? mv_f16_to_f32(((const uint16_t *)W->w)[i]) : ((const float *)W->w)[i];
        acc = fmaf(xn[k], wv, acc);
      }
      yn[q] = acc;
    }
  }
}

#ifdef MV_X86
/* R rows (1 or 2, a constant after inlining) x 128 columns: 8 accumulators per row */
static inline __attribute__((always_inline, target("avx512f"))) void k512_rows(const int R, int K, int f16,
                                                                                const float *w32, const uint16_t *w16,
                                                                                const float *x, size_t xs, float *y,
                                                                                size_t ys) {
  __m512 a[2][8];
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) a[r][i] = _mm512_loadu_ps(y + r * ys + 16 * i);
  for (int k = 0; k < K; k++) {
    __m512 s[2];
    for (int r = 0; r < R; r++) s[r] = _mm512_set1_ps(x[r * xs + k]);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
      __m512 wv = f16 ? _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(w16 + (size_t)k * CB + 16 * i)))
                      : _mm512_load_ps(w32 + (size_t)k * CB + 16 * i);
      for (int r = 0; r < R; r++) a[r][i] = _mm512_fmadd_ps(s[r], wv, a[r][i]);
    }
  }
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) _mm512_storeu_ps(y + r * ys + 16 * i, a[r][i]);
}

__attribute__((target("avx512f"))) static void kern_avx512(const kmat *W, int f16, int b, int N, const float *x,
                                                            size_t xs, float *y, size_t ys) {
  int K = W->K;
  const float *w32 = (const float *)W->w + (size_t)b * K * CB;
  const uint16_t *w16 = (const uint16_t *)W->w + (size_t)b * K * CB;
  int n = 0;
  for (; n + 2 <= N; n += 2) {
    if (f16) k512_rows(2, K, 1, w32, w16, x + (size_t)n * xs, xs, y + (size_t)n * ys + (size_t)b * CB, ys);
    else k512_rows(2, K, 0, w32, w16, x + (size_t)n * xs, xs, y + (size_t)n * ys + (size_t)b * CB, ys);
  }
  for (; n < N; n++) {
    if (f16) k512_rows(1, K, 1, w32, w16, x + (size_t)n * xs, xs, y + (size_t)n * ys + (size_t)b * CB, ys);
    else k512_rows(1, K, 0, w32, w16, x + (size_t)n * xs, xs, y + (size_t)n * ys + (size_t)b * CB, ys);
  }
}

/* A whole 128-column block per row: 16 accumulators. (Two passes of 64 columns, 8 accumulators,
 * ran at half the speed on Zen 3: each pass reads every other pair of cache lines.) */
__attribute__((target("avx2,fma,f16c"))) static void kern_avx2(const kmat *W, int f16, int b, int N, const float *x,
                                                                size_t xs, float *y, size_t ys) {
  int K = W->K;
  const float *w32 = (const float *)W->w + (size_t)b * K * CB;
  const uint16_t *w16 = (const uint16_t *)W->w + (size_t)b * K * CB;
  for (int n = 0; n < N; n++) {
    const float *x0 = x + (size_t)n * xs;
    float *y0 = y + (size_t)n * ys + (size_t)b * CB;
    __m256 a[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) a[i] = _mm256_loadu_ps(y0 + 8 * i);
    if (f16) {
      for (int k = 0; k < K; k++) {
        __m256 s0 = _mm256_set1_ps(x0[k]);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++)
          a[i] = _mm256_fmadd_ps(s0, _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(w16 + (size_t)k * CB + 8 * i))),
                                 a[i]);
      }
    } else {
      for (int k = 0; k < K; k++) {
        __m256 s0 = _mm256_set1_ps(x0[k]);
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) a[i] = _mm256_fmadd_ps(s0, _mm256_load_ps(w32 + (size_t)k * CB + 8 * i), a[i]);
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < 16; i++) _mm256_storeu_ps(y0 + 8 * i, a[i]);
  }
}
#endif

/* The best kernel this CPU runs, or the one asked for ("portable", "avx2", "avx512") when it can. */
static kern_fn pick_kernel(const char *want, const char **name) {
#ifdef MV_X86
  __builtin_cpu_init();
  int avx512 = __builtin_cpu_supports("avx512f");
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (want && strcmp(want, "portable") == 0) avx512 = avx2 = 0;
  if (want && strcmp(want, "avx2") == 0) avx512 = 0;
  if (avx512) {
    *name = "avx512";
    return kern_avx512;
  }
  if (avx2) {
    *name = "avx2";
    return kern_avx2;
  }
#endif
  (void)want;
  *name = "portable";
  return kern_portable;
}

static kern_fn KERN;
static const char *KERN_NAME;
static pthread_once_t kern_once = PTHREAD_ONCE_INIT;
static void kern_init(void) { KERN = pick_kernel(getenv("MUSICVAE_ISA"), &KERN_NAME); }

const char *mv_infer_isa(void) {
  pthread_once(&kern_once, kern_init);
  return KERN_NAME;
}

int mv_infer_use_isa(const char *name) {
  pthread_once(&kern_once, kern_init);
  const char *got;
  kern_fn k = pick_kernel(name, &got);
  if (strcmp(got, name) != 0) return MV_EINVAL;
  KERN = k;
  KERN_NAME = got;
  return MV_OK;
}

void mv_infer_allow_f16(int allow) { ALLOW_F16 = allow; }

static int nparts_for(int nb) {
  int t = mv_blas_get_num_threads();
  if (t > MV_INFER_MAXTHREADS) t = MV_INFER_MAXTHREADS;
  if (t > nb) t = nb;
  return t < 1 ? 1 : t;
}

/* ---- bar start and step ---------------------------------------------------------- */
/* The LSTM cell of one block's G units (gate pre-activations yb [i j f o] x G; cp NULL = zeros).
 * Elementwise, so every vector width gives the same bits: cloned per ISA for speed. */
MV_ISA_CLONES static void cell_block(const float *restrict yb, const float *restrict cp, int nu, float *restrict cn,
                       float *restrict hn) {
  float gi[G], gj[G], gf[G], go[G], cc[G], tc[G];
  for (int u = 0; u < G; u++) {
    gi[u] = mv_sigmoid_act(yb[u]);
    gj[u] = mv_tanh_act(yb[G + u]);
    gf[u] = mv_sigmoid_act(yb[2 * G + u] + 1.0f); /* magenta's forget bias */
    go[u] = mv_sigmoid_act(yb[3 * G + u]);
  }
  float cpv[G];
  for (int u = 0; u < G; u++) cpv[u] = 0.0f;
  if (cp) memcpy(cpv, cp, sizeof(float) * (size_t)nu);
  for (int u = 0; u < G; u++) cc[u] = gi[u] * gj[u] + gf[u] * cpv[u];
  for (int u = 0; u < G; u++) tc[u] = mv_tanh_act(cc[u]);
  for (int u = 0; u < nu; u++) {
    cn[u] = cc[u];
    hn[u] = go[u] * tc[u];
  }
}

/* The cell update of block b's units for N rows: gate rows y (ys apart), state rows [N, H]
 * (cp NULL = zeros). */
static void cells_of_block(const float *y, size_t ys, int b, int N, int H, const float *cp, float *c, float *h) {
  int nu = H - b * G < G ? H - b * G : G;
  for (int n = 0; n < N; n++)
    cell_block(y + (size_t)n * ys + (size_t)b * CB, cp ? cp + (size_t)n * H + b * G : NULL, nu,
               c + (size_t)n * H + b * G, h + (size_t)n * H + b * G);
}


/* ---- one LSTM direction over a whole sequence (the encoder) ----------------------- */
struct mv_rnn {
  kmat W;    /* h rows [H, 4H], gate columns permuted */
  int H, f16;
  int *perm; /* packed column -> the model's column (-1: padding) */
};

void mv_rnn_free(mv_rnn *r) {
  if (!r) return;
  kmat_free(&r->W);
  free(r->perm);
  free(r);
}

int mv_rnn_new(mv_rnn **out, const float *kernel, int xin, int H, mv_err *err) {
  *out = NULL;
  if (xin < 0 || H < 1) return mv_seterr(err, MV_EINVAL, "rnn pack: bad sizes");
  mv_rnn *r = calloc(1, sizeof *r);
  if (!r) return mv_seterr(err, MV_ENOMEM, "out of memory");
  int M = 4 * H;
  r->H = H;
  r->f16 = ALLOW_F16 && fits_f16(kernel + (size_t)xin * M, (size_t)H * M);
  int rc = kmat_pack(&r->W, kernel, M, xin, H, M, H, NULL, r->f16);
  int Mp = r->W.nb * CB;
  if (!rc) r->perm = malloc(sizeof(int) * (size_t)Mp);
  if (rc || !r->perm) {
    mv_rnn_free(r);
    return mv_seterr(err, MV_ENOMEM, "out of memory packing the encoder");
  }
  for (int p = 0; p < Mp; p++) r->perm[p] = lstm_col(p, H);
  *out = r;
  return MV_OK;
}

size_t mv_rnn_scratch(const mv_rnn *r, int N) { return (size_t)N * ((size_t)r->W.nb * CB + 3 * (size_t)r->H) + 16; }

void mv_rnn_run(const mv_rnn *r, int T, int N, const float *xg, int reverse, float *h, float *scratch) {
  pthread_once(&kern_once, kern_init);
  int H = r->H, M = 4 * H, nb = r->W.nb, Mp = nb * CB;
  float *y = scratch, *zero = y + (size_t)N * Mp, *cb[2] = {zero + (size_t)N * H, zero + 2 * (size_t)N * H};
  memset(zero, 0, sizeof(float) * (size_t)N * H);
  for (int s = 0; s < T; s++) {
    int t = reverse ? T - 1 - s : s, tp = reverse ? t + 1 : t - 1;
    const float *hp = s ? h + (size_t)tp * N * H : zero, *cp = s ? cb[(s - 1) & 1] : NULL;
    float *cn = cb[s & 1], *hn = h + (size_t)t * N * H;
    const float *x = xg + (size_t)t * N * M;
    for (int b = 0; b < nb; b++) {
      const int *pm = r->perm + (size_t)b * CB;
      for (int n = 0; n < N; n++) {
        float *yb = y + (size_t)n * Mp + (size_t)b * CB;
        const float *xn = x + (size_t)n * M;
        for (int q = 0; q < CB; q++) yb[q] = pm[q] >= 0 ? xn[pm[q]] : 0.0f;
      }
      KERN(&r->W, r->f16, b, N, hp, (size_t)H, y, (size_t)Mp);
      cells_of_block(y, (size_t)Mp, b, N, H, cp, cn, hn);
    }
  }
}

typedef struct {
  const mv_pack *p;
  int N, H; /* rows; the LSTM's units (cell update) */
  const kmat *W;
  const float *x;
  size_t xs;
  float *y;
  size_t ys;
  /* layer 0: the per-bar part, then a one-hot row (lab) or a dense input (dx . in0) */
  const int32_t *lab;
  const float *gemb;
  const float *dx;
  /* cell update */
  const float *cp;
  float *c, *h;
  /* plain: copy the first M columns of y to dst [N, M] (tanh when act) */
  float *dst;
  int act;
} job;

static void block_range(int nb, int part, int nparts, int *b0, int *b1) {
  *b0 = (int)((long)nb * part / nparts);
  *b1 = (int)((long)nb * (part + 1) / nparts);
}

/* y = bias (or layer 0's gemb + one-hot row), y += x . W, then the cell update or a copy out */
static void run_job(void *vctx, int part, int nparts) {
  job *j = vctx;
  const kmat *W = j->W;
  int b0, b1;
  block_range(W->nb, part, nparts, &b0, &b1);
  int N = j->N, f16 = j->p->f16;
#ifdef MV_X86
  /* the inputs were written by another thread: ask for all their lines at once, not one by one */
  if (nparts > 1 && N <= 4)
    for (int n = 0; n < N; n++)
      for (int k = 0; k < W->K; k += 16) _mm_prefetch((const char *)(j->x + (size_t)n * j->xs + k), _MM_HINT_T0);
#endif
  for (int b = b0; b < b1; b++) {
    for (int n = 0; n < N; n++) {
      float *yb = j->y + (size_t)n * j->ys + (size_t)b * CB;
      if (j->gemb) {
        const float *ge = j->gemb + (size_t)n * W->nb * CB + (size_t)b * CB;
        int32_t l = j->lab ? j->lab[n] : -1;
        if (l < 0) {
          memcpy(yb, ge, sizeof(float) * CB);
        } else {
          const float *row = j->p->gather + (size_t)l * W->nb * CB + (size_t)b * CB;
          for (int q = 0; q < CB; q++) yb[q] = ge[q] + row[q];
        }
      } else {
        memcpy(yb, W->bias + (size_t)b * CB, sizeof(float) * CB);
      }
    }
    if (j->dx) KERN(&j->p->in0, f16, b, N, j->dx, (size_t)j->p->s.vocab, j->y, j->ys);
    KERN(W, f16, b, N, j->x, j->xs, j->y, j->ys);
    if (j->h) { /* the LSTM cell for this block's units */
      cells_of_block(j->y, j->ys, b, N, j->H, j->cp, j->c, j->h);
    } else if (j->dst) {
      int M = W->M, c0 = b * CB, c1 = c0 + CB < M ? c0 + CB : M;
      for (int n = 0; n < N; n++) {
        const float *yn = j->y + (size_t)n * j->ys;
        float *dn = j->dst + (size_t)n * M;
        if (j->act)
          for (int q = c0; q < c1; q++) dn[q] = mv_tanh_act(yn[q]);
        else
          memcpy(dn + c0, yn + c0, sizeof(float) * (size_t)(c1 - c0));
      }
    }
  }
}

/* a job over N rows writing y (rows ys apart) */
static job job_new(const mv_pack *p, int N, float *y, size_t ys) {
  job j;
  memset(&j, 0, sizeof j);
  j.p = p;
  j.N = N;
  j.y = y;
  j.ys = ys;
  return j;
}

/* rows [a_n ; b_n] of N rows into xcat [N, Ka + Kb]: a layer's input [below ; own h] */
static void concat_rows(float *xcat, int N, const float *a, int Ka, const float *b, int Kb) {
  for (int n = 0; n < N; n++) {
    memcpy(xcat + (size_t)n * (Ka + Kb), a + (size_t)n * Ka, sizeof(float) * (size_t)Ka);
    memcpy(xcat + (size_t)n * (Ka + Kb) + Ka, b + (size_t)n * Kb, sizeof(float) * (size_t)Kb);
  }
}

int mv_infer_conductor(const mv_pack *p, int N, int bars, const float *z, float *emb, float *scratch) {
  pthread_once(&kern_once, kern_init);
  const mv_pack_shape *s = &p->s;
  if (s->clayers < 1) return MV_EINVAL;
  int cs = p->cs, maxH = 0;
  for (int l = 0; l < s->clayers; l++) maxH = s->cH[l] > maxH ? s->cH[l] : maxH;
  /* S [N, cs] = tanh(z W + b), then per layer c and h, each twice (before, after) */
  float *S = malloc(sizeof(float) * (size_t)N * ((size_t)cs + 4 * (size_t)s->clayers * maxH));
  if (!S) return MV_ENOMEM;
  float *st = S + (size_t)N * cs;
  float *hb[2][4], *cb[2][4];
  for (int l = 0; l < s->clayers; l++)
    for (int k = 0; k < 2; k++) {
      hb[k][l] = st + ((size_t)(4 * l + 2 * k)) * N * maxH;
      cb[k][l] = st + ((size_t)(4 * l + 2 * k + 1)) * N * maxH;
    }
  float *y = scratch, *xcat = scratch + (size_t)N * p->maxcols;
  job j = job_new(p, N, y, (size_t)p->maxcols);
  j.W = &p->cinit;
  j.x = z;
  j.xs = (size_t)s->z;
  j.dst = S;
  j.act = 1;
  mv_par_run(run_job, &j, nparts_for(j.W->nb));
  /* magenta's flatten order: [c0, h0, c1, h1, ...] */
  for (int l = 0, off = 0; l < s->clayers; off += 2 * s->cH[l], l++)
    for (int n = 0; n < N; n++) {
      memcpy(cb[0][l] + (size_t)n * s->cH[l], S + (size_t)n * cs + off, sizeof(float) * (size_t)s->cH[l]);
      memcpy(hb[0][l] + (size_t)n * s->cH[l], S + (size_t)n * cs + off + s->cH[l], sizeof(float) * (size_t)s->cH[l]);
    }
  j.dst = NULL;
  j.act = 0;
  for (int u = 0; u < bars; u++) {
    int a = u & 1, b = a ^ 1; /* states before in [a], after in [b] */
    for (int l = 0; l < s->clayers; l++) {
      int H = s->cH[l];
      if (l == 0) {
        j.x = hb[a][0];
        j.xs = (size_t)H;
      } else {
        int Hp = s->cH[l - 1], K = Hp + H;
        concat_rows(xcat, N, hb[b][l - 1], Hp, hb[a][l], H);
        j.x = xcat;
        j.xs = (size_t)K;
      }
      j.H = H;
      j.W = &p->clstm[l];
      j.cp = cb[a][l];
      j.c = cb[b][l];
      j.h = hb[b][l];
      mv_par_run(run_job, &j, nparts_for(j.W->nb));
    }
    memcpy(emb + (size_t)u * N * s->E, hb[b][s->clayers - 1], sizeof(float) * (size_t)N * s->E);
  }
  free(S);
  return MV_OK;
}

void mv_infer_bar(const mv_pack *p, int N, const float *emb, float *S, float *gemb, float *scratch) {
  pthread_once(&kern_once, kern_init);
  int E = p->s.E;
  job j = job_new(p, N, scratch, (size_t)p->maxcols);
  j.x = emb;
  j.xs = (size_t)E;
  /* initial states: tanh(emb . W + b) */
  j.W = &p->init;
  j.dst = S;
  j.act = 1;
  mv_par_run(run_job, &j, nparts_for(j.W->nb));
  /* layer 0's per-bar gate part: b + emb . W_emb (packed order) */
  j.W = &p->emb0;
  j.y = gemb;
  j.ys = (size_t)p->emb0.nb * CB;
  j.dst = NULL;
  j.act = 0;
  mv_par_run(run_job, &j, nparts_for(j.W->nb));
}

static void step_impl(const mv_pack *p, int N, const int32_t *lab, const float *dx, const float *gemb,
                      const float *const *h_prev, const float *const *c_prev, float *const *h, float *const *c,
                      float *logits, float *scratch) {
  pthread_once(&kern_once, kern_init);
  float *y = scratch, *xcat = scratch + (size_t)N * p->maxcols;
  job j = job_new(p, N, y, (size_t)p->maxcols);
  for (int l = 0; l < p->s.layers; l++) {
    int H = p->s.H[l];
    j.H = H;
    j.W = &p->lstm[l];
    if (l == 0) {
      j.x = h_prev[0];
      j.xs = (size_t)H;
      j.lab = lab;
      j.dx = dx;
      j.gemb = gemb;
    } else {
      int Hp = p->s.H[l - 1], K = Hp + H;
      concat_rows(xcat, N, h[l - 1], Hp, h_prev[l], H);
      j.x = xcat;
      j.xs = (size_t)K;
      j.lab = NULL;
      j.dx = NULL;
      j.gemb = NULL;
    }
    j.cp = c_prev[l];
    j.c = c[l];
    j.h = h[l];
    mv_par_run(run_job, &j, nparts_for(j.W->nb));
  }
  j.lab = NULL;
  j.dx = NULL;
  j.gemb = NULL;
  j.cp = NULL;
  j.c = j.h = NULL;
  j.W = &p->out;
  j.x = h[p->s.layers - 1];
  j.xs = (size_t)p->s.H[p->s.layers - 1];
  j.dst = logits;
  mv_par_run(run_job, &j, nparts_for(j.W->nb));
}

void mv_infer_step(const mv_pack *p, int N, const int32_t *lab, const float *gemb, const float *const *h_prev,
                   const float *const *c_prev, float *const *h, float *const *c, float *logits, float *scratch) {
  step_impl(p, N, lab, NULL, gemb, h_prev, c_prev, h, c, logits, scratch);
}

void mv_infer_step_dense(const mv_pack *p, int N, const float *prev, const float *gemb, const float *const *h_prev,
                         const float *const *c_prev, float *const *h, float *const *c, float *logits, float *scratch) {
  step_impl(p, N, NULL, prev, gemb, h_prev, c_prev, h, c, logits, scratch);
}
