/* mv_drums.c -- Magenta's drum pipeline on integer ticks:
 * split at tempo / time-signature changes, meter filter, quantization with
 * magenta's rule floor(t * steps_per_second + 0.5) evaluated exactly, drum
 * track extraction with the gap rule, 512-class labels. Windowing and
 * de-duplication happen in Lua (musicvae.data). */
#include "mv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* floor(tick * spq / ppq + 1/2) exactly: a tie (exactly half a step) rounds up.
 * tick = a * ppq + r with 0 <= r < ppq, so only a * spq can leave int64 (it
 * saturates); ppq or spq below 1 give 0 (callers validate them). */
int64_t mv_quantize_tick(int64_t tick, int ppq, int spq) {
  if (ppq <= 0 || spq <= 0) return 0;
  int64_t a = tick / ppq, r = tick % ppq;
  if (r < 0) r += ppq, a--;
  /* 2 * spq * r + ppq < 2 * 2^31 * 2^31 + 2^31 fits in uint64 */
  uint64_t fr = (2 * (uint64_t)spq * (uint64_t)r + (uint64_t)ppq) / (2 * (uint64_t)ppq);
  if (a > (INT64_MAX - (int64_t)spq) / spq) return INT64_MAX;
  if (a < INT64_MIN / spq) return INT64_MIN;
  return a * spq + (int64_t)fr;
}

/* The whole file's step count (see mv_drum_labels), refused past MV_MAX_STEPS
 * before anything is allocated per step. */
static int file_steps(const mv_midi *m, int spq, int64_t *steps, mv_err *err) {
  if (spq <= 0 || m->ppq <= 0) return mv_seterr(err, MV_EINVAL, "bad steps per quarter or ticks per quarter");
  int64_t n = mv_quantize_tick(m->end_tick, m->ppq, spq);
  for (int64_t i = 0; i < m->nnotes; i++) {
    int64_t s = mv_quantize_tick(m->notes[i].on_tick, m->ppq, spq);
    int64_t e = mv_quantize_tick(m->notes[i].off_tick, m->ppq, spq);
    if (e == s) e++;
    if (e > n) n = e;
  }
  if (n > MV_MAX_STEPS)
    return mv_seterr(err, MV_EFORMAT,
                     "the notes span %lld steps at %d per quarter; the limit is %d steps (%d bars of 16 steps)",
                     (long long)n, spq, MV_MAX_STEPS, MV_MAX_STEPS / 16);
  *steps = n;
  return MV_OK;
}

void mv_drum_result_free(mv_drum_result *r) {
  for (int i = 0; i < r->ntracks; i++) free(r->tracks[i].labels);
  free(r->tracks);
  memset(r, 0, sizeof *r);
}

static int kept(const mv_midi_note *n, const mv_drum_opts *o) {
  if (n->velocity <= 0 || n->pitch < 0 || n->pitch > 127) return 0;
  if (o->drum_channel >= 0 && n->channel != o->drum_channel) return 0;
  return o->pitch_class[n->pitch] >= 0;
}

int mv_drum_labels(uint16_t **labels, int64_t *steps, const mv_midi *m, const mv_drum_opts *o, mv_err *err) {
  int spq = o->steps_per_quarter;
  int64_t n;
  int rc = file_steps(m, spq, &n, err);
  if (rc) return rc;
  uint16_t *l = calloc((size_t)(n > 0 ? n : 1), sizeof *l);
  if (!l) return mv_seterr(err, MV_ENOMEM, "out of memory");
  for (int64_t i = 0; i < m->nnotes; i++) {
    const mv_midi_note *nt = &m->notes[i];
    if (!kept(nt, o)) continue;
    int64_t s = mv_quantize_tick(nt->on_tick, m->ppq, spq);
    if (s >= 0 && s < n) l[s] |= (uint16_t)(1u << o->pitch_class[nt->pitch]);
  }
  *labels = l;
  *steps = n;
  return MV_OK;
}

