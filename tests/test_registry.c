/*
 * The backend registry and context API: auto falls back to the CPU, every
 * refusal (module missing, symbol missing, ABI mismatch, no device) comes
 * back as BACKEND_UNAVAILABLE with its reason and is logged, modules are
 * found beside libswiglu and through SWIGLU_BACKEND_PATH, SWIGLU_BACKEND
 * replaces auto, and contexts work from several threads at once. Also pins
 * the descriptor's DLPack layout and the status values.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swiglu/swiglu.h"

static int g_failed, g_passed;
static char g_log[8192];

static void on_log(const char *line, void *user) {
  (void)user;
  size_t n = strlen(g_log);
  snprintf(g_log + n, sizeof g_log - n, "%s\n", line);
}

static void check(int cond, const char *what, const char *detail) {
  if (cond) ++g_passed, printf("ok   %-52s %s\n", what, detail ? detail : "");
  else ++g_failed, printf("FAIL %-52s %s\n", what, detail ? detail : "");
}

static void expect_create(const char *name, swiglu_status want, const char *msg_has,
                          const char *log_has) {
  g_log[0] = 0;
  swiglu_context *ctx = NULL;
  swiglu_status st = swiglu_context_create(&ctx, name, 0);
  char what[160];
  snprintf(what, sizeof what, "create('%s') -> %s", name ? name : "NULL", swiglu_status_string(want));
  const char *msg = swiglu_last_create_error();
  int ok = st == want && (want != SWIGLU_SUCCESS || ctx) && (want == SWIGLU_SUCCESS || !ctx) &&
           (!msg_has || strstr(msg, msg_has)) && (!log_has || strstr(g_log, log_has));
  char detail[700];
  snprintf(detail, sizeof detail, "[%s] %s", swiglu_status_string(st), st ? msg : swiglu_context_backend(ctx));
  check(ok, what, detail);
  if (!ok) fprintf(stderr, "log was:\n%s", g_log);
  swiglu_context_destroy(ctx);
}

typedef struct {
  int ok;
} thread_result;

static void *thread_main(void *arg) {
  thread_result *res = arg;
  swiglu_context *ctx;
  res->ok = 0;
  /* host memory below: the CPU backend, whatever auto would pick here */
  if (swiglu_context_create(&ctx, "cpu", 0) != SWIGLU_SUCCESS) return NULL;
  enum { N = 50000 };
  float *x = malloc(sizeof(float) * 2 * N), *h = malloc(sizeof(float) * N);
  for (int i = 0; i < 2 * N; ++i) x[i] = (float)(i % 97) / 13.0f - 3.0f;
  int64_t xs[2] = {1, 2 * N}, hs[2] = {1, N};
  swiglu_tensor tx = {x, {SWIGLU_DEVICE_CPU, 0}, 2, {SWIGLU_DTYPE_FLOAT, 32, 1}, xs, NULL, 0};
  swiglu_tensor th = {h, {SWIGLU_DEVICE_CPU, 0}, 2, {SWIGLU_DTYPE_FLOAT, 32, 1}, hs, NULL, 0};
  swiglu_glu_desc d;
  swiglu_glu_desc_init(&d, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  int ok = 1;
  for (int rep = 0; rep < 20 && ok; ++rep) {
    ok = swiglu_glu_forward(ctx, &d, &tx, NULL, &th) == SWIGLU_SUCCESS;
    for (int i = 0; i < N && ok; i += 997) {
      float g = x[i], u = x[N + i];
      float want = g / (1.0f + __builtin_expf(-g)) * u;
      ok = __builtin_fabsf(h[i] - want) <= 1e-5f * (1 + __builtin_fabsf(want));
    }
  }
  res->ok = ok;
  free(x), free(h);
  swiglu_context_destroy(ctx);
  return NULL;
}

