/*
 * The CPU GLU kernels, written once over GCC/Clang vector extensions and
 * compiled once per ISA (cpu_kernels_avx512.c, cpu_kernels_avx2.c,
 * cpu_kernels_generic.c). The including file defines:
 *   SG_W            lanes per vector (16, 8, 4)
 *   SG_NAME(x)      x with the ISA suffix appended
 *   sg_v_fma(a,b,c) fused a*b+c
 *   sg_load_f16 / sg_store_f16: fp16 <-> fp32 conversion of one vector
 *   sg_v_hmax(v)    the largest lane of a vector of lanes >= 0 (no NaN)
 *   sg_v_any(m)     any lane of a mask set
 *   sg_v_any_subnormal(x): any lane of x subnormal (the AVX-512 builds only,
 *                   for the native bf16 rounding)
 * and may define (else the portable forms below, over v_sel and sg_v_any):
 *   sg_v_any_lt(x, c), sg_v_any_gt(x, c): any lane x < c / x > c
 *   sg_v_umax(a, b): lane-wise maximum of two vu (lanes below 2^31)
 *   sg_v_blend_gt/ge/lt/eq(x, c, a, b), sg_v_blend_nan(x, a, b): per lane,
 *                   x > c (>= c, < c, == c, NaN) ? a : b (vf a, b)
 *
 * Every lane goes through the same operations in every ISA, and tails are
 * run through the same vector code on a padded copy, so the three builds give
 * bit-identical results: the oracle's answer does not depend on the machine.
 * The formulas are those of docs/numerics.md; the comments here say how each
 * avoids cancellation and overflow.
 */
#include <stdint.h>
#include <string.h>

#include "cpu_kernels.h"
#include "../quant_scalar.h"


typedef float vf __attribute__((vector_size(SG_W * 4), aligned(4)));
typedef int32_t vi __attribute__((vector_size(SG_W * 4), aligned(4)));
typedef uint32_t vu __attribute__((vector_size(SG_W * 4), aligned(4)));
typedef uint16_t vh __attribute__((vector_size(SG_W * 2), aligned(2)));
typedef uint16_t vh2 __attribute__((vector_size(SG_W * 4), aligned(2)));

#define SG_CHUNK SG_CPU_CHUNK /* columns per work item; a multiple of every SG_W */

/* -0 + x is x for every x, -0 included ((vf){0} + x made v_set(-0) a +0:
 * a static scale or row weight of -0 lost its sign); compilers fold it to
 * a broadcast */
static inline vf v_set(float x) { return (vf)((vi){0} + (int32_t)0x80000000u) + x; }
static inline vi vi_set(int32_t x) { return (vi){0} + x; }
static inline vf v_sel(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }
/* Compare-and-select, portable forms: the AVX-512 build defines its own
 * (a compare into a mask register and one blend). */
#ifndef sg_v_any_lt2
#define sg_v_any_lt2(x, y, c) sg_v_any(((x) < (c)) | ((y) < (c)))
#endif
#ifndef sg_v_umax
/* lanes below 2^31 here, so the signed compare orders them */
#define sg_v_umax(a, b) ((vu)v_sel((vi)(a) > (vi)(b), (vf)(a), (vf)(b)))
#endif
#ifndef sg_v_blend_gt
#define sg_v_any_lt(x, c) sg_v_any((x) < (c))
#define sg_v_any_gt(x, c) sg_v_any((x) > (c))
#define sg_v_blend_gt(x, c, a, b) v_sel((x) > (c), (a), (b))
#define sg_v_blend_ge(x, c, a, b) v_sel((x) >= (c), (a), (b))
#define sg_v_blend_lt(x, c, a, b) v_sel((x) < (c), (a), (b))
#define sg_v_blend_eq(x, c, a, b) v_sel((x) == (c), (a), (b))
#define sg_v_blend_nan(x, a, b) v_sel((x) != (x), (a), (b))
#endif
static inline vf v_abs(vf x) { return (vf)((vi)x & vi_set(0x7fffffff)); }
static inline vf v_signbit(vf x) { return (vf)((vi)x & vi_set((int32_t)0x80000000u)); }
/* NaN-preserving clamps: a NaN compares false and passes through unchanged. */
static inline vf v_min_keepnan(vf x, vf hi) { return v_sel(x > hi, hi, x); }
static inline vf v_max_keepnan(vf x, vf lo) { return v_sel(x < lo, lo, x); }

/* ------------------------------------------------------------ conversions */

/* Unaligned, aliasing-safe vector accesses through a may_alias type of
 * alignment 1 (the form the compilers' own intrinsic headers use for
 * _mm256_loadu_ps). Through memcpy, GCC 12's generic tuning copied a
 * 256-bit vector in two 128-bit pieces into a stack slot and reloaded it
 * whole, a store-forwarding stall per load: the AVX2 GEMM's B vectors
 * took that route, its accumulators were spilled around it each K step,
 * and the GLU linear ran at 0.29 of the FMA peak on a Zen 1 EPYC. */
typedef float vf_mem __attribute__((vector_size(SG_W * 4), aligned(1), may_alias));
static inline vf v_load_f32(const void *p) { return *(const vf_mem *)p; }
static inline void v_store_f32(void *p, vf v) { *(vf_mem *)p = v; }

#ifdef sg_load_bf16
static inline vf v_load_bf16(const void *p) { return (vf)sg_load_bf16(p); }
#else
static inline vf v_load_bf16(const void *p) { return (vf)(sg_widen_u16(p) << 16); }
#endif
/* bf16 bits of each lane, in the low half: rounded to nearest even; NaN
 * stays NaN (quiet bit set). v_bf16_rne: the rounding alone, right for
 * every value but NaN. */
static inline __attribute__((always_inline)) vu v_bf16_rne(vf v) {
  const vu u = (vu)v;
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}
static inline __attribute__((always_inline)) vu v_bf16_bits(vf v) {
  vu r = v_bf16_rne(v);
  vu q = ((vu)v >> 16) | 0x40u;
  vi nan = v != v;
  return (vu)(((vi)q & nan) | ((vi)r & ~nan));
}
/* v_bf16_bits narrowed to 16 bits a lane. Out of line only
 * where it is the rare path beside the native instruction: without one
 * (AVX2, generic) it is every bf16 store, and a call per vector there
 * spilled the loops' constants around it. */
