"""Tests of mcexplore.stats: exact checks where the binomial allows them, fixed-seed simulation
otherwise, with acceptance bounds taken from a binomial interval on the simulated rate."""

import math

import numpy as np
import pytest
from scipy import stats as st
from statsmodels.stats.proportion import proportion_confint

from mcexplore.results import HIST_METRICS, OUTCOMES, Aggregate, Records, FIELD_NAMES, hist_bucket, HIST_BINS
from mcexplore.stats import (hist_quantile, hist_quantile_ci, order_stat_ranks, proportion_ci,
                             summarize, summarize_many)


def _cp_hi_one_sided(k, n, alpha):
    return 1.0 if k == n else st.beta.ppf(1 - alpha, k + 1, n - k)


# --------------------------------------------------------------------------- proportions

@pytest.mark.parametrize("method", ["wilson", "beta"])
def test_interior_matches_statsmodels(method):
    for k, n in [(1, 10), (3, 10), (17, 1000), (999, 1000), (5000, 10000)]:
        pr = proportion_ci(k, n, 0.95, method)
        lo, hi = proportion_confint(k, n, alpha=0.05, method=method)
        assert pr.p == k / n and not pr.one_sided
        assert pr.lo == pytest.approx(lo, abs=1e-15) and pr.hi == pytest.approx(hi, abs=1e-15)
        assert pr.lo < pr.p < pr.hi


@pytest.mark.parametrize("n", [1, 3, 100, 1000, 10**6])
@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
def test_zero_count_is_exact_one_sided_clopper_pearson(n, level):
    pr = proportion_ci(0, n, level)
    alpha = 1 - level
    assert pr.one_sided and pr.lo == 0.0 and pr.p == 0.0
    # Defining property: at p = hi, seeing zero events has probability exactly alpha.
    assert (1 - pr.hi) ** n == pytest.approx(alpha, rel=1e-9)
    assert pr.hi == pytest.approx(_cp_hi_one_sided(0, n, alpha), rel=1e-9)
    if n >= 1000 and level == 0.95:
        assert pr.hi == pytest.approx(3.0 / n, rel=0.01)  # the rule of three


def test_full_count_is_symmetric():
    for n in (1, 7, 500):
        a, b = proportion_ci(0, n), proportion_ci(n, n)
        assert b.one_sided and b.hi == 1.0 and b.p == 1.0
        assert b.lo == pytest.approx(1 - a.hi, rel=1e-12)


def test_degenerate_inputs():
    assert math.isnan(proportion_ci(0, 0).p)
    with pytest.raises(ValueError):
        proportion_ci(3, 2)
    with pytest.raises(ValueError):
        proportion_ci(1, 2, method="wald")
    with pytest.raises(ValueError):
        proportion_ci(1, 2, level=1.0)


@pytest.mark.parametrize("n", [20, 200])
def test_beta_upper_bound_is_valid_one_sided_bound_exactly(n):
    """Exact (no simulation): for every p on a grid, P(hi(K) < p) <= alpha, K ~ Bin(n, p), and the
    two-sided miss rate is at most 3*alpha/2 (alpha for the one-sided zero-count bound + alpha/2)."""
    alpha = 0.05
    k = np.arange(n + 1)
    his = np.array([proportion_ci(int(j), n, 0.95, "beta").hi for j in k])
    los = np.array([proportion_ci(int(j), n, 0.95, "beta").lo for j in k])
    worst_hi = worst_two = 0.0
    for p in np.concatenate([np.geomspace(1e-5, 0.5, 400), np.linspace(0.5, 1 - 1e-5, 200)]):
        pmf = st.binom.pmf(k, n, p)
        miss_hi = pmf[his < p].sum()
        miss_two = miss_hi + pmf[los > p].sum()
        worst_hi, worst_two = max(worst_hi, miss_hi), max(worst_two, miss_two)
    assert worst_hi <= alpha + 1e-9
    assert worst_two <= 1.5 * alpha + 1e-9
    assert worst_hi > 0.5 * alpha  # and the bound is not vacuous


# --------------------------------------------------------------------------- quantiles

def _hist(values):
    return np.bincount(hist_bucket(np.asarray(values)), minlength=HIST_BINS)


def test_hist_quantile_exact_for_small_values():
    v = np.array([0, 1, 1, 2, 3, 3, 3, 5, 7, 7])
    h = _hist(v)
    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        k = math.ceil(q * len(v))
        assert hist_quantile(h, q) == np.sort(v)[k - 1]


def test_hist_quantile_within_bucket_resolution():
    rng = np.random.default_rng(1)
    v = rng.lognormal(np.log(50_000), 1.5, size=5000).astype(np.int64)
    h = _hist(v)
    for q in (0.01, 0.5, 0.9, 0.99, 0.999):
        true = np.sort(v)[math.ceil(q * len(v)) - 1]
        assert abs(hist_quantile(h, q) - true) <= true / 16 + 0.5
    assert math.isnan(hist_quantile(np.zeros(HIST_BINS, dtype=np.int64), 0.5))


