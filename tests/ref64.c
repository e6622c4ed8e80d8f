#include "ref64.h"

#include <float.h>
#include <math.h>
#include <string.h>

const char *const t_dtype_name[3] = {"f32", "f16", "bf16"};

swiglu_dtype t_dtype(int t) {
  swiglu_dtype d = {SWIGLU_DTYPE_FLOAT, 32, 1};
  if (t == T_F16) d.bits = 16;
  if (t == T_BF16) d.code = SWIGLU_DTYPE_BFLOAT, d.bits = 16;
  return d;
}
size_t t_size(int t) { return t == T_F32 ? 4 : 2; }

/* Format parameters: fraction bits, minimum normal exponent. */
static void fmt(int t, int *frac, int *emin) {
  if (t == T_F16) *frac = 10, *emin = -14;
  else *frac = t == T_BF16 ? 7 : 23, *emin = -126;
}

double t_max(int t) {
  int frac, emin;
  fmt(t, &frac, &emin);
  int emax = t == T_F16 ? 15 : 127;
  return ldexp(2.0 - ldexp(1.0, -frac), emax);
}

double t_round(double v, int t) {
  if (v == 0 || !isfinite(v)) return v;
  int frac, emin, e;
  fmt(t, &frac, &emin);
  frexp(v, &e); /* |v| = f 2^e, f in [0.5, 1): leading bit is 2^(e-1) */
  int lead = e - 1 < emin ? emin : e - 1;
  double q = ldexp(1.0, lead - frac);
  double r = rint(v / q) * q; /* v / q is exact: a power-of-two scaling */
  if (fabs(r) > t_max(t)) return copysign(INFINITY, v);
  return r;
}

double t_ulp(double v, int t) {
  int frac, emin, e;
  fmt(t, &frac, &emin);
  if (!isfinite(v) || v == 0) return ldexp(1.0, emin - frac);
  frexp(v, &e);
  int lead = e - 1 < emin ? emin : e - 1;
  return ldexp(1.0, lead - frac);
}

static double decode_f16(uint16_t h) {
  int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
  double v;
  if (e == 31) v = m ? NAN : INFINITY;
  else if (e == 0) v = ldexp(m, -24);
  else v = ldexp(1024 + m, e - 25);
  return s ? -v : v;
}

double t_read(const void *base, int t, int64_t i) {
  if (t == T_F32) {
    float f;
    memcpy(&f, (const char *)base + 4 * i, 4);
    return f;
  }
  uint16_t h;
  memcpy(&h, (const char *)base + 2 * i, 2);
  if (t == T_F16) return decode_f16(h);
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

void t_write(void *base, int t, int64_t i, double v) {
  double r = t_round(v, t);
  if (t == T_F32) {
    float f = (float)r;
    memcpy((char *)base + 4 * i, &f, 4);
    return;
  }
  uint16_t h;
  if (t == T_BF16) {
    float f = (float)r; /* exact: r is a bf16 value */
    uint32_t u;
    memcpy(&u, &f, 4);
    h = isnan(r) ? 0x7fc0 : (uint16_t)(u >> 16);
  } else {
    /* encode fp16 by hand */
    uint16_t s = signbit(r) ? 0x8000 : 0;
    double a = fabs(r);
    if (isnan(r)) h = 0x7e00;
    else if (isinf(a)) h = s | 0x7c00;
    else if (a < ldexp(1.0, -14)) h = s | (uint16_t)(a / ldexp(1.0, -24));
    else {
      int e;
      double f = frexp(a, &e); /* a = f 2^e */
      h = s | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)((f * 2 - 1) * 1024);
    }
  }
  memcpy((char *)base + 2 * i, &h, 2);
}

