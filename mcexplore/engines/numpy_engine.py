"""The numpy engine: the reference implementation of the model (docs/model.md) on the CPU.

Where it sits: one of the three engines behind ``mcexplore.engines.base.Engine``. It is the ground
truth for the kernels (kernels/engine.h is a port of this file; tests/test_parity.py holds them to
the same bits) and is itself checked against the exact solutions (mcexplore.exact).

Shape of the computation. All trials of a batch advance in lock step, one migration attempt per
outer iteration, masked when done, as a GPU warp would. Within attempt k:

  stage 1   the migrator takes the lock at L_k (lock_noref: maybe after sleeping on a waiter's lock,
            or not at all: a trylock failure) and unmaps: U_k,i, F_k;
  advance   every task's events with time < F_k are processed (task events are ordered after the
            migrator's at equal times, so a get at exactly F_k misses the check, a put at exactly
            F_k is still held);
  check     the attempt succeeds iff no task holds a reference and no transient reference is held;
  stage 2   S_k, R_k,i, T_k; the next arrival or the wind-down.

A task is a small state machine (``ev``, ``t``: its next event and its time). An event at time t is
always processed with attempts k-1 (complete) and k (stage 1 known) in hand, which is all that an
event in [F_{k-1}, F_k) can need. When an event needs attempt k's stage 2 (an unlock time T_k, a
restore time R_k,i, the end of a flag window), the task parks on a *virtual* event at F_k that is
resolved in the next iteration; virtual events only reschedule the task and change nothing else.

Tasks interact only through the page lock (lock_noref), so every other strategy advances all tasks
in parallel ("task-parallel"), while lock_noref processes one event per trial at a time in global
order of (time, stamp): the migrator first at a tie, then task events in the order they were
scheduled (docs/model.md, "Ties"). The per-event logic is the same function in both modes.
"""

# ENGINE-READY: page level. Block level lives in numpy_block.py; port it once that file
# contains the line BLOCK-READY. Tracing calls (self._log) are for replay only: do not port them.

from __future__ import annotations

import numpy as np

from .. import constants as K
from .. import rng, strategies, transient
from ..params import DIST_INDEX, Compiled
from ..results import Records
from .base import Engine

INF = np.int64(K.INF)
SUB_SHIFT = K.SUB_SHIFT
D = DIST_INDEX
# Task events and strategy codes under their short names (mcexplore.constants, mcexplore.strategies).
(EV_NONE, EV_ACCESS, EV_FAULT, EV_PTL, EV_DROPB, EV_WAKE, EV_WAKE_RES, EV_SPIN_RES, EV_PTE_RES, EV_RET,
 EV_TOUCH, EV_UNLOCK) = (int(e) for e in K.Ev)
REF, DROP, PTL_PIN, LOCK_NOREF, FLAG_SPIN, PTE_WAIT = (strategies.get(s).code for s in (
    "ref", "drop", "ptl_pin", "lock_noref", "flag_spin", "pte_wait"))


def _u64(words):
    """The 64-bit uniform x0 << 32 | x1 of a draw."""
    return (words[0] << np.uint64(32)) | words[1]


def transient_held(lay: transient.Layout, c: Compiled, seed: int, trials, page, F):
    """Is a transient reference held at each refcount check F (mcexplore.transient)?

    trials (uint64) and F (int64) are aligned arrays; page is the counter's page field (an int or
    an aligned array)."""
    F = np.asarray(F, dtype=np.int64)
    held = np.zeros(F.shape, dtype=bool)
    if lay.model == transient.MODEL_NONE or len(F) == 0:
        return held
    W, H = np.int64(lay.window_ns), np.int64(lay.hold_max_ns)
    hold = transient.hold_of(c)
    wa = (F - H) // W
    wb = (F - 1) // W
    page = np.broadcast_to(np.asarray(page, dtype=np.int64), F.shape)
    for w, sel in ((wa, np.ones(F.shape, dtype=bool)), (wb, wb != wa)):
        if not sel.any():
            continue
        r = np.nonzero(sel)[0]
        wk, wi = transient.window_key(w[r])
        n = np.searchsorted(lay.thresholds, _u64(rng.draw_words(seed, trials[r], rng.TRANSIENT, page[r], wk, wi, 0)),
                            side="right")
        for j in range(int(n.max(initial=0))):
            m = n > j
            rj, wkj, wij = r[m], wk[m], wi[m]
            u = _u64(rng.draw_words(seed, trials[rj], rng.TRANSIENT, page[rj], wkj, wij, 1 + 2 * j))
            s = w[rj] * W + rng.mulhi64(u, np.uint64(W)).astype(np.int64)
            # Only an arrival within the longest hold before F can still be held at F.
            near = (s < F[rj]) & (s >= F[rj] - H)
            rj, wkj, wij, s = rj[near], wkj[near], wij[near], s[near]
            if len(rj):
                h = rng.sample(hold, rng.draw_words(seed, trials[rj], rng.TRANSIENT, page[rj], wkj, wij, 2 + 2 * j))
                held[rj[s + h >= F[rj]]] = True
    return held


