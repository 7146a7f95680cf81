// engine.h: one trial of the model (MODEL.md; docs/model.md), a port of the reference engine
// mcexplore/engines/numpy_engine.py (page level).
//
// The numpy engine advances a batch of trials in lock step; here one call simulates one trial
// with plain loops (one GPU thread, or one iteration of a host worker). Everything that decides a
// result is the same: the same events and state machine (the EV_* codes and the functions below
// carry the numpy names), the same draw keys (purpose, k, i, sub), the same tie-breaking and the
// same int64 arithmetic. tests/test_parity.py holds the two to the same bits, field by field.
//
// Order of task events. Tasks interact only through the page lock, and only in lock_noref. For
// every other strategy the numpy engine processes all eligible task events "in parallel"; since
// the tasks are independent, running each task's events to the horizon in turn is the same thing.
// lock_noref processes one event per trial at a time in global order: the eligible event with the
// smallest (time, stamp), the stamp counting the page's schedule() calls (docs/model.md, "Ties").
//
// Memory: the per-task state lives in a scratch area (MCX_TW words per active task; see
// mcx_scratch), everything per trial in registers.
#pragma once
#include "portability.h"
#include "philox.h"
#include "params.h"
#include "sample.h"
#include "transient.h"
#include "drawcache.h"
#include "picktree.h"

#if defined(MCX_CUDA)
#define MCX_M __device__
#define MCX_M_NOINLINE __device__ __noinline__
// The event dispatcher and the draw are out of line on the device: inlining them everywhere makes
// NVRTC/nvcc take 10-25 s per build for little gain. -DMCX_PROCESS_INLINE inlines the dispatcher.
#if defined(MCX_PROCESS_INLINE)
#define MCX_M_PROCESS __device__
#else
#define MCX_M_PROCESS __device__ __noinline__
#endif
#else
#define MCX_M_PROCESS inline
#define MCX_M inline
#define MCX_M_NOINLINE inline
#endif

// Per-trial scratch memory: word j of this trial's scratch is base[j * stride] (stride = number
// of trials in the launch on the GPU, so that neighbouring threads touch neighbouring words; 1 on
// the host, where each worker thread owns a contiguous buffer).
struct mcx_scratch {
    mcx_i64* base;
    mcx_i64 stride;
    // The stride as the code uses it: a compile-time 1 on the host, so that a task word's address
    // is base + constant offset (a multiply per access was 17% of the host's instructions).
#if defined(MCX_CUDA)
    __device__ __forceinline__ mcx_i64 st() const { return stride; }
#else
    inline mcx_i64 st() const { return 1; }
#endif
};

// Flag bits in MCX_TW_EV.
#define TF_REF (1 << 8)
#define TF_IN_WAIT (1 << 9)
#define TF_PARKED (1 << 10)
#define TF_SPINNING (1 << 11)
#define TF_SLEEP_LOCK (1 << 12)
#define TF_HUNG (1 << 13)
#define TF_EVMASK 0xFF

// SPEC is the strategy when it is known at compile time (the host compiles one page-level trial
// per strategy: the dead arms of every `strategy() == ...` then go, which made ref 10% faster), or -1
// (the strategy read from P at run time: the device, and block level everywhere).
template <int SPEC>
struct mcx_sim_t {
    const mcx_i64* P;
    mcx_u64 seed;
    mcx_i64 trial;
    mcx_i64 page;
    mcx_scratch S;
    int M, A, strat;
    bool file, recheck, flag_unmap_end;
    mcx_i64 timeout;
    int trylock_passes;
    int access_dist;
#if defined(MCX_HOST)
    mcx_draw_cache* dc;  // this worker's batched draws (drawcache.h), or null
    mcx_pick_tree* pt;   // lock_noref's pick while run_global runs, else null
#endif

    // Migrator, this trial: attempt kc ("cur") and kc - 1 ("prev", complete).
    mcx_i64 kc;
    bool cur_unmapped;
    mcx_i64 L_cur, F_cur, fs_cur;
    bool prev_unmapped;
    mcx_i64 T_prev, F_prev, fe_prev;
    bool succ_prev;
    bool final_, migrated;
    mcx_i64 free_t, last_t;
    // lock_noref
    mcx_i64 holder, mig_t, mig_w;
    mcx_i64 nstamp;    // the next event stamp (lock_noref)
    int n_sleep_lock;  // tasks asleep on the page lock: the queue's length (recounted by load)
    bool mig_sleeping;
    // outcomes
    bool uaf;
    mcx_i64 faults, total_wait, max_wait, spin;
    bool error;

    MCX_M int strategy() const { return SPEC >= 0 ? SPEC : strat; }

