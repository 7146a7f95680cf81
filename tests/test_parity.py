"""The native engine (kernels/ compiled by g++) against the numpy reference, bit for bit.

Every per-trial field of every trial must be equal, over a matrix of every strategy and option
(pte_wait recheck on/off, flag_spin from lock/unmap_end), anon and file pages, every distribution
kind (const, uniform and lognormal-like tables, exp, mixtures with heavy tails; bpftrace
histograms with a preemption bucket, empirical CDFs, lognormal tails, mixtures of six components
and nested ones), transient references off, short or holding over several refcount checks, ties
broken by the wake-up order (constant waiter costs), and budgets hit (max_attempts: censored; a
timeout between attempts or inside one: livelock) or not. The matrix is
checked to reach every outcome (uaf, hang, censored, livelock, call_failed, spinning), so a port
that never takes a branch cannot pass by accident. Block level likewise (hot and cold classes,
file pages without PTEs, small batches, abandoned pages, the timeout), plus the shipped
thread-2018 configs shrunk to test size. The same matrix runs on the GPU in test_gpu.py.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mcexplore import strategies
from mcexplore.params import (DIST_NAMES, Compiled, PageClass, compile_mixture, const, const_component,
                              exp_component, exponential, table_component, uniform)

from helpers import US, base_timing, transient_rate
TRIALS = 96

# (strategy, options) for every strategy of the registry and every combination of its options.
# Options as (name, value) pairs, so that a case is hashable (the reference records are cached).
STRATEGY_CASES = [(s.name, tuple(opts.items())) for s in strategies.registry().rows for opts in s.option_cases()]


def _tail(mean_ns, tail_mean_ns, p_tail=0.01):
    return compile_mixture([const_component(mean_ns), exp_component(tail_mean_ns)], [1 - p_tail, p_tail])


def _lognormal_like(median_ns):
    # A quantile table with a long right tail (exp of a logistic quantile: no scipy needed).
    return compile_mixture([table_component(
        lambda p: median_ns * np.exp(0.8 * np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1))))])


def timing(variant: str) -> dict:
    base = base_timing()
    if variant == "dists":
        # Every kind: uniform and lognormal-like tables, exp, mixtures with heavy tails.
        base.update({
            "unmap_pte": uniform(0.5 * US, 1.5 * US), "remap_pte": exponential(1 * US),
            "pre_freeze": _lognormal_like(0.3 * US), "copy": uniform(0.3 * US, 0.7 * US),
            "fault_entry": compile_mixture([table_component(lambda p: 600 + 9400 * p ** 4)]),
            "ptl_hold": _tail(0.2 * US, 1000 * US, 0.01), "drop_hold": _tail(0.2 * US, 1000 * US, 0.02),
            "noref_gap": _tail(0.2 * US, 200 * US, 0.05), "lock_hold": _tail(0.3 * US, 50 * US, 0.05),
            "wake_latency": compile_mixture([exp_component(20 * US), const_component(4000 * US)],
                                            [0.99, 0.01]),
            "free_delay": uniform(0.5 * US, 2 * US), "retry_gap": exponential(1 * US),
            "outer_gap": _lognormal_like(300 * US),
        })
    elif variant == "tails":
        # Rare tails as users paste them: a bpftrace histogram with one preemption bucket, an
        # empirical CDF, a lognormal of sigma 2, a mixture of six components with a 1e-6 weight,
        # and nested mixtures (docs/model.md, "Randomness").
        from mcexplore.scenario import parse_distribution

        def d(v):
            return parse_distribution(v).compile()

        hist = {"dist": "histogram", "unit": "ns",
                "buckets": [[100, 300, 100000], [300, "1K", 0], ["1M", "2M", 1]]}
        six = {"dist": "mixture", "components": [
            {"weight": 0.5, "dist": "uniform", "low": "0.1us", "high": "0.3us"},
            {"weight": 0.3, "dist": "exp", "mean": "0.5us"},
            {"weight": 0.15, "value": "1us", "dist": "const"},
            {"weight": 0.049, "dist": "lognormal", "median": "2us", "sigma": 1.0},
            {"weight": 0.000999, "dist": "exp", "mean": "1ms"},
            {"weight": 0.000001, "dist": "uniform", "low": "5ms", "high": "10ms"}]}
        nested = {"dist": "mixture", "components": [
            {"weight": 0.99, "dist": "mixture", "components": [
                {"weight": 0.5, "dist": "exp", "mean": "0.2us"},
                {"weight": 0.5, "dist": "mixture", "components": [
                    {"weight": 0.9, "value": "0.3us", "dist": "const"},
                    {"weight": 0.1, **hist}]}]},
            {"weight": 0.01, "dist": "lognormal", "median": "50us", "sigma": 2.0}]}
        base.update({
            "ptl_hold": d(hist), "drop_hold": d(six), "noref_gap": d(nested), "lock_hold": d(six),
            "fault_entry": d({"dist": "empirical", "points": [
                [0.0, "0.6us"], [0.5, "1us"], [0.9, "2us"], [0.99, "5us"], [0.999999, "10us"],
                [1.0, "1ms"]]}),
            "wake_latency": d({"dist": "lognormal", "median": "10us", "sigma": 2.0}),
            "transient_hold": d({"dist": "mixture", "components": [
                {"weight": 0.999, "value": "1us", "dist": "const"},
                {"weight": 0.001, "dist": "uniform", "low": "10us", "high": "30us"}]}),
        })
    elif variant == "ties":
        # Constant waiter costs: sleepers woken by one unlock run at the same instant, so the
        # page lock goes by the tie rule (first asleep, first served) in lock_noref.
        base.update({
            "noref_gap": const(3 * US), "lock_hold": const(7 * US), "ptl_hold": const(0.5 * US),
            "wake_latency": const(2 * US), "free_delay": const(0.5 * US), "outer_gap": const(40 * US),
        })
    elif variant == "contended":
        # Long waiter windows against a quick free: lost wake-ups (pte_wait without recheck),
        # stray page locks after the free (lock_noref), trylock failures and a sleeping migrator.
        base.update({
            "noref_gap": exponential(8 * US), "lock_hold": exponential(20 * US),
            "ptl_hold": exponential(1 * US), "drop_hold": exponential(2 * US),
            "wake_latency": exponential(5 * US), "free_delay": const(0.5 * US),
            "outer_gap": exponential(50 * US),
        })
    return base


def make(strategy, opts, *, variant="base", file=True, M=4, A=3, access_us=1.0, transient=0,
         hold=None, max_attempts=200, timeout_ns=10**9, passes=10,
         trylock_passes=3) -> Compiled:
    opts = dict(opts)
    t = timing(variant)
    t["access"] = exponential(access_us * US) if access_us else const(0)
    if hold is not None:
        t["transient_hold"] = hold
    return Compiled(
        strategy=strategies.get(strategy).code, dists=[t[n] for n in DIST_NAMES],
        page=PageClass(1, file, M, A, access_us * US if access_us else 0.0),
        recheck=opts.get("recheck", True), flag_from_unmap_end=opts.get("flag_from", "lock") == "unmap_end",
        passes=passes, trylock_passes=trylock_passes, timeout_ns=timeout_ns,
        max_attempts=max_attempts,
        transient_rate_per_ns=transient_rate(transient, t["transient_hold"].mean_ns))


# name -> keyword arguments of make() besides the strategy.
SCENARIOS = {
    "base_file": dict(),
    "base_anon": dict(file=False),
    "dists_file": dict(variant="dists", M=5, A=4),
    "dists_anon_transient": dict(variant="dists", file=False, transient=0.25),
    "transient_high": dict(transient=0.75, max_attempts=30),
    "censored": dict(M=8, A=8, access_us=0.3, max_attempts=6),
    "timeout": dict(M=8, A=8, access_us=0.3, timeout_ns=300_000, max_attempts=10**6),
    "contended_file": dict(variant="contended", M=6, A=5, access_us=0.5, max_attempts=60,
                           trylock_passes=1, passes=4),
    "contended_anon": dict(variant="contended", M=3, A=3, access_us=2.0, file=False,
                           max_attempts=60, passes=3),
    "cold": dict(M=3, A=0, access_us=0.0),
    # A timeout that falls inside attempts: some successes end after it (livelocks, not moves).
    "timeout_mid": dict(M=6, A=4, access_us=2.0, transient=0.5, timeout_ns=61_000,
                        max_attempts=10**6),
    # Holds several times the spacing of refcount checks: one hold fails consecutive checks.
    "long_holds": dict(M=2, A=2, access_us=3.0, transient=0.3, hold=exponential(20 * US),
                       max_attempts=40),
    "long_holds_cold": dict(M=3, A=0, access_us=0.0, transient=0.4,
                            hold=uniform(5 * US, 40 * US), max_attempts=40),
    "tails_file": dict(variant="tails", M=5, A=4, access_us=0.7, transient=0.2, max_attempts=40),
    "tails_anon": dict(variant="tails", file=False, M=3, A=3, access_us=1.5, transient=0.05,
                       max_attempts=40, timeout_ns=400_000),
    "ties": dict(variant="ties", M=5, A=5, access_us=1.0, max_attempts=40, passes=4,
                 trylock_passes=1),
    "few_active": dict(M=9, A=1, access_us=0.5, transient=0.125),
}

CASES = [(s, o, sc) for s, o in STRATEGY_CASES for sc in SCENARIOS]


def _case_id(case):
    s, o, sc = case
    opt = ",".join(f"{k}={v}" for k, v in dict(o).items())
    return f"{s}[{opt}]-{sc}" if opt else f"{s}-{sc}"


@pytest.fixture(scope="module")
def engines():
    from mcexplore.engines.native import NativeEngine
    from mcexplore.engines.numpy_engine import NumpyEngine

    ok, why = NativeEngine.availability()
    if not ok:
        pytest.skip(why)
    return NumpyEngine(), NativeEngine()


@functools.cache
def reference(case) -> "Records":
    """The numpy engine's records of one page-level case (computed once per session)."""
    from mcexplore.engines.numpy_engine import NumpyEngine

    strategy, opts, scen = case
    j = CASES.index(case)
    seed = 0x5EED0000 + j * 7919 + (1 << 40)
    return NumpyEngine().run_records(make(strategy, opts, **SCENARIOS[scen]), seed, 1000 * j, 1000 * j + TRIALS)


