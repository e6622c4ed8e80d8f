/*
 * One check per class of bad input: the call returns the specific status, the
 * context's message says something, and no output byte changes. Plus the
 * positive edge cases the validator must not refuse: empty tensors, 0-d
 * leading dims, and element offsets past 2^31 (a sparse view mapped with
 * MAP_NORESERVE, so the kernel's 64-bit addressing is exercised for real).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "swiglu/swiglu.h"

static int g_failed, g_passed;
static swiglu_context *ctx;

#define R 4
#define H 8
static float gx[R][2 * H], gup[R][H], gh[R][H + 4], gdh[R][H], gdx[R][2 * H], gdup[R][H];

typedef struct {
  int64_t shape[3], strides[3];
  swiglu_tensor t;
} desc3;

static void mk(desc3 *d, void *data, int ndim, int64_t a, int64_t b, int64_t sa) {
  memset(d, 0, sizeof *d);
  d->shape[0] = a, d->shape[1] = b;
  d->strides[0] = sa, d->strides[1] = 1;
  d->t.data = data;
  d->t.device.device_type = SWIGLU_DEVICE_CPU;
  d->t.ndim = ndim;
  d->t.dtype = (swiglu_dtype){SWIGLU_DTYPE_FLOAT, 32, 1};
  d->t.shape = d->shape;
  d->t.strides = d->strides;
}

static unsigned char snapshot[6][sizeof gdx > sizeof gh ? sizeof gdx : sizeof gh];
static void *outs[] = {gh, gdx, gdup, gx, gup, gdh};
static size_t outs_size[] = {sizeof gh, sizeof gdx, sizeof gdup, sizeof gx, sizeof gup, sizeof gdh};
static void take_snapshot(void) {
  for (int i = 0; i < 6; ++i) memcpy(snapshot[i], outs[i], outs_size[i]);
}
static int unchanged(void) {
  for (int i = 0; i < 6; ++i)
    if (memcmp(snapshot[i], outs[i], outs_size[i])) return 0;
  return 1;
}

static void expect(const char *what, swiglu_status got, swiglu_status want) {
  const char *msg = swiglu_context_last_error(ctx);
  int ok = got == want && (want == SWIGLU_SUCCESS || (msg && msg[0])) &&
           (want == SWIGLU_SUCCESS || unchanged());
  if (ok) {
    ++g_passed;
    printf("ok   %-58s %s: %s\n", what, swiglu_status_string(got), msg);
  } else {
    ++g_failed;
    printf("FAIL %-58s got %s, want %s (message '%s', outputs %s)\n", what,
           swiglu_status_string(got), swiglu_status_string(want), msg,
           unchanged() ? "untouched" : "CHANGED");
  }
}

/* A fresh valid forward problem: packed x [R, 2H] -> h [R, H] (row stride H+4). */
static swiglu_glu_desc d;
static desc3 X, U, Hh, DH, DX, DU;
static void reset(swiglu_activation act, swiglu_layout layout) {
  swiglu_glu_desc_init(&d, act, layout);
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < 2 * H; ++c) gx[r][c] = 0.25f * (float)(c - r), gdx[r][c] = -7;
    for (int c = 0; c < H; ++c) gup[r][c] = 1.5f, gdh[r][c] = 0.5f, gdup[r][c] = -7;
    for (int c = 0; c < H + 4; ++c) gh[r][c] = -7;
  }
  int sep = layout == SWIGLU_LAYOUT_SEPARATE;
  mk(&X, gx, 2, R, sep ? H : 2 * H, 2 * H);
  mk(&U, gup, 2, R, H, H);
  mk(&Hh, gh, 2, R, H, H + 4);
  mk(&DH, gdh, 2, R, H, H);
  mk(&DX, gdx, 2, R, sep ? H : 2 * H, 2 * H);
  mk(&DU, gdup, 2, R, H, H);
  take_snapshot();
}

static swiglu_status fwd(void) { return swiglu_glu_forward(ctx, &d, &X.t, NULL, &Hh.t); }
static swiglu_status fwd_sep(void) { return swiglu_glu_forward(ctx, &d, &X.t, &U.t, &Hh.t); }
static swiglu_status bwd(unsigned flags) {
  return swiglu_glu_backward(ctx, &d, &DH.t, &X.t, NULL, &DX.t, NULL, NULL, flags);
}

