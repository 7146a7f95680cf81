"""Adaptive runs: launch batches of trials until the question is answered, anytime-valid.

Where it sits: above mcexplore.api (it calls ``run_compiled`` batch after batch) and
mcexplore.stats; the CLI's ``run`` command calls ``run_adaptive`` when one of the
``mcexplore.cli_options.adaptive_options`` is given (``rule_from_options`` turns them into a
``StopRule``). scipy is imported where it is used, so importing this module is cheap.

Why a confidence *sequence*: a fixed-sample 95 % interval checked after every batch, stopping the
first time it excludes a threshold, is wrong far more often than 5 % of the time (each look is a
new chance for an error; tests/test_adaptive.py measures it). A confidence sequence (CS) is a
sequence of intervals CS_n that covers the true probability at *every* n simultaneously with
probability >= 1 - alpha, so any data-dependent stopping time is allowed.

The CS used here is the conjugate beta-binomial mixture of likelihood ratios (Robbins 1970; Lai
1976; Howard, Ramdas, McAuliffe and Sekhon 2021, section 3): with S successes in n Bernoulli(p)
trials and a Beta(a, b) mixing distribution,

    M_n(p) = B(a + S, b + n - S) / B(a, b) / (p^S (1 - p)^(n - S))

is a nonnegative martingale with M_0 = 1 under the true p, so by Ville's inequality
P(exists n: M_n(p) >= 1/alpha) <= alpha, and

    CS_n = { p : M_n(p) < 1/alpha }

is an interval (log M_n is convex in p) containing S/n. Its endpoints are found by bisection. We
report the running intersection of CS_1..CS_n (still valid, never wider). The default mixing
distribution is Jeffreys' Beta(1/2, 1/2), which puts more weight near 0 than a uniform prior and
so gives tighter bounds for the rare failures this tool estimates.

Stopping rules (each strategy stops on its own; trials are seeded by index, so an adaptive run's
trials are exactly trials [0, n) of a fixed run with the same seed):

- ``target_rel_error`` E: stop when the CS's half-width / (S/n) <= E (never with S = 0);
- ``target_half_width`` H: stop when the CS's half-width <= H (an absolute precision: the
  question of a risk map whose every cell should be known to +-H);
- ``until_upper_bound`` P: stop when the CS's upper end < P ("below") or its lower end > P
  ("above"); the decision is wrong with probability <= alpha whatever the stopping time;
- ``max_trials`` N: stop at N trials (undecided).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .results import OUTCOMES, Aggregate

STOP_OUTCOMES = OUTCOMES + ("not_migrated",)
DEFAULT_MAX_TRIALS = 10_000_000
_BISECT_ITERS = 100  # absolute precision 2**-100: ample for any p > 1e-20


def _g(S, F, p):
    """S log p + F log(1 - p), with 0 log 0 = 0 (vectorized)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(S > 0, S * np.log(p), 0.0)
        b = np.where(F > 0, F * np.log1p(-p), 0.0)
    return a + b


def beta_binomial_cs(count, n, level: float = 0.95, prior=(0.5, 0.5)):
    """Endpoints (lo, hi) of the beta-binomial mixture confidence sequence at time n (vectorized).

    ``count`` and ``n`` may be arrays of the same shape; returns float arrays (or floats).
    """
    from scipy.special import betaln

    a, b = prior
    alpha = 1.0 - level
    S = np.asarray(count, dtype=np.float64)
    n_ = np.asarray(n, dtype=np.float64)
    F = n_ - S
    scalar = S.ndim == 0 and n_.ndim == 0
    if scalar:
        return _cs_scalar(float(S), float(F), level, prior)
    S, n_, F = np.atleast_1d(S), np.atleast_1d(n_), np.atleast_1d(F)
    if (S < 0).any() or (F < 0).any():
        raise ValueError("need 0 <= count <= n")
    # p is in CS_n iff g(p) > c, with g concave and maximal at p_hat.
    c = betaln(a + S, b + F) - betaln(a, b) + math.log(alpha)
    phat = np.where(n_ > 0, S / np.maximum(n_, 1), 0.5)
    # lower end: g increasing on [0, p_hat]
    lo_a, lo_b = np.zeros_like(phat), phat.copy()
    # upper end: g decreasing on [p_hat, 1]
    hi_a, hi_b = phat.copy(), np.ones_like(phat)
    for _ in range(_BISECT_ITERS):
        m = (lo_a + lo_b) / 2
        inside = _g(S, F, m) > c
        lo_b = np.where(inside, m, lo_b)
        lo_a = np.where(inside, lo_a, m)
        m = (hi_a + hi_b) / 2
        inside = _g(S, F, m) > c
        hi_a = np.where(inside, m, hi_a)
        hi_b = np.where(inside, hi_b, m)
    lo = np.where(S > 0, lo_a, 0.0)  # outer ends: the reported interval contains the exact one
    hi = np.where(F > 0, hi_b, 1.0)
    lo = np.where(n_ > 0, lo, 0.0)
    hi = np.where(n_ > 0, hi, 1.0)
    return lo, hi


