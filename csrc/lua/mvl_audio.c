/* mvl_audio.c -- FluidSynth rendering and audio files from Lua (see mv_audio.h).
 *   core.audio_info() -> {synth = bool, sndfile = bool, fluidsynth = version, libsndfile = version}
 *   core.synth_new(soundfont, rate, gain[, polyphony]) -> Synth, or nil, err
 *   s:render_pattern(opts) -> tensor [frames, 2], length (s)
 *       opts: labels (string of little-endian uint16), steps_per_bar, qpm, pitches {9},
 *             velocity (default), velocities / offsets (strings of steps * 9 little-endian floats; may be nil),
 *             loops, tail
 *   s:render_midi(path, opts) -> tensor, length, notes_left_out; or nil, err
 *       opts: channel (0-15, -1 = all), qpm (0 = the file's), loops, tail
 *   (both render nil, err past core.AUDIO_MAX_SECONDS of audio or core.AUDIO_MAX_PLAYS notes x loops)
 *   s:info() -> {rate, preset, bank, program};  s:set_gain(g);  s:close()
 *   core.audio_write(path, samples [frames, channels], rate[, bits]) -> true, or nil, err
 * Bad arguments raise; missing libraries, files and bad data return nil, err. */
#include <stdlib.h>
#include <string.h>

#include "../mv_audio.h"
#include "mvl.h"

#define MVL_SYNTH_MT "musicvae.Synth"

typedef struct {
  mv_synth *s;
} mvl_synth;

static mv_synth *checksynth(lua_State *L, int idx) {
  mvl_synth *u = luaL_checkudata(L, idx, MVL_SYNTH_MT);
  if (!u->s) luaL_error(L, "synth is closed");
  return u->s;
}

static int s_gc(lua_State *L) {
  mvl_synth *u = luaL_checkudata(L, 1, MVL_SYNTH_MT);
  mv_synth_free(u->s);
  u->s = NULL;
  return 0;
}

static int l_info(lua_State *L) {
  lua_createtable(L, 0, 4);
  lua_pushboolean(L, mv_audio_have_synth());
  lua_setfield(L, -2, "synth");
  lua_pushboolean(L, mv_audio_have_sndfile());
  lua_setfield(L, -2, "sndfile");
  lua_pushstring(L, mv_audio_synth_version());
  lua_setfield(L, -2, "fluidsynth");
  lua_pushstring(L, mv_audio_sndfile_version());
  lua_setfield(L, -2, "libsndfile");
  return 1;
}

static int l_synth_new(lua_State *L) {
  mv_synth_opts o;
  memset(&o, 0, sizeof o);
  o.soundfont = luaL_checkstring(L, 1);
  o.rate = luaL_checknumber(L, 2);
  o.gain = luaL_checknumber(L, 3);
  o.polyphony = (int)luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, o.rate >= 8000 && o.rate <= 96000, 2, "rate must be 8000-96000 Hz");
  luaL_argcheck(L, o.gain >= 0 && o.gain <= 10, 3, "gain must be 0-10");
  luaL_argcheck(L, o.polyphony >= 0 && o.polyphony <= 65535, 4, "polyphony must be 0-65535");
  mvl_synth *u = lua_newuserdatauv(L, sizeof *u, 0); /* anchored before loading */
  u->s = NULL;
  luaL_setmetatable(L, MVL_SYNTH_MT);
  mv_err err;
  if (mv_synth_new(&u->s, &o, &err)) return mvl_fail(L, &err);
  return 1;
}

