/*
 * swiglu — fused gated-linear-unit kernels with a run-time chosen backend.
 *
 * Conventions (shared by every function in this header):
 *  - Every function that can fail returns a swiglu_status; SWIGLU_SUCCESS is 0.
 *    Values are pinned: a value once released never changes meaning.
 *  - Results are returned through the first pointer argument.
 *  - When a call fails, nothing has been written to any output tensor, and
 *    swiglu_context_last_error() says what exactly was wrong.
 *  - Objects come in create/destroy pairs; the caller owns what a create
 *    function returns and releases it with the matching destroy function.
 *  - Threading: a context may be used by one thread at a time; any number of
 *    contexts may be used concurrently from different threads. Functions that
 *    take no context are thread-safe.
 *
 * Numerics of every op are defined in docs/numerics.md.
 */
#ifndef SWIGLU_SWIGLU_H
#define SWIGLU_SWIGLU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SWIGLU_API __declspec(dllexport)
#elif defined(__GNUC__)
#define SWIGLU_API __attribute__((visibility("default")))
#else
#define SWIGLU_API
#endif

/* ------------------------------------------------------------------ version */

#define SWIGLU_VERSION_MAJOR 0
#define SWIGLU_VERSION_MINOR 1
#define SWIGLU_VERSION_PATCH 0
/* Encoded as major * 10000 + minor * 100 + patch. */
#define SWIGLU_VERSION \
  (SWIGLU_VERSION_MAJOR * 10000 + SWIGLU_VERSION_MINOR * 100 + SWIGLU_VERSION_PATCH)

/* The version of the library actually loaded, encoded like SWIGLU_VERSION. */
SWIGLU_API int swiglu_version(void);
/* The same as a static "major.minor.patch" string. */
SWIGLU_API const char *swiglu_version_string(void);

/* ------------------------------------------------------------------- status */

typedef enum swiglu_status {
  SWIGLU_SUCCESS = 0,
  SWIGLU_ERROR_NULL_POINTER = 1,        /* a required pointer argument is NULL */
  SWIGLU_ERROR_INVALID_ARGUMENT = 2,    /* an enum, flag or scalar is out of range */
  SWIGLU_ERROR_BAD_SHAPE = 3,           /* rank or extents do not agree */
  SWIGLU_ERROR_BAD_DTYPE = 4,           /* dtype not accepted for this operand */
  SWIGLU_ERROR_BAD_STRIDE = 5,          /* strides refused (see the op's doc) */
  SWIGLU_ERROR_OVERLAP = 6,             /* an output overlaps an input or output */
  SWIGLU_ERROR_SIZE_OVERFLOW = 7,       /* a byte count or address would overflow */
  SWIGLU_ERROR_UNSUPPORTED = 8,         /* valid, but this backend does not do it */
  SWIGLU_ERROR_BACKEND_UNAVAILABLE = 9, /* module missing, refused, or no device */
  SWIGLU_ERROR_DEVICE_MISMATCH = 10,    /* tensor memory is not on the context's device */
  SWIGLU_ERROR_OUT_OF_MEMORY = 11,
  SWIGLU_ERROR_BACKEND_FAILURE = 12,    /* the backend's runtime reported an error */
  SWIGLU_ERROR_INTERNAL = 13
} swiglu_status;

/* A static, human-readable name for a status; never NULL. */
SWIGLU_API const char *swiglu_status_string(swiglu_status status);

/* ------------------------------------------------------- tensor descriptor */

/* Field-for-field compatible with DLPack's DLDevice / DLDataType / DLTensor
 * (DLPack 1.1), so a DLTensor* can be passed by casting it to swiglu_tensor*. */

typedef enum swiglu_device_type {
  SWIGLU_DEVICE_CPU = 1,
  SWIGLU_DEVICE_CUDA = 2,
  SWIGLU_DEVICE_CUDA_HOST = 3,
  SWIGLU_DEVICE_ROCM = 10,
  SWIGLU_DEVICE_ROCM_HOST = 11,
  SWIGLU_DEVICE_CUDA_MANAGED = 13
} swiglu_device_type;

typedef struct swiglu_device {
  int32_t device_type; /* a swiglu_device_type (DLDeviceType) */
  int32_t device_id;
} swiglu_device;

