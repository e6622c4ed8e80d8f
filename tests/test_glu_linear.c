/*
 * The GEMM-fused GLU ops against float64 reference GEMMs (docs/numerics.md,
 * "GEMM-fused ops"), on any backend: GLU linear forward (h and the saved
 * pre-activations) and backward (dX, dW, db; saved or recomputed
 * pre-activations; accumulate), the down projection with the GLU prologue
 * (dense and MoE with an empty expert) and its backward (d pre-activation,
 * dWd). Every activation, layout, bias on and off, odd sizes (T = 1, D and H
 * not multiples of any tile), row views into wider buffers, mixed dtypes.
 *
 * Each reference value carries an error bound built from the rule of
 * docs/numerics.md: K * 2^-23 * sum |a_k b_k| for an fp32 accumulation in
 * any order, plus the rounding of an intermediate operand to the weight
 * dtype, propagated through the GLU by evaluating it at the corners of the
 * pre-activation's error box, plus one ulp of the output format.
 *
 * Outputs and their padding are poisoned first: every element must be
 * written and nothing outside touched. Then the bad-input rules: a clear
 * status and no write. Exit 77 (SKIPPED) when the backend is not here;
 * a backend without the ops is counted as unsupported, visibly, and the
 * test exits 77 as well.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ref64.h"
#include "open_backend.h"

static swiglu_context *g_ctx;
static long g_checked, g_failed, g_cases;
static int g_verbose_left = 12;

static void must(swiglu_status st, const char *what) {
  if (st) {
    fprintf(stderr, "%s: %s: %s\n", what, swiglu_status_string(st), swiglu_context_last_error(g_ctx));
    exit(1);
  }
}

/* ------------------------------------------------------------- tensors */

/* [E, R, C] (E = 1 for 2-D, R = 1 for 1-D) with rows padded by pad elements. */
typedef struct {
  int t, nd;
  int64_t E, R, C, rs;
  int64_t shape[3], strides[3];
  size_t n, bytes;
  void *host, *dev;
  swiglu_tensor d;
} tb;

static void tb_make(tb *b, int t, int nd, int64_t E, int64_t R, int64_t C, int64_t pad) {
  memset(b, 0, sizeof *b);
  b->t = t, b->nd = nd, b->E = E, b->R = R, b->C = C, b->rs = C + pad;
  b->n = (size_t)(E * R * b->rs + 3);
  b->bytes = b->n * t_size(t);
  b->host = malloc(b->bytes);
  must(swiglu_context_malloc(g_ctx, b->bytes, &b->dev), "malloc");
  int k = 0;
  if (nd == 3) b->shape[k] = E, b->strides[k++] = R * b->rs;
  if (nd >= 2) b->shape[k] = R, b->strides[k++] = b->rs;
  b->shape[k] = C, b->strides[k++] = 1;
  b->d.data = b->dev;
  b->d.device.device_type = swiglu_context_device_type(g_ctx);
  b->d.device.device_id = swiglu_context_device(g_ctx);
  b->d.ndim = nd;
  b->d.dtype = t_dtype(t);
  b->d.shape = b->shape;
  b->d.strides = b->strides;
}
static void tb_free(tb *b) {
  free(b->host);
  swiglu_context_free(g_ctx, b->dev);
}
static int64_t tb_at(const tb *b, int64_t e, int64_t r, int64_t c) { return (e * b->R + r) * b->rs + c; }
static double tb_get(const tb *b, int64_t e, int64_t r, int64_t c) { return t_read(b->host, b->t, tb_at(b, e, r, c)); }
static void tb_set(tb *b, int64_t e, int64_t r, int64_t c, double v) { t_write(b->host, b->t, tb_at(b, e, r, c), v); }
static void tb_up(tb *b) { must(swiglu_context_copy(g_ctx, b->dev, b->host, b->bytes, SWIGLU_COPY_HOST_TO_DEVICE), "upload"); }
static void tb_down(tb *b) {
  must(swiglu_context_synchronize(g_ctx), "synchronize");
  must(swiglu_context_copy(g_ctx, b->host, b->dev, b->bytes, SWIGLU_COPY_DEVICE_TO_HOST), "download");
}
static uint32_t poison_bits(int t) { return t == T_F32 ? 0x7f80deadu : t == T_BF16 ? 0x7f81u : 0x7c01u; }
static void tb_poison(tb *b) {
  uint32_t p = poison_bits(b->t);
  for (size_t i = 0; i < b->n; ++i) memcpy((char *)b->host + i * t_size(b->t), &p, t_size(b->t));
}
static void tb_fill(tb *b, t_rng *r, double scale) {
  tb_poison(b);
  for (int64_t e = 0; e < b->E; ++e)
    for (int64_t i = 0; i < b->R; ++i)
      for (int64_t c = 0; c < b->C; ++c) {
        double v = (t_next(r) % 11 == 0) ? 0.0 : t_normal(r) * scale;
        tb_set(b, e, i, c, t_round(v, b->t));
      }
}
/* Every element outside the view is still poison. */
static int tb_outside_ok(const tb *b) {
  uint32_t p = poison_bits(b->t);
  for (size_t i = 0; i < b->n; ++i) {
    int64_t row = (int64_t)i / b->rs, c = (int64_t)i % b->rs;
    if (row < b->E * b->R && c < b->C) continue;
    uint32_t v = 0;
    memcpy(&v, (char *)b->host + i * t_size(b->t), t_size(b->t));
    if (v != p) return 0;
  }
  return 1;
}

/* --------------------------------------------------------- the reference */

static double uround(int t) { return t == T_F32 ? 0x1.0p-24 : t == T_F16 ? 0x1.0p-11 : 0x1.0p-8; }

/* The accumulation bound for K products with magnitude sum m, when the
 * intermediate operand may be rounded to dtype wt first. */
static double gemm_tol(int64_t K, double m, int wt) { return ((double)K * 0x1.0p-23 + uround(wt)) * m; }

typedef struct {
  double h, dg, du;       /* exact values at the center */
  double th, tdg, tdu;    /* allowed absolute error before the output rounding */
} glu_ref;

/* The GLU (and its backward with incoming gradient dh +- edh) at the
 * pre-activation (g +- eg, u +- eu): value at the center, bound from the
 * corners of the box, plus the fp32 evaluation allowance. */
