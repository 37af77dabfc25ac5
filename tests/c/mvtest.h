/* mvtest.h -- a minimal assertion harness for the C unit tests (ctest runs
 * each test binary; a non-zero exit is a failure). */
#ifndef MVTEST_H
#define MVTEST_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int mvt_failures = 0, mvt_checks = 0, mvt_skips = 0;

/* A check this machine cannot run (a CPU feature it lacks): counted, printed with the reason,
 * and appended as one line "file: reason" to $MVT_SKIP_FILE, so scripts/test counts and prints
 * it as a skip instead of letting it pass silently. */
#define SKIP(...) mvt_skip(__FILE__, __VA_ARGS__)
static inline void mvt_skip(const char *file, const char *fmt, ...) {
  char why[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  mvt_skips++;
  printf("SKIP %s: %s\n", file, why);
  const char *log = getenv("MVT_SKIP_FILE");
  FILE *f = log && *log ? fopen(log, "a") : NULL;
  if (f) {
    const char *base = strrchr(file, '/');
    fprintf(f, "%s: %s\n", base ? base + 1 : file, why);
    fclose(f);
  }
}

#define CHECK(cond)                                                            \
  do {                                                                         \
    mvt_checks++;                                                              \
    if (!(cond)) {                                                             \
      mvt_failures++;                                                          \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                       \
  do {                                                                                              \
    double mvt_a = (a), mvt_b = (b);                                                                \
    mvt_checks++;                                                                                   \
    if (!(fabs(mvt_a - mvt_b) <= (tol))) {                                                          \
      mvt_failures++;                                                                               \
      fprintf(stderr, "%s:%d: %s = %.9g, expected %.9g (tol %g)\n", __FILE__, __LINE__, #a, mvt_a, \
              mvt_b, (double)(tol));                                                                \
    }                                                                                               \
  } while (0)

#define MVT_DONE()                                                                       \
  do {                                                                                   \
    printf("%s: %d checks, %d failed, %d skipped\n", __FILE__, mvt_checks, mvt_failures, mvt_skips); \
    return mvt_failures ? 1 : 0;                                                         \
  } while (0)

#endif
