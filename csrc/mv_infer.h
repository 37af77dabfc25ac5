/* mv_infer.h -- the categorical decoder's inference path (internal to the core).
 *
 * Decoding and incremental generation run on weights packed once per
 * parameter version: f16 when every decoder weight is exactly an f16 value
 * (the shipped models), else f32; converted to f32 in registers. Every output
 * element is one accumulator summed over its inputs in ascending order with
 * fused multiply-adds, whatever the batch size, the thread count or the
 * instruction set (AVX-512, AVX2, or the portable path): a sequence decodes to
 * the same floats alone or in any batch. Columns are split between the worker
 * threads of mv_pool.h (mv_blas_get_num_threads(), at most MV_INFER_MAXTHREADS). */
#ifndef MV_INFER_H
#define MV_INFER_H

#include "mv.h"
#include "mv_pool.h"

#define MV_INFER_MAXTHREADS MV_POOL_MAXTHREADS
#define MV_INFER_CB 128 /* columns per packed block */

typedef struct mv_pack mv_pack;

/* Layer sizes of the hierarchical decoder, as mv_vae's config. dense_in: layer 0's first vocab
 * rows multiply a float vector (the groove model's previous step) instead of a one-hot label. */
typedef struct mv_pack_shape {
  int vocab, E, layers, H[4];
  int z, clayers, cH[4]; /* the conductor (clayers 0: none); its top width is E */
  int dense_in;
} mv_pack_shape;

/* Weights as in the model (row-major [in, out]); kernels [in + H, 4H] with
 * layer 0's rows [one-hot (vocab) ; embedding (E) ; h (H)]. */
typedef struct mv_pack_src {
  const float *init_k, *init_b;          /* z_to_initial_state: [E, state], [state] */
  const float *lstm_k[4], *lstm_b[4];    /* per layer */
  const float *out_k, *out_b;            /* [H_top, vocab], [vocab] */
  const float *cinit_k, *cinit_b;        /* conductor's initial state: [z, cstate], [cstate] */
  const float *clstm_k[4], *clstm_b[4];  /* conductor layers; layer 0's input is a single zero */
} mv_pack_src;

int mv_pack_new(mv_pack **out, const mv_pack_shape *s, const mv_pack_src *w, mv_err *err);
void mv_pack_free(mv_pack *p);
int mv_pack_is_f16(const mv_pack *p);
const char *mv_infer_isa(void); /* "avx512", "avx2" or "portable" */
/* Test hooks, not thread-safe (call before decoding): use the named kernel
 * (MV_EINVAL when this CPU cannot run it; MUSICVAE_ISA sets the same from the
 * environment), and allow or forbid f16 packing for packs made after. */
int mv_infer_use_isa(const char *name);
void mv_infer_allow_f16(int allow);

/* Scratch floats a decoding of N rows needs (mv_infer_bar / mv_infer_step). */
size_t mv_infer_scratch(const mv_pack *p, int N);

/* The conductor for N rows of z [N, z]: the bar embeddings emb [bars, N, E]
 * (the top layer's outputs), as the training code's conductor. MV_ENOMEM. */
int mv_infer_conductor(const mv_pack *p, int N, int bars, const float *z, float *emb, float *scratch);

/* Start of a bar for N rows with embeddings emb [N, E]: the tanh'd initial
 * states S [N, state] (magenta's flatten order [c0, h0, c1, h1, ...]) and the
 * per-bar part of layer 0's gates (bias + embedding term) into gemb. */
void mv_infer_bar(const mv_pack *p, int N, const float *emb, float *S, float *gemb, float *scratch);
/* Floats of gemb for N rows. */
size_t mv_infer_gemb_size(const mv_pack *p, int N);

/* One decoder step for N rows: lab [N] the inputs (-1 = zeros); h_prev/c_prev
 * per layer [N, H] (the step before, or the initial state); writes h/c per
 * layer [N, H] and logits [N, vocab]. */
void mv_infer_step(const mv_pack *p, int N, const int32_t *lab, const float *gemb, const float *const *h_prev,
                   const float *const *c_prev, float *const *h, float *const *c, float *logits, float *scratch);
/* The same for a dense_in pack: prev [N, vocab] the float inputs of the step. */
void mv_infer_step_dense(const mv_pack *p, int N, const float *prev, const float *gemb, const float *const *h_prev,
                         const float *const *c_prev, float *const *h, float *const *c, float *logits, float *scratch);

/* One LSTM layer direction at inference (the encoder): its recurrent rows h . W_h packed like
 * the decoder's (f16 when every one is exactly an f16 value), the same per-element summation order
 * whatever the batch size. kernel [xin + H, 4H] as in the model. MV_ENOMEM. */
typedef struct mv_rnn mv_rnn;
int mv_rnn_new(mv_rnn **out, const float *kernel, int xin, int H, mv_err *err);
void mv_rnn_free(mv_rnn *r);
/* Scratch floats mv_rnn_run needs for N rows. */
size_t mv_rnn_scratch(const mv_rnn *r, int N);
/* T steps for N rows from the zero state, forward (t = 0 .. T-1) or reverse: xg [T, N, 4H] the input
 * part of the gates (x . W_x + b, the model's column order) in, h [T, N, H] out. One thread. */
void mv_rnn_run(const mv_rnn *r, int T, int N, const float *xg, int reverse, float *h, float *scratch);

#endif
