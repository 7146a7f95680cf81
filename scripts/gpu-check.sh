#!/usr/bin/env bash
# gpu-check.sh: the GPU checks of mcexplore, on a machine with a CUDA GPU and cupy.
#
#   bash scripts/gpu-check.sh            # from the repository root
#
# One call, one time budget ($GPU_CHECK_BUDGET seconds, default 285, so under 5 minutes on an
# H100/H200). Steps run most important first, each capped at its own limit and at what is left of
# the budget (less what the summary needs); a step the budget no longer allows is skipped, and
# every step's exit status, duration and cap (or "skipped") is listed in $OUT/gpu-steps.txt and in
# the summary:
#   1. scripts/gpu-profile.py tile: issue #10's figures, per thread-2018 strategy (and 3 small
#      pages on sub-warp tiles) the per-trial kernel, the tile kernel (checked against numpy) and
#      native on every core -> gpu-tile.json;
#   2. tests/test_gpu.py and tests/test_exact_scale.py (cupy == numpy == native bit for bit,
#      tilted runs' statistics, the device reduction, chunking, 10^8 trials against the exact
#      solution) -> gpu-tests.log, gpu-tests.xml;
#   3. the summary: engines timed on small scenarios and on thread-2018 -> gpu-check.json
#      (always written; its timings stop where the budget does);
#   4. rare events on the GPU against the closed form -> rare-*.json;
#   5. scripts/predict-device.py, the prediction to compare with step 1 -> predict-device.json;
#   6. a sweep through dask-cuda, where installed, byte for byte against one in process.
# Environment: PYTHON (default python3), MCX_WHEELS (a folder of wheels to install first, e.g.
# pydantic where the machine lacks it), GPU_CHECK_BUDGET, GPU_CHECK_SKIP_SLOW=1 to skip the
# 10^8-trial test, GPU_CHECK_SPEC=1 to also compare generic and strategy-specialised device modules
# (outside the budget).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DEST=${OUT:-.}
mkdir -p "$DEST"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export MCEXPLORE_CACHE=${MCEXPLORE_CACHE:-/tmp/mcexplore-cache}
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-285}
if ! [[ "$BUDGET" =~ ^[0-9]+$ ]] || [ "$BUDGET" -lt 1 ]; then
    echo "gpu-check: GPU_CHECK_BUDGET: '$BUDGET' is not valid: a whole number of seconds >= 1" >&2
    exit 2
fi

if [ -n "${MCX_WHEELS:-}" ] && ls "$MCX_WHEELS"/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/mcx-site "$MCX_WHEELS"/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/mcx-site"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$DEST/gpu-info.txt" 2>&1

RESERVE=10  # the budget's last seconds: the steps' list into the summary
STEPS="$DEST/gpu-steps.txt"
: > "$STEPS"
# step NAME CAP CMD...: CMD for at most CAP seconds and never past the budget (less RESERVE);
# skipped, status 125, when under 10 seconds are left. Its line goes to $STEPS.
step() {
    local name=$1 cap=$2
    shift 2
    local left=$((START + BUDGET - RESERVE - $(date +%s)))
    if [ "$left" -lt 10 ]; then
        echo "$name: skipped (budget)" >> "$STEPS"
        return 125
    fi
    [ "$cap" -gt "$left" ] && cap=$left
    local t0
    t0=$(date +%s)
    timeout "$cap" "$@"
    local rc=$?
    echo "$name: rc=$rc, $(($(date +%s) - t0)) s (cap $cap s)" >> "$STEPS"
    return $rc
}

# 1. Issue #10's figures: one thread per trial, one warp per trial (the tile), native on every core.
step tile 140 $PY scripts/gpu-profile.py tile > "$DEST/gpu-tile.json" 2> "$DEST/gpu-tile.log"
TILE_RC=$?

# 2. The GPU tests.
MARK="gpu"
[ "${GPU_CHECK_SKIP_SLOW:-0}" = "1" ] && MARK="gpu and not slow"
step tests 120 $PY -m pytest -q -rA -p no:cacheprovider -m "$MARK" tests/test_gpu.py tests/test_exact_scale.py \
    --junitxml="$DEST/gpu-tests.xml" > "$DEST/gpu-tests.log" 2>&1
TEST_RC=$?
tail -n 25 "$DEST/gpu-tests.log"

