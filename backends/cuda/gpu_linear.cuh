/*
 * The GEMM-fused GLU ops on NVIDIA GPUs, composed for now: cuBLASLt GEMMs
 * plus the backend's own elementwise kernels, with the [T, 2H]
 * intermediates in the caller's workspace. A fused tensor-core kernel is a
 * later step; this makes the ops available and correct on the GPU today.
 *
 * cuBLASLt is opened at run time (dlopen), so the module still loads where
 * the CUDA runtime is present and cuBLASLt is not; the ops then report
 * SWIGLU_ERROR_UNSUPPORTED with the reason. Included by gpu_backend.cu for
 * CUDA only; the HIP module leaves these ops out (unsupported, visibly).
 *
 * Numerics (docs/numerics.md, "GEMM-fused ops"): every GEMM accumulates in
 * true fp32 (CUBLAS_COMPUTE_32F, no TF32) into an fp32 buffer; operands of
 * different dtypes are widened to fp32 exactly; an intermediate (h, the
 * pre-activation gradient) is rounded to the dtype of the operand it meets
 * before its GEMM, which the tolerance allows.
 */
#include <cublasLt.h>
#include <dlfcn.h>

/* --------------------------------------------------------------- cuBLASLt */

struct sg_lt_api {
  decltype(&cublasLtCreate) create;
  decltype(&cublasLtDestroy) destroy;
  decltype(&cublasLtMatmulDescCreate) desc_create;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set;
  decltype(&cublasLtMatrixLayoutCreate) layout_create;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic;
  decltype(&cublasLtMatmul) matmul;
};

/* cuBLASLt, opened once per process. The function-local static makes the
 * first use thread-safe (contexts may be created on several threads at
 * once). */
struct sg_lt_loaded {
  sg_lt_api api;
  bool ok;
  char reason[200];
};

