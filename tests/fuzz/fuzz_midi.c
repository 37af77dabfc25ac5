/* fuzz_midi.c -- libFuzzer target for the MIDI reader and the drum pipeline:
 * mv_midi_parse, then labels, groove and track extraction, under ASan+UBSan.
 * Built and run by scripts/fuzz (clang -fsanitize=fuzzer). A crash, a sanitizer
 * report, a timeout (-timeout) or an RSS over -rss_limit_mb is a finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mv_midi *m = NULL;
  mv_err err;
  if (mv_midi_parse(&m, data, size, &err) != MV_OK) return 0;
  mv_drum_opts o;
  memset(&o, 0, sizeof o);
  for (int p = 0; p < 128; p++) o.pitch_class[p] = (int8_t)(p >= 35 && p <= 81 ? p % 9 : -1);
  o.steps_per_quarter = 4;
  o.steps_per_bar = 16;
  o.drum_channel = size > 0 && (data[size - 1] & 1) ? -1 : 9; /* both channel rules */
  o.gap_bars = 1;
  o.max_bars = size > 1 && (data[size - 2] & 1) ? 100 : 0;
  uint16_t *labels = NULL;
  int64_t steps = 0;
  if (mv_drum_labels(&labels, &steps, m, &o, &err) == MV_OK) {
    if (steps < 0 || steps > MV_MAX_STEPS) abort();
    free(labels);
  }
  uint8_t *vel = NULL;
  float *off = NULL;
  if (mv_drum_groove(&vel, &off, &steps, m, &o, &err) == MV_OK) {
    free(vel);
    free(off);
  }
  mv_drum_result r;
  if (mv_drum_extract(&r, m, &o, &err) == MV_OK) mv_drum_result_free(&r);
  for (int64_t i = 0; i < m->nnotes; i++) (void)mv_midi_seconds(m, m->notes[i].on_tick);
  mv_midi_free(m);
  return 0;
}
