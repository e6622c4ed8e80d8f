/* Status strings and version queries: pure functions over constants. */
#include "swiglu/swiglu.h"

#define SG_STR2(x) #x
#define SG_STR(x) SG_STR2(x)

int swiglu_version(void) { return SWIGLU_VERSION; }

const char *swiglu_version_string(void) {
  return SG_STR(SWIGLU_VERSION_MAJOR) "." SG_STR(SWIGLU_VERSION_MINOR) "." SG_STR(
      SWIGLU_VERSION_PATCH);
}

const char *swiglu_status_string(swiglu_status status) {
  switch (status) {
    case SWIGLU_SUCCESS: return "success";
    case SWIGLU_ERROR_NULL_POINTER: return "null pointer";
    case SWIGLU_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case SWIGLU_ERROR_BAD_SHAPE: return "bad shape";
    case SWIGLU_ERROR_BAD_DTYPE: return "bad dtype";
    case SWIGLU_ERROR_BAD_STRIDE: return "bad stride";
    case SWIGLU_ERROR_OVERLAP: return "overlapping buffers";
    case SWIGLU_ERROR_SIZE_OVERFLOW: return "size overflow";
    case SWIGLU_ERROR_UNSUPPORTED: return "unsupported";
    case SWIGLU_ERROR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case SWIGLU_ERROR_DEVICE_MISMATCH: return "device mismatch";
    case SWIGLU_ERROR_OUT_OF_MEMORY: return "out of memory";
    case SWIGLU_ERROR_BACKEND_FAILURE: return "backend failure";
    case SWIGLU_ERROR_INTERNAL: return "internal error";
  }
  return "unknown status";
}
