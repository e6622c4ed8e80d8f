/*
 * The GPU backend module: libswiglu-cuda.so (nvcc) and libswiglu-hip.so
 * (hipcc, through vendor.h) from this one source. It implements the backend
 * interface of core/swiglu_backend.h: validation has been done by the core;
 * every call enqueues its kernels on the context's stream, allocates nothing
 * and does not synchronize.
 */
#include <stdio.h>
#include <string.h>
#include <type_traits>

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

/* a 16-bit input's bits (bf16 or fp16) as fp32 */
SG_DI float sg_half_bits_to_f32(uint16_t h, int dt) {
  return dt == SG_BF16 ? sg_bf16_to_f32(h) : __half2float(__ushort_as_half(h));
}

SG_DI float sg_cvt_in(const char *p, int dt, int64_t i) {
  if (dt == SG_F32) return ((const float *)p)[i];
  return sg_half_bits_to_f32(((const uint16_t *)p)[i], dt);
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
        out[i + 2 * k] = sg_half_bits_to_f32(lo, dt);
        out[i + 2 * k + 1] = sg_half_bits_to_f32(hi, dt);
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

/* Where every row of an operand is a plain stride from the first and
 * 16-byte aligned (absent operands pass). */
static bool sg_rows_vec(const sg_operand *op) {
  if (!op->base) return true;
  const int64_t es = (int64_t)sg_dtype_size(op->dtype);
  return op->row_stride >= 0 && !((uintptr_t)op->base & 15u) && (op->row_stride * es) % 16 == 0;
}

/* The kernels' vector path: the host found every operand's rows
 * plain and aligned and the width a multiple of 8, so a thread walks
 * pointers from row to row with 16-byte accesses only (a specialised
 * instance never issues the scalar fallback loads next to the vector ones),
 * and the math takes its branch-free form, recomputing a thread's 8
 * elements exactly where that form declines (sg_activation_t). */
struct sg_ew_cursor {
  const char *p;
  int64_t step;
};
SG_DI sg_ew_cursor sg_cursor(const sg_operand &op, int64_t c0, int64_t es) {
  sg_ew_cursor c;
  c.p = op.base ? op.base + (op.row_stride * blockIdx.y + c0 * op.col_step) * es : nullptr;
  c.step = op.row_stride * gridDim.y * es;
  return c;
}

/* V columns of gate and up from 16-byte-aligned rows (GD, IL constants) */
template <int GD, int IL, int V>
SG_DI void sg_load_gu_vec(const char *gp, const char *up, float (&g)[V], float (&u)[V]) {
  if (IL) {
    float t[2 * V];
    sg_load<2 * V>(gp, GD, 2 * V, true, t);
#pragma unroll
    for (int i = 0; i < V; ++i) g[i] = t[2 * i], u[i] = t[2 * i + 1];
  } else {
    sg_load<V>(gp, GD, V, true, g);
    sg_load<V>(up, GD, V, true, u);
  }
}

/* A lane's V gate and up values of one row as loaded (16-bit inputs: V / 4
 * words of 16 bytes, gate then up, or the interleaved pairs as they lie),
 * so that a thread can hold its next row in registers while it computes
 * this one (sg_quant_team_kernel). */
template <int V>
struct sg_gu_raw {
  uint4 w[V / 4];
};
template <int IL, int V>
SG_DI void sg_load_raw(const char *gp, const char *up, sg_gu_raw<V> &r) {
#pragma unroll
  for (int k = 0; k < V / 8; ++k) {
    r.w[k] = ((const uint4 *)gp)[k];
    r.w[V / 8 + k] = IL ? ((const uint4 *)gp)[V / 8 + k] : ((const uint4 *)up)[k];
  }
}
/* sg_load_gu_vec's values from sg_load_raw's words */
template <int GD, int IL, int V>
SG_DI void sg_unpack_raw(const sg_gu_raw<V> &r, float (&g)[V], float (&u)[V]) {
  uint32_t w[V];
#pragma unroll
  for (int k = 0; k < V / 4; ++k) w[4 * k] = r.w[k].x, w[4 * k + 1] = r.w[k].y, w[4 * k + 2] = r.w[k].z, w[4 * k + 3] = r.w[k].w;
  const auto lo = [](uint32_t x) { return sg_half_bits_to_f32((uint16_t)(x & 0xffffu), GD); };
  const auto hi = [](uint32_t x) { return sg_half_bits_to_f32((uint16_t)(x >> 16), GD); };
#pragma unroll
  for (int i = 0; i < V; ++i) {
    if (IL) {
      g[i] = lo(w[i]), u[i] = hi(w[i]);
    } else {
      const uint32_t gw = w[i / 2], uw = w[V / 2 + i / 2];
      g[i] = i % 2 ? hi(gw) : lo(gw);
      u[i] = i % 2 ? hi(uw) : lo(uw);
    }
  }
}

template <int ACT, int GD, int IL>
__global__ void __launch_bounds__(SG_EW_THREADS, 12) sg_fwd_kernel(const sg_glu_problem p, int vec) {
  const int64_t c0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (c0 >= p.width) return;
  const int n = p.width - c0 < 8 ? (int)(p.width - c0) : 8;
  const bool out16 = p.h.dtype != SG_F32;
  const int act = ACT >= 0 ? ACT : p.activation;
  if (GD >= 0 && IL >= 0 && vec) {
    const int64_t es = GD == SG_F32 ? 4 : 2;
    sg_ew_cursor gc = sg_cursor(p.gate, c0, es), uc = sg_cursor(p.up, c0, es);
    sg_ew_cursor hc = sg_cursor(p.h, c0, out16 ? 2 : 4);
    for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y, gc.p += gc.step, uc.p += uc.step, hc.p += hc.step) {
      float g[8], u[8], h[8];
      sg_load_gu_vec<GD, IL, 8>(gc.p, uc.p, g, u);
      bool slow = false;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const sg_act a = sg_activation_t<true>(act, p.alpha, p.limit, g[i], u[i], false, out16, slow);
        h[i] = a.a * a.m;
      }
      if (slow) {
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const sg_act a = sg_activation(act, p.alpha, p.limit, g[i], u[i], false, out16);
          h[i] = a.a * a.m;
        }
      }
      sg_store<8>((char *)hc.p, p.h.dtype, 8, true, h);
    }
    return;
  }
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    float g[8], u[8], h[8];
    sg_load_gu_t<GD, IL>(p, r, c0, n, g, u);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      sg_act a = sg_activation(act, p.alpha, p.limit, g[i], u[i], false, out16);
      h[i] = a.a * a.m;
    }
    char *hp = sg_at(p.h, r, c0);
    sg_store<8>(hp, p.h.dtype, n, n == 8 && sg_aligned16(hp), h);
  }
}

/* The backward of 8 columns from registers: dg, du and (when asked) h. */
template <bool TRY>
SG_DI void sg_bwd8(const sg_glu_problem &p, int act, const float (&g)[8], const float (&u)[8], const float (&dh)[8],
                   float (&dg)[8], float (&du)[8], float (&h)[8], bool &slow) {
  const bool h16 = p.h.base && p.h.dtype != SG_F32;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const sg_act a = sg_activation_t<TRY>(act, p.alpha, p.limit, g[i], u[i], true, false, slow);
    dg[i] = (dh[i] * a.m) * a.da;
    du[i] = (dh[i] * a.a) * a.dm;
    h[i] = a.a * a.m;
    if (h16) {
      /* the recomputed h is the forward op's, which has its own 16-bit path */
      const sg_act f = sg_activation_t<TRY>(act, p.alpha, p.limit, g[i], u[i], false, true, slow);
      h[i] = f.a * f.m;
    }
  }
}

/* Stores dgate and dup (packed in pairs when the outputs are interleaved:
 * their layout is their own, the GEMM-fused ops write compact halves from an
 * interleaved pre-activation) and h. */
SG_DI void sg_bwd_store(const sg_glu_problem &p, char *o1, char *o2, char *hp, int n, bool vec, const float (&dg)[8],
                        const float (&du)[8], const float (&h)[8]) {
  if (p.dgate.col_step == 2) {
    float t[16];
#pragma unroll
    for (int i = 0; i < 8; ++i) t[2 * i] = dg[i], t[2 * i + 1] = du[i];
    sg_store<16>(o1, p.dgate.dtype, 2 * n, vec || (n == 8 && sg_aligned16(o1)), t);
  } else {
    sg_store<8>(o1, p.dgate.dtype, n, vec || (n == 8 && sg_aligned16(o1)), dg);
    sg_store<8>(o2, p.dup.dtype, n, vec || (n == 8 && sg_aligned16(o2)), du);
  }
  if (p.h.base) sg_store<8>(hp, p.h.dtype, n, vec || (n == 8 && sg_aligned16(hp)), h);
}

#ifndef SG_BWD_MINB
#define SG_BWD_MINB 6
#endif
template <int ACT, int GD, int IL>
__global__ void __launch_bounds__(SG_EW_THREADS, SG_BWD_MINB) sg_bwd_kernel(const sg_glu_problem p, int vec) {
  const int64_t c0 = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (c0 >= p.width) return;
  const int n = p.width - c0 < 8 ? (int)(p.width - c0) : 8;
  const int act = ACT >= 0 ? ACT : p.activation;
  if (GD >= 0 && IL >= 0 && vec) {
    const int64_t es = GD == SG_F32 ? 4 : 2;
    sg_ew_cursor gc = sg_cursor(p.gate, c0, es), uc = sg_cursor(p.up, c0, es);
    sg_ew_cursor dc = sg_cursor(p.dh, c0, (int64_t)sg_dtype_size(p.dh.dtype));
    sg_ew_cursor o1 = sg_cursor(p.dgate, c0, (int64_t)sg_dtype_size(p.dgate.dtype));
    sg_ew_cursor o2 = sg_cursor(p.dup, c0, (int64_t)sg_dtype_size(p.dup.dtype));
    sg_ew_cursor hc = sg_cursor(p.h, c0, (int64_t)sg_dtype_size(p.h.dtype));
    for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y, gc.p += gc.step, uc.p += uc.step, dc.p += dc.step,
                 o1.p += o1.step, o2.p += o2.step, hc.p += hc.step) {
      float g[8], u[8], dh[8], dg[8], du[8], h[8];
      sg_load_gu_vec<GD, IL, 8>(gc.p, uc.p, g, u);
      sg_load<8>(dc.p, p.dh.dtype, 8, true, dh);
      bool slow = false;
      sg_bwd8<true>(p, act, g, u, dh, dg, du, h, slow);
      if (slow) sg_bwd8<false>(p, act, g, u, dh, dg, du, h, slow);
      /* every input of these 8 columns is in registers: in place is safe */
      sg_bwd_store(p, (char *)o1.p, (char *)o2.p, (char *)hc.p, 8, true, dg, du, h);
    }
    return;
  }
  for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
    float g[8], u[8], dh[8], dg[8], du[8], h[8];
    sg_load_gu_t<GD, IL>(p, r, c0, n, g, u);
    const char *dhp = sg_at(p.dh, r, c0);
    sg_load<8>(dhp, p.dh.dtype, n, n == 8 && sg_aligned16(dhp), dh);
    bool unused = false;
    sg_bwd8<false>(p, act, g, u, dh, dg, du, h, unused);
    sg_bwd_store(p, sg_at(p.dgate, r, c0), p.dgate.col_step == 2 ? nullptr : sg_at(p.dup, r, c0),
                 p.h.base ? sg_at(p.h, r, c0) : nullptr, n, false, dg, du, h);
  }
}

typedef void (*sg_ew_kernel)(const sg_glu_problem, int);

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

/* The largest |h| of a lane as the bits of a float, from two integer
 * maxima of the bits, one instruction per element (three-input max,
 * twice): as signed integers the positive floats order as their
 * magnitudes, as unsigned ones the negative floats do, above every positive
 * one. An Inf or NaN shows as a result >= 0x7f800000. An fmaxf per element
 * made ptxas spill inside the hot path (0.60 of an H200's copy instead of
 * 0.67, fourth session); the integer form before this one (2|h| + 2^24, a
 * min and a max) cost two per element. */
template <int V>
SG_DI uint32_t sg_abs_max_bits(const float (&h)[V]) {
  int32_t smax = INT32_MIN;
  uint32_t umax = 0u;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const uint32_t b = __float_as_uint(h[i]);
    smax = max(smax, (int32_t)b);
    umax = max(umax, b);
  }
  const uint32_t pos = smax > 0 ? (uint32_t)smax : 0u, neg = umax > 0x80000000u ? umax - 0x80000000u : 0u;
  return max(pos, neg);
}

