"""GPU throughput and profile helper (run on a machine with a GPU; see scripts/gpu-check.sh).

  python3 scripts/gpu-profile.py bench            # trials/s, attempts/s per backend, JSON on stdout
  python3 scripts/gpu-profile.py one CASE TRIALS  # one cupy launch of CASE (for ncu), JSON on stdout
  python3 scripts/gpu-profile.py variants OUTFILE # cupy throughput per NVRTC option set; the best
                                                  # set for thread-ref-short is written to OUTFILE
  python3 scripts/gpu-profile.py spec             # cupy throughput, generic module against one
                                                  # built for the case's strategy (MCX_DEVICE_SPEC)
  python3 scripts/gpu-profile.py tile             # per thread-2018 strategy, 3 small pages and 2
                                                  # of 2048 tasks: cupy one thread per trial, cupy
                                                  # one tile per trial (a warp; 4-16 lanes for a
                                                  # small page, 64 for a large one), and native
                                                  # on every core, in one call (issue #10)

CASEs: thread-ref, thread-drop, thread-pte_wait (the shipped thread-2018 scenario), thread-ref-short
(the same with max_attempts=50, for profiling), small-drop (4 PTEs, 3 tasks).
A benchmark measures; it asserts nothing.
"""

import json
import sys
import time

from mcexplore.engines.base import availability, get_engine
from mcexplore.scenario import load_scenario


def case(name):
    if name.startswith("thread-"):
        rest = name[len("thread-"):]
        over = []
        if rest.endswith("-short"):
            rest = rest[: -len("-short")]
            over.append("budget.max_attempts=50")
        return load_scenario("thread-2018", over).compile(rest)
    if name == "small-drop":
        return load_scenario("thread-2018", ["page.mapcount=4", "page.active=3"]).compile("drop")
    raise SystemExit(f"unknown case {name!r}")


def measure(backend, c, n, chunk=None):
    if backend == "cupy" and chunk:
        from mcexplore.engines.cupy_engine import CupyEngine

        eng = CupyEngine(chunk=chunk)
    else:
        eng = get_engine(backend)
    eng.run_aggregate(c, 0, 10**9, 10**9 + min(n, 512))  # warm-up: compile, allocate
    t = time.perf_counter()
    agg = eng.run_aggregate(c, 0, 0, n)
    w = time.perf_counter() - t
    return {"backend": backend, "trials": n, "wall_s": w, "trials_per_s": n / w,
            "attempts_per_s": agg.sums["attempts"] / w, "faults_per_s": agg.sums["faults"] / w,
            "attempts_per_trial": agg.sums["attempts"] / n, "migrated": agg.counts["migrated"]}


VARIANTS = ("", "--maxrregcount=64", "--maxrregcount=96")
VARIANT_CASES = {"small-drop": 20_000_000, "thread-pte_wait": 1_000_000, "thread-drop": 500_000,
                 "thread-ref-short": 131_072}


def variants(outfile):
    """Each NVRTC option set in its own process (modules are cached per process)."""
    import os
    import subprocess

    rows = []
    for opts in VARIANTS:
        env = dict(os.environ, MCEXPLORE_NVRTC_OPTIONS=opts)
        p = subprocess.run([sys.executable, __file__, "cupyonly"], env=env, capture_output=True,
                           text=True, timeout=90)
        for r in json.loads(p.stdout or "[]"):
            r["nvrtc_extra"] = opts
            rows.append(r)
            print(f"{opts or '(default)':<22} {r['case']:<18} {r['trials']:>10} {r['trials_per_s']:14.1f} trials/s",
                  file=sys.stderr, flush=True)
        if p.returncode:
            print(p.stderr[-2000:], file=sys.stderr)
    ref = [r for r in rows if r["case"] == "thread-ref-short"]
    best = max(ref, key=lambda r: r["trials_per_s"])["nvrtc_extra"] if ref else ""
    with open(outfile, "w") as f:
        f.write(best)
    print(json.dumps(rows, indent=1))


SPEC_CASES = {"thread-drop": (1, 500_000), "thread-ref-short": (0, 131_072),
              "thread-pte_wait": (5, 1_000_000)}


def spec():
    """Per case, a generic module and one specialised for its strategy, each in its own process
    (modules are cached per process); the results must be equal, the speed is the question."""
    import os
    import subprocess

    rows = []
    for name, (code, n) in SPEC_CASES.items():
        for opts in ("", f"-DMCX_DEVICE_SPEC={code}"):
            env = dict(os.environ, MCEXPLORE_NVRTC_OPTIONS=opts)
            p = subprocess.run([sys.executable, __file__, "cupycase", name, str(n)], env=env,
                               capture_output=True, text=True, timeout=180)
            if p.returncode:
                print(p.stderr[-2000:], file=sys.stderr)
                continue
            r = json.loads(p.stdout)
            r["nvrtc_extra"] = opts
            rows.append(r)
            print(f"{name:<18} {opts or '(generic)':<22} {r['trials_per_s']:14.1f} trials/s "
                  f"migrated {r['migrated']}", file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=1))


# (GPU trials, native trials) per thread-2018 strategy for `tile`: a few seconds each.
TILE_CASES = {"ref": (8192, 1024), "drop": (200_000, 20_000), "ptl_pin": (1_000_000, 100_000),
              "pte_wait": (1_000_000, 100_000), "flag_spin": (1_000_000, 50_000),
              "lock_noref": (200_000, 20_000)}