static void glu_box(int act, double al, double lim, double g, double eg, double u, double eu,
                    double dh, double edh, glu_ref *o) {
  t_glu_ref c;
  t_glu_reference(act, al, lim, g, u, dh, &c);
  o->h = c.h, o->dg = c.dgate, o->du = c.dup;
  double sh = 0, sdg = 0, sdu = 0;
  for (int i = -1; i <= 1; ++i)
    for (int j = -1; j <= 1; ++j)
      for (int k = -1; k <= 1; ++k) {
        t_act a;
        t_activation(act, al, lim, g + i * eg, u + j * eu, &a);
        double d = dh + k * edh;
        sh = fmax(sh, fabs(a.a * a.m - c.h));
        sdg = fmax(sdg, fabs(d * a.m * a.da - c.dgate));
        sdu = fmax(sdu, fabs(d * a.a * a.dm - c.dup));
      }
  const double u24 = 0x1.0p-24;
  o->th = 1.25 * sh + 16 * u24 * (fabs(c.h) + c.h_arg) + c.h_abs;
  o->tdg = 1.25 * sdg + 16 * u24 * (fabs(c.dgate) + c.dgate_scale) + c.dgate_abs;
  o->tdu = 1.25 * sdu + 16 * u24 * (fabs(c.dup) + c.dup_arg) + c.dup_abs;
}

/* The largest |error| / allowed error seen per output with an fp32 result,
 * printed at the end so docs/numerics.md can say how much of the bound is
 * used. */
static struct {
  const char *what;
  double worst;
} g_use[16];
static void track_use(const char *what, double exact, double tol, double got, int t) {
  if (!isfinite(exact) || !isfinite(got) || t != T_F32) return; /* 16-bit: the rounding dominates */
  const double allowed = tol + t_ulp(exact, t);
  const double r = fabs(got - exact) / allowed;
  for (int i = 0; i < 16; ++i) {
    if (!g_use[i].what) g_use[i].what = what;
    if (!strcmp(g_use[i].what, what)) {
      if (r > g_use[i].worst) g_use[i].worst = r;
      return;
    }
  }
}

static void check(const char *what, const char *cs, int64_t r, int64_t c, double exact, double tol,
                  double got, int t) {
  ++g_checked;
  track_use(what, exact, tol, got, t);
  if (t_accept(exact, got, t, 0.5, 0, 0, tol, 0)) return;
  ++g_failed;
  if (g_verbose_left-- > 0)
    fprintf(stderr, "FAIL %s [%s] (%lld, %lld): expected %.9g +- %.3g, got %.9g\n", what, cs,
            (long long)r, (long long)c, exact, tol, got);
}
static void check_outside(const char *what, const char *cs, const tb *b) {
  ++g_checked;
  if (tb_outside_ok(b)) return;
  ++g_failed;
  if (g_verbose_left-- > 0) fprintf(stderr, "FAIL %s [%s]: wrote outside the view\n", what, cs);
}

static const char *const k_act[] = {"silu", "gelu_tanh", "gelu_erf", "relu", "silu_gptoss", "silu_clamped"};
static const char *const k_lay[] = {"separate", "gate_up", "up_gate", "interleaved"};

typedef struct {
  int act, layout, bias, tx, tw, to;
  int64_t T, D, H;
  double alpha, limit;
  int twu1; /* separate layout: w_up's (and its gradient's) dtype + 1; 0: tw */
  int txu1; /* separate layout: the down projection's up (and dup) dtype + 1; 0: tx */
} lcase;

/* The separate w_up need not share w's dtype. */
static int twu(const lcase *c) { return c->twu1 ? c->twu1 - 1 : c->tw; }
/* The coarser of the two weight dtypes (the dx tolerance's operand rounding). */
static int tw_coarse(const lcase *c) { return uround(twu(c)) > uround(c->tw) ? twu(c) : c->tw; }
static int txu(const lcase *c) { return c->txu1 ? c->txu1 - 1 : c->tx; }
static int tx_coarse(const lcase *c) { return uround(txu(c)) > uround(c->tx) ? txu(c) : c->tx; }

static void case_name(const lcase *c, char *s, size_t n) {
  snprintf(s, n, "%s %s%s T=%lld D=%lld H=%lld x=%s%s%s w=%s%s%s out=%s", k_act[c->act], k_lay[c->layout],
           c->bias ? " +bias" : "", (long long)c->T, (long long)c->D, (long long)c->H, t_dtype_name[c->tx],
           c->txu1 ? " up=" : "", c->txu1 ? t_dtype_name[txu(c)] : "", t_dtype_name[c->tw],
           c->twu1 ? " w_up=" : "", c->twu1 ? t_dtype_name[twu(c)] : "", t_dtype_name[c->to]);
}

/* When set, the cases put a NaN into one input row: it must reach exactly
 * the outputs that depend on that row (the reference propagates it). */
static int g_nan;

static size_t g_ws_bytes;
static void *g_ws;
static void *workspace(size_t bytes) {
  if (bytes > g_ws_bytes) {
    if (g_ws) swiglu_context_free(g_ctx, g_ws);
    must(swiglu_context_malloc(g_ctx, bytes ? bytes : 1, &g_ws), "workspace");
    g_ws_bytes = bytes;
  }
  return g_ws;
}

/* The GLU linear weights: one [2H, D] tensor or two [H, D]; biases likewise. */
typedef struct {
  tb w, wu, b, bu;
  int sep, has_bias;
} lweights;

static void weights_make(lweights *lw, const lcase *c, t_rng *r) {
  memset(lw, 0, sizeof *lw);
  lw->sep = c->layout == SWIGLU_LAYOUT_SEPARATE;
  lw->has_bias = c->bias;
  const double ws = 1.0 / sqrt((double)c->D);
  tb_make(&lw->w, c->tw, 2, 1, lw->sep ? c->H : 2 * c->H, c->D, 3);
  tb_fill(&lw->w, r, ws);
  tb_up(&lw->w);
  if (lw->sep) {
    tb_make(&lw->wu, twu(c), 2, 1, c->H, c->D, 1);
    tb_fill(&lw->wu, r, ws);
    tb_up(&lw->wu);
  }
  if (c->bias) {
    tb_make(&lw->b, c->tw, 1, 1, 1, lw->sep ? c->H : 2 * c->H, 0);
    tb_fill(&lw->b, r, 0.5);
    tb_up(&lw->b);
    if (lw->sep) {
      tb_make(&lw->bu, twu(c), 1, 1, 1, c->H, 0);
      tb_fill(&lw->bu, r, 0.5);
      tb_up(&lw->bu);
    }
  }
}
static void weights_free(lweights *lw) {
  tb_free(&lw->w);
  if (lw->sep) tb_free(&lw->wu);
  if (lw->has_bias) {
    tb_free(&lw->b);
    if (lw->sep) tb_free(&lw->bu);
  }
}
static double wget(const lweights *lw, const lcase *c, int64_t f, int up, int64_t k) {
  if (lw->sep) return up ? tb_get(&lw->wu, 0, f, k) : tb_get(&lw->w, 0, f, k);
  return tb_get(&lw->w, 0, t_glu_col(c->layout, c->H, f, up), k);
}
static double bget(const lweights *lw, const lcase *c, int64_t f, int up) {
  if (!lw->has_bias) return 0;
  if (lw->sep) return up ? tb_get(&lw->bu, 0, 0, f) : tb_get(&lw->b, 0, 0, f);
  return tb_get(&lw->b, 0, 0, t_glu_col(c->layout, c->H, f, up));
}
/* Column of gate / up feature f in the [T, 2H] pre-activation of a layout. */
static int64_t pcol(int layout, int64_t H, int64_t f, int up) {
  return t_glu_col(layout == SWIGLU_LAYOUT_SEPARATE ? SWIGLU_LAYOUT_GATE_UP : layout, H, f, up);
}

