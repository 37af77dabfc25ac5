/* mv_audio.c -- drum notes to audio: FluidSynth driven directly (no audio
 * driver), files written with libsndfile. Both libraries are optional at build
 * time (MV_HAVE_FLUIDSYNTH, MV_HAVE_SNDFILE); without them every entry point
 * returns MV_EUNSUPPORTED with a message naming the Debian package to install.
 *
 * FluidSynth's log function is process-wide: mv_audio_init() installs one
 * handler once (pthread_once). It never prints; it keeps the thread's last
 * error or warning, which the next failing call puts in its mv_err. */
#define _POSIX_C_SOURCE 200809L
#include "mv_audio.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#ifdef MV_HAVE_FLUIDSYNTH
#include <fluidsynth.h>
#endif
#ifdef MV_HAVE_SNDFILE
#include <sndfile.h>
#endif

#define NO_SYNTH "musicvae was built without FluidSynth: install libfluidsynth-dev (scripts/setup does) and rebuild"
#define NO_SNDFILE "musicvae was built without libsndfile: install libsndfile1-dev (scripts/setup does) and rebuild"

int mv_audio_have_synth(void) {
#ifdef MV_HAVE_FLUIDSYNTH
  return 1;
#else
  return 0;
#endif
}

int mv_audio_have_sndfile(void) {
#ifdef MV_HAVE_SNDFILE
  return 1;
#else
  return 0;
#endif
}

const char *mv_audio_synth_version(void) {
#ifdef MV_HAVE_FLUIDSYNTH
  return fluid_version_str();
#else
  return "";
#endif
}

const char *mv_audio_sndfile_version(void) {
#ifdef MV_HAVE_SNDFILE
  return sf_version_string();
#else
  return "";
#endif
}

/* ---- FluidSynth's log ------------------------------------------------------ */
#ifdef MV_HAVE_FLUIDSYNTH
static _Thread_local char LAST_LOG[200];

static void log_keep(int level, const char *message, void *data) {
  (void)data;
  (void)level;
  if (!message) return;
  size_t n = strlen(message);
  while (n > 0 && (message[n - 1] == '\n' || message[n - 1] == '\r')) n--;
  if (n >= sizeof LAST_LOG) n = sizeof LAST_LOG - 1;
  memcpy(LAST_LOG, message, n);
  LAST_LOG[n] = '\0';
}

static void log_drop(int level, const char *message, void *data) {
  (void)level;
  (void)message;
  (void)data;
}

static pthread_once_t LOG_ONCE = PTHREAD_ONCE_INIT;

static void log_install(void) {
  fluid_set_log_function(FLUID_PANIC, log_keep, NULL);
  fluid_set_log_function(FLUID_ERR, log_keep, NULL);
  fluid_set_log_function(FLUID_WARN, log_keep, NULL);
  fluid_set_log_function(FLUID_INFO, log_drop, NULL);
  fluid_set_log_function(FLUID_DBG, log_drop, NULL);
}
#endif

void mv_audio_init(void) {
#ifdef MV_HAVE_FLUIDSYNTH
  pthread_once(&LOG_ONCE, log_install);
#endif
}

/* ---- note events --------------------------------------------------------------- */
static int events_alloc(mv_note_event **out, int64_t n, mv_err *err) {
  *out = NULL;
  if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(mv_note_event) - 1) return mv_seterr(err, MV_ENOMEM, "too many notes");
  *out = malloc((size_t)(n > 0 ? n : 1) * sizeof(mv_note_event));
  if (!*out) return mv_seterr(err, MV_ENOMEM, "out of memory");
  return MV_OK;
}

