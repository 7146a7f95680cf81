"""Interval estimates computed from stored counts and histograms only.

Where it sits: above mcexplore.results (it reads ``Aggregate`` counts and integer histograms, never
per-trial records), below the CLI, sweeps, comparisons and plots. Because everything here is a
function of counts, a table of results can be merged (``Aggregate.merge``) before any interval is
computed, and two runs that merge to the same counts get the same intervals.

Methods (details and citations in docs/analysis.md):

- ``proportion_ci``: Wilson score (default) or Clopper-Pearson ("beta") two-sided intervals via
  statsmodels' ``proportion_confint``. When the count is 0 the interval is the exact one-sided
  Clopper-Pearson upper bound 1 - alpha**(1/n) (the "rule of three" at 95 %: about 3/n) with
  lo = 0, flagged ``one_sided=True``; symmetrically, when count == n, lo = alpha**(1/n), hi = 1.
  A zero count is the common case for a rare race, and the question then is one-sided ("how large
  could the probability still be?"), so all of alpha goes to the upper side.
- ``hist_quantile_ci``: the distribution-free interval for a quantile from two order statistics
  X_(r) <= xi_q <= X_(s), with r, s from the Binomial(n, q) distribution (valid for continuous
  and discrete distributions alike), then widened to the edges of the histogram buckets that hold
  X_(r) and X_(s): the bucketing can only widen it, so the interval is conservative (coverage at
  least the nominal level, usually more).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as _st

from .results import HIST_BINS, HIST_METRICS, OUTCOMES, SUMS, Aggregate, hist_edges

METHODS = ("wilson", "beta")
QUANTILES = (0.5, 0.9, 0.99)
_EDGES = hist_edges()


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
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(count, n, alpha=alpha, method=method)
    return Proportion(count, n, p, float(max(lo, 0.0)), float(min(hi, 1.0)), level, method, False)


def proportion_frame(counts, trials, level: float = 0.95, method: str = "wilson") -> pd.DataFrame:
    """Vector form of ``proportion_ci``: columns p, lo, hi, one_sided for aligned count/trial arrays."""
    rows = [proportion_ci(c, n, level, method) for c, n in zip(np.asarray(counts), np.asarray(trials))]
    return pd.DataFrame({"p": [r.p for r in rows], "lo": [r.lo for r in rows],
                         "hi": [r.hi for r in rows], "one_sided": [r.one_sided for r in rows]})


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
    r = int(_st.binom.ppf(alpha / 2, n, q))  # smallest r with F(r) >= alpha/2, so F(r-1) < alpha/2
    s = int(_st.binom.ppf(1 - alpha / 2, n, q)) + 1  # F(s-1) >= 1 - alpha/2
    return max(r, 0), min(s, n + 1)


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

@dataclass
class Summary:
    """Tidy tables for one aggregate: ``outcomes`` (one row per outcome), ``quantiles`` (one row per
    metric x q) and ``means`` (per-trial means of the summed fields)."""

    trials: int
    level: float
    method: str
    outcomes: pd.DataFrame
    quantiles: pd.DataFrame
    means: dict

    def to_dict(self) -> dict:
        def clean(records):
            out = []
            for r in records:
                out.append({k: (None if isinstance(v, float) and (math.isnan(v) or math.isinf(v)) else
                                (v.item() if hasattr(v, "item") else v)) for k, v in r.items()})
            return out

        return {"trials": self.trials, "level": self.level, "method": self.method,
                "outcomes": clean(self.outcomes.to_dict("records")),
                "quantiles": clean(self.quantiles.to_dict("records")),
                "means": dict(self.means)}


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
    return Summary(n, level, method, pd.DataFrame(rows), pd.DataFrame(qrows), means)


def summarize_many(aggregates: dict, level: float = 0.95, method: str = "wilson") -> Summary:
    """``summarize`` for several labelled aggregates (label -> Aggregate or StrategyRun), stacked
    with a leading ``strategy`` column (``trials`` and ``means`` become per-label dicts)."""
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


def empty_hist() -> np.ndarray:
    return np.zeros(HIST_BINS, dtype=np.int64)