/* Exact pre-activation of (t, f) and its accumulation bound. */
static void preact_ref(const lweights *lw, const lcase *c, const tb *x, int64_t t, int64_t f, int up,
                       double *v, double *e) {
  double s = 0, m = 0;
  for (int64_t k = 0; k < c->D; ++k) {
    double p = tb_get(x, 0, t, k) * wget(lw, c, f, up, k);
    s += p, m += fabs(p);
  }
  double b = bget(lw, c, f, up);
  *v = s + b;
  *e = gemm_tol(c->D, m, T_F32) + 0x1.0p-24 * (fabs(s) + fabs(b));
}

static void glu_linear_case(const lcase *c, t_rng *r, int save_pre, int accumulate) {
  char cs[200];
  case_name(c, cs, sizeof cs);
  ++g_cases;
  lweights lw;
  weights_make(&lw, c, r);
  tb x, h, pre, dh, dx, dw, dwu, db, dbu;
  tb_make(&x, c->tx, 2, 1, c->T, c->D, 5);
  tb_fill(&x, r, 1.0);
  if (g_nan && c->T > 1) tb_set(&x, 0, c->T - 1, c->D / 2, NAN);
  tb_up(&x);
  tb_make(&h, c->to, 2, 1, c->T, c->H, 2);
  tb_poison(&h);
  tb_up(&h);
  tb_make(&pre, c->to, 2, 1, c->T, 2 * c->H, 1);
  tb_poison(&pre);
  tb_up(&pre);
  size_t bytes = 0;
  swiglu_glu_desc desc;
  swiglu_glu_desc_init(&desc, (swiglu_activation)c->act, (swiglu_layout)c->layout);
  swiglu_glu_linear_args a = {&x.d, &lw.w.d, lw.sep ? &lw.wu.d : NULL,
                              c->bias ? &lw.b.d : NULL, c->bias && lw.sep ? &lw.bu.d : NULL,
                              &h.d, save_pre ? &pre.d : NULL, NULL, 0};
  must(swiglu_glu_linear_forward_workspace_size(g_ctx, &desc, &a, &bytes), "fwd ws");
  a.workspace = workspace(bytes);
  a.workspace_bytes = bytes;
  must(swiglu_glu_linear_forward(g_ctx, &desc, &a), cs);
  tb_down(&h);
  tb_down(&pre);
  const double al = desc.alpha, lim = desc.limit;
  for (int64_t t = 0; t < c->T; ++t)
    for (int64_t f = 0; f < c->H; ++f) {
      double g, eg, u, eu;
      preact_ref(&lw, c, &x, t, f, 0, &g, &eg);
      preact_ref(&lw, c, &x, t, f, 1, &u, &eu);
      glu_ref o;
      glu_box(c->act, al, lim, g, eg, u, eu, 0, 0, &o);
      check("glu_linear h", cs, t, f, o.h, o.th, tb_get(&h, 0, t, f), c->to);
      if (save_pre) {
        check("glu_linear preact gate", cs, t, f, g, eg, tb_get(&pre, 0, t, pcol(c->layout, c->H, f, 0)), c->to);
        check("glu_linear preact up", cs, t, f, u, eu, tb_get(&pre, 0, t, pcol(c->layout, c->H, f, 1)), c->to);
      }
    }
  check_outside("glu_linear h", cs, &h);
  if (save_pre) check_outside("glu_linear preact", cs, &pre);

  /* backward */
  tb_make(&dh, c->to, 2, 1, c->T, c->H, 1);
  tb_fill(&dh, r, 1.0);
  tb_up(&dh);
  tb_make(&dx, c->tx, 2, 1, c->T, c->D, 2);
  tb_poison(&dx);
  tb_up(&dx);
  const int sep = lw.sep;
  tb_make(&dw, c->tw, 2, 1, sep ? c->H : 2 * c->H, c->D, 1);
  tb_make(&db, c->tw, 1, 1, 1, sep ? c->H : 2 * c->H, 0);
  if (sep) {
    tb_make(&dwu, twu(c), 2, 1, c->H, c->D, 0);
    tb_make(&dbu, twu(c), 1, 1, 1, c->H, 0);
  }
  tb *grads[4] = {&dw, &db, sep ? &dwu : NULL, sep ? &dbu : NULL};
  void *old[4] = {0};
  for (int i = 0; i < 4; ++i) {
    if (!grads[i]) continue;
    if (accumulate) tb_fill(grads[i], r, 0.25);
    else tb_poison(grads[i]);
    old[i] = malloc(grads[i]->bytes);
    memcpy(old[i], grads[i]->host, grads[i]->bytes);
    tb_up(grads[i]);
  }
  swiglu_glu_linear_backward_args b;
  memset(&b, 0, sizeof b);
  b.dh = &dh.d, b.x = &x.d, b.w = &lw.w.d, b.w_up = sep ? &lw.wu.d : NULL;
  b.bias = c->bias ? &lw.b.d : NULL, b.bias_up = c->bias && sep ? &lw.bu.d : NULL;
  b.preact = save_pre ? &pre.d : NULL;
  b.dx = &dx.d, b.dw = &dw.d, b.dw_up = sep ? &dwu.d : NULL;
  b.dbias = &db.d, b.dbias_up = sep ? &dbu.d : NULL;
  b.flags = accumulate ? SWIGLU_LINEAR_ACCUMULATE : 0;
  must(swiglu_glu_linear_backward_workspace_size(g_ctx, &desc, &b, &bytes), "bwd ws");
  b.workspace = workspace(bytes);
  b.workspace_bytes = bytes;
  must(swiglu_glu_linear_backward(g_ctx, &desc, &b), cs);
  tb_down(&dx);
  for (int i = 0; i < 4; ++i)
    if (grads[i]) tb_down(grads[i]);

  /* reference d pre-activation with bounds: [T][H][2] */
  const int64_t T = c->T, H = c->H, D = c->D;
  double *dp = malloc(sizeof(double) * (size_t)(T * H * 2 + 1));
  double *ep = malloc(sizeof(double) * (size_t)(T * H * 2 + 1));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t f = 0; f < H; ++f) {
      double g, eg, u, eu;
      if (save_pre) {
        g = tb_get(&pre, 0, t, pcol(c->layout, H, f, 0)), eg = 0;
        u = tb_get(&pre, 0, t, pcol(c->layout, H, f, 1)), eu = 0;
      } else {
        preact_ref(&lw, c, &x, t, f, 0, &g, &eg);
        preact_ref(&lw, c, &x, t, f, 1, &u, &eu);
      }
      glu_ref o;
      glu_box(c->act, al, lim, g, eg, u, eu, tb_get(&dh, 0, t, f), 0, &o);
      dp[(t * H + f) * 2] = o.dg, ep[(t * H + f) * 2] = o.tdg;
      dp[(t * H + f) * 2 + 1] = o.du, ep[(t * H + f) * 2 + 1] = o.tdu;
    }
  for (int64_t t = 0; t < T; ++t)
    for (int64_t k = 0; k < D; ++k) {
      double s = 0, m = 0, prop = 0;
      for (int64_t f = 0; f < H; ++f)
        for (int up = 0; up < 2; ++up) {
          double w = wget(&lw, c, f, up, k), v = dp[(t * H + f) * 2 + up];
          s += v * w, m += fabs(v * w), prop += fabs(w) * ep[(t * H + f) * 2 + up];
        }
      check("glu_linear dx", cs, t, k, s, gemm_tol(2 * H, m, tw_coarse(c)) + prop, tb_get(&dx, 0, t, k), c->tx);
    }
  check_outside("glu_linear dx", cs, &dx);
  for (int64_t f = 0; f < H; ++f)
    for (int up = 0; up < 2; ++up) {
      const int gi = sep && up ? 2 : 0, bi = sep && up ? 3 : 1, gt = sep && up ? twu(c) : c->tw;
      const int64_t row = sep ? f : t_glu_col(c->layout, H, f, up);
      double prev = accumulate ? t_read(old[bi], gt, tb_at(grads[bi], 0, 0, row)) : 0;
      double s = prev, m = fabs(prev), prop = 0;
      for (int64_t t = 0; t < T; ++t) {
        double v = dp[(t * H + f) * 2 + up];
        s += v, m += fabs(v), prop += ep[(t * H + f) * 2 + up];
      }
      check("glu_linear dbias", cs, 0, row, s, gemm_tol(T + 1, m, T_F32) + prop,
            tb_get(grads[bi], 0, 0, row), gt);
      for (int64_t k = 0; k < D; ++k) {
        prev = accumulate ? t_read(old[gi], gt, tb_at(grads[gi], 0, row, k)) : 0;
        s = prev, m = fabs(prev), prop = 0;
        for (int64_t t = 0; t < T; ++t) {
          double xv = tb_get(&x, 0, t, k), v = dp[(t * H + f) * 2 + up];
          s += v * xv, m += fabs(v * xv), prop += fabs(xv) * ep[(t * H + f) * 2 + up];
        }
        check("glu_linear dw", cs, row, k, s, gemm_tol(T + 1, m, c->tx) + prop,
              tb_get(grads[gi], 0, row, k), gt);
      }
    }
  for (int i = 0; i < 4; ++i) {
    if (!grads[i]) continue;
    check_outside("glu_linear dw/dbias", cs, grads[i]);
    free(old[i]);
  }
  free(dp);
  free(ep);
  tb_free(&x), tb_free(&h), tb_free(&pre), tb_free(&dh), tb_free(&dx), tb_free(&dw), tb_free(&db);
  if (sep) tb_free(&dwu), tb_free(&dbu);
  weights_free(&lw);
}

