/*
 * mv_audio.h -- rendering drum notes to audio (mv_audio.c).
 *
 * FluidSynth is driven directly (fluid_synth_write_float, no audio driver) and
 * files are written with libsndfile. Both are optional at build time: without
 * them every call returns MV_EUNSUPPORTED and says which Debian package to
 * install. The core never prints: FluidSynth's process-wide log goes through
 * one handler installed by mv_audio_init() (idempotent, thread-safe), which
 * keeps the last message for the error of the call that failed.
 *
 * Timing: notes start on the synth block boundary nearest their time (64
 * frames, 1.45 ms at 44.1 kHz). A render is exactly loops * length + tail
 * seconds long (rounded to a frame); the last 20 ms of a tail fade out.
 */
#ifndef MV_AUDIO_H
#define MV_AUDIO_H

#include "mv.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MV_AUDIO_CLASSES 9

int mv_audio_have_synth(void);   /* 1 when built with FluidSynth */
int mv_audio_have_sndfile(void); /* 1 when built with libsndfile */
const char *mv_audio_synth_version(void);   /* "" without */
const char *mv_audio_sndfile_version(void); /* "" without */
void mv_audio_init(void);

/* One drum note, on MIDI channel 10. */
typedef struct mv_note_event {
  double time, dur; /* seconds from the loop start */
  int pitch, velocity; /* 0-127, 1-127 */
} mv_note_event;

/* A pattern as the Lua value holds it, 0-based. */
typedef struct mv_audio_pattern {
  const uint16_t *labels; /* [steps], bit c = class c */
  int64_t steps;
  int steps_per_bar; /* a multiple of 4 (4/4 bars) */
  double qpm;
  const float *velocity; /* [steps * 9] 0-127, < 0 = velocity_default; or NULL */
  const float *offset;   /* [steps * 9] in steps, positive = early; or NULL */
  int pitch[MV_AUDIO_CLASSES];
  int velocity_default; /* 80 when 0 */
} mv_audio_pattern;

/* The notes of a pattern (malloc'd; caller frees) and its length in seconds. A hit
 * sounds one step long; an early hit before time 0 starts at 0 (as midi.write). */
int mv_audio_pattern_events(mv_note_event **out, int64_t *n, double *length, const mv_audio_pattern *p,
                            mv_err *err);
/* A render (loops * length + tail) is at most an hour: its samples are held in memory (1.3 GB
 * of stereo float at 44.1 kHz). A MIDI file whose notes end later, or a longer render, is
 * refused with a one-line error before anything is allocated for it. */
#define MV_AUDIO_MAX_SECONDS 3600.0
/* Notes played in one render (notes * loops), each scheduled twice (on, off) before it starts
 * (128 MB of schedule at the limit); as many notes as the MIDI reader keeps from one file. */
#define MV_AUDIO_MAX_PLAYS (1 << 21)

/* The notes on channel (0-15, or -1 for all) of a MIDI file; *left_out counts the notes on
 * other channels. Length: the last note's end rounded up to a whole bar of the first meter.
 * qpm > 0 plays the file at that tempo (times scaled by its first tempo / qpm). A length
 * past MV_AUDIO_MAX_SECONDS is MV_ERANGE (a hostile file: one note after hours of silence). */
int mv_audio_midi_events(mv_note_event **out, int64_t *n, double *length, int64_t *left_out, const mv_midi *m,
                         int channel, double qpm, mv_err *err);

typedef struct mv_synth mv_synth;

typedef struct mv_synth_opts {
  const char *soundfont; /* a .sf2 (or .sf3) file */
  double rate;           /* 8000-96000 Hz */
  double gain;           /* FluidSynth's master gain, 0-10 */
  int polyphony;         /* 0 = FluidSynth's default (256) */
} mv_synth_opts;

/* Loads the SoundFont (samples of the drum kit only, on first use) and selects its
 * drum kit (bank 128, program 0, else the lowest program of bank 128) on channel 10. */
int mv_synth_new(mv_synth **out, const mv_synth_opts *o, mv_err *err);
void mv_synth_free(mv_synth *s);
double mv_synth_rate(const mv_synth *s);
const char *mv_synth_preset(const mv_synth *s, int *bank, int *program);
int mv_synth_set_gain(mv_synth *s, double gain, mv_err *err);

typedef struct mv_render_opts {
  double length; /* seconds of one loop */
  int loops;     /* the notes are played loops times, one length apart */
  double tail;   /* seconds after the last loop (release; its last 20 ms fade) */
} mv_render_opts;

/* Frames of a render at rate, or -1 for bad options. */
int64_t mv_render_frames(double rate, const mv_render_opts *o);
/* MV_OK, or MV_ERANGE when a render of n notes is past MV_AUDIO_MAX_SECONDS (loops * length +
 * tail) or MV_AUDIO_MAX_PLAYS (n * loops), MV_EINVAL for bad options: call it before allocating
 * mv_render_frames' buffer (mv_synth_render checks it too). */
int mv_render_check(const mv_render_opts *o, int64_t n, mv_err *err);
/* Renders into out: [frames * 2] interleaved stereo float32; frames must equal
 * mv_render_frames(rate, o). Every render starts from silence. */
int mv_synth_render(mv_synth *s, float *out, int64_t frames, const mv_note_event *ev, int64_t n,
                    const mv_render_opts *o, mv_err *err);

/* The libsndfile format for path's extension: .wav (16-bit PCM; bits 24, or 32 = float),
 * .flac (16 or 24 bits), .ogg/.oga (Vorbis). bits 0 = 16. */
int mv_audio_format(const char *path, int bits, int *format, const char **name, mv_err *err);
/* Writes interleaved float samples (integer formats clip at +-1) to a temporary file
 * beside path and renames it into place. */
int mv_audio_write(const char *path, const float *samples, int64_t frames, int channels, int rate, int bits,
                   mv_err *err);

#ifdef __cplusplus
}
#endif
#endif
