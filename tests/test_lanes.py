"""The lanes (issue #10): the device tile's code, the lane scheduler's counters, numpy's compaction.

None may change a result. The tile's code (one trial split over the lanes of a tile, the
migrator run by every lane, the lanes meeting only in collectives) runs here on coroutines standing
in for the lanes, at a warp's width, a sub-warp tile's (8 lanes) and a two-warp tile's (64), the
last two in a build that asks for them, against the numpy engine over the parity matrix. Counting lane utilisation leaves the records those of the numpy engine, and a numpy batch gives the same records whether or not its finished
trials are compacted out. The counters themselves obey the tile arithmetic of kernels/lanes.h."""

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


def _tile_cases():
    import test_parity as tp

    return tp.CASES  # the page-level matrix, every strategy (block level never runs on a tile)


def _tile_against_numpy(lib, case, lanes, n):
    import test_parity as tp

    from mcexplore.engines.pack import pack
    from mcexplore.results import Records

    strategy, opts, scen = case
    j = tp.CASES.index(case)
    c = tp.make(strategy, opts, **tp.SCENARIOS[scen])
    seed, t0 = 0x5EED0000 + j * 7919 + (1 << 40), 1000 * j
    ref = tp.reference(case)
    got = Records.from_matrix(t0, lib.simulate_tile(pack(c), seed, t0, t0 + n, lanes=lanes))
    tp.assert_same(Records.from_matrix(t0, ref.matrix()[:n]), got, f"tile/{lanes} {tp._case_id(case)}")


@pytest.mark.parametrize("case", _tile_cases(), ids=lambda c: __import__("test_parity")._case_id(c))
def test_tile_matches_numpy(native, case):
    """The device tile's template instance on coroutines standing in for its lanes, bit for bit."""
    _tile_against_numpy(native[0].lib, case, 32, 32)


@pytest.mark.parametrize("label", ["ref", "drop", "ptl_pin", "lock_noref", "flag_spin", "pte_wait",
                                   "pte_wait_norecheck"])
def test_tile_matches_numpy_on_the_shipped_scenario(native, label):
    """thread-2018 shrunk to 40 tasks: more tasks than lanes, several attempts, every outcome path
    of the shipped timings (lock_noref: the tile's shared pick, sleepers woken across lanes)."""
    from mcexplore.engines.pack import pack
    from mcexplore.results import Records

    plain, _ = native
    c = load_scenario("thread-2018", SHRUNK).compile(label)
    ref = NumpyEngine().run_records(c, 7, 0, 12)
    assert Records.from_matrix(0, plain.lib.simulate_tile(pack(c), 7, 0, 12)).equals(ref)


@pytest.fixture(scope="module")
def widths(tmp_path_factory):
    """A library with the host instances of the 8- and 64-lane tiles (-DMCX_HOST_TILE_WIDTHS)."""
    from mcexplore.engines import native as nat

    cxx = nat.find_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CXX", f"{cxx} -DMCX_HOST_TILE_WIDTHS")
        return nat.build()


@pytest.mark.parametrize("case", _tile_cases(), ids=lambda c: __import__("test_parity")._case_id(c))
def test_subwarp_tile_matches_numpy(widths, case):
    """The 8-lane tile (a quarter of a warp: the device runs four trials a warp so) over the
    parity matrix, whose pages have 0 to 9 tasks: one task a lane, idle lanes, a lane with two."""
    _tile_against_numpy(widths, case, 8, 16)


@pytest.mark.parametrize("label", ["ref", "drop", "lock_noref", "flag_spin", "pte_wait"])
@pytest.mark.parametrize("lanes, sets", [(8, []), (64, []),
                                         (64, ["page.mapcount=150", "budget.max_attempts=6"])],
                         ids=["8 lanes 40 tasks", "64 lanes 40 tasks", "64 lanes 150 tasks"])
def test_tile_matches_numpy_at_other_widths(widths, label, lanes, sets):
    """thread-2018 shrunk, on 8 lanes (five tasks a lane), on two warps' 64 lanes with idle lanes,
    and with two or three tasks a lane (lock_noref: the pick over two warps)."""
    from mcexplore.engines.pack import pack
    from mcexplore.results import Records

    c = load_scenario("thread-2018", SHRUNK + sets).compile(label)
    ref = NumpyEngine().run_records(c, 7, 0, 6)
    assert Records.from_matrix(0, widths.simulate_tile(pack(c), 7, 0, 6, lanes=lanes)).equals(ref)


def test_tile_widths_the_host_runs(native, widths):
    from mcexplore.engines.pack import pack

    plain, _ = native
    P = pack(load_scenario("thread-2018", SHRUNK).compile("drop"))
    with pytest.raises(ValueError, match=r"lanes: 8 needs a library built with -DMCX_HOST_TILE_WIDTHS"):
        plain.lib.simulate_tile(P, 1, 0, 2, lanes=8)
    with pytest.raises(ValueError, match=r"lanes: 5 is not a tile width the host runs; valid: 8, 32, 64"):
        widths.simulate_tile(P, 1, 0, 2, lanes=5)
    # The sub-warp build runs the warp's tile too, to the same records.
    assert np.array_equal(widths.simulate_tile(P, 1, 0, 3), plain.lib.simulate_tile(P, 1, 0, 3))