typedef enum swiglu_dtype_code {
  SWIGLU_DTYPE_INT = 0,
  SWIGLU_DTYPE_UINT = 1,
  SWIGLU_DTYPE_FLOAT = 2,
  SWIGLU_DTYPE_BFLOAT = 4,
  SWIGLU_DTYPE_FLOAT8_E4M3FN = 10,
  SWIGLU_DTYPE_FLOAT8_E4M3FNUZ = 11,
  SWIGLU_DTYPE_FLOAT8_E5M2 = 12,
  SWIGLU_DTYPE_FLOAT8_E5M2FNUZ = 13,
  SWIGLU_DTYPE_FLOAT8_E8M0FNU = 14,
  SWIGLU_DTYPE_FLOAT4_E2M1FN = 17
} swiglu_dtype_code;

typedef struct swiglu_dtype {
  uint8_t code;   /* a swiglu_dtype_code */
  uint8_t bits;
  uint16_t lanes; /* must be 1 for every op in this library */
} swiglu_dtype;

typedef struct swiglu_tensor {
  void *data;            /* base pointer; the first element is at data + byte_offset */
  swiglu_device device;
  int32_t ndim;
  swiglu_dtype dtype;
  int64_t *shape;        /* ndim extents */
  int64_t *strides;      /* ndim strides in elements; NULL means compact row-major.
                            A tensor with no elements is accepted whatever its
                            strides and data (NumPy gives an empty array zero
                            strides in front of its zero extent) */
  uint64_t byte_offset;
} swiglu_tensor;

/* Convenience dtype values (C only: compound literals). */
#ifndef __cplusplus
#define SWIGLU_DTYPE_F32 ((swiglu_dtype){SWIGLU_DTYPE_FLOAT, 32, 1})
#define SWIGLU_DTYPE_F16 ((swiglu_dtype){SWIGLU_DTYPE_FLOAT, 16, 1})
#define SWIGLU_DTYPE_BF16 ((swiglu_dtype){SWIGLU_DTYPE_BFLOAT, 16, 1})
#endif

/* ------------------------------------------------------------------ context */

typedef struct swiglu_context swiglu_context;

/*
 * Creates a context bound to one backend and device.
 *
 * backend: NULL or "auto" picks the best usable backend (highest score; the
 *   CPU when no GPU module is usable) — the environment variable
 *   SWIGLU_BACKEND, when set, replaces "auto" by the name it holds.
 *   "cpu", "cuda", "hip", or any other name NAME loads the module
 *   libswiglu-NAME.so (looked for in each directory of SWIGLU_BACKEND_PATH,
 *   then beside libswiglu itself, then on the system library path).
 *   A backend asked for by name that cannot be used returns
 *   SWIGLU_ERROR_BACKEND_UNAVAILABLE and the reason in *out is not set;
 *   use swiglu_last_create_error() for the message.
 * device_index: which device of that backend (0 for the CPU).
 *
 * On success *out owns the context; release it with swiglu_context_destroy.
 */
SWIGLU_API swiglu_status swiglu_context_create(swiglu_context **out, const char *backend,
                                               int device_index);

/* Releases a context; NULL is accepted and ignored. */
SWIGLU_API void swiglu_context_destroy(swiglu_context *ctx);

/* Why the calling thread's last swiglu_context_create failed ("" if it did not). */
SWIGLU_API const char *swiglu_last_create_error(void);

/* The backend the context got ("cpu", "cuda", ...); static storage. */
SWIGLU_API const char *swiglu_context_backend(const swiglu_context *ctx);
/* The device index the context got. */
SWIGLU_API int swiglu_context_device(const swiglu_context *ctx);
/* The DLPack device type tensors passed to this context must live on. */
SWIGLU_API int32_t swiglu_context_device_type(const swiglu_context *ctx);
/* A short description of what the backend runs on (CPU ISA, GPU name). */
SWIGLU_API const char *swiglu_context_device_name(const swiglu_context *ctx);

/* Sets the opaque stream (cudaStream_t / hipStream_t; ignored by the CPU) on
 * which every later call of this context enqueues its work. NULL is the
 * default stream. The context does not take ownership. */
SWIGLU_API swiglu_status swiglu_context_set_stream(swiglu_context *ctx, void *stream);
SWIGLU_API void *swiglu_context_stream(const swiglu_context *ctx);

