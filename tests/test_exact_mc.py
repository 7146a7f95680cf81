"""Exact solutions are the ground truth for the Monte Carlo: every value the solver labels exact
must lie inside the numpy engine's 99.9% interval (Wilson, or the exact one-sided bound at a zero
count), at a fixed seed, over a spread of parameters where the probability is near 0, near 1 and in
between.

The exact solver (mcexplore.exact) is derived independently from the model's text, so agreement
checks both. Costs are constants and the wake latency exponential, which is where exact answers
exist; each case says what it probes. Only entries labelled "exact" are compared (the solver says
which); the cases are chosen so that the ones that matter are.

The transient cases probe the transient references as one Poisson process (MODEL.md 1.1): on a
page without active tasks only they can fail an attempt, and one hold can cover several
consecutive refcount checks. At hold/spacing 0.01 the checks are independent, at 1 exactly on the
boundary (a hold as long as the spacing never covers two checks), at 10 strongly correlated (the
independent approximation is far off there, and the test says so).
"""

import math

import numpy as np
import pytest

from mcexplore import api
from mcexplore.exact import EXACT, exact_for
from mcexplore.scenario import load_scenario
from mcexplore.stats import proportion_ci

LEVEL = 0.999
SEED = 20181119
EXACT_TIMING = [
    "timing.fault_entry=1us", "timing.ptl_hold=0.2us", "timing.drop_hold=0.2us",
    "timing.noref_gap=0.2us", "timing.lock_hold=0.2us",
    'timing.wake_latency={dist="exp", mean="30us"}', "transient.rate=0/s",
]

# (id, strategy, overrides): M mappers, A active, access rate, window and gaps vary.
CASES = [
    ("ref-mid", "ref", ["page.mapcount=3", "page.active=2", "page.access_rate=1/us"]),
    ("ref-rare-access", "ref", ["page.mapcount=3", "page.active=1", "page.access_rate=0.05/us"]),
    ("ref-busy", "ref", ["page.mapcount=4", "page.active=4", "page.access_rate=5/us"]),
    ("ref-anon-fast-wake", "ref", ["page.kind=anon", "page.mapcount=2", "page.active=2",
                                   "page.access_rate=2/us", 'timing.wake_latency={dist="exp", mean="0.8us"}']),
    ("ref-short-call", "ref", ["page.mapcount=3", "page.active=3", "page.access_rate=0.5/us",
                               "budget.passes=3", "timing.outer_gap=50us"]),
    ("drop-mid", "drop", ["page.mapcount=3", "page.active=2", "page.access_rate=1/us"]),
    ("drop-busy", "drop", ["page.mapcount=4", "page.active=4", "page.access_rate=5/us",
                           "timing.drop_hold=0.6us"]),
    ("flag-unmap-end", "flag_spin", ["page.mapcount=4", "page.active=3", "page.access_rate=2/us",
                                     "strategies=[{name='flag_spin', flag_from='unmap_end'}]"]),
    ("ptl_pin-transient", "ptl_pin", ["page.mapcount=4", "page.active=4", "page.access_rate=2/us",
                                      "transient.rate=300000/s", "transient.hold=1us"]),
    ("pte_wait", "pte_wait", ["page.mapcount=3", "page.active=3", "page.access_rate=2/us"]),
    ("lock_noref-first", "lock_noref", ["page.mapcount=3", "page.active=3", "page.access_rate=2/us",
                                        "transient.rate=200000/s", "transient.hold=1us"]),
]
TRIALS = 6000


def build_case(strategy, overrides):
    """The scenario of a case (60 attempts at most) and the label of its strategy."""
    sc = load_scenario("thread-2018", EXACT_TIMING + overrides)
    label = strategy if strategy in sc.labels() else sc.labels()[0]
    if "strategies=" not in " ".join(overrides):
        sc = sc.with_strategies([strategy])
    return sc.set("budget.max_attempts", 60), label


def _inside(p_exact, count, n, what):
    ci = proportion_ci(count, n, LEVEL)
    # Table sampling rounds each time to whole ns; that bias is far below these intervals.
    assert ci.lo <= p_exact <= ci.hi, f"{what}: exact {p_exact:.6g} outside [{ci.lo:.6g}, {ci.hi:.6g}] (MC {count}/{n})"


def _exact(ex, name):
    e = ex[name]
    return e["value"] if e["status"] == EXACT else None


def check_against_records(ex, rec, cid, ks=(2, 3)):
    """Every exact quantity of ``ex`` against the trials' records; returns how many were compared."""
    n = len(rec)
    mig = rec["migrated"] == 1
    done = 0
    v = _exact(ex, "first_attempt_success")
    if v is not None:
        _inside(v, int(((rec["attempts"] == 1) & mig).sum()), n, f"{cid} first-attempt success")
        done += 1
    v = _exact(ex, "call_failed")
    if v is not None:
        _inside(v, int(rec["call_failed"].sum()), n, f"{cid} call_failed")
        done += 1
    pmf = ex["attempts_pmf"]["value"]
    nk = ex["attempts_pmf"]["exact_k"]
    att = rec["attempts"][mig]
    for k in ks:
        if k <= nk:
            _inside(float(pmf[k - 1]), int((att == k).sum()), n, f"{cid} P(attempts = {k})")
            _inside(min(float(np.sum(pmf[:k])), 1.0), int((att <= k).sum()), n,
                    f"{cid} P(attempts <= {k})")
            done += 2
    v = _exact(ex, "attempts_tail")
    if v is not None:  # not migrated within the budget: livelock + censored
        _inside(max(v, 0.0), int((~mig).sum()), n, f"{cid} P(not migrated)")
        done += 1
    return done


