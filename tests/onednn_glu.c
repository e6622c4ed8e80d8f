#include "onednn_glu.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>

#include "swiglu/swiglu.h"

struct odnn_glu {
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  dnnl_memory_desc_t md;
  dnnl_primitive_desc_t fwd_pd, bwd_pd, mul_pd;
  dnnl_primitive_t fwd, bwd, mul;
};

static int ok(dnnl_status_t s) { return s == dnnl_success; }

odnn_glu *odnn_glu_create(int act, int64_t rows, int64_t cols, int bf16, char *why, int why_cap) {
  dnnl_alg_kind_t alg;
  switch (act) {
    case SWIGLU_ACT_SILU: alg = dnnl_eltwise_swish; break;
    case SWIGLU_ACT_GELU_TANH: alg = dnnl_eltwise_gelu_tanh; break;
    case SWIGLU_ACT_GELU_ERF: alg = dnnl_eltwise_gelu_erf; break;
    case SWIGLU_ACT_RELU: alg = dnnl_eltwise_relu; break;
    default: snprintf(why, why_cap, "oneDNN has no eltwise for activation %d", act); return NULL;
  }
  odnn_glu *g = calloc(1, sizeof *g);
  dnnl_dims_t dims = {rows, cols};
  const char *step = "engine";
  if (!ok(dnnl_engine_create(&g->engine, dnnl_cpu, 0))) goto fail;
  step = "stream";
  if (!ok(dnnl_stream_create(&g->stream, g->engine, dnnl_stream_default_flags))) goto fail;
  step = "memory desc";
  if (!ok(dnnl_memory_desc_init_by_tag(&g->md, 2, dims, bf16 ? dnnl_bf16 : dnnl_f32, dnnl_ab))) goto fail;
  /* swish's alpha is the sigmoid slope (1); relu's alpha is the negative slope (0) */
  float alpha = act == SWIGLU_ACT_SILU ? 1.0f : 0.0f;
  dnnl_eltwise_desc_t ed, bd;
  dnnl_binary_desc_t md;
  step = "eltwise forward";
  if (!ok(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, alg, &g->md, alpha, 0)) ||
      !ok(dnnl_primitive_desc_create(&g->fwd_pd, &ed, NULL, g->engine, NULL)) ||
      !ok(dnnl_primitive_create(&g->fwd, g->fwd_pd)))
    goto fail;
  step = "eltwise backward";
  if (!ok(dnnl_eltwise_backward_desc_init(&bd, alg, &g->md, &g->md, alpha, 0)) ||
      !ok(dnnl_primitive_desc_create(&g->bwd_pd, &bd, NULL, g->engine, g->fwd_pd)) ||
      !ok(dnnl_primitive_create(&g->bwd, g->bwd_pd)))
    goto fail;
  step = "binary mul";
  if (!ok(dnnl_binary_desc_init(&md, dnnl_binary_mul, &g->md, &g->md, &g->md)) ||
      !ok(dnnl_primitive_desc_create(&g->mul_pd, &md, NULL, g->engine, NULL)) ||
      !ok(dnnl_primitive_create(&g->mul, g->mul_pd)))
    goto fail;
  return g;
fail:
  snprintf(why, why_cap, "oneDNN %s: cannot create the %s primitive for %s on this CPU", odnn_version(),
           step, bf16 ? "bf16" : "f32");
  odnn_glu_destroy(g);
  return NULL;
}

void odnn_glu_destroy(odnn_glu *g) {
  if (!g) return;
  if (g->fwd) dnnl_primitive_destroy(g->fwd);
  if (g->bwd) dnnl_primitive_destroy(g->bwd);
  if (g->mul) dnnl_primitive_destroy(g->mul);
  if (g->fwd_pd) dnnl_primitive_desc_destroy(g->fwd_pd);
  if (g->bwd_pd) dnnl_primitive_desc_destroy(g->bwd_pd);
  if (g->mul_pd) dnnl_primitive_desc_destroy(g->mul_pd);
  if (g->stream) dnnl_stream_destroy(g->stream);
  if (g->engine) dnnl_engine_destroy(g->engine);
  free(g);
}

static dnnl_memory_t mem(odnn_glu *g, const void *p) {
  dnnl_memory_t m = NULL;
  dnnl_memory_create(&m, &g->md, g->engine, (void *)p);
  return m;
}

static int run(odnn_glu *g, dnnl_primitive_t prim, int n, const int *kinds, const void *const *ptrs) {
  dnnl_exec_arg_t args[4] = {{0, NULL}}; /* zeroed: gcc -O1 does not see that only args[0, n) are read */
  for (int i = 0; i < n; ++i) args[i].arg = kinds[i], args[i].memory = mem(g, ptrs[i]);
  int r = ok(dnnl_primitive_execute(prim, g->stream, n, args)) && ok(dnnl_stream_wait(g->stream));
  for (int i = 0; i < n; ++i) dnnl_memory_destroy(args[i].memory);
  return r;
}

int odnn_glu_forward(odnn_glu *g, const void *gate, const void *up, void *tmp, void *h) {
  const int k1[] = {DNNL_ARG_SRC, DNNL_ARG_DST};
  const void *p1[] = {gate, tmp};
  const int k2[] = {DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST};
  const void *p2[] = {tmp, up, h};
  return run(g, g->fwd, 2, k1, p1) && run(g, g->mul, 3, k2, p2);
}

int odnn_glu_backward(odnn_glu *g, const void *dh, const void *gate, const void *up, void *dgate,
                      void *dup, void *tmp, void *tmp2) {
  const int kf[] = {DNNL_ARG_SRC, DNNL_ARG_DST};
  const void *pf[] = {gate, tmp};
  const int km[] = {DNNL_ARG_SRC_0, DNNL_ARG_SRC_1, DNNL_ARG_DST};
  const void *pdu[] = {dh, tmp, dup};
  const void *pdh[] = {dh, up, tmp2};
  const int kb[] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC};
  const void *pb[] = {gate, tmp2, dgate};
  return run(g, g->fwd, 2, kf, pf) && run(g, g->mul, 3, km, pdu) && run(g, g->mul, 3, km, pdh) &&
         run(g, g->bwd, 3, kb, pb);
}

const char *odnn_version(void) {
  static char buf[32];
  const dnnl_version_t *v = dnnl_version();
  snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
  return buf;
}
