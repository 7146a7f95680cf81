"""Rare events: importance-sampling estimates with intervals, paired comparisons under one tilt,
and the cross-entropy method that chooses the tilt.

Where it sits: above mcexplore.api (it runs compiled strategies through ``api.run_compiled`` with
records) and mcexplore.tilt (the tilted worlds and the weights), below the CLI and sweeps. It never
learns which engine ran beyond its name.

The estimator (docs/analysis.md, "Rare events"). Trials are drawn in the tilted world q; trial i
has likelihood ratio w_i = p(trial)/q(trial) (mcexplore.tilt) and outcome indicator I_i. Then

    p_hat = (1/n) sum_i w_i I_i

is unbiased for the outcome's probability in the untilted world p, and its standard error is
estimated from the same terms' empirical variance. The interval is p_hat +- z se (normal, as the
central limit theorem gives it for n independent terms w_i I_i); it is honest only when enough
trials carry the estimate, which the effective sample size of the hits says:
ESS = (sum w_i I_i)^2 / sum (w_i I_i)^2 (the number of equally weighted hits the estimate is
worth). ``Estimate.warning`` is set when ESS < MIN_ESS, when no trial hit, and when the weights of
all trials do not average to 1 within their own interval (the tilt leaves part of p's trials
almost never sampled: weight degeneracy).

Every sum is exact (``ExactSum``: float64 values added as integers), so an estimate does not
depend on how its trials were batched, chunked or merged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import tilt as _tilt
from .constants import OUTCOMES
from .stats import _alpha

MIN_ESS = 30  # below this many effective hits the normal interval is not to be trusted
UNCOVERED_SHARE = 0.01  # see _uncovered
_SCALE = 1074  # ExactSum: values are integers in units of 2**-1074 (the smallest float64)


# --------------------------------------------------------------------------------------------
# Exact sums


def exact_sum(values) -> int:
    """sum(values) * 2**1074 exactly, as a Python int (float64 values, finite, any sign)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[v != 0]
    if not len(v):
        return 0
    if not np.all(np.isfinite(v)):
        raise OverflowError("a weight is not finite")
    m, e = np.frexp(v)  # v = m * 2**e, 0.5 <= |m| < 1
    mant = np.ldexp(m, 53).astype(np.int64)  # exact, |mant| < 2**53
    ex = e.astype(np.int64) - 53 + _SCALE  # v * 2**1074 = mant * 2**ex, ex >= 0 for every float64
    lo_bits = np.int64(1 << 26)
    total = 0
    for x in np.unique(ex).tolist():
        sel = mant[ex == x]
        # Two 27-bit halves so that the int64 sums cannot overflow (up to 2**36 terms).
        hi = (sel >> 26).sum()
        lo = (sel & (lo_bits - 1)).sum()
        part = (int(hi) << 26) + int(lo)
        total += part << x if x >= 0 else part >> -x
    return total


def as_float(s: int) -> float:
    """An exact sum back as the float64 nearest to it."""
    return s / (1 << _SCALE) if s else 0.0


@dataclass
class ISAggregate:
    """Mergeable sums of a tilted run of one strategy: the trials, the weights of all of them and,
    per outcome, the hits and the weighted hits (all sums exact)."""

    n: int = 0
    sw: int = 0
    sw2: int = 0
    hits: dict = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    swi: dict = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    swi2: dict = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    wmax: dict = field(default_factory=lambda: {o: 0.0 for o in OUTCOMES})

    @classmethod
    def from_records(cls, rec, lay) -> "ISAggregate":
        return cls.from_weights(rec, _tilt.weights(lay, rec.stats))

    @classmethod
    def from_weights(cls, rec, w) -> "ISAggregate":
        """From the records and their trials' weights (mcexplore.tilt.weights)."""
        with np.errstate(over="ignore"):
            w2 = w * w
        a = cls(n=len(rec), sw=exact_sum(w), sw2=_exact_or_inf(w2))
        for o in OUTCOMES:
            hit = rec[o] != 0
            wi = w[hit]
            a.hits[o] = int(hit.sum())
            a.swi[o] = exact_sum(wi)
            a.swi2[o] = _exact_or_inf(w2[hit])
            a.wmax[o] = float(wi.max()) if len(wi) else 0.0
        return a

    def merge(self, other: "ISAggregate") -> "ISAggregate":
        out = ISAggregate(self.n + other.n, self.sw + other.sw, _add(self.sw2, other.sw2))
        for o in OUTCOMES:
            out.hits[o] = self.hits[o] + other.hits[o]
            out.swi[o] = self.swi[o] + other.swi[o]
            out.swi2[o] = _add(self.swi2[o], other.swi2[o])
            out.wmax[o] = max(self.wmax[o], other.wmax[o])
        return out

    def estimate(self, outcome: str, level: float = 0.95) -> "Estimate":
        return _estimate(outcome, self.n, self.swi[outcome], self.swi2[outcome], self.hits[outcome],
                         self.wmax[outcome], level, weight_check=self.weight_check(level))

    def weight_check(self, level: float = 0.95) -> tuple[float, float, float]:
        """(mean weight, its interval): 1 in expectation under any valid tilt."""
        e = _estimate("weight", self.n, self.sw, self.sw2, self.n, 0.0, level)
        return e.estimate, e.lo, e.hi


