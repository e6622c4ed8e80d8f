/*
 * The GPU kernels' branch-free shortcuts against the reference device
 * functions they stand in for, on every fp32 input (2^32 values each):
 *
 *  - sg_logistic_try (the logistic without a branch or an IEEE division
 *    call) must give the bits of sg_logistic_fast -- x * sigmoid(z), and
 *    with the gradient sigmoid(z) and 1 - sigmoid(z) -- wherever it does not
 *    ask for the slow path, for the z of SiLU, GELU tanh and the clamped SiLU
 *    at several alphas; and it must ask for the slow path rarely;
 *  - sg_xsig_16bit_core (the 16-bit results' logistic on flushing
 *    special-function instructions) against __fdividef / __expf, on every z;
 *  - sg_activation_t<true> (every activation, forward with fp32 and 16-bit
 *    results, and backward) against sg_activation on pseudo-random (gate,
 *    up) bit patterns (NaN, Inf, subnormals and huge values included);
 *  - sg_div_by_fmax (the scale's division without a division call) against
 *    the IEEE division, for every fp32 dividend and each format maximum;
 *  - sg_markstein (the codes' division by a group scale) against the IEEE
 *    division, signed zeros included, for every fp32 dividend and several
 *    scales, and sg_divider_of's reciprocal of the scale against the IEEE
 *    reciprocal, for every fp32 scale;
 *  - the hardware E4M3 conversion (sm_89+) against sg_encode, the encoder
 *    the CPU shares, for every input in both bytes of the pair.
 *
 * sg_logistic_fast and sg_encode are in turn pinned to the CPU oracle by the
 * conformance suites; this test closes the gap for inputs those never draw.
 * Exits 77 (SKIPPED) where no CUDA device is present.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../backends/cuda/vendor.h"
#include "../backends/cuda/glu_math.cuh"

struct counts {
  unsigned long long mismatch, slow, nan_mismatch, first_bad;
};

SG_DI void tally(unsigned long long *slot, bool v) {
  const unsigned m = __ballot_sync(0xffffffffu, v);
  if ((threadIdx.x & 31) == 0 && m) atomicAdd(slot, (unsigned long long)__popc(m));
}

SG_DI bool same(float a, float b) { return __float_as_uint(a) == __float_as_uint(b) || (a != a && b != b); }

SG_DI float z_of(int kind, float alpha, float x) {
  if (kind == 0) return x;
  if (kind == 1) return fmaf(0.044715f * (x * x), x, x) * 1.5957691216057308f;
  return x * alpha;
}

/* every fp32 x: one thread per 2^32 / (grid * block) consecutive values */
__global__ void xsig_all(int kind, float alpha, counts *c) {
  const uint64_t n = 1ull << 32, step = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float x = __uint_as_float((uint32_t)i), z = z_of(kind, alpha, x);
    bool slow = false;
    const sg_logistic f = sg_logistic_try(x, z, true, slow);
    const sg_logistic ref = sg_logistic_fast(x, z, 0.0f, true);
    const bool bad = !slow && (!same(f.xs, ref.xs) || !same(f.sig, ref.sig) || !same(f.sigc, ref.sigc) || ref.far);
    tally(&c->slow, slow);
    tally(&c->mismatch, bad);
    if (bad) atomicCAS(&c->first_bad, ~0ull, (unsigned long long)i);
  }
}

/* sg_xsig_16bit_core (flushing special-function instructions) against
 * CUDA's __fdividef(x, 1 + __expf(-zc)) it stands in for, for every fp32 z
 * as sg_xsig_16bit clamps it (sg_xsig_16bit_try passes only |z| <= 87), with
 * x = z and x = 1 (the reciprocal alone) */
__global__ void xsig16_all(counts *c) {
  const uint64_t n = 1ull << 32, step = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float z = __uint_as_float((uint32_t)i);
    const bool skip = z < -87.0f; /* the callers' exact path */
    const float zc = z > 87.0f ? 87.0f : z;
    const float d = 1.0f + __expf(-zc);
    const bool bad = !skip && (!same(sg_xsig_16bit_core(z, zc), __fdividef(z, d)) ||
                               !same(sg_xsig_16bit_core(1.0f, zc), __fdividef(1.0f, d)));
    tally(&c->slow, skip);
    tally(&c->mismatch, bad);
    if (bad) atomicCAS(&c->first_bad, ~0ull, (unsigned long long)i);
  }
}

