/*
 * The OpenMP CPU backend: always built in, the fallback on machines without a
 * GPU, and the numerical oracle the other backends are tested against.
 *
 * The ISA (avx512bf16, avx512, avx2 or generic) is chosen once per process, the first
 * time a CPU context is created: the best the CPU supports, or the one named
 * by SWIGLU_CPU_ISA (refused with a message when the CPU lacks it). All three
 * produce bit-identical results, so the choice only changes speed.
 */
#include <omp.h>
#include <pthread.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
#endif

#include "../../core/core_internal.h"
#include "cpu_kernels.h"

typedef struct sg_cpu_isa {
  const char *name;
  sg_cpu_kernel_fn forward, backward;
  sg_cpu_quant_fn quant;
  sg_cpu_linear_ws_fn linear_ws;
  sg_cpu_linear_fn linear;
  /* its bf16 x bf16 GEMMs take AMX tiles (sg_cpu_amx); a flag, not a name
   * compare, which GCC warned of in builds without this entry */
  int amx;
} sg_cpu_isa;

static const sg_cpu_isa k_isas[] = {
#if defined(__x86_64__) && !defined(SWIGLU_NO_AVX512)
    /* the AVX512_BF16 build whose bf16 x bf16 GEMMs run on AMX tiles
     * (sg_cpu_amx): the same functions, the GEMM reads the flag */
    {"avx512amx", sg_cpu_glu_forward_avx512bf16, sg_cpu_glu_backward_avx512bf16, sg_cpu_glu_quant_avx512bf16,
     sg_cpu_linear_ws_avx512bf16, sg_cpu_linear_avx512bf16, 1},
    {"avx512bf16", sg_cpu_glu_forward_avx512bf16, sg_cpu_glu_backward_avx512bf16, sg_cpu_glu_quant_avx512bf16,
     sg_cpu_linear_ws_avx512bf16, sg_cpu_linear_avx512bf16, 0},
    {"avx512", sg_cpu_glu_forward_avx512, sg_cpu_glu_backward_avx512, sg_cpu_glu_quant_avx512,
     sg_cpu_linear_ws_avx512, sg_cpu_linear_avx512, 0},
#endif
#if defined(__x86_64__)
    {"avx2", sg_cpu_glu_forward_avx2, sg_cpu_glu_backward_avx2, sg_cpu_glu_quant_avx2,
     sg_cpu_linear_ws_avx2, sg_cpu_linear_avx2, 0},
#endif
    {"generic", sg_cpu_glu_forward_generic, sg_cpu_glu_backward_generic, sg_cpu_glu_quant_generic,
     sg_cpu_linear_ws_generic, sg_cpu_linear_generic, 0},
};

#if defined(__x86_64__)
/* AVX512_BF16 (CPUID leaf 7, subleaf 1, EAX bit 5) and F16C (leaf 1, ECX
 * bit 29), read directly: clang before 16 knows neither name in
 * __builtin_cpu_supports. That the OS saves the vector state they need is
 * what the avx512f and avx2 tests beside them check. */
static int cpu_has_avx512bf16(void) {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, NULL) < 7) return 0;
  __cpuid_count(7, 1, a, b, c, d);
  return (a >> 5) & 1u;
}
static int cpu_has_f16c(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1u);
}
/* AMX-TILE and AMX-BF16 (leaf 7, EDX bits 24 and 22), and Linux's leave to
 * use the tile data state, which a process must ask for once
 * (arch_prctl ARCH_REQ_XCOMP_PERM for XTILEDATA, feature 18): without it
 * the first tile instruction faults. */
static int cpu_has_amx(void) {
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, NULL) < 7) return 0;
  __cpuid_count(7, 0, a, b, c, d);
  if (!((d >> 24) & 1u) || !((d >> 22) & 1u)) return 0;
#if defined(__linux__) && defined(SYS_arch_prctl)
  return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) == 0;
#else
  return 0;
#endif
}
#endif

static int isa_supported(const char *name) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (strcmp(name, "avx512amx") == 0 && !(cpu_has_avx512bf16() && cpu_has_amx())) return 0;
  if (strcmp(name, "avx512bf16") == 0 && !cpu_has_avx512bf16()) return 0;
  if (strcmp(name, "avx512") == 0 || strcmp(name, "avx512bf16") == 0 || strcmp(name, "avx512amx") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (strcmp(name, "avx2") == 0)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
#endif
  return strcmp(name, "generic") == 0;
}