def assert_same(ref, got, label=""):
    from mcexplore.results import FIELD_NAMES

    assert len(ref) == len(got) and ref.trial0 == got.trial0
    for f in FIELD_NAMES:
        if not np.array_equal(ref[f], got[f]):
            j = int(np.nonzero(ref[f] != got[f])[0][0])
            raise AssertionError(
                f"{label}: field {f!r} differs first at trial {ref.trial0 + j}: "
                f"reference {ref[f][j]}, got {got[f][j]} (reference row "
                f"{dict(zip(FIELD_NAMES, ref.matrix()[j].tolist()))}, got "
                f"{dict(zip(FIELD_NAMES, got.matrix()[j].tolist()))})")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_native_matches_numpy(engines, case):
    _, native_engine = engines
    strategy, opts, scen = case
    j = CASES.index(case)
    c = make(strategy, opts, **SCENARIOS[scen])
    ref = reference(case)
    got = native_engine.run_records(c, 0x5EED0000 + j * 7919 + (1 << 40), 1000 * j, 1000 * j + TRIALS)
    assert_same(ref, got, _case_id(case))


@pytest.fixture(scope="module")
def lanes_engine(engines):
    """The native engine with the lane scheduler (tile steps, queue by event; kernels/lanes.h)."""
    from mcexplore.engines.native import NativeEngine

    return NativeEngine(sched="lanes")


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_lane_scheduler_matches_numpy(engines, lanes_engine, case):
    """The default scheduler (the walk) is test_native_matches_numpy; the lanes here."""
    _, native_engine = engines
    assert native_engine.sched == "walk"
    strategy, opts, scen = case
    j = CASES.index(case)
    c = make(strategy, opts, **SCENARIOS[scen])
    got = lanes_engine.run_records(c, 0x5EED0000 + j * 7919 + (1 << 40), 1000 * j, 1000 * j + TRIALS)
    assert_same(reference(case), got, "lanes " + _case_id(case))


