/*
 * mv.h -- public C API of the musicvae core.
 *
 * Rules (see docs/design.md):
 *  - No lua.h here or in any core source file; the Lua binding lives in csrc/lua/.
 *  - The core never exits, aborts, prints or longjmps. Fallible functions return
 *    an int status (MV_OK == 0, negative on error) and, when given a non-NULL
 *    mv_err, write a one-line message into it.
 *  - Row-major float32. Sizes and indices are int64_t.
 *  - Whoever calls mv_X_new calls mv_X_free. Tensor headers (mv_tensor) never
 *    own memory: the caller owns the data they point at.
 *  - All randomness goes through an explicit mv_rng.
 */
#ifndef MV_H
#define MV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MV_VERSION "0.1.0"

/* ---- status codes and errors ------------------------------------------ */
enum {
  MV_OK = 0,
  MV_ENOMEM = -1,       /* allocation failed */
  MV_EINVAL = -2,       /* bad argument (programmer error) */
  MV_ESHAPE = -3,       /* shapes do not fit (programmer error) */
  MV_EIO = -4,          /* file could not be read or written */
  MV_EFORMAT = -5,      /* malformed or unsupported data in a file */
  MV_ERANGE = -6,       /* index or value out of range */
  MV_EUNSUPPORTED = -7, /* valid, but not supported by this build */
  MV_EVERSION = -8      /* written by a newer, incompatible version */
};

typedef struct mv_err {
  int code;
  char msg[256];
} mv_err;

