/*
 * swiglu-bench --op linear: the GEMM-fused ops against the machine's own
 * ceiling, measured in the same run.
 *
 * CPU: the ceiling is the FMA peak, a loop of independent vector FMAs on
 * every OpenMP thread (AVX-512 when the CPU has it, else AVX2), measured
 * before the ops (ratios use it) and again after them (printed, to show
 * the machine did not change speed meanwhile). The peer is oneDNN:
 * the GLU linear as two matmuls, the first with a swish post-op and the
 * second with a binary-multiply post-op reading the first's output, with
 * oneDNN's own pre-packed weight layout (packing done once, outside the
 * timing; swiglu packs on every call), plus one plain matmul over [2H, D]
 * as the GEMM-only reference.
 * GPU: the FLOP rate alone; bench/torch_peers.py --linear times the
 * PyTorch peers (X @ W^T, the unfused layer) on the same shapes.
 *
 * Each forward op is followed by its backward ("-bwd"): the GLU linear's
 * from saved pre-activations to dX and dW (no bias), the down
 * projection's to the pre-activation gradient and dWd (no accumulation).
 *
 * FLOPs counted: 2 T D 2H for the GLU linear forward, 2 T H D for the down
 * projection, twice those for the backwards (one GEMM for the input
 * gradient, one for the weight gradient), the GEMM terms only.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swiglu/swiglu.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#ifdef SWIGLU_BENCH_ONEDNN
#include "onednn_linear.h"
#endif

double bench_now_ms(void);
double bench_time_median(void (*fn)(void *), void *arg, int reps);

/* ------------------------------------------------------------- FMA peak */

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static float fma_loop_512(long iters, float seed) {
  __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  __m512 a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm512_set1_ps(seed + (float)k);
  for (long i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) a[k] = _mm512_fmadd_ps(a[k], m, c);
  __m512 s = a[0];
  for (int k = 1; k < 12; ++k) s = _mm512_add_ps(s, a[k]);
  return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx2,fma"))) static float fma_loop_256(long iters, float seed) {
  __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm256_set1_ps(seed + (float)k);
  for (long i = 0; i < iters; ++i)
    for (int k = 0; k < 12; ++k) a[k] = _mm256_fmadd_ps(a[k], m, c);
  __m256 s = a[0];
  for (int k = 1; k < 12; ++k) s = _mm256_add_ps(s, a[k]);
  float o[8];
  _mm256_storeu_ps(o, s);
  return o[0] + o[7];
}
#endif

/* GFLOP/s of fp32 FMAs on all threads; *isa names the vector width used. */
static double fma_peak_gflops(const char **isa) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const int w512 = __builtin_cpu_supports("avx512f");
  if (!w512 && !__builtin_cpu_supports("fma")) {
    *isa = "none";
    return 0;
  }
  *isa = w512 ? "avx512 fma" : "avx2 fma";
  const int lanes = w512 ? 16 : 8;
  const long iters = 20000000;
  double best = 0;
  volatile float sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double t0 = bench_now_ms();
#pragma omp parallel reduction(+ : sink)
    sink += w512 ? fma_loop_512(iters, (float)omp_get_thread_num()) : fma_loop_256(iters, 1.0f);
    double ms = bench_now_ms() - t0;
    double gf = (double)omp_get_max_threads() * iters * 12 * lanes * 2 / (ms * 1e6);
    if (gf > best) best = gf;
  }
  return best;
#else
  *isa = "none";
  return 0;
#endif
}

/* ------------------------------------------------------------ the ops */

typedef struct {
  swiglu_context *ctx;
  const swiglu_glu_desc *desc;
  swiglu_glu_linear_args la;
  swiglu_down_proj_args da;
  swiglu_glu_linear_backward_args lb;
  swiglu_down_proj_backward_args db;
  int down, bwd;
} lin_arg;

static void lin_run(void *p) {
  lin_arg *a = p;
  swiglu_status st = a->bwd ? (a->down ? swiglu_down_proj_backward(a->ctx, a->desc, &a->db)
                                       : swiglu_glu_linear_backward(a->ctx, a->desc, &a->lb))
                            : (a->down ? swiglu_down_proj_forward(a->ctx, a->desc, &a->da)
                                       : swiglu_glu_linear_forward(a->ctx, a->desc, &a->la));
  if (!st) st = swiglu_context_synchronize(a->ctx);
  if (st) {
    fprintf(stderr, "linear op failed: %s: %s\n", swiglu_status_string(st), swiglu_context_last_error(a->ctx));
    exit(1);
  }
}

