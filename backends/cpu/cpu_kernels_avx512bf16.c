/* The AVX-512 kernels built with AVX512_BF16 (vcvtneps2bf16); see
 * cpu_kernels_avx512.c. Results are bit-identical to the other builds. */
#include "cpu_kernels_avx512.c"
