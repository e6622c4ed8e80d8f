/* oneDNN matmuls in nn.Linear form, out = X W^T with W [N, K], optionally
 * with a post-op: an eltwise activation (the GLU's gate), or a binary
 * multiply by another [M, N] tensor (the GLU's up times the gate). The
 * weights are reordered once, at creation, into the layout oneDNN prefers.
 * Used as the second reference for the GEMM-fused forward ops and as the
 * CPU peer of swiglu-bench --op linear. */
#ifndef SWIGLU_TESTS_ONEDNN_LINEAR_H
#define SWIGLU_TESTS_ONEDNN_LINEAR_H

#include <stdint.h>

typedef struct odnn_mm odnn_mm;

enum { ODNN_POST_NONE = 0, ODNN_POST_ACT = 1, ODNN_POST_MUL = 2 };

/* act: a swiglu_activation (SILU, GELU_TANH, GELU_ERF, RELU) for
 * ODNN_POST_ACT. w: [N, K] row-major with row stride ldw elements, fp32 or
 * (bf16 != 0) bf16, like X and out. NULL with a reason when oneDNN cannot. */
odnn_mm *odnn_mm_create(int64_t M, int64_t K, int64_t N, int bf16, const void *w, int64_t ldw,
                        int post, int act, char *why, int why_cap);
/* out = post(x W^T); mul is the ODNN_POST_MUL operand [M, N] (else NULL). */
int odnn_mm_run(odnn_mm *m, const void *x, const void *mul, void *out);
void odnn_mm_destroy(odnn_mm *m);

#endif