static void *dev_fill(swiglu_context *ctx, size_t n, int bf16, double scale, unsigned seed) {
  size_t es = bf16 ? 2 : 4;
  char *h = malloc(n * es);
  unsigned s = seed;
  for (size_t i = 0; i < n; ++i) {
    s = s * 1664525u + 1013904223u;
    float v = (float)(((double)(s >> 8) / 16777216.0 - 0.5) * 2 * scale);
    if (bf16) {
      uint32_t u;
      memcpy(&u, &v, 4);
      uint16_t b = (uint16_t)(u >> 16);
      memcpy(h + i * 2, &b, 2);
    } else {
      memcpy(h + i * 4, &v, 4);
    }
  }
  void *d;
  if (swiglu_context_malloc(ctx, n * es, &d) ||
      swiglu_context_copy(ctx, d, h, n * es, SWIGLU_COPY_HOST_TO_DEVICE)) {
    fprintf(stderr, "cannot allocate %zu bytes on the device\n", n * es);
    exit(1);
  }
  free(h);
  return d;
}

static swiglu_tensor tensor2(swiglu_context *ctx, void *data, int64_t *shape, int bf16) {
  swiglu_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.device.device_type = swiglu_context_device_type(ctx);
  t.device.device_id = swiglu_context_device(ctx);
  t.ndim = 2;
  t.dtype = bf16 ? SWIGLU_DTYPE_BF16 : SWIGLU_DTYPE_F32;
  t.shape = shape;
  return t;
}

/* ---------------------------------------------------------------- oneDNN */

#ifdef SWIGLU_BENCH_ONEDNN
/* The oneDNN peer: gate = swish(X Wg^T), h = (X Wu^T) * gate; and X W^T alone. */
typedef struct {
  odnn_mm *gate, *mul, *plain;
  const void *x;
  void *tmp, *h, *hall;
} odnn_lin;
static void odnn_run(void *p) {
  odnn_lin *o = p;
  odnn_mm_run(o->gate, o->x, NULL, o->tmp);
  odnn_mm_run(o->mul, o->x, o->tmp, o->h);
}
static void odnn_plain_run(void *p) {
  odnn_lin *o = p;
  odnn_mm_run(o->plain, o->x, NULL, o->hall);
}
#endif

/* ------------------------------------------------------------------ main */