static pthread_once_t g_isa_once = PTHREAD_ONCE_INIT;
static const sg_cpu_isa *g_isa;
static char g_isa_error[SG_MSG_CAP];
/* why g_isa is NULL: an ISA this CPU or build lacks is the backend being
 * unavailable (a test of that ISA skips); a name no build knows is the
 * caller's mistake, which must not read as a skip */
static swiglu_status g_isa_status = SWIGLU_ERROR_BACKEND_UNAVAILABLE;
static char g_device_name[128];

int64_t sg_cpu_l2_bytes = (int64_t)1 << 20;
int sg_cpu_amx;

static void choose_isa(void) {
  /* glibc reads it from CPUID; the bounds keep a wrong report from sizing
   * the GEMM's per-thread panels past reason. SWIGLU_CPU_L2_KIB overrides
   * it (tests/CMakeLists.txt: small values reach the GEMM's panel groups
   * and row ranges with small problems). */
  long l2 = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
  l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
  const char *l2env = getenv("SWIGLU_CPU_L2_KIB");
  if (l2env && *l2env) l2 = strtol(l2env, NULL, 10) << 10;
  if (l2 >= (16L << 10) && l2 <= (64L << 20)) sg_cpu_l2_bytes = l2;
  const char *want = getenv("SWIGLU_CPU_ISA");
  for (size_t i = 0; i < sizeof k_isas / sizeof *k_isas; ++i) {
    if (want && *want && strcmp(want, k_isas[i].name) != 0) continue;
    if (isa_supported(k_isas[i].name)) {
      g_isa = &k_isas[i];
      sg_cpu_amx = g_isa->amx;
      break;
    }
    if (want && *want) {
      snprintf(g_isa_error, sizeof g_isa_error,
               "SWIGLU_CPU_ISA=%s: this CPU does not support it", want);
      return;
    }
  }
  if (!g_isa) {
    /* every ISA any build knows, the table above holding those this one has */
    static const char *const all[] = {"avx512amx", "avx512bf16", "avx512", "avx2", "generic"};
    char names[64] = "";
    int known = 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; ++i) {
      known |= want && strcmp(want, all[i]) == 0;
      snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", all[i]);
    }
    if (known)
      snprintf(g_isa_error, sizeof g_isa_error,
               "SWIGLU_CPU_ISA=%s: not built into this library (SWIGLU_CPU_AVX512=OFF, or not x86-64)", want);
    else {
      snprintf(g_isa_error, sizeof g_isa_error, "SWIGLU_CPU_ISA=%s is not one of %s", want ? want : "", names);
      g_isa_status = SWIGLU_ERROR_INVALID_ARGUMENT;
    }
    return;
  }
  snprintf(g_device_name, sizeof g_device_name, "CPU (%s, %d OpenMP threads)", g_isa->name,
           omp_get_max_threads());
  sg_log("cpu: kernels for %s%s, L2 %lld KiB a core", g_isa->name,
         want && *want ? " (forced by SWIGLU_CPU_ISA)" : "", (long long)(sg_cpu_l2_bytes >> 10));
}

/* A context's state: the process's kernels and the context's thread count. */
typedef struct sg_cpu_ctx {
  const sg_cpu_isa *isa;
  int threads; /* swiglu_context_set_num_threads; 0 = OpenMP's count */
  char name[128];
} sg_cpu_ctx;

static void cpu_name(sg_cpu_ctx *c) {
  if (c->threads > 0)
    snprintf(c->name, sizeof c->name, "CPU (%s, %d thread%s)", c->isa->name, c->threads, c->threads > 1 ? "s" : "");
  else snprintf(c->name, sizeof c->name, "%s", g_device_name);
}

static swiglu_status cpu_create(void **state, int device, char *msg, size_t cap) {
  if (device != 0) {
    snprintf(msg, cap, "the CPU backend has one device, index 0");
    return SWIGLU_ERROR_INVALID_ARGUMENT;
  }
  pthread_once(&g_isa_once, choose_isa);
  if (!g_isa) {
    snprintf(msg, cap, "%s", g_isa_error);
    return g_isa_status;
  }
  sg_cpu_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(msg, cap, "out of host memory");
    return SWIGLU_ERROR_OUT_OF_MEMORY;
  }
  c->isa = g_isa;
  cpu_name(c);
  *state = c;
  return SWIGLU_SUCCESS;
}

static void cpu_destroy(void *state) { free(state); }

