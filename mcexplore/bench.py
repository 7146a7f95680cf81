"""Throughput benchmark: trials/s, attempts/s and faults/s per backend and strategy.

Where it sits: beside the CLI (``mcexplore bench``), above mcexplore.api. A benchmark measures;
it asserts nothing.

How it compares backends (docs/kernels.md, "Benchmark"):

* numpy runs trials [0, n) of each strategy, n being the CLI's default trial count (1000) or fewer
  when a 16-trial calibration says that numpy would need more than ``numpy_budget_s``, after a
  warm-up of up to 256 trials (other trials) so that it is timed warm. The numpy
  engine advances a batch in lock step, so its speed depends on which trials are in the batch (the
  slowest sets the pace); comparing backends on other trials would not be a comparison.
* ``native/1`` runs the same trials [0, n) on one thread, repeated until it has run for at least
  ``min_time_s``: the per-core speed-up is its trials/s over numpy's (numpy runs on one core).
* ``native`` runs on every core, and ``cupy`` on the GPU, on larger trial counts: the throughput a
  user gets.

Every backend gets a warm-up run first (the native and cupy backends compile on first use).
"""

from __future__ import annotations

import os
import time

from .api import run_compiled
from .engines.base import availability

# Trials for the backends measured for throughput (numpy's count is chosen per strategy).
THROUGHPUT_TRIALS = {"native": 20_000, "cupy": 1_000_000}
NUMPY_MAX_TRIALS = 1000  # the CLI's default --trials
NUMPY_MIN_TRIALS = 16


# What ``run_bench`` prints above its first row: column names and what they mean.
HEADER = (
    f"{'backend':<9} {'strategy':<20} {'trials':>9}{'':7} {'xN':<2}{'wall':>11}{'trials/s':>23}"
    f"{'attempts/s':>26}{'faults/s':>25}",
    "  backend: numpy (one core), native/1 (one thread, on numpy's very trials), native/T (T threads),",
    "  cupy (the GPU); xN: the trials were run N times (until the timing lasted long enough), the",
    "  rates are over all N runs; wall: their total seconds.",
)


def _timed(compiled, engine, trials, seed, min_time_s=0.0):
    """Run trials [0, trials) until min_time_s has passed; (runs, wall seconds, aggregate)."""
    runs, wall = 0, 0.0
    while True:
        start = time.perf_counter()
        _, sr = run_compiled(compiled, trials=trials, seed=seed, backend=engine, progress=False)
        wall += time.perf_counter() - start
        runs += 1
        if wall >= min_time_s:
            return runs, wall, sr.aggregate


def _row(backend, label, threads, runs, wall, agg, **extra):
    n = agg.trials * runs
    return {
        "backend": backend, "strategy": label, "threads": threads, "trials": agg.trials,
        "runs": runs, "wall_s": wall, "trials_per_s": n / wall,
        "attempts_per_s": agg.sums["attempts"] * runs / wall,
        "faults_per_s": agg.sums["faults"] * runs / wall,
        "attempts_per_trial": agg.sums["attempts"] / max(agg.trials, 1),
        "cores": os.cpu_count(), **extra,
    }


