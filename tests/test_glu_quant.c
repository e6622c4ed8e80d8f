/*
 * GLU + quantization on the CPU backend against tests/ref_quant.c, bit for
 * bit on codes and scales: every format, granularity, scale encoding and
 * layout, several group sizes, odd row counts, masked MoE with counts 0, 1,
 * M-1 and M, row weights, NaN / Inf / huge inputs, and the ROUND_H flag.
 * h itself comes from the forward op (already checked against float64), so
 * "fused equals forward-then-quantize" is what every case asserts; with
 * ROUND_H the forward runs in the input dtype, as the two-kernel path does.
 * Outputs and padding start poisoned: padding must come back zero, rows past
 * an expert's count untouched. Also: dequantized values within the format's
 * rounding bound, and bad inputs refused with nothing written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref64.h"
#include "ref_quant.h"
#include "open_backend.h"

#define SG_WHY 512

static long g_checks, g_failed;
static int g_shown;
static swiglu_context *ctx;

static void fail(const char *what, const char *cd, long long a, long long b, double want, double got) {
  ++g_failed;
  if (g_shown++ < 25)
    fprintf(stderr, "FAIL %s [%s] at %lld,%lld: want %.9g got %.9g\n", what, cd, a, b, want, got);
}

/* The backend's memory: a device copy of host bytes, and the way back. */
static void *dev_of(const void *host, size_t bytes) {
  void *d = NULL;
  if (swiglu_context_malloc(ctx, bytes, &d) ||
      swiglu_context_copy(ctx, d, host, bytes, SWIGLU_COPY_HOST_TO_DEVICE)) {
    fprintf(stderr, "device memory: %s\n", swiglu_context_last_error(ctx));
    exit(1);
  }
  return d;
}
static void to_host(void *host, void *dev, size_t bytes) {
  if (swiglu_context_synchronize(ctx) ||
      swiglu_context_copy(ctx, host, dev, bytes, SWIGLU_COPY_DEVICE_TO_HOST)) {
    fprintf(stderr, "device memory: %s\n", swiglu_context_last_error(ctx));
    exit(1);
  }
}
static swiglu_device dev_here(void) {
  return (swiglu_device){swiglu_context_device_type(ctx), swiglu_context_device(ctx)};
}

static const char *const fmt_name[] = {"e4m3fn", "e4m3fnuz", "e5m2", "int8", "mxfp8", "nvfp4"};
static const char *const enc_name[] = {"fp32", "fp32_ue8m0", "ue8m0_packed", "e8m0", "e4m3"};
static const char *const lay_name[] = {"row", "col", "col_tma"};

typedef struct {
  int act, layout, tin, format, gran, enc, slayout, round_h, weight, masked, mx_up;
  int mixed;    /* separate layout: up in the dtype after tin (up_dtype) */
  int64_t E, M, H, G;
  int64_t xpad; /* x's rows this many elements apart beyond their width (a view) */
  int dist;     /* the inputs' distribution: 0 the general one, else sample_dist's */
  float alpha;  /* gpt-oss alpha, where not 0 (else the descriptor's default) */
  float floor;    /* the amax floor, where not 0 (else the default) */
  int wspecial;   /* with weight: 1 row weights -0, 0, negative, subnormal, huge, Inf, NaN; 2 all 2^-31 */
  int tscale_set; /* tscale below is the static (PER_TENSOR) or global (NVFP4) scale */
  float tscale;
} qcase;

/* Inputs shaped like real activations, with the cases a backend may treat
 * apart from them (the CUDA quantizer's verified fp32 h: its candidates for
 * the group maximum, quotients near a code boundary, tiny groups, lanes that
 * take the exact path next to lanes that do not):
 *  1: gate ~ N(0, 2), up ~ N(0, 1);
 *  2: a few values only, so many elements share their group's maximum;
 *  3: values within 2^-18 of each other (fp32 inputs; else as 2);
 *  4: 1 with each row's up scaled by 2^-70 (a tiny group), 2^-61 (around
 *     2^-60), by 2^-140..2^20 element by element (h that underflow), or
 *     2^124 (h near and past the fp32 range); fp16 inputs: as 1;
 *  5: 1 with one element in 500 zero, NaN, infinite or huge;
 *  6: 1 with one gate in 8 near where a fast form hands over to the
 *     exact one (|z| near 87, |x sigma(z)| near 2^-99, for each
 *     activation's z: gates around 2^-97, 8.5, 10, 37.6, 64, 72, 87), or
 *     far past it (100, 10^4: a lane of the exact path that holds its
 *     group's maximum);
 *  7: gate 32 (SiLU(32) = 32 exactly) and up uniform on +-490/32: with
 *     MX's power-of-two scales each group's largest quotient, its largest
 *     |h| (the top of G uniforms on [0, 490]), lands around the edge of
 *     saturation (E4M3: 448, the midpoint 464), where a backend may leave
 *     out the saturation for groups known not to reach it. */
static double sample_dist(t_rng *rng, const qcase *k, int64_t row, int up) {
  static const double few[6] = {-3.0, -1.0, 0.5, 1.0, 2.0, 4.0};
  const double n = t_normal(rng) * (up ? 1.0 : 2.0);
  switch (k->dist) {
    case 2:
      return few[(int)(t_uniform(rng) * 6)] * (up && t_uniform(rng) < 0.5 ? -0.5 : 1.0);
    case 3:
      if (k->tin != T_F32) return few[(int)(t_uniform(rng) * 6)];
      return (up ? 1.0 : 2.0) + ldexp((double)(int)(t_uniform(rng) * 16), up ? -22 : -21);
    case 4:
      if (!up || k->tin == T_F16) return n;
      switch (row % 4) {
        case 0: return ldexp(n, -70);
        case 1: return ldexp(n, -61);
        case 2: return ldexp(n, -140 + (int)(t_uniform(rng) * 160));
        default: return ldexp(n, 124);
      }
    case 5:
      if (t_uniform(rng) < 0.002) {
        const double s = t_uniform(rng);
        return s < 0.25 ? 0.0 : s < 0.5 ? NAN : s < 0.75 ? INFINITY : ldexp(n, 100);
      }
      return n;
    case 6:
      if (!up && t_uniform(rng) < 0.125) {
        static const double edge[] = {0x1p-97, 0x1p-98, 0x1p-96, 8.5, 8.0, 9.9, 10.5, 37.6, 64.0 / 1.702,
                                      64.0, 63.5, 72.0, 86.9, 87.5, 100.0, 1e4};
        const double e = edge[(int)(t_uniform(rng) * (sizeof edge / sizeof edge[0]))];
        const double j = 1.0 + ldexp(t_uniform(rng) - 0.5, -6);
        return (t_uniform(rng) < 0.5 ? -e : e) * j;
      }
      return n;
    case 7:
      return up ? (2.0 * t_uniform(rng) - 1.0) * (490.0 / 32.0) : 32.0;
    default:
      return n;
  }
}

static swiglu_dtype code_dtype(int f) {
  if (f == SWIGLU_QUANT_INT8) return (swiglu_dtype){SWIGLU_DTYPE_INT, 8, 1};
  if (f == SWIGLU_QUANT_FP8_E4M3FN || f == SWIGLU_QUANT_MXFP8) return (swiglu_dtype){SWIGLU_DTYPE_FLOAT8_E4M3FN, 8, 1};
  return (swiglu_dtype){SWIGLU_DTYPE_UINT, 8, 1};
}

/* Half the format's spacing at magnitude y (below fmax): the largest
 * rounding error of one code, in units of the scale. */