    // -- task state ------------------------------------------------------------------------------
    MCX_M mcx_i64& tw(int c, int f) { return S.base[((mcx_i64)c * MCX_TW + f) * S.st()]; }
    MCX_M int ev(int c) { return (int)(tw(c, MCX_TW_EV) & TF_EVMASK); }
    MCX_M bool flag(int c, mcx_i64 f) { return (tw(c, MCX_TW_EV) & f) != 0; }
    MCX_M void set_flag(int c, mcx_i64 f, bool on) {
        mcx_i64& w = tw(c, MCX_TW_EV);
        w = on ? (w | f) : (w & ~f);
#if defined(MCX_HOST)
        if (pt) pick_touch(c);
#endif
    }
    MCX_M void schedule(int c, int e, mcx_i64 t) {
        mcx_i64& w = tw(c, MCX_TW_EV);
        w = (w & ~(mcx_i64)TF_EVMASK) | (mcx_i64)e;
        tw(c, MCX_TW_T) = t;
        if (strategy() == MCX_S_LOCK_NOREF) tw(c, MCX_TW_STAMP) = nstamp++;
#if defined(MCX_HOST)
        if (pt) pick_touch(c);
#endif
    }
#if defined(MCX_HOST)
    // lock_noref's tournament tree (picktree.h), live while global_pick runs events.
    MCX_M mcx_i64 pick_key(int c) {
        const mcx_i64 w = tw(c, MCX_TW_EV);
        return ((w & TF_EVMASK) == MCX_EV_NONE || (w & TF_PARKED)) ? MCX_PICK_NONE : tw(c, MCX_TW_T);
    }
    MCX_M void pick_touch(int c) { pt->set(c, pick_key(c), tw(c, MCX_TW_STAMP)); }
    MCX_M void pick_open() {
        pt = mcx_tls_pick_tree;
        if (!pt || A > pt->cap) {
            pt = nullptr;
            return;
        }
        for (int c = 0; c < pt->n; ++c) {
            pt->key[pt->n + c] = c < A ? pick_key(c) : MCX_PICK_NONE;
            pt->sec[pt->n + c] = c < A ? tw(c, MCX_TW_STAMP) : MCX_PICK_NONE;
        }
        pt->build();
    }
#endif

    // -- randomness ------------------------------------------------------------------------------
    MCX_M_NOINLINE mcx_i64 draw(int d, int purpose, mcx_i64 k, mcx_i64 i, mcx_i64 sub) {
        // A constant ignores the words: skip the Philox call (same value as numpy's).
        if (mcx_dist_is_const(P, d)) return mcx_dist_const(P, d);
#if defined(MCX_HOST)
        // A task's draw: from the row batched for all tasks of the page (the same words).
        if (dc && i >= 1 && i <= A && purpose >= MCX_DC_FIRST &&
            purpose < MCX_DC_FIRST + MCX_DC_NSLOT) {
            mcx_words w;
            if (purpose == MCX_P_WAKE && dc->wake_words(trial, page, k, i, sub, w))
                return mcx_sample(P, d, w);
            if (dc->wanted(purpose)) return mcx_sample(P, d, dc->get(trial, purpose, page, k, i, sub, A));
        }
#endif
        return mcx_sample(P, d, mcx_draw(seed, trial, purpose, page, k, i, sub));
    }
    MCX_M mcx_i64 draw_mig(int d, int purpose, mcx_i64 k) { return draw(d, purpose, k, 0, 0); }

    // -- helpers -----------------------------------------------------------------------------------
    // Who holds the page lock at t (migrator only): lc = attempt kc, lp = attempt kc - 1.
    MCX_M void locked_by(mcx_i64 t, bool& lc, bool& lp) {
        lc = cur_unmapped && t >= L_cur;
        lp = !lc && t < T_prev;
    }
    MCX_M mcx_i64 sub_of(int c) {
        return (tw(c, MCX_TW_JF) << MCX_SUB_SHIFT) | (tw(c, MCX_TW_W) & ((1 << MCX_SUB_SHIFT) - 1));
    }
    MCX_M void wake_after(int c, mcx_i64 base) {
        const mcx_i64 wl = draw(MCX_DIST_WAKE_LATENCY, MCX_P_WAKE, tw(c, MCX_TW_KF), c + 1, sub_of(c));
        tw(c, MCX_TW_W) += 1;
        schedule(c, MCX_EV_WAKE, base + wl);
    }
    MCX_M void sleep_on_unlock(int c, bool lc, bool lp) {
        if (lc) {
            tw(c, MCX_TW_KW) = kc;
            schedule(c, MCX_EV_WAKE_RES, F_cur);
        } else if (lp) {
            wake_after(c, T_prev);
        }
    }

    MCX_M void access(int c, mcx_i64 r) {
        const bool inc = cur_unmapped && r >= tw(c, MCX_TW_U);
        const bool inp = !inc && prev_unmapped && r < tw(c, MCX_TW_R);
        if (inc || inp) {
            const mcx_i64 kwin = inc ? kc : kc - 1;
            if (tw(c, MCX_TW_KF) == kwin)
                tw(c, MCX_TW_JF) += 1;
            else
                tw(c, MCX_TW_JF) = 0;
            tw(c, MCX_TW_KF) = kwin;
            tw(c, MCX_TW_W) = 0;
            const mcx_i64 fe = draw(MCX_DIST_FAULT_ENTRY, MCX_P_FAULT_ENTRY, kwin, c + 1,
                                    tw(c, MCX_TW_JF) << MCX_SUB_SHIFT);
            set_flag(c, TF_IN_WAIT, true);
            tw(c, MCX_TW_WAIT_START) = r;
            schedule(c, MCX_EV_FAULT, r + fe);
            return;
        }
        if (cur_unmapped) {
            // r < U_kc,i: the next access comes after the PTE becomes a migration entry.
            const mcx_i64 a = tw(c, MCX_TW_U) + draw(access_dist, MCX_P_ACCESS, kc, c + 1, 0);
            schedule(c, MCX_EV_ACCESS, a);
        } else if (final_) {
            schedule(c, MCX_EV_NONE, MCX_INF);
        } else {
            // Attempt kc has not unmapped yet (lock_noref's migrator still acquiring the lock).
            set_flag(c, TF_PARKED, true);
            schedule(c, MCX_EV_ACCESS, r);
        }
    }

