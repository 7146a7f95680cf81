"""Block level of the numpy engine: offlining a memory block page by page (MODEL.md 1.6).

Where it sits: called by ``numpy_engine`` (``simulate``) when the compiled scenario has a block;
it imports the page simulation (``numpy_page``). Pages with active tasks ("hot") each get a page
simulation (``numpy_page.PageSim``) driven by the block's migrator clock; pages nobody touches
("cold") share one task-less ``PageSim`` per class, whose stage 1 and stage 2 draws
(``PageSim.untouched_attempt``) run for all of the class's pages at once.

The offline loop (docs/model.md, "Block level"): isolate the first ``batch_pages`` pages that are
neither moved nor abandoned, in block order; call migrate_pages on the batch: up to ``passes``
passes, each walking the batch's unmoved pages in order, one attempt per page; between two attempts
of a call the migrator spends ``retry_gap``, between calls ``outer_gap``. A page that has used
``max_attempts`` attempts is abandoned. The block is offlined when every page has moved; the trial
stops at ``timeout`` (livelock) or when only abandoned pages remain (censored).

Draw keys: a page's own draws carry its index in the counter's page field and its own attempt
number as k; the migrator's gaps use page BLOCK_PAGE and the block's global attempt number.

Observation (``observer``, as in numpy_page): the hot pages' sims report with ``page``; the loop
itself reports "call" (a migrate_pages call on a batch), "abandoned" and "cold_attempt" (an attempt
on a page without waiters), the last two with ``page``.
"""

from __future__ import annotations

import copy

import numpy as np

from .. import constants as K
from .. import rng, transient
from ..params import DIST_INDEX, Compiled, exponential
from ..results import Records
from .numpy_page import PageSim

BLOCK_PAGE = K.BLOCK_PAGE
D = DIST_INDEX


def expand_pages(c: Compiled):
    """Class index of every page of the block, in block order."""
    return np.repeat(np.arange(len(c.block)), [pc.count for pc in c.block])


def _class_compiled(c: Compiled, pc) -> Compiled:
    """The compiled scenario of one page of class ``pc`` (a page-level view of the block)."""
    cc = copy.copy(c)
    cc.page = pc
    cc.block = None
    return cc


