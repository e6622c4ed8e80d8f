/*
 * Random views: a randomized check of the validator and of the kernels'
 * addressing, for every op (GLU forward, backward and quantization; GLU
 * linear and down projection, forward and backward) on one backend. Each
 * case draws the shapes (0 to 3 leading dimensions, extents 0 to 4, any
 * width), strides (padded, permuted, zero for inputs, sometimes overlapping
 * or negative), dtypes, layout, activation and op settings, and places
 * every tensor and the workspace somewhere in one arena of the backend's
 * memory (by data pointer or by byte_offset; sometimes on top of another
 * tensor, sometimes misaligned). Then:
 *  - a refused call must leave every byte of the arena as it was and say
 *    why; and it must be refused where the views break a rule this test
 *    decides on its own: output elements sharing bytes, an output's or the
 *    workspace's byte span meeting another operand's (in-place pairs
 *    aside), a misaligned element, a negative stride, a non-unit feature
 *    stride, a GEMM operand whose leading dimensions do not collapse,
 *    expert counts past M, bad expert offsets, a short workspace. A call
 *    breaking none must be accepted, except that the validator's test for
 *    self-overlapping outputs is a sufficient one, so outputs whose strides
 *    do not nest may be refused (as overlapping). A GPU's refusal of bad
 *    expert counts comes from the synchronize after the call;
 *  - an accepted call must write each output element with the bits the
 *    same backend writes for compact copies of the same inputs (NaN as any
 *    NaN: its sign and payload are unspecified), and nothing else: every
 *    arena byte outside the output elements and the workspace keeps its
 *    value.
 * The numerics themselves are the oracle and quant suites' business; this
 * checks that no view changes them. Exits 77 where the backend is
 * unavailable.
 *
 *   test_glu_views [--backend NAME] [--cases N] [--seed S]
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swiglu/swiglu.h"
#include "open_backend.h"

/* ------------------------------------------------------------- utilities */

