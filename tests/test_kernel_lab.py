"""The kernel lab's prediction against its observation (scripts/kernel-lab/).

The committed data: scripts/kernel-lab/data/{stock,ref}/ (what a qemu guest measured while
offlining a memory block under 200 tasks touching one shmem page), lab-calibrated.toml (the stock
kernel's kit output through `mcexplore calibrate import`), lab-overrides.txt (the lab-derived
fields, each with its reason), observation.json and prediction.json (scripts/kernel-lab/
calibrate.py). The lab itself is not run here (it needs a kernel build and minutes of qemu).

Each check re-runs the committed calibration with few trials (fixed seed, native backend where
a C++ compiler exists, else numpy with fewer trials) and puts the lab's count inside the 99.9%
predictive range that the model's 99.9% interval allows: for a lab count k of n, k must lie in
[binom.ppf(0.0005, n, p_lo), binom.ppf(0.9995, n, p_hi)]. No tolerance is tuned.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

scipy_stats = pytest.importorskip("scipy.stats")

from mcexplore.scenario import load_scenario  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "scripts" / "kernel-lab" / "data"
LEVEL = 0.999


def _overrides() -> dict[str, str]:
    out = {}
    for line in (DATA / "lab-overrides.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _backend() -> tuple[str, int]:
    from mcexplore.engines.base import get_engine

    try:
        get_engine("native")
        return "native", 96
    except Exception:  # no C++ compiler: numpy, fewer trials (the intervals widen accordingly)
        return "numpy", 24


@pytest.fixture(scope="module")
def prediction():
    from mcexplore.api import run
    from mcexplore.stats import proportion_ci

    sc = load_scenario(str(DATA / "lab-calibrated.toml"),
                       overrides=[f"{k}={v}" for k, v in _overrides().items()])
    backend, trials = _backend()
    res = run(sc, trials=trials, seed=14, labels=["ref", "ptl_pin"], backend=backend)
    out = {}
    for label in ("ref", "ptl_pin"):
        agg = res[label].aggregate
        n = agg.trials
        d = {"trials": n, "calls_mean": agg.sums["calls"] / n}
        for o in ("migrated", "call_failed", "livelock"):
            ci = proportion_ci(agg.counts[o], n, LEVEL)
            d[o] = (agg.counts[o], ci.lo, ci.hi)
        out[label] = d
    return out


@pytest.fixture(scope="module")
def observation():
    return json.loads((DATA / "observation.json").read_text())


def _inside(k: int, n: int, p_lo: float, p_hi: float) -> bool:
    a = (1 - LEVEL) / 2
    lo = scipy_stats.binom.ppf(a, n, p_lo) if p_lo > 0 else 0
    hi = scipy_stats.binom.ppf(1 - a, n, p_hi) if p_hi < 1 else n
    return lo <= k <= hi


def test_committed_data_is_complete():
    for label in ("stock", "ref"):
        d = DATA / label
        for f in ("summary.json", "calls.txt", "offline.txt", "kit/kit.json", "kit/rmap.txt",
                  "kit/move.txt", "kit/fault.txt", "kit/offline.txt"):
            assert (d / f).exists(), f"{label}/{f}"
        meta = json.loads((d / "kit" / "kit.json").read_text())
        assert {"kernel", "host", "date", "duration_s", "kit_version"} <= set(meta)
        assert f"({label})" in meta["kernel"]
    # the DIMM's block really held the hot page, mapped by the workload's 201 tasks
    for label in ("stock", "ref"):
        offl = (DATA / label / "offline.txt").read_text().splitlines()
        loaded = [l for l in offl if not l.startswith("rep=after-stop")]
        assert loaded and all("mapcount=201" in l for l in loaded)
        assert all(re.search(r"pfn=0x10[0-7][0-9a-f]{3}\b", l) for l in loaded)  # memory32


def test_observation_matches_the_summaries(observation):
    for label in ("stock", "ref"):
        s = json.loads((DATA / label / "summary.json").read_text())["loaded"]
        o = observation[label]
        assert (o["hot_calls"], o["hot_calls_failed"], o["offlined"]) == \
            (s["hot_calls"], s["hot_calls_failed"], s["offlined"])
        calls = [l.split() for l in (DATA / label / "calls.txt").read_text().splitlines()
                 if l and not l.startswith("#")]
        assert sum(1 for c in calls if int(c[2]) > 0) >= o["hot_calls_failed"]


def test_stock_is_ptl_pin(prediction, observation):
    """Stock 6.1 (migration_entry_wait_on_locked): every offline completed, no hot call failed."""
    p, o = prediction["ptl_pin"], observation["stock"]
    n = p["trials"]
    _, lo, hi = p["call_failed"]
    assert _inside(o["hot_calls_failed"], o["hot_calls"], lo, hi), (o, p)
    _, lo, hi = p["livelock"]
    assert _inside(o["offlines"] - o["offlined"], o["offlines"], lo, hi), (o, p)
    assert n > 0


def test_ref_is_the_livelock(prediction, observation):
    """The patched kernel (v4.19's get_page + wait_on_page_locked): no offline completed."""
    p, o = prediction["ref"], observation["ref"]
    # whether offlining completes within the lab's time limit: livelock per offline
    _, lo, hi = p["livelock"]
    assert _inside(o["offlines"] - o["offlined"], o["offlines"], lo, hi), (o, p)
    # the first call of each offline (MODEL.md's call_failed)
    _, lo, hi = p["call_failed"]
    assert _inside(o["offlines"], o["offlines"], lo, hi), (o, p)
    # every call: a trial migrates in at most one call, so the model's per-call failure
    # probability is 1 - P(migrated) / E[calls]; its interval from P(migrated)'s
    _, m_lo, m_hi = p["migrated"]
    calls = p["calls_mean"]
    assert _inside(o["hot_calls_failed"], o["hot_calls"], 1 - m_hi / calls, 1 - m_lo / calls)
    # after the workload stopped, the block offlined at once (the seed's observation 3.1)
    assert [a["result"] for a in o["after_stop"]] == ["ok"]


def test_ref_time_between_failed_calls(prediction, observation):
    """The call period: the model's timeout / E[calls] against the lab's calls per offline.

    The lab's interval is a t interval over its offlines (3: wide); the model's measured error
    on the period is the README's figure, recomputed here from the committed files.
    """
    o = observation["ref"]
    per = [o["offline_timeout_s"] * 1000 / c for c in o["calls_per_offline"]]
    n = len(per)
    mean = sum(per) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in per) / (n - 1))
    t = scipy_stats.t.ppf(1 - (1 - LEVEL) / 2, n - 1)
    lab_lo, lab_hi = mean - t * sd / math.sqrt(n), mean + t * sd / math.sqrt(n)
    model = o["offline_timeout_s"] * 1000 / prediction["ref"]["calls_mean"]
    assert lab_lo <= model <= lab_hi, (model, lab_lo, lab_hi)
    committed = json.loads((DATA / "prediction.json").read_text())["ref"]["means"]["calls"]
    err_committed = (o["offline_timeout_s"] * 1000 / committed) / o["failed_call_gap_ms"]["mean"] - 1
    # the README reports this error: +23% (the model's period is longer than the lab's)
    assert round(err_committed, 2) == 0.23, err_committed


