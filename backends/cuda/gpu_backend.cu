/*
 * The GPU backend module: libswiglu-cuda.so (nvcc) and libswiglu-hip.so
 * (hipcc, through vendor.h) from this one source. It implements the backend
 * interface of core/swiglu_backend.h: validation has been done by the core;
 * every call enqueues its kernels on the context's stream, allocates nothing
 * and does not synchronize.
 */
#include <stdio.h>
#include <string.h>

#include "vendor.h"
#include "../../core/swiglu_backend.h"
#include "glu_math.cuh"

/* As a module the two entry points are exported under the names the
 * registry dlsym()s; linked into libswiglu (SWIGLU_STATIC_BACKENDS) they get
 * per-backend names the registry's static table refers to. */
#ifdef SWIGLU_STATIC_BACKEND
#define SG_EXPORT extern "C"
#define SG_ENTRY(name) name##_cuda
#else
#define SG_EXPORT extern "C" __attribute__((visibility("default")))
#define SG_ENTRY(name) name
#endif

/* ---------------------------------------------------------------- views */

SG_DI float sg_cvt_in(const char *p, int dt, int64_t i) {
  if (dt == SG_F32) return ((const float *)p)[i];
  uint16_t h = ((const uint16_t *)p)[i];
  if (dt == SG_BF16) return sg_bf16_to_f32(h);
  return __half2float(__ushort_as_half(h));
}

SG_DI uint16_t sg_to_half_bits(float v, int dt) {
  return dt == SG_BF16 ? sg_f32_to_bf16(v) : __half_as_ushort(__float2half_rn(v));
}

/* N consecutive elements (N a multiple of 8) from p, n of them valid; with
 * vec, as 16-byte loads. */
template <int N>
SG_DI void sg_load(const char *p, int dt, int n, bool vec, float (&out)[N]) {
  if (vec && dt == SG_F32) {
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      float4 v = *(const float4 *)(p + 4 * i);
      out[i] = v.x, out[i + 1] = v.y, out[i + 2] = v.z, out[i + 3] = v.w;
    }
  } else if (vec) {
#pragma unroll
    for (int i = 0; i < N; i += 8) {
      uint4 v = *(const uint4 *)(p + 2 * i);
      const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        uint16_t lo = (uint16_t)(w[k] & 0xffffu), hi = (uint16_t)(w[k] >> 16);
        out[i + 2 * k] = dt == SG_BF16 ? sg_bf16_to_f32(lo) : __half2float(__ushort_as_half(lo));
        out[i + 2 * k + 1] = dt == SG_BF16 ? sg_bf16_to_f32(hi) : __half2float(__ushort_as_half(hi));
      }
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; ++i) out[i] = i < n ? sg_cvt_in(p, dt, i) : 0.0f;
  }
}

template <int N>
SG_DI void sg_store(char *p, int dt, int n, bool vec, const float (&v)[N]) {
  if (vec && dt == SG_F32) {
#pragma unroll
    for (int i = 0; i < N; i += 4) *(float4 *)(p + 4 * i) = make_float4(v[i], v[i + 1], v[i + 2], v[i + 3]);
  } else if (vec) {
#pragma unroll
    for (int i = 0; i < N; i += 8) {
      uint32_t w[4];
#pragma unroll
      for (int k = 0; k < 4; ++k)
        w[k] = (uint32_t)sg_to_half_bits(v[i + 2 * k], dt) | ((uint32_t)sg_to_half_bits(v[i + 2 * k + 1], dt) << 16);
      *(uint4 *)(p + 2 * i) = make_uint4(w[0], w[1], w[2], w[3]);
    }
  } else if (dt == SG_F32) {
    for (int i = 0; i < N && i < n; ++i) ((float *)p)[i] = v[i];
  } else {
    for (int i = 0; i < N && i < n; ++i) ((uint16_t *)p)[i] = sg_to_half_bits(v[i], dt);
  }
}

SG_DI bool sg_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

SG_DI char *sg_at(const sg_operand &op, int64_t r, int64_t c) {
  return op.base + (sg_row_offset(&op, r) + c * op.col_step) * (int64_t)sg_dtype_size(op.dtype);
}

