/* libswiglu-hip.so: the CUDA backend's source, compiled by hipcc. vendor.h
 * maps the runtime names; nothing else differs. */
#define SWIGLU_HIP 1
#include "../cuda/gpu_backend.cu"