def _exact_or_inf(v) -> int | float:
    v = np.asarray(v, dtype=np.float64)
    return math.inf if not np.all(np.isfinite(v)) else exact_sum(v)


def _add(a, b):
    return math.inf if (a == math.inf or b == math.inf) else a + b


@dataclass
class Estimate:
    """An importance-sampling estimate of one outcome's probability in the untilted world."""

    outcome: str
    n: int
    estimate: float
    lo: float
    hi: float
    se: float
    hits: int  # trials with the outcome, in the tilted world
    ess: float  # effective sample size of the hits
    level: float
    warning: str | None = None

    @property
    def rel_half_width(self) -> float:
        return (self.hi - self.lo) / 2 / self.estimate if self.estimate > 0 else math.inf

    def to_dict(self) -> dict:
        def clean(v):
            return None if isinstance(v, float) and not math.isfinite(v) else v
        return {k: clean(v) for k, v in self.__dict__.items()}


def _estimate(outcome, n, s1, s2, hits, wmax, level, weight_check=None) -> Estimate:
    z = _z(level)
    if n == 0:
        return Estimate(outcome, 0, math.nan, math.nan, math.nan, math.nan, 0, 0.0, level, "no trials")
    total = as_float(s1)
    p = total / n
    if s2 == math.inf:
        var = math.inf
    elif n > 1:
        # Exact sums, so the variance's cancellation happens in integers: (n s2 - s1^2) / (n (n - 1))
        # (s1 is in units of 2**-1074, s2 too, so s1^2 is in units of 2**-2148).
        num = (n * s2 << _SCALE) - s1 * s1
        var = max(num, 0) / (1 << (2 * _SCALE)) / (n * (n - 1))
    else:
        var = math.inf
    se = math.sqrt(var / n) if var != math.inf else math.inf
    lo, hi = max(0.0, p - z * se), p + z * se
    sq = as_float(s2) if s2 != math.inf else math.inf
    ess = (total * total / sq) if (sq and sq != math.inf) else (0.0 if hits == 0 else math.nan)
    warning = None
    if outcome != "weight":
        if hits == 0:
            warning = ("no trial had this outcome under the tilt: no estimate (tilt harder, or "
                       "choose the tilt with --rare)")
            hi = math.nan
        elif not ess >= MIN_ESS:
            warning = (f"only {ess:.3g} effective hits (< {MIN_ESS}): the interval is not reliable "
                       "(more trials, or a better tilt)")
        elif weight_check is not None and _uncovered(p, hi, weight_check):
            warning = (f"the weights average {weight_check[0]:.3g} (interval {weight_check[1]:.3g} to "
                       f"{weight_check[2]:.3g}), not 1: the tilt leaves part of the untilted world "
                       "almost unsampled (weight degeneracy), and this outcome is not rare enough to "
                       "be sure it lies outside that part")
    return Estimate(outcome, n, p, lo, hi, se, hits, ess, level, warning)


def _uncovered(p: float, hi: float, check) -> bool:
    """Whether the mean-weight check casts doubt on an estimate. The weights of all trials
    average 1 under a tilt that samples all of the untilted world; an average ``wbar`` below 1
    says that a probability of about 1 - wbar is (almost) never sampled. A tilt toward a rare
    outcome is meant to avoid the typical trials, so that mass is expected and harmless for an
    outcome far rarer than it (the estimate below UNCOVERED_SHARE of it). An average above 1
    beyond its interval means heavy-tailed weights: always a doubt."""
    wbar, lo, whi = check
    if lo <= 1.0 <= whi:
        return False
    if lo > 1.0:
        return True
    return max(p, hi if math.isfinite(hi) else p) >= UNCOVERED_SHARE * (1.0 - whi)