int mv_drum_groove(uint8_t **velocity, float **offset, int64_t *steps, const mv_midi *m, const mv_drum_opts *o,
                   mv_err *err) {
  int64_t n;
  int rc = file_steps(m, o->steps_per_quarter, &n, err); /* the step count, as the labels */
  if (rc) return rc;
  uint8_t *v = calloc((size_t)(n > 0 ? n : 1) * 9, 1);
  float *off = calloc((size_t)(n > 0 ? n : 1) * 9, sizeof *off);
  if (!v || !off) {
    free(v);
    free(off);
    return mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  int spq = o->steps_per_quarter;
  for (int64_t i = 0; i < m->nnotes; i++) {
    const mv_midi_note *nt = &m->notes[i];
    if (!kept(nt, o)) continue;
    int64_t s = mv_quantize_tick(nt->on_tick, m->ppq, spq);
    if (s < 0 || s >= n) continue;
    size_t x = (size_t)s * 9 + (size_t)o->pitch_class[nt->pitch];
    if (nt->velocity > v[x]) { /* the loudest note of a (step, class) wins; the first on a tie */
      v[x] = (uint8_t)nt->velocity;
      /* 2 * (s * ppq / spq - tick) / (ppq / spq) = 2 * (s * ppq - tick * spq) / ppq, exact in integers */
      off[x] = (float)(2.0 * (double)(s * m->ppq - nt->on_tick * spq) / (double)m->ppq);
    }
  }
  *velocity = v;
  *offset = off;
  *steps = n;
  return MV_OK;
}

typedef struct {
  int64_t step;
  uint16_t bits;
} onset;

static int push_track(mv_drum_result *r, int piece, int64_t piece_tick, int64_t start, int64_t len, const onset *ev,
                      int64_t nev, mv_err *err) {
  if ((r->ntracks & (r->ntracks - 1)) == 0) { /* capacity doubles at each power of two */
    mv_drum_track *t = realloc(r->tracks, sizeof *t * (size_t)(r->ntracks ? 2 * r->ntracks : 1));
    if (!t) return mv_seterr(err, MV_ENOMEM, "out of memory");
    r->tracks = t;
  }
  mv_drum_track *k = &r->tracks[r->ntracks];
  k->labels = calloc((size_t)len, sizeof *k->labels);
  if (!k->labels) return mv_seterr(err, MV_ENOMEM, "out of memory");
  k->piece = piece;
  k->piece_tick = piece_tick;
  k->start_step = start;
  k->len = len;
  for (int64_t i = 0; i < nev; i++)
    if (ev[i].step - start < len) k->labels[ev[i].step - start] |= ev[i].bits;
  r->ntracks++;
  return MV_OK;
}

/* DrumTrack.from_quantized_sequence + extract_drum_tracks over one piece's
 * onsets (sorted, one entry per step). */
static int extract_piece(mv_drum_result *r, int piece, int64_t piece_tick, const onset *ev, int64_t nev,
                         const mv_drum_opts *o, mv_err *err) {
  int64_t spb = o->steps_per_bar, search = 0, i = 0;
  while (1) {
    while (i < nev && ev[i].step < search) i++;
    if (i >= nev) break;
    int64_t track_start = ev[i].step - (ev[i].step - search) % spb;
    int64_t gap_start = 0, len = 0, j = i;
    for (; j < nev; j++) {
      int64_t idx = ev[j].step - track_start;
      if (len > 0 && idx - gap_start >= (int64_t)o->gap_bars * spb) break;
      len = idx + 1;
      gap_start = idx + 1;
    }
    len += (spb - len % spb) % spb; /* pad to whole bars */
    int64_t end = track_start + len;
    search = end;
    if (o->max_bars > 0 && len > (int64_t)o->max_bars * spb) {
      r->steps_truncated += len - (int64_t)o->max_bars * spb;
      len = (int64_t)o->max_bars * spb;
    }
    int rc = push_track(r, piece, piece_tick, track_start, len, ev + i, j - i, err);
    if (rc) return rc;
    i = j;
  }
  return MV_OK;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int mv_drum_extract(mv_drum_result *r, const mv_midi *m, const mv_drum_opts *o, mv_err *err) {
  memset(r, 0, sizeof *r);
  if (o->steps_per_quarter <= 0 || o->steps_per_bar <= 0 || o->gap_bars <= 0 || o->max_bars < 0)
    return mv_seterr(err, MV_EINVAL, "bad drum pipeline options");
  int64_t nsteps;
  int rc0 = file_steps(m, o->steps_per_quarter, &nsteps, err); /* bounds every track's length too */
  if (rc0) return rc0;
  int64_t nkept = 0;
  for (int64_t i = 0; i < m->nnotes; i++) nkept += kept(&m->notes[i], o);
  if (m->nnotes == 0) {
    r->drop = MV_DROP_NO_NOTES;
    snprintf(r->detail, sizeof r->detail, "no notes");
    return MV_OK;
  }
  if (nkept == 0) {
    r->drop = MV_DROP_NO_DRUMS;
    snprintf(r->detail, sizeof r->detail, "%lld notes, none a mapped drum on the drum channel",
             (long long)m->nnotes);
    return MV_OK;
  }
  /* Split where the tempo or the meter actually changes (magenta's
   * presplit_on_time_changes): implicit 120 qpm and 4/4 at tick 0. */
  int64_t *splits = malloc(sizeof *splits * (size_t)(1 + m->ntempos + m->ntimesigs));
  if (!splits) return mv_seterr(err, MV_ENOMEM, "out of memory");
  int nsplit = 0;
  splits[nsplit++] = 0;
  int cur_us = 500000;
  for (int i = 0; i < m->ntempos; i++) {
    if (m->tempos[i].usec_per_quarter != cur_us && m->tempos[i].tick > 0) splits[nsplit++] = m->tempos[i].tick;
    cur_us = m->tempos[i].usec_per_quarter;
  }
  int cn = 4, cd = 4;
  for (int i = 0; i < m->ntimesigs; i++) {
    const mv_midi_timesig *t = &m->timesigs[i];
    if ((t->numerator != cn || t->denominator != cd) && t->tick > 0) splits[nsplit++] = t->tick;
    cn = t->numerator;
    cd = t->denominator;
  }
  /* sorted and de-duplicated in O(n log n): a file may hold a tempo change per tick */
  qsort(splits, (size_t)nsplit, sizeof *splits, cmp_i64);
  int u = 0;
  for (int i = 0; i < nsplit; i++)
    if (u == 0 || splits[i] != splits[u - 1]) splits[u++] = splits[i];
  nsplit = u;
  r->npieces = nsplit;
  onset *ev = malloc(sizeof *ev * (size_t)(nkept > 0 ? nkept : 1));
  if (!ev) {
    free(splits);
    return mv_seterr(err, MV_ENOMEM, "out of memory");
  }
  int rc = MV_OK, meter_num = 0, meter_den = 0;
  int64_t ni = 0;
  int ti = 0, num = 4, den = 4; /* the meter in force at the piece start: a cursor, as splits ascend */
  for (int p = 0; p < nsplit && !rc; p++) {
    int64_t a = splits[p], b = p + 1 < nsplit ? splits[p + 1] : INT64_MAX;
    for (; ti < m->ntimesigs && m->timesigs[ti].tick <= a; ti++) {
      num = m->timesigs[ti].numerator;
      den = m->timesigs[ti].denominator;
    }
    while (ni < m->nnotes && m->notes[ni].on_tick < a) ni++;
    int64_t nev = 0;
    for (int64_t i = ni; i < m->nnotes && m->notes[i].on_tick < b; i++) {
      const mv_midi_note *n = &m->notes[i];
      if (!kept(n, o)) continue;
      int64_t s = mv_quantize_tick(n->on_tick - a, m->ppq, o->steps_per_quarter);
      uint16_t bit = (uint16_t)(1u << o->pitch_class[n->pitch]);
      if (nev > 0 && ev[nev - 1].step == s) ev[nev - 1].bits |= bit;
      else {
        ev[nev].step = s;
        ev[nev].bits = bit;
        nev++;
      }
    }
    if (nev == 0) continue;
    if ((int64_t)o->steps_per_quarter * 4 * num != (int64_t)o->steps_per_bar * den) {
      r->pieces_meter++;
      meter_num = num;
      meter_den = den;
      continue;
    }
    rc = extract_piece(r, p, a, ev, nev, o, err);
  }
  free(ev);
  free(splits);
  if (rc) {
    mv_drum_result_free(r);
    return rc;
  }
  if (r->ntracks == 0) {
    r->drop = MV_DROP_METER;
    snprintf(r->detail, sizeof r->detail, "time signature %d/%d gives %g steps per bar, not %d", meter_num, meter_den,
             (double)o->steps_per_quarter * 4 * meter_num / (meter_den ? meter_den : 1), o->steps_per_bar);
  }
  return MV_OK;
}
