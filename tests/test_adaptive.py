"""Tests of mcexplore.adaptive: the confidence sequence's anytime error rate by simulation (pure
numpy Bernoulli streams, fixed seeds), judged with a Clopper-Pearson interval on the observed error
rate, and the contrast with naive re-checking of a fixed-sample interval."""

import math

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from mcexplore.adaptive import (StopRule, Stopper, beta_binomial_cs, log_mixture_martingale,
                                rule_from_options)

REPS = 2000
ALPHA = 0.05


def _streams(p, reps, n, seed):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.random((reps, n)) < p, axis=1)  # cumulative counts after 1..n trials


def _rate_hi(k, n):
    """Two-sided 99.8 % Clopper-Pearson interval on an observed rate k/n."""
    return proportion_confint(k, n, alpha=0.002, method="beta")


def test_cs_endpoints_solve_the_martingale_equation():
    for S, n in [(0, 10), (1, 10), (5, 100), (40, 100), (100, 100), (3, 10**6), (0, 10**7)]:
        lo, hi = beta_binomial_cs(S, n, 0.95)
        assert 0 <= lo <= S / n <= hi <= 1
        thr = math.log(1 / ALPHA)
        if S > 0:
            assert log_mixture_martingale(S, n, lo) == pytest.approx(thr, abs=1e-6)
        else:
            assert lo == 0
        if S < n:
            assert log_mixture_martingale(S, n, hi) == pytest.approx(thr, abs=1e-6)
        # points just inside are in the CS, just outside are not
        mid = (lo + hi) / 2
        assert log_mixture_martingale(S, n, mid) < thr
    # the CS is wider than the fixed-n Clopper-Pearson interval (the price of anytime validity)
    lo, hi = beta_binomial_cs(50, 10_000)
    clo, chi = proportion_confint(50, 10_000, alpha=ALPHA, method="beta")
    assert lo < clo and hi > chi
    # and it shrinks: zero failures in 10^7 trials bound p near 1.2e-6, about 4x the fixed-n
    # one-sided bound 3e-7 (the mixture's cost grows like log(n) / n, not 1 / n)
    assert 1e-6 < beta_binomial_cs(0, 10**7)[1] < 1.5e-6


def test_vectorized_matches_scalar():
    S = np.array([0, 3, 10, 99])
    n = np.array([50, 50, 1000, 100])
    lo, hi = beta_binomial_cs(S, n)
    for j in range(len(S)):
        assert (lo[j], hi[j]) == beta_binomial_cs(int(S[j]), int(n[j]))


def _first_decision(cum, checkpoints, P, interval):
    """Per replication: +1 if it stopped 'above', -1 'below', 0 undecided, using running
    intersections of ``interval`` (count, n) -> (lo, hi) at the given checkpoints."""
    reps = cum.shape[0]
    lo_run, hi_run = np.zeros(reps), np.ones(reps)
    decision = np.zeros(reps, dtype=int)
    for n in checkpoints:
        lo, hi = interval(cum[:, n - 1], np.full(reps, n))
        lo_run, hi_run = np.maximum(lo_run, lo), np.minimum(hi_run, hi)
        undecided = decision == 0
        decision[undecided & (hi_run < P)] = -1
        decision[undecided & (lo_run > P)] = 1
    return decision


def _wilson(count, n):
    lo, hi = proportion_confint(count, n, alpha=ALPHA, method="wilson")
    return np.asarray(lo), np.asarray(hi)


def test_until_upper_bound_error_rate_and_naive_rechecking():
    """True p equals the threshold P: every decision, 'below' or 'above', is an error. With
    2000 replications checked every 200 trials up to 20 000 (100 looks), the CS decides wrongly in
    at most alpha of them (the test fails if a 99.8 % Clopper-Pearson interval on the observed error
    rate lies entirely above alpha), while re-checking a fixed-n 95 % Wilson interval errs far more
    often (its interval lies entirely above alpha)."""
    P = p = 0.01
    cum = _streams(p, REPS, 20_000, seed=12345)
    checkpoints = range(200, 20_001, 200)
    cs = _first_decision(cum, checkpoints, P, lambda c, n: beta_binomial_cs(c, n, 1 - ALPHA))
    naive = _first_decision(cum, checkpoints, P, _wilson)
    k_cs, k_naive = int((cs != 0).sum()), int((naive != 0).sum())
    lo, _ = _rate_hi(k_cs, REPS)
    assert lo <= ALPHA, f"confidence sequence errs in {k_cs}/{REPS}"
    lo_naive, _ = _rate_hi(k_naive, REPS)
    assert lo_naive > ALPHA, f"naive re-checking errs in only {k_naive}/{REPS}"
    # a single look at the end (no re-checking) is fine: that is what a fixed-n interval is for
    end = _first_decision(cum, [20_000], P, _wilson)
    assert _rate_hi(int((end != 0).sum()), REPS)[0] <= ALPHA


def test_anytime_coverage_of_the_cs():
    """Miscoverage at any of 200 looks (every 50 trials up to 10 000), p = 0.003, Jeffreys mixture:
    the fraction of replications in which p ever leaves the CS is at most alpha (computed from the
    martingale directly, which is exactly the CS membership test)."""
    p = 0.003
    cum = _streams(p, REPS, 10_000, seed=777)
    looks = np.arange(50, 10_001, 50)
    logm = log_mixture_martingale(cum[:, looks - 1], looks[None, :], p)
    ever_out = (logm >= math.log(1 / ALPHA)).any(axis=1)
    k = int(ever_out.sum())
    assert _rate_hi(k, REPS)[0] <= ALPHA, k