/* The host threads the CPU backend runs this context's calls on: n in
 * [1, SWIGLU_MAX_THREADS], or 0 (the default) for OpenMP's count at each
 * call (OMP_NUM_THREADS, omp_set_num_threads). For embedders whose own
 * thread pool would otherwise be oversubscribed. Results do not depend on
 * the count. The CPU's *_workspace_size queries quote for the count in
 * force when they are asked. GPU backends accept the setting and ignore it.
 * Any other n gives SWIGLU_ERROR_INVALID_ARGUMENT and changes nothing. */
#define SWIGLU_MAX_THREADS 4096
SWIGLU_API swiglu_status swiglu_context_set_num_threads(swiglu_context *ctx, int n);
/* The setting (0: OpenMP's count); -1 for a NULL context. */
SWIGLU_API int swiglu_context_num_threads(const swiglu_context *ctx);

/* Memory of the context's device, for embedders without their own allocator
 * and for tests and benchmarks that must be backend-agnostic. The CPU backend
 * uses the host heap. All copies are ordered on the context's stream;
 * swiglu_context_synchronize waits for everything enqueued so far.
 * malloc: 64-byte aligned or better; 0 bytes gives a distinct pointer; more
 * than PTRDIFF_MAX bytes, or more than the device has, fails with
 * SWIGLU_ERROR_OUT_OF_MEMORY and *out = NULL. free: NULL or a pointer this
 * context's malloc returned (anything else is undefined, as with free()). */
SWIGLU_API swiglu_status swiglu_context_malloc(swiglu_context *ctx, size_t bytes, void **out);
SWIGLU_API swiglu_status swiglu_context_free(swiglu_context *ctx, void *ptr);
/* kind: SWIGLU_COPY_HOST_TO_DEVICE, _DEVICE_TO_HOST or _DEVICE_TO_DEVICE.
 * Host-side copies return when the host buffer may be reused / read. */
typedef enum swiglu_copy_kind {
  SWIGLU_COPY_HOST_TO_DEVICE = 0,
  SWIGLU_COPY_DEVICE_TO_HOST = 1,
  SWIGLU_COPY_DEVICE_TO_DEVICE = 2
} swiglu_copy_kind;
SWIGLU_API swiglu_status swiglu_context_copy(swiglu_context *ctx, void *dst, const void *src,
                                             size_t bytes, swiglu_copy_kind kind);
SWIGLU_API swiglu_status swiglu_context_synchronize(swiglu_context *ctx);

/* The message describing the last failed call on this context ("" after a
 * success). Valid until the next call on the context. */
SWIGLU_API const char *swiglu_context_last_error(const swiglu_context *ctx);

/* --------------------------------------------------------------- logging */

/* Receives registry decisions (modules tried, refused, chosen) and backend
 * diagnostics. When no callback is set and SWIGLU_LOG=1 is in the
 * environment, these lines go to stderr. Pass NULL to remove the callback.
 * Not meant to be changed while other threads create contexts. */
typedef void (*swiglu_log_fn)(const char *message, void *user_data);
SWIGLU_API void swiglu_set_log_callback(swiglu_log_fn fn, void *user_data);

/* ------------------------------------------------------------------ GLU ops */

typedef enum swiglu_activation {
  SWIGLU_ACT_SILU = 0,          /* SwiGLU: silu(g) * u */
  SWIGLU_ACT_GELU_TANH = 1,     /* GeGLU, tanh approximation */
  SWIGLU_ACT_GELU_ERF = 2,      /* GeGLU, exact erf form */
  SWIGLU_ACT_RELU = 3,          /* ReGLU */
  SWIGLU_ACT_SILU_GPTOSS = 4,   /* g=min(gate,limit), u=clamp(up,-limit,limit),
                                   h = g*sigmoid(alpha*g)*(u+1) */
  SWIGLU_ACT_SILU_CLAMPED = 5   /* g=min(gate,limit), u=clamp(up,-limit,limit),
                                   h = silu(g)*u */
} swiglu_activation;

typedef enum swiglu_layout {
  SWIGLU_LAYOUT_SEPARATE = 0,    /* gate and up are two tensors [..., H] */
  SWIGLU_LAYOUT_GATE_UP = 1,     /* one tensor [..., 2H]: gate = [:H], up = [H:] */
  SWIGLU_LAYOUT_UP_GATE = 2,     /* one tensor [..., 2H]: up = [:H], gate = [H:] */
  SWIGLU_LAYOUT_INTERLEAVED = 3  /* one tensor [..., 2H]: gate = [0::2], up = [1::2] */
} swiglu_layout;

