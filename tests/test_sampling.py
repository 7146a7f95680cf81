"""Sampling keeps rare tails: the distribution each compiled sampler implements, against the
specified one.

A compiled distribution is a finite table (mcexplore.params), so the distribution of its samples
is known exactly: ``CompiledDist.cdf(x)`` = P(sample < x) for whole ns x. The specified
distributions are continuous; the engines sample floor(Y), so P(sample < x) = P(Y < x) = F(x) at
every whole x, and the two are compared there, deterministically (no sampling noise):

* at every bucket edge / knot (floor and ceiling) and at the 1e-3 .. 1e-9 quantiles of both tails:
  absolute error <= 1e-9 (for a tabulated kind where the whole-ns point's tail probability is
  <= 1e-3: the ceiling of a lognormal's 1e-3 quantile at 0.09 ns is 1 ns, whose tail is 1%);
* relative error of the tail probability (F below the median, 1 - F above) <= 1% wherever the
  specified tail probability is >= 1e-9, at those points and, for the tabulated kinds (lognormal),
  at a dense set of whole-ns points between the grid's breakpoints (off-grid); there the absolute
  error is also <= 1e-9 in the tails (tail probability <= 1e-3) and <= 1e-7 in the body (the grid
  is built to 5e-8: params._grid_tol).

Then one sampling test per kind: draws through rng.draw_words + rng.sample with a fixed seed, the
counts of a few regions inside 99.9% binomial intervals around the exact cdf values.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from mcexplore import params, rng
from mcexplore.scenario import parse_distribution

TAIL_PS = [10.0 ** -k for k in range(3, 10)]  # the 1e-3 .. 1e-9 tail quantiles
ABS_TOL = 1e-9
REL_TOL = 0.01
BODY_ABS_TOL = 1e-7


# -- specified distributions (CDF F and survival S = 1 - F, both at any real x) --------------

class Spec:
    """A specified distribution: cdf, sf, the quantiles of both tails, and its special points."""

    def __init__(self, cdf, sf, ppf, isf, edges=(), mean=None):
        self.cdf, self.sf, self.ppf, self.isf = cdf, sf, ppf, isf
        self.edges = np.asarray(edges, dtype=np.float64)
        self.mean = mean

    def tail_points(self) -> np.ndarray:
        q = [self.ppf(p) for p in TAIL_PS] + [self.isf(p) for p in TAIL_PS]
        return np.asarray(q, dtype=np.float64)


def piecewise_spec(lo, hi, w) -> Spec:
    """Uniform on [lo_j, hi_j) with probability w_j (histograms, empirical CDFs, uniform)."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    w = w / w.sum()

    def frac(x):
        x = np.asarray(x, dtype=np.float64)[..., None]
        width = hi - lo
        with np.errstate(all="ignore"):
            f = np.where(width > 0, np.clip((x - lo) / np.where(width > 0, width, 1), 0, 1), (x > lo) * 1.0)
        return f

    def cdf(x):
        return frac(x) @ w

    def sf(x):
        return (1.0 - frac(x)) @ w

    cum = np.concatenate([[0.0], np.cumsum(w)])
    tail = np.concatenate([np.cumsum(w[::-1])[::-1], [0.0]])

    def ppf(p):
        j = int(np.searchsorted(cum, p, side="right")) - 1
        j = min(max(j, 0), len(w) - 1)
        return lo[j] + (hi[j] - lo[j]) * (p - cum[j]) / w[j]

    def isf(p):
        j = int(np.searchsorted(-tail, -p, side="left")) - 1  # tail[j] >= p > tail[j+1]
        j = min(max(j, 0), len(w) - 1)
        return hi[j] - (hi[j] - lo[j]) * (p - tail[j + 1]) / w[j]

    return Spec(cdf, sf, ppf, isf, np.concatenate([lo, hi]), float(w @ (lo + hi) / 2))


def scipy_spec(d, edges=()) -> Spec:
    return Spec(d.cdf, d.sf, d.ppf, d.isf, edges, float(d.mean()))


