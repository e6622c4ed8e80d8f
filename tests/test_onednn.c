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
#include "ref64.h"

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
  printf("%d element checks; %d passed, %d failed\n", checks, 4 - failed, failed);
  swiglu_context_destroy(ctx);
  free(g), free(u), free(dh), free(h1), free(h2), free(tmp), free(tmp2);
  free(dg1), free(du1), free(dg2), free(du2);
  return failed ? 1 : 0;
}