/* ------------------------------------------------------ down projection */

static void down_case(const lcase *c, t_rng *r, int experts, int accumulate) {
  char cs[220];
  case_name(c, cs, sizeof cs);
  if (experts) snprintf(cs + strlen(cs), sizeof cs - strlen(cs), " E=%d%s", experts, accumulate ? " acc" : "");
  ++g_cases;
  const int64_t T = c->T, H = c->H, D = c->D;
  const int sep = c->layout == SWIGLU_LAYOUT_SEPARATE;
  const int E = experts ? experts : 1;
  int64_t offs[8] = {0};
  if (experts) { /* expert 1 empty, the rest split the rows */
    offs[1] = T / 2, offs[2] = T / 2;
    for (int e = 3; e <= E; ++e) offs[e] = e == E ? T : offs[e - 1] + (T - offs[e - 1]) / 2;
  }
  tb x, up, w, y, dy, dx, dup, dw;
  tb_make(&x, c->tx, 2, 1, T, sep ? H : 2 * H, 3);
  tb_fill(&x, r, 1.5);
  if (g_nan && T > 1) tb_set(&x, 0, T - 1, 0, NAN);
  tb_up(&x);
  if (sep) {
    tb_make(&up, txu(c), 2, 1, T, H, 0);
    tb_fill(&up, r, 1.5);
    tb_up(&up);
  }
  tb_make(&w, c->tw, experts ? 3 : 2, E, D, H, 2);
  tb_fill(&w, r, 1.0 / sqrt((double)H));
  tb_up(&w);
  tb_make(&y, c->to, 2, 1, T, D, 1);
  tb_poison(&y);
  tb_up(&y);
  swiglu_glu_desc desc;
  swiglu_glu_desc_init(&desc, (swiglu_activation)c->act, (swiglu_layout)c->layout);
  const double al = desc.alpha, lim = desc.limit;
  swiglu_down_proj_args a = {&x.d, sep ? &up.d : NULL, &w.d, experts ? offs : NULL, experts, &y.d, NULL, 0};
  size_t bytes = 0;
  must(swiglu_down_proj_forward_workspace_size(g_ctx, &desc, &a, &bytes), "down ws");
  a.workspace = workspace(bytes);
  a.workspace_bytes = bytes;
  must(swiglu_down_proj_forward(g_ctx, &desc, &a), cs);
  tb_down(&y);
  /* h exact with its evaluation bound */
  double *hv = malloc(sizeof(double) * (size_t)(T * H + 1)), *he = malloc(sizeof(double) * (size_t)(T * H + 1));
  double *gv = malloc(sizeof(double) * (size_t)(T * H * 2 + 1));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t f = 0; f < H; ++f) {
      double g = sep ? tb_get(&x, 0, t, f) : tb_get(&x, 0, t, pcol(c->layout, H, f, 0));
      double u = sep ? tb_get(&up, 0, t, f) : tb_get(&x, 0, t, pcol(c->layout, H, f, 1));
      glu_ref o;
      glu_box(c->act, al, lim, g, 0, u, 0, 0, 0, &o);
      hv[t * H + f] = o.h, he[t * H + f] = o.th;
      gv[(t * H + f) * 2] = g, gv[(t * H + f) * 2 + 1] = u;
    }
  int64_t e = 0;
  for (int64_t t = 0; t < T; ++t) {
    while (experts && t >= offs[e + 1]) ++e;
    for (int64_t d = 0; d < D; ++d) {
      double s = 0, m = 0, prop = 0;
      for (int64_t f = 0; f < H; ++f) {
        double wv = tb_get(&w, e, d, f);
        s += hv[t * H + f] * wv, m += fabs(hv[t * H + f] * wv), prop += fabs(wv) * he[t * H + f];
      }
      check("down_proj y", cs, t, d, s, gemm_tol(H, m, c->tw) + prop, tb_get(&y, 0, t, d), c->to);
    }
  }
  check_outside("down_proj y", cs, &y);

  /* backward */
  tb_make(&dy, c->to, 2, 1, T, D, 2);
  tb_fill(&dy, r, 1.0);
  tb_up(&dy);
  tb_make(&dx, c->tx, 2, 1, T, sep ? H : 2 * H, 1);
  tb_poison(&dx);
  tb_up(&dx);
  if (sep) {
    tb_make(&dup, txu(c), 2, 1, T, H, 2);
    tb_poison(&dup);
    tb_up(&dup);
  }
  tb_make(&dw, c->tw, experts ? 3 : 2, E, D, H, 1);
  if (accumulate) tb_fill(&dw, r, 0.25);
  else tb_poison(&dw);
  void *old = malloc(dw.bytes);
  memcpy(old, dw.host, dw.bytes);
  tb_up(&dw);
  swiglu_down_proj_backward_args b = {&dy.d, &x.d, sep ? &up.d : NULL, &w.d, experts ? offs : NULL,
                                      experts, &dx.d, sep ? &dup.d : NULL, &dw.d,
                                      accumulate ? SWIGLU_LINEAR_ACCUMULATE : 0u, NULL, 0};
  must(swiglu_down_proj_backward_workspace_size(g_ctx, &desc, &b, &bytes), "down bwd ws");
  b.workspace = workspace(bytes);
  b.workspace_bytes = bytes;
  must(swiglu_down_proj_backward(g_ctx, &desc, &b), cs);
  tb_down(&dx);
  if (sep) tb_down(&dup);
  tb_down(&dw);
  e = 0;
  for (int64_t t = 0; t < T; ++t) {
    while (experts && t >= offs[e + 1]) ++e;
    for (int64_t f = 0; f < H; ++f) {
      double s = 0, m = 0;
      for (int64_t d = 0; d < D; ++d) {
        double p = tb_get(&dy, 0, t, d) * tb_get(&w, e, d, f);
        s += p, m += fabs(p);
      }
      glu_ref o;
      glu_box(c->act, al, lim, gv[(t * H + f) * 2], 0, gv[(t * H + f) * 2 + 1], 0, s,
              gemm_tol(D, m, c->tw), &o);
      double gg = sep ? tb_get(&dx, 0, t, f) : tb_get(&dx, 0, t, pcol(c->layout, H, f, 0));
      double gu = sep ? tb_get(&dup, 0, t, f) : tb_get(&dx, 0, t, pcol(c->layout, H, f, 1));
      check("down_proj dgate", cs, t, f, o.dg, o.tdg, gg, c->tx);
      check("down_proj dup", cs, t, f, o.du, o.tdu, gu, sep ? txu(c) : c->tx);
    }
  }
  check_outside("down_proj dx", cs, &dx);
  if (sep) check_outside("down_proj dup", cs, &dup);
  for (int64_t ee = 0; ee < E; ++ee) {
    const int64_t r0 = experts ? offs[ee] : 0, r1 = experts ? offs[ee + 1] : T;
    for (int64_t d = 0; d < D; ++d)
      for (int64_t f = 0; f < H; ++f) {
        double prev = accumulate ? t_read(old, c->tw, tb_at(&dw, ee, d, f)) : 0;
        double s = prev, m = fabs(prev), prop = 0;
        for (int64_t t = r0; t < r1; ++t) {
          double dv = tb_get(&dy, 0, t, d);
          s += dv * hv[t * H + f], m += fabs(dv * hv[t * H + f]), prop += fabs(dv) * he[t * H + f];
        }
        check("down_proj dw", cs, d, f, s, gemm_tol(r1 - r0 + 1, m, tx_coarse(c)) + prop,
              tb_get(&dw, ee, d, f), c->tw);
      }
  }
  check_outside("down_proj dw", cs, &dw);
  free(old), free(hv), free(he), free(gv);
  tb_free(&x), tb_free(&w), tb_free(&y), tb_free(&dy), tb_free(&dx), tb_free(&dw);
  if (sep) tb_free(&up), tb_free(&dup);
}