/* Sets err (when non-NULL) and returns code. printf-style message. */
int mv_seterr(mv_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
const char *mv_strerror(int code);

/* ---- tensors ------------------------------------------------------------ */
#define MV_MAXDIM 4

/* A strided view over float32 memory owned by someone else. ndim == 0 is a
 * scalar (one element). Strides are in elements. */
typedef struct mv_tensor {
  float *data;
  int ndim;
  int64_t size[MV_MAXDIM];
  int64_t stride[MV_MAXDIM];
} mv_tensor;

/* Validates a shape (0 <= ndim <= MV_MAXDIM, sizes >= 0, no int64 overflow of
 * the element count or byte count) and returns the element count in *numel. */
int mv_shape_check(int ndim, const int64_t *size, int64_t *numel, mv_err *err);
/* Makes t a contiguous row-major header over data (which must hold numel). */
int mv_tensor_init(mv_tensor *t, float *data, int ndim, const int64_t *size, mv_err *err);
int64_t mv_tensor_numel(const mv_tensor *t);
int mv_tensor_is_contiguous(const mv_tensor *t);
int mv_tensor_same_shape(const mv_tensor *a, const mv_tensor *b);
/* "[2,3,4]" into buf (always NUL-terminated). */
void mv_shape_str(char *buf, size_t n, const mv_tensor *t);

/* Views: fill *out, share data. dim indices are 0-based here. */
int mv_tensor_narrow(mv_tensor *out, const mv_tensor *t, int dim, int64_t start, int64_t len, mv_err *err);
int mv_tensor_select(mv_tensor *out, const mv_tensor *t, int dim, int64_t index, mv_err *err);
int mv_tensor_transpose(mv_tensor *out, const mv_tensor *t, int d0, int d1, mv_err *err);
/* Same elements, new shape; t must be contiguous. */
int mv_tensor_view(mv_tensor *out, const mv_tensor *t, int ndim, const int64_t *size, mv_err *err);

/* Element access by a full index (0-based). */
float *mv_tensor_at(const mv_tensor *t, const int64_t *idx);

/* Elementwise (any strides; out may alias an input; shapes must match). */
int mv_tensor_copy(mv_tensor *dst, const mv_tensor *src, mv_err *err);
void mv_tensor_fill(mv_tensor *t, float v);
/* out = a + alpha * b */
int mv_tensor_add(mv_tensor *out, const mv_tensor *a, const mv_tensor *b, float alpha, mv_err *err);
/* out = a * b (elementwise) */
int mv_tensor_mul(mv_tensor *out, const mv_tensor *a, const mv_tensor *b, mv_err *err);
/* out = a * s */
int mv_tensor_scale(mv_tensor *out, const mv_tensor *a, float s, mv_err *err);
/* Sum of all elements, accumulated in double. */
double mv_tensor_sum_all(const mv_tensor *t);
/* out has t's shape without `dim`; reduction in double. */
int mv_tensor_sum_dim(mv_tensor *out, const mv_tensor *t, int dim, int mean, mv_err *err);
/* out (t's shape without dim) receives the 0-based index of the maximum along
 * dim as a float; the first maximum wins; NaN counts as the maximum. */
int mv_tensor_argmax_dim(mv_tensor *out, const mv_tensor *t, int dim, mv_err *err);

/* C = alpha * op(A) op(B) + beta * C for 2-D tensors, op = transpose if tX.
 * Any 2-D strides: unit-stride rows or columns go straight to SGEMM (a
 * transposed view costs nothing), others are copied. */
int mv_tensor_matmul(mv_tensor *c, const mv_tensor *a, int ta, const mv_tensor *b, int tb,
                     float alpha, float beta, mv_err *err);

/* ---- BLAS ---------------------------------------------------------------- */
/* The core does not link OpenBLAS: it loads it at run time, after choosing
 * OPENBLAS_CORETYPE from the CPU's features (unless the user set it, or the
 * host process already has OpenBLAS loaded). mv_blas_init is idempotent and
 * thread-safe; every BLAS entry point calls it. It never fails: without
 * OpenBLAS, a portable built-in GEMM is used and blas_info says so. */
typedef struct mv_blas_info {
  char core[64];     /* kernel name reported by OpenBLAS, or "builtin" */
  char how[192];     /* how the kernel was chosen */
  char library[256]; /* the library file, or the reason none was loaded */
  char config[192];  /* openblas_get_config() */
  int threads;
  int cpu_avx2, cpu_avx512; /* CPU (and OS) support */
} mv_blas_info;

void mv_blas_init(void);
void mv_blas_get_info(mv_blas_info *info);
void mv_blas_set_num_threads(int n);
int mv_blas_get_num_threads(void);
/* Row-major SGEMM: C[m,n] = alpha * op(A) op(B) + beta * C.
 * lda/ldb/ldc are row strides of the stored matrices (as CBLAS row-major). */
void mv_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
              const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
/* The reference loop the tests compare against (double accumulation). */
void mv_sgemm_naive(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                    const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* Monotonic wall clock in seconds. */
double mv_clock(void);

/* ---- random numbers ------------------------------------------------------- */
/* xoshiro256** seeded through SplitMix64 from (seed, purpose, index): every
 * (seed, purpose, index) triple is its own independent stream, the same on
 * every run and machine. */
typedef struct mv_rng {
  uint64_t s[4];
} mv_rng;

#define MV_RNG_STATE_BYTES 32

/* FNV-1a 64 of n bytes (purposes, dataset checksums). */
uint64_t mv_fnv1a64(const void *data, size_t n);
/* FNV-1a 64 of a purpose name ("z", "categorical", "dropout", "data", ...). */
uint64_t mv_rng_purpose(const char *name);
void mv_rng_seed(mv_rng *r, uint64_t seed, uint64_t purpose, uint64_t index);
uint64_t mv_rng_next(mv_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double mv_rng_uniform(mv_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t mv_rng_below(mv_rng *r, uint64_t n);
/* Standard normal (Box-Muller on two fresh uniforms; no cached spare, so the
 * state is just s[]). */
double mv_rng_normal(mv_rng *r);
/* Index drawn with probability w[i] / sum(w); weights must be >= 0 with a
 * positive finite sum, else MV_EINVAL. Uses one uniform. */
int mv_rng_categorical(mv_rng *r, const float *w, int64_t n, int64_t stride, int64_t *out, mv_err *err);
/* Little-endian serialisation of the state. */
void mv_rng_save(const mv_rng *r, unsigned char out[MV_RNG_STATE_BYTES]);
int mv_rng_load(mv_rng *r, const unsigned char *in, size_t n, mv_err *err);

/* ---- half precision --------------------------------------------------------- */
uint16_t mv_f32_to_f16(float f);  /* round to nearest even; NaN stays NaN */
float mv_f16_to_f32(uint16_t h);
uint16_t mv_f32_to_bf16(float f); /* round to nearest even */
float mv_bf16_to_f32(uint16_t h);
/* n halves stored little-endian at src (any alignment) to floats; F16C when the CPU has it. */
void mv_f16_to_f32_n(const void *src, float *out, size_t n);
/* 1 when every value is exactly an f16 value (a NaN is not). */
int mv_all_f16(const float *w, size_t n);

/* ---- safetensors ----------------------------------------------------------- */
/* The format: an 8-byte little-endian header length N, N bytes of JSON
 * ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}),
 * then the data block. Offsets are relative to the data block. The reader
 * validates everything and never trusts a length. */
typedef enum mv_dtype {
  MV_DT_F32 = 0, MV_DT_F16, MV_DT_BF16, MV_DT_F64,
  MV_DT_I8, MV_DT_U8, MV_DT_I16, MV_DT_U16, MV_DT_I32, MV_DT_U32, MV_DT_I64, MV_DT_U64,
  MV_DT_BOOL, MV_DT_F8_E4M3, MV_DT_F8_E5M2,
  MV_DT_COUNT
} mv_dtype;

const char *mv_dtype_name(mv_dtype dt); /* "F32", ... */
int mv_dtype_size(mv_dtype dt);
int mv_dtype_from_name(const char *s, size_t len, mv_dtype *out); /* 1 if known */

#define MV_ST_MAXDIM 8
#define MV_ST_MAX_HEADER (100u * 1024u * 1024u)
/* Readers refuse more tensors or __metadata__ entries than this (duplicates are found by sorting). */
#define MV_ST_MAX_TENSORS (1 << 18)
#define MV_ST_MAX_META (1 << 18)

typedef struct mv_st_entry {
  char *name;
  mv_dtype dtype;
  int ndim;
  int64_t shape[MV_ST_MAXDIM];
  int64_t numel;
  uint64_t begin, end;  /* byte offsets in the data block */
  const unsigned char *data;
} mv_st_entry;

typedef struct mv_st_file mv_st_file;

/* Parses a whole file held in memory. With copy == 0 the buffer must outlive
 * the result; with copy != 0 it is copied. */
int mv_st_parse(mv_st_file **out, const void *buf, size_t len, int copy, mv_err *err);
int mv_st_read(mv_st_file **out, const char *path, mv_err *err);
void mv_st_free(mv_st_file *f);
int mv_st_count(const mv_st_file *f);             /* tensors, in data-offset order */
const mv_st_entry *mv_st_get(const mv_st_file *f, int i);
const mv_st_entry *mv_st_find(const mv_st_file *f, const char *name);
int mv_st_meta_count(const mv_st_file *f);
void mv_st_meta_get(const mv_st_file *f, int i, const char **key, const char **value);
const char *mv_st_meta_find(const mv_st_file *f, const char *key);
/* Converts an F32/F16/BF16 entry to float32 (out holds numel floats). */
int mv_st_entry_to_f32(const mv_st_entry *e, float *out, mv_err *err);

typedef struct mv_st_writer mv_st_writer;
mv_st_writer *mv_st_writer_new(void);
void mv_st_writer_free(mv_st_writer *w);
/* Copies the values (converted to dtype: F32, F16 or BF16). */
int mv_st_writer_add(mv_st_writer *w, const char *name, mv_dtype dtype, const mv_tensor *t, mv_err *err);
int mv_st_writer_meta(mv_st_writer *w, const char *key, const char *value, mv_err *err);
/* The whole file in a malloc'd buffer (caller frees). */
int mv_st_writer_bytes(mv_st_writer *w, unsigned char **out, size_t *len, mv_err *err);
/* Atomic: temporary file in the same folder, fsync, rename. */
int mv_st_writer_save(mv_st_writer *w, const char *path, mv_err *err);

/* SHA-256 of a buffer. */
void mv_sha256(const void *data, size_t n, unsigned char out[32]);
/* "sha-ni" (the x86 SHA extensions, when the CPU has them) or "portable"; the test hook
 * mv_sha256_use chooses one (MV_EINVAL when this CPU cannot). MUSICVAE_ISA=portable forces it. */
const char *mv_sha256_impl(void);
int mv_sha256_use(const char *name);

/* Reads a whole regular file (at most max_size bytes) into a malloc'd buffer. */
int mv_read_file(const char *path, size_t max_size, unsigned char **out, size_t *len, mv_err *err);

/* Atomic file writes: fill(tmp, ctx, err) writes a temporary file beside path (returning MV_OK,
 * or a code with err set), which is then fsync'd and renamed into place; on any failure nothing
 * is left behind. mv_write_file_atomic writes len bytes that way. */
int mv_write_atomic_with(const char *path, int (*fill)(const char *tmp, void *ctx, mv_err *err), void *ctx,
                         mv_err *err);
int mv_write_file_atomic(const char *path, const void *data, size_t len, mv_err *err);
/* mkdir -p: creates path and its missing parents (no shell). */
int mv_mkdir_p(const char *path, mv_err *err);


/* ---- MIDI files (mv_midi.c; reading goes through a validating pre-pass) ----- */
typedef struct mv_midi_note {
  int64_t on_tick, off_tick;
  double on_time, off_time; /* seconds through the tempo map */
  int pitch, velocity, channel, track; /* channel 0-15 (9 = MIDI channel 10), track 0-based */
} mv_midi_note;

typedef struct mv_midi_tempo {
  int64_t tick;
  double time, qpm;
  int usec_per_quarter;
} mv_midi_tempo;

typedef struct mv_midi_timesig {
  int64_t tick;
  double time;
  int numerator, denominator;
} mv_midi_timesig;

typedef struct mv_midi {
  int format, ppq, ntracks;
  int64_t nnotes;
  mv_midi_note *notes; /* sorted by onset tick, then track, then pitch */
  int ntempos;
  mv_midi_tempo *tempos; /* sorted by tick */
  int ntimesigs;
  mv_midi_timesig *timesigs;
  int64_t end_tick; /* the last note end */
  double end_time;
  int nwarnings;
  char **warnings; /* what was skipped or repaired */
} mv_midi;

/* Never aborts, prints or allocates without bound, whatever the bytes. */
int mv_midi_parse(mv_midi **out, const void *buf, size_t len, mv_err *err);
int mv_midi_read(mv_midi **out, const char *path, mv_err *err);
void mv_midi_free(mv_midi *m);
double mv_midi_seconds(const mv_midi *m, int64_t tick);

typedef struct mv_midi_wnote {
  int64_t tick, dur;
  int pitch, velocity;
} mv_midi_wnote;

typedef struct mv_midi_write_opts {
  int ppq;
  double qpm;
  int ts_num, ts_den;
  int channel; /* 0-15 */
  const char *track_name;
} mv_midi_write_opts;

/* Format 1: a conductor track (tempo, time signature at tick 0) and one named
 * note track. Written to a temporary file and renamed into place. */
int mv_midi_write(const char *path, const mv_midi_write_opts *o, const mv_midi_wnote *notes, int64_t n,
                  mv_err *err);

/* ---- the drum pipeline (mv_drums.c), as Magenta's DrumsConverter --------- */
/* A file whose notes span more quantized steps than this is refused (MV_EFORMAT)
 * by mv_drum_labels, mv_drum_groove and mv_drum_extract before anything is
 * allocated per step: 8,192 bars of 16 steps, 4.5 hours at 120 qpm. */
#define MV_MAX_STEPS (1 << 17)

typedef struct mv_drum_opts {
  int8_t pitch_class[128]; /* drum class 0-8 of each pitch, -1 = not kept */
  int steps_per_quarter;   /* 4 */
  int steps_per_bar;       /* 16: pieces whose meter gives another count are dropped */
  int drum_channel;        /* 0-15, or -1 for every channel */
  int gap_bars;            /* 1: a track ends at this many silent bars */
  int max_bars;            /* tracks longer than this many bars are cut (magenta: 100); 0 = no limit */
} mv_drum_opts;

typedef struct mv_drum_track {
  int piece;          /* which piece of the time-change split */
  int64_t piece_tick; /* the piece's first tick */
  int64_t start_step; /* first step, from the piece start (bar-aligned) */
  int64_t len;        /* steps, a multiple of steps_per_bar */
  uint16_t *labels;   /* len labels (bit c = class c) */
} mv_drum_track;

enum { MV_DROP_NONE = 0, MV_DROP_NO_NOTES, MV_DROP_NO_DRUMS, MV_DROP_METER };

typedef struct mv_drum_result {
  int ntracks;
  mv_drum_track *tracks;
  int npieces, pieces_meter; /* pieces, and pieces dropped by the meter filter */
  int64_t steps_truncated;   /* steps cut by max_bars */
  int drop;                  /* MV_DROP_* when there are no tracks */
  char detail[128];
} mv_drum_result;

int64_t mv_quantize_tick(int64_t tick, int ppq, int steps_per_quarter);

/* GrooVAE's view of the whole file (no windowing): for every step and class,
 * the velocity (0 = no hit) of the loudest note and its offset from the grid,
 * 2 * (grid time - onset) / step length in (-1, 1], positive when early, from
 * exact ticks. Arrays are [steps * 9]; steps as mv_drum_labels. */
int mv_drum_groove(uint8_t **velocity, float **offset, int64_t *steps, const mv_midi *m, const mv_drum_opts *o,
                   mv_err *err);
int mv_drum_extract(mv_drum_result *r, const mv_midi *m, const mv_drum_opts *o, mv_err *err);
void mv_drum_result_free(mv_drum_result *r);
/* Labels of the whole file, no windowing: steps = the last note end quantized
 * (an end equal to its start bumped by one), as magenta counts them. */
int mv_drum_labels(uint16_t **labels, int64_t *steps, const mv_midi *m, const mv_drum_opts *o, mv_err *err);

#ifdef __cplusplus
}
#endif
#endif
