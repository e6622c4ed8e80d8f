/*
 * The GEMM-fused GLU ops on the CPU: a blocked fp32 GEMM (packed panels, a
 * register-blocked micro-kernel, OpenMP over column panels) whose operand
 * packers and epilogues carry the GLU. Included at the end of
 * cpu_kernels_impl.h, so it is compiled once per ISA with that file's vector
 * type and activation code.
 *
 * C[M, N] = A[M, K] * B[K, N]. A is packed in panels of SG_MR rows
 * (A_p[k * SG_MR + i]), B in panels of SG_NR = 2 vectors of columns
 * (B_p[k * SG_NR + j]); the micro-kernel keeps an SG_MR x SG_NR tile of
 * accumulators in registers over the whole K, so an epilogue sees finished
 * sums:
 *   - the GLU linear forward packs the weight rows of gate features
 *     f..f+SG_W-1 beside those of the same up features, so a tile's first
 *     vector holds gate pre-activations and its second the matching up ones;
 *     the activation runs on the accumulators and only h is stored;
 *   - the down projection's packer computes act(G) * U while it converts
 *     the pre-activation into the A panels (the prologue), and the backward's
 *     epilogue turns the dh tile into dG, dU with the GLU backward.
 * K is split in blocks of SG_KC so a slice of the B panel stays in L1; a
 * tile's partial sums wait between blocks in a per-thread buffer of one
 * column panel (mc x SG_NR floats), never in a [T, N] matrix.
 *
 * The GLU linear forward of few rows (decode) skips the packing and forms
 * dot products straight from the weight rows (glu_fwd_dot, further down).
 *
 * Unlike the elementwise kernels, results are not bit-identical across ISAs:
 * the GEMM's sums are the same sequential order, but the generic build's
 * scalar fmaf and the SIMD fmas are the same operation only up to the
 * compiler, and the dot products sum SG_W lanes apart. docs/numerics.md
 * bounds the error instead.
 */
#include <omp.h>

#if SG_W >= 16
#define SG_MR 8
#elif SG_W == 8
#define SG_MR 6
#else
#define SG_MR 4
#endif
#define SG_NR (2 * SG_W)
#define SG_SEG 256                   /* elements converted per packing step */
#define SG_APACK_BYTES (8u << 20)    /* A block budget: MC rows x K floats */

/* Matrix element (r, c) at p + (r * rs + c * cs) * element size. */
typedef struct {
  const char *p;
  int64_t rs, cs;
  int32_t dt;
} sg_mat;

enum { SRC_PLAIN = 0, SRC_GLU = 1, SRC_PAIRS = 2, SRC_SPLIT = 3 };

/* A GEMM operand: a matrix, act(a) * b of two (the prologue), the gate/up
 * column pairs of the fused forward (column n of panel n / SG_NR is gate
 * feature (n / SG_NR) * SG_W + n % SG_NR when n % SG_NR < SG_W, else the up
 * feature; features >= nfeat read as zero), or rows [0, split) from a and
 * [split, ...) from b. */
typedef struct {
  int kind;
  sg_mat a, b;
  int64_t split, nfeat;
  int act;
  float alpha, limit;
} sg_src;

enum { EPI_STORE = 0, EPI_GLU_FWD = 1, EPI_GLU_BWD = 2 };

typedef struct {
  int64_t M, N, K;
  sg_src A, B;
  int epi;
  /* EPI_STORE: C, added to when accumulate. */
  sg_mat c;
  int accumulate;
  /* A is an intermediate of the op (the backward's dG, dU) that may be
   * rounded to bf16 to meet a bf16 B (docs/numerics.md) */
  int a_to_bf16;
  /* EPI_GLU_FWD: h (p NULL: not stored), pre-activations pg / pu (p NULL:
   * not stored), biases bg / bu (p NULL: none), H features. EPI_GLU_BWD:
   * pg / pu in, dpg / dpu out. */
  sg_mat h, pg, pu, bg, bu, dpg, dpu;
  int64_t H;
  int act;
  float alpha, limit;
} sg_gemm;

/* ------------------------------------------------------------ conversions */

static void conv_run(const char *p, int32_t dt, int64_t n, float *out) {
  const size_t es = sg_dtype_size(dt);
  int64_t i = 0;
  for (; i + SG_W <= n; i += SG_W) v_store_f32(out + i, v_load(p + i * es, dt));
  if (i < n) {
    SG_ALIGNED char t[SG_W * 4] = {0};
    SG_ALIGNED float f[SG_W];
    memcpy(t, p + i * es, (size_t)(n - i) * es);
    v_store_f32(f, v_load(t, dt));
    memcpy(out + i, f, (size_t)(n - i) * 4);
  }
}

/* n elements of m from (r, c) along columns or rows, as fp32. */
static void mat_seg(const sg_mat *m, int64_t r, int64_t c, int along_c, int64_t n, float *out) {
  const size_t es = sg_dtype_size(m->dt);
  const int64_t step = along_c ? m->cs : m->rs;
  const char *p = m->p + (r * m->rs + c * m->cs) * (int64_t)es;
  if (step == 1) {
    conv_run(p, m->dt, n, out);
    return;
  }
  SG_ALIGNED char raw[SG_SEG * 4];
  for (int64_t i = 0; i < n; ++i) memcpy(raw + i * es, p + i * step * (int64_t)es, es);
  conv_run(raw, m->dt, n, out);
}

static void store_run(char *p, int32_t dt, int64_t step, const float *v, int64_t n, int add) {
  const size_t es = sg_dtype_size(dt);
  SG_ALIGNED float sum[SG_SEG];
  if (add) {
    sg_mat m = {p, 0, step, dt};
    mat_seg(&m, 0, 0, 1, n, sum);
    for (int64_t i = 0; i < n; ++i) sum[i] += v[i];
    v = sum;
  }
  if (dt == SG_F32 && step == 1) {
    memcpy(p, v, (size_t)n * 4);
    return;
  }
  SG_ALIGNED char raw[SG_SEG * 4 + SG_W * 4];
  int64_t i = 0;
  for (; i + SG_W <= n; i += SG_W) v_store(raw + i * es, dt, v_load_f32(v + i));
  if (i < n) {
    SG_ALIGNED float t[SG_W] = {0};
    memcpy(t, v + i, (size_t)(n - i) * 4);
    v_store(raw + i * es, dt, v_load_f32(t));
  }
  if (step == 1) {
    memcpy(p, raw, (size_t)n * es);
  } else {
    for (int64_t j = 0; j < n; ++j) memcpy(p + j * step * (int64_t)es, raw + j * es, es);
  }
}

/* act(g) * u over n values (the arrays hold a multiple of SG_W). */
static void glu_run(int act, float alpha, float limit, const float *g, const float *u, int64_t n,
                    float *out) {
  for (int64_t i = 0; i < n; i += SG_W) {
    sg_act a = v_activation(act, alpha, limit, v_load_f32(g + i), v_load_f32(u + i), 0);
    v_store_f32(out + i, a.a * a.m);
  }
}

/* Which matrix and column hold logical column j of a PLAIN or PAIRS
 * operand; -1 for a PAIRS padding column past the last feature (zero). */
static int64_t src_col(const sg_src *s, int64_t j, const sg_mat **m) {
  *m = &s->a;
  if (s->kind != SRC_PAIRS) return j;
  const int64_t slot = j % SG_NR;
  const int up = slot >= SG_W;
  const int64_t f = j / SG_NR * SG_W + (up ? slot - SG_W : slot);
  *m = up ? &s->b : &s->a;
  return f < s->nfeat ? f : -1;
}

/* The GLU backward over n values: dg = dh * m * act', du = dh * act * m'
 * (the arrays hold a multiple of SG_W; the product order is bwd_vec's). */
static void glu_bwd_run(int act, float alpha, float limit, const float *g, const float *u,
                        const float *dh, int64_t n, float *dg, float *du) {
  for (int64_t i = 0; i < n; i += SG_W) {
    sg_act a = v_activation(act, alpha, limit, v_load_f32(g + i), v_load_f32(u + i), 1);
    const vf d = v_load_f32(dh + i);
    v_store_f32(dg + i, (d * a.m) * a.da);
    v_store_f32(du + i, (d * a.a) * a.dm);
  }
}

/* n <= SG_SEG elements of operand s from (r, c), along columns or rows;
 * out has room for SG_SEG floats. */
static void src_seg(const sg_src *s, int64_t r, int64_t c, int along_c, int64_t n, float *out) {
  switch (s->kind) {
    case SRC_GLU: {
      SG_ALIGNED float g[SG_SEG], u[SG_SEG];
      const int64_t nv = (n + SG_W - 1) / SG_W * SG_W;
      memset(g + n, 0, (size_t)(nv - n) * 4);
      memset(u + n, 0, (size_t)(nv - n) * 4);
      mat_seg(&s->a, r, c, along_c, n, g);
      mat_seg(&s->b, r, c, along_c, n, u);
      SG_ALIGNED float h[SG_SEG];
      glu_run(s->act, s->alpha, s->limit, g, u, nv, h);
      memcpy(out, h, (size_t)n * 4);
      return;
    }
    case SRC_PAIRS: { /* only packed along rows (K), one column at a time */
      const sg_mat *m;
      const int64_t f = src_col(s, c, &m);
      if (f < 0)
        memset(out, 0, (size_t)n * 4);
      else
        mat_seg(m, r, f, along_c, n, out);
      return;
    }
    case SRC_SPLIT: { /* split along rows */
      if (along_c) {
        if (r < s->split)
          mat_seg(&s->a, r, c, 1, n, out);
        else
          mat_seg(&s->b, r - s->split, c, 1, n, out);
        return;
      }
      int64_t n1 = r < s->split ? (s->split - r < n ? s->split - r : n) : 0;
      if (n1) mat_seg(&s->a, r, c, 0, n1, out);
      if (n > n1) mat_seg(&s->b, r + n1 - s->split, c, 0, n - n1, out + n1);
      return;
    }
    default: mat_seg(&s->a, r, c, along_c, n, out); return;
  }
}

/* Whether to read operand s along its columns: the direction of unit (or
 * smaller) stride. */
static int src_along_c(const sg_src *s) {
  if (s->kind == SRC_PAIRS) return 0;
  const int64_t rs = s->a.rs < 0 ? -s->a.rs : s->a.rs, cs = s->a.cs < 0 ? -s->a.cs : s->a.cs;
  return !(rs == 1 && cs != 1) && !(rs < cs && rs != 0);
}

/* ----------------------------------------------------------------- packing */

/* A rows [m0, m0 + mr), columns [k0, k0 + K), into an SG_MR-row panel
 * (zero rows past mr). */