def test_stopper_relative_error_rule_covers():
    """Stopping when the CS's relative half-width reaches 0.5 (p = 0.02): at the stopping time the
    CS still covers p in at least 1 - alpha of 2000 replications, using the Stopper class itself."""
    p, E = 0.02, 0.5
    rng = np.random.default_rng(99)
    rule = StopRule(target_rel_error=E, max_trials=50_000, batch_trials=250)
    miss, stopped_early = 0, 0
    for _ in range(REPS // 4):  # the scalar path: 500 replications keep the test fast
        st = Stopper(rule)
        count = n = 0
        while not st.done:
            k = rule.next_batch(n)
            count += int((rng.random(k) < p).sum())
            n += k
            st.update(count, n)
        miss += not (st.lo <= p <= st.hi)
        stopped_early += st.reason == "target_rel_error"
        assert st.reason == "max_trials" or st.rel_half_width <= E
    assert stopped_early == REPS // 4  # the target is reachable well before max_trials
    assert proportion_confint(miss, REPS // 4, alpha=0.002, method="beta")[0] <= ALPHA


def test_stopper_rules():
    r = StopRule(until_upper_bound=1e-3, max_trials=10**6)
    st = Stopper(r)
    assert not st.update(0, 100)
    assert st.update(0, 10**5)  # zero failures in 1e5 trials: the CS upper end is below 1e-3
    assert st.decision == "below" and st.reason == "upper_bound"
    st = Stopper(StopRule(until_upper_bound=1e-3))
    assert st.update(500, 10_000) and st.decision == "above"
    st = Stopper(StopRule(target_rel_error=0.1, max_trials=5000))
    assert st.update(0, 5000) and st.reason == "max_trials" and st.decision is None
    # batches: fixed, or doubling from 1024, never past max_trials
    assert [StopRule(max_trials=5000).next_batch(d) for d in (0, 1024, 2048, 4096)] == [1024, 1024, 2048, 904]
    assert StopRule(batch_trials=300, max_trials=1000).next_batch(900) == 100
    with pytest.raises(ValueError):
        StopRule(outcome="nonsense")
    # an absolute half-width: p near 0 or 1 gets there sooner than p near 1/2
    st = Stopper(StopRule(target_half_width=0.05, batch_trials=100))
    assert not st.update(50, 100) and (st.hi - st.lo) / 2 > 0.05
    st0 = Stopper(StopRule(target_half_width=0.05))
    n0 = next(n for n in range(100, 10**5, 100) if st0.update(0, n))
    st5 = Stopper(StopRule(target_half_width=0.05))
    n5 = next(n for n in range(100, 10**5, 100) if st5.update(n // 2, n))
    assert st0.reason == st5.reason == "target_half_width" and n0 < n5 / 5
    assert (st5.hi - st5.lo) / 2 <= 0.05 < (lambda lo, hi: (hi - lo) / 2)(*beta_binomial_cs(n5 // 2 - 50, n5 - 100))
    with pytest.raises(ValueError, match="target_half_width: 0.5 is not valid"):
        StopRule(target_half_width=0.5)
    with pytest.raises(ValueError, match="two adaptive rules"):
        rule_from_options(target_half_width=0.01, until_upper_bound=0.1)
    assert rule_from_options() is None
    r = rule_from_options(until_upper_bound=0.01, stop_outcome="uaf", level=0.99)
    assert r.outcome == "uaf" and r.level == 0.99 and r.max_trials > 0


# --------------------------------------------------------------------------- with the engine

def test_run_adaptive_trials_are_a_prefix_of_a_fixed_run():
    """An adaptive run stops at some n; its aggregate equals a fixed run of trials [0, n)."""
    from mcexplore.adaptive import run_adaptive
    from mcexplore.api import run
    from mcexplore.scenario import load_scenario

    sc = load_scenario("thread-2018", ["page.active=2", "page.mapcount=3", "budget.max_attempts=20",
                                       "budget.timeout=10ms"])
    rule = StopRule(target_rel_error=0.25, max_trials=4000, batch_trials=100, outcome="censored")
    seen = []
    ar = run_adaptive(sc, rule, labels=["ref", "ptl_pin"], seed=11, backend="numpy",
                      callback=lambda lab, st: seen.append((lab, st.n)))
    ref, pin = ar.stoppers["ref"], ar.stoppers["ptl_pin"]
    assert ref.reason == "target_rel_error" and ref.n < 4000 and ref.n % 100 == 0
    assert pin.reason == "max_trials" and pin.n == 4000 and pin.count == 0  # never fails: runs to the cap
    assert [n for lab, n in seen if lab == "ref"] == list(range(100, ref.n + 1, 100))
    fixed = run(sc, trials=ref.n, seed=11, labels=["ref"], backend="numpy")["ref"].aggregate
    assert ar.run["ref"].aggregate.counts == fixed.counts
    assert ar.run["ref"].aggregate.trials == ref.n and ar.run.trials == 4000
    d = ar.to_dict()
    assert d["ref"]["stop_reason"] == "target_rel_error" and d["ref"]["cs_lo"] <= d["ref"]["p"] <= d["ref"]["cs_hi"]