/* Whether a specialised instance computes fp32 h the verified way
 * (sg_quant_hv_vf, sg_quant_group_vf): the logistic activations with
 * E4M3FN codes, on CUDA (the error bound it rests on is measured on NVIDIA
 * hardware; HIP's __expf and division have none here). */
#ifndef SG_QUANT_VF
#define SG_QUANT_VF 1
#endif
template <int ACT, int FMT, int RD>
__host__ __device__ constexpr bool sg_quant_vf() {
#if defined(SWIGLU_HIP)
  return false;
#else
  return SG_QUANT_VF && RD < 0 && FMT == SWIGLU_QUANT_FP8_E4M3FN && (ACT == 0 || ACT == 1 || ACT == 4 || ACT == 5);
#endif
}

/* fp32 h, verified (docs/numerics.md, "GLU + quantization": how the CUDA
 * quantizer reaches the exact bits): each h_j is computed the 16-bit
 * results' way -- x * r * m with r the hardware 1 / (1 + exp(-z)), within
 * 2^-17 of the exact path's reciprocal (test_gpu_math checks every z) --
 * so h_j is within
 * dh = 2^-17 + 4 * 2^-24 of the exact h_j, relatively, as long as nothing
 * underflows or overflows: |x r| >= 2^-99 (else *slow; sg_logistic_try
 * wants 2^-100 of its own quotient, within 2^-16 of x r) and |h| < 2^127
 * (else the lane recomputes). A lane that cannot use that form computes
 * its exact h (*exact). h is before the row weight here
 * (sg_quant_group_vf applies it). *amax is the lane's
 * largest finite |h| (approximate unless *exact), *inf whether an h is
 * infinite or NaN (exact lanes only). */
template <int ACT, int V, class First, class Load>
SG_DI void sg_quant_hv_vf(const sg_quant_problem &p, int64_t r, const First &first, const Load &load, float (&h)[V],
                          float &amax, bool &inf, bool &exact) {
  float gg[V], uu[V];
  first(gg, uu); /* the row's inputs, from registers (sg_gu_raw) or memory */
  bool slow = false;
#pragma unroll
  for (int i = 0; i < V; ++i) {
    const sg_act a = sg_activation_t<true>(ACT, p.glu.alpha, p.glu.limit, gg[i], uu[i], false, true, slow);
    slow = slow | !(fabsf(a.a) >= 1.5777218104420236e-30f); /* 2^-99 */
    h[i] = a.a * a.m;
  }
  const uint32_t big = sg_abs_max_bits(h);
  exact = slow | (big >= 0x7f000000u); /* |h| >= 2^127, Inf or NaN */
  inf = false;
  amax = __uint_as_float(big);
  if (exact) {
    asm volatile("" ::: "memory");
    load(gg, uu);
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < V; ++i) {
      const sg_act a = sg_activation(ACT, p.glu.alpha, p.glu.limit, gg[i], uu[i], false);
      h[i] = a.a * a.m;
      inf = inf | !(fabsf(h[i]) <= 3.40282347e38f);
      m = fabsf(h[i]) <= 3.40282347e38f ? fmaxf(m, fabsf(h[i])) : m;
    }
    amax = m;
  }
}

/* h for a lane's V elements of row r, with the group-maximum inputs; load
 * fills a lane's gate and up values. The common path has no per-element
 * branch (sg_glu_try); a lane whose elements include a case it does not
 * cover recomputes them with sg_quant_h, as every generic (ACT = -1)
 * instance does. The specialised instances load the inputs again for that
 * (rare, from L1/L2) rather than keep all 2V live across the branch-free
 * path: kept, they spilled inside it at 64 registers (the 16-bit-h ones:
 * 340 bytes; the fp32-h ones, since the rows without experts have their
 * own loop: 11 local loads and stores per row, against 1 with the reload).
 * *amax is the largest finite |h| of the lane, with a second pass that
 * skips the infinities in the rare lane where the first saw one; *inf says
 * that the lane has an infinite h (or, in fp32-h instances, a NaN). */
template <int ACT, int V, int RD, class Load>
SG_DI void sg_quant_hv(const sg_quant_problem &p, int64_t r, const Load &load, float (&h)[V], float &amax,
                       bool &inf) {
  /* RD: the 16-bit dtype ROUND_H rounds h to (the forward op's 16-bit path:
   * hardware exp, fast division), or -1 (fp32 h; ROUND_H with fp32 input
   * rounds nothing) */
  /* the specialised instances never see a rounding they do not do
   * themselves (sg_pick_quant: RD < 0 only with round_dtype -1 or an fp32
   * input's SG_F32, which rounds nothing), so only the generic ones (ACT < 0)
   * take every element through sg_quant_h */
  const bool exact_only = ACT < 0;
  float gg[V], uu[V];
  load(gg, uu);
  bool slow = exact_only;
  if (!slow) {
#pragma unroll
    for (int i = 0; i < V; ++i) {
      if (RD < 0) {
        h[i] = sg_glu_try<ACT>(ACT, p.glu.alpha, p.glu.limit, gg[i], uu[i], slow);
      } else {
        const sg_act a = sg_activation_t<true>(ACT, p.glu.alpha, p.glu.limit, gg[i], uu[i], false, true, slow);
        h[i] = a.a * a.m;
        if (RD == SG_F16) h[i] = __half2float(__float2half_rn(h[i]));
        if (RD == SG_BF16 && i % 2 == 1) sg_round_bf16x2(h[i - 1], h[i]);
      }
    }
  }
  if (slow) {
    if (!exact_only) {
      /* the fence stops the compiler from reusing the first load's values */
      asm volatile("" ::: "memory");
      load(gg, uu);
    }
#pragma unroll
    for (int i = 0; i < V; ++i) h[i] = sg_quant_h<ACT>(p, gg[i], uu[i], r);
  } else if (p.row_weight) {
    const float w = p.row_weight[r];
#pragma unroll
    for (int i = 0; i < V; ++i) h[i] = h[i] * w;
  }
  if (RD >= 0) {
    float m = 0.0f;
#pragma unroll
    for (int i = 0; i < V; ++i) m = fmaxf(m, fabsf(h[i]));
    inf = !(m <= 3.40282347e38f);
    if (inf) {
      m = 0.0f;
#pragma unroll
      for (int i = 0; i < V; ++i) m = fabsf(h[i]) <= 3.40282347e38f ? fmaxf(m, fabsf(h[i])) : m;
    }
    amax = m;
  } else {
    /* fp32 h: sg_abs_max_bits; an Inf or NaN takes a second pass (rare: a
     * lane's h are finite unless an input or a product is not) */
    const uint32_t big = sg_abs_max_bits(h);
    inf = big >= 0x7f800000u; /* or NaN: the exact division then */
    if (inf) {
      float m = 0.0f;
#pragma unroll
      for (int i = 0; i < V; ++i) m = fabsf(h[i]) <= 3.40282347e38f ? fmaxf(m, fabsf(h[i])) : m;
      amax = m;
    } else {
      amax = __uint_as_float(big);
    }
  }
}

/* The E4M3FN codes of V values, four to a word, the first in the low byte
 * (sg_store_codes's order). */
template <int V>
SG_DI void sg_e4m3_words(const float (&q)[V], uint32_t (&w)[V / 4]) {
#pragma unroll
  for (int k = 0; k < V / 4; ++k) w[k] = sg_e4m3x2(q[4 * k], q[4 * k + 1]) | (sg_e4m3x2(q[4 * k + 2], q[4 * k + 3]) << 16);
}

/* The codes of V quotients, four to a word as sg_e4m3_words orders them:
 * E4M3FN through sg_e4m3_words where FMT says so at compile time, any
 * other format (FMT -1: fmt's, read at run time) byte by byte. */
template <int FMT, int V>
SG_DI void sg_code_words(const float (&q)[V], int fmt, uint32_t (&w)[V / 4]) {
  if constexpr (FMT == SWIGLU_QUANT_FP8_E4M3FN) {
    sg_e4m3_words<V>(q, w);
  } else {
    const int f = FMT >= 0 ? FMT : fmt;
#pragma unroll
    for (int k = 0; k < V / 4; ++k) w[k] = 0u;
#pragma unroll
    for (int i = 0; i < V; ++i) w[i / 4] |= (sg_encode_fmt(q[i], f) & 0xffu) << (8 * (i % 4));
  }
}

/* How a group's quotients RN(h / s) may be formed (sg_quotients). */
enum sg_quot_kind {
  SG_QUOT_ANY,  /* any divisor (a static scale): quotients may overflow */
  SG_QUOT_POW2, /* a power of two (every scale encoding but fp32) */
  SG_QUOT_AMAX  /* fp32 amax / format maximum: quotients stay finite */
};
/* RN(h / s) of V values, dv = sg_divider_of(s). inf: some h may be
 * infinite or NaN (only SG_QUOT_AMAX reads it). */
template <int V>
SG_DI void sg_quotients(const float (&h)[V], const sg_divider &dv, sg_quot_kind kind, bool inf, float (&q)[V]) {
  if (kind == SG_QUOT_POW2) {
    /* h * RN(1 / s) is h / s exactly */
#pragma unroll
    for (int i = 0; i < V; ++i) q[i] = h[i] * dv.y;
  } else if (kind == SG_QUOT_AMAX && dv.fast && !inf) {
    /* sg_divide's correction without its special cases: no h is infinite,
     * a NaN h gives a NaN (every encoder maps any NaN to the format's),
     * and sg_markstein keeps a zero's sign */
#pragma unroll
    for (int i = 0; i < V; ++i) q[i] = sg_markstein(h[i], dv.s, dv.y);
  } else if (kind == SG_QUOT_AMAX) {
    /* RN(h / s), which is what sg_divide gives too (or, where h * RN(1/s)
     * underflows to zero, a zero of the same sign: the same code) */
#pragma unroll
    for (int i = 0; i < V; ++i) q[i] = h[i] / dv.s;
  } else {
    /* sg_markstein's correction would make an overflowing quotient NaN:
     * sg_divide passes those through */
#pragma unroll
    for (int i = 0; i < V; ++i) q[i] = sg_divide(h[i], dv);
  }
}

/* A lane's V codes, four to a word, to qp: the first n (a row's last,
 * partial chunk) or all V (with QVEC, qp V-byte aligned). */
template <bool QVEC, int N>
SG_DI void sg_store_codes(uint8_t *qp, const uint32_t (&w)[N], int n = 4 * N) {
  constexpr int V = 4 * N;
  if (n < V) {
    for (int i = 0; i < n; ++i) qp[i] = (uint8_t)(w[i / 4] >> (8 * (i % 4)));
  } else if constexpr (QVEC && V % 16 == 0) {
#pragma unroll
    for (int k = 0; k < V / 4; k += 4) *(uint4 *)(qp + 4 * k) = make_uint4(w[k], w[k + 1], w[k + 2], w[k + 3]);
  } else if (QVEC || ((uintptr_t)qp & 7u) == 0) {
#pragma unroll
    for (int k = 0; k < V / 4; k += 2) *(uint2 *)(qp + 4 * k) = make_uint2(w[k], w[k + 1]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) qp[i] = (uint8_t)(w[i / 4] >> (8 * (i % 4)));
  }
}

/* The group's scale from the lanes' maxima (*sf, *sb: what its encoding
 * stores), then the lane's V codes to qp (with QVEC, V-byte aligned). PTM:
 * 1 a static per-tensor scale (gpu_glu_quant hands the team kernel such a
 * problem as groups of 128, with no scales to store), 0 per-group scales,
 * -1 read from the problem (the generic instances; a template constant in
 * the others, whose per-group instances a run-time test slowed: H100,
 * 0.93-0.97 -> 0.85-0.92 of the copy). */
template <int TL, int FMT, bool QVEC, int V, int PTM>
SG_DI void sg_quant_group(const sg_quant_problem &p, bool live, const float (&h)[V], float amax, bool inf,
                          uint8_t *qp, float &sf, uint32_t &sb) {
#pragma unroll
  for (int off = TL / 2; off > 0; off >>= 1) amax = fmaxf(amax, SG_SHFL_XOR(amax, off, TL));
  if (!live) return;
  int zero = 0;
  const bool pt = PTM > 0 || (PTM < 0 && p.granularity == SWIGLU_SCALE_PER_TENSOR);
  const float div = pt ? *p.tensor_scale : sg_group_scale_amax(&p, FMT >= 0 ? FMT : p.format, amax, &sf, &sb, &zero);
  const sg_divider dv = sg_divider_of(div);
  float q[V];
  sg_quotients<V>(h, dv, pt ? SG_QUOT_ANY : p.encoding != SWIGLU_SCALE_FP32 ? SG_QUOT_POW2 : SG_QUOT_AMAX, inf, q);
  uint32_t w[V / 4];
#pragma unroll
  for (int k = 0; k < V / 4; ++k) w[k] = 0u;
  if (!zero) sg_code_words<FMT>(q, p.format, w);
  sg_store_codes<QVEC>(qp, w);
}