static uint64_t g_state;
static uint64_t rnd(void) { /* splitmix64 */
  uint64_t z = (g_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static int64_t rint_(int64_t n) { return n > 0 ? (int64_t)(rnd() % (uint64_t)n) : 0; } /* [0, n) */
static int chance(int percent) { return rint_(100) < percent; }

enum { D_F32, D_F16, D_BF16, D_U8, D_I8, D_I32, D_E4M3, D_E4M3FNUZ, D_E5M2, D_E8M0, D_COUNT };
static const swiglu_dtype k_dtype[D_COUNT] = {
    {SWIGLU_DTYPE_FLOAT, 32, 1}, {SWIGLU_DTYPE_FLOAT, 16, 1},  {SWIGLU_DTYPE_BFLOAT, 16, 1},
    {SWIGLU_DTYPE_UINT, 8, 1},   {SWIGLU_DTYPE_INT, 8, 1},     {SWIGLU_DTYPE_INT, 32, 1},
    {SWIGLU_DTYPE_FLOAT8_E4M3FN, 8, 1}, {SWIGLU_DTYPE_FLOAT8_E4M3FNUZ, 8, 1},
    {SWIGLU_DTYPE_FLOAT8_E5M2, 8, 1},   {SWIGLU_DTYPE_FLOAT8_E8M0FNU, 8, 1}};
static const char *const k_dname[D_COUNT] = {"f32", "f16", "bf16", "u8", "i8", "i32", "e4m3", "e4m3fnuz", "e5m2", "e8m0"};
static size_t dsize(int d) { return k_dtype[d].bits / 8; }
static int is_float(int d) { return d <= D_BF16; }

static swiglu_context *g_ctx;
static long g_failed, g_cases, g_accepted, g_refused, g_checks;
static char g_case[512]; /* what the current case is, for the failure lines */

#define FAIL(...)                                          \
  do {                                                     \
    if (++g_failed <= 30) {                                \
      fprintf(stderr, "FAIL [%s]: ", g_case);              \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
    }                                                      \
  } while (0)

static void must(swiglu_status st, const char *what) {
  if (st) {
    fprintf(stderr, "%s: %s: %s\n", what, swiglu_status_string(st), swiglu_context_last_error(g_ctx));
    exit(1);
  }
}

/* ----------------------------------------------------------------- views */

/* the bytes a case uses: 128 KiB, more for the GEMM-fused ops, whose
 * workspace is 10-90 KiB on the CPU at these sizes and over 8 MiB on CUDA
 * (cuBLASLt's scratch): g_arena_max, sized at startup */
#define ARENA_ELT ((size_t)1 << 17)
static size_t g_arena = ARENA_ELT, g_arena_max;
#define MAXD 4
#define MAXOPS 14

typedef struct {
  int used, dt, nd, out;
  int64_t shape[MAXD], strides[MAXD];
  int64_t pos;    /* byte position of the element at offset 0 in the arena */
  int by_offset;  /* placed through byte_offset rather than the data pointer */
  int nests;      /* an output whose strides nest (the validator's sufficient test holds) */
  int scratch;    /* a workspace: no operand may meet it, and its bytes are the op's */
  swiglu_tensor t;
} view;

static int64_t v_numel(const view *v) {
  int64_t n = 1;
  for (int i = 0; i < v->nd; ++i) n *= v->shape[i];
  return n;
}
static int64_t v_rows(const view *v) {
  int64_t n = 1;
  for (int i = 0; i < v->nd - 1; ++i) n *= v->shape[i];
  return n;
}
/* element offset of element (row, c), rows in row-major order of the leading dims */
static int64_t v_off(const view *v, int64_t row, int64_t c) {
  int64_t off = c * v->strides[v->nd - 1];
  for (int i = v->nd - 2; i >= 0; --i) {
    off += (row % v->shape[i]) * v->strides[i];
    row /= v->shape[i];
  }
  return off;
}
static int64_t v_max_off(const view *v) {
  int64_t m = 0;
  for (int i = 0; i < v->nd; ++i)
    if (v->shape[i] > 1 && v->strides[i] > 0) m += (v->shape[i] - 1) * v->strides[i];
  return m;
}
/* [lo, hi) bytes in the arena; empty where the view has no element */
static void v_span(const view *v, int64_t *lo, int64_t *hi) {
  if (!v->used || v_numel(v) == 0) {
    *lo = *hi = 0;
    return;
  }
  *lo = v->pos;
  *hi = v->pos + (v_max_off(v) + 1) * (int64_t)dsize(v->dt);
}
static int spans_meet(const view *a, const view *b) {
  int64_t al, ah, bl, bh;
  v_span(a, &al, &ah);
  v_span(b, &bl, &bh);
  return al < ah && bl < bh && al < bh && bl < ah;
}

/* Leading shape lead[0..nl) plus a last extent; strides drawn for an input
 * (non-negative, maybe zero or overlapping) or an output (nesting in a
 * random order, or with some chance drawn freely). */
static void v_make(view *v, int dt, int nl, const int64_t *lead, int64_t last, int out) {
  memset(v, 0, sizeof *v);
  v->used = 1, v->dt = dt, v->nd = nl + 1, v->out = out, v->nests = 1;
  for (int i = 0; i < nl; ++i) v->shape[i] = lead[i];
  v->shape[nl] = last;
  v->strides[nl] = 1;
  if (last <= 1 && chance(30)) v->strides[nl] = rint_(5); /* ignored where the extent is 0 or 1 */
  const int mode = chance(out ? 80 : 60) ? 0 : out ? 1 : 2;
  if (mode == 0) { /* nesting, in a random order of the leading dims */
    int order[MAXD];
    for (int i = 0; i < nl; ++i) order[i] = i;
    for (int i = nl - 1; i > 0; --i) {
      const int j = (int)rint_(i + 1), t = order[i];
      order[i] = order[j], order[j] = t;
    }
    if (chance(60)) /* row-major order, the common case */
      for (int i = 0; i < nl; ++i) order[i] = nl - 1 - i;
    int64_t span = last > 0 ? last : 1;
    for (int k = 0; k < nl; ++k) {
      const int i = order[k];
      v->strides[i] = span + (chance(50) ? 0 : rint_(9));
      span = v->strides[i] * (v->shape[i] > 0 ? v->shape[i] - 1 : 0) + span;
    }
  } else {
    v->nests = 0;
    for (int i = 0; i < nl; ++i) /* outputs: positive; inputs: zero allowed */
      v->strides[i] = out ? 1 + rint_(2 * (last > 0 ? last : 1) + 3) : rint_(2 * (last > 0 ? last : 1) + 3);
  }
}

static int64_t v_bytes(const view *v) {
  return v_numel(v) ? (v_max_off(v) + 1) * (int64_t)dsize(v->dt) : 0;
}

/* The arena's layout of one case: tensors one after another with gaps, some
 * thrown anywhere (onto others) and some misaligned. Returns 0 where they do
 * not fit. */
static unsigned char *g_dev;
static int64_t g_cursor;
static int place(view *v, int pile_percent) {
  const int64_t es = (int64_t)dsize(v->dt), n = v_bytes(v);
  if (n > (int64_t)g_arena / 2 && !v->scratch) return 0;
  int64_t pos;
  if (chance(pile_percent)) { /* somewhere over the tensors placed so far */
    pos = rint_(g_cursor + 1) / es * es;
    if (pos + n > (int64_t)g_arena) return 0;
  } else {
    pos = (g_cursor + es - 1) / es * es + es * rint_(16);
    if (pos + n > (int64_t)g_arena) return 0;
    g_cursor = pos + n;
  }
  if (es > 1 && chance(2) && pos + n + 1 <= (int64_t)g_arena) pos += 1 + rint_(es - 1);
  v->pos = pos;
  v->by_offset = chance(50);
  memset(&v->t, 0, sizeof v->t);
  v->t.data = v->by_offset ? (void *)g_dev : (void *)(g_dev + pos);
  v->t.byte_offset = v->by_offset ? (uint64_t)pos : 0;
  v->t.device.device_type = swiglu_context_device_type(g_ctx);
  v->t.device.device_id = swiglu_context_device(g_ctx);
  v->t.ndim = v->nd;
  v->t.dtype = k_dtype[v->dt];
  v->t.shape = v->shape;
  v->t.strides = v->strides;
  return 1;
}
static int misaligned(const view *v) { return v->used && v_numel(v) && v->pos % (int64_t)dsize(v->dt); }

/* bytes of an output's elements that another of its elements also covers */
static unsigned char *g_mark;
static int self_overlaps(const view *v) {
  if (!v->used || !v_numel(v)) return 0;
  const int64_t es = (int64_t)dsize(v->dt), rows = v_rows(v), last = v->shape[v->nd - 1];
  int hit = 0;
  memset(g_mark, 0, g_arena);
  for (int64_t r = 0; r < rows && !hit; ++r)
    for (int64_t c = 0; c < last && !hit; ++c) {
      const int64_t b = v->pos + v_off(v, r, c) * es;
      for (int64_t k = 0; k < es; ++k) hit |= g_mark[b + k]++ != 0;
    }
  return hit;
}
/* a rule about strides: negative, or a non-unit feature stride */
static int bad_strides(const view *v) {
  if (!v->used || !v_numel(v)) return 0; /* no element to misplace: any strides */
  for (int i = 0; i < v->nd - 1; ++i)
    if (v->shape[i] > 1 && v->strides[i] < 0) return 1;
  return v->shape[v->nd - 1] > 1 && v->strides[v->nd - 1] != 1;
}

/* whether the leading dimensions collapse to one row stride (the GEMM-fused
 * ops' activation-side rule), as the validator walks them */
static int collapses(const view *v) {
  if (!v->used || !v_numel(v)) return 1;
  int64_t expect = -1;
  for (int i = v->nd - 2; i >= 0; --i) {
    if (v->shape[i] == 1) continue;
    if (expect >= 0 && v->strides[i] != expect) return 0;
    expect = v->strides[i] * v->shape[i];
  }
  return 1;
}

/* -------------------------------------------------------------- contents */

/* A value of dtype d, as bits: mostly moderate magnitudes, with zeros,
 * subnormals, huge values, infinities and NaNs mixed in. */
static uint32_t draw_bits(int d) {
  const uint32_t s = (uint32_t)(rnd() & 1), m = (uint32_t)rnd();
  const int k = (int)rint_(100);
  if (d == D_F16) {
    uint32_t e = 12 + (uint32_t)rint_(7);                 /* 2^-3 .. 2^3 */
    if (k < 3) e = 0;                                     /* zero or subnormal */
    else if (k < 5) e = 31;                               /* inf or NaN */
    else if (k < 8) e = 27 + (uint32_t)rint_(4);          /* huge */
    return s << 15 | e << 10 | (e == 31 && chance(50) ? 0 : m & 0x3ff);
  }
  uint32_t e = 124 + (uint32_t)rint_(7);
  if (k < 3) e = 0;
  else if (k < 5) e = 255;
  else if (k < 8) e = chance(50) ? 1 + (uint32_t)rint_(20) : 133 + (uint32_t)rint_(121); /* tiny, huge (z < -87) */
  const uint32_t f = s << 31 | e << 23 | (e == 255 && chance(50) ? 0 : m & 0x7fffff);
  return d == D_BF16 ? f >> 16 : f;
}
static void put(unsigned char *a, int d, uint32_t bits) { memcpy(a, &bits, dsize(d)); }

/* every element of an input view in the host arena */
static void fill_input(unsigned char *host, const view *v) {
  if (!v->used) return;
  const int64_t rows = v_rows(v), last = v->shape[v->nd - 1], es = (int64_t)dsize(v->dt);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < last; ++c) put(host + v->pos + v_off(v, r, c) * es, v->dt, draw_bits(v->dt));
}

/* the view's elements, gathered in row-major order */
static void gather(const unsigned char *host, const view *v, unsigned char *dst) {
  const int64_t rows = v_rows(v), last = v->shape[v->nd - 1], es = (int64_t)dsize(v->dt);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < last; ++c) memcpy(dst + (r * last + c) * es, host + v->pos + v_off(v, r, c) * es, (size_t)es);
}

static int same_value(const unsigned char *a, const unsigned char *b, int d) {
  if (!memcmp(a, b, dsize(d))) return 1;
  if (!is_float(d)) return 0;
  uint32_t x = 0, y = 0;
  memcpy(&x, a, dsize(d));
  memcpy(&y, b, dsize(d));
  const uint32_t em = d == D_F32 ? 0x7f800000u : d == D_F16 ? 0x7c00u : 0x7f80u;
  const uint32_t mm = d == D_F32 ? 0x007fffffu : d == D_F16 ? 0x03ffu : 0x007fu;
  return (x & em) == em && (x & mm) && (y & em) == em && (y & mm); /* both NaN */
}

/* ------------------------------------------------------------------ cases */

