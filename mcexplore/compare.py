"""Paired comparison of strategies on common random numbers.

Where it sits: above mcexplore.api (``compare`` runs strategies with ``records=True``) and
mcexplore.stats; the CLI's ``compare`` command prints its table.

Every strategy of one run sees the same trials with the same seed (MODEL.md 2), so trial t of
strategy A and trial t of strategy B are a *pair*: the same world (access times, unmap costs,
wake latencies) seen through two waiting disciplines. For an outcome, each pair falls in one cell of

                      B has it    B has not
        A has it        n11          n10
        A has not       n01          n00

and the comparison uses only this table:

- each marginal probability with its interval (mcexplore.stats.proportion_ci);
- the paired difference d = p_B - p_A = (n01 - n10) / n with Newcombe's hybrid score interval
  for paired data ("method 10": Newcombe 1998, Stat. Med. 17:2635-2650), which combines the Wilson
  intervals of the two marginals with the phi correlation coefficient of the table;
- McNemar's exact test of p_A = p_B: a two-sided binomial test of n01 against n10 + n01 trials
  with p = 1/2 (statsmodels ``mcnemar(..., exact=True)``);
- the gain over an unpaired design: with independent samples of n trials each, Var(d) =
  (p_A q_A + p_B q_B) / n; paired, Var(d) = (p_A q_A + p_B q_B - 2 cov) / n with
  cov = n11/n - p_A p_B. Their ratio R says how many unpaired trials per strategy would give the
  same precision: n_equiv = R * n. The ratio of the interval widths (Newcombe's unpaired hybrid
  score interval, phi = 0, against the paired one) is reported too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .results import OUTCOMES
from .stats import proportion_ci

if TYPE_CHECKING:  # pandas is imported where a table is built (the CLI starts without it)
    import pandas as pd


@dataclass(frozen=True)
class PairedTable:
    n11: int
    n10: int
    n01: int
    n00: int

    @property
    def n(self) -> int:
        return self.n11 + self.n10 + self.n01 + self.n00

    @classmethod
    def from_arrays(cls, a, b) -> "PairedTable":
        a = np.asarray(a).astype(bool)
        b = np.asarray(b).astype(bool)
        if a.shape != b.shape:
            raise ValueError("paired arrays must have the same length")
        return cls(int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()), int((~a & ~b).sum()))


def _wilson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Plain two-sided Wilson interval (Newcombe's building block; no one-sided special case)."""
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def phi_coefficient(t: PairedTable) -> float:
    """Pearson correlation of the two indicators; 0 when a margin is empty (Newcombe's convention)."""
    den = (t.n11 + t.n10) * (t.n01 + t.n00) * (t.n11 + t.n01) * (t.n10 + t.n00)
    if den == 0:
        return 0.0
    return (t.n11 * t.n00 - t.n10 * t.n01) / math.sqrt(float(den))


def newcombe_diff_ci(t: PairedTable, level: float = 0.95, paired: bool = True) -> tuple[float, float, float]:
    """(d, lo, hi) for d = p_B - p_A (Newcombe 1998, method 10).

    With p1 = p_B, p2 = p_A, Wilson intervals (l1, u1), (l2, u2) and phi as above:
    lo = d - sqrt((p1 - l1)^2 - 2 phi (p1 - l1)(u2 - p2) + (u2 - p2)^2),
    hi = d + sqrt((u1 - p1)^2 - 2 phi (u1 - p1)(p2 - l2) + (p2 - l2)^2).
    ``paired=False`` sets phi = 0: Newcombe's hybrid score interval for two independent samples
    of n each (Newcombe 1998, Stat. Med. 17:873-890, method 10).
    """
    n = t.n
    if n == 0:
        return math.nan, -1.0, 1.0
    alpha = 1.0 - level
    kA, kB = t.n11 + t.n10, t.n11 + t.n01
    p1, p2 = kB / n, kA / n
    l1, u1 = _wilson(kB, n, alpha)
    l2, u2 = _wilson(kA, n, alpha)
    phi = phi_coefficient(t) if paired else 0.0
    d = p1 - p2
    dl = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    du = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return d, max(-1.0, d - dl), min(1.0, d + du)


def mcnemar_exact_p(t: PairedTable) -> float:
    """Two-sided exact McNemar p-value (1.0 when there are no discordant pairs)."""
    if t.n10 + t.n01 == 0:
        return 1.0
    from statsmodels.stats.contingency_tables import mcnemar

    return float(mcnemar([[t.n11, t.n10], [t.n01, t.n00]], exact=True).pvalue)


def variance_ratio(t: PairedTable) -> float:
    """Var(d) unpaired / Var(d) paired (plug-in estimates); inf if the paired variance is 0 but the
    unpaired is not; NaN if both are 0 (nothing to estimate)."""
    n = t.n
    if n == 0:
        return math.nan
    pA, pB = (t.n11 + t.n10) / n, (t.n11 + t.n01) / n
    unp = pA * (1 - pA) + pB * (1 - pB)
    cov = t.n11 / n - pA * pB
    par = unp - 2 * cov  # = (n10 + n01)/n - ((n01 - n10)/n)^2
    if par <= 1e-300:
        return math.inf if unp > 0 else math.nan
    return unp / par


