/*
 * The GLU math on the GPU: the same operations, in the same order, as the
 * CPU kernels (backends/cpu/cpu_kernels_impl.h), one lane at a time, so both
 * backends produce the same bits (the module is built with -fmad=false; every
 * fused multiply-add here is an explicit fmaf, as on the CPU). docs/numerics.md
 * defines the results; the comments of the CPU file say why each step is
 * shaped as it is.
 */
#ifndef SWIGLU_GPU_GLU_MATH_CUH
#define SWIGLU_GPU_GLU_MATH_CUH

#include <stdint.h>

#define SG_DI __device__ __forceinline__

SG_DI float sg_signbit_f(float x) { return __int_as_float(__float_as_int(x) & (int)0x80000000u); }

SG_DI float sg_exp_reduce(float a, float arg, int *n) {
  const float shifter = 12582912.0f;
  float t = fmaf(arg, 1.44269504088896341f, shifter);
  float k = t - shifter;
  *n = __float_as_int(t) - __float_as_int(shifter);
  float r = fmaf(k, -0.693145751953125f, a);
  return fmaf(k, -1.428606765330187e-06f, r);
}
SG_DI float sg_exp_poly(float r) {
  float q = 0.001381457899697125f;
  q = fmaf(q, r, 0.008368730545043945f);
  q = fmaf(q, r, 0.04166838899254799f);
  q = fmaf(q, r, 0.1666652113199234f);
  q = fmaf(q, r, 0.4999999403953552f);
  q = fmaf(q, r * r, r);
  return q + 1.0f;
}
SG_DI float sg_exp_parts(float a, float b, int *n) { return sg_exp_poly(sg_exp_reduce(a, a + b, n) + b); }
SG_DI float sg_exp_parts1(float a, int *n) { return sg_exp_poly(sg_exp_reduce(a, a, n)); }
SG_DI void sg_pow2_split(int n, float *s1, float *s2) {
  int n1 = n >> 1, n2 = n - n1;
  *s1 = __int_as_float((n1 + 127) << 23);
  *s2 = __int_as_float((n2 + 127) << 23);
}

struct sg_logistic {
  float sig, sigc, xs;
  bool far;
};

__device__ __noinline__ sg_logistic sg_logistic_wide(float x, float za, float zb) {
  bool neg = za < 0.0f;
  float a = neg ? za : -za, b = neg ? zb : -zb;
  bool far = a < -150.0f;
  if (far) a = -150.0f, b = 0.0f;
  int n;
  float p = sg_exp_parts(a, b, &n);
  float s1, s2;
  sg_pow2_split(n, &s1, &s2);
  float e = far ? 0.0f : p * s1 * s2;
  float den = 1.0f + e;
  float inv = 1.0f / den;
  float small = e * inv;
  sg_logistic o;
  o.sig = neg ? small : inv;
  o.sigc = neg ? inv : small;
  float pos = x / den;
  float negv = ((x / den) * p) * s1 * s2;
  o.xs = neg ? negv : pos;
  if (far && neg) o.xs = sg_signbit_f(x);
  o.far = far;
  return o;
}

SG_DI sg_logistic sg_logistic_fast(float x, float za, float zb, bool want_grad) {
  float z = za > 87.0f ? 87.0f : za; /* comparisons, so NaN passes as on the CPU */
  z = z < -87.0f ? -87.0f : z;
#ifdef SG_GPU_EXPERIMENT_FAST_MATH
  float e = __expf(-z);
  float den = 1.0f + e;
  sg_logistic o;
  o.xs = __fdividef(x, den);
#else
  int n;
  float p = sg_exp_parts1(-z, &n);
  float e = p * __int_as_float((n + 127) << 23);
  float den = 1.0f + e;
  sg_logistic o;
  o.xs = x / den;
#endif
  o.sig = o.sigc = 0.0f;
  if (want_grad) {
    o.sig = 1.0f / den;
    o.sigc = e * o.sig;
  }
  o.far = za > 150.0f;
  if (za < -87.0f) {
    sg_logistic w = sg_logistic_wide(x, za, zb);
    o.xs = w.xs;
    if (want_grad) o.sig = w.sig, o.sigc = w.sigc;
    o.far = o.far || w.far;
  }
  return o;
}