typedef struct {
  const char *name;
  view *v[MAXOPS]; /* the operands, inputs first, NULL where absent */
  int nout;    /* v[0 .. nin) are inputs, v[nin .. nin + nout) outputs */
  int nin;
  int in_place_pairs[2][2]; /* (output, input) indices allowed to coincide; -1: none */
} operands;

/* the compact twin of a view: same dtype and shape, compact, in ref memory */
typedef struct {
  int64_t shape[MAXD];
  swiglu_tensor t;
  void *dev;
  unsigned char *host;
  size_t bytes;
} twin;
static void twin_make(twin *w, const view *v, const unsigned char *before) {
  memset(w, 0, sizeof *w);
  memcpy(w->shape, v->shape, sizeof w->shape);
  w->bytes = (size_t)v_numel(v) * dsize(v->dt);
  w->host = malloc(w->bytes + 1);
  gather(before, v, w->host);
  must(swiglu_context_malloc(g_ctx, w->bytes, &w->dev), "malloc");
  if (w->bytes)
    must(swiglu_context_copy(g_ctx, w->dev, w->host, w->bytes, SWIGLU_COPY_HOST_TO_DEVICE), "upload");
  w->t.data = w->dev;
  w->t.device = v->t.device;
  w->t.ndim = v->nd;
  w->t.dtype = v->t.dtype;
  w->t.shape = w->shape;
}
static void twin_free(twin *w) {
  free(w->host);
  swiglu_context_free(g_ctx, w->dev);
}

typedef swiglu_status (*op_fn)(const swiglu_tensor *const *t, void *extra);

static unsigned char *g_before, *g_after, *g_outmask;
static int g_twin; /* the call on compact twins: separate buffers, so never in place */
static int g_compare = 1; /* compare the output values (else only refusals and stray writes) */

/* One drawn call: run it on the views, decide, compare. must_refuse and
 * may_refuse come from the case's own rules (the quantizer's settings). */
static void run_case(operands *o, op_fn fn, void *extra, int must_refuse, int may_refuse) {
  const int n = o->nin + o->nout;
  char why[128] = "the case's own settings";
  /* the views' own rules */
  for (int i = 0; i < n; ++i) {
    view *v = o->v[i];
    if (!v) continue;
    if (misaligned(v)) must_refuse = 1, snprintf(why, sizeof why, "operand %d misaligned", i);
    if (bad_strides(v)) must_refuse = 1, snprintf(why, sizeof why, "operand %d's strides", i);
    if (v->out && !v->scratch && self_overlaps(v)) must_refuse = 1, snprintf(why, sizeof why, "operand %d overlaps itself", i);
    if (v->out && !v->nests) may_refuse = 1;
  }
  for (int a = o->nin; a < n; ++a) {
    if (!o->v[a]) continue;
    for (int b = 0; b < n; ++b) {
      if (b == a || !o->v[b]) continue;
      int pair = 0;
      for (int k = 0; k < 2; ++k)
        pair |= (o->in_place_pairs[k][0] == a && o->in_place_pairs[k][1] == b) ||
                (o->in_place_pairs[k][0] == b && o->in_place_pairs[k][1] == a);
      if (!pair && spans_meet(o->v[a], o->v[b]))
        must_refuse = 1, snprintf(why, sizeof why, "operands %d and %d overlap", a, b);
    }
  }
  const swiglu_tensor *t[MAXOPS] = {0};
  for (int i = 0; i < n; ++i) t[i] = o->v[i] ? &o->v[i]->t : NULL;
  must(swiglu_context_copy(g_ctx, g_dev, g_before, g_arena, SWIGLU_COPY_HOST_TO_DEVICE), "upload");
  swiglu_status st = fn(t, extra);
  const char *msg = swiglu_context_last_error(g_ctx);
  char msg_copy[256];
  snprintf(msg_copy, sizeof msg_copy, "%s", msg ? msg : "");
  /* a GPU checks expert counts (device memory) in a kernel: the refusal
   * comes from the next synchronize (docs/numerics.md) */
  const swiglu_status sst = swiglu_context_synchronize(g_ctx);
  if (sst && st == SWIGLU_SUCCESS) {
    st = sst;
    msg = swiglu_context_last_error(g_ctx);
    snprintf(msg_copy, sizeof msg_copy, "%s", msg ? msg : "");
  }
  must(swiglu_context_copy(g_ctx, g_after, g_dev, g_arena, SWIGLU_COPY_DEVICE_TO_HOST), "download");
  ++g_cases;
  if (st != SWIGLU_SUCCESS) {
    ++g_refused;
    ++g_checks;
    if (!must_refuse && !(may_refuse && st == SWIGLU_ERROR_OVERLAP))
      FAIL("refused a call this test holds valid: %s: %s", swiglu_status_string(st), msg_copy);
    if (!msg_copy[0]) FAIL("refused (%s) without a message", swiglu_status_string(st));
    if (memcmp(g_before, g_after, g_arena)) FAIL("refused (%s: %s), but the arena changed", swiglu_status_string(st), msg_copy);
    return;
  }
  ++g_accepted;
  if (must_refuse) {
    FAIL("accepted a call that breaks a rule: %s", why);
    return;
  }
  /* the same op on compact twins */
  twin w[MAXOPS];
  const swiglu_tensor *tt[MAXOPS] = {0};
  for (int i = 0; i < n; ++i)
    if (o->v[i] && !o->v[i]->scratch) { /* the twins' call sizes its own workspace */
      twin_make(&w[i], o->v[i], g_before);
      tt[i] = &w[i].t;
    }
  g_twin = 1;
  const swiglu_status rst = fn(tt, extra);
  g_twin = 0;
  if (rst) {
    FAIL("the compact twin call failed: %s: %s", swiglu_status_string(rst), swiglu_context_last_error(g_ctx));
  } else {
    must(swiglu_context_synchronize(g_ctx), "synchronize");
    memset(g_outmask, 0, g_arena);
    for (int i = o->nin; i < n; ++i) {
      const view *v = o->v[i];
      if (!v) continue;
      if (v->scratch) {
        int64_t lo, hi;
        v_span(v, &lo, &hi);
        if (hi > lo) memset(g_outmask + lo, 1, (size_t)(hi - lo));
        continue;
      }
      if (w[i].bytes)
        must(swiglu_context_copy(g_ctx, w[i].host, w[i].dev, w[i].bytes, SWIGLU_COPY_DEVICE_TO_HOST), "download");
      const int64_t rows = v_rows(v), last = v->shape[v->nd - 1], es = (int64_t)dsize(v->dt);
      long bad = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < last; ++c) {
          const int64_t b = v->pos + v_off(v, r, c) * es;
          memset(g_outmask + b, 1, (size_t)es);
          if (!g_compare) continue;
          ++g_checks;
          if (!same_value(g_after + b, w[i].host + (r * last + c) * es, v->dt) && ++bad <= 3)
            FAIL("output %d (%s) row %" PRId64 " col %" PRId64 ": differs from the compact call's", i - o->nin,
                 k_dname[v->dt], r, c);
        }
    }
    long stray = 0;
    for (size_t b = 0; b < g_arena; ++b)
      if (!g_outmask[b] && g_before[b] != g_after[b]) ++stray;
    ++g_checks;
    if (stray) FAIL("%ld arena bytes outside the outputs changed", stray);
  }
  for (int i = 0; i < n; ++i)
    if (o->v[i] && !o->v[i]->scratch) twin_free(&w[i]);
}

/* ----------------------------------------------------------- the three ops */

