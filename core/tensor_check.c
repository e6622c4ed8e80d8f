/*
 * Tensor descriptor validation. Every rule here turns a class of silent
 * corruption seen in other GLU kernels (ignored strides, 32-bit offsets,
 * outputs aliasing inputs) into a status and a message naming the operand.
 */
#include <stdio.h>
#include <string.h>

#include "tensor_check.h"

static int mul_overflows(int64_t a, int64_t b, int64_t *out) {
  return __builtin_mul_overflow(a, b, out);
}

const sg_dtype_rule sg_float_dtypes[] = {{SWIGLU_DTYPE_FLOAT, 32, SG_F32},
                                         {SWIGLU_DTYPE_FLOAT, 16, SG_F16},
                                         {SWIGLU_DTYPE_BFLOAT, 16, SG_BF16},
                                         {0, 0, -1}};

static int dtype_to_sg(swiglu_dtype d, const sg_dtype_rule *allowed, int32_t *out) {
  if (d.lanes != 1) return 0;
  for (; allowed->bits; ++allowed)
    if (d.code == allowed->code && d.bits == allowed->bits) {
      *out = allowed->sg;
      return 1;
    }
  return 0;
}

static int device_accepted(const swiglu_context *ctx, swiglu_device dev) {
  int32_t want = ctx->backend->device_type;
  if (want == SWIGLU_DEVICE_CPU)
    return dev.device_type == SWIGLU_DEVICE_CPU || dev.device_type == SWIGLU_DEVICE_CUDA_HOST ||
           dev.device_type == SWIGLU_DEVICE_ROCM_HOST;
  if (want == SWIGLU_DEVICE_CUDA)
    return (dev.device_type == SWIGLU_DEVICE_CUDA || dev.device_type == SWIGLU_DEVICE_CUDA_MANAGED) &&
           dev.device_id == ctx->device;
  return dev.device_type == want && dev.device_id == ctx->device;
}

swiglu_status sg_check_tensor(swiglu_context *ctx, const swiglu_tensor *t, const char *name,
                              int is_output, sg_checked *c) {
  return sg_check_tensor_as(ctx, t, name, is_output, sg_float_dtypes, "bf16, fp16 or fp32", c);
}