/* The E4M3FN codes of V values at both ends of sg_quant_group_vf's
 * bracket, h ylo and h yhi, four to a word (wd: the low end's); d marks
 * with a nonzero byte each code whose ends differ, and every code where the
 * multipliers are not normal: the bracket's bound needs each within 2^-24
 * of its value. From a maximum they are normal (RN(1 / s) |w| ~ 448 /
 * max|h| >= 2^-120), but an amax floor past ~2^100 with a small weight
 * makes them subnormal, and then every code is computed exactly. Returns
 * whether any code is marked. */
template <int V>
SG_DI bool sg_bracket_codes(const float (&h)[V], float ylo, float yhi, uint32_t (&wd)[V / 4], uint32_t (&d)[V / 4]) {
  const uint32_t sub = fabsf(ylo) >= 1.17549435e-38f ? 0u : 0xffffffffu;
  uint32_t diff = 0u;
  /* a word at a time (a lane's 2V products all live at once would add
   * register pressure to kernels at the edge of spilling) */
#pragma unroll
  for (int k = 0; k < V / 4; ++k) {
    float lo[4], hi[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) lo[i] = h[4 * k + i] * ylo, hi[i] = h[4 * k + i] * yhi;
    wd[k] = sg_e4m3x2(lo[0], lo[1]) | (sg_e4m3x2(lo[2], lo[3]) << 16);
    d[k] = (wd[k] ^ (sg_e4m3x2(hi[0], hi[1]) | (sg_e4m3x2(hi[2], hi[3]) << 16))) | sub;
    diff |= d[k];
  }
  return diff != 0u;
}

/* sg_quant_group for the verified fp32 h of sg_quant_hv_vf (E4M3FN codes):
 * the same scale and codes as from the exact h, bit for bit. h arrives
 * before the row weight w, which is applied where it costs nothing per
 * element: to the group maximum (|RN(h w)| = RN(|h| |w|): rounding is
 * monotonic) and to the codes' multiplier.
 *  - The scale needs the exact amax. Every h is within dh (< 2^-16.9) of
 *    its exact value, so the element holding the exact maximum has an
 *    approximate |h| >= A (1 - 2 dh) > A (1 - 2^-15), A the team's largest
 *    approximate |h|: the lanes recompute exactly the elements at or above
 *    that threshold (one per group, as a rule), and the exact maximum is
 *    the largest of those and of the exact lanes' values. A power-of-two
 *    scale is often decided by A alone: the scales of A (1 -+ 2^-15) w
 *    (which hold the exact |h w| maximum between them) are equal.
 *  - A code is the same for every quotient between RN(h RN(RN(y (1 - 2^-16))
 *    w)) and the same with 1 + 2^-16, y = RN(1 / s), when both ends encode
 *    alike (rounding is monotonic); the exact RN(RN(h_exact w) / s) lies
 *    between them (each end is within dh + 6 * 2^-24 < 2^-16 of h_exact w /
 *    s (1 -+ 2^-16)), so such a code is exact. Elements whose ends differ
 *    (about one in 2^11) are recomputed exactly, one by one.
 *  - A team whose largest |h w| is below 2^-60 (where tiny quotients would
 *    need an absolute bound), or whose row weight is outside [2^-32, 1]
 *    (where h w could overflow, or NaN), recomputes every h exactly, and a
 *    lane with an infinite or NaN h has them exact already; both take the
 *    plain codes. With |h w| >= 2^-60 somewhere in the group, an h that
 *    underflowed gives a quotient below 2^-30 either way: a zero code of the
 *    same sign.
 * The exact recomputations use sg_glu_try, which never declines an element
 * of an approximate lane (|z| <= 87 and |x r| >= 2^-99 there, so its
 * quotient stays above 2^-100): no call (and no spill around one) on these
 * paths. load and one(j, g, u) load the lane's inputs, or element j's,
 * again. */
template <int TL, int ACT, bool QVEC, int V, bool PT, class Load, class One>
SG_DI void sg_quant_group_vf(const sg_quant_problem &p, bool live, int64_t r, float (&h)[V], float amax, bool inf,
                             bool exact, const Load &load, const One &one, uint8_t *qp, float &sf, uint32_t &sb) {
  const bool weighted = p.row_weight != nullptr;
  const float w = weighted && live ? p.row_weight[r] : 1.0f, aw = fabsf(w);
  const bool wsafe = aw >= 2.3283064365386963e-10f && aw <= 1.0f; /* 2^-32; false for NaN */
  auto exact_h = [&](float g, float u) {
    bool unused = false;
    return sg_glu_try<ACT>(ACT, p.glu.alpha, p.glu.limit, g, u, unused);
  };
  float am = amax;
#pragma unroll
  for (int off = TL / 2; off > 0; off >>= 1) am = fmaxf(am, SG_SHFL_XOR(am, off, TL));
  /* PT, a static scale (a per-tensor problem, gpu_glu_quant): the divisor
   * is known; the bracket below holds for it where the weight is safe, the
   * divisor takes the correction (s >= 2^-86, so the residuals of quotients
   * that can encode to a nonzero code do not underflow) and the multipliers
   * are normal (each within 2^-24 of its value; an underflowing h or
   * quotient, below 2^-126, encodes to a zero of its sign either way);
   * elsewhere every h is recomputed exactly and divided (tiny) */
  constexpr bool pt = PT;
  sg_divider dvt = {1.0f, 1.0f, true};
  if (pt) dvt = sg_divider_of(*p.tensor_scale);
  /* the whole team alike (w is the row's) */
  const bool tiny = pt ? !wsafe || !dvt.fast || !(fabsf((dvt.y * 0.9999847412109375f) * w) >= 1.17549435e-38f)
                       : !(am * aw >= 8.673617379884035e-19f) || !wsafe; /* 2^-60 */
  /* A power-of-two scale (every encoding but fp32) is known without the
   * exact maximum where both ends of the interval that holds it give the
   * same scale (the scale is monotonic in amax): then no candidate is
   * recomputed (H200, packed UE8M0 scales: 0.79-0.85 of the copy without
   * this, 0.87-0.92 with it, at the large shapes; bench/NOTES.md) */
  float sf_k = 0.0f, div_k = 0.0f;
  uint32_t sb_k = 0u;
  int zero_k = 0;
  bool known = pt;
  if (pt) {
    div_k = dvt.s;
  } else if (p.encoding != SWIGLU_SCALE_FP32 && !tiny) {
    float sf2;
    uint32_t sb2;
    int z2;
    div_k = sg_group_scale_amax(&p, SWIGLU_QUANT_FP8_E4M3FN, (am * 0.999969482421875f) * aw, &sf_k, &sb_k, &zero_k);
    sg_group_scale_amax(&p, SWIGLU_QUANT_FP8_E4M3FN, (am * 1.000030517578125f) * aw, &sf2, &sb2, &z2);
    known = sb_k == sb2;
  }
  float ax = 0.0f; /* tiny: the largest finite |h w|; else the largest |h| */
  if (live && (!known || tiny)) { /* known and tiny: a static scale's exact h */
    if (tiny) {
      if (!exact) {
        float gg[V], uu[V];
        asm volatile("" ::: "memory");
        load(gg, uu);
#pragma unroll
        for (int i = 0; i < V; ++i) h[i] = exact_h(gg[i], uu[i]);
      }
#pragma unroll
      for (int i = 0; i < V; ++i) {
        if (weighted) h[i] = h[i] * w;
        ax = fabsf(h[i]) <= 3.40282347e38f ? fmaxf(ax, fabsf(h[i])) : ax;
      }
    } else if (exact) {
      ax = amax;
    } else {
      const float t = am * 0.999969482421875f; /* 1 - 2^-15 */
      uint32_t cm = 0u;
      if (amax >= t) {
        /* two instructions an element: |h| - t is negative exactly where
         * |h| < t (a nonzero difference never rounds to zero, and these h
         * are finite), and a funnel shift moves its sign bit into the mask;
         * two chains halve the dependent ones. Element i lands at bit
         * V - 1 - i, hence the reversal. A compare, a select and an or per
         * element ran 0.01-0.02 slower (H200, fp32 scales; bench/NOTES.md). */
        uint32_t n0 = 0u, n1 = 0u;
#pragma unroll
        for (int i = 0; i < V / 2; ++i) {
          n0 = __funnelshift_l(__float_as_uint(fabsf(h[i]) - t), n0, 1);
          n1 = __funnelshift_l(__float_as_uint(fabsf(h[i + V / 2]) - t), n1, 1);
        }
        cm = __brev(~((n0 << (V / 2)) | n1)) >> (32 - V);
      }
      while (cm) {
        const int j = __ffs(cm) - 1;
        cm &= cm - 1u;
        float g, u;
        one(j, g, u);
        ax = fmaxf(ax, fabsf(exact_h(g, u)));
      }
    }
  }
#pragma unroll
  for (int off = TL / 2; off > 0; off >>= 1) ax = fmaxf(ax, SG_SHFL_XOR(ax, off, TL));
  if (!live) return;
  int zero = zero_k;
  float div = div_k;
  if (known) sf = sf_k, sb = sb_k;
  else div = sg_group_scale_amax(&p, SWIGLU_QUANT_FP8_E4M3FN, tiny ? ax : ax * aw, &sf, &sb, &zero);
  const sg_divider dv = pt ? dvt : sg_divider_of(div); /* a static scale's is known above */
  uint32_t wd[V / 4];
  uint32_t diff = 0u, d[V / 4];
  if (tiny || inf || !dv.fast) {
    /* every h of the lane is exact here (weighted when tiny); !dv.fast
     * means s < 2^-86, so the team is tiny */
    float q[V];
#pragma unroll
    for (int i = 0; i < V; ++i) q[i] = sg_divide(tiny || !weighted ? h[i] : h[i] * w, dv);
    sg_e4m3_words<V>(q, wd);
  } else {
    /* the bracket's multipliers (w = 1 without row weights: exact) */
    const float ylo = (dv.y * 0.9999847412109375f) * w, yhi = (dv.y * 1.0000152587890625f) * w;
    diff = sg_bracket_codes<V>(h, ylo, yhi, wd, d) ? 1u : 0u;
  }
  if (zero) { /* (never for E4M3FN) */
#pragma unroll
    for (int k = 0; k < V / 4; ++k) wd[k] = 0u;
    diff = 0u;
  }
  sg_store_codes<QVEC>(qp, wd);
  if (diff) {
    /* the codes whose bracket straddles a boundary, over the ones just
     * stored (the same thread's later stores win) */
    uint32_t mm = 0u;
#pragma unroll
    for (int k = 0; k < V / 4; ++k)
#pragma unroll
      for (int i = 0; i < 4; ++i) mm |= ((d[k] >> (8 * i)) & 0xffu ? 1u : 0u) << (4 * k + i);
    while (mm) {
      const int j = __ffs(mm) - 1;
      mm &= mm - 1u;
      float hx;
      if (exact) {
        hx = h[0];
#pragma unroll
        for (int i = 1; i < V; ++i) hx = i == j ? h[i] : hx;
      } else {
        float g, u;
        one(j, g, u);
        hx = exact_h(g, u);
      }
      if (weighted) hx = hx * w;
      qp[j] = (uint8_t)sg_e4m3x2(sg_markstein(hx, dv.s, dv.y), 0.0f);
    }
  }
}

/* What the host works out once per quant launch: whether the
 * pointer-walking path applies (every row of gate, up and the codes a plain
 * stride from the first, 16-byte aligned, fp32 scales 4-byte aligned, rows
 * < 2^31), and a multiply-shift division by M (rows per expert) for it:
 * n / M = (umulhi(n, magic) + n) >> shift for n < 2^31. */
struct sg_quant_launch {
  int vec, dense;
  uint32_t M, magic, shift;
  /* bytes from a thread's row to its next: inputs and codes (vec), scale (dense) */
  int64_t gstep, ustep, qstep, sstep;
};

/* Bytes of one stored scale (a word for fp32 and packed UE8M0, else a
 * byte), and from a row's scales to the next row's of the same expert --
 * shared by the kernel's addressing and the host's steps. */
SG_HD inline int64_t sg_scale_unit(const sg_quant_problem &p) {
  return p.encoding == SWIGLU_SCALE_UE8M0_PACKED || sg_scale_is_fp32(&p) ? 4 : 1;
}
SG_HD inline int64_t sg_scale_row_step(const sg_quant_problem &p) {
  return p.layout == SWIGLU_SCALE_ROW_MAJOR ? p.scale_cols * sg_scale_unit(p) : sg_scale_unit(p);
}
SG_DI uint32_t sg_div_m(uint32_t n, const sg_quant_launch &l) { return (__umulhi(n, l.magic) + n) >> l.shift; }