static swiglu_status cpu_set_num_threads(void *state, int n, char *msg, size_t cap) {
  (void)msg, (void)cap;
  ((sg_cpu_ctx *)state)->threads = n;
  cpu_name(state);
  return SWIGLU_SUCCESS;
}

/* The threads a call of this context runs on: read at each call, so that
 * with the default the caller's omp_set_num_threads still applies. */
static int cpu_threads(const void *state) {
  const int n = ((const sg_cpu_ctx *)state)->threads;
  return n > 0 ? n : omp_get_max_threads();
}

static const char *cpu_device_name(void *state) { return ((const sg_cpu_ctx *)state)->name; }

static swiglu_status cpu_set_stream(void *state, void *stream, char *msg, size_t cap) {
  (void)state, (void)stream, (void)msg, (void)cap;
  return SWIGLU_SUCCESS; /* the CPU runs synchronously; the stream is only recorded */
}

/* Below this many elements a parallel region costs more than it saves. */
#define SG_PARALLEL_MIN_ELEMENTS (1 << 15)

/* Outputs larger than this are written with streaming stores: they cannot
 * stay in the caches anyway, and skipping the read-for-ownership saves a
 * third of the traffic of a bf16 forward. */
#define SG_STREAM_MIN_BYTES ((int64_t)32 << 20)

static void run_items(sg_cpu_kernel_fn fn, const sg_glu_problem *p, int64_t out_bytes_per_elem, int nth) {
  const int64_t chunks = (p->width + SG_CPU_CHUNK - 1) / SG_CPU_CHUNK;
  const int64_t items = p->rows * chunks;
  const int stream = p->rows * p->width * out_bytes_per_elem >= SG_STREAM_MIN_BYTES;
  if (p->rows * p->width < SG_PARALLEL_MIN_ELEMENTS || nth == 1) {
    fn(p, 0, items, stream);
    return;
  }
#pragma omp parallel num_threads(nth)
  {
    const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t begin = items * t / nt, end = items * (t + 1) / nt;
    if (begin < end) fn(p, begin, end, stream);
  }
}

static swiglu_status cpu_glu_forward(void *state, const sg_glu_problem *p, char *msg, size_t cap) {
  (void)msg, (void)cap;
  run_items(((const sg_cpu_ctx *)state)->isa->forward, p, (int64_t)sg_dtype_size(p->h.dtype),
            cpu_threads(state));
  return SWIGLU_SUCCESS;
}

static swiglu_status cpu_glu_backward(void *state, const sg_glu_problem *p, char *msg,
                                      size_t cap) {
  (void)msg, (void)cap;
  int64_t out = (int64_t)(sg_dtype_size(p->dgate.dtype) + sg_dtype_size(p->dup.dtype));
  if (p->h.base) out += (int64_t)sg_dtype_size(p->h.dtype);
  run_items(((const sg_cpu_ctx *)state)->isa->backward, p, out, cpu_threads(state));
  return SWIGLU_SUCCESS;
}

/* Per-thread scratch for the quantizing op's fp32 row, grown as needed and
 * kept for the thread's life: no allocation per call once warm. */
static _Thread_local float *t_scratch;
static _Thread_local size_t t_scratch_cap;

static float *thread_scratch(size_t floats) {
  if (floats > t_scratch_cap) {
    free(t_scratch);
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    t_scratch = aligned_alloc(64, bytes);
    t_scratch_cap = t_scratch ? floats : 0;
  }
  return t_scratch;
}