int mv_audio_pattern_events(mv_note_event **out, int64_t *n, double *length, const mv_audio_pattern *p,
                            mv_err *err) {
  *out = NULL;
  *n = 0;
  if (!p || p->steps < 0 || (p->steps > 0 && !p->labels) || p->steps_per_bar < 4 || p->steps_per_bar % 4 != 0)
    return mv_seterr(err, MV_EINVAL, "pattern: steps_per_bar must be a positive multiple of 4 (4/4 bars)");
  if (!(p->qpm > 0) || !isfinite(p->qpm)) return mv_seterr(err, MV_EINVAL, "pattern: qpm must be positive");
  for (int c = 0; c < MV_AUDIO_CLASSES; c++)
    if (p->pitch[c] < 0 || p->pitch[c] > 127) return mv_seterr(err, MV_EINVAL, "pattern: pitches are 0-127");
  int v0 = p->velocity_default > 0 ? p->velocity_default : 80;
  if (v0 > 127) v0 = 127;
  double step = 60.0 / p->qpm / (p->steps_per_bar / 4);
  int64_t hits = 0;
  for (int64_t s = 0; s < p->steps; s++)
    for (int c = 0; c < MV_AUDIO_CLASSES; c++) hits += (p->labels[s] >> c) & 1;
  int rc = events_alloc(out, hits, err);
  if (rc) return rc;
  int64_t k = 0;
  for (int64_t s = 0; s < p->steps; s++) {
    for (int c = 0; c < MV_AUDIO_CLASSES; c++) {
      if (!((p->labels[s] >> c) & 1)) continue;
      double t = (double)s;
      int v = v0;
      if (p->offset) {
        double o = p->offset[s * MV_AUDIO_CLASSES + c];
        if (isfinite(o)) t -= o;
      }
      if (p->velocity) {
        double vv = p->velocity[s * MV_AUDIO_CLASSES + c];
        if (vv >= 0) v = vv >= 127 ? 127 : (vv < 1 ? 1 : (int)floor(vv + 0.5));
      }
      t *= step;
      if (t < 0) t = 0;
      (*out)[k].time = t;
      (*out)[k].dur = step;
      (*out)[k].pitch = p->pitch[c];
      (*out)[k].velocity = v;
      k++;
    }
  }
  *n = k;
  *length = (double)p->steps * step;
  return MV_OK;
}

int mv_audio_midi_events(mv_note_event **out, int64_t *n, double *length, int64_t *left_out, const mv_midi *m,
                         int channel, double qpm, mv_err *err) {
  *out = NULL;
  *n = 0;
  *left_out = 0;
  if (!m || channel < -1 || channel > 15) return mv_seterr(err, MV_EINVAL, "midi: channel must be 0-15 or -1");
  if (!(qpm >= 0) || !isfinite(qpm)) return mv_seterr(err, MV_EINVAL, "midi: qpm must be positive (or 0)");
  double scale = 1.0;
  if (qpm > 0) scale = (m->ntempos > 0 ? m->tempos[0].qpm : 120.0) / qpm;
  /* one loop: the last note's end, rounded up to a whole bar of the first meter; bounded
   * before the events are copied (and long before the render allocates per frame) */
  int num = m->ntimesigs > 0 ? m->timesigs[0].numerator : 4;
  int den = m->ntimesigs > 0 ? m->timesigs[0].denominator : 4;
  int64_t bar = den > 0 ? (int64_t)m->ppq * 4 * num / den : 0;
  int64_t end = m->end_tick;
  if (bar > 0 && end % bar != 0) end += bar - end % bar;
  double len = mv_midi_seconds(m, end) * scale;
  if (!(len <= MV_AUDIO_MAX_SECONDS))
    return mv_seterr(err, MV_ERANGE, "the notes last %.0f s; a render is at most %.0f s", len, MV_AUDIO_MAX_SECONDS);
  int64_t keep = 0;
  for (int64_t i = 0; i < m->nnotes; i++) keep += channel < 0 || m->notes[i].channel == channel;
  int rc = events_alloc(out, keep, err);
  if (rc) return rc;
  int64_t k = 0;
  for (int64_t i = 0; i < m->nnotes; i++) {
    const mv_midi_note *x = &m->notes[i];
    if (channel >= 0 && x->channel != channel) continue;
    (*out)[k].time = x->on_time * scale;
    (*out)[k].dur = (x->off_time - x->on_time) * scale;
    (*out)[k].pitch = x->pitch;
    (*out)[k].velocity = x->velocity < 1 ? 1 : (x->velocity > 127 ? 127 : x->velocity);
    k++;
  }
  *n = k;
  *left_out = m->nnotes - keep;
  *length = len;
  return MV_OK;
}