def lane_counts(compiled, trials: int, seed: int, engine=None) -> dict:
    """Lane utilisation of the native lane scheduler on trials [0, trials) (kernels/lanes.h).

    ``engine``: a NativeEngine(nthreads=1, sched="lanes", lane_stats=True) to reuse. Returns the counters
    (steps, events, slots, queues), ``utilisation`` = events / slots (useful lane-slots over the
    slots of a LANE_W-lane tile running each step's queues in chunks of LANE_W), and events per
    step, per attempt and per trial. A strategy whose tasks run in global order (lock_noref) does
    not use the lane scheduler: its counters are zero and ``utilisation`` is None. ``tile``: the
    same counters of the device tile's schedule (one warp per trial, each lane its own tasks; the
    slots of a (step, event kind) are LANE_W x the most events any lane ran in it; in global order
    a step is one pick, whose event runs on one lane: LANE_W slots for one event, while the pick's
    scan is shared, A / LANE_W tasks a lane), counted on the tile's code run on the host, with its
    events per attempt; None where a run cannot take the tile (block level, tilted).
    """
    from .constants import LANE_W, LaneStat
    from .engines.native import NativeEngine

    import numpy as np

    from . import strategies
    from .engines.pack import pack

    eng = engine or NativeEngine(nthreads=1, sched="lanes", lane_stats=True)
    before = eng.lane_counts.copy()
    _, sr = run_compiled(compiled, trials=trials, seed=seed, backend=eng, progress=False)
    d = eng.lane_counts - before
    counts = {m.name.lower(): int(d[m]) for m in LaneStat}
    ev, slots = counts["events"], counts["slots"]
    attempts = sr.aggregate.sums["attempts"]
    out = {**counts, "lane_w": LANE_W, "utilisation": ev / slots if slots else None,
           "events_per_step": ev / counts["steps"] if counts["steps"] else None,
           "events_per_attempt": ev / attempts if attempts else None,
           "events_per_trial": ev / max(sr.aggregate.trials, 1), "tile": None}
    if compiled.block is None and compiled.tilt is None:
        # The device tile's own schedule (page.h, advance_tile; run_global in global order) on
        # coroutines standing in for its lanes: each (step, event kind) costs LANE_W lane-slots
        # per event of its busiest lane.
        t = np.zeros(len(LaneStat), dtype=np.int64)
        eng.lib.simulate_tile(pack(compiled), seed, 0, trials, lane_stats=t)
        tc = {m.name.lower(): int(t[m]) for m in LaneStat}
        out["tile"] = {**tc, "utilisation": tc["events"] / tc["slots"] if tc["slots"] else None,
                       "events_per_step": tc["events"] / tc["steps"] if tc["steps"] else None,
                       "events_per_attempt": tc["events"] / attempts if attempts else None,
                       "global_order": bool(strategies.by_code(compiled.strategy).global_order)}
    return out


