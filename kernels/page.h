// page.h: the simulation of one page (MODEL.md; docs/model.md), a port of the reference engine
// mcexplore/engines/numpy_page.py: the task state, the draws, the common task events, the
// migrator (stage1, stage2, attempt, stop), advancing the tasks (advance, run_global), save/load
// for block level, and the page-level trial mcx_trial_page.
//
// The numpy engine advances a batch of trials in lock step; here one call simulates one trial
// with plain loops (one GPU thread, or one iteration of a host worker). Everything that decides a
// result is the same: the same events and state machine (the EV_* codes and the functions below
// carry the numpy names), the same draw keys (purpose, k, i, sub), the same tie-breaking and the
// same int64 arithmetic. tests/test_parity.py holds the two to the same bits, field by field.
//
// What a waiter does is its strategy's: the handler mcx_strategy<S> (strategies.h) decides what
// happens at the fault, at the PTL release, on waking and at the strategy's own events. The page
// simulation keeps what every strategy shares and calls the handler through `with_strategy`
// (a direct call when SPEC, the strategy, is known at compile time; a switch over the run-time
// code otherwise). Two traits of the handler change the page simulation itself: global_order (run
// task events one at a time in (time, stamp) order) and takes_page_lock (the migrator acquires the
// page lock from waiters, with trylock passes).
//
// Order of task events. Unless the strategy needs global order, tasks are independent: the numpy
// engine processes all eligible task events "in parallel", and running each task's events to the
// horizon in turn is the same thing. With global order (lock_noref: tasks contend for the page
// lock) one event per trial runs at a time: the eligible event with the smallest (time, stamp),
// the stamp counting the page's schedule() calls (docs/model.md, "Ties").
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
#include "lanes.h"

// How member functions are compiled. MCX_M: __device__ on CUDA, inline on the host.
//   MCX_M_NOINLINE       out of line on the device, inline on the host: the draw, and ret (the
//                        handlers call it from a dozen places of process; inlined at each, process
//                        was 7 300 PTX lines instead of 3 700 + 370, with more spills at block
//                        level). Inlining everything makes NVRTC/nvcc take 10-25 s per build.
//   MCX_M_PROCESS        the event dispatcher: out of line on the device unless -DMCX_PROCESS_INLINE
//   MCX_M_HOST_NOINLINE  out of line on the host only: wake_after. g++ inlines a waiter's wake into
//                        advance once the handler calls are inlined, and then leaves its draw's
//                        sampling and wake-row lookup out of line (+6% instructions on ref, where
//                        every waiter wakes once per attempt); kept apart, its draw is inlined.
#if defined(MCX_CUDA)
#define MCX_M __device__
#define MCX_M_NOINLINE __device__ __noinline__
#if defined(MCX_PROCESS_INLINE)
#define MCX_M_PROCESS __device__
#else
#define MCX_M_PROCESS __device__ __noinline__
#endif
#define MCX_M_HOST_NOINLINE __device__
#else
#define MCX_M inline
#define MCX_M_NOINLINE inline
#define MCX_M_PROCESS inline
#define MCX_M_HOST_NOINLINE __attribute__((noinline))
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
#define TF_REF (1 << 8)          // holds a page reference (the refcount check fails)
#define TF_IN_WAIT (1 << 9)      // between its fault and its return (the wait being measured)
#define TF_PARKED (1 << 10)      // waits for attempt kc to unmap (takes_page_lock: not yet)
#define TF_SPINNING (1 << 11)    // spinning (flag_spin): the time counts as spin
#define TF_SLEEP_LOCK (1 << 12)  // asleep on the page lock, in the queue (lock_noref)
#define TF_HUNG (1 << 13)        // a lost wake-up for good (pte_wait without recheck)
#define TF_EVMASK 0xFF

// The strategy handlers (strategies.h): one specialisation per strategy code, and the dispatch to
// them (mcx_dispatch<SPEC>::call: the handler of SPEC, or for SPEC == -1 of the run-time code).
template <int S>
struct mcx_strategy;
template <int SPEC>
struct mcx_dispatch;

