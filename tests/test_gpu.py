"""The CUDA engine (cupy) against numpy and native, bit for bit; device reduction; scale.

Marker ``gpu``: skipped cleanly where cupy is not importable or no CUDA device is usable (CI has
none). scripts/gpu-check.sh runs this file on a GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest

from mcexplore.engines.cupy_engine import CupyEngine

_ok, _why = CupyEngine.availability()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _ok, reason=f"CupyEngine unavailable: {_why}")]


@pytest.fixture(scope="module")
def gpu():
    return CupyEngine()


@pytest.fixture(scope="module")
def ref_engines():
    from mcexplore.engines.native import NativeEngine
    from mcexplore.engines.numpy_engine import NumpyEngine

    native = NativeEngine() if NativeEngine.availability()[0] else None
    return NumpyEngine(), native


def test_philox_kat_gpu(gpu):
    from test_kernels_infra import KAT

    got = gpu.philox([c for c, _, _ in KAT], [k for _, k, _ in KAT])
    for row, (_, _, expect) in zip(got, KAT):
        assert tuple(int(x) for x in row) == expect


def test_sampling_gpu_vs_numpy(gpu):
    from test_kernels_infra import _compiled_with, _ref_words, random_keys, test_dists

    from mcexplore import rng
    from mcexplore.engines import pack

    dists = test_dists()
    P = pack.pack(_compiled_with(dists.values()))
    seed = 2**40 + 99
    keys = random_keys(50000, seed=4)
    ref_w = _ref_words(seed, keys)
    for d, (name, dist) in enumerate(dists.items()):
        values, words = gpu.sample_draws(P, seed, keys, d)
        for j in range(4):
            assert np.array_equal(words[:, j].astype(np.uint64), ref_w[j]), (name, j)
        assert np.array_equal(values, rng.sample(dist, ref_w)), name
        edge = np.array([(x0, x1, x2, 0) for x0 in (0, 2**31, 2**32 - 1)
                         for x1, x2 in ((0, 0), (0, 1), (2**32 - 1, 2**32 - 1), (1, 0))], dtype=np.uint32)
        assert np.array_equal(gpu.sample_words(P, edge, d),
                              rng.sample(dist, tuple(edge[:, j].astype(np.uint64) for j in range(4)))), name


def test_hist_buckets_gpu(gpu):
    from mcexplore.results import hist_bucket

    r = np.random.default_rng(0)
    v = np.concatenate([np.arange(-3, 3000), r.integers(0, 2**62, 10000),
                        [np.iinfo(np.int64).max]]).astype(np.int64)
    assert np.array_equal(gpu.hist_buckets(v), hist_bucket(v))


def _page_cases():
    import test_parity as tp

    return [(tp._case_id(c), c) for c in tp.CASES]


def _block_cases():
    import test_parity as tp

    return [(tp._case_id(c), c) for c in tp.BLOCK_CASES]


def test_cupy_matches_numpy_and_native_page(gpu, ref_engines):
    import test_parity as tp

    numpy_engine, native = ref_engines
    for j, (cid, (strategy, opts, scen)) in enumerate(_page_cases()):
        c = tp.make(strategy, opts, **tp.SCENARIOS[scen])
        seed = 0x6A0 + j * 31337
        ref = numpy_engine.run_records(c, seed, 5000 + j, 5000 + j + 64)
        got = gpu.run_records(c, seed, 5000 + j, 5000 + j + 64)
        tp.assert_same(ref, got, f"cupy vs numpy {cid}")
        if native is not None:
            tp.assert_same(ref, native.run_records(c, seed, 5000 + j, 5000 + j + 64), f"native {cid}")


def test_cupy_tile_matches_numpy(ref_engines):
    """The tile kernel (one tile of lanes per trial, kernels/lanes.h) over the whole page-level
    parity matrix (lock_noref's global order included; its small pages run on 4- and 8-lane
    tiles, several a warp), thread-2018 at 12 tasks (16 lanes), as shipped (a warp), at 1100
    tasks (two warps) and 4100 (four), and the device-side aggregate, each against the numpy
    engine."""
    import test_parity as tp

    from mcexplore.constants import TILE_LANES
    from mcexplore.engines.cupy_engine import tile_lanes
    from mcexplore.engines.pack import pack
    from mcexplore.results import Aggregate
    from mcexplore.scenario import load_scenario

    numpy_engine, _ = ref_engines
    tile = CupyEngine(sched="tile")
    widths = set()
    for j, (cid, (strategy, opts, scen)) in enumerate(_page_cases()):
        c = tp.make(strategy, opts, **tp.SCENARIOS[scen])
        widths.add(tile_lanes(pack(c)))
        seed = 0x711E + j * 31337
        ref = numpy_engine.run_records(c, seed, 7000 + j, 7000 + j + 64)
        tp.assert_same(ref, tile.run_records(c, seed, 7000 + j, 7000 + j + 64), f"cupy tile {cid}")
    big = ["budget.max_attempts=4", 'strategies=["drop", "lock_noref"]']
    for sets, n in ((["page.mapcount=12", "page.active=12"], 48), ([], 48),
                    (["page.mapcount=1100", *big], 4), (["page.mapcount=4100", 'strategies=["drop"]',
                                                         "budget.max_attempts=4"], 2)):
        sc = load_scenario("thread-2018", ["budget.max_attempts=30", *sets])
        for label in sc.labels():
            c = sc.compile(label)
            widths.add(tile_lanes(pack(c)))
            ref = numpy_engine.run_records(c, 5, 0, n)
            tp.assert_same(ref, tile.run_records(c, 5, 0, n), f"cupy tile thread-2018 {sets} {label}")
            _agg_equal(Aggregate.from_records(ref), tile.run_aggregate(c, 5, 0, n))
    assert widths == set(TILE_LANES), widths


def test_cupy_matches_numpy_and_native_block(gpu, ref_engines):
    import test_parity as tp

    numpy_engine, native = ref_engines
    for j, (cid, (strategy, opts, scen)) in enumerate(_block_cases()):
        c = tp.make_block(strategy, opts, scen)
        seed = 0xB00 + j
        ref = numpy_engine.run_records(c, seed, 0, 32)
        got = gpu.run_records(c, seed, 0, 32)
        tp.assert_same(ref, got, f"cupy vs numpy {cid}")
        if native is not None:
            tp.assert_same(ref, native.run_records(c, seed, 0, 32), f"native {cid}")


def test_cupy_tilted_matches_numpy_and_native(gpu, ref_engines):
    """A tilted run's statistics (test_tilt_parity's layouts, every strategy; IS_MAX_SLOTS of them,
    the width of the kernel's local record, once) and its device-side aggregate."""
    import test_parity as tp
    import test_tilt_parity as tt

    from mcexplore.results import Aggregate

    numpy_engine, native = ref_engines
    for j, case in enumerate(tt.CASES):
        c = tt.make(*case)
        if j == 0:
            c = tt.widest(c)
        seed = 0x717 + j * 7
        ref = numpy_engine.run_records(c, seed, 300 * j, 300 * j + 48)
        got = gpu.run_records(c, seed, 300 * j, 300 * j + 48)
        tt.assert_same(ref, got, f"cupy vs numpy {tt._case_id(case)}")
        if native is not None:
            tt.assert_same(ref, native.run_records(c, seed, 300 * j, 300 * j + 48), f"native {tt._case_id(case)}")
    c = tt.make("lock_noref", (), "contended")
    rec = gpu.run_records(c, 3, 0, 5000)
    assert rec.stats.any()
    for chunk in (None, 777):
        assert CupyEngine(chunk=chunk).run_records(c, 3, 0, 5000).equals(rec)
        _agg_equal(Aggregate.from_records(rec), CupyEngine(chunk=chunk).run_aggregate(c, 3, 0, 5000))
    if native is not None:
        assert rec.equals(native.run_records(c, 3, 0, 5000))
    tp.assert_same(rec, gpu.run_records(tp.make("lock_noref", (), **tp.SCENARIOS["contended_file"]), 3, 0, 5000),
                   "tilted vs untilted fields")


