/* mv_midi.c -- Standard MIDI Files: a bounded pre-pass that validates and
 * normalises raw bytes into a canonical stream, read back in one linear pass,
 * and libsmf to write. The only file that includes <smf.h>.
 *
 * libsmf 1.3 is not safe on raw input: running status after a SysEx trips an
 * assert (the process aborts), format 2 is refused, malformed chunks are
 * reported through glib on stderr, an unknown chunk before the tracks leaves
 * zero tracks, lengths are trusted, and loading is quadratic in events and
 * tracks. So reading never reaches libsmf: the pre-pass writes an MThd, then one
 * MTrk per input track holding only note-on/note-off events with explicit status
 * bytes, tempo and time-signature meta events, and an end-of-track, and
 * collect() reads that back. When writing, glib messages are captured into the
 * returned error, never printed. */
#define _POSIX_C_SOURCE 200809L
#include "mv.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <smf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE (64u << 20)       /* larger "MIDI files" are refused */
#define MAX_TICK (INT_MAX / 4)      /* libsmf keeps pulses in an int */
#define MAX_WARNINGS 64
#define MV_MIDI_MAX_EVENTS (1 << 21) /* note, tempo and meter events kept from a file */

/* ---- growable byte buffer ---------------------------------------------------- */
typedef struct {
  unsigned char *p;
  size_t n, cap;
} bbuf;

static int bput(bbuf *b, const void *d, size_t n) {
  if (b->n + n > b->cap) {
    size_t nc = (b->cap + n) * 2 + 64;
    unsigned char *t = realloc(b->p, nc);
    if (!t) return 0;
    b->p = t;
    b->cap = nc;
  }
  memcpy(b->p + b->n, d, n);
  b->n += n;
  return 1;
}

static int bvlq(bbuf *b, uint32_t v) {
  unsigned char tmp[5];
  int n = 0;
  tmp[4 - n++] = (unsigned char)(v & 0x7f);
  while ((v >>= 7) && n < 5) tmp[4 - n++] = (unsigned char)(0x80 | (v & 0x7f));
  return bput(b, tmp + 5 - n, (size_t)n);
}

static int bbe32(bbuf *b, uint32_t v) {
  unsigned char t[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8), (unsigned char)v};
  return bput(b, t, 4);
}

/* ---- warnings ------------------------------------------------------------------ */
typedef struct {
  char **w;
  int n;
} wlist;