// SPEC is the strategy when it is known at compile time (the host compiles one page-level trial
// per strategy: every handler call is then direct and its traits are constants, which made ref
// 10% faster), or -1 (the strategy read from P at run time: the device, and block level everywhere).
// TILT: the simulation counts a tilted run's statistics when given somewhere to (stats). Without
// it not even the test is compiled: the host's untilted trials and block level (never tilted)
// are the code they were before tilts existed (with the test, g++ stopped inlining the row lookup
// and the sampling into pte_wait's advance: 5-10% slower). A tilted run on the host takes the
// generic trial with TILT; the device has only that one (its draw is out of line anyway).
// W: the lanes of a tile that share this trial (1: one lane runs everything, the host and the
// per-trial device kernel). With W > 1 every lane runs the migrator identically (its state is the
// same in every lane) and the tasks are split: lane l owns tasks l, l + W, ... and is the only one
// to touch their words, so lanes never read each other's task state; the sums of the task events
// (faults, waits, spin, last_t, uaf) are each lane's own and are combined by the tile collectives
// where the migrator or the record needs them (kernels/lanes.h). A strategy with global order
// (lock_noref: its tasks interact through the page lock) runs one event at a time on a tile too:
// the lanes share the pick (each scans its own tasks, a tile argmin takes the smallest (time,
// stamp)), the task's lane runs the event, and the others take from it the trial's state a task
// event can change (tile_take_from); its sums stay the lane's own, as above. Block level and
// tilted runs never run with W > 1 (block level keeps pages in scratch between attempts, and a
// tilted run counts per trial).
template <int SPEC, bool TILT = false, int W = 1>
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
    mcx_pick_tree* pt;   // the global order's pick while run_global runs, else null
    mcx_lane_tile* lt;   // the lane scheduler's queues (lanes.h), or null: the walk
