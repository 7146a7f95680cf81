"""At scale, the counts still agree with the exact solution: 10^8 trials on the GPU (marked gpu and
slow), 10^6 on the native engine (the same test body, so its logic is checked on every CI run).

The scenario is exact for the integer model itself, not only for its continuous idealisation: a
ptl_pin waiter never holds a reference, so attempts fail only by a transient reference. The 1 us
holds are shorter than the 9.3 us between checks, so no hold covers two checks: each fails
independently with the stationary probability 1 - exp(-rho E[h]) (arrivals at whole ns, holds of
whole ns: the same for the integer process), and attempts are geometric. At 10^8 trials a 99.9%
interval is about +-1.5e-4 wide, far tighter than any test elsewhere.
"""

import pytest

from mcexplore.exact import exact_for
from mcexplore.scenario import load_scenario
from mcexplore.stats import proportion_ci

LEVEL = 0.999


def _scenario():
    return load_scenario("thread-2018", [
        "page.mapcount=4", "page.active=3", "page.access_rate=2/us", "strategies=ptl_pin",
        "transient.rate=300000/s", "transient.hold=1us", "budget.max_attempts=100000",
    ])


def _check(engine, n, seed):
    sc = _scenario()
    c = sc.compile("ptl_pin")
    ex = exact_for(c)
    assert ex["attempts_pmf"]["exact_k"] >= 3 and ex["call_failed"]["status"] == "exact"
    pmf, call_failed = ex["attempts_pmf"]["value"], ex["call_failed"]["value"]
    agg = engine.run_aggregate(c, seed, 0, n)
    assert agg.trials == n and agg.counts["migrated"] == n
    h = agg.hists["attempts"]  # attempts < 8 have a bucket each
    for k in (1, 2, 3):
        ci = proportion_ci(int(h[k]), n, LEVEL)
        assert ci.lo <= pmf[k - 1] <= ci.hi, (k, int(h[k]), pmf[k - 1])
    ci = proportion_ci(agg.counts["call_failed"], n, LEVEL)
    assert ci.lo <= call_failed <= ci.hi, (agg.counts["call_failed"], call_failed)
    assert agg.counts["call_failed"] > 0  # q^10 * n: the rare tail is reached and counted


def test_a_million_native_trials_agree_with_the_exact_solution():
    from mcexplore.engines.native import NativeEngine

    ok, why = NativeEngine.availability()
    if not ok:
        pytest.skip(why)
    _check(NativeEngine(), 10**6 * 3, seed=7)


@pytest.mark.gpu
@pytest.mark.slow
def test_a_hundred_million_gpu_trials_agree_with_the_exact_solution():
    from mcexplore.engines.cupy_engine import CupyEngine

    ok, why = CupyEngine.availability()
    if not ok:
        pytest.skip(why)
    _check(CupyEngine(), 10**8, seed=8)