static swiglu_status cpu_glu_quant(void *state, const sg_quant_problem *p, char *msg, size_t cap) {
  const sg_cpu_isa *isa = ((const sg_cpu_ctx *)state)->isa;
  const int nth = cpu_threads(state);
  if (p->expert_counts)
    for (int64_t e = 0; e < p->experts; ++e)
      if (p->expert_counts[e] < 0 || p->expert_counts[e] > p->rows_per_expert) {
        snprintf(msg, cap, "expert_counts[%lld] = %d is outside [0, M = %lld]", (long long)e,
                 p->expert_counts[e], (long long)p->rows_per_expert);
        return SWIGLU_ERROR_INVALID_ARGUMENT;
      }
  const size_t need = SG_QUANT_SCRATCH(p->glu.width);
  int failed = 0;
  if (p->glu.rows * p->glu.width < SG_PARALLEL_MIN_ELEMENTS || nth == 1) {
    float *h = thread_scratch(need);
    if (h) isa->quant(p, 0, p->glu.rows, h);
    failed = !h;
  } else {
#pragma omp parallel num_threads(nth) reduction(| : failed)
    {
      const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t begin = p->glu.rows * t / nt, end = p->glu.rows * (t + 1) / nt;
      float *h = thread_scratch(need);
      if (!h) failed = 1;
      else if (begin < end) isa->quant(p, begin, end, h);
    }
  }
  if (failed) {
    snprintf(msg, cap, "cannot allocate %zu bytes of scratch", need * sizeof(float));
    return SWIGLU_ERROR_OUT_OF_MEMORY;
  }
  /* the TMA layout's padding rows are always written, as zero */
  if (p->scales && p->layout == SWIGLU_SCALE_COL_MAJOR_TMA) {
    const size_t es = (p->encoding == SWIGLU_SCALE_E8M0 || p->encoding == SWIGLU_SCALE_E4M3) ? 1 : 4;
    for (int64_t e = 0; e < p->experts; ++e)
      for (int64_t c = 0; c < p->scale_cols; ++c)
        for (int64_t m = p->rows_per_expert; m < p->rows_padded; ++m)
          memset(p->scales + sg_scale_index(p, e, m, c) * (int64_t)es, 0, es);
  }
  return SWIGLU_SUCCESS;
}

/* The workspace holds per-thread packing buffers, so its size is quoted for
 * the context's thread count at query time; a call given less (the count
 * grew since) runs on as many threads as the workspace holds. */
static swiglu_status cpu_linear_workspace(void *state, const sg_linear_problem *p, size_t *bytes,
                                          char *msg, size_t cap) {
  (void)msg, (void)cap;
  *bytes = ((const sg_cpu_ctx *)state)->isa->linear_ws(p, cpu_threads(state));
  return SWIGLU_SUCCESS;
}

static swiglu_status cpu_linear(void *state, const sg_linear_problem *p, char *msg, size_t cap) {
  const sg_cpu_isa *isa = ((const sg_cpu_ctx *)state)->isa;
  int nth = cpu_threads(state);
  while (nth > 1 && isa->linear_ws(p, nth) > p->workspace_bytes) --nth;
  if (isa->linear_ws(p, nth) > p->workspace_bytes) {
    snprintf(msg, cap, "workspace of %zu bytes is too small", p->workspace_bytes);
    return SWIGLU_ERROR_INVALID_ARGUMENT;
  }
  isa->linear(p, nth);
  return SWIGLU_SUCCESS;
}

static swiglu_status cpu_mem_alloc(void *state, size_t bytes, void **out, char *msg, size_t cap) {
  (void)state;
  /* the core refuses sizes past PTRDIFF_MAX, so the round-up to
   * aligned_alloc's multiple of 64 cannot wrap */
  *out = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (*out) return SWIGLU_SUCCESS;
  snprintf(msg, cap, "out of host memory");
  return SWIGLU_ERROR_OUT_OF_MEMORY;
}
static swiglu_status cpu_mem_free(void *state, void *ptr, char *msg, size_t cap) {
  (void)state, (void)msg, (void)cap;
  free(ptr);
  return SWIGLU_SUCCESS;
}
static swiglu_status cpu_mem_copy(void *state, void *dst, const void *src, size_t bytes, int kind,
                                  char *msg, size_t cap) {
  (void)state, (void)kind, (void)msg, (void)cap;
  memmove(dst, src, bytes);
  return SWIGLU_SUCCESS;
}
static swiglu_status cpu_synchronize(void *state, char *msg, size_t cap) {
  (void)state, (void)msg, (void)cap;
  return SWIGLU_SUCCESS;
}

static const swiglu_backend_iface k_cpu_iface = {
    .abi_version = SWIGLU_BACKEND_ABI_VERSION,
    .struct_size = sizeof(swiglu_backend_iface),
    .name = "cpu",
    .device_type = SWIGLU_DEVICE_CPU,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .device_name = cpu_device_name,
    .set_stream = cpu_set_stream,
    .glu_forward = cpu_glu_forward,
    .glu_backward = cpu_glu_backward,
    .glu_quant = cpu_glu_quant,
    .mem_alloc = cpu_mem_alloc,
    .mem_free = cpu_mem_free,
    .mem_copy = cpu_mem_copy,
    .synchronize = cpu_synchronize,
    .linear_workspace = cpu_linear_workspace,
    .linear = cpu_linear,
    .set_num_threads = cpu_set_num_threads,
};

const swiglu_backend_iface *swiglu_cpu_backend(void) { return &k_cpu_iface; }
