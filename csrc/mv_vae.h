/* mv_vae.h -- the hierarchical MusicVAE (Magenta's layout and names). */
#ifndef MV_VAE_H
#define MV_VAE_H

#include "mv.h"

/* MV_VAE_DOUBLE (tests only) compiles the same model in double precision under
 * other names, for gradient checks without float32 noise. */
#ifdef MV_VAE_DOUBLE
#define mv_real double
#define mv_vae mv_vae64
#define mv_vae_ws mv_vae64_ws
#define mv_vae_new mv_vae64_new
#define mv_vae_free mv_vae64_free
#define mv_vae_init mv_vae64_init
#define mv_vae_find mv_vae64_find
#define mv_vae_zero_grad mv_vae64_zero_grad
#define mv_vae_params_changed mv_vae64_params_changed
#define mv_vae_infer_isa mv_vae64_infer_isa
#define mv_vae_infer_f16 mv_vae64_infer_f16
#define mv_vae_ws_new mv_vae64_ws_new
#define mv_vae_ws_free mv_vae64_ws_free
#define mv_vae_ws_batch mv_vae64_ws_batch
#define mv_vae_train_opts mv_vae64_train_opts
#define mv_vae_forward mv_vae64_forward
#define mv_vae_logits mv_vae64_logits
#define mv_vae_decode_logits mv_vae64_decode_logits
#define mv_vae_mu mv_vae64_mu
#define mv_vae_inputs mv_vae64_inputs
#define mv_vae_sigma mv_vae64_sigma
#define mv_vae_z mv_vae64_z
#define mv_vae_encode mv_vae64_encode
#define mv_vae_decode mv_vae64_decode
#define mv_vae_adam_step mv_vae64_adam_step
#define mv_vae_adam_alloc mv_vae64_adam_alloc
#define mv_vae_config_check mv_vae64_config_check
#define mv_vae_gen mv_vae64_gen
#define mv_vae_gen_new mv_vae64_gen_new
#define mv_vae_gen_free mv_vae64_gen_free
#define mv_vae_gen_step mv_vae64_gen_step
#define mv_vae_gen_pos mv_vae64_gen_pos
#define mv_vae_gen_total mv_vae64_gen_total
#define mv_vae_gen_labels mv_vae64_gen_labels
#define mv_vae_forward_groove mv_vae64_forward_groove
#define mv_vae_encode_x mv_vae64_encode_x
#define mv_vae_decode_groove mv_vae64_decode_groove
#define mv_vae_outputs mv_vae64_outputs
#define mv_vae_dropout_masks mv_vae64_dropout_masks
#else
#define mv_real float
#endif

#define MV_MAXLAYERS 4
#define MV_MAXPARAMS 64

typedef struct mv_vae_config {
  int groove;      /* 0: categorical, hierarchical decoder; 1: GrooVAE, flat decoder, 27-float steps */
  int input_depth; /* encoder input: 10 (9 class bits + "nothing hit"); groove: 27 */
  int vocab;       /* decoder classes: 512; groove: the output depth, 27 = hits | velocities | offsets */
  int z;           /* latent size */
  int bars;        /* U: conductor steps */
  int steps;       /* T: steps per bar */
  int enc_layers, enc[MV_MAXLAYERS];
  int cond_layers, cond[MV_MAXLAYERS];
  int dec_layers, dec[MV_MAXLAYERS];
} mv_vae_config;

typedef struct mv_param {
  char name[112];
  int ndim;
  int64_t shape[2];
  int64_t offset, numel;
  int init; /* 0 zeros, 1 glorot uniform, 2 normal(0, 0.001) */
} mv_param;

/* LSTM weights inside the flat block: kernel [in + H, 4H] (rows [x ; h]), bias [4H]. */
typedef struct mv_lstm_w {
  int in, H;
  int kernel, bias; /* parameter indices */
} mv_lstm_w;

typedef struct mv_dense_w {
  int in, out;
  int kernel, bias;
} mv_dense_w;

typedef struct mv_vae {
  mv_vae_config cfg;
  int nparams;
  mv_param p[MV_MAXPARAMS];
  int64_t nfloats;
  mv_real *params, *grads;
  mv_real *adam_m, *adam_v; /* allocated by mv_vae_adam_alloc (the first Adam step) */
  int64_t adam_t;
  mv_lstm_w enc_fw[MV_MAXLAYERS], enc_bw[MV_MAXLAYERS];
  mv_dense_w mu, sigma;
  mv_dense_w cond_init, dec_init, out;
  mv_lstm_w cond[MV_MAXLAYERS], dec[MV_MAXLAYERS];
  /* inference: the decoder packed for params version `packed`, the encoder's recurrent
   * weights for version `epacked` (float build only) */
  uint64_t version, packed, epacked;
  struct mv_pack *pack;
  struct mv_rnn *epack[MV_MAXLAYERS][2];
} mv_vae;

