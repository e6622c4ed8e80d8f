/* The independent bit-level reference quantizer for the tests, written from
 * the format definitions (docs/numerics.md, "GLU + quantization"): codes are
 * found by searching the decoded value table, scales by frexp in double. */
#ifndef SWIGLU_TESTS_REF_QUANT_H
#define SWIGLU_TESTS_REF_QUANT_H

#include <stdint.h>

#include "swiglu/swiglu.h"

double rq_decode(int format, uint8_t code); /* the value a code stands for (NaN codes: NaN) */
uint8_t rq_encode(int format, double v);    /* nearest, ties to the even code, saturating */
double rq_format_max(int format);

/* The scale of one group of n fp32 values: writes the divisor h is divided by
 * (0: all codes are 0), the fp32 scale value and the scale byte the encoding
 * stores. tensor_scale: PER_TENSOR scale / NVFP4 global. */
void rq_group_scale(const swiglu_quant_desc *d, const float *h, int64_t n, float tensor_scale,
                    float *div, float *scale_f32, uint8_t *scale_byte);

#endif