static double half_step(int format, double y) {
  if (format == SWIGLU_QUANT_INT8) return 0.5;
  const int mbits = format == SWIGLU_QUANT_FP8_E5M2 ? 2 : format == SWIGLU_QUANT_NVFP4 ? 1 : 3;
  const int emin = format == SWIGLU_QUANT_FP8_E5M2 ? -14 : format == SWIGLU_QUANT_NVFP4 ? 0
                   : format == SWIGLU_QUANT_FP8_E4M3FNUZ ? -7 : -6;
  int e = y > 0 ? (int)floor(log2(y)) : emin;
  if (e < emin) e = emin; /* the subnormal spacing below the normal range */
  return 0.5 * ldexp(1.0, e - mbits);
}

static int64_t sidx(const qcase *k, int64_t groups_or_words, int64_t e, int64_t m, int64_t c) {
  const int64_t Mp = (k->M + 3) / 4 * 4;
  if (k->slayout == SWIGLU_SCALE_ROW_MAJOR) return (e * k->M + m) * groups_or_words + c;
  if (k->slayout == SWIGLU_SCALE_COL_MAJOR) return (e * groups_or_words + c) * k->M + m;
  return (e * groups_or_words + c) * Mp + m;
}

/* up's dtype: gate's, or with mixed the next of f32, f16, bf16 (every pair
 * of the three comes up across the inputs) */
static int up_dtype(const qcase *k) { return k->mixed ? (k->tin + 1) % 3 : k->tin; }

