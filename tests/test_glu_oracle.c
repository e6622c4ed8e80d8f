/*
 * The CPU backend against the float64 reference (tests/ref64.c), over every
 * activation, layout, input/output dtype pair, odd sizes, non-contiguous and
 * non-collapsible row strides, and inputs that include huge, tiny, zero,
 * NaN and +-Inf values. Outputs and the padding around them are poisoned
 * with a signaling-NaN pattern the kernels never produce; every element of
 * the view must be written and every element outside must be untouched.
 *
 * Backward: analytic float64 gradient, a finite-difference check of the
 * fp32 gradients against the float64 forward, in-place equal to
 * out-of-place bit for bit, and the optional recomputed h.
 *
 * Exit code 77 (CTest SKIP) when the backend or the forced CPU ISA is not
 * available here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref64.h"
#include "open_backend.h"

static const char *const k_act_name[] = {"silu", "gelu_tanh", "gelu_erf", "relu", "silu_gptoss",
                                         "silu_clamped"};
static const char *const k_layout_name[] = {"separate", "gate_up", "up_gate", "interleaved"};

/* Tolerances of docs/numerics.md, section "Tolerances": n_ulp and k for
 * fp32 outputs, by activation; 16-bit outputs use n_ulp = 1 (k as for fp32
 * in backward, 0 in forward). */
static const double k_fwd_ulp_f32[] = {4, 4, 6, 0, 4, 4};
static const double k_fwd_k_f32[] = {0, 4, 0, 0, 4, 0};
static const double k_bwd_ulp_f32[] = {4, 4, 6, 0, 4, 4};
static const double k_bwd_k[] = {4, 8, 8, 0, 8, 4};

static long g_checked, g_failed;
/* Largest observed |got - exact| / ulp(exact) per (op, activation, fp32 out?),
 * printed so docs/numerics.md can quote measured figures. */
static double g_max_ulps[3][6][2];
static void track(int op, int act, int t, double exact, double got, double gate, double up,
                  double dh) {
  if (!(fabs(up) < 100 && fabs(dh) < 100)) return; /* keep the subnormal-times-huge cases out */
  /* only where the ulp term is the whole tolerance (k = 0 acts, normal range) */
  if (!isfinite(exact) || !isfinite(got) || fabs(exact) < 0x1.0p-126 || fabs(gate) > 80 ||
      fabs(gate) < 0x1.0p-100)
    return;
  double u = fabs(got - exact) / t_ulp(exact, t);
  int f = t == T_F32;
  if (u > g_max_ulps[op][act][f]) g_max_ulps[op][act][f] = u;
}
static int g_verbose_left = 20;

static swiglu_context *g_ctx; /* the backend under test; its memory holds the tensors */

static void must(swiglu_status st, const char *what) {
  if (st) {
    fprintf(stderr, "%s: %s: %s\n", what, swiglu_status_string(st), swiglu_context_last_error(g_ctx));
    exit(1);
  }
}

typedef struct {
  void *buf; /* host mirror */
  void *dev; /* the backend's memory */
  size_t bytes;
  int t;
  int64_t shape[3], strides[3];
  swiglu_tensor d;
} tbuf;

/* A [d0, d1, w] tensor with row padding pad1 and (non-collapsing) block padding pad0. */
static void tb_make(tbuf *b, int t, int64_t d0, int64_t d1, int64_t w, int64_t pad1, int64_t pad0) {
  b->t = t;
  b->shape[0] = d0, b->shape[1] = d1, b->shape[2] = w;
  b->strides[2] = 1;
  b->strides[1] = w + pad1;
  b->strides[0] = d1 * b->strides[1] + pad0;
  int64_t n = (d0 - 1) * b->strides[0] + (d1 - 1) * b->strides[1] + w + 5; /* 5: trailing guard */
  b->bytes = (size_t)n * t_size(t);
  b->buf = malloc(b->bytes);
  must(swiglu_context_malloc(g_ctx, b->bytes, &b->dev), "malloc");
  memset(&b->d, 0, sizeof b->d);
  b->d.data = b->dev;
  b->d.device.device_type = swiglu_context_device_type(g_ctx);
  b->d.device.device_id = swiglu_context_device(g_ctx);
  b->d.ndim = 3;
  b->d.dtype = t_dtype(t);
  b->d.shape = b->shape;
  b->d.strides = b->strides;
}
static void tb_up(tbuf *b) { must(swiglu_context_copy(g_ctx, b->dev, b->buf, b->bytes, SWIGLU_COPY_HOST_TO_DEVICE), "upload"); }
static void tb_down(tbuf *b) {
  must(swiglu_context_synchronize(g_ctx), "synchronize");
  must(swiglu_context_copy(g_ctx, b->buf, b->dev, b->bytes, SWIGLU_COPY_DEVICE_TO_HOST), "download");
}
static void tb_free(tbuf *b) {
  free(b->buf);
  swiglu_context_free(g_ctx, b->dev);
}