static void pack_a(const sg_src *s, int64_t m0, int mr, int64_t k0, int64_t K, float *dst) {
  SG_ALIGNED float buf[SG_SEG];
  if (src_along_c(s)) {
    for (int i = 0; i < SG_MR; ++i) {
      if (i >= mr) {
        for (int64_t k = 0; k < K; ++k) dst[k * SG_MR + i] = 0.0f;
        continue;
      }
      for (int64_t kb = 0; kb < K; kb += SG_SEG) {
        const int64_t n = K - kb < SG_SEG ? K - kb : SG_SEG;
        src_seg(s, m0 + i, k0 + kb, 1, n, buf);
        float *d = dst + kb * SG_MR + i;
        for (int64_t k = 0; k < n; ++k) d[k * SG_MR] = buf[k];
      }
    }
  } else if (s->kind == SRC_PLAIN && s->a.dt == SG_F32 && s->a.rs == 1 && mr == SG_MR) {
    /* a transposed fp32 operand (the backward's weight gradients: dG^T,
     * dy^T): each k is SG_MR adjacent floats, copied as they lie; through
     * src_seg a call chain per k cost more than the copy */
    const float *p = (const float *)s->a.p + m0 + k0 * s->a.cs;
    for (int64_t k = 0; k < K; ++k) memcpy(dst + k * SG_MR, p + k * s->a.cs, SG_MR * 4);
  } else {
    for (int64_t k = 0; k < K; ++k) {
      src_seg(s, m0, k0 + k, 0, mr, buf);
      for (int i = 0; i < SG_MR; ++i) dst[k * SG_MR + i] = i < mr ? buf[i] : 0.0f;
    }
  }
}

static inline __attribute__((always_inline)) void v_transpose(vf r[SG_W]) {
#if SG_W >= 16
  SG_TR_STAGE(8)
#endif
#if SG_W >= 8
  SG_TR_STAGE(4)
#endif
  SG_TR_STAGE(2)
  SG_TR_STAGE(1)
}

/* The source row of column j of a B operand read along K with unit stride
 * (weights in [out, in] orientation), or NULL for a zero column. */
static const char *b_col_ptr(const sg_src *s, int64_t j) {
  const sg_mat *m;
  const int64_t c = src_col(s, j, &m);
  return c < 0 ? NULL : m->p + c * m->cs * (int64_t)sg_dtype_size(m->dt);
}

/* B columns [n0, n0 + nr) into an SG_NR-column panel of K rows. Read
 * along K with unit stride (the weights of the forward ops), SG_W x SG_W
 * blocks are converted with vector loads and transposed in registers;
 * otherwise row by row. */
static void pack_b(const sg_src *s, int64_t n0, int nr, int64_t K, float *dst) {
  if (!src_along_c(s) && (s->kind == SRC_PLAIN || s->kind == SRC_PAIRS) && s->a.rs == 1 &&
      (s->kind == SRC_PLAIN || s->b.rs == 1)) {
    const int32_t dt = s->a.dt;
    const size_t es = sg_dtype_size(dt);
    const int64_t kfull = K / SG_W * SG_W;
    for (int jb = 0; jb < SG_NR; jb += SG_W) {
      const char *col[SG_W];
      for (int j = 0; j < SG_W; ++j) col[j] = jb + j < nr ? b_col_ptr(s, n0 + jb + j) : NULL;
      for (int64_t k = 0; k < kfull; k += SG_W) {
        vf r[SG_W];
#pragma GCC unroll 16
        for (int j = 0; j < SG_W; ++j) r[j] = col[j] ? v_load(col[j] + k * (int64_t)es, dt) : v_set(0.0f);
        v_transpose(r);
#pragma GCC unroll 16
        for (int i = 0; i < SG_W; ++i) v_store_f32(dst + (k + i) * SG_NR + jb, r[i]);
      }
      if (kfull < K) {
        SG_ALIGNED float t[SG_W];
        for (int j = 0; j < SG_W; ++j) {
          if (col[j]) conv_run(col[j] + kfull * (int64_t)es, dt, K - kfull, t);
          for (int64_t k = kfull; k < K; ++k) dst[k * SG_NR + jb + j] = col[j] ? t[k - kfull] : 0.0f;
        }
      }
    }
    return;
  }
  if (!src_along_c(s)) {
    SG_ALIGNED float tile[SG_NR][64];
    for (int64_t kb = 0; kb < K; kb += 64) {
      const int64_t n = K - kb < 64 ? K - kb : 64;
      for (int j = 0; j < SG_NR; ++j) {
        if (j < nr)
          src_seg(s, kb, n0 + j, 0, n, tile[j]);
        else
          memset(tile[j], 0, sizeof tile[j]);
      }
      float *d = dst + kb * SG_NR;
      for (int64_t k = 0; k < n; ++k)
        for (int j = 0; j < SG_NR; ++j) d[k * SG_NR + j] = tile[j][k];
    }
  } else if ((s->kind == SRC_PLAIN || s->kind == SRC_SPLIT) && s->a.cs == 1 &&
             (s->kind == SRC_PLAIN || s->b.cs == 1) && nr == SG_NR) {
    /* rows of unit column stride (the backward's [Wg; Wu] and X, Wd in
     * its [D, H] orientation): each k is SG_NR adjacent elements, two
     * vectors converted in place of a src_seg call chain per k, which took
     * the backward GEMMs' packing to a third of their time */
    for (int64_t k = 0; k < K; ++k) {
      const sg_mat *m = s->kind == SRC_SPLIT && k >= s->split ? &s->b : &s->a;
      const int64_t r = m == &s->b ? k - s->split : k;
      const char *p = m->p + (r * m->rs + n0) * (int64_t)sg_dtype_size(m->dt);
      v_store_f32(dst + k * SG_NR, v_load(p, m->dt));
      v_store_f32(dst + k * SG_NR + SG_W, v_load(p + SG_W * (int64_t)sg_dtype_size(m->dt), m->dt));
    }
  } else {
    SG_ALIGNED float buf[SG_SEG];
    for (int64_t k = 0; k < K; ++k) {
      src_seg(s, k, n0, 1, nr, buf);
      for (int j = 0; j < SG_NR; ++j) dst[k * SG_NR + j] = j < nr ? buf[j] : 0.0f;
    }
  }
}

/* Prefetch into L2 of part of the next B panel, for operands read along K:
 * lines [l0, l0 + n) of its nr columns, each column ceil(K / per_line)
 * lines. The weights stream from memory once per call, and without this
 * their reads would wait between panels instead of overlapping the FMAs. */
static void prefetch_b(const sg_src *s, int64_t n0, int nr, int64_t K, int64_t l0, int64_t n) {
  if (s->kind != SRC_PAIRS && s->kind != SRC_PLAIN) return;
  const size_t es = sg_dtype_size(s->a.dt);
  const int64_t per_line = 64 / (int64_t)es, lines = (K + per_line - 1) / per_line;
  for (int64_t l = l0; l < l0 + n && l < lines * nr; ++l) {
    const int64_t k = (l % lines) * per_line;
    const sg_mat *m;
    const int64_t c = src_col(s, n0 + l / lines, &m);
    if (c < 0) continue;
    __builtin_prefetch(m->p + (k * m->rs + c * m->cs) * (int64_t)es, 0, 2);
  }
}

/* ------------------------------------------------------------ micro-kernel */

/* acc = (partial sums in c, or zero when first) + A_p B_p over K. */
/* A broadcast from memory: one vbroadcastss (v_set's {0} + x costs an add,
 * since x + 0 is not x for -0, and a lane loop becomes masked broadcasts). */
#if SG_W == 16 && defined(__AVX512F__)
#define v_bcast(p) ((vf)_mm512_set1_ps(*(p)))
#elif SG_W == 8 && defined(__AVX2__)
#define v_bcast(p) ((vf)_mm256_set1_ps(*(p)))
#else
static inline vf v_bcast(const float *p) {
  vf v = {0}; /* every lane is set below; GCC -O1 could not see it */
  for (int l = 0; l < SG_W; ++l) v[l] = *p;
  return v;
}
#endif

/* A tile's accumulators: zero at the first K block, else the partial sums
 * tile_save left in c (an SG_MR x SG_NR fp32 tile). */
static inline __attribute__((always_inline)) void tile_load(vf acc[SG_MR][2], const float *c, int first) {
#pragma GCC unroll 16
  for (int i = 0; i < SG_MR; ++i) {
    acc[i][0] = first ? v_set(0.0f) : v_load_f32(c + i * SG_NR);
    acc[i][1] = first ? v_set(0.0f) : v_load_f32(c + i * SG_NR + SG_W);
  }
}

static inline __attribute__((always_inline)) void ukernel(int64_t K, const float *restrict A,
                                                          const float *restrict B,
                                                          vf acc[SG_MR][2], float *c, int first) {
  tile_load(acc, c, first);
  for (int64_t k = 0; k < K; ++k) {
    const vf b0 = v_load_f32(B), b1 = v_load_f32(B + SG_W);
#pragma GCC unroll 16
    for (int i = 0; i < SG_MR; ++i) {
      const vf a = v_bcast(A + i);
      acc[i][0] = sg_v_fma(a, b0, acc[i][0]);
      acc[i][1] = sg_v_fma(a, b1, acc[i][1]);
    }
    A += SG_MR;
    B += SG_NR;
  }
}

static inline void tile_save(float *c, vf acc[SG_MR][2]) {
#pragma GCC unroll 16
  for (int i = 0; i < SG_MR; ++i) {
    v_store_f32(c + i * SG_NR, acc[i][0]);
    v_store_f32(c + i * SG_NR + SG_W, acc[i][1]);
  }
}

/* ---------------------------------------------------------------- epilogues */

static inline sg_mat mat_at(const sg_mat *m, int64_t r, int64_t c) {
  sg_mat o = *m;
  o.p = m->p + (r * m->rs + c * m->cs) * (int64_t)sg_dtype_size(m->dt);
  return o;
}

/* The fused forward's tile: gate pre-activations in ct[i][0, SG_W), up in
 * ct[i][SG_W, SG_NR); bias holds the panel's biases in the same order. */
static void epi_glu_fwd(const sg_gemm *g, int64_t m0, int mr, int64_t n0, vf acc[SG_MR][2],
                        const float *bias) {
  const int64_t f0 = n0 / SG_NR * SG_W;
  const int64_t nf = g->H - f0 < SG_W ? g->H - f0 : SG_W;
  const vf bgv = v_load_f32(bias), buv = v_load_f32(bias + SG_W);
  if (mr == SG_MR && nf == SG_W && !g->pg.p) {
    /* The common tile: activation on the accumulators, h straight out. */
    const size_t hes = sg_dtype_size(g->h.dt);
#pragma GCC unroll 16
    for (int i = 0; i < SG_MR; ++i) {
      sg_act a = v_activation(g->act, g->alpha, g->limit, acc[i][0] + bgv, acc[i][1] + buv, 0);
      v_store((char *)g->h.p + ((m0 + i) * g->h.rs + f0) * (int64_t)hes, g->h.dt, a.a * a.m);
    }
    return;
  }
  for (int i = 0; i < mr; ++i) {
    SG_ALIGNED float gv[SG_W], uv[SG_W], hv[SG_W];
    v_store_f32(gv, acc[i][0] + bgv);
    v_store_f32(uv, acc[i][1] + buv);
    if (g->pg.p) {
      sg_mat pg = mat_at(&g->pg, m0 + i, f0), pu = mat_at(&g->pu, m0 + i, f0);
      store_run((char *)pg.p, pg.dt, pg.cs, gv, nf, 0);
      store_run((char *)pu.p, pu.dt, pu.cs, uv, nf, 0);
    }
    if (g->h.p) {
      glu_run(g->act, g->alpha, g->limit, gv, uv, SG_W, hv);
      sg_mat h = mat_at(&g->h, m0 + i, f0);
      store_run((char *)h.p, h.dt, 1, hv, nf, 0);
    }
  }
}