@pytest.mark.parametrize("sets, lanes", [(["page.mapcount=4", "page.active=3"], 4),
                                         (["page.mapcount=8", "page.active=4"], 4),
                                         (["page.mapcount=9", "page.active=5"], 8),
                                         (["page.mapcount=16", "page.active=16"], 16),
                                         (["page.mapcount=40", "page.active=17"], 32),
                                         ([], 32),
                                         (["page.mapcount=1024"], 32),
                                         (["page.mapcount=1025"], 64),
                                         (["page.mapcount=4096"], 128),
                                         (["page.mapcount=5000"], 128)])
def test_device_tile_width_follows_the_active_tasks(sets, lanes):
    """cupy's tile width (importable without cupy): a lane for every active task up to a warp, then
    at most 32 tasks a lane, up to the widest tile."""
    from mcexplore.constants import TILE_LANES
    from mcexplore.engines.cupy_engine import tile_lanes
    from mcexplore.engines.pack import pack

    w = tile_lanes(pack(load_scenario("thread-2018", sets).compile("drop")))
    assert w == lanes and w in TILE_LANES


def test_tile_refuses_what_it_cannot_run(native):
    from mcexplore import tilt
    from mcexplore.engines.pack import pack

    plain, _ = native
    sc = load_scenario("thread-2018", SHRUNK)
    block = load_scenario("thread-2018-block", ["budget.max_attempts=3"]).compile("ref")
    with pytest.raises(ValueError, match="page-level"):
        plain.lib.simulate_tile(pack(block), 1, 0, 2)
    tilted = tilt.tilted_compiled(sc, "ref", {"timing.ptl_hold.components.1.weight": 0.2})
    with pytest.raises(ValueError, match="untilted"):
        plain.lib.simulate_tile(pack(tilted), 1, 0, 2)


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
    assert plain.lane_counts.tolist() == [0] * len(LaneStat)  # nothing counted unless asked
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
    # Global order on the tile: every pick runs one event on one lane, LANE_W slots for it.
    g = lanes["lock_noref"]["tile"]
    assert g["global_order"] and g["events"] > 0
    assert g["steps"] == g["events"] == g["queues"] and g["slots"] == LANE_W * g["events"]
    # The device tile's own schedule: every (step, event kind) costs LANE_W slots per event of its
    # busiest lane, so at least one full lane of events and at most LANE_W x those.
    t = u["tile"]
    assert t["slots"] % LANE_W == 0 and 0 < t["events"] <= t["slots"] <= LANE_W * t["events"]
    assert t["steps"] <= t["queues"] and 0 < t["utilisation"] <= 1
    assert t["events"] == u["events"]  # the same events, in another order
    assert any("utilisation" in ln and "ptl_pin" in ln for ln in lines)
    assert any("global order" in ln and "lock_noref" in ln and "one lane" in ln for ln in lines)


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


def test_draw_counting_build_counts_and_changes_nothing(monkeypatch, tmp_path):
    """scripts/draw-floor.py's build (-DMCX_COUNT_DRAWS): the same records, and its event counter
    agrees with the lane scheduler's, event for event."""
    import ctypes

    from mcexplore.engines import native
    from mcexplore.engines.pack import pack

    cxx = native.find_compiler()
    if cxx is None:
        pytest.skip("no C++ compiler")
    plain = native.build()
    monkeypatch.setenv("CXX", f"{cxx} -DMCX_COUNT_DRAWS")
    monkeypatch.setenv("MCEXPLORE_CACHE", str(tmp_path))
    counting = native.build()
    assert counting.path != plain.path
    from mcexplore.constants import DRAW_COUNT_DISTS, DRAW_COUNTERS, DrawCount as K

    counts = (ctypes.c_int64 * DRAW_COUNTERS).in_dll(counting.lib, "mcx_draw_counts")
    P = pack(load_scenario("thread-2018", SHRUNK).compile("ptl_pin"))
    for j in range(DRAW_COUNTERS):
        counts[j] = 0
    lanes = np.zeros(len(LaneStat), dtype=np.int64)
    got = counting.simulate(P, 7, 0, 12, 1, sched="lanes", lane_stats=lanes)
    assert np.array_equal(got, plain.simulate(P, 7, 0, 12, 1))
    assert counts[K.EVENTS] == lanes[LaneStat.EVENTS] > 0
    # Every sample draws: a batched lane or a draw of its own (a row's lanes may go unused).
    samples = sum(counts[K.SAMPLES + d] for d in range(DRAW_COUNT_DISTS))
    assert 0 < samples <= counts[K.SCALAR] + counts[K.LANES] and counts[K.ROWS] > 0