int main(int argc, char **argv) {
  /* run by CTest with SWIGLU_CPU_ISA set to a name no build has: the CPU
   * backend refuses as a caller's error, naming the valid ISAs, so that a
   * misspelt name fails a test run instead of skipping it */
  if (argc > 1 && !strcmp(argv[1], "--cpu-isa-invalid")) {
    expect_create("cpu", SWIGLU_ERROR_INVALID_ARGUMENT, "is not one of avx512amx, avx512bf16, avx512, avx2, generic",
                  NULL);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
  }
  /* pinned values and layouts */
  check(swiglu_version() == SWIGLU_VERSION, "swiglu_version() matches the header", swiglu_version_string());
  check(SWIGLU_SUCCESS == 0 && SWIGLU_ERROR_NULL_POINTER == 1 && SWIGLU_ERROR_OVERLAP == 6 &&
            SWIGLU_ERROR_BACKEND_UNAVAILABLE == 9 && SWIGLU_ERROR_INTERNAL == 13,
        "status values are pinned", NULL);
  int distinct = 1;
  for (int a = 0; a <= 13; ++a)
    for (int b = a + 1; b <= 13; ++b)
      distinct &= strcmp(swiglu_status_string(a), swiglu_status_string(b)) != 0;
  check(distinct && strcmp(swiglu_status_string((swiglu_status)77), "unknown status") == 0,
        "status strings are distinct", NULL);
  /* DLPack's DLTensor on LP64: data 0, device 8, ndim 16, dtype 20, shape 24,
   * strides 32, byte_offset 40, size 48; DLDataType {u8 code, u8 bits, u16 lanes}. */
  check(offsetof(swiglu_tensor, data) == 0 && offsetof(swiglu_tensor, device) == 8 &&
            offsetof(swiglu_tensor, ndim) == 16 && offsetof(swiglu_tensor, dtype) == 20 &&
            offsetof(swiglu_tensor, shape) == 24 && offsetof(swiglu_tensor, strides) == 32 &&
            offsetof(swiglu_tensor, byte_offset) == 40 && sizeof(swiglu_tensor) == 48 &&
            sizeof(swiglu_dtype) == 4 && sizeof(swiglu_device) == 8,
        "swiglu_tensor has DLTensor's layout", NULL);
  check(SWIGLU_DTYPE_BFLOAT == 4 && SWIGLU_DTYPE_FLOAT8_E4M3FN == 10 && SWIGLU_DTYPE_FLOAT8_E5M2 == 12 &&
            SWIGLU_DTYPE_FLOAT8_E8M0FNU == 14 && SWIGLU_DEVICE_CUDA == 2 && SWIGLU_DEVICE_ROCM == 10,
        "dtype and device codes are DLPack 1.1's", NULL);

  swiglu_set_log_callback(on_log, NULL);
  unsetenv("SWIGLU_BACKEND");
  expect_create(NULL, SWIGLU_SUCCESS, NULL, "auto: chose backend");
  /* (auto picks a GPU where one is usable; the CPU fallback is checked by
   * test_gpu_module on machines without one) */
  expect_create("auto", SWIGLU_SUCCESS, NULL, "backend 'cuda'");
  expect_create("cpu", SWIGLU_SUCCESS, NULL, NULL);
  expect_create("fakeok", SWIGLU_SUCCESS, NULL, "usable, score 50");
  expect_create("fakeabi", SWIGLU_ERROR_BACKEND_UNAVAILABLE, "ABI mismatch", "ABI mismatch");
  expect_create("fakenodev", SWIGLU_ERROR_BACKEND_UNAVAILABLE, "no fake device present", "no usable device");
  /* a second request gives the same reason (the module is cached) */
  expect_create("fakenodev", SWIGLU_ERROR_BACKEND_UNAVAILABLE, "no fake device present", NULL);
  expect_create("fakenosym", SWIGLU_ERROR_BACKEND_UNAVAILABLE, "swiglu_backend_score", "lacks the symbol");
  expect_create("nosuchbackend", SWIGLU_ERROR_BACKEND_UNAVAILABLE, "libswiglu-nosuchbackend.so", NULL);
  expect_create("../evil", SWIGLU_ERROR_INVALID_ARGUMENT, "not valid", NULL);
  expect_create("fakepath", SWIGLU_ERROR_BACKEND_UNAVAILABLE, "not found", NULL);
  setenv("SWIGLU_BACKEND_PATH", "/nonexistent:" FAKE_PATH_DIR, 1);
  expect_create("fakepath", SWIGLU_SUCCESS, NULL, NULL);
  unsetenv("SWIGLU_BACKEND_PATH");
  setenv("SWIGLU_BACKEND", "fakenodev", 1);
  expect_create("auto", SWIGLU_ERROR_BACKEND_UNAVAILABLE, "no usable device", "replaces auto");
  setenv("SWIGLU_BACKEND", "cpu", 1);
  expect_create(NULL, SWIGLU_SUCCESS, NULL, "replaces auto");
  unsetenv("SWIGLU_BACKEND");

  swiglu_context *ctx = NULL;
  check(swiglu_context_create(&ctx, "cpu", 1) == SWIGLU_ERROR_INVALID_ARGUMENT && !ctx,
        "cpu device 1 is refused", swiglu_last_create_error());
  check(swiglu_context_create(NULL, "cpu", 0) == SWIGLU_ERROR_NULL_POINTER, "NULL out is refused", NULL);

  /* the context reports what it got, holds a stream, and a module's op error reaches the caller */
  if (swiglu_context_create(&ctx, "cpu", 0) == SWIGLU_SUCCESS) {
    check(strcmp(swiglu_context_backend(ctx), "cpu") == 0 && swiglu_context_device(ctx) == 0 &&
              swiglu_context_device_type(ctx) == SWIGLU_DEVICE_CPU,
          "context reports backend and device", swiglu_context_device_name(ctx));
    int dummy;
    check(swiglu_context_set_stream(ctx, &dummy) == SWIGLU_SUCCESS && swiglu_context_stream(ctx) == &dummy,
          "context keeps its stream", NULL);
    swiglu_context_destroy(ctx);
  }
  if (swiglu_context_create(&ctx, "fakeok", 0) == SWIGLU_SUCCESS) {
    float x[4] = {1, 2, 3, 4}, h[2] = {-1, -1};
    int64_t xs[1] = {4}, hs[1] = {2};
    swiglu_tensor tx = {x, {SWIGLU_DEVICE_CPU, 0}, 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, xs, NULL, 0};
    swiglu_tensor th = {h, {SWIGLU_DEVICE_CPU, 0}, 1, {SWIGLU_DTYPE_FLOAT, 32, 1}, hs, NULL, 0};
    swiglu_glu_desc d;
    swiglu_glu_desc_init(&d, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
    swiglu_status st = swiglu_glu_forward(ctx, &d, &tx, NULL, &th);
    check(st == SWIGLU_ERROR_UNSUPPORTED && strstr(swiglu_context_last_error(ctx), "fake module"),
          "a module's status and message reach the caller", swiglu_context_last_error(ctx));
    swiglu_context_destroy(ctx);
  }
  swiglu_set_log_callback(NULL, NULL);

  pthread_t th[4];
  thread_result res[4];
  for (int i = 0; i < 4; ++i) pthread_create(&th[i], NULL, thread_main, &res[i]);
  int all = 1;
  for (int i = 0; i < 4; ++i) pthread_join(th[i], NULL), all &= res[i].ok;
  check(all, "four threads, four contexts, concurrent forward", NULL);

  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