#endif
    mcx_lane_ctx lc;     // this lane of the tile (W > 1)
    // A tilted run's statistics of this trial (params.TiltLayout; null: none, always without TILT)
    // and the last transient window it counted.
    mcx_i64* stats;
    mcx_i64 tr_last;

    // Migrator, this trial: attempt kc ("cur") and kc - 1 ("prev", complete).
    mcx_i64 kc;
    bool cur_unmapped;
    mcx_i64 L_cur, F_cur, fs_cur;
    bool prev_unmapped;
    mcx_i64 T_prev, fe_prev;
    bool succ_prev;
    bool final_, migrated;
    mcx_i64 free_t, last_t;
    // The page lock held by tasks (takes_page_lock; the lock_noref handler acts on it): the
    // holder (task + 1, 0 none), the migrator's wake time and wake count while it sleeps on it.
    mcx_i64 holder, mig_t, mig_w;
    mcx_i64 nstamp;    // the next event stamp (global_order)
    int n_sleep_lock;  // tasks asleep on the page lock: the queue's length (recounted by load)
    bool mig_sleeping;
    // outcomes
    bool uaf;
    mcx_i64 faults, total_wait, max_wait, spin;
    bool error;

    // -- the strategy ----------------------------------------------------------------------------
    // f(mcx_strategy<S>()) for this page's strategy S: f is a generic lambda calling the handler,
    // e.g. with_strategy([&](auto h) { h.on_wake(*this, c, t); }).
    template <class F>
    MCX_M auto with_strategy(F&& f) {
        return mcx_dispatch<SPEC>::call(strat, static_cast<F&&>(f));
    }
    // The handler's traits. global_order is read at every schedule(): at run time it is the
    // registry's MCX_GLOBAL_ORDER (which every handler's trait is, strategies.h checks).
    MCX_M bool global_order() const {
        if constexpr (SPEC >= 0) return mcx_strategy<SPEC>::global_order;
        else return MCX_GLOBAL_ORDER(strat);
    }
    MCX_M bool takes_page_lock() {
        return with_strategy([](auto h) { return decltype(h)::takes_page_lock; });
    }

    // -- the tile's lanes (W > 1; kernels/lanes.h) ------------------------------------------------
    // The first task this lane owns (tasks c0, c0 + W, ...), and whether it owns task c.
    MCX_M int c0() const {
        if constexpr (W == 1) return 0;
        else return lc.lane;
    }
    MCX_M bool mine(int c) const {
        if constexpr (W == 1) return true;
        else return (c % W) == lc.lane;
    }
    MCX_M bool tile_any(bool v) {
        if constexpr (W == 1) return v;
        else return mcx_lanes_any<W>(lc, v);
    }
    MCX_M mcx_i64 tile_sum(mcx_i64 v) {
        if constexpr (W == 1) return v;
        else return mcx_lanes_sum<W>(lc, v);
    }
    MCX_M mcx_i64 tile_max(mcx_i64 v) {
        if constexpr (W == 1) return v;
        else return mcx_lanes_max<W>(lc, v);
    }
    // Global order on a tile: one lane runs an event (its task's owner), the others take the
    // trial's state it may change from that lane (see run_global).
    MCX_M void tile_take_from(int src) {
        if constexpr (W > 1) {
            holder = mcx_lanes_bcast<W>(lc, holder, src);
            mig_t = mcx_lanes_bcast<W>(lc, mig_t, src);
            mig_w = mcx_lanes_bcast<W>(lc, mig_w, src);
            nstamp = mcx_lanes_bcast<W>(lc, nstamp, src);
            n_sleep_lock = (int)mcx_lanes_bcast<W>(lc, n_sleep_lock, src);
            mig_sleeping = mcx_lanes_bcast<W>(lc, mig_sleeping ? 1 : 0, src) != 0;
        } else {
            (void)src;
        }
    }

    // -- task state ------------------------------------------------------------------------------
    // Word f of task c. A tile (W > 1) keeps each word of all tasks together (word f of task c at
    // f * A + c), so that neighbouring lanes, which own neighbouring tasks, read neighbouring words.
    MCX_M mcx_i64& tw(int c, int f) {
        if constexpr (W > 1) return S.base[(mcx_i64)f * A + c];
        else return S.base[((mcx_i64)c * MCX_TW + f) * S.st()];
    }
    MCX_M int ev(int c) { return (int)(tw(c, MCX_TW_EV) & TF_EVMASK); }
    MCX_M bool flag(int c, mcx_i64 f) { return (tw(c, MCX_TW_EV) & f) != 0; }
    MCX_M void set_flag(int c, mcx_i64 f, bool on) {
        mcx_i64& w = tw(c, MCX_TW_EV);
        w = on ? (w | f) : (w & ~f);
#if defined(MCX_HOST)
        // Of the flags only TF_PARKED is in the pick's key (pick_key).
        if (global_order() && pt && (f & TF_PARKED)) pick_touch(c);
#endif
    }
    MCX_M void schedule(int c, int e, mcx_i64 t) {
        mcx_i64& w = tw(c, MCX_TW_EV);
        w = (w & ~(mcx_i64)TF_EVMASK) | (mcx_i64)e;
        tw(c, MCX_TW_T) = t;
        if (global_order()) tw(c, MCX_TW_STAMP) = nstamp++;
#if defined(MCX_HOST)
        if (global_order() && pt) pick_touch(c);
#endif
    }
#if defined(MCX_HOST)
    // The global order's tournament tree (picktree.h), live while run_global runs events.
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
            pt->put(c, c < A ? pick_key(c) : MCX_PICK_NONE, c < A ? tw(c, MCX_TW_STAMP) : MCX_PICK_NONE);
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
                return sampled(d, w);
            if (dc->wanted(purpose)) return sampled(d, dc->get(trial, purpose, page, k, i, sub, A));
        }
