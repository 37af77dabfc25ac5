/* mvtest.h -- a minimal assertion harness for the C unit tests (ctest runs
 * each test binary; a non-zero exit is a failure). */
#ifndef MVTEST_H
#define MVTEST_H
#include <math.h>
#include <stdio.h>

static int mvt_failures = 0, mvt_checks = 0;

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
    printf("%s: %d checks, %d failed\n", __FILE__, mvt_checks, mvt_failures);           \
    return mvt_failures ? 1 : 0;                                                         \
  } while (0)

#endif
