// portability.h: one source, two compilers.
//
// The mcexplore kernels are written once and compiled two ways:
//   * as CUDA C++ by NVRTC (through cupy.RawModule) or nvcc: __CUDACC__ is defined, functions are
//     __device__, the entry points are __global__ kernels;
//   * as plain C++17 by g++ (mcexplore.engines.native): the CUDA qualifiers are defined away and
//     the intrinsics below fall back to GCC builtins.
// No header of either standard library is needed by the simulation code (NVRTC has none), so the
// integer types are our own: mcx_u32, mcx_u64, mcx_i64.
//
// Everything the simulation computes is integer arithmetic (times are int64 nanoseconds,
// probabilities integer thresholds, distributions leaf tables built on the host). There is no
// floating point anywhere on the simulation path, so FMA contraction (NVRTC contracts by default),
// flush-to-zero (CuPy passes -ftz) or libm differences cannot change a result. We still compile
// with --fmad=false / -ffp-contract=off, as a belt to those braces.
#pragma once

typedef unsigned int mcx_u32;
typedef unsigned long long mcx_u64;
typedef long long mcx_i64;

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define MCX_CUDA 1
#define MCX_FN __device__ __forceinline__
#define MCX_NOINLINE __device__ __noinline__
#define MCX_RESTRICT __restrict__
#else
#define MCX_HOST 1
#ifndef __global__
#define __global__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __host__
#define __host__
#endif
#ifndef __forceinline__
#define __forceinline__ inline __attribute__((always_inline))
#endif
#define MCX_FN static inline
#define MCX_NOINLINE static
#define MCX_RESTRICT __restrict__
#endif

#define MCX_I64_MAX ((mcx_i64)0x7fffffffffffffffLL)
#define MCX_I64_MIN ((mcx_i64)(-MCX_I64_MAX - 1))

// Count of leading zero bits of a 64-bit word; 64 for 0 (both intrinsics are undefined or differ
// at 0, so 0 is handled here).
MCX_FN mcx_i64 mcx_clz64(mcx_u64 u) {
    if (u == 0) return 64;
#if defined(MCX_CUDA)
    return (mcx_i64)__clzll((long long)u);
#else
    return (mcx_i64)__builtin_clzll(u);
#endif
}

// High 32 bits of the 64-bit product of two 32-bit words.
MCX_FN mcx_u32 mcx_mulhi32(mcx_u32 a, mcx_u32 b) {
#if defined(MCX_CUDA)
    return __umulhi(a, b);
#else
    return (mcx_u32)(((mcx_u64)a * (mcx_u64)b) >> 32);
#endif
}

// High 64 bits of the 128-bit product of two 64-bit words (rng.mulhi64).
MCX_FN mcx_u64 mcx_mulhi64(mcx_u64 a, mcx_u64 b) {
#if defined(MCX_CUDA)
    return __umul64hi(a, b);
#else
    __extension__ typedef unsigned __int128 mcx_u128;
    return (mcx_u64)(((mcx_u128)a * (mcx_u128)b) >> 64);
#endif
}

// Arithmetic right shift of a signed 64-bit value (floor division by 2**s), spelled out so that
// it does not rest on implementation-defined behaviour (numpy's >> on int64 is arithmetic).
MCX_FN mcx_i64 mcx_sar64(mcx_i64 v, int s) {
    return v >= 0 ? (mcx_i64)((mcx_u64)v >> s) : (mcx_i64)~((~(mcx_u64)v) >> s);
}

MCX_FN mcx_i64 mcx_min64(mcx_i64 a, mcx_i64 b) { return a < b ? a : b; }
MCX_FN mcx_i64 mcx_max64(mcx_i64 a, mcx_i64 b) { return a > b ? a : b; }
