// sample.h: integer-only sampling of a compiled distribution, bit for bit as mcexplore/rng.py.
//
// A distribution is a mixture of at most 4 components (params.h gives the packed descriptor):
//   component c is the first with x0 < thresh[c] (thresh is cumulative weight * 2**32);
//   CONST: v = val;
//   TABLE: a 4097-point int64 quantile table T; idx = x1 >> 20, frac = x1 & 0xFFFFF,
//          v = T[idx] + ((T[idx+1] - T[idx]) * frac >> 20);
//   EXP:   u = x1 << 32 | x2 (0 -> 1), z = clz64(u), s = u << z,
//          idx = (s >> 51) & 0xFFF, frac = (s >> 31) & 0xFFFFF,
//          v = z * val + T[idx] - ((T[idx] - T[idx+1]) * frac >> 20)
//          (val = round(mean * ln 2): each leading zero halves u; T tabulates -mean*ln(m) for the
//          mantissa m in [1/2, 1]).
// No floating point: the result is the same on every compiler and device. Shifts of signed
// values are floor divisions (mcx_sar64), as numpy's >> on int64.
#pragma once
#include "portability.h"
#include "philox.h"
#include "params.h"

#define MCX_KIND_CONST 0
#define MCX_KIND_TABLE 1
#define MCX_KIND_EXP 2
#define MCX_FRAC_BITS 20

// Sample distribution number `d` of the parameter block P from the words w.
MCX_FN mcx_i64 mcx_sample(const mcx_i64* MCX_RESTRICT P, int d, mcx_words w) {
    const mcx_i64* D = mcx_dist(P, d);
    const mcx_i64 ncomp = D[MCX_D_NCOMP];
    int c = 0;
    for (int j = 0; j < ncomp - 1; ++j) c += ((mcx_u64)w.x0 >= (mcx_u64)D[MCX_D_THRESH + j]) ? 1 : 0;
    const mcx_i64 kind = D[MCX_D_KIND + c];
    if (kind == MCX_KIND_CONST) return D[MCX_D_VAL + c];
    const mcx_i64* T = P + D[MCX_D_OFF + c];
    if (kind == MCX_KIND_TABLE) {
        const mcx_i64 idx = (mcx_i64)(w.x1 >> MCX_FRAC_BITS);
        const mcx_i64 frac = (mcx_i64)(w.x1 & 0xFFFFFu);
        const mcx_i64 lo = T[idx];
        const mcx_i64 hi = T[idx + 1];
        return lo + mcx_sar64(mcx_wmul64(hi - lo, frac), MCX_FRAC_BITS);
    }
    // MCX_KIND_EXP
    mcx_u64 u = ((mcx_u64)w.x1 << 32) | (mcx_u64)w.x2;
    if (u == 0) u = 1;
    const mcx_i64 z = mcx_clz64(u);
    const mcx_u64 s = u << z;
    const mcx_i64 idx = (mcx_i64)((s >> 51) & 0xFFFull);
    const mcx_i64 frac = (mcx_i64)((s >> 31) & 0xFFFFFull);
    const mcx_i64 lo = T[idx];
    const mcx_i64 hi = T[idx + 1];
    return mcx_wmul64(z, D[MCX_D_VAL + c]) + lo - mcx_sar64(mcx_wmul64(lo - hi, frac), MCX_FRAC_BITS);
}

// Bernoulli draw: true with probability thresh / 2**32, decided by x0 (rng.bernoulli).
MCX_FN bool mcx_bernoulli(mcx_u64 thresh, mcx_words w) { return (mcx_u64)w.x0 < thresh; }

// Draw and sample in one call.
MCX_FN mcx_i64 mcx_draw_sample(const mcx_i64* MCX_RESTRICT P, int d, mcx_u64 seed, mcx_i64 trial,
                               int purpose, mcx_i64 page, mcx_i64 k, mcx_i64 i, mcx_i64 sub) {
    return mcx_sample(P, d, mcx_draw(seed, trial, purpose, page, k, i, sub));
}