def test_order_stat_ranks_binomial_guarantee():
    for n in (5, 30, 200, 5000):
        for q in (0.5, 0.9, 0.99):
            r, s = order_stat_ranks(n, q, 0.95)
            # coverage bound F(s-1) - F(r-1) >= 0.95 (exact binomial)
            cov = st.binom.cdf(s - 1, n, q) - (st.binom.cdf(r - 1, n, q) if r >= 1 else 0.0)
            assert cov >= 0.95 - 1e-12


@pytest.mark.parametrize("dist", ["lognormal", "poisson"])
def test_hist_quantile_ci_coverage(dist):
    """Fixed seed, 1000 replications of n=200: the interval covers the true quantile in at least
    95 % of replications, judged by a 99.9 % Clopper-Pearson upper bound on the observed rate
    (the test fails only if coverage is significantly below nominal)."""
    rng = np.random.default_rng(20240501)
    reps, n, level = 1000, 200, 0.95
    for q in (0.5, 0.9):
        if dist == "lognormal":  # integer ns, continuous underneath; floor keeps quantiles
            true = math.floor(st.lognorm.ppf(q, 1.0, scale=30_000))
            draws = np.floor(rng.lognormal(np.log(30_000), 1.0, size=(reps, n))).astype(np.int64)
        else:  # heavy ties: discrete, values < 8 land in width-one buckets
            true = st.poisson.ppf(q, 3.0)
            draws = rng.poisson(3.0, size=(reps, n))
        covered = 0
        for row in draws:
            ci = hist_quantile_ci(_hist(row), q, level)
            covered += ci.lo <= true <= ci.hi
        _, hi = proportion_confint(covered, reps, alpha=0.002, method="beta")
        assert hi >= level, (dist, q, covered)


def test_hist_quantile_ci_small_samples():
    h = _hist([100, 200, 300])
    ci = hist_quantile_ci(h, 0.99)
    assert ci.hi == math.inf  # three values cannot bound the 99th percentile
    ci = hist_quantile_ci(h, 0.5)
    assert ci.lo == 0.0 and ci.hi >= 300  # 3 values: interval [0, X_(3)]
    e = hist_quantile_ci(np.zeros(HIST_BINS, dtype=np.int64), 0.5)
    assert e.n == 0 and math.isnan(e.value)


# --------------------------------------------------------------------------- summaries

def _records(n, seed, trial0=0):
    rng = np.random.default_rng(seed)
    cols = {f: np.zeros(n, dtype=np.int64) for f in FIELD_NAMES}
    mig = rng.random(n) < 0.7
    cols["migrated"] = mig.astype(np.int64)
    cols["attempts"] = rng.geometric(0.3, n)
    cols["t_migrated"] = np.where(mig, rng.integers(1000, 10**7, n), -1)
    cols["livelock"] = (~mig & (rng.random(n) < 0.5)).astype(np.int64)
    cols["censored"] = (~mig & (cols["livelock"] == 0)).astype(np.int64)
    cols["call_failed"] = (cols["attempts"] > 10).astype(np.int64)
    cols["max_wait"] = rng.integers(0, 10**6, n)
    return Records(trial0, cols)


def test_summarize_from_counts_and_merge_invariance():
    r1, r2 = _records(300, 1, 0), _records(200, 2, 300)
    merged = Aggregate.from_records(r1).merge(Aggregate.from_records(r2))
    whole = Aggregate.from_records(Records.concat([r1, r2]))
    s1, s2 = summarize(merged), summarize(whole)
    assert s1.outcomes.equals(s2.outcomes) and s1.quantiles.equals(s2.quantiles)
    o = s1.outcomes.set_index("outcome")
    assert list(o.index) == list(OUTCOMES)
    assert o.loc["livelock", "count"] == int(whole.counts["livelock"])
    assert o.loc["uaf", "one_sided"] and o.loc["uaf", "hi"] == pytest.approx(1 - 0.05 ** (1 / 500))
    q = s1.quantiles
    assert set(q.metric) == set(HIST_METRICS) and (q.lo <= q.value).all()
    tm = q[(q.metric == "t_migrated")]
    assert (tm.n == whole.counts["migrated"]).all()
    assert s1.means["attempts"] == pytest.approx(whole.sums["attempts"] / 500)
    d = s1.to_dict()
    assert d["trials"] == 500 and len(d["outcomes"]) == len(OUTCOMES)


def test_summarize_many():
    aggs = {"ref": Aggregate.from_records(_records(100, 3)), "drop": Aggregate.from_records(_records(100, 4))}
    s = summarize_many(aggs)
    assert list(s.outcomes.columns[:2]) == ["strategy", "outcome"]
    assert len(s.outcomes) == 2 * len(OUTCOMES)
