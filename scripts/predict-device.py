"""Predicted device throughput of the lane (tile) formulation, without a GPU (issue #10).

  python3 scripts/predict-device.py [--trials-ref 20] [--trials 400]    # JSON on stdout

What it measures here, and what it assumes (docs/kernels.md, "Schedulers"):

* The device compile: ptxas -v of simulate_records (one thread per trial) and of
  simulate_records_tile<W> (one tile of W lanes per trial, at every width of TILE_LANES; the
  predictions below are for thread-2018's 201 tasks, hence W = 32) for sm_90 (registers, stack,
  spills) and the
  static instruction count of each device function (SASS from cuobjdump where it is installed,
  else PTX lines from nvcc -ptx). Needs nvcc; without it this part is null.
* The lane counters on the shipped thread-2018 scenario (counted at run time,
  mcexplore.bench.lane_counts): events per attempt, and the utilisation of the device tile's own
  schedule (simulate_records_tile's code run on the host with coroutines as its 32 lanes: useful
  lane-slots over all, a (step, event kind) costing 32 x the events of its busiest lane).
* Two predictions per strategy, both named approximations:
  - ``divergence``: the device engine of today (one thread per trial, the walk) measured on an
    H200 at WALK_MEASURED attempts/s with WALK_ACTIVE_LANES of 32 lanes active (ref and drop, the
    issue's figures); the tile runs the same event methods with 32 x utilisation lanes active, and
    pays the lane scheduler's grouping (TILE_OVERHEAD, the host's instruction ratio of lanes over
    walk). Prediction = measured x (32 x utilisation / active lanes) / overhead.
  - ``roofline``: an upper bound, INT_OPS_PER_S x utilisation / (events per attempt x
    OPS_PER_EVENT), with OPS_PER_EVENT from the issue's integer operations per task-attempt
    of ref and drop divided by their events per task-attempt, the mean of the two for the others.
  - lock_noref (global order) on the tile: one event per pick, run by one lane while the warp
    waits; each pick costs every lane a scan of its A / 32 tasks (SCAN_OPS_PER_TASK each) and the
    tile's argmin and state hand-over (PICK_COLLECTIVE_OPS). Its roofline counts warp issue
    slots: INT_OPS_PER_S / 32 / (events per attempt x (ceil(A / 32) x SCAN_OPS_PER_TASK +
    PICK_COLLECTIVE_OPS + OPS_PER_EVENT)). Beside it the same bound for one thread per trial
    (32 trials a warp, the scan of all A tasks alike in every lane, the event without
    divergence: a best case): INT_OPS_PER_S / (events per attempt x (A x SCAN_OPS_PER_TASK +
    OPS_PER_EVENT)), and the bytes a pick reads (4 words a task), the same for both.
Compare with the measurement (scripts/gpu-check.sh) when a device comes. A benchmark-style
script: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# H200, today's device engine (the measurements): attempts/s and active lanes per warp.
WALK_MEASURED = {"ref": 2.0e6, "drop": 1.85e6}
WALK_ACTIVE_LANES = 1.8
# The lane scheduler's grouping, as instructions on the host: 73.9M against 65.5M for 300 trials of
# thread-2018 ptl_pin (callgrind; mcexplore.engines.native.DEFAULT_SCHED).
TILE_OVERHEAD = 73.9 / 65.5
# The INT32 roofline the issue uses (3.5e8 attempts/s x 201 tasks x 185 ops for ref) and its integer
# operations per task-attempt (midpoints of 155-215 for ref, 520-740 for drop).
INT_OPS_PER_S = 3.5e8 * 201 * 185
OPS_PER_TASK_ATTEMPT = {"ref": 185.0, "drop": 630.0}
# lock_noref's pick on the tile (assumptions, from the code's shape, not measured): an eligibility
# test and (time, stamp) comparison of one task (four loads, a mask, four compares, two selects),
# and the argmin (5 butterfly rounds of 3 shuffles and 4 compare/selects) plus 6 broadcasts.
SCAN_OPS_PER_TASK = 12
PICK_COLLECTIVE_OPS = 5 * 7 + 6 + 2
TARGETS = {"ref": 1e8, "pte_wait": 1e8, "ptl_pin": 1e8, "drop": 5e7, "flag_spin": 3e7,
           "lock_noref": 1e7}


def device_compile():
    nvcc = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").exists() else None)
    if not nvcc:
        return None
    from mcexplore.constants import TILE_LANES
    from mcexplore.engines import kernel_source

    out = {}
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "all.cu"
        src.write_text(kernel_source.assemble())
        # Every tile width instantiated (the engine's modules instantiate one each, by name).
        r = subprocess.run([nvcc, "-cubin", "-arch=sm_90", "-std=c++17", "--fmad=false", "-Xptxas", "-v",
                            "-DMCX_TILE_INSTANCES", str(src), "-o", str(Path(d) / "all.cubin")],
                           capture_output=True, text=True)
        kernels = {"simulate_records": "simulate_records"}
        for w in TILE_LANES:
            kernels[f"simulate_records_tile<{w}>"] = rf"_Z21simulate_records_tileILi{w}EE\w*"
        for kernel, pattern in kernels.items():
            m = re.search(rf"Function properties for {pattern}\s+(\d+) bytes stack frame, (\d+) bytes "
                          r"spill stores, (\d+) bytes spill loads\s+ptxas info\s+: Used (\d+) registers", r.stderr)
            if m:
                out[kernel] = {"stack_bytes": int(m[1]), "spill_stores": int(m[2]),
                               "spill_loads": int(m[3]), "registers": int(m[4])}
        cuobjdump = shutil.which("cuobjdump")
        counts = {}
        if cuobjdump:
            sass = subprocess.run([cuobjdump, "-sass", str(Path(d) / "all.cubin")], capture_output=True,
                                  text=True).stdout
            name = None
            for line in sass.splitlines():
                fm = re.match(r"\s+Function : (\S+)", line)
                if fm:
                    name = fm[1]
                    counts[name] = 0
                elif name and re.match(r"\s+/\*[0-9a-f]{4}\*/", line):
                    counts[name] += 1
            out["static_count"] = "SASS instructions (cuobjdump -sass, sm_90)"
        else:
            subprocess.run([nvcc, "-ptx", "-arch=compute_90", "-std=c++17", "--fmad=false",
                            "-DMCX_TILE_INSTANCES", str(src),
                            "-o", str(Path(d) / "all.ptx")], check=True, capture_output=True)
            name = None
            for line in (Path(d) / "all.ptx").read_text().splitlines():
                fm = re.match(r"(?:\.visible\s+|\.weak\s+)?\.(?:func|entry)\s+(?:\([^)]*\)\s*)?(\w+)", line)
                if fm:
                    name = fm[1]
                    counts[name] = 0
                elif name and line.startswith("\t") and line.strip().endswith(";") \
                        and not line.strip().startswith(("//", ".", "{", "}", "$")):
                    counts[name] += 1
            out["static_count"] = "PTX instructions (nvcc -ptx, compute_90; cuobjdump not installed)"
        out["functions"] = {k: v for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if v}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials-ref", type=int, default=20, help="trials of ref (1000 attempts each)")
    ap.add_argument("--trials", type=int, default=400, help="trials of every other strategy")
    a = ap.parse_args(argv)
    from mcexplore.bench import lane_counts
    from mcexplore.engines.native import NativeEngine
    from mcexplore.scenario import load_scenario

    sc = load_scenario("thread-2018")
    eng = NativeEngine(nthreads=1, sched="lanes", lane_stats=True)
    tasks = sc.compile("ref").page.active
    rows = {}
    for label in sc.labels():
        n = a.trials_ref if label == "ref" else a.trials
        lc = lane_counts(sc.compile(label), n, 0, eng)
        rows[label] = {"lanes": lc}
    per_event = {}
    for s, ops in OPS_PER_TASK_ATTEMPT.items():
        per_event[s] = ops / (rows[s]["lanes"]["events_per_attempt"] / tasks)
    generic = sum(per_event.values()) / len(per_event)
    for label, r in rows.items():
        lc = r["lanes"]
        strat = label.split("_norecheck")[0]
        r["target_attempts_per_s"] = TARGETS.get(strat)
        ope = per_event.get(strat, generic)
        if lc["utilisation"] is None:
            t = lc.get("tile") or {}
            if not t.get("events_per_attempt"):
                r["prediction"] = "global order without a tile count: no prediction"
                continue
            per_pick = -(-tasks // 32) * SCAN_OPS_PER_TASK + PICK_COLLECTIVE_OPS + ope
            r["ops_per_event"] = ope
            r["warp_ops_per_pick"] = per_pick
            r["roofline_attempts_per_s"] = INT_OPS_PER_S / 32 / (t["events_per_attempt"] * per_pick)
            r["per_trial_roofline_attempts_per_s"] = INT_OPS_PER_S / (
                t["events_per_attempt"] * (tasks * SCAN_OPS_PER_TASK + ope))
            r["bytes_per_pick"] = tasks * 4 * 8
            continue
        # The device tile's own schedule where counted (bench.lane_counts "tile"), else the queues'.
        u = (lc.get("tile") or {}).get("utilisation") or lc["utilisation"]
        r["ops_per_event"] = ope
        r["utilisation_used"] = u
        r["roofline_attempts_per_s"] = INT_OPS_PER_S * u / (lc["events_per_attempt"] * ope)
        if strat in WALK_MEASURED:
            r["divergence_attempts_per_s"] = WALK_MEASURED[strat] * 32 * u / WALK_ACTIVE_LANES / TILE_OVERHEAD
    json.dump({"scenario": "thread-2018", "tasks": tasks, "lane_w": 32, "device_compile": device_compile(),
               "assumptions": {"walk_measured_attempts_per_s": WALK_MEASURED,
                               "walk_active_lanes": WALK_ACTIVE_LANES, "tile_overhead": TILE_OVERHEAD,
                               "int_ops_per_s": INT_OPS_PER_S, "ops_per_task_attempt": OPS_PER_TASK_ATTEMPT,
                               "scan_ops_per_task": SCAN_OPS_PER_TASK,
                               "pick_collective_ops": PICK_COLLECTIVE_OPS,
                               "ops_per_event_generic": generic},
               "strategies": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
