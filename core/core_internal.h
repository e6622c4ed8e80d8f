/* Private declarations shared by the files of the dispatch core. */
#ifndef SWIGLU_CORE_INTERNAL_H
#define SWIGLU_CORE_INTERNAL_H

#include <stdarg.h>

#include "swiglu_backend.h"

struct swiglu_context {
  const swiglu_backend_iface *backend;
  void *state;
  int device;
  void *stream;
  int num_threads; /* swiglu_context_set_num_threads; 0 = OpenMP's count */
  char last_error[SG_MSG_CAP];
};

/* Formats the context's last-error message and returns `status`, so that a
 * failing check reads `return sg_fail(ctx, STATUS, "fmt", ...)`. */
swiglu_status sg_fail(swiglu_context *ctx, swiglu_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends a line to the log callback, or to stderr when SWIGLU_LOG=1. */
void sg_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Resolves a backend name (already past "auto" / SWIGLU_BACKEND handling when
 * not NULL) to its interface. On failure writes the reason to msg. */
swiglu_status sg_registry_find(const char *name, const swiglu_backend_iface **out, char *msg,
                               size_t msg_cap);

/* The CPU backend, always built in. */
const swiglu_backend_iface *swiglu_cpu_backend(void);

#endif
