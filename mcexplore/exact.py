"""Exact solutions of the page-level model, the ground truth the Monte Carlo engines are tested on.

Where it sits: beside the engines, sharing nothing with them but the model (shared/MODEL.md and
the project's tie rules). Derived from the semantics alone; docs/exact.md has the derivations.

What is solved (all times in ns, treated as continuous):

* ``first_attempt_success(p)``: P(attempt 1 succeeds), every strategy. Attempt 1 is special: at
  L_1 = 0 every task is idle with its PTE present, nobody holds the page lock or a waiter
  reference, and the transient process is stationary, so one check fails by a transient
  reference with probability 1 - exp(-rho E[h]) whatever the timing.
* ``transient_first_uncovered(t, rho, hold)``: the transient process alone at deterministic check
  times t_1 < t_2 < ...: P(checks 1..k-1 are all covered by a transient reference and check k is
  not). One hold can cover several consecutive checks, so the checks are correlated; this is the
  closed form (a Poisson process over runs of checks, then a DP over the furthest covered check).
* ``attempt_distribution(p, kmax)``: the law of ``attempts`` without budget (P(attempts = k),
  k = 1..kmax), ``call_failed`` = P(attempts > passes) and E[attempts], for ``ref``,
  ``flag_spin`` and ``drop`` (a Markov chain over attempts whose state is, per task, one bit;
  transient references must then be independent between checks: no hold spans two checks) and
  for ``ptl_pin``/``pte_wait`` or a page without active tasks (only transient references can fail
  an attempt: geometric when the checks are independent, the closed form above otherwise).
* ``exact_for(compiled)``: every quantity for an ``mcexplore.params.Compiled`` under its budget,
  each labelled ``exact`` (for the model as specified), ``approximate`` (with the assumption
  named, and rigorous bounds where they are known) or ``refused`` (with the reason).

Budget (MODEL.md 1.3 as the engines implement it): the window is [0, timeout). Attempt k starts
iff k <= max_attempts and L_k < timeout (L_k on the failure timeline); it migrates the page iff
its check passes and its unlock on the success timeline, T_k = L_k + M unmap + pre_freeze
(+ freeze_hold for a file page) + copy + M remap, is < timeout. So the pmf entries are
P(attempts = k and migrated) and ``attempts_tail`` = P(not migrated) = livelock + censored.

Conditions of the attempt chain (checked; a violation raises ``ValueError`` from the ExactParams
functions, and ``exact_for`` refuses the entries with the message):

* access: Poisson per task (exponential time to the first access after the unmap), rate ``lam``;
* the costs that matter are constants: unmap_pte, pre_freeze, fault_entry (ref, drop,
  flag_spin with flag_from=unmap_end), ptl_hold, drop_hold (drop); for the chain also remap_pte,
  retry_gap and outer_gap. freeze_hold and copy only shape a successful attempt, which ends the
  chain; they matter only for the timeout (``exact_for``);
* wake_latency: exponential (mean ``wake_mean``), or a constant smaller than every gap used
  (then nobody is still waiting when the next attempt starts);
* what a task does in attempt k is over before attempt k+1 starts unless it is asleep at the
  unlock T_k (then its wake-up is the one memoryless thing that spans attempts). Precisely, for
  every active task i and every gap g used, with R_i = F + i*r, T = F + M*r, L' = T + g,
  U'_i = L' + i*u:
      R_i + fault_entry <= U'_i            (a task that finds its PTE restored returns before
                                            its PTE is unmapped again)
      R_i + ptl_hold < L'                  (ref, flag_spin: a waiter that drops the PTL after
                                            the unlock finds the page unlocked)
      R_i + ptl_hold + drop_hold < L'      (drop: the reference window [x, b) ends before L')
  These are checked on the reachable cases, so the error message names the case that broke;
* transient references: no hold can span two consecutive checks (hold max <= the shortest
  spacing of checks); then each check fails by one independently, with q = 1 - exp(-rho E[h]);
* at most ``MAX_CHAIN_TASKS`` active tasks for the chain (2**A states).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import strategies

MAX_CHAIN_TASKS = 12
MAX_DENSE_TASKS = 10  # E[attempts] by a dense linear solve over one migrate_pages call
# Holds without a finite bound (ExpHold): coverage runs are cut where the survival integral beyond
# is below this fraction of E[h] (far below double precision of any probability computed here).
HOLD_REACH_EPS = 1e-18


class NotExact(Exception):
    """Nothing is exactly solvable for these parameters (block level); the message says why."""


# --------------------------------------------------------------------------------------------
# Hold laws: plain stand-ins with the attribute names of mcexplore.params.CompiledDist


class ConstHold:
    """A constant hold h (ns)."""

    def __init__(self, h: float):
        self.h = float(h)
        self.is_const, self.exact, self.exp_mean_ns = True, True, None
        self.mean_ns = self.max_ns = self.h

    def cdf(self, x: float) -> float:
        return 1.0 if x >= self.h else 0.0

    def survival_integral(self, x: float, y: float) -> float:
        """int_x^y P(h >= u) du."""
        return _clip_len(x, y, self.h)


def _clip_len(x: float, y: float, h: float) -> float:
    """int_x^y 1{u <= h} du (x may be negative: P(h >= u) = 1 there)."""
    return max(min(y, h) - x, 0.0) if y > x else 0.0


class ExpHold:
    """An exponential hold of mean m (ns)."""

    def __init__(self, mean: float):
        self.m = float(mean)
        self.is_const, self.exact, self.exp_mean_ns = False, True, self.m
        self.mean_ns = self.m
        self.max_ns = math.inf

    def cdf(self, x: float) -> float:
        return -math.expm1(-x / self.m) if x > 0 else 0.0

    def survival_integral(self, x: float, y: float) -> float:
        if not y > x:
            return 0.0
        neg = 0.0
        if x < 0:
            neg = min(y, 0.0) - x
            x = 0.0
            if y <= 0:
                return neg
        if math.isinf(y):
            return neg + self.m * math.exp(-x / self.m)
        return neg + self.m * math.exp(-x / self.m) * -math.expm1(-(y - x) / self.m)


class UniformHold:
    """A hold uniform on [a, b] (ns)."""

    def __init__(self, a: float, b: float):
        self.a, self.b = float(a), float(b)
        self.is_const, self.exact, self.exp_mean_ns = False, True, None
        self.mean_ns = 0.5 * (self.a + self.b)
        self.max_ns = self.b

    def cdf(self, x: float) -> float:
        return min(max((x - self.a) / (self.b - self.a), 0.0), 1.0)

    def _G(self, x: float) -> float:
        """int_x^inf P(h >= u) du = E[(h - x)^+]."""
        a, b = self.a, self.b
        if x <= a:
            return self.mean_ns - x
        if x >= b:
            return 0.0
        return (b - x) ** 2 / (2.0 * (b - a))

    def survival_integral(self, x: float, y: float) -> float:
        if not y > x:
            return 0.0
        return self._G(x) - (0.0 if math.isinf(y) else self._G(y))


@dataclass
class ExactParams:
    """Plain parameters of one page (all durations in ns, constants unless said otherwise)."""

    M: int = 1  # mapcount
    A: int = 1  # active tasks (1..A touch the page)
    lam: float = 0.0  # access rate per active task, per ns (0: never touches)
    u: float = 1000.0  # unmap_pte
    pre_freeze: float = 300.0
    freeze_hold: float = 200.0  # only the success timeline (the timeout)
    copy: float = 500.0  # only the success timeline (the timeout)
    r: float = 1000.0  # remap_pte
    fe: float = 1000.0  # fault_entry
    ptl_hold: float = 200.0
    drop_hold: float = 200.0
    wake_mean: float = 30000.0  # wake_latency mean (exponential) or value (wake_kind="const")
    retry_gap: float = 1000.0
    outer_gap: float = 500000.0
    passes: int = 10
    file: bool = True  # only the success timeline (the timeout)
    # Transient references, either as independent Bernoulli draws per check (q_transient: the
    # "independent" approximation) or as MODEL.md's process (transient_rate per ns, holds drawn
    # from transient_hold: an object with survival_integral(x, y), mean_ns and max_ns, such as
    # ConstHold, ExpHold or a CompiledDist). At most one of the two.
    q_transient: float = 0.0
    strategy: str = "ref"
    flag_from: str = "lock"  # flag_spin: "lock" (L_k) or "unmap_end" (U_k,M)
    wake_kind: str = "exp"  # "exp" or "const"
    transient_rate: float = 0.0
    transient_hold: object = None

    def validate(self) -> None:
        if self.strategy not in strategies.names():
            raise ValueError(f"unknown strategy {self.strategy!r}; one of {', '.join(strategies.names())}")
        if self.flag_from not in ("lock", "unmap_end"):
            raise ValueError(f"flag_from must be 'lock' or 'unmap_end', got {self.flag_from!r}")
        if self.wake_kind not in ("exp", "const"):
            raise ValueError(f"wake_kind must be 'exp' or 'const', got {self.wake_kind!r}")
        if not (self.M >= 1 and 0 <= self.A <= self.M):
            raise ValueError(f"need M >= 1 and 0 <= A <= M, got M={self.M}, A={self.A}")
        if self.passes < 1:
            raise ValueError("passes must be >= 1")
        if not 0.0 <= self.q_transient <= 1.0:
            raise ValueError("q_transient must be in [0, 1]")
        if not (self.transient_rate >= 0.0 and math.isfinite(self.transient_rate)):
            raise ValueError("transient_rate must be finite and >= 0")
        if self.transient_rate > 0.0:
            if self.transient_hold is None:
                raise ValueError("transient_rate > 0 needs a transient_hold")
            if self.q_transient > 0.0:
                raise ValueError("give either q_transient (independent checks) or "
                                 "transient_rate (the process), not both")
        for name in ("lam", "u", "pre_freeze", "freeze_hold", "copy", "r", "fe", "ptl_hold",
                     "drop_hold", "wake_mean", "retry_gap", "outer_gap"):
            v = getattr(self, name)
            if not (v >= 0.0 and math.isfinite(v)):
                raise ValueError(f"{name} must be finite and >= 0, got {v}")

    # The failure timeline of one attempt, relative to its lock time L = 0.
    def U(self, i: int) -> float:
        return i * self.u

    @property
    def F(self) -> float:
        return self.M * self.u + self.pre_freeze

    def R(self, i: int) -> float:
        return self.F + i * self.r

    @property
    def T(self) -> float:
        return self.F + self.M * self.r

    @property
    def T_success(self) -> float:
        """Unlock of a successful attempt, relative to its lock time."""
        return self.F + (self.freeze_hold if self.file else 0.0) + self.copy + self.M * self.r

    def gap_after(self, k: int) -> float:
        """Gap after attempt k (1-based): outer_gap after every passes-th attempt."""
        return self.outer_gap if k % self.passes == 0 else self.retry_gap

    def lock_times(self, n: int) -> np.ndarray:
        """L_1..L_n on the failure timeline (L_1 = 0)."""
        k = np.arange(1, n + 1)
        n_out = (k - 1) // self.passes
        n_ret = (k - 1) - n_out
        return (k - 1) * self.T + n_ret * self.retry_gap + n_out * self.outer_gap

    def check_times(self, n: int) -> np.ndarray:
        """The refcount checks F_1..F_n on the failure timeline."""
        return self.lock_times(n) + self.F

    def min_check_spacing(self) -> float:
        """The shortest time between consecutive checks (on the failure timeline)."""
        g = min(self.outer_gap, self.retry_gap) if self.passes > 1 else self.outer_gap
        return self.T + g + self.F

    @property
    def transient_process(self) -> bool:
        return self.transient_rate > 0.0 and _hold_max(self.transient_hold) > 0.0

    @property
    def q_check(self) -> float:
        """P(a transient reference is held at one check): q_transient, or the process's
        stationary 1 - exp(-rho E[h])."""
        if self.transient_process:
            return stationary_q(self.transient_rate, self.transient_hold)
        return self.q_transient

    def checks_independent(self) -> bool:
        """No transient hold can cover two consecutive checks."""
        return (not self.transient_process
                or _hold_max(self.transient_hold) <= self.min_check_spacing())


# --------------------------------------------------------------------------------------------
# Transient references as a process (MODEL.md 1.1, 1.4): the closed form at known check times


def _hold_max(hold) -> float:
    """A bound that no hold reaches (for a constant, its value): a CompiledDist's max_ns bounds
    its whole-ns samples, which floor a continuous value below max_ns + 1."""
    if hold is None:
        return 0.0
    if hold.is_const:
        return float(hold.mean_ns)
    return float(hold.max_ns) + 1.0


def hold_mean(hold) -> float:
    """E[h] = int_0^inf P(h >= u) du."""
    return float(hold.survival_integral(0.0, math.inf))


def stationary_q(rho: float, hold) -> float:
    """P(some transient reference is held at a given instant) = 1 - exp(-rho E[h]) (M/G/inf)."""
    return -math.expm1(-rho * hold_mean(hold)) if rho > 0.0 else 0.0


def hold_reach(hold) -> float:
    """No run of covered checks is longer than this (ns): hold.max_ns, or for an unbounded law
    the x where int_x^inf P(h >= u) du < HOLD_REACH_EPS E[h]."""
    H = _hold_max(hold)
    if math.isfinite(H):
        return H
    m = hold_mean(hold)
    x = max(m, 1.0)
    while hold.survival_integral(x, math.inf) >= HOLD_REACH_EPS * m:
        x *= 2.0
    return x


@dataclass
class TransientChecks:
    """The transient process alone at checks t_1..t_n."""

    pmf: np.ndarray  # pmf[k-1] = P(checks 1..k-1 covered, check k not covered), k = 1..n
    alive: np.ndarray  # alive[k] = P(checks 1..k all covered), k = 0..n (alive[0] = 1)
    reach: int  # the longest run of checks one hold can cover


def coverage_rates(t, rho: float, hold) -> list[np.ndarray]:
    """lam[a][b - a] (0-based a <= b): the mean number of transient references that cover
    exactly the checks a..b (of t[0] < t[1] < ...), with t[-1] = -inf and t[n] = +inf:

        lam_{a,b} = rho [I(t_b - t_a, t_b - t_{a-1}) - I(t_{b+1} - t_a, t_{b+1} - t_{a-1})],
        I(x, y) = int_x^y P(h >= u) du = hold.survival_integral(x, y).

    An arrival at s held h covers check j iff s < t_j <= s + h: the checks after s up to s + h, a
    contiguous run; marking the Poisson arrivals by their run makes the counts per run independent
    Poisson. Entries for runs no hold can reach (t_b - t_a >= the hold's reach) are exactly 0.
    Survival integrals are memoised on their arguments (check patterns repeat every call)."""
    t = np.asarray(t, dtype=np.float64)
    n = len(t)
    H = hold_reach(hold)
    memo: dict = {}

    def surv(x: float, y: float) -> float:
        key = (x, y)
        v = memo.get(key)
        if v is None:
            v = float(hold.survival_integral(x, y)) if x < H else 0.0
            memo[key] = v
        return v

    rows = []
    for a in range(n):
        prev = t[a - 1] if a > 0 else -math.inf
        vals = []
        b = a
        while b < n and (b == a or t[b] - t[a] < H):
            first = surv(float(t[b] - t[a]), float(t[b] - prev))
            second = surv(float(t[b + 1] - t[a]), float(t[b + 1] - prev)) if b + 1 < n else 0.0
            vals.append(rho * max(first - second, 0.0))
            b += 1
        rows.append(np.array(vals))
    return rows


def transient_first_uncovered(t, rho: float, hold) -> TransientChecks:
    """P(checks 1..k-1 all covered by transient references and check k not), k = 1..n, for the
    stationary process of rate rho (per ns) with holds ``hold`` at deterministic check times t.

    DP left to right; the state before index j is R, the furthest check covered by the runs that
    start at or before j - 1, kept only while checks 1..j-1 are all covered (R >= j - 1). The
    runs starting at j end at most at E_j, P(E_j <= m) = exp(-sum_{b > m} lam_{j,b}); the new state
    is max(R, E_j), and the mass with R = j - 1 and no run starting at j is P(first success at j).
    Every transition probability is a product of exp(-C) and -expm1(-lam) (no subtraction), so
    tiny masses keep their relative precision. O(n * reach)."""
    t = np.asarray(t, dtype=np.float64)
    n = len(t)
    if n and np.any(np.diff(t) <= 0):
        raise ValueError("check times must be increasing")
    pmf = np.zeros(n)
    alive = np.ones(n + 1)
    if rho <= 0.0 or _hold_max(hold) <= 0.0:
        if n:
            pmf[0] = 1.0
            alive[1:] = 0.0
        return TransientChecks(pmf, alive, 0)
    rows = coverage_rates(t, rho, hold)
    W = max(len(r) for r in rows)
    v = np.zeros(W + 1)  # v[i]: mass with R = j - 1 + i (before step j)
    v[0] = 1.0
    lam = np.zeros(W + 1)  # lam[o], o = 1..W: the run j..j-1+o
    for j in range(n):
        lam[:] = 0.0
        r = rows[j]
        lam[1:1 + len(r)] = r
        C = np.cumsum(lam[::-1])[::-1]  # C[i] = sum_{o >= i} lam[o]
        C_after = np.append(C[1:], 0.0)  # C_after[i] = sum_{o > i} lam[o]
        pmf[j] = v[0] * math.exp(-C[1])
        cum = np.cumsum(v)
        new = np.exp(-C_after[1:]) * (v[1:] + cum[:-1] * -np.expm1(-lam[1:]))
        v[:-1] = new
        v[-1] = 0.0
        alive[j + 1] = float(new.sum())
    return TransientChecks(pmf, alive, W)


# --------------------------------------------------------------------------------------------
# Attempt 1: closed forms


def _p_exp_in(rate: float, lo: float, hi: float) -> float:
    """P(lo <= E < hi) for E ~ Exp(rate) (lo, hi may be negative or inf)."""
    lo = max(lo, 0.0)
    hi = max(hi, 0.0)
    if hi <= lo or rate <= 0.0:
        return 0.0
    if math.isinf(hi):
        return math.exp(-rate * lo)
    return math.exp(-rate * lo) * -math.expm1(-rate * (hi - lo))


def hold_prob_first(p: ExactParams, i: int) -> float:
    """P(task i holds a reference at F_1) (closed form; i in 1..A)."""
    w = p.F - p.U(i) - p.fe  # the task holds iff its first access E = a - U_i satisfies E < w ...
    if p.strategy == "ref":
        return _p_exp_in(p.lam, 0.0, w)
    if p.strategy == "drop":  # ... and, for drop, x >= F - ptl_hold - drop_hold as well
        return _p_exp_in(p.lam, w - p.ptl_hold - p.drop_hold, w)
    if p.strategy == "flag_spin":  # ... before the flag is set (x < f0 <= F)
        if p.flag_from == "lock":
            return 0.0
        return _p_exp_in(p.lam, 0.0, p.U(p.M) - p.U(i) - p.fe)
    return 0.0  # ptl_pin, pte_wait, lock_noref: no waiter reference ever


def first_attempt_success(p: ExactParams) -> float:
    """P(attempt 1 succeeds) = (1 - q) * prod_{i<=A} (1 - P(task i holds a ref at F_1)).

    q = p.q_check: the transient process is stationary and independent of the tasks, so at the
    one check F_1 it is held with probability 1 - exp(-rho E[h]), whatever the timing."""
    p.validate()
    s = 1.0 - p.q_check
    for i in range(1, p.A + 1):
        s *= 1.0 - hold_prob_first(p, i)
    return s


def first_attempt_failure(p: ExactParams) -> float:
    """1 - first_attempt_success(p), without the subtraction (accurate when it is tiny)."""
    p.validate()
    q = p.q_check
    if q >= 1.0:
        return 1.0
    s = math.log1p(-q)
    for i in range(1, p.A + 1):
        h = hold_prob_first(p, i)
        if h >= 1.0:
            return 1.0
        s += math.log1p(-h)
    return -math.expm1(s)


# --------------------------------------------------------------------------------------------
# One task in one failed attempt: (hold at F, next state) by piecewise integration


@dataclass
class _Ctx:
    """Task i in an attempt that fails (L = 0), followed by gap g."""

    p: ExactParams
    i: int
    g: float
    pc: float  # P(a task woken at T is still waiting at L' = T + g)

    def __post_init__(self):
        p, i = self.p, self.i
        self.Ui, self.F, self.T, self.Ri = p.U(i), p.F, p.T, p.R(i)
        self.Lp = self.T + self.g
        self.Upi = self.Lp + p.U(i)
        self.f0 = 0.0 if p.flag_from == "lock" else p.U(p.M)

    def breaks(self) -> list[float]:
        """Every discontinuity of the outcome functions, as a value of the access time a."""
        p = self.p
        keys = (self.Ui, self.F, self.T, self.Ri, self.Lp, self.Upi, self.f0)
        out = []
        for c in keys:
            for n1 in range(3):
                for n2 in range(3):
                    for n3 in range(2):
                        out.append(c - n1 * p.fe - n2 * p.ptl_hold - n3 * p.drop_hold)
        return out

    def fail(self, what: str):
        raise ValueError(
            f"{self.p.strategy}: task {self.i}, gap {self.g:g} ns: {what}; the attempt chain "
            "assumes what a task does in one attempt is over before the next one starts "
            "(see mcexplore.exact)")

    def returns_at(self, t: float):
        """The task returns at t and then accesses normally: must be before its next unmap."""
        if t > self.Upi:
            self.fail(f"a task may return at {t:g} ns, after its PTE is unmapped again at "
                      f"{self.Upi:g} ns (fault_entry too long for the gap)")
        return (False, 0.0)

    # ref / flag_spin ------------------------------------------------------------------------
    def ref_wait(self, x: float, hold: bool):
        """ref path: reference from x, PTL dropped at p = x + ptl_hold."""
        pp = x + self.p.ptl_hold
        if pp < self.T:
            return (hold, self.pc)  # asleep at T; still holding at L' iff W >= g
        if pp < self.Lp:
            return (hold, 0.0)  # the page is unlocked at p: put and return
        self.fail(f"a waiter may drop the PTL at {pp:g} ns, after the next lock at {self.Lp:g} ns "
                  "(ptl_hold too long for the gap)")

    def ref_N(self, a: float):
        if a >= self.Ri:
            return (False, 0.0)  # PTE already restored: no fault
        x = a + self.p.fe
        if x >= self.Ri:
            return self.returns_at(x)
        return self.ref_wait(x, x < self.F)

    def flag_N(self, a: float):
        if a >= self.Ri:
            return (False, 0.0)
        x = a + self.p.fe
        if x >= self.Ri:
            return self.returns_at(x)
        if x < self.f0:
            return self.ref_wait(x, True)  # flag not yet set: ref; x < f0 <= F
        if x < self.F:  # sees the flag (it clears at F in a failed attempt): spin, refault
            a2 = max(x + self.p.ptl_hold, self.F)
            if a2 >= self.Ri:
                return self.returns_at(a2)
            x2 = a2 + self.p.fe
            if x2 >= self.Ri:
                return self.returns_at(x2)
            return self.ref_wait(x2, False)
        return self.ref_wait(x, False)  # flag already cleared

    # drop -----------------------------------------------------------------------------------
    def drop_any(self, a: float, pending_branch: bool):
        """a: the task's first access in the unmap window [U_i, ...). pending_branch: a is the
        moment a task still waiting from the previous attempt returns (it then retries at once)."""
        if a >= self.Ri:
            if pending_branch and a >= self.Lp:
                return (False, 1.0)  # still waiting at L'
            return (False, 0.0)
        x = a + self.p.fe
        if x >= self.Ri:
            return self.returns_at(x)
        b = x + self.p.ptl_hold + self.p.drop_hold
        hold = x < self.F <= b
        if b < self.T:
            return (hold, self.pc)  # page locked at b: sleep, no ref, until T (+ W)
        if b < self.Lp:
            return (hold, 0.0)
        self.fail(f"the drop window may end at {b:g} ns, after the next lock at {self.Lp:g} ns "
                  "(ptl_hold + drop_hold too long for the gap)")


def _integrate(rate: float, origin: float, start: float, fn, breaks, weight: float = 1.0):
    """sum over intervals of P(origin + Exp(rate) in [lo, hi)) * fn(mid), for a >= start.

    fn returns (hold, pnext); fn is piecewise constant between the breaks. Returns a 2x2 array
    acc[hold, next] of probabilities."""
    acc = np.zeros((2, 2))
    if weight <= 0.0:
        return acc
    if rate <= 0.0:
        h, pn = fn(math.inf)
        acc[int(h), 1] += weight * pn
        acc[int(h), 0] += weight * (1.0 - pn)
        return acc
    pts = sorted({b for b in breaks if b > start and math.isfinite(b)})
    edges = [start] + pts + [math.inf]
    for lo, hi in zip(edges[:-1], edges[1:]):
        pr = _p_exp_in(rate, lo - origin, hi - origin)
        if pr <= 0.0:
            continue
        mid = 0.5 * (lo + hi) if math.isfinite(hi) else lo + max(1.0, abs(lo))
        h, pn = fn(mid)
        acc[int(h), 1] += weight * pr * pn
        acc[int(h), 0] += weight * pr * (1.0 - pn)
    return acc


def _carry_prob(p: ExactParams, g: float) -> float:
    """P(a task woken at an unlock T has not run by T + g)."""
    if p.wake_kind == "exp":
        return math.exp(-g / p.wake_mean) if p.wake_mean > 0 else 0.0
    if p.wake_mean < g:
        return 0.0
    raise ValueError(f"constant wake_latency {p.wake_mean:g} ns >= gap {g:g} ns: not exact "
                     "(a constant wake-up can land inside the next attempt)")


def task_transition(p: ExactParams, i: int, g: float) -> np.ndarray:
    """T[s, h, s'] = P(task i holds a ref at F (h), is in state s' at the next lock | state s at
    this lock), in an attempt that fails, followed by gap g.

    States: 0 = normal (not waiting); 1 = ref/flag_spin: asleep holding a reference (it will
    hold it at F surely); drop: waiting without a reference, returns at L + Exp(1/wake_mean)."""
    c = _Ctx(p, i, g, _carry_prob(p, g))
    br = c.breaks()
    out = np.zeros((2, 2, 2))
    if p.strategy in ("ref", "flag_spin"):
        fn = c.ref_N if p.strategy == "ref" else c.flag_N
        out[0] = _integrate(p.lam, c.Ui, c.Ui, fn, br)
        out[1, 1, 1] = c.pc  # holds at F, sleeps again until T (if it ran in [L, T))
        out[1, 1, 0] = 1.0 - c.pc
    elif p.strategy == "drop":
        out[0] = _integrate(p.lam, c.Ui, c.Ui, lambda a: c.drop_any(a, False), br)
        if p.wake_kind == "exp" and p.wake_mean > 0:
            mu = 1.0 / p.wake_mean
            back = -math.expm1(-mu * c.Ui)  # returned before U_i: an ordinary first access
            out[1] = _integrate(p.lam, c.Ui, c.Ui, lambda a: c.drop_any(a, False), br, back)
            out[1] += _integrate(mu, 0.0, c.Ui, lambda a: c.drop_any(a, True), br)
        else:
            out[1] = out[0]  # state 1 is never reached
    else:
        raise ValueError(f"no per-task chain for {p.strategy}")
    return out


# --------------------------------------------------------------------------------------------
# The chain over attempts


@dataclass
class AttemptDistribution:
    pmf: np.ndarray  # pmf[k-1] = P(attempts = k), k = 1..kmax
    call_failed: float  # P(not migrated within the first migrate_pages call)
    mean: float | None  # E[attempts] without budget (inf if infinite; None if not computed)
    tail: float  # P(attempts > kmax)
    first_attempt_success: float
    notes: list[str] = field(default_factory=list)
    alive: np.ndarray | None = None  # alive[k] = P(attempts > k), k = 0..kmax


def _apply(v: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """Apply the 2x2 matrix m[s, s'] along ``axis`` of the state tensor v."""
    pre = 1 << axis
    w = v.reshape(pre, 2, -1)
    out = np.empty_like(w)
    out[:, 0, :] = m[0, 0] * w[:, 0, :] + m[1, 0] * w[:, 1, :]
    out[:, 1, :] = m[0, 1] * w[:, 0, :] + m[1, 1] * w[:, 1, :]
    return out.reshape(v.shape)


class _Chain:
    """State: a tensor over {0,1}^A (+ a trailing batch axis) of the mass not yet migrated."""

    def __init__(self, p: ExactParams):
        self.p = p
        self.A = p.A
        self.q = p.q_check
        self._mats = {}

    def mats(self, g: float):
        if g not in self._mats:
            ms = []
            for i in range(1, self.A + 1):
                t = task_transition(self.p, i, g)
                ms.append((t[:, 0, :] + t[:, 1, :], t[:, 1, :], t[:, 0, :]))  # all, hold, nohold
            self._mats[g] = ms
        return self._mats[g]

    def step(self, v: np.ndarray, g: float):
        """One attempt: returns (mass migrated at it, mass entering the next attempt).

        fail = P(some hold) + q P(no hold). With a_j, b_j, h_j = all, no-hold, hold operators of
        task j, P(some hold) = prod a - prod b = sum_j b_{<j} h_j a_{>j}, accumulated from the
        last task (f <- h_j a_{>j} v + b_j f): no subtraction, so small masses stay accurate."""
        ms = self.mats(g)
        a_v = v  # a_{>j} v
        f = None
        for j in range(self.A - 1, -1, -1):
            t = _apply(a_v, ms[j][1], j)
            f = t if f is None else t + _apply(f, ms[j][2], j)
            a_v = _apply(a_v, ms[j][0], j)
        b = v
        for j in range(self.A):
            b = _apply(b, ms[j][2], j)
        succ = (1.0 - self.q) * b.sum(axis=tuple(range(self.A)))
        return succ, f + self.q * b

    def start(self, batch: int | None = None) -> np.ndarray:
        shape = (2,) * self.A
        if batch is None:
            v = np.zeros(shape)
            v[(0,) * self.A] = 1.0
            return v
        return np.eye(2 ** self.A).reshape(shape + (batch,))


def no_waiter_failures(p: ExactParams) -> bool:
    """No waiter can fail or delay an attempt: no active task, or waiters that hold no reference
    and never take the page lock (ptl_pin, pte_wait). Attempts then fail only by transient
    references, at check times fixed by the migrator's costs."""
    return p.strategy in ("ptl_pin", "pte_wait") or p.lam == 0.0 or p.A == 0


def transient_span_reason(p: ExactParams) -> str:
    return (f"transient holds up to {_hold_max(p.transient_hold):.6g} ns can span consecutive "
            f"refcount checks {p.min_check_spacing():.6g} ns apart: not exact (the attempt chain "
            "needs independent checks)")


def check_chain(p: ExactParams) -> None:
    """Raise ValueError when the attempt chain is not exact for p (without computing it)."""
    p.validate()
    if no_waiter_failures(p):
        return
    if strategies.get(p.strategy).exact != "chain":
        raise ValueError(f"{p.strategy}: no exact attempt chain (lock contention between "
                         "attempts is not memoryless); only attempt 1 is exact")
    if not p.checks_independent():
        raise ValueError(transient_span_reason(p))
    if p.A > MAX_CHAIN_TASKS:
        raise ValueError(f"{p.A} active tasks: more than {MAX_CHAIN_TASKS} for the exact chain")
    gaps = {p.outer_gap} | ({p.retry_gap} if p.passes > 1 else set())
    for g in gaps:
        for i in range(1, p.A + 1):
            task_transition(p, i, g)


def attempt_distribution(p: ExactParams, kmax: int = 1000) -> AttemptDistribution:
    """The law of the number of attempts until success (no budget), for ref, flag_spin, drop,
    ptl_pin and pte_wait (and any strategy on a page without active tasks). Raises ValueError
    outside the conditions (module docstring).

    Without waiter failures (``no_waiter_failures``) attempts fail only by transient references:
    geometric when no hold can span two checks, else the closed form at the check times
    (``transient_first_uncovered``; ``mean`` is then None unless the tail is exactly 0)."""
    check_chain(p)
    if kmax < 1:
        raise ValueError("kmax must be >= 1")
    q = p.q_check
    first = first_attempt_success(p)
    notes = []
    if no_waiter_failures(p):
        if p.checks_independent():
            # Attempts fail only by transient references, independently: geometric.
            k = np.arange(0, kmax + 1)
            alive = q ** k
            pmf = (1.0 - q) * alive[:-1]
            mean = 1.0 / (1.0 - q) if q < 1.0 else math.inf
            notes.append("geometric: only transient references can fail an attempt, "
                         "independently at each check")
            return AttemptDistribution(pmf, q ** p.passes, mean, q ** kmax, first, notes, alive)
        # One hold can cover several checks: the closed form at the known check times.
        n = max(kmax, p.passes)
        tc = transient_first_uncovered(p.check_times(n), p.transient_rate, p.transient_hold)
        notes.append(f"transient process at fixed check times (holds span up to {tc.reach} "
                     "checks)")
        mean = float(tc.alive[:kmax].sum()) if tc.alive[kmax] == 0.0 else None
        return AttemptDistribution(tc.pmf[:kmax].copy(), float(tc.alive[p.passes]), mean,
                                   float(tc.alive[kmax]), first, notes, tc.alive[:kmax + 1].copy())

    ch = _Chain(p)
    v = ch.start()
    pmf = np.zeros(kmax)
    alive = np.ones(kmax + 1)
    call_failed = None
    for k in range(1, kmax + 1):
        s, v = ch.step(v, p.gap_after(k))
        pmf[k - 1] = float(s)
        alive[k] = float(v.sum())
        if k == p.passes:
            call_failed = float(v.sum())
    tail = float(v.sum())
    if call_failed is None:  # kmax < passes: run on to the end of the first call
        w = v
        for k in range(kmax + 1, p.passes + 1):
            _, w = ch.step(w, p.gap_after(k))
        call_failed = float(w.sum())
    mean = _mean_attempts(ch, p)
    return AttemptDistribution(pmf, call_failed, mean, tail, first, notes, alive)


def _mean_attempts(ch: _Chain, p: ExactParams) -> float | None:
    """E[attempts] = sum_k P(attempts >= k), summed over migrate_pages calls in closed form:
    with Phi the map from the state at the start of a call to the state at the start of the next
    and G(v) = sum of the masses entering the call's attempts, E = G (I - Phi)^{-1} v0."""
    A = p.A
    if A <= MAX_DENSE_TASKS:
        n = 2 ** A
        v = ch.start(batch=n)
        G = np.zeros(n)
        for k in range(1, p.passes + 1):
            G += v.reshape(n, n).sum(axis=0)
            _, v = ch.step(v, p.gap_after(k))
        Phi = v.reshape(n, n)  # Phi[s', s]: substochastic, column s sums to P(call fails | s)
        if Phi.sum(axis=0).max() >= 1.0 - 1e-13:
            rho = max(abs(np.linalg.eigvals(Phi))) if n > 1 else abs(Phi[0, 0])
            if rho >= 1.0 - 1e-13:
                return math.inf
        v0 = np.zeros(n)
        v0[0] = 1.0
        return float(G @ np.linalg.solve(np.eye(n) - Phi, v0))
    # Large A: sum call by call while it converges (None if it does not, soon enough).
    v = ch.start()
    total = 0.0
    for _call in range(max(1, 5000 // p.passes)):
        for k in range(1, p.passes + 1):
            total += float(v.sum())
            _, v = ch.step(v, p.gap_after(k))
        if v.sum() < 1e-14 * max(total, 1.0):
            return total
    return None


# --------------------------------------------------------------------------------------------
# From a compiled scenario: every quantity labelled exact, approximate or refused

EXACT, APPROXIMATE, REFUSED = "exact", "approximate", "refused"
QUANTITIES = ("first_attempt_success", "call_failed", "attempts_pmf", "attempts_tail",
              "mean_attempts")
# An approximation is offered only when its rigorous error bound is at most this fraction of the
# upper bound; beyond it the entry is refused (the bounds are still given).
APPROX_MAX_REL_WIDTH = 0.1
MAX_BUDGET_ATTEMPTS = 10 ** 6
TIMELINE_COSTS = ("unmap_pte", "pre_freeze", "freeze_hold", "copy", "remap_pte", "retry_gap",
                  "outer_gap")


def _const_value(d):
    """The value of a constant distribution, else None."""
    return float(d.mean_ns) if d.is_const else None


def _exp_mean(d):
    """The mean of a distribution that is exactly one exponential, else None."""
    m = d.exp_mean_ns
    return None if m is None else float(m)


def _is_exact(d) -> bool:
    """The compiled form is the specified distribution (a tabulated lognormal is not)."""
    return True if d.is_const else bool(d.exact)


def _upper(d) -> float:
    """An upper bound on the specified distribution (inf where the specification is unbounded:
    exponentials, mixtures with one, tabulated approximations of unbounded laws)."""
    if d.is_const:
        return float(d.mean_ns)
    if not _is_exact(d) or _exp_mean(d) is not None:
        return math.inf
    H = _hold_max(d)  # max_ns + 1: whole-ns samples floor a value below it
    if not math.isfinite(H) or d.survival_integral(H, math.inf) > 0.0:
        return math.inf
    return H


def _lower(d) -> float:
    """A lower bound on the distribution: the constant, else the largest x with cdf(x) = 0
    (cdf(x) = P(value < x) for a CompiledDist, P(value <= x) for the stand-ins: either way no
    value is below x)."""
    if d.is_const:
        return float(d.mean_ns)
    if not _is_exact(d) or _exp_mean(d) is not None:
        return 0.0
    hi = float(d.max_ns)
    if not math.isfinite(hi) or float(d.cdf(0.0)) > 0.0:
        return 0.0
    lo = 0.0
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        if float(d.cdf(mid)) > 0.0:
            hi = mid
        else:
            lo = mid
    return math.floor(lo)


def _fmt_ns(x: float) -> str:
    if math.isinf(x):
        return "unbounded"
    for unit, f in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if abs(x) >= f:
            return f"{x / f:.6g} {unit}"
    return f"{x:.6g} ns"


def _lin(counts: np.ndarray, v: float) -> np.ndarray:
    """counts * v with 0 * inf = 0."""
    c = np.asarray(counts, dtype=np.float64)
    if math.isinf(v):
        return np.where(c == 0, 0.0, v)
    return c * v


@dataclass
class _Cost:
    lo: float
    hi: float
    mean: float
    exact: bool

    @property
    def random(self) -> bool:
        return self.lo != self.hi


class _Timeline:
    """Bounds on the migrator's times, attempts 1..N, from each cost's [lo, hi] and mean:
    L_k (lock, failure timeline), F_k (check) and S_k (unlock of a successful attempt)."""

    def __init__(self, costs: dict, M: int, file: bool, passes: int, N: int):
        self.costs, self.M, self.file, self.passes = costs, M, file, passes
        k = np.arange(1, N + 1)
        n_out = (k - 1) // passes
        n_ret = (k - 1) - n_out
        per = {"unmap_pte": M * (k - 1), "pre_freeze": k - 1, "remap_pte": M * (k - 1),
               "retry_gap": n_ret, "outer_gap": n_out}
        chk = {"unmap_pte": M, "pre_freeze": 1}
        suc = {"freeze_hold": 1 if file else 0, "copy": 1, "remap_pte": M}
        self.L = {f: sum(_lin(c, getattr(costs[n], f)) for n, c in per.items())
                  for f in ("lo", "hi", "mean")}
        self.F = {f: self.L[f] + sum(c * getattr(costs[n], f) for n, c in chk.items())
                  for f in ("lo", "hi", "mean")}
        self.S = {f: self.F[f] + sum(_lin(c, getattr(costs[n], f)) for n, c in suc.items())
                  for f in ("lo", "hi", "mean")}
        self.counts_L = per

    def random_in(self, which: str, k: int) -> list[str]:
        """The random costs that enter L_k ("L") or S_k ("S")."""
        out = [n for n, c in self.counts_L.items() if c[k - 1] > 0 and self.costs[n].random]
        extra = ["unmap_pte", "pre_freeze"] if which in ("F", "S") else []
        if which == "S":
            extra += (["freeze_hold"] if self.file else []) + ["copy", "remap_pte"]
        out += [n for n in extra if self.costs[n].random and n not in out]
        return out

    def markov(self, which: str, ks: np.ndarray, timeout: float) -> np.ndarray:
        """Bounds on P(X_k >= timeout), X = L or S, k in ks, by Markov's inequality on
        X_k - lo_k >= 0; 1 (no information) where a random cost in X_k is not exact (its mean is
        not the specified law's)."""
        ks = np.asarray(ks, dtype=np.int64)
        out = np.ones(len(ks))
        for j, k in enumerate(ks):
            if any(not self.costs[n].exact for n in self.random_in(which, int(k))):
                continue
            d = getattr(self, which)
            lo, mean = float(d["lo"][k - 1]), float(d["mean"][k - 1])
            if timeout > lo:
                out[j] = min(1.0, max(mean - lo, 0.0) / (timeout - lo))
        return out


@dataclass
class Entry:
    """One quantity: ``status`` exact | approximate | refused; ``why``: what an exact value rests
    on, the assumption of an approximate one, or the reason for a refusal; ``bounds``: rigorous
    [lo, hi] where known (approximate and refused entries)."""

    status: str
    value: object = None
    why: str = ""
    bounds: list | None = None

    def to_dict(self) -> dict:
        d = {"status": self.status, "value": self.value, "why": self.why}
        if self.bounds is not None:
            d["bounds"] = self.bounds
        return d


def _bounded_entry(value: float, lo: float, hi: float, why_approx: str, why_refuse: str,
                   extra: list[str]) -> Entry:
    """An entry whose true value lies in [lo, hi] (lo == hi: exact)."""
    if lo == hi and not extra:
        return Entry(EXACT, float(value), "")
    if lo == hi:
        return Entry(APPROXIMATE, float(value), "; ".join(extra))
    width_ok = (hi - lo) <= APPROX_MAX_REL_WIDTH * hi
    why = "; ".join([why_approx] + extra)
    if width_ok:
        return Entry(APPROXIMATE, float(value), why, [float(lo), float(hi)])
    return Entry(REFUSED, None, "; ".join([why_refuse] + extra), [float(lo), float(hi)])


def exact_value(result: dict, name: str):
    """The value of quantity ``name`` of an ``exact_for`` result if it is exact, else None
    (attempts_pmf: the list of its leading exact entries, or None if there is none)."""
    e = result.get(name)
    if e is None:
        return None
    if name == "attempts_pmf":
        n = e.get("exact_k", 0)
        return list(e["value"][:n]) if n else None
    return e["value"] if e["status"] == EXACT else None


def exact_for(compiled) -> dict:
    """Every page-level quantity of a compiled scenario, under its budget, each exact for the
    model as specified, approximate (assumption named, rigorous bounds where known) or refused
    (reason given).

    Returns {"strategy", "conditions": [str], and per quantity an entry dict (see ``Entry``)}:
    ``first_attempt_success`` = P(attempts = 1 and migrated); ``attempts_pmf`` = P(attempts = k
    and migrated) for k = 1..N, N the attempts that can start (k <= max_attempts, L_k < timeout),
    with per-entry ``entry_status``/``entry_bounds`` and ``exact_k`` (entries 1..exact_k exact);
    ``attempts_tail`` = P(not migrated) = livelock + censored; ``call_failed`` = P(not migrated
    within the first migrate_pages call); ``mean_attempts`` = E[attempts] under the budget.
    Raises NotExact at block level. ``exact_value(result, name)`` reads an exact value."""
    from .params import DIST_INDEX

    if compiled.block is not None:
        raise NotExact("block level: no exact solution")
    row = strategies.by_code(compiled.strategy)
    if row.exact == "none":
        raise NotExact(f"{row.name}: the exact solver does not model this strategy (its registry row says exact='none')")
    strategy = row.name
    page = compiled.page
    timeout = float(compiled.timeout_ns)
    max_attempts = int(compiled.max_attempts)

    def dist(n):
        return compiled.dists[DIST_INDEX[n]]

    conds = [f"strategy {strategy}, {'file' if page.file else 'anon'} page, mapcount "
             f"{page.mapcount}, passes {compiled.passes}"]
    # Notes that make every value depending on the transient references approximate.
    trans_approx: list[str] = []

    # --- transient references ------------------------------------------------------------
    rho = float(compiled.transient_rate_per_ns)
    hold = dist("transient_hold")
    present = rho > 0.0 and _hold_max(hold) > 0.0 and hold_mean(hold) > 0.0
    proc = False
    q_stat = 0.0
    if not present:
        conds.append("no transient references")
    else:
        proc = True
        q_stat = stationary_q(rho, hold)
        conds.append(f"transient references: Poisson process, rate {rho * 1e9:.6g}/s, holds of "
                     f"mean {hold_mean(hold):.6g} ns, none longer than {_hold_max(hold):.6g} ns; "
                     f"held at one check with probability 1 - exp(-rho E[h]) = {q_stat:.6g}")
        if not _is_exact(hold):
            trans_approx.append("transient_hold as compiled: a tabulated approximation of the "
                                "specified distribution (its survival integral is the table's)")

    # --- tasks -------------------------------------------------------------------------------
    lam = 1.0 / page.access_mean_ns if page.access_mean_ns > 0 else 0.0
    A = page.active if lam > 0 else 0
    waiters = A > 0 and strategy not in ("ptl_pin", "pte_wait")
    access_ok, access_why = True, ""
    if waiters:
        if len(compiled.dists) > DIST_INDEX["access"]:
            d = dist("access")
            m = _exp_mean(d)
            if m is None and not (d.is_const and float(d.mean_ns) == 0.0):  # const 0: placeholder
                access_ok, access_why = False, "access is not exponential (Poisson accesses)"
            elif m is not None and abs(m - page.access_mean_ns) > 1e-6 * page.access_mean_ns:
                conds.append(f"note: access dist mean {m:g} ns != page.access_mean_ns "
                             f"{page.access_mean_ns:g} ns; used the latter")

    c = {n: _const_value(dist(n)) for n in (
        "unmap_pte", "pre_freeze", "freeze_hold", "copy", "remap_pte", "fault_entry", "ptl_hold",
        "drop_hold", "retry_gap", "outer_gap")}
    wd = dist("wake_latency")
    wake_exp = _exp_mean(wd)
    wake_const = _const_value(wd)

    # --- the budget: which attempts can start, and their times -------------------------------
    costs = {}
    for n in TIMELINE_COSTS:
        d = dist(n)
        mean = float(d.mean_ns) if d.is_const else hold_mean(d)  # the continuous law's mean
        costs[n] = _Cost(_lower(d), _upper(d), mean, _is_exact(d))
    per_lo = (page.mapcount * (costs["unmap_pte"].lo + costs["remap_pte"].lo)
              + costs["pre_freeze"].lo)
    step_lo = per_lo + min(costs["retry_gap"].lo, costs["outer_gap"].lo)
    if max_attempts < 1 or timeout <= 0:
        n_cap = 0
    elif step_lo <= 0:
        n_cap = max_attempts
    else:
        n_cap = min(max_attempts, int(math.ceil(timeout / step_lo)) + 1)
    if n_cap > MAX_BUDGET_ATTEMPTS:
        out = {"strategy": strategy}
        why = (f"more than {MAX_BUDGET_ATTEMPTS} attempts can start within the budget "
               f"(max_attempts {max_attempts}, timeout {_fmt_ns(timeout)})")
        for qn in QUANTITIES:
            out[qn] = Entry(REFUSED, None, why).to_dict()
        out["conditions"] = conds
        return out
    tl = _Timeline(costs, page.mapcount, page.file, compiled.passes, max(n_cap, 1))
    N = int(np.count_nonzero(tl.L["lo"][:n_cap] < timeout))  # L_lo is non-decreasing
    started = "attempt 1" if N == 1 else f"attempts 1..{N}"
    conds.append(f"budget: {started} can start (k <= max_attempts {max_attempts} and "
                 f"L_k < timeout {_fmt_ns(timeout)}); attempt k migrates the page only if its "
                 "unlock T_k < timeout")

    # Timing factor of entry k: f_k = P(T_k < timeout) in {1, 0} or uncertain in [1 - B_k, 1];
    # start factor g_k = P(L_k < timeout) (for E[attempts]), 1 or uncertain in [1 - B_k, 1].
    S_lo, S_hi, L_hi = tl.S["lo"][:N], tl.S["hi"][:N], tl.L["hi"][:N]
    sure = S_hi < timeout
    unc = ~sure & (S_lo < timeout)
    f_hi = (sure | unc).astype(np.float64)
    f_lo = sure.astype(np.float64)
    f_lo[unc] = 1.0 - tl.markov("S", np.flatnonzero(unc) + 1, timeout)
    unc_S = [int(k) for k in np.flatnonzero(unc) + 1]
    unc_l = ~(L_hi < timeout)
    g_lo = np.ones(N)
    g_lo[unc_l] = 1.0 - tl.markov("L", np.flatnonzero(unc_l) + 1, timeout)
    unc_L = [int(k) for k in np.flatnonzero(unc_l) + 1]

    def unc_why(ks: list[int], which: str) -> str:
        names = sorted({n for k in ks for n in tl.random_in(which, k)})
        what = "unlock T_k" if which == "S" else "start L_k"
        rng_k = f"attempt {ks[0]}" if len(ks) == 1 else f"attempts {ks[0]}..{ks[-1]}"
        return (f"{rng_k}: the {what} can fall on either side of the timeout "
                f"(random {', '.join(names) or 'costs'}; up to "
                f"{_fmt_ns(float(getattr(tl, which)['hi'][ks[-1] - 1]))})")

    # --- check outcomes without budget: nt[k-1] = P(first success at k), alive[k] -----------
    first_why = ""
    first_nt = first_fail = None
    need_first = []
    if waiters:
        if strategy == "ref":
            need_first = ["unmap_pte", "pre_freeze", "fault_entry"]
        elif strategy == "drop":
            need_first = ["unmap_pte", "pre_freeze", "fault_entry", "ptl_hold", "drop_hold"]
        elif strategy == "flag_spin" and not compiled.flag_from_unmap_end:
            need_first = []
        elif strategy == "flag_spin":
            need_first = ["unmap_pte", "fault_entry"]
    bad_first = [n for n in need_first if c[n] is None]

    def val(n, default=0.0):
        return c[n] if c[n] is not None else default

    def params(**over) -> ExactParams:
        kw = dict(
            M=page.mapcount, A=A if waiters else 0, lam=lam if waiters else 0.0,
            u=val("unmap_pte"), pre_freeze=val("pre_freeze"), freeze_hold=val("freeze_hold"),
            copy=val("copy"), r=val("remap_pte"), fe=val("fault_entry"),
            ptl_hold=val("ptl_hold"), drop_hold=val("drop_hold"),
            wake_mean=(wake_exp if wake_exp is not None else (wake_const or 0.0)),
            wake_kind=("exp" if wake_exp is not None else "const"),
            retry_gap=val("retry_gap", 1e15), outer_gap=val("outer_gap", 1e15),
            passes=compiled.passes, file=page.file, strategy=strategy,
            flag_from=("unmap_end" if compiled.flag_from_unmap_end else "lock"))
        if proc:
            kw.update(transient_rate=rho, transient_hold=hold)
        kw.update(over)
        return ExactParams(**kw)

    if need_first and not access_ok:
        first_why = access_why
    elif bad_first:
        first_why = f"{strategy}: attempt 1 needs constant {', '.join(bad_first)}"
    else:
        first_nt = first_attempt_success(params())
        first_fail = first_attempt_failure(params())
        if not waiters:
            conds.append("attempt 1: no waiter can fail it (any timing)")
        elif need_first:
            conds.append("attempt 1: constant " + ", ".join(need_first) + "; Poisson accesses")
        else:
            conds.append("attempt 1: no waiter reference can be held at F_1 (any timing)")

    nt = None  # P(first success at k), k = 1..K_ok (exact up to K_ok)
    alive = None  # alive[k] = P(checks of attempts 1..k all fail), k = 0..K_ok
    chain_why = ""
    if N == 0:
        nt, alive = np.zeros(0), np.ones(1)
    elif first_nt is None:
        chain_why = first_why
    elif not waiters:
        gaps_used = ([costs["retry_gap"].lo] if compiled.passes > 1 and N > 1 else []) + (
            [costs["outer_gap"].lo] if N > compiled.passes else [])
        spacing_lo = per_lo + min(gaps_used, default=math.inf)
        if not proc or _hold_max(hold) <= spacing_lo:
            q = q_stat
            alive = q ** np.arange(0, N + 1)
            nt = (1.0 - q) * alive[:-1]
            conds.append("attempts fail only by transient references"
                         + (f", independently at each check (no hold spans two checks, at "
                            f"least {_fmt_ns(spacing_lo)} apart)" if proc else "")
                         + f": geometric, P(fail) = {q:.6g} (any timing)")
        else:
            det = tl.F["lo"] == tl.F["hi"]
            K_det = N if det.all() else int(np.argmin(det))
            if K_det == 0:
                chain_why = "the check times are random"
            else:
                tc = transient_first_uncovered(tl.F["lo"][:K_det], rho, hold)
                nt, alive = tc.pmf, tc.alive
                conds.append("attempts fail only by transient references; one hold can cover "
                             f"up to {tc.reach} consecutive checks: the closed form at the check "
                             "times (docs/exact.md, 'Transient references')")
                if K_det < N:
                    chain_why = (f"check times of attempts {K_det + 1}.. are random (random "
                                 f"{', '.join(tl.random_in('F', K_det + 1))}) and transient holds "
                                 f"up to {_fmt_ns(_hold_max(hold))} can span consecutive "
                                 "checks: no closed form")
    elif strategy == "lock_noref":
        chain_why = "lock_noref: later attempts depend on page-lock contention"
    elif not access_ok:
        chain_why = access_why
    else:
        need_chain = (["unmap_pte", "pre_freeze", "remap_pte", "fault_entry", "ptl_hold"]
                      + (["retry_gap"] if compiled.passes > 1 and N > 1 else [])
                      + (["outer_gap"] if N > compiled.passes else [])
                      + (["drop_hold"] if strategy == "drop" else []))
        bad = [n for n in need_chain if c[n] is None]
        if bad:
            chain_why = "later attempts need constant " + ", ".join(bad)
        elif wake_exp is None and wake_const is None:
            chain_why = "later attempts need exponential (or constant) wake_latency"
        else:
            p = params()
            try:
                check_chain(p)
            except ValueError as e:
                chain_why = str(e)
            else:
                ad = attempt_distribution(p, kmax=N)
                nt, alive = ad.pmf, ad.alive
                conds.append("attempt chain: constant " + ", ".join(need_chain) + "; "
                             + ("exponential" if wake_exp is not None else "constant < gap")
                             + " wake_latency; each task's attempt ends before the next attempt "
                             "(checked)" + ("; transient references independent between checks "
                                            "(no hold spans two)" if proc else ""))
    if chain_why:
        conds.append("beyond what is given: " + chain_why)
    if nt is None and first_nt is not None:
        nt = np.array([first_nt])
        alive = np.array([1.0, first_fail])
    K_ok = 0 if nt is None else len(nt)  # check outcomes known for attempts 1..K_ok

    extra = list(trans_approx) if present else []


    out: dict = {"strategy": strategy}

    # --- attempts_pmf and first_attempt_success -----------------------------------------------
    stat, vals, bnds = [], [], []
    for k in range(1, min(N, K_ok) + 1):
        x = float(nt[k - 1])
        lo, hi = x * f_lo[k - 1], x * f_hi[k - 1]
        e = _bounded_entry(hi, lo, hi, f"assumes the timeout does not stop attempt {k} "
                           "(rigorous bounds by Markov's inequality on its end)",
                           f"the timeout may stop attempt {k}", extra)
        stat.append(e.status)
        vals.append(e.value)
        bnds.append(e.bounds)
    exact_k = 0
    while exact_k < len(stat) and stat[exact_k] == EXACT:
        exact_k += 1
    parts = []
    if N == 0:
        parts.append("no attempt can start")
    elif exact_k:
        parts.append(f"k = 1..{exact_k} exact" if exact_k > 1 else "k = 1 exact")
    ks = [k for k in unc_S if k <= len(stat)]
    if ks:
        parts.append(unc_why(ks, "S") + ": those entries assume the timeout does not stop the "
                     "attempt (approximate, rigorous bounds by Markov's inequality in "
                     "entry_bounds), or are refused where the bounds are wide")
    if len(stat) < N:
        parts.append(f"k = {len(stat) + 1}..{N} refused: {chain_why or first_why}")
    parts += [x for x in extra if stat]
    kinds = set(stat) | ({REFUSED} if len(stat) < N else set())
    overall = kinds.pop() if len(kinds) == 1 else (EXACT if not kinds else "mixed")
    pmf_e = {"status": overall, "value": vals, "why": "; ".join(parts), "exact_k": exact_k,
             "n_start": N, "entry_status": stat}
    if any(b is not None for b in bnds):
        pmf_e["entry_bounds"] = bnds
    if N == 0:
        fe = Entry(EXACT, 0.0, "no attempt can start")
    elif stat:
        why = "" if stat[0] == EXACT else "; ".join(
            ([unc_why([1], "S")] if 1 in unc_S else []) + extra)
        fe = Entry(stat[0], vals[0], why, bnds[0])
    else:
        fe = Entry(REFUSED, None, first_why or chain_why)
    out["first_attempt_success"] = fe.to_dict()
    out["attempts_pmf"] = pmf_e

    # --- attempts_tail, call_failed, mean_attempts ---------------------------------------------
    def tail_entry(Kc: int, what: str) -> Entry:
        """P(not migrated within attempts 1..Kc) = alive(Kl) + sum_{k <= Kl} nt_k (1 - f_k),
        Kl the last k <= Kc whose unlock can come before the timeout."""
        Kl = int(np.count_nonzero(tl.S["lo"][:Kc] < timeout)) if Kc else 0
        if alive is None or Kl > K_ok:
            return Entry(REFUSED, None, chain_why or first_why)
        base = float(alive[Kl])
        miss_hi = float(np.sum(nt[:Kl] * (1.0 - f_lo[:Kl]))) if Kl else 0.0
        ks = [k for k in unc_S if k <= Kl]
        if not ks:
            return Entry(APPROXIMATE if extra else EXACT, base, "; ".join(extra))
        return _bounded_entry(base, base, base + miss_hi,
                              f"assumes every attempt whose unlock can come before the timeout "
                              f"does ({unc_why(ks, 'S')}; rigorous bounds by Markov's "
                              "inequality)", f"the timeout may stop {what}: " + unc_why(ks, "S"),
                              extra)

    out["call_failed"] = tail_entry(min(compiled.passes, N), "the first call").to_dict()
    out["attempts_tail"] = tail_entry(N, "attempts").to_dict()
    if N == 0:
        me = Entry(EXACT, 0.0, "no attempt can start")
    elif alive is None or N - 1 > K_ok:
        me = Entry(REFUSED, None, chain_why or first_why)
    else:
        a = alive[:N]  # P(attempts 1..k-1 fail), k = 1..N
        hi = float(a.sum())
        lo = float((a * g_lo).sum())
        ks = [k for k in unc_L if k <= N]
        if not ks:
            me = Entry(APPROXIMATE if extra else EXACT, hi, "; ".join(extra))
        else:
            me = _bounded_entry(hi, lo, hi, f"assumes the timeout stops no attempt from starting "
                                f"({unc_why(ks, 'L')}; rigorous bounds by Markov's inequality)",
                                "the timeout may stop attempts from starting: "
                                + unc_why(ks, "L"), extra)
    out["mean_attempts"] = me.to_dict()
    out["conditions"] = conds
    return out


def _fmt_value(v) -> str:
    return "-" if v is None else f"{v:.6g}"


def format_exact(result: dict, label: str | None = None) -> str:
    """The ``mcexplore exact`` text for one ``exact_for`` result: one line per quantity with its
    status (exact / approximate, with the assumption and bounds / refused, with the reason)."""
    lines = [f"== {label or result.get('strategy', '')}"]
    if "not_exact" in result:
        lines.append(f"  refused: {result['not_exact']}")
        return "\n".join(lines)
    for name in QUANTITIES:
        e = result.get(name)
        if e is None:
            continue
        if name == "attempts_pmf":
            v = e["value"]
            shown = ("[" + ", ".join(_fmt_value(x) for x in v[:10]) + (", ..." if len(v) > 10 else "")
                     + "]") if v else "-"
            head = f"  {name:<22} {shown}"
            lines.append(head)
            lines.append(f"  {'':<22} P(attempts = k and migrated), k = 1..{e['n_start']} "
                         f"(the attempts that can start): {e['why'] or e['status']}")
            continue
        status = e["status"]
        line = f"  {name:<22} {_fmt_value(e['value']):<12} {status}"
        if e.get("why"):
            line += f": {e['why']}"
        if e.get("bounds") is not None:
            lo, hi = e["bounds"]
            line += f" [bounds {lo:.6g}, {hi:.6g}]"
        lines.append(line)
    lines.append("  conditions:")
    lines += [f"    - {c}" for c in result.get("conditions", [])]
    return "\n".join(lines)
