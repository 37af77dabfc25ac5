/* mvl_midi.c -- MIDI files and the drum pipeline from Lua.
 *   core.midi_load(path) / core.midi_parse(bytes) -> Midi userdata, or nil, err
 *   m:info()            -> {format, ppq, tracks, end_tick, end_time, tempos, timesigs, warnings}
 *   m:notes()           -> {{on, off, on_time, off_time, pitch, velocity, channel (1-16), track (1-based)}, ...}
 *   m:labels(opts)      -> labels (array over the whole file), steps
 *   m:tracks(opts)      -> {tracks = {{piece, piece_tick, start_step, labels}}, drop, detail, pieces, pieces_meter, steps_truncated}
 *   (labels, groove and tracks return nil, err for a file past MV_MAX_STEPS)
 *   core.midi_write(path, notes, opts) -> true, or nil, err
 * opts: classes (128-byte string, byte = class + 1, 0 = not kept), drum_channel (0-15 or -1),
 *       steps_per_quarter, steps_per_bar, gap_bars, max_bars. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mvl.h"

#define MVL_MIDI_MT "musicvae.Midi"

typedef struct {
  mv_midi *m;
} mvl_midi;

static mv_midi *checkmidi(lua_State *L, int idx) {
  mvl_midi *u = luaL_checkudata(L, idx, MVL_MIDI_MT);
  if (!u->m) luaL_error(L, "MIDI handle is closed");
  return u->m;
}

static int l_load(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mvl_midi *u = lua_newuserdatauv(L, sizeof *u, 0); /* anchored before parsing */
  u->m = NULL;
  luaL_setmetatable(L, MVL_MIDI_MT);
  mv_err err;
  if (mv_midi_read(&u->m, path, &err)) return mvl_fail(L, &err);
  return 1;
}

static int l_parse(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  mvl_midi *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->m = NULL;
  luaL_setmetatable(L, MVL_MIDI_MT);
  mv_err err;
  if (mv_midi_parse(&u->m, s, len, &err)) return mvl_fail(L, &err);
  return 1;
}

static int m_gc(lua_State *L) {
  mvl_midi *u = luaL_checkudata(L, 1, MVL_MIDI_MT);
  mv_midi_free(u->m);
  u->m = NULL;
  return 0;
}