typedef struct mv_vae_ws mv_vae_ws; /* per-batch-size workspace, apart from the weights */

int mv_vae_config_check(const mv_vae_config *c, mv_err *err);
int mv_vae_new(mv_vae **out, const mv_vae_config *c, mv_err *err);
void mv_vae_free(mv_vae *m);
/* Magenta's initialisers: glorot-uniform LSTM kernels and output projection,
 * N(0, 0.001) for the mu/sigma heads and the state-from-embedding layers, zero biases. */
void mv_vae_init(mv_vae *m, mv_rng *r);
int mv_vae_find(const mv_vae *m, const char *name);
void mv_vae_zero_grad(mv_vae *m);
/* Tell the model its parameters were written from outside (mv_vae_init and
 * Adam do this themselves): decoding re-packs its weights. */
void mv_vae_params_changed(mv_vae *m);
/* Decoding's kernel: "avx512", "avx2" or "portable"; and whether the packed
 * decoder weights are f16 (after a decode). */
const char *mv_vae_infer_isa(void);
int mv_vae_infer_f16(const mv_vae *m);

int mv_vae_ws_new(mv_vae_ws **out, const mv_vae *m, int batch, mv_err *err);
void mv_vae_ws_free(mv_vae_ws *w);
int mv_vae_ws_batch(const mv_vae_ws *w);

typedef struct mv_vae_train_opts {
  const mv_real *eps;       /* [B, z] standard normal draws (NULL: z = mu) */
  mv_real p_sample;         /* scheduled-sampling probability */
  const mv_real *coins;     /* [B, U, T] uniforms: sample the input where coin < p_sample */
  const mv_real *draws;     /* [B, U, T] uniforms for the categorical draw of a sampled input */
  mv_real beta;             /* KL weight */
  mv_real free_nats;        /* free_bits * ln 2 */
  int backward;           /* also accumulate gradients into m->grads */
  mv_real keep_prob;        /* groove: dropout on every LSTM layer's input (1 or 0 = none) */
  mv_rng *dropout;          /* groove: the masks' stream (advanced), needed when keep_prob < 1 */
  const int32_t *enc_labels; /* categorical: [B, U*T] labels the encoder reads instead of the targets
                              * (a denoising input, e.g. with hits dropped); NULL = the targets */
} mv_vae_train_opts;

typedef struct mv_vae_stats {
  double loss, recon, kl, kl_cost; /* means over the batch (recon and KL summed over steps / dims) */
  double accuracy;                 /* argmax == target over all steps */
  int64_t sampled_inputs;          /* inputs replaced by samples */
} mv_vae_stats;

/* labels: [B, U*T] (0..vocab-1). Teacher forcing inside each bar, the first
 * input of every bar the true previous label (zeros at step 0), with
 * scheduled sampling per bar as Magenta. Fills per-sequence recon/kl if given. */
int mv_vae_forward(mv_vae *m, mv_vae_ws *w, const int32_t *labels, const mv_vae_train_opts *o, mv_vae_stats *st,
                   mv_real *recon_per_seq, mv_real *kl_per_seq, mv_err *err);
/* After mv_vae_forward: the logits [U*T rows per ..] of sequence b, step s. */
const mv_real *mv_vae_logits(const mv_vae_ws *w, int b, int s);
/* After mv_vae_decode: the last bar's logits [vocab] of row b at step t (0 <= t < steps). */
const mv_real *mv_vae_decode_logits(const mv_vae_ws *w, int b, int t);
/* The decoder inputs of the last forward: [T, U*B] labels (-1 = zeros), row n = u * B + b. */
const int32_t *mv_vae_inputs(const mv_vae_ws *w);
const mv_real *mv_vae_mu(const mv_vae_ws *w);    /* [B, z] */
const mv_real *mv_vae_sigma(const mv_vae_ws *w); /* [B, z] */
const mv_real *mv_vae_z(const mv_vae_ws *w);     /* [B, z] */

/* GrooVAE (cfg.groove): x [B, L, D] encoder inputs (the full groove, or a
 * transform of it such as humanize's hits only), target [B, L, V] the groove
 * to reconstruct: V = 3C floats per step, hits (0/1) | velocities (0-1) |
 * offsets (-1..1]. The flat decoder's input at step t is [target[t-1] (zeros
 * at t = 0), z]. Loss per step: sum over classes of log loss (eps 1e-7) on
 * sigmoid(hit logit) + (vel - sigmoid)^2 + (off - tanh)^2, as magenta.
 * st->accuracy is the hit accuracy over step x class cells. */