static sg_lt_loaded sg_lt_open() {
  sg_lt_loaded L;
  memset(&L, 0, sizeof L);
  const char *names[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
  void *h = NULL;
  for (const char *n : names)
    if ((h = dlopen(n, RTLD_NOW | RTLD_LOCAL))) break;
  if (!h) {
    snprintf(L.reason, sizeof L.reason, "cuBLASLt not found (libcublasLt.so.13/.12): %s", dlerror());
    return L;
  }
  bool ok = true;
#define SG_LT_SYM(field, name) ok = ok && (*(void **)&L.api.field = dlsym(h, #name)) != NULL
  SG_LT_SYM(create, cublasLtCreate);
  SG_LT_SYM(destroy, cublasLtDestroy);
  SG_LT_SYM(desc_create, cublasLtMatmulDescCreate);
  SG_LT_SYM(desc_destroy, cublasLtMatmulDescDestroy);
  SG_LT_SYM(desc_set, cublasLtMatmulDescSetAttribute);
  SG_LT_SYM(layout_create, cublasLtMatrixLayoutCreate);
  SG_LT_SYM(layout_destroy, cublasLtMatrixLayoutDestroy);
  SG_LT_SYM(pref_create, cublasLtMatmulPreferenceCreate);
  SG_LT_SYM(pref_destroy, cublasLtMatmulPreferenceDestroy);
  SG_LT_SYM(pref_set, cublasLtMatmulPreferenceSetAttribute);
  SG_LT_SYM(heuristic, cublasLtMatmulAlgoGetHeuristic);
  SG_LT_SYM(matmul, cublasLtMatmul);
#undef SG_LT_SYM
  if (!ok) snprintf(L.reason, sizeof L.reason, "cuBLASLt lacks a needed symbol: %s", dlerror());
  L.ok = ok;
  return L;
}

/* The API, or NULL with the reason in why. */
static const sg_lt_api *sg_lt_load(char *why, size_t cap) {
  static const sg_lt_loaded L = sg_lt_open();
  if (!L.ok) {
    snprintf(why, cap, "%s", L.reason);
    return NULL;
  }
  return &L.api;
}

#define SG_LT_WS_BYTES ((size_t)8 << 20) /* cuBLASLt's own scratch, carved from the workspace */

/* Algorithms cuBLASLt's heuristic chose, per GEMM shape: the heuristic
 * query costs tens of microseconds of host time, as much as a decode-sized
 * GEMM, so each context remembers its last few answers. */
struct sg_lt_key {
  int64_t m, n, k, lda, ldb, ldc;
  int32_t type, opa, opb;
  uint32_t al_a, al_b, al_c;
};
static bool sg_lt_key_eq(const sg_lt_key &a, const sg_lt_key &b) {
  return a.m == b.m && a.n == b.n && a.k == b.k && a.lda == b.lda && a.ldb == b.ldb && a.ldc == b.ldc &&
         a.type == b.type && a.opa == b.opa && a.opb == b.opb && a.al_a == b.al_a && a.al_b == b.al_b &&
         a.al_c == b.al_c;
}
struct sg_lt_cache {
  enum { SIZE = 64 };
  sg_lt_key key[SIZE];
  cublasLtMatmulAlgo_t algo[SIZE];
  int used, next;
};

/* A row-major matrix with unit column stride. */
struct sg_rm {
  const char *p;
  int64_t ld;
  int dt; /* sg_dtype */
};

static cudaDataType_t sg_cuda_type(int dt) {
  return dt == SG_F32 ? CUDA_R_32F : dt == SG_BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

/* The alignment cuBLASLt may assume for a matrix: the largest power of two
 * (at most 256) dividing both its address and its row pitch in bytes. */
static uint32_t sg_align_of(const void *p, int64_t ld_bytes) {
  uint64_t v = (uint64_t)(uintptr_t)p | (uint64_t)ld_bytes | 256u;
  return (uint32_t)(v & (~v + 1));
}

struct sg_lin_ctx {
  sg_gpu_state *s;
  const sg_lt_api *lt;
  char *ws;      /* NULL: a dry run that only sizes the workspace */
  size_t used;
  char *lt_ws;   /* cuBLASLt's scratch */
  char *msg;
  size_t cap;
};

static char *sg_take(sg_lin_ctx *c, size_t bytes) {
  size_t off = (c->used + 255) & ~(size_t)255;
  c->used = off + bytes;
  return c->ws ? c->ws + off : NULL;
}

/* C[M, N] (fp32, ldc) = A' B' (+ C when beta), A' = A [M, K] or A^T for A
 * [K, M] (ta), B' = B [K, N] or B^T for B [N, K] (tb); A and B one dtype.
 * Row-major C = A' B' is column-major C^T = B'^T A'^T: cuBLASLt's "A" is
 * our B. */
static swiglu_status sg_gemm(sg_lin_ctx *c, float *C, int64_t ldc, sg_rm A, int ta, sg_rm B, int tb,
                             int64_t M, int64_t N, int64_t K, float beta) {
  if (!c->ws || M == 0 || N == 0) return SWIGLU_SUCCESS;
  char *msg = c->msg;
  size_t cap = c->cap;
  const sg_lt_api *lt = c->lt;
  cublasLtHandle_t h = (cublasLtHandle_t)c->s->lt;
  const cudaDataType_t ab = sg_cuda_type(A.dt);
  cublasLtMatmulDesc_t desc = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
  cublasLtMatmulPreference_t pref = NULL;
  cublasStatus_t st = lt->desc_create(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (st == CUBLAS_STATUS_SUCCESS) st = lt->desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
  if (st == CUBLAS_STATUS_SUCCESS) st = lt->desc_set(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
  /* cuBLASLt's A = our B: rows x cols of its stored column-major form */
  if (st == CUBLAS_STATUS_SUCCESS)
    st = lt->layout_create(&la, ab, tb ? K : N, tb ? N : K, B.ld);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = lt->layout_create(&lb, ab, ta ? M : K, ta ? K : M, A.ld);
  if (st == CUBLAS_STATUS_SUCCESS) st = lt->layout_create(&lc, CUDA_R_32F, N, M, ldc);
  const size_t es = sg_dtype_size(A.dt);
  const uint32_t al_a = sg_align_of(B.p, B.ld * (int64_t)es), al_b = sg_align_of(A.p, A.ld * (int64_t)es),
                 al_c = sg_align_of(C, ldc * 4);
  const sg_lt_key key = {N, M, K, B.ld, A.ld, ldc, (int32_t)ab, (int32_t)opa, (int32_t)opb, al_a, al_b, al_c};
  sg_lt_cache *cache = (sg_lt_cache *)c->s->lt_cache;
  cublasLtMatmulHeuristicResult_t res;
  int found = 0, slot = -1;
  for (int i = 0; cache && i < cache->used; ++i)
    if (sg_lt_key_eq(cache->key[i], key)) slot = i;
  if (slot >= 0) {
    res.algo = cache->algo[slot];
    found = 1;
  } else { /* the preference exists only to ask the heuristic */
    const uint64_t wsb = SG_LT_WS_BYTES;
    if (st == CUBLAS_STATUS_SUCCESS) st = lt->pref_create(&pref);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = lt->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c);
    if (st == CUBLAS_STATUS_SUCCESS) st = lt->heuristic(h, desc, la, lb, lc, lc, pref, 1, &res, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0 && cache) {
      int i = cache->next;
      cache->next = (cache->next + 1) % sg_lt_cache::SIZE;
      if (cache->used < sg_lt_cache::SIZE) ++cache->used;
      cache->key[i] = key;
      cache->algo[i] = res.algo;
    }
  }
  const float one = 1.0f;
  if (st == CUBLAS_STATUS_SUCCESS && found > 0)
    st = lt->matmul(h, desc, &one, B.p, la, A.p, lb, &beta, C, lc, C, lc, &res.algo, c->lt_ws,
                    SG_LT_WS_BYTES, c->s->stream);
  if (pref) lt->pref_destroy(pref);
  if (lc) lt->layout_destroy(lc);
  if (lb) lt->layout_destroy(lb);
  if (la) lt->layout_destroy(la);
  if (desc) lt->desc_destroy(desc);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
    snprintf(msg, cap, "cuBLASLt matmul %lldx%lldx%lld (%s): status %d%s", (long long)M, (long long)N,
             (long long)K, A.dt == SG_F32 ? "f32" : A.dt == SG_BF16 ? "bf16" : "f16", (int)st,
             found ? "" : ", no algorithm");
    return SWIGLU_ERROR_BACKEND_FAILURE;
  }
  return SWIGLU_SUCCESS;
}

/* ------------------------------------------------------------- conversions */

/* out[r, c] = in[r, c] (+ bias[c]) (+ out[r, c] when acc), any dtypes and
 * steps; in == NULL reads zeros. */
struct sg_cvt {
  const char *in;
  int64_t in_rs, in_cs;
  int in_dt;
  char *out;
  int64_t out_rs, out_cs;
  int out_dt;
  const char *bias;
  int64_t bias_cs;
  int bias_dt;
  int acc;
  int64_t rows, cols;
};

__global__ void sg_cvt_kernel(const sg_cvt a) {
  const int64_t n = a.rows * a.cols;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t r = i / a.cols, col = i % a.cols;
    float v = a.in ? sg_cvt_in(a.in, a.in_dt, r * a.in_rs + col * a.in_cs) : 0.0f;
    if (a.bias) v += sg_cvt_in(a.bias, a.bias_dt, col * a.bias_cs);
    const int64_t o = r * a.out_rs + col * a.out_cs;
    if (a.acc) v += sg_cvt_in(a.out, a.out_dt, o);
    if (a.out_dt == SG_F32)
      ((float *)a.out)[o] = v;
    else
      ((uint16_t *)a.out)[o] = sg_to_half_bits(v, a.out_dt);
  }
}

static swiglu_status sg_convert(sg_lin_ctx *c, const sg_cvt &a) {
  if (!c->ws || a.rows == 0 || a.cols == 0) return SWIGLU_SUCCESS;
  const int64_t n = a.rows * a.cols;
  int64_t blocks = (n + 255) / 256;
  if (blocks > 8 * (int64_t)c->s->sm_count * 8) blocks = 64 * (int64_t)c->s->sm_count;
  sg_cvt_kernel<<<(unsigned)blocks, 256, 0, c->s->stream>>>(a);
  return sg_launched("conversion kernel", c->msg, c->cap);
}

static sg_cvt sg_cvt_of(const void *in, int64_t in_rs, int in_dt, const sg_operand &out, int64_t rows,
                        int64_t cols, int acc) {
  sg_cvt a;
  memset(&a, 0, sizeof a);
  a.in = (const char *)in, a.in_rs = in_rs, a.in_cs = 1, a.in_dt = in_dt;
  a.out = out.base, a.out_rs = out.row_stride, a.out_cs = out.col_step, a.out_dt = out.dtype;
  a.acc = acc, a.rows = rows, a.cols = cols;
  return a;
}

/* m as a GEMM operand of dtype dt: itself when it already is one and its
 * rows have a pitch cuBLASLt accepts, else a compact [rows, cols] copy. (A
 * row stride below cols is legal for an input, e.g. 0 repeats one row; a
 * single row just gets the pitch cols.) */
static swiglu_status sg_as_dtype(sg_lin_ctx *c, const sg_operand &m, int64_t rows, int64_t cols, int dt,
                                 sg_rm *out) {
  if (m.dtype == dt && (rows <= 1 || m.row_stride >= cols)) {
    *out = {m.base, rows <= 1 && m.row_stride < cols ? cols : m.row_stride, dt};
    return SWIGLU_SUCCESS;
  }
  char *p = sg_take(c, (size_t)(rows * cols) * sg_dtype_size(dt));
  sg_operand o;
  memset(&o, 0, sizeof o);
  o.base = p, o.row_stride = cols, o.col_step = 1, o.dtype = dt;
  sg_cvt a = sg_cvt_of(m.base, m.row_stride, m.dtype, o, rows, cols, 0);
  *out = {p, cols, dt};
  return sg_convert(c, a);
}

static sg_operand sg_op(const void *p, int64_t rs, int dt) {
  sg_operand o;
  memset(&o, 0, sizeof o);
  o.base = (char *)p, o.row_stride = rs, o.col_step = 1, o.dtype = dt;
  return o;
}

/* The elementwise GLU kernels on operands the composition prepared. */
static swiglu_status sg_glu_ew(sg_lin_ctx *c, const sg_linear_problem *p, bool bwd, const sg_operand &g,
                               const sg_operand &u, const sg_operand &dh, const sg_operand &out_a,
                               const sg_operand &out_b, int64_t rows) {
  if (!c->ws || rows == 0) return SWIGLU_SUCCESS;
  sg_glu_problem q;
  memset(&q, 0, sizeof q);
  q.activation = p->activation, q.alpha = p->alpha, q.limit = p->limit;
  q.rows = rows, q.width = p->H, q.gate = g, q.up = u;
  if (bwd) {
    q.dh = dh, q.dgate = out_a, q.dup = out_b;
    return gpu_glu_backward(c->s, &q, c->msg, c->cap);
  }
  q.h = out_a;
  return gpu_glu_forward(c->s, &q, c->msg, c->cap);
}

__global__ void sg_ones_kernel(float *p, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    p[i] = 1.0f;
}
static swiglu_status sg_fill_ones(sg_lin_ctx *c, float *p, int64_t n) {
  if (!c->ws || n == 0) return SWIGLU_SUCCESS;
  sg_ones_kernel<<<(unsigned)((n + 255) / 256 < 1024 ? (n + 255) / 256 : 1024), 256, 0, c->s->stream>>>(p, n);
  return sg_launched("fill kernel", c->msg, c->cap);
}

#define SG_TRY(x)                     \
  do {                                \
    swiglu_status st_ = (x);          \
    if (st_) return st_;              \
  } while (0)

/* The dtype two GEMM operands share: theirs, or fp32 when they differ. */
static int sg_common(int a, int b) { return a == b ? a : SG_F32; }

/* The gate and up halves of the fp32 [T, 2H] pre-activation buffer, which
 * is in the weights' layout (gate | up for separate weights). */
static void sg_pre_halves(const sg_linear_problem *p, float *pre, sg_operand *g, sg_operand *u) {
  const int64_t H = p->H;
  *g = sg_op(pre, 2 * H, SG_F32);
  *u = sg_op(pre ? pre + H : NULL, 2 * H, SG_F32);
  if (p->pre_layout == SWIGLU_LAYOUT_UP_GATE) {
    *u = sg_op(pre, 2 * H, SG_F32);
    *g = sg_op(pre ? pre + H : NULL, 2 * H, SG_F32);
  } else if (p->pre_layout == SWIGLU_LAYOUT_INTERLEAVED) {
    *u = sg_op(pre ? pre + 1 : NULL, 2 * H, SG_F32);
    g->col_step = u->col_step = 2;
  }
}

/* Pre-activations X W^T + b into pre (fp32 [T, 2H], the weights' layout):
 * one GEMM over a packed [2H, D] weight, two over separate ones. */
static swiglu_status sg_preact(sg_lin_ctx *c, const sg_linear_problem *p, float *pre) {
  const int64_t T = p->T, D = p->D, H = p->H;
  const int dt = sg_common(p->x.dtype, sg_common(p->wg.dtype, p->wu.dtype));
  sg_rm x;
  SG_TRY(sg_as_dtype(c, p->x, T, D, dt, &x));
  if (p->w2h.base) {
    sg_rm w;
    SG_TRY(sg_as_dtype(c, p->w2h, 2 * H, D, dt, &w));
    SG_TRY(sg_gemm(c, pre, 2 * H, x, 0, w, 1, T, 2 * H, D, 0.0f));
    if (p->b2h.base) {
      sg_cvt a = sg_cvt_of(pre, 2 * H, SG_F32, sg_op(pre, 2 * H, SG_F32), T, 2 * H, 0);
      a.bias = p->b2h.base, a.bias_cs = 1, a.bias_dt = p->b2h.dtype;
      SG_TRY(sg_convert(c, a));
    }
    return SWIGLU_SUCCESS;
  }
  sg_rm wg, wu;
  SG_TRY(sg_as_dtype(c, p->wg, H, D, dt, &wg));
  SG_TRY(sg_as_dtype(c, p->wu, H, D, dt, &wu));
  SG_TRY(sg_gemm(c, pre, 2 * H, x, 0, wg, 1, T, H, D, 0.0f));
  SG_TRY(sg_gemm(c, pre + H, 2 * H, x, 0, wu, 1, T, H, D, 0.0f));
  if (p->bg.base) {
    for (int half = 0; half < 2; ++half) {
      const sg_operand &b = half ? p->bu : p->bg;
      float *ph = pre ? pre + half * H : NULL;
      sg_cvt a = sg_cvt_of(ph, 2 * H, SG_F32, sg_op(ph, 2 * H, SG_F32), T, H, 0);
      a.bias = b.base, a.bias_cs = b.col_step, a.bias_dt = b.dtype;
      SG_TRY(sg_convert(c, a));
    }
  }
  return SWIGLU_SUCCESS;
}

static swiglu_status sg_lin_glu_fwd(sg_lin_ctx *c, const sg_linear_problem *p) {
  const int64_t T = p->T, H = p->H;
  if (T == 0) return SWIGLU_SUCCESS;
  float *pre = (float *)sg_take(c, (size_t)(T * 2 * H) * 4);
  SG_TRY(sg_preact(c, p, pre));
  sg_operand g, u, none;
  sg_pre_halves(p, pre, &g, &u);
  if (p->pg.base) {
    sg_cvt a = sg_cvt_of(g.base, 2 * H, SG_F32, p->pg, T, H, 0);
    a.in_cs = g.col_step;
    SG_TRY(sg_convert(c, a));
    a = sg_cvt_of(u.base, 2 * H, SG_F32, p->pu, T, H, 0);
    a.in_cs = u.col_step;
    SG_TRY(sg_convert(c, a));
  }
  memset(&none, 0, sizeof none);
  return sg_glu_ew(c, p, false, g, u, none, p->h, none, T);
}

static swiglu_status sg_lin_glu_bwd(sg_lin_ctx *c, const sg_linear_problem *p) {
  const int64_t T = p->T, D = p->D, H = p->H;
  const int acc = (p->flags & SWIGLU_LINEAR_ACCUMULATE) != 0;
  if (T == 0) { /* no rows: zero weight and bias gradients (unless accumulating) */
    if (!acc) {
      if (p->dwg.base) {
        SG_TRY(sg_convert(c, sg_cvt_of(NULL, 0, SG_F32, p->dwg, H, D, 0)));
        SG_TRY(sg_convert(c, sg_cvt_of(NULL, 0, SG_F32, p->dwu, H, D, 0)));
      }
      if (p->dbg.base) {
        SG_TRY(sg_convert(c, sg_cvt_of(NULL, 0, SG_F32, p->dbg, 1, H, 0)));
        SG_TRY(sg_convert(c, sg_cvt_of(NULL, 0, SG_F32, p->dbu, 1, H, 0)));
      }
    }
    return SWIGLU_SUCCESS;
  }
  sg_operand g = p->pg, u = p->pu, none;
  memset(&none, 0, sizeof none);
  if (!g.base) {
    float *pre = (float *)sg_take(c, (size_t)(T * 2 * H) * 4);
    SG_TRY(sg_preact(c, p, pre));
    sg_pre_halves(p, pre, &g, &u);
  }
  float *dpre = (float *)sg_take(c, (size_t)(T * 2 * H) * 4);
  SG_TRY(sg_glu_ew(c, p, true, g, u, p->dh, sg_op(dpre, 2 * H, SG_F32),
                   sg_op(dpre ? dpre + H : NULL, 2 * H, SG_F32), T));
  const sg_operand dp = sg_op(dpre, 2 * H, SG_F32);
  if (p->dx.base) { /* dX = dG Wg + dU Wu, dpre rounded to the weights' dtype */
    const int wdt = sg_common(p->wg.dtype, p->wu.dtype);
    sg_rm a, wg, wu;
    SG_TRY(sg_as_dtype(c, dp, T, 2 * H, wdt, &a));
    SG_TRY(sg_as_dtype(c, p->wg, H, D, wdt, &wg));
    SG_TRY(sg_as_dtype(c, p->wu, H, D, wdt, &wu));
    float *dx = (float *)sg_take(c, (size_t)(T * D) * 4);
    sg_rm a_up = {a.p ? a.p + H * sg_dtype_size(wdt) : NULL, a.ld, wdt};
    SG_TRY(sg_gemm(c, dx, D, a, 0, wg, 0, T, D, H, 0.0f));
    SG_TRY(sg_gemm(c, dx, D, a_up, 0, wu, 0, T, D, H, 1.0f));
    SG_TRY(sg_convert(c, sg_cvt_of(dx, D, SG_F32, p->dx, T, D, 0)));
  }
  if (p->dwg.base) { /* dW = dpre^T X, dpre rounded to X's dtype */
    sg_rm a, x;
    SG_TRY(sg_as_dtype(c, dp, T, 2 * H, p->x.dtype, &a));
    SG_TRY(sg_as_dtype(c, p->x, T, D, p->x.dtype, &x));
    float *dw = (float *)sg_take(c, (size_t)(H * D) * 4);
    for (int half = 0; half < 2; ++half) {
      sg_rm ah = {a.p ? a.p + half * H * sg_dtype_size(a.dt) : NULL, a.ld, a.dt};
      SG_TRY(sg_gemm(c, dw, D, ah, 1, x, 0, H, D, T, 0.0f));
      SG_TRY(sg_convert(c, sg_cvt_of(dw, D, SG_F32, half ? p->dwu : p->dwg, H, D, acc)));
    }
  }
  if (p->dbg.base) { /* db = ones[1, T] dpre, in fp32 */
    float *ones = (float *)sg_take(c, (size_t)T * 4), *db = (float *)sg_take(c, (size_t)(2 * H) * 4);
    SG_TRY(sg_fill_ones(c, ones, T));
    sg_rm o = {(const char *)ones, T, SG_F32}, a = {(const char *)dpre, 2 * H, SG_F32};
    SG_TRY(sg_gemm(c, db, 2 * H, o, 0, a, 0, 1, 2 * H, T, 0.0f));
    SG_TRY(sg_convert(c, sg_cvt_of(db, 0, SG_F32, p->dbg, 1, H, acc)));
    SG_TRY(sg_convert(c, sg_cvt_of(db ? db + H : NULL, 0, SG_F32, p->dbu, 1, H, acc)));
  }
  return SWIGLU_SUCCESS;
}

static sg_operand sg_expert(const sg_operand &w, int64_t stride, int64_t e) {
  sg_operand o = w;
  o.base += e * stride * (int64_t)sg_dtype_size(w.dtype);
  return o;
}

static swiglu_status sg_lin_down_fwd(sg_lin_ctx *c, const sg_linear_problem *p) {
  const int64_t T = p->T, D = p->D, H = p->H;
  if (T == 0) return SWIGLU_SUCCESS;
  const int wdt = p->wd.dtype;
  sg_operand none;
  memset(&none, 0, sizeof none);
  char *h = sg_take(c, (size_t)(T * H) * sg_dtype_size(wdt)); /* h rounded to Wd's dtype */
  SG_TRY(sg_glu_ew(c, p, false, p->pg, p->pu, none, sg_op(h, H, wdt), none, T));
  float *y = (float *)sg_take(c, (size_t)(T * D) * 4);
  const int32_t E = p->experts ? p->experts : 1;
  for (int32_t e = 0; e < E; ++e) {
    const int64_t r0 = p->experts ? p->offsets[e] : 0, r1 = p->experts ? p->offsets[e + 1] : T;
    if (r1 == r0) continue;
    sg_rm b;
    SG_TRY(sg_as_dtype(c, sg_expert(p->wd, p->wd_expert_stride, e), D, H, wdt, &b));
    sg_rm a = {h ? h + r0 * H * (int64_t)sg_dtype_size(wdt) : NULL, H, wdt};
    SG_TRY(sg_gemm(c, y ? y + r0 * D : NULL, D, a, 0, b, 1, r1 - r0, D, H, 0.0f));
  }
  return sg_convert(c, sg_cvt_of(y, D, SG_F32, p->y, T, D, 0));
}

static swiglu_status sg_lin_down_bwd(sg_lin_ctx *c, const sg_linear_problem *p) {
  const int64_t T = p->T, D = p->D, H = p->H;
  const int acc = (p->flags & SWIGLU_LINEAR_ACCUMULATE) != 0;
  const int32_t E = p->experts ? p->experts : 1;
  const int dt = sg_common(p->y.dtype, p->wd.dtype);
  sg_operand none;
  memset(&none, 0, sizeof none);
  sg_rm dy = {NULL, 0, dt};
  if (T > 0) SG_TRY(sg_as_dtype(c, p->y, T, D, dt, &dy));
  /* dh = dy Wd per expert, then the GLU backward into the outputs */
  float *dh = T > 0 ? (float *)sg_take(c, (size_t)(T * H) * 4) : NULL;
  for (int32_t e = 0; e < E && T > 0; ++e) {
    const int64_t r0 = p->experts ? p->offsets[e] : 0, r1 = p->experts ? p->offsets[e + 1] : T;
    if (r1 == r0) continue;
    sg_rm wm;
    SG_TRY(sg_as_dtype(c, sg_expert(p->wd, p->wd_expert_stride, e), D, H, dt, &wm));
    sg_rm a = {dy.p ? dy.p + r0 * dy.ld * (int64_t)sg_dtype_size(dt) : NULL, dy.ld, dt};
    SG_TRY(sg_gemm(c, dh ? dh + r0 * H : NULL, H, a, 0, wm, 0, r1 - r0, H, D, 0.0f));
  }
  SG_TRY(sg_glu_ew(c, p, true, p->pg, p->pu, sg_op(dh, H, SG_F32), p->dpg, p->dpu, T));
  if (!p->dwd.base) return SWIGLU_SUCCESS;
  /* dWd = dy^T h per expert, h recomputed and rounded to the GEMM dtype */
  char *h = T > 0 ? sg_take(c, (size_t)(T * H) * sg_dtype_size(dt)) : NULL;
  if (T > 0) SG_TRY(sg_glu_ew(c, p, false, p->pg, p->pu, none, sg_op(h, H, dt), none, T));
  float *dw = (float *)sg_take(c, (size_t)(D * H) * 4);
  for (int32_t e = 0; e < E; ++e) {
    const int64_t r0 = p->experts ? p->offsets[e] : 0, r1 = p->experts ? p->offsets[e + 1] : T;
    const sg_operand w = sg_expert(p->dwd, p->dwd_expert_stride, e);
    if (r1 == r0) {
      if (!acc) SG_TRY(sg_convert(c, sg_cvt_of(NULL, 0, SG_F32, w, D, H, 0)));
      continue;
    }
    const size_t es = sg_dtype_size(dt);
    sg_rm a = {dy.p ? dy.p + r0 * dy.ld * (int64_t)es : NULL, dy.ld, dt}, b = {h ? h + r0 * H * (int64_t)es : NULL, H, dt};
    SG_TRY(sg_gemm(c, dw, H, a, 1, b, 0, D, H, r1 - r0, 0.0f));
    SG_TRY(sg_convert(c, sg_cvt_of(dw, H, SG_F32, w, D, H, acc)));
  }
  return SWIGLU_SUCCESS;
}

static swiglu_status sg_lin_run(sg_lin_ctx *c, const sg_linear_problem *p) {
  c->lt_ws = sg_take(c, SG_LT_WS_BYTES);
  switch (p->op) {
    case SG_LIN_GLU_FWD: return sg_lin_glu_fwd(c, p);
    case SG_LIN_GLU_BWD: return sg_lin_glu_bwd(c, p);
    case SG_LIN_DOWN_FWD: return sg_lin_down_fwd(c, p);
    default: return sg_lin_down_bwd(c, p);
  }
}

static swiglu_status sg_lin_ready(sg_gpu_state *s, sg_lin_ctx *c, char *msg, size_t cap) {
  memset(c, 0, sizeof *c);
  c->s = s, c->msg = msg, c->cap = cap;
  if (!s->lt) {
    snprintf(msg, cap, "the GEMM-fused ops need cuBLASLt: %s", s->lt_error);
    return SWIGLU_ERROR_UNSUPPORTED;
  }
  char why[8];
  c->lt = sg_lt_load(why, sizeof why);
  return SWIGLU_SUCCESS;
}

static swiglu_status gpu_linear_workspace(void *state, const sg_linear_problem *p, size_t *bytes, char *msg,
                                          size_t cap) {
  sg_lin_ctx c;
  SG_TRY(sg_lin_ready((sg_gpu_state *)state, &c, msg, cap));
  SG_TRY(sg_lin_run(&c, p)); /* dry: sizes only */
  *bytes = c.used + 256;     /* + alignment of the caller's pointer */
  return SWIGLU_SUCCESS;
}

static swiglu_status gpu_linear(void *state, const sg_linear_problem *p, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  sg_lin_ctx c;
  SG_TRY(sg_lin_ready(s, &c, msg, cap));
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  c.ws = (char *)(((uintptr_t)p->workspace + 255) & ~(uintptr_t)255);
  c.used = 0;
  return sg_lin_run(&c, p);
}

/* At context creation: the cuBLASLt handle (its creation may allocate, so it
 * happens here and not inside an op). */
static void sg_lin_create(sg_gpu_state *s) {
  const sg_lt_api *lt = sg_lt_load(s->lt_error, sizeof s->lt_error);
  s->lt = NULL;
  if (!lt) return;
  cublasLtHandle_t h;
  cublasStatus_t st = lt->create(&h);
  if (st != CUBLAS_STATUS_SUCCESS) {
    snprintf(s->lt_error, sizeof s->lt_error, "cublasLtCreate: status %d", (int)st);
    return;
  }
  s->lt = h;
  s->lt_cache = new sg_lt_cache();
}
static void sg_lin_destroy(sg_gpu_state *s) {
  char why[8];
  const sg_lt_api *lt = sg_lt_load(why, sizeof why);
  if (lt && s->lt) lt->destroy((cublasLtHandle_t)s->lt);
  delete (sg_lt_cache *)s->lt_cache;
}
