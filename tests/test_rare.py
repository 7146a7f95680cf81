"""Importance sampling (mcexplore.tilt, mcexplore.rare) against closed forms far in the tail,
against crude Monte Carlo at moderate probabilities, and against the trial's replay.

Closed forms. Every duration a constant except the one that makes the event rare; transient
references off unless they are the event; one migrate_pages pass of one attempt (budget.passes = max_attempts = 1: the draws
after the outcome is decided would only add variance to the weights), so
``call_failed`` is "the first attempt's refcount check fails":

* ``drop``, 3 mapping tasks that touch the page within about a ns of their PTE's unmap (access
  mean 1 ns), fault_entry 100 ns, ptl_hold 100 ns, pre_freeze 1 us: each task faults once before
  the check and holds its reference for ptl_hold + drop_hold; a drop_hold of 100 ns ends long
  before the check, the tail (1 ms, probability eps) covers it. P = 1 - (1 - eps)^3, eps the
  compiled leaf's exact probability.
* ``ref``, one task whose access comes after Exp(mean m) (floored to ns): it holds a reference
  from its fault at U + E + 100 ns until after the unlock, so the check at U + 1 us fails iff
  E <= 899: P = 1 - exp(-900 / m).
* ``ptl_pin`` with no task touching the page and transient references of rate rho held 1 us:
  the check fails iff one was taken in the us before it, P = 1 - exp(-rho * 1 us).

Each estimate's 99.9% interval must contain the closed form (fixed seeds; the bound is the
interval's own, nothing tuned).
"""

import math

import numpy as np
import pytest

from mcexplore import rare, tilt
from mcexplore.engines.base import availability
from mcexplore.params import DIST_INDEX
from mcexplore.scenario import load_scenario

BACKEND = "native" if availability("native")[0] else "numpy"
LEVEL = 0.999


def _base(strategy: str, **changes):
    base = {
        "strategies": [strategy], "page.mapcount": 1, "page.active": 1, "transient.rate": "0/s",
        "budget.passes": 1, "budget.max_attempts": 1, "budget.timeout": "1s",
        "timing.unmap_pte": "1us", "timing.remap_pte": "1us", "timing.fault_entry": "100ns",
        "timing.ptl_hold": "100ns", "timing.drop_hold": "100ns", "timing.noref_gap": "100ns",
        "timing.lock_hold": "100ns", "timing.pre_freeze": "1us", "timing.wake_latency": "1us",
        "timing.freeze_hold": "200ns", "timing.copy": "500ns", "timing.free_delay": "1us",
        "timing.retry_gap": "1us", "timing.outer_gap": "10us",
    }
    base.update(changes)
    return load_scenario("thread-2018").set_many(base)


def drop_tail(eps: float):
    return _base("drop", **{
        "page.mapcount": 3, "page.active": 3, "page.access_rate": "1000/us",
        "timing.drop_hold": {"dist": "mixture", "components": [
            {"dist": "const", "value": "100ns", "weight": 1 - eps},
            {"dist": "const", "value": "1ms", "weight": eps}]}})


def drop_exact(sc) -> float:
    eps = float(sc.compile("drop").dists[DIST_INDEX["drop_hold"]].weight[1])
    return -math.expm1(3 * math.log1p(-eps))


def ref_access(mean_ns: float):
    return _base("ref", **{"page.access_rate": f"{1e3 / mean_ns!r}/us"})


def ptl_transient(rho_per_s: float):
    return _base("ptl_pin", **{"page.access_rate": "0/s", "transient.rate": f"{rho_per_s!r}/s",
                               "transient.hold": "1us"})


def _inside(e, exact):
    assert e.warning is None, e.warning
    assert e.lo <= exact <= e.hi, (exact, e)


@pytest.mark.parametrize("eps", [1e-9, 1e-12])
def test_drop_tail_closed_form_with_cross_entropy(eps):
    sc = drop_tail(eps)
    exact = drop_exact(sc)
    r = rare.estimate(sc, trials=6000, seed=11, outcome="call_failed", backend=BACKEND, level=LEVEL,
                      pilot_trials=1000)
    e = r.estimate("drop")
    _inside(e, exact)
    # The tilt it chose raised the tail's weight by orders of magnitude.
    assert r.tilt["timing.drop_hold.components.1.weight"] > 1e3 * eps
    # Crude Monte Carlo would need about this many trials for the same relative precision.
    assert e.rel_half_width < 0.5