def test_matrix_reaches_every_outcome():
    """Every outcome is produced somewhere in the matrix (so a port that never takes a branch
    cannot pass by accident); the reference records are the ones the matrix compares."""
    seen = {o: 0 for o in ("uaf", "hang", "censored", "livelock", "call_failed", "migrated", "spin", "faults")}
    for case in CASES:
        ref = reference(case)
        for o in seen:
            seen[o] += int((ref[o] > 0).sum())
    assert all(seen.values()), f"some outcome is reached by no trial of the parity matrix: {seen}"


# Block level: a few classes (cold file pages without PTEs, cold anon, hot file and anon pages),
# small batches so that calls, passes, abandoned pages and the timeout all come up.
BLOCK_SCENARIOS = {
    "block_base": dict(classes=[(6, True, 0, 0, 0.0), (1, True, 4, 3, 1000.0), (5, False, 1, 0, 0.0),
                                (2, False, 3, 2, 3000.0)], batch=4, kw=dict()),
    "block_contended": dict(classes=[(3, True, 1, 0, 0.0), (2, True, 5, 4, 500.0), (2, False, 2, 2, 800.0)],
                            batch=3, kw=dict(variant="contended", max_attempts=6, passes=3)),
    "block_timeout": dict(classes=[(4, True, 2, 0, 0.0), (1, True, 8, 8, 300.0), (4, False, 1, 0, 0.0)],
                          batch=2, kw=dict(timeout_ns=150_000, max_attempts=10**6, transient=0.25)),
    "block_dists": dict(classes=[(5, False, 1, 0, 0.0), (2, True, 3, 3, 1000.0)], batch=8,
                        kw=dict(variant="dists", max_attempts=15, transient=0.125)),
    "block_tails": dict(classes=[(4, True, 2, 0, 0.0), (2, True, 3, 3, 800.0), (3, False, 1, 0, 0.0)],
                        batch=4, kw=dict(variant="tails", max_attempts=12, transient=0.3,
                                         timeout_ns=2_000_000)),
}
BLOCK_CASES = [(s, o, sc) for s, o in STRATEGY_CASES for sc in BLOCK_SCENARIOS]