class _Sim:
    """Lock-step simulation of one page for a batch of trials (page level)."""

    def __init__(self, c: Compiled, seed: int, trials: np.ndarray, lay: transient.Layout | None = None):
        self.c = c
        self.lay = transient.layout(c) if lay is None else lay
        self.timeout = np.int64(c.timeout_ns)
        self.seed = int(seed)
        self.trial = trials.astype(np.uint64)
        self.page = 0
        n = len(trials)
        pc = c.page
        self.M = int(pc.mapcount)
        self.A = int(pc.active) if pc.access_mean_ns > 0 else 0
        self.file = bool(pc.file)
        self.strat = int(c.strategy)
        # lock_noref runs one event per trial at a time in (time, stamp) order (docs/model.md,
        # "Ties"); the other strategies' tasks are independent and need no order.
        self.global_order = self.strat == LOCK_NOREF
        self.N = n
        A = max(self.A, 1)
        z = lambda dt=np.int64: np.zeros((n, A), dtype=dt)  # noqa: E731
        # Task state [trial, task]; column j is task i = j + 1 (rmap order).
        self.ev = z(np.int8)
        self.t = np.full((n, A), INF, dtype=np.int64)
        self.ref = z(bool)
        self.in_wait = z(bool)
        self.wait_start = z()
        self.kf = z()       # attempt of the fault's migration entry (draw key)
        self.jf = z()       # fault number of this task within attempt kf
        self.w = z()        # wake number within the fault
        self.kw = z()       # attempt the task waits on (window, unlock, flag, restore)
        self.p = z()        # PTL release time (also the start of a spin)
        self.e = z()        # pte_wait without recheck: when the waiter enqueues
        self.parked = z(bool)  # accessed while attempt kc has not unmapped yet: wait for stage 1
        self.spinning = z(bool)
        self.sleep_lock = z(bool)  # lock_noref: asleep on a waiter's page lock
        self.hung = z(bool)
        self.faults = z()
        self.total_wait = z()
        self.max_wait = z()
        self.spin = z()
        self.uaf = np.zeros(n, dtype=bool)
        # The tie key of a task's next event: when it was scheduled (a per-trial counter; the
        # first accesses at time 0 in rmap order).
        self.stamp = np.broadcast_to(np.arange(A, dtype=np.int64), (n, A)).copy()
        self.nstamp = np.full(n, A, dtype=np.int64)
        if self.A:
            self.ev[:, :] = EV_ACCESS
            self.t[:, :] = 0
        self.cols = np.arange(1, A + 1, dtype=np.int64)  # task index i
        # Migrator, per trial. "cur" = attempt kc (stage 1 known iff cur_unmapped or a trylock
        # failure was decided); "prev" = attempt kc - 1 (complete).
        self.kc = np.ones(n, dtype=np.int64)
        self.cur_unmapped = np.zeros(n, dtype=bool)
        self.L_cur = np.full(n, INF, dtype=np.int64)
        self.F_cur = np.zeros(n, dtype=np.int64)
        self.fs_cur = np.full(n, INF, dtype=np.int64)
        self.U_cur = np.full((n, A), INF, dtype=np.int64)
        self.prev_unmapped = np.zeros(n, dtype=bool)
        self.T_prev = np.full(n, -1, dtype=np.int64)
        self.F_prev = np.full(n, -1, dtype=np.int64)
        self.fe_prev = np.full(n, -1, dtype=np.int64)
        self.succ_prev = np.zeros(n, dtype=bool)
        self.R_prev = np.full((n, A), -1, dtype=np.int64)
        self.final = np.zeros(n, dtype=bool)     # no more attempts will start
        self.migrated = np.zeros(n, dtype=bool)
        self.free_t = np.full(n, INF, dtype=np.int64)
        self.last_t = np.zeros(n, dtype=np.int64)
        # lock_noref: which task holds the page lock (0: none); the migrator's hold is derived
        # from its own intervals, so it never appears here.
        self.holder = np.zeros(n, dtype=np.int64)
        self.mig_t = np.full(n, INF, dtype=np.int64)  # lock_noref: migrator's wake-run time
        self.mig_w = np.zeros(n, dtype=np.int64)
        self.mig_sleeping = np.zeros(n, dtype=bool)
        self.trace = None  # replay: a list that receives (time, actor, text) tuples
        self.trace_prefix = ""  # block level: which page the events are about

    # -- replay tracing (no effect on results) ----------------------------------------------
    def _log(self, t, who, text):
        """Record events of trial row 0 (replay runs one trial). who: 0 migrator, i task i."""
        if self.trace is None:
            return
        t = np.atleast_1d(t)
        who = np.broadcast_to(np.atleast_1d(who), t.shape)
        if self.trace_prefix:
            text = self.trace_prefix + text
        for tt, ww in zip(t.tolist(), who.tolist()):
            self.trace.append((int(tt), int(ww), text))

    def _tlog(self, rows, cols, t, text):
        if self.trace is not None and len(rows):
            self._log(np.broadcast_to(t, np.shape(rows)), np.asarray(cols) + 1, text)

    # -- randomness -------------------------------------------------------------------------
    def draw(self, dist: str, purpose: int, rows, k, i, sub=0):
        words = rng.draw_words(self.seed, self.trial[rows], purpose, self.page, k, i, sub)
        return rng.sample(self.c.dists[D[dist]], words)

    def draw_mig(self, dist: str, purpose: int, rows, k):
        return self.draw(dist, purpose, rows, k, 0, 0)

    # -- helpers on selected (row, col) pairs ----------------------------------------------
    def _locked_by(self, rows, t):
        """Who holds the page lock at t (migrator only): 2 = attempt kc (T unknown), 1 = kc-1."""
        lc = self.cur_unmapped[rows] & (t >= self.L_cur[rows])
        lp = ~lc & (t < self.T_prev[rows])
        return lc, lp

    def _sub(self, rows, cols):
        return (self.jf[rows, cols] << SUB_SHIFT) | (self.w[rows, cols] & ((1 << SUB_SHIFT) - 1))

    def _wake_after(self, rows, cols, base):
        """Schedule EV_WAKE at base + wake_latency (keyed by the fault and its wake number)."""
        wl = self.draw("wake_latency", rng.WAKE, rows, self.kf[rows, cols], cols + 1,
                       self._sub(rows, cols))
        self.w[rows, cols] += 1
        self._schedule(rows, cols, EV_WAKE, base + wl)
        self._tlog(rows, cols, base + wl, "woken task runs")

    def _sleep_on_unlock(self, rows, cols, lc, lp):
        """Sleep until the unlock of the attempt holding the lock (lc: kc, lp: kc - 1)."""
        if lc.any():
            r, c = rows[lc], cols[lc]
            self._tlog(r, c, self.t[r, c], "sleeps until the migrator unlocks the page")
            self.kw[r, c] = self.kc[r]
            self._schedule(r, c, EV_WAKE_RES, self.F_cur[r])
        if lp.any():
            r, c = rows[lp], cols[lp]
            self._tlog(r, c, self.t[r, c], "sleeps until the migrator unlocks the page")
            self._wake_after(r, c, self.T_prev[r])

    def _schedule(self, rows, cols, ev, t):
        self.ev[rows, cols] = ev
        self.t[rows, cols] = t
        if self.global_order and len(rows):
            # Stamps in call order; a row named several times (the sleepers one unlock wakes)
            # takes consecutive stamps in the order given.
            rows = np.asarray(rows)
            if len(rows) == 1 or (rows[1:] > rows[:-1]).all():  # each row once (the usual case)
                self.stamp[rows, cols] = self.nstamp[rows]
                self.nstamp[rows] += 1
                return
            order = np.argsort(rows, kind="stable")
            rs = rows[order]
            first = np.searchsorted(rs, rs, side="left")
            rank = np.arange(len(rs)) - first
            self.stamp[rs, np.asarray(cols)[order]] = self.nstamp[rs] + rank
            np.add.at(self.nstamp, rs, 1)

    def _access(self, rows, cols, r):
        """The task accesses the page at r: fault if its PTE is a migration entry then."""
        if len(rows) == 0:
            return
        inc = self.cur_unmapped[rows] & (r >= self.U_cur[rows, cols])
        inp = ~inc & self.prev_unmapped[rows] & (r < self.R_prev[rows, cols])
        fault = inc | inp
        if fault.any():
            fr, fc, fa = rows[fault], cols[fault], r[fault]
            kwin = np.where(inc[fault], self.kc[fr], self.kc[fr] - 1)
            same = self.kf[fr, fc] == kwin
            self.jf[fr, fc] = np.where(same, self.jf[fr, fc] + 1, 0)
            self.kf[fr, fc] = kwin
            self.w[fr, fc] = 0
            fe = self.draw("fault_entry", rng.FAULT_ENTRY, fr, kwin, fc + 1, self.jf[fr, fc] << SUB_SHIFT)
            self.in_wait[fr, fc] = True
            self.wait_start[fr, fc] = fa
            self._tlog(fr, fc, fa, "access hits a migration entry (wait starts)")
            self._schedule(fr, fc, EV_FAULT, fa + fe)
        nf = ~fault
        if nf.any():
            nr, nc, na = rows[nf], cols[nf], r[nf]
            sched = self.cur_unmapped[nr]  # then na < U_cur: next access after U_kc,i
            if sched.any():
                sr, sc = nr[sched], nc[sched]
                a = self.U_cur[sr, sc] + self.draw("access", rng.ACCESS, sr, self.kc[sr], sc + 1, 0)
                self._schedule(sr, sc, EV_ACCESS, a)
            rest = ~sched
            if rest.any():
                rr, rc = nr[rest], nc[rest]
                fin = self.final[rr]
                # No further attempt: done. Otherwise attempt kc has not unmapped yet (lock_noref's
                # migrator is still acquiring the lock): the access is looked at again once it has.
                self._schedule(rr[fin], rc[fin], EV_NONE, INF)
                nfr, nfc = rr[~fin], rc[~fin]
                self.parked[nfr, nfc] = True
                self._schedule(nfr, nfc, EV_ACCESS, na[rest][~fin])

    def _return(self, rows, cols, r):
        """End the wait at r (spin included) and retry the access at once."""
        iw = self.in_wait[rows, cols]
        wl = np.where(iw, r - self.wait_start[rows, cols], 0)
        self.total_wait[rows, cols] += wl
        self.max_wait[rows, cols] = np.maximum(self.max_wait[rows, cols], wl)
        self.in_wait[rows, cols] = False
        sp = self.spinning[rows, cols]
        self.spin[rows, cols] += np.where(sp, r - self.p[rows, cols], 0)
        self.spinning[rows, cols] = False
        self._tlog(rows, cols, r, "returns from the fault (wait ends)")
        self._access(rows, cols, r)

    # -- lock_noref -------------------------------------------------------------------------
    def _touch_uaf(self, rows, t):
        hit = self.final[rows] & (t >= self.free_t[rows])
        self.uaf[rows[hit]] = True
        if self.trace is not None and hit.any():
            self._log(t[hit], 0, "USE-AFTER-FREE: a waiter touches the freed old page")

    def _try_lock(self, rows, cols, t):
        """lock_page at t: take it if free, else sleep (on the migrator's unlock or a waiter's)."""
        self._touch_uaf(rows, t)
        lc, lp = self._locked_by(rows, t)
        mig = lc | lp
        self._sleep_on_unlock(rows, cols, lc, lp)
        task_held = ~mig & (self.holder[rows] > 0)
        if task_held.any():
            r, c = rows[task_held], cols[task_held]
            self.sleep_lock[r, c] = True
            self._tlog(r, c, t[task_held], "lock_page: another waiter holds it, sleeps")
            self._schedule(r, c, EV_NONE, INF)
        take = ~mig & ~task_held
        if take.any():
            r, c = rows[take], cols[take]
            self.holder[r] = c + 1
            self._tlog(r, c, t[take], "lock_page: takes the page lock (no reference)")
            lh = self.draw("lock_hold", rng.LOCK_HOLD, r, self.kf[r, c], c + 1, self._sub(r, c))
            self._schedule(r, c, EV_UNLOCK, t[take] + lh)

    def _unlock(self, rows, cols, u):
        self._touch_uaf(rows, u)
        self.holder[rows] = 0
        self._tlog(rows, cols, u, "unlock_page")
        # Wake every waiter asleep on this lock, and the migrator if it sleeps on it.
        sl = np.zeros(self.sleep_lock.shape, dtype=bool)
        sl[rows] = self.sleep_lock[rows]
        if sl.any():
            urow = np.full(self.N, -1, dtype=np.int64)
            urow[rows] = u
            wr, wc = np.nonzero(sl)
            # The page's wait queue is first in, first out: sleepers wake in the order they
            # went to sleep (their stamps).
            order = np.lexsort((self.stamp[wr, wc], wr))
            wr, wc = wr[order], wc[order]
            self.sleep_lock[wr, wc] = False
            self._wake_after(wr, wc, urow[wr])
        ms = self.mig_sleeping[rows]
        if ms.any():
            mr = rows[ms]
            wl = self.draw("wake_latency", rng.MIG_WAKE, mr, self.kc[mr], 0, self.mig_w[mr])
            self.mig_w[mr] += 1
            self.mig_t[mr] = u[ms] + wl
            self.mig_sleeping[mr] = False
        self._return(rows, cols, u)

    # -- one event for each selected (row, col) --------------------------------------------
    def process(self, rows, cols):
        ev = self.ev[rows, cols]
        t = self.t[rows, cols]
        # A trial ends at its last event that changes state: an idle task's access after the
        # restore is not one (it touches the page and stays idle).
        np.maximum.at(self.last_t, rows, np.where((ev == EV_NONE) | (ev == EV_ACCESS), 0, t))
        s = self.strat
        for code in np.unique(ev):
            m = ev == code
            r, c, tt = rows[m], cols[m], t[m]
            if code == EV_ACCESS:
                self._access(r, c, tt)
            elif code == EV_FAULT:
                self._fault(r, c, tt)
            elif code == EV_PTL:
                self._ptl(r, c, tt)
            elif code == EV_DROPB:
                self.ref[r, c] = False
                self._tlog(r, c, tt, "put_page after enqueueing (put_and_wait)")
                lc, lp = self._locked_by(r, tt)
                self._sleep_on_unlock(r, c, lc, lp)
                un = ~(lc | lp)
                self._return(r[un], c[un], tt[un])
            elif code == EV_WAKE:
                if s == LOCK_NOREF:
                    self._try_lock(r, c, tt)
                elif s in (REF, FLAG_SPIN):
                    # Still holding its reference: if a later attempt locked the page again,
                    # keep it and sleep on; else put_page and return.
                    lc, lp = self._locked_by(r, tt)
                    self._sleep_on_unlock(r, c, lc, lp)
                    un = ~(lc | lp)
                    self.ref[r[un], c[un]] = False
                    self._tlog(r[un], c[un], tt[un], "put_page: drops its reference")
                    self._return(r[un], c[un], tt[un])
                else:
                    self._return(r, c, tt)
            elif code == EV_WAKE_RES:
                self._wake_after(r, c, self.T_prev[r])
            elif code == EV_SPIN_RES:
                self._schedule(r, c, EV_RET, np.maximum(self.p[r, c], self.fe_prev[r]))
            elif code == EV_PTE_RES:
                self._pte_resolve(r, c)
            elif code == EV_RET:
                self._return(r, c, tt)
            elif code == EV_TOUCH:
                self._try_lock(r, c, tt)
            elif code == EV_UNLOCK:
                self._unlock(r, c, tt)

    def _fault(self, rows, cols, x):
        inc = self.cur_unmapped[rows] & (x >= self.U_cur[rows, cols])
        inp = ~inc & self.prev_unmapped[rows] & (x < self.R_prev[rows, cols])
        win = inc | inp
        gone = ~win
        if gone.any():
            # The PTE was restored before the handler took the PTL: no fault, no wait.
            gr, gc = rows[gone], cols[gone]
            self._tlog(gr, gc, x[gone], "fault handler: PTE already restored, returns (no fault)")
            self.in_wait[gr, gc] = False
            self._access(gr, gc, x[gone])
        if not win.any():
            return
        rows, cols, x, inc, inp = rows[win], cols[win], x[win], inc[win], inp[win]
        self.faults[rows, cols] += 1
        self._tlog(rows, cols, x, "fault: holds the PTL on a migration entry")
        kw = np.where(inc, self.kc[rows], self.kc[rows] - 1)
        self.kw[rows, cols] = kw
        kf = self.kf[rows, cols]
        sub = self.jf[rows, cols] << SUB_SHIFT
        p = x + self.draw("ptl_hold", rng.PTL_HOLD, rows, kf, cols + 1, sub)
        self.p[rows, cols] = p
        s = self.strat
        # get_page_unless_zero fails while a successful file attempt holds the count frozen.
        frozen = inp & self.succ_prev[rows] & self.file & (x < self.fe_prev[rows])
        if s in (REF, DROP, FLAG_SPIN):
            if s == FLAG_SPIN:
                seen = (inc & (x >= self.fs_cur[rows])) | (inp & (x < self.fe_prev[rows]))
            else:
                seen = np.zeros(len(rows), dtype=bool)
            getter = ~seen & ~frozen
            fz = ~seen & frozen
            self._tlog(rows[fz], cols[fz], x[fz], "get_page_unless_zero fails (count frozen): will refault")
            self._schedule(rows[fz], cols[fz], EV_RET, p[fz])
            if seen.any():
                r, c = rows[seen], cols[seen]
                self._tlog(r, c, p[seen], "sees the migration flag: drops the PTL and spins")
                self.spinning[r, c] = True
                sc = inc[seen]
                self._schedule(r[sc], c[sc], EV_SPIN_RES, self.F_cur[r[sc]])
                sp = ~sc
                self._schedule(r[sp], c[sp], EV_RET, np.maximum(p[seen][sp], self.fe_prev[r[sp]]))
            r, c = rows[getter], cols[getter]
            self.ref[r, c] = True
            self._tlog(r, c, x[getter], "get_page_unless_zero: holds a page reference")
            if s == DROP:
                b = p[getter] + self.draw("drop_hold", rng.DROP_HOLD, r, kf[getter], c + 1, sub[getter])
                self._schedule(r, c, EV_DROPB, b)
            else:
                self._schedule(r, c, EV_PTL, p[getter])
        elif s == PTL_PIN:
            self._tlog(rows, cols, x, "enqueues on the page's wait queue under the PTL (no reference)")
            self._schedule(rows, cols, EV_PTL, p)
        elif s == LOCK_NOREF:
            y = p + self.draw("noref_gap", rng.NOREF_GAP, rows, kf, cols + 1, sub)
            self._tlog(rows, cols, p, "drops the PTL, holding no reference")
            self._schedule(rows, cols, EV_TOUCH, y)
        elif s == PTE_WAIT:
            if not self.c.recheck:
                self.e[rows, cols] = p + self.draw("noref_gap", rng.NOREF_GAP, rows, kf, cols + 1, sub)
                self._tlog(rows, cols, self.e[rows, cols], "enqueues on the PTE wait queue (after dropping the PTL)")
            else:
                self._tlog(rows, cols, x, "enqueues on the PTE wait queue under the PTL")
            if inp.any():
                self._pte_resolve(rows[inp], cols[inp])
            self._schedule(rows[inc], cols[inc], EV_PTE_RES, self.F_cur[rows[inc]])

    def _ptl(self, rows, cols, p):
        if self.strat == PTL_PIN:
            # Enqueued under the PTL at x: any unlock of the fault's attempt after x wakes it.
            kw = self.kw[rows, cols]
            kc = self.kc[rows]
            lc = kw == kc
            unlocked = (kw < kc - 1) | ((kw == kc - 1) & (self.T_prev[rows] <= p))
            lp = ~lc & ~unlocked
            self._sleep_on_unlock(rows, cols, lc, lp)
            self._return(rows[unlocked], cols[unlocked], p[unlocked])
        else:  # ref, flag_spin's ref path: wait_on_page_locked after dropping the PTL
            lc, lp = self._locked_by(rows, p)
            self._sleep_on_unlock(rows, cols, lc, lp)
            un = ~(lc | lp)
            self.ref[rows[un], cols[un]] = False
            self._tlog(rows[un], cols[un], p[un], "page already unlocked: put_page")
            self._return(rows[un], cols[un], p[un])

    def _pte_resolve(self, rows, cols):
        """pte_wait: attempt kw = kc - 1 is complete; find the restore that wakes the task."""
        R = self.R_prev[rows, cols]
        unm = self.prev_unmapped[rows]
        if self.c.recheck:
            # Enqueued at x under the PTL: the restore R_kw,i wakes it; before the PTL is
            # dropped it returns at once, with no wake latency.
            xp = self.p[rows, cols]
            early = R <= xp
            self._schedule(rows[early], cols[early], EV_RET, xp[early])
            lt = ~early
            self._wake_after(rows[lt], cols[lt], R[lt])
            return
        e = self.e[rows, cols]
        woke = unm & (R >= e)
        self._wake_after(rows[woke], cols[woke], R[woke])
        lost = ~woke
        if lost.any():
            r, c = rows[lost], cols[lost]
            fin = self.final[r]
            # No later restore will come after the page moved: a lost wake-up for good.
            self._tlog(r, c, self.e[r, c], "wake-up lost: its PTE was restored before it enqueued")
            hr, hc = r[fin & self.migrated[r]], c[fin & self.migrated[r]]
            self.hung[hr, hc] = True
            self._tlog(hr, hc, self.e[hr, hc], "HANG: its wake-up was lost and no restore of its PTE will come")
            self.in_wait[hr, hc] = False
            self._schedule(hr, hc, EV_NONE, INF)
            bud = fin & ~self.migrated[r]
            self._schedule(r[bud], c[bud], EV_NONE, INF)  # budget over: asleep, cut at the end
            go = ~fin
            self.kw[r[go], c[go]] = self.kc[r[go]]
            self._schedule(r[go], c[go], EV_PTE_RES, self.F_cur[r[go]])

    # -- advancing tasks ----------------------------------------------------------------------
    def _eligible(self, mask, horizon):
        ev = self.ev
        el = (ev != EV_NONE) & (self.t < horizon[:, None])
        virt = (ev == EV_WAKE_RES) | (ev == EV_SPIN_RES) | (ev == EV_PTE_RES)
        # A virtual event whose attempt is complete may always run (zero-cost corner cases).
        el |= virt & (self.kw < self.kc[:, None])
        el &= ~self.parked
        return el & mask[:, None]

    def advance(self, mask, horizon, max_steps=10_000_000):
        """Process task events with time < horizon for the trials in mask."""
        if self.A == 0 or not mask.any():
            return
        global_order = self.strat == LOCK_NOREF
        for _ in range(max_steps):
            el = self._eligible(mask, horizon)
            if global_order:
                el = self._global_pick(el, horizon)
                if el is None:
                    return
                rows, cols = el
            else:
                rows, cols = np.nonzero(el)
                if len(rows) == 0:
                    return
            self.process(rows, cols)
        raise RuntimeError("simulation made no progress (zero-duration loop in the timing parameters?)")

    def _global_pick(self, el, horizon):
        rows = np.nonzero(el.any(axis=1))[0]
        if len(rows) == 0:
            return None
        # The eligible event with the smallest (time, stamp); virtual events sort at their own
        # time (docs/model.md, "Ties").
        el = el[rows]
        tm = np.where(el, self.t[rows], INF)
        first = el & (tm == tm.min(axis=1)[:, None])
        col = np.argmin(np.where(first, self.stamp[rows], np.iinfo(np.int64).max), axis=1)
        return rows, col

    # -- the migrator -------------------------------------------------------------------------
    def stage1(self, rows, L):
        """Attempt kc takes the lock at L and unmaps every PTE."""
        k = self.kc[rows]
        M = self.M
        allrows = np.repeat(rows, M)
        ptes = np.tile(np.arange(1, M + 1, dtype=np.int64), len(rows))
        un = self.draw("unmap_pte", rng.UNMAP, allrows, np.repeat(k, M), ptes, 0).reshape(len(rows), M)
        cu = np.cumsum(un, axis=1) + L[:, None]
        self.L_cur[rows] = L
        if self.A:
            self.U_cur[rows, :] = cu[:, : self.A]
        UM = cu[:, -1]
        F = UM + self.draw_mig("pre_freeze", rng.PRE_FREEZE, rows, k)
        self.F_cur[rows] = F
        if self.trace is not None:
            self._log(L, 0, f"attempt {int(k[0])}: lock_page, try_to_unmap {M} PTE(s)")
            for j in range(M):
                self._log(cu[:, j], 0, f"unmap PTE {j + 1}: migration entry")
        self.fs_cur[rows] = UM if self.c.flag_from_unmap_end else L
        self.cur_unmapped[rows] = True
        self.parked[rows] = False

    def stage2(self, rows):
        """Refcount check of attempt kc, then copy/restore/unlock; shift cur -> prev."""
        k = self.kc[rows]
        M = self.M
        F = self.F_cur[rows]
        held = self.ref[rows].any(axis=1) if self.A else np.zeros(len(rows), dtype=bool)
        held |= transient_held(self.lay, self.c, self.seed, self.trial[rows], self.page, F)
        ok = ~held
        fh = self.draw_mig("freeze_hold", rng.FREEZE_HOLD, rows, k) if self.file else 0
        cp = self.draw_mig("copy", rng.COPY, rows, k)
        S = F + np.where(ok, fh + cp, 0)
        allrows = np.repeat(rows, M)
        ptes = np.tile(np.arange(1, M + 1, dtype=np.int64), len(rows))
        rm = self.draw("remap_pte", rng.REMAP, allrows, np.repeat(k, M), ptes, 0).reshape(len(rows), M)
        cr = np.cumsum(rm, axis=1) + S[:, None]
        T = cr[:, -1]
        if self.trace is not None:
            who = [int(i) + 1 for i in np.nonzero(self.ref[rows[0]])[0]] if self.A else []
            why = (f"FAILS: references held by tasks {who}" if who else "FAILS: a transient reference")
            self._log(F, 0, "refcount check " + ("passes" if ok[0] else why))
            if ok[0]:
                if self.file:
                    self._log(F, 0, "page_ref_freeze until " + str(int(F[0] + fh[0])))
                self._log(S - cp, 0, "copy page contents")
            for j in range(M):
                self._log(cr[:, j], 0, f"restore PTE {j + 1} (" + ("new page" if ok[0] else "old page") + ")")
            self._log(T, 0, "unlock_page" + (": page migrated" if ok[0] else " (-EAGAIN)"))
        self.prev_unmapped[rows] = True
        if self.A:
            self.R_prev[rows, :] = cr[:, : self.A]
        self.T_prev[rows] = T
        self.F_prev[rows] = F
        self.fe_prev[rows] = F + np.where(ok & self.file, fh, 0)
        self.succ_prev[rows] = ok
        self._shift(rows)
        return ok, T

    def trylock_fail(self, rows, arr):
        """Attempt kc finds the lock held in a trylock pass: fails at once, unmaps nothing."""
        self.prev_unmapped[rows] = False
        self.T_prev[rows] = arr
        self.F_prev[rows] = arr
        self.fe_prev[rows] = arr
        self.succ_prev[rows] = False
        self.F_cur[rows] = arr
        self._shift(rows)

    def _shift(self, rows):
        self.kc[rows] += 1
        self.cur_unmapped[rows] = False
        self.L_cur[rows] = INF
        self.fs_cur[rows] = INF
        if self.A:
            self.U_cur[rows, :] = INF

    # -- lock_noref phase 0: the migrator acquires the page lock --------------------------
    def acquire(self, rows_mask, arr, passes_idx):
        """Returns (L, trylock_failed, timed_out) for the trials in rows_mask (lock_noref only).

        timed_out: the migrator, asleep on a waiter's lock, does not get it before the timeout."""
        n = self.N
        L = np.full(n, -1, dtype=np.int64)
        failed = np.zeros(n, dtype=bool)
        timed = np.zeros(n, dtype=bool)
        horizon = np.where(rows_mask, arr, 0)
        self.advance(rows_mask, horizon)
        held = rows_mask & (self.holder > 0)
        free = rows_mask & ~held
        L[free] = arr[free]
        tl = held & (passes_idx < self.c.trylock_passes)
        failed[tl] = True
        sleep = held & ~tl
        self.mig_w[sleep] = 0
        self.mig_sleeping[sleep] = True
        self.mig_t[sleep] = INF
        waiting = sleep.copy()
        while waiting.any():
            # Tasks strictly before the migrator's run (and the timeout); the migrator first at
            # a tie.
            self._advance_until_mig(waiting)
            run = waiting & ~self.mig_sleeping & (self.mig_t < self.timeout)
            late = waiting & ~run
            timed |= late
            waiting &= ~late
            got = run & (self.holder == 0)
            L[got] = self.mig_t[got]
            waiting &= ~got
            again = run & ~got
            self.mig_sleeping[again] = True
            self.mig_t[again] = INF
        return L, failed, timed

    def _advance_until_mig(self, mask):
        for _ in range(10_000_000):
            horizon = np.minimum(self.mig_t, self.timeout)
            el = self._eligible(mask, horizon)
            pick = self._global_pick(el, horizon)
            if pick is None:
                return
            self.process(*pick)
        raise RuntimeError("simulation made no progress")

    # -- finishing ----------------------------------------------------------------------------
    def finish(self, rows, end):
        """Budget over for these trials: tasks still waiting have their waits cut at end."""
        if self.A == 0 or len(rows) == 0:
            return
        e = end[:, None]
        iw = self.in_wait[rows]
        wl = np.where(iw, np.maximum(e - self.wait_start[rows], 0), 0)
        self.total_wait[rows] += wl
        self.max_wait[rows] = np.maximum(self.max_wait[rows], wl)
        self.in_wait[rows] = False
        sp = self.spinning[rows]
        self.spin[rows] += np.where(sp, np.maximum(e - self.p[rows], 0), 0)
        self.spinning[rows] = False

    # -- one attempt, driven by the page-level loop or the block-level loop ------------
    def attempt(self, rows, arr, pidx):
        """Attempt kc of this page for the trials ``rows``, the migrator arriving at ``arr`` (before
        the timeout).

        Returns (ok, T, timed) aligned with rows (a trylock failure is not ok, with T = arr).
        timed: the attempt did not end before the timeout (the migrator got the lock too late,
        or its refcount check or its unlock came at or after the timeout): the page has not moved
        within the budget, whatever the check said, and no task has run past the timeout. A trial
        whose page moves is wound down at once: its tasks run until they return or hang.
        """
        n = self.N
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
        arr_f = np.zeros(n, dtype=np.int64)
        arr_f[rows] = arr
        if self.strat == LOCK_NOREF:
            pidx_f = np.zeros(n, dtype=np.int64)
            pidx_f[rows] = pidx
            L, tfail, late = self.acquire(mask, arr_f, pidx_f)
        else:
            L, tfail, late = arr_f, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        ok = np.zeros(len(rows), dtype=bool)
        T = np.array(arr, dtype=np.int64, copy=True)
        timed = late[rows].copy()
        tf = tfail[rows]
        if tf.any():
            self._log(arr[tf], 0, "trylock_page fails (a waiter holds the lock): -EAGAIN")
            self.trylock_fail(rows[tf], arr[tf])
        g = ~tf & ~timed
        if g.any():
            grows = rows[g]
            self.stage1(grows, L[grows])
            gm = np.zeros(n, dtype=bool)
            gm[grows] = True
            self.advance(gm, np.where(gm, np.minimum(self.F_cur, self.timeout), 0))
            # A refcount check at or after the timeout never happens within the budget.
            late_check = self.F_cur[grows] >= self.timeout
            timed[np.nonzero(g)[0][late_check]] = True
            g &= ~timed
        if g.any():
            grows = rows[g]
            okg, Tg = self.stage2(grows)
            ok[g] = okg
            T[g] = Tg
            timed[g] = Tg >= self.timeout
            ok &= ~timed
        srows = rows[ok]
        if len(srows):
            self.migrated[srows] = True
            self.final[srows] = True
            fd = self.draw_mig("free_delay", rng.FREE_DELAY, srows, self.kc[srows] - 1)
            self.free_t[srows] = T[ok] + fd
            self._log(T[ok] + fd, 0, "old page freed")
            self.last_t[srows] = np.maximum(self.last_t[srows], T[ok])
            m = np.zeros(n, dtype=bool)
            m[srows] = True
            self.advance(m, np.where(m, INF, 0))
        return ok, T, timed

    def stop(self, rows, end):
        """The budget ran out for these trials at ``end``: run the tasks up to it, cut waits."""
        if len(rows) == 0:
            return
        self.final[rows] = True
        self.parked[rows] = False
        m = np.zeros(self.N, dtype=bool)
        m[rows] = True
        e = np.zeros(self.N, dtype=np.int64)
        e[rows] = end
        self.advance(m, e)
        self.finish(rows, end)

    def task_outcomes(self):
        n = self.N
        if self.A == 0:
            z = np.zeros(n, dtype=np.int64)
            return {"uaf": self.uaf, "hang": z, "faults": z, "max_wait": z, "total_wait": z, "spin": z}
        return {
            "uaf": self.uaf,
            "hang": self.hung.any(axis=1) & self.migrated,
            "faults": self.faults.sum(axis=1), "max_wait": self.max_wait.max(axis=1),
            "total_wait": self.total_wait.sum(axis=1), "spin": self.spin.sum(axis=1),
        }