def paired_row(a, b, level: float = 0.95, method: str = "wilson") -> dict:
    """Every statistic of the comparison of indicator arrays ``a`` (baseline) and ``b``."""
    t = PairedTable.from_arrays(a, b)
    pa = proportion_ci(t.n11 + t.n10, t.n, level, method)
    pb = proportion_ci(t.n11 + t.n01, t.n, level, method)
    d, lo, hi = newcombe_diff_ci(t, level, paired=True)
    _, ulo, uhi = newcombe_diff_ci(t, level, paired=False)
    vr = variance_ratio(t)
    w, uw = hi - lo, uhi - ulo
    return {
        "trials": t.n,
        "count_a": pa.count, "p_a": pa.p, "lo_a": pa.lo, "hi_a": pa.hi, "one_sided_a": pa.one_sided,
        "count_b": pb.count, "p_b": pb.p, "lo_b": pb.lo, "hi_b": pb.hi, "one_sided_b": pb.one_sided,
        "n11": t.n11, "n10": t.n10, "n01": t.n01, "n00": t.n00,
        "diff": d, "diff_lo": lo, "diff_hi": hi,
        "mcnemar_p": mcnemar_exact_p(t),
        "variance_ratio": vr,
        "equiv_unpaired_trials": vr * t.n if math.isfinite(vr) else vr,
        "unpaired_diff_lo": ulo, "unpaired_diff_hi": uhi,
        "width_ratio": (uw / w) if w > 0 else (math.inf if uw > 0 else math.nan),
    }


@dataclass
class Comparison:
    """Result of ``compare``: ``table`` has one row per (strategy vs baseline, outcome)."""

    baseline: str
    labels: list
    trials: int
    seed: int
    backend: str
    level: float
    table: pd.DataFrame
    run: object = None  # the RunResult (records included)

    def to_dict(self) -> dict:
        def clean(v):
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
            return v

        return {"baseline": self.baseline, "labels": list(self.labels), "trials": self.trials,
                "seed": self.seed, "backend": self.backend, "level": self.level,
                "rows": [{k: clean(v) for k, v in r.items()} for r in self.table.to_dict("records")]}


def compare_records(records: dict, baseline: str | None = None, outcomes=OUTCOMES, level: float = 0.95,
                    method: str = "wilson") -> pd.DataFrame:
    """Paired comparison of per-trial records (label -> Records or DataFrame), each vs ``baseline``
    (default: the first label). The records must cover the same trials (common random numbers)."""
    import pandas as pd

    labels = list(records)
    baseline = baseline or labels[0]
    if baseline not in records:
        raise ValueError(f"baseline {baseline!r} is not among {labels}")
    base = records[baseline]
    base_trial0 = getattr(base, "trial0", None)
    rows = []
    for label in labels:
        if label == baseline:
            continue
        rec = records[label]
        if len(rec) != len(base) or getattr(rec, "trial0", None) != base_trial0:
            raise ValueError(f"records of {label!r} and {baseline!r} do not cover the same trials")
        for o in outcomes:
            r = paired_row(np.asarray(base[o]), np.asarray(rec[o]), level, method)
            rows.append({"a": baseline, "b": label, "outcome": o, **r})
    return pd.DataFrame(rows)


def compare(scenario, labels, *, trials: int, seed: int = 0, backend: str = "auto", level: float = 0.95,
            method: str = "wilson", outcomes=OUTCOMES, progress=None) -> Comparison:
    """Run ``labels`` of ``scenario`` on common random numbers and compare each with the first.

    ``progress=True`` draws one live bar per strategy on stderr (trials done, rate, ETA:
    ``mcexplore.api.run``); anything else runs silently.
    """
    from .api import run

    labels = list(labels)
    if len(labels) < 2:
        raise ValueError("compare needs at least two strategies")
    res = run(scenario, trials=trials, seed=seed, labels=labels, backend=backend, records=True,
              progress=progress)
    table = compare_records({lab: res[lab].records for lab in labels}, labels[0], outcomes, level, method)
    return Comparison(labels[0], labels, trials, seed, res.backend, level, table, res)


def format_comparison(c: Comparison, outcomes=None) -> str:
    """A plain-text report of a Comparison (one block per strategy vs the baseline)."""

    def pct(p):
        if p is None or (isinstance(p, float) and math.isnan(p)):
            return "nan"
        # Bounds near 1 need more digits, or a lower bound of 99.985% would print as 100%.
        return f"{100 * p:.5g}%" if 0.99 < p < 1 else f"{100 * p:.3g}%"

    def ci(p, lo, hi, one):
        return f"<= {pct(hi)}" if one and p == 0 else (f">= {pct(lo)}" if one else f"{pct(p)} [{pct(lo)}, {pct(hi)}]")

    lines = [f"paired comparison on common random numbers: {c.trials} trials, seed {c.seed}, "
             f"backend {c.backend}, {100 * c.level:g}% intervals, baseline {c.baseline}"]
    t = c.table
    if outcomes:
        t = t[t.outcome.isin(outcomes)]
    for b, g in t.groupby("b", sort=False):
        lines.append(f"\n{b} vs {c.baseline}")
        lines.append(f"  {'outcome':<12} {c.baseline:>24} {b:>24}  {'difference (B - A)':>30}  "
                     f"{'McNemar p':>9}  {'disc.':>11}  {'unpaired equiv.':>15}")
        for r in g.itertuples():
            d = f"{100 * r.diff:+.3g}% [{100 * r.diff_lo:+.3g}, {100 * r.diff_hi:+.3g}]"
            eq = r.equiv_unpaired_trials
            eqs = "-" if isinstance(eq, float) and math.isnan(eq) else ("inf" if eq == math.inf else f"{eq:,.0f}")
            lines.append(f"  {r.outcome:<12} {ci(r.p_a, r.lo_a, r.hi_a, r.one_sided_a):>24} "
                         f"{ci(r.p_b, r.lo_b, r.hi_b, r.one_sided_b):>24}  {d:>30}  {r.mcnemar_p:>9.3g}  "
                         f"{f'{r.n10}/{r.n01}':>11}  {eqs:>15}")
    lines.append("\ndisc. = discordant pairs (A only / B only); unpaired equiv. = trials per strategy an "
                 "unpaired design would need for the same precision.")
    return "\n".join(lines)