typedef struct swiglu_glu_desc {
  swiglu_activation activation;
  swiglu_layout layout;
  float alpha; /* SILU_GPTOSS only: sigmoid slope (gpt-oss: 1.702) */
  float limit; /* SILU_GPTOSS / SILU_CLAMPED only: clamp bound, > 0 (gpt-oss: 7) */
} swiglu_glu_desc;

/* Fills *desc with the activation and layout and the gpt-oss defaults
 * alpha = 1.702, limit = 7. */
SWIGLU_API swiglu_status swiglu_glu_desc_init(swiglu_glu_desc *desc, swiglu_activation activation,
                                              swiglu_layout layout);

/*
 * Forward: h = act(gate) * up, evaluated in fp32 and rounded once to h's dtype.
 *
 * x: with a packed layout, the [..., 2H] input; with SWIGLU_LAYOUT_SEPARATE,
 *    the gate tensor [..., H].
 * up: the up tensor [..., H] with SWIGLU_LAYOUT_SEPARATE, else NULL.
 * h: the output [..., H], same leading extents as x.
 *
 * Leading dimensions are any number (0 to 7) of extents with any non-negative
 * strides (outputs: positive and non-self-overlapping); the last dimension is
 * the feature dimension and must have stride 1. Input dtypes bf16, fp16, fp32
 * (gate and up the same); the output dtype is any of the three. h must not
 * overlap x or up.
 */
SWIGLU_API swiglu_status swiglu_glu_forward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                            const swiglu_tensor *x, const swiglu_tensor *up,
                                            const swiglu_tensor *h);

/* Backward flags. */
#define SWIGLU_BACKWARD_IN_PLACE 1u /* the gradients overwrite the inputs */

/*
 * Backward: from dh, gate and up, dgate = dh * up * act'(gate) and
 * dup = dh * act(gate) (with the clamps of the clamped activations: zero
 * gradient where a clamp is active), evaluated in fp32 and rounded once.
 *
 * dh: [..., H]. x / up: the forward inputs, as in swiglu_glu_forward.
 * dx: with a packed layout, the [..., 2H] gradient in the same layout as x;
 *     with SWIGLU_LAYOUT_SEPARATE, dgate [..., H].
 * dup: dup [..., H] with SWIGLU_LAYOUT_SEPARATE, else NULL.
 * h: optional (NULL to skip): also writes the recomputed forward output.
 * flags: SWIGLU_BACKWARD_IN_PLACE makes dx (and dup) the very same memory as
 *     x (and up) — same data, offset, shape, strides and dtype — and is the only
 *     way outputs may overlap inputs.
 */
SWIGLU_API swiglu_status swiglu_glu_backward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                             const swiglu_tensor *dh, const swiglu_tensor *x,
                                             const swiglu_tensor *up, const swiglu_tensor *dx,
                                             const swiglu_tensor *dup, const swiglu_tensor *h,
                                             unsigned flags);


/* ------------------------------------------------------------- GLU + quant */

typedef enum swiglu_quant_format {
  SWIGLU_QUANT_FP8_E4M3FN = 0,   /* max 448, NaN 0x7f (OCP / NVIDIA) */
  SWIGLU_QUANT_FP8_E4M3FNUZ = 1, /* max 240, NaN 0x80, no -0 (AMD MI300) */
  SWIGLU_QUANT_FP8_E5M2 = 2,     /* max 57344, NaN 0x7e */
  SWIGLU_QUANT_INT8 = 3,         /* symmetric, codes in [-127, 127] */
  SWIGLU_QUANT_MXFP8 = 4,        /* E4M3FN codes, one E8M0 scale byte per 32 (OCP MX v1.0) */
  SWIGLU_QUANT_NVFP4 = 5         /* E2M1 codes two per byte, E4M3FN scale per 16, fp32 global */
} swiglu_quant_format;

typedef enum swiglu_scale_granularity {
  SWIGLU_SCALE_PER_TENSOR = 0, /* a given static scale (args.tensor_scale; any fp32 value, used
                                  as given: docs/numerics.md); no scales are written, so
                                  scale_encoding and scale_layout are ignored */
  SWIGLU_SCALE_PER_ROW = 1,    /* one scale per token */
  SWIGLU_SCALE_PER_GROUP = 2   /* one per group_size consecutive features of a row */
} swiglu_scale_granularity;

