/* AVX-512 (F, BW, VL, DQ) build of the CPU kernels: 16 lanes. Compiled with
 * those flags for this file only; chosen at run time when the CPU has them.
 * cpu_kernels_avx512bf16.c compiles it again with AVX512_BF16 for the
 * one-instruction fp32 -> bf16 rounding. */
#include <immintrin.h>

#define SG_W 16
#ifdef __AVX512BF16__
#define SG_NAME(x) x##_avx512bf16
#define SG_BF16_NATIVE(v) ((vh)_mm512_cvtneps_pbh((__m512)(v)))
/* v0 and v1 rounded into one register of 2 * SG_W bf16, v0 in the low half:
 * one conversion where two took twice the port work */
#define SG_BF16_NATIVE2(v0, v1) ((vh2)_mm512_cvtne2ps_pbh((__m512)(v1), (__m512)(v0)))
#else
#define SG_NAME(x) x##_avx512
#endif
#define SG_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define SG_ODD_LANES 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define SG_ZIP_LO_LANES 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define SG_ZIP_HI_LANES 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31

#define sg_v_fma(a, b, c) ((__typeof__(a))_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))

static inline __m512 sg_load_f16_raw(const void *p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
static inline void sg_store_f16_raw(void *p, __m512 v) {
  _mm256_storeu_si256((__m256i *)p,
                      _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
#define sg_load_f16(p) ((vf)sg_load_f16_raw(p))
#define sg_store_f16(p, v) sg_store_f16_raw((p), (__m512)(v))

#define sg_stream_f32(p, v) _mm512_stream_si512((void *)(p), (__m512i)(v))
#define sg_stream_half(p, h) _mm256_stream_si256((__m256i *)(p), (__m256i)(h))
#define sg_stream_fence() _mm_sfence()
#define sg_to_f16(v) (vh) _mm512_cvtps_ph((__m512)(v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define sg_v_any(m) (_mm512_test_epi32_mask((__m512i)(m), (__m512i)(m)) != 0)
/* any lane x < c, compared straight into a mask register (GCC does not fold
 * a vector compare followed by sg_v_any back into one) */
#define sg_v_any_lt(x, c) (_mm512_cmp_ps_mask((__m512)(x), _mm512_set1_ps(c), _CMP_LT_OQ) != 0)
/* x OP c ? a : b: a compare into a mask and one blend (GCC made the
 * portable and/andnot/or form five operations) */
#define sg_v_blend_cmp(x, c, pred, a, b) \
  ((vf)_mm512_mask_blend_ps(_mm512_cmp_ps_mask((__m512)(x), (__m512)(c), pred), (__m512)(b), (__m512)(a)))
#define sg_v_blend_gt(x, c, a, b) sg_v_blend_cmp(x, c, _CMP_GT_OQ, a, b)
#define sg_v_blend_ge(x, c, a, b) sg_v_blend_cmp(x, c, _CMP_GE_OQ, a, b)
#define sg_v_blend_lt(x, c, a, b) sg_v_blend_cmp(x, c, _CMP_LT_OQ, a, b)
#define sg_v_blend_eq(x, c, a, b) sg_v_blend_cmp(x, c, _CMP_EQ_OQ, a, b)
#define sg_v_blend_nan(x, a, b) sg_v_blend_cmp(x, x, _CMP_UNORD_Q, a, b)
#define sg_v_any_gt(x, c) (_mm512_cmp_ps_mask((__m512)(x), _mm512_set1_ps(c), _CMP_GT_OQ) != 0)
/* any subnormal lane: one vfpclassps (class 0x20, denormal) */
#define sg_v_any_subnormal(x) (_mm512_fpclass_ps_mask((__m512)(x), 0x20) != 0)
/* the same tests over two vectors, through one kortest of both masks */
#define sg_v_any_subnormal2(x, y) \
  (!_kortestz_mask16_u8(_mm512_fpclass_ps_mask((__m512)(x), 0x20), _mm512_fpclass_ps_mask((__m512)(y), 0x20)))
#define sg_v_any_lt2(x, y, c)                                                       \
  (!_kortestz_mask16_u8(_mm512_cmp_ps_mask((__m512)(x), _mm512_set1_ps(c), _CMP_LT_OQ), \
                        _mm512_cmp_ps_mask((__m512)(y), _mm512_set1_ps(c), _CMP_LT_OQ)))

/* maxps(a, b) returns b when either is NaN: with the bound first, a NaN
 * argument passes through, as in the portable v_sel form. */
#define sg_v_max(bound, x) ((vf)_mm512_max_ps((__m512)(bound), (__m512)(x)))
#define sg_v_min(bound, x) ((vf)_mm512_min_ps((__m512)(bound), (__m512)(x)))
#define sg_v_umax(a, b) ((vu)_mm512_max_epu32((__m512i)(a), (__m512i)(b)))
/* 1/d within 2^-14 relatively (the 16-bit outputs' reciprocal, see
 * v_exp_negz16): one instruction where the division costs ~3 cycles of the
 * FMA ports and 14 of latency */
#define sg_v_rcp16(d) ((vf)_mm512_rcp14_ps((__m512)(d)))
/* and, after one Newton step, for the 16-bit gradients (act_second) */
#define SG_GRAD_RCP 1

/* One vpmovzxwd / vpmovdw each (GCC splits the generic conversions). */
#define sg_widen_u16(p) ((vu)_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p))))
/* bf16 -> fp32 as one word permutation that puts each bf16 in the high half
 * of its lane and zeroes the low half (vpermw with a zeroing mask: one
 * shuffle where the widening and the shift were two operations). */
static inline __m512 sg_load_bf16_raw(const void *p) {
  const __m512i idx = _mm512_set_epi16(15, 0, 14, 0, 13, 0, 12, 0, 11, 0, 10, 0, 9, 0, 8, 0, 7, 0, 6, 0, 5, 0, 4, 0,
                                       3, 0, 2, 0, 1, 0, 0, 0);
  return _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(
      0xAAAAAAAAu, idx, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p))));
}
#define sg_load_bf16(p) sg_load_bf16_raw(p)
#define sg_narrow_u16(u) ((vh)_mm512_cvtepi32_epi16((__m512i)(u)))

#define sg_narrow_u8(u) ((vb)_mm512_cvtepi32_epi8((__m512i)(u)))

/* Largest lane (lanes >= 0, Inf allowed, no NaN) through shuffles, in registers. */
#define sg_v_hmax(v) _mm512_reduce_max_ps((__m512)(v))

#include "cpu_kernels_impl.h"