swiglu_status sg_check_tensor_as(swiglu_context *ctx, const swiglu_tensor *t, const char *name,
                                 int is_output, const sg_dtype_rule *allowed,
                                 const char *allowed_text, sg_checked *c) {
  memset(c, 0, sizeof *c);
  c->t = t;
  c->name = name;
  if (!t) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "%s: tensor descriptor is NULL", name);
  if (t->ndim < 1 || t->ndim > SG_MAX_LEAD_DIMS + 1)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: ndim is %d, must be 1 to %d", name, t->ndim,
                   SG_MAX_LEAD_DIMS + 1);
  if (!t->shape) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "%s: shape is NULL", name);
  int32_t dt;
  if (!dtype_to_sg(t->dtype, allowed, &dt))
    return sg_fail(ctx, SWIGLU_ERROR_BAD_DTYPE,
                   "%s: dtype (code %u, bits %u, lanes %u) is not %s", name, t->dtype.code,
                   t->dtype.bits, t->dtype.lanes, allowed_text);
  if (!device_accepted(ctx, t->device))
    return sg_fail(ctx, SWIGLU_ERROR_DEVICE_MISMATCH,
                   "%s: memory on device type %d id %d, but the context's backend '%s' reads "
                   "device type %d id %d",
                   name, t->device.device_type, t->device.device_id, ctx->backend->name,
                   ctx->backend->device_type, ctx->device);
  const int nd = t->ndim;
  int64_t numel = 1;
  for (int i = 0; i < nd; ++i) {
    if (t->shape[i] < 0)
      return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: shape[%d] is %lld, negative", name, i,
                     (long long)t->shape[i]);
    if (mul_overflows(numel, t->shape[i], &numel))
      return sg_fail(ctx, SWIGLU_ERROR_SIZE_OVERFLOW, "%s: element count overflows int64", name);
  }
  int64_t strides[SG_MAX_LEAD_DIMS + 1];
  if (t->strides) {
    memcpy(strides, t->strides, sizeof(int64_t) * (size_t)nd);
  } else {
    int64_t s = 1;
    for (int i = nd - 1; i >= 0; --i) {
      strides[i] = s;
      if (t->shape[i] > 0 && mul_overflows(s, t->shape[i], &s))
        return sg_fail(ctx, SWIGLU_ERROR_SIZE_OVERFLOW, "%s: compact strides overflow int64", name);
    }
  }
  c->last = t->shape[nd - 1];
  c->rows = 1;
  for (int i = 0; i < nd - 1; ++i) c->rows *= t->shape[i];
  /* No element, so no stride can misplace one: NumPy's compact strides of
   * an empty array are 0 in front of its zero extent ([3, 0, 4]: 0, 4, 1),
   * and an output with them was refused as self-overlapping. */
  if (numel == 0) {
    c->op.dtype = dt;
    c->op.base = (char *)t->data;
    c->compact = 1; /* no element is out of place (the quantizer's scales of no rows) */
    return SWIGLU_SUCCESS;
  }
  if (c->last > 1 && strides[nd - 1] != 1)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_STRIDE,
                   "%s: the last dimension must have stride 1, it has %lld", name,
                   (long long)strides[nd - 1]);
  for (int i = 0; i < nd - 1; ++i) {
    if (t->shape[i] <= 1) continue;
    if (strides[i] < 0 || (is_output && strides[i] == 0))
      return sg_fail(ctx, SWIGLU_ERROR_BAD_STRIDE, "%s: stride[%d] is %lld; %s", name, i,
                     (long long)strides[i],
                     is_output ? "output strides must be positive" : "strides must be >= 0");
  }
  const size_t es = sg_dtype_size(dt);
  if (!t->data) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "%s: data is NULL", name);

  if (is_output) {
    /* Sufficient condition for no two elements sharing memory: visiting the
     * non-unit dimensions by increasing stride, each stride exceeds the span
     * of the dimensions before it. */
    int order[SG_MAX_LEAD_DIMS + 1], n = 0;
    for (int i = 0; i < nd - 1; ++i)
      if (t->shape[i] > 1) order[n++] = i;
    for (int a = 1; a < n; ++a)
      for (int b = a; b > 0 && strides[order[b]] < strides[order[b - 1]]; --b) {
        int tmp = order[b]; order[b] = order[b - 1]; order[b - 1] = tmp;
      }
    int64_t span = c->last;
    for (int k = 0; k < n; ++k) {
      int i = order[k];
      if (strides[i] < span)
        return sg_fail(ctx, SWIGLU_ERROR_OVERLAP,
                       "%s: stride[%d] = %lld makes distinct output elements share memory "
                       "(needs >= %lld)",
                       name, i, (long long)strides[i], (long long)span);
      span = strides[i] * (t->shape[i] - 1) + span;
    }
  }

  /* Largest element offset, then bytes; everything must stay inside the
   * address space so kernels can use plain 64-bit pointer arithmetic. */
  int64_t max_off = c->last - 1, term;
  for (int i = 0; i < nd - 1; ++i) {
    if (mul_overflows(strides[i], t->shape[i] - 1, &term) ||
        __builtin_add_overflow(max_off, term, &max_off))
      return sg_fail(ctx, SWIGLU_ERROR_SIZE_OVERFLOW, "%s: element offsets overflow int64", name);
  }
  uint64_t end_bytes;
  if (__builtin_mul_overflow((uint64_t)max_off + 1u, (uint64_t)es, &end_bytes) ||
      __builtin_add_overflow(end_bytes, t->byte_offset, &end_bytes))
    return sg_fail(ctx, SWIGLU_ERROR_SIZE_OVERFLOW, "%s: byte extent overflows", name);
  uintptr_t lo, hi;
  if (__builtin_add_overflow((uintptr_t)t->data, (uintptr_t)t->byte_offset, &lo) ||
      __builtin_add_overflow((uintptr_t)t->data, (uintptr_t)end_bytes, &hi))
    return sg_fail(ctx, SWIGLU_ERROR_SIZE_OVERFLOW,
                   "%s: data + byte_offset + extent passes the end of the address space", name);
  c->compact = 1;
  int64_t expect_stride = 1;
  for (int i = nd - 1; i >= 0; --i) {
    if (t->shape[i] > 1 && strides[i] != expect_stride) c->compact = 0;
    expect_stride *= t->shape[i] > 0 ? t->shape[i] : 1;
  }
  if (t->byte_offset % es != 0 || lo % es != 0)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_STRIDE, "%s: first element is not aligned to %zu bytes",
                   name, es);
  c->lo = lo;
  c->hi = hi;

  sg_operand *op = &c->op;
  op->base = (char *)lo;
  op->dtype = dt;
  op->col_step = 1;
  op->nlead = nd - 1;
  for (int i = 0; i < nd - 1; ++i) {
    op->lead_shape[i] = t->shape[i];
    op->lead_stride[i] = strides[i];
  }
  /* Collapse the leading dimensions to one row stride when they nest. */
  int64_t row_stride = 0, expect = -1;
  int collapsible = 1;
  for (int i = nd - 2; i >= 0; --i) {
    if (t->shape[i] == 1) continue;
    if (expect < 0) {
      row_stride = strides[i];
    } else if (strides[i] != expect) {
      collapsible = 0;
      break;
    }
    expect = strides[i] * t->shape[i];
  }
  op->row_stride = collapsible ? row_stride : -1;
  return SWIGLU_SUCCESS;
}