def mixture_spec(specs, weights) -> Spec:
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()

    def cdf(x):
        return sum(wi * s.cdf(x) for wi, s in zip(w, specs))

    def sf(x):
        return sum(wi * s.sf(x) for wi, s in zip(w, specs))

    lo = min(s.ppf(1e-12) for s in specs)
    hi = max(s.isf(1e-12) for s in specs)

    def solve(f, target):  # f decreasing from > target to < target on [lo, hi]
        a, b = lo, hi
        for _ in range(200):
            m = (a + b) / 2 if b < 4 * max(a, 1.0) else math.sqrt(max(a, 1e-3) * b)
            if f(m) > target:
                a = m
            else:
                b = m
        return (a + b) / 2

    ppf = lambda p: solve(lambda x: -cdf(x), -p)  # noqa: E731
    isf = lambda p: solve(sf, p)  # noqa: E731
    edges = np.concatenate([s.edges for s in specs]) if specs else np.zeros(0)
    mean = sum(wi * s.mean for wi, s in zip(w, specs))
    return Spec(cdf, sf, ppf, isf, edges, mean)


def lognormal_spec(median, sigma) -> Spec:
    return scipy_spec(stats.lognorm(sigma, scale=median))


def exp_spec(mean) -> Spec:
    return scipy_spec(stats.expon(scale=mean))


# -- the comparison ---------------------------------------------------------------------------

def whole(points) -> np.ndarray:
    """The whole-ns points next to each point (floor and ceiling), >= 0."""
    p = np.asarray(points, dtype=np.float64)
    p = p[np.isfinite(p)]
    return np.unique(np.clip(np.concatenate([np.floor(p), np.ceil(p)]), 0, None)).astype(np.int64)


def errors(c: params.CompiledDist, spec: Spec, x) -> dict:
    """Absolute error of the CDF and relative error of the tail probability at whole points x."""
    x = np.asarray(x, dtype=np.int64)
    F = np.asarray(spec.cdf(x.astype(np.float64)), dtype=np.float64)
    S = np.asarray(spec.sf(x.astype(np.float64)), dtype=np.float64)
    got = c.cdf(x)
    abs_err = np.abs(got - F)
    low = (F <= S) & (F >= 1e-9)
    up = (S < F) & (S >= 1e-9)
    rel = np.zeros(len(x))
    rel[low] = abs_err[low] / F[low]
    rel[up] = np.abs((1.0 - got[up]) - S[up]) / S[up]
    return {"abs": abs_err, "rel": rel, "tail": np.minimum(F, S), "x": x}


def assert_exact_at(c, spec, x, what=""):
    """abs <= 1e-9 (a tabulated distribution: where the tail probability is <= 1e-3, 1e-7 in the
    body) and the tail's relative error <= 1% where it is >= 1e-9."""
    e = errors(c, spec, x)
    tol = np.where(c.exact | (e["tail"] <= 1e-3), ABS_TOL, BODY_ABS_TOL)
    i = int(np.argmax(e["abs"] / tol))
    assert (e["abs"] <= tol).all(), f"{what}: abs error {e['abs'][i]:.3g} at x = {e['x'][i]} (tail {e['tail'][i]:.3g})"
    j = int(np.argmax(e["rel"]))
    assert e["rel"].max() <= REL_TOL, f"{what}: rel error {e['rel'][j]:.3g} at x = {e['x'][j]} (tail {e['tail'][j]:.3g})"
    return e


def assert_matches(c, spec, what=""):
    """Every bucket edge and the tail quantiles: abs <= 1e-9, rel <= 1%."""
    pts = whole(np.concatenate([spec.edges, spec.tail_points()]))
    return assert_exact_at(c, spec, pts, what=what)