static int64_t tb_index(const tbuf *b, int64_t row, int64_t c) {
  return (row / b->shape[1]) * b->strides[0] + (row % b->shape[1]) * b->strides[1] + c;
}
static int64_t tb_total(const tbuf *b) { return (int64_t)(b->bytes / t_size(b->t)); }

/* signaling NaNs (quiet bit clear): every NaN the kernels write is quiet */
static uint32_t poison_bits(int t) {
  if (t == T_F32) return 0x7f80deadu;
  return t == T_BF16 ? 0x7f81u : 0x7c01u;
}
/* the first element, then the filled prefix copied onto what follows it,
 * doubling (an element at a time took seconds on the 32 MiB cases) */
static void tb_poison(tbuf *b) {
  const uint32_t p = poison_bits(b->t);
  const size_t es = t_size(b->t), n = b->bytes / es;
  memcpy(b->buf, &p, es);
  for (size_t k = 1; k < n; k *= 2) memcpy((char *)b->buf + k * es, b->buf, (n - k < k ? n - k : k) * es);
}
static int tb_is_poison(const tbuf *b, int64_t i) {
  uint32_t v = 0;
  memcpy(&v, (char *)b->buf + i * t_size(b->t), t_size(b->t));
  return v == poison_bits(b->t);
}
/* Every element outside the view must still be poison. */
static int tb_outside_untouched(const tbuf *b, int64_t rows, int64_t w) {
  char *mark = calloc((size_t)tb_total(b), 1);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < w; ++c) mark[tb_index(b, r, c)] = 1;
  int ok = 1;
  for (int64_t i = 0; i < tb_total(b) && ok; ++i)
    if (!mark[i] && !tb_is_poison(b, i)) ok = 0;
  free(mark);
  return ok;
}

static void report(int ok, const char *what, const char *ctx_desc, int64_t r, int64_t c,
                   double gate, double up, double exact, double got) {
  ++g_checked;
  if (ok) return;
  ++g_failed;
  if (g_verbose_left-- > 0)
    fprintf(stderr, "FAIL %s [%s] row %lld col %lld: gate=%.9g up=%.9g expected %.9g got %.9g\n",
            what, ctx_desc, (long long)r, (long long)c, gate, up, exact, got);
}

typedef struct {
  int act, layout, tin, tout;
  int64_t d0, d1, H, pad1, pad0;
} glu_case;

/* The whole buffer, padding included, so values under the padding are real too. */
static void fill_sampled(t_rng *rng, tbuf *b, double limit) {
  for (int64_t i = 0; i < tb_total(b); ++i) t_write(b->buf, b->t, i, t_sample(rng, b->t, limit));
}

static void gate_up_at(const glu_case *k, const tbuf *x, const tbuf *up, int64_t r, int64_t c,
                       double *g, double *u) {
  const int64_t H = k->H;
  switch (k->layout) {
    case SWIGLU_LAYOUT_SEPARATE:
      *g = t_read(x->buf, x->t, tb_index(x, r, c));
      *u = t_read(up->buf, up->t, tb_index(up, r, c));
      break;
    case SWIGLU_LAYOUT_GATE_UP:
      *g = t_read(x->buf, x->t, tb_index(x, r, c));
      *u = t_read(x->buf, x->t, tb_index(x, r, c + H));
      break;
    case SWIGLU_LAYOUT_UP_GATE:
      *u = t_read(x->buf, x->t, tb_index(x, r, c));
      *g = t_read(x->buf, x->t, tb_index(x, r, c + H));
      break;
    default:
      *g = t_read(x->buf, x->t, tb_index(x, r, 2 * c));
      *u = t_read(x->buf, x->t, tb_index(x, r, 2 * c + 1));
      break;
  }
}