/* 8 columns of gate and up at row r, column c0 (n valid). */
SG_DI void sg_load_gu(const sg_glu_problem &p, int64_t r, int64_t c0, int n, float (&g)[8], float (&u)[8]) {
  if (p.gate.col_step == 2) {
    const char *src = sg_at(p.gate, r, c0);
    float t[16];
    sg_load<16>(src, p.gate.dtype, 2 * n, n == 8 && sg_aligned16(src), t);
#pragma unroll
    for (int i = 0; i < 8; ++i) g[i] = t[2 * i], u[i] = t[2 * i + 1];
  } else {
    const char *gp = sg_at(p.gate, r, c0), *up = sg_at(p.up, r, c0);
    sg_load<8>(gp, p.gate.dtype, n, n == 8 && sg_aligned16(gp), g);
    sg_load<8>(up, p.up.dtype, n, n == 8 && sg_aligned16(up), u);
  }
}

/* ---------------------------------------------------------- elementwise */

#define SG_EW_THREADS 128

/* Loads 8 columns of gate and up; GD (the input dtype) and IL (interleaved)
 * are template constants in the hot kernels, -1 / runtime in the general ones. */
template <int GD, int IL>
SG_DI void sg_load_gu_t(const sg_glu_problem &p, int64_t r, int64_t c0, int n, float (&g)[8], float (&u)[8]) {
  const int gd = GD >= 0 ? GD : p.gate.dtype;
  const bool il = IL >= 0 ? IL != 0 : p.gate.col_step == 2;
  if (il) {
    const char *src = sg_at(p.gate, r, c0);
    float t[16];
    sg_load<16>(src, gd, 2 * n, n == 8 && sg_aligned16(src), t);
#pragma unroll
    for (int i = 0; i < 8; ++i) g[i] = t[2 * i], u[i] = t[2 * i + 1];
  } else {
    const char *gp = sg_at(p.gate, r, c0), *up = sg_at(p.up, r, c0);
    sg_load<8>(gp, gd, n, n == 8 && sg_aligned16(gp), g);
    sg_load<8>(up, GD >= 0 ? GD : p.up.dtype, n, n == 8 && sg_aligned16(up), u);
  }
}

template <int ACT, int GD, int IL>
__global__ void __launch_bounds__(SG_EW_THREADS, 12) sg_fwd_kernel(const sg_glu_problem p) {
  const int64_t c0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (c0 >= p.width) return;
  const int n = p.width - c0 < 8 ? (int)(p.width - c0) : 8;
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    float g[8], u[8], h[8];
    sg_load_gu_t<GD, IL>(p, r, c0, n, g, u);
    const bool out16 = p.h.dtype != SG_F32;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      sg_act a = sg_activation(ACT >= 0 ? ACT : p.activation, p.alpha, p.limit, g[i], u[i], false, out16);
      h[i] = a.a * a.m;
    }
    char *hp = sg_at(p.h, r, c0);
    sg_store<8>(hp, p.h.dtype, n, n == 8 && sg_aligned16(hp), h);
  }
}