/* RN(1/d) for 2^-126 <= d < 2^126 (exponent field 1 to 252). On CUDA: the
 * hardware seed and one Newton step, the sequence the IEEE reciprocal runs
 * itself for exactly that range (its range test and call are what this
 * saves; test_gpu_math compares the results on every input of
 * sg_logistic_try). On HIP the IEEE division: a one-step refinement of
 * v_rcp_f32 has no such proof here, and no AMD GPU to check one on. */
SG_DI float sg_rcp_rn(float d) {
#if defined(SWIGLU_HIP)
  return 1.0f / d;
#else
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(d));
  return fmaf(r, fmaf(-d, r, 1.0f), r);
#endif
}

/* sg_logistic_fast(x, z, 0, want_grad) with no branch: the same bits
 * whenever *slow is left alone (far is then false). The divisions are the
 * sequences the IEEE division and reciprocal themselves run on their fast
 * paths (seed, one Newton step: RN(1/den); then quotient, exact residual,
 * one correction: RN(x/den)), which are correctly rounded while
 * 1 <= den < 2^126 and the quotient stays far from underflow. The rest -- z
 * outside [-87, 87] or NaN, |x/den| < 2^-100 -- raises *slow and the caller
 * recomputes with sg_logistic_fast. An infinite x always comes with an
 * infinite or NaN z for the activations here, so it takes the slow path
 * too. z is not clamped: outside [-87, 87] the values are garbage (never a
 * trap) that the caller discards, and one compare replaces the clamp's two
 * min/max and its own test (25 instructions per element instead of 27 in
 * the fp32-h quantizer). test_gpu_math compares it with sg_logistic_fast on
 * every fp32 input. */
SG_DI sg_logistic sg_logistic_try(float x, float z, bool want_grad, bool &slow) {
  int n;
  const float p = sg_exp_parts1(-z, &n);
  const float e = p * __int_as_float((n + 127) << 23);
  const float den = 1.0f + e;
  const float r1 = sg_rcp_rn(den);
  const float q0 = x * r1;
  sg_logistic o;
  o.xs = fmaf(r1, fmaf(-den, q0, x), q0);
  o.sig = want_grad ? r1 : 0.0f;
  o.sigc = want_grad ? e * r1 : 0.0f;
  o.far = false;
  /* bitwise, not ||: a short circuit makes the compiler keep a byte and branch */
  slow = slow | !(fabsf(z) <= 87.0f) | !(fabsf(q0) >= 7.888609052210118e-31f); /* 2^-100 */
  return o;
}

/* x / (1 + exp(-zc)) for zc in [-87, 87] (or NaN): __fdividef(x, 1 +
 * __expf(-zc)), bit for bit. On CUDA the two special-function instructions
 * are the flushing forms: -zc log2(e) stays within [-126, 126] and 1 + e
 * within [1, 2^126], where flushing changes nothing, and the non-flushing
 * forms cost a range test and two conditional scalings each (about 13
 * instructions per element instead of 7, in the 16-bit forward and the
 * ROUND_H quantizer). The product stays an IEEE multiply: a subnormal h is
 * a bf16 value too. */
SG_DI float sg_xsig_16bit_core(float x, float zc) {
#if defined(SWIGLU_HIP)
  return __fdividef(x, 1.0f + __expf(-zc));
#else
  float e, r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(e) : "f"(zc * -1.44269504f));
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(1.0f + e));
  return x * r;
#endif
}

