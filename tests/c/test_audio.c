/* Audio without Lua: pattern and MIDI notes to events, render lengths, formats, and (when
 * built with FluidSynth and the Debian SoundFont is there) a render's onset and silence. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mv_audio.h"
#include "mvtest.h"

static const int PITCH[9] = {36, 38, 42, 46, 45, 48, 50, 49, 51};

int main(void) {
  mv_err err;
  mv_audio_init();
  mv_audio_init(); /* idempotent */

  /* a pattern: kick on step 0, snare on step 4 (early by 0.5 step, velocity 127.6 -> 127), hat on
   * step 2 with velocity 0 -> 1 and an early offset past time 0 at step 0 clamps */
  uint16_t labels[16] = {0};
  labels[0] = 1 | 4;
  labels[4] = 2;
  labels[2] = 4;
  float vel[16 * 9], off[16 * 9];
  for (int i = 0; i < 16 * 9; i++) vel[i] = -1, off[i] = 0;
  vel[4 * 9 + 1] = 127.6f;
  off[4 * 9 + 1] = 0.5f;
  vel[2 * 9 + 2] = 0;
  off[0 * 9 + 2] = 0.4f; /* early before 0: starts at 0 */
  mv_audio_pattern p = {labels, 16, 16, 120.0, vel, off, {0}, 0};
  memcpy(p.pitch, PITCH, sizeof PITCH);
  mv_note_event *ev;
  int64_t n;
  double len;
  CHECK(mv_audio_pattern_events(&ev, &n, &len, &p, &err) == MV_OK);
  CHECK(n == 4);
  CHECK_NEAR(len, 2.0, 1e-12); /* one bar at 120 qpm */
  int seen = 0;
  for (int64_t i = 0; i < n; i++) {
    CHECK_NEAR(ev[i].dur, 0.125, 1e-12);
    if (ev[i].pitch == 38) {
      CHECK_NEAR(ev[i].time, 3.5 * 0.125, 1e-12);
      CHECK(ev[i].velocity == 127);
      seen++;
    } else if (ev[i].pitch == 42 && ev[i].time > 0) {
      CHECK_NEAR(ev[i].time, 0.25, 1e-12);
      CHECK(ev[i].velocity == 1);
      seen++;
    } else {
      CHECK(ev[i].time == 0);
      CHECK(ev[i].velocity == 80);
      seen++;
    }
  }
  CHECK(seen == 4);
  free(ev);
  p.steps_per_bar = 6;
  CHECK(mv_audio_pattern_events(&ev, &n, &len, &p, &err) == MV_EINVAL);
  p.steps_per_bar = 16;

  /* a MIDI file: two drum notes and a piano note; the loop rounds up to the bar */
  char path[] = "/tmp/mv-test-audio-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  mv_midi_wnote w[2] = {{0, 120, 36, 100}, {1440, 120, 38, 90}};
  mv_midi_write_opts wo = {480, 120.0, 4, 4, 9, "Drums"};
  CHECK(mv_midi_write(path, &wo, w, 2, &err) == MV_OK);
  mv_midi *m;
  CHECK(mv_midi_read(&m, path, &err) == MV_OK);
  int64_t left;
  CHECK(mv_audio_midi_events(&ev, &n, &len, &left, m, 9, 0, &err) == MV_OK);
  CHECK(n == 2 && left == 0);
  CHECK_NEAR(len, 2.0, 1e-9);
  CHECK_NEAR(ev[1].time, 1.5, 1e-9);
  free(ev);
  CHECK(mv_audio_midi_events(&ev, &n, &len, &left, m, 0, 60, &err) == MV_OK);
  CHECK(n == 0 && left == 2);
  CHECK_NEAR(len, 4.0, 1e-9); /* half the tempo: twice as long */
  free(ev);
  mv_midi_free(m);
  unlink(path);

  /* a file whose notes end exactly an hour in is read; a note one tick later (rounded up to
   * the next bar: 3602 s) is refused before its events are copied */
  {
    mv_midi_wnote far[1] = {{3600 * 960 - 120, 120, 36, 100}}; /* 480 ppq at 120 qpm: 960 ticks a second */
    CHECK(mv_midi_write(path, &wo, far, 1, &err) == MV_OK);
    CHECK(mv_midi_read(&m, path, &err) == MV_OK);
    CHECK(mv_audio_midi_events(&ev, &n, &len, &left, m, 9, 0, &err) == MV_OK);
    CHECK(n == 1);
    CHECK_NEAR(len, MV_AUDIO_MAX_SECONDS, 1e-6);
    free(ev);
    mv_midi_free(m);
    far[0].tick += 1;
    CHECK(mv_midi_write(path, &wo, far, 1, &err) == MV_OK);
    CHECK(mv_midi_read(&m, path, &err) == MV_OK);
    CHECK(mv_audio_midi_events(&ev, &n, &len, &left, m, 9, 0, &err) == MV_ERANGE);
    CHECK(ev == NULL && n == 0);
    CHECK(strstr(err.msg, "the notes last 3602 s; a render is at most 3600 s") != NULL);
    /* the same file played at twice its tempo lasts 1801 s */
    CHECK(mv_audio_midi_events(&ev, &n, &len, &left, m, 9, 240, &err) == MV_OK);
    CHECK_NEAR(len, 1801, 1e-6);
    free(ev);
    mv_midi_free(m);
    unlink(path);
  }

  /* lengths */
  mv_render_opts ro = {8.0, 2, 1.0};
  CHECK(mv_render_frames(44100, &ro) == 17 * 44100);
  CHECK(mv_render_check(&ro, 10, &err) == MV_OK);
  ro.loops = -1;
  CHECK(mv_render_frames(44100, &ro) == -1);
  CHECK(mv_render_check(&ro, 10, &err) == MV_EINVAL);
  /* the render limit: loops * length + tail, and notes * loops */
  mv_render_opts hour = {3599.0, 1, 1.0};
  CHECK(mv_render_check(&hour, 1, &err) == MV_OK);
  hour.tail = 1.5;
  CHECK(mv_render_check(&hour, 1, &err) == MV_ERANGE);
  CHECK(strstr(err.msg, "past the limit of 3600 s") != NULL);
  mv_render_opts many = {0.01, 4, 0.0};
  CHECK(mv_render_check(&many, MV_AUDIO_MAX_PLAYS / 4, &err) == MV_OK);
  CHECK(mv_render_check(&many, MV_AUDIO_MAX_PLAYS / 4 + 1, &err) == MV_ERANGE);
  CHECK(strstr(err.msg, "notes x 4 loops") != NULL);

  if (!mv_audio_have_synth()) {
    mv_synth *s;
    mv_synth_opts so = {"/x.sf2", 44100, 0.5, 0};
    CHECK(mv_synth_new(&s, &so, &err) == MV_EUNSUPPORTED);
    CHECK(strstr(err.msg, "libfluidsynth-dev") != NULL);
    printf("built without FluidSynth: render checks skipped\n");
    MVT_DONE();
  }
  const char *sf = "/usr/share/sounds/sf2/FluidR3_GM.sf2";
  if (access(sf, R_OK) != 0) {
    printf("no %s (fluid-soundfont-gm): render checks skipped\n", sf);
    MVT_DONE();
  }
  mv_synth *s;
  mv_synth_opts so = {sf, 44100, 0.5, 0};
  CHECK(mv_synth_new(&s, &so, &err) == MV_OK);
  /* one kick at 0.5 s: silence before its block, sound after */
  mv_note_event kick = {0.5, 0.125, 36, 100};
  mv_render_opts r1 = {1.0, 1, 0.0};
  int64_t frames = mv_render_frames(44100, &r1);
  float *out = calloc((size_t)frames * 2, sizeof *out);
  CHECK(mv_synth_render(s, out, frames, &kick, 1, &r1, &err) == MV_OK);
  int64_t first = -1;
  for (int64_t i = 0; i < frames * 2; i++)
    if (out[i] != 0) {
      first = i / 2;
      break;
    }
  CHECK(first >= 22050 - 64 && first <= 22050 + 64);
  CHECK(mv_synth_render(s, out, frames - 1, &kick, 1, &r1, &err) == MV_ESHAPE);
  /* silence in, silence out, after that kick */
  CHECK(mv_synth_render(s, out, frames, NULL, 0, &r1, &err) == MV_OK);
  int nonzero = 0;
  for (int64_t i = 0; i < frames * 2; i++) nonzero += out[i] != 0;
  CHECK(nonzero == 0);
  /* files */
  int fmt;
  const char *name;
  CHECK(mv_audio_format("a.WAV", 0, &fmt, &name, &err) == MV_OK && strcmp(name, "WAV") == 0);
  CHECK(mv_audio_format("a.flac", 32, &fmt, &name, &err) == MV_EINVAL);
  CHECK(mv_audio_format("dir.x/a", 0, &fmt, &name, &err) == MV_EINVAL);
  CHECK(mv_audio_write("/nonexistent-dir/a.wav", out, frames, 2, 44100, 16, &err) == MV_EIO);
  free(out);
  mv_synth_free(s);
  MVT_DONE();
}