    MCX_M void ret(int c, mcx_i64 r) {
        const mcx_i64 wl = flag(c, TF_IN_WAIT) ? r - tw(c, MCX_TW_WAIT_START) : 0;
        total_wait += wl;
        max_wait = mcx_max64(max_wait, wl);
        set_flag(c, TF_IN_WAIT, false);
        if (flag(c, TF_SPINNING)) spin += r - tw(c, MCX_TW_P);
        set_flag(c, TF_SPINNING, false);
        access(c, r);
    }

    // -- lock_noref --------------------------------------------------------------------------------
    MCX_M void touch_uaf(mcx_i64 t) {
        if (final_ && t >= free_t) uaf = true;
    }
    MCX_M void try_lock(int c, mcx_i64 t) {
        touch_uaf(t);
        bool lc, lp;
        locked_by(t, lc, lp);
        sleep_on_unlock(c, lc, lp);
        if (lc || lp) return;
        if (holder > 0) {
            set_flag(c, TF_SLEEP_LOCK, true);
            tw(n_sleep_lock, MCX_TW_QUEUE) = c;
            n_sleep_lock += 1;
            schedule(c, MCX_EV_NONE, MCX_INF);
            return;
        }
        holder = c + 1;
        const mcx_i64 lh = draw(MCX_DIST_LOCK_HOLD, MCX_P_LOCK_HOLD, tw(c, MCX_TW_KF), c + 1, sub_of(c));
        schedule(c, MCX_EV_UNLOCK, t + lh);
    }
    MCX_M void unlock(int c, mcx_i64 u) {
        touch_uaf(u);
        holder = 0;
        // The page's wait queue is first in, first out: sleepers wake in the order they slept.
        for (int q = 0; q < n_sleep_lock; ++q) {
            const int j = (int)tw(q, MCX_TW_QUEUE);
            set_flag(j, TF_SLEEP_LOCK, false);
            wake_after(j, u);
        }
        n_sleep_lock = 0;
        if (mig_sleeping) {
            const mcx_i64 wl = draw(MCX_DIST_WAKE_LATENCY, MCX_P_MIG_WAKE, kc, 0, mig_w);
            mig_w += 1;
            mig_t = u + wl;
            mig_sleeping = false;
        }
        ret(c, u);
    }

    // -- the events ----------------------------------------------------------------------------
    MCX_M void fault(int c, mcx_i64 x) {
        const bool inc = cur_unmapped && x >= tw(c, MCX_TW_U);
        const bool inp = !inc && prev_unmapped && x < tw(c, MCX_TW_R);
        if (!(inc || inp)) {
            // The PTE was restored before the handler took the PTL: no fault, no wait.
            set_flag(c, TF_IN_WAIT, false);
            access(c, x);
            return;
        }
        faults += 1;
        tw(c, MCX_TW_KW) = inc ? kc : kc - 1;
        const mcx_i64 kf = tw(c, MCX_TW_KF);
        const mcx_i64 sub = tw(c, MCX_TW_JF) << MCX_SUB_SHIFT;
        const mcx_i64 p = x + draw(MCX_DIST_PTL_HOLD, MCX_P_PTL_HOLD, kf, c + 1, sub);
        tw(c, MCX_TW_P) = p;
        // get_page_unless_zero fails while a successful file attempt holds the count frozen.
        const bool frozen = inp && succ_prev && file && x < fe_prev;
        if (strategy() == MCX_S_REF || strategy() == MCX_S_DROP || strategy() == MCX_S_FLAG_SPIN) {
            const bool seen = strategy() == MCX_S_FLAG_SPIN &&
                              ((inc && x >= fs_cur) || (inp && x < fe_prev));
            if (seen) {
                set_flag(c, TF_SPINNING, true);
                if (inc)
                    schedule(c, MCX_EV_SPIN_RES, F_cur);
                else
                    schedule(c, MCX_EV_RET, mcx_max64(p, fe_prev));
            } else if (frozen) {
                schedule(c, MCX_EV_RET, p);
            } else {
                set_flag(c, TF_REF, true);
                if (strategy() == MCX_S_DROP) {
                    const mcx_i64 b = p + draw(MCX_DIST_DROP_HOLD, MCX_P_DROP_HOLD, kf, c + 1, sub);
                    schedule(c, MCX_EV_DROPB, b);
                } else {
                    schedule(c, MCX_EV_PTL, p);
                }
            }
        } else if (strategy() == MCX_S_PTL_PIN) {
            schedule(c, MCX_EV_PTL, p);
        } else if (strategy() == MCX_S_LOCK_NOREF) {
            const mcx_i64 y = p + draw(MCX_DIST_NOREF_GAP, MCX_P_NOREF_GAP, kf, c + 1, sub);
            schedule(c, MCX_EV_TOUCH, y);
        } else {  // MCX_S_PTE_WAIT
            if (!recheck)
                tw(c, MCX_TW_E) = p + draw(MCX_DIST_NOREF_GAP, MCX_P_NOREF_GAP, kf, c + 1, sub);
            if (inp)
                pte_resolve(c);
            else
                schedule(c, MCX_EV_PTE_RES, F_cur);
        }
    }

