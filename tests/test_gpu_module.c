/*
 * A GPU backend module (argument: its name, "cuda" or "hip") was built and
 * loads. On a machine with such a GPU the context is created and a small
 * forward pass matches the CPU; on one without, the module must load and
 * refuse with "no usable device" (not "not found"), and auto must fall back
 * to the CPU. Prints which of the two it saw.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "swiglu/swiglu.h"

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "cuda";
  swiglu_context *ctx = NULL;
  swiglu_status st = swiglu_context_create(&ctx, name, 0);
  if (st == SWIGLU_ERROR_BACKEND_UNAVAILABLE) {
    const char *why = swiglu_last_create_error();
    printf("%s: module refused: %s\n", name, why);
    if (!strstr(why, "no usable device")) {
      printf("FAIL: the module was not loaded (it should be built beside libswiglu)\n");
      return 1;
    }
    swiglu_context *cpu = NULL;
    if (swiglu_context_create(&cpu, "auto", 0) || strcmp(swiglu_context_backend(cpu), "cpu")) {
      printf("FAIL: auto did not fall back to the CPU\n");
      return 1;
    }
    swiglu_context_destroy(cpu);
    printf("1 passed, 0 failed (no %s device here: the module loads and refuses cleanly)\n", name);
    return 0;
  }
  if (st) {
    printf("FAIL: %s: %s\n", swiglu_status_string(st), swiglu_last_create_error());
    return 1;
  }
  printf("%s: %s\n", name, swiglu_context_device_name(ctx));
  /* host threads mean nothing to a GPU backend: the setting is recorded,
   * nothing else changes (the forward below runs with it) */
  if (swiglu_context_set_num_threads(ctx, 3) || swiglu_context_num_threads(ctx) != 3) {
    printf("FAIL: set_num_threads on %s: %s\n", name, swiglu_context_last_error(ctx));
    return 1;
  }
  enum { N = 4096 };
  static float x[2 * N], h[N], hc[N];
  for (int i = 0; i < 2 * N; ++i) x[i] = sinf((float)i) * 6.0f;
  void *dx, *dh;
  int64_t xs[1] = {2 * N}, hs[1] = {N};
  swiglu_glu_desc d;
  swiglu_glu_desc_init(&d, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  if (swiglu_context_malloc(ctx, sizeof x, &dx) || swiglu_context_malloc(ctx, sizeof h, &dh) ||
      swiglu_context_copy(ctx, dx, x, sizeof x, SWIGLU_COPY_HOST_TO_DEVICE)) {
    printf("FAIL: memory: %s\n", swiglu_context_last_error(ctx));
    return 1;
  }
  swiglu_device dev = {swiglu_context_device_type(ctx), swiglu_context_device(ctx)};
  swiglu_tensor tx = {dx, dev, 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, xs, NULL, 0};
  swiglu_tensor th = {dh, dev, 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, hs, NULL, 0};
  if (swiglu_glu_forward(ctx, &d, &tx, NULL, &th) || swiglu_context_synchronize(ctx) ||
      swiglu_context_copy(ctx, h, dh, sizeof h, SWIGLU_COPY_DEVICE_TO_HOST)) {
    printf("FAIL: forward: %s\n", swiglu_context_last_error(ctx));
    return 1;
  }
  swiglu_context *cpu;
  swiglu_context_create(&cpu, "cpu", 0);
  swiglu_tensor cx = {x, {SWIGLU_DEVICE_CPU, 0}, 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, xs, NULL, 0};
  swiglu_tensor ch = {hc, {SWIGLU_DEVICE_CPU, 0}, 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, hs, NULL, 0};
  swiglu_glu_forward(cpu, &d, &cx, NULL, &ch);
  int same = memcmp(h, hc, sizeof h) == 0;
  printf("%s forward %s the CPU's bit for bit\n", name, same ? "equals" : "DIFFERS from");
  swiglu_context_free(ctx, dx), swiglu_context_free(ctx, dh);
  swiglu_context_destroy(ctx), swiglu_context_destroy(cpu);
  printf("%d passed, %d failed\n", same, !same);
  return same ? 0 : 1;
}