typedef struct {
  swiglu_glu_desc d;
  int sep;
  unsigned flags;
  int with_h;
  swiglu_quant_desc q;
  int with_scales, with_ts, with_w, with_counts;
  int with_bias, with_pre, experts; /* the GEMM-fused ops */
  int with_dx, with_dw, with_db;
  uint32_t lin_flags;
  int64_t offsets[8];
  size_t ws_bytes;
} op_extra;

/* forward: t = {x, up | NULL, h} */
static swiglu_status call_fwd(const swiglu_tensor *const *t, void *e) {
  const op_extra *x = e;
  return swiglu_glu_forward(g_ctx, &x->d, t[0], x->sep ? t[1] : NULL, t[2]);
}
/* backward: t = {dh, x, up | NULL, dx, dup | NULL, h | NULL} */
static swiglu_status call_bwd(const swiglu_tensor *const *t, void *e) {
  const op_extra *x = e;
  /* in place: dx and dup are the inputs' own descriptors' memory */
  return swiglu_glu_backward(g_ctx, &x->d, t[0], t[1], x->sep ? t[2] : NULL, t[3], x->sep ? t[4] : NULL,
                             x->with_h ? t[5] : NULL, g_twin ? 0u : x->flags);
}
/* quant: t = {x, up | NULL, tensor_scale, row_weight, counts, q, scales} */
static swiglu_status call_quant(const swiglu_tensor *const *t, void *e) {
  const op_extra *x = e;
  swiglu_quant_args a = {t[0], x->sep ? t[1] : NULL, t[5], x->with_scales ? t[6] : NULL,
                         x->with_ts ? t[2] : NULL, x->with_w ? t[3] : NULL, x->with_counts ? t[4] : NULL};
  return swiglu_glu_quant(g_ctx, &x->d, &x->q, &a);
}

/* GLU linear forward: t = {x, w, w_up, bias, bias_up, h, preact, workspace};
 * down projection: t = {x, up, w, y, workspace}. The views' call passes the
 * arena's workspace view; the twins' call asks for the size and allocates. */
static swiglu_status with_workspace(const swiglu_tensor *ws, size_t ws_bytes, void **p, size_t *n,
                                    swiglu_status (*query)(const void *, size_t *), const void *args) {
  if (!g_twin) {
    *p = ws && ws->data ? (char *)ws->data + ws->byte_offset : NULL;
    *n = ws_bytes;
    return SWIGLU_SUCCESS;
  }
  swiglu_status st = query(args, n);
  if (st) return st;
  must(swiglu_context_malloc(g_ctx, *n, p), "malloc");
  return SWIGLU_SUCCESS;
}
static const swiglu_glu_desc *g_lin_desc;
static void glu_args(const swiglu_tensor *const *t, const op_extra *x, swiglu_glu_linear_args *a) {
  const swiglu_glu_linear_args v = {t[0], t[1], x->sep ? t[2] : NULL, x->with_bias ? t[3] : NULL,
                                    x->with_bias && x->sep ? t[4] : NULL, t[5], x->with_pre ? t[6] : NULL,
                                    NULL, 0};
  *a = v;
}
static void down_args(const swiglu_tensor *const *t, const op_extra *x, swiglu_down_proj_args *a) {
  const swiglu_down_proj_args v = {t[0], x->sep ? t[1] : NULL, t[2], x->experts ? x->offsets : NULL,
                                   x->experts, t[3], NULL, 0};
  *a = v;
}

static int draw_lead(int64_t *lead) {
  const int nl = (int)rint_(4);
  for (int i = 0; i < nl; ++i) lead[i] = chance(5) ? 0 : 1 + rint_(4);
  return nl;
}
static int64_t draw_width(void) {
  static const int64_t common[] = {1, 8, 16, 31, 32, 64, 96, 128, 256};
  return chance(40) ? common[rint_(9)] : 1 + rint_(80);
}
static void draw_desc(op_extra *x) {
  swiglu_glu_desc_init(&x->d, (swiglu_activation)rint_(6), (swiglu_layout)rint_(4));
  if (chance(30)) x->d.limit = chance(50) ? 0.5f : 100.0f;
  x->sep = x->d.layout == SWIGLU_LAYOUT_SEPARATE;
}

static void case_forward(void) {
  op_extra x;
  memset(&x, 0, sizeof x);
  draw_desc(&x);
  int64_t lead[MAXD];
  const int nl = draw_lead(lead);
  const int64_t H = draw_width();
  const int din = (int)rint_(3), dout = (int)rint_(3);
  view vx, vu, vh;
  v_make(&vx, din, nl, lead, x.sep ? H : 2 * H, 0);
  if (x.sep) v_make(&vu, din, nl, lead, H, 0);
  else memset(&vu, 0, sizeof vu);
  v_make(&vh, dout, nl, lead, H, 1);
  if (chance(2) && nl && lead[0] > 1) vx.strides[0] = -1 - rint_(3);
  g_cursor = 0;
  if (!place(&vx, 0) || (x.sep && !place(&vu, 0)) || !place(&vh, 15)) return;
  memset(g_before, 0xa5, g_arena);
  for (size_t b = 0; b < g_arena; b += 8) g_before[b] = (unsigned char)rnd();
  if (!bad_strides(&vx)) fill_input(g_before, &vx);
  fill_input(g_before, &vu);
  snprintf(g_case, sizeof g_case, "forward act %d layout %d H %" PRId64 " nd %d %s -> %s", x.d.activation,
           x.d.layout, H, nl + 1, k_dname[din], k_dname[dout]);
  operands o = {"forward", {&vx, x.sep ? &vu : NULL, &vh}, 1, 2, {{-1, -1}, {-1, -1}}};
  run_case(&o, call_fwd, &x, 0, 0);
}

static void case_backward(void) {
  op_extra x;
  memset(&x, 0, sizeof x);
  draw_desc(&x);
  int64_t lead[MAXD];
  const int nl = draw_lead(lead);
  const int64_t H = draw_width();
  const int din = (int)rint_(3), ddh = (int)rint_(3), dg = (int)rint_(3), dhh = (int)rint_(3);
  const int in_place = chance(20);
  x.with_h = chance(40);
  view vdh, vx, vu, vdx, vdu, vh;
  memset(&vu, 0, sizeof vu), memset(&vdu, 0, sizeof vdu), memset(&vh, 0, sizeof vh);
  v_make(&vdh, ddh, nl, lead, H, 0);
  v_make(&vx, din, nl, lead, x.sep ? H : 2 * H, in_place);
  if (x.sep) v_make(&vu, din, nl, lead, H, in_place);
  if (!in_place) {
    v_make(&vdx, dg, nl, lead, x.sep ? H : 2 * H, 1);
    if (x.sep) v_make(&vdu, dg, nl, lead, H, 1);
  }
  if (x.with_h) v_make(&vh, dhh, nl, lead, H, 1);
  g_cursor = 0;
  if (!place(&vdh, 0) || !place(&vx, 0) || (x.sep && !place(&vu, in_place ? 10 : 0))) return;
  if (in_place) {
    vdx = vx, vdx.t.shape = vdx.shape, vdx.t.strides = vdx.strides;
    if (x.sep) vdu = vu, vdu.t.shape = vdu.shape, vdu.t.strides = vdu.strides;
    x.flags = SWIGLU_BACKWARD_IN_PLACE;
  } else if (!place(&vdx, 15) || (x.sep && !place(&vdu, 15))) {
    return;
  }
  if (x.with_h && !place(&vh, 15)) return;
  memset(g_before, 0x5a, g_arena);
  for (size_t b = 0; b < g_arena; b += 8) g_before[b] = (unsigned char)rnd();
  fill_input(g_before, &vdh);
  fill_input(g_before, &vx);
  fill_input(g_before, &vu);
  snprintf(g_case, sizeof g_case, "backward act %d layout %d H %" PRId64 " nd %d in %s dh %s grads %s h %s%s",
           x.d.activation, x.d.layout, H, nl + 1, k_dname[din], k_dname[ddh], in_place ? k_dname[din] : k_dname[dg],
           x.with_h ? k_dname[dhh] : "-", in_place ? " in place" : "");
  operands o = {"backward",
                {&vdh, &vx, x.sep ? &vu : NULL, &vdx, x.sep ? &vdu : NULL, x.with_h ? &vh : NULL},
                3, 3, {{3, 1}, {4, 2}}};
  /* in place, dgate and dup are gate and up (the pairs' allowance covers
   * only each with itself: dgate meeting up is still refused) */
  if (!in_place) o.in_place_pairs[0][0] = o.in_place_pairs[1][0] = -1;
  run_case(&o, call_bwd, &x, 0, 0);
}

