// block.h: block level (numpy_block.simulate_block): the offline loop over a block's pages, each
// hot page a page simulation (mcx_sim, page.h, with the strategy chosen at run time) saved in
// scratch between its attempts, each cold page (no active task) a closed loop of draws.
#pragma once
#include "page.h"
#include "strategies.h"

// Scratch of a block trial (pack.py computes its size):
//   [0, npages)                 per page: attempts used (low 32 bits) | moved << 32 | abandoned << 33
//   [npages, npages + B)        the batch: page index | in_batch << 40, or -1 for an empty slot
//   [class sim_off ..)          per hot page of a class: MCX_SIMW words of its saved simulation,
//                               then MCX_TW words per active task
#define MCX_PG_MOVED (1LL << 32)
#define MCX_PG_ABANDONED (1LL << 33)
#define MCX_PG_ATT 0xFFFFFFFFLL
#define MCX_B_IN (1LL << 40)
#define MCX_B_PAGE ((1LL << 40) - 1)

struct mcx_block {
    const mcx_i64* P;
    mcx_u64 seed;
    mcx_i64 trial;
    mcx_scratch S;
    mcx_i64 npages, B, nclasses;

    MCX_M mcx_i64& pw(mcx_i64 pg) { return S.base[pg * S.st()]; }
    MCX_M mcx_i64& bw(mcx_i64 b) { return S.base[(npages + b) * S.st()]; }
    MCX_M int class_of(mcx_i64 pg) {
        for (int c = 0; c < nclasses; ++c) {
            const mcx_i64* C = mcx_class(P, c);
            if (pg < C[MCX_C_FIRST_PAGE] + C[MCX_C_COUNT]) return c;
        }
        return (int)nclasses - 1;
    }
    MCX_M bool hot(const mcx_i64* C) { return C[MCX_C_ACCESS_DIST] >= 0; }
    // The saved simulation of hot page pg of class C, and its task words.
    MCX_M mcx_scratch sim_words(const mcx_i64* C, mcx_i64 pg) {
        const mcx_i64 per = MCX_SIMW + C[MCX_C_ACTIVE] * MCX_TW;
        mcx_scratch w;
        w.base = S.base + (C[MCX_C_SIM_OFF] + (pg - C[MCX_C_FIRST_PAGE]) * per) * S.st();
        w.stride = S.stride;
        return w;
    }
    MCX_M mcx_scratch task_words(mcx_scratch w) {
        mcx_scratch t;
        t.base = w.base + MCX_SIMW * w.st();
        t.stride = w.stride;
        return t;
    }
    // Load (open) and save (close) the simulation of hot page pg of class C.
    MCX_M void open_sim(mcx_sim& sim, const mcx_i64* C, mcx_i64 pg) {
        const mcx_scratch w = sim_words(C, pg);
        sim.setup(P, seed, trial, pg, C, task_words(w));
        sim.load(w);
    }
    MCX_M void close_sim(mcx_sim& sim, const mcx_i64* C, mcx_i64 pg) { sim.save(sim_words(C, pg)); }
    // f(C, pg) for every page pg of every hot class C, in block order.
    template <class F>
    MCX_M void for_each_hot_page(F&& f) {
        for (int c = 0; c < nclasses; ++c) {
            const mcx_i64* C = mcx_class(P, c);
            if (!hot(C)) continue;
            for (mcx_i64 pg = C[MCX_C_FIRST_PAGE]; pg < C[MCX_C_FIRST_PAGE] + C[MCX_C_COUNT]; ++pg) f(C, pg);
        }
    }
    MCX_M mcx_i64 draw(int d, int purpose, mcx_i64 page, mcx_i64 k, mcx_i64 i, mcx_i64 sub) {
        if (mcx_dist_is_const(P, d)) return mcx_dist_const(P, d);
        return mcx_sample(P, d, mcx_draw(seed, trial, purpose, page, k, i, sub));
    }
    MCX_M mcx_i64 gap(mcx_i64 gk, bool outer) {
        return outer ? draw(MCX_DIST_OUTER_GAP, MCX_P_GAP, MCX_BLOCK_PAGE, gk, 0, 1)
                     : draw(MCX_DIST_RETRY_GAP, MCX_P_GAP, MCX_BLOCK_PAGE, gk, 0, 0);
    }
    // One attempt on a page without tasks: the draws of stage1/stage2 with A = 0
    // (numpy_block.cold_attempt).
    MCX_M bool cold_attempt(mcx_i64 pg, const mcx_i64* C, mcx_i64 k, mcx_i64 arr, mcx_i64& T) {
        const mcx_i64 M = C[MCX_C_MAPCOUNT];
        mcx_i64 UM = arr;
        for (mcx_i64 i = 1; i <= M; ++i) UM += draw(MCX_DIST_UNMAP_PTE, MCX_P_UNMAP, pg, k, i, 0);
        const mcx_i64 F = UM + draw(MCX_DIST_PRE_FREEZE, MCX_P_PRE_FREEZE, pg, k, 0, 0);
        const bool ok = !mcx_transient_held<false>(P, seed, trial, pg, F, nullptr, nullptr);
        mcx_i64 S_ = F;
        if (ok) {
            if (C[MCX_C_FILE]) S_ += draw(MCX_DIST_FREEZE_HOLD, MCX_P_FREEZE_HOLD, pg, k, 0, 0);
            S_ += draw(MCX_DIST_COPY, MCX_P_COPY, pg, k, 0, 0);
        }
        mcx_i64 t = S_;
        for (mcx_i64 i = 1; i <= M; ++i) t += draw(MCX_DIST_REMAP_PTE, MCX_P_REMAP, pg, k, i, 0);
        T = t;
        return ok;
    }
};

