/*
 * A loadable backend module for the registry tests, compiled several times
 * with FAKE_MODE selecting how it misbehaves:
 *   1 ok       loads, scores 50, creates contexts, reports ops unsupported
 *   2 abi      init returns an interface with a wrong ABI version
 *   3 nodev    scores 0: "no device"
 *   4 nosym    exports no score function
 */
#include <stdio.h>

#include "../core/swiglu_backend.h"

#define EXPORT __attribute__((visibility("default")))

static swiglu_status fake_create(void **state, int device, char *msg, size_t cap) {
  if (device != 0) {
    snprintf(msg, cap, "fake module has one device");
    return SWIGLU_ERROR_INVALID_ARGUMENT;
  }
  *state = NULL;
  return SWIGLU_SUCCESS;
}
static void fake_destroy(void *state) { (void)state; }
static const char *fake_device_name(void *state) {
  (void)state;
  return "fake device";
}
static swiglu_status fake_set_stream(void *state, void *stream, char *msg, size_t cap) {
  (void)state, (void)stream, (void)msg, (void)cap;
  return SWIGLU_SUCCESS;
}
static swiglu_status fake_op(void *state, const sg_glu_problem *p, char *msg, size_t cap) {
  (void)state, (void)p;
  snprintf(msg, cap, "the fake module computes nothing");
  return SWIGLU_ERROR_UNSUPPORTED;
}

static swiglu_status fake_alloc(void *state, size_t bytes, void **out, char *msg, size_t cap) {
  (void)state, (void)bytes, (void)out;
  snprintf(msg, cap, "the fake module has no memory");
  return SWIGLU_ERROR_UNSUPPORTED;
}
static swiglu_status fake_free(void *state, void *ptr, char *msg, size_t cap) {
  (void)state, (void)ptr, (void)msg, (void)cap;
  return SWIGLU_SUCCESS;
}
static swiglu_status fake_copy(void *state, void *dst, const void *src, size_t bytes, int kind,
                               char *msg, size_t cap) {
  (void)state, (void)dst, (void)src, (void)bytes, (void)kind;
  snprintf(msg, cap, "the fake module has no memory");
  return SWIGLU_ERROR_UNSUPPORTED;
}
static swiglu_status fake_sync(void *state, char *msg, size_t cap) {
  (void)state, (void)msg, (void)cap;
  return SWIGLU_SUCCESS;
}

static swiglu_backend_iface k_iface = {
    .abi_version = FAKE_MODE == 2 ? 999u : SWIGLU_BACKEND_ABI_VERSION,
    .struct_size = sizeof(swiglu_backend_iface),
    .name = FAKE_NAME,
    .device_type = SWIGLU_DEVICE_CPU,
    .create = fake_create,
    .destroy = fake_destroy,
    .device_name = fake_device_name,
    .set_stream = fake_set_stream,
    .glu_forward = fake_op,
    .glu_backward = fake_op,
    .glu_quant = NULL,
    .mem_alloc = fake_alloc,
    .mem_free = fake_free,
    .mem_copy = fake_copy,
    .synchronize = fake_sync,
};

EXPORT const swiglu_backend_iface *swiglu_backend_init(void) { return &k_iface; }

#if FAKE_MODE != 4
EXPORT int swiglu_backend_score(char *reason, size_t cap) {
  if (FAKE_MODE == 3) {
    snprintf(reason, cap, "no fake device present");
    return 0;
  }
  return 50;
}
#endif