#endif
        return sampled(d, mcx_draw(seed, trial, purpose, page, k, i, sub));
    }
    MCX_M mcx_i64 sampled(int d, mcx_words w) {
        if constexpr (TILT) {
            if (stats) return counted(d, w);
        }
        return mcx_sample(P, d, w);
    }
    // A tilted run counts every sampled draw of a distribution its map names (pack.py: the leaf
    // table of d gives the count slot and the total slot, or -1, of each leaf).
    MCX_M_HOST_NOINLINE mcx_i64 counted(int d, mcx_words w) {
        const mcx_i64 off = P[P[MCX_H_IS_MAP_OFF] + d];
        if (off < 0) return mcx_sample(P, d, w);
        mcx_i64 leaf;
        const mcx_i64 v = mcx_sample_leaf(P, d, w, &leaf);
        const mcx_i64* L = P + off + 2 * leaf;
        stats[L[0]] += 1;
        if (L[1] >= 0) stats[L[1]] += v;
        return v;
    }
    MCX_M mcx_i64 draw_mig(int d, int purpose, mcx_i64 k) { return draw(d, purpose, k, 0, 0); }

    // -- helpers the handlers share ----------------------------------------------------------------
    // Who holds the page lock at t (migrator only): lc = attempt kc, lp = attempt kc - 1.
    MCX_M void locked_by(mcx_i64 t, bool& lc, bool& lp) {
        lc = cur_unmapped && t >= L_cur;
        lp = !lc && t < T_prev;
    }
    MCX_M mcx_i64 sub_of(int c) {
        return (tw(c, MCX_TW_JF) << MCX_SUB_SHIFT) | (tw(c, MCX_TW_W) & ((1 << MCX_SUB_SHIFT) - 1));
    }
    MCX_M_HOST_NOINLINE void wake_after(int c, mcx_i64 base) {
        const mcx_i64 wl = draw(MCX_DIST_WAKE_LATENCY, MCX_P_WAKE, tw(c, MCX_TW_KF), c + 1, sub_of(c));
        tw(c, MCX_TW_W) += 1;
        schedule(c, MCX_EV_WAKE, base + wl);
    }
    // Sleep on the migrator's page lock: attempt kc's (lc: its unlock at F_cur is a virtual event
    // until stage 2 decides it) or attempt kc - 1's (lp: wake after its unlock at T_prev).
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
            // Attempt kc has not unmapped yet (the migrator still acquiring the page lock).
            set_flag(c, TF_PARKED, true);
            schedule(c, MCX_EV_ACCESS, r);
        }
    }

    // The wait is over at r (out of line on the device, see MCX_M_NOINLINE).
    MCX_M_NOINLINE void ret(int c, mcx_i64 r) {
        const mcx_i64 wl = flag(c, TF_IN_WAIT) ? r - tw(c, MCX_TW_WAIT_START) : 0;
        total_wait += wl;
        max_wait = mcx_max64(max_wait, wl);
        set_flag(c, TF_IN_WAIT, false);
        if (flag(c, TF_SPINNING)) spin += r - tw(c, MCX_TW_P);
        set_flag(c, TF_SPINNING, false);
        access(c, r);
    }

    // -- the events ----------------------------------------------------------------------------
    // The handler takes the PTL on the entry at x. The common part: is the PTE still a migration
    // entry (else no fault, no wait), the fault counted, the attempt it waits on, the PTL hold;
    // then the strategy's at_fault.
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
        with_strategy([&](auto h) { h.at_fault(*this, c, x, p, inc, inp, frozen, kf, sub); });
    }

    // Event E of task c at t: the physics of one event, whichever scheduler runs it (process,
    // the walk's dispatch; the lane scheduler calls it with E known for a whole queue).
    template <int E>
    MCX_M void run_event(int c, mcx_i64 t) {
        MCX_COUNT(MCX_CNT_EVENTS, 1);
        // The last event that changes state (an idle task's access after the restore is not one).
        last_t = mcx_max64(last_t, (E == MCX_EV_NONE || E == MCX_EV_ACCESS) ? 0 : t);
        if constexpr (E == MCX_EV_ACCESS) {
            access(c, t);
        } else if constexpr (E == MCX_EV_FAULT) {
            fault(c, t);
        } else if constexpr (E == MCX_EV_WAKE_RES) {
            // Asleep on attempt kc - 1's lock, now known to be dropped at T_prev.
            wake_after(c, T_prev);
        } else if constexpr (E == MCX_EV_RET) {
            ret(c, t);
        } else {
            // The strategy's: the PTL release, the wake, its own events. An event no handler
            // owns (none is ever scheduled) does nothing.
            with_strategy([&](auto h) {
                if constexpr (E == MCX_EV_PTL)
                    h.at_ptl_release(*this, c, t);
                else if constexpr (E == MCX_EV_WAKE)
                    h.on_wake(*this, c, t);
                else
                    h.on_event(*this, E, c, t);
            });
        }
    }

    MCX_M_PROCESS void process(int c) {
        const int e = ev(c);
        const mcx_i64 t = tw(c, MCX_TW_T);
        // One dispatch: on the device and at block level a single switch over the event, then
        // (in the strategy's events) over the strategy.
        switch (e) {
#define MCX_PROCESS_CASE(E)   \
    case E:                   \
        run_event<E>(c, t);   \
        break;
            MCX_FOR_EACH_TASK_EVENT(MCX_PROCESS_CASE)
#undef MCX_PROCESS_CASE
            default:
                last_t = mcx_max64(last_t, e == MCX_EV_NONE ? 0 : t);
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

    // The global order's pick: the eligible task with the smallest (time, stamp) (docs/model.md,
    // "Ties").
    MCX_M int global_pick(mcx_i64 horizon) {
#if defined(MCX_HOST)
        if (pt) {
            // The smallest (time, stamp) of all tasks with an event: if it is before the horizon
            // it is eligible, hence the pick. Otherwise only virtual events can be eligible: scan.
            if (pt->top_key() < horizon) return pt->top();
        }
#endif
        // On a tile each lane scans its own tasks and the lanes take the smallest of theirs.
        int best = -1;
        mcx_i64 bt = MCX_INF, bs = 0;
        for (int c = c0(); c < A; c += W) {
            if (!eligible(c, horizon)) continue;
            const mcx_i64 t = tw(c, MCX_TW_T), st = tw(c, MCX_TW_STAMP);
            if (best < 0 || t < bt || (t == bt && st < bs)) {
                best = c;
                bt = t;
                bs = st;
            }
        }
        if constexpr (W > 1) {
            return (int)mcx_lanes_argmin<W>(lc, best < 0 ? MCX_I64_MAX : bt, best < 0 ? MCX_I64_MAX : bs, best);
        }
        return best;
    }

    MCX_M void advance(mcx_i64 horizon) {
        if (A == 0 || error) return;
        if (global_order()) {
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
        if constexpr (W > 1) {
            advance_tile(horizon);
        } else {
#if defined(MCX_HOST)
            // Only the generic simulation has the lane scheduler (mcx_trial takes it for sched
            // "lanes"): compiled into every per-strategy trial it cost the build 10 s.
            if constexpr (SPEC < 0) {
                if (lt) {
                    advance_lanes(horizon);
                    return;
                }
            }
#endif
            // The walk: every task's chain to the horizon in turn.
            mcx_i64 steps = 0;
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
    }

    // The tile's schedule (W > 1): steps; in each, event kind by kind in a fixed order, every lane
    // runs that event for each of its own tasks that has it before the horizon, so the lanes run
    // one event method, and one draw call site, together. The step count and the stop are the
    // tile's (a sum over the lanes): the guard on events trips when the whole walk's would.
    MCX_M void advance_tile(mcx_i64 horizon) {
        mcx_i64 total = 0;
        for (;;) {
            mcx_i64 ran = 0;
#define MCX_TILE_KIND(E) ran += tile_kind<E>(horizon);
            MCX_FOR_EACH_TASK_EVENT(MCX_TILE_KIND)
#undef MCX_TILE_KIND
            const mcx_i64 all = tile_sum(ran);
#if defined(MCX_HOST)
            if (all && lc.lane == 0 && lc.emu->counting) lc.emu->counts[0] += 1;
#endif
            if (all == 0) break;
            total += all;
            if (total > MCX_MAX_EVENTS) {
                error = true;
                break;
            }
        }
    }
    template <int E>
    MCX_M mcx_i64 tile_kind(mcx_i64 horizon) {
        mcx_i64 n = 0;
        for (int c = c0(); c < A; c += W) {
            if (ev(c) == E && eligible(c, horizon)) {
                run_event<E>(c, tw(c, MCX_TW_T));
                ++n;
            }
        }
#if defined(MCX_HOST)
        // What the lanes did together: events run, and the lane-slots the step took (every lane
        // waits for the one with the most; lanes.h).
        if (!lc.emu->counting) return n;
        const mcx_i64 most = tile_max(n), sum = tile_sum(n);
        if (lc.lane == 0 && most) {
            lc.emu->counts[1] += sum;
            lc.emu->counts[2] += (mcx_i64)W * most;
            lc.emu->counts[3] += 1;
        }
#endif
        return n;
    }

#if defined(MCX_HOST)
    // The lane scheduler (lanes.h): tile steps, each running one event of every task that has one
    // before the horizon, queue by queue. A task without an eligible event cannot get one from
    // another task's event (no global order: tasks share only sums), so after the first step only
    // the tasks that just ran are looked at again.
    MCX_M void advance_lanes(mcx_i64 horizon) {
        int* live = lt->live;
        int* q = lt->q;
        int n = 0;
        for (int c = 0; c < A; ++c)
            if (eligible(c, horizon)) live[n++] = c;
        mcx_i64 steps = 0;
        while (n > 0) {
            // Group this step's tasks by event kind, stable (a counting sort).
            int start[MCX_NEV + 1];
            for (int e = 0; e <= MCX_NEV; ++e) start[e] = 0;
            for (int j = 0; j < n; ++j) start[ev(live[j]) + 1] += 1;
            for (int e = 0; e < MCX_NEV; ++e) start[e + 1] += start[e];
            int pos[MCX_NEV];
            for (int e = 0; e < MCX_NEV; ++e) pos[e] = start[e];
            for (int j = 0; j < n; ++j) {
                const int c = live[j];
                q[pos[ev(c)]++] = c;
            }
            lt->count_step();
#define MCX_LANES_QUEUE(E)                                                       \
    if (start[E + 1] > start[E]) {                                               \
        lt->count_queue(start[E + 1] - start[E]);                                \
        for (int j = start[E]; j < start[E + 1]; ++j) {                          \
            const int c = q[j];                                                  \
            run_event<E>(c, tw(c, MCX_TW_T));                                    \
        }                                                                        \
    }
            MCX_FOR_EACH_TASK_EVENT(MCX_LANES_QUEUE)
#undef MCX_LANES_QUEUE
            steps += n;
            if (steps > MCX_MAX_EVENTS) {
                error = true;
                return;
            }
            int m = 0;
            for (int j = 0; j < n; ++j) {
                const int c = q[j];
                if (eligible(c, horizon)) live[m++] = c;
            }
            n = m;
        }
    }
#endif

    // Global order: run the eligible events one at a time up to horizon (or, with until_mig, up to
    // the migrator's wake time mig_t, which an event may change).
    MCX_M void run_global(mcx_i64 horizon, bool until_mig) {
#if defined(MCX_HOST)
        pick_open();
#endif
        mcx_i64 steps = 0;
        for (;;) {
            const int c = global_pick(until_mig ? mcx_min64(mig_t, timeout) : horizon);
            if (c < 0) break;
            if constexpr (W > 1) {
                // The pick is the tile's; the event runs on its task's lane only (it may write
                // other tasks' words: the sleepers it wakes), which hands the trial's state over.
                if (mine(c)) process(c);
                tile_take_from(c % W);
#if defined(MCX_HOST)
                if (lc.lane == 0 && lc.emu->counting) {
                    lc.emu->counts[0] += 1;
                    lc.emu->counts[1] += 1;
                    lc.emu->counts[2] += W;
                    lc.emu->counts[3] += 1;
                }
#endif
            } else {
                process(c);
            }
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
            if (i <= A && mine(i - 1)) tw(i - 1, MCX_TW_U) = cu;
        }
        L_cur = L;
        F_cur = cu + draw_mig(MCX_DIST_PRE_FREEZE, MCX_P_PRE_FREEZE, k);
        fs_cur = flag_unmap_end ? cu : L;
        cur_unmapped = true;
        for (int c = c0(); c < A; c += W) set_flag(c, TF_PARKED, false);
    }

    MCX_M void shift() {
        kc += 1;
        cur_unmapped = false;
        L_cur = MCX_INF;
        fs_cur = MCX_INF;
        for (int c = c0(); c < A; c += W) tw(c, MCX_TW_U) = MCX_INF;
    }

    MCX_M bool stage2(mcx_i64& T) {
        const mcx_i64 k = kc;
        const mcx_i64 F = F_cur;
        bool held = false;
        for (int c = c0(); c < A && !held; c += W) held = flag(c, TF_REF);
        held = tile_any(held);
        if constexpr (TILT) {
            // A tilted run counts the check's transient windows whether or not a task holds the
            // page.
            const mcx_i64 ts = P[MCX_H_IS_TRANSIENT_SLOT];
            mcx_i64* tally = stats && ts >= 0 ? stats + ts : nullptr;
            if (!held || tally)
                held = mcx_transient_held<true>(P, seed, trial, page, F, tally, &tr_last) || held;
        } else {
            if (!held) held = mcx_transient_held<false>(P, seed, trial, page, F, nullptr, nullptr);
        }
        const bool ok = !held;
        const mcx_i64 fh = (file && ok) ? draw_mig(MCX_DIST_FREEZE_HOLD, MCX_P_FREEZE_HOLD, k) : 0;
        const mcx_i64 cp = ok ? draw_mig(MCX_DIST_COPY, MCX_P_COPY, k) : 0;
        mcx_i64 cr = F + (ok ? fh + cp : 0);
        const bool remap_c = mcx_dist_is_const(P, MCX_DIST_REMAP_PTE);
        const mcx_i64 remap_v = mcx_dist_const(P, MCX_DIST_REMAP_PTE);
        for (int i = 1; i <= M; ++i) {
            cr += remap_c ? remap_v : draw(MCX_DIST_REMAP_PTE, MCX_P_REMAP, k, i, 0);
            if (i <= A && mine(i - 1)) tw(i - 1, MCX_TW_R) = cr;
        }
        T = cr;
        prev_unmapped = true;
        T_prev = T;
        fe_prev = F + ((ok && file) ? fh : 0);
        succ_prev = ok;
        shift();
        return ok;
    }

    MCX_M void trylock_fail(mcx_i64 arr) {
        prev_unmapped = false;
        T_prev = arr;
        fe_prev = arr;
        succ_prev = false;
        F_cur = arr;
        shift();
    }

    // takes_page_lock: the migrator acquires the page lock, which a waiter may hold. Returns false
    // on a trylock failure; late: it sleeps on a waiter's lock past the timeout.
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
    // timed: the attempt did not end before the timeout (numpy PageSim.attempt): not ok, and no
    // task has run past the timeout.
    MCX_M bool attempt(mcx_i64 arr, mcx_i64 pidx, mcx_i64& T, bool& timed) {
        mcx_i64 L = arr;
        timed = false;
        T = arr;
        if (takes_page_lock()) {
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
        for (int c = c0(); c < A; c += W) set_flag(c, TF_PARKED, false);
        advance(end);
        for (int c = c0(); c < A; c += W) {
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
        lt = mcx_tls_lane_tile;
        if (lt && A > lt->cap) lt = nullptr;
        if constexpr (W > 1) {
            // A tile's lanes draw and walk on their own (the host's rows and queues are per trial).
            dc = nullptr;
            pt = nullptr;
            lt = nullptr;
        }
#endif
        stats = nullptr;
        tr_last = MCX_I64_MIN;
    }

    // The state at time 0 (numpy PageSim.__init__).
    MCX_M void reset() {
        kc = 1;
        n_sleep_lock = 0;
        cur_unmapped = false;
        L_cur = MCX_INF;
        F_cur = 0;
        fs_cur = MCX_INF;
        prev_unmapped = false;
        T_prev = -1;
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
        for (int c = c0(); c < A; c += W) {
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
    // the per-trial words below (17 of the MCX_SIMW reserved), then its tasks' words.
    MCX_M void save(mcx_scratch out) {
        mcx_i64* b = out.base;
        const mcx_i64 s = out.st();
        b[0 * s] = kc;
        b[1 * s] = (cur_unmapped ? 1 : 0) | (prev_unmapped ? 2 : 0) | (succ_prev ? 4 : 0) |
                   (final_ ? 8 : 0) | (migrated ? 16 : 0) | (mig_sleeping ? 32 : 0) |
                   (uaf ? 64 : 0) | (error ? 128 : 0);
        b[2 * s] = L_cur;
        b[3 * s] = F_cur;
        b[4 * s] = fs_cur;
        b[5 * s] = T_prev;
        b[6 * s] = fe_prev;
        b[7 * s] = free_t;
        b[8 * s] = last_t;
        b[9 * s] = holder;
        b[10 * s] = mig_t;
        b[11 * s] = mig_w;
        b[12 * s] = faults;
        b[13 * s] = total_wait;
        b[14 * s] = max_wait;
        b[15 * s] = spin;
        b[16 * s] = nstamp;
    }
    MCX_M void load(mcx_scratch in) {
        const mcx_i64* b = in.base;
        const mcx_i64 s = in.st();
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
        fe_prev = b[6 * s];
        free_t = b[7 * s];
        last_t = b[8 * s];
        holder = b[9 * s];
        mig_t = b[10 * s];
        mig_w = b[11 * s];
        faults = b[12 * s];
        total_wait = b[13 * s];
        max_wait = b[14 * s];
        spin = b[15 * s];
        nstamp = b[16 * s];
        n_sleep_lock = 0;
        for (int c = 0; c < A; ++c) n_sleep_lock += flag(c, TF_SLEEP_LOCK) ? 1 : 0;
    }
    MCX_M bool hung_any() {
        bool h = false;
        for (int c = c0(); c < A && !h; c += W) h = flag(c, TF_HUNG);
        return tile_any(h);
    }
};
typedef mcx_sim_t<-1> mcx_sim;  // block level's: never tilted

// One page-level trial: the migrate_pages/offline loop around attempts (numpy_page.simulate_page).
// TILT: P may be tilted (mcx_sim_t; mcx_trial never runs a tilted P without it).
// W > 1: lane lc.lane of a tile of W lanes (every lane calls it; all write the same record).
template <int SPEC, bool TILT, int W = 1>
MCX_NOINLINE void mcx_trial_page(const mcx_i64* MCX_RESTRICT P, mcx_u64 seed, mcx_i64 trial,
                                 mcx_i64* MCX_RESTRICT rec, mcx_scratch scratch,
                                 mcx_lane_ctx lc = mcx_lane_ctx()) {
    static_assert(W == 1 || !TILT, "a tilted run counts per trial: never on a tile");
    mcx_sim_t<SPEC, TILT, W> sim;
    sim.lc = lc;
    sim.init(P, seed, trial, scratch);
    // A tilted run's statistics follow the fields of the record (mcx_trial), zero at the start.
    const mcx_i64 nslot = TILT ? P[MCX_H_IS_NSLOT] : 0;
    if (nslot > 0) {
        for (mcx_i64 s = 0; s < nslot; ++s) rec[MCX_NFIELDS + s] = 0;
        sim.stats = rec + MCX_NFIELDS;
    }
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
            sim.last_t = sim.tile_max(sim.last_t);
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
        for (mcx_i64 f = 0; f < MCX_NFIELDS + nslot; ++f) rec[f] = -1;
        return;
    }
    const bool hung_any = sim.hung_any();
    const bool migrated = sim.migrated;
    if constexpr (W > 1) {
        sim.faults = sim.tile_sum(sim.faults);
        sim.max_wait = sim.tile_max(sim.max_wait);
        sim.total_wait = sim.tile_sum(sim.total_wait);
        sim.spin = sim.tile_sum(sim.spin);
        sim.uaf = sim.tile_any(sim.uaf);
    }
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