def _z(level: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(1.0 - _alpha(level) / 2.0))


# --------------------------------------------------------------------------------------------
# Paired differences under one tilt


@dataclass
class PairAggregate:
    """Exact sums of the per-trial differences d_i = w_i^A I_i^A - w_i^B I_i^B of two strategies
    run on the same trials of one tilted world."""

    n: int = 0
    sd: dict = field(default_factory=lambda: {o: 0 for o in OUTCOMES})
    sd2: dict = field(default_factory=lambda: {o: 0 for o in OUTCOMES})

    @classmethod
    def from_weights(cls, ra, wa, rb, wb) -> "PairAggregate":
        """From both strategies' records of the same trials and their weights."""
        a = cls(n=len(ra))
        for o in OUTCOMES:
            d = wa * (ra[o] != 0) - wb * (rb[o] != 0)
            with np.errstate(over="ignore"):
                a.sd[o] = exact_sum(d)
                a.sd2[o] = _exact_or_inf(d * d)
        return a

    def merge(self, other: "PairAggregate") -> "PairAggregate":
        out = PairAggregate(self.n + other.n)
        for o in OUTCOMES:
            out.sd[o] = self.sd[o] + other.sd[o]
            out.sd2[o] = _add(self.sd2[o], other.sd2[o])
        return out

    def difference(self, outcome: str, level: float = 0.95) -> tuple[float, float, float, float]:
        """(difference of the two probabilities, lo, hi, se)."""
        n, s1, s2 = self.n, self.sd[outcome], self.sd2[outcome]
        z = _z(level)
        d = as_float(s1) / n if n else math.nan
        if n < 2 or s2 == math.inf:
            return d, -math.inf, math.inf, math.inf
        # s1 may be negative: exact integer arithmetic as in _estimate.
        var = max((n * s2 << _SCALE) - s1 * s1, 0) / (1 << (2 * _SCALE)) / (n * (n - 1))
        se = math.sqrt(var / n)
        return d, d - z * se, d + z * se, se


# --------------------------------------------------------------------------------------------
# Runs


@dataclass
class TiltedRun:
    """One strategy's tilted run: its sums, and the records when asked for."""

    label: str
    agg: ISAggregate
    layout: object
    records: object = None
    wall_s: float = 0.0


def run_tilted(compiled, *, trials: int, seed: int, t0: int = 0, backend="auto",
               records: bool = False, progress=None, desc: str = "") -> tuple[str, TiltedRun]:
    """Run a tilted ``Compiled`` (mcexplore.tilt.tilted_compiled) on trials [t0, t0 + trials)."""
    from . import api

    name, sr = api.run_compiled(compiled, trials=trials, seed=seed, t0=t0, backend=backend,
                                records=True, progress=progress, desc=desc)
    agg = ISAggregate.from_records(sr.records, compiled.tilt)
    return name, TiltedRun(compiled.strategy_name, agg, compiled.tilt,
                           sr.records if records else None, sr.wall_s)


# --------------------------------------------------------------------------------------------
# Choosing the tilt: the cross-entropy method


@dataclass
class Round:
    """One pilot round of the cross-entropy search."""

    tilt: dict  # path -> value (the parameters' own units) the round ran with
    trials: int
    hits: int
    action: str  # "explore" (too few hits: the tilt was pushed further) or "update" (CE step)


@dataclass
class Choice:
    """The tilt the cross-entropy method chose, and how it got there."""

    outcome: str
    tilt: dict  # path -> value
    rounds: list
    backend: str = ""


# CE's smoothing (Rubinstein & Kroese: the new parameter is alpha * estimate + (1 - alpha) * old)
# and the weight floor that keeps every component of a tilted mixture sampled.
CE_ALPHA = 0.7
WEIGHT_FLOOR = 1e-6
EXPLORE = (0.05, 0.2, 0.5)  # how hard successive rounds without enough hits push the tilt
FLOOR_SHARE = 0.5  # mixture tails stay at least at this share of the first update's estimate
EXPLORE_TAILS = 4.0  # a mixture's non-body draws per trial per unit of exploration strength
TAIL_CAP = 0.5  # no exploration pushes a component above this weight
EXPLORE_REFS = 4.0  # transient references held at a check per unit of exploration strength


