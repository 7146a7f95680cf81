"""What the draws alone cost the native engine on one core, and what that leaves a faster engine.

  python3 scripts/draw-floor.py [--trials-ref 4] [--trials 400] [--strategies ref,drop,...]

Every engine must produce the same bits, so every engine computes the same Philox words and
samples them the same way: that work is fixed by the model (docs/model.md, "Randomness"), whatever
the scheduler. This script measures it on thread-2018, per strategy, on one thread:

* counts: a build of the native library with -DMCX_COUNT_DRAWS (kernels/philox.h) runs trials
  [0, n) and counts the draws computed one at a time, the lanes of batched rows, the samples of
  each distribution and the task events;
* unit costs, timed here on the normal library's own entry points: a scalar draw (mcx_philox, one
  row of counters a draw), a lane of a batched row (mcx_philox_lanes, the draw batching this CPU
  gets), and a sample of each distribution (mcx_sample_words on random words). They include
  reading and writing their arrays, so they are upper estimates of the same work inside a trial;
* the normal library's time for the same trials (CPU seconds, repeated to --min-time).

It prints, per strategy, the draws' share of today's time and, for an engine 2.5x as fast (issue
#10's host target), the time per task event left once the draws are paid: compare it with what an
event costs today besides its draws. A benchmark: it asserts nothing (it stops if the counting
build's records differ from the library's). JSON rows on stdout with --json.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import tempfile
import time

import numpy as np

TARGET = 2.5


def _cpu(fn, min_time):
    """CPU seconds per call of fn, repeated until min_time has passed."""
    n, spent = 0, 0.0
    while spent < min_time or n == 0:
        t = time.process_time()
        fn()
        spent += time.process_time() - t
        n += 1
    return spent / n


def counting_library():
    """The native library built with -DMCX_COUNT_DRAWS, in a cache of its own."""
    from mcexplore.engines import native

    cxx = native.find_compiler()
    if cxx is None:
        raise SystemExit("no C++ compiler found")
    saved = {k: os.environ.get(k) for k in ("CXX", "MCEXPLORE_CACHE")}
    os.environ["CXX"] = f"{cxx} -DMCX_COUNT_DRAWS"
    os.environ["MCEXPLORE_CACHE"] = os.path.join(tempfile.gettempdir(), "mcexplore-draw-floor")
    try:
        lib = native.build()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return lib


def unit_costs(lib, P, dists, min_time):
    """CPU seconds of a scalar draw, of one lane of a batched row, and of a sample of each d."""
    rng = np.random.default_rng(1)
    n = 1 << 16
    ctr = rng.integers(0, 1 << 32, size=(n, 4), dtype=np.uint64).astype(np.uint32)
    key = rng.integers(0, 1 << 32, size=(n, 2), dtype=np.uint64).astype(np.uint32)
    scalar = _cpu(lambda: lib.philox(ctr, key), min_time) / n
    simd = lib.simd_resolve("auto")
    # One long row: the per-call overhead of the entry point spread thin (a trial's rows are
    # about 201 lanes each, computed in the same loop).
    lanes = n
    c2 = rng.integers(0, 1 << 32, size=lanes, dtype=np.uint64).astype(np.uint32)
    c3 = np.arange(lanes, dtype=np.uint32)
    lane = _cpu(lambda: lib.philox_lanes(simd, 5, 7, c2, c3, (11, 13)), min_time) / lanes
    words = rng.integers(0, 1 << 32, size=(n, 4), dtype=np.uint64).astype(np.uint32)
    sample = {d: _cpu(lambda d=d: lib.sample_words(P, words, d), min_time / 4) / n for d in dists}
    return {"scalar_draw_s": scalar, "lane_s": lane, "simd": simd, "sample_s": sample}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials-ref", type=int, default=4, help="trials of ref (1000 attempts each)")
    ap.add_argument("--trials", type=int, default=400, help="trials of every other strategy")
    ap.add_argument("--strategies", default="ref,drop,ptl_pin,pte_wait,flag_spin,lock_noref")
    ap.add_argument("--min-time", type=float, default=1.0, help="CPU seconds per timing")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    from mcexplore.constants import DRAW_COUNT_DISTS, DRAW_COUNTERS, DrawCount as K
    from mcexplore.engines import native
    from mcexplore.engines.pack import pack
    from mcexplore.scenario import load_scenario

    counting = counting_library()
    counts_arr = (ctypes.c_int64 * DRAW_COUNTERS).in_dll(counting.lib, "mcx_draw_counts")
    plain = native.build()
    sc = load_scenario("thread-2018")
    rows = []
    for label in a.strategies.split(","):
        c = sc.compile(label)
        P = pack(c)
        n = a.trials_ref if label == "ref" else a.trials
        for j in range(DRAW_COUNTERS):
            counts_arr[j] = 0
        rec = counting.simulate(P, 0, 0, n, 1)
        cnt = [int(counts_arr[j]) for j in range(DRAW_COUNTERS)]
        samples = {d: cnt[K.SAMPLES + d] for d in range(DRAW_COUNT_DISTS) if cnt[K.SAMPLES + d]}
        units = unit_costs(plain, P, sorted(samples), a.min_time)
        trial_s = _cpu(lambda: plain.simulate(P, 0, 0, n, 1), a.min_time) / n
        if not np.array_equal(plain.simulate(P, 0, 0, n, 1), rec):
            raise SystemExit(f"{label}: the counting build's records differ from the library's")
        draw_s = (cnt[K.SCALAR] * units["scalar_draw_s"] + cnt[K.LANES] * units["lane_s"]
                  + sum(v * units["sample_s"][d] for d, v in samples.items())) / n
        events = cnt[K.EVENTS] / n
        attempts = float(rec[:, 1].sum()) / n
        budget = (trial_s / TARGET - draw_s) / events
        today = (trial_s - draw_s) / events
        row = {"strategy": label, "trials": n, "attempts_per_trial": attempts,
               "events_per_trial": events, "scalar_draws_per_trial": cnt[K.SCALAR] / n,
               "lanes_per_trial": cnt[K.LANES] / n, "rows_per_trial": cnt[K.ROWS] / n,
               "samples_per_trial": sum(samples.values()) / n,
               "trial_cpu_s": trial_s, "draw_cpu_s": draw_s, "draw_share": draw_s / trial_s,
               "ns_per_event_besides_draws_today": today * 1e9,
               f"ns_per_event_left_at_{TARGET}x": budget * 1e9,
               "units": {"scalar_draw_ns": units["scalar_draw_s"] * 1e9, "lane_ns": units["lane_s"] * 1e9,
                         "simd": units["simd"],
                         "sample_ns": {int(d): v * 1e9 for d, v in units["sample_s"].items()}}}
        rows.append(row)
        if not a.json:
            print(f"{label:<11} {1 / trial_s:>10,.1f} trials/cpu-s  draws {draw_s / trial_s:6.1%} of the time "
                  f"({cnt[K.SCALAR] / n:,.0f} scalar, {cnt[K.LANES] / n:,.0f} lanes, {sum(samples.values()) / n:,.0f} samples "
                  f"a trial); {events:,.0f} events a trial: {today * 1e9:5.1f} ns an event besides the "
                  f"draws today, {budget * 1e9:5.1f} ns left at {TARGET}x (units: scalar draw "
                  f"{units['scalar_draw_s'] * 1e9:.1f} ns, lane {units['lane_s'] * 1e9:.1f} ns "
                  f"({units['simd']}), samples {min(units['sample_s'].values()) * 1e9:.1f}-"
                  f"{max(units['sample_s'].values()) * 1e9:.1f} ns)", flush=True)
    if a.json:
        json.dump(rows, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