static void warn(wlist *wl, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void warn(wlist *wl, const char *fmt, ...) {
  if (!wl || wl->n >= MAX_WARNINGS) return;
  char buf[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  for (int i = 0; i < wl->n; i++)
    if (strcmp(wl->w[i], buf) == 0) return; /* once per distinct message */
  char **t = realloc(wl->w, sizeof *t * (size_t)(wl->n + 1));
  if (!t) return;
  wl->w = t;
  size_t len = strlen(buf) + 1;
  wl->w[wl->n] = malloc(len);
  if (wl->w[wl->n]) {
    memcpy(wl->w[wl->n], buf, len);
    wl->n++;
  }
}

static void wfree(wlist *wl) {
  for (int i = 0; i < wl->n; i++) free(wl->w[i]);
  free(wl->w);
  wl->w = NULL;
  wl->n = 0;
}

/* ---- the pre-pass ---------------------------------------------------------------- */
static uint32_t be32(const unsigned char *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint32_t le32(const unsigned char *p) {
  return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

/* A variable-length quantity of at most 4 bytes (28 bits), inside [p, end). */
static int rvlq(const unsigned char **p, const unsigned char *end, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    if (*p >= end) return 0;
    unsigned char c = *(*p)++;
    v = (v << 7) | (c & 0x7f);
    if (!(c & 0x80)) {
      *out = v;
      return 1;
    }
  }
  return 0;
}

static int is_chunk_id(const unsigned char *p) {
  for (int i = 0; i < 4; i++)
    if (p[i] < 0x20 || p[i] > 0x7e) return 0;
  return 1;
}

/* One input track -> one normalised MTrk appended to out. */
static int track_pass(bbuf *out, const unsigned char *p, const unsigned char *end, int tno, wlist *wl, mv_err *err) {
  bbuf t = {0, 0, 0};
  int64_t tick = 0, last_out = 0;
  int status = 0; /* running status (channel messages only, as common readers do) */
  int ok = 1, eot = 0;
  uint64_t nev = 0;
  while (p < end) {
    uint32_t delta;
    if (!rvlq(&p, end, &delta)) {
      warn(wl, "track %d: bad or truncated delta time; rest of track ignored", tno);
      break;
    }
    tick += delta;
    if (tick > MAX_TICK) {
      free(t.p);
      return mv_seterr(err, MV_EFORMAT, "track %d: event time %lld ticks is past the supported range", tno,
                       (long long)tick);
    }
    if (p >= end) {
      warn(wl, "track %d: truncated event; rest of track ignored", tno);
      break;
    }
    int c = *p;
    unsigned char ev[6];
    size_t evn = 0;
    if (c == 0xff) { /* meta */
      p++;
      if (p >= end) { warn(wl, "track %d: truncated meta event", tno); break; }
      int type = *p++;
      uint32_t len;
      if (!rvlq(&p, end, &len) || len > (uint32_t)(end - p)) {
        warn(wl, "track %d: meta event length past the end of the track; rest ignored", tno);
        break;
      }
      const unsigned char *d = p;
      p += len;
      if (type == 0x2f) {
        eot = 1;
        break;
      } else if (type == 0x51) {
        uint32_t us = len == 3 ? ((uint32_t)d[0] << 16 | (uint32_t)d[1] << 8 | d[2]) : 0;
        if (!us) {
          warn(wl, "track %d: malformed tempo event ignored", tno);
          continue;
        }
        ev[0] = 0xff, ev[1] = 0x51, ev[2] = 3, ev[3] = d[0], ev[4] = d[1], ev[5] = d[2];
        evn = 6;
      } else if (type == 0x58) {
        if (len < 2 || d[0] == 0 || d[1] > 6) {
          warn(wl, "track %d: malformed time signature ignored", tno);
          continue;
        }
        unsigned char ts[7] = {0xff, 0x58, 4, d[0], d[1], len > 2 ? d[2] : 24, len > 3 ? d[3] : 8};
        ok = bvlq(&t, (uint32_t)(tick - last_out)) && bput(&t, ts, 7);
        last_out = tick;
        nev++;
        if (!ok) break;
        continue;
      } else {
        continue; /* names, text, key signatures...: not needed */
      }
    } else if (c == 0xf0 || c == 0xf7) { /* SysEx: skipped */
      p++;
      uint32_t len;
      if (!rvlq(&p, end, &len) || len > (uint32_t)(end - p)) {
        warn(wl, "track %d: SysEx length past the end of the track; rest ignored", tno);
        break;
      }
      p += len;
      warn(wl, "track %d: SysEx events skipped", tno);
      continue;
    } else if (c >= 0xf1) { /* system common / real time do not belong in a file */
      p++;
      int extra = c == 0xf2 ? 2 : (c == 0xf1 || c == 0xf3) ? 1 : 0;
      if (c == 0xf4 || c == 0xf5 || c == 0xf9 || c == 0xfd) {
        free(t.p);
        return mv_seterr(err, MV_EFORMAT, "track %d: undefined status byte 0x%02X", tno, c);
      }
      if (extra > end - p) { warn(wl, "track %d: truncated system message", tno); break; }
      p += extra;
      warn(wl, "track %d: system messages skipped", tno);
      continue;
    } else {
      if (c & 0x80) {
        status = c;
        p++;
      } else if (!status) {
        free(t.p);
        return mv_seterr(err, MV_EFORMAT, "track %d: data byte 0x%02X with no running status", tno, c);
      }
      int hi = status & 0xf0;
      int nd = (hi == 0xc0 || hi == 0xd0) ? 1 : 2;
      if (nd > end - p) {
        warn(wl, "track %d: truncated channel message; rest of track ignored", tno);
        break;
      }
      int d1 = p[0], d2 = nd == 2 ? p[1] : 0;
      if (d1 & 0x80 || d2 & 0x80) {
        free(t.p);
        return mv_seterr(err, MV_EFORMAT, "track %d: status byte 0x%02X where a data byte belongs", tno,
                         (d1 & 0x80) ? d1 : d2);
      }
      p += nd;
      if (hi != 0x80 && hi != 0x90) continue; /* controllers, programs, bends: not needed */
      ev[0] = (unsigned char)status, ev[1] = (unsigned char)d1, ev[2] = (unsigned char)d2;
      evn = 3;
    }
    if (!(ok = bvlq(&t, (uint32_t)(tick - last_out)) && bput(&t, ev, evn))) break;
    last_out = tick;
    nev++;
  }
  if (ok && !eot && p >= end) warn(wl, "track %d: no end-of-track event", tno);
  static const unsigned char eotb[3] = {0xff, 0x2f, 0x00};
  ok = ok && bvlq(&t, 0) && bput(&t, eotb, 3);
  ok = ok && bput(out, "MTrk", 4) && bbe32(out, (uint32_t)t.n) && bput(out, t.p, t.n);
  free(t.p);
  (void)nev;
  return ok ? MV_OK : mv_seterr(err, MV_ENOMEM, "out of memory");
}

/* Validates and normalises a whole file. *ppq, *format describe the input. */
static int normalise(const unsigned char *b, size_t len, bbuf *out, int *format, int *ppq, int *ntracks, wlist *wl,
                     mv_err *err) {
  /* RIFF "RMID" wrapper: the SMF is the "data" chunk */
  if (len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "RMID", 4) == 0) {
    size_t off = 12;
    const unsigned char *found = NULL;
    size_t flen = 0;
    while (off + 8 <= len) {
      uint32_t cl = le32(b + off + 4);
      if (memcmp(b + off, "data", 4) == 0) {
        found = b + off + 8;
        flen = cl <= len - off - 8 ? cl : len - off - 8;
        break;
      }
      if (cl > len - off - 8) break;
      off += 8 + cl + (cl & 1);
    }
    if (!found) return mv_seterr(err, MV_EFORMAT, "RIFF RMID file without a data chunk");
    warn(wl, "RIFF RMID wrapper removed");
    b = found;
    len = flen;
  }
  if (len < 14 || memcmp(b, "MThd", 4) != 0)
    return mv_seterr(err, MV_EFORMAT, "not a Standard MIDI File (no MThd header)");
  uint32_t hl = be32(b + 4);
  if (hl < 6 || hl > len - 8) return mv_seterr(err, MV_EFORMAT, "bad MThd header length %u", hl);
  int fmt = (b[8] << 8) | b[9];
  int ntrk = (b[10] << 8) | b[11];
  int div = (b[12] << 8) | b[13];
  if (hl > 6) warn(wl, "MThd header has %u extra bytes", hl - 6);
  if (fmt == 2)
    return mv_seterr(err, MV_EUNSUPPORTED,
                     "MIDI format 2 (independent sequences) is not supported; convert the file to format 0 or 1");
  if (fmt > 2) return mv_seterr(err, MV_EFORMAT, "unknown MIDI format %d", fmt);
  if (div & 0x8000)
    return mv_seterr(err, MV_EUNSUPPORTED,
                     "SMPTE time division is not supported (the file has no musical tempo); re-save it with ticks per quarter note");
  if (div == 0) return mv_seterr(err, MV_EFORMAT, "zero ticks per quarter note");
  *format = fmt;
  *ppq = div;
  size_t off = 8 + hl;
  int found = 0;
  bbuf tracks = {0, 0, 0};
  while (off + 8 <= len) {
    const unsigned char *c = b + off;
    if (!is_chunk_id(c)) {
      warn(wl, "%zu bytes of junk after the last chunk ignored", len - off);
      break;
    }
    uint32_t cl = be32(c + 4);
    int is_trk = memcmp(c, "MTrk", 4) == 0;
    if (cl > len - off - 8) {
      if (!is_trk) {
        warn(wl, "truncated %.4s chunk ignored", (const char *)c);
        break;
      }
      warn(wl, "track %d is truncated (%u bytes declared, %zu present)", found + 1, cl, len - off - 8);
      cl = (uint32_t)(len - off - 8);
    }
    if (is_trk) {
      if (found >= 65535) {
        warn(wl, "tracks after the 65,535th ignored");
        break;
      }
      int rc = track_pass(&tracks, c + 8, c + 8 + cl, found + 1, wl, err);
      if (rc) {
        free(tracks.p);
        return rc;
      }
      found++;
    } else {
      warn(wl, "unknown chunk '%.4s' skipped", (const char *)c);
    }
    off += 8 + (size_t)cl;
  }
  if (off < len && off + 8 > len) warn(wl, "%zu trailing bytes ignored", len - off);
  if (found == 0) {
    free(tracks.p);
    return mv_seterr(err, MV_EFORMAT, "the file has no tracks");
  }
  if (found != ntrk) warn(wl, "header says %d tracks, file has %d", ntrk, found);
  *ntracks = found;
  unsigned char hd[14] = {'M', 'T', 'h', 'd', 0, 0, 0, 6, 0, (unsigned char)(found > 1 ? 1 : 0),
                          (unsigned char)(found >> 8), (unsigned char)found, (unsigned char)(div >> 8),
                          (unsigned char)div};
  int ok = bput(out, hd, 14) && bput(out, tracks.p, tracks.n);
  free(tracks.p);
  return ok ? MV_OK : mv_seterr(err, MV_ENOMEM, "out of memory");
}

/* ---- glib messages from libsmf, captured for the duration of a call ------------ */
static pthread_mutex_t smf_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
  char msg[200];
  int n;
} glog_capture;

static void glog_handler(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data) {
  (void)domain;
  glog_capture *c = data;
  if (!(level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))) return;
  if (c->n++ == 0) snprintf(c->msg, sizeof c->msg, "%s", message ? message : "");
}