static void case_quant(void) {
  op_extra x;
  memset(&x, 0, sizeof x);
  draw_desc(&x);
  int must_refuse = 0;
  const int fmt = (int)rint_(6);
  const int gran = fmt >= SWIGLU_QUANT_MXFP8 ? SWIGLU_SCALE_PER_GROUP : (int)rint_(3);
  static const int32_t groups[] = {8, 16, 24, 32, 64, 128};
  int32_t G = fmt == SWIGLU_QUANT_MXFP8 ? 32 : fmt == SWIGLU_QUANT_NVFP4 ? 16 : groups[rint_(6)];
  swiglu_quant_desc_init(&x.q, (swiglu_quant_format)fmt, (swiglu_scale_granularity)gran, G);
  int64_t H = gran == SWIGLU_SCALE_PER_GROUP ? G * (1 + rint_(chance(50) ? 4 : 12)) : draw_width();
  if (fmt == SWIGLU_QUANT_NVFP4 && H % 2) ++H;
  if (chance(3)) H += 8, must_refuse |= gran == SWIGLU_SCALE_PER_GROUP && H % G; /* a width the groups may not divide */
  if (fmt < SWIGLU_QUANT_MXFP8 && gran != SWIGLU_SCALE_PER_TENSOR) {
    static const int enc[] = {SWIGLU_SCALE_FP32, SWIGLU_SCALE_FP32_UE8M0, SWIGLU_SCALE_UE8M0_PACKED, SWIGLU_SCALE_E8M0};
    x.q.scale_encoding = (swiglu_scale_encoding)enc[rint_(4)];
  }
  x.q.scale_layout = (swiglu_scale_layout)rint_(3);
  if (chance(30)) x.q.flags |= SWIGLU_QUANT_ROUND_H;
  if (fmt == SWIGLU_QUANT_MXFP8 && chance(30)) x.q.flags |= SWIGLU_QUANT_MX_SCALE_ROUND_UP;
  if (chance(20)) x.q.amax_floor = chance(50) ? 1.0f : 0x1p-126f;
  x.with_counts = chance(25);
  int64_t lead[MAXD];
  int nl = draw_lead(lead);
  if (x.with_counts) nl = 2, lead[0] = 1 + rint_(3), lead[1] = rint_(6);
  const int64_t E = x.with_counts ? lead[0] : 1;
  int64_t rows = 1;
  for (int i = 0; i < nl; ++i) rows *= lead[i];
  const int64_t M = x.with_counts ? lead[1] : rows;
  const int din = (int)rint_(3);
  int dq = D_U8;
  if (fmt == SWIGLU_QUANT_INT8) dq = D_I8;
  else if (fmt != SWIGLU_QUANT_NVFP4 && chance(50))
    dq = fmt == SWIGLU_QUANT_FP8_E4M3FNUZ ? D_E4M3FNUZ : fmt == SWIGLU_QUANT_FP8_E5M2 ? D_E5M2 : D_E4M3;
  view vx, vu, vts, vw, vc, vq, vs;
  memset(&vu, 0, sizeof vu), memset(&vts, 0, sizeof vts), memset(&vw, 0, sizeof vw);
  memset(&vc, 0, sizeof vc), memset(&vs, 0, sizeof vs);
  v_make(&vx, din, nl, lead, x.sep ? H : 2 * H, 0);
  if (x.sep) v_make(&vu, din, nl, lead, H, 0);
  v_make(&vq, dq, nl, lead, fmt == SWIGLU_QUANT_NVFP4 ? H / 2 : H, 1);
  /* the small compact tensors */
  x.with_ts = gran == SWIGLU_SCALE_PER_TENSOR || fmt == SWIGLU_QUANT_NVFP4;
  if (x.with_ts) v_make(&vts, D_F32, 0, NULL, 1, 0), vts.strides[0] = 1;
  x.with_w = chance(30);
  if (x.with_w) {
    const int64_t n = E * M;
    v_make(&vw, D_F32, 0, NULL, n, 0);
  }
  if (x.with_counts) v_make(&vc, D_I32, 0, NULL, E, 0);
  x.with_scales = gran != SWIGLU_SCALE_PER_TENSOR;
  if (x.with_scales) {
    const int64_t ngroups = gran == SWIGLU_SCALE_PER_GROUP ? (H % G ? 1 : H / G) : 1;
    const int packed = x.q.scale_encoding == SWIGLU_SCALE_UE8M0_PACKED;
    const int64_t cols = packed ? (ngroups + 3) / 4 : ngroups;
    int ds = D_F32;
    if (packed) ds = D_I32;
    else if (x.q.scale_encoding == SWIGLU_SCALE_E8M0) ds = chance(50) ? D_U8 : D_E8M0;
    else if (x.q.scale_encoding == SWIGLU_SCALE_E4M3) ds = chance(50) ? D_U8 : D_E4M3;
    int64_t sl[2];
    if (x.q.scale_layout == SWIGLU_SCALE_ROW_MAJOR) sl[0] = M, sl[1] = cols;
    else sl[0] = cols, sl[1] = x.q.scale_layout == SWIGLU_SCALE_COL_MAJOR_TMA ? (M + 3) / 4 * 4 : M;
    if (chance(3)) sl[1] += 1, must_refuse = 1; /* a wrong shape */
    if (x.with_counts) {
      const int64_t sh[2] = {E, sl[0]};
      v_make(&vs, ds, 2, sh, sl[1], 1);
    } else {
      v_make(&vs, ds, 1, sl, sl[1], 1);
    }
    /* compact */
    int64_t s = 1;
    for (int i = vs.nd - 1; i >= 0; --i) vs.strides[i] = s, s *= vs.shape[i];
    vs.nests = 1;
  }
  g_cursor = 0;
  if (!place(&vx, 0) || (x.sep && !place(&vu, 0)) || (x.with_ts && !place(&vts, 0)) ||
      (x.with_w && !place(&vw, 0)) || (x.with_counts && !place(&vc, 0)) || !place(&vq, 15) ||
      (x.with_scales && !place(&vs, 10)))
    return;
  memset(g_before, 0xc3, g_arena);
  for (size_t b = 0; b < g_arena; b += 8) g_before[b] = (unsigned char)rnd();
  fill_input(g_before, &vx);
  fill_input(g_before, &vu);
  if (x.with_ts && !misaligned(&vts)) {
    const float s = chance(80) ? 0.05f : chance(50) ? 1.5f : 0.0f;
    memcpy(g_before + vts.pos, &s, 4);
  }
  if (x.with_w && !misaligned(&vw))
    for (int64_t i = 0; i < vw.shape[0]; ++i) {
      const float w = chance(90) ? (float)(rint_(1000) + 1) / 1000.0f : chance(50) ? 0.0f : 3.0f;
      memcpy(g_before + vw.pos + 4 * i, &w, 4);
    }
  if (x.with_counts && !misaligned(&vc))
    for (int64_t e = 0; e < E; ++e) {
      int32_t c = (int32_t)rint_(M + 1);
      /* past M or negative: refused where there are rows to mask */
      if (M > 0 && chance(4)) c = chance(50) ? (int32_t)M + 1 : -1, must_refuse = 1;
      memcpy(g_before + vc.pos + 4 * e, &c, 4);
    }
  snprintf(g_case, sizeof g_case,
           "quant fmt %d gran %d G %d enc %d layout %d flags %u H %" PRId64 " nd %d in %s act %d layout %d%s%s",
           fmt, gran, G, x.q.scale_encoding, x.q.scale_layout, x.q.flags, H, nl + 1, k_dname[din], x.d.activation,
           x.d.layout, x.with_counts ? " masked" : "", x.with_w ? " weighted" : "");
  operands o = {"quant", {&vx, x.sep ? &vu : NULL, x.with_ts ? &vts : NULL, x.with_w ? &vw : NULL,
                          x.with_counts ? &vc : NULL, &vq, x.with_scales ? &vs : NULL},
                2, 5, {{-1, -1}, {-1, -1}}};
  run_case(&o, call_quant, &x, must_refuse, 0);
}