@pytest.mark.parametrize("cid,strategy,overrides", CASES, ids=[c[0] for c in CASES])
def test_exact_values_lie_inside_the_monte_carlo_interval(cid, strategy, overrides):
    sc, label = build_case(strategy, overrides)
    ex = exact_for(sc.compile(label))
    assert ex["first_attempt_success"]["status"] == EXACT, ex["first_attempt_success"]["why"]
    run = api.run(sc, trials=TRIALS, seed=SEED, backend="numpy", records=True, progress=False)[label]
    assert check_against_records(ex, run.records, cid) >= 1


def test_the_cases_span_near_zero_near_one_and_between():
    values = []
    for cid, strategy, overrides in CASES:
        sc, label = build_case(strategy, overrides)
        values.append(exact_for(sc.compile(label))["first_attempt_success"]["value"])
    values = np.array(values)
    assert (values < 0.05).any() and (values > 0.95).any() and ((values > 0.2) & (values < 0.8)).any()


# ---------------------------------------------------------------------------- transient process

# A page without active tasks, one PTE: checks every unmap + pre_freeze + remap + gap = 3.3 us
# (outer_gap = retry_gap, so the spacing is the same across calls). Rates put about 0.5 references
# in a hold on average (P(a check fails) = 1 - e^-0.5 = 0.39).
SPACING_NS = 3300.0
NO_TASKS = ["page.mapcount=1", "page.active=0", "timing.outer_gap=1us", "strategies=ref",
            "timing.unmap_pte=1us", "timing.pre_freeze=0.3us", "timing.remap_pte=1us",
            "timing.retry_gap=1us", "timing.copy=0.5us", "timing.freeze_hold=0.2us"]
TRANSIENT_CASES = [
    # (id, hold, rate per second)
    ("ratio-0.01", "33ns", 15e6),
    ("ratio-1", "3.3us", 150e3),
    ("ratio-10", "33us", 15e3),
    ("ratio-1-exp", '{dist="exp", mean="3.3us"}', 150e3),
]
TRANSIENT_TRIALS = 12000


def transient_scenario(hold, rate):
    return load_scenario("thread-2018", NO_TASKS + [f"transient.hold={hold}",
                                                    f"transient.rate={rate:g}/s"])


@pytest.mark.parametrize("cid,hold,rate", TRANSIENT_CASES, ids=[c[0] for c in TRANSIENT_CASES])
def test_transient_process_without_active_tasks(cid, hold, rate):
    sc = transient_scenario(hold, rate)
    c = sc.compile("ref")
    assert c.page.active == 0
    ex = exact_for(c)
    for name in ("first_attempt_success", "call_failed", "attempts_tail"):
        assert ex[name]["status"] == EXACT, (name, ex[name]["why"])
    assert ex["attempts_pmf"]["exact_k"] == ex["attempts_pmf"]["n_start"]
    run = api.run(sc, trials=TRANSIENT_TRIALS, seed=SEED, backend="numpy", records=True,
                  progress=False)["ref"]
    assert check_against_records(ex, run.records, cid, ks=(2, 3, 5)) == 9


def test_transient_correlation_is_visible_at_hold_ten_times_the_spacing():
    """At hold/spacing 10 a hold covers ten consecutive checks: the independent approximation's
    call_failed q^10 is far below both the closed form and the Monte Carlo."""
    cid, hold, rate = TRANSIENT_CASES[2]
    sc = transient_scenario(hold, rate)
    ex = exact_for(sc.compile("ref"))
    q = -math.expm1(-rate * 1e-9 * 33000.0)
    assert ex["call_failed"]["value"] > 20 * q ** 10
    run = api.run(sc, trials=TRANSIENT_TRIALS, seed=SEED, backend="numpy", records=True,
                  progress=False)["ref"]
    ci = proportion_ci(int(run.records["call_failed"].sum()), TRANSIENT_TRIALS, LEVEL)
    assert not ci.lo <= q ** 10 <= ci.hi, "the engine looks like independent draws per check"


def test_the_issue_example():
    """thread-2018's ptl_pin page with a random outer_gap and a 1.5 ms timeout: the old solver
    said call_failed = 8.9e-5 ("exact"), the old engines 0.024. Attempts 1..4 start, only 1..3
    can unlock before the timeout: call_failed = q^3, exact, and the Monte Carlo agrees."""
    sc = load_scenario("thread-2018", ["strategies=ptl_pin", "transient.rate=500000/s",
                                       'timing.outer_gap={dist="exp", mean="0.5ms"}',
                                       "budget.timeout=1.5ms"])
    ex = exact_for(sc.compile("ptl_pin"))
    q = -math.expm1(-0.5)
    assert ex["call_failed"]["status"] == EXACT
    assert ex["call_failed"]["value"] == pytest.approx(q ** 3, rel=1e-9)
    run = api.run(sc, trials=3000, seed=SEED, backend="numpy", records=True, progress=False)["ptl_pin"]
    assert check_against_records(ex, run.records, "issue", ks=(2, 3)) >= 4
