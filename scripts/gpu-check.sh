#!/usr/bin/env bash
# gpu-check.sh: the GPU checks of mcexplore, on a machine with a CUDA GPU and cupy.
#
#   bash scripts/gpu-check.sh            # from the repository root
#
# Runs tests/test_gpu.py (cupy == numpy == native bit for bit, tilted runs' statistics included,
# the device reduction, chunking, 10^8 trials) and tests/test_exact_scale.py (10^8 trials against the exact solution), then times the engines (numpy, native, cupy) on a small scenario and on the shipped
# thread-2018 scenario, and writes a JSON summary to $OUT/gpu-check.json (or ./gpu-check.json),
# with the test log beside it. Meant to finish in under 5 minutes on an H100/H200.
# Environment: PYTHON (default python3), MCX_WHEELS (a folder of wheels to install first, e.g.
# pydantic where the machine lacks it), GPU_CHECK_SKIP_SLOW=1 to skip the 10^8-trial test,
# GPU_CHECK_SPEC=1 to also compare generic and strategy-specialised device modules.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-.}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export MCEXPLORE_CACHE=${MCEXPLORE_CACHE:-/tmp/mcexplore-cache}
START=$(date +%s)

if [ -n "${MCX_WHEELS:-}" ] && ls "$MCX_WHEELS"/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/mcx-site "$MCX_WHEELS"/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/mcx-site"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$DEST/gpu-info.txt" 2>&1

MARK="gpu"
[ "${GPU_CHECK_SKIP_SLOW:-0}" = "1" ] && MARK="gpu and not slow"
timeout 240 $PY -m pytest -q -rA -p no:cacheprovider -m "$MARK" tests/test_gpu.py tests/test_exact_scale.py \
    --junitxml="$DEST/gpu-tests.xml" > "$DEST/gpu-tests.log" 2>&1
TEST_RC=$?
tail -n 25 "$DEST/gpu-tests.log"

# A sweep on every GPU through dask-cuda (docs/scale.md), where the machine has it; the table must
# equal the in-process one byte for byte.
if $PY -c "import dask_cuda" >/dev/null 2>&1; then
    SW=configs/sweep-timing-window.toml
    { timeout 120 $PY -m mcexplore.cli sweep $SW --out /tmp/mcx-sweep-cuda --trials 2000 --cluster cuda &&
      timeout 120 $PY -m mcexplore.cli sweep $SW --out /tmp/mcx-sweep-one --trials 2000 &&
      cmp /tmp/mcx-sweep-cuda/results.parquet /tmp/mcx-sweep-one/results.parquet && echo "cuda cluster: identical table"
    } > "$DEST/cuda-cluster.log" 2>&1 || echo "cuda cluster: FAILED (see the log)" >> "$DEST/cuda-cluster.log"
else
    echo "cuda cluster: dask-cuda not installed, skipped" > "$DEST/cuda-cluster.log"
fi

# Rare events (issue: importance sampling): a probability of 1e-12 to 10% on the GPU, against the
# closed form; the JSON lands beside the summary.
timeout 120 $PY scripts/bench-rare.py --backend cupy --scenario closed > "$DEST/rare-closed.json" 2> "$DEST/rare.log"
timeout 120 $PY scripts/bench-rare.py --backend cupy --scenario window --checks 3 > "$DEST/rare-window3.json" 2>> "$DEST/rare.log"

# The lane scheduler's predicted device figures (issue #10: lane utilisation, the device compile,
# named assumptions), beside the measured ones in the summary's bench rows.
timeout 150 $PY scripts/predict-device.py --trials-ref 5 --trials 200 > "$DEST/predict-device.json" 2> "$DEST/predict-device.log"
# ... and the measured ones: one thread per trial, one warp per trial (the tile), native on every core.
timeout 200 $PY scripts/gpu-profile.py tile > "$DEST/gpu-tile.json" 2> "$DEST/gpu-tile.log"