def pilot_seed(seed: int, r: int) -> int:
    """The seed of pilot round r: other trials than the estimate's (which uses ``seed`` itself),
    so that the final estimate is independent of the tilt chosen from the pilots."""
    return (int(seed) * 0x9E3779B97F4A7C15 + 0x5EED + r) & ((1 << 63) - 1)


def _explore(params, cur: dict, s: float, draws: dict) -> dict:
    """Push the tilt's mixtures (strength s, EXPLORE): every component but the body toward
    EXPLORE_TAILS * s draws per trial (``draws``: a mixture's draws per trial in the first pilot
    round), never above TAIL_CAP nor below its weight now. Measured in draws per trial, a push
    costs each trial about the same weight whether the mixture is drawn three times (one waiter's
    drop_hold) or thousands (201 waiters' ptl_hold over ten attempts): pushed toward equal
    weights instead, the latter's trials weigh e^-3000 and no update can recover. Exponential
    means are left to the updates (which way is rarer is not known before a hit)."""
    out = dict(cur)
    groups: dict[tuple, list] = {}
    for p in params:
        if p.kind == "weight":
            groups.setdefault(p.siblings, []).append(p)
    untilted = {p.path: p.value for p in params}
    for sib, ps in groups.items():
        n = max(draws.get(ps[0].dist, 0.0), 1.0)
        target = min(TAIL_CAP, EXPLORE_TAILS * s / n)
        pushed = {p.path: max(cur.get(p.path, p.value), target) for p in ps}
        out.update(_defend(sib, pushed, untilted))
    return out


def _explore_rate(scenario, cur: dict, s: float) -> dict:
    """Transient references toward EXPLORE_REFS * s of them held at a check on average (at the
    last strength, 2: a check fails 86% of the time), never fewer than now."""
    out = dict(cur)
    if scenario.transient.rate > 0:
        hold = scenario.transient.hold.mean_ns()
        if hold > 0:
            rho = cur.get("transient.rate", float(scenario.transient.rate))
            out["transient.rate"] = max(rho, EXPLORE_REFS * s / hold)
    return out


def _track_all(scenario, cur: dict) -> dict:
    """``cur`` with every tiltable parameter present (so that every one is counted)."""
    out = {p.path: p.value for p in _tilt.tiltable(scenario)}
    out.update(cur)
    return out


def _defend(sib, weights: dict, untilted: dict) -> dict:
    """A mixture's weights kept defensive: no component below its untilted weight except the
    heaviest untilted one (the body), which takes what is left. A tail tilted below its untilted
    weight makes the trials that need it rarer than crude Monte Carlo would and heavily weighted:
    an estimate that misses them comes out too low with too narrow an interval (docs/analysis.md)."""
    body = max(sib, key=lambda path: untilted[path])
    out = {path: max(weights[path], untilted[path]) for path in sib if path != body}
    rest = sum(out.values())
    if rest >= 1.0 - WEIGHT_FLOOR:
        scale = (1.0 - WEIGHT_FLOOR) / rest
        out = {path: w * scale for path, w in out.items()}
        rest = 1.0 - WEIGHT_FLOOR
    out[body] = 1.0 - rest
    return out


