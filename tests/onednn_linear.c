#include "onednn_linear.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>

#include "swiglu/swiglu.h"

struct odnn_mm {
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  dnnl_primitive_t prim;
  dnnl_memory_t x, w, mul, out;
  int post;
};

static int dok(dnnl_status_t s) { return s == dnnl_success; }

odnn_mm *odnn_mm_create(int64_t M, int64_t K, int64_t N, int bf16, const void *w, int64_t ldw,
                        int post, int act, char *why, int why_cap) {
  odnn_mm *m = calloc(1, sizeof *m);
  m->post = post;
  const dnnl_data_type_t dt = bf16 ? dnnl_bf16 : dnnl_f32;
  const char *step = "engine";
  dnnl_memory_desc_t src, wei_any, wei_user, dst;
  dnnl_dims_t sd = {M, K}, wd = {K, N}, dd = {M, N}, ws = {1, ldw};
  dnnl_primitive_desc_t pd = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_primitive_attr_t attr = NULL;
  if (!dok(dnnl_engine_create(&m->eng, dnnl_cpu, 0)) ||
      !dok(dnnl_stream_create(&m->stream, m->eng, dnnl_stream_default_flags)))
    goto fail;
  step = "memory descs";
  if (!dok(dnnl_memory_desc_init_by_tag(&src, 2, sd, dt, dnnl_ab)) ||
      !dok(dnnl_memory_desc_init_by_tag(&wei_any, 2, wd, dt, dnnl_format_tag_any)) ||
      !dok(dnnl_memory_desc_init_by_strides(&wei_user, 2, wd, dt, ws)) ||
      !dok(dnnl_memory_desc_init_by_tag(&dst, 2, dd, dt, dnnl_ab)))
    goto fail;
  step = "post-ops";
  dnnl_post_ops_create(&po);
  dnnl_primitive_attr_create(&attr);
  if (post == ODNN_POST_ACT) {
    dnnl_alg_kind_t alg;
    switch (act) {
      case SWIGLU_ACT_SILU: alg = dnnl_eltwise_swish; break;
      case SWIGLU_ACT_GELU_TANH: alg = dnnl_eltwise_gelu_tanh; break;
      case SWIGLU_ACT_GELU_ERF: alg = dnnl_eltwise_gelu_erf; break;
      case SWIGLU_ACT_RELU: alg = dnnl_eltwise_relu; break;
      default: goto fail;
    }
    /* swish's alpha is the sigmoid slope (1); relu's the negative slope (0) */
    if (!dok(dnnl_post_ops_append_eltwise(po, 1.0f, alg, act == SWIGLU_ACT_SILU ? 1.0f : 0.0f, 0.0f)))
      goto fail;
  } else if (post == ODNN_POST_MUL) {
    if (!dok(dnnl_post_ops_append_binary(po, dnnl_binary_mul, &dst))) goto fail;
  }
  dnnl_primitive_attr_set_post_ops(attr, po);
  step = "matmul";
  dnnl_matmul_desc_t md;
  if (!dok(dnnl_matmul_desc_init(&md, &src, &wei_any, NULL, &dst)) ||
      !dok(dnnl_primitive_desc_create(&pd, &md, attr, m->eng, NULL)) ||
      !dok(dnnl_primitive_create(&m->prim, pd)))
    goto fail;
  step = "weight reorder";
  const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_memory_t user = NULL;
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t r = NULL;
  int good = dok(dnnl_memory_create(&user, &wei_user, m->eng, (void *)w)) &&
             dok(dnnl_memory_create(&m->w, wmd, m->eng, DNNL_MEMORY_ALLOCATE)) &&
             dok(dnnl_reorder_primitive_desc_create(&rpd, &wei_user, m->eng, wmd, m->eng, NULL)) &&
             dok(dnnl_primitive_create(&r, rpd));
  if (good) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, m->w}};
    good = dok(dnnl_primitive_execute(r, m->stream, 2, args)) && dok(dnnl_stream_wait(m->stream));
  }
  if (r) dnnl_primitive_destroy(r);
  if (rpd) dnnl_primitive_desc_destroy(rpd);
  if (user) dnnl_memory_destroy(user);
  if (!good) goto fail;
  step = "memories";
  if (!dok(dnnl_memory_create(&m->x, &src, m->eng, DNNL_MEMORY_NONE)) ||
      !dok(dnnl_memory_create(&m->out, &dst, m->eng, DNNL_MEMORY_NONE)) ||
      !dok(dnnl_memory_create(&m->mul, &dst, m->eng, DNNL_MEMORY_NONE)))
    goto fail;
  dnnl_primitive_desc_destroy(pd);
  dnnl_post_ops_destroy(po);
  dnnl_primitive_attr_destroy(attr);
  return m;
fail:
  snprintf(why, why_cap, "oneDNN: cannot create the %s for a %s matmul", step, bf16 ? "bf16" : "f32");
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  odnn_mm_destroy(m);
  return NULL;
}

int odnn_mm_run(odnn_mm *m, const void *x, const void *mul, void *out) {
  dnnl_memory_set_data_handle(m->x, (void *)x);
  dnnl_memory_set_data_handle(m->out, out);
  dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, m->x}, {DNNL_ARG_WEIGHTS, m->w}, {DNNL_ARG_DST, m->out}};
  int n = 3;
  if (m->post == ODNN_POST_MUL) {
    dnnl_memory_set_data_handle(m->mul, (void *)mul);
    a[3].arg = DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1;
    a[3].memory = m->mul;
    n = 4;
  }
  return dok(dnnl_primitive_execute(m->prim, m->stream, n, a)) && dok(dnnl_stream_wait(m->stream));
}

void odnn_mm_destroy(odnn_mm *m) {
  if (!m) return;
  if (m->prim) dnnl_primitive_destroy(m->prim);
  dnnl_memory_t ms[4] = {m->x, m->w, m->mul, m->out};
  for (int i = 0; i < 4; ++i)
    if (ms[i]) dnnl_memory_destroy(ms[i]);
  if (m->stream) dnnl_stream_destroy(m->stream);
  if (m->eng) dnnl_engine_destroy(m->eng);
  free(m);
}
