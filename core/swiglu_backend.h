/*
 * The private interface between the dispatch core and a backend.
 *
 * The core validates every call and hands the backend a normalized problem
 * (sg_glu_problem) whose operands are already checked for dtype, shape,
 * strides, overlap and address overflow: a backend only computes. Backends
 * are built in (the CPU, or any backend with SWIGLU_STATIC_BACKENDS) or
 * loadable modules libswiglu-NAME.so that export the two symbols below.
 *
 * Compatibility rule: the struct starts with abi_version and struct_size; the
 * core refuses a module whose abi_version differs from
 * SWIGLU_BACKEND_ABI_VERSION. Any change to this file that alters a layout
 * bumps the version.
 */
#ifndef SWIGLU_CORE_BACKEND_H
#define SWIGLU_CORE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "swiglu/swiglu.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SWIGLU_BACKEND_ABI_VERSION 3u

/* Helpers below are shared with the GPU kernels. */
#if defined(__CUDACC__) || defined(__HIPCC__)
#define SG_HD __host__ __device__
#else
#define SG_HD
#endif
#define SG_MAX_LEAD_DIMS 7
#define SG_MSG_CAP 512

/* Element types the kernels read and write. The GLU ops use the first three;
 * the quantizing op writes byte codes and reads int32 expert counts. */
typedef enum sg_dtype { SG_F32 = 0, SG_F16 = 1, SG_BF16 = 2, SG_U8 = 3, SG_I8 = 4, SG_I32 = 5 } sg_dtype;

/* One operand as a matrix of `rows` rows (all leading dimensions flattened in
 * row-major order) by `width` columns. Element (r, c) is at
 *   base + (row_offset(r) + c * col_step) * element_size
 * where row_offset(r) = r * row_stride when row_stride >= 0 (the leading
 * dimensions collapse), otherwise the sum over the leading dimensions of
 * index_i * lead_stride[i]. col_step is 1, or 2 for the interleaved layout. */
typedef struct sg_operand {
  char *base;
  int64_t row_stride;
  int64_t col_step;
  int32_t dtype; /* sg_dtype */
  int32_t nlead;
  int64_t lead_shape[SG_MAX_LEAD_DIMS];
  int64_t lead_stride[SG_MAX_LEAD_DIMS];
} sg_operand;

SG_HD static inline int64_t sg_row_offset(const sg_operand *op, int64_t r) {
  if (op->row_stride >= 0) return r * op->row_stride;
  int64_t off = 0;
  for (int i = op->nlead - 1; i >= 0; --i) {
    int64_t n = op->lead_shape[i];
    off += (r % n) * op->lead_stride[i];
    r /= n;
  }
  return off;
}

SG_HD static inline size_t sg_dtype_size(int32_t dtype) {
  return (dtype == SG_F32 || dtype == SG_I32) ? 4u : (dtype == SG_U8 || dtype == SG_I8) ? 1u : 2u;
}

typedef struct sg_glu_problem {
  int32_t activation; /* swiglu_activation */
  float alpha, limit;
  int64_t rows, width;
  sg_operand gate, up;   /* inputs */
  sg_operand dh;         /* backward: incoming gradient */
  sg_operand h;          /* forward output; backward: optional, base == NULL if absent */
  sg_operand dgate, dup; /* backward outputs */
  int32_t in_place;      /* backward: dgate/dup alias gate/up element for element */
} sg_glu_problem;

/* GLU + quantization, after validation. Rows are the flattened leading
 * dimensions; with expert counts they are E blocks of M rows. Scale element
 * (e, m, c) — c a group, or a word of 4 groups for UE8M0_PACKED — is at
 * scales + scale_index(e, m, c) * scale_elem_size. */
typedef struct sg_quant_problem {
  sg_glu_problem glu;   /* activation, rows, width, gate, up (h, dh, dgate, dup unused) */
  sg_operand q;         /* codes: dtype SG_U8 or SG_I8, width H (NVFP4: H / 2 bytes) */
  int32_t format;       /* swiglu_quant_format */
  int32_t granularity;  /* swiglu_scale_granularity */
  int32_t encoding;     /* swiglu_scale_encoding */
  int32_t layout;       /* swiglu_scale_layout */
  int32_t flags;        /* SWIGLU_QUANT_* */
  int32_t round_dtype;  /* sg_dtype h is rounded to first, or -1 */
  float amax_floor;
  int64_t group;        /* features per scale (PER_ROW: H; PER_TENSOR: H) */
  int64_t groups;       /* groups per row */
  int64_t scale_cols;   /* groups, or words of 4 groups for UE8M0_PACKED */
  int64_t experts, rows_per_expert, rows_padded; /* E (1 unless masked), M, M rounded up to 4 */
  char *scales;         /* NULL for PER_TENSOR */
  const float *tensor_scale;  /* PER_TENSOR scale or NVFP4 global scale, else NULL */
  const float *row_weight;    /* [rows] compact, or NULL */
  const int32_t *expert_counts; /* [E], or NULL */
} sg_quant_problem;

SG_HD static inline int64_t sg_scale_index(const sg_quant_problem *p, int64_t e, int64_t m, int64_t c) {
  if (p->layout == SWIGLU_SCALE_ROW_MAJOR) return (e * p->rows_per_expert + m) * p->scale_cols + c;
  const int64_t ld = p->layout == SWIGLU_SCALE_COL_MAJOR_TMA ? p->rows_padded : p->rows_per_expert;
  return (e * p->scale_cols + c) * ld + m;
}