def test_kit2_on_the_live_stock_kernel():
    """Kit 2 (remap cost via remove_migration_pte(), per-PTE maps by mapping class [8]/[1],
    integer @refcount_check keys, the include rerun) as it ran on the lab's stock kernel:
    data/stock-kit2/kit (4 offlines, README "Kit 2 on the live kernel")."""
    from mcexplore.calibration import calibrate, parse_bpftrace_file, read_kit

    kit_dir = DATA / "stock-kit2" / "kit"
    out = read_kit(kit_dir)
    assert out.meta.kit_version == "2" and not out.missing and not out.repeated
    # the include rerun of record.sh: offline.bt ran with the header bpftrace needed
    assert out.meta.extra.get("includes") == {"offline": "linux/migrate_mode.h"}
    maps = {s: parse_bpftrace_file(kit_dir / f"{s}.txt") for s in ("rmap", "move", "fault", "offline")}

    def total(script, name, *key):
        return maps[script][name].entries[tuple(key)].total

    # the hot page (201 mappings) in the [8] class, the block's single-mapped pages in [1]
    assert total("rmap", "remap_pte_ns", "8") == 5 and total("rmap", "remap_pte_ns", "1") == 61
    assert total("rmap", "unmap_pte_ns", "8") == 4 and total("rmap", "unmap_pte_ns", "1") == 62
    assert total("move", "free_delay_ns") == 66 and total("move", "pre_freeze_ns") == 66
    assert total("move", "freeze_hold_ns") == 4
    # integer keys [file, rc], each printed once: 4 file (the hot shmem pages), 62 anon, all rc 0
    rc = maps["move"]["refcount_check"]
    assert rc.entries == {("1", "0"): 4, ("0", "0"): 62} and not rc.repeated
    assert total("fault", "fault_entry_ns") == 33 and total("fault", "wake_latency_ns") == 33
    # mm_migrate_pages (reason 2, memory_hotplug): 4 calls, 66 pages moved, none failed
    off = maps["offline"]
    assert off["calls"].scalar("2") == 4 and off["succeeded"].scalar("2") == 66
    assert off["failed"].scalar("2") == 0 and off["call_ns"].entries[()].total == 4
    # empty on this kernel: no failed attempt (stock moves the page at once), one call per
    # offline, and folio_migrate_copy() inlined into migrate_folio()
    assert "retry_gap_ns" not in maps["rmap"] and "outer_gap_ns" not in maps["offline"]
    assert "copy_ns" not in maps["move"]

    cal = calibrate(kit_dir, base="thread-2018")
    assert cal.measured == ["timing.unmap_pte", "timing.remap_pte", "timing.pre_freeze",
                            "timing.free_delay", "timing.fault_entry", "timing.wake_latency"]
    status = {f.field: f.status for f in cal.fields}
    assert status["timing.retry_gap"] == status["timing.copy"] == "missing"
    assert status["timing.outer_gap"] == "missing" and status["timing.freeze_hold"] == "too_few"
    # [8] has fewer than MIN_SAMPLES, so the import pooled the classes (and says so)
    assert {f.field: f.source for f in cal.fields if f.field.endswith("map_pte")} == {
        "timing.unmap_pte": "", "timing.remap_pte": ""}
    assert sum("all mapping classes pooled" in w for w in cal.warnings) == 2