typedef enum swiglu_scale_encoding {
  SWIGLU_SCALE_FP32 = 0,         /* float: amax / format max */
  SWIGLU_SCALE_FP32_UE8M0 = 1,   /* float rounded up to a power of two */
  SWIGLU_SCALE_UE8M0_PACKED = 2, /* int32 words, each the exponent bytes of 4 consecutive
                                    groups of one row, first group in the low byte (DeepGEMM) */
  SWIGLU_SCALE_E8M0 = 3,         /* one exponent byte per group (MX; or UE8M0 bytes for FP8/INT8) */
  SWIGLU_SCALE_E4M3 = 4          /* one E4M3FN byte per group (NVFP4) */
} swiglu_scale_encoding;

typedef enum swiglu_scale_layout {
  SWIGLU_SCALE_ROW_MAJOR = 0,     /* [rows, groups] (packed: [rows, ceil(groups/4)] words) */
  SWIGLU_SCALE_COL_MAJOR = 1,     /* [groups, rows] */
  SWIGLU_SCALE_COL_MAJOR_TMA = 2  /* [groups, rows rounded up to a multiple of 4]; the padding
                                     rows are written as zero. With UE8M0_PACKED this is the
                                     layout DeepGEMM reads. */
} swiglu_scale_layout;

#define SWIGLU_QUANT_ROUND_H 1u          /* round h to the input dtype (gate's) before quantizing,
                                            so the result equals forward-then-quantize bit for bit */
#define SWIGLU_QUANT_MX_SCALE_ROUND_UP 2u /* MXFP8: scale 2^ceil(log2(amax/448)) (no saturation)
                                            instead of OCP's 2^(floor(log2 amax) - 8) */

typedef struct swiglu_quant_desc {
  swiglu_quant_format format;
  swiglu_scale_granularity granularity;
  int32_t group_size;          /* PER_GROUP: divides H, multiple of 8; MXFP8 32, NVFP4 16 */
  swiglu_scale_encoding scale_encoding;
  swiglu_scale_layout scale_layout;
  float amax_floor;            /* finite, >= 2^-126; group amax is at least this (FP8/INT8 only) */
  uint32_t flags;              /* SWIGLU_QUANT_* */
} swiglu_quant_desc;

/* Fills *desc for the format and granularity with the defaults: the format's
 * group size for MXFP8 / NVFP4 (else group_size), its scale encoding (E8M0,
 * E4M3; FP32 otherwise), row-major scales, amax floor 1e-10, no flags. */
SWIGLU_API swiglu_status swiglu_quant_desc_init(swiglu_quant_desc *desc, swiglu_quant_format format,
                                                swiglu_scale_granularity granularity,
                                                int32_t group_size);

typedef struct swiglu_quant_args {
  const swiglu_tensor *x;      /* as in swiglu_glu_forward (packed input, or gate) */
  const swiglu_tensor *up;     /* SWIGLU_LAYOUT_SEPARATE only */
  const swiglu_tensor *q;      /* out: codes [..., H] (NVFP4: uint8 [..., H/2], element 2j in
                                  the low nibble) */
  const swiglu_tensor *scales; /* out: per-row / per-group scales in the chosen encoding and
                                  layout; NULL for PER_TENSOR */
  const swiglu_tensor *tensor_scale; /* in: fp32, one element: the static scale (PER_TENSOR)
                                        or the global decode scale (NVFP4) */
  const swiglu_tensor *row_weight;   /* in, optional: fp32 per row (top-k routing weight),
                                        multiplies h before quantization */
  const swiglu_tensor *expert_counts; /* in, optional: int32 [E]; x is then [E, M, *] and rows
                                         m >= counts[e] are neither read nor written */
} swiglu_quant_args;

/*
 * h = act(gate) * up, then quantized in the same pass (docs/numerics.md,
 * "GLU + quantization"): h stays fp32 (or is rounded to the input dtype with
 * SWIGLU_QUANT_ROUND_H), is multiplied by the row weight if given, and each
 * row or group gets scale = max(amax, floor) / format max and codes
 * round-to-nearest-even(h / scale) saturated to the format's finite range.
 *
 * Scale tensors have shape [rows, groups] / [groups, rows] / [groups,
 * rows_pad4] by layout ([E, ...] with expert_counts), compact, dtype float32
 * (FP32, FP32_UE8M0), int32 (UE8M0_PACKED: groups counted in words), uint8
 * or float8_e8m0fnu (E8M0), uint8 or float8_e4m3fn (E4M3).
 * Codes: float8_e4m3fn / e4m3fnuz / e5m2 or uint8 for the FP8 formats, int8
 * for INT8, uint8 for NVFP4.
 */
