/*
 * The CPU backend against oneDNN's eltwise (swish, gelu tanh, gelu erf,
 * relu) + binary multiply, forward and backward: an independent
 * implementation with its own approximations. Inputs are bf16 values
 * widened to fp32 (oneDNN 2.6 has no bf16 eltwise on AVX2 machines), the
 * comparison is in fp32 with the tolerance stated in docs/numerics.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onednn_glu.h"
#include "onednn_linear.h"
#include "ref64.h"

/* The GEMM-fused forward ops against oneDNN matmuls: the GLU linear as
 * matmul + activation post-op, matmul + multiply post-op; the down
 * projection as oneDNN's eltwise GLU, then a matmul. Both sides accumulate
 * in fp32 (in different orders, oneDNN with its own activation
 * approximations): the bound is twice the accumulation bound of
 * docs/numerics.md propagated through the activation, plus 1e-5 relative. */
static int linear_crosscheck(swiglu_context *ctx, int *checks, const int64_t T) {
  const int64_t D = 129, H = 70;
  static const char *names[] = {"silu", "gelu_tanh", "gelu_erf", "relu"};
  float *x = malloc(4 * T * D), *w = malloc(4 * 2 * H * D), *wd = malloc(4 * D * H);
  float *h1 = malloc(4 * T * H), *h2 = malloc(4 * T * H), *tmp = malloc(4 * T * H);
  float *pre = malloc(4 * T * 2 * H), *y1 = malloc(4 * T * D), *y2 = malloc(4 * T * D);
  void *ws = NULL;
  t_rng rng = {11};
  for (int64_t i = 0; i < T * D; ++i) x[i] = (float)t_normal(&rng);
  for (int64_t i = 0; i < 2 * H * D; ++i) w[i] = (float)(t_normal(&rng) / sqrt((double)D));
  for (int64_t i = 0; i < D * H; ++i) wd[i] = (float)(t_normal(&rng) / sqrt((double)H));
  int failed = 0;
  int64_t sx[2] = {T, D}, sw[2] = {2 * H, D}, sh[2] = {T, H}, sp[2] = {T, 2 * H}, swd[2] = {D, H};
  swiglu_tensor tx = {x, {SWIGLU_DEVICE_CPU, 0}, 2, {SWIGLU_DTYPE_FLOAT, 32, 1}, sx, NULL, 0};
  swiglu_tensor tw = tx, th = tx, tp = tx, twd = tx, ty = tx;
  tw.data = w, tw.shape = sw, th.data = h1, th.shape = sh, tp.data = pre, tp.shape = sp;
  twd.data = wd, twd.shape = swd, ty.data = y1;
  for (int act = 0; act < 4; ++act) {
    char why[256] = "";
    swiglu_glu_desc d;
    swiglu_glu_desc_init(&d, (swiglu_activation)act, SWIGLU_LAYOUT_GATE_UP);
    swiglu_glu_linear_args la = {&tx, &tw, NULL, NULL, NULL, &th, NULL, NULL, 0};
    swiglu_down_proj_args da = {&tp, NULL, &twd, NULL, 0, &ty, NULL, 0};
    size_t b1 = 0, b2 = 0;
    if (swiglu_glu_linear_forward_workspace_size(ctx, &d, &la, &b1) ||
        swiglu_down_proj_forward_workspace_size(ctx, &d, &da, &b2)) {
      printf("FAIL linear %s: workspace query: %s\n", names[act], swiglu_context_last_error(ctx));
      ++failed;
      continue;
    }
    free(ws);
    ws = malloc(b1 > b2 ? b1 : b2);
    la.workspace = da.workspace = ws, la.workspace_bytes = b1, da.workspace_bytes = b2;
    for (int64_t i = 0; i < T * 2 * H; ++i) pre[i] = (float)(t_normal(&rng) * 2);
    odnn_mm *mg = odnn_mm_create(T, D, H, 0, w, D, ODNN_POST_ACT, act, why, sizeof why);
    odnn_mm *mu = odnn_mm_create(T, D, H, 0, w + H * D, D, ODNN_POST_MUL, 0, why, sizeof why);
    odnn_mm *md = odnn_mm_create(T, H, D, 0, wd, H, ODNN_POST_NONE, 0, why, sizeof why);
    odnn_glu *eg = odnn_glu_create(act, T, H, 0, why, sizeof why);
    float *g = malloc(4 * T * H), *u = malloc(4 * T * H);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t f = 0; f < H; ++f) g[t * H + f] = pre[t * 2 * H + f], u[t * H + f] = pre[t * 2 * H + H + f];
    float *hd = malloc(4 * T * H);
    int ran = mg && mu && md && eg && !swiglu_glu_linear_forward(ctx, &d, &la) &&
              !swiglu_down_proj_forward(ctx, &d, &da) && odnn_mm_run(mg, x, NULL, tmp) &&
              odnn_mm_run(mu, x, tmp, h2) && odnn_glu_forward(eg, g, u, tmp, hd) &&
              odnn_mm_run(md, hd, NULL, y2);
    free(hd);
    int bad = 0;
    if (!ran) {
      printf("FAIL linear %s: a call failed (%s %s)\n", names[act], why, swiglu_context_last_error(ctx));
      ++failed;
    } else {
      const double gam = 2 * D * 0x1.0p-23;
      for (int64_t t = 0; t < T; ++t)
        for (int64_t f = 0; f < H; ++f) {
          double mgs = 0, mus = 0, gv = 0, uv = 0;
          for (int64_t k = 0; k < D; ++k) {
            mgs += fabs(x[t * D + k] * w[f * D + k]), mus += fabs(x[t * D + k] * w[(H + f) * D + k]);
            gv += x[t * D + k] * w[f * D + k], uv += x[t * D + k] * w[(H + f) * D + k];
          }
          t_act a;
          t_activation(act, 1.702, 7, gv, uv, &a);
          double tol = 1.2 * (fabs(uv) * gam * mgs + fabs(a.a) * gam * mus) + 1e-5 * fabs(h2[t * H + f]) + 1e-7;
          ++*checks;
          if (!(fabs(h1[t * H + f] - h2[t * H + f]) <= tol) && bad++ < 5)
            printf("  linear %s h (%lld, %lld): swiglu %.9g oneDNN %.9g\n", names[act], (long long)t,
                   (long long)f, h1[t * H + f], h2[t * H + f]);
        }
      for (int64_t t = 0; t < T; ++t)
        for (int64_t dd = 0; dd < D; ++dd) {
          double m = 0;
          for (int64_t f = 0; f < H; ++f) {
            t_act a;
            t_activation(act, 1.702, 7, g[t * H + f], u[t * H + f], &a);
            m += fabs(a.a * a.m * wd[dd * H + f]);
          }
          double tol = (2 * H * 0x1.0p-23 + 2e-5) * m + 1e-7;
          ++*checks;
          if (!(fabs(y1[t * D + dd] - y2[t * D + dd]) <= tol) && bad++ < 5)
            printf("  down_proj %s y (%lld, %lld): swiglu %.9g oneDNN %.9g\n", names[act], (long long)t,
                   (long long)dd, y1[t * D + dd], y2[t * D + dd]);
        }
      printf("%s linear %s T=%lld: GLU linear forward and down projection against oneDNN matmuls\n",
             bad ? "FAIL" : "ok  ", names[act], (long long)T);
      failed += bad != 0;
    }
    odnn_mm_destroy(mg), odnn_mm_destroy(mu), odnn_mm_destroy(md), odnn_glu_destroy(eg);
    free(g), free(u);
  }
  free(ws), free(x), free(w), free(wd), free(h1), free(h2), free(tmp), free(pre), free(y1), free(y2);
  return failed;
}