typedef struct {
  guint id;
  GLogFunc old_default;
  gpointer old_data;
} glog_scope;

static void glog_begin(glog_scope *s, glog_capture *c) {
  s->id = g_log_set_handler("libsmf", (GLogLevelFlags)(G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL | G_LOG_FLAG_RECURSION),
                            glog_handler, c);
  s->old_default = g_log_set_default_handler(glog_handler, c);
  s->old_data = NULL;
}

static void glog_end(glog_scope *s) {
  g_log_remove_handler("libsmf", s->id);
  g_log_set_default_handler(s->old_default, NULL);
}

/* ---- reading ------------------------------------------------------------------------ */
void mv_midi_free(mv_midi *m) {
  if (!m) return;
  free(m->notes);
  free(m->tempos);
  free(m->timesigs);
  for (int i = 0; i < m->nwarnings; i++) free(m->warnings[i]);
  free(m->warnings);
  free(m);
}

typedef struct {
  int64_t tick;
  int pitch, velocity, channel;
} onoff;

/* ---- reading the canonical stream back -------------------------------------------
 * normalise() wrote it: MThd (14 bytes), then MTrk chunks holding only
 * [delta] 8n|9n key vel, [delta] FF 51 03 t t t, [delta] FF 58 04 n d c b and a final
 * [delta] FF 2F 00, deltas of at most 5 bytes. It is read back here directly, in one
 * linear pass: libsmf built a list per track, computed each event's seconds by a walk
 * over the tempo map, and freed events one at a time with a linear scan each (and
 * tracks the same way), which made 100k notes or 65k empty tracks take half a minute. */