/* Groups of TL * V elements (G = 32, 64, 128, 256): TL lanes per group, each
 * lane owning V consecutive elements (16-byte loads). blockIdx.y walks the
 * rows, several per thread on large problems. Lanes past the last group
 * still take part in the width-TL shuffles. ACT, GD, IL and FMT specialise
 * the common cases (template constants; -1 reads them from the problem); the
 * specialised instances take 16 elements per lane (the verified-h ones 32),
 * the generic ones 8. On
 * the vec path (specialised instances only) a thread walks pointers from row
 * to row -- inputs, codes and its group's scale -- instead of computing each
 * row's addresses. */
/* Four blocks of 256 per SM (64 registers): the 16-element instances spill
 * a little (on their exact-recompute path) but ran 0.67-0.72 of the copy on
 * the H200 against 0.61-0.66 at three blocks (80 registers, no spill) and
 * 0.33 at two (bench/NOTES.md). -D overrides are for such experiments. */
/* Block size and rows per thread: the fp32-h instances take blocks of 128
 * and 8 rows per thread, the ROUND_H ones 256 and 4. At H = 14336 the 896
 * lanes of a row fill 7 blocks of 128 where 4 blocks of 256 left half a
 * block idle, and 8 rows per thread halve the cost of the per-thread setup
 * (~160 instructions a warp, 8% of the fp32-h kernel's instructions at 4
 * rows) where the grid stays large (gpu_glu_quant). H200, same-run A/B of
 * the fp32-h instances: 0.77-0.84 of the copy at 256 / 4, 0.79-0.86 at
 * 128 / 8 (bench/NOTES.md). */
#ifndef SG_QUANT_THREADS
#define SG_QUANT_THREADS 128
#endif
#ifndef SG_QUANT_MINB
#define SG_QUANT_MINB (4 * 256 / SG_QUANT_THREADS)
#endif
#ifndef SG_QUANT_ROWS
#define SG_QUANT_ROWS 8
#endif
#ifndef SG_QUANT_THREADS_RH
#define SG_QUANT_THREADS_RH 256
#endif
#ifndef SG_QUANT_ROWS_RH
#define SG_QUANT_ROWS_RH 4
#endif
#ifndef SG_QUANT_MINB_RH
#define SG_QUANT_MINB_RH (4 * 256 / SG_QUANT_THREADS_RH)
#endif
/* The verified-h instances (sg_quant_vf) take 32 elements per lane (4
 * lanes a group), blocks of 64 threads, 8 blocks a SM (128 registers, no
 * spill on the common path) and the register pipeline (SG_QUANT_PIPE):
 * the per-row work (team maxima, the scale and its reciprocal, the exact
 * recomputation of the maximum's candidates, the stores) is shared by 32
 * elements instead of 16, and the next row's loads are always in flight.
 * H200, same-run A/B against 16 elements, 128 threads, 64 registers:
 * 0.83-0.86 -> 0.89-0.92 of the copy (fp32 scales), 0.90-0.92 -> 0.94-1.00
 * (packed UE8M0) at the large shapes; 32 elements without the pipeline ran
 * as the old instances, and 128-thread blocks lost up to 0.04 where a
 * row's 448 lanes leave half a block idle (bench/NOTES.md). */
#ifndef SG_QV_VF
#define SG_QV_VF 32
#endif
#ifndef SG_QUANT_THREADS_VF
#define SG_QUANT_THREADS_VF 64
#endif
#ifndef SG_QUANT_MINB_VF
#define SG_QUANT_MINB_VF 8
#endif
#ifndef SG_QUANT_ROWS_VF
#define SG_QUANT_ROWS_VF SG_QUANT_ROWS
#endif
#ifndef SG_QUANT_PIPE
#define SG_QUANT_PIPE 1
#endif
/* waves of resident threads below which a verified-h instance's thread
 * takes 4 rows, not 8 (gpu_glu_quant). H200, same-run A/B of 4 against
 * 2: 65536 x 1024 (one warp a row) 0.896 -> 0.909 (row-major fp32 scales),
 * 0.933 -> 0.958 (packed UE8M0); the other large shapes, and 8192 x 4096
 * which 4 also moves to 4 rows, within +-0.005 (bench/NOTES.md). */
#ifndef SG_QUANT_WAVES
#define SG_QUANT_WAVES 4
#endif
/* An instance's block size, blocks a SM (its launch bound) and rows per
 * thread, by kind: ROUND_H (rh: RD >= 0), verified h (vf: sg_quant_vf) or
 * the others -- one definition for the kernel's bound and the host's launch
 * (gpu_glu_quant). Parenthesised where used as a bound: HIP's
 * __launch_bounds__ is a macro, and template commas would split it. */
SG_HD constexpr int sg_quant_threads(bool rh, bool vf) {
  return rh ? SG_QUANT_THREADS_RH : vf ? SG_QUANT_THREADS_VF : SG_QUANT_THREADS;
}
SG_HD constexpr int sg_quant_minb(bool rh, bool vf) {
  return rh ? SG_QUANT_MINB_RH : vf ? SG_QUANT_MINB_VF : SG_QUANT_MINB;
}
SG_HD constexpr int sg_quant_rows(bool rh, bool vf) {
  return rh ? SG_QUANT_ROWS_RH : vf ? SG_QUANT_ROWS_VF : SG_QUANT_ROWS;
}
template <int TL, int ACT, int GD, int IL, int FMT, int V, int RD = -1, bool PT = false>
__global__ void __launch_bounds__((sg_quant_threads(RD >= 0, sg_quant_vf<ACT, FMT, RD>())),
                                  (sg_quant_minb(RD >= 0, sg_quant_vf<ACT, FMT, RD>())))
    sg_quant_team_kernel(const sg_quant_problem p, const int *bad, const sg_quant_launch L) {
  if (bad && *bad) return;
  constexpr bool VF = sg_quant_vf<ACT, FMT, RD>();
  /* sg_quant_group's PTM: the generic instances read the granularity */
  constexpr int PTM = PT ? 1 : ACT < 0 ? -1 : 0;
  const int sub = threadIdx.x % TL;
  const int64_t g = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / TL;
  const int64_t c0 = g * p.group + sub * V;
  const bool in_range = g < p.groups;
  if (GD >= 0 && IL >= 0 && L.vec) {
    const int64_t es = GD == SG_F32 ? 4 : 2;
    const char *gp = sg_cursor(p.glu.gate, c0, es).p, *up = sg_cursor(p.glu.up, c0, es).p;
    char *qp = (char *)sg_cursor(p.q, c0, 1).p;
    /* byte offset of this group's scale in row m of expert e: s_g + e s_e + m s_m */
    const bool packed = p.encoding == SWIGLU_SCALE_UE8M0_PACKED, word = sg_scale_unit(p) == 4;
    const int64_t W = sg_scale_unit(p), c = packed ? g / 4 : g;
    const int64_t ld = p.layout == SWIGLU_SCALE_COL_MAJOR_TMA ? p.rows_padded : p.rows_per_expert;
    const bool rm = p.layout == SWIGLU_SCALE_ROW_MAJOR;
    const int64_t s_m = sg_scale_row_step(p);
    const int64_t s_e = rm ? p.rows_per_expert * p.scale_cols * W : p.scale_cols * ld * W;
    const int pad = packed && g == p.groups - 1 ? (int)(4 * p.scale_cols - p.groups) : 0;
    const bool writes_scale = sub == 0 && p.scales && in_range;
    char *sbase = p.scales + (rm ? c * W : c * ld * W) + (packed ? g % 4 : 0);
    /* the verified-h instances of 16-bit inputs, on the dense path, load
     * each row's inputs into registers during the previous row */
    constexpr bool pipe = SG_QUANT_PIPE && VF && GD != SG_F32;
    /* one row: h, the group's scale and codes, the scale stored at dst */
    auto row = [&](uint32_t r, const char *gr, const char *ur, char *qr, char *dst, bool live, const auto &first) {
      float h[V];
      float amax = 0.0f;
      bool inf = false;
      float sf;
      uint32_t sb;
      const auto load = [&](float(&gg)[V], float(&uu)[V]) { sg_load_gu_vec<GD, IL, V>(gr, ur, gg, uu); };
      if constexpr (VF) {
        bool exact = false;
        if constexpr (!std::is_same<std::decay_t<decltype(first)>, int>::value) {
          if (live) sg_quant_hv_vf<ACT, V>(p, r, first, load, h, amax, inf, exact);
        } else {
          if (live) sg_quant_hv_vf<ACT, V>(p, r, load, load, h, amax, inf, exact);
        }
        const auto one = [&](int j, float &gv, float &uv) {
          const int64_t o = (int64_t)j * (IL ? 2 : 1) * es;
          gv = sg_cvt_in(gr + o, GD, 0);
          uv = sg_cvt_in(ur + o, GD, 0);
        };
        sg_quant_group_vf<TL, ACT, true, V, PT>(p, live, r, h, amax, inf, exact, load, one, (uint8_t *)qr, sf, sb);
      } else {
        if (live) sg_quant_hv<ACT, V, RD>(p, r, load, h, amax, inf);
        sg_quant_group<TL, FMT, true, V, PTM>(p, live, h, amax, inf, (uint8_t *)qr, sf, sb);
      }
      if (writes_scale && live) {
        if (word && !packed) *(float *)dst = sf;
        else *dst = (char)sb;
        if (pad) { /* 1 to 3 bytes */
          dst[1] = 0;
          if (pad > 1) dst[2] = 0;
          if (pad > 2) dst[3] = 0;
        }
      }
    };
    /* The fp32-h instances of 16-bit inputs ask for the next row's inputs
     * in L1 a row ahead: ptxas sinks their up loads into the middle of the
     * ~400-instruction h computation (register pressure), where their
     * latency showed as long-scoreboard stalls; with the hint those loads
     * hit L1. H200, same-run A/B: 0.71-0.74 -> 0.76-0.79 of the copy at
     * the large shapes. The ROUND_H instances (half the arithmetic) lost
     * 3-5% with it, and fp32 inputs were not measured: neither takes it;
     * nor do the verified-h instances (VF), whose h is the ROUND_H
     * instances' arithmetic (with it: 0.75-0.80 against 0.76-0.83). */
    constexpr bool prefetch = RD < 0 && GD != SG_F32 && !VF;

    if (L.dense) {
      /* no experts: every pointer, the scale's too, steps by a constant the
       * host worked out (kernel parameters, so the loop keeps no step in
       * registers and recomputes none: ~40 fewer instructions per row) */
      char *sp = sbase + (int64_t)blockIdx.y * s_m;
      if constexpr (pipe) {
        /* the next row's loads are issued before this row's math, into a
         * second set of registers (copied over at the end of the row: 32
         * moves, cheaper than the alternatives measured -- issuing them
         * after h, into the consumed registers, queued the candidates'
         * reloads behind them: 0.88 against 0.91 of an H200's copy; two
         * rows an iteration with alternating buffers spilled: 0.56) */
        sg_gu_raw<V> cur;
        const uint32_t rows = (uint32_t)p.glu.rows;
        if (in_range && blockIdx.y < rows) sg_load_raw<IL, V>(gp, up, cur);
        for (uint32_t r = blockIdx.y; r < rows; r += gridDim.y, gp += L.gstep, up += L.ustep, qp += L.qstep, sp += L.sstep) {
          sg_gu_raw<V> nxt;
          if (in_range && r + gridDim.y < rows) sg_load_raw<IL, V>(gp + L.gstep, up + L.ustep, nxt);
          const auto first = [&](float(&gg)[V], float(&uu)[V]) { sg_unpack_raw<GD, IL, V>(cur, gg, uu); };
          row(r, gp, up, qp, sp, in_range, first);
          cur = nxt;
        }
      } else {
        for (uint32_t r = blockIdx.y; r < (uint32_t)p.glu.rows;
             r += gridDim.y, gp += L.gstep, up += L.ustep, qp += L.qstep, sp += L.sstep) {
          if (prefetch && in_range && r + gridDim.y < (uint32_t)p.glu.rows) {
            SG_PREFETCH_L1(gp + L.gstep);
            if (!IL) SG_PREFETCH_L1(up + L.ustep); /* interleaved: up is in the gate's row */
          }
          row(r, gp, up, qp, sp, in_range, 0);
        }
      }
      return;
    }
    for (uint32_t r = blockIdx.y; r < (uint32_t)p.glu.rows;
         r += gridDim.y, gp += L.gstep, up += L.ustep, qp += L.qstep) {
      if (prefetch && in_range && r + gridDim.y < (uint32_t)p.glu.rows) {
        SG_PREFETCH_L1(gp + L.gstep);
        if (!IL) SG_PREFETCH_L1(up + L.ustep);
      }
      const uint32_t e = sg_div_m(r, L), m = r - e * L.M;
      const bool live = in_range && (!p.expert_counts || (int32_t)m < p.expert_counts[e]);
      row(r, gp, up, qp, sbase + (int64_t)e * s_e + (int64_t)m * s_m, live, 0);
    }
    return;
  }
  for (int64_t r = blockIdx.y; r < p.glu.rows; r += gridDim.y) {
    const bool live = in_range && sg_row_live(p, r);
    float h[V];
    float amax = 0.0f;
    bool inf = false, exact = false;
    const auto load = [&](float(&gg)[V], float(&uu)[V]) {
#pragma unroll
      for (int k = 0; k < V; k += 8) {
        float g8[8], u8[8];
        sg_load_gu_t<GD, IL>(p.glu, r, c0 + k, 8, g8, u8);
#pragma unroll
        for (int i = 0; i < 8; ++i) gg[k + i] = g8[i], uu[k + i] = u8[i];
      }
    };
    if (live) {
      if constexpr (VF) sg_quant_hv_vf<ACT, V>(p, r, load, load, h, amax, inf, exact);
      else sg_quant_hv<ACT, V, RD>(p, r, load, h, amax, inf);
    }
    float sf;
    uint32_t sb;
    uint8_t *qr = (uint8_t *)p.q.base + sg_row_offset(&p.q, r) + c0;
    if constexpr (VF) {
      const auto one = [&](int j, float &gv, float &uv) {
        gv = sg_cvt_in(sg_at(p.glu.gate, r, c0 + j), GD, 0);
        uv = sg_cvt_in(sg_at(p.glu.up, r, c0 + j), GD, 0);
      };
      sg_quant_group_vf<TL, ACT, false, V, PT>(p, live, r, h, amax, inf, exact, load, one, qr, sf, sb);
    } else {
      sg_quant_group<TL, FMT, false, V, PTM>(p, live, h, amax, inf, qr, sf, sb);
    }
    if (sub == 0 && p.scales && live) {
      const int64_t e = r / p.rows_per_expert, m = r % p.rows_per_expert;
      sg_write_scale(&p, e, m, g, sf, sb);
      if (g == p.groups - 1) sg_pad_packed(&p, e, m);
    }
  }
}

