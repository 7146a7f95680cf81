"""The seed thread's observations (MODEL.md section 3) reproduced on the shipped scenario.

Each test runs the numpy reference engine on configs/thread-2018.toml with the budget shortened
(a 50 ms timeout instead of 120 s: the livelock is already plain, and CI stays fast). Probability
claims are checked with 99.9% intervals from mcexplore.stats, not with tuned tolerances.
"""

import pytest

from mcexplore import api
from mcexplore.scenario import load_scenario
from mcexplore.stats import proportion_ci

SHORT = ["budget.timeout=50ms", "budget.max_attempts=100000"]
LEVEL = 0.999


def _run(overrides, trials, seed=1):
    sc = load_scenario("thread-2018", SHORT + list(overrides))
    return api.run(sc, trials=trials, seed=seed, backend="numpy", progress=False)


def _ci(run, label, outcome):
    a = run[label].aggregate
    return proportion_ci(a.counts[outcome], a.trials, LEVEL)


def test_ref_with_201_running_mappers_livelocks_and_fails_a_call_every_few_ms():
    r = _run(["strategies=ref"], trials=40)
    assert _ci(r, "ref", "livelock").lo > 0.8
    rec = api.run(load_scenario("thread-2018", SHORT + ["strategies=ref"]), trials=10, seed=2,
                  backend="numpy", records=True, progress=False)["ref"].records
    # "a failed migrate_pages call is reported about every 4.5 ms": simulated time per call
    per_call_ms = rec["end_time"] / rec["calls"] / 1e6
    assert ((per_call_ms > 2) & (per_call_ms < 10)).all(), per_call_ms


def test_with_the_workload_stopped_the_page_migrates_at_once():
    r = _run(["page.access_rate=0/us", "transient.rate=0/s"], trials=50)
    for label in r.labels:
        a = r[label].aggregate
        assert a.counts["migrated"] == a.trials, label
        assert a.sums["attempts"] == a.trials, label  # every trial on its first attempt


@pytest.mark.parametrize("mappers", [201, 251])
def test_put_and_wait_offlines_with_201_and_251_mappers(mappers):
    r = _run([f"page.mapcount={mappers}", "strategies=drop"], trials=40)
    a = r["drop"].aggregate
    assert a.counts["migrated"] == a.trials
    assert a.counts["livelock"] == 0


def test_hugh_one_persistent_faulter_sometimes_succeeds_two_or_three_much_less():
    """A page mapped 8 times (unmapping is short enough for a lone faulter to miss the window)."""
    runs = {n: _run(["page.mapcount=8", f"page.active={n}", "strategies=ref"], trials=150)
            for n in (1, 3)}
    one = _ci(runs[1], "ref", "migrated")
    three = _ci(runs[3], "ref", "migrated")
    assert one.lo > 0.05 and one.hi < 0.95  # sometimes
    assert three.hi < one.lo  # much less likely with three faulters
    # and the more the page is mapped, the worse: one faulter on a page mapped 4 times
    four = _ci(_run(["page.mapcount=4", "page.active=1", "strategies=ref"], trials=150), "ref", "migrated")
    assert four.lo > one.hi


def test_lock_without_reference_uses_freed_pages_the_others_never_do():
    r = _run(["strategies=lock_noref,ptl_pin,drop", "page.mapcount=16"], trials=100)
    assert _ci(r, "lock_noref", "uaf").lo > 0
    assert r["ptl_pin"].aggregate.counts["uaf"] == 0
    assert r["drop"].aggregate.counts["uaf"] == 0


def test_waiting_on_the_pte_without_recheck_loses_wakeups():
    r = _run(["strategies=pte_wait,pte_wait_norecheck"], trials=100)
    assert _ci(r, "pte_wait_norecheck", "hang").lo > 0
    assert r["pte_wait"].aggregate.counts["hang"] == 0
