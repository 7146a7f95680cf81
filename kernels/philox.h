// philox.h: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, SC'11 "Random123") and the draw layout.
//
// Bit for bit the same as mcexplore/rng.py (philox4x32, draw_words); the known-answer vectors of
// Random123 and the parity tests (tests/test_kernels_infra.py) hold both to the same bits.
//
// A draw is named by (seed, trial, purpose, page, k, i, sub):
//     key     = (seed & 0xffffffff, seed >> 32)
//     counter = (trial & 0xffffffff, purpose << 24 | page & 0xffffff, k, i << 20 | sub & 0xfffff)
// (24 = MCX_PAGE_BITS, 20 = MCX_SUB_BITS)
// and gives four 32-bit words x0..x3 (rng.py's docstring says which word feeds what).
#pragma once
#include "portability.h"
#include "constants.h"

// What a run draws (mcexplore.constants.DrawCount), counted only in a host build with
// -DMCX_COUNT_DRAWS (scripts/draw-floor.py builds one); every other build compiles MCX_COUNT to
// nothing. One process-wide array: the script runs one thread.
#if defined(MCX_HOST) && defined(MCX_COUNT_DRAWS)
extern "C" {
mcx_i64 mcx_draw_counts[MCX_DRAW_COUNTERS];
}
#define MCX_COUNT(j, n) __atomic_fetch_add(&mcx_draw_counts[(j)], (mcx_i64)(n), __ATOMIC_RELAXED)
#else
#define MCX_COUNT(j, n) ((void)0)
#endif


struct mcx_words {
    mcx_u32 x0, x1, x2, x3;
};

// Philox4x32 with 10 rounds on counter (c0..c3) and key (k0, k1).
MCX_FN mcx_words mcx_philox4x32_10(mcx_u32 c0, mcx_u32 c1, mcx_u32 c2, mcx_u32 c3,
                                   mcx_u32 k0, mcx_u32 k1) {
#if defined(MCX_CUDA)
#pragma unroll
#endif
    for (int r = 0; r < 10; ++r) {
        if (r) {
            k0 += MCX_PHILOX_W0;
            k1 += MCX_PHILOX_W1;
        }
#if defined(MCX_CUDA)
        const mcx_u32 hi0 = mcx_mulhi32(MCX_PHILOX_M0, c0);
        const mcx_u32 lo0 = MCX_PHILOX_M0 * c0;
        const mcx_u32 hi1 = mcx_mulhi32(MCX_PHILOX_M1, c2);
        const mcx_u32 lo1 = MCX_PHILOX_M1 * c2;
#else
        // One 64-bit product gives both halves (g++ otherwise multiplies twice per half).
        const mcx_u64 p0 = (mcx_u64)MCX_PHILOX_M0 * c0;
        const mcx_u64 p1 = (mcx_u64)MCX_PHILOX_M1 * c2;
        const mcx_u32 hi0 = (mcx_u32)(p0 >> 32), lo0 = (mcx_u32)p0;
        const mcx_u32 hi1 = (mcx_u32)(p1 >> 32), lo1 = (mcx_u32)p1;
#endif
        const mcx_u32 n0 = hi1 ^ c1 ^ k0;
        const mcx_u32 n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    mcx_words w;
    w.x0 = c0;
    w.x1 = c1;
    w.x2 = c2;
    w.x3 = c3;
    return w;
}

// The words of the draw named by (seed, trial, purpose, page, k, i, sub).
MCX_FN mcx_words mcx_draw(mcx_u64 seed, mcx_i64 trial, int purpose, mcx_i64 page, mcx_i64 k,
                          mcx_i64 i, mcx_i64 sub) {
    MCX_COUNT(MCX_CNT_SCALAR, 1);
    const mcx_u32 c0 = (mcx_u32)(mcx_u64)trial;
    const mcx_u32 c1 = (mcx_u32)(((mcx_u64)purpose << MCX_PAGE_BITS) | ((mcx_u64)page & ((1ull << MCX_PAGE_BITS) - 1)));
    const mcx_u32 c2 = (mcx_u32)(mcx_u64)k;
    const mcx_u32 c3 = (mcx_u32)(((mcx_u64)i << MCX_SUB_BITS) | ((mcx_u64)sub & ((1ull << MCX_SUB_BITS) - 1)));
    return mcx_philox4x32_10(c0, c1, c2, c3, (mcx_u32)seed, (mcx_u32)(seed >> 32));
}