def simulate_page(c: Compiled, seed: int, trials: np.ndarray, trace: list | None = None) -> Records:
    sim = _Sim(c, seed, trials)
    sim.trace = trace
    n = len(trials)
    passes = int(c.passes)
    arr = np.zeros(n, dtype=np.int64)
    attempts = np.zeros(n, dtype=np.int64)
    running = np.ones(n, dtype=bool)
    t_mig = np.full(n, -1, dtype=np.int64)
    livelock = np.zeros(n, dtype=bool)
    censored = np.zeros(n, dtype=bool)
    end = np.zeros(n, dtype=np.int64)
    last_T = np.zeros(n, dtype=np.int64)
    timeout = np.int64(c.timeout_ns)
    while running.any():
        # Budget (docs/model.md, "Budget"): max_attempts is checked when an attempt would start
        # (every earlier attempt ended before the timeout, or the trial would have stopped).
        cap = running & (attempts >= c.max_attempts)
        censored |= cap
        to = running & ~cap & (arr >= timeout)
        livelock |= to
        stop = cap | to
        if stop.any():
            rows = np.nonzero(stop)[0]
            end[rows] = np.where(censored[rows], last_T[rows], timeout)
            sim.stop(rows, end[rows])
            running &= ~stop
        rows = np.nonzero(running)[0]
        if len(rows) == 0:
            break
        attempts[rows] += 1
        ok, T, timed = sim.attempt(rows, arr[rows], (attempts[rows] - 1) % passes)
        if timed.any():
            # The timeout came during this attempt: a livelock, ended at the timeout.
            trows = rows[timed]
            livelock[trows] = True
            end[trows] = timeout
            sim.stop(trows, end[trows])
            running[trows] = False
        last_T[rows] = T
        srows = rows[ok]
        t_mig[srows] = T[ok]
        end[srows] = np.maximum(T[ok], sim.last_t[srows])
        running[srows] = False
        # Next arrival: retry_gap within a migrate_pages call, outer_gap between calls.
        rows = np.nonzero(running)[0]
        if len(rows):
            k = attempts[rows]
            last_pass = ((k - 1) % passes) == passes - 1
            rg = sim.draw("retry_gap", rng.GAP, rows, k, 0, 0)
            og = sim.draw("outer_gap", rng.GAP, rows, k, 0, 1)
            arr[rows] = last_T[rows] + np.where(last_pass, og, rg)
    migrated = sim.migrated
    calls = np.where(attempts > 0, (attempts - 1) // passes + 1, 0)
    call_failed = ~(migrated & (attempts <= passes))
    cols = {
        "migrated": migrated, "attempts": attempts, "calls": calls, "t_migrated": t_mig,
        "call_failed": call_failed, "livelock": livelock, "censored": censored,
        "end_time": end, "pages_left": (~migrated).astype(np.int64),
    }
    cols.update(sim.task_outcomes())
    return Records(int(trials[0]) if n else 0, {k: np.asarray(v).astype(np.int64) for k, v in cols.items()})


class NumpyEngine(Engine):
    name = "numpy"

    @classmethod
    def availability(cls):
        return True, f"numpy {np.__version__}"

    def run_records(self, compiled: Compiled, seed: int, t0: int, t1: int) -> Records:
        trials = np.arange(t0, t1, dtype=np.int64)
        if compiled.block is not None:
            from .numpy_block import simulate_block
            return simulate_block(compiled, seed, trials)
        return simulate_page(compiled, seed, trials)

    def default_batch(self, compiled: Compiled) -> int:
        cells = max(1, compiled.page.mapcount)
        return int(max(64, min(8192, 400_000 // cells)))