static void run(const qcase *k, t_rng *rng) {
  char cd[256];
  const int tup = up_dtype(k);
  snprintf(cd, sizeof cd, "act %d alpha %g layout %d %s%s%s %s gran %d %s %s G%lld E%lld M%lld H%lld xpad %lld%s%s%s%s",
           k->act, (double)k->alpha, k->layout, t_dtype_name[k->tin], k->mixed ? " up " : "",
           k->mixed ? t_dtype_name[tup] : "", fmt_name[k->format], k->gran, enc_name[k->enc],
           lay_name[k->slayout], (long long)k->G, (long long)k->E, (long long)k->M, (long long)k->H,
           (long long)k->xpad, k->round_h ? " round_h" : "", k->weight ? " weight" : "", k->masked ? " masked" : "",
           k->mx_up ? " mx_round_up" : "");
  if (k->tscale_set) snprintf(cd + strlen(cd), sizeof cd - strlen(cd), " tscale %a", (double)k->tscale);
  if (k->wspecial) strncat(cd, k->wspecial == 2 ? " weights 2^-31" : " special weights", sizeof cd - strlen(cd) - 1);
  if (k->floor != 0.0f) snprintf(cd + strlen(cd), sizeof cd - strlen(cd), " floor %a", (double)k->floor);
  const int64_t E = k->E, M = k->M, H = k->H, rows = E * M;
  const int sep = k->layout == SWIGLU_LAYOUT_SEPARATE;
  if (k->mixed && !sep) { fprintf(stderr, "test bug: mixed dtypes need the separate layout\n"); exit(1); }
  const int64_t wx = sep ? H : 2 * H;
  const size_t es = t_size(k->tin), ues = t_size(tup);
  char *x = malloc((size_t)(rows * wx) * es), *u = sep ? malloc((size_t)(rows * H) * ues) : NULL;
  if (k->dist) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < H; ++j) {
        const double gv = sample_dist(rng, k, r, 0), uv = sample_dist(rng, k, r, 1);
        if (sep) {
          t_write(x, k->tin, r * H + j, gv);
          t_write(u, tup, r * H + j, uv);
        } else {
          t_write(x, k->tin, r * wx + t_glu_col(k->layout, H, j, 0), gv);
          t_write(x, k->tin, r * wx + t_glu_col(k->layout, H, j, 1), uv);
        }
      }
  } else {
    for (int64_t i = 0; i < rows * wx; ++i) t_write(x, k->tin, i, t_sample(rng, k->tin, 7.0) * (i % 3 ? 1 : 0.01));
    if (sep) for (int64_t i = 0; i < rows * H; ++i) t_write(u, tup, i, t_sample(rng, tup, 7.0));
  }
  /* one all-zero group per case, for the amax floor */
  for (int64_t j = 0; j < (k->G < H ? k->G : H) && !sep; ++j) t_write(x, k->tin, j, 0.0), t_write(x, k->tin, H + j, 1.0);
  /* signed zeros inside a group that is not all zero (the last of row 0,
   * when H > G): h = -0 must give the code of -0 (the GPU's division keeps
   * that sign by the order of its operations alone) -- gate -0 (SiLU and
   * its kin: -0 * sigmoid(-0) * up) and gate +0 with a negative up */
  for (int z = 0; z < 2 && H >= 4; ++z) {
    const int64_t j = H - 2 + z; /* feature j of row 0 */
    const double gz = z ? 0.0 : -0.0, uz = z ? -1.5 : 1.5;
    t_write(x, k->tin, t_glu_col(k->layout, H, j, 0), gz); /* SEPARATE: column j of x */
    if (sep) t_write(u, tup, j, uz);
    else t_write(x, k->tin, t_glu_col(k->layout, H, j, 1), uz);
  }
  int64_t xs3[3] = {E, M, wx}, hs3[3] = {E, M, H};
  swiglu_glu_desc gd;
  swiglu_glu_desc_init(&gd, (swiglu_activation)k->act, (swiglu_layout)k->layout);
  if (k->alpha != 0.0f) gd.alpha = k->alpha;
  /* with xpad, x is a view whose rows are wx + xpad apart; the gaps hold
   * NaN-like bytes that must never reach a code or a scale */
  const int64_t ldx = wx + k->xpad;
  char *xv = x;
  if (k->xpad) {
    xv = malloc((size_t)(rows * ldx) * es);
    memset(xv, 0x7f, (size_t)(rows * ldx) * es);
    for (int64_t r = 0; r < rows; ++r) memcpy(xv + (size_t)(r * ldx) * es, x + (size_t)(r * wx) * es, (size_t)wx * es);
  }
  int64_t xst3[3] = {M * ldx, ldx, 1};
  void *dx = dev_of(xv, (size_t)(rows * ldx) * es), *du = sep ? dev_of(u, (size_t)(rows * H) * ues) : NULL;
  if (xv != x) free(xv);
  swiglu_tensor tx = {dx, dev_here(), 3, t_dtype(k->tin), xs3, k->xpad ? xst3 : NULL, 0};
  swiglu_tensor tu = {du, dev_here(), 3, t_dtype(tup), hs3, NULL, 0};

  /* h from the forward op: fp32, or the input dtype under ROUND_H (gate's,
   * where up's differs: the rule of docs/numerics.md) */
  const int th = k->round_h ? k->tin : T_F32;
  char *hbuf = malloc((size_t)(rows * H) * t_size(th));
  void *dh = dev_of(hbuf, (size_t)(rows * H) * t_size(th));
  swiglu_tensor thh = {dh, dev_here(), 3, t_dtype(th), hs3, NULL, 0};
  if (swiglu_glu_forward(ctx, &gd, &tx, sep ? &tu : NULL, &thh)) {
    fail("forward", cd, 0, 0, 0, 0);
    return;
  }
  to_host(hbuf, dh, (size_t)(rows * H) * t_size(th));
  float *h = malloc(sizeof(float) * (size_t)(rows * H));
  float *w = malloc(sizeof(float) * (size_t)rows);
  for (int64_t r = 0; r < rows; ++r) w[r] = (float)(0.05 + t_uniform(rng));
  if (k->wspecial == 2) {
    for (int64_t r = 0; r < rows; ++r) w[r] = 0x1p-31f; /* safe but small */
  } else if (k->wspecial) {
    static const float ws[] = {-0.0f, 0.0f, -0.7f, 1e-40f, 3e38f, INFINITY, NAN, -1.0f, 0x1p-33f};
    for (int64_t r = 0; r < rows; ++r) w[r] = ws[r % (int64_t)(sizeof ws / sizeof ws[0])];
  }
  for (int64_t i = 0; i < rows * H; ++i) {
    h[i] = (float)t_read(hbuf, th, i);
    if (k->weight) h[i] = h[i] * w[i / H];
  }
  int32_t *counts = malloc(sizeof(int32_t) * (size_t)E);
  static const int pattern[4] = {0, 1, -1, -2}; /* 0, 1, M-1, M */
  for (int64_t e = 0; e < E; ++e) {
    int p = pattern[e % 4];
    counts[e] = p >= 0 ? (p > M ? (int)M : p) : (int)(p == -1 ? M - 1 : M);
    if (!k->masked) counts[e] = (int)M;
  }

  swiglu_quant_desc qd;
  swiglu_quant_desc_init(&qd, (swiglu_quant_format)k->format, (swiglu_scale_granularity)k->gran, (int32_t)k->G);
  qd.scale_encoding = (swiglu_scale_encoding)k->enc;
  qd.scale_layout = (swiglu_scale_layout)k->slayout;
  if (k->floor != 0.0f) qd.amax_floor = k->floor;
  qd.flags = (k->round_h ? SWIGLU_QUANT_ROUND_H : 0) | (k->mx_up ? SWIGLU_QUANT_MX_SCALE_ROUND_UP : 0);
  const int nv = k->format == SWIGLU_QUANT_NVFP4;
  const int64_t G = k->gran == SWIGLU_SCALE_PER_GROUP ? k->G : H, groups = H / G;
  const int packed = k->enc == SWIGLU_SCALE_UE8M0_PACKED && k->gran != SWIGLU_SCALE_PER_TENSOR;
  const int64_t cols = packed ? (groups + 3) / 4 : groups, Mp = (M + 3) / 4 * 4;
  const size_t ses = (k->enc == SWIGLU_SCALE_E8M0 || k->enc == SWIGLU_SCALE_E4M3) ? 1 : 4;
  const int64_t qw = nv ? H / 2 : H;
  const int64_t nscale = E * cols * (k->slayout == SWIGLU_SCALE_COL_MAJOR_TMA ? Mp : M);
  uint8_t *q = malloc((size_t)(rows * qw));
  uint8_t *sc = malloc((size_t)nscale * ses + 1);
  memset(q, 0xA5, (size_t)(rows * qw));
  memset(sc, 0xA5, (size_t)nscale * ses);
  int64_t qs3[3] = {E, M, qw}, ss[3];
  int snd = 0;
  if (k->masked) ss[snd++] = E;
  if (k->slayout == SWIGLU_SCALE_ROW_MAJOR) ss[snd++] = k->masked ? M : E * M, ss[snd++] = cols;
  else ss[snd++] = cols, ss[snd++] = k->slayout == SWIGLU_SCALE_COL_MAJOR_TMA ? Mp : M;
  if (!k->masked && E != 1) { fprintf(stderr, "test bug: unmasked cases use E = 1\n"); exit(1); }
  swiglu_dtype sdt = {SWIGLU_DTYPE_FLOAT, 32, 1};
  if (packed) sdt = (swiglu_dtype){SWIGLU_DTYPE_INT, 32, 1};
  if (ses == 1) sdt = (swiglu_dtype){SWIGLU_DTYPE_UINT, 8, 1};
  float tscale = k->tscale_set ? k->tscale : nv ? 0.0137f : 0.0625f;
  int64_t one = 1, ne = E, nw = rows;
  void *dq = dev_of(q, (size_t)(rows * qw)), *dsc = dev_of(sc, (size_t)nscale * ses + 1);
  void *dts = dev_of(&tscale, 4), *dw = dev_of(w, sizeof(float) * (size_t)rows);
  void *dc = dev_of(counts, sizeof(int32_t) * (size_t)E);
  swiglu_tensor tq = {dq, dev_here(), 3, code_dtype(k->format), qs3, NULL, 0};
  swiglu_tensor ts = {dsc, dev_here(), snd, sdt, ss, NULL, 0};
  swiglu_tensor tts = {dts, dev_here(), 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, &one, NULL, 0};
  swiglu_tensor tw = {dw, dev_here(), 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, &nw, NULL, 0};
  swiglu_tensor tc = {dc, dev_here(), 1, {SWIGLU_DTYPE_INT, 32, 1}, &ne, NULL, 0};
  swiglu_quant_args a = {&tx, sep ? &tu : NULL, &tq, k->gran == SWIGLU_SCALE_PER_TENSOR ? NULL : &ts,
                         (k->gran == SWIGLU_SCALE_PER_TENSOR || nv) ? &tts : NULL, k->weight ? &tw : NULL,
                         k->masked ? &tc : NULL};
  swiglu_status st = swiglu_glu_quant(ctx, &gd, &qd, &a);
  ++g_checks;
  if (st) {
    fprintf(stderr, "FAIL quant [%s]: %s: %s\n", cd, swiglu_status_string(st), swiglu_context_last_error(ctx));
    ++g_failed;
    goto out;
  }
  to_host(q, dq, (size_t)(rows * qw));
  to_host(sc, dsc, (size_t)nscale * ses);
  for (int64_t e = 0; e < E; ++e)
    for (int64_t m = 0; m < M; ++m) {
      const int64_t r = e * M + m;
      const int live = m < counts[e];
      for (int64_t g = 0; g < groups; ++g) {
        float div, sf;
        uint8_t sb;
        rq_group_scale(&qd, h + r * H + g * G, G, tscale, &div, &sf, &sb);
        for (int64_t j = 0; j < G; ++j) {
          const int64_t c = g * G + j;
          /* NVFP4's zero scale makes zero codes; a zero static scale divides */
          uint8_t want = nv && div == 0 ? 0 : rq_encode(k->format, (double)(float)((double)h[r * H + c] / div));
          uint8_t got = nv ? (uint8_t)((q[r * qw + c / 2] >> (4 * (c & 1))) & 15) : q[r * qw + c];
          if (!live) want = nv ? (0xA5 >> (4 * (c & 1))) & 15 : 0xA5; /* untouched */
          ++g_checks;
          if (got != want) fail("code", cd, r, c, want, got);
          /* dequantized within the rounding bound of the format */
          if (live && div > 0 && isfinite(div) && isfinite(h[r * H + c]) && g_checks % 7 == 0) {
            double qv = rq_decode(k->format, got) * div, x = h[r * H + c];
            double fmax = rq_format_max(k->format);
            double y = fabs(x / div);
            double step = half_step(k->format, y);
            double bound = (y >= fmax ? y - fmax : step) * div * (1 + 1e-6) + 1e-30;
            ++g_checks;
            if (!(fabs(qv - x) <= bound)) fail("dequantized error", cd, r, c, x, qv);
          }
        }
        if (k->gran == SWIGLU_SCALE_PER_TENSOR) continue;
        int64_t idx = sidx(k, cols, e, m, packed ? g / 4 : g);
        ++g_checks;
        if (!live) {
          if (packed ? sc[idx * 4 + g % 4] != 0xA5 : sc[idx * ses] != 0xA5) fail("scale of a masked row written", cd, r, g, 0xA5, 0);
          continue;
        }
        if (packed) {
          if (sc[idx * 4 + g % 4] != sb) fail("packed scale byte", cd, r, g, sb, sc[idx * 4 + g % 4]);
        } else if (ses == 1) {
          if (sc[idx] != sb) fail("scale byte", cd, r, g, sb, sc[idx]);
        } else {
          float gotf;
          memcpy(&gotf, sc + idx * 4, 4);
          if (memcmp(&gotf, &sf, 4)) fail("fp32 scale", cd, r, g, sf, gotf);
        }
      }
      if (packed && live)
        for (int64_t g = groups; g < 4 * cols; ++g) {
          ++g_checks;
          if (sc[sidx(k, cols, e, m, g / 4) * 4 + g % 4] != 0) fail("packed word padding", cd, r, g, 0, sc[sidx(k, cols, e, m, g / 4) * 4 + g % 4]);
        }
    }
  if (k->gran != SWIGLU_SCALE_PER_TENSOR && k->slayout == SWIGLU_SCALE_COL_MAJOR_TMA)
    for (int64_t e = 0; e < E; ++e)
      for (int64_t c = 0; c < cols; ++c)
        for (int64_t m = M; m < Mp; ++m)
          for (size_t b = 0; b < ses; ++b) {
            ++g_checks;
            if (sc[sidx(k, cols, e, m, c) * ses + b] != 0) fail("TMA padding", cd, e, m, 0, sc[sidx(k, cols, e, m, c) * ses + b]);
          }
