/* Portable build of the CPU kernels: 4 lanes (SSE2 on x86-64, NEON on Arm),
 * fp16 converted in software with round-to-nearest-even. Chosen when the CPU
 * has no AVX2, or when SWIGLU_CPU_ISA=generic. */
#include <stdint.h>
#include <string.h>

#define SG_W 4
#define SG_NAME(x) x##_generic
#define SG_EVEN_LANES 0, 2, 4, 6
#define SG_ODD_LANES 1, 3, 5, 7
#define SG_ZIP_LO_LANES 0, 4, 1, 5
#define SG_ZIP_HI_LANES 2, 6, 3, 7

typedef float sg_vf4 __attribute__((vector_size(16), aligned(4)));
typedef int32_t sg_vi4 __attribute__((vector_size(16), aligned(4)));
typedef uint32_t sg_vu4 __attribute__((vector_size(16), aligned(4)));
typedef uint16_t sg_vh4 __attribute__((vector_size(8), aligned(2)));

static inline sg_vf4 sg_v_fma(sg_vf4 a, sg_vf4 b, sg_vf4 c) {
  sg_vf4 r;
  for (int i = 0; i < 4; ++i) r[i] = __builtin_fmaf(a[i], b[i], c[i]);
  return r;
}

static inline sg_vf4 sg_load_f16(const void *p) {
  sg_vh4 h;
  memcpy(&h, p, sizeof h);
  sg_vu4 x = __builtin_convertvector(h, sg_vu4);
  sg_vu4 sign = (x & 0x8000u) << 16;
  sg_vu4 em = x & 0x7fffu;
  sg_vi4 special = (sg_vi4)(em >= 0x7c00u);
  sg_vi4 normal = (sg_vi4)(em >= 0x0400u);
  sg_vu4 inf_nan = 0x7f800000u | ((em & 0x3ffu) << 13);
  sg_vu4 norm = (em << 13) + (112u << 23);
  /* subnormal: exactly em * 2^-24 */
  sg_vu4 sub = (sg_vu4)(__builtin_convertvector((sg_vi4)em, sg_vf4) * 5.9604644775390625e-08f);
  sg_vi4 finite = ((sg_vi4)norm & normal) | ((sg_vi4)sub & ~normal);
  sg_vu4 mag = (sg_vu4)(((sg_vi4)inf_nan & special) | (finite & ~special));
  return (sg_vf4)(mag | sign);
}

static inline sg_vh4 sg_to_f16(sg_vf4 v) {
  sg_vu4 u = (sg_vu4)v;
  sg_vu4 sign = (u >> 16) & 0x8000u;
  sg_vu4 a = u & 0x7fffffffu;
  sg_vi4 nan = (sg_vi4)(a > 0x7f800000u);
  sg_vi4 overflow = (sg_vi4)(a >= 0x477ff000u); /* rounds to inf */
  sg_vi4 normal = (sg_vi4)(a >= 0x38800000u);   /* >= 2^-14 */
  sg_vu4 norm = ((a - 0x38000000u) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  /* Below 2^-14 the float sum |x| + 0.5 rounds |x| to a multiple of 2^-24,
   * i.e. to the fp16 subnormal grid, with the hardware's ties-to-even. */
  sg_vu4 sub = (sg_vu4)((sg_vf4)a + 0.5f) - 0x3f000000u;
  sg_vu4 nanv = 0x7e00u | ((a >> 13) & 0x3ffu);
  sg_vi4 r = ((sg_vi4)norm & normal) | ((sg_vi4)sub & ~normal);
  const sg_vi4 inf = {0x7c00, 0x7c00, 0x7c00, 0x7c00};
  r = (inf & overflow) | (r & ~overflow);
  r = ((sg_vi4)nanv & nan) | (r & ~nan);
  return __builtin_convertvector((sg_vu4)r | sign, sg_vh4);
}
static inline void sg_store_f16(void *p, sg_vf4 v) {
  sg_vh4 h = sg_to_f16(v);
  memcpy(p, &h, sizeof h);
}

/* No portable streaming store: plain stores. */
#define sg_stream_f32(p, v) memcpy((p), &(v), 16)
#define sg_stream_half(p, h) sg_store_raw8((p), (h))
static inline void sg_store_raw8(void *p, sg_vh4 h) { memcpy(p, &h, sizeof h); }
#define sg_stream_fence() ((void)0)
static inline int sg_v_any(sg_vi4 m) { return (m[0] | m[1] | m[2] | m[3]) != 0; }

#define sg_v_max(bound, x) v_max_keepnan((x), (bound))
#define sg_v_min(bound, x) v_min_keepnan((x), (bound))
/* the 16-bit outputs' reciprocal (see v_exp_negz16): no fast one portably */
#define sg_v_rcp16(d) (1.0f / (d))

static inline sg_vu4 sg_widen_u16(const void *p) {
  sg_vh4 h;
  memcpy(&h, p, sizeof h);
  return __builtin_convertvector(h, sg_vu4);
}
#define sg_narrow_u16(u) __builtin_convertvector((u), sg_vh4)

#define sg_narrow_u8(u) __builtin_convertvector((u), vb)

/* Largest lane (lanes >= 0, Inf allowed, no NaN). */
static inline float sg_v_hmax_raw(sg_vf4 v) {
  const float a = v[0] > v[1] ? v[0] : v[1], b = v[2] > v[3] ? v[2] : v[3];
  return a > b ? a : b;
}
#define sg_v_hmax(v) sg_v_hmax_raw(v)

#include "cpu_kernels_impl.h"