/* x * sigmoid(z) for a 16-bit result (sg_xsig_16bit) with no branch: z
 * outside [-87, 87] (or NaN) raises *slow instead -- z > 87 too, which
 * sg_xsig_16bit clamps: a gate that large is rare, and the clamp cost an
 * instruction per element on the common path. */
SG_DI float sg_xsig_16bit_try(float x, float z, bool &slow) {
  slow = slow | !(fabsf(z) <= 87.0f);
  return sg_xsig_16bit_core(x, z);
}

SG_DI void sg_normal_cdf_pdf(float x, float *cdf, float *pdf) {
  float s = fabsf(x);
  float s_cl = s > 14.5f ? 14.5f : s;
  float x2 = s_cl * s_cl;
  float x2lo = fmaf(s_cl, s_cl, -x2);
  int n;
  float p = sg_exp_parts(-0.5f * x2, -0.5f * x2lo, &n);
  float s1, s2;
  sg_pow2_split(n, &s1, &s2);
  float t = 1.0f / fmaf(s_cl, 0.5f, 1.0f);
  float f = -0.078136705f;
  f = fmaf(f, t, 0.37493303f);
  f = fmaf(f, t, -0.62278f);
  f = fmaf(f, t, 0.17559499f);
  f = fmaf(f, t, 0.7126264f);
  f = fmaf(f, t, -0.82151365f);
  f = fmaf(f, t, 0.11022538f);
  f = fmaf(f, t, 0.044899095f);
  f = fmaf(f, t, 0.30682877f);
  f = fmaf(f, t, 0.39836183f);
  f = fmaf(f, t, 0.39896083f);
  f = (f * t) * 0.5f;
  float tail = (f * p) * s1 * s2;
  bool far = s > 14.5f;
  if (far) tail = 0.0f;
  *cdf = x < 0.0f ? tail : 1.0f - tail;
  float dens = (p * 0.398942280401432678f) * s1 * s2;
  *pdf = far ? 0.0f : dens;
  if (x != x) *cdf = x, *pdf = x;
}

struct sg_act {
  float a, m, da, dm;
};

/* x * sigmoid(z) for values that will be rounded to bf16 or fp16: the
 * hardware exp (__expf) and a fast division (relative error below 2^-16 for z >= -87,
 * far inside half an ulp of either 16-bit format), the exact-tail path below.
 * Only the forward op with a 16-bit output (and the quantizing op's ROUND_H)
 * uses it, so fp32 results stay the CPU's, bit for bit. */
SG_DI float sg_xsig_16bit(float x, float z) {
  if (z < -87.0f) return sg_logistic_wide(x, z, 0.0f).xs;
  float zc = z > 87.0f ? 87.0f : z;
  return sg_xsig_16bit_core(x, zc);
}

/* act(gate), its multiplier and their derivatives. With TRY the logistic
 * and the 16-bit product take their branch-free forms (sg_logistic_try,
 * sg_xsig_16bit_try) and GELU erf, which has none, raises *slow; the
 * results are sg_activation's wherever *slow stays false, and a caller
 * that sees it raised recomputes its elements with sg_activation. */