/* Whether got[0..rows, 0..w) holds the bits of want's elements, NaN against
 * NaN counting as equal (docs/numerics.md leaves a NaN's sign and payload
 * unspecified: gcc 13's generic build gave -nan in one call and nan in the
 * other for the same element). The first difference goes to *fr, *fc (c
 * offset by col0), *vw, *vg. */
static int tb_same_bits(const tbuf *want, const tbuf *got, int64_t rows, int64_t w, int64_t col0, int64_t *fr,
                        int64_t *fc, double *vw, double *vg) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < w; ++c) {
      const int64_t iw = tb_index(want, r, c), ig = tb_index(got, r, c);
      if (!memcmp((char *)want->buf + iw * t_size(want->t), (char *)got->buf + ig * t_size(got->t),
                  t_size(want->t)))
        continue;
      *vw = t_read(want->buf, want->t, iw), *vg = t_read(got->buf, got->t, ig);
      if (isnan(*vw) && isnan(*vg)) continue;
      *fr = r, *fc = col0 + c;
      return 0;
    }
  return 1;
}

static void run_case(swiglu_context *ctx, const glu_case *k, t_rng *rng) {
  swiglu_glu_desc desc;
  swiglu_glu_desc_init(&desc, (swiglu_activation)k->act, (swiglu_layout)k->layout);
  const int sep = k->layout == SWIGLU_LAYOUT_SEPARATE;
  const int64_t rows = k->d0 * k->d1, H = k->H, wx = sep ? H : 2 * H;
  char cd[200];
  snprintf(cd, sizeof cd, "%s %s %s->%s %lldx%lldx%lld pad %lld/%lld", k_act_name[k->act],
           k_layout_name[k->layout], t_dtype_name[k->tin], t_dtype_name[k->tout],
           (long long)k->d0, (long long)k->d1, (long long)H, (long long)k->pad1,
           (long long)k->pad0);
  tbuf x, up, h, dh, dx, dup, h2;
  tb_make(&x, k->tin, k->d0, k->d1, wx, k->pad1, k->pad0);
  if (sep) tb_make(&up, k->tin, k->d0, k->d1, H, k->pad1 + 1, k->pad0);
  tb_make(&h, k->tout, k->d0, k->d1, H, k->pad1 + 2, k->pad0);
  tb_make(&dh, k->tin, k->d0, k->d1, H, k->pad1, 0);
  tb_make(&dx, k->tout, k->d0, k->d1, wx, k->pad1 + 3, k->pad0);
  if (sep) tb_make(&dup, k->tout, k->d0, k->d1, H, k->pad1, k->pad0 + 1);
  tb_make(&h2, k->tout, k->d0, k->d1, H, 0, 0);
  fill_sampled(rng, &x, desc.limit);
  if (sep) fill_sampled(rng, &up, desc.limit);
  fill_sampled(rng, &dh, 1.0);

  tb_up(&x), tb_up(&dh);
  if (sep) tb_up(&up);

  /* ---- forward */
  tb_poison(&h);
  tb_up(&h);
  swiglu_status st = swiglu_glu_forward(ctx, &desc, &x.d, sep ? &up.d : NULL, &h.d);
  tb_down(&h);
  if (st != SWIGLU_SUCCESS) {
    fprintf(stderr, "FAIL forward [%s]: status %s: %s\n", cd, swiglu_status_string(st),
            swiglu_context_last_error(ctx));
    ++g_failed;
  } else {
    const double n = k->tout == T_F32 ? k_fwd_ulp_f32[k->act] : 1;
    const double kk = k->tout == T_F32 ? k_fwd_k_f32[k->act] : 0;
    report(tb_outside_untouched(&h, rows, H), "forward wrote outside its view", cd, -1, -1, 0, 0, 0, 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < H; ++c) {
        double g, u;
        gate_up_at(k, &x, sep ? &up : NULL, r, c, &g, &u);
        t_glu_ref ref;
        t_glu_reference(k->act, desc.alpha, desc.limit, g, u, 0, &ref);
        int64_t i = tb_index(&h, r, c);
        double got = t_read(h.buf, h.t, i);
        int ok = !tb_is_poison(&h, i) && t_accept(ref.h, got, k->tout, n, kk, ref.h_arg, ref.h_abs, ref.h_amb);
        track(0, k->act, k->tout, ref.h, got, g, u, 0);
        report(ok, "forward", cd, r, c, g, u, ref.h, got);
      }
  }

  /* ---- backward, out of place, with h recomputed */
  tb_poison(&dx);
  if (sep) tb_poison(&dup);
  tb_poison(&h2);
  tb_up(&dx), tb_up(&h2);
  if (sep) tb_up(&dup);
  st = swiglu_glu_backward(ctx, &desc, &dh.d, &x.d, sep ? &up.d : NULL, &dx.d, sep ? &dup.d : NULL,
                           &h2.d, 0);
  tb_down(&dx), tb_down(&h2);
  if (sep) tb_down(&dup);
  if (st != SWIGLU_SUCCESS) {
    fprintf(stderr, "FAIL backward [%s]: status %s: %s\n", cd, swiglu_status_string(st),
            swiglu_context_last_error(ctx));
    ++g_failed;
  } else {
    const double n = k->tout == T_F32 ? k_bwd_ulp_f32[k->act] : 1;
    const double kk = k_bwd_k[k->act];
    report(tb_outside_untouched(&dx, rows, wx), "backward wrote outside dx", cd, -1, -1, 0, 0, 0, 0);
    if (sep) report(tb_outside_untouched(&dup, rows, H), "backward wrote outside dup", cd, -1, -1, 0, 0, 0, 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < H; ++c) {
        double g, u, dhv = t_read(dh.buf, dh.t, tb_index(&dh, r, c));
        gate_up_at(k, &x, sep ? &up : NULL, r, c, &g, &u);
        t_glu_ref ref;
        t_glu_reference(k->act, desc.alpha, desc.limit, g, u, dhv, &ref);
        int64_t ig = sep ? tb_index(&dx, r, c) : tb_index(&dx, r, t_glu_col(k->layout, k->H, c, 0));
        const tbuf *ub = sep ? &dup : &dx;
        int64_t iu = sep ? tb_index(&dup, r, c) : tb_index(&dx, r, t_glu_col(k->layout, k->H, c, 1));
        double gg = t_read(dx.buf, dx.t, ig), gu = t_read(ub->buf, ub->t, iu);
        track(1, k->act, k->tout, ref.dgate, gg, g, u, dhv);
        track(2, k->act, k->tout, ref.dup, gu, g, u, dhv);
        report(!tb_is_poison(&dx, ig) &&
                   t_accept(ref.dgate, gg, k->tout, n, kk, ref.dgate_scale, ref.dgate_abs, ref.dgate_amb),
               "backward dgate", cd, r, c, g, u, ref.dgate, gg);
        report(!tb_is_poison(ub, iu) && t_accept(ref.dup, gu, k->tout, n, kk, ref.dup_arg, ref.dup_abs, ref.dup_amb),
               "backward dup", cd, r, c, g, u, ref.dup, gu);
        /* the recomputed h is the forward's, bit for bit */
        int64_t ih = tb_index(&h2, r, c), ih1 = tb_index(&h, r, c);
        report(memcmp((char *)h2.buf + ih * t_size(h2.t), (char *)h.buf + ih1 * t_size(h.t),
                      t_size(h.t)) == 0,
               "backward h equals forward h", cd, r, c, g, u, t_read(h.buf, h.t, ih1),
               t_read(h2.buf, h2.t, ih));
        /* Finite differences of the float64 forward, for fp32 gradients of
         * ordinary inputs away from kinks (clamp limits, ReLU's 0). */
        if (k->tout == T_F32 && isfinite(g) && isfinite(u) && isfinite(dhv) && fabs(g) < 8 &&
            fabs(dhv) < 1e6 &&
            fabs(u) < 30 && fabs(g) > 1e-3 && fabs(fabs(g) - desc.limit) > 1e-2 &&
            fabs(fabs(u) - desc.limit) > 1e-2) {
          const double e = 1e-6 * (1 + fabs(g)), eu = 1e-6 * (1 + fabs(u));
          t_glu_ref p1, m1, p2, m2;
          t_glu_reference(k->act, desc.alpha, desc.limit, g + e, u, 0, &p1);
          t_glu_reference(k->act, desc.alpha, desc.limit, g - e, u, 0, &m1);
          t_glu_reference(k->act, desc.alpha, desc.limit, g, u + eu, 0, &p2);
          t_glu_reference(k->act, desc.alpha, desc.limit, g, u - eu, 0, &m2);
          double fd_g = dhv * (p1.h - m1.h) / (2 * e), fd_u = dhv * (p2.h - m2.h) / (2 * eu);
          double tol_g = 1e-5 * (fabs(fd_g) + ref.dgate_scale) + 1e-30;
          double tol_u = 1e-5 * (fabs(fd_u) + fabs(ref.dup)) + 1e-30;
          if (fabs(fd_g) < 1e37 && fabs(fd_u) < 1e37) {
          report(fabs(gg - fd_g) <= tol_g, "dgate vs finite difference", cd, r, c, g, u, fd_g, gg);
          report(fabs(gu - fd_u) <= tol_u, "dup vs finite difference", cd, r, c, g, u, fd_u, gu);
          }
        }
      }
  }

  /* ---- h recomputed in the other precision than the gradients': with
   * 16-bit gradients (their own reciprocal path, docs/numerics.md) an fp32 h
   * is still the fp32 forward's, and with fp32 gradients a bf16 h the bf16
   * forward's */
  {
    const int ho = k->tout == T_F32 ? T_BF16 : T_F32;
    tbuf hf, h3;
    tb_make(&hf, ho, k->d0, k->d1, H, 1, 0);
    tb_make(&h3, ho, k->d0, k->d1, H, 0, 1);
    tb_poison(&hf), tb_poison(&h3);
    tb_up(&hf), tb_up(&h3), tb_up(&dx);
    if (sep) tb_up(&dup);
    st = swiglu_glu_forward(ctx, &desc, &x.d, sep ? &up.d : NULL, &hf.d);
    if (st == SWIGLU_SUCCESS)
      st = swiglu_glu_backward(ctx, &desc, &dh.d, &x.d, sep ? &up.d : NULL, &dx.d, sep ? &dup.d : NULL, &h3.d, 0);
    tb_down(&hf), tb_down(&h3);
    if (st != SWIGLU_SUCCESS) {
      fprintf(stderr, "FAIL h in the other dtype [%s]: %s\n", cd, swiglu_context_last_error(ctx));
      ++g_failed;
    } else {
      int64_t fr = -1, fc = -1;
      double want = 0, got = 0;
      const int same = tb_same_bits(&hf, &h3, rows, H, 0, &fr, &fc, &want, &got);
      report(same, "backward h in the other dtype equals that forward h", cd, fr, fc, 0, 0, want, got);
    }
    tb_free(&hf), tb_free(&h3);
  }

  /* ---- backward in place equals out of place, bit for bit but for NaN payloads */
  if (k->tout == k->tin) {
    st = swiglu_glu_backward(ctx, &desc, &dh.d, &x.d, sep ? &up.d : NULL, &x.d, sep ? &up.d : NULL,
                             NULL, SWIGLU_BACKWARD_IN_PLACE);
    tb_down(&x);
    if (sep) tb_down(&up);
    if (st != SWIGLU_SUCCESS) {
      fprintf(stderr, "FAIL in-place backward [%s]: %s\n", cd, swiglu_context_last_error(ctx));
      ++g_failed;
    } else {
      /* the first element that differs, shown as (out of place, in place) */
      int64_t fr = -1, fc = -1;
      double want = 0, got = 0;
      const int same = tb_same_bits(&dx, &x, rows, wx, 0, &fr, &fc, &want, &got) &&
                       (!sep || tb_same_bits(&dup, &up, rows, H, H, &fr, &fc, &want, &got));
      report(same, "in-place backward equals out-of-place", cd, fr, fc, 0, 0, want, got);
    }
  }
  tb_free(&x), tb_free(&h), tb_free(&dh), tb_free(&dx), tb_free(&h2);
  if (sep) tb_free(&up), tb_free(&dup);
}