typedef void (*sg_quant_kernel)(const sg_quant_problem, const int *, const sg_quant_launch);

/* The kernel for a per-group problem and its elements per lane. G = 128
 * (the common group) is specialised per activation, dtype, layout and
 * (E4M3FN, whose encoding is one instruction on sm_89+) format, 16
 * elements per lane (32 for the verified fp32 h: SG_QV_VF); GELU erf has
 * no branch-free form and, like every other case, takes a generic instance
 * with 8. */
#ifndef SG_QV
#define SG_QV 16
#endif
/* *vf: the instance picked is a verified-h one */
template <int ACT, int GD, int RD>
static sg_quant_kernel sg_pick_quant_il(bool il, int format, bool *vf) {
  const int T = 128 / SG_QV;
  *vf = false;
  if (format == SWIGLU_QUANT_FP8_E4M3FN) {
    *vf = sg_quant_vf<ACT, SWIGLU_QUANT_FP8_E4M3FN, RD>();
    constexpr int VE = sg_quant_vf<ACT, SWIGLU_QUANT_FP8_E4M3FN, RD>() ? SG_QV_VF : SG_QV;
    return il ? sg_quant_team_kernel<128 / VE, ACT, GD, 1, 0, VE, RD> : sg_quant_team_kernel<128 / VE, ACT, GD, 0, 0, VE, RD>;
  }
  return il ? sg_quant_team_kernel<T, ACT, GD, 1, -1, SG_QV, RD> : sg_quant_team_kernel<T, ACT, GD, 0, -1, SG_QV, RD>;
}
/* ROUND_H (a 16-bit h, "forward then quantize") has its own instances: on
 * the generic one it ran at a third of the fp32-h speed (0.21 against 0.67
 * of the copy on an H200), though its h costs fewer instructions. */
template <int ACT>
static sg_quant_kernel sg_pick_quant_dt(const sg_quant_problem *p, bool *rh_inst, bool *vf) {
  const bool il = p->glu.gate.col_step == 2, rh = p->round_dtype == SG_BF16 || p->round_dtype == SG_F16;
  /* the instance picked has RD >= 0 (and is launched as such) */
  *rh_inst = rh && p->glu.gate.dtype != SG_F32;
  switch (p->glu.gate.dtype) {
    case SG_BF16:
      return rh ? sg_pick_quant_il<ACT, SG_BF16, SG_BF16>(il, p->format, vf)
                : sg_pick_quant_il<ACT, SG_BF16, -1>(il, p->format, vf);
    case SG_F16:
      return rh ? sg_pick_quant_il<ACT, SG_F16, SG_F16>(il, p->format, vf)
                : sg_pick_quant_il<ACT, SG_F16, -1>(il, p->format, vf);
    default: return sg_pick_quant_il<ACT, SG_F32, -1>(il, p->format, vf);
  }
}
/* *v: elements per lane; *rh: a ROUND_H instance (RD >= 0), *vf: a
 * verified-h one (sg_quant_vf); both take their own block size and rows
 * per thread (gpu_glu_quant) */
static sg_quant_kernel sg_pick_quant(const sg_quant_problem *p, int *v, bool *rh, bool *vf) {
  *v = SG_QV;
  *rh = false;
  *vf = false;
  if (p->granularity == SWIGLU_SCALE_PER_TENSOR) {
    /* static scales (groups of 128 here: gpu_glu_quant): SiLU to E4M3FN
     * with fp32 h, static FP8's common case, has instances of its own (PT:
     * a per-group instance cannot take them); the rest take the generic
     * one, which reads the granularity */
    if (p->glu.activation == SWIGLU_ACT_SILU && p->format == SWIGLU_QUANT_FP8_E4M3FN &&
        p->glu.gate.dtype == p->glu.up.dtype && (p->round_dtype < 0 || p->round_dtype == SG_F32)) {
      constexpr bool VFS = sg_quant_vf<SWIGLU_ACT_SILU, SWIGLU_QUANT_FP8_E4M3FN, -1>();
      constexpr int VE = VFS ? SG_QV_VF : SG_QV, T = 128 / VE;
      const bool il = p->glu.gate.col_step == 2;
      *vf = VFS;
      *v = VE;
      switch (p->glu.gate.dtype) {
        case SG_BF16:
          return il ? sg_quant_team_kernel<T, 0, SG_BF16, 1, 0, VE, -1, true> : sg_quant_team_kernel<T, 0, SG_BF16, 0, 0, VE, -1, true>;
        case SG_F16:
          return il ? sg_quant_team_kernel<T, 0, SG_F16, 1, 0, VE, -1, true> : sg_quant_team_kernel<T, 0, SG_F16, 0, 0, VE, -1, true>;
        default:
          return il ? sg_quant_team_kernel<T, 0, SG_F32, 1, 0, VE, -1, true> : sg_quant_team_kernel<T, 0, SG_F32, 0, 0, VE, -1, true>;
      }
    }
    *v = 8;
    return sg_quant_team_kernel<16, -1, -1, -1, -1, 8>;
  }
  /* ROUND_H rounds to the input dtype: one dtype for gate and up (and the
   * specialised instances rely on it: sg_quant_hv) */
  if (p->group == 128 && p->glu.gate.dtype == p->glu.up.dtype &&
      (p->round_dtype < 0 || p->round_dtype == p->glu.gate.dtype)) {
    sg_quant_kernel k = NULL;
    switch (p->glu.activation) {
      case 0: k = sg_pick_quant_dt<0>(p, rh, vf); break;
      case 1: k = sg_pick_quant_dt<1>(p, rh, vf); break;
      case 3: k = sg_pick_quant_dt<3>(p, rh, vf); break;
      case 4: k = sg_pick_quant_dt<4>(p, rh, vf); break;
      case 5: k = sg_pick_quant_dt<5>(p, rh, vf); break;
      default: break;
    }
    if (k) {
      if (*vf) *v = SG_QV_VF;
      return k;
    }
  }
  *v = 8;
  switch (p->group) {
    case 32: return sg_quant_team_kernel<4, -1, -1, -1, -1, 8>;
    case 64: return sg_quant_team_kernel<8, -1, -1, -1, -1, 8>;
    case 128: return sg_quant_team_kernel<16, -1, -1, -1, -1, 8>;
    default: return sg_quant_team_kernel<32, -1, -1, -1, -1, 8>;
  }
}

/* The launch facts for sg_quant_team_kernel (see sg_quant_launch). */
static sg_quant_launch sg_quant_launch_of(const sg_quant_problem *p, int64_t gy) {
  sg_quant_launch l = {0, 0, 1u, 1u, 0u, 0, 0, 0, 0};
  const bool il = p->glu.gate.col_step == 2;
  if (!sg_rows_vec(&p->glu.gate) || (!il && !sg_rows_vec(&p->glu.up))) return l;
  if (!sg_rows_vec(&p->q)) return l;
  if (((uintptr_t)p->scales & 3u) || p->glu.rows >= (int64_t)1 << 31 || p->rows_per_expert < 1) return l;
  l.vec = 1;
  l.M = (uint32_t)p->rows_per_expert;
  while ((1ull << l.shift) < l.M) ++l.shift;
  l.magic = (uint32_t)(((1ull << 32) * ((1ull << l.shift) - l.M)) / l.M + 1u);
  const int64_t es = p->glu.gate.dtype == SG_F32 ? 4 : 2;
  l.gstep = p->glu.gate.row_stride * gy * es;
  l.ustep = p->glu.up.row_stride * gy * es;
  l.qstep = p->q.row_stride * gy;
  if (p->experts == 1 && !p->expert_counts) {
    l.dense = 1;
    l.sstep = sg_scale_row_step(*p) * gy;
  }
  return l;
}

/* Group sizes the team kernels do not take (48, 512, ...) and NVFP4: one
 * block per row, the row's h in shared memory, teams take groups in turn. */
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
      const float div = sg_group_scale(&p, p.format, amax, &sf, &sb, &zero);
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

/* Per-row (per-token) scales, and per-tensor ones where H is not a
 * multiple of 128 (the team kernel takes the others), every format but
 * NVFP4 (whose scales are per 16): a row is one group. sg_quant_row_kernel
 * gives a group to one team of 32 lanes, and so a whole row: per-tensor
 * ran at 0.14 of an H100's copy there (bf16, 4096 x 14336;
 * docs/benchmarks.md). Here the block shares the row. Per-tensor: the
 * divisor is given, so each element is encoded as it is computed, nothing
 * staged. Per-row: the first pass
 * computes h, stages it in shared memory where the row fits (staged) and
 * takes the block's maximum; the second encodes from the staged h, or
 * computes h again where the row did not fit (the same code: the same
 * bits), so no H is refused. A thread takes the same 8 columns in both
 * passes, so only the maximum needs the block's barrier. ACT specialises
 * the branch-free h of sg_quant_hv (fp32 h, as the team kernels); -1
 * takes every element through sg_quant_h (ROUND_H, the other activations).
 * A thread loads two chunks of 8 columns before computing either, and four
 * blocks fit a SM (64 registers), so each SM keeps ~64 KB of loads in
 * flight. Per-row runs at 0.27-0.45 of an H100's copy (bf16, 1024-65536
 * columns; docs/benchmarks.md), latency-bound: at 14336 columns the staged
 * row leaves room for 3 blocks a SM (ncu: 36% occupancy, SM 51%, DRAM
 * 34%). The team kernels' verified h, tried here for per-row E4M3FN (a
 * block-wide candidate pass and a second barrier), was no faster (0.37-0.39):
 * per-row E4M3FN of SiLU from 16-bit inputs takes sg_quant_token_kernel
 * (below), which keeps rows of loads in flight instead. */