/* ---- the synthesizer ---------------------------------------------------------- */
#define FADE_SECONDS 0.02

int64_t mv_render_frames(double rate, const mv_render_opts *o) {
  if (!o || !(rate > 0) || o->loops < 0 || !(o->length >= 0) || !(o->tail >= 0)) return -1;
  double sec = o->length * o->loops + o->tail;
  if (!isfinite(sec) || sec * rate > 2147483647.0 * 64) return -1;
  return (int64_t)llround(sec * rate);
}

int mv_render_check(const mv_render_opts *o, int64_t n, mv_err *err) {
  if (!o || n < 0 || o->loops < 0 || !(o->length >= 0) || !(o->tail >= 0))
    return mv_seterr(err, MV_EINVAL, "render: bad length, loops or tail");
  if (n > 0 && (uint64_t)n * (uint64_t)o->loops > MV_AUDIO_MAX_PLAYS)
    return mv_seterr(err, MV_ERANGE, "render: %lld notes x %d loops is past the limit of %d notes a render",
                     (long long)n, o->loops, MV_AUDIO_MAX_PLAYS);
  double sec = o->length * o->loops + o->tail;
  if (!(sec <= MV_AUDIO_MAX_SECONDS))
    return mv_seterr(err, MV_ERANGE, "render: %.1f s of audio (%d x %.1f s + %.1f s tail) is past the limit of %.0f s",
                     sec, o->loops, o->length, o->tail, MV_AUDIO_MAX_SECONDS);
  return MV_OK;
}

#ifdef MV_HAVE_FLUIDSYNTH
struct mv_synth {
  fluid_settings_t *settings;
  fluid_synth_t *synth;
  int sfid, bank, program, block;
  double rate;
  char preset[64];
};

static int synth_fail(mv_err *err, int code, const char *what, const char *path) {
  if (LAST_LOG[0]) return mv_seterr(err, code, "%s: %s (FluidSynth: %s)", path, what, LAST_LOG);
  return mv_seterr(err, code, "%s: %s", path, what);
}

/* the drum kit: bank 128 program 0, else the first preset of bank 128 */
static int pick_kit(mv_synth *s) {
  fluid_sfont_t *sf = fluid_synth_get_sfont_by_id(s->synth, s->sfid);
  if (!sf) return -1;
  fluid_preset_t *pr = fluid_sfont_get_preset(sf, 128, 0);
  if (!pr) {
    fluid_sfont_iteration_start(sf);
    fluid_preset_t *it;
    while ((it = fluid_sfont_iteration_next(sf)) != NULL) {
      if (fluid_preset_get_banknum(it) == 128 && (!pr || fluid_preset_get_num(it) < fluid_preset_get_num(pr)))
        pr = it;
    }
  }
  if (!pr) return -1;
  s->bank = fluid_preset_get_banknum(pr);
  s->program = fluid_preset_get_num(pr);
  const char *name = fluid_preset_get_name(pr);
  snprintf(s->preset, sizeof s->preset, "%s", name ? name : "");
  return 0;
}

static void synth_quiet(mv_synth *s, float *scratch);

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The RIFF structure of a SoundFont 2: RIFF sfbk {LIST INFO, LIST sdta, LIST pdta {phdr pbag
 * pmod pgen inst ibag imod igen shdr}}, every size inside the file, every pdta record whole. */