@pytest.mark.parametrize("eps", [1e-9, 1e-12])
def test_drop_tail_closed_form_with_a_hand_tilt(eps):
    sc = drop_tail(eps)
    r = rare.estimate(sc, trials=6000, seed=12, tilt=["timing.drop_hold.components.1.weight=0.1"],
                      backend=BACKEND, level=LEVEL)
    _inside(r.estimate("drop", "call_failed"), drop_exact(sc))


def test_access_exponential_closed_form():
    m = 900.0 / 1e-9  # P = 1 - exp(-900 / m), about 1e-9
    sc = ref_access(m)
    exact = -math.expm1(-900.0 / m)
    r = rare.estimate(sc, trials=6000, seed=13, tilt={"page.access_rate": "0.4/us"}, backend=BACKEND,
                      level=LEVEL)
    _inside(r.estimate("ref", "call_failed"), exact)


@pytest.mark.parametrize("p_target", [1e-10, 1e-12])
def test_transient_floor_closed_form(p_target):
    rho = p_target / 1e-6  # per second: rho * 1 us = p_target
    sc = ptl_transient(rho)
    exact = -math.expm1(-float(sc.compile("ptl_pin").transient_rate_per_ns) * 1000.0)
    r = rare.estimate(sc, trials=6000, seed=14, tilt={"transient.rate": "200000/s"}, backend=BACKEND,
                      level=LEVEL)
    _inside(r.estimate("ptl_pin", "call_failed"), exact)
    # And the cross-entropy search finds a tilt by itself (it explores the transient rate).
    r2 = rare.estimate(sc, trials=6000, seed=15, outcome="call_failed", backend=BACKEND, level=LEVEL,
                       pilot_trials=1000)
    _inside(r2.estimate("ptl_pin"), exact)


# --- moderate probabilities: importance sampling agrees with crude Monte Carlo -------------------

def _moderate():
    page = load_scenario("thread-2018").set_many({
        "page.mapcount": 8, "page.active": 8, "budget.timeout": "100ms", "budget.max_attempts": 1000})
    # (scenario, strategy, outcome, tilt or None: chosen by the cross-entropy method)
    return [
        (page.with_strategies(["drop"]), "drop", "call_failed",
         {"timing.drop_hold.components.1.weight": 0.01}),
        (page.with_strategies(["drop"]), "drop", "call_failed",
         {"timing.drop_hold.components.1.weight": 0.005, "timing.drop_hold.components.1.mean": "2ms"}),
        (page.set_many({"strategies": ["flag_spin"], "page.mapcount": 2, "page.active": 2}), "flag_spin",
         "call_failed", None),
        (page.set_many({"strategies": ["ptl_pin"], "transient.rate": "20000/s", "budget.passes": 1}),
         "ptl_pin", "call_failed", {"transient.rate": "100000/s"}),
        (page.set_many({"strategies": [{"name": "pte_wait", "recheck": False}]}), "pte_wait", "hang",
         {"timing.noref_gap.components.1.weight": 0.01}),
        # Two ways to the failure (ptl_hold's tail and drop_hold's, about half each): a search
        # that tilted one of them away would miss half the probability with a narrow interval.
        (page.set_many({"strategies": ["drop"], "page.mapcount": 2, "page.active": 2, "budget.timeout": "10ms",
                        "budget.max_attempts": 20, "page.access_rate": "0.5/us"}), "drop", "call_failed", None),
    ]


@pytest.mark.parametrize("case", range(6))
def test_importance_sampling_agrees_with_crude_monte_carlo(case):
    from mcexplore import api
    from mcexplore.stats import proportion_ci

    sc, label, outcome, changes = _moderate()[case]
    crude = api.run(sc, trials=20000 if case < 5 else 200000, seed=21, backend=BACKEND)[label].aggregate
    k = crude.counts[outcome]
    assert 5 <= k <= 2000, k  # a moderate probability, 2.5e-4 to 1e-1
    ci = proportion_ci(k, crude.trials, LEVEL)
    r = rare.estimate(sc, trials=4000, seed=22, tilt=changes, outcome=None if changes else outcome,
                      backend=BACKEND, level=LEVEL, pilot_trials=2000)
    e = r.estimate(label, outcome)
    assert e.hits > 0
    assert e.lo <= ci.hi and ci.lo <= e.hi, (ci, e)


