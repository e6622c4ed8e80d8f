/*
 * The GEMM-fused GLU ops: validation, normalization to sg_linear_problem,
 * the workspace contract, dispatch. Backends receive matrices whose leading
 * dimensions are collapsed and whose packed layouts are already split into
 * gate and up halves, so a backend never looks at swiglu_layout for weights.
 */
#include <string.h>

#include "tensor_check.h"

/* Every operand the op touches, for the overlap rules: outputs must not
 * overlap any input, any other output, or the workspace. */
typedef struct {
  sg_checked in[10], out[8];
  int nin, nout;
} sg_operands;

static swiglu_status act_tensor(swiglu_context *ctx, const swiglu_tensor *t, const char *name,
                                int is_out, sg_checked *c) {
  swiglu_status st = sg_check_tensor(ctx, t, name, is_out, c);
  if (st) return st;
  if (c->op.row_stride < 0)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_STRIDE,
                   "%s: the leading dimensions must collapse to one row stride for a GEMM operand",
                   name);
  return SWIGLU_SUCCESS;
}

/* A weight [rows, cols] (ndim 2), or [E, rows, cols] when experts > 0. */
static swiglu_status weight_tensor(swiglu_context *ctx, const swiglu_tensor *t, const char *name,
                                   int is_out, int64_t rows, int64_t cols, int32_t experts,
                                   sg_checked *c, int64_t *expert_stride) {
  swiglu_status st = sg_check_tensor(ctx, t, name, is_out, c);
  if (st) return st;
  const int nd = experts > 0 ? 3 : 2;
  if (t->ndim != nd)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: ndim is %d, must be %d", name, t->ndim, nd);
  const int64_t want[3] = {experts, rows, cols};
  for (int i = 0; i < nd; ++i)
    if (t->shape[i] != want[3 - nd + i])
      return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: shape[%d] is %lld, expected %lld", name, i,
                     (long long)t->shape[i], (long long)want[3 - nd + i]);
  if (nd == 3) {
    /* Experts may sit at any stride; each expert's rows must be one stride. */
    const int64_t s1 = t->strides ? t->strides[1] : cols;
    *expert_stride = t->strides ? t->strides[0] : rows * cols;
    c->op.row_stride = s1;
    c->op.nlead = 1;
    c->op.lead_shape[0] = rows;
    c->op.lead_stride[0] = s1;
  } else if (expert_stride) {
    *expert_stride = 0;
  }
  if (c->op.row_stride < 0)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_STRIDE, "%s: rows must have one stride", name);
  return SWIGLU_SUCCESS;
}

static swiglu_status vector_tensor(swiglu_context *ctx, const swiglu_tensor *t, const char *name,
                                   int is_out, int64_t n, sg_checked *c) {
  swiglu_status st = sg_check_tensor(ctx, t, name, is_out, c);
  if (st) return st;
  if (t->ndim != 1 || t->shape[0] != n)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: must be 1-D with %lld elements", name,
                   (long long)n);
  return SWIGLU_SUCCESS;
}

/* The gate and up row blocks of a packed [2H, D] weight. */
static void split_rows(const sg_operand *w, swiglu_layout layout, int64_t H, sg_operand *g,
                       sg_operand *u) {
  const size_t es = sg_dtype_size(w->dtype);
  *g = *w;
  *u = *w;
  g->nlead = u->nlead = 0;
  switch (layout) {
    case SWIGLU_LAYOUT_GATE_UP: u->base += (size_t)(H * w->row_stride) * es; break;
    case SWIGLU_LAYOUT_UP_GATE: g->base += (size_t)(H * w->row_stride) * es; break;
    default:
      u->base += (size_t)w->row_stride * es;
      g->row_stride *= 2;
      u->row_stride *= 2;
      break;
  }
}

static swiglu_status check_overlaps(swiglu_context *ctx, const sg_operands *o,
                                    const sg_checked *ws) {
  swiglu_status st;
  for (int a = 0; a < o->nout; ++a) {
    for (int b = 0; b < o->nin; ++b)
      if ((st = sg_check_disjoint(ctx, &o->out[a], &o->in[b]))) return st;
    for (int b = a + 1; b < o->nout; ++b)
      if ((st = sg_check_disjoint(ctx, &o->out[a], &o->out[b]))) return st;
    if ((st = sg_check_disjoint(ctx, &o->out[a], ws))) return st;
  }
  for (int b = 0; b < o->nin; ++b)
    if ((st = sg_check_disjoint(ctx, &o->in[b], ws))) return st;
  return SWIGLU_SUCCESS;
}