timeout 240 $PY - "$DEST" "$TEST_RC" "$START" <<'PYEOF'
import json, os, subprocess, sys, time
import numpy as np
dest, test_rc, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
summary = {"tests_rc": test_rc, "tests": {}, "bench": [], "errors": []}
try:
    import xml.etree.ElementTree as ET
    root = ET.parse(os.path.join(dest, "gpu-tests.xml")).getroot()
    ts = root if root.tag == "testsuite" else root.find("testsuite")
    summary["tests"] = {k: int(ts.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    summary["tests"]["time_s"] = float(ts.get("time", 0))
    summary["tests"]["failed_names"] = [tc.get("name") for tc in ts.iter("testcase")
                                        if tc.find("failure") is not None or tc.find("error") is not None]
except Exception as e:
    summary["errors"].append(f"junit: {e}")
try:
    summary["device"] = open(os.path.join(dest, "gpu-info.txt")).read().strip()
    import cupy
    summary["cupy"] = cupy.__version__
except Exception as e:
    summary["errors"].append(f"device: {e}")

from mcexplore.engines.base import availability, get_engine

def timed(engine, c, n, seed=0, reps=1):
    engine.run_aggregate(c, seed, 10**9, 10**9 + min(n, 256))  # warm-up (compile, caches)
    best = None
    for _ in range(reps):
        t = time.perf_counter()
        agg = engine.run_aggregate(c, seed, 0, n)
        w = time.perf_counter() - t
        best = w if best is None else min(best, w)
    return agg, best

def bench(label, c, sizes):
    for b, n in sizes.items():
        ok, why = availability(b)
        if not ok:
            summary["bench"].append({"scenario": label, "backend": b, "error": why}); continue
        try:
            agg, w = timed(get_engine(b), c, n)
            summary["bench"].append({"scenario": label, "backend": b, "trials": n, "wall_s": round(w, 4),
                                     "trials_per_s": n / w, "attempts_per_trial": agg.sums["attempts"] / n,
                                     "migrated": agg.counts["migrated"]})
            print(f"{label:<28} {b:<7} {n:>10} trials {w:8.3f} s {n / w:14.1f} trials/s", flush=True)
        except Exception as e:
            summary["bench"].append({"scenario": label, "backend": b, "error": f"{type(e).__name__}: {e}"})

sys.path.insert(0, "tests")
import test_parity as tp
bench("small drop M=4 A=3", tp.make("drop", {}), {"numpy": 2000, "native": 200_000, "cupy": 10_000_000})
bench("small lock_noref contended", tp.make("lock_noref", {}, **tp.SCENARIOS["contended_file"]),
      {"numpy": 1000, "native": 50_000, "cupy": 2_000_000})
bench("block small (4 classes)", tp.make_block("ref", {}, "block_base"), {"numpy": 500, "native": 20_000, "cupy": 500_000})
try:
    from mcexplore.scenario import load_scenario
    s = load_scenario("thread-2018")
    # numpy on about as many trials as `mcexplore bench` gives it (its lock-step speed depends on
    # the batch), cupy on enough trials to fill the GPU (ref: 2^17 trials of 1000 attempts).
    sizes = {"ref": {"numpy": 48, "native": 400, "cupy": 131_072},
             "drop": {"numpy": 1000, "native": 20_000, "cupy": 500_000},
             "pte_wait": {"numpy": 1000, "native": 20_000, "cupy": 1_000_000}}
    for label, sz in sizes.items():
        bench(f"thread-2018 {label}", s.compile(label), sz)
except Exception as e:
    summary["errors"].append(f"thread-2018: {type(e).__name__}: {e}")

summary["wall_s"] = time.time() - start
with open(os.path.join(dest, "gpu-check.json"), "w") as f:
    json.dump(summary, f, indent=2)
print(json.dumps({k: v for k, v in summary.items() if k != "bench"}, indent=1))
PYEOF
BENCH_RC=$?
if [ "${GPU_CHECK_SPEC:-0}" = "1" ]; then
    # Generic against strategy-specialised device modules (about a minute more; docs/kernels.md).
    timeout 240 $PY scripts/gpu-profile.py spec > "$DEST/gpu-spec.json" 2> "$DEST/gpu-spec.log" || true
fi
echo "gpu-check: tests rc=$TEST_RC bench rc=$BENCH_RC, $(( $(date +%s) - START )) s; summary in $DEST/gpu-check.json"
[ "$TEST_RC" = "0" ] && [ "$BENCH_RC" = "0" ]
