"""What each strategy's waiter does, in the numpy engine: one small handler class per strategy.

Where it sits: the strategy registry (mcexplore.strategies) names each strategy's class here by
import string (``Strategy.numpy``); ``numpy_page.PageSim`` loads it from the registry row and calls
its hooks on its batch of (trial row, task column) pairs. The kernels' ``mcx_strategy<S>`` carries
the same hooks. A new strategy is a registry row and a class here (or anywhere importable, e.g. a
test's toy strategy); the engine itself needs no edit.

Hooks (``sim`` is the PageSim; rows, cols and the times are aligned arrays):

* ``at_fault(sim, rows, cols, x, p, inc, inp, frozen, kf, sub)``: the fault handler holds the PTL
  on a migration entry at x and drops it at p (already drawn; the fault is counted and its wait
  started). inc / inp: the entry is attempt kc's (stage 1 known) / attempt kc - 1's (complete);
  frozen: get_page_unless_zero would fail (a successful file attempt's frozen count); kf, sub: the
  fault's draw key (attempt, sub-index).
* ``at_ptl_release(sim, rows, cols, p)``: Ev.PTL, for a strategy that schedules it.
* ``on_wake(sim, rows, cols, t)``: Ev.WAKE, a woken sleeper runs (default: it returns).
* ``on_event(sim, code, rows, cols, t) -> bool``: the strategy's own events (Ev.DROPB, SPIN_RES,
  PTE_RES, TOUCH, UNLOCK); False if ``code`` is not one of them.

Whether a strategy's tasks need global event order, and whether the migrator may have to take the
page lock from a waiter, are registry columns (``global_order``, ``takes_page_lock``), not
properties of these classes. Handlers keep no state of their own: per-task state is the sim's.
"""

from __future__ import annotations

import numpy as np

from .. import constants as K
from .. import rng

INF = np.int64(K.INF)
Ev = K.Ev
EV_NONE, EV_PTL, EV_DROPB, EV_SPIN_RES, EV_PTE_RES, EV_RET, EV_TOUCH, EV_UNLOCK = (
    int(Ev.NONE), int(Ev.PTL), int(Ev.DROPB), int(Ev.SPIN_RES), int(Ev.PTE_RES), int(Ev.RET),
    int(Ev.TOUCH), int(Ev.UNLOCK))


class Handler:
    """Defaults: a woken waiter returns; no Ev.PTL and no events of its own."""

    def at_fault(self, sim, rows, cols, x, p, inc, inp, frozen, kf, sub):
        raise NotImplementedError

    def at_ptl_release(self, sim, rows, cols, p):
        raise RuntimeError(f"{type(self).__name__} schedules no PTL release event")

    def on_wake(self, sim, rows, cols, t):
        sim.ret(rows, cols, t)

    def on_event(self, sim, code, rows, cols, t) -> bool:
        return False


def _put_unless_locked(sim, rows, cols, t, kind):
    """Sleep on the migrator's unlock if the page is locked at t; else put_page and return."""
    lc, lp = sim.locked_by(rows, t)
    sim.sleep_on_unlock(rows, cols, lc, lp)
    un = ~(lc | lp)
    r, c, tu = rows[un], cols[un], t[un]
    sim.ref[r, c] = False
    sim.observe(kind, r, c, tu)
    sim.ret(r, c, tu)


class Ref(Handler):
    """ref (v4.19): get_page_unless_zero at x, wait_on_page_locked after dropping the PTL holding
    the reference, put_page once it runs with the page unlocked."""

    def flag_seen(self, sim, rows, x, inc, inp):
        """Waiters that see the migration flag (flag_spin); None: no flag."""
        return None

    def after_get(self, sim, rows, cols, p, kf, sub):
        """What a waiter holding its new reference does at the PTL release p."""
        sim.schedule(rows, cols, EV_PTL, p)

    def at_fault(self, sim, rows, cols, x, p, inc, inp, frozen, kf, sub):
        seen = self.flag_seen(sim, rows, x, inc, inp)
        if seen is None:
            getter, fz = ~frozen, frozen
        else:
            getter, fz = ~seen & ~frozen, ~seen & frozen
        sim.observe("get_frozen", rows, cols, x, sel=fz)
        sim.schedule(rows[fz], cols[fz], EV_RET, p[fz])
        if seen is not None and seen.any():
            r, c = rows[seen], cols[seen]
            sim.observe("flag_seen", r, c, p[seen])
            sim.spinning[r, c] = True
            sc = inc[seen]
            sim.schedule(r[sc], c[sc], EV_SPIN_RES, sim.F_cur[r[sc]])
            sp = ~sc
            sim.schedule(r[sp], c[sp], EV_RET, np.maximum(p[seen][sp], sim.fe_prev[r[sp]]))
        r, c = rows[getter], cols[getter]
        sim.ref[r, c] = True
        sim.observe("get", r, c, x[getter])
        self.after_get(sim, r, c, p[getter], kf[getter], sub[getter])

    def at_ptl_release(self, sim, rows, cols, p):
        # wait_on_page_locked after dropping the PTL.
        _put_unless_locked(sim, rows, cols, p, "ptl_put")

    def on_wake(self, sim, rows, cols, t):
        # Still holding its reference: if a later attempt locked the page again, keep it and
        # sleep on; else put_page and return.
        _put_unless_locked(sim, rows, cols, t, "wake_put")


