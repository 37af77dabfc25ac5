/* fuzz_midi -- a mutation fuzzer for the MIDI reader and the drum pipeline.
 *
 *   mv_fuzz_midi [--cases N] [--seconds S] [--seed S] FILE...
 *
 * Seeds are the given files; each case mutates one (bit flips, byte sets,
 * truncations, length-field edits, chunk splices between seeds, running-status
 * tricks, huge variable-length numbers) and runs it through mv_midi_parse,
 * mv_drum_labels and mv_drum_extract. It fails (exit 1) if anything is written
 * to stderr, and it relies on ASan/UBSan (the full test tier) for memory
 * errors. --seconds runs for that long instead (hours, as a soak). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mv.h"

typedef struct {
  unsigned char *p;
  size_t n;
} blob;

static unsigned char *find(unsigned char *p, size_t n, const char *id) {
  for (size_t i = 0; i + 4 <= n; i++)
    if (memcmp(p + i, id, 4) == 0) return p + i;
  return NULL;
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Returns a freshly allocated mutant of seed s (len in *out_n). */
static unsigned char *mutate(mv_rng *r, const blob *seeds, int nseeds, const blob *s, size_t *out_n) {
  size_t cap = s->n * 2 + 64;
  unsigned char *b = malloc(cap);
  memcpy(b, s->p, s->n);
  size_t n = s->n;
  int rounds = 1 + (int)mv_rng_below(r, 4);
  for (int k = 0; k < rounds; k++) {
    int op = (int)mv_rng_below(r, 9);
    if (n == 0) op = 6;
    switch (op) {
    case 0: /* bit flips */
      for (int i = 0, m = 1 + (int)mv_rng_below(r, 8); i < m && n; i++) b[mv_rng_below(r, n)] ^= (unsigned char)(1u << mv_rng_below(r, 8));
      break;
    case 1: /* interesting bytes */
      if (n) {
        static const unsigned char vals[] = {0x00, 0x7f, 0x80, 0xff, 0xf0, 0xf7, 0x90, 0x2f, 0x51, 0x58};
        b[mv_rng_below(r, n)] = vals[mv_rng_below(r, sizeof vals)];
      }
      break;
    case 2: /* truncate */
      n = (size_t)mv_rng_below(r, n + 1);
      break;
    case 3: { /* length-field edit on MThd/MTrk */
      unsigned char *c = find(b, n, mv_rng_below(r, 2) ? "MTrk" : "MThd");
      if (c && c + 8 <= b + n) {
        static const uint32_t lens[] = {0, 1, 5, 6, 0x7fffffff, 0xffffffff, 65536};
        uint32_t v = mv_rng_below(r, 2) ? lens[mv_rng_below(r, 7)] : (uint32_t)mv_rng_below(r, 2 * n + 16);
        put_be32(c + 4, v);
      }
      break;
    }
    case 4: { /* splice: a piece of another seed */
      const blob *o = &seeds[mv_rng_below(r, (uint64_t)nseeds)];
      if (o->n == 0) break;
      size_t from = (size_t)mv_rng_below(r, o->n), len = 1 + (size_t)mv_rng_below(r, o->n - from);
      size_t at = (size_t)mv_rng_below(r, n + 1);
      if (n + len > cap) {
        cap = (n + len) * 2;
        b = realloc(b, cap);
      }
      memmove(b + at + len, b + at, n - at);
      memcpy(b + at, o->p + from, len);
      n += len;
      break;
    }
    case 5: { /* running-status tricks: a SysEx before a data byte, or a status byte removed */
      unsigned char *c = find(b, n, "MTrk");
      if (!c || c + 12 > b + n) break;
      size_t at = (size_t)(c - b) + 8 + (size_t)mv_rng_below(r, (uint64_t)(n - (size_t)(c - b) - 8));
      if (mv_rng_below(r, 2)) {
        static const unsigned char sx[] = {0xf0, 0x02, 0x01, 0xf7, 0x00};
        if (n + sizeof sx > cap) {
          cap = (n + sizeof sx) * 2;
          b = realloc(b, cap);
        }
        memmove(b + at + sizeof sx, b + at, n - at);
        memcpy(b + at, sx, sizeof sx);
        n += sizeof sx;
      } else if (at < n && (b[at] & 0x80)) {
        memmove(b + at, b + at + 1, n - at - 1);
        n--;
      }
      break;
    }
    case 6: { /* a huge variable-length number */
      static const unsigned char big[] = {0xff, 0xff, 0xff, 0x7f};
      size_t at = (size_t)mv_rng_below(r, n + 1);
      if (n + 4 > cap) {
        cap = (n + 4) * 2;
        b = realloc(b, cap);
      }
      memmove(b + at + 4, b + at, n - at);
      memcpy(b + at, big, 4);
      n += 4;
      break;
    }
    case 7: /* duplicate a block */
      if (n > 2) {
        size_t from = (size_t)mv_rng_below(r, n), len = 1 + (size_t)mv_rng_below(r, n - from);
        if (len > 4096) len = 4096;
        if (n + len > cap) {
          cap = (n + len) * 2;
          b = realloc(b, cap);
        }
        memmove(b + from + len, b + from, n - from);
        n += len;
      }
      break;
    default: /* delete a block */
      if (n > 1) {
        size_t from = (size_t)mv_rng_below(r, n), len = 1 + (size_t)mv_rng_below(r, n - from);
        memmove(b + from, b + from + len, n - from - len);
        n -= len;
      }
      break;
    }
  }
  *out_n = n;
  return b;
}

