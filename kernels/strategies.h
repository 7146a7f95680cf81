// strategies.h: the waiting strategies (MODEL.md 1.4), one handler each: what the fault handler's
// waiter does at the fault, at the PTL release, on waking and at the strategy's own events.
//
// mcx_strategy<S> is the handler of strategy code S (MCX_S_<NAME>, numbered by the registry
// mcexplore/strategies.py; the numpy engine's handler classes in
// mcexplore/engines/numpy_strategies.py have the same hooks under the same names). Every
// specialisation provides, as static member templates taking the page simulation `Sim& s`
// (mcx_sim_t<SPEC, TILT>, page.h; its helpers locked_by, sleep_on_unlock, wake_after, ret,
// schedule, set_flag, draw and its state are public):
//
//   global_order     its tasks interact (through the page lock): run task events one at a time in
//                    (time, stamp) order; MCX_GLOBAL_ORDER(S) of the generated registry macros
//   takes_page_lock  the migrator acquires the page lock, which a waiter may hold (acquire(),
//                    trylock passes)
//   at_fault(s, c, x, p, inc, inp, frozen, kf, sub)
//                    task c's handler holds the PTL on a migration entry at x (of attempt kc if
//                    inc, of the complete attempt kc - 1 if inp) and drops it at p (drawn);
//                    frozen: get_page_unless_zero would fail (a successful file attempt holds
//                    the count frozen); kf, sub: the fault's draw key (attempt and sub word)
//   at_ptl_release(s, c, p)   MCX_EV_PTL: the PTL dropped at p
//   on_wake(s, c, t)          MCX_EV_WAKE: woken at t
//   on_event(s, e, c, t)      the strategy's own events; returns false for one it does not own
//
// The page simulation keeps the events every strategy shares (ACCESS, FAULT's common part,
// WAKE_RES, RET). mcx_dispatch<SPEC>::call (at the end of this file) picks the handler: for
// SPEC >= 0 (the host's page-level trials, one per strategy) the call is direct and inlined; for
// SPEC == -1 (the device, and block level) a switch over the run-time code, generated from
// MCX_FOR_EACH_STRATEGY, calls the right specialisation, so a new strategy is a new
// specialisation here and a registry row, never a hand-edited switch. No virtual functions and no
// function pointers: everything is a template, __device__ on CUDA (MCX_M).
#pragma once
#include "page.h"

// The traits of strategy S from the registry (constants.h), and the hooks a strategy without
// anything to do there gets.
template <int S>
struct mcx_strategy_defaults {
    static constexpr bool global_order = MCX_GLOBAL_ORDER(S);
    static constexpr bool takes_page_lock = MCX_TAKES_PAGE_LOCK(S);
    // Never reached unless the strategy schedules MCX_EV_PTL.
    template <class Sim>
    static MCX_M void at_ptl_release(Sim& s, int c, mcx_i64 p) {
        (void)s, (void)c, (void)p;
    }
    // A waiter without a reference returns when woken.
    template <class Sim>
    static MCX_M void on_wake(Sim& s, int c, mcx_i64 t) {
        s.ret(c, t);
    }
    template <class Sim>
    static MCX_M bool on_event(Sim& s, int e, int c, mcx_i64 t) {
        (void)s, (void)e, (void)c, (void)t;
        return false;
    }
};

// -- ref: v4.19, the seed's bug ----------------------------------------------------------------
// get_page_unless_zero at the fault, sleep on the page lock holding the reference, put_page when
// woken with the page unlocked.
template <>
struct mcx_strategy<MCX_S_REF> : mcx_strategy_defaults<MCX_S_REF> {
    // get_page_unless_zero: false (and back at p, no wait) while the count is frozen.
    template <class Sim>
    static MCX_M bool get_ref(Sim& s, int c, mcx_i64 p, bool frozen) {
        if (frozen) {
            s.schedule(c, MCX_EV_RET, p);
            return false;
        }
        s.set_flag(c, TF_REF, true);
        return true;
    }
    // wait_on_page_locked with the reference: if an attempt holds the page lock at t, keep the
    // reference and sleep on; else put_page and return.
    template <class Sim>
    static MCX_M void put_when_unlocked(Sim& s, int c, mcx_i64 t) {
        bool lc, lp;
        s.locked_by(t, lc, lp);
        s.sleep_on_unlock(c, lc, lp);
        if (!(lc || lp)) {
            s.set_flag(c, TF_REF, false);
            s.ret(c, t);
        }
    }

