/* Tensor headers: shapes, views, elementwise ops, reductions, matmul. */
#include <stdlib.h>
#include <string.h>

#include "mv.h"
#include "mvtest.h"

int main(void) {
  mv_err err;
  float d[6] = {1, 2, 3, 4, 5, 6};
  mv_tensor a, v, s;
  int64_t sz[2] = {2, 3};
  CHECK(mv_tensor_init(&a, d, 2, sz, &err) == MV_OK);
  CHECK(mv_tensor_numel(&a) == 6 && a.stride[0] == 3 && a.stride[1] == 1);
  CHECK(mv_tensor_is_contiguous(&a));

  /* bad shapes */
  int64_t neg[2] = {2, -1}, huge[4] = {INT64_MAX / 2, 4, 4, 4};
  CHECK(mv_tensor_init(&v, d, 2, neg, &err) == MV_ESHAPE);
  CHECK(mv_tensor_init(&v, d, 4, huge, &err) == MV_ESHAPE);
  CHECK(mv_tensor_init(&v, d, 5, sz, &err) == MV_ESHAPE);

  /* transpose is a view with swapped strides */
  CHECK(mv_tensor_transpose(&v, &a, 0, 1, &err) == MV_OK);
  CHECK(v.size[0] == 3 && v.size[1] == 2 && !mv_tensor_is_contiguous(&v));
  int64_t idx[2] = {2, 1};
  CHECK(*mv_tensor_at(&v, idx) == 6.0f);

  /* narrow / select */
  CHECK(mv_tensor_narrow(&v, &a, 1, 1, 2, &err) == MV_OK);
  CHECK(v.data == d + 1 && v.size[1] == 2);
  CHECK(mv_tensor_narrow(&v, &a, 1, 2, 2, &err) == MV_ERANGE);
  CHECK(mv_tensor_select(&s, &a, 0, 1, &err) == MV_OK);
  CHECK(s.ndim == 1 && s.data[0] == 4.0f && s.data[2] == 6.0f);
  CHECK(mv_tensor_select(&s, &a, 0, 2, &err) == MV_ERANGE);
  CHECK(mv_tensor_select(&s, &a, 2, 0, &err) == MV_ERANGE);

  /* view needs contiguity; element counts must match */
  int64_t sz3[1] = {6}, sz4[1] = {5};
  CHECK(mv_tensor_view(&v, &a, 1, sz3, &err) == MV_OK);
  CHECK(mv_tensor_view(&v, &a, 1, sz4, &err) == MV_ESHAPE);
  CHECK(strstr(err.msg, "[2,3]") && strstr(err.msg, "[5]"));
  mv_tensor tr;
  mv_tensor_transpose(&tr, &a, 0, 1, NULL);
  CHECK(mv_tensor_view(&v, &tr, 1, sz3, &err) == MV_ESHAPE);

  /* elementwise with hand values */
  float e[6], f[6] = {10, 20, 30, 40, 50, 60};
  mv_tensor te, tf;
  mv_tensor_init(&te, e, 2, sz, NULL);
  mv_tensor_init(&tf, f, 2, sz, NULL);
  CHECK(mv_tensor_add(&te, &a, &tf, 0.5f, &err) == MV_OK);
  CHECK(e[0] == 6.0f && e[5] == 36.0f);
  CHECK(mv_tensor_mul(&te, &a, &tf, &err) == MV_OK);
  CHECK(e[1] == 40.0f && e[4] == 250.0f);
  CHECK(mv_tensor_scale(&te, &a, -2.0f, &err) == MV_OK);
  CHECK(e[2] == -6.0f);
  CHECK(mv_tensor_add(&te, &a, &tr, 1.0f, &err) == MV_ESHAPE);
  CHECK(strstr(err.msg, "[2,3]") && strstr(err.msg, "[3,2]"));

  /* copy into an overlapping transposed view of itself (square) */
  float q[4] = {1, 2, 3, 4};
  int64_t sq[2] = {2, 2};
  mv_tensor tq, tqt;
  mv_tensor_init(&tq, q, 2, sq, NULL);
  mv_tensor_transpose(&tqt, &tq, 0, 1, NULL);
  CHECK(mv_tensor_copy(&tq, &tqt, &err) == MV_OK);
  CHECK(q[0] == 1 && q[1] == 3 && q[2] == 2 && q[3] == 4);

  /* reductions */
  CHECK_NEAR(mv_tensor_sum_all(&a), 21.0, 0);
  float r3[3], r2[2];
  mv_tensor t3, t2;
  int64_t n3 = 3, n2 = 2;
  mv_tensor_init(&t3, r3, 1, &n3, NULL);
  mv_tensor_init(&t2, r2, 1, &n2, NULL);
  CHECK(mv_tensor_sum_dim(&t3, &a, 0, 0, &err) == MV_OK);
  CHECK(r3[0] == 5 && r3[1] == 7 && r3[2] == 9);
  CHECK(mv_tensor_sum_dim(&t2, &a, 1, 1, &err) == MV_OK);
  CHECK(r2[0] == 2 && r2[1] == 5);
  CHECK(mv_tensor_sum_dim(&t2, &a, 0, 0, &err) == MV_ESHAPE);
  float g[6] = {0, 9, 9, 3, -1, 7};
  mv_tensor tg;
  mv_tensor_init(&tg, g, 2, sz, NULL);
  CHECK(mv_tensor_argmax_dim(&t2, &tg, 1, &err) == MV_OK);
  CHECK(r2[0] == 1 && r2[1] == 2); /* first maximum wins */
  CHECK(mv_tensor_argmax_dim(&t3, &tg, 0, &err) == MV_OK);
  CHECK(r3[0] == 1 && r3[1] == 0 && r3[2] == 0);

  /* matmul through transposed views (no copies) and a strided output */
  float out[4] = {0};
  mv_tensor to;
  int64_t s22[2] = {2, 2};
  mv_tensor_init(&to, out, 2, s22, NULL);
  CHECK(mv_tensor_matmul(&to, &a, 0, &tr, 0, 1.0f, 0.0f, &err) == MV_OK); /* a * a^T */
  CHECK(out[0] == 14 && out[1] == 32 && out[2] == 32 && out[3] == 77);
  CHECK(mv_tensor_matmul(&to, &tr, 1, &a, 1, 1.0f, 0.0f, &err) == MV_OK); /* (a^T)^T * a^T */
  CHECK(out[0] == 14 && out[3] == 77);
  float big[9] = {0};
  mv_tensor tb, tbv;
  int64_t s33[2] = {3, 3};
  mv_tensor_init(&tb, big, 2, s33, NULL);
  mv_tensor_transpose(&tbv, &tb, 0, 1, NULL); /* output is column-major */
  CHECK(mv_tensor_matmul(&tbv, &tr, 0, &a, 0, 1.0f, 0.0f, &err) == MV_OK); /* a^T a, [3,3] */
  CHECK(big[0] == 17 && big[1] == 22 && big[3] == 22 && big[8] == 45);
  CHECK(mv_tensor_matmul(&to, &a, 0, &a, 0, 1.0f, 0.0f, &err) == MV_ESHAPE);
  CHECK(strstr(err.msg, "[2,3]") != NULL);
  /* a strided operand with no unit stride is copied */
  float w[12];
  for (int i = 0; i < 12; i++) w[i] = (float)i;
  mv_tensor tw, tws;
  int64_t s43[2] = {4, 3};
  mv_tensor_init(&tw, w, 2, s43, NULL);
  tws = tw;
  tws.size[0] = 2;
  tws.stride[0] = 6;
  tws.size[1] = 2;
  tws.stride[1] = 2; /* [[0,2],[6,8]] */
  float o2[4];
  mv_tensor to2;
  mv_tensor_init(&to2, o2, 2, s22, NULL);
  float id[4] = {1, 0, 0, 1};
  mv_tensor tid;
  mv_tensor_init(&tid, id, 2, s22, NULL);
  CHECK(mv_tensor_matmul(&to2, &tws, 0, &tid, 0, 1.0f, 0.0f, &err) == MV_OK);
  CHECK(o2[0] == 0 && o2[1] == 2 && o2[2] == 6 && o2[3] == 8);
  CHECK(mv_tensor_matmul(&tw, &tw, 0, &tid, 0, 1.0f, 0.0f, &err) != MV_OK); /* shape and aliasing */
  MVT_DONE();
}
