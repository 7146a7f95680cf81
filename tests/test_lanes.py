"""The lane scheduler's counters and the numpy engine's compaction (issue #10).

Neither may change a result: the build that counts lane utilisation gives the records of the
default build and of the numpy engine, and a numpy batch gives the same records whether or not
its finished trials are compacted out. The counters themselves obey the tile arithmetic of
kernels/lanes.h."""

from __future__ import annotations

import numpy as np
import pytest

from mcexplore import bench
from mcexplore.constants import LANE_W, LaneStat
from mcexplore.engines import numpy_page
from mcexplore.engines.numpy_engine import NumpyEngine
from mcexplore.scenario import load_scenario

SHRUNK = ["page.mapcount=40", "budget.max_attempts=25", 'budget.timeout="20ms"']


@pytest.fixture(scope="module")
def native():
    from mcexplore.engines.native import NativeEngine

    ok, why = NativeEngine.availability()
    if not ok:
        pytest.skip(why)
    return NativeEngine(nthreads=1), NativeEngine(nthreads=1, sched="lanes", lane_stats=True)


@pytest.mark.parametrize("label", ["ref", "drop", "ptl_pin", "lock_noref", "flag_spin", "pte_wait",
                                   "pte_wait_norecheck"])
def test_lane_counts_obey_the_tile_and_change_nothing(native, label):
    plain, counting = native
    c = load_scenario("thread-2018", SHRUNK).compile(label)
    ref = NumpyEngine().run_records(c, 7, 0, 12)
    assert plain.run_records(c, 7, 0, 12).equals(ref)
    before = counting.lane_counts.copy()
    assert counting.run_records(c, 7, 0, 12).equals(ref)
    d = dict(zip([m.name.lower() for m in LaneStat], (counting.lane_counts - before).tolist()))
    assert plain.lane_counts.tolist() == [0] * len(LaneStat)  # the default build counts nothing
    if label == "lock_noref":
        # Global order: its tasks run one event at a time (the walk), never on lanes.
        assert d == dict.fromkeys(d, 0)
        return
    # Every queue fills whole chunks of LANE_W slots but its last, which holds at least one event.
    assert d["slots"] % LANE_W == 0
    assert d["events"] <= d["slots"] < d["events"] + d["queues"] * LANE_W
    assert d["slots"] >= d["queues"] * LANE_W
    # A step runs one queue per event kind present, and a queue holds at most one event per task.
    assert d["steps"] <= d["queues"] <= d["steps"] * 11
    assert d["events"] <= d["queues"] * 40
    # Each counted fault is a FAULT event the scheduler ran.
    assert d["events"] >= int(ref["faults"].sum()) > 0


def test_bench_reports_lane_utilisation(native):
    _, counting = native
    sc = load_scenario("thread-2018", SHRUNK + ['strategies=["ptl_pin", "lock_noref"]'])
    lines = []
    rows = bench.run_bench(sc, backends=["native"], trials=8, echo=lines.append, min_time_s=0.0,
                           lanes=True)
    lanes = {r["strategy"]: r["lanes"] for r in rows if "lanes" in r}
    assert set(lanes) == {"ptl_pin", "lock_noref"}
    u = lanes["ptl_pin"]
    assert u["utilisation"] == pytest.approx(u["events"] / u["slots"]) and 0 < u["utilisation"] <= 1
    assert lanes["lock_noref"]["utilisation"] is None
    assert any("utilisation" in ln and "ptl_pin" in ln for ln in lines)
    assert any("global order" in ln and "lock_noref" in ln for ln in lines)


@pytest.mark.parametrize("label", ["ref", "flag_spin", "lock_noref", "pte_wait_norecheck"])
def test_numpy_compaction_changes_nothing(monkeypatch, label):
    """Trials of very different lengths (some censored at 25 attempts, most done in one), with
    compaction off, and on at every step where any trial has finished."""
    c = load_scenario("thread-2018", ["page.mapcount=3", "budget.max_attempts=25", "transient.rate=400000/s"]).compile(label)
    monkeypatch.setattr(numpy_page, "COMPACT_SHARE", 0.0)
    whole = NumpyEngine().run_records(c, 3, 100, 164)
    monkeypatch.setattr(numpy_page, "COMPACT_SHARE", 1.0 - 1e-9)
    monkeypatch.setattr(numpy_page, "COMPACT_MIN", 2)
    calls = []
    real = numpy_page.PageSim.compact
    monkeypatch.setattr(numpy_page.PageSim, "compact", lambda self, keep: (calls.append(len(keep)), real(self, keep)))
    compacted = NumpyEngine().run_records(c, 3, 100, 164)
    assert len(calls) >= 2, "the batch was never compacted: the test tests nothing"
    assert compacted.equals(whole)
    assert np.unique(whole["attempts"]).size > 1


def test_numpy_compaction_keeps_tilted_statistics(monkeypatch):
    from mcexplore import tilt

    sc = load_scenario("thread-2018", ["page.mapcount=3", "budget.max_attempts=25", "transient.rate=400000/s"])
    c = tilt.tilted_compiled(sc, "ref", {"timing.ptl_hold.components.1.weight": 0.2})
    monkeypatch.setattr(numpy_page, "COMPACT_SHARE", 0.0)
    whole = NumpyEngine().run_records(c, 11, 0, 48)
    monkeypatch.setattr(numpy_page, "COMPACT_SHARE", 1.0 - 1e-9)
    monkeypatch.setattr(numpy_page, "COMPACT_MIN", 2)
    compacted = NumpyEngine().run_records(c, 11, 0, 48)
    assert whole.stats is not None and whole.stats.any()
    assert compacted.equals(whole) and np.array_equal(compacted.stats, whole.stats)
