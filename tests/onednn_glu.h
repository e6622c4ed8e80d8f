/* The GLU as oneDNN computes it: an eltwise primitive (swish / gelu / relu)
 * and a binary multiply, forward and backward, on [rows, cols] fp32 or bf16.
 * Used as an independent reference by the tests and as the CPU peer by the
 * benchmark. */
#ifndef SWIGLU_TESTS_ONEDNN_GLU_H
#define SWIGLU_TESTS_ONEDNN_GLU_H

#include <stdint.h>

typedef struct odnn_glu odnn_glu;

/* act: a swiglu_activation (SILU, GELU_TANH, GELU_ERF, RELU); bf16 != 0 asks
 * for bf16 tensors. Returns NULL (with a reason in why) when oneDNN cannot
 * create the primitives on this machine. */
odnn_glu *odnn_glu_create(int act, int64_t rows, int64_t cols, int bf16, char *why, int why_cap);
void odnn_glu_destroy(odnn_glu *g);
/* h = act(gate) * up; tmp holds act(gate). Buffers are dense [rows, cols]. */
int odnn_glu_forward(odnn_glu *g, const void *gate, const void *up, void *tmp, void *h);
/* dgate = act'(gate) * (dh * up), dup = dh * act(gate); tmp, tmp2 are scratch. */
int odnn_glu_backward(odnn_glu *g, const void *dh, const void *gate, const void *up, void *dgate,
                      void *dup, void *tmp, void *tmp2);
const char *odnn_version(void);

#endif