def assert_off_grid(c, spec, what="", n=40_000):
    """Dense whole-ns points over the range where a tail is >= 1e-10: rel <= 1% where the tail
    is >= 1e-9, abs <= 1e-9 where it is <= 1e-3, abs <= 1e-7 anywhere."""
    lo, hi = max(spec.ppf(1e-10), 0.5), spec.isf(1e-10)
    x = np.unique(np.concatenate([np.round(np.geomspace(lo, hi, n)), np.round(np.linspace(lo, hi, n // 4))]))
    e = errors(c, spec, x.astype(np.int64))
    tails = e["tail"] <= 1e-3
    assert e["rel"].max() <= REL_TOL, (what, e["rel"].max(), e["x"][np.argmax(e["rel"])])
    assert e["abs"][tails].max() <= ABS_TOL, (what, e["abs"][tails].max())
    assert e["abs"].max() <= BODY_ABS_TOL, (what, e["abs"].max())
    return e


# -- the kinds --------------------------------------------------------------------------------

# The issue's example: 100000 counts at 100-300 ns and one at 1-2 ms.
ISSUE_HIST = {"dist": "histogram", "unit": "ns",
              "buckets": [[0, 100, 0], [100, 300, 100000], [300, 1_000_000, 0], [1_000_000, 2_000_000, 1],
                          [2_000_000, "inf", 0]]}
# bpftrace hist(): power-of-two buckets, 1024-based suffixes, a long tail.
BPF_HIST = {"dist": "histogram", "unit": "ns",
            "buckets": [["256", "512", 13], ["512", "1K", 8806], ["1K", "2K", 51234], ["2K", "4K", 2201],
                        ["4K", "8K", 130], ["8K", "16K", 0], ["16K", "32K", 7], ["32K", "64K", 0],
                        ["64K", "128K", 0], ["128K", "256K", 1], ["256K", "inf", 0]]}
EMPIRICAL = {"dist": "empirical",
             "points": [[0.0, "0.6us"], [0.5, "1us"], [0.9, "2us"], [0.99, "5us"], [0.999999, "1ms"], [1.0, "10ms"]]}
EMPIRICAL_ATOM = {"dist": "empirical", "points": [[0.0, "1us"], [0.3, "1us"], [0.3, "2us"], [0.7, "3us"],
                                                  [0.7, "7us"], [1.0, "7us"]]}


def hist_spec(cfg) -> Spec:
    d = parse_distribution(cfg)
    full = [(lo, hi, n) for lo, hi, n in d.parsed() if n > 0]
    return piecewise_spec([b[0] for b in full], [b[1] for b in full], [b[2] for b in full])


def empirical_spec(cfg) -> Spec:
    kp, kv = parse_distribution(cfg).knots()
    return piecewise_spec(kv[:-1], kv[1:], np.diff(kp))


def test_histogram_issue_example():
    """P(X >= 1 ms) = 1/100001 (not 1.24e-4), nothing inside the empty bucket, exact at every edge."""
    c = parse_distribution(ISSUE_HIST).compile()
    assert c.exact and c.nleaf == 2
    F = c.cdf(np.array([100, 300, 1000, 999_999, 1_000_000, 2_000_000]))
    assert abs((1.0 - F[4]) - 1 / 100_001) <= 1e-15  # to 1e-9 asked; the thresholds give 2**-64
    assert F[1] == F[2] == F[3] == F[4]  # P(300 <= X < 1 ms) = 0: the empty bucket stays empty
    assert F[0] == 0.0 and F[5] == 1.0
    assert_matches(c, hist_spec(ISSUE_HIST), "issue histogram")
    assert c.max_ns == 1_999_999


def test_histogram_bpftrace():
    c = parse_distribution(BPF_HIST).compile()
    assert c.exact and c.nleaf == 7  # 11 buckets, 4 of them empty: an empty bucket makes no leaf
    e = assert_matches(c, hist_spec(BPF_HIST), "bpftrace histogram")
    assert e["abs"].max() <= 1e-15
    # Nothing in the empty buckets, e.g. [8K, 16K) and [32K, 128K).
    F = c.cdf(np.array([8192, 16384, 32768, 131072]))
    assert F[0] == F[1] and F[2] == F[3]


def test_empirical():
    for cfg in (EMPIRICAL, EMPIRICAL_ATOM):
        c = parse_distribution(cfg).compile()
        assert c.exact
        e = assert_matches(c, empirical_spec(cfg), "empirical")
        assert e["abs"].max() <= 1e-15
    # The 1e-6 tail of EMPIRICAL from 1 ms to 10 ms is there: P(X >= 1 ms) = 1e-6.
    c = parse_distribution(EMPIRICAL).compile()
    assert abs((1 - c.cdf(np.array([1_000_000]))[0]) - 1e-6) <= 1e-15


def test_uniform():
    c = params.uniform(100.0, 5000.0)
    assert c.exact and c.nleaf == 1 and c.max_ns == 4999
    e = assert_matches(c, piecewise_spec([100.0], [5000.0], [1.0]), "uniform")
    assert e["abs"].max() <= 1e-15
    assert c.mean_ns == (100 + 4999) / 2


@pytest.mark.parametrize("mean", [3.0, 1000.0, 1e6, 4e9])
def test_exponential(mean):
    """The fixed-point clz sampler: the tails to 1e-9 within 1% (in fact ~1e-6), the whole-ns
    rounding no longer biases the far tail (each leading zero adds mean ln 2 to 2**-16 ns)."""
    c = params.exponential(mean)
    assert c.exact and c.nleaf == 1 and c.exp_mean_ns == mean
    spec = exp_spec(mean)
    e = assert_matches(c, spec, f"exp({mean})")
    # The upper tail to 1e-9: the table's interpolation (2e-9 relative) and the float64 sum of the
    # cdf (1e-16 absolute: 1e-7 of 1e-9) are all that is left.
    upper = e["x"] >= mean
    assert e["rel"][upper].max() <= 1e-6
    assert c.mean_ns == pytest.approx(1 / math.expm1(1 / mean), rel=1e-12)


@pytest.mark.parametrize("sigma", [0.5, 2.0, 3.0])
def test_lognormal(sigma):
    d = parse_distribution({"dist": "lognormal", "median": "1us", "sigma": sigma})
    c = d.compile()
    assert not c.exact
    spec = lognormal_spec(1000.0, sigma)
    assert_matches(c, spec, f"lognormal({sigma})")
    assert_off_grid(c, spec, f"lognormal({sigma})")
    # The means (the issue: sigma 2 sampled 11.9 us against 7.39 us, sigma 3 1.03 ms against 90 us).
    true = 1000.0 * math.exp(sigma ** 2 / 2)
    assert c.mean_ns == pytest.approx(true, rel=0.01)
    assert c.mean_ns == pytest.approx(d.clipped_mean_ns() - 0.5, rel=1e-4)
    if sigma == 2.0:
        assert abs(c.mean_ns - 7389.056) < 0.01 * 7389.056
    if sigma == 3.0:
        assert abs(c.mean_ns - 90017.13) < 0.01 * 90017.13


def test_table_component_generic():
    """table_component(q) for other shapes: a power (infinite density at 600 ns), a log-logistic
    (the parity tests' lognormal_like, clipped at 1e-9), a bounded linear one."""
    c = params.compile_mixture([params.table_component(lambda p: 600 + 9400 * p ** 4)])
    assert not c.exact
    x = np.arange(600, 10_001)
    F = ((x - 600) / 9400) ** 0.25
    assert np.abs(c.cdf(x) - F).max() <= BODY_ABS_TOL
    assert np.abs(c.cdf(x) - F)[F <= 1e-3].max(initial=0) <= ABS_TOL
    # Log-logistic, scale 300 ns, shape 1 / 0.8: F(x) = 1 / (1 + (x / 300)^(-1.25)).
    ll = params.compile_mixture([params.table_component(
        lambda p: 300 * np.exp(0.8 * np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1))))])
    spec = scipy_spec(stats.fisk(1.25, scale=300.0))
    lo, hi = spec.ppf(1e-8), spec.isf(1e-8)  # inside the clip at 1e-9
    x = np.unique(np.round(np.geomspace(max(lo, 1), hi, 20000))).astype(np.int64)
    e = errors(ll, spec, x)
    assert e["rel"][e["tail"] >= 1e-8].max() <= REL_TOL and e["abs"].max() <= BODY_ABS_TOL
    # Linear: no refinement needed beyond the initial grid.
    lin = params.compile_mixture([params.table_component(lambda p: 100 + 1000 * p)])
    assert lin.nleaf < 200
    assert np.abs(lin.cdf(np.arange(100, 1101)) - np.arange(0, 1001) / 1000).max() <= 1e-12


def _components():
    """Seven components of every kind, as (config, spec)."""
    return [
        ({"dist": "const", "value": "3us"}, piecewise_spec([3000.0], [3000.0], [1.0])),
        ({"dist": "uniform", "low": "0.1us", "high": "0.3us"}, piecewise_spec([100.0], [300.0], [1.0])),
        ({"dist": "exp", "mean": "1ms"}, exp_spec(1e6)),
        (ISSUE_HIST, hist_spec(ISSUE_HIST)),
        (EMPIRICAL, empirical_spec(EMPIRICAL)),
        ({"dist": "lognormal", "median": "20us", "sigma": 1.0}, lognormal_spec(20_000.0, 1.0)),
        ({"dist": "exp", "mean": "20ns"}, exp_spec(20.0)),
    ]


def test_mixture_of_seven():
    comps = _components()
    w = [0.3, 0.25, 0.001, 0.2, 0.148, 0.1, 0.001]
    d = parse_distribution({"dist": "mixture", "components": [{"weight": wi, **cfg} for wi, (cfg, _) in zip(w, comps)]})
    c = d.compile()
    assert not c.exact  # the lognormal is tabulated
    spec = mixture_spec([s for _, s in comps], w)
    assert_matches(c, spec, "mixture of 7")
    assert c.mean_ns == pytest.approx(d.mean_ns() - 0.5, abs=0.5)
    # Without the lognormal every leaf is exact.
    rest = [(wi, cfg) for wi, (cfg, _) in zip(w, comps) if cfg["dist"] != "lognormal"]
    total = sum(wi for wi, _ in rest)
    exact = parse_distribution({"dist": "mixture", "components": [{"weight": wi / total, **cfg} for wi, cfg in rest]})
    assert exact.compile().exact


def test_nested_mixture():
    """A mixture of mixtures is the flat mixture with multiplied weights, to the last bit."""
    comps = _components()
    inner1 = {"dist": "mixture", "components": [{"weight": 0.5, **comps[0][0]}, {"weight": 0.5, **comps[2][0]}]}
    inner2 = {"dist": "mixture", "components": [{"weight": 0.9, **comps[3][0]},
                                                {"weight": 0.1, "dist": "mixture", "components": [
                                                    {"weight": 0.25, **comps[4][0]}, {"weight": 0.75, **comps[6][0]}]}]}
    nested = parse_distribution({"dist": "mixture", "components": [{"weight": 0.6, **inner1}, {"weight": 0.4, **inner2}]})
    w = [0.6 * 0.5, 0.6 * 0.5, 0.4 * 0.9, 0.4 * 0.1 * 0.25, 0.4 * 0.1 * 0.75]
    flat_cfg = [comps[0][0], comps[2][0], comps[3][0], comps[4][0], comps[6][0]]
    flat = parse_distribution({"dist": "mixture", "components": [{"weight": wi, **cfg} for wi, cfg in zip(w, flat_cfg)]})
    a, b = nested.compile(), flat.compile()
    assert a.exact and a.nleaf == b.nleaf
    for f in ("cum", "kind", "a", "b", "tables"):
        assert np.array_equal(getattr(a, f), getattr(b, f)), f
    spec = mixture_spec([comps[j][1] for j in (0, 2, 3, 4, 6)], w)
    assert_matches(a, spec, "nested mixture")
    # params.compile_mixture nests CompiledDists the same way.
    inner = params.compile_mixture([params.const_component(5.0), params.exp_component(50.0)], [0.25, 0.75])
    outer = params.compile_mixture([inner, params.uniform_component(0, 10)], [0.5, 0.5])
    direct = params.compile_mixture([params.const_component(5.0), params.exp_component(50.0),
                                     params.uniform_component(0, 10)], [0.125, 0.375, 0.5])
    assert np.array_equal(outer.cum, direct.cum) and np.array_equal(outer.b, direct.b)


def test_tiny_weight():
    """A weight of 1e-10 means 1e-10 (64-bit thresholds), not 0 or 2**-32."""
    d = parse_distribution({"dist": "mixture", "components": [
        {"weight": 1 - 1e-10, "dist": "uniform", "low": "100ns", "high": "300ns"},
        {"weight": 1e-10, "dist": "const", "value": "5ms"}]})
    c = d.compile()
    assert c.nleaf == 2
    assert abs(c.weight[1] - 1e-10) <= 1e-19  # to the threshold's 2**-64
    tail = 1 - c.cdf(np.array([300, 5_000_000, 5_000_001]))  # to float64's 1e-16 near 1
    assert abs(tail[0] - 1e-10) <= 1e-15 and abs(tail[1] - 1e-10) <= 1e-15 and tail[2] == 0.0
    # Many components of 1e-10 each (a guide table with a long scan in one bucket).
    many = params.compile_mixture([params.const_component(float(1000 + j)) for j in range(64)],
                                  [1.0] + [1e-10] * 63)
    w = 1e-10 / (1 + 63e-10)  # the weights are normalised
    assert np.abs(many.weight[1:] - w).max() <= 1e-19
    F = many.cdf(np.arange(1000, 1066))
    assert np.abs(np.diff(F)[1:64] - w).max() <= 1e-15  # float64 near 1


def test_exact_flags_and_bounds():
    for cfg, exact in [("1us", True), ({"dist": "uniform", "low": "1us", "high": "2us"}, True),
                       ({"dist": "exp", "mean": "1us"}, True), (ISSUE_HIST, True), (EMPIRICAL, True),
                       ({"dist": "lognormal", "median": "1us", "sigma": 1.0}, False),
                       ({"dist": "mixture", "components": [{"weight": 0.5, "dist": "exp", "mean": "1us"},
                                                           {"weight": 0.5, **EMPIRICAL}]}, True)]:
        c = parse_distribution(cfg).compile()
        assert c.exact is exact, cfg
        assert (c.exp_mean_ns is not None) == (cfg == {"dist": "exp", "mean": "1us"})
        # max_ns bounds every value: the cdf is 1 just above it (and the largest words give it).
        assert c.cdf(np.array([c.max_ns + 1]))[0] == 1.0
        top = np.array([0xFFFFFFFF], dtype=np.uint64)
        worst = rng.sample(c, (top, top, np.zeros(1, np.uint64), np.zeros(1, np.uint64)))  # u2 = 0 -> 1
        assert worst[0] <= c.max_ns
        if c.nleaf == 1 and not c.is_const and int(c.kind[0]) == rng.LEAF_EXP:
            assert worst[0] == c.max_ns


def test_survival_integral():
    """∫_x^y P(Y >= u) du lies between the sums of P(X >= k + 1) and P(X >= k) over whole k."""
    dists = [parse_distribution(ISSUE_HIST).compile(), parse_distribution(EMPIRICAL_ATOM).compile(),
             params.uniform(100.0, 5000.0), params.exponential(700.0), params.const(250.0),
             parse_distribution({"dist": "lognormal", "median": "1us", "sigma": 0.5}).compile()]
    for c in dists:
        for x, y in [(0, 10), (0, 1000), (150, 2600), (999, 1001), (3000, 8000)]:
            k = np.arange(x, y)
            lo = np.sum(1 - c.cdf(k + 1))
            hi = np.sum(1 - c.cdf(k))
            s = c.survival_integral(x, y)
            assert lo - 1e-6 <= s <= hi + 1e-6, (c, x, y, lo, s, hi)
        # The whole integral is E[Y]; splitting the range adds up.
        assert c.survival_integral(0, math.inf) == pytest.approx(
            c.survival_integral(0, 500) + c.survival_integral(500, math.inf), rel=1e-12)
        assert c.survival_integral(-5, 0) == pytest.approx(5.0)
    assert params.exponential(700.0).survival_integral(0, math.inf) == pytest.approx(700.0)
    assert params.uniform(100.0, 5000.0).survival_integral(0, math.inf) == pytest.approx(2550.0)
    h = parse_distribution(ISSUE_HIST).compile()
    assert h.survival_integral(300, math.inf) == pytest.approx(1.5e6 / 100_001 - 300 / 100_001, rel=1e-9)


def test_const_ignores_the_words():
    c = params.const(1234.0)
    assert c.is_const and c.const_ns == 1234
    words = rng.draw_words(1, np.arange(1000), rng.COPY, 0, 1, 0, 0)
    assert (rng.sample(c, words) == 1234).all()
    for v in (0.0, 0.4, 7.5, 2.0 ** 41):
        k = params.const(v)
        assert k.is_const and k.const_ns == min(round(v), params.CLIP_NS)


# -- sampling tests -----------------------------------------------------------------------------

def _binom_ok(count, n, p):
    lo, hi = stats.binom.interval(0.999, n, p)
    return lo <= count <= hi


SAMPLED = {
    "histogram": (ISSUE_HIST, [(100, 200), (200, 300), (300, 1_000_000), (1_000_000, 2_000_000)]),
    "bpftrace": (BPF_HIST, [(256, 1024), (1024, 2048), (4096, 8192), (16384, 300_000)]),
    "empirical": (EMPIRICAL, [(600, 1000), (1000, 1500), (2000, 5000), (5000, 10**7)]),
    "uniform": ({"dist": "uniform", "low": "100ns", "high": "5us"}, [(100, 101), (100, 1000), (4000, 5000)]),
    "exp": ({"dist": "exp", "mean": "1us"}, [(0, 1), (0, 100), (1000, 2000), (7000, 10**9)]),
    "lognormal": ({"dist": "lognormal", "median": "1us", "sigma": 2.0},
                  [(0, 10), (10, 1000), (1000, 5000), (100_000, 10**12)]),
    "mixture": ({"dist": "mixture", "components": [{"weight": 0.9, "dist": "uniform", "low": "100ns", "high": "300ns"},
                                                   {"weight": 0.09, **EMPIRICAL},
                                                   {"weight": 0.01, "dist": "mixture", "components": [
                                                       {"weight": 0.5, "dist": "exp", "mean": "1ms"},
                                                       {"weight": 0.5, "dist": "const", "value": "4ms"}]}]},
                [(100, 300), (300, 2000), (4_000_000, 4_000_001), (1_000_000, 3_000_000)]),
}


@pytest.mark.parametrize("kind", list(SAMPLED))
def test_sampling_matches_exact_cdf(kind):
    cfg, regions = SAMPLED[kind]
    c = parse_distribution(cfg).compile()
    n = 400_000
    seed = 20240 + list(SAMPLED).index(kind)
    x = rng.sample(c, rng.draw_words(seed, np.arange(n), rng.COPY, 3, 1, 2, 0))
    assert x.dtype == np.int64 and x.min() >= 0 and x.max() <= c.max_ns
    for a, b in regions:
        p = float(np.diff(c.cdf(np.array([a, b])))[0])
        count = int(((x >= a) & (x < b)).sum())
        assert _binom_ok(count, n, p), (kind, a, b, count, n * p)
    # The mean, to 3.3 standard errors (99.9%).
    se = x.std() / math.sqrt(n)
    if se > 0:
        assert abs(x.mean() - c.mean_ns) <= 3.3 * se, (kind, x.mean(), c.mean_ns, se)