swiglu_status sg_check_same_rows(swiglu_context *ctx, const sg_checked *a, const sg_checked *b,
                                 int64_t last, const char *why) {
  const swiglu_tensor *ta = a->t, *tb = b->t;
  if (ta->ndim != tb->ndim)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: ndim is %d, %s has %d", b->name, tb->ndim,
                   a->name, ta->ndim);
  for (int i = 0; i < ta->ndim - 1; ++i)
    if (ta->shape[i] != tb->shape[i])
      return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: shape[%d] is %lld, %s has %lld", b->name, i,
                     (long long)tb->shape[i], a->name, (long long)ta->shape[i]);
  if (b->last != last)
    return sg_fail(ctx, SWIGLU_ERROR_BAD_SHAPE, "%s: last extent is %lld, expected %lld (%s)",
                   b->name, (long long)b->last, (long long)last, why);
  return SWIGLU_SUCCESS;
}

swiglu_status sg_check_disjoint(swiglu_context *ctx, const sg_checked *a, const sg_checked *b) {
  if (a->lo == a->hi || b->lo == b->hi) return SWIGLU_SUCCESS;
  if (a->lo < b->hi && b->lo < a->hi)
    return sg_fail(ctx, SWIGLU_ERROR_OVERLAP, "%s overlaps %s in memory", a->name, b->name);
  return SWIGLU_SUCCESS;
}

int sg_same_view(const swiglu_tensor *a, const swiglu_tensor *b) {
  if (a->data != b->data || a->byte_offset != b->byte_offset || a->ndim != b->ndim ||
      a->dtype.code != b->dtype.code || a->dtype.bits != b->dtype.bits)
    return 0;
  for (int i = 0; i < a->ndim; ++i) {
    if (a->shape[i] != b->shape[i]) return 0;
    int64_t sa = a->strides ? a->strides[i] : -1, sb = b->strides ? b->strides[i] : -1;
    if (sa != sb && a->shape[i] > 1) {
      /* NULL strides mean compact: compare through the compact value. */
      int64_t ca = 1;
      for (int j = i + 1; j < a->ndim; ++j) ca *= a->shape[j];
      if ((sa < 0 ? ca : sa) != (sb < 0 ? ca : sb)) return 0;
    }
  }
  return 1;
}