def run_bench(scenario, backends=None, trials=None, seed: int = 0, echo=print,
              numpy_budget_s: float = 10.0, min_time_s: float = 1.0, lanes: bool = False):
    """Measure every strategy of ``scenario`` on ``backends`` (default: every available one).

    ``trials`` fixes the trial count of every run (numpy and native/1 included). Returns one dict
    per (backend, strategy) measured; ``echo`` (None: silent) receives the printed lines.
    ``lanes``: also count the lane utilisation on native/1's trials (lane_counts), added to the
    native/1 row (or, without numpy, the all-core row) as ``lanes``.
    """
    from .engines.base import get_engine

    names = backends or [b for b in ("numpy", "native", "cupy") if availability(b)[0]]
    engines = {}
    for b in names:
        ok, why = availability(b)
        if not ok:
            if echo:
                echo(f"{b}: unavailable ({why})")
            continue
        engines[b] = get_engine(b)
    one_thread = None
    if "native" in engines:
        from .engines.native import NativeEngine

        one_thread = NativeEngine(nthreads=1)
    counting = None
    if lanes and "native" in engines:
        counting = NativeEngine(nthreads=1, sched="lanes", lane_stats=True)

    rows = []

    def say(r):
        rows.append(r)
        if echo and len(rows) == 1:
            for line in HEADER:
                echo(line)
        if echo:
            name = r["backend"] + ("" if r["backend"] != "native" else f"/{r['threads']}")
            echo(f"{name:<9} {r['strategy']:<20} {r['trials']:>9} trials x{r['runs']:<3} "
                 f"{r['wall_s']:7.2f}s {r['trials_per_s']:>13,.1f} trials/s "
                 f"{r['attempts_per_s']:>14,.1f} attempts/s {r['faults_per_s']:>15,.1f} faults/s")

    for label in scenario.labels():
        c = scenario.compile(label)
        n_same = trials
        if "numpy" in engines:
            start = time.perf_counter()
            run_compiled(c, trials=NUMPY_MIN_TRIALS, seed=seed, t0=10**9, backend=engines["numpy"],
                         progress=False)  # warm-up and calibration, on other trials
            est = (time.perf_counter() - start) / NUMPY_MIN_TRIALS
            if n_same is None:
                n_same = int(max(NUMPY_MIN_TRIALS, min(NUMPY_MAX_TRIALS, numpy_budget_s / max(est, 1e-9))))
            if n_same > NUMPY_MIN_TRIALS:
                # A second warm-up at the size it will run (up to 256 trials): numpy's first
                # large batch pays for its arrays' first touch (about 10% on pte_wait).
                run_compiled(c, trials=min(n_same, 256), seed=seed, t0=2 * 10**9,
                             backend=engines["numpy"], progress=False)
            runs, wall, agg = _timed(c, engines["numpy"], n_same, seed)
            np_row = _row("numpy", label, 1, runs, wall, agg)
            say(np_row)
        if "native" in engines:
            start = time.perf_counter()
            run_compiled(c, trials=64, seed=seed, t0=10**9, backend=one_thread, progress=False)
            rate1 = 64 / max(time.perf_counter() - start, 1e-9)
            if "numpy" in engines:
                runs, wall, agg = _timed(c, one_thread, n_same, seed, min_time_s)
                r = _row("native", label, 1, runs, wall, agg, simd=one_thread.lib.simd_resolve(one_thread.simd))
                r["per_core_speedup"] = r["trials_per_s"] / np_row["trials_per_s"]
                rate1 = r["trials_per_s"]
                say(r)
            eng = engines["native"]
            # About 2 s on every core, at most THROUGHPUT_TRIALS.
            n_all = trials or int(min(THROUGHPUT_TRIALS["native"], max(n_same or 0, 64, 2 * rate1 * eng.nthreads)))
            runs, wall, agg = _timed(c, eng, n_all, seed)
            r_all = _row("native", label, eng.nthreads, runs, wall, agg, simd=eng.lib.simd_resolve(eng.simd))
            if counting is not None:
                lc = lane_counts(c, n_same or n_all, seed, counting)
                (r if "numpy" in engines else r_all)["lanes"] = lc
            say(r_all)
            if counting is not None and echo:
                u = lc["utilisation"]
                tu = (lc["tile"] or {}).get("utilisation")
                if u is None:
                    # Global order: one event at a time on the host; the tile shares each pick.
                    line = "global order: the walk on the host" + (
                        f"; the device tile runs each event on one lane ({tu:6.1%} of its slots), "
                        f"its pick's scan on all, {lc['tile']['events_per_attempt']:,.0f} events/attempt"
                        if tu is not None else "")
                else:
                    line = (f"utilisation {u:6.1%} of {lc['lane_w']}-lane slots (queues), "
                            + (f"{tu:6.1%} (the device tile's schedule), " if tu is not None else "")
                            + f"{lc['events_per_step']:.1f} events/step, {lc['events_per_attempt']:,.0f} events/attempt")
                echo(f"  lanes    {label:<20} " + line)
        if "cupy" in engines:
            run_compiled(c, trials=min(trials or 1024, 1024), seed=seed, t0=10**9,
                         backend=engines["cupy"], progress=False)
            runs, wall, agg = _timed(c, engines["cupy"], trials or THROUGHPUT_TRIALS["cupy"], seed)
            say(_row("cupy", label, 0, runs, wall, agg))
    if echo:
        per_core = [r for r in rows if "per_core_speedup" in r]
        if per_core:
            echo("per-core speed-up of native over numpy (one thread, the same trials; "
                 "xF: native/1 runs F times as many trials per second):")
            for r in per_core:
                echo(f"  {r['strategy']:<20} x{r['per_core_speedup']:.1f}")
        by = {}
        for r in rows:
            by.setdefault(r["strategy"], {}).setdefault(r["backend"], r["trials_per_s"])
        for label, d in by.items():
            if "numpy" in d and "cupy" in d:
                echo(f"cupy over numpy, {label}: x{d['cupy'] / d['numpy']:.0f} (different trial counts)")
    return rows
