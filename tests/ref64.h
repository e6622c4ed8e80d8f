/*
 * The float64 scalar reference for the tests: element encoding and rounding
 * written from the format definitions, the GLU ops evaluated in double from
 * docs/numerics.md, and the tolerance rule stated there. Nothing here calls
 * or shares code with the library.
 */
#ifndef SWIGLU_TESTS_REF64_H
#define SWIGLU_TESTS_REF64_H

#include <stddef.h>
#include <stdint.h>

#include "swiglu/swiglu.h"

enum { T_F32 = 0, T_F16 = 1, T_BF16 = 2 };
extern const char *const t_dtype_name[3];
swiglu_dtype t_dtype(int t);
size_t t_size(int t);

/* Element I/O: decode to double; encode a double rounded to nearest even. */
double t_read(const void *base, int t, int64_t i);
void t_write(void *base, int t, int64_t i, double v);
double t_round(double v, int t);  /* correctly rounded to format t, as double */
double t_ulp(double v, int t);    /* ulp of format t at |v|, floored at the subnormal spacing */
double t_max(int t);              /* largest finite value */

/* Deterministic generator (splitmix64). */
typedef struct { uint64_t s; } t_rng;
uint64_t t_next(t_rng *r);
double t_uniform(t_rng *r); /* [0, 1) */
double t_normal(t_rng *r);
/* The mixture the suite feeds every op: ordinary values, large and tiny
 * magnitudes, zeros, values at the clamp limit, NaN and +-Inf; already
 * rounded to format t. */
double t_sample(t_rng *r, int t, double limit);

/* Column of gate (up = 0) or up (up = 1) feature f in a packed [.., 2H]
 * GLU layout (SWIGLU_LAYOUT_GATE_UP, _UP_GATE, _INTERLEAVED); also the
 * row of a packed [2H, D] weight. */
int64_t t_glu_col(int layout, int64_t H, int64_t f, int up);

/* The reference activation and its pieces for one (gate, up) pair. */
typedef struct {
  double a, m;   /* act(g) and the up multiplier */
  double da, dm; /* their derivatives w.r.t. gate and up */
  double da_terms; /* sum of |terms| of da (its cancellation magnitude) */
} t_act;
void t_activation(int act, double alpha, double limit, double gate, double up, t_act *o);

/* Reference results for one element, each with its error scale. */
typedef struct {
  double h, dgate, dup;
  double h_arg, dgate_scale, dup_arg; /* magnitudes entering the tolerance */
  double h_abs, dgate_abs, dup_abs;   /* absolute error allowed from subnormal fp32 pieces */
  int h_amb, dgate_amb, dup_amb;      /* inf times a near-zero: NaN or inf both accepted */
} t_glu_ref;
void t_glu_reference(int act, double alpha, double limit, double gate, double up, double dh,
                     t_glu_ref *o);

/* The tolerance rule of docs/numerics.md: got (already in format t) is
 * accepted when |got - exact| <= (n_ulp + 1/2) ulp_t(exact) + k * 2^-24 * scale
 * + abs_extra; NaN must match NaN, an infinite exact value needs the same
 * infinity, and an exact value past the format's range accepts the infinity
 * or the largest finite value of its sign. Returns 1 when accepted. */
int t_accept(double exact, double got, int t, double n_ulp, double k, double scale,
             double abs_extra, int ambiguous);

#endif