class FlagSpin(Ref):
    """flag_spin: spin without a reference while the migrator's flag is up ([L_k or U_k,M, F_k),
    and a successful file attempt's freeze); otherwise as ref."""

    def flag_seen(self, sim, rows, x, inc, inp):
        return (inc & (x >= sim.fs_cur[rows])) | (inp & (x < sim.fe_prev[rows]))

    def on_event(self, sim, code, rows, cols, t) -> bool:
        if code != EV_SPIN_RES:
            return False
        # Attempt kw's stage 2 is known: the spin ends when its flag clears.
        sim.schedule(rows, cols, EV_RET, np.maximum(sim.p[rows, cols], sim.fe_prev[rows]))
        return True


class Drop(Ref):
    """drop (put_and_wait_on_page_locked, v5.0): holds its reference on [x, b), b = p + drop_hold,
    then sleeps without it iff the page is locked at b."""

    def after_get(self, sim, rows, cols, p, kf, sub):
        b = p + sim.draw("drop_hold", rng.DROP_HOLD, rows, kf, cols + 1, sub)
        sim.schedule(rows, cols, EV_DROPB, b)

    at_ptl_release = Handler.at_ptl_release
    on_wake = Handler.on_wake  # woken without a reference: returns

    def on_event(self, sim, code, rows, cols, t) -> bool:
        if code != EV_DROPB:
            return False
        sim.ref[rows, cols] = False
        sim.observe("drop_put", rows, cols, t)
        lc, lp = sim.locked_by(rows, t)
        sim.sleep_on_unlock(rows, cols, lc, lp)
        un = ~(lc | lp)
        sim.ret(rows[un], cols[un], t[un])
        return True


class PtlPin(Handler):
    """ptl_pin (migration_entry_wait_on_locked, v5.17): enqueued under the PTL at x, the entry
    pins the page, no reference; any unlock of the fault's attempt after x wakes it."""

    def at_fault(self, sim, rows, cols, x, p, inc, inp, frozen, kf, sub):
        sim.observe("enqueue_page", rows, cols, x)
        sim.schedule(rows, cols, EV_PTL, p)

    def at_ptl_release(self, sim, rows, cols, p):
        kw = sim.kw[rows, cols]
        kc = sim.kc[rows]
        lc = kw == kc
        unlocked = (kw < kc - 1) | ((kw == kc - 1) & (sim.T_prev[rows] <= p))
        lp = ~lc & ~unlocked
        sim.sleep_on_unlock(rows, cols, lc, lp)
        sim.ret(rows[unlocked], cols[unlocked], p[unlocked])