typedef struct {
  const unsigned char *p, *end; /* the chunks not yet read */
  const unsigned char *q;       /* the current track's next event, NULL before the first */
  int64_t tick;
} canon_track;

static int canon_next_track(canon_track *t) {
  if (t->end - t->p < 8) return 0;
  uint32_t len = be32(t->p + 4);
  t->q = t->p + 8;
  t->p += 8 + (size_t)len;
  t->tick = 0;
  return 1;
}

/* The next event of the current track (its bytes in *d, its tick in *tick); 0 at its end. */
static int canon_next_event(canon_track *t, int64_t *tick, const unsigned char **d) {
  const unsigned char *q = t->q;
  uint64_t v = 0;
  for (int i = 0; i < 5; i++) {
    unsigned char c = *q++;
    v = (v << 7) | (c & 0x7f);
    if (!(c & 0x80)) break;
  }
  t->tick += (int64_t)v;
  if (q[0] == 0xff && q[1] == 0x2f) return 0;
  *d = q;
  *tick = t->tick;
  t->q = q + (q[0] != 0xff ? 3 : q[1] == 0x51 ? 6 : 7);
  return 1;
}

static int cmp_note(const void *a, const void *b) {
  const mv_midi_note *x = a, *y = b;
  if (x->on_tick != y->on_tick) return x->on_tick < y->on_tick ? -1 : 1;
  if (x->track != y->track) return x->track < y->track ? -1 : 1;
  return x->pitch - y->pitch;
}

