/* AVX2 + FMA + F16C build of the CPU kernels: 8 lanes. Compiled with those
 * flags for this file only; chosen at run time when the CPU has them. */
#include <immintrin.h>
#include <stdint.h>

#define SG_W 8
#define SG_NAME(x) x##_avx2
#define SG_EVEN_LANES 0, 2, 4, 6, 8, 10, 12, 14
#define SG_ODD_LANES 1, 3, 5, 7, 9, 11, 13, 15
#define SG_ZIP_LO_LANES 0, 8, 1, 9, 2, 10, 3, 11
#define SG_ZIP_HI_LANES 4, 12, 5, 13, 6, 14, 7, 15

#define sg_v_fma(a, b, c) ((__typeof__(a))_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))

static inline __m256 sg_load_f16_raw(const void *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
static inline void sg_store_f16_raw(void *p, __m256 v) {
  _mm_storeu_si128((__m128i *)p, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
}
#define sg_load_f16(p) ((vf)sg_load_f16_raw(p))
#define sg_store_f16(p, v) sg_store_f16_raw((p), (__m256)(v))

#define sg_stream_f32(p, v) _mm256_stream_si256((__m256i *)(p), (__m256i)(v))
#define sg_stream_half(p, h) _mm_stream_si128((__m128i *)(p), (__m128i)(h))
#define sg_stream_fence() _mm_sfence()
#define sg_to_f16(v) (vh) _mm256_cvtps_ph((__m256)(v), _MM_FROUND_TO_NEAREST_INT)
#define sg_v_any(m) (_mm256_movemask_ps((__m256)(m)) != 0)

/* maxps(a, b) returns b when either is NaN: with the bound first, a NaN
 * argument passes through, as in the portable v_sel form. */
#define sg_v_max(bound, x) ((vf)_mm256_max_ps((__m256)(bound), (__m256)(x)))
#define sg_v_min(bound, x) ((vf)_mm256_min_ps((__m256)(bound), (__m256)(x)))
#define sg_v_umax(a, b) ((vu)_mm256_max_epu32((__m256i)(a), (__m256i)(b)))
/* 1/d for the 16-bit outputs (see v_exp_negz16): rcpps is only good to
 * 1.5 * 2^-12, so one Newton step (2^-22) */
static inline __m256 sg_v_rcp16_raw(__m256 d) {
  const __m256 r = _mm256_rcp_ps(d);
  return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(1.0f)), r);
}
#define sg_v_rcp16(d) ((vf)sg_v_rcp16_raw((__m256)(d)))

#define sg_widen_u16(p) ((vu)_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p))))
/* values are <= 0xffff, so unsigned saturation is a plain narrowing */
static inline __m128i sg_narrow_u16_raw(__m256i u) {
  return _mm_packus_epi32(_mm256_castsi256_si128(u), _mm256_extracti128_si256(u, 1));
}
#define sg_narrow_u16(u) ((vh)sg_narrow_u16_raw((__m256i)(u)))

/* Pair order for bf16 (SG_PAIR_BF16 in cpu_kernels_impl.h): 16 values
 * widened by two in-lane unpacks with zero, which put each value in the
 * high half of its lane (no shift) but in the order 0-3 8-11 | 4-7 12-15;
 * the in-lane pack of two such vectors' results restores 0-15. Against a
 * widening load and a shift per vector, and an extract and a pack per
 * stored vector, the bf16 SiLU forward's loop in L1 went from ~32 to ~25
 * cycles a vector on a Zen 1 EPYC (bench/NOTES.md, thirty-fourth session). */
#define SG_PAIR_BF16 1
static inline void sg_bf16_unzip_raw(const void *p, __m256 *a, __m256 *b) {
  const __m256i r = _mm256_loadu_si256((const __m256i *)p), z = _mm256_setzero_si256();
  *a = (__m256)_mm256_unpacklo_epi16(z, r);
  *b = (__m256)_mm256_unpackhi_epi16(z, r);
}
#define sg_bf16_unzip(p, a, b) sg_bf16_unzip_raw((p), (__m256 *)(a), (__m256 *)(b))
#define sg_bf16_zip(a, b) ((vh2)_mm256_packus_epi32((__m256i)(a), (__m256i)(b)))
#define sg_v_any_nan2(a, b) (_mm256_movemask_ps(_mm256_cmp_ps((__m256)(a), (__m256)(b), _CMP_UNORD_Q)) != 0)

/* codes are < 256: two saturating packs keep them, a permute restores order */
static inline __m128i sg_narrow_u8_raw(__m256i u) {
  __m256i w = _mm256_packus_epi32(u, u);   /* 0123 0123 | 4567 4567 as u16 */
  __m256i b = _mm256_packus_epi16(w, w);   /* bytes, same lane pattern */
  b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
  return _mm256_castsi256_si128(b);
}
#define sg_narrow_u8(u) sg_narrow_u8_vb(sg_narrow_u8_raw((__m256i)(u)))
static inline __attribute__((always_inline)) uint64_t sg_narrow_u8_bits(__m128i b) {
  return (uint64_t)_mm_cvtsi128_si64(b);
}
#define sg_narrow_u8_vb(b) ((vb)sg_narrow_u8_bits(b))
/* four vectors of codes (< 256) into 32 bytes in order: two packs to 16
 * bits and one to 8 leave dwords a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 c4-7
 * d4-7, and one permute (perm: sg_narrow_u8x4_perm) puts them back; four
 * shuffles where one vector at a time took three each. From vectors in
 * pair order (a, b and c, d each a pair, as sg_bf16_unzip leaves them) the
 * first packs already give 0-15 and 16-31 in order, and only the permute's
 * indices differ. */
static inline __m256i sg_narrow_u8x4_raw(__m256i a, __m256i b, __m256i c, __m256i d, __m256i perm) {
  const __m256i w = _mm256_packus_epi16(_mm256_packus_epi32(a, b), _mm256_packus_epi32(c, d));
  return _mm256_permutevar8x32_epi32(w, perm);
}
#define sg_narrow_u8x4(a, b, c, d, perm) \
  sg_narrow_u8x4_raw((__m256i)(a), (__m256i)(b), (__m256i)(c), (__m256i)(d), (__m256i)(perm))
static inline __m256i sg_narrow_u8x4_perm_raw(int po) {
  return po ? _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7) : _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
}
#define sg_narrow_u8x4_perm(po) ((vu)sg_narrow_u8x4_perm_raw(po))

/* Largest lane (lanes >= 0, Inf allowed, no NaN) through shuffles, in registers. */
static inline float sg_v_hmax_raw(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}
#define sg_v_hmax(v) sg_v_hmax_raw((__m256)(v))

#include "cpu_kernels_impl.h"