SG_DI uint32_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return (uint32_t)k;
}

/* half the draws are arbitrary bit patterns, half values of moderate size */
SG_DI float draw(uint64_t k) {
  const uint32_t b = mix(k);
  if (b & 1u) return __uint_as_float(mix(k + 0x9e3779b97f4a7c15ull));
  return ((float)(b >> 8) * 5.9604645e-08f - 0.5f) * 40.0f;
}

/* mode 0: forward with an fp32 result, 1: with a 16-bit result, 2: backward */
template <int ACT>
__global__ void glu_pairs(uint64_t n, int mode, float alpha, float limit, counts *c) {
  const uint64_t step = (uint64_t)gridDim.x * blockDim.x;
  const bool grad = mode == 2, out16 = mode == 1;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float g = draw(2 * i), u = draw(2 * i + 1);
    bool slow = false;
    const sg_act f = sg_activation_t<true>(ACT, alpha, limit, g, u, grad, out16, slow);
    const sg_act a = sg_activation(ACT, alpha, limit, g, u, grad, out16);
    bool slow_h = false; /* the quantizer's product: the same decision, the same bits */
    const float h = sg_glu_try<ACT>(ACT, alpha, limit, g, u, slow_h);
    const bool h_bad = mode == 0 && (slow_h != slow || !same(h, a.a * a.m));
    const bool bad = !slow && (!same(f.a, a.a) || !same(f.m, a.m) || !same(f.da, a.da) || !same(f.dm, a.dm) || h_bad);
    tally(&c->slow, slow);
    tally(&c->mismatch, bad);
    if (bad) atomicCAS(&c->first_bad, ~0ull, (unsigned long long)i);
  }
}

/* x in the low byte, another input in the high byte, both against
 * sg_encode. A NaN with its sign bit set may come out as 0xff instead of
 * 0x7f: counted apart, as the kernels only ever convert NaNs produced by
 * arithmetic, which NVIDIA GPUs make the positive canonical NaN. */
SG_DI void e4m3_byte(float v, uint32_t hw, uint32_t ref, bool &bad, bool &nan_sign) {
  const bool differs = hw != ref;
  nan_sign = differs && v != v && (__float_as_uint(v) >> 31) && hw == 0xffu;
  bad = differs && !nan_sign;
}
__global__ void e4m3_all(counts *c) {
  const sg_fmt f = sg_fmt_of(SWIGLU_QUANT_FP8_E4M3FN);
  const uint64_t n = 1ull << 32, step = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float x = __uint_as_float((uint32_t)i), y = __uint_as_float((uint32_t)(i * 2654435761u));
    const uint32_t hw = sg_e4m3x2(x, y);
    bool b1, n1, b2, n2;
    e4m3_byte(x, hw & 0xffu, sg_encode(x, f), b1, n1);
    e4m3_byte(y, hw >> 8, sg_encode(y, f), b2, n2);
    tally(&c->mismatch, b1 || b2);
    tally(&c->nan_mismatch, n1 || n2);
    if (b1 || b2) atomicCAS(&c->first_bad, ~0ull, (unsigned long long)i);
  }
}

/* the scale's division by a format maximum, against the IEEE division */
__global__ void div_fmax_all(float m, counts *c) {
  const uint64_t n = 1ull << 32, step = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float a = __uint_as_float((uint32_t)i);
    const bool bad = !same(sg_div_by_fmax(a, m), __fdiv_rn(a, m));
    tally(&c->mismatch, bad);
    if (bad) atomicCAS(&c->first_bad, ~0ull, (unsigned long long)i);
  }
}

/* a code's quotient h / s by Markstein's correction (sg_markstein, which
 * also keeps a zero's sign), against the IEEE division, for every fp32 h;
 * nonzero quotients below 2^-17 (which encode to zero in every format, and
 * whose residual may underflow), overflowing ones and non-finite h are
 * skipped, as the quantizers may take them wrong there */
__global__ void markstein_all(float s, counts *c) {
  const uint64_t n = 1ull << 32, step = (uint64_t)gridDim.x * blockDim.x;
  const float y = 1.0f / s;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float h = __uint_as_float((uint32_t)i), ref = __fdiv_rn(h, s);
    const bool skip = !(fabsf(h) <= 3.40282347e38f) ||
                      (h != 0.0f && !(fabsf(ref) >= 7.62939453125e-06f && fabsf(ref) <= 3.40282347e38f));
    const bool bad = !skip && !same(sg_markstein(h, s, y), ref);
    tally(&c->slow, skip);
    tally(&c->mismatch, bad);
    if (bad) atomicCAS(&c->first_bad, ~0ull, (unsigned long long)i);
  }
}