static int sf2_check(const char *path, uint64_t size, mv_err *err) {
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    int e = errno;
    return mv_seterr(err, MV_EIO, "SoundFont %s: %s", path, strerror(e));
  }
  unsigned char h[12];
  int rc = MV_OK;
  const char *why = NULL;
  if (fread(h, 1, 12, fp) != 12 || memcmp(h, "RIFF", 4) != 0 || memcmp(h + 8, "sfbk", 4) != 0) {
    why = "not a SoundFont 2 file (no RIFF sfbk header)";
  } else if ((uint64_t)le32(h + 4) + 8 > size) {
    why = "truncated (the RIFF chunk runs past the end of the file)";
  } else {
    static const char *const sub[9] = {"phdr", "pbag", "pmod", "pgen", "inst", "ibag", "imod", "igen", "shdr"};
    static const int rec[9] = {38, 4, 10, 4, 22, 4, 10, 4, 46};
    uint64_t pos = 12, end = (uint64_t)le32(h + 4) + 8;
    int lists = 0, pdta = 0;
    while (!why && pos + 12 <= end) {
      if (fseek(fp, (long)pos, SEEK_SET) != 0 || fread(h, 1, 12, fp) != 12) {
        why = "unreadable";
        break;
      }
      uint64_t len = le32(h + 4);
      if (memcmp(h, "LIST", 4) != 0 || len < 4 || pos + 8 + len > end) {
        why = "malformed (a top-level chunk is not a LIST inside the file)";
        break;
      }
      lists++;
      if (memcmp(h + 8, "pdta", 4) == 0) {
        pdta = 1;
        uint64_t q = pos + 12, qend = pos + 8 + len;
        for (int i = 0; i < 9 && !why; i++) {
          unsigned char c[8];
          if (q + 8 > qend || fseek(fp, (long)q, SEEK_SET) != 0 || fread(c, 1, 8, fp) != 8 ||
              memcmp(c, sub[i], 4) != 0) {
            why = "malformed (the preset data lacks a chunk or has them out of order)";
          } else {
            uint64_t n = le32(c + 4);
            if (q + 8 + n > qend || n % (uint64_t)rec[i] != 0)
              why = "malformed (a preset data chunk has a bad size)";
            q += 8 + n;
          }
        }
      }
      pos += 8 + len + (len & 1);
    }
    if (!why && (lists < 3 || !pdta)) why = "malformed (no INFO, sdta and pdta lists)";
  }
  fclose(fp);
  if (why) rc = mv_seterr(err, MV_EFORMAT, "SoundFont %s: %s", path, why);
  return rc;
}
#endif

