#include "ref_quant.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bits of exponent and fraction, exponent bias, whether all-ones exponent
 * holds finite values (the FN/FNUZ formats) */
static void params(int f, int *eb, int *mb, int *bias, int *nbits) {
  *nbits = 8;
  switch (f) {
    case SWIGLU_QUANT_FP8_E4M3FNUZ: *eb = 4, *mb = 3, *bias = 8; break;
    case SWIGLU_QUANT_FP8_E5M2: *eb = 5, *mb = 2, *bias = 15; break;
    case SWIGLU_QUANT_NVFP4: *eb = 2, *mb = 1, *bias = 1, *nbits = 4; break;
    default: *eb = 4, *mb = 3, *bias = 7; break; /* E4M3FN, MXFP8 */
  }
}

double rq_decode(int f, uint8_t code) {
  if (f == SWIGLU_QUANT_INT8) return (double)(int8_t)code;
  int eb, mb, bias, nbits;
  params(f, &eb, &mb, &bias, &nbits);
  const int sign = (code >> (nbits - 1)) & 1;
  const int e = (code >> mb) & ((1 << eb) - 1), m = code & ((1 << mb) - 1);
  if (f == SWIGLU_QUANT_FP8_E4M3FNUZ && code == 0x80) return NAN;
  if ((f == SWIGLU_QUANT_FP8_E4M3FN || f == SWIGLU_QUANT_MXFP8) && e == 15 && m == 7) return NAN;
  if (f == SWIGLU_QUANT_FP8_E5M2 && e == 31) return m ? NAN : (sign ? -INFINITY : INFINITY);
  double v = e ? ldexp(1.0 + ldexp(m, -mb), e - bias) : ldexp(m, 1 - bias - mb);
  return sign ? -v : v;
}

double rq_format_max(int f) {
  switch (f) {
    case SWIGLU_QUANT_FP8_E4M3FNUZ: return 240;
    case SWIGLU_QUANT_FP8_E5M2: return 57344;
    case SWIGLU_QUANT_INT8: return 127;
    case SWIGLU_QUANT_NVFP4: return 6;
    default: return 448;
  }
}

static uint8_t nan_code(int f) {
  switch (f) {
    case SWIGLU_QUANT_FP8_E4M3FNUZ: return 0x80;
    case SWIGLU_QUANT_FP8_E5M2: return 0x7e;
    case SWIGLU_QUANT_INT8:
    case SWIGLU_QUANT_NVFP4: return 0;
    default: return 0x7f;
  }
}

/* The values of format f's non-negative codes, decoded once, and how many
 * of them are finite and within the format's maximum (*nvalid): rq_encode
 * reads them for every value it encodes, and decoding them each time (two
 * ldexp calls a code, all codes scanned) was 85% of test_glu_quant's time.
 * Filled on first use, so not for concurrent first calls (the tests call
 * the reference from one thread). */
static const double *positive_values(int f, int ncodes, int *nvalid) {
  static double table[SWIGLU_QUANT_NVFP4 + 1][128];
  static int valid[SWIGLU_QUANT_NVFP4 + 1];
  if (!valid[f]) {
    int n = 0;
    for (int c = 0; c < ncodes; ++c) {
      table[f][c] = rq_decode(f, (uint8_t)c);
      if (isfinite(table[f][c]) && table[f][c] <= rq_format_max(f)) n = c + 1;
    }
    /* rq_encode's search needs the valid codes first, their values rising
     * to the format's maximum */
    for (int c = 0; c < n; ++c) {
      if (!(isfinite(table[f][c]) && (c == 0 || table[f][c] > table[f][c - 1]))) {
        fprintf(stderr, "ref_quant: format %d's codes do not rise at %d\n", f, c);
        abort();
      }
    }
    if (table[f][n - 1] != rq_format_max(f)) {
      fprintf(stderr, "ref_quant: format %d's largest code is not its maximum\n", f);
      abort();
    }
    valid[f] = n;
  }
  *nvalid = valid[f];
  return table[f];
}