/* a group divisor's reciprocal (sg_divider_of: the seed and one Newton
 * step inside [2^-86, 2^120], the division elsewhere) against the IEEE
 * reciprocal, and its fast flag against its definition, for every fp32 s */
__global__ void divider_all(counts *c) {
  const uint64_t n = 1ull << 32, step = (uint64_t)gridDim.x * blockDim.x;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float s = __uint_as_float((uint32_t)i);
    const sg_divider d = sg_divider_of(s);
    const bool bad = !same(d.y, __frcp_rn(s)) ||
                     d.fast != (s >= 1.2924697071141057e-26f && s <= 8.507059173023462e37f);
    tally(&c->mismatch, bad);
    if (bad) atomicCAS(&c->first_bad, ~0ull, (unsigned long long)i);
  }
}

/* docs/numerics.md's claim for the 16-bit results' logistic: for every z
 * with |z| <= 87 (the rest takes the exact path), its 1 / (1 + exp(-z)) is
 * within 2^-17, relatively, of the reciprocal of the exact path's
 * 1 + exp(-z) -- so x * sigmoid(z) is within 2^-17 + 2^-24 of the exact
 * quotient, far inside half an ulp of bf16 or fp16, and inside the bound
 * the quantizer's verified fp32 h rests on (sg_quant_group_vf). The
 * largest error seen is printed (2^-17.97 on an H200). */
__device__ unsigned long long xsig16_worst; /* the largest |r d - 1|, as bits of a double */
__global__ void xsig16_bound_all(counts *c) {
  const uint64_t n = 1ull << 32, step = (uint64_t)gridDim.x * blockDim.x;
  double worst = 0.0;
  for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    const float z = __uint_as_float((uint32_t)i);
    const bool skip = !(fabsf(z) <= 87.0f);
    double err = 0.0;
    if (!skip) {
      int k;
      const float p = sg_exp_parts1(-z, &k);
      const float den = 1.0f + p * __int_as_float((k + 127) << 23);
      err = fabs((double)sg_xsig_16bit_core(1.0f, z) * (double)den - 1.0);
      worst = err > worst ? err : worst;
    }
    const bool bad = err > 7.62939453125e-06; /* 2^-17 */
    tally(&c->slow, skip);
    tally(&c->mismatch, bad);
    if (bad) atomicCAS(&c->first_bad, ~0ull, (unsigned long long)i);
  }
  atomicMax(&xsig16_worst, (unsigned long long)__double_as_longlong(worst));
}

static counts *dev_counts;

static int report(const char *what, unsigned long long total, double max_slow) {
  counts c;
  cudaError_t e = cudaDeviceSynchronize();
  if (e == cudaSuccess) e = cudaMemcpy(&c, dev_counts, sizeof c, cudaMemcpyDeviceToHost);
  if (e != cudaSuccess) {
    printf("FAIL %s: %s\n", what, cudaGetErrorString(e));
    return 1;
  }
  const double slow = (double)c.slow / (double)total;
  const int fail = c.mismatch != 0 || slow > max_slow;
  printf("%s %-40s %llu inputs, %llu mismatches, slow path %.3g%%", fail ? "FAIL" : "ok  ", what, total,
         c.mismatch, 100.0 * slow);
  if (c.mismatch) printf(", first at input 0x%llx", c.first_bad);
  if (c.nan_mismatch) printf(", %llu differ only in a NaN's sign bit", c.nan_mismatch);
  printf("\n");
  counts zero = {0, 0, 0, ~0ull};
  cudaMemcpy(dev_counts, &zero, sizeof zero, cudaMemcpyHostToDevice);
  return fail;
}

