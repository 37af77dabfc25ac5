/* mv_lstm.c -- the primitives: an LSTM layer (Magenta's gate order, forget bias +1) forward and
 * backward over time-major buffers, dense layers, and dropout on a layer's input. */
#include "mv_vae_impl.h"

/* ---- the LSTM step ------------------------------------------------------------------ */
/* g[n] = b + xh[n] @ W (+ Wgather[lab[n]]), then i, j, f, o activations, c, h.
 * W: the kernel rows this input uses ([x ; h] rows), K = their count. */
/* One row's cell update in place: gates [i j f o] pre-activations -> activations, c and h.
 * Inlined twice (with and without c_prev) so that each loop is branch-free and vectorizes. */
static inline __attribute__((always_inline)) void cell_row(int H, mv_real *restrict gn, const mv_real *restrict cpn,
                                                           mv_real *restrict cn, mv_real *restrict hn) {
  for (int k = 0; k < H; k++) {
    mv_real i = sigm(gn[k]), j = TANH(gn[H + k]), f = sigm(gn[2 * H + k] + 1.0f), o = sigm(gn[3 * H + k]);
    mv_real cc = i * j + f * (cpn ? cpn[k] : 0.0f);
    gn[k] = i, gn[H + k] = j, gn[2 * H + k] = f, gn[3 * H + k] = o;
    cn[k] = cc;
    hn[k] = o * TANH(cc);
  }
}

/* The cell updates of N rows (elementwise, no FMA contraction: cloned per ISA, mv_act.h). */
MV_ISA_CLONES static void cells_fwd(int N, int H, mv_real *g, const mv_real *c_prev, mv_real *c, mv_real *h) {
  int H4 = G4(H);
  for (int n = 0; n < N; n++) {
    mv_real *gn = g + (size_t)n * H4;
    if (c_prev) cell_row(H, gn, c_prev + (size_t)n * H, c + (size_t)n * H, h + (size_t)n * H);
    else cell_row(H, gn, NULL, c + (size_t)n * H, h + (size_t)n * H);
  }
}

void lstm_fwd_step(int N, int K, int H, const mv_real *W, const mv_real *b, const mv_real *xh, const mv_real *Wg,
                   const int32_t *lab, const mv_real *c_prev, mv_real *g, mv_real *c, mv_real *h) {
  int H4 = G4(H);
  for (int n = 0; n < N; n++) memcpy(g + (size_t)n * H4, b, sizeof(mv_real) * (size_t)H4);
  GEMM(0, 0, N, H4, K, 1.0f, xh, K, W, H4, 1.0f, g, H4);
  if (lab)
    for (int n = 0; n < N; n++)
      if (lab[n] >= 0) {
        const mv_real *row = Wg + (size_t)lab[n] * H4;
        mv_real *gn = g + (size_t)n * H4;
        for (int k = 0; k < H4; k++) gn[k] += row[k];
      }
  cells_fwd(N, H, g, c_prev, c, h);
}

/* One row of lstm_bwd_step, inlined with and without c_prev like cell_row. */
static inline __attribute__((always_inline)) void bwd_row(int H, const mv_real *restrict gn, const mv_real *restrict cn,
                                                          const mv_real *restrict cpn, const mv_real *restrict dhn,
                                                          mv_real *restrict dcn, mv_real *restrict dn) {
  for (int k = 0; k < H; k++) {
    mv_real i = gn[k], j = gn[H + k], f = gn[2 * H + k], o = gn[3 * H + k];
    mv_real tc = TANH(cn[k]);
    mv_real cp = cpn ? cpn[k] : 0.0f;
    mv_real dct = dcn[k] + dhn[k] * o * (1.0f - tc * tc);
    dn[k] = dct * j * i * (1.0f - i);
    dn[H + k] = dct * i * (1.0f - j * j);
    dn[2 * H + k] = dct * cp * f * (1.0f - f);
    dn[3 * H + k] = dhn[k] * tc * o * (1.0f - o);
    dcn[k] = dct * f;
  }
}

