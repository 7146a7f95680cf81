"""Throughput benchmark: trials/s and migration attempts/s per backend and strategy.

Where it sits: beside the CLI (``mcexplore bench``), above mcexplore.api. A benchmark measures;
it asserts nothing. Each backend gets a trial count sized to run for about a second or more, a
warm-up run first (the native and cupy backends compile on first use), then one timed run.
"""

from __future__ import annotations

import os
import time

from .api import run_compiled
from .engines.base import availability

DEFAULT_TRIALS = {"numpy": 200, "native": 2000, "cupy": 1_000_000}


def run_bench(scenario, backends=None, trials=None, seed: int = 0, echo=print):
    names = backends or [b for b in ("numpy", "native", "cupy") if availability(b)[0]]
    rows = []
    for b in names:
        ok, why = availability(b)
        if not ok:
            if echo:
                echo(f"{b}: unavailable ({why})")
            continue
        n = trials or DEFAULT_TRIALS.get(b, 1000)
        for label in scenario.labels():
            c = scenario.compile(label)
            run_compiled(c, trials=min(n, 64), seed=seed, t0=10**9, backend=b, progress=False)  # warm-up
            start = time.perf_counter()
            _, sr = run_compiled(c, trials=n, seed=seed, backend=b, progress=False)
            wall = time.perf_counter() - start
            agg = sr.aggregate
            row = {
                "backend": b, "strategy": label, "trials": agg.trials, "wall_s": wall,
                "trials_per_s": agg.trials / wall, "attempts_per_s": agg.sums["attempts"] / wall,
                "faults_per_s": agg.sums["faults"] / wall,
                "attempts_per_trial": agg.sums["attempts"] / max(agg.trials, 1),
                "cores": os.cpu_count(),
            }
            rows.append(row)
            if echo:
                echo(f"{b:<7} {label:<20} {agg.trials:>9} trials {wall:8.2f}s "
                     f"{row['trials_per_s']:>12.1f} trials/s {row['attempts_per_s']:>14.1f} attempts/s "
                     f"{row['faults_per_s']:>14.1f} faults/s")
    if echo:
        by = {}
        for r in rows:
            by.setdefault(r["strategy"], {})[r["backend"]] = r["trials_per_s"]
        for label, d in by.items():
            if "numpy" in d:
                rel = ", ".join(f"{b} x{v / d['numpy']:.1f}" for b, v in d.items() if b != "numpy")
                if rel:
                    echo(f"speed-up over numpy, {label}: {rel}")
    return rows