def _ce_update(scenario, cur: dict, runs, params, floor: dict, alpha: float = None) -> dict:
    """One cross-entropy step from the pilot runs (their records, layouts and the outcome's hits):
    each parameter in ``params`` moved to its weighted maximum-likelihood value over the trials
    that hit (smoothed; mixture tails kept at least at ``floor``, the transient rate never below
    the untilted)."""
    a = CE_ALPHA if alpha is None else alpha
    new = dict(cur)
    acc: dict[str, float] = {}
    # The updates are ratios of weighted sums, so the weights count only relative to each other:
    # taken relative to the largest log weight of the round's hits, they cannot all underflow
    # (an exploring tilt over thousands of draws gives weights like e^-3000).
    logw = [_tilt.log_weights(lay, rec.stats)[hit] for rec, lay, hit in runs]
    top = max((float(lw.max()) for lw in logw if len(lw)), default=0.0)
    for (rec, lay, hit), lw in zip(runs, logw):
        sums = np.exp(lw - top) @ rec.stats[hit].astype(np.float64)
        for name, v in zip(lay.names, sums.tolist()):
            acc[name] = acc.get(name, 0.0) + v
    by_sib: dict[tuple, list] = {}
    for p in params:
        if p.kind == "weight":
            by_sib.setdefault(p.siblings, []).append(p)
    for sib, ps in by_sib.items():
        counts = [sum(acc.get(f"{st}.n", 0.0) for st in p.stats) for p in ps]
        tot = sum(counts)
        if tot <= 0:
            continue
        est = [max(c / tot, WEIGHT_FLOOR) for c in counts]
        s = sum(est)
        for p, e in zip(ps, est):
            new[p.path] = a * e / s + (1 - a) * cur[p.path]
    for p in params:
        if p.kind == "mean" or p.dist == "access":
            n, tot = acc.get(p.stats[0] + ".n", 0.0), acc.get(p.stats[0] + ".sum_ns", 0.0)
            if n <= 0 or tot <= 0:
                continue
            # The maximum-likelihood mean of a floored exponential (geometric) from n values summing to tot.
            m = 1.0 / math.log1p(n / tot)
            if p.kind == "mean":
                new[p.path] = a * m + (1 - a) * cur[p.path]
            else:
                new[p.path] = 1.0 / (a * m + (1 - a) / cur[p.path])
        elif p.kind == "rate":
            nw, na = acc.get("transient.windows", 0.0), acc.get("transient.arrivals", 0.0)
            W = runs[0][1].window_ns
            if nw <= 0 or W <= 0:
                continue
            rho = max(na / (nw * W), float(scenario.transient.rate))
            new[p.path] = a * rho + (1 - a) * cur[p.path]
    for sib in by_sib:
        s = sum(new[path] for path in sib)
        new.update(_defend(sib, {path: new[path] / s for path in sib}, floor))
    return new


def _hit(rec, outcome: str) -> np.ndarray:
    return np.asarray(rec[outcome]) != 0