/* dh: total gradient on h_t; dc: in = gradient on c_t from the later step,
 * out = gradient on c_{t-1}. dG: gradient on the pre-activations. */
MV_ISA_CLONES static void lstm_bwd_step(int N, int H, const mv_real *g, const mv_real *c, const mv_real *c_prev,
                                        const mv_real *dh, mv_real *dc, mv_real *dG) {
  int H4 = G4(H);
  for (int n = 0; n < N; n++) {
    size_t x = (size_t)n * H;
    if (c_prev) bwd_row(H, g + (size_t)n * H4, c + x, c_prev + x, dh + x, dc + x, dG + (size_t)n * H4);
    else bwd_row(H, g + (size_t)n * H4, c + x, NULL, dh + x, dc + x, dG + (size_t)n * H4);
  }
}

/* One layer over T steps when its x parts are already in xh (layer-outer
 * order). h0/c0: [N, H] or NULL (zeros). reverse: time runs T-1 .. 0. */
void layer_fwd(int T, int N, int xin, int H, const mv_real *W, const mv_real *b, mv_real *xh, mv_real *g, mv_real *c,
               mv_real *h, const mv_real *h0, const mv_real *c0, int reverse) {
  int K = xin + H;
  for (int s = 0; s < T; s++) {
    int t = reverse ? T - 1 - s : s, tp = reverse ? t + 1 : t - 1;
    const mv_real *hp = s ? h + (size_t)tp * N * H : h0;
    const mv_real *cp = s ? c + (size_t)tp * N * H : c0;
    mv_real *x = xh + (size_t)t * N * K;
    for (int n = 0; n < N; n++) {
      if (hp) memcpy(x + (size_t)n * K + xin, hp + (size_t)n * H, sizeof(mv_real) * (size_t)H);
      else memset(x + (size_t)n * K + xin, 0, sizeof(mv_real) * (size_t)H);
    }
    lstm_fwd_step(N, K, H, W, b, x, NULL, NULL, cp, g + (size_t)t * N * G4(H), c + (size_t)t * N * H,
                  h + (size_t)t * N * H);
  }
}

bwd_scratch scratch_of(mv_vae_ws *w, int second) {
  bwd_scratch s = {second ? w->dG2 : w->dG, second ? w->dhrec2 : w->dhrec, second ? w->dcar2 : w->dcar,
                   second ? w->tmp2 : w->tmp};
  return s;
}

/* The recurrence of layer_bwd for rows n0 .. n1-1 of N: dG (the gradients on the
 * pre-activations) for every step, dh0/dc0 (if given) on the initial state. Rows are
 * independent: two row ranges may run side by side on the same scratch. */
void layer_bwd_rows(bwd_scratch sc, int T, int N, int n0, int n1, int xin, int H, const mv_real *W, const mv_real *g,
                    const mv_real *c, const mv_real *c0, const mv_real *dh, mv_real *dh0, mv_real *dc0,
                    int reverse) {
  int H4 = G4(H), R = n1 - n0;
  size_t rh = (size_t)R * H;
  mv_real *dhrec = sc.dhrec + (size_t)n0 * H, *dc = sc.dcar + (size_t)n0 * H, *dht = sc.tmp + (size_t)n0 * H;
  memset(dhrec, 0, sizeof(mv_real) * rh);
  memset(dc, 0, sizeof(mv_real) * rh);
  for (int s = T - 1; s >= 0; s--) {
    int t = reverse ? T - 1 - s : s, tp = reverse ? t + 1 : t - 1;
    size_t r0 = (size_t)t * N + n0;
    const mv_real *cp = s ? c + ((size_t)tp * N + n0) * H : c0 ? c0 + (size_t)n0 * H : NULL;
    const mv_real *dh_t = dh + r0 * H;
    for (size_t k = 0; k < rh; k++) dht[k] = dh_t[k] + dhrec[k];
    mv_real *dGt = sc.dG + r0 * H4;
    lstm_bwd_step(R, H, g + r0 * H4, c + r0 * H, cp, dht, dc, dGt);
    GEMM(0, 1, R, H, H4, 1.0f, dGt, H4, W + (size_t)xin * H4, H4, 0.0f, dhrec, H);
  }
  if (dh0) memcpy(dh0 + (size_t)n0 * H, dhrec, sizeof(mv_real) * rh);
  if (dc0) memcpy(dc0 + (size_t)n0 * H, dc, sizeof(mv_real) * rh);
}

