/* fuzz_safetensors.c -- libFuzzer target for the safetensors reader: parse,
 * convert every float tensor, and for F32/F16/BF16 files write them back and
 * parse the result again (it must load). Built and run by scripts/fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  mv_st_file *f = NULL;
  mv_err err;
  if (mv_st_parse(&f, data, size, 0, &err) != MV_OK) return 0;
  mv_st_writer *w = mv_st_writer_new();
  int ok = w != NULL;
  for (int i = 0; i < mv_st_count(f); i++) {
    const mv_st_entry *e = mv_st_get(f, i);
    if (e->dtype != MV_DT_F32 && e->dtype != MV_DT_F16 && e->dtype != MV_DT_BF16) {
      ok = 0;
      continue;
    }
    if (e->ndim > MV_MAXDIM || e->numel > (1 << 22)) {
      ok = 0;
      continue;
    }
    float *x = malloc(sizeof(float) * (size_t)(e->numel ? e->numel : 1));
    if (!x) abort();
    if (mv_st_entry_to_f32(e, x, &err) == MV_OK && ok) {
      mv_tensor t;
      if (mv_tensor_init(&t, x, e->ndim, e->shape, &err) == MV_OK) ok = mv_st_writer_add(w, e->name, e->dtype, &t, &err) == MV_OK;
    }
    free(x);
  }
  for (int i = 0; ok && i < mv_st_meta_count(f); i++) {
    const char *k, *v;
    mv_st_meta_get(f, i, &k, &v);
    ok = mv_st_writer_meta(w, k, v, &err) == MV_OK;
  }
  unsigned char *bytes = NULL;
  size_t len = 0;
  if (ok && mv_st_writer_bytes(w, &bytes, &len, &err) == MV_OK) {
    mv_st_file *g = NULL;
    if (mv_st_parse(&g, bytes, len, 0, &err) != MV_OK) abort(); /* what we write must read back */
    if (mv_st_count(g) != mv_st_count(f)) abort();
    mv_st_free(g);
    free(bytes);
  }
  mv_st_writer_free(w);
  mv_st_free(f);
  return 0;
}