    MCX_M void ptl(int c, mcx_i64 p) {
        if (strategy() == MCX_S_PTL_PIN) {
            // Enqueued under the PTL at x: any unlock of the fault's attempt after x wakes it.
            const mcx_i64 kw = tw(c, MCX_TW_KW);
            const bool lc = kw == kc;
            const bool unlocked = (kw < kc - 1) || (kw == kc - 1 && T_prev <= p);
            const bool lp = !lc && !unlocked;
            sleep_on_unlock(c, lc, lp);
            if (unlocked) ret(c, p);
        } else {  // ref, flag_spin's ref path: wait_on_page_locked after dropping the PTL
            bool lc, lp;
            locked_by(p, lc, lp);
            sleep_on_unlock(c, lc, lp);
            if (!(lc || lp)) {
                set_flag(c, TF_REF, false);
                ret(c, p);
            }
        }
    }

    MCX_M void pte_resolve(int c) {
        const mcx_i64 R = tw(c, MCX_TW_R);
        if (recheck) {
            // Enqueued at x under the PTL: the restore wakes it; before the PTL is dropped it
            // returns at once, with no wake latency.
            const mcx_i64 xp = tw(c, MCX_TW_P);
            if (R <= xp)
                schedule(c, MCX_EV_RET, xp);
            else
                wake_after(c, R);
            return;
        }
        if (prev_unmapped && R >= tw(c, MCX_TW_E)) {
            wake_after(c, R);
            return;
        }
        if (final_) {
            if (migrated) {
                // No later restore will come after the page moved: a lost wake-up for good.
                set_flag(c, TF_HUNG, true);
                set_flag(c, TF_IN_WAIT, false);
            }
            schedule(c, MCX_EV_NONE, MCX_INF);  // (budget over: asleep, its wait cut at the end)
        } else {
            tw(c, MCX_TW_KW) = kc;
            schedule(c, MCX_EV_PTE_RES, F_cur);
        }
    }

    MCX_M_PROCESS void process(int c) {
        const int e = ev(c);
        const mcx_i64 t = tw(c, MCX_TW_T);
        // The last event that changes state (an idle task's access after the restore is not one).
        last_t = mcx_max64(last_t, (e == MCX_EV_NONE || e == MCX_EV_ACCESS) ? 0 : t);
        switch (e) {
            case MCX_EV_ACCESS:
                access(c, t);
                break;
            case MCX_EV_FAULT:
                fault(c, t);
                break;
            case MCX_EV_PTL:
                ptl(c, t);
                break;
            case MCX_EV_DROPB: {
                set_flag(c, TF_REF, false);
                bool lc, lp;
                locked_by(t, lc, lp);
                sleep_on_unlock(c, lc, lp);
                if (!(lc || lp)) ret(c, t);
                break;
            }
            case MCX_EV_WAKE:
                if (strategy() == MCX_S_LOCK_NOREF) {
                    try_lock(c, t);
                } else if (strategy() == MCX_S_REF || strategy() == MCX_S_FLAG_SPIN) {
                    // Still holding its reference: if a later attempt locked the page again,
                    // keep it and sleep on; else put_page and return.
                    bool lc, lp;
                    locked_by(t, lc, lp);
                    sleep_on_unlock(c, lc, lp);
                    if (!(lc || lp)) {
                        set_flag(c, TF_REF, false);
                        ret(c, t);
                    }
                } else {
                    ret(c, t);
                }
                break;
            case MCX_EV_WAKE_RES:
                wake_after(c, T_prev);
                break;
            case MCX_EV_SPIN_RES:
                schedule(c, MCX_EV_RET, mcx_max64(tw(c, MCX_TW_P), fe_prev));
                break;
            case MCX_EV_PTE_RES:
                pte_resolve(c);
                break;
            case MCX_EV_RET:
                ret(c, t);
                break;
            case MCX_EV_TOUCH:
                try_lock(c, t);
                break;
            case MCX_EV_UNLOCK:
                unlock(c, t);
                break;
            default:
                break;
        }
    }

    // -- advancing tasks -------------------------------------------------------------------------
    MCX_M bool eligible(int c, mcx_i64 horizon) {
        const mcx_i64 w = tw(c, MCX_TW_EV);
        const int e = (int)(w & TF_EVMASK);
        if (e == MCX_EV_NONE || (w & TF_PARKED)) return false;
        if (tw(c, MCX_TW_T) < horizon) return true;
        const bool virt = e == MCX_EV_WAKE_RES || e == MCX_EV_SPIN_RES || e == MCX_EV_PTE_RES;
        // A virtual event whose attempt is complete may always run.
        return virt && tw(c, MCX_TW_KW) < kc;
    }

    // lock_noref's pick: the eligible task with the smallest (time, stamp) (docs/model.md, "Ties").
    MCX_M int global_pick(mcx_i64 horizon) {
#if defined(MCX_HOST)
        if (pt) {
            // The smallest (time, stamp) of all tasks with an event: if it is before the horizon
            // it is eligible, hence the pick. Otherwise only virtual events can be eligible: scan.
            if (pt->top_key() < horizon) return pt->top();
        }
#endif
        int best = -1;
        mcx_i64 bt = MCX_INF, bs = 0;
        for (int c = 0; c < A; ++c) {
            if (!eligible(c, horizon)) continue;
            const mcx_i64 t = tw(c, MCX_TW_T), st = tw(c, MCX_TW_STAMP);
            if (best < 0 || t < bt || (t == bt && st < bs)) {
                best = c;
                bt = t;
                bs = st;
            }
        }
        return best;
    }