#ifdef SG_BF16_NATIVE
static __attribute__((noinline)) vh v_to_bf16_int(vf v) {
#else
static inline __attribute__((always_inline)) vh v_to_bf16_int(vf v) {
#endif
  return sg_narrow_u16(v_bf16_bits(v));
}
/* Inlined by force: GCC kept this as a call in the backward loops (three
 * stores a vector), which cost as much as the rest of the loop. */
static inline __attribute__((always_inline)) vh v_to_bf16(vf v) {
#ifdef SG_BF16_NATIVE
  /* The instruction rounds and quiets NaN exactly as the integer form but
   * reads fp32 subnormals as zero: vectors holding one (|v| bits in
   * [1, 2^23 - 1]) take the integer form. */
  if (__builtin_expect(!sg_v_any_subnormal(v), 1)) return SG_BF16_NATIVE(v);
#endif
  return v_to_bf16_int(v);
}
typedef uint16_t vh_mem __attribute__((vector_size(SG_W * 2), aligned(1), may_alias));
static inline __attribute__((always_inline)) void v_store_bf16(void *p, vf v) { *(vh_mem *)p = v_to_bf16(v); }

static inline __attribute__((always_inline)) vf v_load(const char *p, int32_t dt) {
  if (dt == SG_BF16) return v_load_bf16(p);
  if (dt == SG_F16) return sg_load_f16(p);
  return v_load_f32(p);
}
static inline __attribute__((always_inline)) void v_store(char *p, int32_t dt, vf v) {
  if (dt == SG_BF16)
    v_store_bf16(p, v);
  else if (dt == SG_F16)
    sg_store_f16(p, v);
  else
    v_store_f32(p, v);
}

/* ------------------------------------------------------------------ math */

/* exp(a + b) for |a + b| <= 170, as p * 2^n with p in about [0.7, 1.42];
 * b is a small correction term (the low half of an argument that was
 * computed exactly as a + b). Cody-Waite reduction with a two-part ln 2 keeps
 * r accurate to an ulp; p = 1 + r + r^2 Q(r) with Q the degree-4 polynomial
 * fitted for minimal relative error on |r| <= ln(2)/2 (3.1e-9; 6.3e-8 when
 * evaluated in fp32), the 1 added last so it is rounded once. */
static inline vf v_exp_reduce(vf a, vf arg, vi *n) {
  const vf shifter = v_set(12582912.0f); /* 1.5 * 2^23: rounds to an integer */
  vf t = sg_v_fma(arg, v_set(1.44269504088896341f), shifter);
  vf k = t - shifter;
  *n = (vi)t - (vi)shifter;
  vf r = sg_v_fma(k, v_set(-0.693145751953125f), a);
  return sg_v_fma(k, v_set(-1.428606765330187e-06f), r);
}
static inline vf v_exp_poly(vf r) {
  vf q = v_set(0.001381457899697125f);
  q = sg_v_fma(q, r, v_set(0.008368730545043945f));
  q = sg_v_fma(q, r, v_set(0.04166838899254799f));
  q = sg_v_fma(q, r, v_set(0.1666652113199234f));
  q = sg_v_fma(q, r, v_set(0.4999999403953552f));
  q = sg_v_fma(q, r * r, r);
  return q + 1.0f;
}
static inline vf v_exp_parts(vf a, vf b, vi *n) { return v_exp_poly(v_exp_reduce(a, a + b, n) + b); }

/* exp(-z) for |z| <= 87 as p * scale: the very bits of
 * v_exp_poly(v_exp_reduce(-z, -z, &n)) * 2^n, two operations cheaper.
 *  - No negation of z: every step is carried out on the negated operand,
 *    with the signs moved into constants and into fused subtractions
 *    (RN(-v) = -RN(v), so each intermediate is the original's or exactly its
 *    negative: s below is -r, b3 = -q3, b1 = -q1).
 *  - The shifter carries the exponent bias: with 1.5 * 2^23 + 127, t's low
 *    bits are 127 + k, and t << 23 is the scale 2^k itself (127 + k lies in
 *    [1, 253] for |z| <= 87). The rounding to the integer k is the same as
 *    with 1.5 * 2^23: adding 127 moves the grid by whole units, and
 *    z * log2(e) is never a half-integer for |z| <= 87 (log2(e)'s fp32
 *    significand is odd), so no tie can go the other way. */
static inline __attribute__((always_inline)) vf v_exp_negz(vf z, vf *scale) {
  const vf shifter = v_set(12583039.0f); /* 1.5 * 2^23 + 127 */
  const vf t = sg_v_fma(z, v_set(-1.44269504088896341f), shifter);
  const vf k = t - shifter;
  *scale = (vf)((vu)t << 23);
  vf s = sg_v_fma(k, v_set(0.693145751953125f), z);
  s = sg_v_fma(k, v_set(1.428606765330187e-06f), s);
  const vf q4 = v_set(0.001381457899697125f);
  const vf b3 = sg_v_fma(q4, s, v_set(-0.008368730545043945f));
  const vf q2 = sg_v_fma(b3, s, v_set(0.04166838899254799f));
  const vf b1 = sg_v_fma(q2, s, v_set(-0.1666652113199234f));
  const vf q0 = sg_v_fma(b1, s, v_set(0.4999999403953552f));
  return sg_v_fma(q0, s * s, -s) + 1.0f;
}

/* 2^n for n in [-250, 0] as two normal factors, so that x * s1 * s2 rounds
 * once even when the result is subnormal. */
static inline void v_pow2_split(vi n, vf *s1, vf *s2) {
  vi n1 = n >> 1;
  vi n2 = n - n1;
  *s1 = (vf)((n1 + 127) << 23);
  *s2 = (vf)((n2 + 127) << 23);
}

/* Logistic pieces of the argument z = za + zb (zb a tiny correction):
 * sig = sigmoid(z), sigc = 1 - sigmoid(z), both without cancellation, and
 * xs = x * sigmoid(z) accurate down into the subnormal range. */
typedef struct {
  vf sig, sigc, xs;
} sg_logistic;

/* x where |z| > 150, else y: there exp(-|z|) and every product with it
 * round to 0 in fp32, and the derivatives take their limits (a compare into
 * a mask and a blend; a vector mask carried in sg_logistic cost two more
 * operations a vector in the backward loops). */
#define v_far_sel(za, x, y) sg_v_blend_gt(v_abs(za), v_set(150.0f), (x), (y))

/* The general evaluation, valid for every z: exp(-|z|) as p * 2^n with the
 * scale applied in two normal halves, so results deep in the subnormal range
 * are rounded once. Used for the lanes with z < -87. */
static __attribute__((noinline)) sg_logistic v_logistic_wide(vf x, vf za, vf zb) {
  vi neg = za < 0.0f;
  vf a = v_sel(neg, za, -za); /* a + b = -|z| */
  vf b = v_sel(neg, zb, -zb);
  vi far = a < -150.0f;
  a = v_sel(far, v_set(-150.0f), a);
  b = v_sel(far, v_set(0.0f), b);
  vi n;
  vf p = v_exp_parts(a, b, &n);
  vf s1, s2;
  v_pow2_split(n, &s1, &s2);
  vf e = v_sel(far, v_set(0.0f), p * s1 * s2); /* exp(-|z|) */
  vf den = 1.0f + e;
  vf inv = 1.0f / den;
  vf small = e * inv; /* exp(-|z|) / (1 + exp(-|z|)) */
  sg_logistic o;
  o.sig = v_sel(neg, small, inv);
  o.sigc = v_sel(neg, inv, small);
  /* z >= 0: x / den in one rounding. z < 0: x / den * p, scaled by 2^n
   * last so that results in the subnormal range are rounded once; x / den
   * first so that x near FLT_MAX cannot overflow on the way. */
  vf pos = x / den;
  vf negv = ((x / den) * p) * s1 * s2;
  vf xs = v_sel(neg, negv, pos);
  o.xs = v_sel(far & neg, v_signbit(x), xs); /* x * 0, without inf * 0 = NaN */
  return o;
}

/* exp(-z) for |z| <= 87 as p * scale, for the 16-bit outputs of the
 * logistic activations only (docs/numerics.md): those need x / (1 + e) to
 * about 2^-14, not to the fp32 ulp, and take a reciprocal good to 2^-14
 * (sg_v_rcp16) instead of the division. So one ln 2 constant (|k| <= 126:
 * 2^-22) and a degree-4 polynomial with p(0) = 1 (2^-18.4 in fp32,
 * tools/fit_exp16.py): five operations fewer than v_exp_negz, which with
 * the reciprocal took the bf16 forward from ~1.1 to ~1.25 of the copy on
 * the Sapphire Rapids VM (bench/NOTES.md, sixteenth session). The same
 * operations on every ISA, so only the reciprocal differs between builds. */
static inline __attribute__((always_inline)) vf v_exp_negz16(vf z, vf *scale) {
  const vf shifter = v_set(12583039.0f); /* as in v_exp_negz */
  const vf t = sg_v_fma(z, v_set(-1.44269504088896341f), shifter);
  const vf k = t - shifter;
  *scale = (vf)((vu)t << 23);
  const vf s = sg_v_fma(k, v_set(0.693147182f), z); /* -r */
  vf q = sg_v_fma(v_set(0.0415135175f), s, v_set(-0.167877108f));
  q = sg_v_fma(q, s, v_set(0.500030279f));
  q = sg_v_fma(q, s, v_set(-0.999966681f));
  return sg_v_fma(q, s, v_set(1.0f));
}

/* Phi(x) = P(X <= x) for standard normal X, and the density phi(x), through
 * erfc(s / sqrt 2) = exp(-s^2 / 2) F(s) for s = |x| with F(s) = t P(t),
 * t = 1 / (1 + s/2): no cancellation for negative x. The polynomial was
 * fitted by tools/fit_gelu_erfc.py (relative error 2.3e-7 in fp32). */
static inline __attribute__((always_inline)) void v_normal_cdf_pdf(vf x, vf *cdf, vf *pdf) {
  vf s = v_abs(x);
  /* min(s, 14.5), NaN -> 14.5: NaN lanes are replaced at the end anyway */
  vf s_cl = sg_v_min(s, v_set(14.5f));
  vf x2 = s_cl * s_cl;
  vf x2lo = sg_v_fma(s_cl, s_cl, -x2); /* x^2 = x2 + x2lo exactly */
  vi n;
  vf p = v_exp_parts(-0.5f * x2, -0.5f * x2lo, &n);
  vf t = 1.0f / sg_v_fma(s_cl, v_set(0.5f), v_set(1.0f));
  vf f = v_set(-0.078136705f);
  f = sg_v_fma(f, t, v_set(0.37493303f));
  f = sg_v_fma(f, t, v_set(-0.62278f));
  f = sg_v_fma(f, t, v_set(0.17559499f));
  f = sg_v_fma(f, t, v_set(0.7126264f));
  f = sg_v_fma(f, t, v_set(-0.82151365f));
  f = sg_v_fma(f, t, v_set(0.11022538f));
  f = sg_v_fma(f, t, v_set(0.044899095f));
  f = sg_v_fma(f, t, v_set(0.30682877f));
  f = sg_v_fma(f, t, v_set(0.39836183f));
  f = sg_v_fma(f, t, v_set(0.39896083f));
  f = (f * t) * 0.5f; /* F(s) / 2 */
  /* P(X > s) = 0.5 erfc(s / sqrt 2) = exp(-s^2/2) F(s) / 2, and the
   * density, each times 2^n: for s <= 13, n >= -122 and 2^n is one normal
   * factor, which rounds a subnormal product once just as the two halves
   * do (the first half's product is exact); beyond, the two halves */
  const vf fp = f * p, pc = p * 0.398942280401432678f;
  vf tail, dens;
  if (__builtin_expect(!sg_v_any_gt(s_cl, 13.0f), 1)) {
    const vf sc = (vf)((n + 127) << 23);
    tail = fp * sc;
    dens = pc * sc;
  } else {
    vf s1, s2;
    v_pow2_split(n, &s1, &s2);
    tail = fp * s1 * s2;
    dens = pc * s1 * s2;
  }
  /* Beyond s = 14.5 (and for NaN) both are evaluated at s = 14.5, where
   * they round to +0 (below 2^-150 before rounding): the tails' limits
   * with no select. NaN in, NaN out: the callers' x * cdf is NaN already;
   * the density is made NaN here (at 14.5 it is 0, which the callers read
   * as "in the tail"). */
  *cdf = sg_v_blend_lt(x, v_set(0.0f), tail, 1.0f - tail);
  *pdf = sg_v_blend_nan(x, x, dens);
}

/* One activation evaluated on a vector of (gate, up): a = act(g) where g is
 * the (possibly clamped) gate, m = the up multiplier (u, clamped, +1 for
 * gpt-oss); with want_grad, da = d act / d gate at g (0 where the gate
 * clamp is active) and dm = d m / d up (0 where the up clamp is active). */
typedef struct {
  vf a, m, da, dm;
} sg_act;

/* The up multiplier m alone (it depends on up only, so a forward may
 * compute act(gate) and m in separate passes and keep the bits). */
static inline __attribute__((always_inline)) vf v_up_mult(int act, float limit, vf up) {
  if (act != 4 && act != 5) return up;
  const vf lim = v_set(limit);
  const vf u = sg_v_max(-lim, sg_v_min(lim, up));
  return act == 4 ? u + 1.0f : u;
}

/* d m / d up, which also depends on up only. */
static inline __attribute__((always_inline)) vf v_up_dmult(int act, float limit, vf up) {
  if (act != 4 && act != 5) return v_set(1.0f);
  /* |up| > lim: clamped; a NaN up: clamped or not is unknown */
  const vf dm = sg_v_blend_gt(v_abs(up), v_set(limit), v_set(0.0f), v_set(1.0f));
  return sg_v_blend_nan(up, up, dm);
}

/* The logistic activations (SiLU, GELU tanh, gpt-oss, clamped SiLU) in two
 * halves: the first up to den = 1 + exp(-z), the second from the division
 * on. The forward and backward loops run them software-pipelined: the first
 * half of the next pair of vectors is issued before the second half of this
 * one, so the divisions find their operands ready instead of at the end of a
 * ~60-cycle chain; one long chain per vector filled the out-of-order window
 * and left the forward at ~18.5 cycles a vector against ~13.5 of port work
 * (bench/NOTES.md, fifteenth session).
 *
 * In the common case, z >= -87, den = 1 + exp(-z) stays finite (exp(-z) <=
 * e^87 < 2^126 is one normal scale factor) and x / den is one correctly
 * rounded division; for z > 87 the clamp leaves den == 1 exactly, which is
 * the right answer. Lanes below -87 are recomputed by v_logistic_wide; the
 * choice is per lane, so every ISA gives every lane the same bits. */
typedef struct {
  vf x, za, e, den; /* act(gate) = x / den, za the logistic's argument, e = exp(-min(87, za)) */
  vf m;             /* the up multiplier */
  vf gate, up;      /* as loaded (the derivative's clamp tests) */
} sg_act_half;

/* every activation but GELU erf (2) and ReLU (3); SiLU is the default */
static inline int act_is_logistic(int act) { return act != 2 && act != 3; }

static inline __attribute__((always_inline)) sg_act_half act_first(int act, float alpha, float limit, vf gate,
                                                                   vf up, const int fast) {
  sg_act_half s;
  s.gate = gate;
  s.up = up;
  s.x = gate;
  s.za = gate;
  s.m = up;
  if (act == 1) { /* GELU tanh: x * sigmoid(2 * sqrt(2/pi) * (x + 0.044715 x^3)) */
    s.za = sg_v_fma(0.044715f * (gate * gate), gate, gate) * 1.5957691216057308f;
  } else if (act == 4 || act == 5) { /* gpt-oss: g * sigmoid(alpha g) * (u + 1); clamped SiLU */
    /* sg_v_min(bound, x) is v_min_keepnan(x, bound) in one operation */
    s.x = sg_v_min(v_set(limit), gate);
    s.za = s.x * (act == 4 ? alpha : 1.0f);
    s.m = v_up_mult(act, limit, up);
  }
  /* Only the upper clamp: the lanes below -87 are recomputed by the wide
   * path whatever this one makes of them, and dropping the max shortened the
   * chain the out-of-order window waits on (bench/NOTES.md). */
  const vf zc = sg_v_min(v_set(87.0f), s.za);
  vf scale;
  const vf p = fast ? v_exp_negz16(zc, &scale) : v_exp_negz(zc, &scale);
  s.e = p * scale; /* exact: scale = 2^k and e stays normal */
  /* so 1 + e in one fma, one operation fewer where e itself is not needed */
  s.den = sg_v_fma(p, scale, v_set(1.0f));
  return s;
}

/* x / den to ~2^-14 for the 16-bit outputs (see v_exp_negz16) */
#define fwd_div(fast, x, den) ((fast) ? (x) * sg_v_rcp16(den) : (x) / (den))

/* The derivative from the logistic pieces: sig = sigmoid(z) and sigc = 1 -
 * sigmoid(z) (both without cancellation), xs = x * sigmoid(z). */
static inline __attribute__((always_inline)) vf act_grad(int act, float alpha, float limit, sg_act_half s,
                                                        vf xs, vf sig, vf sigc, vf *dm) {
  *dm = v_set(1.0f);
  if (act == 1) {
    const vf dz = sg_v_fma(s.gate * s.gate, v_set(3.0f * 0.044715f * 1.5957691216057308f),
                           v_set(1.5957691216057308f));
    return v_far_sel(s.za, sig, sg_v_fma(xs * sigc, dz, sig));
  }
  if (act == 4 || act == 5) {
    const float al = act == 4 ? alpha : 1.0f;
    const vf da = v_far_sel(s.za, sig, sg_v_fma(xs * al, sigc, sig));
    *dm = v_up_dmult(act, limit, s.up);
    return sg_v_blend_gt(s.gate, v_set(limit), v_set(0.0f), da);
  }
  /* SiLU. far: keeps inf * 0 out of the limits silu'(+inf) = 1, silu'(-inf) = 0 */
  return v_far_sel(s.gate, sig, sg_v_fma(xs, sigc, sig));
}

/* Whether the 16-bit gradients take the reciprocal below: on AVX-512 only.
 * With AVX2 the backward ran 3% slower that way (rcpps needs a second
 * Newton step, and two ymm divisions cost less than zmm ones). */
#ifndef SG_GRAD_RCP
#define SG_GRAD_RCP 0
#endif
/* act_second's gfast for gradients stored as dg, du */
static inline int sg_grad_fast(int32_t dg, int32_t du) { return SG_GRAD_RCP && dg != SG_F32 && du != SG_F32; }

/* With want_grad and gfast (the gradients are stored in 16-bit dtypes),
 * sigma = 1 / den is the 2^-14 reciprocal after one Newton step, within
 * 2^-23.9 of 1 / den instead of correctly rounded, and x * sigma stands for
 * x / den: two divisions, ~6 cycles of the FMA ports a vector, become four
 * operations (bf16 backward 1.20-1.27 -> 1.30-1.37 of the copy on the
 * Sapphire Rapids VM; docs/numerics.md, "16-bit gradients"). The exp stays
 * exact: the gradients' cancellation near g = -1.28 magnifies its error. */
static inline __attribute__((always_inline)) sg_act act_second(int act, float alpha, float limit, sg_act_half s,
                                                               int want_grad, const int gfast) {
  sg_act o;
  o.m = s.m;
  o.dm = v_set(1.0f);
  vf sig = v_set(0.0f), sigc = v_set(0.0f);
  if (want_grad && gfast) {
    const vf r = sg_v_rcp16(s.den);
    sig = sg_v_fma(r, sg_v_fma(-s.den, r, v_set(1.0f)), r);
    o.a = s.x * sig;
  } else {
    o.a = s.x / s.den;
    if (want_grad) sig = 1.0f / s.den;
  }
  if (want_grad) sigc = s.e * sig;
  if (__builtin_expect(sg_v_any_lt(s.za, -87.0f), 0)) {
    const vi low = s.za < -87.0f;
    const sg_logistic w = v_logistic_wide(s.x, s.za, v_set(0.0f));
    o.a = v_sel(low, w.xs, o.a);
    if (want_grad) {
      sig = v_sel(low, w.sig, sig);
      sigc = v_sel(low, w.sigc, sigc);
    }
  }
  if (want_grad) o.da = act_grad(act, alpha, limit, s, o.a, sig, sigc, &o.dm);
  return o;
}

/* The forward's act_second of two vectors, their rare-path tests in one branch. */
static inline __attribute__((always_inline)) void fwd_second2(sg_act_half s0, sg_act_half s1, vf *a0, vf *a1,
                                                              const int fast) {
  *a0 = fwd_div(fast, s0.x, s0.den);
  *a1 = fwd_div(fast, s1.x, s1.den);
  if (__builtin_expect(sg_v_any_lt2(s0.za, s1.za, -87.0f), 0)) {
    *a0 = v_sel(s0.za < -87.0f, v_logistic_wide(s0.x, s0.za, v_set(0.0f)).xs, *a0);
    *a1 = v_sel(s1.za < -87.0f, v_logistic_wide(s1.x, s1.za, v_set(0.0f)).xs, *a1);
  }
}

static inline __attribute__((always_inline)) sg_act v_activation(int act, float alpha, float limit, vf gate, vf up,
                                                                 int want_grad) {
  if (act_is_logistic(act))
    return act_second(act, alpha, limit, act_first(act, alpha, limit, gate, up, 0), want_grad, 0);
  sg_act o;
  o.m = up;
  o.dm = v_set(1.0f);
  if (act == 2) { /* GELU erf: x * Phi(x) */
    vf cdf, pdf;
    v_normal_cdf_pdf(gate, &cdf, &pdf);
    o.a = gate * cdf;
    /* -inf * Phi(-inf) = -inf * 0: the limit is -0. */
    o.a = sg_v_blend_eq(cdf, v_set(0.0f), v_signbit(gate), o.a);
    /* pdf == 0 only in the tails (and at +-inf, where gate * pdf is NaN) */
    if (want_grad) o.da = sg_v_blend_eq(pdf, v_set(0.0f), cdf, sg_v_fma(gate, pdf, cdf));
  } else { /* ReLU */
    vi pos = gate > 0.0f;
    vi nan = gate != gate;
    o.a = v_sel(pos | nan, gate, v_set(0.0f));
    if (want_grad) o.da = v_sel(nan, gate, v_sel(pos, v_set(1.0f), v_set(0.0f)));
  }
  return o;
}

/* The forward's second half of one vector (fwd_second2 for one). */
static inline __attribute__((always_inline)) vf fwd_second1(sg_act_half s, const int fast) {
  vf a = fwd_div(fast, s.x, s.den);
  if (__builtin_expect(sg_v_any_lt(s.za, -87.0f), 0))
    a = v_sel(s.za < -87.0f, v_logistic_wide(s.x, s.za, v_set(0.0f)).xs, a);
  return a;
}

/* The forward's act(gate) and m of one vector outside the pipelined loops:
 * with fast (a 16-bit h), the logistic activations as those loops take them. */
static inline __attribute__((always_inline)) sg_act v_activation_fwd(int act, float alpha, float limit, vf gate,
                                                                     vf up, const int fast) {
  if (!fast || !act_is_logistic(act)) return v_activation(act, alpha, limit, gate, up, 0);
  const sg_act_half s = act_first(act, alpha, limit, gate, up, 1);
  sg_act o;
  o.a = fwd_second1(s, 1);
  o.m = s.m;
  o.da = o.dm = v_set(1.0f);
  return o;
}

/* The forward op's 16-bit-output h for a vector that the backward evaluated
 * exactly (s from act_first without fast, a its exact act(gate)): a
 * recomputed h must be the forward's bits (docs/numerics.md). The lanes below
 * -87 are the wide path's in both. */
static inline __attribute__((always_inline)) vf h16_of(sg_act_half s, vf a) {
  vf scale;
  const vf p = v_exp_negz16(sg_v_min(v_set(87.0f), s.za), &scale);
  const vf af = fwd_div(1, s.x, sg_v_fma(p, scale, v_set(1.0f)));
  return v_sel(s.za < -87.0f, a, af) * s.m;
}

/* The exact fp32 h where the backward's act(gate) a came through gfast's
 * reciprocal (the wide path's lanes are exact in a) */
static inline __attribute__((always_inline)) vf h32_of(sg_act_half s, vf a) {
  return v_sel(s.za < -87.0f, a, s.x / s.den) * s.m;
}

/* The backward's act(gate), derivative and m of one vector (gfast: see act_second) */
static inline __attribute__((always_inline)) sg_act v_activation_bwd(int act, float alpha, float limit, vf gate,
                                                                     vf up, const int gfast) {
  if (!act_is_logistic(act)) return v_activation(act, alpha, limit, gate, up, 1);
  return act_second(act, alpha, limit, act_first(act, alpha, limit, gate, up, 0), 1, gfast);
}

/* ----------------------------------------------------------------- driver */

/* Loads the gate and up vectors at gp / up (interleaved: pairs at gp). */
static inline __attribute__((always_inline)) void load_gu(const char *gp, const char *up,
                                                          int32_t gd, int32_t ud, int il, vf *g,
                                                          vf *u) {
  if (il) {
    vf a = v_load(gp, gd), b = v_load(gp + SG_W * sg_dtype_size(gd), gd);
    *g = __builtin_shufflevector(a, b, SG_EVEN_LANES);
    *u = __builtin_shufflevector(a, b, SG_ODD_LANES);
  } else {
    *g = v_load(gp, gd);
    *u = v_load(up, ud);
  }
}

/* Stores one vector, streaming past the caches when nt (the caller has
 * checked that p is aligned to the vector: every vector of a row is, when
 * the row's first one is, so the test is made once a row, not per vector). */
static inline __attribute__((always_inline)) void store_v(char *p, int32_t dt, vf v, int nt) {
  if (nt) {
    if (dt == SG_F32)
      sg_stream_f32(p, v);
    else
      sg_stream_half(p, dt == SG_BF16 ? v_to_bf16(v) : sg_to_f16(v));
  } else {
    v_store(p, dt, v);
  }
}

/* Pair order: where the ISA defines SG_PAIR_BF16 (AVX2), two consecutive
 * bf16 vectors are loaded together with their lanes in an order of the
 * ISA's choosing (sg_bf16_unzip) and stored together through its inverse
 * (sg_bf16_zip), for fewer shuffles and shifts. Lane-wise arithmetic does
 * not care about the order, so a loop may take it (po) when every stream it
 * reads and writes is bf16 and goes in the same pairs: 0 elsewhere. */
#ifndef SG_PAIR_BF16
#define SG_PAIR_BF16 0
#endif
static inline __attribute__((always_inline)) void load_v2(const char *p, int32_t dt, const int po, vf *v0,
                                                          vf *v1) {
#if SG_PAIR_BF16
  if (po) {
    sg_bf16_unzip(p, v0, v1);
    return;
  }
#else
  (void)po;
#endif
  *v0 = v_load(p, dt);
  *v1 = v_load(p + SG_W * sg_dtype_size(dt), dt);
}

/* Two vectors' 16-bit values, streamed when nt (p then aligned to one
 * vector of them, SG_W * 2 bytes, at least) */
static inline __attribute__((always_inline)) void store_h2(char *p, vh2 h, int nt) {
  if (!nt) {
    memcpy(p, &h, sizeof h);
  } else if (((uintptr_t)p & (4 * SG_W - 1)) == 0) {
    const vf f = (vf)h;
    sg_stream_f32(p, f);
  } else {
    vh lo, hi;
    memcpy(&lo, &h, sizeof lo);
    memcpy(&hi, (const char *)&h + sizeof lo, sizeof hi);
    sg_stream_half(p, lo);
    sg_stream_half(p + sizeof lo, hi);
  }
}

/* Two consecutive vectors (p aligned to both when nt); po: as load_v2. An
 * fp32 dt keeps the pair order (quant_rows' h, which its encoder reads in
 * that order). */
static inline __attribute__((always_inline)) void store_v2(char *p, int32_t dt, vf v0, vf v1, int nt, const int po) {
#if SG_PAIR_BF16
  if (po && dt == SG_BF16) {
    /* NaN's quieting (v_bf16_bits) only on the rare pair that holds one */
    store_h2(p,
             __builtin_expect(sg_v_any_nan2(v0, v1), 0) ? sg_bf16_zip(v_bf16_bits(v0), v_bf16_bits(v1))
                                                        : sg_bf16_zip(v_bf16_rne(v0), v_bf16_rne(v1)),
             nt);
    return;
  }
#else
  (void)po;
#endif
#ifdef SG_BF16_NATIVE2
  if (dt == SG_BF16 && (!nt || ((uintptr_t)p & (4 * SG_W - 1)) == 0) && __builtin_expect(!sg_v_any_subnormal2(v0, v1), 1)) {
    store_h2(p, SG_BF16_NATIVE2(v0, v1), nt);
    return;
  }
#endif
  store_v(p, dt, v0, nt);
  store_v(p + SG_W * sg_dtype_size(dt), dt, v1, nt);
}

/* load_gu of two consecutive vectors; po (not interleaved): as load_v2 */
static inline __attribute__((always_inline)) void load_gu2(const char *gp, const char *up, int32_t gd, int32_t ud,
                                                           int il, const int po, vf *g0, vf *u0, vf *g1, vf *u1) {
  if (po) {
    load_v2(gp, gd, 1, g0, g1);
    load_v2(up, ud, 1, u0, u1);
    return;
  }
  load_gu(gp, up, gd, ud, il, g0, u0);
  load_gu(gp + SG_W * (il ? 2 : 1) * sg_dtype_size(gd), up + SG_W * sg_dtype_size(ud), gd, ud, il, g1, u1);
}

typedef struct {
  const char *g, *u, *dh;
  char *h, *dg, *du;
} sg_rowptrs;

static inline void row_ptrs(const sg_glu_problem *p, int64_t r, int64_t c0, int backward,
                            sg_rowptrs *q) {
#define SG_AT(op) ((op).base + (sg_row_offset(&(op), r) + c0 * (op).col_step) * (int64_t)sg_dtype_size((op).dtype))
  q->g = SG_AT(p->gate);
  q->u = SG_AT(p->up);
  q->h = p->h.base ? SG_AT(p->h) : NULL;
  if (backward) {
    q->dh = SG_AT(p->dh);
    q->dg = SG_AT(p->dgate);
    q->du = SG_AT(p->dup);
  }
#undef SG_AT
}

/* Software prefetch distance of the input streams, in bytes. The hardware
 * prefetchers follow each stream, but a row holds two or three short
 * streams (8 KiB each at H = 4096) that restart every row; prefetching 1 KiB
 * ahead took the bf16 forward at 4096 x 4096 from 3.15 to 2.6 ms and at
 * 8192 x 14336 from 19.5 to 17.3 ms on the Zen 4 development VM (512 B and
 * 2 KiB were close; bench/NOTES.md). With the software-pipelined loops the
 * arithmetic takes less time a line, and 2 KiB came out ahead on the Sapphire
 * Rapids VM (bf16 forward at 131072 x 1024: 0.94-0.97 -> 1.01-1.03 of the
 * copy; 4 KiB alike, wider rows within the noise; fifteenth session).
 * Prefetches never fault, so running past a row's end is harmless. */
#ifndef SG_PREFETCH_BYTES
#define SG_PREFETCH_BYTES 2048
#endif

/* Rows of 16-bit two-stream layouts at most this wide go in two passes
 * (forward and backward): act(gate) over the span, then the up (and dh)
 * streams, so a thread reads one stream at a time. With [gate | up] rows of
 * 1024 or 2048 bf16 or f16 columns the one-pass forward ran 15-25% slower
 * per element than at 8192 x 14336, and two passes recover most of it;
 * wider rows (also 2048-column pieces of them, as the quantizer computes),
 * and f32 (whose forward is memory-bound, not latency-bound), lose in two
 * passes (bench/NOTES.md, fourteenth session). 0 = always one pass. */
#ifndef SG_NARROW_COLS
#define SG_NARROW_COLS 2048
#endif

static inline int sg_vec_aligned(const void *p, size_t es) { return ((uintptr_t)p & (SG_W * es - 1)) == 0; }
/* Prefetches the cache lines of [p, p + bytes). */
static inline __attribute__((always_inline)) void sg_prefetch_span(const char *p, size_t bytes) {
  for (size_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o);
}

/* The first pass of the two-pass narrow rows (SG_NARROW_COLS): act(gate)
 * over columns [0, nv) into a[], and with want_grad its derivative into
 * da[]. It prefetches the up (and, with want_grad, dh) streams the second
 * pass reads: this pass's arithmetic hides their misses (65536 x 2048:
 * 34-35 -> 30-31 ms forward), the second pass's would not. fast: the
 * forward's 16-bit path (v_exp_negz16), or with want_grad act_second's
 * gfast. */
static inline __attribute__((always_inline)) void gate_pass(const int act, const int32_t gd, const int32_t ud,
                                                            const int32_t dhd, const int want_grad, float alpha,
                                                            float limit, sg_rowptrs q, int64_t nv, float *a,
                                                            float *da, const int fast, const int po) {
  const size_t ges = sg_dtype_size(gd), ues = sg_dtype_size(ud), dhes = sg_dtype_size(dhd);
  int64_t i = 0;
  vf g0, g1;
  if (act_is_logistic(act) && nv >= 2 * SG_W) { /* pipelined as in fwd_vecs */
    /* the first pair's lines ahead too: at 131072 x 1024 they are the next
     * row's head, which the loop below does not reach */
    sg_prefetch_span(q.g + SG_PREFETCH_BYTES, 2 * SG_W * ges);
    sg_prefetch_span(q.u + SG_PREFETCH_BYTES, 2 * SG_W * ues);
    if (want_grad) sg_prefetch_span(q.dh + SG_PREFETCH_BYTES, 2 * SG_W * dhes);
    const int efast = fast && !want_grad; /* the backward's exp stays exact */
    load_v2(q.g, gd, po, &g0, &g1);
    sg_act_half s0 = act_first(act, alpha, limit, g0, v_set(0.0f), efast);
    sg_act_half s1 = act_first(act, alpha, limit, g1, v_set(0.0f), efast);
    for (i = 2 * SG_W;; i += 2 * SG_W) {
      const int more = i + 2 * SG_W <= nv;
      sg_act_half n0 = s0, n1 = s1;
      if (more) {
        sg_prefetch_span(q.g + i * ges + SG_PREFETCH_BYTES, 2 * SG_W * ges);
        sg_prefetch_span(q.u + i * ues + SG_PREFETCH_BYTES, 2 * SG_W * ues);
        if (want_grad) sg_prefetch_span(q.dh + i * dhes + SG_PREFETCH_BYTES, 2 * SG_W * dhes);
        load_v2(q.g + i * ges, gd, po, &g0, &g1);
        n0 = act_first(act, alpha, limit, g0, v_set(0.0f), efast);
        n1 = act_first(act, alpha, limit, g1, v_set(0.0f), efast);
      }
      if (want_grad) {
        const sg_act a0 = act_second(act, alpha, limit, s0, 1, fast), a1 = act_second(act, alpha, limit, s1, 1, fast);
        memcpy(a + i - 2 * SG_W, &a0.a, sizeof(vf));
        memcpy(a + i - SG_W, &a1.a, sizeof(vf));
        memcpy(da + i - 2 * SG_W, &a0.da, sizeof(vf));
        memcpy(da + i - SG_W, &a1.da, sizeof(vf));
      } else {
        vf a0, a1;
        fwd_second2(s0, s1, &a0, &a1, fast);
        memcpy(a + i - 2 * SG_W, &a0, sizeof(vf));
        memcpy(a + i - SG_W, &a1, sizeof(vf));
      }
      if (!more) break;
      s0 = n0;
      s1 = n1;
    }
  }
  for (; !act_is_logistic(act) && i + 2 * SG_W <= nv; i += 2 * SG_W) {
    sg_prefetch_span(q.g + i * ges + SG_PREFETCH_BYTES, 2 * SG_W * ges);
    sg_prefetch_span(q.u + i * ues + SG_PREFETCH_BYTES, 2 * SG_W * ues);
    if (want_grad) sg_prefetch_span(q.dh + i * dhes + SG_PREFETCH_BYTES, 2 * SG_W * dhes);
    load_v2(q.g + i * ges, gd, po, &g0, &g1);
    const sg_act a0 = v_activation(act, alpha, limit, g0, g0, want_grad);
    const sg_act a1 = v_activation(act, alpha, limit, g1, g1, want_grad);
    memcpy(a + i, &a0.a, sizeof(vf));
    memcpy(a + i + SG_W, &a1.a, sizeof(vf));
    if (want_grad) {
      memcpy(da + i, &a0.da, sizeof(vf));
      memcpy(da + i + SG_W, &a1.da, sizeof(vf));
    }
  }
  for (; i < nv; i += SG_W) {
    const vf g = v_load(q.g + i * ges, gd);
    const sg_act o = want_grad ? v_activation_bwd(act, alpha, limit, g, g, fast)
                               : v_activation_fwd(act, alpha, limit, g, g, fast);
    memcpy(a + i, &o.a, sizeof(vf));
    if (want_grad) memcpy(da + i, &o.da, sizeof(vf));
  }
}

/* The forward's whole vectors, columns [0, nv) of the row at q. hpo: an
 * fp32 h may be left in pair order (see fwd_cols). */
static inline __attribute__((always_inline)) void fwd_vecs(const int act, const int32_t gd, const int32_t ud,
                                                           const int32_t hd, const int il, const int nt,
                                                           float alpha, float limit, sg_rowptrs q, int64_t nv,
                                                           const int narrow, const int hpo) {
  const size_t ges = sg_dtype_size(gd), ues = sg_dtype_size(ud), hes = sg_dtype_size(hd);
  const int64_t gstep = il ? 2 : 1;
  const int fast = hd != SG_F32; /* a 16-bit h: see v_exp_negz16 */
  const int po = SG_PAIR_BF16 && !il && gd == SG_BF16 && ud == SG_BF16 && (hd == SG_BF16 || (hpo && hd == SG_F32));
  int64_t i = 0;
  if (!il && ges == 2 && narrow) {
    /* act(gate) over the span first, then h = a * m over up: the same
     * product as below, with a waiting in an L1 buffer (see SG_NARROW_COLS). */
    SG_ALIGNED float ab[SG_NARROW_COLS > 0 ? SG_NARROW_COLS : 1];
    gate_pass(act, gd, ud, ud, 0, alpha, limit, q, nv, ab, NULL, fast, po);
    for (i = 0; i + 2 * SG_W <= nv; i += 2 * SG_W) {
      const vf a0 = v_load_f32(ab + i), a1 = v_load_f32(ab + i + SG_W); /* in gate_pass's pair order */
      vf u0, u1;
      load_v2(q.u + i * ues, ud, po, &u0, &u1);
      store_v2(q.h + i * hes, hd, a0 * v_up_mult(act, limit, u0), a1 * v_up_mult(act, limit, u1), nt, po);
    }
    for (; i < nv; i += SG_W) {
      const vf a = v_load_f32(ab + i);
      store_v(q.h + i * hes, hd, a * v_up_mult(act, limit, v_load(q.u + i * ues, ud)), nt);
    }
    return;
  }
  if (act_is_logistic(act) && nv >= 2 * SG_W) {
    /* Software-pipelined (see sg_act_half): the first halves of vectors
     * [i, i + 2W) go before the second halves of [i - 2W, i). Reads run two
     * vectors ahead of the stores, which keeps an h written over its own
     * input safe. */
    vf g0, u0, g1, u1;
    sg_prefetch_span(q.g + SG_PREFETCH_BYTES, 2 * SG_W * gstep * ges);
    if (!il) sg_prefetch_span(q.u + SG_PREFETCH_BYTES, 2 * SG_W * ues);
    load_gu2(q.g, q.u, gd, ud, il, po, &g0, &u0, &g1, &u1);
    sg_act_half s0 = act_first(act, alpha, limit, g0, u0, fast), s1 = act_first(act, alpha, limit, g1, u1, fast);
    for (i = 2 * SG_W; i + 2 * SG_W <= nv; i += 2 * SG_W) {
      sg_prefetch_span(q.g + i * gstep * ges + SG_PREFETCH_BYTES, 2 * SG_W * gstep * ges);
      if (!il) sg_prefetch_span(q.u + i * ues + SG_PREFETCH_BYTES, 2 * SG_W * ues);
      load_gu2(q.g + i * gstep * ges, q.u + i * ues, gd, ud, il, po, &g0, &u0, &g1, &u1);
      const sg_act_half n0 = act_first(act, alpha, limit, g0, u0, fast),
                        n1 = act_first(act, alpha, limit, g1, u1, fast);
      vf a0, a1;
      fwd_second2(s0, s1, &a0, &a1, fast);
      store_v2(q.h + (i - 2 * SG_W) * hes, hd, a0 * s0.m, a1 * s1.m, nt, po);
      s0 = n0;
      s1 = n1;
    }
    vf a0, a1;
    fwd_second2(s0, s1, &a0, &a1, fast);
    store_v2(q.h + (i - 2 * SG_W) * hes, hd, a0 * s0.m, a1 * s1.m, nt, po);
  }
  /* GELU erf and ReLU (the pipeline above leaves the others less than a
   * pair; the test, a constant in each instance, keeps this loop out of
   * theirs): two vectors an iteration, whose chains overlap better in the
   * out-of-order window (4% in L2 on the Sapphire Rapids VM), and a 16-bit
   * stream then asks for one 64-byte line an iteration. */
  for (; !act_is_logistic(act) && i + 2 * SG_W <= nv; i += 2 * SG_W) {
    vf g0, u0, g1, u1;
    sg_prefetch_span(q.g + i * gstep * ges + SG_PREFETCH_BYTES, 2 * SG_W * gstep * ges);
    if (!il) sg_prefetch_span(q.u + i * ues + SG_PREFETCH_BYTES, 2 * SG_W * ues);
    load_gu2(q.g + i * gstep * ges, q.u + i * ues, gd, ud, il, po, &g0, &u0, &g1, &u1);
    const sg_act a0 = v_activation(act, alpha, limit, g0, u0, 0);
    const sg_act a1 = v_activation(act, alpha, limit, g1, u1, 0);
    store_v2(q.h + i * hes, hd, a0.a * a0.m, a1.a * a1.m, nt, po);
  }
  for (; i < nv; i += SG_W) {
    vf g, u;
    sg_prefetch_span(q.g + i * gstep * ges + SG_PREFETCH_BYTES, SG_W * gstep * ges);
    if (!il) sg_prefetch_span(q.u + i * ues + SG_PREFETCH_BYTES, SG_W * ues);
    load_gu(q.g + i * gstep * ges, q.u + i * ues, gd, ud, il, &g, &u);
    sg_act a = v_activation_fwd(act, alpha, limit, g, u, fast);
    store_v(q.h + i * hes, hd, a.a * a.m, nt);
  }
}

/* Forward over n columns starting at q. The last partial vector goes through
 * the same code on zero-padded copies. hpo (a constant): the caller takes an
 * fp32 h from bf16 gate and up (not interleaved) in pair order, where
 * SG_PAIR_BF16 is defined: each block of 2 SG_W columns from the first up
 * to the last whole one in sg_bf16_unzip's order, the rest in order. The
 * layout and the streaming choice are fixed for a row, so the common case
 * (one dtype throughout) has a loop for each of them without their tests
 * (and the streaming store's alignment test) in it: four compares and
 * branches a vector fewer in the bf16 SiLU loop, 2-3% on the Sapphire
 * Rapids VM (bench/NOTES.md). */
static inline __attribute__((always_inline)) void fwd_cols(const sg_glu_problem *p, const int act,
                                                           const int32_t gd, const int32_t ud,
                                                           sg_rowptrs q, int64_t n, int nt, const int hpo) {
  const int32_t hd = p->h.dtype;
  const int il = p->gate.col_step == 2;
  const size_t ues = sg_dtype_size(ud), ges = sg_dtype_size(gd), hes = sg_dtype_size(hd);
  const int64_t gstep = il ? 2 : 1;
  const float alpha = p->alpha, limit = p->limit; /* values: the stores may alias *p */
  const int64_t i = n - n % SG_W;
  const int narrow = p->width <= SG_NARROW_COLS; /* then n <= SG_NARROW_COLS too */
  nt = nt && sg_vec_aligned(q.h, hes);
  if (hd == gd && ud == gd) {
    if (il) {
      if (nt) fwd_vecs(act, gd, gd, gd, 1, 1, alpha, limit, q, i, narrow, 0);
      else fwd_vecs(act, gd, gd, gd, 1, 0, alpha, limit, q, i, narrow, 0);
    } else {
      if (nt) fwd_vecs(act, gd, gd, gd, 0, 1, alpha, limit, q, i, narrow, 0);
      else fwd_vecs(act, gd, gd, gd, 0, 0, alpha, limit, q, i, narrow, 0);
    }
  } else if (hpo && !il && gd == SG_BF16 && ud == SG_BF16 && hd == SG_F32) {
    fwd_vecs(act, gd, ud, hd, 0, nt, alpha, limit, q, i, narrow, 1);
  } else {
    fwd_vecs(act, gd, ud, hd, il, nt, alpha, limit, q, i, narrow, 0);
  }
  if (i < n) {
    const int64_t rem = n - i;
    SG_ALIGNED char gt[2 * SG_W * 4] = {0}, ut[SG_W * 4] = {0}, ht[SG_W * 4];
    memcpy(gt, q.g + i * gstep * ges, (size_t)(rem * gstep) * ges);
    if (!il) memcpy(ut, q.u + i * ues, (size_t)rem * ues);
    vf g, u;
    load_gu(gt, ut, gd, ud, il, &g, &u);
    sg_act a = v_activation_fwd(act, alpha, limit, g, u, hd != SG_F32);
    v_store(ht, hd, a.a * a.m);
    memcpy(q.h + i * hes, ht, (size_t)rem * hes);
  }
}

typedef struct {
  vf dg, du, h;
} sg_bwd_out;

static inline __attribute__((always_inline)) sg_bwd_out bwd_from_act(sg_act a, vf dh) {
  sg_bwd_out o;
  o.dg = (dh * a.m) * a.da;
  o.du = (dh * a.a) * a.dm;
  o.h = a.a * a.m;
  return o;
}

/* How the backward's recomputed h is formed, which must be the forward op's
 * bits: a * m (SG_H_PLAIN, also without h), the forward's 16-bit path
 * (SG_H_16, h16_of), or the exact quotient where gfast's a is not it
 * (SG_H_EXACT, h32_of). */
enum { SG_H_PLAIN, SG_H_16, SG_H_EXACT };
static inline int sg_h_mode(int act, int with_h, int32_t hd, int gfast) {
  if (!with_h || !act_is_logistic(act)) return SG_H_PLAIN;
  return hd != SG_F32 ? SG_H_16 : gfast ? SG_H_EXACT : SG_H_PLAIN;
}

/* The backward of a pair's halves, h formed as hmode says */
static inline __attribute__((always_inline)) sg_bwd_out bwd_from_half(int act, float alpha, float limit,
                                                                      sg_act_half s, vf dh, const int hmode,
                                                                      const int gfast) {
  const sg_act a = act_second(act, alpha, limit, s, 1, gfast);
  sg_bwd_out o = bwd_from_act(a, dh);
  if (hmode == SG_H_16) o.h = h16_of(s, a.a);
  if (hmode == SG_H_EXACT) o.h = h32_of(s, a.a);
  return o;
}

static inline __attribute__((always_inline)) sg_bwd_out bwd_vec(const int act, float alpha, float limit, vf g,
                                                                vf u, vf dh, const int hmode, const int gfast) {
  if (act_is_logistic(act))
    return bwd_from_half(act, alpha, limit, act_first(act, alpha, limit, g, u, 0), dh, hmode, gfast);
  return bwd_from_act(v_activation(act, alpha, limit, g, u, 1), dh);
}

/* The output dtypes and layout come in as values, not through p: the
 * stores may alias *p as far as the compiler knows, and reading them from p
 * reloaded and re-tested them for every vector. */
typedef struct {
  int32_t dg, du, h; /* dtypes */
  int oil;           /* dgate and dup interleaved in one tensor */
} sg_bwd_fmt;

static inline __attribute__((always_inline)) void store_bwd(const sg_bwd_fmt f, char *dgp, char *dup,
                                                            char *hp, sg_bwd_out o, int nt) {
  if (f.oil) {
    store_v(dgp, f.dg, __builtin_shufflevector(o.dg, o.du, SG_ZIP_LO_LANES), nt);
    store_v(dgp + SG_W * sg_dtype_size(f.dg), f.dg, __builtin_shufflevector(o.dg, o.du, SG_ZIP_HI_LANES), nt);
  } else {
    store_v(dgp, f.dg, o.dg, nt);
    store_v(dup, f.du, o.du, nt);
  }
  if (hp) store_v(hp, f.h, o.h, nt);
}

/* The second pass of the two-pass backward (SG_NARROW_COLS): one vector
 * from act(gate) and its derivative at a and da, and the up and dh streams. */
static inline __attribute__((always_inline)) sg_bwd_out bwd_from_buf(int act, float limit, const float *a,
                                                                    const float *da, vf u, vf dh) {
  sg_act o;
  o.a = v_load_f32(a);
  o.da = v_load_f32(da);
  o.m = v_up_mult(act, limit, u);
  o.dm = v_up_dmult(act, limit, u);
  return bwd_from_act(o, dh);
}

/* store_bwd of two consecutive vectors */
static inline __attribute__((always_inline)) void store_bwd2(const sg_bwd_fmt f, char *dgp, char *dup, char *hp,
                                                             sg_bwd_out o0, sg_bwd_out o1, int nt, const int po) {
  if (f.oil) {
    store_bwd(f, dgp, dup, NULL, o0, nt);
    store_bwd(f, dgp + 2 * SG_W * sg_dtype_size(f.dg), dup, NULL, o1, nt);
  } else {
    store_v2(dgp, f.dg, o0.dg, o1.dg, nt, po);
    store_v2(dup, f.du, o0.du, o1.du, nt, po);
  }
  if (hp) store_v2(hp, f.h, o0.h, o1.h, nt, po);
}

/* The backward's whole vectors, columns [0, nv) of the row at q (with_h:
 * q.h is not NULL). */
static inline __attribute__((always_inline)) void bwd_vecs(const int act, const int32_t gd, const int32_t ud,
                                                           const int32_t dhd, const int il, const sg_bwd_fmt f,
                                                           const int with_h, const int nt, float alpha, float limit,
                                                           sg_rowptrs q, int64_t nv, const int narrow) {
  const size_t ges = sg_dtype_size(gd), ues = sg_dtype_size(ud), dhes = sg_dtype_size(dhd);
  const size_t dges = sg_dtype_size(f.dg), dues = sg_dtype_size(f.du), hes = sg_dtype_size(f.h);
  const int64_t gstep = il ? 2 : 1, ostep = f.oil ? 2 : 1;
  const int gfast = sg_grad_fast(f.dg, f.du);
  const int hmode = sg_h_mode(act, with_h, f.h, gfast);
  const int po = SG_PAIR_BF16 && !il && !f.oil && gd == SG_BF16 && ud == SG_BF16 && dhd == SG_BF16 &&
                 f.dg == SG_BF16 && f.du == SG_BF16 && (!with_h || f.h == SG_BF16);
  int64_t i = 0;
  if (!il && ges == 2 && narrow && hmode == SG_H_PLAIN) {
    /* As in fwd_vecs: act(gate) and its derivative over the span first,
     * then the up and dh streams. The gate is read whole before the first
     * store, so in place stays safe. (The other h modes would need the
     * forward's act(gate) in a third buffer: those rows take one pass.) */
    SG_ALIGNED float ab[SG_NARROW_COLS > 0 ? SG_NARROW_COLS : 1], db[SG_NARROW_COLS > 0 ? SG_NARROW_COLS : 1];
    gate_pass(act, gd, ud, dhd, 1, alpha, limit, q, nv, ab, db, gfast, po);
    for (i = 0; i + 2 * SG_W <= nv; i += 2 * SG_W) {
      vf u0, u1, d0, d1;
      load_v2(q.u + i * ues, ud, po, &u0, &u1);
      load_v2(q.dh + i * dhes, dhd, po, &d0, &d1);
      const sg_bwd_out o0 = bwd_from_buf(act, limit, ab + i, db + i, u0, d0);
      const sg_bwd_out o1 = bwd_from_buf(act, limit, ab + i + SG_W, db + i + SG_W, u1, d1);
      store_bwd2(f, q.dg + i * ostep * dges, q.du + i * dues, with_h ? q.h + i * hes : NULL, o0, o1, nt, po);
    }
    for (; i < nv; i += SG_W) {
      const sg_bwd_out o =
          bwd_from_buf(act, limit, ab + i, db + i, v_load(q.u + i * ues, ud), v_load(q.dh + i * dhes, dhd));
      store_bwd(f, q.dg + i * ostep * dges, q.du + i * dues, with_h ? q.h + i * hes : NULL, o, nt);
    }
    return;
  }
  if (act_is_logistic(act) && nv >= 2 * SG_W) {
    /* Pipelined as in fwd_vecs. The next pair's gate and up are read before
     * this pair's stores, and dh[j] before dg[j]: in place stays safe. */
    vf g0, u0, g1, u1;
    sg_prefetch_span(q.g + SG_PREFETCH_BYTES, 2 * SG_W * gstep * ges);
    if (!il) sg_prefetch_span(q.u + SG_PREFETCH_BYTES, 2 * SG_W * ues);
    sg_prefetch_span(q.dh + SG_PREFETCH_BYTES, 2 * SG_W * dhes);
    load_gu2(q.g, q.u, gd, ud, il, po, &g0, &u0, &g1, &u1);
    sg_act_half s0 = act_first(act, alpha, limit, g0, u0, 0), s1 = act_first(act, alpha, limit, g1, u1, 0);
    for (i = 2 * SG_W;; i += 2 * SG_W) {
      const int more = i + 2 * SG_W <= nv;
      sg_act_half n0 = s0, n1 = s1;
      if (more) {
        sg_prefetch_span(q.g + i * gstep * ges + SG_PREFETCH_BYTES, 2 * SG_W * gstep * ges);
        if (!il) sg_prefetch_span(q.u + i * ues + SG_PREFETCH_BYTES, 2 * SG_W * ues);
        sg_prefetch_span(q.dh + i * dhes + SG_PREFETCH_BYTES, 2 * SG_W * dhes);
        load_gu2(q.g + i * gstep * ges, q.u + i * ues, gd, ud, il, po, &g0, &u0, &g1, &u1);
        n0 = act_first(act, alpha, limit, g0, u0, 0);
        n1 = act_first(act, alpha, limit, g1, u1, 0);
      }
      const int64_t j = i - 2 * SG_W;
      vf d0, d1;
      load_v2(q.dh + j * dhes, dhd, po, &d0, &d1);
      const sg_bwd_out o0 = bwd_from_half(act, alpha, limit, s0, d0, hmode, gfast);
      const sg_bwd_out o1 = bwd_from_half(act, alpha, limit, s1, d1, hmode, gfast);
      store_bwd2(f, q.dg + j * ostep * dges, q.du + j * dues, with_h ? q.h + j * hes : NULL, o0, o1, nt, po);
      if (!more) break;
      s0 = n0;
      s1 = n1;
    }
  }
  /* GELU erf and ReLU, as in fwd_vecs: two vectors an iteration (4-5% on
   * the Sapphire Rapids VM). All four loads come before the stores: in
   * place stays safe. */
  for (; !act_is_logistic(act) && i + 2 * SG_W <= nv; i += 2 * SG_W) {
    vf g0, u0, g1, u1;
    sg_prefetch_span(q.g + i * gstep * ges + SG_PREFETCH_BYTES, 2 * SG_W * gstep * ges);
    if (!il) sg_prefetch_span(q.u + i * ues + SG_PREFETCH_BYTES, 2 * SG_W * ues);
    sg_prefetch_span(q.dh + i * dhes + SG_PREFETCH_BYTES, 2 * SG_W * dhes);
    vf d0, d1;
    load_gu2(q.g + i * gstep * ges, q.u + i * ues, gd, ud, il, po, &g0, &u0, &g1, &u1);
    load_v2(q.dh + i * dhes, dhd, po, &d0, &d1);
    const sg_bwd_out o0 = bwd_vec(act, alpha, limit, g0, u0, d0, hmode, gfast);
    const sg_bwd_out o1 = bwd_vec(act, alpha, limit, g1, u1, d1, hmode, gfast);
    store_bwd2(f, q.dg + i * ostep * dges, q.du + i * dues, with_h ? q.h + i * hes : NULL, o0, o1, nt, po);
  }
  for (; i < nv; i += SG_W) {
    vf g, u;
    sg_prefetch_span(q.g + i * gstep * ges + SG_PREFETCH_BYTES, SG_W * gstep * ges);
    if (!il) sg_prefetch_span(q.u + i * ues + SG_PREFETCH_BYTES, SG_W * ues);
    sg_prefetch_span(q.dh + i * dhes + SG_PREFETCH_BYTES, SG_W * dhes);
    load_gu(q.g + i * gstep * ges, q.u + i * ues, gd, ud, il, &g, &u);
    sg_bwd_out o = bwd_vec(act, alpha, limit, g, u, v_load(q.dh + i * dhes, dhd), hmode, gfast);
    store_bwd(f, q.dg + i * ostep * dges, q.du + i * dues, with_h ? q.h + i * hes : NULL, o, nt);
  }
}

/* Backward over n columns. Each vector's inputs are loaded before its
 * outputs are stored, and vectors do not overlap, so in place is safe. */
static inline __attribute__((always_inline)) void bwd_cols(const sg_glu_problem *p, const int act,
                                                           const int32_t gd, const int32_t ud,
                                                           sg_rowptrs q, int64_t n, int nt) {
  const int32_t dhd = p->dh.dtype;
  const int il = p->gate.col_step == 2, oil = p->dgate.col_step == 2;
  const size_t ges = sg_dtype_size(gd), ues = sg_dtype_size(ud), dhes = sg_dtype_size(dhd);
  const size_t dges = sg_dtype_size(p->dgate.dtype), dues = sg_dtype_size(p->dup.dtype);
  const size_t hes = p->h.base ? sg_dtype_size(p->h.dtype) : 0;
  const int64_t gstep = il ? 2 : 1, ostep = oil ? 2 : 1;
  const sg_bwd_fmt f = {p->dgate.dtype, p->dup.dtype, p->h.dtype, oil};
  const float alpha = p->alpha, limit = p->limit;
  nt = nt && sg_vec_aligned(q.dg, dges) && (oil || sg_vec_aligned(q.du, dues)) && (!q.h || sg_vec_aligned(q.h, hes));
  const int64_t i = n - n % SG_W;
  const int narrow = p->width <= SG_NARROW_COLS;
  /* As in fwd_cols: the common case (one dtype, two output tensors) gets
   * loops with fewer loop-invariant tests inside. Whether h is recomputed
   * stays a test in the loop, so that the in-place call (no h) and the
   * out-of-place one (with h) mostly run the same instructions: a product of
   * two NaNs takes the first one's sign and payload, and the generic build
   * gives different NaN signs where the compiler orders operands
   * differently (docs/numerics.md leaves them unspecified). */
  if (ud == gd && dhd == gd && f.dg == gd && f.du == gd && (!q.h || f.h == gd) && !oil) {
    const sg_bwd_fmt fc = {gd, gd, gd, 0};
    const int with_h = q.h != NULL;
    if (il) {
      if (nt) bwd_vecs(act, gd, gd, gd, 1, fc, with_h, 1, alpha, limit, q, i, narrow);
      else bwd_vecs(act, gd, gd, gd, 1, fc, with_h, 0, alpha, limit, q, i, narrow);
    } else {
      if (nt) bwd_vecs(act, gd, gd, gd, 0, fc, with_h, 1, alpha, limit, q, i, narrow);
      else bwd_vecs(act, gd, gd, gd, 0, fc, with_h, 0, alpha, limit, q, i, narrow);
    }
  } else {
    bwd_vecs(act, gd, ud, dhd, il, f, q.h != NULL, nt, alpha, limit, q, i, narrow);
  }
  if (i < n) {
    const int64_t rem = n - i;
    SG_ALIGNED char gt[2 * SG_W * 4] = {0}, ut[SG_W * 4] = {0}, dht[SG_W * 4] = {0};
    SG_ALIGNED char dgt[2 * SG_W * 4], dut[SG_W * 4], ht[SG_W * 4];
    memcpy(gt, q.g + i * gstep * ges, (size_t)(rem * gstep) * ges);
    if (!il) memcpy(ut, q.u + i * ues, (size_t)rem * ues);
    memcpy(dht, q.dh + i * dhes, (size_t)rem * dhes);
    vf g, u;
    load_gu(gt, ut, gd, ud, il, &g, &u);
    const int gfast = sg_grad_fast(p->dgate.dtype, p->dup.dtype);
    sg_bwd_out o = bwd_vec(act, alpha, limit, g, u, v_load(dht, dhd), sg_h_mode(act, q.h != NULL, p->h.dtype, gfast),
                           gfast);
    store_bwd(f, dgt, dut, q.h ? ht : NULL, o, 0);
    memcpy(q.dg + i * ostep * dges, dgt, (size_t)(rem * ostep) * dges);
    if (!oil) memcpy(q.du + i * dues, dut, (size_t)rem * dues);
    if (q.h) memcpy(q.h + i * hes, ht, (size_t)rem * hes);
  }
}

/* The first SG_PREFETCH_BYTES of row r's input streams, asked for while the
 * row before is computed: the loops prefetch that far ahead within a row,
 * so without this every row began with demand misses on each stream. bf16
 * forward at 65536 x 2048 on the Sapphire Rapids VM: 37.8 -> 34.0 ms (most
 * of the rest of the narrow-row gap went with SG_NARROW_COLS's two passes). */
static inline void prefetch_row_head(const sg_glu_problem *p, int64_t r, int backward) {
  const int il = p->gate.col_step == 2;
  const char *g = p->gate.base + sg_row_offset(&p->gate, r) * (int64_t)sg_dtype_size(p->gate.dtype);
  const char *u = p->up.base + sg_row_offset(&p->up, r) * (int64_t)sg_dtype_size(p->up.dtype);
  const char *d = backward ? p->dh.base + sg_row_offset(&p->dh, r) * (int64_t)sg_dtype_size(p->dh.dtype) : NULL;
  /* (More -- 4 or 8 KiB into L2, 2 or 4 KiB in the loops -- ran slower.) */
  sg_prefetch_span(g, SG_PREFETCH_BYTES);
  if (!il) sg_prefetch_span(u, SG_PREFETCH_BYTES);
  if (backward) sg_prefetch_span(d, SG_PREFETCH_BYTES);
}

/* Work item it covers row it / chunks, columns [(it % chunks) * SG_CHUNK, +SG_CHUNK);
 * a thread's consecutive items of one row are run as one span (one call,
 * one loop: per-item setup and two 64-bit divisions a chunk had cost ~5% at
 * H = 4096 on the Sapphire Rapids VM, bench/NOTES.md). */
#define SG_ITEMS_LOOP(bwd, body)                                                          \
  const int64_t chunks = (p->width + SG_CHUNK - 1) / SG_CHUNK;                       \
  for (int64_t it = item0; it < item1;) {                                            \
    const int64_t r = it / chunks, k1 = item1 - r * chunks < chunks ? item1 - r * chunks : chunks; \
    const int64_t c0 = (it - r * chunks) * SG_CHUNK;                                 \
    const int64_t n = (k1 == chunks ? p->width : k1 * SG_CHUNK) - c0;                \
    sg_rowptrs q;                                                                    \
    if ((r + 1) * chunks < item1) prefetch_row_head(p, r + 1, bwd);                  \
    body                                                                             \
    it = r * chunks + k1;                                                            \
  }

/* The loops are instantiated once per activation and input dtype (the
 * branches on them then fold away, and the activation's constants stay in
 * registers); mixed gate/up dtypes take a general instance. */
#define SG_AI __attribute__((always_inline)) inline

static SG_AI void fwd_items(const sg_glu_problem *p, const int act, const int32_t in_dt,
                            int64_t item0, int64_t item1, int nt) {
  SG_ITEMS_LOOP(0, row_ptrs(p, r, c0, 0, &q); fwd_cols(p, act, in_dt, in_dt, q, n, nt, 0);)
}
static SG_AI void bwd_items(const sg_glu_problem *p, const int act, const int32_t in_dt,
                            int64_t item0, int64_t item1, int nt) {
  SG_ITEMS_LOOP(1, row_ptrs(p, r, c0, 1, &q); bwd_cols(p, act, in_dt, in_dt, q, n, nt);)
}
static void fwd_items_mixed(const sg_glu_problem *p, int64_t item0, int64_t item1, int nt) {
  SG_ITEMS_LOOP(0, row_ptrs(p, r, c0, 0, &q);
                fwd_cols(p, p->activation, p->gate.dtype, p->up.dtype, q, n, nt, 0);)
}
static void bwd_items_mixed(const sg_glu_problem *p, int64_t item0, int64_t item1, int nt) {
  SG_ITEMS_LOOP(1, row_ptrs(p, r, c0, 1, &q);
                bwd_cols(p, p->activation, p->gate.dtype, p->up.dtype, q, n, nt);)
}

#define SG_DEFINE_ACT(dir, act)                                                              \
  static void dir##_act##act(const sg_glu_problem *p, int64_t item0, int64_t item1, int nt) { \
    switch (p->gate.dtype) {                                                                 \
      case SG_BF16: dir##_items(p, act, SG_BF16, item0, item1, nt); break;                   \
      case SG_F16: dir##_items(p, act, SG_F16, item0, item1, nt); break;                     \
      default: dir##_items(p, act, SG_F32, item0, item1, nt); break;                         \
    }                                                                                        \
  }