/* The shared tail: the workspace rules, then either the size query or the call. */
static swiglu_status finish(swiglu_context *ctx, sg_linear_problem *p, const sg_operands *o,
                            const char *what, size_t *query) {
  swiglu_status st;
  if (!ctx->backend->linear || !ctx->backend->linear_workspace)
    return sg_fail(ctx, SWIGLU_ERROR_UNSUPPORTED, "%s: backend '%s' does not have the GEMM-fused ops",
                   what, ctx->backend->name);
  char msg[SG_MSG_CAP] = "";
  size_t need = 0;
  if ((st = ctx->backend->linear_workspace(ctx->state, p, &need, msg, sizeof msg)))
    return sg_fail(ctx, st, "%s on '%s': %s", what, ctx->backend->name, msg);
  if (query) {
    *query = need;
    return SWIGLU_SUCCESS;
  }
  if (p->workspace_bytes < need)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT,
                   "%s: workspace_bytes is %zu, this call needs %zu (see the _workspace_size query)",
                   what, p->workspace_bytes, need);
  if (p->workspace_bytes && !p->workspace)
    return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "%s: workspace is NULL with workspace_bytes %zu",
                   what, p->workspace_bytes);
  sg_checked ws;
  memset(&ws, 0, sizeof ws);
  ws.name = "workspace";
  if (p->workspace) {
    ws.lo = (uintptr_t)p->workspace;
    if (__builtin_add_overflow(ws.lo, p->workspace_bytes, &ws.hi))
      return sg_fail(ctx, SWIGLU_ERROR_SIZE_OVERFLOW, "%s: workspace extent overflows", what);
  }
  if ((st = check_overlaps(ctx, o, &ws))) return st;
  if ((st = ctx->backend->linear(ctx->state, p, msg, sizeof msg)))
    return sg_fail(ctx, st, "%s on '%s': %s", what, ctx->backend->name, msg);
  return SWIGLU_SUCCESS;
}

/* What every op checks first: the desc, the args pointer and the flags;
 * then the problem starts from the desc. */
static swiglu_status begin(swiglu_context *ctx, const swiglu_glu_desc *d, const void *args,
                           uint32_t flags, sg_linear_problem *p, int op) {
  ctx->last_error[0] = '\0';
  swiglu_status st;
  if ((st = sg_glu_check_desc(ctx, d))) return st;
  if (!args) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "args is NULL");
  if (flags & ~SWIGLU_LINEAR_ACCUMULATE)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "flags 0x%x has unknown bits", flags);
  memset(p, 0, sizeof *p);
  p->op = op;
  p->activation = d->activation;
  p->alpha = d->alpha;
  p->limit = d->limit;
  p->flags = flags;
  return SWIGLU_SUCCESS;
}

/* The public pair of each op: the call, and the workspace query that runs
 * the same validation and stops before the backend computes. */
#define SG_LINEAR_ENTRIES(name, impl, args_t)                                                     \
  swiglu_status swiglu_##name(swiglu_context *ctx, const swiglu_glu_desc *desc,                  \
                              const args_t *args) {                                              \
    return impl(ctx, desc, args, NULL);                                                          \
  }                                                                                              \
  swiglu_status swiglu_##name##_workspace_size(swiglu_context *ctx, const swiglu_glu_desc *desc, \
                                               const args_t *args, size_t *bytes) {              \
    if (!bytes)                                                                                  \
      return ctx ? sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "bytes is NULL")                      \
                 : SWIGLU_ERROR_NULL_POINTER;                                                    \
    return impl(ctx, desc, args, bytes);                                                         \
  }

/* The GLU linear operands common to forward and backward: x, the weights and
 * the biases. Sets T, D, H, pre_layout. */