    MCX_M void advance(mcx_i64 horizon) {
        if (A == 0 || error) return;
        mcx_i64 steps = 0;
        if (strategy() == MCX_S_LOCK_NOREF) {
            run_global(horizon, false);
            return;
        }
#if defined(MCX_HOST)
        if (dc && !mcx_dist_is_const(P, MCX_DIST_WAKE_LATENCY)) {
            // Waiters whose lock holder is done wake first thing (wake_after): compute every
            // task's next wake draw at once when enough of them are about to (drawcache.h).
            int waking = 0;
            for (int c = 0; c < A; ++c) waking += (ev(c) == MCX_EV_WAKE_RES && eligible(c, horizon)) ? 1 : 0;
            if ((mcx_i64)waking * dc->lanes_per_draw >= A) {
                for (int c = 0; c < A; ++c) dc->wake_key(c, tw(c, MCX_TW_KF), sub_of(c));
                dc->wake_run(trial, page, A);
            }
        }
#endif
        for (int c = 0; c < A; ++c) {
            while (eligible(c, horizon)) {
                process(c);
                if (++steps > MCX_MAX_EVENTS) {
                    error = true;
                    return;
                }
            }
        }
    }

    // lock_noref: run the eligible events in global order up to horizon (or, with until_mig, up
    // to the migrator's wake time mig_t, which an event may change).
    MCX_M void run_global(mcx_i64 horizon, bool until_mig) {
#if defined(MCX_HOST)
        pick_open();
#endif
        mcx_i64 steps = 0;
        for (;;) {
            const int c = global_pick(until_mig ? mcx_min64(mig_t, timeout) : horizon);
            if (c < 0) break;
            process(c);
            if (++steps > MCX_MAX_EVENTS) {
                error = true;
                break;
            }
        }
#if defined(MCX_HOST)
        pt = nullptr;
#endif
    }

    MCX_M void advance_until_mig() { run_global(0, true); }

    // -- the migrator ----------------------------------------------------------------------------
    MCX_M void stage1(mcx_i64 L) {
        const mcx_i64 k = kc;
        mcx_i64 cu = L;
        // A constant per-PTE time is the same value for every PTE (the loop runs M times per attempt).
        const bool unmap_c = mcx_dist_is_const(P, MCX_DIST_UNMAP_PTE);
        const mcx_i64 unmap_v = mcx_dist_const(P, MCX_DIST_UNMAP_PTE);
        for (int i = 1; i <= M; ++i) {
            cu += unmap_c ? unmap_v : draw(MCX_DIST_UNMAP_PTE, MCX_P_UNMAP, k, i, 0);
            if (i <= A) tw(i - 1, MCX_TW_U) = cu;
        }
        L_cur = L;
        F_cur = cu + draw_mig(MCX_DIST_PRE_FREEZE, MCX_P_PRE_FREEZE, k);
        fs_cur = flag_unmap_end ? cu : L;
        cur_unmapped = true;
        for (int c = 0; c < A; ++c) set_flag(c, TF_PARKED, false);
    }

    MCX_M void shift() {
        kc += 1;
        cur_unmapped = false;
        L_cur = MCX_INF;
        fs_cur = MCX_INF;
        for (int c = 0; c < A; ++c) tw(c, MCX_TW_U) = MCX_INF;
    }

    MCX_M bool stage2(mcx_i64& T) {
        const mcx_i64 k = kc;
        const mcx_i64 F = F_cur;
        bool held = false;
        for (int c = 0; c < A && !held; ++c) held = flag(c, TF_REF);
        if (!held) held = mcx_transient_held(P, seed, trial, page, F);
        const bool ok = !held;
        const mcx_i64 fh = (file && ok) ? draw_mig(MCX_DIST_FREEZE_HOLD, MCX_P_FREEZE_HOLD, k) : 0;
        const mcx_i64 cp = ok ? draw_mig(MCX_DIST_COPY, MCX_P_COPY, k) : 0;
        mcx_i64 cr = F + (ok ? fh + cp : 0);
        const bool remap_c = mcx_dist_is_const(P, MCX_DIST_REMAP_PTE);
        const mcx_i64 remap_v = mcx_dist_const(P, MCX_DIST_REMAP_PTE);
        for (int i = 1; i <= M; ++i) {
            cr += remap_c ? remap_v : draw(MCX_DIST_REMAP_PTE, MCX_P_REMAP, k, i, 0);
            if (i <= A) tw(i - 1, MCX_TW_R) = cr;
        }
        T = cr;
        prev_unmapped = true;
        T_prev = T;
        F_prev = F;
        fe_prev = F + ((ok && file) ? fh : 0);
        succ_prev = ok;
        shift();
        return ok;
    }

    MCX_M void trylock_fail(mcx_i64 arr) {
        prev_unmapped = false;
        T_prev = arr;
        F_prev = arr;
        fe_prev = arr;
        succ_prev = false;
        F_cur = arr;
        shift();
    }

    // lock_noref: the migrator acquires the page lock. Returns false on a trylock failure;
    // late: it sleeps on a waiter's lock past the timeout.
    MCX_M bool acquire(mcx_i64 arr, mcx_i64 pidx, mcx_i64& L, bool& late) {
        late = false;
        advance(arr);
        if (holder <= 0) {
            L = arr;
            return true;
        }
        if (pidx < trylock_passes) return false;
        mig_w = 0;
        mig_sleeping = true;
        mig_t = MCX_INF;
        for (;;) {
            // Tasks strictly before the migrator's run (and the timeout); the migrator first at
            // a tie.
            advance_until_mig();
            if (error) {
                L = arr;
                return true;
            }
            if (mig_sleeping || mig_t >= timeout) {
                late = true;
                L = arr;
                return true;
            }
            if (holder == 0) {
                L = mig_t;
                return true;
            }
            mig_sleeping = true;
            mig_t = MCX_INF;
        }
    }