static double optnum(lua_State *L, int t, const char *k, double def) {
  lua_getfield(L, t, k);
  double v = lua_isnil(L, -1) ? def : luaL_checknumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static lua_Integer optint(lua_State *L, int t, const char *k, lua_Integer def) {
  lua_getfield(L, t, k);
  lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* reads opts.loops and opts.tail */
static void render_opts(lua_State *L, int t, mv_render_opts *r) {
  lua_Integer loops = optint(L, t, "loops", 1);
  double tail = optnum(L, t, "tail", 1.0);
  if (loops < 0 || loops > 100000) luaL_error(L, "render: loops must be 0-100000");
  if (!(tail >= 0 && tail <= 60)) luaL_error(L, "render: tail must be 0-60 seconds");
  r->loops = (int)loops;
  r->tail = tail;
}

/* Events from a malloc'd array into a userdata at the top (so nothing leaks if a
 * later allocation raises); returns the copy. */
static mv_note_event *anchor_events(lua_State *L, mv_note_event *ev, int64_t n) {
  mv_note_event *copy = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *ev, 0);
  if (n > 0) memcpy(copy, ev, (size_t)n * sizeof *ev);
  free(ev);
  return copy;
}

/* renders and leaves the tensor on the stack; raises only for bad arguments; a render past
 * the limits (MV_AUDIO_MAX_SECONDS, MV_AUDIO_MAX_PLAYS) is nil, err before it is allocated */
static int render(lua_State *L, mv_synth *s, const mv_note_event *ev, int64_t n, const mv_render_opts *r) {
  mv_err err;
  int rc = mv_render_check(r, n, &err);
  if (rc == MV_EINVAL) return mvl_raise(L, &err);
  if (rc) return mvl_fail(L, &err);
  int64_t frames = mv_render_frames(mv_synth_rate(s), r);
  if (frames < 0) return luaL_error(L, "render: bad length, loops or tail");
  int64_t size[2] = {frames, 2};
  mvl_tensor *t = mvl_newtensor(L, 2, size);
  rc = mv_synth_render(s, t->t.data, frames, ev, n, r, &err);
  if (rc == MV_EINVAL || rc == MV_ESHAPE) return mvl_raise(L, &err);
  if (rc) return mvl_fail(L, &err);
  return 1;
}

static const char *optbytes(lua_State *L, int t, const char *k, size_t *len) {
  lua_getfield(L, t, k);
  const char *s = lua_isnil(L, -1) ? NULL : luaL_checklstring(L, -1, len);
  lua_pop(L, 1); /* the string stays alive: the options table holds it */
  return s;
}

static int s_render_pattern(lua_State *L) {
  mv_synth *s = checksynth(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  mv_audio_pattern p;
  memset(&p, 0, sizeof p);
  size_t nl = 0, nv = 0, no = 0;
  const char *labels = optbytes(L, 2, "labels", &nl);
  if (!labels || nl % 2 != 0) return luaL_error(L, "render: labels must be a string of uint16 values");
  p.steps = (int64_t)(nl / 2);
  uint16_t *lab = lua_newuserdatauv(L, nl > 0 ? nl : 1, 0);
  for (int64_t i = 0; i < p.steps; i++)
    lab[i] = (uint16_t)((unsigned char)labels[2 * i] | ((unsigned)(unsigned char)labels[2 * i + 1] << 8));
  p.labels = lab;
  p.steps_per_bar = (int)optint(L, 2, "steps_per_bar", 16);
  p.qpm = optnum(L, 2, "qpm", 120);
  p.velocity_default = (int)optint(L, 2, "velocity", 80);
  size_t want = (size_t)p.steps * MV_AUDIO_CLASSES * sizeof(float);
  const char *vel = optbytes(L, 2, "velocities", &nv);
  const char *off = optbytes(L, 2, "offsets", &no);
  if ((vel && nv != want) || (off && no != want))
    return luaL_error(L, "render: velocities and offsets must hold steps * 9 floats");
  float *fv = NULL, *fo = NULL;
  if (vel) {
    fv = lua_newuserdatauv(L, want > 0 ? want : 1, 0);
    memcpy(fv, vel, want); /* packed "<f": this module is built for little-endian hosts */
  }
  if (off) {
    fo = lua_newuserdatauv(L, want > 0 ? want : 1, 0);
    memcpy(fo, off, want);
  }
  p.velocity = fv;
  p.offset = fo;
  lua_getfield(L, 2, "pitches");
  luaL_checktype(L, -1, LUA_TTABLE);
  for (int c = 0; c < MV_AUDIO_CLASSES; c++) {
    lua_rawgeti(L, -1, c + 1);
    p.pitch[c] = (int)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  mv_render_opts r;
  render_opts(L, 2, &r);
  mv_note_event *ev;
  int64_t n;
  mv_err err;
  if (mv_audio_pattern_events(&ev, &n, &r.length, &p, &err)) return mvl_raise(L, &err);
  mv_note_event *evs = anchor_events(L, ev, n);
  int got = render(L, s, evs, n, &r);
  if (got != 1) return got;
  lua_pushnumber(L, r.length);
  return 2;
}

static int s_render_midi(lua_State *L) {
  mv_synth *s = checksynth(L, 1);
  const char *path = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer ch = optint(L, 3, "channel", 9);
  double qpm = optnum(L, 3, "qpm", 0);
  if (ch < -1 || ch > 15) return luaL_error(L, "render: channel must be 0-15 or -1 (all)");
  if (!(qpm >= 0 && qpm < 1e4)) return luaL_error(L, "render: qpm must be positive");
  mv_render_opts r;
  render_opts(L, 3, &r);
  mv_midi *m;
  mv_err err;
  if (mv_midi_read(&m, path, &err)) return mvl_fail(L, &err);
  mv_note_event *ev;
  int64_t n, left;
  int rc = mv_audio_midi_events(&ev, &n, &r.length, &left, m, (int)ch, qpm, &err);
  mv_midi_free(m);
  if (rc) {
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, err.msg);
    return 2;
  }
  mv_note_event *evs = anchor_events(L, ev, n);
  int got = render(L, s, evs, n, &r);
  if (got != 1) return got;
  lua_pushnumber(L, r.length);
  lua_pushinteger(L, left);
  return 3;
}

static int s_info(lua_State *L) {
  mv_synth *s = checksynth(L, 1);
  int bank, program;
  const char *name = mv_synth_preset(s, &bank, &program);
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, mv_synth_rate(s));
  lua_setfield(L, -2, "rate");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "preset");
  lua_pushinteger(L, bank);
  lua_setfield(L, -2, "bank");
  lua_pushinteger(L, program);
  lua_setfield(L, -2, "program");
  return 1;
}

