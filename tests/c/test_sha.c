/* SHA-256: FIPS 180-4 test vectors on every implementation this CPU runs (portable, SHA-NI), and
 * the two against each other on every length around the block and padding boundaries. */
#include <stdlib.h>
#include <string.h>

#include "mv.h"
#include "mvtest.h"

static void hex(const unsigned char d[32], char out[65]) {
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int digest_is(const void *data, size_t n, const char *want) {
  unsigned char d[32];
  char got[65];
  mv_sha256(data, n, d);
  hex(d, got);
  if (strcmp(got, want) != 0) {
    printf("  sha256 of %zu bytes (%s): %s, want %s\n", n, mv_sha256_impl(), got, want);
    return 0;
  }
  return 1;
}

int main(void) {
  const char *impls[2] = {"portable", "sha-ni"};
  size_t big = 1000000;
  char *a = malloc(big);
  unsigned char *r = malloc(70000);
  CHECK(a && r);
  memset(a, 'a', big);
  for (size_t i = 0; i < 70000; i++) r[i] = (unsigned char)(i * 2654435761u >> 13);
  printf("default implementation: %s\n", mv_sha256_impl());
  int ran = 0;
  unsigned char ref[300][32];
  for (int k = 0; k < 2; k++) {
    if (mv_sha256_use(impls[k]) != MV_OK) {
      SKIP("SHA-256, %s implementation: not supported on this CPU", impls[k]);
      continue;
    }
    ran++;
    CHECK(digest_is("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    CHECK(digest_is("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CHECK(digest_is("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
    CHECK(digest_is(a, big, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"));
    /* every length 0..299 (one, two and several blocks; tails of 55, 56, 63, 64 bytes) */
    for (int n = 0; n < 300; n++) {
      unsigned char d[32];
      mv_sha256(r + 7, (size_t)n, d); /* unaligned */
      if (k == 0) memcpy(ref[n], d, 32);
      else CHECK(memcmp(ref[n], d, 32) == 0);
    }
    double t0 = mv_clock();
    unsigned char d[32];
    for (int i = 0; i < 20; i++) mv_sha256(a, big, d);
    printf("%s: %.0f MB/s\n", impls[k], 20.0 * (double)big / (mv_clock() - t0) / 1e6);
  }
  CHECK(ran >= 1);
  free(a);
  free(r);
  MVT_DONE();
}