    template <class Sim>
    static MCX_M void at_fault(Sim& s, int c, mcx_i64 x, mcx_i64 p, bool inc, bool inp, bool frozen,
                               mcx_i64 kf, mcx_i64 sub) {
        (void)x, (void)inc, (void)inp, (void)kf, (void)sub;
        if (get_ref(s, c, p, frozen)) s.schedule(c, MCX_EV_PTL, p);
    }
    template <class Sim>
    static MCX_M void at_ptl_release(Sim& s, int c, mcx_i64 p) {
        put_when_unlocked(s, c, p);
    }
    template <class Sim>
    static MCX_M void on_wake(Sim& s, int c, mcx_i64 t) {
        put_when_unlocked(s, c, t);
    }
    // on_event: none of its own.
};

// -- drop: put_and_wait_on_page_locked(), v5.0 -------------------------------------------------
// Take a reference, enqueue, test the lock bit and put_page at b = p + drop_hold (MCX_EV_DROPB);
// sleep without the reference.
template <>
struct mcx_strategy<MCX_S_DROP> : mcx_strategy_defaults<MCX_S_DROP> {
    template <class Sim>
    static MCX_M void at_fault(Sim& s, int c, mcx_i64 x, mcx_i64 p, bool inc, bool inp, bool frozen,
                               mcx_i64 kf, mcx_i64 sub) {
        (void)x, (void)inc, (void)inp;
        if (!mcx_strategy<MCX_S_REF>::get_ref(s, c, p, frozen)) return;
        const mcx_i64 b = p + s.draw(MCX_DIST_DROP_HOLD, MCX_P_DROP_HOLD, kf, c + 1, sub);
        s.schedule(c, MCX_EV_DROPB, b);
    }
    // at_ptl_release: never (drop schedules MCX_EV_DROPB instead); on_wake: return.
    template <class Sim>
    static MCX_M bool on_event(Sim& s, int e, int c, mcx_i64 t) {
        if (e != MCX_EV_DROPB) return false;
        // put_page, then sleep on the lock without the reference if it is still held.
        s.set_flag(c, TF_REF, false);
        bool lc, lp;
        s.locked_by(t, lc, lp);
        s.sleep_on_unlock(c, lc, lp);
        if (!(lc || lp)) s.ret(c, t);
        return true;
    }
};

// -- ptl_pin: migration_entry_wait_on_locked(), v5.17 and later --------------------------------
// Enqueue under the PTL (the entry pins the page), no reference; sleep until the unlock.
template <>
struct mcx_strategy<MCX_S_PTL_PIN> : mcx_strategy_defaults<MCX_S_PTL_PIN> {
    template <class Sim>
    static MCX_M void at_fault(Sim& s, int c, mcx_i64 x, mcx_i64 p, bool inc, bool inp, bool frozen,
                               mcx_i64 kf, mcx_i64 sub) {
        (void)x, (void)inc, (void)inp, (void)frozen, (void)kf, (void)sub;
        s.schedule(c, MCX_EV_PTL, p);
    }
    // Enqueued under the PTL at x: any unlock of the fault's attempt after x wakes it.
    template <class Sim>
    static MCX_M void at_ptl_release(Sim& s, int c, mcx_i64 p) {
        const mcx_i64 kw = s.tw(c, MCX_TW_KW);
        const bool lc = kw == s.kc;
        const bool unlocked = (kw < s.kc - 1) || (kw == s.kc - 1 && s.T_prev <= p);
        const bool lp = !lc && !unlocked;
        s.sleep_on_unlock(c, lc, lp);
        if (unlocked) s.ret(c, p);
    }
    // on_wake: return.
};