#ifndef SG_LINE_THREADS
#define SG_LINE_THREADS 256
#endif
#ifndef SG_LINE_MINB
#define SG_LINE_MINB 4
#endif
/* bytes of its static shared memory (the maxima below) */
#define SG_LINE_STATIC_SMEM ((int)(2 * (SG_LINE_THREADS / 32) * sizeof(float)))
template <bool PT, int ACT>
__global__ void __launch_bounds__(SG_LINE_THREADS, SG_LINE_MINB)
    sg_quant_line_kernel(const sg_quant_problem p, const int *bad, int staged) {
  /* the staged h: float4 j holds columns 8j .. 8j + 3, float4 nc + j the
   * next four (nc chunks), so a warp's 16-byte accesses are consecutive */
  extern __shared__ float4 sg_line_h[];
  /* the warps' maxima, two sets: a thread may write the next row's while a
   * slower one still reads this row's (never two rows on: the barrier) */
  __shared__ float wmax[2][SG_LINE_THREADS / 32];
  static_assert(sizeof wmax == SG_LINE_STATIC_SMEM, "SG_LINE_STATIC_SMEM");
  if (bad && *bad) return;
  const int64_t H = p.glu.width, step = (int64_t)blockDim.x * 8, nc = (H + 7) / 8;
  const int fmt = p.format;
  sg_divider dv = {1.0f, 1.0f, true};
  if (PT) dv = sg_divider_of(*p.tensor_scale);
  int set = 0;
  for (int64_t r = blockIdx.x; r < p.glu.rows; r += gridDim.x) {
    if (!sg_row_live(p, r)) continue; /* the whole block's row: no barrier skipped by some */
    uint8_t *q = (uint8_t *)p.q.base + sg_row_offset(&p.q, r);
    /* h of a chunk from its inputs (sg_quant_hv; the lanes past n see
     * zero inputs and are never stored); returns its largest finite |h| */
    const auto hof = [&](const float(&g)[8], const float(&u)[8], float(&h)[8]) {
      const auto same = [&](float(&gg)[8], float(&uu)[8]) {
#pragma unroll
        for (int i = 0; i < 8; ++i) gg[i] = g[i], uu[i] = u[i];
      };
      float amax;
      bool inf;
      sg_quant_hv<ACT, 8, -1>(p, r, same, h, amax, inf);
      return amax;
    };
    /* the codes of a chunk of n columns at column c (whether an h is
     * infinite is not kept, so fp32 scales take sg_divide) */
    const auto encode = [&](int64_t c, int n, const float(&h)[8]) {
      float x[8];
      uint32_t wd[2];
      sg_quotients<8>(h, dv, !PT && p.encoding != SWIGLU_SCALE_FP32 ? SG_QUOT_POW2 : SG_QUOT_ANY, true, x);
      if (fmt == SWIGLU_QUANT_FP8_E4M3FN) sg_code_words<SWIGLU_QUANT_FP8_E4M3FN>(x, fmt, wd);
      else sg_code_words<-1>(x, fmt, wd);
      sg_store_codes<false>(q + c, wd, n);
    };
    /* every chunk of the thread, two loaded at a time, through f(c, n, g, u) */
    const auto each = [&](const auto &f) {
      for (int64_t c0 = (int64_t)threadIdx.x * 8; c0 < H; c0 += 2 * step) {
        const int64_t c1 = c0 + step;
        const int n0 = H - c0 < 8 ? (int)(H - c0) : 8, n1 = c1 >= H ? 0 : H - c1 < 8 ? (int)(H - c1) : 8;
        float g0[8], u0[8], g1[8], u1[8];
        sg_load_gu(p.glu, r, c0, n0, g0, u0); /* the columns past n read as 0 */
        if (n1) sg_load_gu(p.glu, r, c1, n1, g1, u1);
        f(c0, n0, g0, u0);
        if (n1) f(c1, n1, g1, u1);
      }
    };
    if (PT) {
      each([&](int64_t c, int n, const float(&g)[8], const float(&u)[8]) {
        float h[8];
        hof(g, u, h);
        encode(c, n, h);
      });
      continue;
    }
    float amax = 0.0f;
    each([&](int64_t c, int n, const float(&g)[8], const float(&u)[8]) {
      (void)n;
      float h[8];
      amax = fmaxf(amax, hof(g, u, h));
      if (staged) {
        sg_line_h[c / 8] = make_float4(h[0], h[1], h[2], h[3]);
        sg_line_h[nc + c / 8] = make_float4(h[4], h[5], h[6], h[7]);
      }
    });
    /* finite maxima, so any order gives the same maximum */
    amax = sg_team_max(amax);
    if (threadIdx.x % SG_TEAM == 0) wmax[set][threadIdx.x / SG_TEAM] = amax;
    __syncthreads();
    amax = 0.0f;
    for (int i = 0; i < (int)blockDim.x / SG_TEAM; ++i) amax = fmaxf(amax, wmax[set][i]);
    set ^= 1;
    float sf;
    uint32_t sb;
    int zero; /* only NVFP4 has all-zero groups */
    dv = sg_divider_of(sg_group_scale_amax(&p, fmt, amax, &sf, &sb, &zero));
    if (threadIdx.x == 0 && p.scales) {
      const int64_t e = r / p.rows_per_expert, m = r % p.rows_per_expert;
      sg_write_scale(&p, e, m, 0, sf, sb);
      sg_pad_packed(&p, e, m);
    }
    if (staged) {
      for (int64_t c0 = (int64_t)threadIdx.x * 8; c0 < H; c0 += step) {
        const float4 a = sg_line_h[c0 / 8], b = sg_line_h[nc + c0 / 8];
        const float h[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
        encode(c0, H - c0 < 8 ? (int)(H - c0) : 8, h);
      }
    } else {
      each([&](int64_t c, int n, const float(&g)[8], const float(&u)[8]) {
        float h[8];
        hof(g, u, h);
        encode(c, n, h);
      });
    }
  }
}

/* Per-row (per-token) scales of E4M3FN codes with fp32 h from SiLU
 * (sg_quant_vf), 16-bit inputs on the vector path, rows of up to
 * (max_smem - static) / 8 columns (29048 on an H100): the team kernels'
 * verified h (sg_quant_hv_vf, sg_quant_group_vf, whose arguments this
 * repeats for a group that is a whole row). The line kernel computes the
 * exact h (~60-90 instructions an element) and ran at 0.33-0.45 of an
 * H100's copy, latency-bound: its threads load two chunks, wait, compute,
 * and its staged fp32 rows left 3 blocks a SM (docs/benchmarks.md).
 * Here a persistent block takes rows in turn, and the next row's inputs
 * (4 H bytes) are copied into shared memory (cp.async) while this row is
 * computed, so a row a block is always in flight (a third buffer, two rows
 * ahead, was no faster: H100, 4096 x 14336, 0.155 ms either way). The
 * first pass's fp32 h is kept for the second: in a third area where a SM
 * still holds two blocks with it (keep; H <= 9632 on an H100), else over
 * the chunk's own staged inputs (both 32 bytes), so that two blocks a SM
 * fit up to H = 14448. Recomputing h in the second pass instead, as this
 * kernel first did, made 58 instructions an element at 14336 columns and
 * kept the SM's issue slots 65% busy (ncu). Without keep the exact
 * recomputations after the first pass (the bracket's fix-ups, the rare
 * rows below, repeated maxima) read their inputs again from global memory
 * (L2: fetched one row earlier), but the candidate for a warp's maximum,
 * one element a thread at most, whose inputs the thread takes into a
 * register before h replaces them: reading those from L2 too put a wait
 * before every row's barrier (H100: 4096 x 28672 0.284 -> 0.300 ms, 16384
 * x 2048 0.097 -> 0.105 without keep). The row's h in registers instead
 * (32 elements a thread) took 128 registers and left one block a SM.
 * KEEP is a template parameter, not a run-time flag: as one instance
 * holding both forms within 64 registers, the same code ran 12-36% slower
 * (H100, 16384 x 2048: 0.109 -> 0.081 ms; 4096 x 14336: 0.153 -> 0.137;
 * not profiled further).
 *  - Pass 1: each warp finds its exact maximum alone. A thread keeps the
 *    approximate maximum of its chunks and which chunk holds it, and the
 *    largest maximum of its other chunks; the exact maximum lies among the
 *    elements at or above A_w (1 - 2^-15), A_w the warp's approximate
 *    maximum (sg_quant_group_vf), so a thread computes exactly the
 *    elements of its top chunk above that, or, where another chunk also
 *    reaches it (rare but for repeated values), of all its chunks. A warp
 *    contributes its largest finite |RN(h w)|: RN(E_w |w|) for a safe
 *    weight (rounding is monotonic); a warp whose A_w |w| is below 2^-60,
 *    or whose row weight is outside [2^-32, 1], computes every h exactly
 *    and takes it element by element. The block takes the largest (one
 *    barrier).
 *  - Pass 2: the codes take the bracket of sg_quant_group_vf, with the
 *    fix-ups of the elements whose ends differ; exact h and the division
 *    instead where the row is tiny (largest |h w| below 2^-60), the weight
 *    unsafe, the divisor outside sg_divider_of's fast range or the
 *    bracket's multiplier below the smallest normal (a large amax floor
 *    with a small weight: y |w| ~ 448 |w| / floor), and in a chunk that
 *    holds an infinite or NaN h. */
#if !defined(SWIGLU_HIP)
#ifndef SG_TOKEN_KERNEL /* 0: per-row problems take the line kernel (same-run A/B) */
#define SG_TOKEN_KERNEL 1
#endif
#ifndef SG_TOKEN_THREADS
#define SG_TOKEN_THREADS 1024
#endif
#ifndef SG_TOKEN_MINB
#define SG_TOKEN_MINB 1
#endif
#define SG_TOKEN_STATIC_SMEM ((int)((SG_TOKEN_THREADS / 32) * sizeof(float)))
/* The largest of the warp's v, all >= 0 and not NaN (so ordered as their
 * bits): one instruction from sm_80 on */
SG_DI float sg_warp_max_nonneg(float v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  return __uint_as_float(__reduce_max_sync(0xffffffffu, __float_as_uint(v)));
#else
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, SG_SHFL_XOR(v, off, 32));
  return v;
#endif
}
SG_DI void sg_cp_async16(void *smem, const void *gmem) {
  const uint32_t s = (uint32_t)__cvta_generic_to_shared(smem);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
template <int ACT, int GD, int IL, int KEEP>
__global__ void __launch_bounds__(SG_TOKEN_THREADS, SG_TOKEN_MINB)
    sg_quant_token_kernel(const sg_quant_problem p, const int *bad) {
  constexpr bool keep = KEEP != 0;
  constexpr int64_t es = 2; /* 16-bit inputs (sg_load_raw) */
  static_assert(GD == SG_BF16 || GD == SG_F16, "16-bit inputs");
  /* two rows' inputs, 4 H bytes each: gate's H values then up's, or the
   * interleaved pairs, as they lie in global memory. The first pass keeps
   * each chunk's fp32 h (32 bytes) for the second: with keep in a third
   * area (values 0-3 in float4 j, 4-7 in float4 H / 8 + j), else over the
   * chunk's own inputs (32 bytes, which only the thread that wrote them
   * reads): values 0-3 where its gate values were, 4-7 where its up values
   * were (interleaved: the 32 bytes in order). */
  extern __shared__ uint4 sg_token_in[];
  __shared__ float wmax[SG_TOKEN_THREADS / 32];
  static_assert(sizeof wmax == SG_TOKEN_STATIC_SMEM, "SG_TOKEN_STATIC_SMEM");
  if (bad && *bad) return;
  const int64_t H = p.glu.width, nch = H / 8, rows = p.glu.rows;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  const auto buf = [&](int k) { return (char *)sg_token_in + 4 * H * k; };
  const auto exact_h = [&](float g, float u) { /* an approximate lane's element: never declined */
    bool unused = false;
    return sg_glu_try<ACT>(ACT, p.glu.alpha, p.glu.limit, g, u, unused);
  };
  const auto next_live = [&](int64_t r) {
    while (r < rows && !sg_row_live(p, r)) r += gridDim.x;
    return r;
  };
  /* row r's inputs into b (every thread its chunks), one commit group */
  const auto fetch = [&](int64_t r, char *b) {
    const char *gr = sg_at(p.glu.gate, r, 0), *ur = sg_at(p.glu.up, r, 0);
    for (int j = threadIdx.x; j < nch; j += blockDim.x) {
      if (IL) {
        sg_cp_async16(b + 32 * j, gr + 32 * j);
        sg_cp_async16(b + 32 * j + 16, gr + 32 * j + 16);
      } else {
        sg_cp_async16(b + 16 * j, gr + 16 * j);
        sg_cp_async16(b + 2 * H + 16 * j, ur + 16 * j);
      }
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
  };
  int64_t r = next_live(blockIdx.x);
  if (r < rows) fetch(r, buf(0));
  for (int cur = 0; r < rows; cur ^= 1) {
    const int64_t rn = next_live(r + gridDim.x);
    asm volatile("cp.async.wait_group 0;" ::: "memory");
    /* row r is in buf(cur) for every thread, and buf(cur ^ 1) (the row
     * before, its h) is read by none */
    __syncthreads();
    if (rn < rows) fetch(rn, buf(cur ^ 1));
    char *const in = buf(cur);
    /* chunk j's 32 bytes: its gate words (and, interleaved, its up words)
     * at lo, its up words at hi; hlo and hhi its kept h */
    const auto lo = [&](int j) { return in + j * (IL ? 32 : 16); };
    const auto hi = [&](int j) { return IL ? in + 32 * j + 16 : in + 2 * (int)H + 16 * j; };
    const auto hlo = [&](int j) { return keep ? buf(2) + 16 * j : lo(j); };
    const auto hhi = [&](int j) { return keep ? buf(2) + 2 * (int)H + 16 * j : hi(j); };
    const auto load = [&](int j, float(&gg)[8], float(&uu)[8]) {
      sg_load_gu_vec<GD, IL, 8>(lo(j), IL ? lo(j) + es : hi(j), gg, uu);
    };
    const auto kept = [&](int j, float(&h)[8]) {
      const float4 x = *(const float4 *)hlo(j), y = *(const float4 *)hhi(j);
      h[0] = x.x, h[1] = x.y, h[2] = x.z, h[3] = x.w, h[4] = y.x, h[5] = y.y, h[6] = y.z, h[7] = y.w;
    };
    /* element i of chunk j, exactly, after the first pass: from the staged
     * inputs with keep, else (h has replaced them) from global memory,
     * where the row was fetched one row earlier (L2) */
    const auto one = [&](int j, int i) {
      const char *gp, *up;
      if (keep) {
        gp = lo(j) + (IL ? 2 : 1) * es * i;
        up = IL ? gp + es : hi(j) + es * i;
      } else {
        gp = sg_at(p.glu.gate, r, 8 * (int64_t)j + i);
        up = IL ? gp + es : sg_at(p.glu.up, r, 8 * (int64_t)j + i);
      }
      return exact_h(sg_cvt_in(gp, GD, 0), sg_cvt_in(up, GD, 0));
    };
    const bool weighted = p.row_weight != nullptr;
    const float w = weighted ? p.row_weight[r] : 1.0f, aw = fabsf(w);
    const bool wsafe = aw >= 2.3283064365386963e-10f && aw <= 1.0f; /* 2^-32; false for NaN */

    /* pass 1 */
    float am = 0.0f, amx = 0.0f, a1 = -1.0f, a2 = -1.0f; /* all; exact chunks; top approximate chunk; the others */
    int j1 = -1;
    uint32_t top = 0u; /* without keep: the 16-bit gate (low) and up of the top chunk's largest |h| */
    uint32_t em = 0u, im = 0u; /* the thread's k-th chunk is exact; holds an Inf or NaN */
    for (int j = threadIdx.x, k = 0; j < nch; j += blockDim.x, ++k) {
      float h[8], a;
      bool inf, e;
      const auto ld = [&](float(&gg)[8], float(&uu)[8]) { load(j, gg, uu); };
      sg_quant_hv_vf<ACT, 8>(p, r, ld, ld, h, a, inf, e);
      em |= (uint32_t)e << k;
      im |= (uint32_t)inf << k;
      am = fmaxf(am, a);
      if (e) {
        amx = fmaxf(amx, a);
      } else if (a > a1) {
        a2 = fmaxf(a2, a1);
        a1 = a, j1 = j;
        if (!keep) {
          /* which element gave a (the last of equal ones: repeated values
           * take one() below) and its inputs, before h replaces them */
          int ti = 0;
#pragma unroll
          for (int i = 1; i < 8; ++i) ti = fabsf(h[i]) == a ? i : ti;
          const uint16_t *gs = (const uint16_t *)lo(j) + (IL ? 2 * ti : ti);
          const uint16_t *us = IL ? gs + 1 : (const uint16_t *)hi(j) + ti;
          top = (uint32_t)*gs | ((uint32_t)*us << 16);
        }
      } else {
        a2 = fmaxf(a2, a);
      }
      *(float4 *)hlo(j) = make_float4(h[0], h[1], h[2], h[3]);
      *(float4 *)hhi(j) = make_float4(h[4], h[5], h[6], h[7]);
    }
    const float A = sg_warp_max_nonneg(am);
    float xw = 0.0f; /* the thread's largest finite |RN(h w)| */
    if (!wsafe || !(A * aw >= 8.673617379884035e-19f)) { /* 2^-60; the whole warp */
      for (int j = threadIdx.x; j < nch; j += blockDim.x) {
        float gg[8], uu[8];
        sg_load_gu(p.glu, r, 8 * (int64_t)j, 8, gg, uu);
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          const sg_act s = sg_activation(ACT, p.glu.alpha, p.glu.limit, gg[i], uu[i], false);
          const float v = fabsf(weighted ? (s.a * s.m) * w : s.a * s.m);
          xw = v <= 3.40282347e38f ? fmaxf(xw, v) : xw;
        }
      }
    } else {
      const float t = A * 0.999969482421875f; /* 1 - 2^-15 */
      float ax = amx;
      if (a1 >= t) {
        /* the elements at or above t of the top chunk, or of every chunk
         * where another reaches t too (repeated values), exactly; the top
         * chunk's largest alone (all but repeated values) without keep
         * from the inputs kept above, sparing the wait for L2 */
        for (int j = a2 >= t ? (int)threadIdx.x : j1, k = 0; j < nch; j += blockDim.x, ++k) {
          if (!(a2 >= t && ((em >> k) & 1u))) {
            float h[8];
            kept(j, h);
            uint32_t m = 0u;
#pragma unroll
            for (int i = 0; i < 8; ++i) m |= (uint32_t)(fabsf(h[i]) >= t) << i;
            if (!keep && j == j1 && m && !(m & (m - 1u))) {
              const float g = sg_half_bits_to_f32((uint16_t)(top & 0xffffu), GD), u = sg_half_bits_to_f32((uint16_t)(top >> 16), GD);
              ax = fmaxf(ax, fabsf(exact_h(g, u)));
            } else {
              for (; m; m &= m - 1u) ax = fmaxf(ax, fabsf(one(j, __ffs(m) - 1)));
            }
          }
          if (!(a2 >= t)) break;
        }
      }
      xw = ax * aw;
    }
    xw = sg_warp_max_nonneg(xw);
    if (lane == 0) wmax[warp] = xw;
    __syncthreads();
    const float X = sg_warp_max_nonneg(lane < nw ? wmax[lane] : 0.0f);
    /* (the next write of wmax follows the next row's first barrier, which
     * every thread reaches after reading these) */
    float sf;
    uint32_t sb;
    int zero; /* never for E4M3FN */
    const sg_divider dv = sg_divider_of(sg_group_scale_amax(&p, SWIGLU_QUANT_FP8_E4M3FN, X, &sf, &sb, &zero));
    if (threadIdx.x == 0 && p.scales) {
      const int64_t e = r / p.rows_per_expert, m = r % p.rows_per_expert;
      sg_write_scale(&p, e, m, 0, sf, sb);
      sg_pad_packed(&p, e, m);
    }
    const float ylo = (dv.y * 0.9999847412109375f) * w, yhi = (dv.y * 1.0000152587890625f) * w;
    const bool rexact = !wsafe || !(X >= 8.673617379884035e-19f) || !dv.fast || !(fabsf(ylo) >= 1.17549435e-38f);

    /* pass 2 */
    uint8_t *qrow = (uint8_t *)p.q.base + sg_row_offset(&p.q, r);
    for (int j = threadIdx.x, k = 0; j < nch; j += blockDim.x, ++k) {
      float h[8];
      kept(j, h);
      const bool e = (em >> k) & 1u, inf = (im >> k) & 1u;
      uint32_t wd[2], d[2] = {0u, 0u};
      if (rexact || inf) {
        if (!e) {
#pragma unroll
          for (int i = 0; i < 8; ++i) h[i] = one(j, i);
        }
        float hw[8], q[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) hw[i] = weighted ? h[i] * w : h[i];
        sg_quotients<8>(hw, dv, SG_QUOT_ANY, true, q);
        sg_code_words<SWIGLU_QUANT_FP8_E4M3FN>(q, SWIGLU_QUANT_FP8_E4M3FN, wd);
      } else if (sg_bracket_codes<8>(h, ylo, yhi, wd, d)) {
        /* the codes whose bracket straddles a boundary, exactly: an exact
         * chunk's from its kept h, another's from its inputs */
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          if (!((d[i / 4] >> (8 * (i % 4))) & 0xffu)) continue;
          const float hx = (e ? h[i] : one(j, i)) * w;
          const uint32_t c = sg_e4m3x2(sg_markstein(hx, dv.s, dv.y), 0.0f);
          wd[i / 4] = (wd[i / 4] & ~(0xffu << (8 * (i % 4)))) | (c << (8 * (i % 4)));
        }
      }
      sg_store_codes<true>(qrow + 8 * j, wd);
    }
    r = rn;
  }
}
#endif

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