SWIGLU_API swiglu_status swiglu_glu_quant(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                          const swiglu_quant_desc *qdesc,
                                          const swiglu_quant_args *args);

/* ------------------------------------------------ GEMM-fused GLU layers */

/*
 * The ops of a GLU feed-forward layer with the GEMMs fused in
 * (docs/numerics.md, "GEMM-fused ops"). Weights use PyTorch nn.Linear
 * orientation, [out_features, in_features], with unit stride along
 * in_features. Activation-side tensors ([..., D], [..., H], [..., 2H]) may
 * have any leading dimensions that collapse to one row stride (a row view into
 * a wider tensor is fine); their last dimension has stride 1. Operands are
 * bf16, fp16 or fp32 (each independently), products accumulate in fp32 and
 * each output is rounded once to its dtype, except where the op's doc names
 * an intermediate.
 *
 * Workspace: every op takes caller-owned scratch memory on the context's
 * device (args.workspace, args.workspace_bytes) and never allocates. The
 * matching *_workspace_size function validates the same arguments and
 * returns the bytes the call needs on this context; a call given less fails
 * with SWIGLU_ERROR_INVALID_ARGUMENT before writing anything. The size depends
 * on the shapes, the backend and (CPU) the OpenMP thread count at query time.
 *
 * A backend without these ops (HIP for now) returns SWIGLU_ERROR_UNSUPPORTED.
 */

/* Gradient outputs are added to what the buffers hold instead of
 * overwriting it (weight and bias gradients only; dx is always written). */
#define SWIGLU_LINEAR_ACCUMULATE 1u

/*
 * GLU linear forward: h = act(X Wg^T + bg) * (X Wu^T + bu).
 *
 * With a packed desc->layout, w is one [2H, D] tensor whose rows are ordered
 * like the features of that layout ([Wg; Wu], [Wu; Wg], or interleaved rows
 * g0, u0, g1, u1, ...) and bias (optional) one [2H] vector ordered the same
 * way. With SWIGLU_LAYOUT_SEPARATE, w = Wg [H, D], w_up = Wu [H, D], and
 * bias / bias_up are bg [H] / bu [H] (both or neither).
 * preact (optional) receives the pre-activations [..., 2H] in the weights'
 * layout (GATE_UP for SEPARATE), for a backward pass that does not recompute.
 */
typedef struct swiglu_glu_linear_args {
  const swiglu_tensor *x;       /* [..., D] */
  const swiglu_tensor *w;       /* [2H, D] (packed layout) or Wg [H, D] */
  const swiglu_tensor *w_up;    /* Wu [H, D] with SWIGLU_LAYOUT_SEPARATE, else NULL */
  const swiglu_tensor *bias;    /* optional: [2H] or bg [H] */
  const swiglu_tensor *bias_up; /* bu [H] with SEPARATE and a bias, else NULL */
  const swiglu_tensor *h;       /* out: [..., H] */
  const swiglu_tensor *preact;  /* out, optional: [..., 2H] */
  void *workspace;
  size_t workspace_bytes;
} swiglu_glu_linear_args;

SWIGLU_API swiglu_status swiglu_glu_linear_forward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                                   const swiglu_glu_linear_args *args);
SWIGLU_API swiglu_status swiglu_glu_linear_forward_workspace_size(swiglu_context *ctx,
                                                                  const swiglu_glu_desc *desc,
                                                                  const swiglu_glu_linear_args *args,
                                                                  size_t *bytes);

/*
 * GLU linear backward: from dh [..., H], the gradients of X, of the weights
 * and of the biases. The pre-activations come from preact (as saved by the
 * forward) or, when preact is NULL, are recomputed from x, w and the biases.
 * dx, dw and dbias are each optional (NULL: not computed), at least one is
 * given; dw / dw_up and dbias / dbias_up mirror w / w_up and bias / bias_up.
 * With SWIGLU_LINEAR_ACCUMULATE, dw and dbias are added to.
 */