int main(void) {
  swiglu_context *ctx;
  if (swiglu_context_create(&ctx, "cpu", 0)) return 1;
  const int64_t rows = 37, cols = 1000, n = rows * cols;
  float *g = malloc(4 * n), *u = malloc(4 * n), *dh = malloc(4 * n);
  float *h1 = malloc(4 * n), *h2 = malloc(4 * n), *tmp = malloc(4 * n), *tmp2 = malloc(4 * n);
  float *dg1 = malloc(4 * n), *du1 = malloc(4 * n), *dg2 = malloc(4 * n), *du2 = malloc(4 * n);
  t_rng rng = {7};
  for (int64_t i = 0; i < n; ++i) {
    g[i] = (float)t_round((t_uniform(&rng) * 2 - 1) * (i % 5 == 0 ? 30 : 8), T_BF16);
    u[i] = (float)t_round(t_normal(&rng) * 2, T_BF16);
    dh[i] = (float)t_round(t_normal(&rng), T_BF16);
  }
  int64_t shape[2] = {rows, cols};
  swiglu_tensor tg = {g, {SWIGLU_DEVICE_CPU, 0}, 2, {SWIGLU_DTYPE_FLOAT, 32, 1}, shape, NULL, 0};
  swiglu_tensor tu = tg, tdh = tg, th = tg, tdg = tg, tdu = tg;
  tu.data = u, tdh.data = dh, th.data = h1, tdg.data = dg1, tdu.data = du1;
  static const char *names[] = {"silu", "gelu_tanh", "gelu_erf", "relu"};
  int failed = 0, checks = 0;
  printf("oneDNN %s\n", odnn_version());
  for (int act = 0; act < 4; ++act) {
    char why[256];
    odnn_glu *o = odnn_glu_create(act, rows, cols, 0, why, sizeof why);
    if (!o) {
      printf("FAIL %s: %s\n", names[act], why);
      ++failed;
      continue;
    }
    swiglu_glu_desc d;
    swiglu_glu_desc_init(&d, (swiglu_activation)act, SWIGLU_LAYOUT_SEPARATE);
    if (swiglu_glu_forward(ctx, &d, &tg, &tu, &th) ||
        swiglu_glu_backward(ctx, &d, &tdh, &tg, &tu, &tdg, &tdu, NULL, 0) ||
        !odnn_glu_forward(o, g, u, tmp, h2) || !odnn_glu_backward(o, dh, g, u, dg2, du2, tmp, tmp2)) {
      printf("FAIL %s: a call failed\n", names[act]);
      ++failed;
      odnn_glu_destroy(o);
      continue;
    }
    double worst[3] = {0, 0, 0};
    int bad = 0;
    for (int64_t i = 0; i < n; ++i) {
      /* oneDNN's fp32 approximations are good to a few 1e-6 relative; its
       * gelu_erf evaluates 1 + erf(x), which loses everything that
       * erfc keeps for x < -3, so an absolute term scaled by the inputs
       * covers that tail. */
      const double got[3] = {h1[i], dg1[i], du1[i]}, want[3] = {h2[i], dg2[i], du2[i]};
      const double absterm[3] = {fabs(u[i]) * (1 + fabs(g[i])), fabs(dh[i] * u[i]) * (1 + g[i] * g[i]),
                                 fabs(dh[i]) * (1 + fabs(g[i]))};
      for (int k = 0; k < 3; ++k) {
        double err = fabs(got[k] - want[k]);
        double tol = 1e-5 * fabs(want[k]) + 2e-7 * absterm[k];
        ++checks;
        if (!(err <= tol)) {
          if (bad++ < 5)
            printf("  %s %s: gate %.9g up %.9g dh %.9g: swiglu %.9g oneDNN %.9g\n", names[act],
                   k == 0 ? "h" : k == 1 ? "dgate" : "dup", g[i], u[i], dh[i], got[k], want[k]);
        }
        double rel = err / (fabs(want[k]) + 1e-30);
        if (fabs(want[k]) > 1e-3 && rel > worst[k]) worst[k] = rel;
      }
    }
    printf("%s %s: max relative difference (|value| > 1e-3) h %.2e dgate %.2e dup %.2e\n",
           bad ? "FAIL" : "ok  ", names[act], worst[0], worst[1], worst[2]);
    failed += bad != 0;
    odnn_glu_destroy(o);
  }
  /* T = 37 runs the CPU's packed GEMM, T = 5 its few-row dot products */
  int lin_failed = linear_crosscheck(ctx, &checks, 37) + linear_crosscheck(ctx, &checks, 5);
  printf("%d element checks; %d passed, %d failed\n", checks, 12 - failed - lin_failed, failed + lin_failed);
  failed += lin_failed;
  swiglu_context_destroy(ctx);
  free(g), free(u), free(dh), free(h1), free(h2), free(tmp), free(tmp2);
  free(dg1), free(du1), free(dg2), free(du2);
  return failed ? 1 : 0;
}