/* The down projection backward's tile: acc = dh for features [n0, n0 + nr). */
static void epi_glu_bwd(const sg_gemm *g, int64_t m0, int mr, int64_t n0, int nr,
                        vf acc[SG_MR][2]) {
  for (int i = 0; i < mr; ++i) {
    SG_ALIGNED float dh[SG_NR], gv[SG_NR] = {0}, uv[SG_NR] = {0}, dg[SG_NR], du[SG_NR];
    v_store_f32(dh, acc[i][0]);
    v_store_f32(dh + SG_W, acc[i][1]);
    mat_seg(&g->pg, m0 + i, n0, 1, nr, gv);
    mat_seg(&g->pu, m0 + i, n0, 1, nr, uv);
    glu_bwd_run(g->act, g->alpha, g->limit, gv, uv, dh, SG_NR, dg, du);
    sg_mat pg = mat_at(&g->dpg, m0 + i, n0), pu = mat_at(&g->dpu, m0 + i, n0);
    store_run((char *)pg.p, pg.dt, pg.cs, dg, nr, 0);
    store_run((char *)pu.p, pu.dt, pu.cs, du, nr, 0);
  }
}

static void epi_store(const sg_gemm *g, int64_t m0, int mr, int64_t n0, int nr, vf acc[SG_MR][2]) {
  for (int i = 0; i < mr; ++i) {
    SG_ALIGNED float v[SG_NR];
    v_store_f32(v, acc[i][0]);
    v_store_f32(v + SG_W, acc[i][1]);
    sg_mat c = mat_at(&g->c, m0 + i, n0);
    store_run((char *)c.p, c.dt, 1, v, nr, g->accumulate);
  }
}

/* ------------------------------------------------------------------ driver */

/* ----------------------------------------- bf16 dot products (AVX512_BF16) */

/* When A and B are both bf16 and read along K with unit stride (the GLU
 * linear forward with bf16 activations and weights), the AVX512_BF16 build
 * multiplies pairs of K with vdpbf16ps: one instruction does the two FMAs
 * of a K pair per lane, twice the fp32 FMA rate. bf16 products are exact in
 * fp32 and each is added with round-to-nearest-even, as two fp32 FMAs
 * would; the instruction treats subnormal inputs and results as zero, an
 * absolute error of at most 2^-126 per product (docs/numerics.md). Panels
 * hold 32-bit units, the bf16 pair (k, k + 1) of one row or column, k even;
 * an odd K's last pair is padded with zero in both operands. */
#if defined(__AVX512BF16__) && SG_W == 16
#define SG_HAVE_DP 1
/* The other GEMMs of the ops take this path too where their operands are
 * bf16: A in any orientation, B also as rows of unit column stride (the
 * backward's [Wg; Wu], X, Wd), and the fp32 intermediates rounded once to
 * bf16 (nearest even) as they are packed: the down projection's h (its
 * prologue, and the recomputed h of dWd) when G, U and Wd are bf16, and
 * the backward's dG, dU (a_to_bf16) where they meet bf16 weights or X.
 * That is the rounding of an intermediate to the GEMM operand's dtype
 * that docs/numerics.md allows and the CUDA composition also makes; in
 * fp32 these GEMMs ran at the fp32 FMA rate, half the bf16 GLU linear's. */
static int gemm_use_dp(const sg_gemm *g) {
  const sg_src *a = &g->A, *b = &g->B;
  const int a_ok = (a->kind == SRC_PLAIN && (a->a.dt == SG_BF16 || (g->a_to_bf16 && a->a.dt == SG_F32))) ||
                   (a->kind == SRC_GLU && a->a.dt == SG_BF16 && a->b.dt == SG_BF16);
  const int b_along_k = (b->kind == SRC_PLAIN || b->kind == SRC_PAIRS) && b->a.dt == SG_BF16 && b->a.rs == 1 &&
                        (b->kind == SRC_PLAIN || (b->b.dt == SG_BF16 && b->b.rs == 1));
  const int b_rows = ((b->kind == SRC_PLAIN || b->kind == SRC_SPLIT) && b->a.dt == SG_BF16 && b->a.cs == 1 &&
                      (b->kind == SRC_PLAIN || (b->b.dt == SG_BF16 && b->b.cs == 1))) ||
                     (b->kind == SRC_GLU && b->a.dt == SG_BF16 && b->b.dt == SG_BF16);
  return a_ok && (b_along_k || b_rows);
}

/* Row r of A, columns [c, c + n), as bf16: h of a prologue rounded to
 * nearest even once, from the fp32 value the fp32 path packs; an fp32
 * intermediate rounded the same way; bf16 as it is (any strides). */
static void a_row_bf16(const sg_src *s, int64_t r, int64_t c, int64_t n, uint16_t *out) {
  SG_ALIGNED float h[SG_SEG];
  SG_ALIGNED uint16_t hb[SG_SEG];
  for (int64_t c0 = 0; c0 < n; c0 += SG_SEG) {
    const int64_t m = n - c0 < SG_SEG ? n - c0 : SG_SEG;
    src_seg(s, r, c + c0, 1, m, h);
    for (int64_t i = 0; i < m; i += SG_W) {
      if (m - i < SG_W) memset(h + m, 0, (size_t)(i + SG_W - m) * 4);
      v_store_bf16(hb + i, v_load_f32(h + i));
    }
    memcpy(out + c0, hb, (size_t)m * 2);
  }
}

static inline uint32_t bf16_pair(const char *p, int64_t k, int64_t K) {
  uint16_t lo = 0, hi = 0;
  memcpy(&lo, p + 2 * k, 2);
  if (k + 1 < K) memcpy(&hi, p + 2 * (k + 1), 2);
  return (uint32_t)lo | (uint32_t)hi << 16;
}

/* A rows [m0, m0 + mr), K range [k0, k0 + kcl) as kcl/2 (rounded up) pairs. */
static void pack_a_dp(const sg_src *s, int64_t m0, int mr, int64_t k0, int64_t kcl, uint32_t *dst) {
  const int64_t kp = (kcl + 1) / 2, K = k0 + kcl;
  if (s->kind == SRC_PLAIN && s->a.rs == 1 && mr == SG_MR && (s->a.dt == SG_BF16 || s->a.dt == SG_F32)) {
    /* transposed (the weight gradients' dG^T, dy^T): pair q of the panel's
     * rows is SG_MR adjacent elements of two source rows; element by element
     * through a_row_bf16 it cost as much as the products */
    const size_t es = sg_dtype_size(s->a.dt);
    for (int64_t q = 0; q < kp; ++q) {
      const int64_t k = k0 + 2 * q;
      const char *r0 = s->a.p + (m0 + k * s->a.cs) * (int64_t)es;
      uint16_t lo[SG_MR], hi[SG_MR] = {0};
      if (s->a.dt == SG_BF16) {
        memcpy(lo, r0, sizeof lo);
        if (k + 1 < K) memcpy(hi, r0 + s->a.cs * (int64_t)es, sizeof hi);
      } else { /* an fp32 intermediate, rounded as a_row_bf16 rounds it */
        SG_ALIGNED float t[2 * SG_MR] = {0};
        memcpy(t, r0, SG_MR * 4);
        if (k + 1 < K) memcpy(t + SG_MR, r0 + s->a.cs * (int64_t)es, SG_MR * 4);
        SG_ALIGNED uint16_t b[2 * SG_MR];
        v_store_bf16(b, v_load_f32(t)); /* 2 SG_MR = SG_W */
        memcpy(lo, b, sizeof lo);
        memcpy(hi, b + SG_MR, sizeof hi);
      }
      for (int i = 0; i < SG_MR; ++i) dst[q * SG_MR + i] = (uint32_t)lo[i] | (uint32_t)hi[i] << 16;
    }
    return;
  }
  for (int i = 0; i < SG_MR; ++i) {
    if (i >= mr) {
      for (int64_t q = 0; q < kp; ++q) dst[q * SG_MR + i] = 0;
      continue;
    }
    if (s->kind == SRC_GLU || s->a.dt != SG_BF16 || s->a.cs != 1) { /* SG_SEG is even: no pair straddles two pieces */
      uint16_t hb[SG_SEG + 1];
      for (int64_t c0 = 0; c0 < kcl; c0 += SG_SEG) {
        const int64_t n = kcl - c0 < SG_SEG ? kcl - c0 : SG_SEG;
        a_row_bf16(s, m0 + i, k0 + c0, n, hb);
        hb[n] = 0; /* an odd K's last pair */
        for (int64_t q = 0; q < (n + 1) / 2; ++q) memcpy(&dst[(c0 / 2 + q) * SG_MR + i], hb + 2 * q, 4);
      }
      continue;
    }
    const char *row = s->a.p + (m0 + i) * s->a.rs * 2;
    int64_t q = 0;
    if (kcl % 2 == 0)
      for (; q < kp; ++q) memcpy(&dst[q * SG_MR + i], row + 2 * (k0 + 2 * q), 4);
    for (; q < kp; ++q) dst[q * SG_MR + i] = bf16_pair(row, k0 + 2 * q, K);
  }
}

/* B columns [n0, n0 + nr) over all K as pairs: 16 columns x 16 pairs per
 * in-register transpose of 32-bit units. */
static void pack_b_dp_rows(const sg_src *s, int64_t n0, int nr, int64_t K, uint32_t *dst);
static void pack_b_dp(const sg_src *s, int64_t n0, int nr, int64_t K, uint32_t *dst) {
  if (s->a.rs != 1 || s->kind == SRC_SPLIT || s->kind == SRC_GLU) {
    pack_b_dp_rows(s, n0, nr, K, dst);
    return;
  }
  const int64_t kp = (K + 1) / 2, kfull = K / 32 * 16; /* pairs covered by whole 32-k blocks */
  for (int jb = 0; jb < SG_NR; jb += SG_W) {
    const char *col[SG_W];
    for (int j = 0; j < SG_W; ++j) col[j] = jb + j < nr ? b_col_ptr(s, n0 + jb + j) : NULL;
    for (int64_t q = 0; q < kfull; q += SG_W) {
      vf r[SG_W];
#pragma GCC unroll 16
      for (int j = 0; j < SG_W; ++j) r[j] = col[j] ? v_load_f32(col[j] + 4 * q) : v_set(0.0f);
      v_transpose(r);
#pragma GCC unroll 16
      for (int i = 0; i < SG_W; ++i) v_store_f32(dst + (q + i) * SG_NR + jb, r[i]);
    }
    for (int64_t q = kfull; q < kp; ++q)
      for (int j = 0; j < SG_W; ++j) dst[q * SG_NR + jb + j] = col[j] ? bf16_pair(col[j], 2 * q, K) : 0;
  }
}

