/* AVX2 + FMA + F16C build of the CPU kernels: 8 lanes. Compiled with those
 * flags for this file only; chosen at run time when the CPU has them. */
#include <immintrin.h>

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

#include "cpu_kernels_impl.h"
