/*
 * compare_builds: runs the same CPU problems through two builds of libswiglu
 * and compares the outputs bit for bit -- for kernel tuning that must not
 * change results (the tests check results against the definitions within
 * their bounds; this checks that a faster build gives the very bits of the
 * previous one).
 *
 *   SWIGLU_CPU_ISA=avx2 build/bin/compare_builds OLD/lib/libswiglu.so build/lib/libswiglu.so
 *
 * (built with swiglu-bench; SWIGLU_CPU_ISA picks the ISA build in both)
 *
 * Problems: every activation, fp32 and bf16 inputs and outputs, [gate | up]
 * and interleaved inputs: forward, backward (dgate, dup and the recomputed
 * h), E4M3FN group-128 quant (fp32 row-major and packed UE8M0 TMA scales)
 * and MXFP8, with and without ROUND_H, with a row weight when interleaved;
 * on 37 (or COMPARE_ROWS) rows of 1000 and of 2600 columns (odd sizes,
 * vector tails; the CPU's narrow-row and wide-row loops) of mixed
 * magnitudes with zeros, subnormals, +-Inf, NaN and values around the
 * logistic's and the GELU tail's thresholds. NaNs that differ only in sign
 * or payload are counted apart: docs/numerics.md leaves
 * NaN payloads unspecified. Exit status 1 when any other bit differs.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swiglu/swiglu.h>

typedef struct {
  swiglu_status (*create)(swiglu_context **, const char *, int);
  void (*destroy)(swiglu_context *);
  const char *(*last_error)(const swiglu_context *);
  swiglu_status (*desc_init)(swiglu_glu_desc *, swiglu_activation, swiglu_layout);
  swiglu_status (*forward)(swiglu_context *, const swiglu_glu_desc *, const swiglu_tensor *,
                           const swiglu_tensor *, const swiglu_tensor *);
  swiglu_status (*backward)(swiglu_context *, const swiglu_glu_desc *, const swiglu_tensor *,
                            const swiglu_tensor *, const swiglu_tensor *, const swiglu_tensor *,
                            const swiglu_tensor *, const swiglu_tensor *, unsigned);
  swiglu_status (*qdesc_init)(swiglu_quant_desc *, swiglu_quant_format, swiglu_scale_granularity, int32_t);
  swiglu_status (*quant)(swiglu_context *, const swiglu_glu_desc *, const swiglu_quant_desc *,
                         const swiglu_quant_args *);
  swiglu_context *ctx;
} lib_t;

static void *sym(void *h, const char *name) {
  void *p = dlsym(h, name);
  if (!p) {
    fprintf(stderr, "%s: %s\n", name, dlerror());
    exit(2);
  }
  return p;
}

static void open_lib(lib_t *l, const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "%s\n", dlerror());
    exit(2);
  }
  *(void **)&l->create = sym(h, "swiglu_context_create");
  *(void **)&l->destroy = sym(h, "swiglu_context_destroy");
  *(void **)&l->last_error = sym(h, "swiglu_context_last_error");
  *(void **)&l->desc_init = sym(h, "swiglu_glu_desc_init");
  *(void **)&l->forward = sym(h, "swiglu_glu_forward");
  *(void **)&l->backward = sym(h, "swiglu_glu_backward");
  *(void **)&l->qdesc_init = sym(h, "swiglu_quant_desc_init");
  *(void **)&l->quant = sym(h, "swiglu_glu_quant");
  if (l->create(&l->ctx, "cpu", 0)) {
    fprintf(stderr, "%s: no CPU context\n", path);
    exit(2);
  }
}

static uint64_t g_state = 88172645463325252ull;
static double uniform(void) {
  g_state ^= g_state << 13, g_state ^= g_state >> 7, g_state ^= g_state << 17;
  return (double)(g_state >> 11) / 9007199254740992.0;
}

static long g_bad, g_nan_only, g_checked;

/* Compares n elements of es bytes; NaN against NaN counts apart. */
static void compare(const char *what, const void *a, const void *b, int64_t n, int es) {
  long bad = 0, nan_only = 0;
  int64_t first = -1;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t x = 0, y = 0;
    memcpy(&x, (const char *)a + i * es, (size_t)es);
    memcpy(&y, (const char *)b + i * es, (size_t)es);
    if (x == y) continue;
    const uint32_t mag = es == 4 ? 0x7fffffffu : 0x7fffu, inf = es == 4 ? 0x7f800000u : 0x7f80u;
    if (es != 1 && (x & mag) > inf && (y & mag) > inf) {
      ++nan_only;
      continue;
    }
    if (first < 0) first = i;
    ++bad;
  }
  g_checked += n, g_bad += bad, g_nan_only += nan_only;
  if (bad)
    printf("DIFFER %-40s %ld of %lld elements (first at %lld)\n", what, bad, (long long)n, (long long)first);
  else if (nan_only)
    printf("same   %-40s (%ld NaNs differ in sign or payload only)\n", what, nan_only);
}

/* Every forward, backward and quant problem of width H (per half) on T
 * rows, both libraries, compared. */
