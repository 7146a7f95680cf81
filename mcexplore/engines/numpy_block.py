"""Block level of the numpy engine: offlining a memory block page by page (MODEL.md 1.6).

Where it sits: called by ``NumpyEngine.run_records`` when the compiled scenario has a block. Pages
with active tasks ("hot") each get a page-level simulation (``numpy_engine._Sim``) driven by the
block's migrator clock; pages nobody touches ("cold") take a vectorised path with the same draws a
page-level simulation without tasks would make.

The offline loop (docs/model.md, "Block level"): isolate the first ``batch_pages`` pages that are
neither moved nor abandoned, in block order; call migrate_pages on the batch: up to ``passes``
passes, each walking the batch's unmoved pages in order, one attempt per page; between two attempts
of a call the migrator spends ``retry_gap``, between calls ``outer_gap``. A page that has used
``max_attempts`` attempts is abandoned. The block is offlined when every page has moved; the trial
stops at ``timeout`` (livelock) or when only abandoned pages remain (censored).

Draw keys: a page's own draws carry its index in the counter's page field and its own attempt
number as k; the migrator's gaps use page BLOCK_PAGE and the block's global attempt number.

BLOCK-READY
"""

from __future__ import annotations

import copy

import numpy as np

from .. import constants as K
from .. import rng, transient
from ..params import DIST_INDEX, Compiled, exponential
from ..results import Records
from .numpy_engine import _Sim, transient_held

BLOCK_PAGE = K.BLOCK_PAGE
D = DIST_INDEX


def expand_pages(c: Compiled):
    """Class index of every page of the block, in block order."""
    return np.repeat(np.arange(len(c.block)), [pc.count for pc in c.block])


def simulate_block(c: Compiled, seed: int, trials: np.ndarray, trace: list | None = None) -> Records:
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
        cc = copy.copy(c)
        cc.page = c.block[cls[pg]]
        cc.block = None
        # Each class has its own access rate: its own exponential (the kernels build the same).
        cc.dists = list(c.dists)
        cc.dists[D["access"]] = exponential(cc.page.access_mean_ns)
        s = _Sim(cc, seed, trials, lay)
        s.page = pg
        s.trace = trace
        s.trace_prefix = f"page {pg}: "
        sims[pg] = s
    cold_M = np.array([pc.mapcount for pc in c.block], dtype=np.int64)
    cold_file = np.array([pc.file for pc in c.block], dtype=bool)
    Mmax = max(1, int(cold_M.max()))

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
            if trace is not None and len(go):
                n_iso = int(in_batch[go[0]].sum())
                trace.append((int(last_T[go[0]]), 0, f"call {int(calls[go[0]])}: isolate {n_iso} page(s), "
                              f"migrate_pages (pages {int(batch[go[0]][0])}..{int(batch[go[0]][n_iso - 1])})"))
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
        if trace is not None and capped.any():
            trace.append((int(arr[0]), 0, f"page {int(pg[0])}: max_attempts used, abandoned"))
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
            okc, Tc = cold_attempt(c, seed, tr, rows[cold], pg[cold], cls[pg[cold]], patt[rows[cold], pg[cold]],
                                   arr[cold], cold_M, cold_file, Mmax, lay)
            # An attempt that ends at or after the timeout has not moved the page in time.
            timed[cold] = Tc >= timeout
            ok[cold] = okc & ~timed[cold]
            T[cold] = Tc
            if trace is not None:
                trace.append((int(arr[cold][0]), 0, f"page {int(pg[cold][0])}: attempt "
                              f"{int(patt[rows[cold][0], pg[cold][0]])} (no waiters): "
                              + ("moved" if okc[0] else "refcount check FAILS: a transient reference")))
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


def cold_attempt(c, seed, tr, rows, pg, cl, k, arr, cold_M, cold_file, Mmax, lay):
    """One attempt on pages without tasks: the draws of ``_Sim.stage1/stage2`` with A = 0."""
    n = len(rows)
    M = cold_M[cl]
    i = np.arange(1, Mmax + 1, dtype=np.int64)
    rr = np.repeat(rows, Mmax)
    kk = np.repeat(k, Mmax).astype(np.int64)
    pp = np.repeat(pg, Mmax)
    ii = np.tile(i, n)
    valid = (i[None, :] <= M[:, None])
    un = rng.sample(c.dists[D["unmap_pte"]], rng.draw_words(seed, tr[rr], rng.UNMAP, pp, kk, ii, 0)).reshape(n, Mmax)
    UM = arr + np.where(valid, un, 0).sum(axis=1)
    k = k.astype(np.int64)
    F = UM + rng.sample(c.dists[D["pre_freeze"]], rng.draw_words(seed, tr[rows], rng.PRE_FREEZE, pg, k, 0, 0))
    held = transient_held(lay, c, seed, tr[rows], pg, F)
    ok = ~held
    file = cold_file[cl]
    fh = np.where(file, rng.sample(c.dists[D["freeze_hold"]], rng.draw_words(seed, tr[rows], rng.FREEZE_HOLD, pg, k, 0, 0)), 0)
    cp = rng.sample(c.dists[D["copy"]], rng.draw_words(seed, tr[rows], rng.COPY, pg, k, 0, 0))
    S = F + np.where(ok, fh + cp, 0)
    rm = rng.sample(c.dists[D["remap_pte"]], rng.draw_words(seed, tr[rr], rng.REMAP, pp, kk, ii, 0)).reshape(n, Mmax)
    T = S + np.where(valid, rm, 0).sum(axis=1)
    return ok, T
