/*
 * The CPU GLU kernels, written once over GCC/Clang vector extensions and
 * compiled once per ISA (cpu_kernels_avx512.c, cpu_kernels_avx2.c,
 * cpu_kernels_generic.c). The including file defines:
 *   SG_W            lanes per vector (16, 8, 4)
 *   SG_NAME(x)      x with the ISA suffix appended
 *   sg_v_fma(a,b,c) fused a*b+c
 *   sg_load_f16 / sg_store_f16: fp16 <-> fp32 conversion of one vector
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

typedef float vf __attribute__((vector_size(SG_W * 4), aligned(4)));
typedef int32_t vi __attribute__((vector_size(SG_W * 4), aligned(4)));
typedef uint32_t vu __attribute__((vector_size(SG_W * 4), aligned(4)));
typedef uint16_t vh __attribute__((vector_size(SG_W * 2), aligned(2)));

#define SG_CHUNK 512 /* columns per work item; a multiple of every SG_W */

static inline vf v_set(float x) { return (vf){0} + x; }
static inline vi vi_set(int32_t x) { return (vi){0} + x; }
static inline vf v_sel(vi mask, vf a, vf b) { return (vf)(((vi)a & mask) | ((vi)b & ~mask)); }
static inline vf v_abs(vf x) { return (vf)((vi)x & vi_set(0x7fffffff)); }
static inline vf v_signbit(vf x) { return (vf)((vi)x & vi_set((int32_t)0x80000000u)); }
/* NaN-preserving clamps: a NaN compares false and passes through unchanged. */
static inline vf v_min_keepnan(vf x, vf hi) { return v_sel(x > hi, hi, x); }
static inline vf v_max_keepnan(vf x, vf lo) { return v_sel(x < lo, lo, x); }

/* ------------------------------------------------------------ conversions */