#define SG_DEFINE_DIR(dir)                                                                     \
  SG_DEFINE_ACT(dir, 0) SG_DEFINE_ACT(dir, 1) SG_DEFINE_ACT(dir, 2) SG_DEFINE_ACT(dir, 3)     \
  SG_DEFINE_ACT(dir, 4) SG_DEFINE_ACT(dir, 5)                                                \
  static void dir##_dispatch(const sg_glu_problem *p, int64_t item0, int64_t item1, int nt) { \
    if (p->gate.dtype != p->up.dtype) {                                                      \
      dir##_items_mixed(p, item0, item1, nt);                                                \
      return;                                                                                \
    }                                                                                        \
    switch (p->activation) {                                                                 \
      case 0: dir##_act0(p, item0, item1, nt); break;                                        \
      case 1: dir##_act1(p, item0, item1, nt); break;                                        \
      case 2: dir##_act2(p, item0, item1, nt); break;                                        \
      case 3: dir##_act3(p, item0, item1, nt); break;                                        \
      case 4: dir##_act4(p, item0, item1, nt); break;                                        \
      default: dir##_act5(p, item0, item1, nt); break;                                       \
    }                                                                                        \
  }
SG_DEFINE_DIR(fwd)
SG_DEFINE_DIR(bwd)