# --- weights, replay and exactness -----------------------------------------------------------

def test_weights_equal_the_replays_to_the_last_bit():
    from mcexplore.api import run_compiled
    from mcexplore.replay import replay_compiled

    sc = load_scenario("thread-2018").set_many({
        "page.mapcount": 4, "page.active": 4, "budget.timeout": "20ms", "budget.max_attempts": 50})
    c = tilt.tilted_compiled(sc, "drop", {"timing.drop_hold.components.1.weight": 0.2,
                                          "page.access_rate": "2/us", "transient.rate": "5000/s"})
    _, sr = run_compiled(c, trials=300, seed=31, backend=BACKEND, records=True)
    w = tilt.weights(c.tilt, sr.records.stats)
    hits = np.nonzero(sr.records["call_failed"])[0][:4]
    assert len(hits) >= 2
    for j in list(hits) + [0]:
        rp = replay_compiled(c, int(j), seed=31)
        assert list(rp.stats.values()) == sr.records.stats[j].tolist()
        assert rp.weight == w[j]  # the same float64, not merely close
        assert "likelihood ratio" in rp.format()


def test_estimates_do_not_depend_on_batching():
    from mcexplore.api import run_compiled

    sc = drop_tail(1e-6)
    c = tilt.tilted_compiled(sc, "drop", {"timing.drop_hold.components.1.weight": 0.1})
    _, whole = run_compiled(c, trials=900, seed=3, backend=BACKEND, records=True)
    agg = rare.ISAggregate.from_records(whole.records, c.tilt)
    parts = rare.ISAggregate()
    for t0, t1 in ((600, 900), (0, 7), (7, 600)):
        _, sr = run_compiled(c, trials=t1 - t0, t0=t0, seed=3, backend=BACKEND, records=True)
        parts = parts.merge(rare.ISAggregate.from_records(sr.records, c.tilt))
    a, b = agg.estimate("call_failed"), parts.estimate("call_failed")
    assert (a.estimate, a.lo, a.hi, a.ess) == (b.estimate, b.lo, b.hi, b.ess)


def test_exact_sum_is_exact():
    v = np.array([1e300, 1.0, -1e300, 1e-300, 3.0, 2.0 ** -1074])
    assert rare.as_float(rare.exact_sum(v)) == 4.0
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10000) * 10.0 ** rng.integers(-20, 20, 10000)
    s = rare.exact_sum(x)
    assert s == sum(rare.exact_sum(x[i:i + 333]) for i in range(0, len(x), 333))
    assert rare.as_float(s) == math.fsum(x.tolist())


def test_mean_weight_is_one_under_a_valid_tilt():
    sc = _moderate()[1][0]
    r = rare.estimate(sc, trials=3000, seed=41, tilt={"page.access_rate": "1.2/us"}, backend=BACKEND,
                      level=LEVEL)
    wbar, lo, hi = r.runs["drop"].agg.weight_check(LEVEL)
    assert lo <= 1.0 <= hi, (wbar, lo, hi)


def test_warnings_for_a_tilt_that_finds_nothing_or_degenerates():
    sc = drop_tail(1e-12)
    r = rare.estimate(sc, trials=500, seed=5, tilt={"timing.drop_hold.components.1.weight": 1e-6},
                      backend=BACKEND)
    e = r.estimate("drop", "call_failed")
    assert e.hits == 0 and e.warning and "no trial" in e.warning
    # Almost every drop_hold draw in the tail: the few trials whose draws stay short carry
    # huge weights (weight degeneracy), and the effective sample size says so.
    r = rare.estimate(sc, trials=500, seed=5, tilt={"timing.drop_hold.components.1.weight": 0.999},
                      backend=BACKEND)
    e = r.estimate("drop", "call_failed")
    assert e.warning is not None


