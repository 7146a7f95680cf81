#!/usr/bin/env python3
"""Benchmark sweeps: in this process against a Dask LocalCluster, and adaptive cells against fixed.

A benchmark, not a test: it prints figures (wall and CPU seconds, trials, tasks) and checks only
that the tables it compares are identical. Each run is a separate ``mcexplore sweep`` process into
a fresh folder (nothing reused).

    python3 scripts/bench-sweep.py scale --trials 100        # in-process x1 / all cores / local:2
    python3 scripts/bench-sweep.py adaptive                  # --target-half-width vs fixed trials
    python3 scripts/bench-sweep.py overhead                  # the Dask path's cost per task

``scale``: the shipped thread-2018 sweep (36 cells x 7 strategies) in this process with one engine
thread, in this process on every core, and on ``--cluster local:2`` (one engine thread per
worker); the three results.parquet files must be identical byte for byte.

``adaptive``: the same sweep with every cell known to +-H (``--target-half-width H``, the
anytime-valid confidence sequence, on livelock), against the fixed-trial sweep whose worst cell
is as narrow: the smallest n (a multiple of the batch) at which every row's confidence sequence,
at the rate the adaptive run saw in it, has half-width <= H; that fixed sweep is then run and its
worst half-width measured with the same interval.

``overhead``: many tiny tasks on local:2 (``--chunk-s 0.001`` over cheap rows): (wall - cluster
start - compute / workers) / tasks.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cli(args, env=None, out=None):
    """Run ``mcexplore ...``; (wall s, CPU s of it and its descendants, stdout)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "mcexplore.cli", *args], env={**os.environ, **(env or {})},
                       capture_output=True, text=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"mcexplore {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, p.stdout


def _digest(d: Path) -> str:
    return hashlib.sha256((d / "results.parquet").read_bytes()).hexdigest()[:16]


def scale(a):
    import statistics

    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    base = ["sweep", a.sweep, "--trials", str(a.trials), "--backend", a.backend]
    env1 = {"MCEXPLORE_THREADS": "1"}
    runs = [("in-process, 1 engine thread", base, env1),
            ("in-process, all cores", base, {}),
            ("--cluster local:2, 1 thread/worker", base + ["--cluster", "local:2"], {})]
    out = {name: {"wall_s": [], "cpu_s": [], "digest": set()} for name, _, _ in runs}
    k = 0
    for _ in range(a.repeat):  # interleaved, so that a slow spell of the machine hits all alike
        for name, args, env in runs:
            d = tmp / str(k)
            k += 1
            wall, cpu, text = _cli(args + ["--out", str(d)], env=env)
            out[name]["wall_s"].append(round(wall, 2))
            out[name]["cpu_s"].append(round(cpu, 2))
            out[name]["digest"].add(_digest(d))
            out[name]["report"] = text.strip().splitlines()
            print(f"{name:40s} wall {wall:7.1f} s  cpu {cpu:7.1f} s  table {_digest(d)}", flush=True)
    same = len(set().union(*(v["digest"] for v in out.values()))) == 1
    for v in out.values():
        v["digest"] = sorted(v["digest"])
        v["wall_min"], v["wall_median"] = min(v["wall_s"]), statistics.median(v["wall_s"])
    names = list(out)
    w = [out[n]["wall_min"] for n in names]
    m = [out[n]["wall_median"] for n in names]
    print(f"\nwall min (median) over {a.repeat}: " + ", ".join(f"{n}: {x:.1f} ({y:.1f}) s" for n, x, y in zip(names, w, m)))
    print(f"local:2 vs in-process x1: {w[0] / w[2]:.2f}x faster by min, {m[0] / m[2]:.2f}x by median (target >= 1.8x)")
    print(f"local:2 vs in-process on all cores: {100 * (w[2] / w[1] - 1):+.1f}% by min, "
          f"{100 * (m[2] / m[1] - 1):+.1f}% by median (target <= +10%)")
    print(f"tables identical: {same}")
    return {"runs": out, "identical": same, "speedup_vs_1thread": w[0] / w[2], "vs_all_cores": w[2] / w[1] - 1}