int mv_synth_new(mv_synth **out, const mv_synth_opts *o, mv_err *err) {
  *out = NULL;
#ifndef MV_HAVE_FLUIDSYNTH
  (void)o;
  return mv_seterr(err, MV_EUNSUPPORTED, NO_SYNTH);
#else
  mv_audio_init();
  if (!o || !o->soundfont) return mv_seterr(err, MV_EINVAL, "synth: no SoundFont given");
  if (!(o->rate >= 8000 && o->rate <= 96000))
    return mv_seterr(err, MV_EINVAL, "synth: rate must be 8000-96000 Hz (got %g)", o->rate);
  if (!(o->gain >= 0 && o->gain <= 10)) return mv_seterr(err, MV_EINVAL, "synth: gain must be 0-10 (got %g)", o->gain);
  struct stat st;
  if (stat(o->soundfont, &st) != 0) {
    int e = errno;
    return mv_seterr(err, MV_EIO, "SoundFont %s: %s (install fluid-soundfont-gm or pass --soundfont)", o->soundfont,
                     strerror(e));
  }
  if (!S_ISREG(st.st_mode)) return mv_seterr(err, MV_EIO, "SoundFont %s: not a regular file", o->soundfont);
  /* only SoundFont 2/3 files go to FluidSynth: anything else would reach its libinstpatch
   * (DLS) loader, which reports through glib on stderr */
  int rc = sf2_check(o->soundfont, (uint64_t)st.st_size, err);
  if (rc) return rc;
  mv_synth *s = calloc(1, sizeof *s);
  if (!s) return mv_seterr(err, MV_ENOMEM, "out of memory");
  s->rate = o->rate;
  s->sfid = -1;
  LAST_LOG[0] = '\0';
  s->settings = new_fluid_settings();
  if (!s->settings) {
    free(s);
    return mv_seterr(err, MV_ENOMEM, "FluidSynth: cannot create its settings");
  }
  fluid_settings_setnum(s->settings, "synth.sample-rate", o->rate);
  fluid_settings_setnum(s->settings, "synth.gain", o->gain);
  fluid_settings_setint(s->settings, "synth.reverb.active", 0);
  fluid_settings_setint(s->settings, "synth.chorus.active", 0);
  fluid_settings_setint(s->settings, "synth.lock-memory", 0);
  fluid_settings_setint(s->settings, "synth.dynamic-sample-loading", 1); /* only the drum kit's samples */
  fluid_settings_setint(s->settings, "synth.threadsafe-api", 0);
  fluid_settings_setint(s->settings, "synth.cpu-cores", 1);
  fluid_settings_setint(s->settings, "synth.verbose", 0);
  if (o->polyphony > 0) fluid_settings_setint(s->settings, "synth.polyphony", o->polyphony);
  s->synth = new_fluid_synth(s->settings);
  if (!s->synth) {
    synth_fail(err, MV_ENOMEM, "FluidSynth could not create a synthesizer", o->soundfont);
    mv_synth_free(s);
    return err ? err->code : MV_ENOMEM;
  }
  s->block = fluid_synth_get_internal_bufsize(s->synth);
  if (s->block <= 0) s->block = 64;
  s->sfid = fluid_synth_sfload(s->synth, o->soundfont, 1);
  if (s->sfid == FLUID_FAILED) {
    synth_fail(err, MV_EFORMAT, "not a SoundFont FluidSynth can load", o->soundfont);
    mv_synth_free(s);
    return MV_EFORMAT;
  }
  if (pick_kit(s) != 0 || fluid_synth_program_select(s->synth, 9, s->sfid, s->bank, s->program) != FLUID_OK) {
    synth_fail(err, MV_EFORMAT, "has no drum kit (no preset in bank 128)", o->soundfont);
    mv_synth_free(s);
    return MV_EFORMAT;
  }
  if (s->block <= 4096) {
    float scratch[2 * 4096];
    synth_quiet(s, scratch);
  }
  *out = s;
  return MV_OK;
#endif
}

void mv_synth_free(mv_synth *s) {
#ifdef MV_HAVE_FLUIDSYNTH
  if (!s) return;
  if (s->synth) delete_fluid_synth(s->synth);
  if (s->settings) delete_fluid_settings(s->settings);
  free(s);
#else
  (void)s;
#endif
}

double mv_synth_rate(const mv_synth *s) {
#ifdef MV_HAVE_FLUIDSYNTH
  return s ? s->rate : 0;
#else
  (void)s;
  return 0;
#endif
}

const char *mv_synth_preset(const mv_synth *s, int *bank, int *program) {
#ifdef MV_HAVE_FLUIDSYNTH
  if (bank) *bank = s->bank;
  if (program) *program = s->program;
  return s->preset;
#else
  (void)s;
  if (bank) *bank = 0;
  if (program) *program = 0;
  return "";
#endif
}

int mv_synth_set_gain(mv_synth *s, double gain, mv_err *err) {
#ifdef MV_HAVE_FLUIDSYNTH
  if (!(gain >= 0 && gain <= 10)) return mv_seterr(err, MV_EINVAL, "synth: gain must be 0-10 (got %g)", gain);
  fluid_synth_set_gain(s->synth, (float)gain);
  return MV_OK;
#else
  (void)s;
  (void)gain;
  return mv_seterr(err, MV_EUNSUPPORTED, NO_SYNTH);
#endif
}

#ifdef MV_HAVE_FLUIDSYNTH
typedef struct {
  int64_t frame;
  int on, pitch, velocity;
  int64_t order;
} sched_ev;

static int sched_cmp(const void *a, const void *b) {
  const sched_ev *x = a, *y = b;
  if (x->frame != y->frame) return x->frame < y->frame ? -1 : 1;
  if (x->on != y->on) return x->on - y->on; /* offs first: a retrigger is not cut */
  return x->order < y->order ? -1 : (x->order > y->order);
}