static void bwd_lin_args(const swiglu_tensor *const *t, const op_extra *x, swiglu_glu_linear_backward_args *a) {
  /* t = {dh, x, w, w_up, bias, bias_up, preact, dx, dw, dw_up, dbias, dbias_up, workspace} */
  const int s = x->sep;
  const swiglu_glu_linear_backward_args v = {t[0], t[1], t[2], s ? t[3] : NULL,
                                             x->with_bias ? t[4] : NULL, x->with_bias && s ? t[5] : NULL,
                                             x->with_pre ? t[6] : NULL, x->with_dx ? t[7] : NULL,
                                             x->with_dw ? t[8] : NULL, x->with_dw && s ? t[9] : NULL,
                                             x->with_db ? t[10] : NULL, x->with_db && s ? t[11] : NULL,
                                             x->lin_flags, NULL, 0};
  *a = v;
}
static void down_bwd_args(const swiglu_tensor *const *t, const op_extra *x, swiglu_down_proj_backward_args *a) {
  /* t = {dy, x, up, w, dx, dup, dw, workspace} */
  const swiglu_down_proj_backward_args v = {t[0], t[1], x->sep ? t[2] : NULL, t[3],
                                            x->experts ? x->offsets : NULL, x->experts, t[4],
                                            x->sep ? t[5] : NULL, x->with_dw ? t[6] : NULL, x->lin_flags, NULL, 0};
  *a = v;
}

/* call_NAME: the op on t with the arena's workspace view (t[WS]), or, for the
 * compact twins, with a workspace of the size the op asks for */
#define SG_LIN_CALL(name, args_t, build, ws, api)                                                        \
  static swiglu_status q_##name(const void *a, size_t *n) {                                              \
    return api##_workspace_size(g_ctx, g_lin_desc, a, n);                                                 \
  }                                                                                                      \
  static swiglu_status call_##name(const swiglu_tensor *const *t, void *e) {                             \
    const op_extra *x = e;                                                                               \
    args_t a;                                                                                            \
    build(t, x, &a);                                                                                     \
    g_lin_desc = &x->d;                                                                                  \
    swiglu_status st = with_workspace(t[ws], x->ws_bytes, &a.workspace, &a.workspace_bytes, q_##name, &a); \
    if (st) return st;                                                                                   \
    st = api(g_ctx, &x->d, &a);                                                                          \
    if (g_twin) must(swiglu_context_synchronize(g_ctx), "synchronize"), swiglu_context_free(g_ctx, a.workspace); \
    return st;                                                                                           \
  }                                                                                                      \
  static swiglu_status need_##name(const swiglu_tensor *const *t, const op_extra *x, size_t *n) {       \
    args_t a;                                                                                            \
    build(t, x, &a);                                                                                     \
    return api##_workspace_size(g_ctx, &x->d, &a, n);                                                    \
  }
SG_LIN_CALL(glu_linear, swiglu_glu_linear_args, glu_args, 7, swiglu_glu_linear_forward)
SG_LIN_CALL(down, swiglu_down_proj_args, down_args, 4, swiglu_down_proj_forward)
SG_LIN_CALL(glu_linear_bwd, swiglu_glu_linear_backward_args, bwd_lin_args, 12, swiglu_glu_linear_backward)
SG_LIN_CALL(down_bwd, swiglu_down_proj_backward_args, down_bwd_args, 7, swiglu_down_proj_backward)

/* The workspace view, after the operands: the size the op asks for, now and
 * then one byte short (must be refused) or more; any alignment. */
static int place_workspace(view *ws, size_t need, int queried, int *must_refuse) {
  size_t n = need;
  if (!queried) n = (size_t)rint_(4096);
  else if (need && chance(5)) n = need - 1, *must_refuse = 1;
  else if (chance(10)) n = need + (size_t)rint_(100);
  v_make(ws, D_U8, 0, NULL, (int64_t)n, 1);
  ws->scratch = 1;
  if (ws->strides[0] != 1) ws->strides[0] = 1; /* a plain byte range */
  if (!place(ws, 10)) return 0;
  return 1;
}

/* The GEMM-fused cases' start: the desc, leading dims (rows T), D and H. */
static int lin_begin(op_extra *x, int64_t *lead, int64_t *T, int64_t *D, int64_t *H) {
  memset(x, 0, sizeof *x);
  draw_desc(x);
  const int nl = draw_lead(lead);
  *T = 1;
  for (int i = 0; i < nl; ++i) *T *= lead[i];
  *D = 1 + rint_(40), *H = 1 + rint_(40);
  return nl;
}

typedef swiglu_status (*need_fn)(const swiglu_tensor *const *t, const op_extra *x, size_t *n);

/* The GEMM-fused cases once drawn: v[0, nin) the inputs and v[nin, n) the
 * outputs (unused ones zeroed), v[n] the workspace; acts[0, nacts) the
 * activation-side operands, whose leading dims must collapse. Places the
 * operands (outputs now and then onto others), sizes and places the
 * workspace, fills the inputs, finishes g_case (its prefix is the caller's)
 * and runs the call. */