/* B as rows of unit column stride (the backward's [Wg; Wu] and X, Wd in
 * its [D, H] orientation): pair q of column j is rows 2q and 2q + 1 at
 * column j, one 16-bit interleave (vpermt2w) per 16 columns. */
static const char *b_row_bf16(const sg_src *s, int64_t k, int64_t n0) {
  const int second = s->kind == SRC_SPLIT && k >= s->split;
  const sg_mat *m = second ? &s->b : &s->a;
  return m->p + ((second ? k - s->split : k) * m->rs + n0) * 2;
}
static void a_row_bf16(const sg_src *s, int64_t r, int64_t c, int64_t n, uint16_t *out);
static void pack_b_dp_rows(const sg_src *s, int64_t n0, int nr, int64_t K, uint32_t *dst) {
  const int64_t kp = (K + 1) / 2;
  if (s->kind == SRC_GLU) { /* the down projection's dWd: rows of h, rounded as its forward rounds them */
    uint16_t h[2][SG_NR];
    for (int64_t q = 0; q < kp; ++q) {
      memset(h, 0, sizeof h);
      a_row_bf16(s, 2 * q, n0, nr, h[0]);
      if (2 * q + 1 < K) a_row_bf16(s, 2 * q + 1, n0, nr, h[1]);
      for (int j = 0; j < SG_NR; ++j) dst[q * SG_NR + j] = (uint32_t)h[0][j] | (uint32_t)h[1][j] << 16;
    }
    return;
  }
  if (nr == SG_NR) {
    static const uint16_t il[2][32] = {
        {0, 32, 1, 33, 2, 34, 3, 35, 4, 36, 5, 37, 6, 38, 7, 39,
         8, 40, 9, 41, 10, 42, 11, 43, 12, 44, 13, 45, 14, 46, 15, 47},
        {16, 48, 17, 49, 18, 50, 19, 51, 20, 52, 21, 53, 22, 54, 23, 55,
         24, 56, 25, 57, 26, 58, 27, 59, 28, 60, 29, 61, 30, 62, 31, 63}};
    const __m512i lo = _mm512_loadu_si512(il[0]), hi = _mm512_loadu_si512(il[1]);
    for (int64_t q = 0; q < kp; ++q) {
      const __m512i r0 = _mm512_loadu_si512(b_row_bf16(s, 2 * q, n0));
      const __m512i r1 = 2 * q + 1 < K ? _mm512_loadu_si512(b_row_bf16(s, 2 * q + 1, n0)) : _mm512_setzero_si512();
      _mm512_storeu_si512(dst + q * SG_NR, _mm512_permutex2var_epi16(r0, lo, r1));
      _mm512_storeu_si512(dst + q * SG_NR + SG_W, _mm512_permutex2var_epi16(r0, hi, r1));
    }
    return;
  }
  for (int64_t q = 0; q < kp; ++q) {
    const char *r0 = b_row_bf16(s, 2 * q, n0), *r1 = 2 * q + 1 < K ? b_row_bf16(s, 2 * q + 1, n0) : NULL;
    for (int j = 0; j < SG_NR; ++j) {
      uint16_t l = 0, h = 0;
      if (j < nr) memcpy(&l, r0 + 2 * j, 2);
      if (j < nr && r1) memcpy(&h, r1 + 2 * j, 2);
      dst[q * SG_NR + j] = (uint32_t)l | (uint32_t)h << 16;
    }
  }
}

static inline __attribute__((always_inline)) void ukernel_dp(int64_t KP, const uint32_t *restrict A,
                                                             const uint32_t *restrict B,
                                                             vf acc[SG_MR][2], float *c, int first) {
  tile_load(acc, c, first);
  for (int64_t q = 0; q < KP; ++q) {
    const __m512i b0 = _mm512_loadu_si512(B), b1 = _mm512_loadu_si512(B + SG_W);
#pragma GCC unroll 16
    for (int i = 0; i < SG_MR; ++i) {
      const __m512i a = _mm512_set1_epi32((int)A[i]);
      acc[i][0] = (vf)_mm512_dpbf16_ps((__m512)acc[i][0], (__m512bh)a, (__m512bh)b0);
      acc[i][1] = (vf)_mm512_dpbf16_ps((__m512)acc[i][1], (__m512bh)a, (__m512bh)b1);
    }
    A += SG_MR;
    B += SG_NR;
  }
}

/* AMX (the "avx512amx" ISA, sg_cpu_amx): the same bf16 x bf16 products on
 * tiles. TDPBF16PS adds a 16 x 32 bf16 A tile times a 32 x 16 B tile (16
 * rows of pairs) into a 16 x 16 fp32 tile with the rounding of vdpbf16ps
 * (round to nearest even, subnormal inputs and outputs as zero). A block
 * of 32 rows of A against one B panel keeps its four C tiles (the two row
 * halves by gate and up columns) over the whole K, from A rows stored as
 * pairs (amx_pack_a) and the B panel pack_b_dp wrote, its pairs zero to a
 * whole tile (amx_kp). On a 2-core Xeon whose vdpbf16ps runs at half the
 * rate of fp32 FMAs, the bf16 GLU linear (T = 256, D = 2048, H = 5632) took
 * 65 ms with ukernel_dp, 44 with fp32 FMAs, and 6 ms here (docs/benchmarks.md). */
#define SG_HAVE_AMX 1
#define SG_AMX_ROWS 32
static int64_t amx_kp(int64_t K) { return (K + 31) / 32 * 16; }
/* A's row stride in pairs: a tile's 16 rows 64 bytes longer than a
 * multiple of 4 KiB apart would share an L1 set */
static int64_t amx_lda(int64_t K) { return amx_kp(K) + 16; }

/* Row r of A (bf16, unit stride along K, or the prologue's h rounded to
 * bf16) as kp pairs, zero past K; a zero row where !live. */
static void amx_pack_a(const sg_src *s, int64_t r, int live, int64_t K, uint32_t *dst) {
  const int64_t kp = amx_kp(K);
  if (!live) {
    memset(dst, 0, (size_t)kp * 4);
    return;
  }
  if (s->kind == SRC_GLU || s->a.dt != SG_BF16 || s->a.cs != 1)
    a_row_bf16(s, r, 0, K, (uint16_t *)dst);
  else
    memcpy(dst, s->a.p + r * s->a.rs * 2, (size_t)K * 2);
  memset((char *)dst + K * 2, 0, (size_t)(kp * 2 - K) * 2);
}

__attribute__((target("amx-tile"))) static void amx_start(void) {
  struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
  } cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  /* not _tile_loadconfig: GCC 12's declares only 8 bytes of its operand
   * read, and the stores of the rest were dropped as dead (the tiles then
   * faulted) */
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}
__attribute__((target("amx-tile"))) static void amx_end(void) { _tile_release(); }

/* C (SG_AMX_ROWS x SG_NR fp32, row stride SG_NR) = A rows (stride lda
 * pairs) times the B panel, over kp pairs. */
__attribute__((target("amx-tile,amx-bf16"), noinline)) static void amx_block(const uint32_t *A, int64_t lda,
                                                                             const uint32_t *B, int64_t kp,
                                                                             float *C) {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t q = 0; q < kp; q += 16) {
    _tile_loadd(4, A + q, lda * 4);
    _tile_loadd(5, A + 16 * lda + q, lda * 4);
    _tile_loadd(6, B + q * SG_NR, SG_NR * 4);
    _tile_loadd(7, B + q * SG_NR + 16, SG_NR * 4);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, C, SG_NR * 4);
  _tile_stored(1, C + 16, SG_NR * 4);
  _tile_stored(2, C + 16 * SG_NR, SG_NR * 4);
  _tile_stored(3, C + 16 * SG_NR + 16, SG_NR * 4);
}
#else
#define SG_HAVE_DP 0
#endif
#ifndef SG_HAVE_AMX
#define SG_HAVE_AMX 0
#endif

static int64_t gemm_mc(int64_t M, int64_t K) {
  int64_t mc = (int64_t)SG_APACK_BYTES / (K > 0 ? K * 4 : 4) / SG_MR * SG_MR;
  if (mc < SG_MR) mc = SG_MR;
  const int64_t mr_up = (M + SG_MR - 1) / SG_MR * SG_MR;
  return mc < mr_up ? mc : (mr_up > 0 ? mr_up : SG_MR);
}

/* Column panels a thread packs and runs as a group (gemm_run): as many as
 * fill a quarter of a core's L2 with their K x SG_NR floats, at most
 * SG_GROUP_MAX, at least one. A quarter because the next group's weights
 * are prefetched into L2 beside them and msub rows of A take another: on a
 * 2 MiB-L2 Xeon (T = 256, D = 2048) groups of 2 over 64 rows ran 3-5%
 * faster than one panel at a time, groups of 4 no faster, 8 slower. */
#define SG_GROUP_MAX 8
static int64_t gemm_group(int64_t K) {
  const int64_t panel = (K > 0 ? K : 1) * SG_NR * 4;
  const int64_t n = sg_cpu_l2_bytes / 4 / panel;
  return n < 1 ? 1 : n > SG_GROUP_MAX ? SG_GROUP_MAX : n;
}

/* Rows of A a group runs each of its panels over before the next rows: a
 * quarter of the L2 of packed A (whole row panels, at least one); all mc
 * rows for a group of one panel, which would gain nothing from it. */
static int64_t gemm_msub(int64_t K, int64_t mc, int64_t group) {
  if (group <= 1) return mc;
  int64_t m = sg_cpu_l2_bytes / 4 / ((K > 0 ? K : 1) * 4) / SG_MR * SG_MR;
  if (m < SG_MR) m = SG_MR;
  return m < mc ? m : mc;
}

/* Floats of one packed B panel: K x SG_NR, or (AMX) its pairs to a whole
 * tile. */
static size_t gemm_panel_floats(int64_t K) {
  size_t rows = (size_t)(K > 0 ? K : 1);
#if SG_HAVE_AMX
  if ((size_t)amx_kp(K) > rows) rows = (size_t)amx_kp(K);
#endif
  return rows * SG_NR;
}

/* Floats of the packed A block: mc x K, or (AMX) mc rows rounded up to
 * whole blocks of amx_lda pairs. */