int bench_linear(swiglu_context *ctx, const char *shapes, const char *dtypes, int reps, FILE *jf,
                 int peer) {
  const int gpu = swiglu_context_device_type(ctx) != SWIGLU_DEVICE_CPU;
  const char *isa = "";
  double peak0 = gpu ? 0 : fma_peak_gflops(&isa);
  if (!gpu) printf("FMA peak (%s, %d threads): %.1f GFLOP/s\n", isa, omp_get_max_threads(), peak0);
  printf("%-14s %-5s %6s %6s %6s %9s %9s %7s %9s %9s %7s %9s %9s\n", "op", "dtype", "T", "D", "H",
         "ms", "GFLOP/s", "ofpeak", "dnnl ms", "dnnlGF/s", "xdnnl", "gemm ms", "gemmGF/s");
  const char *p = shapes;
  while (*p) {
    long long T, D, H, E = 1;
    int n = 0;
    if (sscanf(p, "%lldx%lldx%lld%n", &T, &D, &H, &n) != 3) {
      fprintf(stderr, "bad --shapes entry at '%s' (want TxDxH or TxDxHxE)\n", p);
      return 2;
    }
    p += n;
    /* xE: the MoE down projection, E experts of T / E rows each (the last takes the rest) */
    if (*p == 'x' && (sscanf(p, "x%lld%n", &E, &n) != 1 || E < 1 || E > T)) {
      fprintf(stderr, "bad expert count at '%s' (want 1 <= E <= T)\n", p);
      return 2;
    }
    if (*p == 'x') p += n;
    if (*p == ',') ++p;
    int64_t *offs = malloc((size_t)(E + 1) * sizeof *offs);
    for (long long e = 0; e <= E; ++e) offs[e] = e == E ? T : e * (T / E);
    for (int bf16 = 0; bf16 < 2; ++bf16) {
      const char *dn = bf16 ? "bf16" : "f32";
      if (strcmp(dtypes, "all") && strcmp(dtypes, dn)) continue;
      for (int opk = 2 * (E > 1); opk < 4; ++opk) { /* MoE: the down projection only */
        const int down = opk >= 2, bwd = opk % 2;
        int64_t xs[2] = {T, D}, ws[2] = {2 * H, D}, hs[2] = {T, H}, ps[2] = {T, 2 * H}, wds[3] = {E, D, H},
                ys[2] = {T, D};
        void *x = dev_fill(ctx, (size_t)(T * (down ? 2 * H : D)), bf16, 1.0, 1);
        void *w = dev_fill(ctx, (size_t)(down ? E * D * H : 2 * H * D), bf16, 1.0 / sqrt((double)D), 2);
        void *out = dev_fill(ctx, (size_t)(T * (down ? D : H)), bf16, 0.0, 3);
        swiglu_glu_desc desc;
        swiglu_glu_desc_init(&desc, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
        lin_arg a;
        memset(&a, 0, sizeof a);
        a.ctx = ctx, a.desc = &desc, a.down = down, a.bwd = bwd;
        swiglu_tensor tx = tensor2(ctx, x, down ? ps : xs, bf16),
                      tw = tensor2(ctx, w, down ? (E > 1 ? wds : wds + 1) : ws, bf16), /* [E,] D, H */
                      to = tensor2(ctx, out, down ? ys : hs, bf16);
        if (E > 1) tw.ndim = 3;
        char opname[32];
        if (E > 1) snprintf(opname, sizeof opname, "down-moe-E%lld%s", E, bwd ? "-bwd" : "");
        else snprintf(opname, sizeof opname, "%s%s", down ? "down-proj" : "glu-linear", bwd ? "-bwd" : "");
        size_t bytes = 0;
        swiglu_status st;
        /* the backward's gradients: of the input (like x), of the weights
         * (like w); the glu linear's saved pre-activations */
        void *gin = NULL, *gw = NULL, *pre = NULL;
        swiglu_tensor tgin, tgw, tpre;
        if (bwd) {
          gin = dev_fill(ctx, (size_t)(T * (down ? 2 * H : D)), bf16, 0.0, 4);
          gw = dev_fill(ctx, (size_t)(down ? E * D * H : 2 * H * D), bf16, 0.0, 5);
          tgin = tensor2(ctx, gin, down ? ps : xs, bf16);
          tgw = tw;
          tgw.data = gw;
          if (!down) {
            pre = dev_fill(ctx, (size_t)(T * 2 * H), bf16, 2.0, 6);
            tpre = tensor2(ctx, pre, ps, bf16);
          }
        }
        if (bwd && down) {
          a.db = (swiglu_down_proj_backward_args){&to, &tx, NULL, &tw, E > 1 ? offs : NULL, E > 1 ? (int32_t)E : 0,
                                                  &tgin, NULL, &tgw, 0, NULL, 0};
          st = swiglu_down_proj_backward_workspace_size(ctx, &desc, &a.db, &bytes);
        } else if (bwd) {
          a.lb = (swiglu_glu_linear_backward_args){&to, &tx, &tw, NULL, NULL, NULL, &tpre, &tgin, &tgw,
                                                   NULL, NULL, NULL, 0, NULL, 0};
          st = swiglu_glu_linear_backward_workspace_size(ctx, &desc, &a.lb, &bytes);
        } else if (down) {
          a.da = (swiglu_down_proj_args){&tx, NULL, &tw, E > 1 ? offs : NULL, E > 1 ? (int32_t)E : 0, &to, NULL, 0};
          st = swiglu_down_proj_forward_workspace_size(ctx, &desc, &a.da, &bytes);
        } else {
          a.la = (swiglu_glu_linear_args){&tx, &tw, NULL, NULL, NULL, &to, NULL, NULL, 0};
          st = swiglu_glu_linear_forward_workspace_size(ctx, &desc, &a.la, &bytes);
        }
        void *wsp = NULL;
        if (st) { /* an op the backend lacks: said, and the next one */
          printf("%-14s %-5s: %s (%s)\n", opname, dn, swiglu_status_string(st),
                 swiglu_context_last_error(ctx));
          goto next_op;
        }
        if (bytes && swiglu_context_malloc(ctx, bytes, &wsp)) {
          fprintf(stderr, "cannot allocate the %zu-byte workspace\n", bytes);
          return 1;
        }
        a.la.workspace = a.da.workspace = a.lb.workspace = a.db.workspace = wsp;
        a.la.workspace_bytes = a.da.workspace_bytes = a.lb.workspace_bytes = a.db.workspace_bytes = bytes;
        const double flops = 2.0 * T * D * (down ? H : 2 * H) * (bwd ? 2 : 1);
        double ms = bench_time_median(lin_run, &a, reps);
        double gf = flops / (ms * 1e6);
        double dms = 0, dgf = 0, gms = 0, ggf = 0;
#ifdef SWIGLU_BENCH_ONEDNN
        if (peer && !gpu && !down && !bwd) {
          odnn_lin o;
          const size_t es = bf16 ? 2 : 4;
          char why[200] = "";
          o.x = x;
          o.tmp = malloc((size_t)(T * H) * es), o.h = malloc((size_t)(T * H) * es);
          o.hall = malloc((size_t)(T * 2 * H) * es);
          o.gate = odnn_mm_create(T, D, H, bf16, w, D, ODNN_POST_ACT, SWIGLU_ACT_SILU, why, sizeof why);
          o.mul = odnn_mm_create(T, D, H, bf16, (const char *)w + (size_t)(H * D) * es, D, ODNN_POST_MUL, 0,
                                 why, sizeof why);
          o.plain = odnn_mm_create(T, D, 2 * H, bf16, w, D, ODNN_POST_NONE, 0, why, sizeof why);
          if (o.gate && o.mul && o.plain) {
            dms = bench_time_median(odnn_run, &o, reps);
            dgf = flops / (dms * 1e6);
            gms = bench_time_median(odnn_plain_run, &o, reps);
            ggf = flops / (gms * 1e6);
          } else {
            printf("  (%s)\n", why);
          }
          odnn_mm_destroy(o.gate), odnn_mm_destroy(o.mul), odnn_mm_destroy(o.plain);
          free(o.tmp), free(o.h), free(o.hall);
        }
#else
        (void)peer;
#endif
        const double peak = peak0;
        printf("%-14s %-5s %6lld %6lld %6lld %9.3f %9.1f %7.3f", opname, dn, T, D, H, ms, gf, peak > 0 ? gf / peak : 0.0);
        if (dms > 0)
          printf(" %9.3f %9.1f %7.2f %9.3f %9.1f\n", dms, dgf, dms / ms, gms, ggf);
        else
          printf("\n");
        if (jf)
          fprintf(jf,
                  "{\"op\":\"%s\",\"backend\":\"%s\",\"device\":\"%s\",\"dtype\":\"%s\",\"T\":%lld,\"D\":%lld,"
                  "\"H\":%lld,\"ms\":%.6f,\"gflops\":%.3f,\"fma_peak_gflops\":%.3f,\"ratio_to_peak\":%.4f,"
                  "\"onednn_ms\":%.6f,\"onednn_gemm_only_ms\":%.6f,\"speedup_vs_onednn\":%.4f}\n",
                  opname, swiglu_context_backend(ctx),
                  swiglu_context_device_name(ctx), dn, T, D, H, ms, gf, peak, peak > 0 ? gf / peak : 0.0,
                  dms, gms, dms > 0 ? dms / ms : 0.0);
      next_op:
        swiglu_context_free(ctx, x);
        swiglu_context_free(ctx, w);
        swiglu_context_free(ctx, out);
        if (gin) swiglu_context_free(ctx, gin);
        if (gw) swiglu_context_free(ctx, gw);
        if (pre) swiglu_context_free(ctx, pre);
        if (wsp) swiglu_context_free(ctx, wsp);
      }
    }
    free(offs);
  }
  if (!gpu) {
    double peak1 = fma_peak_gflops(&isa);
    printf("FMA peak again after the ops: %.1f GFLOP/s (ratios above use the first, %.1f)\n", peak1, peak0);
  }
  return 0;
}