uint8_t rq_encode(int f, double v) {
  if (isnan(v)) return nan_code(f);
  if (f == SWIGLU_QUANT_INT8) {
    double r = v > 127 ? 127 : v < -127 ? -127 : nearbyint(v); /* ties to even */
    return (uint8_t)(int8_t)r;
  }
  int eb, mb, bias, nbits, n;
  params(f, &eb, &mb, &bias, &nbits);
  const double a = fabs(v), *values = positive_values(f, 1 << (nbits - 1), &n);
  /* the nearest of the codes' values, ties to the even code (the even
   * mantissa); past the maximum, the maximum (saturation) */
  int best = n - 1;
  if (a < values[n - 1]) {
    int lo = 0, hi = n - 1; /* values[lo] <= a < values[hi] */
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      if (values[mid] <= a) lo = mid;
      else hi = mid;
    }
    const double dlo = a - values[lo], dhi = values[hi] - a;
    best = dlo < dhi ? lo : dhi < dlo ? hi : (lo % 2 == 0 ? lo : hi);
  }
  if (!signbit(v)) return (uint8_t)best;
  if (f == SWIGLU_QUANT_FP8_E4M3FNUZ && best == 0) return 0; /* no negative zero */
  return (uint8_t)(best | (1 << (nbits - 1)));
}

void rq_group_scale(const swiglu_quant_desc *d, const float *h, int64_t n, float tensor_scale,
                    float *div, float *scale_f32, uint8_t *scale_byte) {
  double amax = 0;
  for (int64_t i = 0; i < n; ++i)
    if (isfinite(h[i]) && fabs(h[i]) > amax) amax = fabs(h[i]);
  *scale_f32 = 0;
  *scale_byte = 0;
  if (d->granularity == SWIGLU_SCALE_PER_TENSOR) {
    *div = tensor_scale;
    return;
  }
  int k;
  if (d->format == SWIGLU_QUANT_MXFP8) {
    int shared;
    if (d->flags & SWIGLU_QUANT_MX_SCALE_ROUND_UP) {
      float s = (float)(amax / 448.0);
      double f = frexp(s, &k); /* s = f 2^k */
      int e = s == 0 ? -200 : (f == 0.5 ? k - 1 : k);
      shared = e < -126 ? -126 : e > 127 ? 127 : e;
    } else {
      double f = frexp(amax, &k);
      (void)f;
      int fl = amax < ldexp(1.0, -126) ? -126 : k - 1; /* floor(log2 amax); 0 counts as 2^-126 */
      shared = fl - 8 < -127 ? -127 : fl - 8 > 127 ? 127 : fl - 8;
    }
    *scale_byte = (uint8_t)(shared + 127);
    *div = (float)ldexp(1.0, shared);
    return;
  }
  if (d->format == SWIGLU_QUANT_NVFP4) {
    float t = (float)(amax / (double)(float)(6.0 * tensor_scale));
    *scale_byte = rq_encode(SWIGLU_QUANT_FP8_E4M3FN, t);
    *div = (float)(rq_decode(SWIGLU_QUANT_FP8_E4M3FN, *scale_byte) * tensor_scale);
    return;
  }
  if (amax < d->amax_floor) amax = d->amax_floor;
  float s = (float)(amax / rq_format_max(d->format));
  if (d->scale_encoding == SWIGLU_SCALE_FP32) {
    *div = *scale_f32 = s;
    return;
  }
  double f = frexp(s, &k);
  int e = f == 0.5 ? k - 1 : k; /* ceil(log2 s) */
  int biased = e + 127 < 1 ? 1 : e + 127 > 254 ? 254 : e + 127;
  *scale_byte = (uint8_t)biased;
  *div = *scale_f32 = (float)ldexp(1.0, biased - 127);
}