static size_t gemm_apack_floats(int64_t M, int64_t K) {
  const int64_t mc = gemm_mc(M, K);
  size_t n = (size_t)mc * (size_t)(K > 0 ? K : 1);
#if SG_HAVE_AMX
  const size_t na = (size_t)((mc + SG_AMX_ROWS - 1) / SG_AMX_ROWS * SG_AMX_ROWS) * (size_t)amx_lda(K);
  if (na > n) n = na;
#endif
  return n;
}

/* Per-thread floats: a group's B panels, their biases, the partial sums of
 * a row range's tiles in one panel between K blocks, and (AMX) one block's
 * C tiles. */
static size_t gemm_thread_floats(int64_t M, int64_t K) {
  const size_t grp = (size_t)gemm_group(K);
  return grp * (gemm_panel_floats(K) + SG_NR) + (size_t)gemm_mc(M, K) * SG_NR + 32 * SG_NR + 32;
}

/* Prefetch lines [l, l + n) of the next group's weights (np1 panels from
 * pb1, pf_panel lines each) into L2. */
static void prefetch_group(const sg_gemm *g, int64_t pb1, int64_t np1, int64_t pf_panel, int64_t l, int64_t n) {
  for (const int64_t le = l + n; l < le;) {
    const int64_t qn = l / pf_panel, l0 = l % pf_panel;
    if (qn >= np1) return;
    const int64_t n1 = (pb1 + qn) * SG_NR, c = le - l < pf_panel - l0 ? le - l : pf_panel - l0;
    prefetch_b(&g->B, n1, (int)(g->N - n1 < SG_NR ? g->N - n1 : SG_NR), g->K, l0, c);
    l += c;
  }
}

/* A finished tile (rows m0.., columns n0..) to the GEMM's epilogue; bias:
 * its panel's biases (the GLU forward's). */
static inline __attribute__((always_inline)) void epi_tile(const sg_gemm *g, int64_t m0, int mr, int64_t n0,
                                                           int nr, vf acc[SG_MR][2], const float *bias) {
  if (g->epi == EPI_GLU_FWD)
    epi_glu_fwd(g, m0, mr, n0, acc, bias);
  else if (g->epi == EPI_GLU_BWD)
    epi_glu_bwd(g, m0, mr, n0, nr, acc);
  else
    epi_store(g, m0, mr, n0, nr, acc);
}

static float *align64(float *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/* K passes. Each column panel is run over all of K, so the packed A block
 * (mc rows x K) is read once per panel group, from L3 where it does not
 * fit the L2. Panel groups (above) cure that while a group holds several
 * panels; once a panel alone fills the group (K x SG_NR floats past a
 * quarter of the L2: the down projection's K = H of 5632-14336, the GLU
 * linear's D = 4096) and the block is larger than the whole L2, the GEMM
 * goes in passes over K slices sized so that the block's slice takes a
 * quarter of the L2 (at least SG_KC columns): every panel of a pass reuses
 * that slice from L2, and each tile's partial sums wait in the workspace
 * between passes (cacc, one mc x SG_NR slab per panel). On the 2-core Xeon
 * (2 MiB L2, fp32): down projection 256 x 2048 x 5632 24.6-24.8 -> 21.1-21.4
 * ms, 64 x 4096 x 14336 40-42 -> 34 ms; passes where the block fits the L2
 * (GLU linear 64 x 4096 x 14336: 64-66 -> 70-72 ms, the weights read in
 * two shorter runs) or with groups of two (256 x 2048 x 5632: no gain) are
 * not taken, nor where N > K: the slab (mc x N) then stays within the
 * packed A block's budget, and the GLU linear, whose N = 2H, gained at
 * most 2% from them (256 x 4096 x 14336) for a workspace of up to
 * 56 MiB more at T = 4096. Only plain or prologue A and plain or paired B shift along K;
 * AMX runs whole K (its A rows are packed over all of K for the tiles). */
#define SG_KC 256 /* K block: one SG_KC x SG_NR slice of B stays in L1 */
/* The row block's rows rounded up to whole row panels. */
static int64_t gemm_mc_pad(int64_t M, int64_t K) { return (gemm_mc(M, K) + SG_MR - 1) / SG_MR * SG_MR; }
static int64_t gemm_kpass(int64_t M, int64_t N, int64_t K) {
  const int64_t mcp = gemm_mc_pad(M, K);
  if (gemm_group(K) > 1 || mcp * K * 4 <= sg_cpu_l2_bytes || N > K) return K;
  int64_t kp = sg_cpu_l2_bytes / 4 / (mcp * 4) / SG_KC * SG_KC;
  if (kp < SG_KC) kp = SG_KC;
  return kp < K ? kp : K;
}
static int gemm_passes_ok(const sg_gemm *g) {
  return (g->A.kind == SRC_PLAIN || g->A.kind == SRC_GLU) && (g->B.kind == SRC_PLAIN || g->B.kind == SRC_PAIRS);
}
/* Floats of the partial sums between passes: every panel's mc rows, or 0
 * for one pass. The query sizes it for any operand kinds. */
static size_t gemm_cacc_floats(int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0 || gemm_kpass(M, N, K) >= K) return 0;
  return (size_t)gemm_mc_pad(M, K) * (size_t)((N + SG_NR - 1) / SG_NR * SG_NR) + 16;
}

/* Floats of workspace a GEMM needs with nth threads (each piece 64-byte aligned). */
static size_t gemm_ws_floats(int64_t M, int64_t N, int64_t K, int nth) {
  return gemm_apack_floats(M, K) + 16 + (size_t)nth * gemm_thread_floats(M, K) + gemm_cacc_floats(M, N, K);
}

/* g with its K range narrowed to [k0, k0 + kc): A's columns and B's rows. */
static sg_gemm gemm_slice(const sg_gemm *g, int64_t k0, int64_t kc) {
  sg_gemm s = *g;
  s.K = kc;
  s.A.a = mat_at(&g->A.a, 0, k0);
  if (g->A.kind == SRC_GLU) s.A.b = mat_at(&g->A.b, 0, k0);
  s.B.a = mat_at(&g->B.a, k0, 0);
  if (g->B.kind == SRC_PAIRS) s.B.b = mat_at(&g->B.b, k0, 0);
  return s;
}

/* Loop order (GotoBLAS): M blocks of up to mc rows; K passes (above); A
 * packed once per block and pass in [K block][row panel][k][SG_MR] order;
 * then each thread takes groups of column panels (gemm_group), packs the
 * group's B, and for each range of msub rows runs each panel of the group:
 * for each K block of SG_KC, every row panel of the range against the same
 * SG_KC x SG_NR slice of B, which stays in L1 while the A panels stream
 * from L2. The group is there for A: one panel at a time reads the whole
 * packed A (T = 256, D = 2048: 2 MiB) once per panel, from L3 where the L2
 * cannot hold it beside the panel; a group of P panels over msub rows
 * reads it from L3 once per group and from L2 the other P - 1 times. A
 * tile's partial sums wait in the thread's cbuf between K blocks (in cacc
 * with several passes); the epilogue sees the last block's registers. */