def _cs_scalar(S: float, F: float, level: float, prior) -> tuple[float, float]:
    """The same bisection as ``beta_binomial_cs`` in plain floats (fast for one stream)."""
    if S < 0 or F < 0:
        raise ValueError("need 0 <= count <= n")
    n = S + F
    if n == 0:
        return 0.0, 1.0
    from scipy.special import betaln

    a, b = prior
    c = float(betaln(a + S, b + F) - betaln(a, b)) + math.log(1.0 - level)

    def g(p):
        return (S * math.log(p) if S > 0 else 0.0) + (F * math.log1p(-p) if F > 0 else 0.0)

    phat = S / n
    lo_a, lo_b, hi_a, hi_b = 0.0, phat, phat, 1.0
    for _ in range(_BISECT_ITERS):
        m = (lo_a + lo_b) / 2
        if m > 0 and g(m) > c:
            lo_b = m
        else:
            lo_a = m
        m = (hi_a + hi_b) / 2
        if m < 1 and g(m) > c:
            hi_a = m
        else:
            hi_b = m
    return (lo_a if S > 0 else 0.0), (hi_b if F > 0 else 1.0)


def log_mixture_martingale(count, n, p, prior=(0.5, 0.5)):
    """log M_n(p) (see the module docstring), vectorized; p is excluded from CS_n iff this >= log(1/alpha)."""
    from scipy.special import betaln

    a, b = prior
    S = np.asarray(count, dtype=np.float64)
    F = np.asarray(n, dtype=np.float64) - S
    return betaln(a + S, b + F) - betaln(a, b) - _g(S, F, np.asarray(p, dtype=np.float64))


@dataclass
class StopRule:
    """What question an adaptive run answers (None: not asked)."""

    target_rel_error: float | None = None
    until_upper_bound: float | None = None
    target_half_width: float | None = None
    max_trials: int = DEFAULT_MAX_TRIALS
    batch_trials: int | None = None
    outcome: str = "livelock"
    level: float = 0.95
    prior: tuple = (0.5, 0.5)

    def __post_init__(self):
        if self.outcome not in STOP_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(STOP_OUTCOMES)}, got {self.outcome!r}")
        def bad(name, value, valid):
            raise ValueError(f"{name}: {value!r} is not valid: must be {valid}")

        e = self.target_rel_error
        if e is not None and not (e > 0 and math.isfinite(e)):
            bad("target_rel_error", e, "a finite number > 0")
        u = self.until_upper_bound
        if u is not None and not 0 < u < 1:
            bad("until_upper_bound", u, "in (0, 1)")
        h = self.target_half_width
        if h is not None and not 0 < h < 0.5:
            bad("target_half_width", h, "in (0, 0.5)")
        if self.max_trials is None or int(self.max_trials) < 1:
            bad("max_trials", self.max_trials, "an integer >= 1")
        if self.batch_trials is not None and int(self.batch_trials) < 1:
            bad("batch_trials", self.batch_trials, "an integer >= 1")
        if not 0 < self.level < 1:
            bad("level", self.level, "in (0, 1)")

    def next_batch(self, done: int) -> int:
        """Trials in the next batch: fixed if batch_trials is set, else doubling from 1024 up to
        2**20 (the schedule does not depend on the data; the CS would allow it anyway)."""
        left = int(self.max_trials) - done
        if self.batch_trials:
            return min(int(self.batch_trials), left)
        return min(max(1024, min(done, 1 << 20)), left)


class Stopper:
    """Tracks one strategy's CS (running intersection) and applies a ``StopRule``."""

    def __init__(self, rule: StopRule):
        self.rule = rule
        self.count = 0
        self.n = 0
        self.lo = 0.0
        self.hi = 1.0
        self.reason: str | None = None  # "target_rel_error", "target_half_width", "upper_bound", "max_trials"
        self.decision: str | None = None  # "below" / "above" for until_upper_bound
        self.history: list[tuple[int, int, float, float]] = []

    @property
    def p(self) -> float:
        return self.count / self.n if self.n else math.nan

    @property
    def rel_half_width(self) -> float:
        return (self.hi - self.lo) / 2 / self.p if self.count else math.inf

    @property
    def done(self) -> bool:
        return self.reason is not None

    def update(self, count: int, n: int) -> bool:
        """Record the cumulative count after n trials; True when the run should stop."""
        self.count, self.n = int(count), int(n)
        lo, hi = beta_binomial_cs(self.count, self.n, self.rule.level, self.rule.prior)
        self.lo, self.hi = max(self.lo, lo), min(self.hi, hi)
        self.history.append((self.n, self.count, self.lo, self.hi))
        r = self.rule
        if r.until_upper_bound is not None:
            if self.hi < r.until_upper_bound:
                self.reason, self.decision = "upper_bound", "below"
            elif self.lo > r.until_upper_bound:
                self.reason, self.decision = "upper_bound", "above"
        if self.reason is None and r.target_rel_error is not None and self.rel_half_width <= r.target_rel_error:
            self.reason = "target_rel_error"
        if self.reason is None and r.target_half_width is not None and (self.hi - self.lo) / 2 <= r.target_half_width:
            self.reason = "target_half_width"
        if self.reason is None and self.n >= r.max_trials:
            self.reason = "max_trials"
        return self.done

    def to_dict(self) -> dict:
        return {"outcome": self.rule.outcome, "trials": self.n, "count": self.count,
                "p": None if self.n == 0 else self.p, "cs_lo": self.lo, "cs_hi": self.hi,
                "level": self.rule.level, "stop_reason": self.reason, "decision": self.decision,
                "rel_half_width": None if not self.count else self.rel_half_width}


