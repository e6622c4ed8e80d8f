/*
 * swiglu_context_set_num_threads on the CPU: bad counts are refused and
 * change nothing; every op gives the same bits on 1, 3 and OpenMP's count of
 * threads (the work split must not reach the arithmetic); the GEMM-fused
 * ops' workspace is quoted for the context's count, not OpenMP's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swiglu/swiglu.h>

#include "check.h"

static swiglu_context *ctx;

static float frand(uint32_t *s) {
  *s = *s * 1664525u + 1013904223u;
  return (float)((int32_t)(*s >> 8) - (1 << 23)) / (float)(1 << 21); /* [-4, 4) */
}

/* T x H forward (fp32 in and out), E4M3FN group-128 quantization and GLU
 * linear forward, into out (which the caller compares across counts). */
enum { T = 96, H = 4096, D = 160, HL = 320 };
typedef struct {
  float h[T][H];
  uint8_t q[T][H];
  float s[T][H / 128];
  float hl[T][HL];
  size_t ws_bytes;
} results;

static void run_ops(const float *x, const float *xl, const float *wl, results *out) {
  const swiglu_device cpu = {SWIGLU_DEVICE_CPU, 0};
  int64_t xs[2] = {T, 2 * H}, hs[2] = {T, H}, ss[2] = {T, H / 128};
  swiglu_tensor xt = {(void *)x, cpu, 2, SWIGLU_DTYPE_F32, xs, NULL, 0};
  swiglu_tensor ht = {out->h, cpu, 2, SWIGLU_DTYPE_F32, hs, NULL, 0};
  swiglu_tensor qt = {out->q, cpu, 2, {SWIGLU_DTYPE_UINT, 8, 1}, hs, NULL, 0};
  swiglu_tensor st = {out->s, cpu, 2, SWIGLU_DTYPE_F32, ss, NULL, 0};
  swiglu_glu_desc desc;
  swiglu_glu_desc_init(&desc, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  swiglu_status r = swiglu_glu_forward(ctx, &desc, &xt, NULL, &ht);
  CHECK(r == SWIGLU_SUCCESS, "forward: %s", swiglu_context_last_error(ctx));

  swiglu_quant_desc qd;
  swiglu_quant_desc_init(&qd, SWIGLU_QUANT_FP8_E4M3FN, SWIGLU_SCALE_PER_GROUP, 128);
  swiglu_quant_args qa = {&xt, NULL, &qt, &st, NULL, NULL, NULL};
  r = swiglu_glu_quant(ctx, &desc, &qd, &qa);
  CHECK(r == SWIGLU_SUCCESS, "quant: %s", swiglu_context_last_error(ctx));

  int64_t xls[2] = {T, D}, wls[2] = {2 * HL, D}, hls[2] = {T, HL};
  swiglu_tensor xlt = {(void *)xl, cpu, 2, SWIGLU_DTYPE_F32, xls, NULL, 0};
  swiglu_tensor wlt = {(void *)wl, cpu, 2, SWIGLU_DTYPE_F32, wls, NULL, 0};
  swiglu_tensor hlt = {out->hl, cpu, 2, SWIGLU_DTYPE_F32, hls, NULL, 0};
  swiglu_glu_linear_args la = {&xlt, &wlt, NULL, NULL, NULL, &hlt, NULL, NULL, 0};
  r = swiglu_glu_linear_forward_workspace_size(ctx, &desc, &la, &out->ws_bytes);
  CHECK(r == SWIGLU_SUCCESS, "linear workspace: %s", swiglu_context_last_error(ctx));
  la.workspace = malloc(out->ws_bytes ? out->ws_bytes : 1);
  la.workspace_bytes = out->ws_bytes;
  r = swiglu_glu_linear_forward(ctx, &desc, &la);
  CHECK(r == SWIGLU_SUCCESS, "linear: %s", swiglu_context_last_error(ctx));
  free(la.workspace);
}

int main(void) {
  CHECK(swiglu_context_set_num_threads(NULL, 1) == SWIGLU_ERROR_NULL_POINTER, "NULL context");
  CHECK(swiglu_context_num_threads(NULL) == -1, "num_threads(NULL)");
  if (swiglu_context_create(&ctx, "cpu", 0) != SWIGLU_SUCCESS) {
    fprintf(stderr, "cpu context: %s\n", swiglu_last_create_error());
    return 1;
  }
  CHECK(swiglu_context_num_threads(ctx) == 0, "default setting %d", swiglu_context_num_threads(ctx));
  const int bad[] = {-1, SWIGLU_MAX_THREADS + 1, -2147483647 - 1};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; ++i) {
    const swiglu_status r = swiglu_context_set_num_threads(ctx, bad[i]);
    CHECK(r == SWIGLU_ERROR_INVALID_ARGUMENT, "set_num_threads(%d) gave %s", bad[i], swiglu_status_string(r));
    CHECK(strstr(swiglu_context_last_error(ctx), "set_num_threads") != NULL, "message '%s'",
          swiglu_context_last_error(ctx));
    CHECK(swiglu_context_num_threads(ctx) == 0, "a refused count changed the setting");
  }

  float *x = malloc(sizeof(float) * T * 2 * H), *xl = malloc(sizeof(float) * T * D),
        *wl = malloc(sizeof(float) * 2 * HL * D);
  results *res[3];
  uint32_t seed = 12345u;
  for (int64_t i = 0; i < (int64_t)T * 2 * H; ++i) x[i] = frand(&seed);
  for (int64_t i = 0; i < (int64_t)T * D; ++i) xl[i] = frand(&seed);
  for (int64_t i = 0; i < (int64_t)2 * HL * D; ++i) wl[i] = frand(&seed) / 16.0f;
  const int counts[3] = {0, 1, 3};
  for (int k = 0; k < 3; ++k) {
    res[k] = calloc(1, sizeof(results));
    CHECK(swiglu_context_set_num_threads(ctx, counts[k]) == SWIGLU_SUCCESS, "set_num_threads(%d)", counts[k]);
    CHECK(swiglu_context_num_threads(ctx) == counts[k], "setting %d", counts[k]);
    printf("%d: %s\n", counts[k], swiglu_context_device_name(ctx));
    if (counts[k] > 0) {
      char want[32];
      snprintf(want, sizeof want, ", %d thread%s)", counts[k], counts[k] > 1 ? "s" : "");
      CHECK(strstr(swiglu_context_device_name(ctx), want) != NULL, "device name '%s'",
            swiglu_context_device_name(ctx));
    }
    run_ops(x, xl, wl, res[k]);
  }
  for (int k = 1; k < 3; ++k) {
    CHECK(memcmp(res[k]->h, res[0]->h, sizeof res[0]->h) == 0, "forward differs on %d threads", counts[k]);
    CHECK(memcmp(res[k]->q, res[0]->q, sizeof res[0]->q) == 0, "codes differ on %d threads", counts[k]);
    CHECK(memcmp(res[k]->s, res[0]->s, sizeof res[0]->s) == 0, "scales differ on %d threads", counts[k]);
    CHECK(memcmp(res[k]->hl, res[0]->hl, sizeof res[0]->hl) == 0, "GLU linear differs on %d threads",
          counts[k]);
  }
  /* per-thread packing buffers: the quote follows the context's count */
  printf("linear workspace: %zu bytes on 1 thread, %zu on 3\n", res[1]->ws_bytes, res[2]->ws_bytes);
  CHECK(res[2]->ws_bytes > res[1]->ws_bytes, "workspace on 3 threads (%zu) not above 1's (%zu)",
        res[2]->ws_bytes, res[1]->ws_bytes);
  for (int k = 0; k < 3; ++k) free(res[k]);
  free(x), free(xl), free(wl);
  swiglu_context_destroy(ctx);
  printf("%s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