def test_paired_difference_under_one_tilt():
    # ptl_pin and pte_wait hold no page reference: both fail exactly when a transient reference
    # is held at the first check, which comes at the same time in both (the migrator's draws are
    # the same). Paired on the same tilted trials, their difference is known to be 0 exactly,
    # while each estimate alone has its sampling error.
    sc = load_scenario("thread-2018").set_many({
        "strategies": ["ptl_pin", "pte_wait", "drop"], "page.mapcount": 8, "page.active": 8,
        "budget.passes": 1, "budget.timeout": "100ms", "budget.max_attempts": 1000, "transient.rate": "200/s"})
    r = rare.estimate(sc, trials=3000, seed=51, backend=BACKEND, level=LEVEL, baseline="ptl_pin",
                      tilt={"transient.rate": "20000/s"})
    ea, eb = r.estimate("pte_wait", "call_failed"), r.estimate("ptl_pin", "call_failed")
    assert ea.hits == eb.hits > 20 and ea.hi - ea.lo > 0
    assert r.difference("pte_wait", "call_failed") == (0.0, 0.0, 0.0, 0.0)
    d, lo, hi, se = r.difference("drop", "call_failed")
    ed = r.estimate("drop", "call_failed")
    assert d == pytest.approx(ed.estimate - eb.estimate, rel=1e-9)
    assert lo < d < hi and lo > 0  # drop also fails through the references it holds


def test_bad_tilts_are_refused_with_the_path_and_what_is_valid():
    sc = drop_tail(1e-9)
    with pytest.raises(tilt.TiltError, match="not a tiltable parameter.*valid: timing.drop_hold"):
        tilt.resolve(sc, ["timing.copy.mean=1us"])
    with pytest.raises(tilt.TiltError, match=r"must be in \(0, 1\)"):
        tilt.resolve(sc, {"timing.drop_hold.components.1.weight": 1.5})
    with pytest.raises(tilt.TiltError, match="PATH=VALUE"):
        tilt.resolve(sc, ["timing.drop_hold"])
    block = load_scenario("thread-2018-block")
    with pytest.raises(tilt.TiltError, match="page level"):
        tilt.resolve(block, {})
    with pytest.raises(tilt.TiltError, match="not an outcome"):
        rare.choose_tilt(sc, ["drop"], "nonsense")


def test_a_tilted_mixture_keeps_its_other_weights_in_proportion():
    sc = load_scenario("thread-2018").set("timing.drop_hold", {"dist": "mixture", "components": [
        {"dist": "const", "value": "1us", "weight": 0.6}, {"dist": "const", "value": "2us", "weight": 0.3},
        {"dist": "const", "value": "3us", "weight": 0.1}]})
    q = tilt.tilted_scenario(sc, {"timing.drop_hold.components.2.weight": 0.5})
    w = [c.weight for c in q.timing.drop_hold.components]
    assert w == pytest.approx([0.6 * 0.5 / 0.9, 0.3 * 0.5 / 0.9, 0.5])


def test_every_counted_draw_has_its_own_key():
    """The likelihood ratio multiplies one factor per random draw of the trial: a draw counted
    twice (the same key sampled in two places) would square its factor. The numpy engine logs the
    key of every counted draw; no key may repeat within a trial."""
    from mcexplore.engines import numpy_page

    sc = load_scenario("thread-2018").set_many({
        "page.mapcount": 4, "page.active": 4, "budget.timeout": "20ms", "budget.max_attempts": 40})
    changes = {"timing.drop_hold.components.1.weight": 0.2, "timing.ptl_hold.components.1.weight": 0.2,
               "timing.noref_gap.components.1.weight": 0.2, "timing.lock_hold.components.1.weight": 0.2,
               "timing.wake_latency.components.1.weight": 0.2, "page.access_rate": "2/us"}
    seen_any = 0
    for label in sc.labels():
        c = tilt.tilted_compiled(sc, label, changes)
        log = []
        orig = numpy_page.PageSim.__init__

        def init(self, *a, **k):
            orig(self, *a, **k)
            self.draw_log = log

        numpy_page.PageSim.__init__ = init
        try:
            numpy_page.simulate_page(c, 3, np.arange(40, dtype=np.int64))
        finally:
            numpy_page.PageSim.__init__ = orig
        assert len(log) == len(set(log)), label
        seen_any += len(log)
    assert seen_any > 1000