out:
  free(x), free(u), free(hbuf), free(h), free(w), free(counts), free(q), free(sc);
  swiglu_context_free(ctx, dx), swiglu_context_free(ctx, du), swiglu_context_free(ctx, dh);
  swiglu_context_free(ctx, dq), swiglu_context_free(ctx, dsc), swiglu_context_free(ctx, dts);
  swiglu_context_free(ctx, dw), swiglu_context_free(ctx, dc);
}

/* Bad inputs: a specific status, and neither codes nor scales written. */
static void bad_inputs(void) {
  enum { R = 4, H = 64 };
  static float x[R][2 * H], sc[R][H / 8];
  static uint8_t q[R][H];
  static int32_t counts[2] = {2, 3};
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < 2 * H; ++c) x[r][c] = (float)(c % 11) - 5.0f;
  int64_t xs[2] = {R, 2 * H}, qs[2] = {R, H}, ss[2] = {R, H / 32};
  swiglu_glu_desc gd;
  swiglu_glu_desc_init(&gd, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  struct {
    const char *what;
    int group, enc, layout, masked, bad_counts, ss1, qdt;
    swiglu_status want;
  } cases[] = {
      {"group does not divide H", 48, SWIGLU_SCALE_FP32, 0, 0, 0, 2, 0, SWIGLU_ERROR_BAD_SHAPE},
      {"group not a multiple of 8", 12, SWIGLU_SCALE_FP32, 0, 0, 0, 5, 0, SWIGLU_ERROR_INVALID_ARGUMENT},
      {"scales shape too small", 32, SWIGLU_SCALE_FP32, 0, 0, 0, 1, 0, SWIGLU_ERROR_BAD_SHAPE},
      {"scales dtype int32 for fp32 encoding", 32, SWIGLU_SCALE_FP32, 0, 0, 0, 2, 0, SWIGLU_ERROR_BAD_DTYPE},
      {"TMA scales buffer smaller than padded", 32, SWIGLU_SCALE_FP32, SWIGLU_SCALE_COL_MAJOR_TMA, 0, 0, 2, 0, SWIGLU_ERROR_BAD_SHAPE},
      {"codes dtype fp32", 32, SWIGLU_SCALE_FP32, 0, 0, 0, 2, 1, SWIGLU_ERROR_BAD_DTYPE},
      {"expert count larger than M", 32, SWIGLU_SCALE_FP32, 0, 1, 1, 2, 0, SWIGLU_ERROR_INVALID_ARGUMENT},
  };
  void *dx = dev_of(x, sizeof x), *dcounts = dev_of(counts, sizeof counts);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
    memset(q, 0x5A, sizeof q);
    memset(sc, 0x5A, sizeof sc);
    void *dq = dev_of(q, sizeof q), *dsc = dev_of(sc, sizeof sc);
    swiglu_quant_desc qd;
    swiglu_quant_desc_init(&qd, SWIGLU_QUANT_FP8_E4M3FN, SWIGLU_SCALE_PER_GROUP, cases[i].group);
    qd.scale_encoding = cases[i].enc;
    qd.scale_layout = cases[i].layout;
    int64_t s2[3];
    int snd = 2;
    s2[0] = ss[0], s2[1] = cases[i].ss1;
    if (cases[i].layout) s2[0] = cases[i].ss1, s2[1] = R - 1; /* needs R rounded up to 4 */
    swiglu_dtype sdt = {SWIGLU_DTYPE_FLOAT, 32, 1};
    if (i == 3) sdt = (swiglu_dtype){SWIGLU_DTYPE_INT, 32, 1};
    swiglu_dtype qdt = cases[i].qdt ? (swiglu_dtype){SWIGLU_DTYPE_FLOAT, 32, 1} : (swiglu_dtype){SWIGLU_DTYPE_UINT, 8, 1};
    int64_t x3[3] = {2, 2, 2 * H}, q3[3] = {2, 2, H}, s3[3] = {2, 2, 2};
    int64_t ne = 2;
    swiglu_tensor tx = {dx, dev_here(), 2, {SWIGLU_DTYPE_FLOAT, 32, 1}, xs, NULL, 0};
    swiglu_tensor tq = {dq, dev_here(), 2, qdt, qs, NULL, 0};
    swiglu_tensor ts = {dsc, dev_here(), snd, sdt, s2, NULL, 0};
    swiglu_tensor tc = {dcounts, dev_here(), 1, {SWIGLU_DTYPE_INT, 32, 1}, &ne, NULL, 0};
    if (cases[i].masked) tx.ndim = 3, tx.shape = x3, tq.ndim = 3, tq.shape = q3, ts.ndim = 3, ts.shape = s3;
    swiglu_quant_args a = {&tx, NULL, &tq, &ts, NULL, NULL, cases[i].masked ? &tc : NULL};
    swiglu_status st = swiglu_glu_quant(ctx, &gd, &qd, &a);
    /* GPU backends read expert counts on the device and report them at the
     * next synchronize (having written nothing); the CPU refuses at once. */
    if (st == SWIGLU_SUCCESS) st = swiglu_context_synchronize(ctx);
    char why[SG_WHY];
    snprintf(why, sizeof why, "%s", swiglu_context_last_error(ctx));
    to_host(q, dq, sizeof q);
    to_host(sc, dsc, sizeof sc);
    swiglu_context_free(ctx, dq), swiglu_context_free(ctx, dsc);
    int untouched = 1;
    for (size_t b = 0; b < sizeof q; ++b) untouched &= ((uint8_t *)q)[b] == 0x5A;
    for (size_t b = 0; b < sizeof sc; ++b) untouched &= ((uint8_t *)sc)[b] == 0x5A;
    ++g_checks;
    if (st != cases[i].want || !untouched || !why[0]) {
      ++g_failed;
      printf("FAIL bad input '%s': got %s (%s), outputs %s\n", cases[i].what, swiglu_status_string(st),
             why, untouched ? "untouched" : "WRITTEN");
    } else {
      printf("ok   bad input '%s': %s: %s\n", cases[i].what, swiglu_status_string(st), why);
    }
  }
  swiglu_context_free(ctx, dx), swiglu_context_free(ctx, dcounts);
}

/* Bad arguments of every other kind, each a change to one valid call: a
 * specific status, a message, and not one byte written anywhere in the
 * arena that holds every operand (codes and scales included, and x for the
 * cases where an output is placed inside it). Case 0 is the valid call
 * itself, so the harness is seen to accept what it should. */