template <bool TRY>
SG_DI sg_act sg_activation_t(int act, float alpha, float limit, float gate, float up, bool want_grad, bool out16,
                             bool &slow) {
  sg_act o;
  o.m = up;
  o.dm = 1.0f;
  o.da = 0.0f;
  switch (act) {
    case 0:
    default: {
      if (out16 && !want_grad) {
        o.a = (TRY ? sg_xsig_16bit_try(gate, gate, slow) : sg_xsig_16bit(gate, gate));
        break;
      }
      const sg_logistic l = TRY ? sg_logistic_try(gate, gate, want_grad, slow)
                                  : sg_logistic_fast(gate, gate, 0.0f, want_grad);
      o.a = l.xs;
      if (want_grad) o.da = l.far ? l.sig : fmaf(l.xs, l.sigc, l.sig);
      break;
    }
    case 1: {
      float x2 = gate * gate;
      float inner = fmaf(0.044715f * x2, gate, gate);
      float z = inner * 1.5957691216057308f;
      if (out16 && !want_grad) {
        o.a = (TRY ? sg_xsig_16bit_try(gate, z, slow) : sg_xsig_16bit(gate, z));
        break;
      }
      const sg_logistic l = TRY ? sg_logistic_try(gate, z, want_grad, slow) : sg_logistic_fast(gate, z, 0.0f, want_grad);
      o.a = l.xs;
      if (want_grad) {
        float dz = fmaf(x2, 3.0f * 0.044715f * 1.5957691216057308f, 1.5957691216057308f);
        o.da = l.far ? l.sig : fmaf(l.xs * l.sigc, dz, l.sig);
      }
      break;
    }
    case 2: {
      if (TRY) {
        slow = true;
        break;
      }
      float cdf, pdf;
      sg_normal_cdf_pdf(gate, &cdf, &pdf);
      o.a = gate * cdf;
      if (cdf == 0.0f) o.a = sg_signbit_f(gate);
      if (want_grad) o.da = pdf == 0.0f ? cdf : fmaf(gate, pdf, cdf);
      break;
    }
    case 3: {
      bool pos = gate > 0.0f, nan = gate != gate;
      o.a = (pos || nan) ? gate : 0.0f;
      if (want_grad) o.da = nan ? gate : (pos ? 1.0f : 0.0f);
      break;
    }
    case 4:
    case 5: {
      float g = gate > limit ? limit : gate;
      float u = up > limit ? limit : up;
      u = u < -limit ? -limit : u;
      float al = act == 4 ? alpha : 1.0f;
      o.m = act == 4 ? u + 1.0f : u;
      if (out16 && !want_grad) {
        o.a = (TRY ? sg_xsig_16bit_try(g, g * al, slow) : sg_xsig_16bit(g, g * al));
        break;
      }
      const sg_logistic l = TRY ? sg_logistic_try(g, g * al, want_grad, slow)
                                  : sg_logistic_fast(g, g * al, 0.0f, want_grad);
      o.a = l.xs;
      if (want_grad) {
        float da = l.far ? l.sig : fmaf(l.xs * al, l.sigc, l.sig);
        o.da = gate > limit ? 0.0f : da;
        o.dm = (up > limit || up < -limit) ? 0.0f : 1.0f;
        if (up != up) o.dm = up;
      }
      break;
    }
  }
  return o;
}

SG_DI sg_act sg_activation(int act, float alpha, float limit, float gate, float up, bool want_grad,
                           bool out16 = false) {
  bool unused = false;
  return sg_activation_t<false>(act, alpha, limit, gate, up, want_grad, out16, unused);
}

/* act(gate) * up as sg_activation's fp32 forward result (a.a * a.m), with
 * no branch: *slow raised where the caller must take sg_activation (always
 * for GELU erf). ACT = -1 reads the activation at run time. */
template <int ACT>
SG_DI float sg_glu_try(int act, float alpha, float limit, float gate, float up, bool &slow) {
  const sg_act a = sg_activation_t<true>(ACT >= 0 ? ACT : act, alpha, limit, gate, up, false, false, slow);
  return a.a * a.m;
}

/* ------------------------------------------------------------- conversions */

SG_DI float sg_bf16_to_f32(uint16_t h) { return __int_as_float((int)((uint32_t)h << 16)); }
SG_DI uint16_t sg_f32_to_bf16(float v) {
#if SG_HW_BF16_ROUNDING
  /* one cvt.rn.bf16.f32: the same rounding as the CPU (NaN payloads aside);
   * the integer form below costs six instructions per element, which the
   * forward op cannot afford at HBM3e speed (0.71 -> 0.77 of the copy) */
  return __bfloat16_as_ushort(__float2bfloat16_rn(v));
#else
  uint32_t u = (uint32_t)__float_as_int(v);
  if (v != v) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
}