template <int ACT, int GD, int IL>
__global__ void __launch_bounds__(SG_EW_THREADS, 8) sg_bwd_kernel(const sg_glu_problem p) {
  const int64_t c0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (c0 >= p.width) return;
  const int n = p.width - c0 < 8 ? (int)(p.width - c0) : 8;
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    float g[8], u[8], dh[8], dg[8], du[8], h[8];
    sg_load_gu_t<GD, IL>(p, r, c0, n, g, u);
    const char *dhp = sg_at(p.dh, r, c0);
    sg_load<8>(dhp, p.dh.dtype, n, n == 8 && sg_aligned16(dhp), dh);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      sg_act a = sg_activation(ACT >= 0 ? ACT : p.activation, p.alpha, p.limit, g[i], u[i], true);
      dg[i] = (dh[i] * a.m) * a.da;
      du[i] = (dh[i] * a.a) * a.dm;
      h[i] = a.a * a.m;
      if (p.h.base && p.h.dtype != SG_F32) {
        /* the recomputed h is the forward op's, which has its own 16-bit path */
        sg_act f = sg_activation(ACT >= 0 ? ACT : p.activation, p.alpha, p.limit, g[i], u[i], false, true);
        h[i] = f.a * f.m;
      }
    }
    /* every input of these 8 columns is in registers: in place is safe. The
     * outputs' layout is their own: the GEMM-fused ops write compact halves
     * from an interleaved pre-activation. */
    if (p.dgate.col_step == 2) {
      float t[16];
#pragma unroll
      for (int i = 0; i < 8; ++i) t[2 * i] = dg[i], t[2 * i + 1] = du[i];
      char *o = sg_at(p.dgate, r, c0);
      sg_store<16>(o, p.dgate.dtype, 2 * n, n == 8 && sg_aligned16(o), t);
    } else {
      char *o1 = sg_at(p.dgate, r, c0), *o2 = sg_at(p.dup, r, c0);
      sg_store<8>(o1, p.dgate.dtype, n, n == 8 && sg_aligned16(o1), dg);
      sg_store<8>(o2, p.dup.dtype, n, n == 8 && sg_aligned16(o2), du);
    }
    if (p.h.base) {
      char *hp = sg_at(p.h, r, c0);
      sg_store<8>(hp, p.h.dtype, n, n == 8 && sg_aligned16(hp), h);
    }
  }
}

typedef void (*sg_ew_kernel)(const sg_glu_problem);

/* The kernel instance for a problem: specialised on activation, input dtype
 * and interleaving when gate and up share a dtype (packed layouts always do),
 * the general instance otherwise. */
template <bool BWD, int ACT>
static sg_ew_kernel sg_pick_dt(const sg_glu_problem *p) {
  const bool il = p->gate.col_step == 2;
#define SG_K(GD) (il ? (BWD ? (sg_ew_kernel)sg_bwd_kernel<ACT, GD, 1> : (sg_ew_kernel)sg_fwd_kernel<ACT, GD, 1>) \
                     : (BWD ? (sg_ew_kernel)sg_bwd_kernel<ACT, GD, 0> : (sg_ew_kernel)sg_fwd_kernel<ACT, GD, 0>))
  switch (p->gate.dtype) {
    case SG_BF16: return SG_K(SG_BF16);
    case SG_F16: return SG_K(SG_F16);
    default: return SG_K(SG_F32);
  }
#undef SG_K
}
template <bool BWD>
static sg_ew_kernel sg_pick(const sg_glu_problem *p) {
  if (p->gate.dtype != p->up.dtype)
    return BWD ? (sg_ew_kernel)sg_bwd_kernel<-1, -1, -1> : (sg_ew_kernel)sg_fwd_kernel<-1, -1, -1>;
  switch (p->activation) {
    case 0: return sg_pick_dt<BWD, 0>(p);
    case 1: return sg_pick_dt<BWD, 1>(p);
    case 2: return sg_pick_dt<BWD, 2>(p);
    case 3: return sg_pick_dt<BWD, 3>(p);
    case 4: return sg_pick_dt<BWD, 4>(p);
    default: return sg_pick_dt<BWD, 5>(p);
  }
}

/* ---------------------------------------------------------- quantization */

/* Teams of 32 lanes reduce with width-32 shuffles, whatever the hardware
 * warp or wavefront size (32 on NVIDIA, 64 on CDNA). */
#define SG_TEAM 32

SG_DI float sg_team_max(float v) {
#pragma unroll
  for (int off = SG_TEAM / 2; off > 0; off >>= 1) {
    float o = SG_SHFL_XOR(v, off, SG_TEAM);
    v = o > v ? o : v;
  }
  return v;
}

/* h for one element, as the forward op computes it (rounded to the input
 * dtype with ROUND_H), times the row weight. */
template <int ACT = -1>
SG_DI float sg_quant_h(const sg_quant_problem &p, float g, float u, int64_t r) {
  /* with ROUND_H, exactly the forward op's 16-bit h (same path) */
  sg_act a = sg_activation(ACT >= 0 ? ACT : p.glu.activation, p.glu.alpha, p.glu.limit, g, u, false,
                           p.round_dtype == SG_BF16 || p.round_dtype == SG_F16);
  float h = a.a * a.m;
  if (p.round_dtype == SG_BF16) h = sg_bf16_to_f32(sg_f32_to_bf16(h));
  else if (p.round_dtype == SG_F16) h = __half2float(__float2half_rn(h));
  if (p.row_weight) h = h * p.row_weight[r];
  return h;
}