# 3. The summary, engines timed (it stops timing 5 s before its cap and writes what it has).
LEFT=$((START + BUDGET - RESERVE - $(date +%s)))
SUMMARY_CAP=$((LEFT < 90 ? LEFT : 90))
step summary $SUMMARY_CAP $PY - "$DEST" "$TEST_RC" "$START" "$(($(date +%s) + SUMMARY_CAP - 5))" <<'PYEOF'
import json, os, subprocess, sys, time
import numpy as np
dest, test_rc, start, deadline = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
summary = {"tests_rc": test_rc, "tests": {}, "bench": [], "errors": []}

def save():
    # After every figure, atomically: the step's cap may end it at any point.
    summary["wall_s"] = time.time() - start
    tmp = os.path.join(dest, "gpu-check.json.tmp")
    with open(tmp, "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp, os.path.join(dest, "gpu-check.json"))
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
        if time.time() > deadline:
            summary["bench"].append({"scenario": label, "backend": b, "error": "skipped (budget)"}); continue
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
        save()

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

save()
print(json.dumps({k: v for k, v in summary.items() if k != "bench"}, indent=1))
PYEOF
BENCH_RC=$?

# 4. Rare events (importance sampling): a probability of 1e-12 to 10% on the GPU, against the
# closed form.
step rare-closed 40 $PY scripts/bench-rare.py --backend cupy --scenario closed > "$DEST/rare-closed.json" 2> "$DEST/rare.log"
step rare-window 40 $PY scripts/bench-rare.py --backend cupy --scenario window --checks 3 > "$DEST/rare-window3.json" 2>> "$DEST/rare.log"

# 5. The tile's predicted device figures (lane utilisation, the device compile, named
# assumptions: scripts/predict-device.py), to read beside step 1's measured ones.
step predict 60 $PY scripts/predict-device.py --trials-ref 5 --trials 200 > "$DEST/predict-device.json" 2> "$DEST/predict-device.log"

# 6. A sweep on every GPU through dask-cuda (docs/scale.md), where the machine has it; the table
# must equal the in-process one byte for byte.
cuda_cluster() {
    local sw=configs/sweep-timing-window.toml
    $PY -m mcexplore.cli sweep $sw --out /tmp/mcx-sweep-cuda --trials 2000 --cluster cuda &&
        $PY -m mcexplore.cli sweep $sw --out /tmp/mcx-sweep-one --trials 2000 &&
        cmp /tmp/mcx-sweep-cuda/results.parquet /tmp/mcx-sweep-one/results.parquet && echo "cuda cluster: identical table"
}
if $PY -c "import dask_cuda" >/dev/null 2>&1; then
    export -f cuda_cluster
    export PY
    step cuda-cluster 60 bash -c cuda_cluster > "$DEST/cuda-cluster.log" 2>&1 ||
        echo "cuda cluster: FAILED or cut short (see gpu-steps.txt)" >> "$DEST/cuda-cluster.log"
else
    echo "cuda-cluster: skipped (dask-cuda not installed)" >> "$STEPS"
fi

# The steps' list into the summary.
$PY - "$DEST" <<'PYEOF'
import json, os, sys
dest = sys.argv[1]
path = os.path.join(dest, "gpu-check.json")
try:
    summary = json.load(open(path))
except (OSError, ValueError):
    summary = {"errors": ["the summary step wrote nothing"]}
summary["steps"] = open(os.path.join(dest, "gpu-steps.txt")).read().splitlines()
with open(path + ".tmp", "w") as f:
    json.dump(summary, f, indent=2)
os.replace(path + ".tmp", path)
PYEOF
cat "$STEPS"

if [ "${GPU_CHECK_SPEC:-0}" = "1" ]; then
    # Generic against strategy-specialised device modules (about a minute more, outside the budget;
    # docs/kernels.md).
    timeout 240 $PY scripts/gpu-profile.py spec > "$DEST/gpu-spec.json" 2> "$DEST/gpu-spec.log" || true
fi
echo "gpu-check: tile rc=$TILE_RC tests rc=$TEST_RC summary rc=$BENCH_RC, $(($(date +%s) - START)) s of a $BUDGET s budget; summary in $DEST/gpu-check.json"
# Success is steps 1 to 3 run to their end (a step cut short or skipped by the budget fails it).
[ "$TILE_RC" = "0" ] && [ "$TEST_RC" = "0" ] && [ "$BENCH_RC" = "0" ]
