/* swiglu_glu_quant: validation of the quantizing op and dispatch. */
#include <math.h>
#include <string.h>

#include "tensor_check.h"

swiglu_status swiglu_quant_desc_init(swiglu_quant_desc *d, swiglu_quant_format format,
                                     swiglu_scale_granularity granularity, int32_t group_size) {
  if (!d) return SWIGLU_ERROR_NULL_POINTER;
  memset(d, 0, sizeof *d);
  d->format = format;
  d->granularity = granularity;
  d->group_size = group_size;
  d->scale_encoding = SWIGLU_SCALE_FP32;
  d->scale_layout = SWIGLU_SCALE_ROW_MAJOR;
  d->amax_floor = 1e-10f;
  if (format == SWIGLU_QUANT_MXFP8) {
    d->granularity = SWIGLU_SCALE_PER_GROUP, d->group_size = 32;
    d->scale_encoding = SWIGLU_SCALE_E8M0;
  } else if (format == SWIGLU_QUANT_NVFP4) {
    d->granularity = SWIGLU_SCALE_PER_GROUP, d->group_size = 16;
    d->scale_encoding = SWIGLU_SCALE_E4M3;
  }
  return SWIGLU_SUCCESS;
}

static const sg_dtype_rule k_fp32_only[] = {{SWIGLU_DTYPE_FLOAT, 32, SG_F32}, {0, 0, -1}};
static const sg_dtype_rule k_i32_only[] = {{SWIGLU_DTYPE_INT, 32, SG_I32}, {0, 0, -1}};
static const sg_dtype_rule k_e8m0_bytes[] = {{SWIGLU_DTYPE_UINT, 8, SG_U8},
                                             {SWIGLU_DTYPE_FLOAT8_E8M0FNU, 8, SG_U8}, {0, 0, -1}};
static const sg_dtype_rule k_e4m3_bytes[] = {{SWIGLU_DTYPE_UINT, 8, SG_U8},
                                             {SWIGLU_DTYPE_FLOAT8_E4M3FN, 8, SG_U8}, {0, 0, -1}};
static const sg_dtype_rule k_i8_only[] = {{SWIGLU_DTYPE_INT, 8, SG_I8}, {0, 0, -1}};
static const sg_dtype_rule k_u8_only[] = {{SWIGLU_DTYPE_UINT, 8, SG_U8}, {0, 0, -1}};
static const sg_dtype_rule k_e4m3fnuz_bytes[] = {{SWIGLU_DTYPE_UINT, 8, SG_U8},
                                                 {SWIGLU_DTYPE_FLOAT8_E4M3FNUZ, 8, SG_U8}, {0, 0, -1}};
static const sg_dtype_rule k_e5m2_bytes[] = {{SWIGLU_DTYPE_UINT, 8, SG_U8},
                                             {SWIGLU_DTYPE_FLOAT8_E5M2, 8, SG_U8}, {0, 0, -1}};

static swiglu_status check_qdesc(swiglu_context *ctx, const swiglu_quant_desc *d, int64_t H) {
  if (!d) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "qdesc is NULL");
  if ((unsigned)d->format > SWIGLU_QUANT_NVFP4)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "qdesc->format %d is not a swiglu_quant_format", (int)d->format);
  if ((unsigned)d->granularity > SWIGLU_SCALE_PER_GROUP)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "qdesc->granularity %d is not valid", (int)d->granularity);
  if ((unsigned)d->scale_encoding > SWIGLU_SCALE_E4M3)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "qdesc->scale_encoding %d is not valid", (int)d->scale_encoding);
  if ((unsigned)d->scale_layout > SWIGLU_SCALE_COL_MAJOR_TMA)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "qdesc->scale_layout %d is not valid", (int)d->scale_layout);
  if (d->flags & ~(SWIGLU_QUANT_ROUND_H | SWIGLU_QUANT_MX_SCALE_ROUND_UP))
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "qdesc->flags 0x%x has unknown bits", d->flags);
  /* at least the smallest normal: a subnormal floor divided by the format
   * maximum can round to a zero scale, and an all-zero group's codes to NaN */
  if (!(d->amax_floor >= 0x1p-126f) || isinf(d->amax_floor))
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT,
                   "qdesc->amax_floor %g must be finite and at least 2^-126 (1.17549435e-38)",
                   (double)d->amax_floor);
  const int mx = d->format == SWIGLU_QUANT_MXFP8, nv = d->format == SWIGLU_QUANT_NVFP4;
  if (mx || nv) {
    const int32_t g = mx ? 32 : 16;
    const swiglu_scale_encoding enc = mx ? SWIGLU_SCALE_E8M0 : SWIGLU_SCALE_E4M3;
    if (d->granularity != SWIGLU_SCALE_PER_GROUP || d->group_size != g || d->scale_encoding != enc)
      return sg_fail(ctx, SWIGLU_ERROR_UNSUPPORTED,
                     "%s needs PER_GROUP scales of %d elements encoded as %s",
                     mx ? "MXFP8" : "NVFP4", g, mx ? "E8M0" : "E4M3");
  } else if (d->scale_encoding == SWIGLU_SCALE_E4M3) {
    return sg_fail(ctx, SWIGLU_ERROR_UNSUPPORTED, "E4M3 scales are for NVFP4 only");
  }
  if (d->granularity == SWIGLU_SCALE_PER_GROUP) {
    if (d->group_size < 8 || d->group_size % 8 != 0)
      return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "group_size %d must be a positive multiple of 8",
                     d->group_size);
    if (H % d->group_size != 0)
      return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "H = %lld is not a multiple of group_size %d",
                     (long long)H, d->group_size);
  }
  if (d->granularity == SWIGLU_SCALE_PER_TENSOR && (mx || nv))
    return sg_fail(ctx, SWIGLU_ERROR_UNSUPPORTED, "per-tensor scales are not defined for MX / NVFP4");
  return SWIGLU_SUCCESS;
}