SG_DI bool sg_row_live(const sg_quant_problem &p, int64_t r) {
  return !p.expert_counts || (r % p.rows_per_expert) < p.expert_counts[r / p.rows_per_expert];
}

/* Groups of TL * 8 elements (G = 32, 64, 128, 256): TL lanes per group, each
 * lane owning 8 consecutive elements (16-byte loads). blockIdx.y walks the
 * rows, so no thread divides 64-bit indices in the loop. Lanes past the last
 * group still take part in the width-TL shuffles. ACT and GD specialise the
 * common cases (template constants; -1 reads them from the problem). */
template <int TL, int ACT, int GD, int FMT = -1>
__global__ void __launch_bounds__(256) sg_quant_team_kernel(const sg_quant_problem p, const int *bad) {
  if (bad && *bad) return;
  const int sub = threadIdx.x % TL;
  const int64_t g = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / TL;
  const int64_t c0 = g * p.group + sub * 8;
  for (int64_t r = blockIdx.y; r < p.glu.rows; r += gridDim.y) {
    const bool live = g < p.groups && sg_row_live(p, r);
    float h[8];
    if (live) {
      float gg[8], uu[8];
      sg_load_gu_t<GD, -1>(p.glu, r, c0, 8, gg, uu);
#pragma unroll
      for (int i = 0; i < 8; ++i) h[i] = sg_quant_h<ACT>(p, gg[i], uu[i], r);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) h[i] = 0.0f;
    }
    float amax = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      float a = fabsf(h[i]);
      if (a <= 3.40282347e38f && a > amax) amax = a;
    }
#pragma unroll
    for (int off = TL / 2; off > 0; off >>= 1) {
      float o = SG_SHFL_XOR(amax, off, TL);
      amax = o > amax ? o : amax;
    }
    if (!live) continue;
    float sf;
    uint32_t sb;
    int zero;
    const float div = sg_group_scale(&p, amax, &sf, &sb, &zero);
    uint8_t *q = (uint8_t *)p.q.base + sg_row_offset(&p.q, r) + c0;
    uint32_t w[2] = {0, 0};
    const sg_divider dv = sg_divider_of(div);
#pragma unroll
    for (int i = 0; i < 8; ++i)
      w[i / 4] |= (zero ? 0u : (sg_encode_fmt(sg_divide(h[i], dv), FMT >= 0 ? FMT : p.format) & 0xffu)) << (8 * (i % 4));
    if (((uintptr_t)q & 7u) == 0) {
      *(uint2 *)q = make_uint2(w[0], w[1]);
    } else {
#pragma unroll
      for (int i = 0; i < 8; ++i) q[i] = (uint8_t)(w[i / 4] >> (8 * (i % 4)));
    }
    if (sub == 0 && p.scales) {
      const int64_t e = r / p.rows_per_expert, m = r % p.rows_per_expert;
      sg_write_scale(&p, e, m, g, sf, sb);
      if (g == p.groups - 1) sg_pad_packed(&p, e, m);
    }
  }
}

typedef void (*sg_quant_kernel)(const sg_quant_problem, const int *);

template <int ACT>
static sg_quant_kernel sg_pick_quant_dt(int gd, int format) {
  if (format == SWIGLU_QUANT_FP8_E4M3FN) /* the common case: its encoding folds to constants */
    return gd == SG_BF16 ? sg_quant_team_kernel<16, ACT, SG_BF16, 0>
           : gd == SG_F16 ? sg_quant_team_kernel<16, ACT, SG_F16, 0>
                          : sg_quant_team_kernel<16, ACT, SG_F32, 0>;
  return gd == SG_BF16 ? sg_quant_team_kernel<16, ACT, SG_BF16>
         : gd == SG_F16 ? sg_quant_team_kernel<16, ACT, SG_F16>
                        : sg_quant_team_kernel<16, ACT, SG_F32>;
}