static void setint(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void setnum(lua_State *L, const char *k, lua_Number v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static int m_info(lua_State *L) {
  mv_midi *m = checkmidi(L, 1);
  lua_createtable(L, 0, 10);
  setint(L, "format", m->format);
  setint(L, "ppq", m->ppq);
  setint(L, "tracks", m->ntracks);
  setint(L, "notes", m->nnotes);
  setint(L, "end_tick", m->end_tick);
  setnum(L, "end_time", m->end_time);
  lua_createtable(L, m->ntempos, 0);
  for (int i = 0; i < m->ntempos; i++) {
    lua_createtable(L, 0, 4);
    setint(L, "tick", m->tempos[i].tick);
    setnum(L, "time", m->tempos[i].time);
    setnum(L, "qpm", m->tempos[i].qpm);
    setint(L, "usec_per_quarter", m->tempos[i].usec_per_quarter);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "tempos");
  lua_createtable(L, m->ntimesigs, 0);
  for (int i = 0; i < m->ntimesigs; i++) {
    lua_createtable(L, 0, 4);
    setint(L, "tick", m->timesigs[i].tick);
    setnum(L, "time", m->timesigs[i].time);
    setint(L, "numerator", m->timesigs[i].numerator);
    setint(L, "denominator", m->timesigs[i].denominator);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "timesigs");
  lua_createtable(L, m->nwarnings, 0);
  for (int i = 0; i < m->nwarnings; i++) {
    lua_pushstring(L, m->warnings[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "warnings");
  return 1;
}

static int m_notes(lua_State *L) {
  mv_midi *m = checkmidi(L, 1);
  lua_createtable(L, (int)m->nnotes, 0);
  for (int64_t i = 0; i < m->nnotes; i++) {
    const mv_midi_note *n = &m->notes[i];
    lua_createtable(L, 0, 8);
    setint(L, "on", n->on_tick);
    setint(L, "off", n->off_tick);
    setnum(L, "on_time", n->on_time);
    setnum(L, "off_time", n->off_time);
    setint(L, "pitch", n->pitch);
    setint(L, "velocity", n->velocity);
    setint(L, "channel", n->channel + 1);
    setint(L, "track", n->track + 1);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* out-of-int values become -1, which the core refuses, instead of wrapping into range */
static lua_Integer clampint(lua_Integer v) { return v < INT_MIN || v > INT_MAX ? -1 : v; }

static void checkopts(lua_State *L, int idx, mv_drum_opts *o) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "classes");
  size_t n;
  const char *c = lua_tolstring(L, -1, &n);
  if (!c || n != 128) luaL_error(L, "drum options: classes must be a 128-byte string");
  for (int i = 0; i < 128; i++) {
    int v = (unsigned char)c[i];
    if (v > 9) luaL_error(L, "drum options: class of pitch %d out of range", i);
    o->pitch_class[i] = (int8_t)(v - 1);
  }
  lua_pop(L, 1);
  o->drum_channel = mvl_optint(L, idx, "drum_channel", 9);
  o->steps_per_quarter = mvl_optint(L, idx, "steps_per_quarter", 4);
  o->steps_per_bar = mvl_optint(L, idx, "steps_per_bar", 16);
  o->gap_bars = mvl_optint(L, idx, "gap_bars", 1);
  o->max_bars = mvl_optint(L, idx, "max_bars", 0);
  if (o->drum_channel < -1 || o->drum_channel > 15) luaL_error(L, "drum options: drum_channel must be 0-15 or -1");
  if (o->steps_per_quarter < 1 || o->steps_per_quarter > 96 || o->steps_per_bar < 1 || o->steps_per_bar > 1536 ||
      o->gap_bars < 1 || o->max_bars < 0)
    luaL_error(L, "drum options out of range");
}

static void push_labels(lua_State *L, const uint16_t *l, int64_t n) {
  lua_createtable(L, (int)n, 0);
  for (int64_t i = 0; i < n; i++) {
    lua_pushinteger(L, l[i]);
    lua_rawseti(L, -2, i + 1);
  }
}

static int m_labels(lua_State *L) {
  mv_midi *m = checkmidi(L, 1);
  mv_drum_opts o;
  checkopts(L, 2, &o);
  uint16_t *l;
  int64_t n;
  mv_err err;
  int rc = mv_drum_labels(&l, &n, m, &o, &err);
  if (rc == MV_EINVAL) return mvl_raise(L, &err);
  if (rc) return mvl_fail(L, &err); /* a file past the limits: nil, err */
  push_labels(L, l, n);
  free(l);
  lua_pushinteger(L, n);
  return 2;
}

/* m:groove(opts) -> velocities {[step] = {[class] = v}}, offsets (same shape), steps;
 * only hit cells are present (1-based steps and classes). */
static int m_groove(lua_State *L) {
  mv_midi *m = checkmidi(L, 1);
  mv_drum_opts o;
  checkopts(L, 2, &o);
  uint8_t *v;
  float *off;
  int64_t n;
  mv_err err;
  int rc = mv_drum_groove(&v, &off, &n, m, &o, &err);
  if (rc == MV_EINVAL) return mvl_raise(L, &err);
  if (rc) return mvl_fail(L, &err); /* a file past the limits: nil, err */
  lua_createtable(L, (int)n, 0);
  lua_createtable(L, (int)n, 0);
  for (int64_t s = 0; s < n; s++) {
    int any = 0;
    for (int c = 0; c < 9; c++) any |= v[s * 9 + c];
    if (!any) continue;
    lua_createtable(L, 9, 0);
    lua_createtable(L, 9, 0);
    for (int c = 0; c < 9; c++)
      if (v[s * 9 + c]) {
        lua_pushinteger(L, v[s * 9 + c]);
        lua_rawseti(L, -3, c + 1);
        lua_pushnumber(L, off[s * 9 + c]);
        lua_rawseti(L, -2, c + 1);
      }
    lua_rawseti(L, -3, s + 1);
    lua_rawseti(L, -3, s + 1);
  }
  free(v);
  free(off);
  lua_pushinteger(L, n);
  return 3;
}

static const char *drop_name(int d) {
  switch (d) {
  case MV_DROP_NO_NOTES: return "no notes";
  case MV_DROP_NO_DRUMS: return "no drum notes";
  case MV_DROP_METER: return "meter";
  default: return NULL;
  }
}

static int m_tracks(lua_State *L) {
  mv_midi *m = checkmidi(L, 1);
  mv_drum_opts o;
  checkopts(L, 2, &o);
  mv_drum_result r;
  mv_err err;
  int rc = mv_drum_extract(&r, m, &o, &err);
  if (rc == MV_EINVAL) return mvl_raise(L, &err);
  if (rc) return mvl_fail(L, &err); /* a file past the limits: nil, err */
  lua_createtable(L, 0, 6);
  lua_createtable(L, r.ntracks, 0);
  for (int i = 0; i < r.ntracks; i++) {
    const mv_drum_track *t = &r.tracks[i];
    lua_createtable(L, 0, 4);
    setint(L, "piece", t->piece + 1);
    setint(L, "piece_tick", t->piece_tick);
    setint(L, "start_step", t->start_step);
    push_labels(L, t->labels, t->len);
    lua_setfield(L, -2, "labels");
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "tracks");
  if (drop_name(r.drop)) {
    lua_pushstring(L, drop_name(r.drop));
    lua_setfield(L, -2, "drop");
    lua_pushstring(L, r.detail);
    lua_setfield(L, -2, "detail");
  }
  setint(L, "pieces", r.npieces);
  setint(L, "pieces_meter", r.pieces_meter);
  setint(L, "steps_truncated", r.steps_truncated);
  mv_drum_result_free(&r);
  return 1;
}

/* core.midi_write(path, notes, {ppq, qpm, ts_num, ts_den, channel (0-15), name}) */
static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  mv_midi_write_opts o;
  o.ppq = mvl_optint(L, 3, "ppq", 480);
  lua_getfield(L, 3, "qpm");
  o.qpm = luaL_optnumber(L, -1, 120.0);
  lua_pop(L, 1);
  o.ts_num = mvl_optint(L, 3, "ts_num", 4);
  o.ts_den = mvl_optint(L, 3, "ts_den", 4);
  o.channel = mvl_optint(L, 3, "channel", 9);
  lua_getfield(L, 3, "name");
  o.track_name = lua_tostring(L, -1); /* stays on the stack */
  lua_Integer n = luaL_len(L, 2);
  mv_midi_wnote *w = lua_newuserdatauv(L, sizeof *w * (size_t)(n > 0 ? n : 1), 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_geti(L, 2, i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "tick");
    w[i].tick = luaL_checkinteger(L, -1);
    lua_getfield(L, -2, "dur");
    w[i].dur = luaL_checkinteger(L, -1);
    lua_getfield(L, -3, "pitch");
    w[i].pitch = (int)clampint(luaL_checkinteger(L, -1));
    lua_getfield(L, -4, "velocity");
    w[i].velocity = (int)clampint(luaL_checkinteger(L, -1));
    lua_pop(L, 5);
  }
  mv_err err;
  int rc = mv_midi_write(path, &o, w, n, &err);
  if (rc == MV_EINVAL) return mvl_raise(L, &err);
  if (rc) return mvl_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.quantize_tick(tick, ppq[, steps_per_quarter = 4]): ppq 1-32767 (what a MIDI file can
 * hold), steps 1-96 (as the drum options), |tick| <= 2^53; validated before any cast to int. */
static int l_quantize(lua_State *L) {
  lua_Integer tick = luaL_checkinteger(L, 1), ppq = luaL_checkinteger(L, 2), spq = luaL_optinteger(L, 3, 4);
  luaL_argcheck(L, tick >= -((lua_Integer)1 << 53) && tick <= ((lua_Integer)1 << 53), 1, "tick must be within +-2^53");
  luaL_argcheck(L, ppq >= 1 && ppq <= 0x7fff, 2, "ticks per quarter must be 1-32767");
  luaL_argcheck(L, spq >= 1 && spq <= 96, 3, "steps per quarter must be 1-96");
  lua_pushinteger(L, mv_quantize_tick(tick, (int)ppq, (int)spq));
  return 1;
}

static const luaL_Reg methods[] = {{"info", m_info},     {"notes", m_notes}, {"labels", m_labels}, {"groove", m_groove},
                                   {"tracks", m_tracks}, {"close", m_gc},    {NULL, NULL}};

static const luaL_Reg functions[] = {{"midi_load", l_load},
                                     {"midi_parse", l_parse},
                                     {"midi_write", l_write},
                                     {"quantize_tick", l_quantize},
                                     {NULL, NULL}};

void mvl_midi_open(lua_State *L) {
  mvl_newclass(L, MVL_MIDI_MT, methods, m_gc);
  luaL_setfuncs(L, functions, 0);
  lua_pushinteger(L, MV_MAX_STEPS);
  lua_setfield(L, -2, "MAX_STEPS");
}
