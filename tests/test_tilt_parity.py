"""Tilted runs (importance sampling, params.TiltLayout): the native engine's statistics against the
numpy reference, bit for bit, fields and statistics alike.

A tilted trial counts, after its fields, integer statistics: per leaf of each counted distribution
the draws that landed there and the sum of their values, and the transient windows its refcount
checks looked at (each once) with their arrivals. Counting must never change a field, and every
draw path of the native engine counts (the scalar draw, the batched rows and the wake rows of
kernels/drawcache.h). The layouts here are built by hand and are harsher than mcexplore.tilt's:
leaves of one distribution alternate between two count slots and most leaves (segments too) keep
a total, so a wrong leaf, a draw counted twice or missed, or a window counted again shows up.
mcexplore.tilt's own layouts run on the shipped scenario. The GPU case is in test_gpu.py.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from mcexplore import params
from mcexplore.constants import IS_MAX_SLOTS, NFIELDS
from mcexplore.params import DIST_NAMES

import test_parity as tp

TRIALS = 40

# The distributions the waiters draw, and the migrator's (with the access rate in both).
TASK_DISTS = ("fault_entry", "ptl_hold", "drop_hold", "noref_gap", "lock_hold", "wake_latency", "access",
              "outer_gap", "pre_freeze", "copy")
MIG_DISTS = ("unmap_pte", "pre_freeze", "freeze_hold", "copy", "remap_pte", "free_delay", "retry_gap",
             "outer_gap", "access")


def is_const(dist) -> bool:
    """The kernels never count a constant (they skip its draw): neither does a layout."""
    return dist.nleaf == 1 and int(dist.kind[0]) == params.LEAF_SEG and int(dist.b[0]) == 0


def with_layout(c: params.Compiled, names, transient=True) -> params.Compiled:
    """``c`` tilted by hand: each non-constant distribution of ``names`` counts its even and its odd
    leaves in two slots (one for a single leaf) and the values of the leaves l % 3 != 2 in a
    third; the transient windows in two more when the rate is positive."""
    slots, pos = {}, 0
    for name in names:
        d = DIST_NAMES.index(name)
        dist = c.dists[d]
        if is_const(dist):
            continue
        leaf = np.arange(dist.nleaf)
        count = pos + (leaf % 2 if dist.nleaf > 1 else 0 * leaf)
        pos += 2 if dist.nleaf > 1 else 1
        total = np.where(leaf % 3 != 2, pos, -1)
        pos += 1
        slots[d] = (count.astype(np.int64), total.astype(np.int64))
    ts = -1
    if transient and c.transient_rate_per_ns > 0:
        ts, pos = pos, pos + 2
    assert 0 < pos <= IS_MAX_SLOTS, pos
    return dataclasses.replace(c, tilt=params.TiltLayout(pos, slots, ts, (0.0,) * pos, ("x",) * pos))


# name -> (test_parity scenario, the distributions counted, changes to the scenario). The numpy
# engine runs a batch in lock step, as long as its longest trial: shorter budgets keep this fast.
TILTS = {
    "tasks_dists_file": ("dists_file", TASK_DISTS, dict(max_attempts=40)),
    "migrator_dists_file": ("dists_file", MIG_DISTS, dict(max_attempts=40)),
    "tasks_dists_anon_transient": ("dists_anon_transient", TASK_DISTS, dict(max_attempts=40)),
    "contended": ("contended_file", TASK_DISTS, {}),
    "tails": ("tails_file", TASK_DISTS, dict(max_attempts=25)),
    "timeout_mid": ("timeout_mid", TASK_DISTS, {}),
    # Holds as long as the window: dozens of refcount checks look at the same windows.
    "long_holds": ("long_holds", ("access", "wake_latency"), {}),
    "long_holds_cold": ("long_holds_cold", MIG_DISTS, {}),
}
# The migrator's draws hardly depend on the strategy: three of them (one whose migrator takes the
# page lock from waiters) are enough there.
MIGRATOR_STRATEGIES = ("ref", "drop", "lock_noref")
CASES = [(s, o, t) for s, o in tp.STRATEGY_CASES for t in TILTS
         if not t.startswith("migrator") or s in MIGRATOR_STRATEGIES]


def _case_id(case):
    s, o, t = case
    return tp._case_id((s, o, t))


def make(strategy, opts, tilt) -> params.Compiled:
    scen, names, changes = TILTS[tilt]
    return with_layout(tp.make(strategy, opts, **{**tp.SCENARIOS[scen], **changes}), names)


def _seed(case):
    return 0x7117 + CASES.index(case) * 40503


@functools.cache
def reference(case):
    from mcexplore.engines.numpy_engine import NumpyEngine

    j = CASES.index(case)
    return NumpyEngine().run_records(make(*case), _seed(case), 500 * j, 500 * j + TRIALS)


def assert_same(ref, got, label=""):
    """Fields (test_parity.assert_same) and then statistics, naming the first that differs."""
    tp.assert_same(ref, got, label)
    assert ref.stats is not None and got.stats is not None, label
    assert ref.stats.shape == got.stats.shape, (label, ref.stats.shape, got.stats.shape)
    bad = np.argwhere(ref.stats != got.stats)
    if len(bad):
        j, s = (int(x) for x in bad[0])
        raise AssertionError(f"{label}: statistic {s} differs first at trial {ref.trial0 + j}: reference "
                             f"{ref.stats[j].tolist()}, got {got.stats[j].tolist()}")


@pytest.fixture(scope="module")
def native():
    from mcexplore.engines.native import NativeEngine

    ok, why = NativeEngine.availability()
    if not ok:
        pytest.skip(why)
    return NativeEngine()


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_tilted_native_matches_numpy(native, case):
    ref = reference(case)
    assert ref.stats.shape == (TRIALS, make(*case).tilt.nslot)
    assert ref.stats.any(), "the tilt counted nothing"
    j = CASES.index(case)
    assert_same(ref, native.run_records(make(*case), _seed(case), 500 * j, 500 * j + TRIALS), _case_id(case))


def test_tilts_reach_every_statistic():
    """Over the strategies, every slot of every tilt counts something (so a path that never counts
    cannot pass by accident), and the windows are shared between checks where holds are long."""
    for tilt in TILTS:
        cases = [c for c in CASES if c[2] == tilt]
        c = make(*cases[0])
        hit = np.zeros(c.tilt.nslot, dtype=bool)
        for case in cases:
            hit |= (reference(case).stats != 0).any(axis=0)
        # Slots only of rare leaves (a histogram's preemption bucket) may stay zero.
        mass = np.zeros(c.tilt.nslot)
        mass[c.tilt.transient_slot:][:2] = 1.0 if c.tilt.transient_slot >= 0 else 0.0
        for d, (count, total) in c.tilt.dist_slots.items():
            w = c.dists[d].weight
            np.add.at(mass, count, w)
            np.add.at(mass, total[total >= 0], w[total >= 0])
        miss = np.nonzero(~hit & (mass > 0.01))[0]
        assert len(miss) == 0, f"{tilt}: slots {miss.tolist()} never count"
    # ref never fails a check by a trylock or a late lock: each attempt is one refcount check,
    # which looks at one or two windows; fewer windows than checks means they were counted once.
    case = ("ref", (), "long_holds")
    ref = reference(case)
    ts = make(*case).tilt.transient_slot
    windows, checks = ref.stats[:, ts], ref["attempts"] - (ref["livelock"] > 0)
    assert ((windows > 0) & (windows < checks)).sum() > TRIALS // 4


def test_untilted_records_have_no_statistics(native):
    c = tp.make("ref", (), **tp.SCENARIOS["dists_file"])
    r = native.run_records(c, 5, 0, 40)
    assert r.stats is None and r.matrix().shape == (40, NFIELDS)
    # A tilt counts; it never changes a field.
    t = native.run_records(with_layout(c, TASK_DISTS), 5, 0, 40)
    assert t.stats.any()
    tp.assert_same(r, t, "tilted vs untilted fields")


def widest(c: params.Compiled) -> params.Compiled:
    """``c``'s tilt with IS_MAX_SLOTS statistics, the slots past its own never counted."""
    n = IS_MAX_SLOTS
    return dataclasses.replace(c, tilt=dataclasses.replace(c.tilt, nslot=n, coef=(0.0,) * n, names=("x",) * n))


