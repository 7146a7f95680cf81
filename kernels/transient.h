// transient.h: is a transient reference held at a refcount check? (mcexplore/transient.py)
//
// Transient references are one stationary Poisson process (MODEL.md 1.1): window w = [w W, (w+1) W)
// holds N_w arrivals (N_w = the number of 64-bit thresholds <= the uniform of draw (TRANSIENT,
// page, w, sub 0)); arrival j comes at w W + mulhi64(u, W) (sub 1 + 2j) and is held for a
// transient_hold draw (sub 2 + 2j). A check at F fails iff some arrival has s < F <= s + h. No hold
// is longer than H <= W, so only windows floor((F - H) / W) .. floor((F - 1) / W) can matter. The
// window index is split over the counter's k (low 32 bits) and i (12 more) words. The numpy engine
// (numpy_page.transient_held) draws the same words; the loops here stop as soon as the answer is
// known (unless a tilted run counts the windows), which changes nothing because every draw is a
// pure function of its key.
#pragma once
#include "portability.h"
#include "philox.h"
#include "params.h"
#include "sample.h"

MCX_FN mcx_u64 mcx_words_u64(mcx_words w) { return ((mcx_u64)w.x0 << 32) | (mcx_u64)w.x1; }

// floor(a / b) for b > 0.
MCX_FN mcx_i64 mcx_floordiv(mcx_i64 a, mcx_i64 b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// TALLY: compiled to count a tilted run's transient windows (params.TiltLayout) in tally[0 .. 1]
// (when tally is not null): every window of this check after *last, the last one counted in this
// trial, adds 1 to tally[0] and N_w to tally[1]. Its count is then needed even once the answer is
// known, so the loop goes on through the windows (drawing no more arrivals); untallied, it stops
// at once.
template <bool TALLY>
MCX_FN bool mcx_transient_held(const mcx_i64* MCX_RESTRICT P, mcx_u64 seed, mcx_i64 trial,
                               mcx_i64 page, mcx_i64 F, mcx_i64* tally, mcx_i64* last) {
    if (P[MCX_H_TRANSIENT_MODEL] == MCX_TRANSIENT_NONE) return false;
    const mcx_i64 W = P[MCX_H_TRANSIENT_W], H = P[MCX_H_TRANSIENT_HMAX];
    const mcx_i64 nthr = P[MCX_H_TRANSIENT_NTHR];
    const mcx_i64* thr = P + P[MCX_H_TRANSIENT_THR_OFF];
    const mcx_i64 wb = mcx_floordiv(F - 1, W);
    bool held = false;
    for (mcx_i64 w = mcx_floordiv(F - H, W); w <= wb; ++w) {
        const mcx_i64 wk = w & 0xFFFFFFFFLL, wi = mcx_sar64(w, 32) & ((1LL << MCX_WINDOW_I_BITS) - 1);
        const mcx_u64 u = mcx_words_u64(mcx_draw(seed, trial, MCX_P_TRANSIENT, page, wk, wi, 0));
        mcx_i64 n = 0;
        while (n < nthr && u >= (mcx_u64)thr[n]) ++n;
        if constexpr (TALLY) {
            if (tally && w > *last) {
                tally[0] += 1;
                tally[1] += n;
                *last = w;
            }
            if (held) continue;
        }
        for (mcx_i64 j = 0; j < n; ++j) {
            const mcx_u64 o = mcx_words_u64(mcx_draw(seed, trial, MCX_P_TRANSIENT, page, wk, wi, 1 + 2 * j));
            const mcx_i64 s = w * W + (mcx_i64)mcx_mulhi64(o, (mcx_u64)W);
            if (s >= F || s < F - H) continue;
            const mcx_i64 h = mcx_sample(P, MCX_DIST_TRANSIENT_HOLD,
                                         mcx_draw(seed, trial, MCX_P_TRANSIENT, page, wk, wi, 2 + 2 * j));
            if (s + h >= F) {
                if (!TALLY || !tally) return true;
                held = true;
                break;
            }
        }
    }
    return held;
}