def simulate_block(c: Compiled, seed: int, trials: np.ndarray, observer=None) -> Records:
    seed = int(seed)
    n = len(trials)
    tr = trials.astype(np.uint64)
    cls = expand_pages(c)
    P = len(cls)
    B = int(c.batch_pages)
    passes = int(c.passes)
    timeout = np.int64(c.timeout_ns)
    hot_of_class = [pc.active > 0 and pc.access_mean_ns > 0 for pc in c.block]
    hot_pages = [pg for pg in range(P) if hot_of_class[cls[pg]]]
    lay = transient.layout(c)
    sims = {}
    for pg in hot_pages:
        cc = _class_compiled(c, c.block[cls[pg]])
        # Each class has its own access rate: its own exponential (the kernels build the same).
        cc.dists = list(c.dists)
        cc.dists[D["access"]] = exponential(cc.page.access_mean_ns)
        sims[pg] = PageSim(cc, seed, trials, lay, page=pg, observer=observer)
    # Cold pages: one task-less sim per class, for its draws only.
    cold_sims = {cl: PageSim(_class_compiled(c, pc), seed, trials, lay)
                 for cl, pc in enumerate(c.block) if not hot_of_class[cl]}

    moved = np.zeros((n, P), dtype=bool)
    abandoned = np.zeros((n, P), dtype=bool)
    patt = np.zeros((n, P), dtype=np.int32)
    batch = np.full((n, B), -1, dtype=np.int64)
    in_batch = np.zeros((n, B), dtype=bool)  # still to be tried in this call
    pas = np.zeros(n, dtype=np.int64)
    pos = np.zeros(n, dtype=np.int64)
    need_batch = np.ones(n, dtype=bool)
    call_start = np.zeros(n, dtype=bool)
    calls = np.zeros(n, dtype=np.int64)
    gk = np.zeros(n, dtype=np.int64)
    last_T = np.zeros(n, dtype=np.int64)
    running = np.ones(n, dtype=bool)
    offlined = np.zeros(n, dtype=bool)
    livelock = np.zeros(n, dtype=bool)
    censored = np.zeros(n, dtype=bool)
    call_failed = np.zeros(n, dtype=bool)
    first_call_done = np.zeros(n, dtype=bool)
    end = np.zeros(n, dtype=np.int64)
    t_off = np.full(n, -1, dtype=np.int64)
    arange_B = np.arange(B)

    def gap(rows, outer):
        k = gk[rows]
        rg = rng.sample(c.dists[D["retry_gap"]], rng.draw_words(seed, tr[rows], rng.GAP, BLOCK_PAGE, k, 0, 0))
        og = rng.sample(c.dists[D["outer_gap"]], rng.draw_words(seed, tr[rows], rng.GAP, BLOCK_PAGE, k, 0, 1))
        return np.where(outer, og, rg)

    def stop(rows, why_livelock):
        livelock[rows] |= why_livelock
        censored[rows] |= ~why_livelock
        end[rows] = np.where(why_livelock, timeout, last_T[rows])
        running[rows] = False
        for pg, s in sims.items():
            sel = rows[~moved[rows, pg]]
            s.stop(sel, end[sel])

    while running.any():
        # A call ends when its passes are used up or its batch has no page left to try.
        ended = running & ~need_batch & ((pas >= passes) | ~in_batch.any(axis=1))
        if ended.any():
            rows = np.nonzero(ended)[0]
            batch_moved = moved[rows[:, None], np.maximum(batch[rows], 0)] | (batch[rows] < 0)
            first = ~first_call_done[rows]
            call_failed[rows[first]] = ~batch_moved[first].all(axis=1)
            first_call_done[rows] = True
            need_batch[rows] = True
        nb = running & need_batch
        if nb.any():
            rows = np.nonzero(nb)[0]
            remaining = ~moved[rows] & ~abandoned[rows]
            done = ~remaining.any(axis=1)
            all_moved = moved[rows].all(axis=1)
            fin = rows[done & all_moved]
            offlined[fin] = True
            t_off[fin] = last_T[fin]
            end[fin] = last_T[fin]
            for pg, s in sims.items():
                end[fin] = np.maximum(end[fin], s.last_t[fin])
            running[fin] = False
            stop(rows[done & ~all_moved], np.zeros(int((done & ~all_moved).sum()), dtype=bool))
            go = rows[~done]
            rem = remaining[~done]
            rank = np.cumsum(rem, axis=1)
            sel = rem & (rank <= B)
            batch[go] = -1
            r_i, p_i = np.nonzero(sel)
            slot = rank[r_i, p_i] - 1
            batch[go[r_i], slot] = p_i
            in_batch[go] = batch[go] >= 0
            calls[go] += 1
            pas[go] = 0
            pos[go] = 0
            need_batch[go] = False
            call_start[go] = True
            # Between calls the migrator spends outer_gap (nothing before the very first call).
            later = go[gk[go] > 0]
            if len(later):
                last_T[later] = last_T[later] + gap(later, np.ones(len(later), dtype=bool))
            if observer is not None and len(go):
                n_iso = in_batch[go].sum(axis=1)
                observer("call", go, np.zeros(len(go), dtype=np.int64), last_T[go],
                         {"call": calls[go], "pages": n_iso, "first": batch[go, 0],
                          "last": batch[go, n_iso - 1]})
        rows = np.nonzero(running & ~need_batch)[0]
        if len(rows) == 0:
            continue
        # Next page of the pass at or after pos; at the end of a pass, the next pass.
        cand = in_batch[rows] & (arange_B[None, :] >= pos[rows, None])
        has = cand.any(axis=1)
        wrap = rows[~has]
        pas[wrap] += 1
        pos[wrap] = 0
        rows, cand = rows[has], cand[has]
        if len(rows) == 0:
            continue
        j = np.argmax(cand, axis=1)
        pg = batch[rows, j]
        pos[rows] = j + 1
        # Within a call, retry_gap after the previous attempt.
        cs = call_start[rows]
        arr = last_T[rows] + np.where(cs, 0, gap(rows, np.zeros(len(rows), dtype=bool)))
        call_start[rows] = False
        to = arr >= timeout
        if to.any():
            stop(rows[to], np.ones(int(to.sum()), dtype=bool))
        rows, pg, j, arr = rows[~to], pg[~to], j[~to], arr[~to]
        # A page out of attempts is abandoned, not tried.
        capped = patt[rows, pg] >= c.max_attempts
        if observer is not None and capped.any():
            observer("abandoned", rows[capped], np.zeros(int(capped.sum()), dtype=np.int64), arr[capped],
                     {"page": pg[capped]})
        abandoned[rows[capped], pg[capped]] = True
        in_batch[rows[capped], j[capped]] = False
        rows, pg, j, arr = rows[~capped], pg[~capped], j[~capped], arr[~capped]
        if len(rows) == 0:
            continue
        gk[rows] += 1
        patt[rows, pg] += 1
        ok = np.zeros(len(rows), dtype=bool)
        timed = np.zeros(len(rows), dtype=bool)
        T = arr.copy()
        hot = np.isin(pg, hot_pages) if hot_pages else np.zeros(len(rows), dtype=bool)
        for h in np.unique(pg[hot]):
            m = pg == h
            okh, Th, tdh = sims[int(h)].attempt(rows[m], arr[m], pas[rows[m]])
            ok[m] = okh
            T[m] = Th
            timed[m] = tdh
        cold = ~hot
        if cold.any():
            okc, Tc = cold_attempt(cold_sims, rows[cold], pg[cold], cls[pg[cold]], patt[rows[cold], pg[cold]],
                                   arr[cold])
            # An attempt that ends at or after the timeout has not moved the page in time.
            timed[cold] = Tc >= timeout
            ok[cold] = okc & ~timed[cold]
            T[cold] = Tc
            if observer is not None:
                observer("cold_attempt", rows[cold], np.zeros(len(Tc), dtype=np.int64), arr[cold],
                         {"page": pg[cold], "attempt": patt[rows[cold], pg[cold]], "ok": okc})
        last_T[rows] = T
        moved[rows[ok], pg[ok]] = True
        in_batch[rows[ok], j[ok]] = False
        if timed.any():
            stop(rows[timed], np.ones(int(timed.sum()), dtype=bool))

    out = {
        "migrated": offlined, "attempts": gk, "calls": calls, "t_migrated": t_off,
        "call_failed": call_failed | ~first_call_done, "livelock": livelock, "censored": censored,
        "end_time": end, "pages_left": P - moved.sum(axis=1),
        "uaf": np.zeros(n, dtype=bool), "hang": np.zeros(n, dtype=bool),
        "faults": np.zeros(n, dtype=np.int64), "max_wait": np.zeros(n, dtype=np.int64),
        "total_wait": np.zeros(n, dtype=np.int64), "spin": np.zeros(n, dtype=np.int64),
    }
    for s in sims.values():
        o = s.task_outcomes()
        out["uaf"] = out["uaf"] | o["uaf"].astype(bool)
        out["hang"] = out["hang"] | o["hang"].astype(bool)
        for f in ("faults", "total_wait", "spin"):
            out[f] = out[f] + o[f]
        out["max_wait"] = np.maximum(out["max_wait"], o["max_wait"])
    return Records(int(trials[0]) if n else 0, {k: np.asarray(v).astype(np.int64) for k, v in out.items()})


def cold_attempt(cold_sims, rows, pg, cl, k, arr):
    """One attempt on pages without tasks (page pg of class cl, its attempt k, the migrator
    arriving at arr): the stage 1 and stage 2 draws of the class's task-less sim. Returns (ok, T)."""
    ok = np.zeros(len(rows), dtype=bool)
    T = np.zeros(len(rows), dtype=np.int64)
    k = k.astype(np.int64)
    for c in np.unique(cl):
        m = cl == c
        ok[m], T[m] = cold_sims[int(c)].untouched_attempt(rows[m], pg[m], k[m], arr[m])
    return ok, T