/* The codes' accepted dtypes by format. */
static const sg_dtype_rule *code_dtypes(int format, const char **text) {
  switch (format) {
    case SWIGLU_QUANT_FP8_E4M3FN:
    case SWIGLU_QUANT_MXFP8: *text = "float8_e4m3fn or uint8"; return k_e4m3_bytes;
    case SWIGLU_QUANT_FP8_E4M3FNUZ: *text = "float8_e4m3fnuz or uint8"; return k_e4m3fnuz_bytes;
    case SWIGLU_QUANT_FP8_E5M2: *text = "float8_e5m2 or uint8"; return k_e5m2_bytes;
    case SWIGLU_QUANT_INT8: *text = "int8"; return k_i8_only;
    default: *text = "uint8 (two E2M1 codes per byte)"; return k_u8_only;
  }
}

static swiglu_status check_small(swiglu_context *ctx, const swiglu_tensor *t, const char *name,
                                 const sg_dtype_rule *dt, const char *dt_text, int64_t numel,
                                 sg_checked *c) {
  swiglu_status st = sg_check_tensor_as(ctx, t, name, 0, dt, dt_text, c);
  if (st) return st;
  if (c->rows * c->last != numel)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: has %lld elements, expected %lld", name,
                   (long long)(c->rows * c->last), (long long)numel);
  if (!c->compact)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_STRIDE, "%s: must be compact", name);
  return SWIGLU_SUCCESS;
}