int main(void) {
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    printf("no CUDA device: SKIPPED\n");
    return 77;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  printf("%s (cc %d.%d)\n", prop.name, prop.major, prop.minor);
  if (cudaMalloc((void **)&dev_counts, sizeof(counts)) != cudaSuccess) return 1;
  counts zero = {0, 0, 0, ~0ull};
  cudaMemcpy(dev_counts, &zero, sizeof zero, cudaMemcpyHostToDevice);
  const unsigned blocks = (unsigned)prop.multiProcessorCount * 16, threads = 256;
  const unsigned long long all = 1ull << 32;
  int fails = 0;
  /* the slow path takes z beyond +-87 (half of all bit patterns: large
   * magnitudes, Inf, NaN) and quotients below 2^-100 (another tenth); of the
   * pairs, half are arbitrary bit patterns and half values in [-20, 20], of
   * which GELU tanh sends |gate| > 4.5 to the slow path */
  xsig_all<<<blocks, threads>>>(0, 1.0f, dev_counts);
  fails += report("x * sigmoid(x), every x", all, 0.62);
  xsig_all<<<blocks, threads>>>(1, 1.0f, dev_counts);
  fails += report("GELU tanh form, every x", all, 0.62);
  const float alphas[] = {1.702f, 0.001f, 1000.0f, -2.0f, 0.0f};
  for (float a : alphas) {
    char what[64];
    snprintf(what, sizeof what, "x * sigmoid(%g x), every x", a);
    xsig_all<<<blocks, threads>>>(2, a, dev_counts);
    fails += report(what, all, 0.65);
  }
  xsig16_all<<<blocks, threads>>>(dev_counts);
  fails += report("x / (1 + exp(-x)) for 16-bit h, every x", all, 0.5);
  xsig16_bound_all<<<blocks, threads>>>(dev_counts);
  fails += report("1 / (1 + exp(-z)) of 16-bit h within 2^-17", all, 0.6);
  {
    unsigned long long wb = 0;
    cudaMemcpyFromSymbol(&wb, xsig16_worst, sizeof wb);
    double w;
    memcpy(&w, &wb, sizeof w);
    printf("     largest relative error of that reciprocal: %.3g (2^%.2f)\n", w, w > 0 ? log2(w) : -999.0);
  }
  const unsigned long long pairs = 1ull << 27;
  const char *modes[3] = {"forward, fp32 h", "forward, 16-bit h", "backward"};
  typedef void (*pairs_kernel)(uint64_t, int, float, float, counts *);
  const struct {
    const char *name;
    pairs_kernel k;
    double max_slow;
  } acts[] = {{"silu", glu_pairs<0>, 0.5},
              {"gelu tanh", glu_pairs<1>, 0.62},
              {"relu", glu_pairs<3>, 0.0},
              {"gpt-oss", glu_pairs<4>, 0.5},
              {"clamped silu", glu_pairs<5>, 0.5}};
  for (int mode = 0; mode < 3; ++mode)
    for (const auto &a : acts) {
      char what[64];
      snprintf(what, sizeof what, "%s %s, (gate, up) pairs", a.name, modes[mode]);
      a.k<<<blocks, threads>>>(pairs, mode, 1.702f, 7.0f, dev_counts);
      fails += report(what, pairs, a.max_slow);
    }
  const float fmaxes[] = {448.0f, 240.0f, 57344.0f, 127.0f};
  for (float m : fmaxes) {
    char what[64];
    snprintf(what, sizeof what, "a / %g for the scale, every a", m);
    div_fmax_all<<<blocks, threads>>>(m, dev_counts);
    fails += report(what, all, 0.0);
  }
  /* a scale of 448, one of RN(1/448), and others across the range the
   * quantizers' fast path takes (2^-86 <= s <= 2^126), its lower end
   * included */
  divider_all<<<blocks, threads>>>(dev_counts);
  fails += report("a group divisor's reciprocal, every s", all, 0.0);
  const float divisors[] = {448.0f, 1.0f / 448.0f, 3.0f, 0.0123f, 1.2924697071141057e-26f, 1.7e-26f, 1e30f};
  for (float d : divisors) {
    char what[64];
    snprintf(what, sizeof what, "h / %g by Markstein, every h", d);
    markstein_all<<<blocks, threads>>>(d, dev_counts);
    /* skipped: about 44% of all h (NaN, Inf, small quotients); 82% at s = 1e30 */
    fails += report(what, all, d > 1e20f ? 0.9 : 0.5);
  }
  if (prop.major * 10 + prop.minor >= 89) {
    e4m3_all<<<blocks, threads>>>(dev_counts);
    fails += report("E4M3 conversion, every x", all, 0.0);
  } else {
    printf("E4M3 conversion: no hardware conversion below sm_89, nothing to compare\n");
  }
  printf("%d failed\n", fails);
  return fails ? 1 : 0;
}