typedef void (*sg_token_kernel)(const sg_quant_problem, const int *);
#if !defined(SWIGLU_HIP)
/* The per-row kernel's instance for a 16-bit input dtype (SG_BF16 or
 * SG_F16), layout and KEEP */
static sg_token_kernel sg_token_instance(int32_t gd, bool il, bool keep) {
#define SG_TOKEN_PICK(GD)                                                                         \
  (il ? (keep ? sg_quant_token_kernel<SWIGLU_ACT_SILU, GD, 1, 1> : sg_quant_token_kernel<SWIGLU_ACT_SILU, GD, 1, 0>) \
      : (keep ? sg_quant_token_kernel<SWIGLU_ACT_SILU, GD, 0, 1> : sg_quant_token_kernel<SWIGLU_ACT_SILU, GD, 0, 0>))
  return gd == SG_BF16 ? SG_TOKEN_PICK(SG_BF16) : SG_TOKEN_PICK(SG_F16);
#undef SG_TOKEN_PICK
}
#endif
struct sg_gpu_state {
  int device;
  cudaStream_t stream;
  int *bad;          /* device flag: an earlier call saw invalid expert counts */
  bool bad_pending;  /* a call checked counts since the last synchronize */
  int max_smem;
  int sm_count;
  int smem_sm; /* shared memory a SM holds, bytes */
  /* the per-row quantizer's last launch shape and its blocks a SM: the
   * occupancy query is a driver call, and a layer repeats one shape */
  struct {
    sg_token_kernel k;
    int64_t threads;
    size_t smem;
    int per_sm;
  } token_occ;
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
  /* the quantizers that stage a row in shared memory may take all of it
   * (the line kernel less its static maxima); asked for before anything
   * is allocated, so a refusal (whose error would otherwise stay behind
   * for the next launch's check to report) fails the creation cleanly */
  const int max_smem = SG_SMEM_PER_BLOCK(prop);
  SG_CUDA_TRY(SG_RAISE_SMEM_LIMIT(sg_quant_row_kernel, max_smem), "raising the row quantizer's shared memory");
#if !defined(SWIGLU_HIP)
  for (int i = 0; i < 8; ++i)
    SG_CUDA_TRY(SG_RAISE_SMEM_LIMIT(sg_token_instance(i & 1 ? SG_F16 : SG_BF16, i & 2, i & 4), max_smem - SG_TOKEN_STATIC_SMEM),
                "raising the per-row quantizer's shared memory");
#endif
  SG_CUDA_TRY(SG_RAISE_SMEM_LIMIT((sg_quant_line_kernel<false, SWIGLU_ACT_SILU>), max_smem - SG_LINE_STATIC_SMEM),
              "raising the line quantizer's shared memory");
  SG_CUDA_TRY(SG_RAISE_SMEM_LIMIT((sg_quant_line_kernel<false, -1>), max_smem - SG_LINE_STATIC_SMEM),
              "raising the line quantizer's shared memory");
  sg_gpu_state *s = new sg_gpu_state();
  s->device = device;
  s->stream = 0;
  s->bad_pending = false;
  s->max_smem = max_smem;
  s->sm_count = prop.multiProcessorCount;
  s->smem_sm = SG_SMEM_PER_SM(prop);
  snprintf(s->name, sizeof s->name, "%s %s (cc %d.%d, %d SMs)", SG_GPU_RUNTIME, prop.name, prop.major,
           prop.minor, prop.multiProcessorCount);
  cudaError_t e = cudaMalloc((void **)&s->bad, sizeof(int));
  if (e == cudaSuccess) e = cudaMemsetAsync(s->bad, 0, sizeof(int), 0);
  if (e == cudaSuccess) e = cudaStreamSynchronize(0);
  if (e != cudaSuccess) {
    delete s;
    return sg_cuda_fail(e, "allocating the context's flag", msg, cap);
  }
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
  (void)cudaSetDevice(s->device); /* teardown: nothing to report an error to */
#if SG_HAVE_LINEAR
  sg_lin_destroy(s);
#endif
  (void)cudaFree(s->bad);
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
#ifndef SG_EW_ROWS
#define SG_EW_ROWS 4
#endif
static dim3 sg_ew_grid(const sg_glu_problem *p) {
  const int64_t per_block = (int64_t)SG_EW_THREADS * 8;
  const int64_t gx = (p->width + per_block - 1) / per_block;
  int64_t gy = p->rows * gx >= 4096 ? (p->rows + SG_EW_ROWS - 1) / SG_EW_ROWS : p->rows;
  if (gy > 65535) gy = 65535;
  return dim3((unsigned)gx, (unsigned)gy);
}

/* Whether the elementwise kernels may take their vector path. */
static int sg_ew_vec(const sg_glu_problem *p, bool bwd) {
  const bool il = p->gate.col_step == 2;
  bool ok = p->width % 8 == 0 && sg_rows_vec(&p->gate) && (il || sg_rows_vec(&p->up)) && sg_rows_vec(&p->h);
  if (bwd) ok = ok && sg_rows_vec(&p->dh) && sg_rows_vec(&p->dgate) && (p->dgate.col_step == 2 || sg_rows_vec(&p->dup));
  return ok;
}

static swiglu_status gpu_glu_forward(void *state, const sg_glu_problem *p, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  sg_pick<false>(p)<<<sg_ew_grid(p), SG_EW_THREADS, 0, s->stream>>>(*p, sg_ew_vec(p, false));
  return sg_launched("forward kernel", msg, cap);
}

static swiglu_status gpu_glu_backward(void *state, const sg_glu_problem *p, char *msg, size_t cap) {
  sg_gpu_state *s = (sg_gpu_state *)state;
  SG_CUDA_TRY(cudaSetDevice(s->device), "cudaSetDevice");
  sg_pick<true>(p)<<<sg_ew_grid(p), SG_EW_THREADS, 0, s->stream>>>(*p, sg_ew_vec(p, true));
  return sg_launched("backward kernel", msg, cap);
}

/* The per-row kernel's per-block shared memory, besides its staged rows */
#define SG_TOKEN_FIXED_SMEM (SG_TOKEN_STATIC_SMEM + 1024) /* ~1 KiB a block is the runtime's */
/* Whether the per-row kernel keeps the first pass's h in a third area
 * (KEEP; the kernel's comment says why): where a SM still holds two blocks
 * with it */
static bool sg_token_keep(const sg_gpu_state *s, int64_t width) {
#if !defined(SWIGLU_HIP)
  return s->smem_sm / (3 * 4 * width + SG_TOKEN_FIXED_SMEM) >= 2;
#else
  (void)s, (void)width;
  return false;
#endif
}

/* sg_quant_token_kernel's instance for a problem, or NULL where it does not
 * take it: per-row E4M3FN scales, SiLU with fp32 h (no ROUND_H) where the
 * verified h exists (CUDA), one 16-bit dtype, rows of whole 16-byte chunks
 * (the vector path) whose two buffers fit in shared memory (H <= 29048 on
 * an H100). Other per-row problems take the line kernel. */
static sg_token_kernel sg_token_kernel_of(const sg_quant_problem *p, int max_smem, bool keep) {
#if !defined(SWIGLU_HIP) /* no verified h there: no instances to compile */
  if (!SG_TOKEN_KERNEL || !sg_quant_vf<SWIGLU_ACT_SILU, SWIGLU_QUANT_FP8_E4M3FN, -1>()) return NULL;
  if (p->granularity != SWIGLU_SCALE_PER_ROW || p->format != SWIGLU_QUANT_FP8_E4M3FN ||
      p->glu.activation != SWIGLU_ACT_SILU || p->round_dtype >= 0 || p->glu.gate.dtype != p->glu.up.dtype)
    return NULL;
  const bool il = p->glu.gate.col_step == 2;
  if (p->glu.width % 8 || p->glu.width * 8 > (int64_t)max_smem - SG_TOKEN_STATIC_SMEM || !sg_rows_vec(&p->glu.gate) ||
      (!il && !sg_rows_vec(&p->glu.up)) || !sg_rows_vec(&p->q))
    return NULL;
  if (p->glu.gate.dtype == SG_BF16 || p->glu.gate.dtype == SG_F16) return sg_token_instance(p->glu.gate.dtype, il, keep);
#else
  (void)p, (void)max_smem, (void)keep;
#endif
  return NULL;
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
  const int64_t waves = (int64_t)s->sm_count * 16;
  /* A static per-tensor scale needs no maximum: where H is a multiple of
   * 128 the team kernel takes it as groups of 128 with the given divisor
   * (its specialised instances, the verified h included; sg_quant_group,
   * sg_quant_group_vf) and no scales to store. The line kernel, a block a
   * row, ran at 0.58-0.67 of an H100's copy (bf16 4096 x 14336) against
   * the team kernel's 0.93-0.96 for groups of 128 (docs/benchmarks.md). */
  sg_quant_problem tp;
  if (p->granularity == SWIGLU_SCALE_PER_TENSOR && !nv && p->glu.width % 128 == 0) {
    tp = *p;
    tp.group = 128;
    tp.groups = p->glu.width / 128;
    tp.scale_cols = 0;
    p = &tp;
  }
  const int64_t G = p->group;
  const bool by_team = (p->granularity == SWIGLU_SCALE_PER_GROUP || p == &tp) && !nv &&
                       (G == 32 || G == 64 || G == 128 || G == 256);
  if (by_team) {
    int v;
    bool rh, vf;
    const sg_quant_kernel k = sg_pick_quant(p, &v, &rh, &vf);
    const int64_t bt = sg_quant_threads(rh, vf);
    /* narrow rows get narrower blocks rather than idle lanes */
    const int64_t lanes = p->groups * (G / v);
    const int64_t threads = lanes >= bt ? bt : (lanes + 31) / 32 * 32;
    const int64_t gx = (lanes + threads - 1) / threads;
    /* 8 rows per thread only where that still leaves two waves of the
     * threads a SM holds (resident; four for the verified-h instances,
     * SG_QUANT_WAVES): at 8192 x 1024 (one block of 64 lanes a row) 8 rows
     * ran 0.57-0.59 of the copy against 0.61-0.62 with 4 */
    int64_t rows = sg_quant_rows(rh, vf);
    const int64_t resident = (int64_t)sg_quant_threads(rh, vf) * sg_quant_minb(rh, vf); /* threads a SM holds */
    const int64_t min_waves = vf ? SG_QUANT_WAVES : 2;
    if (rows > 4 && gx * threads * ((p->glu.rows + rows - 1) / rows) < min_waves * resident * (int64_t)s->sm_count) rows = 4;
    /* several rows per thread once the grid is large (as sg_ew_grid). Even
     * where that leaves thread slots empty it is faster: at H = 1024, T =
     * 8192 (64 lanes per row, half of an H200's slots filled) one row per
     * thread ran 0.72-0.74 of the copy against 0.82-0.84 (ROUND_H). */
    int64_t gy = p->glu.rows * gx >= 4096 ? (p->glu.rows + rows - 1) / rows : p->glu.rows;
    if (gy > 65535) gy = 65535;
    k<<<dim3((unsigned)gx, (unsigned)gy), (unsigned)threads, 0, s->stream>>>(*p, bad, sg_quant_launch_of(p, gy));
  } else if (const sg_token_kernel k = by_team ? NULL : sg_token_kernel_of(p, s->max_smem, sg_token_keep(s, p->glu.width))) {
#if !defined(SWIGLU_HIP)
    /* Per-row E4M3FN scales of SiLU with fp32 h: persistent blocks, as
     * many a SM as its shared memory allows, and threads enough for the
     * SM's 1024 at 64 registers over them, where the row has chunks for
     * them: more rows in flight, each over fewer threads, hide a row's
     * barriers and share its fixed work (the scale, the maxima) among more
     * elements (H100: 0.40 -> 0.59 of the copy at 8192 x 4096, 512 threads
     * a block against 192). */
    const int64_t nch = p->glu.width / 8;
    const int64_t fixed = SG_TOKEN_FIXED_SMEM;
    const int64_t row = 4 * p->glu.width;
    const bool keep = sg_token_keep(s, p->glu.width);
    const size_t smem = (size_t)((keep ? 3 : 2) * row);
    int64_t bps = s->smem_sm / ((int64_t)smem + fixed);
    if (bps < 1) bps = 1; /* the widest rows: the runtime's share is below our guess */
    /* The block size that keeps the most threads a SM busy: blocks a SM as
     * shared memory and 64 registers a thread allow, threads a SM (up to
     * 1024) times the share of a block's threads that have a chunk in a
     * row's last round; the smallest such block, so that a SM holds the
     * most rows in flight. At 2048 columns 8 blocks of 128 threads (2
     * chunks each) rather than 10 of 96 (2.7). */
    int64_t threads = 32, best = -1;
    for (int64_t t = 32; t <= SG_TOKEN_THREADS && t <= (nch + 31) / 32 * 32; t += 32) {
      int64_t b = 65536 / (64 * t);
      if (b > bps) b = bps;
      if (b > 32) b = 32;
      const int64_t busy = b * t < 1024 ? b * t : 1024, rounds = (nch + t - 1) / t;
      const int64_t score = busy * nch / (rounds * t); /* threads a SM, times the useful share */
      /* at most 32 chunks a thread: a bit a chunk in the thread's masks */
      if (rounds <= 32 && score > best) best = score, threads = t;
    }
    if (s->token_occ.k != k || s->token_occ.threads != threads || s->token_occ.smem != smem) {
      int per_sm = 1;
      SG_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, (int)threads, smem),
                  "the per-row quantizer's occupancy");
      s->token_occ.k = k, s->token_occ.threads = threads, s->token_occ.smem = smem;
      s->token_occ.per_sm = per_sm > 0 ? per_sm : 1;
    }
    const int64_t fill = (int64_t)s->sm_count * s->token_occ.per_sm;
    const int64_t blocks = p->glu.rows < fill ? p->glu.rows : fill;
    k<<<(unsigned)blocks, (unsigned)threads, smem, s->stream>>>(*p, bad);
#else
    (void)k;
#endif
  } else if (p->granularity != SWIGLU_SCALE_PER_GROUP && !nv) {
    /* narrow rows take narrower blocks (8 columns a thread) */
    const int64_t chunks = (p->glu.width + 7) / 8;
    const int64_t threads = chunks >= SG_LINE_THREADS ? SG_LINE_THREADS : (chunks + 31) / 32 * 32;
    const bool pt = p->granularity == SWIGLU_SCALE_PER_TENSOR;
    /* SiLU with fp32 h (ROUND_H of fp32 input rounds nothing) branch-free */
    const bool spec = p->glu.activation == SWIGLU_ACT_SILU && (p->round_dtype < 0 || p->round_dtype == SG_F32);
    const size_t row_bytes = (size_t)chunks * 8 * sizeof(float); /* 2 float4 a chunk */
    const int staged = !pt && row_bytes <= (size_t)(s->max_smem - SG_LINE_STATIC_SMEM);
    const size_t smem = staged ? row_bytes : 0;
    const int64_t blocks = p->glu.rows < waves ? p->glu.rows : waves;
    void (*k)(const sg_quant_problem, const int *, int) =
        pt ? (spec ? sg_quant_line_kernel<true, SWIGLU_ACT_SILU> : sg_quant_line_kernel<true, -1>)
           : (spec ? sg_quant_line_kernel<false, SWIGLU_ACT_SILU> : sg_quant_line_kernel<false, -1>);
    k<<<(unsigned)blocks, (unsigned)threads, smem, s->stream>>>(*p, bad, staged);
  } else {
    const size_t smem = (size_t)p->glu.width * sizeof(float);
    if (smem > (size_t)s->max_smem) {
      snprintf(msg, cap, "this group size (or NVFP4) keeps a row in shared memory: H = %lld needs %zu bytes, the device has %d",
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
    nullptr, /* set_num_threads: the host side is the calling thread */
};

SG_EXPORT const swiglu_backend_iface *SG_ENTRY(swiglu_backend_init)(void) { return &k_gpu_iface; }

SG_EXPORT int SG_ENTRY(swiglu_backend_score)(char *reason, size_t cap) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    snprintf(reason, cap, "%s runtime: %s", SG_GPU_RUNTIME, cudaGetErrorString(e));
    (void)cudaGetLastError(); /* not sticky: clear it */
    return 0;
  }
  if (count == 0) {
    snprintf(reason, cap, "no %s device", SG_GPU_RUNTIME);
    return 0;
  }
  return 100;
}