swiglu_status swiglu_glu_quant(swiglu_context *ctx, const swiglu_glu_desc *desc,
                               const swiglu_quant_desc *qd, const swiglu_quant_args *a) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  swiglu_status st;
  if ((st = sg_glu_check_desc(ctx, desc))) return st;
  if (!a) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "args is NULL");
  sg_quant_problem p;
  memset(&p, 0, sizeof p);
  sg_checked cx, cup, cq, cs, cts, cw, cc;
  memset(&cup, 0, sizeof cup);
  memset(&cs, 0, sizeof cs);
  if ((st = sg_glu_check_inputs(ctx, desc, a->x, a->up, &cx, &cup, &p.glu.width, &p.glu.gate, &p.glu.up)))
    return st;
  const int64_t H = p.glu.width;
  if ((st = check_qdesc(ctx, qd, H))) return st;
  const int nv = qd->format == SWIGLU_QUANT_NVFP4;
  if (nv && H % 2) return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "NVFP4 needs an even H");

  /* masked MoE */
  int64_t E = 1, M = cx.rows;
  if (a->expert_counts) {
    if (a->x->ndim != 3)
      return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "with expert_counts, x must be [E, M, *] (ndim 3), it has ndim %d",
                     a->x->ndim);
    E = a->x->shape[0];
    M = a->x->shape[1];
    if ((st = check_small(ctx, a->expert_counts, "expert_counts", k_i32_only, "int32", E, &cc))) return st;
    p.expert_counts = (const int32_t *)cc.op.base;
  }
  p.experts = E;
  p.rows_per_expert = M;
  p.rows_padded = (M + 3) / 4 * 4;

  /* codes */
  const char *cdt_text;
  const sg_dtype_rule *cdt = code_dtypes(qd->format, &cdt_text);
  if (!a->q) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "q is NULL");
  if ((st = sg_check_tensor_as(ctx, a->q, "q", 1, cdt, cdt_text, &cq))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &cq, nv ? H / 2 : H, nv ? "H / 2 bytes" : "H"))) return st;

  /* scales */
  const int64_t G = qd->granularity == SWIGLU_SCALE_PER_GROUP ? qd->group_size : H;
  p.group = G;
  p.groups = G ? H / G : 0;
  const int packed = qd->scale_encoding == SWIGLU_SCALE_UE8M0_PACKED;
  p.scale_cols = packed ? (p.groups + 3) / 4 : p.groups;
  if (qd->granularity == SWIGLU_SCALE_PER_TENSOR) {
    if (a->scales)
      return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "scales must be NULL with PER_TENSOR (the scale is given)");
  } else {
    if (!a->scales) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "scales is NULL");
    const sg_dtype_rule *sdt = k_fp32_only;
    const char *sdt_text = "float32";
    if (packed) sdt = k_i32_only, sdt_text = "int32";
    if (qd->scale_encoding == SWIGLU_SCALE_E8M0) sdt = k_e8m0_bytes, sdt_text = "uint8 or float8_e8m0fnu";
    if (qd->scale_encoding == SWIGLU_SCALE_E4M3) sdt = k_e4m3_bytes, sdt_text = "uint8 or float8_e4m3fn";
    if ((st = sg_check_tensor_as(ctx, a->scales, "scales", 1, sdt, sdt_text, &cs))) return st;
    /* expected shape: [E,] then the layout's two extents */
    int64_t want[3], nd = 0;
    if (a->expert_counts) want[nd++] = E;
    if (qd->scale_layout == SWIGLU_SCALE_ROW_MAJOR) {
      want[nd++] = M; /* without experts: every leading dimension flattened */
      want[nd++] = p.scale_cols;
    } else {
      want[nd++] = p.scale_cols;
      want[nd++] = qd->scale_layout == SWIGLU_SCALE_COL_MAJOR_TMA ? p.rows_padded : M;
    }
    int ok = a->scales->ndim == nd;
    for (int i = 0; ok && i < nd; ++i) ok = a->scales->shape[i] == want[i];
    if (!ok)
      return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE,
                     "scales: shape must be [%s%lld, %lld] for this layout%s (%lld groups%s)",
                     a->expert_counts ? "E, " : "", (long long)want[nd - 2], (long long)want[nd - 1],
                     qd->scale_layout == SWIGLU_SCALE_COL_MAJOR_TMA ? ", rows padded to a multiple of 4" : "",
                     (long long)p.groups, packed ? " packed 4 per int32" : "");
    if (!cs.compact) return sg_fail(ctx, SWIGLU_ERROR_BAD_STRIDE, "scales: must be compact");
    p.scales = cs.op.base;
  }
  if (qd->granularity == SWIGLU_SCALE_PER_TENSOR || nv) {
    if (!a->tensor_scale)
      return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "tensor_scale is NULL (%s needs it)",
                     nv ? "NVFP4's global scale" : "the PER_TENSOR scale");
    if ((st = check_small(ctx, a->tensor_scale, "tensor_scale", k_fp32_only, "float32", 1, &cts))) return st;
    p.tensor_scale = (const float *)cts.op.base;
  }
  if (a->row_weight) {
    if ((st = check_small(ctx, a->row_weight, "row_weight", k_fp32_only, "float32", E * M, &cw))) return st;
    p.row_weight = (const float *)cw.op.base;
  }

  /* no output may overlap an input or the other output */
  const sg_checked *ins[6] = {&cx, a->up ? &cup : NULL, a->tensor_scale ? &cts : NULL,
                              a->row_weight ? &cw : NULL, a->expert_counts ? &cc : NULL, NULL};
  const sg_checked *outs[2] = {&cq, a->scales ? &cs : NULL};
  for (int o = 0; o < 2; ++o) {
    if (!outs[o]) continue;
    for (int i = 0; i < 5; ++i)
      if (ins[i] && (st = sg_check_disjoint(ctx, outs[o], ins[i]))) return st;
  }
  if (outs[1] && (st = sg_check_disjoint(ctx, outs[0], outs[1]))) return st;

  p.glu.activation = desc->activation;
  p.glu.alpha = desc->alpha;
  p.glu.limit = desc->limit;
  p.glu.rows = cx.rows;
  p.q = cq.op;
  p.format = qd->format;
  p.granularity = qd->granularity;
  /* a per-tensor call stores no scale, so it has no encoding; the GPU's
   * quantizer reads any other encoding as "the divisor is a power of two" */
  p.encoding = qd->granularity == SWIGLU_SCALE_PER_TENSOR ? SWIGLU_SCALE_FP32 : qd->scale_encoding;
  p.layout = qd->scale_layout;
  p.flags = (int32_t)qd->flags;
  p.round_dtype = (qd->flags & SWIGLU_QUANT_ROUND_H) ? cx.op.dtype : -1;
  p.amax_floor = qd->amax_floor;
  if (!ctx->backend->glu_quant)
    return sg_fail(ctx, SWIGLU_ERROR_UNSUPPORTED, "backend '%s' has no quantizing GLU", ctx->backend->name);
  if (p.glu.rows == 0 || H == 0) return SWIGLU_SUCCESS;
  char msg[SG_MSG_CAP] = "";
  st = ctx->backend->glu_quant(ctx->state, &p, msg, sizeof msg);
  if (st) return sg_fail(ctx, st, "glu_quant on '%s': %s", ctx->backend->name, msg);
  return SWIGLU_SUCCESS;
}
