/*
 * The only file that knows which GPU runtime the kernels are built for. The
 * kernel sources use CUDA's names; built by hipcc (SWIGLU_HIP defined) they
 * map to HIP's. After ggml's ggml-cuda/vendors/hip.h.
 */
#ifndef SWIGLU_GPU_VENDOR_H
#define SWIGLU_GPU_VENDOR_H

#if defined(SWIGLU_HIP)
#include <hip/hip_runtime.h>
#include <hip/hip_fp16.h>
#define cudaError_t hipError_t
#define cudaSuccess hipSuccess
#define cudaStream_t hipStream_t
#define cudaGetDeviceCount hipGetDeviceCount
#define cudaGetDeviceProperties hipGetDeviceProperties
#define cudaDeviceProp hipDeviceProp_t
#define cudaSetDevice hipSetDevice
#define cudaGetDevice hipGetDevice
#define cudaMalloc hipMalloc
#define cudaFree hipFree
#define cudaMemcpyAsync hipMemcpyAsync
#define cudaMemsetAsync hipMemsetAsync
#define cudaMemcpyHostToDevice hipMemcpyHostToDevice
#define cudaMemcpyDeviceToHost hipMemcpyDeviceToHost
#define cudaMemcpyDeviceToDevice hipMemcpyDeviceToDevice
#define cudaStreamSynchronize hipStreamSynchronize
#define cudaGetLastError hipGetLastError
#define cudaGetErrorString hipGetErrorString
#define cudaFuncSetAttribute hipFuncSetAttribute
#define cudaFuncAttributeMaxDynamicSharedMemorySize hipFuncAttributeMaxDynamicSharedMemorySize
#define cudaDriverGetVersion hipDriverGetVersion
#define cudaErrorMemoryAllocation hipErrorMemoryAllocation
#define cudaMemcpyKind hipMemcpyKind
/* LDS is 64 KiB per workgroup on CDNA and RDNA; there is no opt-in beyond the
 * default, so nothing to raise. */
#define SG_SMEM_PER_BLOCK(prop) ((int)(prop).sharedMemPerBlock)
#define SG_SMEM_PER_SM(prop) ((int)(prop).maxSharedMemoryPerMultiProcessor)
#define SG_RAISE_SMEM_LIMIT(kernel, bytes) (cudaSuccess)
#define SG_GPU_RUNTIME "HIP"
#define SG_GPU_DEVICE_TYPE SWIGLU_DEVICE_ROCM
#define SG_GPU_BACKEND_NAME "hip"
/* HIP's shuffles take the same (value, lane mask, width) shape without the
 * member mask. */
#define SG_SHFL_XOR(v, m, w) __shfl_xor((v), (m), (w))
#define SG_PREFETCH_L1(p) ((void)(p))
/* ROCm 5.2 has no bf16 conversion intrinsic: the kernels round in integers */
#define SG_HW_BF16_ROUNDING 0
#else
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#define SG_GPU_RUNTIME "CUDA"
#define SG_SMEM_PER_BLOCK(prop) ((int)(prop).sharedMemPerBlockOptin)
#define SG_SMEM_PER_SM(prop) ((int)(prop).sharedMemPerMultiprocessor)
/* dynamic shared memory beyond 48 KiB must be asked for per kernel */
#define SG_RAISE_SMEM_LIMIT(kernel, bytes) \
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (bytes))
#define SG_GPU_DEVICE_TYPE SWIGLU_DEVICE_CUDA
#define SG_GPU_BACKEND_NAME "cuda"
#define SG_SHFL_XOR(v, m, w) __shfl_xor_sync(0xffffffffu, (v), (m), (w))
/* a hint: the line holding p is fetched into L1, nothing waits for it */
#define SG_PREFETCH_L1(p) asm volatile("prefetch.global.L1 [%0];" ::"l"(p))
/* __float2bfloat16_rn: one cvt.rn.bf16.f32 */
#define SG_HW_BF16_ROUNDING 1
#endif

#endif