/* renders frames [pos, end) into out (interleaved); all lengths are whole blocks except the last */
static void synth_write(mv_synth *s, float *out, int64_t frames, int64_t pos, int64_t end, float *scratch) {
  while (pos < end) {
    int64_t len = end - pos;
    if (len > (1 << 20)) len = 1 << 20;
    if (pos + len <= frames) {
      fluid_synth_write_float(s->synth, (int)len, out + 2 * pos, 0, 2, out + 2 * pos, 1, 2);
    } else { /* the padding after the last frame goes to the scratch block */
      int64_t keep = frames > pos ? frames - pos : 0;
      if (keep > 0) fluid_synth_write_float(s->synth, (int)keep, out + 2 * pos, 0, 2, out + 2 * pos, 1, 2);
      int64_t rest = len - keep;
      while (rest > 0) {
        int64_t r = rest > s->block ? s->block : rest;
        fluid_synth_write_float(s->synth, (int)r, scratch, 0, 2, scratch, 1, 2);
        rest -= r;
      }
    }
    pos += len;
  }
}

/* Silences every voice and lets the synth apply that (its events reach the voices when a
 * block is rendered), so the next render starts as the first one did. */
static void synth_quiet(mv_synth *s, float *scratch) {
  /* FluidSynth's "sounds off" is a release, not a cut: shorten every release on the drum
   * channel to nothing, then render (and drop) blocks until no voice is left */
  fluid_synth_set_gen(s->synth, 9, GEN_VOLENVRELEASE, -12000.0f);
  fluid_synth_all_sounds_off(s->synth, -1);
  for (int i = 0; i < 8 || (i < 20000 && fluid_synth_get_active_voice_count(s->synth) > 0); i++)
    fluid_synth_write_float(s->synth, s->block, scratch, 0, 2, scratch, 1, 2);
  fluid_synth_set_gen(s->synth, 9, GEN_VOLENVRELEASE, 0.0f);
  fluid_synth_system_reset(s->synth);
  fluid_synth_program_select(s->synth, 9, s->sfid, s->bank, s->program);
  for (int i = 0; i < 2; i++) fluid_synth_write_float(s->synth, s->block, scratch, 0, 2, scratch, 1, 2);
}
#endif