/* Rows [r0, r0 + n) of a [1, R, W] buffer as a 2-D view. */
static swiglu_tensor tb_rows(const tbuf *b, int64_t r0, int64_t n, int64_t shape[2], int64_t strides[2]) {
  swiglu_tensor v = b->d;
  shape[0] = n, shape[1] = b->shape[2];
  strides[0] = b->strides[1], strides[1] = 1;
  v.ndim = 2, v.shape = shape, v.strides = strides;
  v.byte_offset = (uint64_t)(r0 * b->strides[1]) * t_size(b->t);
  return v;
}

/* Outputs of 32 MiB and more are written past the caches on the CPU
 * (SG_STREAM_MIN_BYTES in cpu_backend.c), and no case above is that large.
 * Forward and backward (with h recomputed) over such tensors must write
 * every element (the outputs start poisoned) and give the bits of the same
 * ops called on blocks of rows small enough to take ordinary stores. bf16
 * rows of 8200 values (16400 bytes) begin 32-byte aligned and 16-byte
 * aligned in turn; rows of 2040 take the CPU's two-pass loops
 * (SG_NARROW_COLS). */
static void streaming_cases(swiglu_context *ctx, t_rng *rng) {
  static const int64_t widths[] = {8200, 2040};
  swiglu_glu_desc desc;
  swiglu_glu_desc_init(&desc, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_SEPARATE);
  for (int s = 0; s < 2; ++s) {
    /* just past 32 MiB of forward output */
    const int64_t W = widths[s], R = ((int64_t)32 << 20) / (2 * W) + 1;
    const int64_t B = 512; /* rows a block: at most 25 MB of backward outputs */
    enum { G, U, DH, H, DG, DU, H2, HB, DGB, DUB, H2B, NBUF };
    tbuf b[NBUF];
    for (int i = 0; i < NBUF; ++i) {
      tb_make(&b[i], T_BF16, 1, R, W, 0, 0);
      const size_t es = t_size(T_BF16), n = b[i].bytes / es, k = 65537; /* odd: no row repeats another */
      if (i <= DH) { /* k sampled values (specials too) tiled: sampling them all took seconds */
        for (size_t j = 0; j < k; ++j) t_write(b[i].buf, T_BF16, (int64_t)j, t_sample(rng, T_BF16, i == DH ? 1.0 : desc.limit));
        for (size_t j = k; j < n; j += k) memcpy((char *)b[i].buf + j * es, b[i].buf, (n - j < k ? n - j : k) * es);
      } else {
        tb_poison(&b[i]);
      }
      tb_up(&b[i]);
    }
    /* the backward writes 6 bytes an element: its first Rb rows suffice */
    const int64_t Rb = ((int64_t)32 << 20) / (6 * W) + 1;
    swiglu_status st = swiglu_glu_forward(ctx, &desc, &b[G].d, &b[U].d, &b[H].d);
    if (!st) {
      int64_t sh[NBUF][2], sd[NBUF][2];
      swiglu_tensor v[NBUF];
      for (int i = 0; i < NBUF; ++i) v[i] = tb_rows(&b[i], 0, Rb, sh[i], sd[i]);
      st = swiglu_glu_backward(ctx, &desc, &v[DH], &v[G], &v[U], &v[DG], &v[DU], &v[H2], 0);
    }
    for (int64_t r0 = 0; r0 < R && !st; r0 += B) {
      const int64_t n = R - r0 < B ? R - r0 : B;
      int64_t sh[NBUF][2], sd[NBUF][2];
      swiglu_tensor v[NBUF];
      for (int i = 0; i < NBUF; ++i) v[i] = tb_rows(&b[i], r0, n, sh[i], sd[i]);
      st = swiglu_glu_forward(ctx, &desc, &v[G], &v[U], &v[HB]);
      if (r0 >= Rb || st) continue;
      for (int i = 0; i < NBUF; ++i) v[i] = tb_rows(&b[i], r0, Rb - r0 < n ? Rb - r0 : n, sh[i], sd[i]);
      st = swiglu_glu_backward(ctx, &desc, &v[DH], &v[G], &v[U], &v[DGB], &v[DUB], &v[H2B], 0);
    }
    char cd[80];
    snprintf(cd, sizeof cd, "streaming stores, silu bf16 %lldx%lld", (long long)R, (long long)W);
    if (st) {
      fprintf(stderr, "FAIL [%s]: status %s: %s\n", cd, swiglu_status_string(st), swiglu_context_last_error(ctx));
      ++g_failed;
    } else {
      static const int pairs[][2] = {{H, HB}, {DG, DGB}, {DU, DUB}, {H2, H2B}};
      static const char *const what[] = {"forward h", "backward dgate", "backward dup", "backward h"};
      for (int i = 0; i < 4; ++i) {
        tb_down(&b[pairs[i][0]]), tb_down(&b[pairs[i][1]]);
        int64_t fr = -1, fc = -1;
        double want = 0, got = 0;
        char w[80];
        snprintf(w, sizeof w, "%s of the whole call (got) against blocks of rows (want)", what[i]);
        /* whole buffers first (the same layout, no padding); element by element,
         * NaN payloads aside, only where they differ */
        const int64_t rows = i ? Rb : R;
        const int same = !memcmp(b[pairs[i][1]].buf, b[pairs[i][0]].buf, (size_t)(rows * W) * t_size(T_BF16)) ||
                         tb_same_bits(&b[pairs[i][1]], &b[pairs[i][0]], rows, W, 0, &fr, &fc, &want, &got);
        report(same, w, cd, fr, fc, 0, 0, want, got);
        int64_t unwritten = 0;
        const uint16_t *o = b[pairs[i][0]].buf, pb = (uint16_t)poison_bits(T_BF16);
        for (int64_t j = 0; j < rows * W; ++j) unwritten += o[j] == pb;
        snprintf(w, sizeof w, "%s of the whole call: %lld elements left unwritten", what[i], (long long)unwritten);
        report(!unwritten, w, cd, -1, -1, 0, 0, 0, 0);
      }
    }
    for (int i = 0; i < NBUF; ++i) tb_free(&b[i]);
  }
}