void SG_NAME(sg_cpu_glu_forward)(const sg_glu_problem *p, int64_t item0, int64_t item1, int nt) {
  fwd_dispatch(p, item0, item1, nt);
  if (nt) sg_stream_fence();
}

void SG_NAME(sg_cpu_glu_backward)(const sg_glu_problem *p, int64_t item0, int64_t item1, int nt) {
  bwd_dispatch(p, item0, item1, nt);
  if (nt) sg_stream_fence();
}

/* ------------------------------------------------------------ quantization */

typedef uint8_t vb __attribute__((vector_size(SG_W), aligned(1)));

/* Index lists of the in-register transpose (the GEMM's pack_b) and of the
 * quantizer's group maxima (v_hmax_rows): at distance d, the lanes with bit
 * d set in row i swap with the lanes with bit d clear in row i + d; after
 * every d the W x W block is transposed. */
#if SG_W == 16
#define SG_TR_TOP_8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define SG_TR_BOT_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define SG_TR_TOP_4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define SG_TR_BOT_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define SG_TR_TOP_2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define SG_TR_BOT_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define SG_TR_TOP_1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define SG_TR_BOT_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#elif SG_W == 8
#define SG_TR_TOP_4 0, 1, 2, 3, 8, 9, 10, 11
#define SG_TR_BOT_4 4, 5, 6, 7, 12, 13, 14, 15
#define SG_TR_TOP_2 0, 1, 8, 9, 4, 5, 12, 13
#define SG_TR_BOT_2 2, 3, 10, 11, 6, 7, 14, 15
#define SG_TR_TOP_1 0, 8, 2, 10, 4, 12, 6, 14
#define SG_TR_BOT_1 1, 9, 3, 11, 5, 13, 7, 15
#elif SG_W == 4
#define SG_TR_TOP_2 0, 1, 4, 5
#define SG_TR_BOT_2 2, 3, 6, 7
#define SG_TR_TOP_1 0, 4, 2, 6
#define SG_TR_BOT_1 1, 5, 3, 7
#endif
#define SG_TR_STAGE(d)                                         \
  for (int i = 0; i < SG_W; ++i)                               \
    if (!(i & d)) {                                            \
      const vf a = r[i], b = r[i + d];                         \
      r[i] = __builtin_shufflevector(a, b, SG_TR_TOP_##d);     \
      r[i + d] = __builtin_shufflevector(a, b, SG_TR_BOT_##d); \
    }
/* Lane j of the result: the largest of r[j]'s lanes (unsigned). The
 * transpose's stages with a maximum where it swaps: after distance d, row i
 * (i < d) holds the partial maxima of rows i, i + d, ... in its lane
 * blocks, and at d = 1 row 0 holds every row's in order. */
#define SG_HMAX_STAGE(d)                                                        \
  for (int i = 0; i < (d); ++i) {                                               \
    const vu a = r[i], b = r[i + (d)];                                          \
    r[i] = sg_v_umax(__builtin_shufflevector(a, b, SG_TR_TOP_##d),              \
                     __builtin_shufflevector(a, b, SG_TR_BOT_##d));             \
  }
static inline __attribute__((always_inline)) vu v_hmax_rows(vu r[SG_W]) {
#if SG_W >= 16
  SG_HMAX_STAGE(8)
#endif
#if SG_W >= 8
  SG_HMAX_STAGE(4)
#endif
  SG_HMAX_STAGE(2)
  SG_HMAX_STAGE(1)
  return r[0];
}
#undef SG_HMAX_STAGE

/* The code of q = x / scale, rounded to nearest even into the format and
 * saturated to +-fmax. x gives the sign and NaN-ness, q the magnitude: a
 * quotient that came out NaN from a finite or infinite x (Inf / scale in
 * the division-free form below) saturates, -0 keeps its sign, so the
 * division needs no special-value fix-up of its own.
 * clean: the group is known to hold no NaN or Inf and no quotient that
 * rounds past fmax (sg_clean_group), and q = |x| / scale. Then neither the
 * saturation nor the NaN code can occur, and the subnormal rounding is
 * needed only by a vector with a lane below the smallest normal (~1% of
 * the vectors of swiglu-bench's data): the AVX-512 loop's twenty vector
 * operations become fifteen, for the same codes. */
static inline __attribute__((always_inline)) vu v_encode(vf x, vf q, const sg_fmt f, const int clean) {
  /* minps(a, bound) returns the bound when a is NaN */
  const vf a = clean ? q : sg_v_min(v_abs(q), v_set(f.fmax));
  const vu ab = (vu)a;
  const int sh = 23 - f.mbits;
  /* the exponent rebias is subtracted before the shift (it is a multiple of
   * 2^23, so the round-to-even bit taken from ab is unchanged) */
  const vu normal = (ab + ((1u << (sh - 1)) - 1u - ((uint32_t)(127 - f.bias) << 23)) + ((ab >> sh) & 1u)) >> sh;
  /* below the smallest normal, the float sum a + c (ulp(c) = the format's
   * subnormal spacing) rounds a onto the subnormal grid, ties to even */
  vu code = normal;
  /* clean == 2: the caller knows no lane lies below the smallest normal */
  if (!clean || (clean == 1 && __builtin_expect(sg_v_any_lt(a, f.min_normal), 0))) {
    const vu sub = (vu)(a + f.c) - (vu)v_set(f.c);
    code = (vu)sg_v_blend_ge(a, v_set(f.min_normal), (vf)normal, (vf)sub);
  }
  vu sign = ((vu)x >> (31 - f.sign_shift)) & (1u << f.sign_shift);
  if (f.fnuz) sign = (vu)((vi)sign & (code != 0u)); /* no negative zero */
  if (clean) return code | sign;
  return (vu)sg_v_blend_nan(x, (vf)((vu){0} + f.nan_code), (vf)(code | sign));
}

static inline __attribute__((always_inline)) vu v_encode_int8(vf x, vf q, const int clean) {
  /* NaN quotient of a non-NaN x: saturate (clean: as v_encode) */
  const vf a = clean ? q : sg_v_min(v_abs(q), v_set(127.0f));
  const vi m = __builtin_convertvector((a + 12582912.0f) - 12582912.0f, vi); /* nearest even */
  const vi neg = (vi)x < 0;
  const vi i = (m ^ neg) - neg;
  return (vu)(clean ? i : i & ~(vi)(x != x)) & 0xffu;
}

static inline __attribute__((always_inline)) vu v_encode_fmt(vf x, vf q, int format, const int clean) {
  return format == SWIGLU_QUANT_INT8 ? v_encode_int8(x, q, clean) : v_encode(x, q, sg_fmt_of(format), clean);
}

/* Whether a group may take v_encode's clean form: its values finite (from
 * amax_finite) and its largest quotient amax / div -- the quotient rounds
 * correctly, so it is monotone and bounds every other -- below a bound that
 * rounds to fmax at most: fmax (1 + 2^-(mbits + 2)), which with fmax <
 * 2^(e+1) stays short of fmax plus half the top spacing 2^(e - mbits), the
 * midpoint where rounding would leave the range (127.25 for INT8, whose
 * 127.5 rounds to 128; test_glu_quant's sample_dist 7 probes the edge). fp32 and UE8M0 scales stay below it; MX's
 * scale (2^floor(log2 amax) / 256) passes it for the top 15% of a binade. */
static inline float sg_clean_bound(int format) {
  return format == SWIGLU_QUANT_INT8 ? 127.25f
                                     : sg_fmt_of(format).fmax * (1.0f + 0.25f / (float)(1 << sg_fmt_of(format).mbits));
}
static inline int sg_clean_group(int format, int finite, float amax, float div) {
  if (!finite || format == SWIGLU_QUANT_NVFP4) return 0;
  return amax / div < sg_clean_bound(format);
}

/* Largest |h| over the finite elements of h[0, n) (NaN and Inf count as 0);
 * n is a multiple of 8. */
static __attribute__((noinline)) float amax_finite_slow(const float *h, int64_t n) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float a = __builtin_fabsf(h[i]);
    if (a <= 3.40282347e38f && a > m) m = a;
  }
  return m;
}
/* The same, and *finite = no NaN or Inf in h[0, n). The maximum is taken over
 * |h|'s bits as integers, where NaN's lie above Inf's and Inf's above every
 * finite value: one maximum a vector gives both answers (a float maximum
 * skips NaN). Only a group with a NaN or an Inf is scanned again. Two
 * accumulators: the max chain's latency, not its count, bounds one. */
static inline __attribute__((always_inline)) vu v_umax_abs(const float *h, int64_t n) {
  const vu mag = (vu){0} + 0x7fffffffu;
  vu acc0 = (vu){0}, acc1 = (vu){0};
  int64_t i = 0;
  for (; i + 2 * SG_W <= n; i += 2 * SG_W) {
    acc0 = sg_v_umax((vu)v_load_f32(h + i) & mag, acc0);
    acc1 = sg_v_umax((vu)v_load_f32(h + i + SG_W) & mag, acc1);
  }
  for (; i + SG_W <= n; i += SG_W) acc0 = sg_v_umax((vu)v_load_f32(h + i) & mag, acc0);
  return sg_v_umax(acc0, acc1);
}
static inline __attribute__((always_inline)) float amax_finite(const float *h, int64_t n, int *finite) {
  const vu acc = v_umax_abs(h, n); /* lane-wise over the whole vectors */
  int64_t i = n - n % SG_W;
  uint32_t t = 0; /* the tail, n % SG_W lanes */
  for (; i < n; ++i) {
    const uint32_t b = sg_f2u(h[i]) & 0x7fffffffu;
    t = b > t ? b : t;
  }
  *finite = !sg_v_any((vi)(acc > 0x7f7fffffu)) && t <= 0x7f7fffffu;
  if (!*finite) return amax_finite_slow(h, n);
  const float m = sg_v_hmax((vf)acc); /* finite lanes >= 0 order as their bits */
  return m > sg_u2f(t) ? m : sg_u2f(t);
}

/* h / div for one vector. Correctly rounded without a division when fast
 * (2^-86 <= div <= 2^126, so that y is normal):
 * Markstein's correction of h * RN(1/div) (sg_markstein in quant_scalar.h;
 * the GPU's sg_divider_of says why div >= 2^-86 is required). For -0 it
 * gives +0 and for +-Inf NaN; v_encode reads sign and NaN from h, so
 * neither changes a code. fast == 2: div is a power of two (UE8M0 and MX
 * scales), so y is exact and x * y is the quotient rounded once, as the
 * division rounds it (subnormal and infinite results included): two
 * operations a vector fewer. */
static inline __attribute__((always_inline)) vf v_quotient(vf x, vf d, vf y, int fast) {
  if (!fast) return x / d;
  if (fast == 2) return x * y;
  const vf q0 = x * y;
  return sg_v_fma(sg_v_fma(-q0, d, x), y, q0);
}

/* Codes for h[0, n) / div, written to out (NVFP4: n / 2 bytes, low nibble
 * first). The loop over whole vectors is kept free of the tail and of the
 * per-group choices, which are hoisted into separate instances. po: h is in
 * pair order (fwd_cols' hpo) and n a multiple of 4 SG_W, so that only the
 * four-vector loop runs, whose narrowing then restores the order. */
static inline __attribute__((always_inline)) void encode_group_as(const float *h, int64_t n,
                                                                  float div, float y, const int format,
                                                                  const int fast, const int clean,
                                                                  const int po, uint8_t *out) {
  const vf d = v_set(div), vy = v_set(y); /* y = RN(1 / div) */
  int64_t i = 0;
  /* clean: the quotient of |x| (v_encode), RN being symmetric */
  /* !fast: the quotient is IEEE's and carries the sign and NaN itself, which
   * differ from h's for the scales only this form takes (negative, zero,
   * NaN, infinite: a static scale is the caller's data) */
#define SG_CODES32(x)                                                                        \
  ({                                                                                         \
    const vf q_ = v_quotient(clean ? v_abs(x) : (x), d, vy, fast);                            \
    v_encode_fmt(fast ? (x) : q_, q_, format, clean);                                        \
  })
#define SG_CODES(x) sg_narrow_u8(SG_CODES32(x))
  if (format != SWIGLU_QUANT_NVFP4) {
#ifdef sg_narrow_u8x4
    const vu perm = sg_narrow_u8x4_perm(po);
    /* clean FP8: one subnormal test for the four quotients (their minimum),
     * where v_encode's own test took a compare, a mask move and a branch
     * for each; a block with a lane below the smallest normal takes those */
    const int sub4 = clean && format != SWIGLU_QUANT_INT8;
    const float mn = sub4 ? sg_fmt_of(format).min_normal : 0.0f;
    for (; i + 4 * SG_W <= n; i += 4 * SG_W) {
      const vf x0 = v_load_f32(h + i), x1 = v_load_f32(h + i + SG_W);
      const vf x2 = v_load_f32(h + i + 2 * SG_W), x3 = v_load_f32(h + i + 3 * SG_W);
      vu c0, c1, c2, c3;
      if (sub4) {
        const vf q0 = v_quotient(v_abs(x0), d, vy, fast), q1 = v_quotient(v_abs(x1), d, vy, fast);
        const vf q2 = v_quotient(v_abs(x2), d, vy, fast), q3 = v_quotient(v_abs(x3), d, vy, fast);
        /* each branch with v_encode's clean as a constant (a variable one
         * cost the gain) */
        if (__builtin_expect(!sg_v_any_lt(sg_v_min(sg_v_min(q0, q1), sg_v_min(q2, q3)), mn), 1)) {
          c0 = v_encode_fmt(x0, q0, format, 2), c1 = v_encode_fmt(x1, q1, format, 2);
          c2 = v_encode_fmt(x2, q2, format, 2), c3 = v_encode_fmt(x3, q3, format, 2);
        } else {
          c0 = v_encode_fmt(x0, q0, format, 1), c1 = v_encode_fmt(x1, q1, format, 1);
          c2 = v_encode_fmt(x2, q2, format, 1), c3 = v_encode_fmt(x3, q3, format, 1);
        }
      } else {
        c0 = SG_CODES32(x0), c1 = SG_CODES32(x1), c2 = SG_CODES32(x2), c3 = SG_CODES32(x3);
      }
      const vu bytes = (vu)sg_narrow_u8x4(c0, c1, c2, c3, perm);
      memcpy(out + i, &bytes, sizeof bytes);
    }
#else
    (void)po;
#endif
    for (; i + SG_W <= n; i += SG_W) {
      const vf x = v_load_f32(h + i);
      const vb bytes = SG_CODES(x);
      memcpy(out + i, &bytes, sizeof bytes);
    }
  }
  for (; i < n; i += SG_W) {
    const int64_t k = n - i < SG_W ? n - i : SG_W;
    SG_ALIGNED float t[SG_W] = {0};
    memcpy(t, h + i, (size_t)k * 4);
    const vf x = v_load_f32(t);
    const vb bytes = SG_CODES(x);
#undef SG_CODES
#undef SG_CODES32
    uint8_t tmp[SG_W];
    memcpy(tmp, &bytes, sizeof bytes);
    if (format == SWIGLU_QUANT_NVFP4)
      for (int64_t j = 0; j < k; j += 2) out[(i + j) / 2] = (uint8_t)(tmp[j] | (tmp[j + 1] << 4));
    else
      memcpy(out + i, tmp, (size_t)k);
  }
}

/* Codes of k consecutive groups of G values each: group j is h[j G, +G) /
 * div[j], all zero where zero[j]; amax[j] and finite[j] as amax_finite gave
 * them. One call per chunk of h, the format's instance chosen once for all
 * of its groups. */
static SG_AI void encode_groups_as(const float *h, int64_t k, int64_t G, const float *div,
                                   const uint8_t *zero, const float *amax, const uint8_t *finite,
                                   const float *ys, const uint8_t *cleans, const int format, const int po,
                                   uint8_t *out) {
  const int64_t ob = format == SWIGLU_QUANT_NVFP4 ? G / 2 : G; /* output bytes per group */
  for (int64_t j = 0; j < k; ++j) {
    const float d = div[j], y = ys ? ys[j] : 1.0f / d;
    const float *hj = h + j * G;
    uint8_t *oj = out + j * ob;
    if (zero[j]) { /* every code is 0 (docs/numerics.md) */
      memset(oj, 0, (size_t)ob);
    } else if (d >= 0x1p-86f && d <= 0x1p126f) { /* false for NaN; y is normal */
      const int clean = cleans ? cleans[j] : sg_clean_group(format, finite[j], amax[j], d);
      if ((sg_f2u(d) & 0x7fffffu) == 0) { /* a power of two (d is normal here) */
        if (clean) encode_group_as(hj, G, d, y, format, 2, 1, po, oj);
        else encode_group_as(hj, G, d, y, format, 2, 0, po, oj);
      } else {
        if (clean) encode_group_as(hj, G, d, y, format, 1, 1, po, oj);
        else encode_group_as(hj, G, d, y, format, 1, 0, po, oj);
      }
    } else {
      encode_group_as(hj, G, d, y, format, 0, 0, po, oj);
    }
  }
}

/* ys, cleans: RN(1 / div[j]) and sg_clean_group's answers where the caller
 * has them (chunk_scales), else NULL */
static void encode_groups(const float *h, int64_t k, int64_t G, const float *div, const uint8_t *zero,
                          const float *amax, const uint8_t *finite, const float *ys, const uint8_t *cleans,
                          int format, int po, uint8_t *out) {
#define SG_ENC(fmt) encode_groups_as(h, k, G, div, zero, amax, finite, ys, cleans, fmt, po, out)
  switch (format) {
    case SWIGLU_QUANT_FP8_E4M3FNUZ: SG_ENC(SWIGLU_QUANT_FP8_E4M3FNUZ); break;
    case SWIGLU_QUANT_FP8_E5M2: SG_ENC(SWIGLU_QUANT_FP8_E5M2); break;
    case SWIGLU_QUANT_INT8: SG_ENC(SWIGLU_QUANT_INT8); break;
    case SWIGLU_QUANT_NVFP4: SG_ENC(SWIGLU_QUANT_NVFP4); break;
    default: SG_ENC(SWIGLU_QUANT_FP8_E4M3FN); break;
  }
#undef SG_ENC
}

/* Column-major scales (every layout but row-major) of a block of consecutive
 * rows of one expert, kept until the block ends and then stored group by
 * group: one row's groups lie a column apart (rows_padded * 4 bytes), and
 * storing them as they come touched a page per group and row (~10 cycles
 * each in TLB misses); a block's scales of one group are adjacent. Entries
 * hold the scale's bits as sg_write_scale takes them (sf for the fp32
 * encodings, sb for the others). */
typedef struct {
  uint32_t *v;       /* [SG_QUANT_SCALE_ROWS][groups] */
  int64_t e, m0, n;  /* the block: rows m0 .. m0 + n - 1 of expert e */
} sg_scale_block;

static void scale_block_flush(const sg_quant_problem *p, sg_scale_block *b) {
  const int fp32 = sg_scale_is_fp32(p);
  for (int64_t g = 0; g < p->groups; ++g)
    for (int64_t i = 0; i < b->n; ++i) {
      const uint32_t v = b->v[i * p->groups + g];
      sg_write_scale(p, b->e, b->m0 + i, g, fp32 ? sg_u2f(v) : 0.0f, v);
    }
  for (int64_t i = 0; i < b->n; ++i) sg_pad_packed(p, b->e, b->m0 + i);
  b->n = 0;
}

/* The maxima, scales and encoder inputs of a chunk's k groups of G values
 * (G a multiple of SG_W), SG_W groups at a time, for the FP8 and INT8
 * formats with per-group or per-row scales: the same values as
 * amax_finite, sg_group_scale_amax (whose division by fmax is IEEE's on the
 * CPU), 1 / div and sg_clean_group one group at a time, which spent ~40
 * cycles a group of 128 (~2.6 a vector of 16) in a horizontal maximum and
 * three scalar divisions on each group's critical path. bits[j]: the scale
 * as the encoding stores it (fp32 bits, or the exponent byte). */
static SG_AI void chunk_scales(const sg_quant_problem *p, const float *h, int64_t k, int64_t G, float *amax,
                               uint8_t *finite, float *div, uint8_t *zero, float *ys, uint8_t *cleans,
                               uint32_t *bits) {
  const int fmt = p->format;
  const float fmax = sg_fmax_of(fmt);
  const float bound = sg_clean_bound(fmt);
  const int fp32 = p->encoding == SWIGLU_SCALE_FP32;
  for (int64_t j0 = 0; j0 < k; j0 += SG_W) {
    const int64_t nb = k - j0 < SG_W ? k - j0 : SG_W;
    vu r[SG_W];
    for (int64_t jj = 0; jj < SG_W; ++jj) r[jj] = jj < nb ? v_umax_abs(h + (j0 + jj) * G, G) : (vu){0};
    const vu m = v_hmax_rows(r); /* |h|'s bits: NaN > Inf > every finite value */
    vf am = (vf)m;
    const vi fin = (vi)(m <= 0x7f7fffffu);
    if (__builtin_expect(sg_v_any(~fin), 0)) { /* the groups with NaN or Inf: their finite maxima */
      float t[SG_W];
      memcpy(t, &am, sizeof t);
      for (int64_t jj = 0; jj < nb; ++jj)
        if (!(fin[jj])) t[jj] = amax_finite_slow(h + (j0 + jj) * G, G);
      memcpy(&am, t, sizeof t);
    }
    vf s = sg_v_blend_lt(am, v_set(p->amax_floor), v_set(p->amax_floor), am) / fmax;
    vu b = (vu)s;
    if (!fp32) { /* rounded up to a power of two: sg_ue8m0_of */
      const vu u = (vu)s & 0x7fffffffu;
      vu e = (u >> 23) + (vu)(-(vi)((u & 0x7fffffu) != 0u));
      e = (vu)v_sel((vi)(e < 1u), (vf)((vu){0} + 1u), (vf)e);
      e = (vu)v_sel((vi)(e > 254u), (vf)((vu){0} + 254u), (vf)e);
      s = (vf)(e << 23);
      b = p->encoding == SWIGLU_SCALE_FP32_UE8M0 ? (vu)s : e;
    }
    const vf y = 1.0f / s;
    const vi cl = fin & (vi)((am / s) < bound);
    float tam[SG_W], ts[SG_W], ty[SG_W];
    uint32_t tb[SG_W];
    int32_t tf[SG_W], tc[SG_W];
    memcpy(tam, &am, sizeof tam);
    memcpy(ts, &s, sizeof ts);
    memcpy(ty, &y, sizeof ty);
    memcpy(tb, &b, sizeof tb);
    memcpy(tf, &fin, sizeof tf);
    memcpy(tc, &cl, sizeof tc);
    for (int64_t jj = 0; jj < nb; ++jj) {
      amax[j0 + jj] = tam[jj];
      finite[j0 + jj] = (uint8_t)(tf[jj] != 0);
      div[j0 + jj] = ts[jj];
      zero[j0 + jj] = 0;
      ys[j0 + jj] = ty[jj];
      cleans[j0 + jj] = (uint8_t)(tc[jj] != 0);
      bits[j0 + jj] = tb[jj];
    }
  }
}

/* SG_QUANT_COLS (cpu_kernels.h), the columns of h computed ahead of their
 * groups' scales and codes: whole groups, few enough that h stays in L1
 * between being written and being read twice (a row of 14336 fp32 values
 * would not). */

/* fwd_cols' hpo and encode_group_as' po for the quantizer's h */
#if SG_PAIR_BF16 && defined(sg_narrow_u8x4)
#define SG_QUANT_PAIRS 1
#else
#define SG_QUANT_PAIRS 0
#endif

/* Quantizes rows [row0, row1). h is per-thread scratch of SG_QUANT_SCRATCH(width) floats. */
static SG_AI void quant_rows(const sg_quant_problem *p, const int act, const int32_t gd,
                             const int32_t ud, int64_t row0, int64_t row1, float *h) {
  const int64_t H = p->glu.width, G = p->group, M = p->rows_per_expert;
  sg_glu_problem fp = p->glu; /* the forward op, writing h into the scratch */
  const int32_t hd = p->round_dtype >= 0 ? p->round_dtype : SG_F32;
  fp.h.dtype = hd;
  uint16_t *h16 = (uint16_t *)(h + H + 64); /* SG_QUANT_H16(H) halves; unused for fp32 h */
  sg_scale_block sblk = {(uint32_t *)(h + H + 64 + SG_QUANT_H16(H) / 2 + 16), 0, 0, 0};
  const int buffered = p->scales && p->layout != SWIGLU_SCALE_ROW_MAJOR;
  const int fp32_scale = sg_scale_is_fp32(p);
  /* A static (per-tensor) scale needs no row maximum: its rows go in
   * chunks as groups do, each chunk one "group" (of SG_QUANT_COLS columns
   * or the rest), and h stays in L1 where a whole wide row would not */
  const int per_tensor = p->granularity == SWIGLU_SCALE_PER_TENSOR;
  const int64_t C = per_tensor ? (H > SG_QUANT_COLS ? SG_QUANT_COLS : H)
                   : G <= 0 || G > SG_QUANT_COLS ? H : SG_QUANT_COLS / G * G;
  /* a chunk's groups: at most SG_QUANT_COLS / 8, or 1 */
  float divs[SG_QUANT_COLS / 8], amaxs[SG_QUANT_COLS / 8], ys[SG_QUANT_COLS / 8];
  uint8_t zeros[SG_QUANT_COLS / 8], finites[SG_QUANT_COLS / 8], cleans[SG_QUANT_COLS / 8];
  uint32_t sbits[SG_QUANT_COLS / 8];
  /* the formats and granularities chunk_scales takes */
  const int fmt = p->format;
  const int vec_scales = !per_tensor && G % SG_W == 0 &&
                         (fmt == SWIGLU_QUANT_FP8_E4M3FN || fmt == SWIGLU_QUANT_FP8_E4M3FNUZ ||
                          fmt == SWIGLU_QUANT_FP8_E5M2 || fmt == SWIGLU_QUANT_INT8);
  for (int64_t r = row0; r < row1; ++r) {
    const int64_t e = r / M, m = r % M;
    if (p->expert_counts && m >= p->expert_counts[e]) continue;
    if (buffered && sblk.n && (sblk.e != e || sblk.m0 + sblk.n != m || sblk.n == SG_QUANT_SCALE_ROWS))
      scale_block_flush(p, &sblk);
    if (buffered && !sblk.n) sblk.e = e, sblk.m0 = m;
    uint8_t *qrow = (uint8_t *)p->q.base + sg_row_offset(&p->q, r);
    for (int64_t c0 = 0; c0 < H; c0 += C) {
      const int64_t n = H - c0 < C ? H - c0 : C;
      const int64_t Gc = per_tensor ? n : G, g0 = c0 / Gc, k = n / Gc;
      /* h in pair order where every group is whole blocks of four vectors
       * (encode_group_as); the maxima do not care about the order */
      const int po = SG_QUANT_PAIRS && gd == SG_BF16 && ud == SG_BF16 && hd == SG_F32 &&
                     fp.gate.col_step != 2 && fmt != SWIGLU_QUANT_NVFP4 && Gc % (4 * SG_W) == 0;
      if (hd == SG_F32) {
        sg_rowptrs q;
        row_ptrs(&fp, r, c0, 0, &q);
        q.h = (char *)h;
        if (po) fwd_cols(&fp, act, gd, ud, q, n, 0, 1);
        else fwd_cols(&fp, act, gd, ud, q, n, 0, 0);
      } else {
        /* The forward op itself, whose bits the rounding flag promises, on
         * a one-row view of row r (its width, so the same narrow-row choice)
         * over the work items that hold columns [c0, c0 + n), into h16 at
         * the same columns; then widened. Called, not inlined: this flag's
         * own copies of the forward loop had been a third of the
         * quantizer's code (six activations by four dtype pairs of them in
         * each ISA build). */
        sg_rowptrs qc;
        row_ptrs(&fp, r, 0, 0, &qc);
        sg_glu_problem one = fp;
        one.rows = 1;
        one.gate.base = (char *)qc.g;
        one.up.base = (char *)qc.u;
        one.h.base = (char *)h16;
        one.gate.row_stride = one.up.row_stride = one.h.row_stride = 0;
        one.h.col_step = 1;
        fwd_dispatch(&one, c0 / SG_CHUNK, (c0 + n + SG_CHUNK - 1) / SG_CHUNK, 0);
        for (int64_t i = 0; i < n; i += SG_W) v_store_f32(h + i, v_load((char *)(h16 + c0 + i), hd));
      }
      if (p->row_weight) {
        const vf w = v_set(p->row_weight[r]);
        for (int64_t i = 0; i < n; i += SG_W) v_store_f32(h + i, v_load_f32(h + i) * w);
      }
      /* maxima, then scales, then codes, each over the chunk's groups: the
       * scales of different groups do not wait on each other, where one
       * group's maximum -> division -> scale -> codes was a chain of ~60
       * cycles of latency per group */
      /* (per-tensor scales too: there the maximum only picks the encoder);
       * one group a chunk (per-row scales) gains nothing from chunk_scales */
      const int vec = vec_scales && k > 1; /* Gc = G here */
      if (vec) {
        chunk_scales(p, h, k, Gc, amaxs, finites, divs, zeros, ys, cleans, sbits);
      } else {
        for (int64_t j = 0; j < k; ++j) {
          int fin = 0;
          amaxs[j] = amax_finite(h + j * Gc, Gc, &fin);
          finites[j] = (uint8_t)fin;
        }
        for (int64_t j = 0; j < k; ++j) {
          float sf;
          uint32_t sb;
          int z;
          divs[j] = sg_group_scale(p, p->format, amaxs[j], &sf, &sb, &z);
          zeros[j] = (uint8_t)z;
          sbits[j] = fp32_scale ? sg_f2u(sf) : sb;
        }
      }
      for (int64_t j = 0; j < k; ++j) {
        if (buffered)
          sblk.v[sblk.n * p->groups + g0 + j] = sbits[j];
        else if (p->scales)
          sg_write_scale(p, e, m, g0 + j, sg_u2f(sbits[j]), sbits[j]);
      }
      encode_groups(h, k, Gc, divs, zeros, amaxs, finites, vec ? ys : NULL, vec ? cleans : NULL, p->format, po,
                    qrow + (p->format == SWIGLU_QUANT_NVFP4 ? c0 / 2 : c0));
    }
    if (buffered) ++sblk.n;
    else if (p->scales) sg_pad_packed(p, e, m);
  }
  if (sblk.n) scale_block_flush(p, &sblk);
}

/* As the forward's: an instance per activation and input dtype, and one
 * general instance for mixed gate/up dtypes */
#define SG_DEFINE_QUANT_ACT(act)                                                              \
  static void quant_act##act(const sg_quant_problem *p, int64_t r0, int64_t r1, float *h) {   \
    const int32_t gd = p->glu.gate.dtype;                                                     \
    if (gd == SG_BF16) quant_rows(p, act, SG_BF16, SG_BF16, r0, r1, h);                       \
    else if (gd == SG_F16) quant_rows(p, act, SG_F16, SG_F16, r0, r1, h);                     \
    else quant_rows(p, act, SG_F32, SG_F32, r0, r1, h);                                       \
  }
SG_DEFINE_QUANT_ACT(0)
SG_DEFINE_QUANT_ACT(1)
SG_DEFINE_QUANT_ACT(2)
SG_DEFINE_QUANT_ACT(3)
SG_DEFINE_QUANT_ACT(4)
SG_DEFINE_QUANT_ACT(5)

static void quant_mixed(const sg_quant_problem *p, int64_t r0, int64_t r1, float *h) {
  quant_rows(p, p->glu.activation, p->glu.gate.dtype, p->glu.up.dtype, r0, r1, h);
}

void SG_NAME(sg_cpu_glu_quant)(const sg_quant_problem *p, int64_t row0, int64_t row1, float *h) {
  if (p->glu.gate.dtype != p->glu.up.dtype) {
    quant_mixed(p, row0, row1, h);
    return;
  }
  switch (p->glu.activation) {
    case 0: quant_act0(p, row0, row1, h); break;
    case 1: quant_act1(p, row0, row1, h); break;
    case 2: quant_act2(p, row0, row1, h); break;
    case 3: quant_act3(p, row0, row1, h); break;
    case 4: quant_act4(p, row0, row1, h); break;
    default: quant_act5(p, row0, row1, h); break;
  }
}

#include "cpu_gemm_impl.h"
