// sample.h: integer-only sampling of a compiled distribution, bit for bit as mcexplore/rng.py.
//
// A distribution is a list of n leaves (mcexplore/params.py; params.h gives the packed layout):
//   the leaf: n == 1: leaf 0, read from the descriptor, no word used; n > 1: u1 = x0 << 32 | x1 and
//     leaf c is the first with u1 < cum[c] (cum[n-1] is not read: the last leaf takes the rest),
//     found by a scan from leaf 0 (G == 0) or from guide[u1 >> (64 - G)] (the leaf of the bucket's
//     lowest u1: 2^G >= n entries, so the scan is O(1) on average);
//   within the leaf, u2 = x2 << 32 | x3, fixed point ns * 2^16 (MCX_FP_BITS), floored at the end:
//   SEG (kind 0, a = lo, b = width): v = (lo + mulhi64(u2, width)) >> 16 (width 0: the constant);
//   EXP (kind 1 | fp << 8, a = val, b = offset of the table T): u = u2 (0 -> 1), z = clz64(u),
//          s = u << z, i = (s >> 50) & 0x1FFF,
//          v = (z * val + T[i] - mulhi64(T[i] - T[i+1], s << 14)) >> fp
//          (T tabulates -mean*ln(m) * 2^fp for the mantissa m in [1/2, 1], 8193 points, and
//          val = T[0] = mean*ln2 * 2^fp: each leading zero halves u; fp, the leaf's own fixed
//          point, is as fine as 64 * val < 2^62 allows, at most 48 bits).
// Segment ends and exponential means are clipped at 2^40 ns on the host, so nothing overflows.
// No floating point: the result is the same on every compiler and device.
#pragma once
#include "portability.h"
#include "philox.h"
#include "params.h"

// Sample distribution number `d` of the parameter block P from the words w; *leaf receives the
// leaf the value came from (0 when n == 1), which a tilted run counts (page.h, mcx_sim_t::counted).
// mcx_sample is this with the leaf dropped, so the two can never choose differently.
// Forced inline on the host as well: g++ left it out of line under mcx_sample (which it inlines
// into every draw), where the sampling alone used to be inlined.
#if defined(MCX_CUDA)
#define MCX_SAMPLE_FN MCX_FN
#else
#define MCX_SAMPLE_FN static __forceinline__
#endif
MCX_SAMPLE_FN mcx_i64 mcx_sample_leaf(const mcx_i64* MCX_RESTRICT P, int d, mcx_words w,
                                      mcx_i64* leaf) {
    const mcx_i64* D = mcx_dist(P, d);
    const mcx_i64 n = D[MCX_D_NLEAF];
    mcx_i64 kind = D[MCX_D_KIND], a = D[MCX_D_A], b = D[MCX_D_B];
    mcx_i64 c = 0;
    if (n > 1) {
        const mcx_u64 u1 = ((mcx_u64)w.x0 << 32) | (mcx_u64)w.x1;
        const mcx_i64* L = P + D[MCX_D_LEAF_OFF];
        const int g = (int)D[MCX_D_GUIDE_BITS];
        c = g ? P[D[MCX_D_GUIDE_OFF] + (mcx_i64)(u1 >> (64 - g))] : 0;
        while (c < n - 1 && u1 >= (mcx_u64)L[MCX_LEAF_WORDS * c + MCX_L_CUM]) ++c;
        const mcx_i64* R = L + MCX_LEAF_WORDS * c;
        kind = R[MCX_L_KIND];
        a = R[MCX_L_A];
        b = R[MCX_L_B];
    }
    *leaf = c;
    const mcx_u64 u2 = ((mcx_u64)w.x2 << 32) | (mcx_u64)w.x3;
    if (kind == MCX_LEAF_SEG) return (mcx_i64)(((mcx_u64)a + mcx_mulhi64(u2, (mcx_u64)b)) >> MCX_FP_BITS);
    // MCX_LEAF_EXP
    const mcx_u64 u = u2 + (u2 == 0 ? 1u : 0u);
    const mcx_i64 z = mcx_clz64(u);
    const mcx_u64 s = u << z;
    const mcx_i64* T = P + b + (mcx_i64)((s >> (63 - MCX_EXP_TABLE_BITS)) & ((1ull << MCX_EXP_TABLE_BITS) - 1));
    const mcx_i64 lo = T[0];
    const mcx_i64 hi = T[1];
    const mcx_i64 v = z * a + lo - (mcx_i64)mcx_mulhi64((mcx_u64)(lo - hi), s << (MCX_EXP_TABLE_BITS + 1));
    return v >> (kind >> 8);  // v >= 0
}

MCX_FN mcx_i64 mcx_sample(const mcx_i64* MCX_RESTRICT P, int d, mcx_words w) {
    MCX_COUNT(MCX_CNT_SAMPLES + (d & (MCX_DRAW_COUNT_DISTS - 1)), 1);
    mcx_i64 leaf;
    return mcx_sample_leaf(P, d, w, &leaf);
}