static int s_set_gain(lua_State *L) {
  mv_synth *s = checksynth(L, 1);
  mv_err err;
  if (mv_synth_set_gain(s, luaL_checknumber(L, 2), &err)) return mvl_raise(L, &err);
  lua_settop(L, 1);
  return 1;
}

static int l_write(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  mvl_tensor *t = mvl_checktensor(L, 2);
  lua_Integer rate = luaL_checkinteger(L, 3);
  lua_Integer bits = luaL_optinteger(L, 4, 16);
  luaL_argcheck(L, t->t.ndim == 2 && t->t.size[1] >= 1 && t->t.size[1] <= 8, 2,
                "samples must be a [frames, channels] tensor (1-8 channels)");
  luaL_argcheck(L, mv_tensor_is_contiguous(&t->t), 2, "samples must be contiguous");
  luaL_argcheck(L, rate >= 1000 && rate <= 384000, 3, "rate must be 1000-384000 Hz");
  luaL_argcheck(L, bits == 16 || bits == 24 || bits == 32, 4, "bits must be 16, 24 or 32 (float)");
  mv_err err;
  if (mv_audio_write(path, t->t.data, t->t.size[0], (int)t->t.size[1], (int)rate, (int)bits, &err))
    return mvl_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg methods[] = {{"render_pattern", s_render_pattern},
                                   {"render_midi", s_render_midi},
                                   {"info", s_info},
                                   {"set_gain", s_set_gain},
                                   {"close", s_gc},
                                   {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"audio_info", l_info}, {"synth_new", l_synth_new}, {"audio_write", l_write}, {NULL, NULL}};

void mvl_audio_open(lua_State *L) {
  mv_audio_init(); /* FluidSynth's log handler, once per process */
  mvl_newclass(L, MVL_SYNTH_MT, methods, s_gc);
  luaL_setfuncs(L, functions, 0);
  lua_pushnumber(L, MV_AUDIO_MAX_SECONDS);
  lua_setfield(L, -2, "AUDIO_MAX_SECONDS");
  lua_pushinteger(L, MV_AUDIO_MAX_PLAYS);
  lua_setfield(L, -2, "AUDIO_MAX_PLAYS");
}