/* The GEMM-fused ops, after validation. Every matrix operand has
 * row_stride >= 0 (its leading dimensions collapsed) and col_step 1, except
 * the pre-activation halves of the interleaved layout (col_step 2) and the
 * interleaved weight halves (row_stride twice the tensor's). An absent
 * optional operand has base == NULL. */
enum { SG_LIN_GLU_FWD = 0, SG_LIN_GLU_BWD = 1, SG_LIN_DOWN_FWD = 2, SG_LIN_DOWN_BWD = 3 };

typedef struct sg_linear_problem {
  int32_t op;           /* SG_LIN_* */
  int32_t activation;   /* swiglu_activation */
  float alpha, limit;
  uint32_t flags;       /* SWIGLU_LINEAR_* */
  int32_t pre_layout;   /* swiglu_layout of the [T, 2H] pre-activation (never SEPARATE
                           for the GLU linear ops) */
  int64_t T, D, H;
  int32_t experts;      /* DOWN_*: E of the MoE form, else 0 */
  const int64_t *offsets; /* [E + 1], host */
  /* GLU linear */
  sg_operand x;         /* X [T, D] */
  sg_operand wg, wu;    /* weight rows [H, D] */
  sg_operand bg, bu;    /* biases as one row [1, H] (optional) */
  sg_operand w2h, b2h;  /* packed layouts: the whole [2H, D] weight and [1, 2H] bias, rows and
                           columns in pre_layout order (base NULL with SEPARATE / no bias); a
                           backend may run one GEMM over it instead of two */
  sg_operand h;         /* GLU_FWD out [T, H] */
  sg_operand dh;        /* GLU_BWD in [T, H] */
  sg_operand dx;        /* GLU_BWD out [T, D] (optional) */
  sg_operand dwg, dwu;  /* GLU_BWD out [H, D] (optional) */
  sg_operand dbg, dbu;  /* GLU_BWD out [1, H] (optional) */
  /* pre-activation gate / up halves [T, H]: GLU_FWD out (optional), GLU_BWD
   * in (optional: recomputed when absent), DOWN_* in */
  sg_operand pg, pu;
  /* down projection */
  sg_operand wd;        /* Wd [D, H] of expert 0; expert e at + e * wd_expert_stride elements */
  int64_t wd_expert_stride;
  sg_operand y;         /* DOWN_FWD out / DOWN_BWD in (dy) [T, D] */
  sg_operand dpg, dpu;  /* DOWN_BWD out [T, H] */
  sg_operand dwd;       /* DOWN_BWD out (optional), like wd */
  int64_t dwd_expert_stride;
  void *workspace;
  size_t workspace_bytes;
} sg_linear_problem;

typedef struct swiglu_backend_iface {
  uint32_t abi_version; /* SWIGLU_BACKEND_ABI_VERSION */
  uint32_t struct_size; /* sizeof(swiglu_backend_iface) */
  const char *name;
  int32_t device_type;  /* swiglu_device_type of the memory the backend reads */
  /* Creates per-context state for device `device`; msg receives the reason on failure. */
  swiglu_status (*create)(void **state, int device, char *msg, size_t msg_cap);
  void (*destroy)(void *state);
  const char *(*device_name)(void *state);
  swiglu_status (*set_stream)(void *state, void *stream, char *msg, size_t msg_cap);
  swiglu_status (*glu_forward)(void *state, const sg_glu_problem *p, char *msg, size_t msg_cap);
  swiglu_status (*glu_backward)(void *state, const sg_glu_problem *p, char *msg, size_t msg_cap);
  /* May be NULL: the op is then reported as unsupported. Data-dependent
   * checks (expert counts <= M) are the backend's, before it writes. */
  swiglu_status (*glu_quant)(void *state, const sg_quant_problem *p, char *msg, size_t msg_cap);
  /* Device memory and ordering (swiglu_context_malloc and friends). */
  swiglu_status (*mem_alloc)(void *state, size_t bytes, void **out, char *msg, size_t msg_cap);
  swiglu_status (*mem_free)(void *state, void *ptr, char *msg, size_t msg_cap);
  swiglu_status (*mem_copy)(void *state, void *dst, const void *src, size_t bytes, int kind,
                            char *msg, size_t msg_cap);
  swiglu_status (*synchronize)(void *state, char *msg, size_t msg_cap);
  /* GEMM-fused ops; both NULL when the backend does not have them. The
   * workspace the call needs for p (p->workspace ignored); the call itself
   * checks p->workspace_bytes against the same figure. */
  swiglu_status (*linear_workspace)(void *state, const sg_linear_problem *p, size_t *bytes,
                                    char *msg, size_t msg_cap);
  swiglu_status (*linear)(void *state, const sg_linear_problem *p, char *msg, size_t msg_cap);
  /* swiglu_context_set_num_threads (n already checked: 0 or in [1,
   * SWIGLU_MAX_THREADS]); NULL where host threads mean nothing (the GPUs):
   * the setting is then only recorded. (ABI 3) */
  swiglu_status (*set_num_threads)(void *state, int n, char *msg, size_t msg_cap);
} swiglu_backend_iface;

/* The two symbols every loadable module exports (extern "C"). */
#define SWIGLU_BACKEND_INIT_SYMBOL "swiglu_backend_init"
#define SWIGLU_BACKEND_SCORE_SYMBOL "swiglu_backend_score"
typedef const swiglu_backend_iface *(*swiglu_backend_init_fn)(void);
/* 0 = unusable on this machine (reason written to `reason`); higher is better.
 * The CPU scores 1, GPU backends score 100 + something. */
typedef int (*swiglu_backend_score_fn)(char *reason, size_t reason_cap);

#ifdef __cplusplus
}
#endif

#endif /* SWIGLU_CORE_BACKEND_H */
