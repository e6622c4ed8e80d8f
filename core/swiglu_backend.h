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

#define SWIGLU_BACKEND_ABI_VERSION 1u
#define SG_MAX_LEAD_DIMS 7
#define SG_MSG_CAP 512

/* Element types the GLU kernels read and write. */
typedef enum sg_dtype { SG_F32 = 0, SG_F16 = 1, SG_BF16 = 2 } sg_dtype;

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

static inline int64_t sg_row_offset(const sg_operand *op, int64_t r) {
  if (op->row_stride >= 0) return r * op->row_stride;
  int64_t off = 0;
  for (int i = op->nlead - 1; i >= 0; --i) {
    int64_t n = op->lead_shape[i];
    off += (r % n) * op->lead_stride[i];
    r /= n;
  }
  return off;
}

static inline size_t sg_dtype_size(int32_t dtype) { return dtype == SG_F32 ? 4u : 2u; }

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