/* Exhaustive dtype conversion through the op itself: relu(g) * 1 == g for
 * g > 0, so every positive fp16/bf16 input must come back exactly in fp32,
 * and fp32 inputs must come back correctly rounded in fp16/bf16. */
static void conversion_cases(swiglu_context *ctx, t_rng *rng) {
  swiglu_glu_desc desc;
  swiglu_glu_desc_init(&desc, SWIGLU_ACT_RELU, SWIGLU_LAYOUT_SEPARATE);
  for (int tin = 0; tin < 3; ++tin)
    for (int tout = 0; tout < 3; ++tout) {
      const int64_t n = 1 << 16;
      tbuf g, u, h;
      tb_make(&g, tin, 1, 1, n, 0, 0);
      tb_make(&u, tin, 1, 1, n, 0, 0);
      tb_make(&h, tout, 1, 1, n, 0, 0);
      for (int64_t i = 0; i < n; ++i) {
        double v;
        if (tin == T_F32) {
          /* fp32 values near the 16-bit formats' rounding boundaries and ranges */
          v = ldexp(1.0 + t_uniform(rng), (int)(t_uniform(rng) * 70) - 45);
          if (i % 7 == 0) v = ldexp(1.0 + (double)(t_next(rng) % 2048) / 2048 + 0x1.0p-11, (int)(i % 60) - 40);
        } else {
          uint16_t bits = (uint16_t)(i & 0x7fff); /* every positive pattern */
          memcpy((char *)g.buf + 2 * i, &bits, 2);
          v = t_read(g.buf, tin, i);
          if (!(v > 0) || isinf(v)) v = 1.0;
        }
        t_write(g.buf, tin, i, v);
        t_write(u.buf, tin, i, 1.0);
      }
      tb_poison(&h);
      tb_up(&g), tb_up(&u), tb_up(&h);
      swiglu_status st = swiglu_glu_forward(ctx, &desc, &g.d, &u.d, &h.d);
      tb_down(&h);
      char cd[64];
      snprintf(cd, sizeof cd, "conversion %s->%s", t_dtype_name[tin], t_dtype_name[tout]);
      if (st) {
        report(0, "conversion call", cd, -1, -1, 0, 0, 0, 0);
      } else {
        for (int64_t i = 0; i < n; ++i) {
          double in = t_read(g.buf, tin, i), got = t_read(h.buf, tout, i);
          double want = t_round(in, tout);
          report(got == want || (isnan(want) && isnan(got)), "conversion", cd, 0, i, in, 1, want, got);
        }
      }
      tb_free(&g), tb_free(&u), tb_free(&h);
    }
}