def choose_tilt(scenario, labels, outcome: str, *, seed: int = 0, pilot_trials: int = 2000,
                rounds: int = 6, backend="auto", start: dict | None = None, min_hits: int = 20,
                log=None) -> Choice:
    """The cross-entropy method (Rubinstein; Plasma Lab's importance sampling): pilot rounds in the
    current tilt; a round with at least ``min_hits`` hits of ``outcome`` moves every tiltable
    parameter to its likelihood-weighted maximum-likelihood value over those hits (smoothed by
    CE_ALPHA), a round with fewer pushes the mixtures and the transient rate harder (EXPLORE). All
    strategies in ``labels`` share the tilt (their hits pooled), so that a comparison stays paired.
    ``log(line)`` is told each round."""
    if outcome not in OUTCOMES:
        raise _tilt.TiltError(f"--rare {outcome!r}: not an outcome (valid: {', '.join(OUTCOMES)})")
    params = _tilt.tiltable(scenario)
    if not params:
        raise _tilt.TiltError("--rare: this scenario has nothing to tilt (no mixture, exponential or "
                              "rate)")
    cur = _track_all(scenario, _tilt.resolve(scenario, start or {}))
    history: list[Round] = []
    explore_i = 0
    floor = None
    backend_name = ""
    for r in range(rounds):
        runs = []
        hits = 0
        for label in labels:
            c = _tilt.tilted_compiled(scenario, label, cur, track=True)
            backend_name, tr = run_tilted(c, trials=pilot_trials, seed=pilot_seed(seed, r), backend=backend,
                                          records=True)
            h = _hit(tr.records, outcome)
            hits += int(h.sum())
            runs.append((tr.records, c.tilt, h))
        if r == 0:
            # Only what the strategies draw is tilted (a mixture no waiter samples stays as it is),
            # and an exponential mean or the access rate only when the user's tilt starts it (the
            # search cannot tell which way is rarer, and a wrong move only adds variance).
            drawn = _drawn(runs)
            draws = _draws_per_trial(runs)
            given = set(start or {})
            params = [p for p in params if (p.dist or "transient") in drawn
                      and (p.kind == "weight" or p.dist is None or p.path in given)]
            if not params:
                raise _tilt.TiltError(f"--rare {outcome}: the trials draw nothing that can be tilted")
        if hits < min_hits:
            if explore_i >= len(EXPLORE):
                history.append(Round(dict(cur), pilot_trials * len(labels), hits, "give up"))
                break
            action = "explore"
            nxt = _explore_rate(scenario, _explore(params, cur, EXPLORE[explore_i], draws), EXPLORE[explore_i])
            explore_i += 1
        else:
            action = "update"
            if floor is None:
                # The first round with enough hits sees every way to the outcome that the tilt
                # found: its estimate of each tail (unsmoothed: the tail's share of the draws in
                # the likelihood-weighted hits) is a floor for the rounds after it (a share of
                # it), so that a way to the outcome that a later round happens to under-sample
                # is not tilted away (its failures would then be missing from the estimate, with
                # no warning). A tail that plays no part estimates about its untilted weight.
                untilted = {p.path: p.value for p in params}
                raw = _ce_update(scenario, cur, runs, params, untilted, alpha=1.0)
                floor = {k: max(v, FLOOR_SHARE * raw.get(k, v)) if k in raw else v for k, v in untilted.items()}
            nxt = _ce_update(scenario, cur, runs, params, floor)
        history.append(Round(dict(cur), pilot_trials * len(labels), hits, action))
        if log is not None:
            log(f"cross-entropy round {r + 1}: {hits} hits of {outcome} in {pilot_trials * len(labels)} "
                f"trials ({action})")
        cur = nxt
    if not history or all(h.hits < min_hits for h in history):
        why = ("even at the strongest exploration" if history and history[-1].action == "give up"
               else f"within {rounds} rounds (more with --ce-rounds)")
        raise _tilt.TiltError(
            f"--rare {outcome}: no tilt found: {sum(h.hits for h in history)} hits in "
            f"{sum(h.trials for h in history)} pilot trials {why}; give a starting tilt with "
            "--tilt PATH=VALUE (an exponential mean or the access rate, which the search only refines)")
    final = {p.path: cur[p.path] for p in params
             if not math.isclose(p.value, cur[p.path], rel_tol=1e-12, abs_tol=0.0)}
    return Choice(outcome, final, history, backend_name)


def _draws_per_trial(runs) -> dict:
    """Each distribution's draws per trial (all its leaves) in the pilot runs."""
    tot: dict[str, float] = {}
    n = 0
    for rec, lay, _ in runs:
        n += len(rec)
        sums = rec.stats.sum(axis=0)
        for name, t in zip(lay.names, sums.tolist()):
            if name.endswith(".n"):
                d = name.split("[")[0].split(".")[0]
                tot[d] = tot.get(d, 0.0) + t
    return {d: t / max(n, 1) for d, t in tot.items()}


def _drawn(runs) -> set:
    """The distributions ("transient" for the transient windows) some pilot trial drew."""
    out = set()
    for rec, lay, _ in runs:
        tot = rec.stats.sum(axis=0)
        for name, t in zip(lay.names, tot.tolist()):
            if t:
                out.add(name.split("[")[0].split(".")[0])
    return out


# --------------------------------------------------------------------------------------------
# The library's entry points: estimate and compare under a tilt