MCX_NOINLINE void mcx_trial_block(const mcx_i64* MCX_RESTRICT P, mcx_u64 seed, mcx_i64 trial,
                                  mcx_i64* MCX_RESTRICT rec, mcx_scratch scratch) {
    mcx_block blk;
    blk.P = P;
    blk.seed = seed;
    blk.trial = trial;
    blk.S = scratch;
    blk.npages = P[MCX_H_NPAGES];
    blk.B = P[MCX_H_BATCH_PAGES];
    blk.nclasses = P[MCX_H_NCLASSES];
    const mcx_i64 npages = blk.npages, B = blk.B;
    const mcx_i64 passes = P[MCX_H_PASSES];
    const mcx_i64 max_attempts = P[MCX_H_MAX_ATTEMPTS];
    const mcx_i64 timeout = P[MCX_H_TIMEOUT_NS];

    mcx_sim sim;
    for (mcx_i64 pg = 0; pg < npages; ++pg) blk.pw(pg) = 0;
    for (mcx_i64 b = 0; b < B; ++b) blk.bw(b) = -1;
    blk.for_each_hot_page([&](const mcx_i64* C, mcx_i64 pg) {
        const mcx_scratch w = blk.sim_words(C, pg);
        sim.setup(P, seed, trial, pg, C, blk.task_words(w));
        sim.reset();
        sim.save(w);
    });

    mcx_i64 pas = 0, pos = 0, calls = 0, gk = 0, last_T = 0, end = 0, t_off = -1;
    mcx_i64 n_moved = 0, n_in_batch = 0, scan0 = 0;
    bool need_batch = true, call_start = false, running = true, offlined = false;
    bool livelock = false, censored = false, call_failed = false, first_call_done = false;
    bool error = false;

    // The budget ran out (why_livelock) or only abandoned pages remain: stop every unmoved hot page.
    auto stop = [&](bool why_livelock) {
        livelock = livelock || why_livelock;
        censored = censored || !why_livelock;
        end = why_livelock ? timeout : last_T;
        running = false;
        blk.for_each_hot_page([&](const mcx_i64* C, mcx_i64 pg) {
            if (blk.pw(pg) & MCX_PG_MOVED) return;
            blk.open_sim(sim, C, pg);
            sim.stop(end);
            error = error || sim.error;
            blk.close_sim(sim, C, pg);
        });
    };

    while (running && !error) {
        // A call ends when its passes are used up or its batch has no page left to try.
        if (!need_batch && (pas >= passes || n_in_batch == 0)) {
            if (!first_call_done) {
                bool all = true;
                for (mcx_i64 b = 0; b < B && all; ++b) {
                    const mcx_i64 w = blk.bw(b);
                    if (w >= 0 && !(blk.pw(w & MCX_B_PAGE) & MCX_PG_MOVED)) all = false;
                }
                call_failed = !all;
            }
            first_call_done = true;
            need_batch = true;
        }
        if (need_batch) {
            while (scan0 < npages && (blk.pw(scan0) & (MCX_PG_MOVED | MCX_PG_ABANDONED))) ++scan0;
            if (scan0 >= npages) {
                if (n_moved == npages) {
                    offlined = true;
                    t_off = last_T;
                    end = last_T;
                    blk.for_each_hot_page([&](const mcx_i64* C, mcx_i64 pg) {
                        blk.open_sim(sim, C, pg);
                        end = mcx_max64(end, sim.last_t);
                    });
                    running = false;
                } else {
                    stop(false);
                }
                continue;
            }
            // The first B remaining pages, in block order.
            mcx_i64 b = 0;
            for (mcx_i64 pg = scan0; pg < npages && b < B; ++pg)
                if (!(blk.pw(pg) & (MCX_PG_MOVED | MCX_PG_ABANDONED))) blk.bw(b++) = pg | MCX_B_IN;
            n_in_batch = b;
            for (; b < B; ++b) blk.bw(b) = -1;
            calls += 1;
            pas = 0;
            pos = 0;
            need_batch = false;
            call_start = true;
            // Between calls the migrator spends outer_gap (nothing before the very first call).
            if (gk > 0) last_T += blk.gap(gk, true);
        }
        // Next page of the pass at or after pos; at the end of a pass, the next pass.
        mcx_i64 j = -1;
        for (mcx_i64 b = pos; b < B; ++b) {
            const mcx_i64 w = blk.bw(b);
            if (w >= 0 && (w & MCX_B_IN)) {
                j = b;
                break;
            }
        }
        if (j < 0) {
            pas += 1;
            pos = 0;
            continue;
        }
        const mcx_i64 pg = blk.bw(j) & MCX_B_PAGE;
        pos = j + 1;
        // Within a call, retry_gap after the previous attempt.
        const mcx_i64 arr = last_T + (call_start ? 0 : blk.gap(gk, false));
        call_start = false;
        if (arr >= timeout) {
            stop(true);
            continue;
        }
        // A page out of attempts is abandoned, not tried.
        if ((blk.pw(pg) & MCX_PG_ATT) >= max_attempts) {
            blk.pw(pg) |= MCX_PG_ABANDONED;
            blk.bw(j) &= ~MCX_B_IN;
            n_in_batch -= 1;
            continue;
        }
        gk += 1;
        blk.pw(pg) += 1;
        const mcx_i64 k = blk.pw(pg) & MCX_PG_ATT;
        const mcx_i64* C = mcx_class(P, blk.class_of(pg));
        mcx_i64 T = arr;
        bool ok, timed = false;
        if (blk.hot(C)) {
            blk.open_sim(sim, C, pg);
            ok = sim.attempt(arr, pas, T, timed);
            error = error || sim.error;
            blk.close_sim(sim, C, pg);
        } else {
            ok = blk.cold_attempt(pg, C, k, arr, T);
            // An attempt that ends at or after the timeout has not moved the page in time.
            timed = T >= timeout;
            ok = ok && !timed;
        }
        last_T = T;
        if (ok) {
            blk.pw(pg) |= MCX_PG_MOVED;
            n_moved += 1;
            blk.bw(j) &= ~MCX_B_IN;
            n_in_batch -= 1;
        }
        if (timed && !error) stop(true);
    }
    if (error) {
        for (int f = 0; f < MCX_NFIELDS; ++f) rec[f] = -1;
        return;
    }
    bool uaf = false, hang = false;
    mcx_i64 faults = 0, total_wait = 0, spin = 0, max_wait = 0;
    blk.for_each_hot_page([&](const mcx_i64* C, mcx_i64 pg) {
        blk.open_sim(sim, C, pg);
        uaf = uaf || sim.uaf;
        hang = hang || (sim.migrated && sim.hung_any());
        faults += sim.faults;
        total_wait += sim.total_wait;
        spin += sim.spin;
        max_wait = mcx_max64(max_wait, sim.max_wait);
    });
    rec[MCX_R_MIGRATED] = offlined;
    rec[MCX_R_ATTEMPTS] = gk;
    rec[MCX_R_CALLS] = calls;
    rec[MCX_R_T_MIGRATED] = t_off;
    rec[MCX_R_CALL_FAILED] = call_failed || !first_call_done;
    rec[MCX_R_LIVELOCK] = livelock;
    rec[MCX_R_CENSORED] = censored;
    rec[MCX_R_UAF] = uaf;
    rec[MCX_R_HANG] = hang;
    rec[MCX_R_FAULTS] = faults;
    rec[MCX_R_MAX_WAIT] = max_wait;
    rec[MCX_R_TOTAL_WAIT] = total_wait;
    rec[MCX_R_SPIN] = spin;
    rec[MCX_R_END_TIME] = end;
    rec[MCX_R_PAGES_LEFT] = npages - n_moved;
}