int mv_synth_render(mv_synth *s, float *out, int64_t frames, const mv_note_event *ev, int64_t n,
                    const mv_render_opts *o, mv_err *err) {
#ifndef MV_HAVE_FLUIDSYNTH
  (void)s, (void)out, (void)frames, (void)ev, (void)n, (void)o;
  return mv_seterr(err, MV_EUNSUPPORTED, NO_SYNTH);
#else
  if (!s || !o || frames < 0 || n < 0 || (n > 0 && !ev) || (frames > 0 && !out))
    return mv_seterr(err, MV_EINVAL, "render: bad arguments");
  int64_t want = mv_render_frames(s->rate, o);
  if (want < 0) return mv_seterr(err, MV_EINVAL, "render: length, loops and tail must be finite and >= 0");
  if (want != frames) return mv_seterr(err, MV_ESHAPE, "render: the buffer holds %lld frames, the render is %lld",
                                       (long long)frames, (long long)want);
  int rc = mv_render_check(o, n, err);
  if (rc) return rc;
  int64_t loops = o->loops;
  size_t nev = (size_t)(2 * n * loops);
  sched_ev *q = malloc((nev ? nev : 1) * sizeof *q);
  if (!q) return mv_seterr(err, MV_ENOMEM, "out of memory");
  size_t k = 0;
  for (int64_t l = 0; l < loops; l++) {
    for (int64_t i = 0; i < n; i++) {
      if (ev[i].pitch < 0 || ev[i].pitch > 127 || ev[i].velocity < 1 || ev[i].velocity > 127 ||
          !(ev[i].time >= 0) || !(ev[i].dur >= 0) || !isfinite(ev[i].time + ev[i].dur)) {
        free(q);
        return mv_seterr(err, MV_EINVAL, "render: note %lld has a bad pitch, velocity or time", (long long)i);
      }
      double t = ev[i].time + (double)l * o->length;
      /* events land on the nearest synth block boundary (1.45 ms blocks at 44.1 kHz) */
      int64_t f = (int64_t)llround(t * s->rate / s->block) * s->block;
      int64_t g = (int64_t)llround((t + ev[i].dur) * s->rate / s->block) * s->block;
      if (g <= f) g = f + s->block;
      q[k] = (sched_ev){f, 1, ev[i].pitch, ev[i].velocity, (int64_t)k};
      k++;
      q[k] = (sched_ev){g, 0, ev[i].pitch, 0, (int64_t)k};
      k++;
    }
  }
  qsort(q, k, sizeof *q, sched_cmp);
  float scratch[2 * 4096];
  if (s->block > 4096) {
    free(q);
    return mv_seterr(err, MV_EUNSUPPORTED, "render: FluidSynth's block of %d frames is too large", s->block);
  }
  /* a clean start: no voice from an earlier render, the kit selected again */
  synth_quiet(s, scratch);
  int64_t padded = (frames + s->block - 1) / s->block * s->block;
  int64_t pos = 0;
  for (size_t i = 0; i < k && q[i].frame < padded; i++) {
    if (q[i].frame > pos) {
      synth_write(s, out, frames, pos, q[i].frame, scratch);
      pos = q[i].frame;
    }
    if (q[i].on)
      fluid_synth_noteon(s->synth, 9, q[i].pitch, q[i].velocity);
    else
      fluid_synth_noteoff(s->synth, 9, q[i].pitch);
  }
  if (pos < padded) synth_write(s, out, frames, pos, padded, scratch);
  free(q);
  synth_quiet(s, scratch);
  /* the tail ends with a short fade, so a ringing cymbal is not cut with a click */
  if (o->tail > 0) {
    int64_t fade = (int64_t)llround((o->tail < FADE_SECONDS ? o->tail : FADE_SECONDS) * s->rate);
    if (fade > frames) fade = frames;
    for (int64_t i = 0; i < fade; i++) {
      float g = (float)(fade - i) / (float)(fade + 1);
      int64_t f = frames - fade + i;
      out[2 * f] *= g;
      out[2 * f + 1] *= g;
    }
  }
  return MV_OK;
#endif
}

/* ---- files -------------------------------------------------------------------- */
#ifdef MV_HAVE_SNDFILE
typedef struct {
  unsigned char *buf;
  sf_count_t len, cap, pos;
  int failed;
} membuf;

static sf_count_t vio_len(void *u) { return ((membuf *)u)->len; }
static sf_count_t vio_seek(sf_count_t off, int whence, void *u) {
  membuf *m = u;
  sf_count_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : m->len + off;
  if (p < 0) return -1;
  m->pos = p;
  return p;
}
static sf_count_t vio_read(void *ptr, sf_count_t count, void *u) {
  membuf *m = u;
  sf_count_t n = m->pos < m->len ? m->len - m->pos : 0;
  if (n > count) n = count;
  if (n > 0) memcpy(ptr, m->buf + m->pos, (size_t)n);
  m->pos += n;
  return n;
}
static sf_count_t vio_write(const void *ptr, sf_count_t count, void *u) {
  membuf *m = u;
  if (count <= 0) return 0;
  sf_count_t end = m->pos + count;
  if (end > m->cap) {
    sf_count_t cap = m->cap ? m->cap : 65536;
    while (cap < end) cap *= 2;
    unsigned char *b = realloc(m->buf, (size_t)cap);
    if (!b) {
      m->failed = 1;
      return 0;
    }
    m->buf = b;
    m->cap = cap;
  }
  if (m->pos > m->len) memset(m->buf + m->len, 0, (size_t)(m->pos - m->len));
  memcpy(m->buf + m->pos, ptr, (size_t)count);
  m->pos = end;
  if (end > m->len) m->len = end;
  return count;
}
static sf_count_t vio_tell(void *u) { return ((membuf *)u)->pos; }
#endif

