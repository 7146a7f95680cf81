"""Exact solutions are the ground truth for the Monte Carlo: every exact value must lie inside the
numpy engine's 99.9% interval (Wilson, or the exact one-sided bound at a zero count), at a fixed
seed, over a spread of parameters where the probability is near 0, near 1 and in between.

The exact solver (mcexplore.exact) is derived independently from the model's text, so agreement
checks both. Costs are constants and the wake latency exponential, which is where exact answers
exist; each case says what it probes.
"""

import numpy as np
import pytest

from mcexplore import api
from mcexplore.exact import exact_for
from mcexplore.scenario import load_scenario
from mcexplore.stats import proportion_ci

LEVEL = 0.999
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


@pytest.mark.parametrize("cid,strategy,overrides", CASES, ids=[c[0] for c in CASES])
def test_exact_values_lie_inside_the_monte_carlo_interval(cid, strategy, overrides):
    sc, label = build_case(strategy, overrides)
    ex = exact_for(sc.compile(label))
    run = api.run(sc, trials=TRIALS, seed=20181119, backend="numpy", records=True, progress=False)[label]
    rec = run.records
    n = len(rec)
    first = int(((rec["attempts"] == 1) & (rec["migrated"] == 1)).sum())
    _inside(ex["first_attempt_success"], first, n, f"{cid} first-attempt success")
    if "call_failed" in ex:
        _inside(ex["call_failed"], int(rec["call_failed"].sum()), n, f"{cid} call_failed")
    if "attempts_pmf" in ex:
        pmf = np.asarray(ex["attempts_pmf"])
        att = rec["attempts"][rec["migrated"] == 1]
        for k in (2, 3):
            if k <= len(pmf):
                _inside(float(pmf[k - 1]), int((att == k).sum()), n, f"{cid} P(attempts = {k})")
        # the tail beyond the budget: trials not migrated within 60 attempts
        tail = 1.0 - float(pmf[:60].sum())
        _inside(max(tail, 0.0), int((rec["migrated"] == 0).sum()), n, f"{cid} P(attempts > 60)")


def test_the_cases_span_near_zero_near_one_and_between():
    values = []
    for cid, strategy, overrides in CASES:
        sc, label = build_case(strategy, overrides)
        values.append(exact_for(sc.compile(label))["first_attempt_success"])
    values = np.array(values)
    assert (values < 0.05).any() and (values > 0.95).any() and ((values > 0.2) & (values < 0.8)).any()