def adaptive(a):
    import math

    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mcexplore.adaptive import beta_binomial_cs

    tmp = Path(tempfile.mkdtemp(prefix="bench-adaptive-"))
    base = ["sweep", a.sweep, "--backend", a.backend]
    o = a.outcome
    rule = ["--target-half-width", str(a.h), "--stop-outcome", o, "--batch-trials", str(a.batch),
            "--max-trials", str(a.max_trials)]
    wa, ca, ta = _cli(base + rule + ["--out", str(tmp / "adaptive")])
    ad = pd.read_parquet(tmp / "adaptive" / "results.parquet")
    hw = (ad.cs_hi - ad.cs_lo) / 2

    # The fixed sweep with the same worst cell: the smallest n (a multiple of the batch) at which
    # every row's confidence sequence, at the rate the adaptive run saw, is as narrow.
    def half(p, n):
        lo, hi = beta_binomial_cs(int(round(p * n)), n, 0.95)
        return (hi - lo) / 2
    n_fixed = a.batch
    for p in ad[o] / ad.trials:
        while half(p, n_fixed) > a.h:
            n_fixed += a.batch
    wf, cf, tf = _cli(base + ["--trials", str(n_fixed), "--out", str(tmp / "fixed")])
    fx = pd.read_parquet(tmp / "fixed" / "results.parquet")
    lo, hi = beta_binomial_cs(fx[o].to_numpy(), fx.trials.to_numpy(), 0.95)
    fixed_hw = (np.asarray(hi) - np.asarray(lo)) / 2
    print(ta.strip())
    print(tf.strip())
    res = {
        "adaptive": {"wall_s": round(wa, 2), "cpu_s": round(ca, 2), "trials": int(ad.trials.sum()),
                     "worst_half_width": float(hw.max()), "trials_min": int(ad.trials.min()),
                     "trials_median": float(ad.trials.median()), "trials_max": int(ad.trials.max()),
                     "stop_reasons": ad.stop_reason.value_counts().to_dict()},
        "fixed": {"trials_per_row": n_fixed, "wall_s": round(wf, 2), "cpu_s": round(cf, 2),
                  "trials": int(fx.trials.sum()), "worst_half_width": float(fixed_hw.max()),
                  "worst_wilson_half_width": float(((fx[f"{o}_hi"] - fx[f"{o}_lo"]) / 2).max())},
    }
    res["trials_ratio"] = res["fixed"]["trials"] / res["adaptive"]["trials"]
    res["wall_ratio"] = wf / wa
    print(json.dumps(res, indent=1))
    print(f"\nadaptive (half-width <= {a.h} on {o}): {res['adaptive']['trials']:,} trials in {wa:.1f} s, worst "
          f"cell +-{res['adaptive']['worst_half_width']:.4f}; fixed x{n_fixed}: {res['fixed']['trials']:,} trials in "
          f"{wf:.1f} s, worst cell +-{res['fixed']['worst_half_width']:.4f} (same interval) -> "
          f"{res['trials_ratio']:.1f}x fewer trials, {res['wall_ratio']:.1f}x less wall (target >= 3x fewer trials)")
    return res


def overhead(a):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mcexplore.cluster import DaskExecutor
    from mcexplore.sweep import run_sweep

    t = time.perf_counter()
    ex = DaskExecutor("local:2")
    start = time.perf_counter() - t
    spec = {"base": "thread-2018", "trials": a.trials, "seed": 1, "strategies": ["drop", "ptl_pin"],
            "set": {"page": {"mapcount": 2, "active": 2}, "budget": {"max_attempts": 20}},
            "axes": [{"path": "page.access_rate", "start": "0.01/us", "stop": "10/us", "num": 20, "scale": "log"}]}
    try:
        run_sweep(spec, tempfile.mkdtemp(), backend=a.backend, executor=ex, chunk_s=0.2)  # warm the workers
        d = Path(tempfile.mkdtemp())
        t = time.perf_counter()
        df = run_sweep(spec, d, backend=a.backend, executor=ex, chunk_s=1e-6)
        wall = time.perf_counter() - t
    finally:
        ex.close()
    import pandas as pd

    compute = float(pd.read_csv(d / "timings.csv").wall_s.sum())
    s = df.attrs["sweep"]
    per = (wall - compute / 2) / s["tasks"]
    print(f"cluster start {start:.2f} s; {s['chunks']} chunks in {s['tasks']} tasks, {s['trials_run']} trials: "
          f"wall {wall:.2f} s, compute {compute:.2f} s over 2 workers -> {1e3 * per:.1f} ms per task of "
          "overhead (scheduler, transfer, table)")
    return {"start_s": start, "tasks": s["tasks"], "wall_s": wall, "compute_s": compute, "ms_per_task": 1e3 * per}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("scale", "adaptive", "overhead"):
        p = sub.add_parser(name)
        p.add_argument("--sweep", default="sweep-thread-2018")
        p.add_argument("--backend", default="native")
        p.add_argument("--trials", type=int, default=100 if name == "scale" else 4)
        p.add_argument("--repeat", type=int, default=3)
        if name == "adaptive":
            p.add_argument("--h", type=float, default=0.05, help="target half-width")
            p.add_argument("--outcome", default="livelock")
            p.add_argument("--batch", type=int, default=32)
            p.add_argument("--max-trials", dest="max_trials", type=int, default=4096)
    a = ap.parse_args()
    res = {"scale": scale, "adaptive": adaptive, "overhead": overhead}[a.what](a)
    print(json.dumps({a.what: res}, default=str))


if __name__ == "__main__":
    main()