static void lin_case(view *v, int n, int nin, const int *acts, int nacts, op_extra *x, int must_refuse,
                     need_fn need, op_fn call) {
  g_cursor = 0;
  for (int i = 0; i < n; ++i)
    if (v[i].used && !place(&v[i], v[i].out ? 15 : 0)) return;
  const swiglu_tensor *t[MAXOPS];
  for (int i = 0; i <= n; ++i) t[i] = &v[i].t;
  size_t want = 0;
  const int queried = need(t, x, &want) == SWIGLU_SUCCESS;
  if (!place_workspace(&v[n], want, queried, &must_refuse)) return;
  x->ws_bytes = (size_t)v[n].shape[0];
  for (int k = 0; k < nacts; ++k)
    if (!collapses(&v[acts[k]])) must_refuse = 1;
  operands o = {"", {0}, n + 1 - nin, nin, {{-1, -1}, {-1, -1}}};
  for (int i = 0; i <= n; ++i) o.v[i] = v[i].used ? &v[i] : NULL;
  memset(g_before, 0x3c, g_arena);
  for (size_t b = 0; b < g_arena; b += 8) g_before[b] = (unsigned char)rnd();
  for (int i = 0; i < nin; ++i)
    if (o.v[i] && !bad_strides(o.v[i])) fill_input(g_before, o.v[i]);
  const size_t len = strlen(g_case);
  snprintf(g_case + len, sizeof g_case - len, " ws %zu/%zu", x->ws_bytes, want);
  run_case(&o, call, x, must_refuse, 0);
}

static void case_glu_linear(void) {
  op_extra x;
  int64_t lead[MAXD], T, D, H;
  const int nl = lin_begin(&x, lead, &T, &D, &H);
  x.with_bias = chance(50), x.with_pre = chance(40);
  const int s = x.sep;
  const int64_t rows2 = s ? H : 2 * H;
  view v[8]; /* x, w, w_up, bias, bias_up | h, preact | workspace */
  memset(v, 0, sizeof v);
  v_make(&v[0], (int)rint_(3), nl, lead, D, 0);
  v_make(&v[1], (int)rint_(3), 1, &rows2, D, 0);
  if (s) v_make(&v[2], (int)rint_(3), 1, &H, D, 0);
  if (x.with_bias) v_make(&v[3], (int)rint_(3), 0, NULL, rows2, 0);
  if (x.with_bias && s) v_make(&v[4], (int)rint_(3), 0, NULL, H, 0);
  v_make(&v[5], (int)rint_(3), nl, lead, H, 1);
  if (x.with_pre) v_make(&v[6], (int)rint_(3), nl, lead, 2 * H, 1);
  snprintf(g_case, sizeof g_case, "glu linear act %d layout %d D %" PRId64 " H %" PRId64 " nd %d%s%s",
           x.d.activation, x.d.layout, D, H, nl + 1, x.with_bias ? " bias" : "", x.with_pre ? " preact" : "");
  static const int acts[] = {0, 5, 6};
  lin_case(v, 7, 5, acts, 3, &x, 0, need_glu_linear, call_glu_linear);
}

/* MoE expert offsets over T rows (or none); returns whether they are bad */
static int draw_offsets(op_extra *x, int64_t T) {
  int bad = 0;
  x->experts = chance(40) ? 1 + (int)rint_(4) : 0;
  if (x->experts) {
    x->offsets[0] = 0;
    for (int e = 1; e < x->experts; ++e) x->offsets[e] = rint_(T + 1);
    x->offsets[x->experts] = T;
    for (int e = 1; e < x->experts; ++e) /* sorted */
      for (int f = e; f > 1 && x->offsets[f] < x->offsets[f - 1]; --f) {
        const int64_t k = x->offsets[f];
        x->offsets[f] = x->offsets[f - 1], x->offsets[f - 1] = k;
      }
    if (chance(5)) {
      const int k = (int)rint_(3);
      if (k == 0) x->offsets[0] = 1;
      else if (k == 1) x->offsets[x->experts] = T + 1;
      else x->offsets[1] = T + 1; /* a decrease after it, or (one expert) past the row count */
      bad = 1;
    }
  }
  return bad;
}

static void case_down(void) {
  op_extra x;
  int64_t lead[MAXD], T, D, H;
  const int nl = lin_begin(&x, lead, &T, &D, &H);
  const int must_refuse = draw_offsets(&x, T);
  const int s = x.sep, din = (int)rint_(3);
  const int64_t wl[2] = {x.experts, D};
  view v[5]; /* x, up, w | y | workspace */
  memset(v, 0, sizeof v);
  v_make(&v[0], din, nl, lead, s ? H : 2 * H, 0);
  if (s) v_make(&v[1], din, nl, lead, H, 0);
  if (x.experts) v_make(&v[2], (int)rint_(3), 2, wl, H, 0);
  else v_make(&v[2], (int)rint_(3), 1, &D, H, 0);
  v_make(&v[3], (int)rint_(3), nl, lead, D, 1);
  snprintf(g_case, sizeof g_case, "down proj act %d layout %d D %" PRId64 " H %" PRId64 " nd %d experts %d",
           x.d.activation, x.d.layout, D, H, nl + 1, x.experts);
  static const int acts[] = {0, 1, 3};
  lin_case(v, 4, 3, acts, 3, &x, must_refuse, need_down, call_down);
}

static void case_glu_linear_bwd(void) {
  op_extra x;
  int64_t lead[MAXD], T, D, H;
  const int nl = lin_begin(&x, lead, &T, &D, &H);
  x.with_bias = chance(50), x.with_pre = chance(50);
  do {
    x.with_dx = chance(60), x.with_dw = chance(60), x.with_db = chance(40);
  } while (!x.with_dx && !x.with_dw && !x.with_db);
  x.lin_flags = chance(30) ? SWIGLU_LINEAR_ACCUMULATE : 0;
  const int s = x.sep;
  const int64_t rows2 = s ? H : 2 * H;
  view v[13];
  memset(v, 0, sizeof v);
  v_make(&v[0], (int)rint_(3), nl, lead, H, 0);                       /* dh */
  v_make(&v[1], (int)rint_(3), nl, lead, D, 0);                       /* x */
  v_make(&v[2], (int)rint_(3), 1, &rows2, D, 0);                      /* w */
  if (s) v_make(&v[3], (int)rint_(3), 1, &H, D, 0);                   /* w_up */
  if (x.with_bias) v_make(&v[4], (int)rint_(3), 0, NULL, rows2, 0);   /* bias */
  if (x.with_bias && s) v_make(&v[5], (int)rint_(3), 0, NULL, H, 0);  /* bias_up */
  if (x.with_pre) v_make(&v[6], (int)rint_(3), nl, lead, 2 * H, 0);   /* preact */
  if (x.with_dx) v_make(&v[7], (int)rint_(3), nl, lead, D, 1);        /* dx */
  if (x.with_dw) v_make(&v[8], (int)rint_(3), 1, &rows2, D, 1);       /* dw */
  if (x.with_dw && s) v_make(&v[9], (int)rint_(3), 1, &H, D, 1);      /* dw_up */
  if (x.with_db) v_make(&v[10], (int)rint_(3), 0, NULL, rows2, 1);    /* dbias */
  if (x.with_db && s) v_make(&v[11], (int)rint_(3), 0, NULL, H, 1);   /* dbias_up */
  snprintf(g_case, sizeof g_case, "glu linear backward act %d layout %d D %" PRId64 " H %" PRId64 " nd %d%s%s%s%s%s%s",
           x.d.activation, x.d.layout, D, H, nl + 1, x.with_bias ? " bias" : "", x.with_pre ? " preact" : "",
           x.with_dx ? " dx" : "", x.with_dw ? " dw" : "", x.with_db ? " dbias" : "",
           x.lin_flags ? " accumulate" : "");
  static const int acts[] = {0, 1, 6, 7};
  lin_case(v, 12, 7, acts, 4, &x, 0, need_glu_linear_bwd, call_glu_linear_bwd);
}