static swiglu_status glu_weights(swiglu_context *ctx, const swiglu_glu_desc *d,
                                 const swiglu_tensor *x, const swiglu_tensor *w,
                                 const swiglu_tensor *w_up, const swiglu_tensor *bias,
                                 const swiglu_tensor *bias_up, sg_linear_problem *p,
                                 sg_checked *cx, sg_operands *o) {
  swiglu_status st;
  const int sep = d->layout == SWIGLU_LAYOUT_SEPARATE;
  if ((st = act_tensor(ctx, x, "x", 0, cx))) return st;
  o->in[o->nin++] = *cx;
  p->x = cx->op;
  p->T = cx->rows;
  p->D = cx->last;
  if (!w) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "w is NULL");
  if (w->ndim != 2 || !w->shape)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "w: must be 2-D [%s, D]", sep ? "H" : "2H");
  int64_t H = w->shape[0];
  if (!sep) {
    if (H % 2) return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "w: %lld rows, a packed layout needs 2H", (long long)H);
    H /= 2;
  }
  if (H <= 0 || p->D <= 0)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "H (%lld) and D (%lld) must be positive",
                   (long long)H, (long long)p->D);
  p->H = H;
  p->pre_layout = sep ? SWIGLU_LAYOUT_GATE_UP : d->layout;
  sg_checked c;
  if ((st = weight_tensor(ctx, w, "w", 0, sep ? H : 2 * H, p->D, 0, &c, NULL))) return st;
  o->in[o->nin++] = c;
  if (sep) {
    p->wg = c.op;
    if (!w_up) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "w_up is NULL with the separate layout");
    if ((st = weight_tensor(ctx, w_up, "w_up", 0, H, p->D, 0, &c, NULL))) return st;
    o->in[o->nin++] = c;
    p->wu = c.op;
  } else {
    if (w_up) return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "w_up must be NULL with a packed layout");
    split_rows(&c.op, d->layout, H, &p->wg, &p->wu);
    p->w2h = c.op;
    p->w2h.nlead = 0;
  }
  if (bias) {
    if ((st = vector_tensor(ctx, bias, "bias", 0, sep ? H : 2 * H, &c))) return st;
    o->in[o->nin++] = c;
    if (sep) {
      p->bg = c.op;
      if (!bias_up) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "bias_up is NULL while bias is given (separate layout)");
      if ((st = vector_tensor(ctx, bias_up, "bias_up", 0, H, &c))) return st;
      o->in[o->nin++] = c;
      p->bu = c.op;
    } else {
      if (bias_up) return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "bias_up must be NULL with a packed layout");
      sg_split_packed(&c.op, d->layout, H, &p->bg, &p->bu);
      p->b2h = c.op;
    }
  } else if (bias_up) {
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "bias_up is given without bias");
  }
  return SWIGLU_SUCCESS;
}

static swiglu_status glu_linear_forward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                        const swiglu_glu_linear_args *a, size_t *query) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  sg_linear_problem p;
  swiglu_status st = begin(ctx, desc, a, 0, &p, SG_LIN_GLU_FWD);
  if (st) return st;
  sg_operands o;
  memset(&o, 0, sizeof o);
  sg_checked cx, c;
  if ((st = glu_weights(ctx, desc, a->x, a->w, a->w_up, a->bias, a->bias_up, &p, &cx, &o))) return st;
  if ((st = act_tensor(ctx, a->h, "h", 1, &c))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &c, p.H, "H"))) return st;
  o.out[o.nout++] = c;
  p.h = c.op;
  if (a->preact) {
    if ((st = act_tensor(ctx, a->preact, "preact", 1, &c))) return st;
    if ((st = sg_check_same_rows(ctx, &cx, &c, 2 * p.H, "2H"))) return st;
    o.out[o.nout++] = c;
    sg_split_packed(&c.op, (swiglu_layout)p.pre_layout, p.H, &p.pg, &p.pu);
  }
  p.workspace = a->workspace;
  p.workspace_bytes = a->workspace_bytes;
  return finish(ctx, &p, &o, "glu_linear_forward", query);
}

SG_LINEAR_ENTRIES(glu_linear_forward, glu_linear_forward, swiglu_glu_linear_args)