@dataclass
class RareResult:
    """Importance-sampling runs of one or more strategies in one tilted world.

    ``tilt``: path -> value (own units) of the world the trials ran in; ``choice``: how the
    cross-entropy method chose it (None: given by hand); ``runs``: label -> TiltedRun;
    ``pairs``: label -> PairAggregate of (label - baseline) on the same trials (compare only).
    """

    backend: str
    scenario_name: str
    seed: int
    trials: int
    tilt: dict
    tilt_text: list  # (path, untilted, tilted) as text (mcexplore.tilt.describe)
    choice: Choice | None
    runs: dict
    level: float = 0.95
    outcome: str | None = None
    baseline: str | None = None
    pairs: dict = field(default_factory=dict)

    def estimate(self, label: str, outcome: str | None = None) -> Estimate:
        return self.runs[label].agg.estimate(outcome or self.outcome, self.level)

    def difference(self, label: str, outcome: str | None = None):
        """(p_label - p_baseline, lo, hi, se) on the same tilted trials."""
        return self.pairs[label].difference(outcome or self.outcome, self.level)

    def to_dict(self) -> dict:
        """A JSON-able dict (non-finite numbers as None)."""
        return json_safe(self._dict())

    def _dict(self) -> dict:
        out = {
            "backend": self.backend, "scenario": self.scenario_name, "seed": self.seed,
            "trials": self.trials, "level": self.level, "outcome": self.outcome,
            "tilt": [{"path": p, "untilted": a, "tilted": b} for p, a, b in self.tilt_text],
            "cross_entropy": None if self.choice is None else [
                {"trials": r.trials, "hits": r.hits, "action": r.action} for r in self.choice.rounds],
            "strategies": {},
        }
        for label, tr in self.runs.items():
            wbar, wlo, whi = tr.agg.weight_check(self.level)
            out["strategies"][label] = {
                "estimates": {o: tr.agg.estimate(o, self.level).to_dict() for o in OUTCOMES},
                "mean_weight": {"estimate": wbar, "lo": wlo, "hi": whi},
            }
        if self.pairs:
            out["baseline"] = self.baseline
            out["differences"] = {
                label: {o: dict(zip(("difference", "lo", "hi", "se"), pa.difference(o, self.level)))
                        for o in OUTCOMES}
                for label, pa in self.pairs.items()}
        return out


def json_safe(v):
    """A JSON-able copy of ``v`` with every non-finite float as None (JSON has no inf or nan)."""
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


BATCH = 1 << 16  # trials per batch of a tilted run (records are kept only batch by batch)


def estimate(scenario, labels=None, *, trials: int, seed: int = 0, outcome: str | None = None,
             tilt=None, backend="auto", level: float = 0.95, pilot_trials: int = 2000,
             rounds: int = 6, baseline: str | None = None, log=None, progress=None) -> RareResult:
    """Estimate outcome probabilities of the strategies ``labels`` by importance sampling.

    ``outcome`` (--rare): the cross-entropy method chooses the tilt for that outcome, starting
    from ``tilt`` if given; without it ``tilt`` (--tilt: ``{path: value}`` or ``["path=value"]``)
    is the world the trials run in. All strategies share the tilt and the trials, so with
    ``baseline`` every other label's difference from it is paired (``RareResult.pairs``).
    """
    labels = list(labels) if labels else scenario.labels()
    if baseline is not None and baseline not in labels:
        raise _tilt.TiltError(f"baseline {baseline!r} is not one of the strategies ({', '.join(labels)})")
    if outcome is None and not tilt:
        raise _tilt.TiltError("importance sampling needs --rare OUTCOME or at least one --tilt PATH=VALUE")
    choice = None
    changes = _tilt.resolve(scenario, tilt or {})
    if outcome is not None:
        choice = choose_tilt(scenario, labels, outcome, seed=seed, pilot_trials=pilot_trials,
                             rounds=rounds, backend=backend, start=changes, log=log)
        changes = choice.tilt
    compiled = {label: _tilt.tilted_compiled(scenario, label, changes) for label in labels}
    aggs = {label: ISAggregate() for label in labels}
    pairs = {label: PairAggregate() for label in labels if baseline and label != baseline}
    walls = {label: 0.0 for label in labels}
    from . import api

    name = ""
    bar = api._progress(trials * len(labels), "importance sampling", progress, leave=True)
    try:
        for t in range(0, trials, BATCH):
            n = min(BATCH, trials - t)
            recs, ws = {}, {}
            for label in labels:
                name, sr = api.run_compiled(compiled[label], trials=n, seed=seed, t0=t, backend=backend,
                                            records=True)
                recs[label] = sr.records
                ws[label] = _tilt.weights(compiled[label].tilt, sr.records.stats)
                walls[label] += sr.wall_s
                aggs[label] = aggs[label].merge(ISAggregate.from_weights(sr.records, ws[label]))
                if bar is not None:
                    bar.update(n)
            for label in pairs:
                pairs[label] = pairs[label].merge(PairAggregate.from_weights(
                    recs[label], ws[label], recs[baseline], ws[baseline]))
    finally:
        if bar is not None:
            bar.close()
    runs = {label: TiltedRun(label, aggs[label], compiled[label].tilt, None, walls[label]) for label in labels}
    return RareResult(name, scenario.name, seed, trials, changes, _tilt.describe(scenario, changes), choice,
                      runs, level, outcome, baseline, pairs)