/* G = 128 (the common group) specialised per activation and dtype. */
static sg_quant_kernel sg_pick_quant(const sg_quant_problem *p, int tl) {
  if (tl == 16 && p->glu.gate.dtype == p->glu.up.dtype) {
    switch (p->glu.activation) {
      case 0: return sg_pick_quant_dt<0>(p->glu.gate.dtype, p->format);
      case 1: return sg_pick_quant_dt<1>(p->glu.gate.dtype, p->format);
      case 2: return sg_pick_quant_dt<2>(p->glu.gate.dtype, p->format);
      case 3: return sg_pick_quant_dt<3>(p->glu.gate.dtype, p->format);
      case 4: return sg_pick_quant_dt<4>(p->glu.gate.dtype, p->format);
      default: return sg_pick_quant_dt<5>(p->glu.gate.dtype, p->format);
    }
  }
  switch (tl) {
    case 4: return sg_quant_team_kernel<4, -1, -1>;
    case 8: return sg_quant_team_kernel<8, -1, -1>;
    case 16: return sg_quant_team_kernel<16, -1, -1>;
    default: return sg_quant_team_kernel<32, -1, -1>;
  }
}

/* Any group size, per-row and per-tensor scales, NVFP4: one block per row,
 * the row's h in shared memory, teams take groups in turn. */
__global__ void __launch_bounds__(256) sg_quant_row_kernel(const sg_quant_problem p, const int *bad) {
  extern __shared__ float sh[];
  if (bad && *bad) return;
  const int lane = threadIdx.x % SG_TEAM, team = threadIdx.x / SG_TEAM, nteams = blockDim.x / SG_TEAM;
  const int64_t H = p.glu.width, G = p.group;
  const bool nv = p.format == SWIGLU_QUANT_NVFP4;
  for (int64_t r = blockIdx.x; r < p.glu.rows; r += gridDim.x) {
    if (!sg_row_live(p, r)) continue;
    for (int64_t c0 = (int64_t)threadIdx.x * 8; c0 < H; c0 += (int64_t)blockDim.x * 8) {
      float gg[8], uu[8];
      const int n = H - c0 < 8 ? (int)(H - c0) : 8;
      sg_load_gu(p.glu, r, c0, n, gg, uu);
      for (int i = 0; i < n; ++i) sh[c0 + i] = sg_quant_h(p, gg[i], uu[i], r);
    }
    __syncthreads();
    uint8_t *q = (uint8_t *)p.q.base + sg_row_offset(&p.q, r);
    for (int64_t g = team; g < p.groups; g += nteams) {
      const float *hg = sh + g * G;
      float amax = 0.0f;
      for (int64_t j = lane; j < G; j += SG_TEAM) {
        float a = fabsf(hg[j]);
        if (a <= 3.40282347e38f && a > amax) amax = a;
      }
      amax = sg_team_max(amax);
      float sf;
      uint32_t sb;
      int zero;
      const float div = sg_group_scale(&p, amax, &sf, &sb, &zero);
      const sg_divider dv = sg_divider_of(div);
      if (nv) {
        for (int64_t j = 2 * lane; j < G; j += 2 * SG_TEAM) {
          uint32_t lo = zero ? 0 : sg_encode_fmt(sg_divide(hg[j], dv), p.format);
          uint32_t hi = zero ? 0 : sg_encode_fmt(sg_divide(hg[j + 1], dv), p.format);
          q[(g * G + j) / 2] = (uint8_t)(lo | (hi << 4));
        }
      } else {
        for (int64_t j = lane; j < G; j += SG_TEAM)
          q[g * G + j] = zero ? 0 : (uint8_t)sg_encode_fmt(sg_divide(hg[j], dv), p.format);
      }
      if (lane == 0 && p.scales) {
        const int64_t e = r / p.rows_per_expert, m = r % p.rows_per_expert;
        sg_write_scale(&p, e, m, g, sf, sb);
        if (g == p.groups - 1) sg_pad_packed(&p, e, m);
      }
    }
    __syncthreads();
  }
}

__global__ void sg_check_counts_kernel(const int32_t *counts, int64_t E, int64_t M, int *bad) {
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < E; e += (int64_t)gridDim.x * blockDim.x)
    if (counts[e] < 0 || counts[e] > M) *bad = 1;
}