static swiglu_status glu_linear_backward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                         const swiglu_glu_linear_backward_args *a, size_t *query) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  sg_linear_problem p;
  swiglu_status st = begin(ctx, desc, a, a ? a->flags : 0, &p, SG_LIN_GLU_BWD);
  if (st) return st;
  const int sep = desc->layout == SWIGLU_LAYOUT_SEPARATE;
  sg_operands o;
  memset(&o, 0, sizeof o);
  sg_checked cx, c;
  if ((st = glu_weights(ctx, desc, a->x, a->w, a->w_up, a->bias, a->bias_up, &p, &cx, &o))) return st;
  if ((st = act_tensor(ctx, a->dh, "dh", 0, &c))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &c, p.H, "H"))) return st;
  o.in[o.nin++] = c;
  p.dh = c.op;
  if (a->preact) {
    if ((st = act_tensor(ctx, a->preact, "preact", 0, &c))) return st;
    if ((st = sg_check_same_rows(ctx, &cx, &c, 2 * p.H, "2H"))) return st;
    o.in[o.nin++] = c;
    sg_split_packed(&c.op, (swiglu_layout)p.pre_layout, p.H, &p.pg, &p.pu);
  }
  if (!a->dx && !a->dw && !a->dbias)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "none of dx, dw, dbias is given");
  if (a->dx) {
    if ((st = act_tensor(ctx, a->dx, "dx", 1, &c))) return st;
    if ((st = sg_check_same_rows(ctx, &cx, &c, p.D, "D"))) return st;
    o.out[o.nout++] = c;
    p.dx = c.op;
  }
  if (a->dw) {
    if ((st = weight_tensor(ctx, a->dw, "dw", 1, sep ? p.H : 2 * p.H, p.D, 0, &c, NULL))) return st;
    o.out[o.nout++] = c;
    if (sep) {
      p.dwg = c.op;
      if (!a->dw_up) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "dw_up is NULL with the separate layout");
      if ((st = weight_tensor(ctx, a->dw_up, "dw_up", 1, p.H, p.D, 0, &c, NULL))) return st;
      o.out[o.nout++] = c;
      p.dwu = c.op;
    } else {
      if (a->dw_up) return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "dw_up must be NULL with a packed layout");
      split_rows(&c.op, desc->layout, p.H, &p.dwg, &p.dwu);
    }
  } else if (a->dw_up) {
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "dw_up is given without dw");
  }
  if (a->dbias) {
    if ((st = vector_tensor(ctx, a->dbias, "dbias", 1, sep ? p.H : 2 * p.H, &c))) return st;
    o.out[o.nout++] = c;
    if (sep) {
      p.dbg = c.op;
      if (!a->dbias_up) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "dbias_up is NULL with the separate layout");
      if ((st = vector_tensor(ctx, a->dbias_up, "dbias_up", 1, p.H, &c))) return st;
      o.out[o.nout++] = c;
      p.dbu = c.op;
    } else {
      if (a->dbias_up) return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "dbias_up must be NULL with a packed layout");
      sg_split_packed(&c.op, desc->layout, p.H, &p.dbg, &p.dbu);
    }
  } else if (a->dbias_up) {
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "dbias_up is given without dbias");
  }
  p.workspace = a->workspace;
  p.workspace_bytes = a->workspace_bytes;
  return finish(ctx, &p, &o, "glu_linear_backward", query);
}

SG_LINEAR_ENTRIES(glu_linear_backward, glu_linear_backward, swiglu_glu_linear_backward_args)

/* The down projection's pre-activation, weight and expert offsets. */
static swiglu_status down_inputs(swiglu_context *ctx, const swiglu_glu_desc *d,
                                 const swiglu_tensor *x, const swiglu_tensor *up,
                                 const swiglu_tensor *w, const int64_t *offsets, int32_t experts,
                                 sg_linear_problem *p, sg_checked *cx, sg_operands *o) {
  swiglu_status st;
  sg_checked cup;
  memset(&cup, 0, sizeof cup);
  if ((st = sg_glu_check_inputs(ctx, d, x, up, cx, &cup, &p->H, &p->pg, &p->pu))) return st;
  if (p->pg.row_stride < 0 || (up && p->pu.row_stride < 0))
    return sg_fail(ctx, SWIGLU_ERROR_BAD_STRIDE,
                   "x / up: the leading dimensions must collapse to one row stride for a GEMM operand");
  o->in[o->nin++] = *cx;
  if (up) o->in[o->nin++] = cup;
  p->pre_layout = d->layout;
  p->T = cx->rows;
  if (p->H <= 0) return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "H must be positive");
  if (experts < 0) return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "num_experts is negative");
  if (!w) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "w is NULL");
  if (w->ndim != (experts ? 3 : 2) || !w->shape)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "w: must be %s", experts ? "[E, D, H]" : "[D, H]");
  p->D = w->shape[experts ? 1 : 0];
  if (p->D <= 0) return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "w: D must be positive");
  sg_checked c;
  if ((st = weight_tensor(ctx, w, "w", 0, p->D, p->H, experts, &c, &p->wd_expert_stride))) return st;
  o->in[o->nin++] = c;
  p->wd = c.op;
  p->experts = experts;
  if (experts) {
    if (!offsets) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "expert_offsets is NULL with num_experts > 0");
    if (offsets[0] != 0)
      return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "expert_offsets[0] is %lld, must be 0",
                     (long long)offsets[0]);
    for (int32_t e = 0; e < experts; ++e)
      if (offsets[e + 1] < offsets[e])
        return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT,
                       "expert_offsets decrease at expert %d (%lld > %lld)", (int)e,
                       (long long)offsets[e], (long long)offsets[e + 1]);
    if (offsets[experts] != p->T)
      return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT,
                     "expert_offsets[%d] is %lld, must equal the row count %lld", (int)experts,
                     (long long)offsets[experts], (long long)p->T);
    p->offsets = offsets;
  } else if (offsets) {
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "expert_offsets given with num_experts 0");
  }
  return SWIGLU_SUCCESS;
}