    // Attempt kc, the migrator arriving at arr < timeout (pass index pidx). Returns ok; T is set.
    // timed: the attempt did not end before the timeout (numpy _Sim.attempt): not ok, and no
    // task has run past the timeout.
    MCX_M bool attempt(mcx_i64 arr, mcx_i64 pidx, mcx_i64& T, bool& timed) {
        mcx_i64 L = arr;
        timed = false;
        T = arr;
        if (strategy() == MCX_S_LOCK_NOREF) {
            bool late;
            if (!acquire(arr, pidx, L, late)) {
                trylock_fail(arr);
                return false;
            }
            if (late) {
                timed = true;
                return false;
            }
        }
        stage1(L);
        advance(mcx_min64(F_cur, timeout));
        // A refcount check at or after the timeout never happens within the budget.
        if (F_cur >= timeout) {
            timed = true;
            return false;
        }
        bool ok = stage2(T);
        if (T >= timeout) {
            timed = true;
            return false;
        }
        if (ok) {
            migrated = true;
            final_ = true;
            free_t = T + draw_mig(MCX_DIST_FREE_DELAY, MCX_P_FREE_DELAY, kc - 1);
            last_t = mcx_max64(last_t, T);
            advance(MCX_INF);
        }
        return ok;
    }

    // The budget ran out at end: run the tasks up to it, cut the waits still running.
    MCX_M void stop(mcx_i64 end) {
        final_ = true;
        for (int c = 0; c < A; ++c) set_flag(c, TF_PARKED, false);
        advance(end);
        for (int c = 0; c < A; ++c) {
            if (flag(c, TF_IN_WAIT)) {
                const mcx_i64 wl = mcx_max64(end - tw(c, MCX_TW_WAIT_START), 0);
                total_wait += wl;
                max_wait = mcx_max64(max_wait, wl);
            }
            set_flag(c, TF_IN_WAIT, false);
            if (flag(c, TF_SPINNING)) spin += mcx_max64(end - tw(c, MCX_TW_P), 0);
            set_flag(c, TF_SPINNING, false);
        }
    }

    // Constants of one page: P, the draw key's trial and page field, the page's class record,
    // and where its task state lives.
    MCX_M void setup(const mcx_i64* P_, mcx_u64 seed_, mcx_i64 trial_, mcx_i64 page_,
                     const mcx_i64* C, mcx_scratch S_) {
        P = P_;
        seed = seed_;
        trial = trial_;
        page = page_;
        S = S_;
        M = (int)C[MCX_C_MAPCOUNT];
        A = C[MCX_C_ACCESS_DIST] >= 0 ? (int)C[MCX_C_ACTIVE] : 0;
        access_dist = (int)C[MCX_C_ACCESS_DIST];
        file = C[MCX_C_FILE] != 0;
        strat = (int)P[MCX_H_STRATEGY];
        recheck = P[MCX_H_RECHECK] != 0;
        flag_unmap_end = P[MCX_H_FLAG_FROM_UNMAP_END] != 0;
        timeout = P[MCX_H_TIMEOUT_NS];
        trylock_passes = (int)P[MCX_H_TRYLOCK_PASSES];
#if defined(MCX_HOST)
        dc = mcx_tls_draw_cache;
        if (dc && A > dc->cap) dc = nullptr;  // rows are sized by max_mapcount; never wider
        pt = nullptr;
#endif
    }

    // The state at time 0 (numpy _Sim.__init__).
    MCX_M void reset() {
        kc = 1;
        n_sleep_lock = 0;
        cur_unmapped = false;
        L_cur = MCX_INF;
        F_cur = 0;
        fs_cur = MCX_INF;
        prev_unmapped = false;
        T_prev = -1;
        F_prev = -1;
        fe_prev = -1;
        succ_prev = false;
        final_ = false;
        migrated = false;
        free_t = MCX_INF;
        last_t = 0;
        holder = 0;
        mig_t = MCX_INF;
        mig_w = 0;
        mig_sleeping = false;
        uaf = false;
        faults = total_wait = max_wait = spin = 0;
        error = false;
        nstamp = A;
        for (int c = 0; c < A; ++c) {
            for (int f = 0; f < MCX_TW; ++f) tw(c, f) = 0;
            tw(c, MCX_TW_EV) = MCX_EV_ACCESS;
            tw(c, MCX_TW_T) = 0;
            tw(c, MCX_TW_U) = MCX_INF;
            tw(c, MCX_TW_R) = -1;
            tw(c, MCX_TW_STAMP) = c;
        }
    }

    MCX_M void init(const mcx_i64* P_, mcx_u64 seed_, mcx_i64 trial_, mcx_scratch S_) {
        setup(P_, seed_, trial_, 0, mcx_class(P_, 0), S_);
        reset();
    }

