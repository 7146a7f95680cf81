"""Interval estimates computed from stored counts and histograms only.

Where it sits: above mcexplore.results (it reads ``Aggregate`` counts and integer histograms, never
per-trial records), below the CLI, sweeps, comparisons and plots. Because everything here is a
function of counts, a table of results can be merged (``Aggregate.merge``) before any interval is
computed, and two runs that merge to the same counts get the same intervals.

Methods (details and citations in docs/analysis.md):

- ``proportion_ci``: Wilson score (default) or Clopper-Pearson ("beta") two-sided intervals: the
  Wilson interval by statsmodels' ``proportion_confint`` formula, written out here with
  ``scipy.special.ndtri`` for the critical value (the same floating-point operations, so the same
  numbers bit for bit, without importing scipy.stats, which statsmodels does and which costs about
  half a second at every start of the CLI); "beta" by ``proportion_confint`` itself. When the count is 0 the interval is the exact one-sided
  Clopper-Pearson upper bound 1 - alpha**(1/n) (the "rule of three" at 95 %: about 3/n) with
  lo = 0, flagged ``one_sided=True``; symmetrically, when count == n, lo = alpha**(1/n), hi = 1.
  A zero count is the common case for a rare race, and the question then is one-sided ("how large
  could the probability still be?"), so all of alpha goes to the upper side.
- ``hist_quantile_ci``: the distribution-free interval for a quantile from two order statistics
  X_(r) <= xi_q <= X_(s), with r, s quantiles of the Binomial(n, q) distribution (valid for
  continuous and discrete distributions alike; ``binom_ppf``, from scipy.special's binomial cdf),
  then widened to the edges of the histogram buckets that hold
  X_(r) and X_(s): the bucketing can only widen it, so the interval is conservative (coverage at
  least the nominal level, usually more).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from .results import HIST_METRICS, OUTCOMES, SUMS, Aggregate, hist_edges

METHODS = ("wilson", "beta")
QUANTILES = (0.5, 0.9, 0.99)
_EDGES = hist_edges()

if TYPE_CHECKING:  # pandas and scipy are imported where they are used: the CLI starts faster
    import pandas as pd


@dataclass(frozen=True)
class Proportion:
    """A proportion count/n with a confidence interval [lo, hi] at ``level``.

    ``one_sided`` is True when count is 0 (then lo = 0 and hi is a one-sided upper bound at
    ``level``) or count == n (hi = 1 and lo is a one-sided lower bound).
    """

    count: int
    n: int
    p: float
    lo: float
    hi: float
    level: float
    method: str
    one_sided: bool

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2.0


def _alpha(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return 1.0 - level


def proportion_ci(count: int, n: int, level: float = 0.95, method: str = "wilson") -> Proportion:
    """Point estimate and interval for a binomial proportion (see the module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    count, n = int(count), int(n)
    if n < 0 or count < 0 or count > n:
        raise ValueError(f"need 0 <= count <= n, got count={count}, n={n}")
    alpha = _alpha(level)
    if n == 0:
        return Proportion(0, 0, math.nan, 0.0, 1.0, level, method, False)
    p = count / n
    if count == 0:
        return Proportion(count, n, 0.0, 0.0, -math.expm1(math.log(alpha) / n), level, method, True)
    if count == n:
        return Proportion(count, n, 1.0, math.exp(math.log(alpha) / n), 1.0, level, method, True)
    if method == "wilson":
        lo, hi = _wilson(count, n, alpha)
    else:
        from statsmodels.stats.proportion import proportion_confint

        lo, hi = proportion_confint(count, n, alpha=alpha, method=method)
    return Proportion(count, n, p, float(max(lo, 0.0)), float(min(hi, 1.0)), level, method, False)


def _wilson(count: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson score interval at level 1 - alpha: statsmodels' ``proportion_confint(count, n, alpha,
    "wilson")`` operation for operation (its critical value ``norm.isf(alpha / 2)`` is
    ``-ndtri(alpha / 2)``), clipped to [0, 1] as it does."""
    from scipy.special import ndtri

    crit = -float(ndtri(alpha / 2.0))
    q_ = count / n
    crit2 = crit ** 2
    denom = 1 + crit2 / n
    center = (q_ + crit2 / (2 * n)) / denom
    dist = crit * math.sqrt(q_ * (1.0 - q_) / n + crit2 / (4.0 * (n * n)))
    dist /= denom
    return min(max(center - dist, 0.0), 1.0), min(max(center + dist, 0.0), 1.0)


# ---------------------------------------------------------------------------------------------
# Quantiles from HDR histograms
# ---------------------------------------------------------------------------------------------

def _bucket_lo(b: int) -> float:
    return float(_EDGES[b])


def _bucket_hi(b: int) -> float:
    """Largest integer value bucket b can hold (buckets hold integers in [edge_b, edge_{b+1}))."""
    return float(_EDGES[b + 1] - 1) if b + 1 < len(_EDGES) else math.inf


def _order_stat_bucket(cum: np.ndarray, k: int) -> int:
    """Bucket holding the k-th smallest value (1-based) given cumulative bucket counts."""
    return int(np.searchsorted(cum, k, side="left"))


def _check_hist(hist) -> np.ndarray:
    h = np.asarray(hist, dtype=np.int64)
    if h.ndim != 1 or (h < 0).any():
        raise ValueError("a histogram is a 1-d array of non-negative integer counts")
    return h


def hist_quantile(hist, q: float) -> float:
    """The q-quantile (the ceil(q*n)-th smallest value) of the values counted in ``hist``.

    Returned as the midpoint of the integers its bucket holds: exact for values below 8 (buckets of
    width one), within 1/16 of the value above (buckets span at most 1/8 of their lower edge).
    NaN for an empty histogram.
    """
    h = _check_hist(hist)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    n = int(h.sum())
    if n == 0:
        return math.nan
    k = max(1, math.ceil(q * n - 1e-12))
    b = _order_stat_bucket(np.cumsum(h), k)
    return (_bucket_lo(b) + _bucket_hi(b)) / 2.0


@dataclass(frozen=True)
class QuantileCI:
    q: float
    value: float
    lo: float
    hi: float
    n: int
    level: float


def order_stat_ranks(n: int, q: float, level: float = 0.95) -> tuple[int, int]:
    """1-based ranks (r, s) with P(X_(r) <= xi_q <= X_(s)) >= level for any distribution.

    P(X_(r) > xi_q) <= P(Bin(n, q) <= r - 1) and P(X_(s) < xi_q) <= P(Bin(n, q) >= s), so with
    r - 1 < the alpha/2 quantile and s - 1 >= the 1 - alpha/2 quantile of Bin(n, q) the union
    bound gives coverage >= 1 - alpha. r = 0 means "no lower order statistic needed" (use the
    support's lower end); s = n + 1 means the sample is too small to bound the quantile above.
    """
    alpha = _alpha(level)
    r = binom_ppf(alpha / 2, n, q)  # smallest r with F(r) >= alpha/2, so F(r-1) < alpha/2
    s = binom_ppf(1 - alpha / 2, n, q) + 1  # F(s-1) >= 1 - alpha/2
    return max(r, 0), min(s, n + 1)


def binom_ppf(u: float, n: int, p: float) -> int:
    """The u-quantile of Binomial(n, p), 0 < u < 1: the smallest k with P(Bin(n, p) <= k) >= u.

    Found from scipy.special's continuous inverse ``bdtrik`` and settled with its cdf ``bdtr``
    (importing scipy.stats costs about half a second at start-up; scipy.special is loaded anyway).
    It gives ``scipy.stats.binom.ppf(u, n, p)`` over the levels and quantiles used here for n up to
    about 10**8; near n = 10**9 boost's search behind scipy.stats can end one step away, where this
    one still meets the definition by ``bdtr``.
    """
    from scipy.special import bdtr, bdtrik

    n = int(n)
    if not 0.0 < u < 1.0:
        raise ValueError(f"u must be in (0, 1), got {u}")
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    guess = float(bdtrik(u, n, p))
    k = min(max(math.ceil(guess), 0), n) if math.isfinite(guess) else min(max(round(n * p), 0), n)
    while k > 0 and bdtr(k - 1, n, p) >= u:
        k -= 1
    while k < n and bdtr(k, n, p) < u:
        k += 1
    return k


def hist_quantile_ci(hist, q: float, level: float = 0.95) -> QuantileCI:
    """Distribution-free (conservative) interval for the q-quantile from a bucket histogram.

    ``lo`` is the lower edge of the bucket holding X_(r) (0 when r = 0: values are >= 0), ``hi``
    the largest value the bucket holding X_(s) can hold (inf when s > n: too few values).
    """
    h = _check_hist(hist)
    n = int(h.sum())
    if n == 0:
        return QuantileCI(q, math.nan, 0.0, math.inf, 0, level)
    cum = np.cumsum(h)
    r, s = order_stat_ranks(n, q, level)
    lo = 0.0 if r < 1 else _bucket_lo(_order_stat_bucket(cum, r))
    hi = math.inf if s > n else _bucket_hi(_order_stat_bucket(cum, s))
    return QuantileCI(q, hist_quantile(h, q), lo, hi, n, level)


# ---------------------------------------------------------------------------------------------
# Summaries of an aggregate
# ---------------------------------------------------------------------------------------------

class Summary:
    """Tidy tables for one aggregate: ``outcomes`` (one row per outcome), ``quantiles`` (one row per
    metric x q) and ``means`` (per-trial means of the summed fields).

    ``outcomes`` and ``quantiles`` are pandas DataFrames, built on first access from the rows
    (``outcome_records()`` and ``quantile_records()`` give the rows without importing pandas).
    """

    def __init__(self, trials, level: float, method: str, outcomes, quantiles, means: dict):
        self.trials = trials
        self.level = level
        self.method = method
        self._outcomes = outcomes  # a list of row dicts or a DataFrame
        self._quantiles = quantiles
        self.means = means

    @property
    def outcomes(self) -> pd.DataFrame:
        self._outcomes = _frame(self._outcomes)
        return self._outcomes

    @property
    def quantiles(self) -> pd.DataFrame:
        self._quantiles = _frame(self._quantiles)
        return self._quantiles

    def outcome_records(self) -> list[dict]:
        return _records(self._outcomes)

    def quantile_records(self) -> list[dict]:
        return _records(self._quantiles)

    def __repr__(self) -> str:
        return (f"Summary(trials={self.trials!r}, level={self.level!r}, method={self.method!r}, "
                f"outcomes={self.outcome_records()!r}, quantiles={self.quantile_records()!r}, "
                f"means={self.means!r})")

    def to_dict(self) -> dict:
        def clean(records):
            out = []
            for r in records:
                out.append({k: (None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else
                                (v.item() if hasattr(v, "item") else v)) for k, v in r.items()})
            return out

        return {"trials": self.trials, "level": self.level, "method": self.method,
                "outcomes": clean(self.outcome_records()),
                "quantiles": clean(self.quantile_records()),
                "means": dict(self.means)}


def _frame(rows):
    if isinstance(rows, (list, tuple)):
        import pandas as pd

        return pd.DataFrame(list(rows))
    return rows


def _records(rows) -> list[dict]:
    if isinstance(rows, (list, tuple)):
        return [dict(r) for r in rows]
    return rows.to_dict("records")


def summarize(aggregate: Aggregate, level: float = 0.95, method: str = "wilson",
              quantiles=QUANTILES) -> Summary:
    """Intervals for every outcome, quantiles of attempts / t_migrated / max_wait, per-trial means.

    ``t_migrated`` quantiles are over migrated trials only (its histogram counts only those).
    Times are in ns; ``attempts`` is a count.
    """
    n = int(aggregate.trials)
    rows = []
    for o in OUTCOMES:
        pr = proportion_ci(aggregate.counts[o], n, level, method)
        rows.append({"outcome": o, "count": pr.count, "trials": n, "p": pr.p, "lo": pr.lo,
                     "hi": pr.hi, "one_sided": pr.one_sided})
    qrows = []
    for m in HIST_METRICS:
        for q in quantiles:
            ci = hist_quantile_ci(aggregate.hists[m], q, level)
            qrows.append({"metric": m, "q": q, "value": ci.value, "lo": ci.lo, "hi": ci.hi, "n": ci.n})
    means = {s: (aggregate.sums[s] / n if n else math.nan) for s in SUMS}
    return Summary(n, level, method, rows, qrows, means)


def summarize_many(aggregates: dict, level: float = 0.95, method: str = "wilson") -> Summary:
    """``summarize`` for several labelled aggregates (label -> Aggregate or StrategyRun), stacked
    with a leading ``strategy`` column (``trials`` and ``means`` become per-label dicts)."""
    import pandas as pd

    outs, qs, means, trials = [], [], {}, {}
    for label, a in aggregates.items():
        a = getattr(a, "aggregate", a)
        s = summarize(a, level, method)
        outs.append(s.outcomes.assign(strategy=label))
        qs.append(s.quantiles.assign(strategy=label))
        means[label], trials[label] = s.means, s.trials
    o = pd.concat(outs, ignore_index=True)
    q = pd.concat(qs, ignore_index=True)
    o = o[["strategy"] + [c for c in o.columns if c != "strategy"]]
    q = q[["strategy"] + [c for c in q.columns if c != "strategy"]]
    return Summary(trials, level, method, o, q, means)