/* The rest of layer_bwd, over all rows at once: dW, db, the gather rows, dx. */
void layer_bwd_weights(bwd_scratch sc, int T, int N, int xin, int H, const mv_real *W, mv_real *dW, mv_real *db,
                       const mv_real *xh, mv_real *dx, const int32_t *lab, mv_real *dWg) {
  int K = xin + H, H4 = G4(H);
  const mv_real *dG = sc.dG;
  int64_t R = (int64_t)T * N;
  GEMM(1, 0, K, H4, R, 1.0f, xh, K, dG, H4, 1.0f, dW, H4);
  for (int64_t r = 0; r < R; r++) {
    const mv_real *d = dG + r * H4;
    for (int k = 0; k < H4; k++) db[k] += d[k];
  }
  if (lab)
    for (int64_t r = 0; r < R; r++)
      if (lab[r] >= 0) {
        mv_real *row = dWg + (size_t)lab[r] * H4;
        const mv_real *d = dG + r * H4;
        for (int k = 0; k < H4; k++) row[k] += d[k];
      }
  if (dx && xin > 0) GEMM(0, 1, R, xin, H4, 1.0f, dG, H4, W, H4, 0.0f, dx, xin);
}

void layer_bwd(bwd_scratch sc, int T, int N, int xin, int H, const mv_real *W, mv_real *dW, mv_real *db,
               const mv_real *xh, const mv_real *g, const mv_real *c, const mv_real *c0, const mv_real *dh, mv_real *dx,
               mv_real *dh0, mv_real *dc0, int reverse, const int32_t *lab, mv_real *dWg) {
  layer_bwd_rows(sc, T, N, 0, N, xin, H, W, g, c, c0, dh, dh0, dc0, reverse);
  layer_bwd_weights(sc, T, N, xin, H, W, dW, db, xh, dx, lab, dWg);
}

/* out[r] = x[r] @ W + b for R rows */
void dense_fwd(int64_t R, int in, int out, const mv_real *x, const mv_real *W, const mv_real *b, mv_real *y) {
  for (int64_t r = 0; r < R; r++) memcpy(y + r * out, b, sizeof(mv_real) * (size_t)out);
  GEMM(0, 0, R, out, in, 1.0f, x, in, W, out, 1.0f, y, out);
}

/* dW += x^T dy, db += sum dy, dx (+)= dy W^T (accumulate if dx_beta == 1) */
void dense_bwd(int64_t R, int in, int out, const mv_real *x, const mv_real *W, const mv_real *dy, mv_real *dW, mv_real *db,
               mv_real *dx, mv_real dx_beta) {
  GEMM(1, 0, in, out, R, 1.0f, x, in, dy, out, 1.0f, dW, out);
  for (int64_t r = 0; r < R; r++)
    for (int k = 0; k < out; k++) db[k] += dy[r * out + k];
  if (dx) GEMM(0, 1, R, in, out, 1.0f, dy, out, W, out, dx_beta, dx, in);
}

/* ---- encoder ---------------------------------------------------------------------- */
/* Scales x [n] by a dropout mask when this forward drops out. */
void drop_apply(mv_real *x, const mv_real *mask, int n) {
  for (int q = 0; q < n; q++) x[q] *= mask[q];
}