def _agg_equal(a, b):
    from mcexplore.results import HIST_METRICS

    assert a.trials == b.trials
    assert a.counts == b.counts
    assert a.sums == b.sums
    assert a.max_wait_max == b.max_wait_max
    for m in HIST_METRICS:
        assert np.array_equal(a.hists[m], b.hists[m]), m
    for o in set(a.examples) | set(b.examples):
        assert a.examples.get(o, []) == b.examples.get(o, []), o


@pytest.mark.parametrize("case", [("lock_noref", {}, "contended_file"), ("pte_wait", {"recheck": False}, "contended_anon"),
                                  ("ref", {}, "censored"), ("flag_spin", {"flag_from": "unmap_end"}, "dists_file"),
                                  ("drop", {}, "timeout")])
def test_device_aggregate_equals_records_aggregate(gpu, ref_engines, case):
    """The device reduction gives exactly Aggregate.from_records of the same trials, whatever the
    chunk size (so whatever the order in which blocks ran)."""
    import test_parity as tp

    from mcexplore.results import Aggregate

    _, native = ref_engines
    strategy, opts, scen = case
    c = tp.make(strategy, opts, **tp.SCENARIOS[scen])
    n = 20000
    rec = gpu.run_records(c, 77, 1000, 1000 + n)
    if native is not None:
        assert rec.equals(native.run_records(c, 77, 1000, 1000 + n))
    ref = Aggregate.from_records(rec)
    for chunk in (None, 256, 3000, 7777):
        _agg_equal(ref, CupyEngine(chunk=chunk).run_aggregate(c, 77, 1000, 1000 + n))


def test_chunk_sizes_do_not_change_records(gpu):
    import test_parity as tp

    c = tp.make("lock_noref", {}, **tp.SCENARIOS["contended_file"])
    whole = gpu.run_records(c, 5, 0, 5000)
    for chunk in (333, 4096):
        assert CupyEngine(chunk=chunk).run_records(c, 5, 0, 5000).equals(whole)
    assert CupyEngine(chunk=1).run_records(c, 5, 100, 140).matrix().tolist() == \
        whole.matrix()[100:140].tolist()


@pytest.mark.slow
def test_hundred_million_trials(gpu):
    """10**8 trials of a cheap scenario (drop, one task, constant timings) complete, reduced on
    the device, and agree with a native run on a slice."""
    import test_parity as tp

    c = tp.make("drop", {}, M=1, A=1, access_us=5.0)
    n = 10**8
    agg = gpu.run_aggregate(c, 1, 0, n)
    assert agg.trials == n
    assert agg.counts["migrated"] + agg.counts["livelock"] + agg.counts["censored"] == n
    assert int(agg.hists["attempts"].sum()) == n