uint64_t t_next(t_rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double t_uniform(t_rng *r) { return (double)(t_next(r) >> 11) * 0x1.0p-53; }
double t_normal(t_rng *r) {
  double u1 = t_uniform(r), u2 = t_uniform(r);
  return sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
}

double t_sample(t_rng *r, int t, double limit) {
  double p = t_uniform(r), v;
  double sign = t_uniform(r) < 0.5 ? -1 : 1;
  if (p < 0.60) v = t_normal(r) * (t_uniform(r) < 0.5 ? 1.0 : 4.0);
  else if (p < 0.75) v = (t_uniform(r) * 2 - 1) * 20;
  else if (p < 0.80) v = sign * limit * (1 + (t_uniform(r) - 0.5) * 1e-2 * (t_uniform(r) < 0.5));
  else if (p < 0.85) v = sign * exp(log(1e4) + t_uniform(r) * (log(t_max(t)) - log(1e4)));
  else if (p < 0.90) v = sign * exp(log(1e-40) + t_uniform(r) * (log(1e-3) - log(1e-40)));
  else if (p < 0.93) v = sign * 0.0;
  else if (p < 0.97) v = (t_uniform(r) * 2 - 1) * 120; /* the exp under/overflow zone */
  else {
    double s = t_uniform(r);
    v = s < 0.34 ? NAN : s < 0.67 ? INFINITY : -INFINITY;
  }
  return t_round(v, t);
}

static double sigmoid(double z) {
  if (z >= 0) return 1.0 / (1.0 + exp(-z));
  double e = exp(z);
  return e / (1.0 + e);
}

/* x * sigmoid(z) with the limits at infinity: x * 0 is a zero of x's sign. */
static double x_sigmoid(double x, double z) {
  double s = sigmoid(z);
  if (s == 0) return copysign(0.0, x);
  return x * s;
}

void t_activation(int act, double alpha, double limit, double gate, double up, t_act *o) {
  o->m = up;
  o->dm = 1;
  double g = gate;
  switch (act) {
    case SWIGLU_ACT_SILU:
    case SWIGLU_ACT_SILU_GPTOSS:
    case SWIGLU_ACT_SILU_CLAMPED: {
      double al = act == SWIGLU_ACT_SILU_GPTOSS ? alpha : 1.0;
      if (act != SWIGLU_ACT_SILU) {
        g = gate > limit ? limit : gate; /* NaN stays NaN */
        double u = up > limit ? limit : up < -limit ? -limit : up;
        o->m = act == SWIGLU_ACT_SILU_GPTOSS ? u + 1 : u;
        o->dm = (up > limit || up < -limit) ? 0 : 1;
      }
      double s = sigmoid(al * g), sc = 1 - s;
      if (al * g < 0) sc = 1.0 / (1.0 + exp(al * g));
      o->a = x_sigmoid(g, al * g);
      if (isinf(g)) {
        o->da = s; /* the limits 1 and 0 */
        o->da_terms = s;
      } else {
        o->da = s + al * g * s * sc;
        o->da_terms = fabs(s) + fabs(al * g * s * sc);
      }
      if (act != SWIGLU_ACT_SILU && gate > limit) o->da = 0, o->da_terms = 0;
      break;
    }
    case SWIGLU_ACT_GELU_TANH: {
      const double c = 2 * sqrt(2 / M_PI), k = 0.044715;
      double z = c * (g + k * g * g * g);
      double s = sigmoid(z), sc = z < 0 ? 1.0 / (1.0 + exp(z)) : 1 - s;
      o->a = x_sigmoid(g, z);
      if (isinf(g)) {
        o->da = o->da_terms = s;
      } else {
        double t2 = g * s * sc * c * (1 + 3 * k * g * g);
        if (s * sc == 0) t2 = 0; /* the tails, where g^3 may overflow */
        o->da = s + t2;
        o->da_terms = fabs(s) + fabs(t2);
      }
      break;
    }
    case SWIGLU_ACT_GELU_ERF: {
      double cdf = 0.5 * erfc(-g / sqrt(2.0));
      double pdf = exp(-0.5 * g * g) / sqrt(2 * M_PI);
      o->a = cdf == 0 ? copysign(0.0, g) : g * cdf;
      if (isinf(g)) {
        o->da = o->da_terms = cdf;
      } else {
        o->da = cdf + g * pdf;
        o->da_terms = fabs(cdf) + fabs(g * pdf);
      }
      break;
    }
    case SWIGLU_ACT_RELU:
    default:
      o->a = isnan(g) ? g : g > 0 ? g : 0.0;
      o->da = isnan(g) ? g : g > 0 ? 1.0 : 0.0;
      o->da_terms = fabs(o->da);
      break;
  }
  if (isnan(gate)) o->a = o->da = gate;
  if (isnan(up)) o->m = up;
  if (isnan(up) && act != SWIGLU_ACT_SILU && act >= SWIGLU_ACT_SILU_GPTOSS) o->dm = up;
}

/* The fp32 value of an intermediate: correctly rounded, overflowing to inf. */
static double f32(double v) { return t_round(v, T_F32); }

/* A product of fp32 intermediates, as fp32 arithmetic forms it. *amb is set
 * when an infinity meets a factor so small (|f| < 2^-140) that whether the
 * fp32 evaluation rounded it to zero (giving NaN) is not defined by the
 * tolerance: then both NaN and the infinity are accepted. */
static double f32_mul(double a, double b, int *amb) {
  if ((isinf(a) && fabs(b) < 0x1.0p-140) || (isinf(b) && fabs(a) < 0x1.0p-140)) *amb = 1;
  return f32(a * b);
}

void t_glu_reference(int act, double alpha, double limit, double gate, double up, double dh,
                     t_glu_ref *o) {
  t_act a;
  t_activation(act, alpha, limit, gate, up, &a);
  /* Exact values, computed from the fp32-rounded activation pieces so that
   * zeros, infinities and NaN arise where fp32 arithmetic makes them. */
  double a32 = f32(a.a), da32 = f32(a.da), m32 = f32(a.m);
  memset(o, 0, sizeof *o);
  o->h = f32_mul(a32, m32, &o->h_amb);
  o->dgate = f32_mul(f32_mul(dh, m32, &o->dgate_amb), da32, &o->dgate_amb);
  o->dup = f32_mul(f32_mul(dh, a32, &o->dup_amb), a.dm, &o->dup_amb);
  if (isfinite(o->h) && isfinite(a.a)) o->h = a.a * a.m; /* unrounded where finite */
  if (isfinite(o->dgate) && isfinite(a.da)) o->dgate = dh * a.m * a.da;
  if (isfinite(o->dup) && isfinite(a.a)) o->dup = dh * a.a * a.dm;
  /* Sensitivity to the rounding of the activation's argument, |gate d/dgate|,
   * by central difference in double (0 where not finite). */
  double eps = 1e-7 * (fabs(gate) > 1e-30 ? fabs(gate) : 1e-30);
  t_act lo, hi;
  t_activation(act, alpha, limit, gate - eps, up, &lo);
  t_activation(act, alpha, limit, gate + eps, up, &hi);
  double dadg = (hi.a - lo.a) / (2 * eps), ddadg = (hi.da - lo.da) / (2 * eps);
  double h_arg = fabs(gate * dadg * a.m);
  double dg_arg = fabs(gate * ddadg * dh * a.m);
  double du_arg = fabs(gate * dadg * dh * a.dm);
  o->h_arg = isfinite(h_arg) ? h_arg : 0;
  o->dup_arg = isfinite(du_arg) ? du_arg : 0;
  double terms = fabs(dh * a.m) * a.da_terms;
  o->dgate_scale = (isfinite(terms) ? terms : 0) + (isfinite(dg_arg) ? dg_arg : 0);
  /* fp32 activations below the normal range carry an absolute error of a
   * few 2^-149 (times |gate| where the activation is gate * tail). */
  double g = isfinite(gate) ? fabs(gate) : 0;
  double sub = 2 * 0x1.0p-149 * (1 + g);
  o->h_abs = isfinite(a.m) ? sub * fabs(a.m) : 0;
  o->dgate_abs = isfinite(dh * a.m) ? sub * fabs(dh * a.m) : 0;
  o->dup_abs = isfinite(dh) ? sub * fabs(dh) : 0;
}

int t_accept(double exact, double got, int t, double n_ulp, double k, double scale,
             double abs_extra, int ambiguous) {
  if (ambiguous && (isnan(got) || isinf(got))) return 1;
  if (isnan(exact)) return isnan(got);
  if (isnan(got)) return 0;
  if (isinf(exact)) return got == exact;
  double rn = t_round(exact, t);
  if (isinf(rn)) return got == rn || got == copysign(t_max(t), exact);
  if (isinf(got)) return 0;
  double tol = (n_ulp + 0.5) * t_ulp(exact, t) + k * 0x1.0p-24 * scale + abs_extra;
  return fabs(got - exact) <= tol;
}

int64_t t_glu_col(int layout, int64_t H, int64_t f, int up) {
  switch (layout) {
    case SWIGLU_LAYOUT_UP_GATE: return up ? f : H + f;
    case SWIGLU_LAYOUT_INTERLEAVED: return 2 * f + up;
    default: return up ? H + f : f;
  }
}
