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
  int compact;         /* strides are the compact row-major ones */
} sg_checked;

/* An accepted DLPack (code, bits) and the element type it maps to. Lists end
 * with bits == 0. */
typedef struct sg_dtype_rule {
  uint8_t code, bits;
  int32_t sg;
} sg_dtype_rule;
extern const sg_dtype_rule sg_float_dtypes[];

/* sg_check_tensor with another list of accepted dtypes. */
swiglu_status sg_check_tensor_as(swiglu_context *ctx, const swiglu_tensor *t, const char *name,
                                 int is_output, const sg_dtype_rule *allowed,
                                 const char *allowed_text, sg_checked *c);

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

/* The GLU desc and inputs, shared by the forward, backward and quant ops.
 * sg_glu_check_inputs splits packed inputs into gate and up operands and
 * sets *width to H. */
swiglu_status sg_glu_check_desc(swiglu_context *ctx, const swiglu_glu_desc *d);
swiglu_status sg_glu_check_inputs(swiglu_context *ctx, const swiglu_glu_desc *d,
                                  const swiglu_tensor *x, const swiglu_tensor *up, sg_checked *cx,
                                  sg_checked *cup, int64_t *width, sg_operand *gate_op,
                                  sg_operand *up_op);

/* The gate and up column halves of a packed [..., 2H] operand. */
void sg_split_packed(const sg_operand *packed, swiglu_layout layout, int64_t H, sg_operand *gate,
                     sg_operand *up);

#endif
