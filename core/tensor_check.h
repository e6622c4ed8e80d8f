/* Validation of tensor descriptors and their normalization to sg_operand. */
#ifndef SWIGLU_CORE_TENSOR_CHECK_H
#define SWIGLU_CORE_TENSOR_CHECK_H

#include "core_internal.h"

/* A validated tensor: its operand view over rows x width and its byte span. */
typedef struct sg_checked {
  const swiglu_tensor *t;
  const char *name;
  int64_t rows;        /* product of the leading extents */
  int64_t last;        /* extent of the last dimension */
  uintptr_t lo, hi;    /* [lo, hi) covers every byte the tensor addresses; lo == hi if empty */
  sg_operand op;       /* base at element (0, 0), col_step 1 */
} sg_checked;

/* Checks one tensor: pointers, rank, dtype (bf16/fp16/fp32), device, extents,
 * unit stride of the last dimension, non-negative strides (positive and
 * non-self-overlapping when is_output), and that every address it spans is
 * representable. Fills *c. */
swiglu_status sg_check_tensor(swiglu_context *ctx, const swiglu_tensor *t, const char *name,
                              int is_output, sg_checked *c);

/* Requires b's leading extents to equal a's and b's last extent to be `last`. */
swiglu_status sg_check_same_rows(swiglu_context *ctx, const sg_checked *a, const sg_checked *b,
                                 int64_t last, const char *why);

/* OVERLAP when the byte spans of a and b intersect. */
swiglu_status sg_check_disjoint(swiglu_context *ctx, const sg_checked *a, const sg_checked *b);

/* Whether two descriptors describe exactly the same elements. */
int sg_same_view(const swiglu_tensor *a, const swiglu_tensor *b);

#endif