def test_widest_records(native):
    from mcexplore.engines.numpy_engine import NumpyEngine

    c = widest(with_layout(tp.make("drop", (), **tp.SCENARIOS["long_holds"]), ("access", "wake_latency")))
    ref = NumpyEngine().run_records(c, 8, 0, 40)
    assert ref.stats.shape == (40, IS_MAX_SLOTS) and ref.stats.any()
    assert_same(ref, native.run_records(c, 8, 0, 40), "IS_MAX_SLOTS statistics")


def test_stats_do_not_depend_on_batch_or_threads(native):
    """The statistics of a trial are its own: numpy in one batch or two, native whole, in parts,
    on one thread or several, with or without batched draws."""
    from mcexplore.engines.native import NativeEngine
    from mcexplore.engines.numpy_engine import NumpyEngine
    from mcexplore.results import Records

    c = with_layout(tp.make("lock_noref", (), **tp.SCENARIOS["dists_anon_transient"]), TASK_DISTS)
    n = 150
    ref = NumpyEngine().run_records(c, 99, 0, n)
    assert ref.stats.any()
    parts = Records.concat([NumpyEngine().run_records(c, 99, a, b) for a, b in ((0, 37), (37, n))])
    assert_same(ref, parts, "numpy in two batches")
    assert_same(ref, native.run_records(c, 99, 0, n), "native")
    assert_same(ref, Records.concat([native.run_records(c, 99, a, min(n, a + 41)) for a in range(0, n, 41)]),
                "native in parts")
    assert_same(ref, NativeEngine(nthreads=1, simd="off").run_records(c, 99, 0, n), "native, 1 thread, no rows")
    assert_same(ref, NativeEngine(nthreads=3).run_records(c, 99, 0, n), "native, 3 threads")


