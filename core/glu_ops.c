/* Public GLU entry points: validate everything, build sg_glu_problem, dispatch. */
#include <math.h>
#include <string.h>

#include "tensor_check.h"

swiglu_status swiglu_glu_desc_init(swiglu_glu_desc *desc, swiglu_activation activation,
                                   swiglu_layout layout) {
  if (!desc) return SWIGLU_ERROR_NULL_POINTER;
  desc->activation = activation;
  desc->layout = layout;
  desc->alpha = 1.702f;
  desc->limit = 7.0f;
  return SWIGLU_SUCCESS;
}

swiglu_status sg_glu_check_desc(swiglu_context *ctx, const swiglu_glu_desc *d) {
  if (!d) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "desc is NULL");
  if ((unsigned)d->activation > SWIGLU_ACT_SILU_CLAMPED)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "desc->activation %d is not a swiglu_activation",
                   (int)d->activation);
  if ((unsigned)d->layout > SWIGLU_LAYOUT_INTERLEAVED)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "desc->layout %d is not a swiglu_layout",
                   (int)d->layout);
  if (d->activation == SWIGLU_ACT_SILU_GPTOSS || d->activation == SWIGLU_ACT_SILU_CLAMPED) {
    if (!(d->limit > 0.0f) || isinf(d->limit))
      return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "desc->limit must be finite and > 0");
  }
  if (d->activation == SWIGLU_ACT_SILU_GPTOSS && !isfinite(d->alpha))
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "desc->alpha must be finite");
  return SWIGLU_SUCCESS;
}

/* The gate and up operands inside one packed [..., 2H] operand. */
void sg_split_packed(const sg_operand *packed, swiglu_layout layout, int64_t H,
                         sg_operand *gate, sg_operand *up) {
  const size_t es = sg_dtype_size(packed->dtype);
  *gate = *packed;
  *up = *packed;
  /* an empty operand may have no memory at all: no offset to a NULL base
   * (undefined, and clang's UBSan reports it) */
  if (!packed->base) return;
  switch (layout) {
    case SWIGLU_LAYOUT_GATE_UP: up->base += (size_t)H * es; break;
    case SWIGLU_LAYOUT_UP_GATE: gate->base += (size_t)H * es; break;
    default:
      gate->col_step = 2;
      up->col_step = 2;
      up->base += es;
      break;
  }
}

swiglu_status sg_glu_check_inputs(swiglu_context *ctx, const swiglu_glu_desc *d,
                                  const swiglu_tensor *x, const swiglu_tensor *up,
                                  sg_checked *cx, sg_checked *cup, int64_t *width,
                                  sg_operand *gate_op, sg_operand *up_op) {
  swiglu_status st;
  if (d->layout == SWIGLU_LAYOUT_SEPARATE) {
    if ((st = sg_check_tensor(ctx, x, "gate", 0, cx))) return st;
    if (!up) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "up is NULL with the separate layout");
    if ((st = sg_check_tensor(ctx, up, "up", 0, cup))) return st;
    if ((st = sg_check_same_rows(ctx, cx, cup, cx->last, "must equal gate's"))) return st;
    *width = cx->last;
    *gate_op = cx->op;
    *up_op = cup->op;
    return SWIGLU_SUCCESS;
  }
  if (up)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "up must be NULL with a packed layout");
  if ((st = sg_check_tensor(ctx, x, "x", 0, cx))) return st;
  if (cx->last % 2 != 0)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "x: last extent %lld is odd; a packed layout needs 2*H",
                   (long long)cx->last);
  *width = cx->last / 2;
  sg_split_packed(&cx->op, d->layout, *width, gate_op, up_op);
  return SWIGLU_SUCCESS;
}

static int rows_empty(int64_t rows, int64_t width) { return rows == 0 || width == 0; }

swiglu_status swiglu_glu_forward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                 const swiglu_tensor *x, const swiglu_tensor *up,
                                 const swiglu_tensor *h) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  swiglu_status st;
  if ((st = sg_glu_check_desc(ctx, desc))) return st;
  sg_glu_problem p;
  memset(&p, 0, sizeof p);
  sg_checked cx, cup, ch;
  memset(&cup, 0, sizeof cup);
  if ((st = sg_glu_check_inputs(ctx, desc, x, up, &cx, &cup, &p.width, &p.gate, &p.up))) return st;
  if ((st = sg_check_tensor(ctx, h, "h", 1, &ch))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &ch, p.width, "H"))) return st;
  if ((st = sg_check_disjoint(ctx, &ch, &cx))) return st;
  if (up && (st = sg_check_disjoint(ctx, &ch, &cup))) return st;
  p.activation = desc->activation;
  p.alpha = desc->alpha;
  p.limit = desc->limit;
  p.rows = cx.rows;
  p.h = ch.op;
  if (rows_empty(p.rows, p.width)) return SWIGLU_SUCCESS;
  char msg[SG_MSG_CAP] = "";
  st = ctx->backend->glu_forward(ctx->state, &p, msg, sizeof msg);
  if (st) return sg_fail(ctx, st, "glu_forward on '%s': %s", ctx->backend->name, msg);
  return SWIGLU_SUCCESS;
}