int main(int argc, char **argv) {
  long cases = 2000;
  double seconds = 0;
  uint64_t seed = 1;
  int first = 1;
  for (; first < argc && strncmp(argv[first], "--", 2) == 0; first += 2) {
    if (first + 1 >= argc) break;
    if (strcmp(argv[first], "--cases") == 0) cases = atol(argv[first + 1]);
    else if (strcmp(argv[first], "--seconds") == 0) seconds = atof(argv[first + 1]);
    else if (strcmp(argv[first], "--seed") == 0) seed = strtoull(argv[first + 1], NULL, 10);
    else {
      fprintf(stderr, "unknown option %s\n", argv[first]);
      return 2;
    }
  }
  if (first >= argc) {
    fprintf(stderr, "usage: mv_fuzz_midi [--cases N] [--seconds S] [--seed S] FILE...\n");
    return 2;
  }
  int nseeds = argc - first;
  blob *seeds = calloc((size_t)nseeds, sizeof *seeds);
  for (int i = 0; i < nseeds; i++) {
    FILE *f = fopen(argv[first + i], "rb");
    if (!f) {
      fprintf(stderr, "cannot open %s\n", argv[first + i]);
      return 2;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    seeds[i].p = malloc((size_t)(len > 0 ? len : 1));
    seeds[i].n = fread(seeds[i].p, 1, (size_t)(len > 0 ? len : 0), f);
    fclose(f);
  }
  /* anything the code under test prints to stderr is a failure */
  fflush(stderr);
  FILE *cap = tmpfile();
  int saved = dup(2);
  dup2(fileno(cap), 2);

  mv_drum_opts o;
  memset(&o, 0, sizeof o);
  memset(o.pitch_class, -1, sizeof o.pitch_class);
  static const int ex[9][2] = {{36, 35}, {38, 40}, {42, 44}, {46, 26}, {45, 43}, {48, 47}, {50, 30}, {49, 57}, {51, 59}};
  for (int c = 0; c < 9; c++) o.pitch_class[ex[c][0]] = o.pitch_class[ex[c][1]] = (int8_t)c;
  o.steps_per_quarter = 4;
  o.steps_per_bar = 16;
  o.gap_bars = 1;
  mv_rng r;
  mv_rng_seed(&r, seed, mv_rng_purpose("fuzz"), 0);
  double t0 = mv_clock();
  long done = 0, parsed = 0, tracks = 0;
  for (;; done++) {
    if (seconds > 0 ? mv_clock() - t0 >= seconds : done >= cases) break;
    const blob *s = &seeds[mv_rng_below(&r, (uint64_t)nseeds)];
    size_t n;
    unsigned char *b = mutate(&r, seeds, nseeds, s, &n);
    mv_midi *m = NULL;
    mv_err err;
    if (mv_midi_parse(&m, b, n, &err) == MV_OK) {
      parsed++;
      o.drum_channel = (int)mv_rng_below(&r, 3) - 1 == 0 ? 9 : -1;
      o.max_bars = (int)mv_rng_below(&r, 3);
      uint16_t *l;
      int64_t steps;
      if (mv_drum_labels(&l, &steps, m, &o, &err) == MV_OK) free(l);
      mv_drum_result res;
      if (mv_drum_extract(&res, m, &o, &err) == MV_OK) {
        tracks += res.ntracks;
        mv_drum_result_free(&res);
      }
      mv_midi_free(m);
    }
    free(b);
  }
  fflush(stderr);
  long printed = ftell(cap);
  char sample[200] = {0};
  if (printed > 0) {
    rewind(cap);
    size_t got = fread(sample, 1, sizeof sample - 1, cap);
    sample[got] = 0;
  }
  dup2(saved, 2);
  for (int i = 0; i < nseeds; i++) free(seeds[i].p);
  free(seeds);
  printf("fuzz_midi: %ld cases (%ld parsed, %ld drum tracks) in %.1f s, seed %llu\n", done, parsed, tracks,
         mv_clock() - t0, (unsigned long long)seed);
  if (printed > 0) {
    fprintf(stderr, "fuzz_midi: the code under test wrote %ld bytes to stderr, starting: %s\n", printed, sample);
    return 1;
  }
  return 0;
}