static swiglu_status down_forward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                  const swiglu_down_proj_args *a, size_t *query) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  sg_linear_problem p;
  swiglu_status st = begin(ctx, desc, a, 0, &p, SG_LIN_DOWN_FWD);
  if (st) return st;
  sg_operands o;
  memset(&o, 0, sizeof o);
  sg_checked cx, c;
  if ((st = down_inputs(ctx, desc, a->x, a->up, a->w, a->expert_offsets, a->num_experts, &p, &cx, &o)))
    return st;
  if ((st = act_tensor(ctx, a->y, "y", 1, &c))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &c, p.D, "D"))) return st;
  o.out[o.nout++] = c;
  p.y = c.op;
  p.workspace = a->workspace;
  p.workspace_bytes = a->workspace_bytes;
  return finish(ctx, &p, &o, "down_proj_forward", query);
}

SG_LINEAR_ENTRIES(down_proj_forward, down_forward, swiglu_down_proj_args)

static swiglu_status down_backward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                   const swiglu_down_proj_backward_args *a, size_t *query) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  sg_linear_problem p;
  swiglu_status st = begin(ctx, desc, a, a ? a->flags : 0, &p, SG_LIN_DOWN_BWD);
  if (st) return st;
  const int sep = desc->layout == SWIGLU_LAYOUT_SEPARATE;
  sg_operands o;
  memset(&o, 0, sizeof o);
  sg_checked cx, c;
  if ((st = down_inputs(ctx, desc, a->x, a->up, a->w, a->expert_offsets, a->num_experts, &p, &cx, &o)))
    return st;
  if ((st = act_tensor(ctx, a->dy, "dy", 0, &c))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &c, p.D, "D"))) return st;
  o.in[o.nin++] = c;
  p.y = c.op;
  const char *dx_name = sep ? "dx (dgate)" : "dx";
  if ((st = act_tensor(ctx, a->dx, dx_name, 1, &c))) return st;
  if ((st = sg_check_same_rows(ctx, &cx, &c, cx.last, "must match x's"))) return st;
  o.out[o.nout++] = c;
  if (sep) {
    p.dpg = c.op;
    if (!a->dup) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "dup is NULL with the separate layout");
    if ((st = act_tensor(ctx, a->dup, "dup", 1, &c))) return st;
    if ((st = sg_check_same_rows(ctx, &cx, &c, p.H, "H"))) return st;
    o.out[o.nout++] = c;
    p.dpu = c.op;
  } else {
    if (a->dup) return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "dup must be NULL with a packed layout");
    sg_split_packed(&c.op, desc->layout, p.H, &p.dpg, &p.dpu);
  }
  if (a->dw) {
    if ((st = weight_tensor(ctx, a->dw, "dw", 1, p.D, p.H, p.experts, &c, &p.dwd_expert_stride)))
      return st;
    o.out[o.nout++] = c;
    p.dwd = c.op;
  }
  p.workspace = a->workspace;
  p.workspace_bytes = a->workspace_bytes;
  return finish(ctx, &p, &o, "down_proj_backward", query);
}

SG_LINEAR_ENTRIES(down_proj_backward, down_backward, swiglu_down_proj_backward_args)