__global__ void sg_tma_pad_kernel(const sg_quant_problem p, int es, const int *bad) {
  if (bad && *bad) return;
  const int64_t pad = p.rows_padded - p.rows_per_expert;
  const int64_t total = p.experts * p.scale_cols * pad;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t e = i / (p.scale_cols * pad), c = (i / pad) % p.scale_cols, m = p.rows_per_expert + i % pad;
    for (int b = 0; b < es; ++b) p.scales[sg_scale_index(&p, e, m, c) * es + b] = 0;
  }
}

/* ------------------------------------------------------------------ host */

struct sg_gpu_state {
  int device;
  cudaStream_t stream;
  int *bad;          /* device flag: an earlier call saw invalid expert counts */
  bool bad_pending;  /* a call checked counts since the last synchronize */
  int max_smem;
  int sm_count;
  char name[160];
  void *lt;            /* cuBLASLt handle (CUDA), NULL when unavailable */
  void *lt_cache;      /* GEMM shape -> algorithm (gpu_linear.cuh), made with the context */
  char lt_error[200];  /* why lt is NULL */
};

/* The GEMM-fused ops (gpu_linear.cuh): composed with cuBLASLt on CUDA; the
 * HIP build has no BLAS wired in yet and leaves them out, so they report
 * SWIGLU_ERROR_UNSUPPORTED there. */
#if defined(SWIGLU_HIP)
#define SG_HAVE_LINEAR 0
#else
#define SG_HAVE_LINEAR 1
static void sg_lin_create(sg_gpu_state *s);
static void sg_lin_destroy(sg_gpu_state *s);
#endif

static swiglu_status sg_cuda_fail(cudaError_t e, const char *what, char *msg, size_t cap) {
  snprintf(msg, cap, "%s: %s", what, cudaGetErrorString(e));
  return e == cudaErrorMemoryAllocation ? SWIGLU_ERROR_OUT_OF_MEMORY : SWIGLU_ERROR_BACKEND_FAILURE;
}
#define SG_CUDA_TRY(call, what)                                    \
  do {                                                             \
    cudaError_t e_ = (call);                                       \
    if (e_ != cudaSuccess) return sg_cuda_fail(e_, what, msg, cap); \
  } while (0)

