/* Contexts: one backend instance, one device, one stream, one error message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_internal.h"

static _Thread_local char t_create_error[SG_MSG_CAP];

const char *swiglu_last_create_error(void) { return t_create_error; }

swiglu_status sg_fail(swiglu_context *ctx, swiglu_status status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->last_error, sizeof ctx->last_error, fmt, ap);
  va_end(ap);
  return status;
}

static swiglu_status create_fail(swiglu_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t_create_error, sizeof t_create_error, fmt, ap);
  va_end(ap);
  sg_log("context not created: %s", t_create_error);
  return st;
}

swiglu_status swiglu_context_create(swiglu_context **out, const char *backend, int device_index) {
  t_create_error[0] = '\0';
  if (!out) return create_fail(SWIGLU_ERROR_NULL_POINTER, "out is NULL");
  *out = NULL;
  if (device_index < 0)
    return create_fail(SWIGLU_ERROR_INVALID_ARGUMENT, "device_index %d is negative", device_index);
  const char *name = backend;
  if (name == NULL || strcmp(name, "auto") == 0) {
    const char *env = getenv("SWIGLU_BACKEND");
    name = (env && *env) ? env : NULL;
    if (name) sg_log("SWIGLU_BACKEND=%s replaces auto", name);
  }
  const swiglu_backend_iface *bi = NULL;
  char msg[SG_MSG_CAP] = "";
  swiglu_status st = sg_registry_find(name, &bi, msg, sizeof msg);
  if (st != SWIGLU_SUCCESS) return create_fail(st, "%s", msg);
  swiglu_context *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return create_fail(SWIGLU_ERROR_OUT_OF_MEMORY, "cannot allocate a context");
  st = bi->create(&ctx->state, device_index, msg, sizeof msg);
  if (st != SWIGLU_SUCCESS) {
    free(ctx);
    return create_fail(st, "backend '%s', device %d: %s", bi->name, device_index, msg);
  }
  ctx->backend = bi;
  ctx->device = device_index;
  sg_log("context on backend '%s' device %d (%s)", bi->name, device_index,
         bi->device_name(ctx->state));
  *out = ctx;
  return SWIGLU_SUCCESS;
}

void swiglu_context_destroy(swiglu_context *ctx) {
  if (!ctx) return;
  ctx->backend->destroy(ctx->state);
  free(ctx);
}

const char *swiglu_context_backend(const swiglu_context *ctx) {
  return ctx ? ctx->backend->name : "";
}
int swiglu_context_device(const swiglu_context *ctx) { return ctx ? ctx->device : -1; }
int32_t swiglu_context_device_type(const swiglu_context *ctx) {
  return ctx ? ctx->backend->device_type : 0;
}
const char *swiglu_context_device_name(const swiglu_context *ctx) {
  return ctx ? ctx->backend->device_name(ctx->state) : "";
}
void *swiglu_context_stream(const swiglu_context *ctx) { return ctx ? ctx->stream : NULL; }
const char *swiglu_context_last_error(const swiglu_context *ctx) {
  return ctx ? ctx->last_error : "context is NULL";
}

swiglu_status swiglu_context_set_stream(swiglu_context *ctx, void *stream) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  char msg[SG_MSG_CAP] = "";
  swiglu_status st = ctx->backend->set_stream(ctx->state, stream, msg, sizeof msg);
  if (st != SWIGLU_SUCCESS) return sg_fail(ctx, st, "set_stream: %s", msg);
  ctx->stream = stream;
  return SWIGLU_SUCCESS;
}

swiglu_status swiglu_context_set_num_threads(swiglu_context *ctx, int n) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  if (n < 0 || n > SWIGLU_MAX_THREADS)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT,
                   "set_num_threads: %d is not 0 (OpenMP's count) or in [1, %d]", n, SWIGLU_MAX_THREADS);
  if (ctx->backend->set_num_threads) {
    char msg[SG_MSG_CAP] = "";
    swiglu_status st = ctx->backend->set_num_threads(ctx->state, n, msg, sizeof msg);
    if (st != SWIGLU_SUCCESS) return sg_fail(ctx, st, "set_num_threads: %s", msg);
  }
  ctx->num_threads = n;
  return SWIGLU_SUCCESS;
}

int swiglu_context_num_threads(const swiglu_context *ctx) { return ctx ? ctx->num_threads : -1; }

swiglu_status swiglu_context_malloc(swiglu_context *ctx, size_t bytes, void **out) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  if (!out) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "out is NULL");
  *out = NULL;
  /* no object may span more than PTRDIFF_MAX bytes (pointer differences
   * inside it would overflow); refused before any allocator sees the size */
  if (bytes > (size_t)PTRDIFF_MAX)
    return sg_fail(ctx, SWIGLU_ERROR_OUT_OF_MEMORY, "malloc of %zu bytes: more than PTRDIFF_MAX", bytes);
  char msg[SG_MSG_CAP] = "";
  swiglu_status st = ctx->backend->mem_alloc(ctx->state, bytes ? bytes : 1, out, msg, sizeof msg);
  return st ? sg_fail(ctx, st, "malloc of %zu bytes: %s", bytes, msg) : SWIGLU_SUCCESS;
}

swiglu_status swiglu_context_free(swiglu_context *ctx, void *ptr) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  if (!ptr) return SWIGLU_SUCCESS;
  char msg[SG_MSG_CAP] = "";
  swiglu_status st = ctx->backend->mem_free(ctx->state, ptr, msg, sizeof msg);
  return st ? sg_fail(ctx, st, "free: %s", msg) : SWIGLU_SUCCESS;
}

swiglu_status swiglu_context_copy(swiglu_context *ctx, void *dst, const void *src, size_t bytes,
                                  swiglu_copy_kind kind) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  if ((!dst || !src) && bytes) return sg_fail(ctx, SWIGLU_ERROR_NULL_POINTER, "dst or src is NULL");
  if ((unsigned)kind > SWIGLU_COPY_DEVICE_TO_DEVICE)
    return sg_fail(ctx, SWIGLU_ERROR_INVALID_ARGUMENT, "copy kind %d is not valid", (int)kind);
  if (!bytes) return SWIGLU_SUCCESS;
  char msg[SG_MSG_CAP] = "";
  swiglu_status st = ctx->backend->mem_copy(ctx->state, dst, src, bytes, (int)kind, msg, sizeof msg);
  return st ? sg_fail(ctx, st, "copy of %zu bytes: %s", bytes, msg) : SWIGLU_SUCCESS;
}

swiglu_status swiglu_context_synchronize(swiglu_context *ctx) {
  if (!ctx) return SWIGLU_ERROR_NULL_POINTER;
  ctx->last_error[0] = '\0';
  char msg[SG_MSG_CAP] = "";
  swiglu_status st = ctx->backend->synchronize(ctx->state, msg, sizeof msg);
  return st ? sg_fail(ctx, st, "synchronize: %s", msg) : SWIGLU_SUCCESS;
}