static void bad_arguments(void) {
  enum { R = 4, H = 64, G = 32 };
  enum { XO = 0, QO = 2048, SO = 2304, TO = 2336, WO = 2352, BYTES = 4096 };
  static unsigned char arena[BYTES], after[BYTES];
  for (int i = 0; i < BYTES; ++i) arena[i] = 0x5A;
  for (int i = 0; i < R * 2 * H; ++i) ((float *)(arena + XO))[i] = (float)(i % 13) - 6.0f;
  ((float *)(arena + TO))[0] = 0.5f;
  for (int r = 0; r < R; ++r) ((float *)(arena + WO))[r] = 0.25f;
  const struct {
    const char *what;
    swiglu_status want;
  } cases[] = {
      {"valid call (control)", SWIGLU_SUCCESS},
      {"args NULL", SWIGLU_ERROR_NULL_POINTER},
      {"quant desc NULL", SWIGLU_ERROR_NULL_POINTER},
      {"x NULL", SWIGLU_ERROR_NULL_POINTER},
      {"codes NULL", SWIGLU_ERROR_NULL_POINTER},
      {"x data NULL", SWIGLU_ERROR_NULL_POINTER},
      {"scales NULL for per-group scales", SWIGLU_ERROR_NULL_POINTER},
      {"tensor_scale NULL for a per-tensor scale", SWIGLU_ERROR_NULL_POINTER},
      {"x of rank 1 with codes of rank 2", SWIGLU_ERROR_BAD_SHAPE},
      {"codes one column wider than H", SWIGLU_ERROR_BAD_SHAPE},
      {"codes one row short", SWIGLU_ERROR_BAD_SHAPE},
      {"row_weight one row short", SWIGLU_ERROR_BAD_SHAPE},
      {"x feature stride 2", SWIGLU_ERROR_BAD_STRIDE},
      {"x dtype int32", SWIGLU_ERROR_BAD_DTYPE},
      {"row_weight dtype bfloat16", SWIGLU_ERROR_BAD_DTYPE},
      {"format out of range", SWIGLU_ERROR_INVALID_ARGUMENT},
      {"codes inside x", SWIGLU_ERROR_OVERLAP},
      {"scales inside the codes", SWIGLU_ERROR_OVERLAP},
      {"scales inside x", SWIGLU_ERROR_OVERLAP},
      {"codes over row_weight", SWIGLU_ERROR_OVERLAP},
      {"x of 2^62 rows (byte count past int64)", SWIGLU_ERROR_SIZE_OVERFLOW},
      {"x on another device type", SWIGLU_ERROR_DEVICE_MISMATCH},
      {"per-tensor scale of two elements", SWIGLU_ERROR_BAD_SHAPE},
      {"amax floor 2^-149 (its scale would round to 0)", SWIGLU_ERROR_INVALID_ARGUMENT},
      {"amax floor Inf", SWIGLU_ERROR_INVALID_ARGUMENT},
  };
  char *d = dev_of(arena, BYTES);
  swiglu_glu_desc gd;
  swiglu_glu_desc_init(&gd, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  for (int i = 0; i < (int)(sizeof cases / sizeof *cases); ++i) {
    char *dd = dev_of(arena, BYTES);
    swiglu_context_free(ctx, d);
    d = dd;
    swiglu_quant_desc qd;
    swiglu_quant_desc_init(&qd, SWIGLU_QUANT_FP8_E4M3FN, SWIGLU_SCALE_PER_GROUP, G);
    int64_t xs[2] = {R, 2 * H}, qs[2] = {R, H}, ss[2] = {R, H / G}, ws = R, one = 1, xst[2] = {2 * H, 1};
    swiglu_tensor tx = {d + XO, dev_here(), 2, {SWIGLU_DTYPE_FLOAT, 32, 1}, xs, NULL, 0};
    swiglu_tensor tq = {d + QO, dev_here(), 2, {SWIGLU_DTYPE_UINT, 8, 1}, qs, NULL, 0};
    swiglu_tensor ts = {d + SO, dev_here(), 2, {SWIGLU_DTYPE_FLOAT, 32, 1}, ss, NULL, 0};
    int64_t two = 2;
    swiglu_tensor tt = {d + TO, dev_here(), 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, &one, NULL, 0};
    swiglu_tensor tw = {d + WO, dev_here(), 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, &ws, NULL, 0};
    swiglu_quant_args a = {&tx, NULL, &tq, &ts, NULL, &tw, NULL};
    const swiglu_quant_args *ap = &a;
    const swiglu_quant_desc *qp = &qd;
    switch (i) {
      case 1: ap = NULL; break;
      case 2: qp = NULL; break;
      case 3: a.x = NULL; break;
      case 4: a.q = NULL; break;
      case 5: tx.data = NULL; break;
      case 6: a.scales = NULL; break;
      case 7: qd.granularity = SWIGLU_SCALE_PER_TENSOR, a.scales = NULL; break;
      case 8: tx.ndim = 1, xs[0] = 2 * H; break;
      case 9: qs[1] = H + 1; break;
      case 10: qs[0] = R - 1; break;
      case 11: ws = R - 1; break;
      case 12: xst[1] = 2, xs[1] = H, tx.strides = xst; break;
      case 13: tx.dtype = (swiglu_dtype){SWIGLU_DTYPE_INT, 32, 1}; break;
      case 14: tw.dtype = (swiglu_dtype){SWIGLU_DTYPE_BFLOAT, 16, 1}; break;
      case 15: qd.format = 99; break;
      case 16: tq.data = d + XO + 256; break;
      case 17: ts.data = d + QO + 16; break;
      case 18: ts.data = d + XO + 512; break;
      case 19: tq.data = d + WO - 64; break;
      case 20: xs[0] = INT64_C(1) << 62; break;
      case 21: tx.device.device_type = dev_here().device_type == SWIGLU_DEVICE_CPU ? SWIGLU_DEVICE_CUDA : SWIGLU_DEVICE_CPU; break;
      case 22: qd.granularity = SWIGLU_SCALE_PER_TENSOR, a.scales = NULL, a.tensor_scale = &tt, tt.shape = &two; break;
      case 23: qd.amax_floor = 0x1p-149f; break;
      case 24: qd.amax_floor = INFINITY; break;
      default: break;
    }
    swiglu_status st = swiglu_glu_quant(ctx, &gd, qp, ap);
    if (st == SWIGLU_SUCCESS) st = swiglu_context_synchronize(ctx);
    char why[SG_WHY];
    snprintf(why, sizeof why, "%s", swiglu_context_last_error(ctx));
    to_host(after, d, BYTES);
    const int untouched = !memcmp(after, arena, BYTES);
    ++g_checks;
    /* the control must write (its codes are not 0x5A everywhere) */
    const int ok = i == 0 ? st == SWIGLU_SUCCESS && !untouched : st == cases[i].want && untouched && why[0];
    if (!ok) {
      ++g_failed;
      printf("FAIL bad argument '%s': got %s (%s), outputs %s\n", cases[i].what, swiglu_status_string(st), why,
             untouched ? "untouched" : "WRITTEN");
    } else {
      printf("ok   bad argument '%s': %s%s%s\n", cases[i].what, swiglu_status_string(st), i ? ": " : "",
             i ? why : "");
    }
  }
  swiglu_context_free(ctx, d);
}

/* Problems with no rows (an empty batch, a step that routed no token to
 * these experts) succeed with nothing to do, in every scale layout, their
 * tensors without memory; the empty scales had been refused as "not
 * compact". */
static void empty_cases(void) {
  const int64_t H = 256, G = 128, groups = H / G;
  static const char *const what[] = {"row-major", "column-major", "TMA-aligned", "packed UE8M0", "per-row",
                                     "row-major masked ([2, 0, *])"};
  for (int k = 0; k < 6; ++k) {
    swiglu_quant_desc qd;
    swiglu_quant_desc_init(&qd, SWIGLU_QUANT_FP8_E4M3FN, k == 4 ? SWIGLU_SCALE_PER_ROW : SWIGLU_SCALE_PER_GROUP,
                           k == 4 ? 0 : G);
    if (k == 1) qd.scale_layout = SWIGLU_SCALE_COL_MAJOR;
    if (k == 2) qd.scale_layout = SWIGLU_SCALE_COL_MAJOR_TMA;
    if (k == 3) qd.scale_layout = SWIGLU_SCALE_COL_MAJOR_TMA, qd.scale_encoding = SWIGLU_SCALE_UE8M0_PACKED;
    const int cols = k == 3 ? 1 : k == 4 ? 1 : (int)groups;
    int64_t xs[3] = {0, 2 * H}, qs[3] = {0, H}, ss[3] = {0, cols}, ws = 0, es = 2;
    int nd = 2;
    if (k == 1 || k == 2 || k == 3) ss[0] = cols, ss[1] = 0;
    if (k == 5) nd = 3, xs[0] = qs[0] = ss[0] = 2, xs[1] = qs[1] = ss[1] = 0, xs[2] = 2 * H, qs[2] = H, ss[2] = cols;
    const swiglu_dtype sdt = k == 3 ? (swiglu_dtype){SWIGLU_DTYPE_INT, 32, 1} : (swiglu_dtype){SWIGLU_DTYPE_FLOAT, 32, 1};
    swiglu_tensor tx = {NULL, dev_here(), nd, {SWIGLU_DTYPE_BFLOAT, 16, 1}, xs, NULL, 0};
    swiglu_tensor tq = {NULL, dev_here(), nd, {SWIGLU_DTYPE_UINT, 8, 1}, qs, NULL, 0};
    swiglu_tensor ts = {NULL, dev_here(), nd, sdt, ss, NULL, 0};
    swiglu_tensor tw = {NULL, dev_here(), 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, &ws, NULL, 0};
    int32_t counts_host[2] = {0, 0};
    void *counts = k == 5 ? dev_of(counts_host, sizeof counts_host) : NULL;
    swiglu_tensor tc = {counts, dev_here(), 1, {SWIGLU_DTYPE_INT, 32, 1}, &es, NULL, 0};
    swiglu_quant_args a = {&tx, NULL, &tq, &ts, NULL, k == 5 ? NULL : &tw, k == 5 ? &tc : NULL};
    swiglu_glu_desc gd;
    swiglu_glu_desc_init(&gd, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
    swiglu_status st = swiglu_glu_quant(ctx, &gd, &qd, &a);
    if (st == SWIGLU_SUCCESS) st = swiglu_context_synchronize(ctx);
    ++g_checks;
    if (st != SWIGLU_SUCCESS) {
      ++g_failed;
      printf("FAIL no rows, %s scales: %s (%s)\n", what[k], swiglu_status_string(st), swiglu_context_last_error(ctx));
    } else {
      printf("ok   no rows, %s scales: success\n", what[k]);
    }
    if (counts) swiglu_context_free(ctx, counts);
  }
}

int main(int argc, char **argv) {
  const char *backend = "cpu";
  int quick = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
    else if (!strcmp(argv[i], "--quick")) quick = 1;
  }
  const int rc = t_open_backend(backend, &ctx);
  if (rc) return rc;
  printf("backend %s on %s\n", swiglu_context_backend(ctx), swiglu_context_device_name(ctx));
  t_rng rng = {424242};
  long cases = 0;
  /* every format x granularity x encoding x layout, with rotating dtype,
   * activation, layout, group size, flags and shapes */
  for (int f = 0; f < 6; ++f)
    for (int gran = 0; gran < 3; ++gran)
      for (int enc = 0; enc < 5; ++enc)
        for (int sl = 0; sl < 3; ++sl)
          for (int variant = 0; variant < (quick ? 2 : 6); ++variant) {
            const int mx = f == SWIGLU_QUANT_MXFP8, nv = f == SWIGLU_QUANT_NVFP4;
            if ((mx || nv) && (gran != SWIGLU_SCALE_PER_GROUP || enc != (mx ? SWIGLU_SCALE_E8M0 : SWIGLU_SCALE_E4M3))) continue;
            if (!mx && !nv && enc == SWIGLU_SCALE_E4M3) continue;
            if (gran == SWIGLU_SCALE_PER_TENSOR && (enc || sl)) continue;
            static const int64_t groups[] = {32, 64, 128, 8, 48, 16};
            qcase k;
            memset(&k, 0, sizeof k);
            k.format = f, k.gran = gran, k.enc = enc, k.slayout = sl;
            k.tin = (variant + f) % 3;
            k.act = (int)((variant * 5 + f + enc) % 6);
            k.layout = (variant + sl) % 4;
            k.G = mx ? 32 : nv ? 16 : groups[(variant + enc) % 6];
            k.H = k.G * (1 + (variant % 3)) * (variant == 5 ? 5 : 1);
            if (k.H % 2) k.H *= 2;
            k.masked = variant % 2 == 1 && k.layout != SWIGLU_LAYOUT_SEPARATE ? 1 : 0;
            if (k.masked) k.layout = k.layout == SWIGLU_LAYOUT_SEPARATE ? SWIGLU_LAYOUT_GATE_UP : k.layout;
            k.E = k.masked ? 5 : 1;
            k.M = k.masked ? 1 + variant + (sl == 2) * 2 : (variant % 3 == 0 ? 1 : 7 + 26 * (variant % 2));
            k.round_h = variant % 3 == 2;
            k.weight = variant % 4 == 1;
            k.mx_up = mx && variant >= 3;
            run(&k, &rng);
            ++cases;
          }
  /* G = 128 (the serving stacks' group) over every activation, input dtype,
   * layout and ROUND_H setting, E4M3FN and E5M2, with rotating encodings,
   * scale layouts, row weights and masking: backends specialise these
   * (the CUDA one per activation, dtype, layout, E4M3FN and ROUND_H) */
  for (int act = 0; act < 6; ++act)
    for (int tin = 0; tin < 3; ++tin)
      for (int lay = 0; lay < 4; ++lay)
        for (int f8 = 0; f8 < 2; ++f8)
          for (int rh = 0; rh < 2; ++rh) {
            const int n = act + tin + lay + f8 + rh;
            if (quick && n % 3) continue;
            qcase k;
            memset(&k, 0, sizeof k);
            k.format = f8 ? SWIGLU_QUANT_FP8_E5M2 : SWIGLU_QUANT_FP8_E4M3FN;
            k.gran = SWIGLU_SCALE_PER_GROUP, k.G = 128;
            k.enc = (int[]){SWIGLU_SCALE_FP32, SWIGLU_SCALE_FP32_UE8M0, SWIGLU_SCALE_UE8M0_PACKED}[n % 3];
            k.slayout = (act + lay) % 3;
            k.tin = tin, k.act = act, k.layout = lay, k.round_h = rh;
            k.H = 128 * (1 + n % 5);
            k.masked = n % 4 == 3 && lay != SWIGLU_LAYOUT_SEPARATE;
            k.E = k.masked ? 5 : 1;
            k.M = k.masked ? 6 : 3 + 2 * (n % 7);
            k.weight = n % 2;
            /* rows 16-byte aligned (the vector path), or not (the per-row one) */
            const int xv = (act + lay + 2 * f8) % 3;
            k.xpad = xv == 1 ? 8 : xv == 2 ? 1 : 0;
            run(&k, &rng);
            ++cases;
          }
  /* G = 128, E4M3FN, fp32 h, on inputs like real activations and on the
   * special cases of sample_dist: every logistic activation, input dtype and
   * layout, rotating encodings, scale layouts, row weights, row views
   * (aligned and not: both of a backend's row paths) and masked experts,
   * 64 rows of 2048 (about 2^17 elements a case: quotients near a code
   * boundary, about one in 2^11 of them, show up in every case) */
  for (int dist = 1; dist <= 6; ++dist)
    for (int ai = 0; ai < 4; ++ai)
      for (int tin = 0; tin < 3; ++tin) {
        const int n = dist + ai + tin;
        if (quick && n % 3) continue;
        qcase k;
        memset(&k, 0, sizeof k);
        k.act = (int[]){0, 1, 4, 5}[ai];
        k.tin = tin, k.dist = dist;
        /* gpt-oss with a negative alpha (large gates of either sign reach
         * z > 87) and with tiny ones (z near 0 while the gate is large) */
        if (k.act == SWIGLU_ACT_SILU_GPTOSS && dist >= 4) k.alpha = (float[]){-2.0f, 2e-5f, 1e-6f}[dist - 4];
        k.layout = n % 4;
        k.format = SWIGLU_QUANT_FP8_E4M3FN;
        k.gran = SWIGLU_SCALE_PER_GROUP, k.G = 128;
        k.enc = (int[]){SWIGLU_SCALE_FP32, SWIGLU_SCALE_FP32_UE8M0, SWIGLU_SCALE_UE8M0_PACKED}[n % 3];
        k.slayout = (n / 3) % 3;
        k.E = 1, k.M = 64, k.H = 2048;
        if (n % 7 == 3 && k.layout != SWIGLU_LAYOUT_SEPARATE) k.masked = 1, k.E = 4, k.M = 16;
        k.weight = (n / 2) % 2;
        k.xpad = n % 5 == 4 ? 8 : n % 5 == 2 ? 1 : 0; /* 1: rows not 16-byte aligned */
        run(&k, &rng);
        ++cases;
      }
  /* MXFP8 (and E4M3FN with fp32 scales, which stay clear of the edge) on
   * sample_dist 7, every input dtype and layout */
  for (int tin = 0; tin < 3; ++tin)
    for (int lay = 0; lay < 4; ++lay)
      for (int mx = 0; mx < 2; ++mx) {
        if (quick && (tin + lay + mx) % 3) continue;
        qcase k;
        memset(&k, 0, sizeof k);
        k.act = SWIGLU_ACT_SILU, k.tin = tin, k.layout = lay, k.dist = 7;
        k.format = mx ? SWIGLU_QUANT_MXFP8 : SWIGLU_QUANT_FP8_E4M3FN;
        k.gran = SWIGLU_SCALE_PER_GROUP, k.G = mx ? 32 : 128;
        k.enc = mx ? SWIGLU_SCALE_E8M0 : SWIGLU_SCALE_FP32;
        k.E = 1, k.M = 64, k.H = 512;
        run(&k, &rng);
        ++cases;
      }
  /* per-tensor (static) scales on rows wider than a backend's column chunk
   * (the CPU's is 2048), ending in a partial vector or not, with values
   * that saturate, and Inf and NaN in some rows (sample_dist 4, fp32) */
  for (int tin = 0; tin < 3; ++tin)
    for (int f = 0; f < 3; ++f) {
      if (quick && (tin + f) % 3) continue;
      qcase k;
      memset(&k, 0, sizeof k);
      k.act = (tin + 2 * f) % 6, k.tin = tin, k.layout = (tin + f) % 4;
      k.format = (int[]){SWIGLU_QUANT_FP8_E4M3FN, SWIGLU_QUANT_INT8, SWIGLU_QUANT_FP8_E5M2}[f];
      k.gran = SWIGLU_SCALE_PER_TENSOR;
      k.E = 1, k.M = 6, k.H = f == 1 ? 4102 : 4232;
      k.dist = tin == T_F32 && f != 1 ? 4 : f == 2 ? 1 : 0;
      k.weight = f == 0;
      run(&k, &rng);
      ++cases;
    }
  /* static scales a caller may pass: not a power of two (the quotient's
   * correction), below 2^-86 (a backend's division), with a subnormal
   * reciprocal, and 0, -0, negative, Inf and NaN, which docs/numerics.md
   * defines by the same formula; and NVFP4 global scales of the same kinds */
  {
    static const float ts[] = {0.05f, 3.0f, 1e-30f, 0x1p-86f, 0x1.8p-87f, 1e38f, 0x1p127f, 3e38f,
                               INFINITY, 0.0f, -0.0f, -0.05f, NAN};
    const int nts = (int)(sizeof ts / sizeof ts[0]);
    for (int i = 0; i < 2 * nts; ++i) {
      if (quick && i % 3) continue;
      qcase k;
      memset(&k, 0, sizeof k);
      const int nv = i >= nts;
      k.tscale_set = 1, k.tscale = ts[i % nts];
      k.act = i % 6, k.tin = i % 3, k.layout = i % 4;
      k.format = nv ? SWIGLU_QUANT_NVFP4
                    : (int[]){SWIGLU_QUANT_FP8_E4M3FN, SWIGLU_QUANT_INT8, SWIGLU_QUANT_FP8_E5M2,
                              SWIGLU_QUANT_FP8_E4M3FNUZ}[i % 4];
      k.gran = nv ? SWIGLU_SCALE_PER_GROUP : SWIGLU_SCALE_PER_TENSOR;
      /* a per-tensor call ignores the scale encoding (it stores no scale) */
      k.enc = nv ? SWIGLU_SCALE_E4M3 : i % 3 == 1 ? SWIGLU_SCALE_UE8M0_PACKED : SWIGLU_SCALE_FP32;
      k.G = nv ? 16 : 0;
      k.E = 1, k.M = 8, k.H = i % 2 ? 2048 + 48 : 256;
      /* the general inputs, or ones with zeros, NaN, Inf and huge values */
      k.dist = i % 2 ? 5 : 0;
      k.weight = i % 5 == 2 || i % 5 == 4;
      k.wspecial = i % 5 == 4;
      run(&k, &rng);
      ++cases;
    }
  }
  /* per-row and per-tensor scales over the row widths a backend splits on:
   * odd (a partial vector, code rows not 8-byte aligned), 14336 (a GPU
   * stages its 56 KiB of fp32 h) and 65544 (256 KiB: past a GPU's shared
   * memory, so the CUDA per-row kernel computes h again instead), with
   * SiLU (a backend's branch-free instance) and others, ROUND_H, row
   * weights, masked experts and unaligned row views */
  for (int i = 0; i < 24; ++i) {
    if (quick && i % 3) continue;
    qcase k;
    memset(&k, 0, sizeof k);
    const int row = i % 2;
    k.gran = row ? SWIGLU_SCALE_PER_ROW : SWIGLU_SCALE_PER_TENSOR;
    k.format = (int[]){SWIGLU_QUANT_FP8_E4M3FN, SWIGLU_QUANT_INT8, SWIGLU_QUANT_FP8_E5M2,
                       SWIGLU_QUANT_FP8_E4M3FNUZ}[(i / 2) % 4];
    k.enc = row ? (i / 2) % 4 : SWIGLU_SCALE_FP32; /* FP32, FP32_UE8M0, UE8M0_PACKED, E8M0 */
    k.slayout = row ? (i / 3) % 3 : 0;
    k.act = i % 4 == 0 || i % 4 == 1 ? SWIGLU_ACT_SILU : (int[]){1, 2, 3, 4, 5}[i % 5];
    k.tin = (i / 2) % 3, k.layout = (i / 3) % 4;
    k.H = (int64_t[]){4099, 14336, 65544}[(i / 4) % 3];
    k.masked = i % 8 >= 6 && k.layout != SWIGLU_LAYOUT_SEPARATE;
    k.E = k.masked ? 3 : 1, k.M = k.masked ? 2 : 3;
    k.round_h = i % 5 == 3;
    k.weight = i % 3 == 1;
    k.xpad = i % 7 == 2 ? 1 : 0;
    if (!row) k.tscale_set = 1, k.tscale = (float[]){0.05f, 3.0f, 1e-30f}[i % 3];
    run(&k, &rng);
    ++cases;
  }
  /* static and per-row scales of E4M3FN codes from SiLU with fp32 h (the
   * CUDA verified h, which recomputes exactly the codes whose bracket
   * straddles a boundary and a per-row scale's candidates for the maximum,
   * and falls back to exact h for unsafe weights, divisors or tiny rows)
   * on inputs like real activations and sample_dist's special cases, every
   * input dtype; static scales that put the quotients across the code
   * range (2^-80: dist 4's tiny and underflowing h land there; 2^100: its
   * huge ones), per-row scales in every encoding; plain, safe and special
   * row weights; a GELU-tanh and a gpt-oss case of each */
  for (int row = 0; row < 2; ++row)
    for (int dist = 1; dist <= 6; ++dist)
      for (int tin = 0; tin < 3; ++tin) {
        const int n = dist + tin;
        if (quick && (n + row) % 3) continue;
        qcase k;
        memset(&k, 0, sizeof k);
        k.act = n == 4 ? SWIGLU_ACT_GELU_TANH : n == 7 ? SWIGLU_ACT_SILU_GPTOSS : SWIGLU_ACT_SILU;
        k.tin = tin, k.dist = dist, k.layout = (n + row) % 4;
        k.format = SWIGLU_QUANT_FP8_E4M3FN;
        if (row) {
          k.gran = SWIGLU_SCALE_PER_ROW;
          k.enc = (n + row) % 4; /* FP32, FP32_UE8M0, UE8M0_PACKED, E8M0 */
          k.slayout = n % 3;
        } else {
          k.gran = SWIGLU_SCALE_PER_TENSOR;
          k.tscale_set = 1, k.tscale = (float[]){0.05f, 0.0137f, 0x1p-80f, 0x1p100f}[(dist + 2 * tin) % 4];
        }
        k.E = 1, k.M = 64, k.H = row && n % 4 == 1 ? 2000 : 2048;
        k.weight = n % 3 != 0;
        k.wspecial = n % 3 == 2;
        k.xpad = n % 5 == 2 ? 1 : 0;
        run(&k, &rng);
        ++cases;
      }
  /* those row weights at G = 128, E4M3FN (a backend's fast path: the CUDA
   * one's verified fp32 h takes weights within [2^-32, 1] only), every
   * input dtype, fp32 and packed UE8M0 scales */
  for (int tin = 0; tin < 3; ++tin)
    for (int pk = 0; pk < 2; ++pk) {
      if (quick && (tin + pk) % 2) continue;
      qcase k;
      memset(&k, 0, sizeof k);
      k.act = pk ? SWIGLU_ACT_SILU : SWIGLU_ACT_SILU_GPTOSS, k.tin = tin, k.layout = (tin + pk) % 4;
      k.format = SWIGLU_QUANT_FP8_E4M3FN;
      k.gran = SWIGLU_SCALE_PER_GROUP, k.G = 128;
      k.enc = pk ? SWIGLU_SCALE_UE8M0_PACKED : SWIGLU_SCALE_FP32;
      k.E = 1, k.M = 18, k.H = 1024;
      k.dist = 1 + (tin + pk) % 2 * 4; /* 1 or 5 (zeros, NaN, Inf, huge) */
      k.weight = k.wspecial = 1;
      run(&k, &rng);
      ++cases;
    }
  /* per-row E4M3FN scales of SiLU with fp32 h from 16-bit inputs (the
   * CUDA per-row kernel, which keeps two rows' inputs in shared memory:
   * widths from one chunk of 8 to 28672, near its limit, a block of
   * threads with chunks to spare), every layout, aligned rows and not
   * (xpad 1: the line kernel), row weights, masked experts, the
   * realistic and special inputs, every scale encoding */
  for (int i = 0; i < 16; ++i) {
    if (quick && i % 2) continue;
    qcase k;
    memset(&k, 0, sizeof k);
    k.act = SWIGLU_ACT_SILU, k.format = SWIGLU_QUANT_FP8_E4M3FN, k.gran = SWIGLU_SCALE_PER_ROW;
    k.tin = i % 2 ? T_F16 : T_BF16, k.layout = (i / 2) % 4;
    k.enc = i % 4, k.slayout = i % 3;
    k.H = (int64_t[]){8, 1000, 4096, 28672}[(i / 4) % 4];
    k.masked = i % 5 == 3 && k.layout != SWIGLU_LAYOUT_SEPARATE;
    k.E = k.masked ? 4 : 1, k.M = k.H > 5000 ? 3 : 33;
    k.dist = (int[]){1, 2, 5, 6, 4, 1, 3, 0}[i % 8];
    k.weight = i % 3 != 0;
    k.wspecial = i % 6 == 4;
    k.xpad = i % 7 == 5 ? 1 : 0;
    run(&k, &rng);
    ++cases;
  }
  /* a large amax floor with a small safe weight (2^-31) and h near 2^124
   * (sample_dist 4): the scale comes from the floor, so RN(1 / s) |w| is
   * subnormal (~2^-132) while the quotients reach E4M3's subnormal codes;
   * a backend's bracket on that multiplier would not hold (the CUDA
   * kernels take exact h there) -- per row and per group, fp32 and UE8M0
   * scales */
  for (int i = 0; i < 8; ++i) {
    if (quick && i % 2) continue;
    qcase k;
    memset(&k, 0, sizeof k);
    k.act = SWIGLU_ACT_SILU, k.format = SWIGLU_QUANT_FP8_E4M3FN;
    k.gran = i % 2 ? SWIGLU_SCALE_PER_ROW : SWIGLU_SCALE_PER_GROUP, k.G = 128;
    k.tin = (i / 2) % 2 ? T_F32 : T_BF16, k.layout = i % 4;
    k.enc = i / 4 ? SWIGLU_SCALE_FP32_UE8M0 : SWIGLU_SCALE_FP32;
    k.floor = 0x1p110f;
    k.E = 1, k.M = 16, k.H = 2048;
    k.dist = 4;
    k.weight = 1, k.wspecial = 2;
    run(&k, &rng);
    ++cases;
  }
  /* the amax floor's ends: 2^-126 (the least allowed; over E5M2's 57344 the
   * scale of an all-zero group is a subnormal, not 0) and 3e38, for each
   * fp32-scaled format, fp32 and UE8M0 scales, G = 32 and 128 */
  for (int f = 0; f < 4; ++f)
    for (int big = 0; big < 2; ++big) {
      if (quick && (f + big) % 2) continue;
      qcase k;
      memset(&k, 0, sizeof k);
      k.act = (f + 3 * big) % 6, k.tin = (f + big) % 3, k.layout = f % 3; /* packed: an all-zero group */
      k.format = f, k.gran = SWIGLU_SCALE_PER_GROUP, k.G = big ? 128 : 32;
      k.enc = (f + big) % 2 ? SWIGLU_SCALE_FP32_UE8M0 : SWIGLU_SCALE_FP32;
      k.floor = big ? 3e38f : 0x1p-126f;
      k.E = 1, k.M = 5, k.H = 256;
      k.dist = f == 1 ? 4 : 0; /* with groups of h around 2^-70 */
      run(&k, &rng);
      ++cases;
    }
  /* gate and up in different dtypes (the separate layout), every
   * activation, dtype pair and ROUND_H setting: backends take a general
   * instance for these */
  for (int act = 0; act < 6; ++act)
    for (int tin = 0; tin < 3; ++tin)
      for (int rh = 0; rh < 2; ++rh) {
        const int n = act + tin + rh;
        if (quick && n % 3) continue;
        qcase k;
        memset(&k, 0, sizeof k);
        k.act = act, k.tin = tin, k.mixed = 1, k.round_h = rh;
        k.layout = SWIGLU_LAYOUT_SEPARATE;
        k.format = (int[]){SWIGLU_QUANT_FP8_E4M3FN, SWIGLU_QUANT_INT8, SWIGLU_QUANT_MXFP8}[n % 3];
        k.gran = SWIGLU_SCALE_PER_GROUP;
        k.G = k.format == SWIGLU_QUANT_MXFP8 ? 32 : 128;
        k.enc = k.format == SWIGLU_QUANT_MXFP8 ? SWIGLU_SCALE_E8M0 : n % 2 ? SWIGLU_SCALE_UE8M0_PACKED : SWIGLU_SCALE_FP32;
        k.slayout = n % 3;
        k.E = 1, k.M = 5 + n % 4, k.H = 128 * (1 + n % 3) + (n % 2 ? 0 : 128 * 16);
        k.weight = n % 2;
        run(&k, &rng);
        ++cases;
      }
  bad_inputs();
  bad_arguments();
  empty_cases();
  swiglu_context_destroy(ctx);
  printf("%ld cases; %ld checks, %ld failed\n", cases, g_checks, g_failed);
  return g_failed ? 1 : 0;
}