# Small pages, where the tile is narrower than a warp, and large ones, where it is two warps
# (cupy_engine.tile_lanes): (sets, strategy, GPU trials, native trials, trials checked against
# numpy).
TILE_OTHER = {"drop M=4 A=3 (4 lanes)": (["page.mapcount=4", "page.active=3"], "drop", 4_000_000, 200_000, 64),
              "ptl_pin M=8 A=8 (8 lanes)": (["page.mapcount=8", "page.active=8"], "ptl_pin", 2_000_000, 100_000, 64),
              "ref M=12 A=12 (16 lanes)": (["page.mapcount=12", "page.active=12", "budget.max_attempts=50"],
                                           "ref", 1_000_000, 50_000, 64),
              "drop M=2048 (64 lanes)": (["page.mapcount=2048"], "drop", 4096, 2_000, 4),
              "lock_noref M=2048 (64 lanes)": (["page.mapcount=2048"], "lock_noref", 4096, 4_000, 1)}


def tile():
    """The thread-2018 strategies on the device, one thread per trial and one tile per trial (a
    warp at 201 tasks; lock_noref's lanes share each pick of its global order), small pages on
    sub-warp tiles and large ones on two warps, against the native engine on every core, with
    the records' equality on a sample; JSON rows on stdout (a summary line per case on stderr as
    it goes)."""
    from mcexplore.engines.cupy_engine import CupyEngine, tile_lanes
    from mcexplore.engines.pack import pack

    cases = [(label, load_scenario("thread-2018").compile(label), n_gpu, n_cpu, 0 if label == "ref" else 64)
             for label, (n_gpu, n_cpu) in TILE_CASES.items()]
    cases += [(label, load_scenario("thread-2018", sets).compile(strat), n_gpu, n_cpu, check)
              for label, (sets, strat, n_gpu, n_cpu, check) in TILE_OTHER.items()]
    rows = []
    for label, c, n_gpu, n_cpu, check in cases:
        same = CupyEngine(sched="tile").run_records(c, 3, 0, check).equals(
            get_engine("numpy").run_records(c, 3, 0, check)) if check else None
        for sched in ("trial", "tile"):
            eng = CupyEngine(sched=sched)
            eng.run_aggregate(c, 0, 10**9, 10**9 + 512)
            t = time.perf_counter()
            agg = eng.run_aggregate(c, 0, 0, n_gpu)
            w = time.perf_counter() - t
            rows.append({"case": label, "backend": f"cupy/{sched}", "trials": n_gpu, "wall_s": w,
                         "attempts_per_s": agg.sums["attempts"] / w, "trials_per_s": n_gpu / w,
                         "tile_lanes": tile_lanes(pack(c)) if sched == "tile" else 1,
                         "tile_equals_numpy": same, "trials_checked": check})
        r = measure("native", c, n_cpu)
        r.update(case=label, backend="native/all")
        rows.append(r)
        by = {x["backend"]: x for x in rows if x["case"] == label}
        best = max(by["cupy/trial"]["attempts_per_s"], by["cupy/tile"]["attempts_per_s"])
        by["native/all"]["cupy_best_over_native"] = best / by["native/all"]["attempts_per_s"]
        print(f"{label:<26} trial {by['cupy/trial']['attempts_per_s']:.3g}  tile {by['cupy/tile']['attempts_per_s']:.3g}"
              f"  native {by['native/all']['attempts_per_s']:.3g} attempts/s  best/native "
              f"x{by['native/all']['cupy_best_over_native']:.0f}  tile==numpy {same}", file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=1))


def main():
    if sys.argv[1] == "tile":
        tile()
        return
    if sys.argv[1] == "variants":
        variants(sys.argv[2])
        return
    if sys.argv[1] == "spec":
        spec()
        return
    if sys.argv[1] == "cupycase":
        r = measure("cupy", case(sys.argv[2]), int(sys.argv[3]))
        r["case"] = sys.argv[2]
        print(json.dumps(r))
        return
    if sys.argv[1] == "cupyonly":
        rows = []
        for name, n in VARIANT_CASES.items():
            r = measure("cupy", case(name), n)
            r["case"] = name
            rows.append(r)
        print(json.dumps(rows))
        return
    if sys.argv[1] == "one":
        from mcexplore.engines.cupy_engine import CupyEngine

        c, n = case(sys.argv[2]), int(sys.argv[3])
        eng = CupyEngine(chunk=n)
        t = time.perf_counter()
        agg = eng.run_aggregate(c, 0, 0, n)
        w = time.perf_counter() - t
        print(json.dumps({"case": sys.argv[2], "trials": n, "wall_s": w,
                          "attempts": agg.sums["attempts"], "faults": agg.sums["faults"]}))
        return
    sizes = {
        "small-drop": {"numpy": 20_000, "native": 200_000, "cupy": 20_000_000},
        "thread-pte_wait": {"numpy": 2000, "native": 20_000, "cupy": 1_000_000},
        "thread-drop": {"numpy": 300, "native": 5_000, "cupy": 500_000},
        "thread-ref": {"numpy": 10, "native": 400, "cupy": 65_536},
    }
    rows = []
    for name, per in sizes.items():
        c = case(name)
        for b, n in per.items():
            if not availability(b)[0]:
                continue
            r = measure(b, c, n)
            r["case"] = name
            rows.append(r)
            print(f"{name:<16} {b:<7} {n:>10} trials {r['wall_s']:8.3f}s {r['trials_per_s']:14.1f} trials/s "
                  f"{r['attempts_per_s']:14.1f} attempts/s", file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
