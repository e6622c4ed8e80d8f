/*
 * A program built against an *installed* swiglu (tests/install/check.sh):
 * it must get libswiglu from the install prefix, run a forward on the CPU,
 * and find every GPU module the build installed beside that libswiglu with
 * no environment to help: a module may refuse for want of a device (the
 * registry's "no usable device"), not for anything else -- missing,
 * unloadable, a missing symbol, another ABI than the installed core's.
 *
 * usage: consumer LIBDIR [MODULE...]
 * LIBDIR "static": libswiglu is linked in (a static build), so there is no
 * file to check the origin of. A MODULE may also be a backend linked into
 * libswiglu (SWIGLU_STATIC_BACKENDS): the same check, by name.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swiglu/swiglu.h>

#include "../check.h"

static void check_library_origin(const char *libdir) {
  Dl_info info;
  char lib_real[PATH_MAX], dir_real[PATH_MAX];
  if (!dladdr((void *)&swiglu_context_create, &info) || !info.dli_fname) {
    CHECK(0, "dladdr cannot name the file swiglu_context_create came from");
    return;
  }
  if (!realpath(info.dli_fname, lib_real) || !realpath(libdir, dir_real)) {
    CHECK(0, "realpath(%s, %s)", info.dli_fname, libdir);
    return;
  }
  const size_t n = strlen(dir_real);
  CHECK(strncmp(lib_real, dir_real, n) == 0 && lib_real[n] == '/',
        "libswiglu loaded from %s, not from the install's %s", lib_real, dir_real);
  printf("libswiglu: %s (version %s)\n", lib_real, swiglu_version_string());
}

static void check_cpu_forward(void) {
  enum { T = 3, H = 37 };
  float x[T][2 * H], h[T][H];
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < 2 * H; ++j) x[t][j] = (float)((j * 7 + t * 13) % 29 - 14) / 4.0f;
  memset(h, 0, sizeof h);
  swiglu_context *ctx = NULL;
  if (swiglu_context_create(&ctx, "cpu", 0) != SWIGLU_SUCCESS) {
    CHECK(0, "cpu context: %s", swiglu_last_create_error());
    return;
  }
  int64_t xs[2] = {T, 2 * H}, hs[2] = {T, H};
  swiglu_tensor xt = {x, {SWIGLU_DEVICE_CPU, 0}, 2, SWIGLU_DTYPE_F32, xs, NULL, 0};
  swiglu_tensor ht = {h, {SWIGLU_DEVICE_CPU, 0}, 2, SWIGLU_DTYPE_F32, hs, NULL, 0};
  swiglu_glu_desc desc;
  swiglu_glu_desc_init(&desc, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  const swiglu_status st = swiglu_glu_forward(ctx, &desc, &xt, NULL, &ht);
  CHECK(st == SWIGLU_SUCCESS, "forward: %s: %s", swiglu_status_string(st),
        swiglu_context_last_error(ctx));
  double worst = 0;
  for (int t = 0; t < T; ++t)
    for (int j = 0; j < H; ++j) {
      const double g = x[t][j], u = x[t][H + j], want = g / (1 + exp(-g)) * u;
      const double err = fabs(h[t][j] - want) / (fabs(want) + 1e-30);
      if (want != 0 && err > worst) worst = err;
      if (want == 0) CHECK(h[t][j] == 0, "h[%d][%d] = %g, want 0", t, j, h[t][j]);
    }
  /* fp32 h is within a few ulp of the float64 value (docs/numerics.md) */
  CHECK(worst < 4.0 * 0x1p-24, "forward relative error %g", worst);
  printf("cpu forward: largest relative error %.3g\n", worst);
  swiglu_context_destroy(ctx);
}

static void check_module(const char *name) {
  swiglu_context *ctx = NULL;
  if (swiglu_context_create(&ctx, name, 0) == SWIGLU_SUCCESS) {
    printf("module %s: context on %s\n", name, swiglu_context_device_name(ctx));
    swiglu_context_destroy(ctx);
    return;
  }
  const char *why = swiglu_last_create_error();
  CHECK(strstr(why, "no usable device") != NULL, "module %s: %s", name, why);
  printf("module %s: found, no context: %s\n", name, why);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s LIBDIR [MODULE...]\n", argv[0]);
    return 2;
  }
  CHECK(getenv("SWIGLU_BACKEND_PATH") == NULL, "SWIGLU_BACKEND_PATH is set: the check needs it unset");
  CHECK(swiglu_version() == SWIGLU_VERSION, "library version %d, header %d", swiglu_version(),
        SWIGLU_VERSION);
  if (strcmp(argv[1], "static") != 0) check_library_origin(argv[1]);
  check_cpu_forward();
  for (int i = 2; i < argc; ++i) check_module(argv[i]);
  printf("%s\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}