def outcome_count(agg: Aggregate, outcome: str) -> int:
    if outcome == "not_migrated":
        return agg.trials - agg.counts["migrated"]
    return agg.counts[outcome]


@dataclass
class AdaptiveResult:
    rule: StopRule
    run: object  # mcexplore.api.RunResult: each label's aggregate has its own trial count
    stoppers: dict = field(default_factory=dict)  # label -> Stopper

    def to_dict(self) -> dict:
        return {label: s.to_dict() for label, s in self.stoppers.items()}


def run_adaptive(scenario, rule: StopRule, *, labels=None, seed: int = 0, backend: str = "auto",
                 progress=None, callback=None):
    """Run each strategy of ``scenario`` in batches of trials [0, n1), [n1, n2), ... until its
    ``rule`` is met. ``callback(label, stopper)`` is called after every batch. Returns an
    ``AdaptiveResult`` whose ``run`` is an ordinary RunResult (trials = the largest n used)."""
    from .api import RunResult, StrategyRun, run_compiled

    labels = list(labels) if labels else scenario.labels()
    result = None
    stoppers = {}
    for label in labels:
        compiled = scenario.compile(label)
        st = Stopper(rule)
        agg = Aggregate()
        wall = 0.0
        engine_name = backend
        while not st.done:
            k = rule.next_batch(agg.trials)
            engine_name, sr = run_compiled(compiled, trials=k, seed=seed, t0=agg.trials, backend=backend,
                                           progress=progress, desc=label)
            agg = agg.merge(sr.aggregate)
            wall += sr.wall_s
            st.update(outcome_count(agg, rule.outcome), agg.trials)
            if callback is not None:
                callback(label, st)
        if result is None:
            result = RunResult(engine_name, getattr(scenario, "name", ""), seed, 0, 0)
        result.runs[label] = StrategyRun(label, agg, None, wall)
        result.trials = max(result.trials, agg.trials)
        stoppers[label] = st
    return AdaptiveResult(rule, result, stoppers)


# ---------------------------------------------------------------------------------------------
# CLI glue (the click options themselves: mcexplore.cli_options.adaptive_options)
# ---------------------------------------------------------------------------------------------

ADAPTIVE_KEYS = ("target_rel_error", "until_upper_bound", "target_half_width", "max_trials", "batch_trials",
                 "stop_outcome")
_RULE_OPTIONS = (("--target-rel-error", "target_rel_error"), ("--until-upper-bound", "until_upper_bound"),
                 ("--target-half-width", "target_half_width"))


def rule_from_options(level: float = 0.95, **kw) -> StopRule | None:
    """A StopRule from ``cli_options.adaptive_options`` kwargs (extra kwargs ignored), or None when no
    adaptive option was given (then the caller does a fixed run).

    Raises ValueError (one line naming the options) for nonsense combinations: two rules at once
    (--target-rel-error with --until-upper-bound; --max-trials caps either), or --stop-outcome /
    --batch-trials without a rule."""
    given = [(opt, kw[key]) for opt, key in _RULE_OPTIONS if kw.get(key) is not None]
    if len(given) > 1:
        (o1, v1), (o2, v2) = given[:2]
        raise ValueError(f"{o1} {v1:g} and {o2} {v2:g} are two adaptive rules: give one of them "
                         "(--max-trials may cap either)")
    if not given and kw.get("max_trials") is None:
        for opt, key in (("--stop-outcome", "stop_outcome"), ("--batch-trials", "batch_trials")):
            if kw.get(key) is not None:
                raise ValueError(f"{opt} {kw[key]} is not valid without an adaptive rule: give "
                                 "--target-rel-error, --until-upper-bound, --target-half-width or "
                                 "--max-trials as well")
        return None
    return StopRule(target_rel_error=kw.get("target_rel_error"), until_upper_bound=kw.get("until_upper_bound"),
                    target_half_width=kw.get("target_half_width"),
                    max_trials=kw.get("max_trials") or DEFAULT_MAX_TRIALS, batch_trials=kw.get("batch_trials"),
                    outcome=kw.get("stop_outcome") or "livelock", level=level)