static int cmp_tempo(const void *a, const void *b) {
  const mv_midi_tempo *x = a, *y = b;
  return x->tick < y->tick ? -1 : x->tick > y->tick;
}

static int cmp_ts(const void *a, const void *b) {
  const mv_midi_timesig *x = a, *y = b;
  return x->tick < y->tick ? -1 : x->tick > y->tick;
}

/* Seconds of a tick through the tempo map (120 qpm before the first tempo):
 * a binary search for the last tempo at or before the tick, whose time (the
 * running sum of the segments before it) collect() filled in. */
double mv_midi_seconds(const mv_midi *m, int64_t tick) {
  int lo = 0, hi = m->ntempos; /* first tempo after tick */
  while (lo < hi) {
    int mid = lo + (hi - lo) / 2;
    if (m->tempos[mid].tick <= tick) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return 0 + (double)tick * 500000.0 / 1e6 / m->ppq;
  const mv_midi_tempo *t = &m->tempos[lo - 1];
  return t->time + (double)(tick - t->tick) * (double)t->usec_per_quarter / 1e6 / m->ppq;
}

/* Pairs note-ons with note-offs per track as magenta.js (@tonejs/midi) does:
 * each note-on, in order, takes the first unused note-off of the same pitch at
 * or after it (any channel); a note-on left without one is dropped. A note-on
 * with velocity 0 is a note-off. */
static int collect(mv_midi *m, const unsigned char *canon, size_t canon_len, wlist *wl, mv_err *err) {
  int64_t cap = 0;
  int ntracks = 0;
  {
    canon_track t = {canon + 14, canon + canon_len, NULL, 0};
    while (canon_next_track(&t)) {
      const unsigned char *d;
      int64_t tick;
      ntracks++;
      while (canon_next_event(&t, &tick, &d)) cap++;
    }
  }
  if (cap > MV_MIDI_MAX_EVENTS)
    return mv_seterr(err, MV_EFORMAT, "the file has %lld note, tempo and meter events; the limit is %d", (long long)cap,
                     MV_MIDI_MAX_EVENTS);
  m->notes = malloc(sizeof *m->notes * (size_t)(cap > 0 ? cap : 1));
  onoff *ons = malloc(sizeof *ons * (size_t)(cap > 0 ? cap : 1));
  onoff *offs = malloc(sizeof *offs * (size_t)(cap > 0 ? cap : 1));
  int64_t *order = malloc(sizeof *order * (size_t)(cap > 0 ? cap : 1));
  if (!m->notes || !ons || !offs || !order) {
    free(ons);
    free(offs);
    free(order);
    return mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  int64_t dropped = 0;
  int tcap = 0, scap = 0;
  canon_track tr = {canon + 14, canon + canon_len, NULL, 0};
  for (int tn = 1; tn <= ntracks && canon_next_track(&tr); tn++) {
    int64_t non = 0, noff = 0, time_pulses;
    const unsigned char *d;
    while (canon_next_event(&tr, &time_pulses, &d)) {
      if (d[0] == 0xff && d[1] == 0x51) {
        if (m->ntempos == tcap) { /* geometric growth: a file may be all tempo events */
          mv_midi_tempo *tp = realloc(m->tempos, sizeof *tp * (size_t)(tcap = tcap * 2 + 16));
          if (!tp) break;
          m->tempos = tp;
        }
        mv_midi_tempo *tp = m->tempos;
        tp[m->ntempos].tick = time_pulses;
        tp[m->ntempos].usec_per_quarter = (d[3] << 16) | (d[4] << 8) | d[5];
        m->ntempos++;
        continue;
      }
      if (d[0] == 0xff && d[1] == 0x58) {
        if (m->ntimesigs == scap) {
          mv_midi_timesig *ts = realloc(m->timesigs, sizeof *ts * (size_t)(scap = scap * 2 + 16));
          if (!ts) break;
          m->timesigs = ts;
        }
        mv_midi_timesig *ts = m->timesigs;
        ts[m->ntimesigs].tick = time_pulses;
        ts[m->ntimesigs].numerator = d[3];
        ts[m->ntimesigs].denominator = 1 << d[4];
        m->ntimesigs++;
        continue;
      }
      if (d[0] == 0xff) continue;
      int hi = d[0] & 0xf0;
      onoff o = {time_pulses, d[1], d[2], d[0] & 0x0f};
      if (hi == 0x90 && d[2] > 0) ons[non++] = o;
      else if (hi == 0x80 || hi == 0x90) offs[noff++] = o;
    }
    /* offs grouped by pitch, in event order; each pitch keeps a cursor: an
     * off before the current on can never match a later on either */
    int64_t head[129] = {0}, cur[128];
    for (int64_t k = 0; k < noff; k++) head[offs[k].pitch + 1]++;
    for (int p = 0; p < 128; p++) head[p + 1] += head[p];
    for (int p = 0; p < 128; p++) cur[p] = head[p];
    for (int64_t k = 0; k < noff; k++) order[cur[offs[k].pitch]++] = k;
    for (int p = 0; p < 128; p++) cur[p] = head[p];
    for (int64_t i = 0; i < non; i++) {
      int p = ons[i].pitch;
      while (cur[p] < head[p + 1] && offs[order[cur[p]]].tick < ons[i].tick) cur[p]++;
      if (cur[p] == head[p + 1]) {
        dropped++;
        continue;
      }
      int64_t k = order[cur[p]++];
      mv_midi_note *n = &m->notes[m->nnotes++];
      n->on_tick = ons[i].tick;
      n->off_tick = offs[k].tick;
      n->pitch = ons[i].pitch;
      n->velocity = ons[i].velocity;
      n->channel = ons[i].channel;
      n->track = tn - 1;
    }
  }
  free(ons);
  free(offs);
  free(order);
  if (dropped) warn(wl, "%lld note-on events without a matching note-off were dropped", (long long)dropped);
  if (m->nnotes > 1) qsort(m->notes, (size_t)m->nnotes, sizeof *m->notes, cmp_note);
  if (m->ntempos > 1) qsort(m->tempos, (size_t)m->ntempos, sizeof *m->tempos, cmp_tempo);
  if (m->ntimesigs > 1) qsort(m->timesigs, (size_t)m->ntimesigs, sizeof *m->timesigs, cmp_ts);
  double t = 0, us = 500000.0; /* each tempo's time: the segments before it, summed in order */
  int64_t at = 0;
  for (int i = 0; i < m->ntempos; i++) {
    m->tempos[i].qpm = 60000000.0 / m->tempos[i].usec_per_quarter;
    t += (double)(m->tempos[i].tick - at) * us / 1e6 / m->ppq;
    at = m->tempos[i].tick;
    us = m->tempos[i].usec_per_quarter;
    m->tempos[i].time = t;
  }
  for (int i = 0; i < m->ntimesigs; i++) m->timesigs[i].time = mv_midi_seconds(m, m->timesigs[i].tick);
  m->end_tick = 0;
  for (int64_t i = 0; i < m->nnotes; i++) {
    mv_midi_note *n = &m->notes[i];
    n->on_time = mv_midi_seconds(m, n->on_tick);
    n->off_time = mv_midi_seconds(m, n->off_tick);
    if (n->off_tick > m->end_tick) m->end_tick = n->off_tick;
  }
  m->end_time = mv_midi_seconds(m, m->end_tick);
  return MV_OK;
}

int mv_midi_parse(mv_midi **out, const void *buf, size_t len, mv_err *err) {
  *out = NULL;
  if (len > MAX_FILE) return mv_seterr(err, MV_EFORMAT, "file too large for a MIDI file (%zu bytes)", len);
  wlist wl = {0, 0};
  bbuf canon = {0, 0, 0};
  int format = 0, ppq = 0, ntracks = 0;
  int rc = normalise(buf, len, &canon, &format, &ppq, &ntracks, &wl, err);
  if (rc) {
    free(canon.p);
    wfree(&wl);
    return rc;
  }
  mv_midi *m = calloc(1, sizeof *m);
  if (!m) {
    free(canon.p);
    wfree(&wl);
    return mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  m->format = format;
  m->ppq = ppq;
  m->ntracks = ntracks;
  rc = collect(m, canon.p, canon.n, &wl, err);
  free(canon.p);
  if (rc) {
    mv_midi_free(m);
    wfree(&wl);
    return rc;
  }
  m->warnings = wl.w;
  m->nwarnings = wl.n;
  *out = m;
  return MV_OK;
}

int mv_midi_read(mv_midi **out, const char *path, mv_err *err) {
  *out = NULL;
  unsigned char *buf;
  size_t len;
  int rc = mv_read_file(path, MAX_FILE, &buf, &len, err);
  if (rc) return rc;
  mv_err e2 = {0, {0}};
  rc = mv_midi_parse(out, buf, len, &e2);
  free(buf);
  if (rc) return mv_seterr(err, rc, "%s: %s", path, e2.msg);
  return MV_OK;
}

/* ---- writing ------------------------------------------------------------------------- */
static int cmp_wev(const void *a, const void *b) {
  const int64_t *x = a, *y = b; /* {tick, kind(0 off, 1 on), pitch, velocity} */
  if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
  if (x[1] != y[1]) return x[1] < y[1] ? -1 : 1;
  return x[2] < y[2] ? -1 : x[2] > y[2];
}

typedef struct {
  smf_t *smf;
  const char *path;
  const glog_capture *cap;
} save_job;

static int fill_smf(const char *tmp, void *ctx, mv_err *err) {
  const save_job *j = ctx;
  if (smf_save(j->smf, tmp) != 0)
    return mv_seterr(err, MV_EIO, "%s: cannot write%s%s", j->path, j->cap->n ? ": " : "", j->cap->msg);
  return MV_OK;
}

static int add_meta(smf_track_t *tr, int64_t tick, const unsigned char *bytes, int n) {
  smf_event_t *e = smf_event_new_from_pointer((void *)bytes, n);
  if (!e) return 0;
  smf_track_add_event_pulses(tr, e, (int)tick);
  return 1;
}

int mv_midi_write(const char *path, const mv_midi_write_opts *o, const mv_midi_wnote *notes, int64_t n,
                  mv_err *err) {
  if (o->ppq <= 0 || o->ppq > 0x7fff) return mv_seterr(err, MV_EINVAL, "ticks per quarter must be 1..32767");
  if (!(o->qpm > 0) || 60000000.0 / o->qpm >= 16777216.0)
    return mv_seterr(err, MV_EINVAL, "tempo %g qpm is out of range", o->qpm);
  if (o->channel < 0 || o->channel > 15) return mv_seterr(err, MV_EINVAL, "channel must be 0..15");
  int64_t *ev = malloc(sizeof(int64_t) * 4 * (size_t)(2 * n > 0 ? 2 * n : 1));
  if (!ev) return mv_seterr(err, MV_ENOMEM, "out of memory");
  for (int64_t i = 0; i < n; i++) {
    const mv_midi_wnote *w = &notes[i];
    if (w->tick < 0 || w->dur <= 0 || w->tick + w->dur > MAX_TICK || w->pitch < 0 || w->pitch > 127 ||
        w->velocity < 1 || w->velocity > 127) {
      free(ev);
      return mv_seterr(err, MV_EINVAL, "note %lld: bad tick, duration, pitch or velocity", (long long)i + 1);
    }
    int64_t *on = ev + 8 * i, *off = on + 4;
    on[0] = w->tick, on[1] = 1, on[2] = w->pitch, on[3] = w->velocity;
    off[0] = w->tick + w->dur, off[1] = 0, off[2] = w->pitch, off[3] = 0;
  }
  qsort(ev, (size_t)(2 * n), sizeof(int64_t) * 4, cmp_wev);
  glog_capture cap = {{0}, 0};
  glog_scope scope;
  int rc = MV_OK;
  pthread_mutex_lock(&smf_lock);
  glog_begin(&scope, &cap);
  smf_t *smf = smf_new();
  smf_track_t *conductor = smf ? smf_track_new() : NULL, *drums = smf ? smf_track_new() : NULL;
  if (!smf || !conductor || !drums || smf_set_ppqn(smf, o->ppq) != 0) {
    rc = mv_seterr(err, MV_ENOMEM, "out of memory");
  } else {
    smf_add_track(smf, conductor);
    smf_add_track(smf, drums);
    conductor = drums = NULL;
    smf_track_t *t1 = smf_get_track_by_number(smf, 1), *t2 = smf_get_track_by_number(smf, 2);
    uint32_t us = (uint32_t)(60000000.0 / o->qpm + 0.5);
    unsigned char tempo[6] = {0xff, 0x51, 3, (unsigned char)(us >> 16), (unsigned char)(us >> 8), (unsigned char)us};
    int dpow = 0;
    while ((1 << dpow) < o->ts_den && dpow < 6) dpow++;
    unsigned char ts[7] = {0xff, 0x58, 4, (unsigned char)o->ts_num, (unsigned char)dpow, 24, 8};
    const char *name = o->track_name ? o->track_name : "Drums";
    size_t nl = strlen(name) > 120 ? 120 : strlen(name);
    unsigned char nm[128] = {0xff, 0x03, (unsigned char)nl};
    memcpy(nm + 3, name, nl);
    int ok = add_meta(t1, 0, tempo, 6) && add_meta(t1, 0, ts, 7) && add_meta(t2, 0, nm, (int)nl + 3);
    for (int64_t i = 0; ok && i < 2 * n; i++) {
      int64_t *e = ev + 4 * i;
      smf_event_t *me = smf_event_new_from_bytes((e[1] ? 0x90 : 0x80) | o->channel, (int)e[2], (int)e[3]);
      if (!me) ok = 0;
      else smf_track_add_event_pulses(t2, me, (int)e[0]);
    }
    int64_t last = 0;
    for (int64_t i = 0; i < 2 * n; i++)
      if (ev[4 * i] > last) last = ev[4 * i];
    if (ok && (smf_track_add_eot_pulses(t1, (int)last) != 0 || smf_track_add_eot_pulses(t2, (int)last) != 0)) ok = 0;
    if (!ok) rc = mv_seterr(err, MV_ENOMEM, "could not build the MIDI events%s%s", cap.n ? ": " : "", cap.msg);
    if (!rc) {
      save_job j = {smf, path, &cap};
      rc = mv_write_atomic_with(path, fill_smf, &j, err);
    }
  }
  if (smf) smf_delete(smf);
  if (conductor) smf_track_delete(conductor);
  if (drums) smf_track_delete(drums);
  glog_end(&scope);
  pthread_mutex_unlock(&smf_lock);
  free(ev);
  return rc;
}
