"""Benchmark: a probability of about 1e-12 to 10% relative half-width by importance sampling.

    python scripts/bench-rare.py [--backend native] [--scenario closed|window] [--level 0.95]

Scenarios:
  closed   drop on a page mapped by 3 tasks, every duration constant except drop_hold, a mixture
           whose 1 ms tail has weight eps = 1e-12 / 3; one pass of one attempt. Exact:
           P(call_failed) = 1 - (1 - eps)^3 (tests/test_rare.py derives it).
  window   ptl_pin on the thread's page (201 tasks, every timing as shipped): a whole
           migrate_pages call (10 passes) fails only if a transient reference (held 1 us) is
           held at all 10 refcount checks, which are hundreds of us apart, so independent:
           P(call_failed) = (1 - exp(-rho * 1 us))^10, 1e-12 at rho = 65,200/s (--checks N: N
           passes, the rate for 1e-12 then). The budget stops a trial after the first call
           (max_attempts = passes): call_failed is decided there, and later attempts would only
           cost time and add variance to the weights.

It runs the cross-entropy search (``mcexplore run --rare call_failed``'s), then doubles the final
run's trials until the interval's relative half-width is at most 10%, and prints the wall time,
the CPU time, the trials used (pilots included) and the trials crude Monte Carlo would need for
the same precision, n = z^2 (1 - p) / (p 0.1^2). A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time


def scenario(name: str, checks: int = 10):
    from mcexplore.scenario import load_scenario

    if name == "closed":
        eps = 1e-12 / 3
        return load_scenario("thread-2018").set_many({
            "strategies": ["drop"], "page.mapcount": 3, "page.active": 3, "page.access_rate": "1000/us",
            "transient.rate": "0/s", "budget.passes": 1, "budget.max_attempts": 1,
            "timing.unmap_pte": "1us", "timing.remap_pte": "1us", "timing.fault_entry": "100ns",
            "timing.ptl_hold": "100ns", "timing.pre_freeze": "1us", "timing.wake_latency": "1us",
            "timing.drop_hold": {"dist": "mixture", "components": [
                {"dist": "const", "value": "100ns", "weight": 1 - eps},
                {"dist": "const", "value": "1ms", "weight": eps}]}})
    return load_scenario("thread-2018").set_many({
        "strategies": ["ptl_pin"], "transient.rate": f"{rho_window(checks)!r}/s", "transient.hold": "1us",
        "budget.passes": checks, "budget.max_attempts": checks})


def rho_window(checks: int) -> float:
    """The rate (per s) at which (1 - exp(-rho * 1us))^checks = 1e-12."""
    return -math.log1p(-10.0 ** (-12.0 / checks)) / 1e-6


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def main():
    from mcexplore import rare

    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="native")
    ap.add_argument("--scenario", default="closed", choices=("closed", "window"))
    ap.add_argument("--level", type=float, default=0.95)
    ap.add_argument("--target", type=float, default=0.10)
    ap.add_argument("--seed", type=int, default=2018)
    ap.add_argument("--pilot-trials", type=int, default=2000)
    ap.add_argument("--max-trials", type=int, default=1 << 22)
    ap.add_argument("--checks", type=int, default=10, help="window: passes of the one migrate_pages call")
    args = ap.parse_args()
    sc = scenario(args.scenario, args.checks)
    t0, c0 = time.perf_counter(), cpu_s()
    choice = rare.choose_tilt(sc, sc.labels(), "call_failed", seed=args.seed, pilot_trials=args.pilot_trials,
                              backend=args.backend)
    pilot = sum(r.trials for r in choice.rounds)
    t_ce = time.perf_counter() - t0
    import sys

    print(f"cross-entropy: {pilot} pilot trials, {t_ce:.1f} s; tilt {choice.tilt}", file=sys.stderr)
    n = 4000
    while True:
        r = rare.estimate(sc, trials=n, seed=args.seed, tilt=choice.tilt, backend=args.backend, level=args.level)
        e = r.estimate(sc.labels()[0], "call_failed")
        print(f"{n} trials: {e.estimate:.4g} [{e.lo:.4g}, {e.hi:.4g}] rel. half-width {e.rel_half_width:.3f}, "
              f"ESS {e.ess:.0f}, {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        if e.rel_half_width <= args.target or n >= args.max_trials:
            break
        n *= 2
    wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    z = rare._z(args.level)
    crude = z * z * (1 - e.estimate) / (e.estimate * args.target ** 2) if e.estimate > 0 else math.inf
    out = {
        "scenario": args.scenario, "checks": args.checks if args.scenario == "window" else None, "backend": r.backend, "cores": os.cpu_count(), "level": args.level,
        "estimate": e.estimate, "lo": e.lo, "hi": e.hi, "rel_half_width": e.rel_half_width,
        "ess": e.ess, "hits": e.hits, "final_trials": n, "pilot_trials": pilot,
        "cross_entropy_s": round(t_ce, 2), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "crude_trials_for_same_precision": crude, "tilt": choice.tilt,
    }
    if args.scenario == "closed":
        from mcexplore.params import DIST_INDEX

        eps = float(sc.compile("drop").dists[DIST_INDEX["drop_hold"]].weight[1])
        exact = -math.expm1(3 * math.log1p(-eps))
    else:
        rho = float(sc.compile("ptl_pin").transient_rate_per_ns)
        exact = (-math.expm1(-rho * 1000.0)) ** args.checks
    out["exact"] = exact
    out["exact_inside"] = e.lo <= exact <= e.hi
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