swiglu_status swiglu_glu_backward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                  const swiglu_tensor *dh, const swiglu_tensor *x,
                                  const swiglu_tensor *up, const swiglu_tensor *dx,
                                  const swiglu_tensor *dup, const swiglu_tensor *h,
                                  unsigned flags) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  swiglu_status st;
  if ((st = sg_glu_check_desc(ctx, desc))) return st;
  if (flags & ~SWIGLU_BACKWARD_IN_PLACE)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "flags 0x%x has unknown bits", flags);
  const int in_place = (flags & SWIGLU_BACKWARD_IN_PLACE) != 0;
  const int separate = desc->layout == SWIGLU_LAYOUT_SEPARATE;
  sg_glu_problem p;
  memset(&p, 0, sizeof p);
  sg_checked cx, cup, cdh, cdx, cdup, ch;
  memset(&cup, 0, sizeof cup);
  memset(&cdup, 0, sizeof cdup);
  memset(&ch, 0, sizeof ch);
  if ((st = sg_glu_check_inputs(ctx, desc, x, up, &cx, &cup, &p.width, &p.gate, &p.up))) return st;
  if ((st = sg_check_tensor(ctx, dh, "dh", 0, &cdh))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &cdh, p.width, "H"))) return st;
  const char *dx_name = separate ? "dgate" : "dx";
  if ((st = sg_check_tensor(ctx, dx, dx_name, 1, &cdx))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &cdx, cx.last, "must match the input's"))) return st;
  if (separate) {
    if (!dup) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "dup is NULL with the separate layout");
    if ((st = sg_check_tensor(ctx, dup, "dup", 1, &cdup))) return st;
    if ((st = sg_check_same_rows(ctx, &cx, &cdup, p.width, "H"))) return st;
  } else if (dup) {
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "dup must be NULL with a packed layout");
  }
  if (h) {
    if ((st = sg_check_tensor(ctx, h, "h", 1, &ch))) return st;
    if ((st = sg_check_same_rows(ctx, &cx, &ch, p.width, "H"))) return st;
  }
  if (in_place) {
    if (!sg_same_view(dx, x))
      return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT,
                     "in-place backward needs %s to describe exactly the memory of %s", dx_name,
                     separate ? "gate" : "x");
    if (separate && !sg_same_view(dup, up))
      return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT,
                     "in-place backward needs dup to describe exactly the memory of up");
  }
  /* Every output against every input and every other output; the only pairs
   * allowed to share memory are the in-place ones. */
  const sg_checked *outs[3] = {&cdx, separate ? &cdup : NULL, h ? &ch : NULL};
  const sg_checked *ins[3] = {&cdh, &cx, separate ? &cup : NULL};
  for (int o = 0; o < 3; ++o) {
    if (!outs[o]) continue;
    for (int i = 0; i < 3; ++i) {
      if (!ins[i]) continue;
      if (in_place && ((o == 0 && i == 1) || (o == 1 && i == 2))) continue;
      if ((st = sg_check_disjoint(ctx, outs[o], ins[i]))) return st;
    }
    for (int o2 = o + 1; o2 < 3; ++o2)
      if (outs[o2] && (st = sg_check_disjoint(ctx, outs[o], outs[o2]))) return st;
  }
  if (in_place && separate) {
    /* gate and up become dgate and dup: they must not share memory either. */
    if ((st = sg_check_disjoint(ctx, &cx, &cup))) return st;
  }

  p.activation = desc->activation;
  p.alpha = desc->alpha;
  p.limit = desc->limit;
  p.rows = cx.rows;
  p.dh = cdh.op;
  p.in_place = in_place;
  if (h) p.h = ch.op;
  if (separate) {
    p.dgate = cdx.op;
    p.dup = cdup.op;
  } else {
    sg_split_packed(&cdx.op, desc->layout, p.width, &p.dgate, &p.dup);
  }
  if (rows_empty(p.rows, p.width)) return SWIGLU_SUCCESS;
  char msg[SG_MSG_CAP] = "";
  st = ctx->backend->glu_backward(ctx->state, &p, msg, sizeof msg);
  if (st) return sg_fail(ctx, st, "glu_backward on '%s': %s", ctx->backend->name, msg);
  return SWIGLU_SUCCESS;
}