/* ------------------------------------------------------------ bad inputs */

static int g_bad_failed;
/* The call must fail with `want` and leave the output buffer as it was. */
static void expect_fail(swiglu_status got, swiglu_status want, const char *what, tb *out) {
  ++g_checked;
  char msg[600];
  snprintf(msg, sizeof msg, "%s", swiglu_context_last_error(g_ctx));
  void *before = malloc(out->bytes);
  memcpy(before, out->host, out->bytes);
  tb_down(out);
  int same = memcmp(before, out->host, out->bytes) == 0;
  free(before);
  if (got == want && same) {
    printf("  refused as expected: %-38s %s\n", what, msg);
    return;
  }
  ++g_failed, ++g_bad_failed;
  fprintf(stderr, "FAIL bad input '%s': status %s (want %s), output %s\n", what,
          swiglu_status_string(got), swiglu_status_string(want), same ? "untouched" : "WRITTEN");
}

static void bad_inputs(t_rng *r) {
  const int64_t T = 5, D = 7, H = 4;
  lcase c = {SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP, 0, T_F32, T_F32, T_F32, T, D, H, 0, 0, 0, 0};
  lweights lw;
  weights_make(&lw, &c, r);
  tb x, xbad, h, wbad, pre, w3, y;
  tb_make(&x, T_F32, 2, 1, T, D, 0);
  tb_fill(&x, r, 1);
  tb_up(&x);
  tb_make(&xbad, T_F32, 2, 1, T, D + 1, 0);
  tb_fill(&xbad, r, 1);
  tb_up(&xbad);
  tb_make(&h, T_F32, 2, 1, T, H, 0);
  tb_poison(&h);
  tb_up(&h);
  tb_make(&wbad, T_F32, 2, 1, 2 * H + 1, D, 0);
  tb_fill(&wbad, r, 1);
  tb_up(&wbad);
  swiglu_glu_desc desc;
  swiglu_glu_desc_init(&desc, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
  swiglu_glu_linear_args a = {&xbad.d, &lw.w.d, NULL, NULL, NULL, &h.d, NULL, NULL, 0};
  size_t bytes = 0;
  must(swiglu_glu_linear_forward_workspace_size(g_ctx, &desc, &(swiglu_glu_linear_args){&x.d, &lw.w.d, NULL, NULL, NULL, &h.d, NULL, NULL, 0}, &bytes), "ws");
  a.workspace = workspace(bytes), a.workspace_bytes = bytes;
  expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &a), SWIGLU_ERROR_BAD_SHAPE, "x with the wrong D", &h);
  a.x = &x.d, a.w = &wbad.d;
  expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &a), SWIGLU_ERROR_BAD_SHAPE, "odd weight rows for a packed layout", &h);
  swiglu_glu_desc sep;
  swiglu_glu_desc_init(&sep, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_SEPARATE);
  a.w = &lw.w.d;
  expect_fail(swiglu_glu_linear_forward(g_ctx, &sep, &a), SWIGLU_ERROR_NULL_POINTER, "separate layout without w_up", &h);
  a.w_up = &wbad.d; /* [2H + 1, D] where [H, D] is needed */
  expect_fail(swiglu_glu_linear_forward(g_ctx, &sep, &a), SWIGLU_ERROR_BAD_SHAPE, "separate weight of the wrong shape", &h);
  a.w_up = NULL;
  a.workspace_bytes = bytes - 1;
  expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &a), SWIGLU_ERROR_INVALID_ARGUMENT, "workspace one byte short", &h);
  a.workspace_bytes = bytes;
  a.h = &x.d; /* h [T, D]: wrong width */
  expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &a), SWIGLU_ERROR_BAD_SHAPE, "h of the wrong width", &h);
  a.h = &h.d;
  expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, NULL), SWIGLU_ERROR_NULL_POINTER, "NULL args", &h);
  {
    swiglu_glu_linear_args ov2 = a;
    swiglu_tensor hx = h.d; /* h over the first elements of x */
    hx.data = x.dev;
    ov2.h = &hx;
    expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &ov2), SWIGLU_ERROR_OVERLAP, "h overlapping x", &h);
    swiglu_tensor wi = lw.w.d;
    wi.dtype = (swiglu_dtype){SWIGLU_DTYPE_INT, 8, 1};
    ov2 = a, ov2.w = &wi;
    expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &ov2), SWIGLU_ERROR_BAD_DTYPE, "int8 weights", &h);
    swiglu_glu_desc bad = desc;
    bad.activation = (swiglu_activation)42;
    expect_fail(swiglu_glu_linear_forward(g_ctx, &bad, &a), SWIGLU_ERROR_INVALID_ARGUMENT, "unknown activation", &h);
    swiglu_glu_linear_backward_args bb;
    memset(&bb, 0, sizeof bb);
    bb.dh = &h.d, bb.x = &x.d, bb.w = &lw.w.d, bb.dx = &xbad.d, bb.flags = 0x80;
    expect_fail(swiglu_glu_linear_backward(g_ctx, &desc, &bb), SWIGLU_ERROR_INVALID_ARGUMENT, "unknown backward flag", &xbad);
    bb.flags = 0, bb.dx = NULL;
    expect_fail(swiglu_glu_linear_backward(g_ctx, &desc, &bb), SWIGLU_ERROR_INVALID_ARGUMENT, "backward with no output", &xbad);
    /* dW placed over dX's memory */
    tb dxb;
    tb_make(&dxb, T_F32, 2, 1, T, D, 0);
    tb_poison(&dxb);
    tb_up(&dxb);
    swiglu_tensor dwx = lw.w.d;
    dwx.data = dxb.dev;
    /* the workspace is sized for a call that does produce dW (a backend
     * may need more for it: CUDA does), with a dW of its own */
    tb dwb;
    tb_make(&dwb, T_F32, 2, 1, 2 * H, D, 0);
    tb_up(&dwb);
    bb.dx = &dxb.d, bb.dw = &dwb.d;
    size_t bbytes = 0;
    must(swiglu_glu_linear_backward_workspace_size(g_ctx, &desc, &bb, &bbytes), "bwd ws");
    bb.workspace = workspace(bbytes), bb.workspace_bytes = bbytes;
    bb.dw = &dwx;
    expect_fail(swiglu_glu_linear_backward(g_ctx, &desc, &bb), SWIGLU_ERROR_OVERLAP, "dW overlapping dX", &dxb);
    tb_free(&dxb), tb_free(&dwb);
    a.workspace = workspace(bytes); /* the backward's may have replaced it */
    /* a bias of 2H + 1 elements */
    int64_t blen = 2 * H + 1;
    swiglu_tensor bias = {x.dev, x.d.device, 1, x.d.dtype, &blen, NULL, 0};
    ov2 = a, ov2.bias = &bias;
    expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &ov2), SWIGLU_ERROR_BAD_SHAPE, "bias of 2H + 1 elements", &h);
    /* x [T, D] as every other column of a [T, 2D] buffer */
    tb wide;
    tb_make(&wide, T_F32, 2, 1, T, 2 * D, 0);
    tb_fill(&wide, r, 1);
    tb_up(&wide);
    int64_t vshape[2] = {T, D}, vstr[2] = {2 * D, 2};
    swiglu_tensor xv = {wide.dev, x.d.device, 2, x.d.dtype, vshape, vstr, 0};
    ov2 = a, ov2.x = &xv;
    expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &ov2), SWIGLU_ERROR_BAD_STRIDE, "x with feature stride 2", &h);
    /* 2^62 rows of x: the byte count overflows */
    int64_t hshape[2] = {INT64_C(1) << 62, D};
    swiglu_tensor xh = {x.dev, x.d.device, 2, x.d.dtype, hshape, NULL, 0};
    ov2 = a, ov2.x = &xh;
    expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &ov2), SWIGLU_ERROR_SIZE_OVERFLOW, "x of 2^62 rows", &h);
    /* x declared on another device type */
    swiglu_tensor xo = x.d;
    xo.device.device_type = x.d.device.device_type == SWIGLU_DEVICE_CPU ? SWIGLU_DEVICE_CUDA : SWIGLU_DEVICE_CPU;
    ov2 = a, ov2.x = &xo;
    expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &ov2), SWIGLU_ERROR_DEVICE_MISMATCH, "x on another device type", &h);
    tb_free(&wide);
  }
  tb_make(&pre, T_F32, 2, 1, T, 2 * H, 0);
  tb_fill(&pre, r, 1);
  tb_up(&pre);
  /* the workspace may not overlap an operand */
  swiglu_glu_linear_args ov = a;
  ov.workspace = pre.dev, ov.workspace_bytes = bytes;
  ov.workspace = (char *)x.dev + 4; /* overlapping x */
  expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &ov), SWIGLU_ERROR_OVERLAP, "workspace overlapping x", &h);
  ov.workspace = a.workspace, ov.preact = &x.d;
  expect_fail(swiglu_glu_linear_forward(g_ctx, &desc, &ov), SWIGLU_ERROR_BAD_SHAPE, "preact of the wrong width", &h);
  /* down projection: offsets */
  tb_make(&w3, T_F32, 3, 3, D, H, 0);
  tb_fill(&w3, r, 1);
  tb_up(&w3);
  tb_make(&y, T_F32, 2, 1, T, D, 0);
  tb_poison(&y);
  tb_up(&y);
  int64_t offs[4] = {0, 3, 2, T};
  swiglu_down_proj_args d = {&pre.d, NULL, &w3.d, offs, 3, &y.d, NULL, 0};
  size_t dbytes = 0;
  int64_t good[4] = {0, 2, 3, T};
  d.expert_offsets = good;
  must(swiglu_down_proj_forward_workspace_size(g_ctx, &desc, &d, &dbytes), "down ws");
  d.workspace = workspace(dbytes > bytes ? dbytes : bytes), d.workspace_bytes = dbytes;
  a.workspace = d.workspace;
  d.expert_offsets = offs;
  expect_fail(swiglu_down_proj_forward(g_ctx, &desc, &d), SWIGLU_ERROR_INVALID_ARGUMENT, "expert offsets not monotone", &y);
  int64_t short_end[4] = {0, 1, 2, T - 1};
  d.expert_offsets = short_end;
  expect_fail(swiglu_down_proj_forward(g_ctx, &desc, &d), SWIGLU_ERROR_INVALID_ARGUMENT, "expert offsets not ending at T", &y);
  d.expert_offsets = good, d.num_experts = 2;
  expect_fail(swiglu_down_proj_forward(g_ctx, &desc, &d), SWIGLU_ERROR_BAD_SHAPE, "E of w not num_experts", &y);
  d.num_experts = 3, d.w = &lw.w.d;
  expect_fail(swiglu_down_proj_forward(g_ctx, &desc, &d), SWIGLU_ERROR_BAD_SHAPE, "dense weight with experts", &y);
  tb_free(&x), tb_free(&xbad), tb_free(&h), tb_free(&wbad), tb_free(&pre), tb_free(&w3), tb_free(&y);
  weights_free(&lw);
}