# Pages of many tasks: the native engine's rows and wake rows (drawcache.h) serve most task draws,
# and the library with a short warm-up and skip switches each purpose between rows and scalar.
WIDE = [("ref", "wide_dists"), ("drop", "wide"), ("lock_noref", "wide_contended")]


@functools.cache
def wide_reference(strategy, scen):
    from mcexplore.engines.numpy_engine import NumpyEngine

    c = with_layout(tp.make(strategy, (), **tp.WIDE_SCENARIOS[scen]), TASK_DISTS)
    return c, NumpyEngine().run_records(c, 0xA11CE, 0, 24)


@pytest.mark.parametrize("simd", ["off", "scalar", "auto"])
def test_every_draw_path_counts(native, simd):
    from mcexplore.engines import kernel_source
    from mcexplore.engines import native as nat
    from mcexplore.engines.native import NativeEngine
    from mcexplore.engines.pack import pack
    from mcexplore.results import Records

    engine = NativeEngine(simd=simd)
    text = kernel_source.source_files()["drawcache.h"]
    switching = nat.build(overrides={"drawcache.h": "#define MCX_DC_WARMUP 64\n#define MCX_DC_SKIP 50\n" + text})
    for strategy, scen in WIDE:
        c, ref = wide_reference(strategy, scen)
        assert ref.stats.any()
        assert_same(ref, engine.run_records(c, 0xA11CE, 0, 24), f"{simd} {strategy} {scen}")
        mat = switching.simulate(pack(c), 0xA11CE, 0, 24, 1, simd)
        assert_same(ref, Records.from_matrix(0, mat, c.tilt.nslot), f"{simd} switching {strategy} {scen}")


# mcexplore.tilt's layouts on the shipped scenario, shrunk: mixture weights of every waiter cost,
# exponential means, the access rate and the transient rate.
TILT_CHANGES = {
    "weights": {"timing.drop_hold.components.1.weight": 0.3, "timing.ptl_hold.components.1.weight": 0.2,
                "timing.noref_gap.components.1.weight": 0.2, "timing.lock_hold.components.1.weight": 0.2,
                "timing.wake_latency.components.1.weight": 0.3},
    # The tails' weights too, or 48 trials would hardly draw from them.
    "means_rates": {"timing.wake_latency.components.0.mean": "20us",
                    "timing.drop_hold.components.1.mean": "100us", "timing.drop_hold.components.1.weight": 0.2,
                    "timing.lock_hold.components.1.mean": "50us", "timing.lock_hold.components.1.weight": 0.2,
                    "page.access_rate": "5/us", "transient.rate": "200000/s"},
}


@pytest.mark.parametrize("changes", list(TILT_CHANGES))
def test_tilt_layouts_every_label(native, changes):
    tilt = pytest.importorskip("mcexplore.tilt")
    if not hasattr(tilt, "tilted_compiled"):
        pytest.skip("mcexplore.tilt has no tilted_compiled")
    from mcexplore.engines.numpy_engine import NumpyEngine
    from mcexplore.scenario import load_scenario

    sc = load_scenario("thread-2018").set_many({"page.mapcount": 6, "budget.max_attempts": 40})
    hit = None
    for label in sc.labels():
        c = tilt.tilted_compiled(sc, label, TILT_CHANGES[changes])
        ref = NumpyEngine().run_records(c, 2018, 0, 48)
        assert_same(ref, native.run_records(c, 2018, 0, 48), f"{changes} {label}")
        nz = (ref.stats != 0).any(axis=0)
        hit = nz if hit is None else hit | nz
    assert hit.all(), f"{changes}: slots {np.nonzero(~hit)[0].tolist()} never count"


def test_block_level_counts_nothing(native):
    """Block level is never tilted (the Python side refuses); a layout there by hand leaves the
    fields as they were and the statistics zero."""
    base = tp.make_block("drop", (), "block_dists")
    t = with_layout(tp.make("drop", (), **tp.BLOCK_SCENARIOS["block_dists"]["kw"]), TASK_DISTS)
    tilted = dataclasses.replace(base, tilt=t.tilt)
    r = native.run_records(base, 3, 0, 24)
    got = native.run_records(tilted, 3, 0, 24)
    tp.assert_same(r, got, "block level, tilted by hand")
    assert got.stats.shape == (24, t.tilt.nslot) and not got.stats.any()