    // Block level keeps one page simulation per hot page in scratch between its attempts:
    // the per-trial words below (MCX_SIMW), then its tasks' words.
    MCX_M void save(mcx_scratch W) {
        mcx_i64* b = W.base;
        const mcx_i64 s = W.st();
        b[0 * s] = kc;
        b[1 * s] = (cur_unmapped ? 1 : 0) | (prev_unmapped ? 2 : 0) | (succ_prev ? 4 : 0) |
                   (final_ ? 8 : 0) | (migrated ? 16 : 0) | (mig_sleeping ? 32 : 0) |
                   (uaf ? 64 : 0) | (error ? 128 : 0);
        b[2 * s] = L_cur;
        b[3 * s] = F_cur;
        b[4 * s] = fs_cur;
        b[5 * s] = T_prev;
        b[6 * s] = F_prev;
        b[7 * s] = fe_prev;
        b[8 * s] = free_t;
        b[9 * s] = last_t;
        b[10 * s] = holder;
        b[11 * s] = mig_t;
        b[12 * s] = mig_w;
        b[13 * s] = faults;
        b[14 * s] = total_wait;
        b[15 * s] = max_wait;
        b[16 * s] = spin;
        b[17 * s] = nstamp;
    }
    MCX_M void load(mcx_scratch W) {
        const mcx_i64* b = W.base;
        const mcx_i64 s = W.st();
        kc = b[0 * s];
        const mcx_i64 f = b[1 * s];
        cur_unmapped = f & 1;
        prev_unmapped = (f & 2) != 0;
        succ_prev = (f & 4) != 0;
        final_ = (f & 8) != 0;
        migrated = (f & 16) != 0;
        mig_sleeping = (f & 32) != 0;
        uaf = (f & 64) != 0;
        error = (f & 128) != 0;
        L_cur = b[2 * s];
        F_cur = b[3 * s];
        fs_cur = b[4 * s];
        T_prev = b[5 * s];
        F_prev = b[6 * s];
        fe_prev = b[7 * s];
        free_t = b[8 * s];
        last_t = b[9 * s];
        holder = b[10 * s];
        mig_t = b[11 * s];
        mig_w = b[12 * s];
        faults = b[13 * s];
        total_wait = b[14 * s];
        max_wait = b[15 * s];
        spin = b[16 * s];
        nstamp = b[17 * s];
        n_sleep_lock = 0;
        for (int c = 0; c < A; ++c) n_sleep_lock += flag(c, TF_SLEEP_LOCK) ? 1 : 0;
    }
    MCX_M bool hung_any() {
        for (int c = 0; c < A; ++c)
            if (flag(c, TF_HUNG)) return true;
        return false;
    }
};
typedef mcx_sim_t<-1> mcx_sim;

// One page-level trial: the migrate_pages/offline loop around attempts (numpy simulate_page).
template <int SPEC>
MCX_NOINLINE void mcx_trial_page(const mcx_i64* MCX_RESTRICT P, mcx_u64 seed, mcx_i64 trial,
                                 mcx_i64* MCX_RESTRICT rec, mcx_scratch scratch) {
    mcx_sim_t<SPEC> sim;
    sim.init(P, seed, trial, scratch);
    const mcx_i64 passes = P[MCX_H_PASSES];
    const mcx_i64 max_attempts = P[MCX_H_MAX_ATTEMPTS];
    const mcx_i64 timeout = P[MCX_H_TIMEOUT_NS];
    mcx_i64 arr = 0, attempts = 0, t_mig = -1, end = 0, last_T = 0;
    bool livelock = false, censored = false;
    for (;;) {
        // Budget (docs/model.md, "Budget"): max_attempts is checked when an attempt would start
        // (every earlier attempt ended before the timeout, or the trial would have stopped).
        const bool cap = attempts >= max_attempts;
        const bool to = !cap && arr >= timeout;
        if (cap || to) {
            censored = cap;
            livelock = to;
            end = cap ? last_T : timeout;
            sim.stop(end);
            break;
        }
        attempts += 1;
        mcx_i64 T = 0;
        bool timed = false;
        const bool ok = sim.attempt(arr, (attempts - 1) % passes, T, timed);
        if (sim.error) break;
        if (timed) {
            // The timeout came during this attempt: a livelock, ended at the timeout.
            livelock = true;
            end = timeout;
            sim.stop(end);
            break;
        }
        last_T = T;
        if (ok) {
            t_mig = T;
            end = mcx_max64(T, sim.last_t);
            break;
        }
        // Next arrival: retry_gap within a migrate_pages call, outer_gap between calls.
        const bool last_pass = ((attempts - 1) % passes) == passes - 1;
        const mcx_i64 gap = last_pass ? sim.draw(MCX_DIST_OUTER_GAP, MCX_P_GAP, attempts, 0, 1)
                                      : sim.draw(MCX_DIST_RETRY_GAP, MCX_P_GAP, attempts, 0, 0);
        arr = last_T + gap;
    }
    if (sim.error) {
        for (int f = 0; f < MCX_NFIELDS; ++f) rec[f] = -1;
        return;
    }
    const bool hung_any = sim.hung_any();
    const bool migrated = sim.migrated;
    rec[MCX_R_MIGRATED] = migrated;
    rec[MCX_R_ATTEMPTS] = attempts;
    rec[MCX_R_CALLS] = attempts > 0 ? (attempts - 1) / passes + 1 : 0;
    rec[MCX_R_T_MIGRATED] = t_mig;
    rec[MCX_R_CALL_FAILED] = !(migrated && attempts <= passes);
    rec[MCX_R_LIVELOCK] = livelock;
    rec[MCX_R_CENSORED] = censored;
    rec[MCX_R_UAF] = sim.uaf;
    rec[MCX_R_HANG] = hung_any && migrated;
    rec[MCX_R_FAULTS] = sim.faults;
    rec[MCX_R_MAX_WAIT] = sim.max_wait;
    rec[MCX_R_TOTAL_WAIT] = sim.total_wait;
    rec[MCX_R_SPIN] = sim.spin;
    rec[MCX_R_END_TIME] = end;
    rec[MCX_R_PAGES_LEFT] = !migrated;
}