static void gemm_run(const sg_gemm *g, float *ws, int nth) {
  const int64_t M = g->M, N = g->N, K = g->K;
  if (M <= 0 || N <= 0) return;
  const int64_t mc_max = gemm_mc(M, K);
  float *apack = align64(ws);
  float *thread_base = align64(apack + gemm_apack_floats(M, K));
  const size_t pfl = gemm_panel_floats(K);
  const int64_t npb = (N + SG_NR - 1) / SG_NR;
  /* threads share out groups, so a short K's large groups (the weight
   * gradients' K = T) left threads idle: at 16 threads a backward's dW
   * GEMM (N = 2048, K = 256) made 8 groups of 8 panels. At least two
   * groups a thread where there are panels for it; a smaller group only
   * reads its A from L3 more often. */
  int64_t grp = gemm_group(K);
  if (npb < grp * 2 * nth) grp = npb / (2 * nth) > 1 ? npb / (2 * nth) : 1;
  const int64_t ngr = (npb + grp - 1) / grp;
#if SG_HAVE_DP
  const int dp = gemm_use_dp(g);
#else
  const int dp = 0;
  (void)dp;
#endif
#if SG_HAVE_AMX
  const int amx = dp && sg_cpu_amx;
  const int64_t akp = amx_kp(K), lda = amx_lda(K);
#else
  const int amx = 0;
#endif
  const int64_t kpass = K > 0 && !amx && gemm_passes_ok(g) ? gemm_kpass(M, N, K) : (K > 0 ? K : 1);
  float *cacc = kpass < K ? align64(thread_base + (size_t)nth * gemm_thread_floats(M, K)) : NULL;
  const int64_t mcp_max = gemm_mc_pad(M, K);
#pragma omp parallel num_threads(nth)
  {
    const int tid = omp_get_thread_num();
    float *bpack = align64(thread_base + (size_t)tid * gemm_thread_floats(M, K));
    float *bias = bpack + (size_t)grp * pfl;
    float *cbuf = bias + (size_t)grp * SG_NR;
    float *ctile = cbuf + (size_t)mc_max * SG_NR; /* AMX: a block's C tiles */
    (void)ctile;
#if SG_HAVE_AMX
    if (amx) amx_start();
#endif
    for (int64_t m0 = 0; m0 < M; m0 += mc_max)
      for (int64_t kbase = 0; kbase < (K > 0 ? K : 1); kbase += kpass) {
        const int64_t Kc = K - kbase < kpass ? K - kbase : kpass;
        const sg_gemm gs = kpass < K ? gemm_slice(g, kbase, Kc) : *g;
        const int lastp = kbase + kpass >= K;
        const int64_t nkc = Kc > 0 ? (Kc + SG_KC - 1) / SG_KC : 1;
        const int64_t mc = M - m0 < mc_max ? M - m0 : mc_max;
        const int64_t npa = (mc + SG_MR - 1) / SG_MR;
        const int64_t mc_pad = npa * SG_MR;
        const int64_t msub = gemm_msub(Kc, mc_pad, grp), npa_sub = msub / SG_MR;
#if SG_HAVE_AMX
        if (amx) {
          const int64_t rows = (mc + SG_AMX_ROWS - 1) / SG_AMX_ROWS * SG_AMX_ROWS;
#pragma omp for schedule(static)
          for (int64_t i = 0; i < rows; ++i) amx_pack_a(&g->A, m0 + i, i < mc, K, (uint32_t *)apack + i * lda);
        } else
#endif
#pragma omp for schedule(static) collapse(2)
        for (int64_t kb = 0; kb < nkc; ++kb)
          for (int64_t pa = 0; pa < npa; ++pa) {
            const int64_t r0 = pa * SG_MR, k0 = kb * SG_KC;
            const int64_t kcl = Kc - k0 < SG_KC ? Kc - k0 : SG_KC;
            const int mr = (int)(mc - r0 < SG_MR ? mc - r0 : SG_MR);
#if SG_HAVE_DP
            if (dp) { /* pairs: K block kb starts at pair k0 / 2 (SG_KC is even) */
              pack_a_dp(&gs.A, m0 + r0, mr, k0, kcl, (uint32_t *)apack + k0 / 2 * mc_pad + r0 * ((kcl + 1) / 2));
              continue;
            }
#endif
            pack_a(&gs.A, m0 + r0, mr, k0, kcl, apack + k0 * mc_pad + r0 * kcl);
          }
        /* contiguous group ranges per thread, so its next group is gi + 1;
         * the next group's weights are prefetched a little at every tile */
        const int pf = !src_along_c(&g->B);
        const int64_t pf_panel = pf ? ((Kc + 15) / 16) * SG_NR : 0;
#pragma omp for schedule(static)
        for (int64_t gi = 0; gi < ngr; ++gi) {
          const int64_t pb0 = gi * grp, np = npb - pb0 < grp ? npb - pb0 : grp;
          const int64_t pb1 = pb0 + np, np1 = npb - pb1 < grp ? npb - pb1 : grp;
          const int64_t pf_step = np1 > 0 ? (pf_panel * np1 + nkc * npa * np - 1) / (nkc * npa * np) : 0;
          int64_t tiles = 0;
          for (int64_t q = 0; q < np; ++q) {
            const int64_t pb = pb0 + q, n0 = pb * SG_NR;
            const int nr = (int)(N - n0 < SG_NR ? N - n0 : SG_NR);
            float *bq = bpack + (size_t)q * pfl, *biasq = bias + q * SG_NR;
#if SG_HAVE_DP
            if (dp) {
              pack_b_dp(&gs.B, n0, nr, Kc, (uint32_t *)bq);
#if SG_HAVE_AMX
              const int64_t kp = (K + 1) / 2;
              if (amx && akp > kp) memset(bq + kp * SG_NR, 0, (size_t)(akp - kp) * SG_NR * 4);
#endif
            } else
#endif
              pack_b(&gs.B, n0, nr, Kc, bq);
            if (g->epi == EPI_GLU_FWD && lastp) {
              const int64_t f0 = pb * SG_W;
              const int64_t nf = g->H - f0 < SG_W ? g->H - f0 : SG_W;
              memset(biasq, 0, SG_NR * 4);
              if (g->bg.p) {
                mat_seg(&g->bg, 0, f0, 1, nf, biasq);
                mat_seg(&g->bu, 0, f0, 1, nf, biasq + SG_W);
              }
            }
          }
#if SG_HAVE_AMX
          if (amx) {
            const int64_t nblk = (mc + SG_AMX_ROWS - 1) / SG_AMX_ROWS;
            const int64_t step = np1 > 0 ? (pf_panel * np1 + nblk * np - 1) / (nblk * np) : 0;
            for (int64_t q = 0; q < np; ++q) {
              const int64_t n0 = (pb0 + q) * SG_NR;
              const int nr = (int)(N - n0 < SG_NR ? N - n0 : SG_NR);
              for (int64_t b = 0; b < nblk; ++b, ++tiles) {
                if (step) prefetch_group(g, pb1, np1, pf_panel, tiles * step, step);
                amx_block((const uint32_t *)apack + b * SG_AMX_ROWS * lda, lda,
                          (const uint32_t *)(bpack + (size_t)q * pfl), akp, ctile);
                for (int i8 = 0; i8 < SG_AMX_ROWS / SG_MR; ++i8) {
                  const int64_t r0 = b * SG_AMX_ROWS + i8 * SG_MR;
                  if (r0 >= mc) break;
                  const int mr = (int)(mc - r0 < SG_MR ? mc - r0 : SG_MR);
                  vf acc[SG_MR][2];
                  tile_load(acc, ctile + i8 * SG_MR * SG_NR, 0);
                  epi_tile(g, m0 + r0, mr, n0, nr, acc, bias + q * SG_NR);
                }
              }
            }
            continue;
          }
#endif
          for (int64_t s0 = 0; s0 < npa; s0 += npa_sub) {
            const int64_t s1 = s0 + npa_sub < npa ? s0 + npa_sub : npa;
            for (int64_t q = 0; q < np; ++q) {
              const int64_t n0 = (pb0 + q) * SG_NR;
              const int nr = (int)(N - n0 < SG_NR ? N - n0 : SG_NR);
              const float *bq = bpack + (size_t)q * pfl;
              for (int64_t kb = 0; kb < nkc; ++kb) {
                const int64_t k0 = kb * SG_KC;
                const int64_t kcl = Kc - k0 < SG_KC ? Kc - k0 : SG_KC;
                const int first = kbase == 0 && kb == 0, last = lastp && kb == nkc - 1;
                for (int64_t pa = s0; pa < s1; ++pa, ++tiles) {
                  const int64_t r0 = pa * SG_MR;
                  const int mr = (int)(mc - r0 < SG_MR ? mc - r0 : SG_MR);
                  if (pf_step) prefetch_group(&gs, pb1, np1, pf_panel, tiles * pf_step, pf_step);
                  if (cacc && kbase > 0 && kb == 0 && pa + 1 < s1) {
                    /* the next tile's partial sums, from L3 after a pass over
                     * every panel: a demand miss at its first FMA otherwise
                     * (fp32 down projection at 256 x 2048 x 5632: 21.8-22.1 ->
                     * 21.1-21.4 ms) */
                    const char *nt =
                        (const char *)(cacc + ((size_t)(pb0 + q) * (size_t)mcp_max + (size_t)(r0 + SG_MR)) * SG_NR);
                    for (int l = 0; l < SG_MR * SG_NR * 4; l += 64) __builtin_prefetch(nt + l, 1, 3);
                  }
                  vf acc[SG_MR][2];
                  float *ct = cacc ? cacc + ((size_t)(pb0 + q) * (size_t)mcp_max + (size_t)r0) * SG_NR
                                   : cbuf + (r0 - s0 * SG_MR) * SG_NR;
#if SG_HAVE_DP
                  if (dp)
                    ukernel_dp((kcl + 1) / 2, (const uint32_t *)apack + k0 / 2 * mc_pad + r0 * ((kcl + 1) / 2),
                               (const uint32_t *)bq + k0 / 2 * SG_NR, acc, ct, first);
                  else
#endif
                    ukernel(kcl, apack + k0 * mc_pad + r0 * kcl, bq + k0 * SG_NR, acc, ct, first);
                  if (!last)
                    tile_save(ct, acc);
                  else
                    epi_tile(g, m0 + r0, mr, n0, nr, acc, bias + q * SG_NR);
                }
              }
            }
          }
        }
      }
#if SG_HAVE_AMX
    if (amx) amx_end();
#endif
  }
}

/* ------------------------------------------------------------------- ops */

static sg_mat mat_of(const sg_operand *o) {
  sg_mat m = {o->base, o->row_stride, o->col_step, o->dtype};
  return m;
}
/* The transpose view: element (r, c) is o's (c, r). */
static sg_mat mat_t(const sg_operand *o) {
  sg_mat m = {o->base, o->col_step, o->row_stride, o->dtype};
  return m;
}
static sg_mat mat_rows(sg_mat m, int64_t r0) { return mat_at(&m, r0, 0); }

static void gemm_set_act(sg_gemm *g, const sg_linear_problem *p) {
  g->act = p->activation;
  g->alpha = p->alpha;
  g->limit = p->limit;
  g->A.act = g->B.act = p->activation;
  g->A.alpha = g->B.alpha = p->alpha;
  g->A.limit = g->B.limit = p->limit;
}

/* Columns of the GLU forward GEMM: gate and up features side by side,
 * SG_W of each per panel. */
static int64_t glu_fwd_cols(int64_t H) { return (H + SG_W - 1) / SG_W * SG_NR; }

/* The GLU linear forward GEMM: X times the paired weights, GLU epilogue;
 * h and / or the pre-activations are the outputs given. */
static void glu_fwd_gemm(const sg_linear_problem *p, sg_mat h, sg_mat pg, sg_mat pu, float *ws,
                         int nth) {
  sg_gemm g;
  memset(&g, 0, sizeof g);
  gemm_set_act(&g, p);
  g.M = p->T;
  g.K = p->D;
  g.N = glu_fwd_cols(p->H);
  g.A.kind = SRC_PLAIN;
  g.A.a = mat_of(&p->x);
  g.B.kind = SRC_PAIRS;
  g.B.a = mat_t(&p->wg);
  g.B.b = mat_t(&p->wu);
  g.B.nfeat = p->H;
  g.epi = EPI_GLU_FWD;
  g.H = p->H;
  g.h = h;
  g.pg = pg;
  g.pu = pu;
  if (p->bg.base) {
    g.bg = mat_of(&p->bg);
    g.bu = mat_of(&p->bu);
  }
  gemm_run(&g, ws, nth);
}

/* ---------------------------------------------- few rows: dot products */

/* With few rows of X (decode) packing the weights costs as much as using
 * them: every weight is read, converted and written to a panel for only T
 * products. For few rows (glu_fwd_dot_ok) the forward reads the weight rows
 * where they are (unit stride along D, as nn.Linear stores them) and forms
 * each output as a dot product: blocks of up to SG_DOT_TB rows of X times
 * the gate and up rows of NF features, reduced across lanes at the end; the
 * threads split the features. The rate is set by the loads (one vector of
 * X per row and one of each weight row per step), so a block takes as many
 * weight rows as the registers hold: NF = 4 for one or two rows of X, 3 for
 * more. X is converted to fp32 once, into the workspace (the GEMM's A-panel
 * area, at least T x D floats); the AVX512_BF16 build multiplies bf16 X and
 * weights in pairs (vdpbf16ps) straight from memory. */
#define SG_DOT_TB 4
#define SG_DOT_NF 4

/* The most rows (per expert) that take this path: where it beat the packed
 * GEMM on the 2-core Zen 4 VM at D = 2048 (docs/benchmarks.md). GLU linear
 * forward: 1.9x at T = 1 to 1.07x at 16 in fp32; with bf16 pairs 2.2-2.3x
 * at T = 1 to 1.1x at 8, 0.95x at 16. Down projection: 3.5x at T = 1 to 1.15x
 * at 16. -DSG_DOT_MAX_T=0 turns the path off, for such A/B measurements. */
#ifdef SG_DOT_MAX_T
#define SG_DOT_T SG_DOT_MAX_T
#define SG_DOT_T_PAIRS SG_DOT_MAX_T
#define SG_DOT_T_AMX SG_DOT_MAX_T
#else
#define SG_DOT_T 16
#define SG_DOT_T_PAIRS 8
/* With AMX the packed GEMM takes over sooner: on the 2-core Xeon (bf16,
 * D = 2048, H = 5632) the pairs path took 0.86-0.97 ms at T = 1-2, 1.42-1.48
 * at 5, 1.72-1.74 at 6, 2.2-2.3 at 8; the AMX GEMM 1.6-1.8 at every T up
 * to 8 (and 11.0 against 14.5-14.9 ms at T = 8, D = 4096, H = 14336) */
#define SG_DOT_T_AMX 5
#endif

