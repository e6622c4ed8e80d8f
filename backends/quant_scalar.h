/*
 * The scalar pieces of quantization shared by every backend (C for the CPU,
 * CUDA and HIP for the GPUs): the target formats' parameters, rounding one
 * value into a format, and a group's scale and its storage. One copy, so the
 * backends cannot drift apart on what docs/numerics.md defines bit for bit.
 * (The CPU's vector encoder uses the same format table.)
 */
#ifndef SWIGLU_BACKENDS_QUANT_SCALAR_H
#define SWIGLU_BACKENDS_QUANT_SCALAR_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../core/swiglu_backend.h"

SG_HD static inline uint32_t sg_f2u(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
SG_HD static inline float sg_u2f(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* A float target format. min_normal = 2^(1 - bias); c = 2^(1 - bias - mbits
 * + 23), whose ulp is the format's subnormal spacing; fnuz: no negative zero. */
typedef struct sg_fmt {
  int mbits, bias;
  float fmax, min_normal, c;
  uint32_t nan_code, sign_shift;
  int fnuz;
} sg_fmt;

/* format: a swiglu_quant_format (MXFP8 codes are E4M3FN; INT8 has no entry). */
SG_HD static inline sg_fmt sg_fmt_of(int format) {
  sg_fmt f = {3, 7, 448.0f, 0.015625f, 16384.0f, 0x7fu, 7u, 0}; /* E4M3FN */
  if (format == SWIGLU_QUANT_FP8_E4M3FNUZ) {
    sg_fmt g = {3, 8, 240.0f, 0.0078125f, 8192.0f, 0x80u, 7u, 1};
    f = g;
  } else if (format == SWIGLU_QUANT_FP8_E5M2) {
    sg_fmt g = {2, 15, 57344.0f, 6.103515625e-05f, 128.0f, 0x7eu, 7u, 0};
    f = g;
  } else if (format == SWIGLU_QUANT_NVFP4) {
    sg_fmt g = {1, 1, 6.0f, 1.0f, 4194304.0f, 0x00u, 3u, 0}; /* E2M1: NaN encodes as 0 */
    f = g;
  }
  return f;
}

SG_HD static inline float sg_fmax_of(int format) {
  return format == SWIGLU_QUANT_INT8 ? 127.0f : sg_fmt_of(format).fmax;
}

/* Round to nearest even into the format, saturating to +-fmax (Inf too).
 * Written as selects, not early returns, so GPU compilers predicate it
 * instead of branching per element. */
SG_HD static inline uint32_t sg_encode(float x, sg_fmt f) {
  float a = fabsf(x);
  a = a > f.fmax ? f.fmax : a; /* NaN stays NaN and is replaced at the end */
  const uint32_t ab = sg_f2u(a);
  const int sh = 23 - f.mbits;
  const uint32_t normal = ((ab + ((1u << (sh - 1)) - 1u) + ((ab >> sh) & 1u)) >> sh) -
                          (uint32_t)((127 - f.bias) << f.mbits);
  const uint32_t sub = sg_f2u(a + f.c) - sg_f2u(f.c); /* a + c rounds a onto the subnormal grid */
  const uint32_t code = a >= f.min_normal ? normal : sub;
  const uint32_t sign = (f.fnuz && code == 0) ? 0u : (sg_f2u(x) >> 31) << f.sign_shift;
  return x != x ? f.nan_code : (code | sign);
}

SG_HD static inline uint32_t sg_encode_int8(float x) {
  x = x != x ? 0.0f : x > 127.0f ? 127.0f : (x < -127.0f ? -127.0f : x);
  const float r = (x + 12582912.0f) - 12582912.0f; /* round to nearest even */
  return (uint32_t)(int)r & 0xffu;
}

SG_HD static inline uint32_t sg_encode_fmt(float x, int format) {
  return format == SWIGLU_QUANT_INT8 ? sg_encode_int8(x) : sg_encode(x, sg_fmt_of(format));
}

/* The biased exponent of s rounded up to a power of two, clamped to [1, 254]. */
SG_HD static inline uint32_t sg_ue8m0_of(float s) {
  const uint32_t u = sg_f2u(s) & 0x7fffffffu;
  const uint32_t e = (u >> 23) + ((u & 0x7fffffu) != 0);
  return e < 1 ? 1 : e > 254 ? 254 : e;
}

SG_HD static inline float sg_decode_e4m3fn(uint32_t c) {
  /* the NaN code; the NVFP4 scale's encode gives it for a NaN quotient
   * (a NaN global scale, or 0 / 0), where 480 (the bits read as a finite
   * value) times the global scale happened to give NaN or 0 as well */
  if ((c & 0x7f) == 0x7f) return __builtin_nanf("");
  const uint32_t e = (c >> 3) & 15, m = c & 7;
  /* exact: (8 + m) * 2^(e - 10), or m * 2^-9 for subnormals */
  const float v = e ? (float)(8 + m) * sg_u2f((e - 10 + 127) << 23) : (float)m * 0.001953125f;
  return (c & 0x80) ? -v : v;
}

/* RN(a / b) from y = RN(1 / b) without a division: q = RN(a y) is within an
 * ulp, the residual a - q b is exact (one fma) and RN(q + r y) is the
 * correctly rounded quotient (Markstein's theorem), as long as nothing on
 * the way underflows or overflows -- the callers check their ranges. */
SG_HD static inline float sg_markstein(float a, float b, float y) {
  const float q = a * y;
  /* the residual is formed negated (q b - a) and subtracted: for a = -0
   * the last fma then adds -0 to -0 and the zero keeps its sign, where
   * fma(a - q b, y, q) gave +0 and needed a copysign (every other a gets
   * the same value either way) */
  return fmaf(-fmaf(q, b, -a), y, q);
}

/* RN(a / m) for a format maximum m (448, 240, 57344, 127). On the GPU the
 * division is sg_markstein with the constant RN(1 / m), valid for a >=
 * 2^-100; smaller a divide. The CPU divides. Same bits. */
SG_HD static inline float sg_div_by_fmax(float a, float m) {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  /* 1 / m folds to a constant where m does (the specialised kernels) */
  if (a >= 7.888609052210118e-31f && a <= 3.40282347e38f) return sg_markstein(a, m, 1.0f / m);
#endif
  return a / m;
}

/* The divisor of a group whose finite values have largest magnitude amax,
 * with the fp32 scale (*sf) and the scale byte (*sb) its encoding stores;
 * *zero when every code of the group is 0 (docs/numerics.md). format is
 * p->format, passed apart so a kernel specialised on it folds the rest.
 * sg_group_scale_amax is the scale from amax (every granularity but
 * PER_TENSOR), for kernels that handle per-group scales only. */
SG_HD static inline float sg_group_scale_amax(const sg_quant_problem *p, int format, float amax, float *sf,
                                              uint32_t *sb, int *zero) {
  *sf = 0.0f, *sb = 0u, *zero = 0;
  if (format == SWIGLU_QUANT_MXFP8) {
    if (p->flags & SWIGLU_QUANT_MX_SCALE_ROUND_UP) {
      *sb = sg_ue8m0_of(amax / 448.0f);
    } else {
      /* OCP MX: 2^(floor(log2 amax) - 8), with amax = 0 read as 2^-126 */
      const int sh = amax < 1.17549435e-38f ? -127 : (int)(sg_f2u(amax) >> 23) - 127 - 8;
      *sb = (uint32_t)((sh < -127 ? -127 : sh > 127 ? 127 : sh) + 127);
    }
    return *sb ? sg_u2f(*sb << 23) : 5.87747175e-39f; /* 2^-127 */
  }
  if (format == SWIGLU_QUANT_NVFP4) {
    const float gs = *p->tensor_scale;
    *sb = sg_encode(amax / (6.0f * gs), sg_fmt_of(SWIGLU_QUANT_FP8_E4M3FN));
    const float d = sg_decode_e4m3fn(*sb) * gs;
    *zero = d == 0.0f;
    return d;
  }
  if (amax < p->amax_floor) amax = p->amax_floor;
  const float s = sg_div_by_fmax(amax, sg_fmax_of(format));
  if (p->encoding == SWIGLU_SCALE_FP32) return *sf = s;
  *sb = sg_ue8m0_of(s);
  return *sf = sg_u2f(*sb << 23);
}
SG_HD static inline float sg_group_scale(const sg_quant_problem *p, int format, float amax, float *sf,
                                         uint32_t *sb, int *zero) {
  if (p->granularity == SWIGLU_SCALE_PER_TENSOR) {
    *sf = 0.0f, *sb = 0u, *zero = 0;
    return *p->tensor_scale;
  }
  return sg_group_scale_amax(p, format, amax, sf, sb, zero);
}

/* Whether the encoding stores the scale as a float (else as a byte). */
SG_HD static inline int sg_scale_is_fp32(const sg_quant_problem *p) {
  return p->encoding == SWIGLU_SCALE_FP32 || p->encoding == SWIGLU_SCALE_FP32_UE8M0;
}

/* Stores group g's scale of row m of expert e in the problem's encoding. */
SG_HD static inline void sg_write_scale(const sg_quant_problem *p, int64_t e, int64_t m, int64_t g,
                                        float f, uint32_t b) {
  if (p->encoding == SWIGLU_SCALE_UE8M0_PACKED) {
    p->scales[sg_scale_index(p, e, m, g / 4) * 4 + g % 4] = (char)b;
  } else if (sg_scale_is_fp32(p)) {
    memcpy(p->scales + sg_scale_index(p, e, m, g) * 4, &f, 4);
  } else {
    p->scales[sg_scale_index(p, e, m, g)] = (char)b;
  }
}

/* The unused bytes of a row's last packed word are padding: zero. */
SG_HD static inline void sg_pad_packed(const sg_quant_problem *p, int64_t e, int64_t m) {
  if (p->encoding == SWIGLU_SCALE_UE8M0_PACKED)
    for (int64_t g = p->groups; g < 4 * p->scale_cols; ++g) sg_write_scale(p, e, m, g, 0.0f, 0u);
}

#endif