static void case_down_bwd(void) {
  op_extra x;
  int64_t lead[MAXD], T, D, H;
  const int nl = lin_begin(&x, lead, &T, &D, &H);
  const int must_refuse = draw_offsets(&x, T);
  x.with_dw = chance(60);
  x.lin_flags = chance(30) ? SWIGLU_LINEAR_ACCUMULATE : 0;
  const int s = x.sep, din = (int)rint_(3), dgr = (int)rint_(3), dwt = (int)rint_(3);
  const int64_t wl[2] = {x.experts, D};
  view v[8]; /* dy, x, up, w | dx, dup, dw | workspace */
  memset(v, 0, sizeof v);
  v_make(&v[0], (int)rint_(3), nl, lead, D, 0);
  v_make(&v[1], din, nl, lead, s ? H : 2 * H, 0);
  if (s) v_make(&v[2], din, nl, lead, H, 0);
  if (x.experts) v_make(&v[3], dwt, 2, wl, H, 0);
  else v_make(&v[3], dwt, 1, &D, H, 0);
  v_make(&v[4], dgr, nl, lead, s ? H : 2 * H, 1);
  if (s) v_make(&v[5], dgr, nl, lead, H, 1);
  if (x.with_dw) {
    if (x.experts) v_make(&v[6], (int)rint_(3), 2, wl, H, 1);
    else v_make(&v[6], (int)rint_(3), 1, &D, H, 1);
  }
  snprintf(g_case, sizeof g_case, "down proj backward act %d layout %d D %" PRId64 " H %" PRId64 " nd %d experts %d%s%s",
           x.d.activation, x.d.layout, D, H, nl + 1, x.experts, x.with_dw ? " dw" : "",
           x.lin_flags ? " accumulate" : "");
  static const int acts[] = {0, 1, 2, 4, 5};
  lin_case(v, 7, 4, acts, 5, &x, must_refuse, need_down_bwd, call_down_bwd);
}

int main(int argc, char **argv) {
  const char *backend = "cpu";
  long cases = 5600;
  g_state = 20261208;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
    else if (!strcmp(argv[i], "--cases") && i + 1 < argc) cases = strtol(argv[++i], NULL, 0);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc) g_state = strtoull(argv[++i], NULL, 0);
  }
  const uint64_t seed = g_state;
  const int rc = t_open_backend(backend, &g_ctx);
  if (rc) return rc;
  printf("backend %s on %s, seed %llu\n", swiglu_context_backend(g_ctx), swiglu_context_device_name(g_ctx),
         (unsigned long long)seed);
  /* the GEMM-fused cases' arena: room for the largest workspace they ask
   * for (T = 64, D = H = 40 asks more than any drawn case) beside their
   * operands; where that is large (a GPU), those cases run one slot in ten.
   * A backend without these ops (HIP for now) answers UNSUPPORTED: not drawn. */
  size_t ws_max = 0;
  int lin_ops = 1;
  {
    static float dummy[4];
    int64_t xs[2] = {64, 40}, wsh[2] = {80, 40}, hs[2] = {64, 40};
    const swiglu_device dv = {swiglu_context_device_type(g_ctx), swiglu_context_device(g_ctx)};
    swiglu_tensor tx = {dummy, dv, 2, k_dtype[D_F32], xs, NULL, 0}, tw = {dummy + 1, dv, 2, k_dtype[D_F32], wsh, NULL, 0},
                  th = {dummy + 2, dv, 2, k_dtype[D_F32], hs, NULL, 0};
    swiglu_glu_desc d;
    swiglu_glu_desc_init(&d, SWIGLU_ACT_SILU, SWIGLU_LAYOUT_GATE_UP);
    swiglu_glu_linear_args a = {&tx, &tw, NULL, NULL, NULL, &th, NULL, NULL, 0};
    const swiglu_status wst = swiglu_glu_linear_forward_workspace_size(g_ctx, &d, &a, &ws_max);
    if (wst == SWIGLU_ERROR_UNSUPPORTED) {
      lin_ops = 0, ws_max = 0;
      printf("GEMM-fused ops unsupported on '%s': not drawn (%s)\n", swiglu_context_backend(g_ctx),
             swiglu_context_last_error(g_ctx));
    } else {
      must(wst, "workspace query");
    }
  }
  g_arena_max = (2 * ws_max + ((size_t)1 << 18) + 4095) / 4096 * 4096;
  if (g_arena_max < ARENA_ELT) g_arena_max = ARENA_ELT;
  const int lin_every = g_arena_max > ((size_t)4 << 20) ? 10 : 1;
  g_mark = malloc(g_arena_max), g_before = malloc(g_arena_max), g_after = malloc(g_arena_max), g_outmask = malloc(g_arena_max);
  if (!g_mark || !g_before || !g_after || !g_outmask) {
    fprintf(stderr, "out of host memory\n");
    return 1;
  }
  void *dev;
  must(swiglu_context_malloc(g_ctx, g_arena_max, &dev), "malloc");
  g_dev = dev;
  /* the GEMM-fused ops' values are compared on the CPU only: a GPU's
   * cuBLASLt may pick another algorithm for another leading dimension */
  const int lin_values = !strcmp(swiglu_context_backend(g_ctx), "cpu");
  enum { NOPS = 7 };
  long per_op[NOPS][3] = {{0}};
  for (long i = 0; i < cases; ++i) {
    const int op = (int)(i % NOPS);
    if (op >= 3 && (!lin_ops || (i / NOPS) % lin_every)) continue;
    const long a = g_accepted, r = g_refused;
    ++per_op[op][2];
    g_arena = op >= 3 ? g_arena_max : ARENA_ELT;
    /* one thread but every eighth round: these problems are too small for
     * the elementwise ops to split, and the GEMMs' parallel regions, with
     * CTest running two such processes on two cores, made the test 13x
     * slower (threads waiting at barriers for a descheduled one) */
    must(swiglu_context_set_num_threads(g_ctx, (i / NOPS) % 8 ? 1 : 0), "set_num_threads");
    g_compare = op < 3 || lin_values;
    if (op == 0) case_forward();
    else if (op == 1) case_backward();
    else if (op == 2) case_quant();
    else if (op == 3) case_glu_linear();
    else if (op == 4) case_down();
    else if (op == 5) case_glu_linear_bwd();
    else case_down_bwd();
    per_op[op][0] += g_accepted - a;
    per_op[op][1] += g_refused - r;
  }
  static const char *const names[NOPS] = {"forward", "backward", "quant", "glu linear", "down proj",
                                          "glu linear bwd", "down proj bwd"};
  if (lin_ops && !lin_values)
    printf("GEMM-fused ops: refusals and untouched memory checked; values not compared on '%s'\n",
           swiglu_context_backend(g_ctx));
  for (int op = 0; op < NOPS; ++op) {
    printf("%-14s %4ld accepted, %4ld refused\n", names[op], per_op[op][0], per_op[op][1]);
    /* a run that accepts (or refuses) next to nothing checks next to nothing */
    if (per_op[op][0] < per_op[op][2] / 4 || per_op[op][1] < per_op[op][2] / 60) {
      fprintf(stderr, "FAIL: %s: too few accepted or refused calls to mean anything\n", names[op]);
      ++g_failed;
    }
  }
  swiglu_context_free(g_ctx, dev);
  free(g_mark), free(g_before), free(g_after), free(g_outmask);
  swiglu_context_destroy(g_ctx);
  printf("%ld cases, %ld checks, %ld failed\n", g_cases, g_checks, g_failed);
  return g_failed ? 1 : 0;
}