static void compare_width(lib_t lib[2], int64_t T, int64_t H) {
  static const float special[] = {0.0f,   -0.0f,   INFINITY, -INFINITY, NAN,    1e-40f, -1e-40f,
                                  87.3f,  -87.3f,  88.5f,    -88.5f,    150.5f, -150.5f, -200.0f,
                                  3e38f,  -3e38f,  14.4f,    -14.6f,    13.3f,  -13.3f,  1e-30f};
  float *x = malloc(sizeof(float) * T * 2 * H), *dh = malloc(sizeof(float) * T * H);
  uint16_t *xb = malloc(2 * T * 2 * H), *dhb = malloc(2 * T * H);
  for (int64_t i = 0; i < T * 2 * H; ++i) {
    const double r = uniform();
    x[i] = r < 0.03   ? special[(int)(uniform() * (sizeof special / sizeof special[0]))]
           : r < 0.5  ? (float)((uniform() - 0.5) * 8)
           : r < 0.8  ? (float)((uniform() - 0.5) * 60)
                      : (float)((uniform() - 0.5) * 400 * pow(2.0, (uniform() - 0.5) * 60));
    uint32_t u;
    memcpy(&u, &x[i], 4);
    xb[i] = (uint16_t)(u >> 16); /* truncation: any bf16 pattern will do */
  }
  for (int64_t i = 0; i < T * H; ++i) {
    dh[i] = (float)((uniform() - 0.5) * 4);
    uint32_t u;
    memcpy(&u, &dh[i], 4);
    dhb[i] = (uint16_t)(u >> 16);
  }

  int64_t xs[2] = {T, 2 * H}, hs[2] = {T, H};
  const size_t cap = sizeof(float) * T * 2 * H;
  char *out[2][4];
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 4; ++j) out[k][j] = malloc(cap);
  char what[96];
  for (int lay = 0; lay < 2; ++lay)
  for (int act = 0; act < 6; ++act)
    for (int in = 0; in < 2; ++in)
      for (int od = 0; od < 2; ++od) {
        const swiglu_layout layout = lay ? SWIGLU_LAYOUT_INTERLEAVED : SWIGLU_LAYOUT_GATE_UP;
        const swiglu_dtype idt = in ? SWIGLU_DTYPE_BF16 : SWIGLU_DTYPE_F32;
        const swiglu_dtype odt = od ? SWIGLU_DTYPE_BF16 : SWIGLU_DTYPE_F32;
        const int es = od ? 2 : 4;
        for (int k = 0; k < 2; ++k) {
          lib_t *l = &lib[k];
          swiglu_glu_desc d;
          l->desc_init(&d, (swiglu_activation)act, layout);
          swiglu_tensor tx = {in ? (void *)xb : (void *)x, {SWIGLU_DEVICE_CPU, 0}, 2, idt, xs, NULL, 0};
          swiglu_tensor tdh = {in ? (void *)dhb : (void *)dh, {SWIGLU_DEVICE_CPU, 0}, 2, idt, hs, NULL, 0};
          swiglu_tensor th = {out[k][0], {SWIGLU_DEVICE_CPU, 0}, 2, odt, hs, NULL, 0};
          swiglu_tensor tdx = {out[k][1], {SWIGLU_DEVICE_CPU, 0}, 2, odt, xs, NULL, 0};
          swiglu_tensor th2 = {out[k][2], {SWIGLU_DEVICE_CPU, 0}, 2, odt, hs, NULL, 0};
          swiglu_tensor tdx2 = {out[k][3], {SWIGLU_DEVICE_CPU, 0}, 2, odt, xs, NULL, 0};
          for (int j = 0; j < 4; ++j) memset(out[k][j], 0, cap);
          /* the backward with and without the recomputed h (separate loops) */
          if (l->forward(l->ctx, &d, &tx, NULL, &th) ||
              l->backward(l->ctx, &d, &tdh, &tx, NULL, &tdx, NULL, &th2, 0) ||
              l->backward(l->ctx, &d, &tdh, &tx, NULL, &tdx2, NULL, NULL, 0)) {
            fprintf(stderr, "%s\n", l->last_error(l->ctx));
            exit(2);
          }
        }
        static const char *const part[4] = {"forward", "backward dx", "backward h", "backward dx (no h)"};
        for (int j = 0; j < 4; ++j) {
          snprintf(what, sizeof what, "H %lld %s act %d %s -> %s %s", (long long)H, lay ? "il" : "gu", act,
                   in ? "bf16" : "f32", od ? "bf16" : "f32", part[j]);
          compare(what, out[0][j], out[1][j], j & 1 ? T * 2 * H : T * H, es);
        }
      }
  /* E4M3FN codes, groups of 128: fp32 scales row-major (pk 0), and packed
   * UE8M0 in the TMA-aligned column-major layout (DeepGEMM's, pk 1); MXFP8
   * (groups of 32, E8M0 bytes, pk 2). Both input layouts; the interleaved
   * one with a row weight. Neither H is a multiple of 128, so the quant
   * problems take the first QW columns of each half (a [T, 2 QW] view with
   * the input's row stride). */
  const int64_t QW = H / 128 * 128, NG = QW / 128, NW = (NG + 3) / 4; /* NW: packed words */
  int64_t qxs[2] = {T, 2 * QW}, qxst[2] = {2 * H, 1}, qs[2] = {T, QW}, ws[1] = {T};
  int64_t s_rm[2] = {T, NG}, s_tma[2] = {NW, (T + 3) / 4 * 4}, s_mx[2] = {T, QW / 32};
  float *wt = malloc(sizeof(float) * T);
  for (int64_t i = 0; i < T; ++i) wt[i] = (float)(uniform() * 2);
  for (int lay = 0; lay < 2; ++lay)
  for (int act = 0; act < 6; ++act)
    for (int in = 0; in < 2; ++in)
      for (int rh = 0; rh < 2; ++rh)
        for (int pk = 0; pk < 3; ++pk) {
          for (int k = 0; k < 2; ++k) {
            lib_t *l = &lib[k];
            swiglu_glu_desc d;
            l->desc_init(&d, (swiglu_activation)act, lay ? SWIGLU_LAYOUT_INTERLEAVED : SWIGLU_LAYOUT_GATE_UP);
            swiglu_quant_desc qd;
            l->qdesc_init(&qd, pk == 2 ? SWIGLU_QUANT_MXFP8 : SWIGLU_QUANT_FP8_E4M3FN, SWIGLU_SCALE_PER_GROUP, 128);
            if (rh) qd.flags |= SWIGLU_QUANT_ROUND_H;
            if (pk == 1) qd.scale_encoding = SWIGLU_SCALE_UE8M0_PACKED, qd.scale_layout = SWIGLU_SCALE_COL_MAJOR_TMA;
            swiglu_tensor tx = {in ? (void *)xb : (void *)x, {SWIGLU_DEVICE_CPU, 0}, 2,
                                in ? SWIGLU_DTYPE_BF16 : SWIGLU_DTYPE_F32, qxs, qxst, 0};
            swiglu_tensor tq = {out[k][0], {SWIGLU_DEVICE_CPU, 0}, 2, {SWIGLU_DTYPE_FLOAT8_E4M3FN, 8, 1},
                                qs, NULL, 0};
            swiglu_tensor ts = {out[k][1], {SWIGLU_DEVICE_CPU, 0}, 2,
                                pk == 1   ? (swiglu_dtype){SWIGLU_DTYPE_INT, 32, 1}
                                : pk == 2 ? (swiglu_dtype){SWIGLU_DTYPE_UINT, 8, 1}
                                          : SWIGLU_DTYPE_F32,
                                pk == 1 ? s_tma : pk == 2 ? s_mx : s_rm, NULL, 0};
            swiglu_tensor tw = {wt, {SWIGLU_DEVICE_CPU, 0}, 1, SWIGLU_DTYPE_F32, ws, NULL, 0};
            swiglu_quant_args a;
            memset(&a, 0, sizeof a);
            a.x = &tx, a.q = &tq, a.scales = &ts;
            if (lay) a.row_weight = &tw;
            memset(out[k][0], 0, cap), memset(out[k][1], 0, cap);
            if (l->quant(l->ctx, &d, &qd, &a)) {
              fprintf(stderr, "%s\n", l->last_error(l->ctx));
              exit(2);
            }
          }
          static const char *const fmt[3] = {"", " UE8M0/TMA", " MXFP8"};
          const int len = snprintf(what, sizeof what, "H %lld %s act %d %s quant%s%s", (long long)H,
                                   lay ? "il+w" : "gu", act, in ? "bf16" : "f32", rh ? " ROUND_H" : "", fmt[pk]);
          snprintf(what + len, sizeof what - (size_t)len, " codes");
          compare(what, out[0][0], out[1][0], T * QW, 1);
          snprintf(what + len, sizeof what - (size_t)len, " scales");
          compare(what, out[0][1], out[1][1], pk == 1 ? NW * s_tma[1] * 4 : pk == 2 ? T * (QW / 32) : T * NG * 4, 1);
        }
  free(wt);
  for (int k = 0; k < 2; ++k)
    for (int j = 0; j < 4; ++j) free(out[k][j]);
  free(x), free(dh), free(xb), free(dhb);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s OLD_LIBSWIGLU NEW_LIBSWIGLU\n", argv[0]);
    return 2;
  }
  lib_t lib[2];
  open_lib(&lib[0], argv[1]);
  open_lib(&lib[1], argv[2]);

  /* COMPARE_ROWS=17000 takes the outputs past the 32 MiB at which the
   * kernels switch to streaming stores (a second set of loops) */
  const int64_t T = getenv("COMPARE_ROWS") ? atoll(getenv("COMPARE_ROWS")) : 37;
  /* 1000 columns take the CPU's two-pass loops for narrow 16-bit rows
   * (SG_NARROW_COLS), 2600 the one-pass ones */
  compare_width(lib, T, 1000);
  compare_width(lib, T, 2600);
  printf("%ld elements compared: %ld differ, %ld NaNs differ in sign or payload only\n", g_checked, g_bad,
         g_nan_only);
  for (int k = 0; k < 2; ++k) lib[k].destroy(lib[k].ctx);
  return g_bad ? 1 : 0;
}