def make_block(strategy, opts, scen) -> Compiled:
    spec = BLOCK_SCENARIOS[scen]
    c = make(strategy, opts, **spec["kw"])
    c.block = [PageClass(n, f, m, a, acc) for n, f, m, a, acc in spec["classes"]]
    c.batch_pages = spec["batch"]
    return c


@functools.cache
def block_reference(case) -> "Records":
    from mcexplore.engines.numpy_engine import NumpyEngine

    strategy, opts, scen = case
    seed = 0xB10C + BLOCK_CASES.index(case) * 104729
    return NumpyEngine().run_records(make_block(strategy, opts, scen), seed, 0, 48)


@pytest.mark.parametrize("case", BLOCK_CASES, ids=[_case_id(c) for c in BLOCK_CASES])
def test_native_matches_numpy_block(engines, case):
    _, native_engine = engines
    strategy, opts, scen = case
    c = make_block(strategy, opts, scen)
    seed = 0xB10C + BLOCK_CASES.index(case) * 104729
    assert_same(block_reference(case), native_engine.run_records(c, seed, 0, 48), _case_id(case))


def test_block_matrix_reaches_every_outcome():
    seen = {o: 0 for o in ("uaf", "hang", "censored", "livelock", "call_failed", "migrated")}
    for case in BLOCK_CASES:
        ref = block_reference(case)
        for o in seen:
            seen[o] += int((ref[o] > 0).sum())
    assert all(seen.values()), f"some outcome is reached by no block trial of the matrix: {seen}"


def _assert_every_label_matches(engines, scenario, seed, trials, name):
    numpy_engine, native_engine = engines
    for label in scenario.labels():
        c = scenario.compile(label)
        assert_same(numpy_engine.run_records(c, seed, 0, trials),
                    native_engine.run_records(c, seed, 0, trials), f"{name} {label}")


def test_shipped_block_scenario_shrunk(engines):
    scenario = pytest.importorskip("mcexplore.scenario")
    s = scenario.load_scenario("thread-2018-block", overrides=[
        "block.pages=40",
        'block.classes=[{count=20,kind="file",mapcount=0},'
        '{count=1,kind="file",mapcount=5,active="all",access_rate="1/us"},'
        '{count=19,kind="anon",mapcount=1}]',
        "block.batch_pages=16", "budget.max_attempts=12", 'budget.timeout="5ms"'])
    _assert_every_label_matches(engines, s, 11, 32, "thread-2018-block")