int mv_audio_format(const char *path, int bits, int *format, const char **name, mv_err *err) {
#ifndef MV_HAVE_SNDFILE
  (void)path, (void)bits, (void)format, (void)name;
  return mv_seterr(err, MV_EUNSUPPORTED, NO_SNDFILE);
#else
  const char *dot = strrchr(path, '.');
  const char *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash))
    return mv_seterr(err, MV_EINVAL, "%s: no file extension (use .wav, .flac or .ogg)", path);
  const char *ext = dot + 1;
  if (bits != 0 && bits != 16 && bits != 24 && bits != 32)
    return mv_seterr(err, MV_EINVAL, "bits must be 16, 24 or 32 (float; WAV only)");
  if (strcasecmp(ext, "wav") == 0) {
    *format = SF_FORMAT_WAV | (bits == 24 ? SF_FORMAT_PCM_24 : bits == 32 ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16);
    *name = "WAV";
  } else if (strcasecmp(ext, "flac") == 0) {
    if (bits == 32) return mv_seterr(err, MV_EINVAL, "%s: FLAC holds 16 or 24 bits, not float", path);
    *format = SF_FORMAT_FLAC | (bits == 24 ? SF_FORMAT_PCM_24 : SF_FORMAT_PCM_16);
    *name = "FLAC";
  } else if (strcasecmp(ext, "ogg") == 0 || strcasecmp(ext, "oga") == 0) {
    *format = SF_FORMAT_OGG | SF_FORMAT_VORBIS;
    *name = "Ogg Vorbis";
  } else {
    return mv_seterr(err, MV_EINVAL, "%s: unknown audio format '.%s' (use .wav, .flac or .ogg)", path, ext);
  }
  return MV_OK;
#endif
}

int mv_audio_write(const char *path, const float *samples, int64_t frames, int channels, int rate, int bits,
                   mv_err *err) {
#ifndef MV_HAVE_SNDFILE
  (void)path, (void)samples, (void)frames, (void)channels, (void)rate, (void)bits;
  return mv_seterr(err, MV_EUNSUPPORTED, NO_SNDFILE);
#else
  int format;
  const char *name;
  int rc = mv_audio_format(path, bits, &format, &name, err);
  if (rc) return rc;
  if (channels < 1 || channels > 8) return mv_seterr(err, MV_EINVAL, "audio: 1-8 channels");
  if (rate < 1000 || rate > 384000) return mv_seterr(err, MV_EINVAL, "audio: rate must be 1000-384000 Hz");
  if (frames < 0 || (frames > 0 && !samples)) return mv_seterr(err, MV_EINVAL, "audio: bad samples");
  SF_INFO info;
  memset(&info, 0, sizeof info);
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  if (!sf_format_check(&info))
    return mv_seterr(err, MV_EUNSUPPORTED, "%s: libsndfile cannot write %s at %d Hz, %d channels", path, name, rate,
                     channels);
  membuf m = {0};
  SF_VIRTUAL_IO vio = {vio_len, vio_seek, vio_read, vio_write, vio_tell};
  SNDFILE *f = sf_open_virtual(&vio, SFM_WRITE, &info, &m);
  if (!f) {
    free(m.buf);
    return mv_seterr(err, MV_EIO, "%s: libsndfile: %s", path, sf_strerror(NULL));
  }
  sf_command(f, SFC_SET_CLIPPING, NULL, SF_TRUE); /* integer formats clip instead of wrapping */
  sf_count_t done = 0;
  while (done < frames) {
    sf_count_t chunk = frames - done > 65536 ? 65536 : frames - done;
    sf_count_t w = sf_writef_float(f, samples + done * channels, chunk);
    if (w != chunk) break;
    done += w;
  }
  char why[160];
  snprintf(why, sizeof why, "%s", sf_strerror(f));
  int closed = sf_close(f);
  if (done != frames || closed != 0 || m.failed) {
    free(m.buf);
    return mv_seterr(err, m.failed ? MV_ENOMEM : MV_EIO, "%s: encoding %s failed: %s", path, name,
                     m.failed ? "out of memory" : why);
  }
  rc = mv_write_file_atomic(path, m.buf, (size_t)m.len, err);
  free(m.buf);
  return rc;
#endif
}
