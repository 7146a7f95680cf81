"""The page simulation of the numpy engine: one page, a batch of trials in lock step (docs/model.md).

Where it sits: below ``numpy_engine`` (which dispatches to ``simulate_page`` or to
``numpy_block.simulate_block``) and ``numpy_block`` (which drives one ``PageSim`` per hot page).
It is the ground truth for the kernels (kernels/ is a port of it; tests/test_parity.py holds them
to the same bits) and is itself checked against the exact solutions (mcexplore.exact).

Shape of the computation. All trials of a batch advance in lock step, one migration attempt per
outer iteration, masked when done, as a GPU warp would. Within attempt k:

  stage 1   the migrator takes the lock at L_k (a strategy whose waiters take the page lock: maybe
            after sleeping on a waiter's lock, or not at all: a trylock failure) and unmaps:
            U_k,i, F_k;
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

What a waiter does is its strategy's: ``PageSim`` keeps what every strategy shares (accesses, the
fault up to the PTL hold, sleeping on the migrator's unlock, waking, returning) and hands the rest
to the strategy's handler (mcexplore.engines.numpy_strategies), which it takes from the strategy
registry (mcexplore.strategies): ``at_fault`` (the handler holds the PTL on a migration entry),
``at_ptl_release`` (Ev.PTL), ``on_wake`` (Ev.WAKE) and ``on_event`` (the strategy's own events).
Tasks interact only through the page lock (a strategy with ``global_order``, lock_noref), so every
other strategy advances all tasks in parallel ("task-parallel"), while a global-order strategy
processes one event per trial at a time in order of (time, stamp): the migrator first at a tie,
then task events in the order they were scheduled (docs/model.md, "Ties"). The per-event logic is
the same in both modes.

Observation. ``PageSim.observe(kind, rows, cols, t, **details)`` is the one hook through which the
simulation reports what happens (replay renders it: mcexplore.replay); without an observer it does
nothing and results never depend on it. An observer is called as ``observer(kind, rows, who, t,
details)``: ``rows`` the trial rows of the batch, ``who`` 0 for the migrator or i for task i, ``t``
the time (ns), three aligned int64 arrays; ``details`` maps names to a scalar or to an array (or a
list) aligned with them. At block level every observation of a page carries ``page``.
"""

from __future__ import annotations

import numpy as np

from .. import constants as K
from .. import rng, strategies, transient
from ..params import DIST_INDEX, Compiled
from ..results import Records

INF = np.int64(K.INF)
SUB_SHIFT = K.SUB_SHIFT
D = DIST_INDEX
Ev = K.Ev
EV_NONE, EV_ACCESS, EV_FAULT, EV_PTL, EV_WAKE, EV_WAKE_RES, EV_RET = (
    int(Ev.NONE), int(Ev.ACCESS), int(Ev.FAULT), int(Ev.PTL), int(Ev.WAKE), int(Ev.WAKE_RES), int(Ev.RET))
# Virtual events: a task parked until the attempt it waits on is complete (see the docstring).
VIRTUAL = (int(Ev.WAKE_RES), int(Ev.SPIN_RES), int(Ev.PTE_RES))


def _u64(words):
    """The 64-bit uniform x0 << 32 | x1 of a draw."""
    return (words[0] << np.uint64(32)) | words[1]


def transient_held(lay: transient.Layout, c: Compiled, seed: int, trials, page, F, on_window=None):
    """Is a transient reference held at each refcount check F (mcexplore.transient)?

    trials (uint64) and F (int64) are aligned arrays; page is the counter's page field (an int or
    an aligned array). on_window(r, w, n), if given, is told every window a check looks at, in
    increasing order per check: r the checks' indices, w the windows, n their arrival counts (a
    tilted run counts them: params.TiltLayout)."""
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
        if on_window is not None:
            on_window(r, w[r], n)
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