static inline vf v_load_f32(const void *p) {
  vf v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void v_store_f32(void *p, vf v) { memcpy(p, &v, sizeof v); }

static inline vf v_load_bf16(const void *p) {
  vh h;
  memcpy(&h, p, sizeof h);
  return (vf)(__builtin_convertvector(h, vu) << 16);
}
/* Round to nearest even; NaN stays NaN (quiet bit set). */
static inline void v_store_bf16(void *p, vf v) {
  vu u = (vu)v;
  vu r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  vu q = (u >> 16) | 0x40u;
  vi nan = v != v;
  r = (vu)(((vi)q & nan) | ((vi)r & ~nan));
  vh h = __builtin_convertvector(r, vh);
  memcpy(p, &h, sizeof h);
}

static inline vf v_load(const char *p, int32_t dt) {
  if (dt == SG_BF16) return v_load_bf16(p);
  if (dt == SG_F16) return sg_load_f16(p);
  return v_load_f32(p);
}
static inline void v_store(char *p, int32_t dt, vf v) {
  if (dt == SG_BF16)
    v_store_bf16(p, v);
  else if (dt == SG_F16)
    sg_store_f16(p, v);
  else
    v_store_f32(p, v);
}

/* Reads n (<= SG_CHUNK) consecutive elements into dst (fp32), zero-padding
 * to a multiple of SG_W. */
static void load_row(float *dst, const char *src, int32_t dt, int64_t n) {
  const size_t es = sg_dtype_size(dt);
  int64_t i = 0;
  for (; i + SG_W <= n; i += SG_W) v_store_f32(dst + i, v_load(src + i * es, dt));
  if (i < n) {
    char tmp[SG_W * 4] = {0};
    memcpy(tmp, src + i * es, (size_t)(n - i) * es);
    v_store_f32(dst + i, v_load(tmp, dt));
  }
}

/* Interleaved pairs (gate0, up0, gate1, up1, ...): splits 2n elements. */
static void load_pairs(float *ga, float *ua, const char *src, int32_t dt, int64_t n) {
  const size_t es = sg_dtype_size(dt);
  for (int64_t i = 0; i < n; i += SG_W) {
    vf a, b;
    if (i + SG_W <= n) {
      a = v_load(src + 2 * i * es, dt);
      b = v_load(src + (2 * i + SG_W) * es, dt);
    } else {
      char tmp[2 * SG_W * 4] = {0};
      memcpy(tmp, src + 2 * i * es, (size_t)(2 * (n - i)) * es);
      a = v_load(tmp, dt);
      b = v_load(tmp + SG_W * es, dt);
    }
    v_store_f32(ga + i, __builtin_shufflevector(a, b, SG_EVEN_LANES));
    v_store_f32(ua + i, __builtin_shufflevector(a, b, SG_ODD_LANES));
  }
}

static void store_row(char *dst, int32_t dt, const float *src, int64_t n) {
  const size_t es = sg_dtype_size(dt);
  int64_t i = 0;
  for (; i + SG_W <= n; i += SG_W) v_store(dst + i * es, dt, v_load_f32(src + i));
  if (i < n) {
    char tmp[SG_W * 4];
    v_store(tmp, dt, v_load_f32(src + i));
    memcpy(dst + i * es, tmp, (size_t)(n - i) * es);
  }
}

static void store_pairs(char *dst, int32_t dt, const float *ga, const float *ua, int64_t n) {
  const size_t es = sg_dtype_size(dt);
  for (int64_t i = 0; i < n; i += SG_W) {
    vf g = v_load_f32(ga + i), u = v_load_f32(ua + i);
    vf a = __builtin_shufflevector(g, u, SG_ZIP_LO_LANES);
    vf b = __builtin_shufflevector(g, u, SG_ZIP_HI_LANES);
    if (i + SG_W <= n) {
      v_store(dst + 2 * i * es, dt, a);
      v_store(dst + (2 * i + SG_W) * es, dt, b);
    } else {
      char tmp[2 * SG_W * 4];
      v_store(tmp, dt, a);
      v_store(tmp + SG_W * es, dt, b);
      memcpy(dst + 2 * i * es, tmp, (size_t)(2 * (n - i)) * es);
    }
  }
}

/* ------------------------------------------------------------------ math */

/* exp(a + b) for a + b <= 0, as p * 2^n with p in about [0.7, 1.42] and
 * n <= 0; b is a small correction term (the low half of an
 * argument that was computed exactly as a + b). Cody-Waite reduction with a
 * two-part ln 2 keeps r accurate to an ulp; the degree-7 Taylor polynomial
 * has a truncation error below 5e-9 on |r| <= ln(2)/2. a must be >= -170 so
 * that both halves of 2^n stay normal (v_pow2_split). */
static inline vf v_exp_parts(vf a, vf b, vi *n) {
  const vf shifter = v_set(12582912.0f); /* 1.5 * 2^23: rounds to an integer */
  vf t = sg_v_fma(a + b, v_set(1.44269504088896341f), shifter);
  vf k = t - shifter;
  *n = (vi)t - (vi)shifter;
  vf r = sg_v_fma(k, v_set(-0.693145751953125f), a);
  r = sg_v_fma(k, v_set(-1.428606765330187e-06f), r);
  r = r + b;
  vf q = v_set(1.0f / 5040.0f);
  q = sg_v_fma(q, r, v_set(1.0f / 720.0f));
  q = sg_v_fma(q, r, v_set(1.0f / 120.0f));
  q = sg_v_fma(q, r, v_set(1.0f / 24.0f));
  q = sg_v_fma(q, r, v_set(1.0f / 6.0f));
  q = sg_v_fma(q, r, v_set(0.5f));
  q = sg_v_fma(q, r * r, r); /* r + r^2 q: the 1 is added last, once */
  return q + 1.0f;
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
  vi far; /* |z| > 150: exp(-|z|) and every product with it round to 0 in fp32 */
} sg_logistic;

static inline sg_logistic v_logistic(vf x, vf za, vf zb) {
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
  o.far = far;
  return o;
}

/* Phi(x) = P(X <= x) for standard normal X, and the density phi(x), through
 * erfc(s / sqrt 2) = exp(-s^2 / 2) F(s) for s = |x| with F(s) = t P(t),
 * t = 1 / (1 + s/2): no cancellation for negative x. The polynomial was
 * fitted by tools/fit_gelu_erfc.py (relative error 2.3e-7 in fp32). */
static inline void v_normal_cdf_pdf(vf x, vf *cdf, vf *pdf) {
  vf s = v_abs(x);
  vf s_cl = v_sel(s > 14.5f, v_set(14.5f), s);
  vf x2 = s_cl * s_cl;
  vf x2lo = sg_v_fma(s_cl, s_cl, -x2); /* x^2 = x2 + x2lo exactly */
  vi n;
  vf p = v_exp_parts(-0.5f * x2, -0.5f * x2lo, &n);
  vf s1, s2;
  v_pow2_split(n, &s1, &s2);
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
  vf tail = (f * p) * s1 * s2; /* P(X > s) = 0.5 erfc(s / sqrt 2) = exp(-s^2/2) F(s) / 2 */
  vi far = s > 14.5f;
  tail = v_sel(far, v_set(0.0f), tail);
  *cdf = v_sel(x < 0.0f, tail, 1.0f - tail);
  vf dens = (p * 0.398942280401432678f) * s1 * s2;
  *pdf = v_sel(far, v_set(0.0f), dens);
  /* NaN in, NaN out (the comparisons above send NaN down the 1 - tail path). */
  vi nan = x != x;
  *cdf = v_sel(nan, x, *cdf);
  *pdf = v_sel(nan, x, *pdf);
}

/* One activation evaluated on a vector of (gate, up): a = act(g) where g is
 * the (possibly clamped) gate, m = the up multiplier (u, clamped, +1 for
 * gpt-oss); with want_grad, da = d act / d gate at g (0 where the gate
 * clamp is active) and dm = d m / d up (0 where the up clamp is active). */
typedef struct {
  vf a, m, da, dm;
} sg_act;

static inline sg_act v_activation(int act, float alpha, float limit, vf gate, vf up,
                                  int want_grad) {
  sg_act o;
  o.m = up;
  o.dm = v_set(1.0f);
  switch (act) {
    case 0: /* SiLU */
    default: {
      sg_logistic l = v_logistic(gate, gate, v_set(0.0f));
      o.a = l.xs;
      /* far: keeps inf * 0 out of the limits silu'(+inf) = 1, silu'(-inf) = 0 */
      if (want_grad) o.da = v_sel(l.far, l.sig, sg_v_fma(l.xs, l.sigc, l.sig));
      break;
    }
    case 1: { /* GELU tanh: x * sigmoid(2 * sqrt(2/pi) * (x + 0.044715 x^3)) */
      vf x2 = gate * gate;
      vf inner = sg_v_fma(0.044715f * x2, gate, gate);
      vf z = inner * 1.5957691216057308f;
      sg_logistic l = v_logistic(gate, z, v_set(0.0f));
      o.a = l.xs;
      if (want_grad) {
        vf dz = sg_v_fma(x2, v_set(3.0f * 0.044715f * 1.5957691216057308f),
                         v_set(1.5957691216057308f));
        o.da = v_sel(l.far, l.sig, sg_v_fma(l.xs * l.sigc, dz, l.sig));
      }
      break;
    }
    case 2: { /* GELU erf: x * Phi(x) */
      vf cdf, pdf;
      v_normal_cdf_pdf(gate, &cdf, &pdf);
      o.a = gate * cdf;
      /* -inf * Phi(-inf) = -inf * 0: the limit is -0. */
      o.a = v_sel(cdf == 0.0f, v_signbit(gate), o.a);
      /* pdf == 0 only in the tails (and at +-inf, where gate * pdf is NaN) */
      if (want_grad) o.da = v_sel(pdf == 0.0f, cdf, sg_v_fma(gate, pdf, cdf));
      break;
    }
    case 3: { /* ReLU */
      vi pos = gate > 0.0f;
      vi nan = gate != gate;
      o.a = v_sel(pos | nan, gate, v_set(0.0f));
      if (want_grad) o.da = v_sel(nan, gate, v_sel(pos, v_set(1.0f), v_set(0.0f)));
      break;
    }
    case 4:   /* gpt-oss: g * sigmoid(alpha g) * (u + 1) */
    case 5: { /* clamped SiLU: silu(g) * u */
      const vf lim = v_set(limit);
      vf g = v_min_keepnan(gate, lim);
      vf u = v_max_keepnan(v_min_keepnan(up, lim), -lim);
      float al = act == 4 ? alpha : 1.0f;
      sg_logistic l = v_logistic(g, g * al, v_set(0.0f));
      o.a = l.xs;
      o.m = act == 4 ? u + 1.0f : u;
      if (want_grad) {
        vi gate_clamped = gate > lim;
        vi up_clamped = (up > lim) | (up < -lim);
        vf da = v_sel(l.far, l.sig, sg_v_fma(l.xs * al, l.sigc, l.sig));
        o.da = v_sel(gate_clamped, v_set(0.0f), da);
        o.dm = v_sel(up_clamped, v_set(0.0f), v_set(1.0f));
        o.dm = v_sel(up != up, up, o.dm); /* a NaN up: clamped or not is unknown */
      }
      break;
    }
  }
  return o;
}

/* ----------------------------------------------------------------- driver */

typedef struct {
  SG_ALIGNED float g[SG_CHUNK], u[SG_CHUNK], dh[SG_CHUNK], o1[SG_CHUNK], o2[SG_CHUNK],
      o3[SG_CHUNK];
} sg_scratch;

static void load_gate_up(const sg_glu_problem *p, int64_t r, int64_t c0, int64_t n,
                         sg_scratch *s) {
  const char *gp = p->gate.base +
                   (sg_row_offset(&p->gate, r) + c0 * p->gate.col_step) * (int64_t)sg_dtype_size(p->gate.dtype);
  const char *upp = p->up.base +
                    (sg_row_offset(&p->up, r) + c0 * p->up.col_step) * (int64_t)sg_dtype_size(p->up.dtype);
  if (p->gate.col_step == 2) {
    load_pairs(s->g, s->u, gp, p->gate.dtype, n);
  } else {
    load_row(s->g, gp, p->gate.dtype, n);
    load_row(s->u, upp, p->up.dtype, n);
  }
}

static char *out_ptr(const sg_operand *o, int64_t r, int64_t c0) {
  return o->base + (sg_row_offset(o, r) + c0 * o->col_step) * (int64_t)sg_dtype_size(o->dtype);
}

void SG_NAME(sg_cpu_glu_forward)(const sg_glu_problem *p, int64_t item0, int64_t item1) {
  sg_scratch s;
  const int64_t chunks = (p->width + SG_CHUNK - 1) / SG_CHUNK;
  for (int64_t it = item0; it < item1; ++it) {
    const int64_t r = it / chunks, c0 = (it % chunks) * SG_CHUNK;
    const int64_t n = p->width - c0 < SG_CHUNK ? p->width - c0 : SG_CHUNK;
    load_gate_up(p, r, c0, n, &s);
    for (int64_t i = 0; i < n; i += SG_W) {
      sg_act a = v_activation(p->activation, p->alpha, p->limit, v_load_f32(s.g + i),
                              v_load_f32(s.u + i), 0);
      v_store_f32(s.o1 + i, a.a * a.m);
    }
    store_row(out_ptr(&p->h, r, c0), p->h.dtype, s.o1, n);
  }
}

void SG_NAME(sg_cpu_glu_backward)(const sg_glu_problem *p, int64_t item0, int64_t item1) {
  sg_scratch s;
  const int64_t chunks = (p->width + SG_CHUNK - 1) / SG_CHUNK;
  const int want_h = p->h.base != NULL;
  for (int64_t it = item0; it < item1; ++it) {
    const int64_t r = it / chunks, c0 = (it % chunks) * SG_CHUNK;
    const int64_t n = p->width - c0 < SG_CHUNK ? p->width - c0 : SG_CHUNK;
    load_gate_up(p, r, c0, n, &s);
    load_row(s.dh, out_ptr(&p->dh, r, c0), p->dh.dtype, n);
    for (int64_t i = 0; i < n; i += SG_W) {
      sg_act a = v_activation(p->activation, p->alpha, p->limit, v_load_f32(s.g + i),
                              v_load_f32(s.u + i), 1);
      vf dh = v_load_f32(s.dh + i);
      v_store_f32(s.o1 + i, (dh * a.m) * a.da);
      v_store_f32(s.o2 + i, (dh * a.a) * a.dm);
      if (want_h) v_store_f32(s.o3 + i, a.a * a.m);
    }
    /* The inputs of this chunk are all in scratch now, so in-place stores
     * cannot clobber anything still to be read. */
    if (p->dgate.col_step == 2) {
      store_pairs(out_ptr(&p->dgate, r, c0), p->dgate.dtype, s.o1, s.o2, n);
    } else {
      store_row(out_ptr(&p->dgate, r, c0), p->dgate.dtype, s.o1, n);
      store_row(out_ptr(&p->dup, r, c0), p->dup.dtype, s.o2, n);
    }
    if (want_h) store_row(out_ptr(&p->h, r, c0), p->h.dtype, s.o3, n);
  }
}