/* Two fp32 values rounded to bf16 and widened back (lo, hi), as
 * sg_f32_to_bf16 rounds them: one cvt.rn.bf16x2 where the hardware has it
 * instead of two conversions on the quarter-rate pipe. */
SG_DI void sg_round_bf16x2(float &lo, float &hi) {
#if SG_HW_BF16_ROUNDING
  uint32_t b;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(b) : "f"(hi), "f"(lo));
  lo = __uint_as_float(b << 16);
  hi = __uint_as_float(b & 0xffff0000u);
#else
  lo = sg_bf16_to_f32(sg_f32_to_bf16(lo));
  hi = sg_bf16_to_f32(sg_f32_to_bf16(hi));
#endif
}

/* ------------------------------------------------------------ quantization */

/* Formats, encoders and group scales: backends/quant_scalar.h, shared with
 * the CPU. */
#include "../quant_scalar.h"

/* The FP8 E4M3FN codes of two values (lo in the low byte): one
 * cvt.rn.satfinite on sm_89 and later -- round to nearest even, +-448 for
 * values beyond it and for infinities -- which test_gpu_math checks against
 * sg_encode on every fp32 input. */
#if !defined(SWIGLU_HIP) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
#define SG_HW_E4M3 1
#else
#define SG_HW_E4M3 0
#endif
SG_DI uint32_t sg_e4m3x2(float lo, float hi) {
#if SG_HW_E4M3
  uint16_t r;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(hi), "f"(lo));
  return r;
#else
  const sg_fmt f = sg_fmt_of(SWIGLU_QUANT_FP8_E4M3FN);
  return sg_encode(lo, f) | (sg_encode(hi, f) << 8);
#endif
}

/* h / s for a whole group, correctly rounded without a division per element:
 * with y = RN(1/s) and q = RN(h * y), the residual r = h - q * s is exact (one
 * fma) and RN(q + r * y) = RN(h / s) (Markstein's theorem) as long as the
 * residual does not underflow. It is a multiple of ulp(q) ulp(s), so for
 * every quotient whose code can be nonzero in any format (|q| >= 2^-17, half
 * of E5M2's smallest subnormal: ulp(q) >= 2^-40) s >= 2^-86 (ulp(s) >=
 * 2^-109) keeps it a multiple of 2^-149; smaller quotients encode to zero
 * either way. (The bound was 2^-90: over every fp32 h, s = 1.1 * 2^-90
 * gives wrong quotients up to 2^-14.7, where E5M2 codes are nonzero; from
 * 2^-86 none reaches 2^-17, which test_gpu_math checks.) Other divisors
 * divide. The CPU kernels do the same. */
struct sg_divider {
  float s, y;
  bool fast;
};
SG_DI sg_divider sg_divider_of(float s) {
  sg_divider d;
  d.s = s;
  /* 2^-86 <= s <= 2^126 (false for NaN): above, y would be subnormal or 0,
   * and the correction wrong (Inf / Inf made NaN of every code). Scales
   * from a maximum stay below 2^122; a static scale is the caller's. */
  d.fast = s >= 1.2924697071141057e-26f && s <= 8.507059173023462e37f;
  if (d.fast && s <= 1.329227995784916e36f) {
    /* 2^-86 <= s <= 2^120: sg_rcp_rn, without the IEEE reciprocal's own
     * range test and slow-path call (~10 instructions per group, which the
     * quantizer's 16-element lanes pay once per row) */
    d.y = sg_rcp_rn(s);
  } else {
    d.y = 1.0f / s;
  }
  return d;
}
SG_DI float sg_divide(float h, sg_divider d) {
  if (!d.fast) return h / d.s;
  const float q = h * d.y;
  /* Inf and NaN pass through (the correction would make Inf a NaN) */
  if (!(fabsf(q) <= 3.40282347e38f)) return q;
  return sg_markstein(h, d.s, d.y);
}

#endif