class PageSim:
    """Lock-step simulation of one page for a batch of trials.

    page: the page's index in its block (block level: the draws' page field, and the ``page`` of
    every observation), or None at page level (page field 0). observer: see the module docstring.
    """

    def __init__(self, c: Compiled, seed: int, trials: np.ndarray, lay: transient.Layout | None = None,
                 page: int | None = None, observer=None):
        self.c = c
        self.lay = transient.layout(c) if lay is None else lay
        self.timeout = np.int64(c.timeout_ns)
        self.seed = int(seed)
        self.trial = trials.astype(np.uint64)
        self.page = 0 if page is None else int(page)
        self.block_page = page
        self.observer = observer
        n = len(trials)
        pc = c.page
        self.M = int(pc.mapcount)
        self.A = int(pc.active) if pc.access_mean_ns > 0 else 0
        self.file = bool(pc.file)
        # The strategy: its registry row says whether its tasks need global event order and
        # whether the migrator may have to take the page lock from a waiter; its handler does
        # what its waiters do.
        row = strategies.by_code(c.strategy)
        self.strategy = row
        self.handler = row.handler()()
        self.global_order = bool(row.global_order)
        self.takes_page_lock = bool(row.takes_page_lock)
        self.N = n
        # A tilted run's statistics (params.TiltLayout), one row per trial; draw_log: a test's
        # list of the keys of every counted draw (trial, dist, purpose, k, i, sub).
        tl = c.tilt
        self.stats = np.zeros((n, tl.nslot), dtype=np.int64) if tl is not None and tl.nslot else None
        self.tilt_slots = {} if tl is None else {
            int(d): (np.asarray(cnt, dtype=np.int64), np.asarray(tot, dtype=np.int64))
            for d, (cnt, tot) in tl.dist_slots.items()}
        self.tilt_transient = -1 if tl is None else int(tl.transient_slot)
        self.tr_last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self.draw_log = None
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
        # Waiters that take the page lock (lock_noref): which task holds it (0: none); the
        # migrator's hold is derived from its own intervals, so it never appears here.
        self.holder = np.zeros(n, dtype=np.int64)
        self.mig_t = np.full(n, INF, dtype=np.int64)  # the migrator's wake-run time
        self.mig_w = np.zeros(n, dtype=np.int64)
        self.mig_sleeping = np.zeros(n, dtype=bool)

    # -- observation (no effect on results) -------------------------------------------------
    def observe(self, kind: str, rows, cols, t, sel=None, **details):
        """Report ``kind`` for the trial rows ``rows`` (tasks ``cols``, or the migrator if cols is
        None) at times ``t``; ``sel`` (a mask aligned with rows) picks some of them. Details that
        are arrays or lists are aligned with rows (before ``sel``)."""
        if self.observer is None:
            return
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), rows.shape)
        if cols is None:
            who = np.zeros(rows.shape, dtype=np.int64)
        else:
            who = np.broadcast_to(np.asarray(cols, dtype=np.int64) + 1, rows.shape)
        if sel is not None:
            rows, t, who = rows[sel], t[sel], who[sel]
            pick = np.nonzero(sel)[0]
            details = {k: (v[pick] if isinstance(v, np.ndarray) and v.ndim else
                           [v[i] for i in pick] if isinstance(v, list) else v) for k, v in details.items()}
        if not len(rows):
            return
        if self.block_page is not None:
            details["page"] = self.block_page
        self.observer(kind, rows, who, t, details)

    # -- randomness -------------------------------------------------------------------------
    def draw(self, dist: str, purpose: int, rows, k, i, sub=0, page=None):
        """One draw of ``dist`` for each of ``rows`` (every one of them uses its value: a tilted
        run counts each, params.TiltLayout)."""
        d = D[dist]
        cd = self.c.dists[d]
        if cd.is_const:
            # A constant reads no word of its draw (rng.sample): no Philox call, as in the kernels.
            shape = np.broadcast(np.asarray(rows), np.asarray(k), np.asarray(i), np.asarray(sub),
                                 np.asarray(self.page if page is None else page)).shape
            return np.full(shape, cd.const_ns, dtype=np.int64)
        words = rng.draw_words(self.seed, self.trial[rows], purpose, self.page if page is None else page, k, i, sub)
        slots = self.tilt_slots.get(d) if self.stats is not None else None
        if slots is None:
            return rng.sample(self.c.dists[d], words)
        v, leaf = rng.sample_leaf(self.c.dists[d], words)
        rows = np.broadcast_to(np.asarray(rows, dtype=np.int64), v.shape)
        count, total = slots
        np.add.at(self.stats, (rows, count[leaf]), 1)
        t = total[leaf]
        m = t >= 0
        if m.any():
            np.add.at(self.stats, (rows[m], t[m]), v[m])
        if self.draw_log is not None:
            for r, kk, ii, ss in zip(*(np.broadcast_to(np.asarray(x, dtype=np.int64), v.shape).tolist()
                                       for x in (rows, k, i, sub))):
                self.draw_log.append((int(self.trial[r]), d, purpose, kk, ii, ss))
        return v

    def count_window(self, rows):
        """A tilted run's transient windows (params.TiltLayout): on_window for the checks of
        ``rows``, each window counted once per trial."""
        s = self.tilt_transient

        def on_window(r, w, n):
            rr = rows[r]
            new = w > self.tr_last[rr]
            rr, n = rr[new], n[new]
            np.add.at(self.stats, (rr, s), 1)
            np.add.at(self.stats, (rr, s + 1), n)
            self.tr_last[rr] = w[new]
        return on_window

    def draw_mig(self, dist: str, purpose: int, rows, k, page=None):
        return self.draw(dist, purpose, rows, k, 0, 0, page)

    # -- helpers on selected (row, col) pairs (the strategies' handlers use them) -----------
    def locked_by(self, rows, t):
        """Who holds the page lock at t (migrator only): 2 = attempt kc (T unknown), 1 = kc-1."""
        lc = self.cur_unmapped[rows] & (t >= self.L_cur[rows])
        lp = ~lc & (t < self.T_prev[rows])
        return lc, lp

    def sub_of(self, rows, cols):
        """The draw sub-index of a task's fault and wake number."""
        return (self.jf[rows, cols] << SUB_SHIFT) | (self.w[rows, cols] & ((1 << SUB_SHIFT) - 1))

    def wake_after(self, rows, cols, base):
        """Schedule Ev.WAKE at base + wake_latency (keyed by the fault and its wake number)."""
        wl = self.draw("wake_latency", rng.WAKE, rows, self.kf[rows, cols], cols + 1,
                       self.sub_of(rows, cols))
        self.w[rows, cols] += 1
        self.schedule(rows, cols, EV_WAKE, base + wl)
        self.observe("wake", rows, cols, base + wl)

    def sleep_on_unlock(self, rows, cols, lc, lp):
        """Sleep until the unlock of the attempt holding the lock (lc: kc, lp: kc - 1)."""
        if lc.any():
            r, c = rows[lc], cols[lc]
            self.observe("sleep_unlock", r, c, self.t[r, c])
            self.kw[r, c] = self.kc[r]
            self.schedule(r, c, EV_WAKE_RES, self.F_cur[r])
        if lp.any():
            r, c = rows[lp], cols[lp]
            self.observe("sleep_unlock", r, c, self.t[r, c])
            self.wake_after(r, c, self.T_prev[r])

    def schedule(self, rows, cols, ev, t):
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

    def access(self, rows, cols, r):
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
            self.observe("access_fault", fr, fc, fa)
            self.schedule(fr, fc, EV_FAULT, fa + fe)
        nf = ~fault
        if nf.any():
            nr, nc, na = rows[nf], cols[nf], r[nf]
            sched = self.cur_unmapped[nr]  # then na < U_cur: next access after U_kc,i
            if sched.any():
                sr, sc = nr[sched], nc[sched]
                a = self.U_cur[sr, sc] + self.draw("access", rng.ACCESS, sr, self.kc[sr], sc + 1, 0)
                self.schedule(sr, sc, EV_ACCESS, a)
            rest = ~sched
            if rest.any():
                rr, rc = nr[rest], nc[rest]
                fin = self.final[rr]
                # No further attempt: done. Otherwise attempt kc has not unmapped yet (the
                # migrator is still acquiring the page lock): the access is looked at again once
                # it has.
                self.schedule(rr[fin], rc[fin], EV_NONE, INF)
                nfr, nfc = rr[~fin], rc[~fin]
                self.parked[nfr, nfc] = True
                self.schedule(nfr, nfc, EV_ACCESS, na[rest][~fin])

    def ret(self, rows, cols, r):
        """End the wait at r (spin included) and retry the access at once."""
        iw = self.in_wait[rows, cols]
        wl = np.where(iw, r - self.wait_start[rows, cols], 0)
        self.total_wait[rows, cols] += wl
        self.max_wait[rows, cols] = np.maximum(self.max_wait[rows, cols], wl)
        self.in_wait[rows, cols] = False
        sp = self.spinning[rows, cols]
        self.spin[rows, cols] += np.where(sp, r - self.p[rows, cols], 0)
        self.spinning[rows, cols] = False
        self.observe("return", rows, cols, r)
        self.access(rows, cols, r)

    # -- one event for each selected (row, col) --------------------------------------------
    def process(self, rows, cols):
        ev = self.ev[rows, cols]
        t = self.t[rows, cols]
        # A trial ends at its last event that changes state: an idle task's access after the
        # restore is not one (it touches the page and stays idle).
        np.maximum.at(self.last_t, rows, np.where((ev == EV_NONE) | (ev == EV_ACCESS), 0, t))
        h = self.handler
        for code in np.unique(ev):
            m = ev == code
            r, c, tt = rows[m], cols[m], t[m]
            if code == EV_ACCESS:
                self.access(r, c, tt)
            elif code == EV_FAULT:
                self.fault(r, c, tt)
            elif code == EV_PTL:
                h.at_ptl_release(self, r, c, tt)
            elif code == EV_WAKE:
                h.on_wake(self, r, c, tt)
            elif code == EV_WAKE_RES:
                self.wake_after(r, c, self.T_prev[r])
            elif code == EV_RET:
                self.ret(r, c, tt)
            elif not h.on_event(self, int(code), r, c, tt):
                raise RuntimeError(f"strategy {self.strategy.name!r}: no handler for event {Ev(int(code)).name}")

    def fault(self, rows, cols, x):
        """The fault handler takes the PTL at x: the common part, then the strategy's."""
        inc = self.cur_unmapped[rows] & (x >= self.U_cur[rows, cols])
        inp = ~inc & self.prev_unmapped[rows] & (x < self.R_prev[rows, cols])
        win = inc | inp
        gone = ~win
        if gone.any():
            # The PTE was restored before the handler took the PTL: no fault, no wait.
            gr, gc = rows[gone], cols[gone]
            self.observe("no_fault", gr, gc, x[gone])
            self.in_wait[gr, gc] = False
            self.access(gr, gc, x[gone])
        if not win.any():
            return
        rows, cols, x, inc, inp = rows[win], cols[win], x[win], inc[win], inp[win]
        self.faults[rows, cols] += 1
        self.observe("fault", rows, cols, x)
        kw = np.where(inc, self.kc[rows], self.kc[rows] - 1)
        self.kw[rows, cols] = kw
        kf = self.kf[rows, cols]
        sub = self.jf[rows, cols] << SUB_SHIFT
        p = x + self.draw("ptl_hold", rng.PTL_HOLD, rows, kf, cols + 1, sub)
        self.p[rows, cols] = p
        # get_page_unless_zero fails while a successful file attempt holds the count frozen.
        frozen = inp & self.succ_prev[rows] & self.file & (x < self.fe_prev[rows])
        self.handler.at_fault(self, rows, cols, x, p, inc, inp, frozen, kf, sub)

    # -- advancing tasks ----------------------------------------------------------------------
    def _eligible(self, mask, horizon):
        ev = self.ev
        el = (ev != EV_NONE) & (self.t < horizon[:, None])
        virt = (ev == VIRTUAL[0]) | (ev == VIRTUAL[1]) | (ev == VIRTUAL[2])
        # A virtual event whose attempt is complete may always run (zero-cost corner cases).
        el |= virt & (self.kw < self.kc[:, None])
        el &= ~self.parked
        return el & mask[:, None]

    def advance(self, mask, horizon, max_steps=K.MAX_EVENTS):
        """Process task events with time < horizon for the trials in mask."""
        if self.A == 0 or not mask.any():
            return
        global_order = self.global_order
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
    def unmap(self, rows, L, k, page=None):
        """Stage 1's draws: the unmap times (cumulative, [len(rows), M]) from L and the refcount
        check time F of attempt k (page: the draws' page field, default this page's)."""
        cu = self._per_pte("unmap_pte", rng.UNMAP, rows, k, page, L)
        UM = cu[:, -1] if self.M else L
        F = UM + self.draw_mig("pre_freeze", rng.PRE_FREEZE, rows, k, page)
        return cu, UM, F

    def remap(self, rows, F, k, held, page=None):
        """Stage 2's draws: the check at F (``held``: a task's reference; a transient one is drawn
        here), the freeze, the copy and the restores of attempt k. Returns (ok, fh, cp, S, cr)
        with cr the restore times (cumulative, [len(rows), M])."""
        page = self.page if page is None else page
        tally = self.count_window(rows) if self.stats is not None and self.tilt_transient >= 0 else None
        held = held | transient_held(self.lay, self.c, self.seed, self.trial[rows], page, F, tally)
        ok = ~held
        # The freeze and the copy are drawn for the attempts that succeed (a tilted run counts
        # the draws a trial makes).
        fh = np.zeros(len(rows), dtype=np.int64)
        cp = np.zeros(len(rows), dtype=np.int64)
        if ok.any():
            okp = page[ok] if np.ndim(page) else page
            okk = np.broadcast_to(k, ok.shape)[ok]
            if self.file:
                fh[ok] = self.draw_mig("freeze_hold", rng.FREEZE_HOLD, rows[ok], okk, okp)
            cp[ok] = self.draw_mig("copy", rng.COPY, rows[ok], okk, okp)
        S = F + np.where(ok, fh + cp, 0)
        cr = self._per_pte("remap_pte", rng.REMAP, rows, k, page, S)
        return ok, fh, cp, S, cr

    def _per_pte(self, dist, purpose, rows, k, page, start):
        """start + the running sum of one draw per PTE i = 1..M, keyed (purpose, k, i):
        [len(rows), M]."""
        M = self.M
        if M == 0:
            return np.empty((len(rows), 0), dtype=np.int64)
        allrows = np.repeat(rows, M)
        ptes = np.tile(np.arange(1, M + 1, dtype=np.int64), len(rows))
        if page is not None and np.ndim(page):
            page = np.repeat(page, M)
        d = self.draw(dist, purpose, allrows, np.repeat(k, M), ptes, 0, page).reshape(len(rows), M)
        return np.cumsum(d, axis=1) + start[:, None]

    def stage1(self, rows, L):
        """Attempt kc takes the lock at L and unmaps every PTE."""
        k = self.kc[rows]
        cu, UM, F = self.unmap(rows, L, k)
        self.L_cur[rows] = L
        if self.A:
            self.U_cur[rows, :] = cu[:, : self.A]
        self.F_cur[rows] = F
        if self.observer is not None:
            self.observe("lock_unmap", rows, None, L, attempt=k, ptes=self.M)
            for j in range(self.M):
                self.observe("unmap_pte", rows, None, cu[:, j], pte=j + 1)
        self.fs_cur[rows] = UM if self.c.flag_from_unmap_end else L
        self.cur_unmapped[rows] = True
        self.parked[rows] = False

    def stage2(self, rows):
        """Refcount check of attempt kc, then copy/restore/unlock; shift cur -> prev."""
        k = self.kc[rows]
        F = self.F_cur[rows]
        held = self.ref[rows].any(axis=1) if self.A else np.zeros(len(rows), dtype=bool)
        ok, fh, cp, S, cr = self.remap(rows, F, k, held)
        T = cr[:, -1]
        if self.observer is not None:
            holders = [[int(i) + 1 for i in np.nonzero(self.ref[r])[0]] if self.A else [] for r in rows]
            self.observe("refcount_check", rows, None, F, ok=ok, holders=holders)
            if self.file:
                self.observe("freeze", rows, None, F, sel=ok, until=F + fh)
            self.observe("copy", rows, None, S - cp, sel=ok)
            for j in range(self.M):
                self.observe("restore_pte", rows, None, cr[:, j], pte=j + 1, ok=ok)
            self.observe("unlock", rows, None, T, ok=ok)
        self.prev_unmapped[rows] = True
        if self.A:
            self.R_prev[rows, :] = cr[:, : self.A]
        self.T_prev[rows] = T
        self.F_prev[rows] = F
        self.fe_prev[rows] = F + np.where(ok & self.file, fh, 0)
        self.succ_prev[rows] = ok
        self._shift(rows)
        return ok, T

    def untouched_attempt(self, rows, pages, k, arr):
        """One attempt on pages nobody touches (block level's cold pages of this sim's class):
        the draws of stage 1 and stage 2 for the given pages (page field) and attempts k, the
        migrator arriving at arr. Changes no state; returns (ok, T)."""
        cu, UM, F = self.unmap(rows, arr, k, pages)
        ok, fh, cp, S, cr = self.remap(rows, F, k, np.zeros(len(rows), dtype=bool), pages)
        return ok, (cr[:, -1] if self.M else S)

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

    # -- the migrator acquires the page lock (strategies whose waiters take it) -----------
    def acquire(self, rows_mask, arr, passes_idx):
        """Returns (L, trylock_failed, timed_out) for the trials in rows_mask.

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
        for _ in range(K.MAX_EVENTS):
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
        if self.takes_page_lock:
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
            self.observe("trylock_fail", rows[tf], None, arr[tf])
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
            self.observe("freed", srows, None, T[ok] + fd)
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

    # Arrays whose first axis is not the trial's (compact leaves them).
    NOT_PER_TRIAL = frozenset({"cols"})

    def compact(self, keep):
        """Keep only the trials at rows ``keep`` (sorted), renumbered 0 .. len(keep) - 1.

        Every per-trial array is one whose first axis has length N (NOT_PER_TRIAL names the
        exceptions). A trial's results depend on its own rows only (draws are keyed by the trial
        number in ``self.trial``), so dropping the others changes nothing for it."""
        keep = np.asarray(keep)
        for name, v in list(vars(self).items()):
            if isinstance(v, np.ndarray) and v.ndim and v.shape[0] == self.N and name not in self.NOT_PER_TRIAL:
                setattr(self, name, v[keep])
        self.N = len(keep)

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


# simulate_page compacts its batch (PageSim.compact) once at most this share of its trials still runs:
# without it, one long trial (a livelock of 1000 attempts) keeps the whole batch's arrays in every
# step (numpy flag_spin on thread-2018: 67 trials/s on 1000 trials against 1,591 on 16). Each
# compaction copies the state once, so all of them together cost at most twice one copy.
COMPACT_SHARE = 0.5
COMPACT_MIN = 16  # never for fewer trials than this (nothing to gain)


def simulate_page(c: Compiled, seed: int, trials: np.ndarray, observer=None) -> Records:
    """Page level: the migrate_pages loop around the attempts of one page (docs/model.md,
    "Migrator"), for the trials ``trials``.

    Finished trials are compacted out of the batch (COMPACT_SHARE) unless an observer watches:
    its rows are the batch's, and replay's batches are one trial anyway."""
    sim = PageSim(c, seed, trials, observer=observer)
    n = len(trials)
    passes = int(c.passes)
    # The loop's per-trial arrays, over the rows of the (possibly compacted) batch; pos: the
    # output row of each.
    arr = np.zeros(n, dtype=np.int64)
    attempts = np.zeros(n, dtype=np.int64)
    running = np.ones(n, dtype=bool)
    t_mig = np.full(n, -1, dtype=np.int64)
    livelock = np.zeros(n, dtype=bool)
    censored = np.zeros(n, dtype=bool)
    end = np.zeros(n, dtype=np.int64)
    last_T = np.zeros(n, dtype=np.int64)
    pos = np.arange(n)
    out: dict[str, np.ndarray] = {}
    stats = None if sim.stats is None else np.zeros_like(sim.stats)
    timeout = np.int64(c.timeout_ns)

    def flush(rows):
        """Write the results of batch rows ``rows`` (finished trials) to their output rows."""
        cols = {"migrated": sim.migrated, "attempts": attempts, "t_migrated": t_mig,
                "livelock": livelock, "censored": censored, "end_time": end}
        cols.update(sim.task_outcomes())
        for k, v in cols.items():
            out.setdefault(k, np.zeros(n, dtype=np.int64))[pos[rows]] = np.asarray(v)[rows]
        if stats is not None:
            stats[pos[rows]] = sim.stats[rows]

    while running.any():
        nrun = int(running.sum())
        if observer is None and sim.N >= COMPACT_MIN and nrun <= COMPACT_SHARE * sim.N:
            flush(np.nonzero(~running)[0])
            keep = np.nonzero(running)[0]
            sim.compact(keep)
            pos, arr, attempts, t_mig, livelock, censored, end, last_T = (
                a[keep] for a in (pos, arr, attempts, t_mig, livelock, censored, end, last_T))
            running = np.ones(len(keep), dtype=bool)
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
            gap = np.zeros(len(rows), dtype=np.int64)
            if (~last_pass).any():
                gap[~last_pass] = sim.draw("retry_gap", rng.GAP, rows[~last_pass], k[~last_pass], 0, 0)
            if last_pass.any():
                gap[last_pass] = sim.draw("outer_gap", rng.GAP, rows[last_pass], k[last_pass], 0, 1)
            arr[rows] = last_T[rows] + gap
    flush(np.arange(sim.N))
    attempts, migrated = out["attempts"], out["migrated"].astype(bool)
    calls = np.where(attempts > 0, (attempts - 1) // passes + 1, 0)
    call_failed = ~(migrated & (attempts <= passes))
    cols = {k: out[k] for k in ("migrated", "attempts", "t_migrated", "livelock", "censored", "end_time")}
    cols.update({"calls": calls, "call_failed": call_failed, "pages_left": (~migrated).astype(np.int64)})
    cols.update({k: out[k] for k in ("uaf", "hang", "faults", "max_wait", "total_wait", "spin")})
    return Records(int(trials[0]) if n else 0, {k: np.asarray(v).astype(np.int64) for k, v in cols.items()},
                   stats)