static swiglu_status gpu_create(void **state, int device, char *msg, size_t cap) {
  int count = 0;
  SG_CUDA_TRY(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device >= count) {
    snprintf(msg, cap, "device %d does not exist (%d present)", device, count);
    return SWIGLU_ERROR_INVALID_ARGUMENT;
  }
  SG_CUDA_TRY(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop;
  SG_CUDA_TRY(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  sg_gpu_state *s = new sg_gpu_state();
  s->device = device;
  s->stream = 0;
  s->bad_pending = false;
  s->max_smem = SG_SMEM_PER_BLOCK(prop);
  s->sm_count = prop.multiProcessorCount;
  snprintf(s->name, sizeof s->name, "%s %s (cc %d.%d, %d SMs)", SG_GPU_RUNTIME, prop.name, prop.major,
           prop.minor, prop.multiProcessorCount);
  cudaError_t e = cudaMalloc((void **)&s->bad, sizeof(int));
  if (e == cudaSuccess) e = cudaMemsetAsync(s->bad, 0, sizeof(int), 0);
  if (e == cudaSuccess) e = cudaStreamSynchronize(0);
  if (e != cudaSuccess) {
    delete s;
    return sg_cuda_fail(e, "allocating the context's flag", msg, cap);
  }
  SG_RAISE_SMEM_LIMIT(sg_quant_row_kernel, s->max_smem);
  s->lt = NULL;
  s->lt_cache = NULL;
  snprintf(s->lt_error, sizeof s->lt_error, "not built for %s", SG_GPU_RUNTIME);
#if SG_HAVE_LINEAR
  sg_lin_create(s);
#endif
  *state = s;
  return SWIGLU_SUCCESS;
}

static void gpu_destroy(void *state) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  cudaSetDevice(s->device);
#if SG_HAVE_LINEAR
  sg_lin_destroy(s);
#endif
  cudaFree(s->bad);
  delete s;
}

static const char *gpu_device_name(void *state) { return ((sg_gpu_state *)state)->name; }

static swiglu_status gpu_set_stream(void *state, void *stream, char *msg, size_t cap) {
  (void)msg, (void)cap;
  ((sg_gpu_state *)state)->stream = (cudaStream_t)stream;
  return SWIGLU_SUCCESS;
}

static swiglu_status sg_launched(const char *what, char *msg, size_t cap) {
  cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? SWIGLU_SUCCESS : sg_cuda_fail(e, what, msg, cap);
}

/* Each thread takes 8 columns of up to SG_EW_ROWS rows (gridDim.y rows
 * apart), so its fixed cost is spread over more elements; small problems keep
 * one row per thread to fill the machine. */
#define SG_EW_ROWS 4
static dim3 sg_ew_grid(const sg_glu_problem *p) {
  const int64_t per_block = (int64_t)SG_EW_THREADS * 8;
  const int64_t gx = (p->width + per_block - 1) / per_block;
  int64_t gy = p->rows * gx >= 4096 ? (p->rows + SG_EW_ROWS - 1) / SG_EW_ROWS : p->rows;
  if (gy > 65535) gy = 65535;
  return dim3((unsigned)gx, (unsigned)gy);
}

static swiglu_status gpu_glu_forward(void *state, const sg_glu_problem *p, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  sg_pick<false>(p)<<<sg_ew_grid(p), SG_EW_THREADS, 0, s->stream>>>(*p);
  return sg_launched("forward kernel", msg, cap);
}

static swiglu_status gpu_glu_backward(void *state, const sg_glu_problem *p, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  sg_pick<true>(p)<<<sg_ew_grid(p), SG_EW_THREADS, 0, s->stream>>>(*p);
  return sg_launched("backward kernel", msg, cap);
}

static swiglu_status gpu_glu_quant(void *state, const sg_quant_problem *p, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  const int *bad = NULL;
  if (p->expert_counts) {
    /* Counts live in device memory: checking them here would need a
     * synchronization, so a kernel checks them and the quantizing kernels
     * skip all work if any is out of range; the error is reported by the next
     * swiglu_context_synchronize (docs/numerics.md). */
    SG_CUDA_TRY(cudaMemsetAsync(s->bad, 0, sizeof(int), s->stream), "cudaMemsetAsync");
    const int64_t blocks = (p->experts + 255) / 256;
    sg_check_counts_kernel<<<(unsigned)(blocks < 1024 ? blocks : 1024), 256, 0, s->stream>>>(
        p->expert_counts, p->experts, p->rows_per_expert, s->bad);
    swiglu_status st = sg_launched("count check kernel", msg, cap);
    if (st) return st;
    bad = s->bad;
    s->bad_pending = true;
  }
  const bool nv = p->format == SWIGLU_QUANT_NVFP4;
  const int64_t G = p->group;
  const int64_t waves = (int64_t)s->sm_count * 16;
  const bool by_team = p->granularity == SWIGLU_SCALE_PER_GROUP && !nv &&
                       (G == 32 || G == 64 || G == 128 || G == 256);
  if (by_team) {
    const int64_t tl = G / 8;
    const int64_t gx = (p->groups * tl + 255) / 256, gy = p->glu.rows < 65535 ? p->glu.rows : 65535;
    sg_pick_quant(p, (int)tl)<<<dim3((unsigned)gx, (unsigned)gy), 256, 0, s->stream>>>(*p, bad);
  } else {
    const size_t smem = (size_t)p->glu.width * sizeof(float);
    if (smem > (size_t)s->max_smem) {
      snprintf(msg, cap, "this group size / granularity keeps a row in shared memory: H = %lld needs %zu bytes, the device has %d",
               (long long)p->glu.width, smem, s->max_smem);
      return SWIGLU_ERROR_UNSUPPORTED;
    }
    int64_t blocks = p->glu.rows < waves ? p->glu.rows : waves;
    sg_quant_row_kernel<<<(unsigned)blocks, 256, smem, s->stream>>>(*p, bad);
  }
  swiglu_status st = sg_launched("quant kernel", msg, cap);
  if (st) return st;
  if (p->scales && p->layout == SWIGLU_SCALE_COL_MAJOR_TMA && p->rows_padded > p->rows_per_expert) {
    const int es = (p->encoding == SWIGLU_SCALE_E8M0 || p->encoding == SWIGLU_SCALE_E4M3) ? 1 : 4;
    sg_tma_pad_kernel<<<64, 256, 0, s->stream>>>(*p, es, bad);
    return sg_launched("padding kernel", msg, cap);
  }
  return SWIGLU_SUCCESS;
}

static swiglu_status gpu_mem_alloc(void *state, size_t bytes, void **out, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  SG_CUDA_TRY(cudaMalloc(out, bytes), "cudaMalloc");
  return SWIGLU_SUCCESS;
}
static swiglu_status gpu_mem_free(void *state, void *ptr, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  SG_CUDA_TRY(cudaFree(ptr), "cudaFree");
  return SWIGLU_SUCCESS;
}
static swiglu_status gpu_mem_copy(void *state, void *dst, const void *src, size_t bytes, int kind,
                                  char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  const cudaMemcpyKind k = kind == SWIGLU_COPY_HOST_TO_DEVICE ? cudaMemcpyHostToDevice
                           : kind == SWIGLU_COPY_DEVICE_TO_HOST ? cudaMemcpyDeviceToHost
                                                                : cudaMemcpyDeviceToDevice;
  SG_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, k, s->stream), "cudaMemcpyAsync");
  if (kind != SWIGLU_COPY_DEVICE_TO_DEVICE) SG_CUDA_TRY(cudaStreamSynchronize(s->stream), "cudaStreamSynchronize");
  return SWIGLU_SUCCESS;
}
static swiglu_status gpu_synchronize(void *state, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  SG_CUDA_TRY(cudaStreamSynchronize(s->stream), "cudaStreamSynchronize");
  if (s->bad_pending) {
    int bad = 0;
    SG_CUDA_TRY(cudaMemcpyAsync(&bad, s->bad, sizeof bad, cudaMemcpyDeviceToHost, s->stream), "reading the count flag");
    SG_CUDA_TRY(cudaStreamSynchronize(s->stream), "cudaStreamSynchronize");
    s->bad_pending = false;
    if (bad) {
      SG_CUDA_TRY(cudaMemsetAsync(s->bad, 0, sizeof(int), s->stream), "cudaMemsetAsync");
      snprintf(msg, cap, "an earlier glu_quant call had expert_counts outside [0, M]; it wrote nothing");
      return SWIGLU_ERROR_INVALID_ARGUMENT;
    }
  }
  return SWIGLU_SUCCESS;
}