int main(int argc, char **argv) {
  const char *backend = "cpu";
  uint64_t seed = 20261121;
  int quick = 0;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--quick")) quick = 1;
  }
  swiglu_context *ctx;
  const int rc = t_open_backend(backend, &ctx);
  if (rc) return rc;
  g_ctx = ctx;
  printf("backend %s on %s, seed %llu\n", swiglu_context_backend(ctx),
         swiglu_context_device_name(ctx), (unsigned long long)seed);
  t_rng rng = {seed};
  conversion_cases(ctx, &rng);
  streaming_cases(ctx, &rng);
  static const int64_t shapes[][5] = {
      /* d0, d1, H, pad1, pad0 */
      {1, 1, 1, 0, 0},   {1, 3, 7, 0, 0},  {2, 3, 33, 5, 0}, {3, 2, 100, 0, 7},
      {1, 2, 1029, 3, 0}, {2, 2, 16, 1, 3}, {1, 1, 520, 0, 0},
      /* wider than SG_NARROW_COLS (2048): the CPU's one-pass 16-bit loops */
      {1, 2, 2085, 0, 5},
  };
  const int nshapes = quick ? 4 : (int)(sizeof shapes / sizeof *shapes);
  long cases = 0;
  for (int act = 0; act < 6; ++act)
    for (int layout = 0; layout < 4; ++layout)
      for (int tin = 0; tin < 3; ++tin)
        for (int tout = 0; tout < 3; ++tout)
          for (int s = 0; s < nshapes; ++s) {
            glu_case k = {act, layout, tin, tout, shapes[s][0], shapes[s][1], shapes[s][2],
                          shapes[s][3], shapes[s][4]};
            run_case(ctx, &k, &rng);
            ++cases;
          }
  swiglu_context_destroy(ctx);
  static const char *const op_name[] = {"h", "dgate", "dup"};
  for (int op = 0; op < 3; ++op)
    for (int act = 0; act < 6; ++act)
      printf("max error %-5s %-12s fp32 out: %6.2f ulp   16-bit out: %5.2f ulp\n", op_name[op],
             k_act_name[act], g_max_ulps[op][act][1], g_max_ulps[op][act][0]);
  /* The forward's 16-bit outputs have a bound of their own, tighter than
   * the 1.5 ulp the tolerance accepts (docs/numerics.md, "16-bit outputs of
   * the logistic activations"): the CPU's reciprocal path is within 2^-13.9
   * of the exact value before the last rounding, 0.64 ulp of fp16 at most,
   * the GPUs' within 2^-17. Checked where track() looks. */
  for (int act = 0; act < 6; ++act)
    if (g_max_ulps[0][act][0] > 0.7) {
      fprintf(stderr, "FAIL: 16-bit forward outputs of %s up to %.2f ulp from the exact value (bound: 0.7)\n",
              k_act_name[act], g_max_ulps[0][act][0]);
      ++g_failed;
    }
  printf("%ld cases, %ld element checks, %ld failed\n", cases, g_checked, g_failed);
  return g_failed ? 1 : 0;
}