int main(void) {
  if (swiglu_context_create(&ctx, "cpu", 0) != SWIGLU_SUCCESS) {
    printf("cannot create a CPU context: %s\n", swiglu_last_create_error());
    return 1;
  }
  /* sanity: the valid problems succeed (and so the checks below are not vacuous) */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  expect("valid forward succeeds", fwd(), SWIGLU_SUCCESS);
  if (gh[0][0] == -7.0f || gh[0][H] != -7.0f) ++g_failed, printf("FAIL valid forward output\n");
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  expect("valid backward succeeds", bwd(0), SWIGLU_SUCCESS);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);

  /* null pointers */
  if (swiglu_glu_forward(NULL, &d, &X.t, NULL, &Hh.t) != SWIGLU_ERROR_NULL_POINTER ||
      swiglu_context_last_error(NULL)[0] == 0 || !unchanged())
    ++g_failed, printf("FAIL NULL context\n");
  else
    ++g_passed, printf("ok   NULL context\n");
  expect("NULL desc", swiglu_glu_forward(ctx, NULL, &X.t, NULL, &Hh.t), SWIGLU_ERROR_NULL_POINTER);
  expect("NULL x", swiglu_glu_forward(ctx, &d, NULL, NULL, &Hh.t), SWIGLU_ERROR_NULL_POINTER);
  expect("NULL h", swiglu_glu_forward(ctx, &d, &X.t, NULL, NULL), SWIGLU_ERROR_NULL_POINTER);
  X.t.data = NULL;
  expect("NULL x.data", fwd(), SWIGLU_ERROR_NULL_POINTER);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.t.shape = NULL;
  expect("NULL h.shape", fwd(), SWIGLU_ERROR_NULL_POINTER);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_SEPARATE);
  expect("NULL up with the separate layout", fwd(), SWIGLU_ERROR_NULL_POINTER);
  expect("NULL dup with the separate layout",
         swiglu_glu_backward(ctx, &d, &DH.t, &X.t, &U.t, &DX.t, NULL, NULL, 0), SWIGLU_ERROR_NULL_POINTER);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  expect("NULL dh", swiglu_glu_backward(ctx, &d, NULL, &X.t, NULL, &DX.t, NULL, NULL, 0), SWIGLU_ERROR_NULL_POINTER);

  /* rank and shape */
  X.t.ndim = 0;
  expect("x ndim 0", fwd(), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.t.ndim = 9;
  expect("x ndim 9", fwd(), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.t.ndim = 1, Hh.shape[0] = H, Hh.strides[0] = 1;
  expect("h rank differs from x", fwd(), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.shape[1] = H - 1;
  expect("h width is not H", fwd(), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.shape[0] = R - 1;
  expect("h rows differ from x", fwd(), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.shape[1] = 2 * H - 1;
  expect("packed x with an odd width", fwd(), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.shape[0] = -1;
  expect("negative extent", fwd(), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_SEPARATE);
  U.shape[1] = H + 1;
  expect("up width differs from gate", fwd_sep(), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  DH.shape[1] = 2 * H;
  expect("dh width is not H", bwd(0), SWIGLU_ERROR_BAD_SHAPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  DX.shape[1] = H;
  expect("packed dx narrower than x", bwd(0), SWIGLU_ERROR_BAD_SHAPE);

  /* dtypes */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.t.dtype = (swiglu_dtype){SWIGLU_DTYPE_INT, 8, 1};
  expect("int8 input", fwd(), SWIGLU_ERROR_BAD_DTYPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.t.dtype.lanes = 2;
  expect("vector lanes", fwd(), SWIGLU_ERROR_BAD_DTYPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.t.dtype = (swiglu_dtype){SWIGLU_DTYPE_FLOAT8_E4M3FN, 8, 1};
  expect("fp8 output of the plain forward", fwd(), SWIGLU_ERROR_BAD_DTYPE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.t.dtype = (swiglu_dtype){SWIGLU_DTYPE_FLOAT, 64, 1};
  expect("fp64 output", fwd(), SWIGLU_ERROR_BAD_DTYPE);

  /* strides */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.strides[1] = 2, X.shape[1] = H;
  expect("feature stride 2", fwd(), SWIGLU_ERROR_BAD_STRIDE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.strides[0] = -2 * H;
  expect("negative row stride", fwd(), SWIGLU_ERROR_BAD_STRIDE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.strides[0] = 0;
  expect("output row stride 0", fwd(), SWIGLU_ERROR_BAD_STRIDE);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.strides[0] = H - 2;
  expect("output rows overlapping each other", fwd(), SWIGLU_ERROR_OVERLAP);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.t.data = (char *)gh + 2;
  expect("misaligned fp32 output", fwd(), SWIGLU_ERROR_BAD_STRIDE);

  /* overlap */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.t.data = gx;
  Hh.strides[0] = 2 * H;
  expect("h inside x", fwd(), SWIGLU_ERROR_OVERLAP);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_SEPARATE);
  Hh.t.data = gup, Hh.strides[0] = H;
  expect("h is up", fwd_sep(), SWIGLU_ERROR_OVERLAP);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  DX.t.data = gx;
  expect("dx over x without the in-place flag", bwd(0), SWIGLU_ERROR_OVERLAP);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  DX.t.data = gx, DX.t.byte_offset = 4;
  expect("in-place flag with a shifted dx", bwd(SWIGLU_BACKWARD_IN_PLACE), SWIGLU_ERROR_INVALID_ARGUMENT);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  expect("in-place flag with a different dx", bwd(SWIGLU_BACKWARD_IN_PLACE), SWIGLU_ERROR_INVALID_ARGUMENT);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  DX.t.data = gdh;
  expect("dx overlapping dh", bwd(0), SWIGLU_ERROR_OVERLAP);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_SEPARATE);
  DU.t.data = gdx;
  expect("dup overlapping dgate",
         swiglu_glu_backward(ctx, &d, &DH.t, &X.t, &U.t, &DX.t, &DU.t, NULL, 0), SWIGLU_ERROR_OVERLAP);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_SEPARATE);
  Hh.t.data = gdup, Hh.strides[0] = H;
  expect("recomputed h overlapping dup",
         swiglu_glu_backward(ctx, &d, &DH.t, &X.t, &U.t, &DX.t, &DU.t, &Hh.t, 0), SWIGLU_ERROR_OVERLAP);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.t.data = gdh, Hh.strides[0] = H;
  expect("recomputed h overlapping dh",
         swiglu_glu_backward(ctx, &d, &DH.t, &X.t, NULL, &DX.t, NULL, &Hh.t, 0), SWIGLU_ERROR_OVERLAP);

  /* sizes that overflow */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.shape[0] = INT64_C(1) << 40, X.shape[1] = INT64_C(1) << 40;
  X.strides[0] = INT64_C(1) << 40;
  expect("element count past int64", fwd(), SWIGLU_ERROR_SIZE_OVERFLOW);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.shape[0] = 3, X.strides[0] = INT64_MAX / 2;
  expect("element offsets past int64", fwd(), SWIGLU_ERROR_SIZE_OVERFLOW);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.t.data = (void *)(UINTPTR_MAX - 63); /* x spans 256 bytes */
  expect("extent past the end of the address space", fwd(), SWIGLU_ERROR_SIZE_OVERFLOW);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.t.strides = NULL, X.shape[0] = INT64_C(1) << 62, X.shape[1] = 4;
  expect("compact strides past int64", fwd(), SWIGLU_ERROR_SIZE_OVERFLOW);

  /* arguments and unsupported combinations */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  expect("up given with a packed layout", swiglu_glu_forward(ctx, &d, &X.t, &U.t, &Hh.t),
         SWIGLU_ERROR_INVALID_ARGUMENT);
  d.activation = (swiglu_activation)42;
  expect("unknown activation", fwd(), SWIGLU_ERROR_INVALID_ARGUMENT);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  d.layout = (swiglu_layout)9;
  expect("unknown layout", fwd(), SWIGLU_ERROR_INVALID_ARGUMENT);
  reset(SWIGLU_ACT_SILU_GPTOSS, SWIGLU_LAYOUT_INTERLEAVED);
  d.limit = 0;
  expect("clamp limit 0", fwd(), SWIGLU_ERROR_INVALID_ARGUMENT);
  d.limit = NAN;
  expect("clamp limit NaN", fwd(), SWIGLU_ERROR_INVALID_ARGUMENT);
  d.limit = 7, d.alpha = INFINITY;
  expect("alpha inf", fwd(), SWIGLU_ERROR_INVALID_ARGUMENT);
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  expect("unknown backward flag", bwd(0x80), SWIGLU_ERROR_INVALID_ARGUMENT);

  /* device */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  Hh.t.device.device_type = SWIGLU_DEVICE_CUDA;
  expect("CUDA memory on a CPU context", fwd(), SWIGLU_ERROR_DEVICE_MISMATCH);

  /* ------------------------------------------------------------ positives */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  X.shape[0] = 0, Hh.shape[0] = 0, X.t.data = NULL;
  expect("zero rows (NULL data allowed) does nothing", fwd(), SWIGLU_SUCCESS);
  if (!unchanged()) ++g_failed, printf("FAIL zero rows wrote\n");
  /* NumPy's compact strides of an empty array are 0 in front of the zero
   * extent (shape [2, 0, H]: strides 0, H, 1): no element, nothing to
   * overlap, so accepted (it had been refused as "output strides must be
   * positive") */
  reset(SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  {
    desc3 ex, eh;
    mk(&ex, gx, 3, 2, 0, 2 * H);
    mk(&eh, gh, 3, 2, 0, H);
    ex.shape[2] = 2 * H, eh.shape[2] = H;
    ex.strides[0] = 0, ex.strides[1] = 2 * H, ex.strides[2] = 1;
    eh.strides[0] = 0, eh.strides[1] = H, eh.strides[2] = 1;
    take_snapshot();
    expect("empty output with NumPy's zero stride", swiglu_glu_forward(ctx, &d, &ex.t, NULL, &eh.t), SWIGLU_SUCCESS);
    if (!unchanged()) ++g_failed, printf("FAIL the empty output's call wrote\n");
  }

  /* allocations no host can make: an error and a NULL pointer, never a
   * smaller block (sizes within 63 of SIZE_MAX had wrapped to 0 when rounded
   * up to the CPU's alignment). Sizes an allocator would be asked for are
   * left out: ASan aborts on those instead of returning NULL. */
  for (int k = 0; k < 3; ++k) {
    const size_t want = k == 0 ? SIZE_MAX : k == 1 ? SIZE_MAX - 40 : (size_t)PTRDIFF_MAX + 1;
    void *p = (void *)&g_failed;
    char what[64];
    snprintf(what, sizeof what, "context_malloc of SIZE_MAX - %zu bytes", SIZE_MAX - want);
    expect(what, swiglu_context_malloc(ctx, want, &p), SWIGLU_ERROR_OUT_OF_MEMORY);
    if (p) ++g_failed, printf("FAIL %s: *out is not NULL\n", what), swiglu_context_free(ctx, p);
  }

  /* Offsets past 2^31 elements: 3 rows of a view whose row stride is
   * 2^31 + 48 fp32 elements, inside a sparse mapping. */
  const int64_t stride = (INT64_C(1) << 31) + 48, w = 64;
  const size_t span = (size_t)(2 * stride + 2 * w) * 4;
  char *big = mmap(NULL, 2 * span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (big == MAP_FAILED) {
    printf("FAIL cannot map %zu bytes for the 2^31 offset test\n", 2 * span);
    ++g_failed;
  } else {
    float *in = (float *)big, *out = (float *)(big + span);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 2 * w; ++c) in[r * stride + c] = (c < w) ? 1.0f + r : 2.0f;
    swiglu_glu_desc_init(&d, SWIGLU_ACT_RELU, SWIGLU_LAYOUT_GATE_UP);
    desc3 bx, bh;
    mk(&bx, in, 2, 3, 2 * w, stride);
    mk(&bh, out, 2, 3, w, stride);
    take_snapshot();
    expect("rows 2^31 elements apart", swiglu_glu_forward(ctx, &d, &bx.t, NULL, &bh.t), SWIGLU_SUCCESS);
    int ok = 1;
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < w; ++c) ok &= out[r * stride + c] == 2.0f * (1.0f + r);
    if (!ok) ++g_failed, printf("FAIL rows 2^31 elements apart: wrong values\n");
    munmap(big, 2 * span);
  }

  swiglu_context_destroy(ctx);
  printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