int mv_vae_forward_groove(mv_vae *m, mv_vae_ws *w, const mv_real *x, const mv_real *target, const mv_vae_train_opts *o,
                          mv_vae_stats *st, mv_real *recon_per_seq, mv_real *kl_per_seq, mv_err *err);
/* After a groove forward or decode: sigmoid(hit logit), sigmoid(velocity), tanh(offset) [V] at sequence b, step s. */
const mv_real *mv_vae_outputs(const mv_vae_ws *w, int b, int s);
/* The dropout scales (0 or 1/keep) of the last groove forward, for layer l of the
 * decoder (enc = 0) or of the encoder's direction d (enc = 1 + d); NULL without dropout. */
const mv_real *mv_vae_dropout_masks(const mv_vae_ws *w, int enc, int l);
/* Groove encoder only: mu, sigma [B, z] for inputs x [B, L, D]. */
int mv_vae_encode_x(mv_vae *m, mv_vae_ws *w, const mv_real *x, mv_real *mu, mv_real *sigma, mv_err *err);
/* Groove free-running decoding of z [B, z] into out [B, L, V]: hits are
 * Bernoulli(sigmoid(logit / T)) draws on rngs[b] (T = 0: logit > 0), velocities
 * and offsets as predicted (for every class; a caller keeps them where hit);
 * each step's input is the previous step's output. hits [B, L, C] (or NULL)
 * fixes the hits instead (humanize: velocities and offsets for given hits).
 * hit_prob [B, L, C] (or NULL) receives each step's sigmoid(hit logit). */
int mv_vae_decode_groove(mv_vae *m, mv_vae_ws *w, const mv_real *z, mv_real temperature, mv_rng *rngs,
                         const mv_real *hits, mv_real *out, mv_real *hit_prob, mv_err *err);

/* Encoder only: mu, sigma [B, z] for labels [B, U*T]. */
int mv_vae_encode(mv_vae *m, mv_vae_ws *w, const int32_t *labels, mv_real *mu, mv_real *sigma, mv_err *err);

/* Free-running decoding of z [B, z] into labels [B, U*T]: each step's input is
 * the previous step's output, across bar boundaries too (step 0: zeros).
 * temperature 0 = argmax; otherwise categorical draws from softmax(logits / T)
 * with rngs[b] for sequence b. */
int mv_vae_decode(mv_vae *m, mv_vae_ws *w, const mv_real *z, mv_real temperature, mv_rng *rngs, int32_t *labels,
                  mv_err *err);

/* Incremental generation from one z [z]: mv_vae_gen_step produces up to n
 * more steps (returns how many), with exactly the arithmetic of mv_vae_decode
 * at batch 1 and the given stream. Each generator owns its workspace. */
typedef struct mv_vae_gen mv_vae_gen;
int mv_vae_gen_new(mv_vae_gen **out, mv_vae *m, const mv_real *z, mv_real temperature, const mv_rng *rng, mv_err *err);
void mv_vae_gen_free(mv_vae_gen *g);
int mv_vae_gen_step(mv_vae_gen *g, int n);
int mv_vae_gen_pos(const mv_vae_gen *g);
int mv_vae_gen_total(const mv_vae_gen *g);
const int32_t *mv_vae_gen_labels(const mv_vae_gen *g);

/* Global-norm clipping and Adam (TF defaults), as magenta's training op:
 * if the gradient norm is >= zero_above (or not finite) the gradients are
 * zeroed, else clipped to clip_norm; Adam then steps in both cases. */
typedef struct mv_adam_opts {
  mv_real lr, beta1, beta2, eps, clip_norm, zero_above;
} mv_adam_opts;
/* The defaults, the one place they are written (TF's Adam; magenta's learning rate, clip norm
 * and grad_norm_clip_to_zero): the binding starts from them and exports them to Lua's configs. */
#define MV_ADAM_LR 1e-3
#define MV_ADAM_BETA1 0.9
#define MV_ADAM_BETA2 0.999
#define MV_ADAM_EPS 1e-8
#define MV_ADAM_CLIP_NORM 1.0
#define MV_ADAM_ZERO_ABOVE 10000.0
#define MV_ADAM_DEFAULTS \
  {MV_ADAM_LR, MV_ADAM_BETA1, MV_ADAM_BETA2, MV_ADAM_EPS, MV_ADAM_CLIP_NORM, MV_ADAM_ZERO_ABOVE}
int mv_vae_adam_step(mv_vae *m, const mv_adam_opts *o, double *grad_norm, int *skipped, mv_err *err);
/* Allocates Adam's moments (zeros) if they are not yet: the one place they are allocated (the
 * first step does it, and so does the binding before it exposes or restores them). MV_ENOMEM. */
int mv_vae_adam_alloc(mv_vae *m, mv_err *err);

#endif