typedef struct swiglu_glu_linear_backward_args {
  const swiglu_tensor *dh;      /* [..., H] */
  const swiglu_tensor *x;       /* [..., D] */
  const swiglu_tensor *w, *w_up;       /* as in the forward */
  const swiglu_tensor *bias, *bias_up; /* as in the forward (used when recomputing) */
  const swiglu_tensor *preact;  /* in, optional: [..., 2H] in the weights' layout */
  const swiglu_tensor *dx;      /* out, optional: [..., D] */
  const swiglu_tensor *dw, *dw_up;       /* out, optional */
  const swiglu_tensor *dbias, *dbias_up; /* out, optional */
  uint32_t flags;               /* SWIGLU_LINEAR_ACCUMULATE */
  void *workspace;
  size_t workspace_bytes;
} swiglu_glu_linear_backward_args;

SWIGLU_API swiglu_status swiglu_glu_linear_backward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                                    const swiglu_glu_linear_backward_args *args);
SWIGLU_API swiglu_status swiglu_glu_linear_backward_workspace_size(
    swiglu_context *ctx, const swiglu_glu_desc *desc, const swiglu_glu_linear_backward_args *args,
    size_t *bytes);

/*
 * Down projection with the GLU as prologue: y = (act(G) * U) Wd^T, where G
 * and U come from the pre-activation x [..., 2H] in desc->layout (or x = G,
 * up = U with SWIGLU_LAYOUT_SEPARATE) and Wd is [D, H].
 *
 * MoE form: num_experts > 0, w is [E, D, H] and expert_offsets (host memory,
 * E + 1 values, non-decreasing, from 0 to T) gives each expert its rows:
 * rows [offsets[e], offsets[e+1]) use Wd[e]. Experts with no rows are skipped.
 * The offsets are read on the host because they decide the work each GEMM
 * gets; the masked layout with device-side counts is the quant op's.
 */
typedef struct swiglu_down_proj_args {
  const swiglu_tensor *x;        /* [..., 2H] pre-activation, or G [..., H] with SEPARATE */
  const swiglu_tensor *up;       /* U [..., H] with SEPARATE, else NULL */
  const swiglu_tensor *w;        /* Wd [D, H], or [E, D, H] */
  const int64_t *expert_offsets; /* [E + 1] on the host, or NULL */
  int32_t num_experts;           /* E, or 0 for the dense form */
  const swiglu_tensor *y;        /* out: [..., D] */
  void *workspace;
  size_t workspace_bytes;
} swiglu_down_proj_args;

SWIGLU_API swiglu_status swiglu_down_proj_forward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                                  const swiglu_down_proj_args *args);
SWIGLU_API swiglu_status swiglu_down_proj_forward_workspace_size(swiglu_context *ctx,
                                                                 const swiglu_glu_desc *desc,
                                                                 const swiglu_down_proj_args *args,
                                                                 size_t *bytes);

/*
 * Down projection backward, with the GLU backward fused in: from dy [..., D],
 * dx (and dup with SEPARATE) receives the gradient of the pre-activation in
 * x's layout, and dw (optional) the gradient of Wd, added to with
 * SWIGLU_LINEAR_ACCUMULATE. The h the weight gradient needs is recomputed
 * from x, not read.
 */
typedef struct swiglu_down_proj_backward_args {
  const swiglu_tensor *dy;       /* [..., D] */
  const swiglu_tensor *x, *up;   /* the forward's pre-activation */
  const swiglu_tensor *w;        /* Wd [D, H] or [E, D, H] */
  const int64_t *expert_offsets; /* as in the forward */
  int32_t num_experts;
  const swiglu_tensor *dx;       /* out: like x */
  const swiglu_tensor *dup;      /* out: like up (SEPARATE), else NULL */
  const swiglu_tensor *dw;       /* out, optional: like w */
  uint32_t flags;                /* SWIGLU_LINEAR_ACCUMULATE */
  void *workspace;
  size_t workspace_bytes;
} swiglu_down_proj_backward_args;

SWIGLU_API swiglu_status swiglu_down_proj_backward(swiglu_context *ctx, const swiglu_glu_desc *desc,
                                                   const swiglu_down_proj_backward_args *args);
SWIGLU_API swiglu_status swiglu_down_proj_backward_workspace_size(
    swiglu_context *ctx, const swiglu_glu_desc *desc, const swiglu_down_proj_backward_args *args,
    size_t *bytes);

#ifdef __cplusplus
}
#endif

#endif /* SWIGLU_SWIGLU_H */
