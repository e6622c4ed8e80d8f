/* Entry points of the per-ISA CPU kernels (see cpu_kernels_impl.h). */
#ifndef SWIGLU_CPU_KERNELS_H
#define SWIGLU_CPU_KERNELS_H

#include "../../core/swiglu_backend.h"

#define SG_ALIGNED __attribute__((aligned(64)))

/* Each processes work items [item0, item1) of a problem, where item i is row
 * i / chunks, columns [(i % chunks) * 512, +512), chunks = ceil(width / 512).
 * stream != 0 writes the outputs with non-temporal stores (for outputs far
 * larger than the caches: no read-for-ownership of lines never read again). */
typedef void (*sg_cpu_kernel_fn)(const sg_glu_problem *p, int64_t item0, int64_t item1, int stream);

#define SG_CPU_CHUNK 512

/* Quantizing op: rows [row0, row1), h a per-thread scratch of
 * SG_QUANT_SCRATCH(width) floats, 64-byte aligned: h itself, a row of
 * 16-bit h (SG_QUANT_H16(width) halves: whole forward work items), and the
 * scales of SG_QUANT_SCALE_ROWS rows (groups <= width / 8, or 1). */
typedef void (*sg_cpu_quant_fn)(const sg_quant_problem *p, int64_t row0, int64_t row1, float *h);
#define SG_QUANT_COLS 2048
#define SG_QUANT_SCALE_ROWS 16
#define SG_QUANT_H16(width) ((size_t)(width) + SG_CPU_CHUNK)
#define SG_QUANT_SCRATCH(width) \
  ((size_t)(width) + 64 + SG_QUANT_H16(width) / 2 + 16 + SG_QUANT_SCALE_ROWS * ((size_t)(width) / 8 + 1))

/* One core's L2 in bytes, as the C library reports it (1 MiB where it
 * reports none), set when the backend picks its kernels: the GEMM sizes its
 * blocks from it (cpu_gemm_impl.h). */
extern int64_t sg_cpu_l2_bytes;
/* Set where the backend picked "avx512amx": the AVX512_BF16 build's GEMM
 * then runs bf16 x bf16 products on AMX tiles (cpu_gemm_impl.h). */
extern int sg_cpu_amx;

/* GEMM-fused ops (cpu_gemm_impl.h): the workspace bytes with nthreads
 * threads, and the op itself on p->workspace (at least that many bytes). */
typedef size_t (*sg_cpu_linear_ws_fn)(const sg_linear_problem *p, int nthreads);
typedef void (*sg_cpu_linear_fn)(const sg_linear_problem *p, int nthreads);

#define SG_DECLARE_ISA(isa)                                                                      \
  void sg_cpu_glu_forward_##isa(const sg_glu_problem *p, int64_t item0, int64_t item1, int nt); \
  void sg_cpu_glu_backward_##isa(const sg_glu_problem *p, int64_t item0, int64_t item1, int nt); \
  void sg_cpu_glu_quant_##isa(const sg_quant_problem *p, int64_t row0, int64_t row1, float *h); \
  size_t sg_cpu_linear_ws_##isa(const sg_linear_problem *p, int nthreads);                      \
  void sg_cpu_linear_##isa(const sg_linear_problem *p, int nthreads);

SG_DECLARE_ISA(generic)
#if defined(__x86_64__)
SG_DECLARE_ISA(avx2)
SG_DECLARE_ISA(avx512)
SG_DECLARE_ISA(avx512bf16)
#endif

#endif