// -- lock_noref: Michal Hocko's proposal in the seed -------------------------------------------
// Drop the PTL, lock_page without a reference (at y = p + noref_gap: MCX_EV_TOUCH), hold it
// lock_hold (MCX_EV_UNLOCK), unlock; it can touch a freed page (uaf). Waiters contend for the
// page lock with each other and with the migrator, hence the global order and the migrator's
// acquire(). Its state in the page simulation: holder, the FIFO of sleepers (MCX_TW_QUEUE,
// n_sleep_lock), the migrator's sleep (mig_sleeping, mig_t, mig_w).
template <>
struct mcx_strategy<MCX_S_LOCK_NOREF> : mcx_strategy_defaults<MCX_S_LOCK_NOREF> {
    template <class Sim>
    static MCX_M void touch_uaf(Sim& s, mcx_i64 t) {
        if (s.final_ && t >= s.free_t) s.uaf = true;
    }
    // lock_page at t: sleep on the migrator's lock, or on a waiter's (in the queue), or take it.
    template <class Sim>
    static MCX_M void try_lock(Sim& s, int c, mcx_i64 t) {
        touch_uaf(s, t);
        bool lc, lp;
        s.locked_by(t, lc, lp);
        s.sleep_on_unlock(c, lc, lp);
        if (lc || lp) return;
        if (s.holder > 0) {
            s.set_flag(c, TF_SLEEP_LOCK, true);
            s.tw(s.n_sleep_lock, MCX_TW_QUEUE) = c;
            s.n_sleep_lock += 1;
            s.schedule(c, MCX_EV_NONE, MCX_INF);
            return;
        }
        s.holder = c + 1;
        const mcx_i64 lh = s.draw(MCX_DIST_LOCK_HOLD, MCX_P_LOCK_HOLD, s.tw(c, MCX_TW_KF), c + 1, s.sub_of(c));
        s.schedule(c, MCX_EV_UNLOCK, t + lh);
    }
    template <class Sim>
    static MCX_M void unlock(Sim& s, int c, mcx_i64 u) {
        touch_uaf(s, u);
        s.holder = 0;
        // The page's wait queue is first in, first out: sleepers wake in the order they slept.
        for (int q = 0; q < s.n_sleep_lock; ++q) {
            const int j = (int)s.tw(q, MCX_TW_QUEUE);
            s.set_flag(j, TF_SLEEP_LOCK, false);
            s.wake_after(j, u);
        }
        s.n_sleep_lock = 0;
        if (s.mig_sleeping) {
            const mcx_i64 wl = s.draw(MCX_DIST_WAKE_LATENCY, MCX_P_MIG_WAKE, s.kc, 0, s.mig_w);
            s.mig_w += 1;
            s.mig_t = u + wl;
            s.mig_sleeping = false;
        }
        s.ret(c, u);
    }

    template <class Sim>
    static MCX_M void at_fault(Sim& s, int c, mcx_i64 x, mcx_i64 p, bool inc, bool inp, bool frozen,
                               mcx_i64 kf, mcx_i64 sub) {
        (void)x, (void)inc, (void)inp, (void)frozen;
        const mcx_i64 y = p + s.draw(MCX_DIST_NOREF_GAP, MCX_P_NOREF_GAP, kf, c + 1, sub);
        s.schedule(c, MCX_EV_TOUCH, y);
    }
    // at_ptl_release: never (the PTL's release is folded into the noref gap).
    template <class Sim>
    static MCX_M void on_wake(Sim& s, int c, mcx_i64 t) {
        try_lock(s, c, t);
    }
    template <class Sim>
    static MCX_M bool on_event(Sim& s, int e, int c, mcx_i64 t) {
        if (e == MCX_EV_TOUCH) {
            try_lock(s, c, t);
            return true;
        }
        if (e == MCX_EV_UNLOCK) {
            unlock(s, c, t);
            return true;
        }
        return false;
    }
};

// -- flag_spin: Vlastimil Babka's first proposal -----------------------------------------------
// Spin without a reference while the migrator's flag is set (from fs_cur, the lock or the end of
// the unmap, to the refcount check of the attempt: MCX_EV_SPIN_RES resolves when it is decided);
// else behave as ref.
template <>
struct mcx_strategy<MCX_S_FLAG_SPIN> : mcx_strategy<MCX_S_REF> {
    static constexpr bool global_order = MCX_GLOBAL_ORDER(MCX_S_FLAG_SPIN);
    static constexpr bool takes_page_lock = MCX_TAKES_PAGE_LOCK(MCX_S_FLAG_SPIN);
    template <class Sim>
    static MCX_M void at_fault(Sim& s, int c, mcx_i64 x, mcx_i64 p, bool inc, bool inp, bool frozen,
                               mcx_i64 kf, mcx_i64 sub) {
        const bool seen = (inc && x >= s.fs_cur) || (inp && x < s.fe_prev);
        if (!seen) {
            mcx_strategy<MCX_S_REF>::at_fault(s, c, x, p, inc, inp, frozen, kf, sub);
            return;
        }
        s.set_flag(c, TF_SPINNING, true);
        if (inc)
            s.schedule(c, MCX_EV_SPIN_RES, s.F_cur);
        else
            s.schedule(c, MCX_EV_RET, mcx_max64(p, s.fe_prev));
    }
    // at_ptl_release, on_wake: as ref.
    template <class Sim>
    static MCX_M bool on_event(Sim& s, int e, int c, mcx_i64 t) {
        (void)t;
        if (e != MCX_EV_SPIN_RES) return false;
        // The flag drops when the attempt's check is decided: at fe (its freeze) or at once.
        s.schedule(c, MCX_EV_RET, mcx_max64(s.tw(c, MCX_TW_P), s.fe_prev));
        return true;
    }
};