def test_batch_split_and_thread_count_do_not_matter(engines):
    from mcexplore.engines.native import NativeEngine
    from mcexplore.results import Records

    _, native_engine = engines
    c = make("lock_noref", {}, **SCENARIOS["contended_file"])
    whole = native_engine.run_records(c, 42, 0, 300)
    parts = Records.concat([native_engine.run_records(c, 42, a, min(300, a + 77))
                            for a in range(0, 300, 77)])
    assert whole.equals(parts)
    one = NativeEngine(nthreads=1).run_records(c, 42, 0, 300)
    assert whole.equals(one)


def test_shipped_scenario_every_label(engines):
    """The shipped thread-2018 config, shrunk (6 PTEs, small budget), every strategy label."""
    scenario = pytest.importorskip("mcexplore.scenario")
    s = scenario.load_scenario("thread-2018", overrides=["page.mapcount=6", "budget.max_attempts=40"])
    _assert_every_label_matches(engines, s, 2018, 64, "thread-2018")


def test_native_seed_changes_results(engines):
    _, native_engine = engines
    c = make("ref", {}, **SCENARIOS["base_file"])
    a = native_engine.run_records(c, 1, 0, 200)
    b = native_engine.run_records(c, 2, 0, 200)
    assert not a.equals(b)


# -- the native engine's batched draws and lock_noref's pick tree ---------------------------------
# (kernels/drawcache.h). Neither may change a result: every lane implementation this CPU has, and
# rows off, against the numpy reference, on pages with many tasks (rows wider than one vector
# block, pick trees several levels deep, lanes padded past the last task). A library built with a
# short warm-up and skip makes each purpose switch between rows and scalar draws many times.
WIDE_SCENARIOS = {
    "wide": dict(M=40, A=37, access_us=0.5, max_attempts=40),
    "wide_contended": dict(variant="contended", M=24, A=21, access_us=0.7, max_attempts=30,
                           trylock_passes=1, passes=4),
    "wide_dists": dict(variant="dists", M=33, A=33, file=False, transient=0.125, max_attempts=25),
}
WIDE_CASES = [(s, o, sc) for s, o in STRATEGY_CASES for sc in WIDE_SCENARIOS]


@functools.cache
def wide_reference(case) -> "Records":
    from mcexplore.engines.numpy_engine import NumpyEngine

    strategy, opts, scen = case
    seed = 0xD2A5 + WIDE_CASES.index(case) * 65537
    return NumpyEngine().run_records(make(strategy, opts, **WIDE_SCENARIOS[scen]), seed, 0, 40)


@pytest.fixture(scope="module")
def switching_lib():
    """The native library with rows decided every 64 lanes and skips of 50 draws."""
    from mcexplore.engines import kernel_source, native

    text = kernel_source.source_files()["drawcache.h"]
    return native.build(overrides={"drawcache.h": "#define MCX_DC_WARMUP 64\n#define MCX_DC_SKIP 50\n" + text})


@pytest.mark.parametrize("simd", ["off", "scalar", "sse2", "avx2", "avx512"])
def test_draw_batching_never_changes_records(engines, switching_lib, simd):
    from mcexplore.engines.native import NativeEngine
    from mcexplore.engines.pack import pack
    from mcexplore.results import Records

    if switching_lib.simd_resolve(simd) != simd:
        pytest.skip(f"this CPU cannot run {simd}")
    default = NativeEngine(simd=simd)
    for case in WIDE_CASES:
        strategy, opts, scen = case
        c = make(strategy, opts, **WIDE_SCENARIOS[scen])
        seed = 0xD2A5 + WIDE_CASES.index(case) * 65537
        name = _case_id(case)
        ref = wide_reference(case)
        assert_same(ref, default.run_records(c, seed, 0, 40), f"{simd} {name}")
        for sched in ("lanes", "walk"):
            mat = switching_lib.simulate(pack(c), seed, 0, 40, 1, simd, sched)
            assert_same(ref, Records.from_matrix(0, mat), f"{simd} {sched} switching {name}")