int main(int argc, char **argv) {
  const char *backend = "cpu";
  int quick = 0, expect_unsupported = 0;
  uint64_t seed = 0x5eed1234;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--quick")) quick = 1;
    /* for a backend without the ops (a HIP stand-in): pass only if every
     * op says SWIGLU_ERROR_UNSUPPORTED */
    else if (!strcmp(argv[i], "--expect-unsupported")) expect_unsupported = 1;
  }
  const int rc = t_open_backend(backend, &g_ctx);
  if (rc) return rc;
  printf("backend %s on %s\n", swiglu_context_backend(g_ctx), swiglu_context_device_name(g_ctx));
  /* Probe: a backend without the GEMM-fused ops reports them unsupported.
   * T = D = H = 1, every tensor its own (never dereferenced) memory. */
  {
    static float mem[8][4];
    int64_t s11[2] = {1, 1}, s21[2] = {2, 1}, s12[2] = {1, 2};
    const swiglu_device dv = {swiglu_context_device_type(g_ctx), swiglu_context_device(g_ctx)};
    swiglu_tensor x = {mem[0], dv, 2, SWIGLU_DTYPE_F32, s11, NULL, 0}, w = x, h = x, dx = x, pre = x, wd = x,
                  y = x, dpre = x;
    w.data = mem[1], w.shape = s21, h.data = mem[2], dx.data = mem[3];
    pre.data = mem[4], pre.shape = s12, wd.data = mem[5], y.data = mem[6], dpre.data = mem[7], dpre.shape = s12;
    swiglu_glu_desc desc;
    swiglu_glu_desc_init(&desc, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
    swiglu_glu_linear_args a = {&x, &w, NULL, NULL, NULL, &h, NULL, NULL, 0};
    size_t bytes;
    swiglu_glu_linear_backward_args b = {&h, &x, &w, NULL, NULL, NULL, NULL, &dx, NULL, NULL, NULL, NULL, 0, NULL, 0};
    swiglu_down_proj_args dn = {&pre, NULL, &wd, NULL, 0, &y, NULL, 0};
    swiglu_down_proj_backward_args dnb = {&y, &pre, NULL, &wd, NULL, 0, &dpre, NULL, NULL, 0, NULL, 0};
    const swiglu_status sts[4] = {
        swiglu_glu_linear_forward_workspace_size(g_ctx, &desc, &a, &bytes),
        swiglu_glu_linear_backward_workspace_size(g_ctx, &desc, &b, &bytes),
        swiglu_down_proj_forward_workspace_size(g_ctx, &desc, &dn, &bytes),
        swiglu_down_proj_backward_workspace_size(g_ctx, &desc, &dnb, &bytes)};
    int unsupported = 0;
    for (int i = 0; i < 4; ++i) unsupported += sts[i] == SWIGLU_ERROR_UNSUPPORTED;
    if (unsupported || expect_unsupported) {
      printf("backend %s: GEMM-fused ops: 0 passed, 0 failed, %d of 4 ops unsupported (%s)\n", backend,
             unsupported, swiglu_context_last_error(g_ctx));
      swiglu_context_destroy(g_ctx);
      if (expect_unsupported) return unsupported == 4 ? 0 : 1;
      printf("SKIPPED\n");
      return 77;
    }
  }
  t_rng r = {seed};
  const int dts[][3] = {{T_F32, T_F32, T_F32}, {T_BF16, T_BF16, T_BF16}, {T_F16, T_F16, T_F32},
                        {T_F32, T_BF16, T_F16}, {T_BF16, T_F32, T_BF16}};
  /* T <= 32 takes the CPU's dot-product forward, larger T the packed GEMM */
  const int64_t shapes[][3] = {{1, 7, 5},   {13, 33, 17}, {30, 70, 40}, {4, 1, 1},
                               {25, 16, 32}, {40, 300, 37}, {3, 530, 9}, {33, 65, 11}};
  const int nd = sizeof dts / sizeof *dts, ns = sizeof shapes / sizeof *shapes;
  int k = 0;
  for (int act = 0; act < 6; ++act)
    for (int layout = 0; layout < 4; ++layout)
      for (int bias = 0; bias < 2; ++bias) {
        if (quick && (act + layout + bias) % 3) continue;
        lcase c;
        memset(&c, 0, sizeof c);
        c.act = act, c.layout = layout, c.bias = bias;
        const int *dt = dts[k % nd];
        const int64_t *sh = shapes[(k / 2) % ns];
        c.tx = dt[0], c.tw = dt[1], c.to = dt[2];
        c.T = sh[0], c.D = sh[1], c.H = sh[2];
        g_nan = k % 5 == 2;
        glu_linear_case(&c, &r, (k % 3) != 1, (k % 4) == 3);
        down_case(&c, &r, (k % 2) ? 3 : 0, (k % 4) == 1);
        g_nan = 0;
        ++k;
      }
  /* the CPU GEMM's panel groups and row ranges (cpu_gemm_impl.h): sized
   * from the L2, so the CTest runs with SWIGLU_CPU_L2_KIB=64 reach several
   * groups with a short last one, and row ranges with a partial last row
   * panel, at these sizes (forward K = 64 and 40; down projection K = 24),
   * and passes over K (a partial sums' slab between them) where a panel
   * fills the group, the A block the L2 and N <= K: forward K = 300 in two
   * passes, K = 601 in three (the last one odd for the bf16 pairs), down
   * projection K = 530 in three */
  {
    const int64_t sh[][3] = {{75, 64, 70}, {150, 40, 200}, {200, 300, 24}, {40, 601, 40}, {40, 100, 530}};
    for (int i = 0; i < 5; ++i) {
      lcase c = {i == 1 ? SWIGLU_ACT_GELU_TANH : SWIGLU_ACT_SILU, i == 2 ? SWIGLU_LAYOUT_INTERLEAVED : SWIGLU_LAYOUT_GATE_UP,
                 i != 1, T_F32, T_F32, T_F32, sh[i][0], sh[i][1], sh[i][2], 0, 0, 0, 0};
      glu_linear_case(&c, &r, i == 0, 0);
      down_case(&c, &r, 0, i == 1);
      c.tx = c.tw = c.to = T_BF16; /* the bf16 pairs' kernel where the ISA has it */
      glu_linear_case(&c, &r, i == 2, 0);
      down_case(&c, &r, 0, 0);
    }
  }
  /* the CPU's few-row forward (dot products, T <= 16; bf16 pairs T <= 8,
   * or 5 with AMX, where T = 8 and 16 go to the AMX GEMM; 16-bit weights
   * on AVX2 T <= 8): every block height (1..4 with AVX-512, 1..3 with 16
   * vector registers) with a remainder, feature groups of each width (4 and
   * 3, or 3 and 2) with a partial last one, D past two vectors of pairs
   * with an odd tail */
  {
    const int64_t ts[] = {1, 2, 3, 5, 8, 16};
    for (int i = 0; i < 6; ++i) {
      lcase c = {i % 2 ? SWIGLU_ACT_GELU_TANH : SWIGLU_ACT_SILU_GPTOSS, i % 2 ? SWIGLU_LAYOUT_INTERLEAVED : SWIGLU_LAYOUT_UP_GATE,
                 1, T_BF16, T_BF16, T_BF16, ts[i], 71, 9 + i % 3, 0, 0, 0, 0};
      glu_linear_case(&c, &r, i % 2, 0);
      c.tx = T_F32, c.tw = T_F16, c.to = T_F32, c.D = 37, c.layout = SWIGLU_LAYOUT_SEPARATE;
      glu_linear_case(&c, &r, 1, 0);
    }
  }
  /* separate w and w_up of different dtypes, on the few-row and the GEMM
   * forward, and a down projection's separate gate and up of different
   * dtypes (few-row dot and GEMM, dense and MoE): each half is read (and
   * its gradients written) in its own */
  {
    const int64_t ts[] = {1, 3, 8, 30, 2, 40};
    const int mix[][3] = {{T_BF16, T_BF16, T_F32}, {T_F32, T_F32, T_F16}, {T_BF16, T_F32, T_BF16}};
    for (int i = 0; i < 6; ++i) {
      const int *m = mix[i % 3];
      lcase c = {SWIGLU_ACT_SILU, SWIGLU_LAYOUT_SEPARATE, i % 2, m[0], m[1], T_F32, ts[i], 69, 11, 0, 0, m[2] + 1, 0};
      glu_linear_case(&c, &r, i % 2, i == 3);
      c.twu1 = 0, c.txu1 = m[2] + 1; /* the down projection's separate gate and up */
      down_case(&c, &r, i % 2 ? 3 : 0, i == 2);
    }
  }
  /* the CPU's few-row GEMM for a B given as rows (the backward's dX, the
   * down projection's dh; T <= 16): K in several blocks of 64 rows with a
   * partial last one, N past one thread's run of 1024 columns with a
   * partial last panel, dense and MoE */
  {
    lcase c = {SWIGLU_ACT_SILU, SWIGLU_LAYOUT_INTERLEAVED, 1, T_F32, T_F32, T_F32, 5, 40, 100, 0, 0, 0, 0};
    glu_linear_case(&c, &r, 1, 1);
    c.tx = c.tw = c.to = T_BF16, c.layout = SWIGLU_LAYOUT_SEPARATE, c.twu1 = T_F16 + 1;
    glu_linear_case(&c, &r, 0, 0);
    lcase w = {SWIGLU_ACT_GELU_TANH, SWIGLU_LAYOUT_GATE_UP, 0, T_F32, T_BF16, T_F32, 2, 2100, 40, 0, 0, 0, 0};
    glu_linear_case(&w, &r, 1, 0);
    lcase d = {SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP, 0, T_F32, T_F32, T_BF16, 7, 150, 2100, 0, 0, 0, 0};
    down_case(&d, &r, 0, 1);
    d.T = 12, d.tx = T_BF16;
    down_case(&d, &r, 3, 0);
  }
  /* an empty batch: the weight gradients are zeros (or unchanged) */
  {
    lcase c = {SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP, 1, T_F32, T_F32, T_F32, 0, 9, 6, 0, 0, 0, 0};
    glu_linear_case(&c, &r, 0, 0);
    c.layout = SWIGLU_LAYOUT_INTERLEAVED, c.T = 3;
    down_case(&c, &r, 4, 0);
  }
  printf("bad inputs:\n");
  bad_inputs(&r);
  if (g_ws) swiglu_context_free(g_ctx, g_ws);
  printf("largest error as a fraction of its bound (fp32 outputs):");
  for (int i = 0; i < 16 && g_use[i].what; ++i) printf("%s %s %.3f", i ? "," : "", g_use[i].what, g_use[i].worst);
  printf("\n");
  printf("backend %s: %ld cases, %ld checks, %ld failed (%d bad-input rules failed)\n", backend,
         g_cases, g_checked, g_failed, g_bad_failed);
  swiglu_context_destroy(g_ctx);
  return g_failed ? 1 : 0;
}