// -- pte_wait: Vlastimil Babka's second proposal -----------------------------------------------
// No reference: wait on a queue keyed by the PTE, woken by its next restore. recheck (the option):
// enqueue under the PTL; without it, enqueue after dropping the PTL and a noref_gap (at E), so a
// restore in between is missed (a lost wake-up: hang). MCX_EV_PTE_RES waits for attempt kc's
// restore times to be known.
template <>
struct mcx_strategy<MCX_S_PTE_WAIT> : mcx_strategy_defaults<MCX_S_PTE_WAIT> {
    // The restore R of the task's PTE by the attempt it waits on (kc - 1, complete) wakes it.
    template <class Sim>
    static MCX_M void pte_resolve(Sim& s, int c) {
        const mcx_i64 R = s.tw(c, MCX_TW_R);
        if (s.recheck) {
            // Enqueued at x under the PTL: the restore wakes it; before the PTL is dropped it
            // returns at once, with no wake latency.
            const mcx_i64 xp = s.tw(c, MCX_TW_P);
            if (R <= xp)
                s.schedule(c, MCX_EV_RET, xp);
            else
                s.wake_after(c, R);
            return;
        }
        if (s.prev_unmapped && R >= s.tw(c, MCX_TW_E)) {
            s.wake_after(c, R);
            return;
        }
        if (s.final_) {
            if (s.migrated) {
                // No later restore will come after the page moved: a lost wake-up for good.
                s.set_flag(c, TF_HUNG, true);
                s.set_flag(c, TF_IN_WAIT, false);
            }
            s.schedule(c, MCX_EV_NONE, MCX_INF);  // (budget over: asleep, its wait cut at the end)
        } else {
            s.tw(c, MCX_TW_KW) = s.kc;
            s.schedule(c, MCX_EV_PTE_RES, s.F_cur);
        }
    }

    template <class Sim>
    static MCX_M void at_fault(Sim& s, int c, mcx_i64 x, mcx_i64 p, bool inc, bool inp, bool frozen,
                               mcx_i64 kf, mcx_i64 sub) {
        (void)x, (void)inc, (void)frozen;
        if (!s.recheck) s.tw(c, MCX_TW_E) = p + s.draw(MCX_DIST_NOREF_GAP, MCX_P_NOREF_GAP, kf, c + 1, sub);
        if (inp)
            pte_resolve(s, c);
        else
            s.schedule(c, MCX_EV_PTE_RES, s.F_cur);
    }
    // at_ptl_release: never; on_wake: return.
    template <class Sim>
    static MCX_M bool on_event(Sim& s, int e, int c, mcx_i64 t) {
        (void)t;
        if (e != MCX_EV_PTE_RES) return false;
        pte_resolve(s, c);
        return true;
    }
};

// -- the dispatch ------------------------------------------------------------------------------
// call(code, f) = f(mcx_strategy<S>()): S = SPEC when it is known at compile time (code unused),
// else the run-time code, through a switch generated from the registry's MCX_FOR_EACH_STRATEGY
// (an unknown code calls nothing and returns a value-initialised result).
template <int SPEC>
struct mcx_dispatch {
    template <class F>
    static MCX_M auto call(int code, F&& f) {
        (void)code;
        return f(mcx_strategy<SPEC>());
    }
};

template <>
struct mcx_dispatch<-1> {
    template <class F>
    static MCX_M auto call(int code, F&& f) {
        switch (code) {
#define MCX_DISPATCH_CASE(S) \
    case S:                  \
        return f(mcx_strategy<S>());
            MCX_FOR_EACH_STRATEGY(MCX_DISPATCH_CASE)
#undef MCX_DISPATCH_CASE
            default:
                break;
        }
        return decltype(f(mcx_strategy<MCX_S_REF>()))();
    }
};

// Every strategy of the registry has its handler, and its traits are the registry's (flag_spin
// states its own: it derives from ref for the helpers).
#define MCX_CHECK_STRATEGY(S)                                                                  \
    static_assert(mcx_strategy<S>::global_order == (MCX_GLOBAL_ORDER(S) != 0),             \
                  "mcx_strategy<S>::global_order differs from the registry (constants.h)"); \
    static_assert(mcx_strategy<S>::takes_page_lock == (MCX_TAKES_PAGE_LOCK(S) != 0),       \
                  "mcx_strategy<S>::takes_page_lock differs from the registry (constants.h)");
MCX_FOR_EACH_STRATEGY(MCX_CHECK_STRATEGY)
#undef MCX_CHECK_STRATEGY