class LockNoref(Handler):
    """lock_noref (Michal Hocko's proposal): drops the PTL holding no reference, touches the page
    at y = p + noref_gap and lock_page()s it; holds the lock lock_hold, unlocks. Waiters and the
    migrator contend for the one page lock (the registry row: global_order, takes_page_lock)."""

    def at_fault(self, sim, rows, cols, x, p, inc, inp, frozen, kf, sub):
        y = p + sim.draw("noref_gap", rng.NOREF_GAP, rows, kf, cols + 1, sub)
        sim.observe("ptl_drop", rows, cols, p)
        sim.schedule(rows, cols, EV_TOUCH, y)

    def on_wake(self, sim, rows, cols, t):
        self.try_lock(sim, rows, cols, t)

    def on_event(self, sim, code, rows, cols, t) -> bool:
        if code == EV_TOUCH:
            self.try_lock(sim, rows, cols, t)
        elif code == EV_UNLOCK:
            self.unlock(sim, rows, cols, t)
        else:
            return False
        return True

    @staticmethod
    def touch_uaf(sim, rows, cols, t):
        """A touch of the old page after its free is a use-after-free."""
        hit = sim.final[rows] & (t >= sim.free_t[rows])
        sim.uaf[rows[hit]] = True
        if sim.observer is not None:
            sim.observe("uaf", rows, None, t, sel=hit, task=cols + 1)

    def try_lock(self, sim, rows, cols, t):
        """lock_page at t: take it if free, else sleep (on the migrator's unlock or a waiter's)."""
        self.touch_uaf(sim, rows, cols, t)
        lc, lp = sim.locked_by(rows, t)
        mig = lc | lp
        sim.sleep_on_unlock(rows, cols, lc, lp)
        task_held = ~mig & (sim.holder[rows] > 0)
        if task_held.any():
            r, c = rows[task_held], cols[task_held]
            sim.sleep_lock[r, c] = True
            sim.observe("lock_sleep", r, c, t[task_held])
            sim.schedule(r, c, EV_NONE, INF)
        take = ~mig & ~task_held
        if take.any():
            r, c = rows[take], cols[take]
            sim.holder[r] = c + 1
            sim.observe("lock_take", r, c, t[take])
            lh = sim.draw("lock_hold", rng.LOCK_HOLD, r, sim.kf[r, c], c + 1, sim.sub_of(r, c))
            sim.schedule(r, c, EV_UNLOCK, t[take] + lh)

    def unlock(self, sim, rows, cols, u):
        self.touch_uaf(sim, rows, cols, u)
        sim.holder[rows] = 0
        sim.observe("lock_release", rows, cols, u)
        # Wake every waiter asleep on this lock, and the migrator if it sleeps on it.
        sl = np.zeros(sim.sleep_lock.shape, dtype=bool)
        sl[rows] = sim.sleep_lock[rows]
        if sl.any():
            urow = np.full(sim.N, -1, dtype=np.int64)
            urow[rows] = u
            wr, wc = np.nonzero(sl)
            # The page's wait queue is first in, first out: sleepers wake in the order they
            # went to sleep (their stamps).
            order = np.lexsort((sim.stamp[wr, wc], wr))
            wr, wc = wr[order], wc[order]
            sim.sleep_lock[wr, wc] = False
            sim.wake_after(wr, wc, urow[wr])
        ms = sim.mig_sleeping[rows]
        if ms.any():
            mr = rows[ms]
            wl = sim.draw("wake_latency", rng.MIG_WAKE, mr, sim.kc[mr], 0, sim.mig_w[mr])
            sim.mig_w[mr] += 1
            sim.mig_t[mr] = u[ms] + wl
            sim.mig_sleeping[mr] = False
        sim.ret(rows, cols, u)


class PteWait(Handler):
    """pte_wait (Vlastimil Babka's second proposal): no reference, a wait queue keyed by the PTE,
    woken by its next restore. recheck: enqueued under the PTL at x; without it at e = p +
    noref_gap, after the PTL is dropped, so a restore in between is a lost wake-up."""

    def at_fault(self, sim, rows, cols, x, p, inc, inp, frozen, kf, sub):
        if not sim.c.recheck:
            sim.e[rows, cols] = p + sim.draw("noref_gap", rng.NOREF_GAP, rows, kf, cols + 1, sub)
            sim.observe("enqueue_pte", rows, cols, sim.e[rows, cols], under_ptl=False)
        else:
            sim.observe("enqueue_pte", rows, cols, x, under_ptl=True)
        if inp.any():
            self.resolve(sim, rows[inp], cols[inp])
        sim.schedule(rows[inc], cols[inc], EV_PTE_RES, sim.F_cur[rows[inc]])

    def on_event(self, sim, code, rows, cols, t) -> bool:
        if code != EV_PTE_RES:
            return False
        self.resolve(sim, rows, cols)
        return True

    def resolve(self, sim, rows, cols):
        """Attempt kw = kc - 1 is complete: find the restore that wakes the task."""
        R = sim.R_prev[rows, cols]
        unm = sim.prev_unmapped[rows]
        if sim.c.recheck:
            # Enqueued at x under the PTL: the restore R_kw,i wakes it; before the PTL is
            # dropped it returns at once, with no wake latency.
            xp = sim.p[rows, cols]
            early = R <= xp
            sim.schedule(rows[early], cols[early], EV_RET, xp[early])
            lt = ~early
            sim.wake_after(rows[lt], cols[lt], R[lt])
            return
        e = sim.e[rows, cols]
        woke = unm & (R >= e)
        sim.wake_after(rows[woke], cols[woke], R[woke])
        lost = ~woke
        if lost.any():
            r, c = rows[lost], cols[lost]
            fin = sim.final[r]
            # No later restore will come after the page moved: a lost wake-up for good.
            sim.observe("wake_lost", r, c, sim.e[r, c])
            hr, hc = r[fin & sim.migrated[r]], c[fin & sim.migrated[r]]
            sim.hung[hr, hc] = True
            sim.observe("hang", hr, hc, sim.e[hr, hc])
            sim.in_wait[hr, hc] = False
            sim.schedule(hr, hc, EV_NONE, INF)
            bud = fin & ~sim.migrated[r]
            sim.schedule(r[bud], c[bud], EV_NONE, INF)  # budget over: asleep, cut at the end
            go = ~fin
            sim.kw[r[go], c[go]] = sim.kc[r[go]]
            sim.schedule(r[go], c[go], EV_PTE_RES, sim.F_cur[r[go]])