#if SG_HAVE_LINEAR
#include "gpu_linear.cuh"
#define SG_LINEAR_WS gpu_linear_workspace
#define SG_LINEAR gpu_linear
#else
#define SG_LINEAR_WS NULL
#define SG_LINEAR NULL
#endif

static const swiglu_backend_iface k_gpu_iface = {
    SWIGLU_BACKEND_ABI_VERSION,
    (uint32_t)sizeof(swiglu_backend_iface),
    SG_GPU_BACKEND_NAME,
    SG_GPU_DEVICE_TYPE,
    gpu_create,
    gpu_destroy,
    gpu_device_name,
    gpu_set_stream,
    gpu_glu_forward,
    gpu_glu_backward,
    gpu_glu_quant,
    gpu_mem_alloc,
    gpu_mem_free,
    gpu_mem_copy,
    gpu_synchronize,
    SG_LINEAR_WS,
    SG_LINEAR,
};

SG_EXPORT const swiglu_backend_iface *SG_ENTRY(swiglu_backend_init)(void) { return &k_gpu_iface; }

SG_EXPORT int SG_ENTRY(swiglu_backend_score)(char *reason, size_t cap) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    snprintf(reason, cap, "%s runtime: %s", SG_GPU_RUNTIME, cudaGetErrorString(e));
    cudaGetLastError(); /* not sticky: clear it */
    return 0;
  }
  if (count == 0) {
    snprintf(reason, cap, "no %s device", SG_GPU_RUNTIME);
    return 0;
  }
  return 100;
}
