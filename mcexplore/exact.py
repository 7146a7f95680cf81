"""Exact solutions of the page-level model, the ground truth the Monte Carlo engines are tested on.

Where it sits: beside the engines, sharing nothing with them but the model (shared/MODEL.md and
the project's tie rules). Derived from the semantics alone; docs/exact.md has the derivations.

What is solved (all times in ns, treated as continuous):

* ``first_attempt_success(p)``: P(attempt 1 succeeds), every strategy. Attempt 1 is special: at
  L_1 = 0 every task is idle with its PTE present, nobody holds the page lock or a reference.
* ``attempt_distribution(p, kmax)``: the law of ``attempts`` (P(attempts = k), k = 1..kmax),
  ``call_failed`` = P(attempts > passes) and E[attempts], for ``ref``, ``flag_spin`` and ``drop``
  (a Markov chain over attempts whose state is, per task, one bit) and ``ptl_pin``/``pte_wait``
  (geometric: nothing but transient references can fail them).
* ``exact_for(compiled)``: the same from an ``mcexplore.params.Compiled``, with only the entries
  that are exact for its parameters, or ``NotExact``.

Conditions (checked; a violation raises ``ValueError``, or ``NotExact`` from ``exact_for``):

* access: Poisson per task (exponential time to the first access after the unmap), rate ``lam``;
* the costs that matter are constants: unmap_pte, pre_freeze, fault_entry (ref, drop,
  flag_spin with flag_from=unmap_end), ptl_hold, drop_hold (drop); for the chain also remap_pte,
  retry_gap and outer_gap. freeze_hold and copy never matter (they only shape a successful
  attempt, which ends the chain);
* wake_latency: exponential (mean ``wake_mean``), or a constant smaller than every gap used
  (then nobody is still waiting when the next attempt starts);
* chain, ref/flag_spin/drop: what a task does in attempt k is over before attempt k+1 starts
  unless it is asleep at the unlock T_k (then its wake-up is the one memoryless thing that
  spans attempts). Precisely, for every active task i and every gap g used, with
  R_i = F + i*r, T = F + M*r, L' = T + g, U'_i = L' + i*u:
      R_i + fault_entry <= U'_i            (a task that finds its PTE restored returns before
                                            its PTE is unmapped again)
      R_i + ptl_hold < L'                  (ref, flag_spin: a waiter that drops the PTL after
                                            the unlock finds the page unlocked)
      R_i + ptl_hold + drop_hold < L'      (drop: the reference window [x, b) ends before L')
  These are checked on the reachable cases, so the error message names the case that broke;
* at most ``MAX_CHAIN_TASKS`` active tasks for the chain (2**A states).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STRATEGIES = ("ref", "drop", "ptl_pin", "lock_noref", "flag_spin", "pte_wait")
CHAIN_STRATEGIES = ("ref", "drop", "flag_spin", "ptl_pin", "pte_wait")
MAX_CHAIN_TASKS = 12
MAX_DENSE_TASKS = 10  # E[attempts] by a dense linear solve over one migrate_pages call


class NotExact(Exception):
    """Nothing is exactly solvable for these parameters; the message says why."""


@dataclass
class ExactParams:
    """Plain parameters of one page (all durations in ns, constants unless said otherwise)."""

    M: int = 1  # mapcount
    A: int = 1  # active tasks (1..A touch the page)
    lam: float = 0.0  # access rate per active task, per ns (0: never touches)
    u: float = 1000.0  # unmap_pte
    pre_freeze: float = 300.0
    freeze_hold: float = 200.0  # never matters for these quantities
    copy: float = 500.0  # never matters for these quantities
    r: float = 1000.0  # remap_pte
    fe: float = 1000.0  # fault_entry
    ptl_hold: float = 200.0
    drop_hold: float = 200.0
    wake_mean: float = 30000.0  # wake_latency mean (exponential) or value (wake_kind="const")
    retry_gap: float = 1000.0
    outer_gap: float = 500000.0
    passes: int = 10
    file: bool = True  # never matters for these quantities
    q_transient: float = 0.0  # P(a transient reference is held at a refcount check)
    strategy: str = "ref"
    flag_from: str = "lock"  # flag_spin: "lock" (L_k) or "unmap_end" (U_k,M)
    wake_kind: str = "exp"  # "exp" or "const"

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}")
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

    def gap_after(self, k: int) -> float:
        """Gap after attempt k (1-based): outer_gap after every passes-th attempt."""
        return self.outer_gap if k % self.passes == 0 else self.retry_gap


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
    """P(attempt 1 succeeds) = (1 - q) * prod_{i<=A} (1 - P(task i holds a ref at F_1))."""
    p.validate()
    s = 1.0 - p.q_transient
    for i in range(1, p.A + 1):
        s *= 1.0 - hold_prob_first(p, i)
    return s


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
        self.q = p.q_transient
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


def check_chain(p: ExactParams) -> None:
    """Raise ValueError when the attempt chain is not exact for p (without computing it)."""
    p.validate()
    if p.strategy not in CHAIN_STRATEGIES:
        raise ValueError(f"{p.strategy}: no exact attempt chain (lock contention between "
                         "attempts is not memoryless); only attempt 1 is exact")
    if p.strategy in ("ptl_pin", "pte_wait") or p.lam == 0.0 or p.A == 0:
        return
    if p.A > MAX_CHAIN_TASKS:
        raise ValueError(f"{p.A} active tasks: more than {MAX_CHAIN_TASKS} for the exact chain")
    gaps = {p.outer_gap} | ({p.retry_gap} if p.passes > 1 else set())
    for g in gaps:
        for i in range(1, p.A + 1):
            task_transition(p, i, g)


def attempt_distribution(p: ExactParams, kmax: int = 1000) -> AttemptDistribution:
    """The law of the number of attempts until success (no budget), for ref, flag_spin, drop,
    ptl_pin and pte_wait. Raises ValueError outside the conditions (module docstring)."""
    check_chain(p)
    if kmax < 1:
        raise ValueError("kmax must be >= 1")
    q = p.q_transient
    first = first_attempt_success(p)
    notes = []
    if p.strategy in ("ptl_pin", "pte_wait") or p.lam == 0.0 or p.A == 0:
        # No waiter reference is ever held: attempts fail only by transient references.
        k = np.arange(1, kmax + 1)
        pmf = (1.0 - q) * q ** (k - 1)
        mean = 1.0 / (1.0 - q) if q < 1.0 else math.inf
        notes.append("geometric: only transient references can fail an attempt")
        return AttemptDistribution(pmf, q ** p.passes, mean, q ** kmax, first, notes)

    ch = _Chain(p)
    v = ch.start()
    pmf = np.zeros(kmax)
    call_failed = None
    for k in range(1, kmax + 1):
        s, v = ch.step(v, p.gap_after(k))
        pmf[k - 1] = float(s)
        if k == p.passes:
            call_failed = float(v.sum())
    tail = float(v.sum())
    if call_failed is None:  # kmax < passes: run on to the end of the first call
        w = v
        for k in range(kmax + 1, p.passes + 1):
            _, w = ch.step(w, p.gap_after(k))
        call_failed = float(w.sum())
    mean = _mean_attempts(ch, p)
    return AttemptDistribution(pmf, call_failed, mean, tail, first, notes)


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
# From a compiled scenario


def _dist_const(compiled, name: str):
    from .params import DIST_INDEX

    d = compiled.dists[DIST_INDEX[name]]
    if d.is_const:
        return float(d.val[0])
    return None


def _dist_exp_mean(compiled, name: str):
    from .params import DIST_INDEX
    from .rng import KIND_EXP

    d = compiled.dists[DIST_INDEX[name]]
    if d.ncomp == 1 and int(d.kind[0]) == KIND_EXP:
        return float(d.mean_ns)
    return None


def _budget_kcap(p: ExactParams, max_attempts: int, timeout_ns: float) -> int:
    """Attempts that can start: k <= max_attempts and L_k < timeout (failure timeline)."""
    L = 0.0
    k = 0
    while k < max_attempts and L < timeout_ns:
        k += 1
        L += p.T + p.gap_after(k)
    return k


def exact_for(compiled) -> dict:
    """Exact values for a compiled page-level scenario.

    Returns a dict with the entries that are exact for these parameters among
    ``first_attempt_success``, ``call_failed``, ``attempts_pmf`` (P(attempts = k), k = 1..kcap,
    kcap the attempts the budget lets start: k <= max_attempts and L_k < timeout),
    ``attempts_tail`` (P(not migrated within those kcap attempts) = censored + livelock),
    ``mean_attempts`` (E[attempts] without any budget; inf if infinite) and always
    ``conditions`` (a string). Raises NotExact when none is exact."""
    from .params import STRATEGIES as P_STRATEGIES

    if compiled.block is not None:
        raise NotExact("block level: no exact solution")
    strategy = P_STRATEGIES[compiled.strategy]
    page = compiled.page
    q = float(compiled.transient_thresh) / 2.0 ** 32
    conds = [f"strategy {strategy}; q_transient = {q:.6g} (independent at each check)"]

    lam = 1.0 / page.access_mean_ns if page.access_mean_ns > 0 else 0.0
    if lam > 0:
        from .params import DIST_INDEX

        if len(compiled.dists) > DIST_INDEX["access"]:
            d = compiled.dists[DIST_INDEX["access"]]
            m = _dist_exp_mean(compiled, "access")
            if m is None and not (d.is_const and int(d.val[0]) == 0):  # const 0: placeholder
                raise NotExact("access is not exponential")
            if m is not None and abs(m - page.access_mean_ns) > 1e-6 * page.access_mean_ns:
                conds.append(f"note: access dist mean {m:g} ns != page.access_mean_ns "
                             f"{page.access_mean_ns:g} ns; used the latter")
    A = page.active if lam > 0 else 0

    c = {n: _dist_const(compiled, n) for n in (
        "unmap_pte", "pre_freeze", "freeze_hold", "copy", "remap_pte", "fault_entry", "ptl_hold",
        "drop_hold", "retry_gap", "outer_gap")}
    wake_exp = _dist_exp_mean(compiled, "wake_latency")
    wake_const = _dist_const(compiled, "wake_latency")

    def val(n):
        return c[n] if c[n] is not None else 0.0

    p = ExactParams(
        M=page.mapcount, A=A, lam=lam, u=val("unmap_pte"), pre_freeze=val("pre_freeze"),
        freeze_hold=val("freeze_hold"), copy=val("copy"), r=val("remap_pte"),
        fe=val("fault_entry"), ptl_hold=val("ptl_hold"), drop_hold=val("drop_hold"),
        wake_mean=(wake_exp if wake_exp is not None else (wake_const or 0.0)),
        wake_kind=("exp" if wake_exp is not None else "const"),
        retry_gap=val("retry_gap"), outer_gap=val("outer_gap"), passes=compiled.passes,
        file=page.file, q_transient=q, strategy=strategy,
        flag_from=("unmap_end" if compiled.flag_from_unmap_end else "lock"))

    # Which costs each quantity needs as constants.
    if A == 0 or strategy in ("ptl_pin", "pte_wait", "lock_noref") or (
            strategy == "flag_spin" and p.flag_from == "lock"):
        need_first = []
    elif strategy == "ref":
        need_first = ["unmap_pte", "pre_freeze", "fault_entry"]
    elif strategy == "drop":
        need_first = ["unmap_pte", "pre_freeze", "fault_entry", "ptl_hold", "drop_hold"]
    else:  # flag_spin from unmap_end
        need_first = ["unmap_pte", "fault_entry"]
    need_chain = ["unmap_pte", "pre_freeze", "remap_pte", "fault_entry", "ptl_hold", "retry_gap",
                  "outer_gap"] + (["drop_hold"] if strategy == "drop" else [])
    out: dict = {}
    bad_first = [n for n in need_first if c[n] is None]
    if bad_first:
        raise NotExact(f"{strategy}: attempt 1 needs constant {', '.join(bad_first)}")
    out["first_attempt_success"] = first_attempt_success(p)
    if need_first:
        conds.append("attempt 1: constant " + ", ".join(need_first) + "; Poisson accesses")
    else:
        conds.append("attempt 1: no waiter reference can be held at F_1 (any timing)")

    migr = ["unmap_pte", "pre_freeze", "remap_pte", "retry_gap", "outer_gap"]
    if strategy in ("ptl_pin", "pte_wait") or A == 0:
        chain_ok, why = True, ""
    elif strategy == "lock_noref":
        chain_ok, why = False, "lock_noref: later attempts depend on page-lock contention"
    else:
        bad = [n for n in need_chain if c[n] is None]
        if bad:
            chain_ok, why = False, "later attempts need constant " + ", ".join(bad)
        elif wake_exp is None and wake_const is None:
            chain_ok, why = False, "later attempts need exponential (or constant) wake_latency"
        else:
            try:
                check_chain(p)
                chain_ok, why = True, ""
            except ValueError as e:
                chain_ok, why = False, str(e)
    if not chain_ok:
        conds.append("not exact beyond attempt 1: " + why)
        out["conditions"] = "; ".join(conds)
        return out

    # Budget: which attempts can start.
    if all(c[n] is not None for n in migr):
        kcap = _budget_kcap(p, compiled.max_attempts, float(compiled.timeout_ns))
        conds.append(f"budget: attempts 1..{kcap} start (max_attempts {compiled.max_attempts}, "
                     "timeout checked at each attempt's start)")
    else:
        kcap = compiled.max_attempts
        conds.append(f"budget: max_attempts {kcap}; timeout assumed not to bind (random "
                     "migrator costs)")
    ad = attempt_distribution(p, kmax=max(kcap, 1))
    passes_in = min(p.passes, kcap)
    out["call_failed"] = (ad.call_failed if passes_in == p.passes
                          else float(1.0 - ad.pmf[:passes_in].sum()))
    out["attempts_pmf"] = [float(x) for x in ad.pmf[:kcap]]
    out["attempts_tail"] = float(ad.tail)
    out["mean_attempts"] = ad.mean
    if strategy in ("ptl_pin", "pte_wait") or A == 0:
        conds.append("attempts geometric with success 1 - q (any timing)")
    else:
        conds.append("attempt chain: constant " + ", ".join(need_chain) + "; "
                     + ("exponential" if wake_exp is not None else "constant < gap")
                     + " wake_latency; each task's attempt ends before the next attempt "
                     "(checked)")
    conds.append("mean_attempts without budget")
    out["conditions"] = "; ".join(conds)
    return out