/* bf16 X and weights: the vdpbf16ps pair path (AVX512_BF16 builds). */
static int dot_pairs(const sg_linear_problem *p) {
#if SG_HAVE_DP
  return p->x.dtype == SG_BF16 && p->wg.dtype == SG_BF16 && p->wu.dtype == SG_BF16;
#else
  (void)p;
  return 0;
#endif
}

static int glu_fwd_dot_ok(const sg_linear_problem *p) {
  const int64_t tmax = dot_pairs(p) ? (sg_cpu_amx ? SG_DOT_T_AMX : SG_DOT_T_PAIRS) : SG_DOT_T;
  return p->T <= tmax && p->x.col_step == 1 && p->wg.col_step == 1 && p->wu.col_step == 1;
}

static inline float v_hsum(vf v) {
  float s = 0.0f;
  for (int l = 0; l < SG_W; ++l) s += v[l];
  return s;
}

/* The left operand of a few-row product: K columns per row, as fp32 rows
 * of stride K (xf), or, for the bf16 pair path, bf16 rows at xb with row
 * stride xrs elements (xf NULL); the weight rows' dtype. */
typedef struct {
  int64_t K;
  const float *xf;
  const char *xb;
  int64_t xrs;
  int32_t wdt;
} sg_dot;

/* s[t][j] = row t0 + t of the left operand (t < nt) dot weight row w[j]
 * (j < nw) over K. nt and nw are constants where this is inlined. */
static inline __attribute__((always_inline)) void dot_block(const sg_dot *d, int64_t t0, const int nt,
                                                            const int nw, const char *const *w,
                                                            float s[SG_DOT_TB][2 * SG_DOT_NF]) {
  const int64_t K = d->K;
  const int32_t wdt = d->wdt;
  const size_t wes = sg_dtype_size(wdt);
  const float *xf = d->xf;
  vf acc[SG_DOT_TB][2 * SG_DOT_NF];
  for (int t = 0; t < nt; ++t)
    for (int j = 0; j < nw; ++j) acc[t][j] = v_set(0.0f);
  int64_t k = 0;
#if SG_HAVE_DP
  if (!xf) {
    const char *xr[SG_DOT_TB];
    for (int t = 0; t < nt; ++t) xr[t] = d->xb + (t0 + t) * d->xrs * 2;
    for (; k + 2 * SG_W <= K; k += 2 * SG_W) {
      __m512i xv[SG_DOT_TB];
      for (int t = 0; t < nt; ++t) xv[t] = _mm512_loadu_si512(xr[t] + 2 * k);
#pragma GCC unroll 8
      for (int j = 0; j < nw; ++j) {
        const __m512i wv = _mm512_loadu_si512(w[j] + 2 * k);
#pragma GCC unroll 4
        for (int t = 0; t < nt; ++t)
          acc[t][j] = (vf)_mm512_dpbf16_ps((__m512)acc[t][j], (__m512bh)xv[t], (__m512bh)wv);
      }
    }
  } else
#endif
  {
    for (; k + SG_W <= K; k += SG_W) {
      vf xv[SG_DOT_TB];
      for (int t = 0; t < nt; ++t) xv[t] = v_load_f32(xf + (t0 + t) * K + k);
#pragma GCC unroll 8
      for (int j = 0; j < nw; ++j) {
        const vf wv = v_load(w[j] + k * (int64_t)wes, wdt);
#pragma GCC unroll 4
        for (int t = 0; t < nt; ++t) acc[t][j] = sg_v_fma(xv[t], wv, acc[t][j]);
      }
    }
  }
  for (int t = 0; t < nt; ++t)
    for (int j = 0; j < nw; ++j) s[t][j] = v_hsum(acc[t][j]);
  if (k < K) { /* the last K % SG_W (pair path: % 2 SG_W) columns */
    SG_ALIGNED float wt[2 * SG_W], xt[SG_DOT_TB][2 * SG_W];
    const int64_t n = K - k;
    for (int t = 0; t < nt; ++t) {
      if (xf) memcpy(xt[t], xf + (t0 + t) * K + k, (size_t)n * 4);
      else conv_run(d->xb + ((t0 + t) * d->xrs + k) * 2, SG_BF16, n, xt[t]);
    }
    for (int j = 0; j < nw; ++j) {
      conv_run(w[j] + k * (int64_t)wes, wdt, n, wt);
      for (int t = 0; t < nt; ++t)
        for (int64_t i = 0; i < n; ++i) s[t][j] = fmaf(xt[t][i], wt[i], s[t][j]);
    }
  }
}

/* Weight rows per block, 2 NF: as many accumulators as the registers hold. */
static int dot_nf(int64_t T) { return T > 2 ? 3 : SG_DOT_NF; }

/* One block of nt rows (any count up to SG_DOT_TB) against 2 NF weight
 * rows, NF as dot_nf gives it: each pair a constant in its instance. */
static inline __attribute__((always_inline)) void dot_block_nf(const sg_dot *d, int64_t t0, int nt, const int NF,
                                                               const char *const *w,
                                                               float s[SG_DOT_TB][2 * SG_DOT_NF]) {
  switch (nt) {
    case 1: dot_block(d, t0, 1, 2 * NF, w, s); break;
    case 2: dot_block(d, t0, 2, 2 * NF, w, s); break;
    case 3: dot_block(d, t0, 3, 2 * NF, w, s); break;
    default: dot_block(d, t0, SG_DOT_TB, 2 * NF, w, s); break;
  }
}
static void dot_block_nt(const sg_dot *d, int64_t t0, int nt, int nf, const char *const *w,
                         float s[SG_DOT_TB][2 * SG_DOT_NF]) {
  if (nf == 3) dot_block_nf(d, t0, nt, 3, w, s);
  else dot_block_nf(d, t0, nt, SG_DOT_NF, w, s);
}

static void glu_fwd_dot(const sg_linear_problem *p, sg_mat h, sg_mat pg, sg_mat pu, float *ws, int nth) {
  const int64_t T = p->T, D = p->D, H = p->H;
  if (T <= 0 || H <= 0) return;
  float *xf = NULL;
  if (!dot_pairs(p)) {
    xf = align64(ws);
    const size_t xes = sg_dtype_size(p->x.dtype);
    for (int64_t t = 0; t < T; ++t) conv_run(p->x.base + t * p->x.row_stride * (int64_t)xes, p->x.dtype, D, xf + t * D);
  }
  const sg_dot dd = {D, xf, p->x.base, p->x.row_stride, p->wg.dtype};
  const sg_mat bg = mat_of(&p->bg), bu = mat_of(&p->bu);
  const int NF = dot_nf(T);
  const int64_t ngroups = (H + NF - 1) / NF;
  const size_t wes = sg_dtype_size(p->wg.dtype);
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t fgi = 0; fgi < ngroups; ++fgi) {
    const int64_t f = fgi * NF;
    const int nf = (int)(H - f < NF ? H - f : NF);
    const char *w[2 * SG_DOT_NF];
    for (int q = 0; q < NF; ++q) { /* features past H repeat the last one, unused */
      const int64_t fq = f + (q < nf ? q : nf - 1);
      w[2 * q] = p->wg.base + fq * p->wg.row_stride * (int64_t)wes;
      w[2 * q + 1] = p->wu.base + fq * p->wu.row_stride * (int64_t)wes;
    }
    float bgv[SG_DOT_NF] = {0}, buv[SG_DOT_NF] = {0};
    if (p->bg.base) {
      mat_seg(&bg, 0, f, 1, nf, bgv);
      mat_seg(&bu, 0, f, 1, nf, buv);
    }
    for (int64_t t0 = 0; t0 < T; t0 += SG_DOT_TB) {
      const int nt = (int)(T - t0 < SG_DOT_TB ? T - t0 : SG_DOT_TB);
      float s[SG_DOT_TB][2 * SG_DOT_NF];
      dot_block_nt(&dd, t0, nt, NF, w, s);
      enum { NV = SG_DOT_TB * SG_DOT_NF, NA = (NV + SG_W - 1) / SG_W * SG_W };
      SG_ALIGNED float gv[NA] = {0}, uv[NA] = {0}, hv[NA];
      for (int t = 0; t < nt; ++t)
        for (int q = 0; q < nf; ++q) {
          gv[t * NF + q] = s[t][2 * q] + bgv[q];
          uv[t * NF + q] = s[t][2 * q + 1] + buv[q];
        }
      if (h.p) glu_run(p->activation, p->alpha, p->limit, gv, uv, NA, hv);
      for (int t = 0; t < nt; ++t) {
        if (pg.p) {
          sg_mat a = mat_at(&pg, t0 + t, f), c = mat_at(&pu, t0 + t, f);
          store_run((char *)a.p, a.dt, a.cs, gv + t * NF, nf, 0);
          store_run((char *)c.p, c.dt, c.cs, uv + t * NF, nf, 0);
        }
        if (h.p) {
          sg_mat o = mat_at(&h, t0 + t, f);
          store_run((char *)o.p, o.dt, o.cs, hv + t * NF, nf, 0);
        }
      }
    }
  }
}

/* The workspace of each op is the largest of its GEMMs' (M, N, K) below.
 * Where a GEMM's M varies (the MoE forms: an expert's rows) its K is fixed,
 * and gemm_ws_floats is monotone in M, so T rows bound every expert. */
static size_t glu_bwd_ws_floats(const sg_linear_problem *p, int nth) {
  size_t need = gemm_ws_floats(p->T, glu_fwd_cols(p->H), p->D, nth); /* the recompute */
  size_t n2 = gemm_ws_floats(p->T, p->D, 2 * p->H, nth), n3 = gemm_ws_floats(p->H, p->D, p->T, nth);
  if (n2 > need) need = n2;
  if (n3 > need) need = n3;
  return (size_t)p->T * (size_t)(2 * p->H) + 16 + need;
}

size_t SG_NAME(sg_cpu_linear_ws)(const sg_linear_problem *p, int nth) {
  size_t f = 0;
  switch (p->op) {
    case SG_LIN_GLU_FWD: f = gemm_ws_floats(p->T, glu_fwd_cols(p->H), p->D, nth); break;
    case SG_LIN_GLU_BWD: f = glu_bwd_ws_floats(p, nth); break;
    case SG_LIN_DOWN_FWD: f = gemm_ws_floats(p->T, p->D, p->H, nth); break;
    default: {
      size_t a = gemm_ws_floats(p->T, p->H, p->D, nth), b = gemm_ws_floats(p->D, p->H, p->T, nth);
      f = a > b ? a : b;
      break;
    }
  }
  return f * 4 + 64;
}