// ---------------------------------------------------------------------------------------------
// Block level (numpy_block.simulate_block): the offline loop over a block's pages.
//
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
    MCX_M void open_sim(mcx_sim& sim, mcx_i64 pg) {
        const mcx_i64* C = mcx_class(P, class_of(pg));
        const mcx_scratch w = sim_words(C, pg);
        sim.setup(P, seed, trial, pg, C, task_words(w));
        sim.load(w);
    }
    MCX_M void close_sim(mcx_sim& sim, mcx_i64 pg) {
        const mcx_i64* C = mcx_class(P, class_of(pg));
        sim.save(sim_words(C, pg));
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
        const bool ok = !mcx_transient_held(P, seed, trial, pg, F);
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
    for (int c = 0; c < blk.nclasses; ++c) {
        const mcx_i64* C = mcx_class(P, c);
        if (!blk.hot(C)) continue;
        for (mcx_i64 pg = C[MCX_C_FIRST_PAGE]; pg < C[MCX_C_FIRST_PAGE] + C[MCX_C_COUNT]; ++pg) {
            const mcx_scratch w = blk.sim_words(C, pg);
            sim.setup(P, seed, trial, pg, C, blk.task_words(w));
            sim.reset();
            sim.save(w);
        }
    }

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
        for (int c = 0; c < blk.nclasses; ++c) {
            const mcx_i64* C = mcx_class(P, c);
            if (!blk.hot(C)) continue;
            for (mcx_i64 pg = C[MCX_C_FIRST_PAGE]; pg < C[MCX_C_FIRST_PAGE] + C[MCX_C_COUNT]; ++pg) {
                if (blk.pw(pg) & MCX_PG_MOVED) continue;
                blk.open_sim(sim, pg);
                sim.stop(end);
                error = error || sim.error;
                blk.close_sim(sim, pg);
            }
        }
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
                    for (int c = 0; c < blk.nclasses; ++c) {
                        const mcx_i64* C = mcx_class(P, c);
                        if (!blk.hot(C)) continue;
                        for (mcx_i64 pg = C[MCX_C_FIRST_PAGE];
                             pg < C[MCX_C_FIRST_PAGE] + C[MCX_C_COUNT]; ++pg) {
                            blk.open_sim(sim, pg);
                            end = mcx_max64(end, sim.last_t);
                        }
                    }
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
            blk.open_sim(sim, pg);
            ok = sim.attempt(arr, pas, T, timed);
            error = error || sim.error;
            blk.close_sim(sim, pg);
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
    for (int c = 0; c < blk.nclasses; ++c) {
        const mcx_i64* C = mcx_class(P, c);
        if (!blk.hot(C)) continue;
        for (mcx_i64 pg = C[MCX_C_FIRST_PAGE]; pg < C[MCX_C_FIRST_PAGE] + C[MCX_C_COUNT]; ++pg) {
            blk.open_sim(sim, pg);
            uaf = uaf || sim.uaf;
            hang = hang || (sim.migrated && sim.hung_any());
            faults += sim.faults;
            total_wait += sim.total_wait;
            spin += sim.spin;
            max_wait = mcx_max64(max_wait, sim.max_wait);
        }
    }
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

// One trial: writes MCX_NFIELDS int64 values to rec (all -1 if the simulation made no progress,
// where the numpy engine raises; the Python side raises too).
MCX_FN void mcx_trial(const mcx_i64* MCX_RESTRICT P, mcx_u64 seed, mcx_i64 trial,
                      mcx_i64* MCX_RESTRICT rec, mcx_scratch scratch) {
    if (P[MCX_H_LEVEL]) {
        mcx_trial_block(P, seed, trial, rec, scratch);
        return;
    }
#if defined(MCX_HOST)
    switch ((int)P[MCX_H_STRATEGY]) {
        case MCX_S_REF: mcx_trial_page<MCX_S_REF>(P, seed, trial, rec, scratch); return;
        case MCX_S_DROP: mcx_trial_page<MCX_S_DROP>(P, seed, trial, rec, scratch); return;
        case MCX_S_PTL_PIN: mcx_trial_page<MCX_S_PTL_PIN>(P, seed, trial, rec, scratch); return;
        case MCX_S_LOCK_NOREF: mcx_trial_page<MCX_S_LOCK_NOREF>(P, seed, trial, rec, scratch); return;
        case MCX_S_FLAG_SPIN: mcx_trial_page<MCX_S_FLAG_SPIN>(P, seed, trial, rec, scratch); return;
        case MCX_S_PTE_WAIT: mcx_trial_page<MCX_S_PTE_WAIT>(P, seed, trial, rec, scratch); return;
        default: break;
    }
#elif defined(MCX_DEVICE_SPEC)
    // A device module built for one strategy (-DMCX_DEVICE_SPEC=<code> in $MCEXPLORE_NVRTC_OPTIONS;
    // an experiment, docs/kernels.md) runs that strategy's specialised trial, any other the generic.
    if ((int)P[MCX_H_STRATEGY] == MCX_DEVICE_SPEC) {
        mcx_trial_page<MCX_DEVICE_SPEC>(P, seed, trial, rec, scratch);
        return;
    }
#endif
    mcx_trial_page<-1>(P, seed, trial, rec, scratch);
}