/* dpre = GLU backward of dh at the pre-activations, fp32 [T, 2H] gate | up. */
static void glu_bwd_rows(const sg_linear_problem *p, sg_mat pg, sg_mat pu, float *dpre, int nth) {
  const int64_t T = p->T, H = p->H;
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t c0 = 0; c0 < H; c0 += SG_SEG) {
      const int64_t n = H - c0 < SG_SEG ? H - c0 : SG_SEG;
      SG_ALIGNED float gv[SG_SEG] = {0}, uv[SG_SEG] = {0}, dh[SG_SEG] = {0};
      SG_ALIGNED float dg[SG_SEG], du[SG_SEG];
      mat_seg(&pg, t, c0, 1, n, gv);
      mat_seg(&pu, t, c0, 1, n, uv);
      sg_mat mdh = mat_of(&p->dh);
      mat_seg(&mdh, t, c0, 1, n, dh);
      glu_bwd_run(p->activation, p->alpha, p->limit, gv, uv, dh, n, dg, du);
      memcpy(dpre + t * 2 * H + c0, dg, (size_t)n * 4);
      memcpy(dpre + t * 2 * H + H + c0, du, (size_t)n * 4);
    }
  }
}

static void glu_linear_backward(const sg_linear_problem *p, float *ws, int nth) {
  const int64_t T = p->T, H = p->H, D = p->D;
  float *dpre = align64(ws);
  float *gws = align64(dpre + (size_t)T * (size_t)(2 * H));
  sg_mat pg, pu;
  if (p->pg.base) {
    pg = mat_of(&p->pg);
    pu = mat_of(&p->pu);
  } else {
    /* Recompute the pre-activations into dpre's storage (fp32, gate | up);
     * the backward below reads each element before writing it. */
    sg_mat none = {NULL, 0, 0, SG_F32};
    sg_mat g = {(const char *)dpre, 2 * H, 1, SG_F32};
    sg_mat u = {(const char *)(dpre + H), 2 * H, 1, SG_F32};
    glu_fwd_gemm(p, none, g, u, gws, nth);
    pg = g;
    pu = u;
  }
  glu_bwd_rows(p, pg, pu, dpre, nth);
  sg_mat dp = {(const char *)dpre, 2 * H, 1, SG_F32};
  if (p->dx.base) { /* dX = dpre [T, 2H] . [Wg; Wu] [2H, D] */
    sg_gemm g;
    memset(&g, 0, sizeof g);
    g.M = T;
    g.N = D;
    g.K = 2 * H;
    g.A.kind = SRC_PLAIN;
    g.A.a = dp;
    g.B.kind = SRC_SPLIT;
    g.B.a = mat_of(&p->wg);
    g.B.b = mat_of(&p->wu);
    g.B.split = H;
    g.epi = EPI_STORE;
    g.c = mat_of(&p->dx);
    g.a_to_bf16 = 1; /* where [Wg; Wu] is bf16 */
    gemm_run(&g, gws, nth);
  }
  const int acc = (p->flags & SWIGLU_LINEAR_ACCUMULATE) != 0;
  if (p->dwg.base) { /* dWg = dG^T X, dWu = dU^T X */
    for (int half = 0; half < 2; ++half) {
      sg_gemm g;
      memset(&g, 0, sizeof g);
      g.M = H;
      g.N = D;
      g.K = T;
      g.A.kind = SRC_PLAIN;
      g.A.a = (sg_mat){(const char *)(dpre + half * H), 1, 2 * H, SG_F32};
      g.B.kind = SRC_PLAIN;
      g.B.a = mat_of(&p->x);
      g.epi = EPI_STORE;
      g.c = mat_of(half ? &p->dwu : &p->dwg);
      g.accumulate = acc;
      g.a_to_bf16 = 1; /* where X is bf16 */
      gemm_run(&g, gws, nth);
    }
  }
  if (p->dbg.base) { /* column sums, in fp32 in row order */
    for (int half = 0; half < 2; ++half) {
      const sg_operand *db = half ? &p->dbu : &p->dbg;
#pragma omp parallel for num_threads(nth) schedule(static)
      for (int64_t c0 = 0; c0 < H; c0 += SG_SEG) {
        const int64_t n = H - c0 < SG_SEG ? H - c0 : SG_SEG;
        SG_ALIGNED float s[SG_SEG] = {0};
        for (int64_t t = 0; t < T; ++t) {
          const float *row = dpre + t * 2 * H + half * H + c0;
          for (int64_t j = 0; j < n; ++j) s[j] += row[j];
        }
        sg_mat m = mat_of(db);
        sg_mat at = mat_at(&m, 0, c0);
        store_run((char *)at.p, at.dt, at.cs, s, n, acc);
      }
    }
  }
}

/* The down projection GEMM g (C = y, M <= SG_DOT_T rows) with weight w as
 * dot products: g's A, h = act(G) * m(U), in fp32 into the workspace (the
 * prologue the GEMM runs while packing), then each output column is h's row
 * dot the weight row [D, H] holds for it -- read in place, like the GLU
 * linear forward's few-row path. For an MoE layer at decode every expert
 * sees a few rows, and packing its weights was most of the time. */
static void down_dot(const sg_gemm *g, const sg_operand *w, float *ws, int nth) {
  const int64_t n = g->M, H = g->K, D = g->N;
  float *hf = align64(ws);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < H; c += SG_SEG) src_seg(&g->A, t, c, 1, H - c < SG_SEG ? H - c : SG_SEG, hf + t * H + c);
  const sg_dot dd = {H, hf, NULL, 0, w->dtype};
  const int NF = dot_nf(n), NW = 2 * NF; /* output columns per block */
  const int64_t nblk = (D + NW - 1) / NW;
  const size_t wes = sg_dtype_size(w->dtype);
  const sg_mat y = g->c;
#pragma omp parallel for num_threads(nth) schedule(static)
  for (int64_t bi = 0; bi < nblk; ++bi) {
    const int64_t d0 = bi * NW;
    const int nd = (int)(D - d0 < NW ? D - d0 : NW);
    const char *wr[2 * SG_DOT_NF];
    for (int j = 0; j < NW; ++j) wr[j] = w->base + (d0 + (j < nd ? j : nd - 1)) * w->row_stride * (int64_t)wes;
    for (int64_t t0 = 0; t0 < n; t0 += SG_DOT_TB) {
      const int nt = (int)(n - t0 < SG_DOT_TB ? n - t0 : SG_DOT_TB);
      float s[SG_DOT_TB][2 * SG_DOT_NF];
      dot_block_nt(&dd, t0, nt, NF, wr, s);
      for (int t = 0; t < nt; ++t) {
        const sg_mat o = mat_at(&y, t0 + t, d0);
        store_run((char *)o.p, o.dt, o.cs, s[t], nd, 0);
      }
    }
  }
}

static void down_forward(const sg_linear_problem *p, float *ws, int nth) {
  const int32_t E = p->experts > 0 ? p->experts : 1;
  for (int32_t e = 0; e < E; ++e) {
    const int64_t r0 = p->experts ? p->offsets[e] : 0, r1 = p->experts ? p->offsets[e + 1] : p->T;
    if (r1 == r0) continue;
    sg_gemm g;
    memset(&g, 0, sizeof g);
    gemm_set_act(&g, p);
    g.M = r1 - r0;
    g.N = p->D;
    g.K = p->H;
    g.A.kind = SRC_GLU;
    g.A.a = mat_rows(mat_of(&p->pg), r0);
    g.A.b = mat_rows(mat_of(&p->pu), r0);
    sg_operand w = p->wd;
    w.base += e * p->wd_expert_stride * (int64_t)sg_dtype_size(w.dtype);
    g.B.kind = SRC_PLAIN;
    g.B.a = mat_t(&w);
    g.epi = EPI_STORE;
    g.c = mat_rows(mat_of(&p->y), r0);
    if (g.M <= SG_DOT_T && w.col_step == 1) down_dot(&g, &w, ws, nth);
    else gemm_run(&g, ws, nth);
  }
}

static void down_backward(const sg_linear_problem *p, float *ws, int nth) {
  const int32_t E = p->experts > 0 ? p->experts : 1;
  const int acc = (p->flags & SWIGLU_LINEAR_ACCUMULATE) != 0;
  for (int32_t e = 0; e < E; ++e) {
    const int64_t r0 = p->experts ? p->offsets[e] : 0, r1 = p->experts ? p->offsets[e + 1] : p->T;
    sg_operand w = p->wd;
    w.base += e * p->wd_expert_stride * (int64_t)sg_dtype_size(w.dtype);
    if (r1 > r0) { /* dh = dy Wd, GLU backward in the epilogue */
      sg_gemm g;
      memset(&g, 0, sizeof g);
      gemm_set_act(&g, p);
      g.M = r1 - r0;
      g.N = p->H;
      g.K = p->D;
      g.A.kind = SRC_PLAIN;
      g.A.a = mat_rows(mat_of(&p->y), r0);
      g.B.kind = SRC_PLAIN;
      g.B.a = mat_of(&w);
      g.epi = EPI_GLU_BWD;
      g.pg = mat_rows(mat_of(&p->pg), r0);
      g.pu = mat_rows(mat_of(&p->pu), r0);
      g.dpg = mat_rows(mat_of(&p->dpg), r0);
      g.dpu = mat_rows(mat_of(&p->dpu), r0);
      gemm_run(&g, ws, nth);
    }
    if (p->dwd.base && (r1 > r0 || !acc)) { /* dWd = dy^T h, h recomputed while packing */
      sg_operand dw = p->dwd;
      dw.base += e * p->dwd_expert_stride * (int64_t)sg_dtype_size(dw.dtype);
      sg_gemm g;
      memset(&g, 0, sizeof g);
      gemm_set_act(&g, p);
      g.M = p->D;
      g.N = p->H;
      g.K = r1 - r0;
      g.A.kind = SRC_PLAIN;
      g.A.a = mat_rows(mat_t(&p->y), 0);
      g.A.a.p = mat_at(&g.A.a, 0, r0).p;
      g.B.kind = SRC_GLU;
      g.B.a = mat_rows(mat_of(&p->pg), r0);
      g.B.b = mat_rows(mat_of(&p->pu), r0);
      g.epi = EPI_STORE;
      g.c = mat_of(&dw);
      g.accumulate = acc;
      gemm_run(&g, ws, nth);
    }
  }
}

void SG_NAME(sg_cpu_linear)(const sg_linear_problem *p, int nth) {
  float *ws = (float *)p->workspace;
  switch (p->op) {
    case SG_LIN_GLU_FWD: {
      sg_mat pg = {NULL, 0, 0, SG_F32}, pu = pg;
      if (p->pg.base) {
        pg = mat_of(&p->pg);
        pu = mat_of(&p->pu);
      }
      if (glu_fwd_dot_ok(p)) glu_fwd_dot(p, mat_of(&p->h), pg, pu, ws, nth);
      else glu_fwd_gemm(p, mat_of(&p->h), pg, pu, ws, nth);
      break;
    }
    case SG_LIN_GLU_BWD: glu_linear_backward(p, ws, nth); break;
    case SG_LIN_DOWN_FWD: down_forward(p, ws, nth); break;
    default: down_backward(p, ws, nth); break;
  }
}
