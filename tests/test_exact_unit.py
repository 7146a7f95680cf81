"""Unit checks of mcexplore.exact that need no project engine.

Limits, internal consistency, and agreement with a small brute-force event simulation written
here from the model's semantics (shared/MODEL.md plus the project's tie rules), deliberately
without the Markov reduction the solver uses (no memorylessness, no per-attempt state, no
conditioning on failure): a waiter's wake-up is one draw at the unlock, followed literally
through later attempts.
"""

from __future__ import annotations

import math
import random
import zlib

import numpy as np
import pytest
from scipy.stats import binomtest

from mcexplore import exact, strategies
from mcexplore.exact import (ConstHold, ExactParams, ExpHold, NotExact, UniformHold,
                             attempt_distribution, first_attempt_success)

US = 1000.0


def base(**kw) -> ExactParams:
    """The thread-like parameters, scaled down (times in ns)."""
    d = dict(M=2, A=2, lam=1 / US, u=US, r=US, pre_freeze=0.3 * US, copy=0.5 * US, fe=US,
             ptl_hold=0.2 * US, drop_hold=0.2 * US, wake_mean=30 * US, retry_gap=US,
             outer_gap=500 * US, passes=10, file=True, freeze_hold=0.2 * US, strategy="ref")
    d.update(kw)
    return ExactParams(**d)


# ---------------------------------------------------------------------------- closed forms


def test_first_attempt_closed_forms():
    # ref, M = A = 2: only task 1 can fault before F = 2.3 us: window F - U_1 - fe = 0.3 us.
    assert first_attempt_success(base()) == pytest.approx(math.exp(-0.3), rel=1e-12)
    # M = A = 3: windows 1.3, 0.3, (negative) us.
    assert first_attempt_success(base(M=3, A=3)) == pytest.approx(math.exp(-1.6), rel=1e-12)
    # drop, M = A = 3: task 1 holds iff x in [F - 0.4, F): E in [0.9, 1.3) us; task 2 E < 0.3.
    s = (1 - (math.exp(-0.9) - math.exp(-1.3))) * math.exp(-0.3)
    assert first_attempt_success(base(M=3, A=3, strategy="drop")) == pytest.approx(s, rel=1e-12)
    # flag_spin from unmap_end, M = A = 3: task i holds iff x < U_M: E < (M - i) u - fe.
    p = base(M=3, A=3, strategy="flag_spin", flag_from="unmap_end")
    assert first_attempt_success(p) == pytest.approx(math.exp(-1.0), rel=1e-12)
    # No waiter reference: only transient references.
    for st in ("ptl_pin", "pte_wait", "lock_noref"):
        assert first_attempt_success(base(M=3, A=3, strategy=st, q_transient=0.25)) == 0.75
    assert first_attempt_success(base(M=3, A=3, strategy="flag_spin", flag_from="lock")) == 1.0
    # Inactive tasks never hold: M = 3, A = 1 has only task 1's window (1.3 us).
    assert first_attempt_success(base(M=3, A=1)) == pytest.approx(math.exp(-1.3), rel=1e-12)


@pytest.mark.parametrize("strategy", ["ref", "drop", "flag_spin"])
def test_limits(strategy):
    kw = dict(M=3, A=3, strategy=strategy, flag_from="unmap_end")
    assert first_attempt_success(base(lam=0.0, **kw)) == 1.0
    assert first_attempt_success(base(lam=1e-12, **kw)) == pytest.approx(1.0, abs=1e-8)
    if strategy == "drop":
        # Huge rate: every task faults at once, x = U_i + fe; task 2's x = 3 us falls in the
        # reference window [F - 0.4 us, F) = [2.9, 3.3) us ...
        assert first_attempt_success(base(lam=1e3, **kw)) < 1e-100
        # ... but with drop_hold = 0.05 us no x = U_i + fe falls in [3.05, 3.3) us: success.
        p = base(lam=1e3, drop_hold=0.05 * US, **kw)
        assert first_attempt_success(p) == pytest.approx(1.0, abs=1e-12)
    else:
        assert first_attempt_success(base(lam=1e3, **kw)) < 1e-100
    ad = attempt_distribution(base(lam=0.0, q_transient=0.2, **kw), kmax=50)
    assert ad.pmf[0] == pytest.approx(0.8)
    assert ad.call_failed == pytest.approx(0.2 ** 10)


@pytest.mark.parametrize("strategy,flag_from,M,A", [
    ("ref", "lock", 2, 2), ("ref", "lock", 3, 3), ("ref", "lock", 4, 2), ("drop", "lock", 3, 3),
    ("drop", "lock", 4, 4), ("flag_spin", "unmap_end", 3, 3), ("flag_spin", "lock", 3, 3),
    ("ptl_pin", "lock", 3, 3), ("pte_wait", "lock", 2, 2)])
def test_chain_consistency(strategy, flag_from, M, A):
    p = base(M=M, A=A, strategy=strategy, flag_from=flag_from, q_transient=0.05,
             wake_mean=5 * US, outer_gap=20 * US, passes=4)
    ad = attempt_distribution(p, kmax=400)
    assert ad.pmf[0] == pytest.approx(first_attempt_success(p), rel=1e-12)
    assert np.all(ad.pmf >= -1e-15)
    assert ad.pmf.sum() + ad.tail == pytest.approx(1.0, abs=1e-12)
    assert ad.call_failed == pytest.approx(1.0 - ad.pmf[:4].sum(), abs=1e-12)
    k = np.arange(1, 401)
    head = float((k * ad.pmf).sum())
    if ad.tail < 1e-13:
        assert ad.mean == pytest.approx(head, rel=1e-9)
    else:
        assert ad.mean >= head + 401 * ad.tail * (1 - 1e-9)
        # Each migrate_pages call starts nearly afresh (outer gap 20 us = 4 wake means), so the
        # tail is nearly geometric over calls: check the mean with the tail extrapolated.
        ad2 = attempt_distribution(p, kmax=4000)
        k2 = np.arange(1, 4001)
        assert ad2.tail < 1e-9
        assert ad.mean == pytest.approx(float((k2 * ad2.pmf).sum()), rel=1e-6)


def test_ptl_pin_geometric():
    ad = attempt_distribution(base(M=4, A=4, strategy="ptl_pin", q_transient=0.3), kmax=20)
    assert np.allclose(ad.pmf, 0.7 * 0.3 ** np.arange(20))
    assert ad.call_failed == pytest.approx(0.3 ** 10)
    assert ad.mean == pytest.approx(1 / 0.7)


def test_mean_paths_agree(monkeypatch):
    p = base(M=3, A=3, wake_mean=5 * US, outer_gap=20 * US, passes=3, q_transient=0.05)
    dense = attempt_distribution(p, kmax=5).mean
    monkeypatch.setattr(exact, "MAX_DENSE_TASKS", 0)
    assert attempt_distribution(p, kmax=5).mean == pytest.approx(dense, rel=1e-9)


def test_infinite_mean():
    # Wake-ups never come within any gap (huge mean): once a sleeper holds a reference it holds
    # forever in practice; with q = 1 nothing ever succeeds.
    ad = attempt_distribution(base(strategy="ptl_pin", q_transient=1.0), kmax=5)
    assert ad.mean == math.inf and ad.call_failed == 1.0


def test_conditions_raise():
    # fault_entry longer than gap + unmap: a task that finds its PTE restored may return inside
    # the next attempt's unmap window.
    with pytest.raises(ValueError, match="fault_entry"):
        attempt_distribution(base(fe=5 * US, pre_freeze=6 * US, retry_gap=0.1 * US), kmax=5)
    with pytest.raises(ValueError, match="ptl_hold"):
        attempt_distribution(base(ptl_hold=3 * US, r=0.1 * US, retry_gap=0.1 * US), kmax=5)
    with pytest.raises(ValueError, match="drop_hold"):
        attempt_distribution(base(strategy="drop", drop_hold=3 * US, r=0.1 * US,
                                  retry_gap=0.1 * US), kmax=5)
    with pytest.raises(ValueError, match="lock_noref"):
        attempt_distribution(base(strategy="lock_noref"), kmax=5)
    with pytest.raises(ValueError, match="constant wake_latency"):
        attempt_distribution(base(wake_kind="const", wake_mean=2 * US), kmax=5)
    # A constant wake-up shorter than every gap is fine: nobody waits into the next attempt.
    ad = attempt_distribution(base(wake_kind="const", wake_mean=0.5 * US), kmax=30)
    assert ad.pmf[1] == pytest.approx((1 - ad.pmf[0]) * ad.pmf[0], rel=1e-12)  # i.i.d. attempts


def _std_dists(**over):
    """Every distribution of a compiled scenario as plain stand-ins (constants, exponential wake,
    exponential access) with the CompiledDist attribute names."""
    d = dict(unmap_pte=ConstHold(US), pre_freeze=ConstHold(0.3 * US), freeze_hold=ConstHold(0.2 * US),
             copy=ConstHold(0.5 * US), remap_pte=ConstHold(US), fault_entry=ConstHold(US),
             ptl_hold=ConstHold(0.2 * US), drop_hold=ConstHold(0.2 * US), noref_gap=ConstHold(0.2 * US),
             lock_hold=ConstHold(0.2 * US), wake_latency=ExpHold(30 * US), free_delay=ConstHold(US),
             retry_gap=ConstHold(US), outer_gap=ConstHold(500 * US), access=ExpHold(US),
             transient_hold=ConstHold(50.0))
    d.update(over)
    return d


def comp(strategy="ref", *, M=3, A=3, access_ns=1000.0, rate=1e-6,
         timeout=120e9, max_attempts=1000, passes=10, file=True, **over):
    """A compiled page-level scenario built from stand-in distributions."""
    from mcexplore import params as P

    d = _std_dists(**over)
    c = P.Compiled(strategy=strategies.get(strategy).code, dists=[d[n] for n in P.DIST_NAMES],
                   page=P.PageClass(1, file, M, A, access_ns), passes=passes,
                   timeout_ns=int(timeout), max_attempts=max_attempts)
    c.transient_rate_per_ns = rate
    return c


class Lognormalish(ExpHold):
    """A stand-in for a tabulated approximation (``exact`` False)."""

    def __init__(self, mean):
        super().__init__(mean)
        self.exact, self.exp_mean_ns, self.max_ns = False, None, 40 * mean


def statuses(out):
    return {n: out[n]["status"] for n in exact.QUANTITIES}


def test_exact_for_compiled():
    c = comp()
    out = exact.exact_for(c)
    q = -math.expm1(-1e-6 * 50.0)
    p = base(M=3, A=3, q_transient=q)
    assert statuses(out) == {n: "exact" for n in exact.QUANTITIES}
    assert out["first_attempt_success"]["value"] == pytest.approx(first_attempt_success(p), rel=1e-12)
    ad = attempt_distribution(p, kmax=1000)
    assert out["call_failed"]["value"] == pytest.approx(ad.call_failed, rel=1e-12)
    assert out["attempts_pmf"]["value"] == pytest.approx(list(ad.pmf), rel=1e-12, abs=1e-300)
    assert out["attempts_tail"]["value"] == pytest.approx(ad.tail, rel=1e-9)
    # E[attempts] under the budget: sum_{k <= 1000} P(attempts >= k).
    assert out["mean_attempts"]["value"] == pytest.approx(float(ad.alive[:1000].sum()), rel=1e-12)
    assert len(out["attempts_pmf"]["value"]) == 1000 and out["attempts_pmf"]["exact_k"] == 1000
    assert exact.exact_value(out, "call_failed") == out["call_failed"]["value"]
    assert out["conditions"]
    # A random unmap cost: nothing exact for ref, every entry refused with the reason.
    out = exact.exact_for(comp(unmap_pte=UniformHold(500, 1500)))
    assert set(statuses(out).values()) == {"refused"}
    assert "constant unmap_pte" in out["first_attempt_success"]["why"]
    # ... but ptl_pin is geometric whatever the timing.
    out = exact.exact_for(comp("ptl_pin", unmap_pte=UniformHold(500, 1500)))
    assert statuses(out) == {n: "exact" for n in exact.QUANTITIES}
    assert out["first_attempt_success"]["value"] == pytest.approx(1 - q)
    assert out["call_failed"]["value"] == pytest.approx(q ** 10)
    # Random remap cost: attempt 1 only.
    out = exact.exact_for(comp(remap_pte=UniformHold(500, 1500)))
    assert out["first_attempt_success"]["status"] == "exact"
    assert out["attempts_pmf"]["exact_k"] == 1 and len(out["attempts_pmf"]["value"]) == 1
    assert out["call_failed"]["status"] == "refused" and "remap_pte" in out["call_failed"]["why"]
    # lock_noref: attempt 1 only.
    out = exact.exact_for(comp("lock_noref"))
    assert out["first_attempt_success"]["status"] == "exact"
    assert out["call_failed"]["status"] == "refused" and "lock_noref" in out["call_failed"]["why"]
    # ... but without active tasks nothing contends for the lock: geometric.
    out = exact.exact_for(comp("lock_noref", A=0))
    assert statuses(out) == {n: "exact" for n in exact.QUANTITIES}
    c = comp()
    c.block = [c.page]
    with pytest.raises(NotExact):
        exact.exact_for(c)


# ---------------------------------------------------------------------------- budget and labels


def _issue_case(**kw):
    """The issue's example: thread-2018's ptl_pin page (M = 201), transient rate 500000/s with
    1 us holds (q = 1 - e^-0.5), a random outer_gap, timeout 1.5 ms inside the first call."""
    d = dict(M=201, A=201, rate=5e-4, transient_hold=ConstHold(US), outer_gap=ExpHold(500 * US),
             timeout=1.5e6)
    d.update(kw)
    return comp("ptl_pin", **d)


def test_the_issue_example_is_exact_under_the_timeout_rule():
    # The old solver printed call_failed = q^10 = 8.9e-5 ("timeout assumed not to bind") and
    # called it exact; the Monte Carlo gave 0.024. Attempt k starts at L_k = (k-1) 403.3 us and
    # would unlock at L_k + 403 us: attempts 1..4 start, only 1..3 can migrate the page.
    q = -math.expm1(-0.5)
    out = exact.exact_for(_issue_case())
    assert out["attempts_pmf"]["n_start"] == 4
    assert out["attempts_pmf"]["value"] == pytest.approx([1 - q, (1 - q) * q, (1 - q) * q * q, 0.0])
    assert out["attempts_pmf"]["exact_k"] == 4
    assert out["call_failed"]["status"] == "exact"
    assert out["call_failed"]["value"] == pytest.approx(q ** 3, rel=1e-12)
    assert out["attempts_tail"]["value"] == pytest.approx(q ** 3, rel=1e-12)
    assert out["mean_attempts"]["value"] == pytest.approx(1 + q + q * q + q ** 3, rel=1e-12)
    assert all(abs(v - 8.894e-5) > 1e-6 for v in out["attempts_pmf"]["value"])


def test_timeout_rule_at_the_boundaries():
    q = -math.expm1(-0.5)
    L = lambda k: (k - 1) * 403.3 * US  # noqa: E731
    S = lambda k: L(k) + 403.0 * US  # noqa: E731
    const = dict(outer_gap=ConstHold(500 * US))
    # An attempt starts iff L_k < timeout; it migrates iff its unlock T_k < timeout.
    for timeout, n_start, n_mig in [(L(4), 3, 3), (L(4) + 1, 4, 3), (S(3), 3, 2),
                                    (S(3) + 1, 3, 3), (S(4) + 1, 4, 4)]:
        out = exact.exact_for(_issue_case(timeout=timeout, **const))
        pmf = out["attempts_pmf"]["value"]
        assert len(pmf) == n_start, timeout
        assert [v > 0 for v in pmf] == [k <= n_mig for k in range(1, n_start + 1)], timeout
        assert out["attempts_tail"]["value"] == pytest.approx(q ** n_mig, rel=1e-12)
        assert set(statuses(out).values()) == {"exact"}
    # max_attempts stops a trial whose last attempt ended before the timeout (censored).
    out = exact.exact_for(_issue_case(timeout=1e9, max_attempts=2, **const))
    assert out["attempts_pmf"]["n_start"] == 2
    assert out["attempts_tail"]["value"] == pytest.approx(q ** 2, rel=1e-12)
    assert out["mean_attempts"]["value"] == pytest.approx(1 + q, rel=1e-12)
    # Nothing can start.
    out = exact.exact_for(_issue_case(max_attempts=0, **const))
    assert out["attempts_pmf"]["value"] == [] and out["attempts_tail"]["value"] == 1.0


def test_random_outer_gap_is_never_labelled_exact_where_the_timeout_may_bind():
    q = -math.expm1(-0.5)
    # Timeout 6 ms: the first call (10 attempts, 4.03 ms) has fixed times; later attempts follow
    # an exponential outer gap, so their unlock can fall on either side of the timeout.
    out = exact.exact_for(_issue_case(timeout=6e6))
    pmf = out["attempts_pmf"]
    assert pmf["exact_k"] == 10
    assert pmf["value"][:10] == pytest.approx([(1 - q) * q ** k for k in range(10)], rel=1e-12)
    # Attempts 11..14 may or may not migrate the page before the timeout; attempt 15 can start
    # (its lock can come before 6 ms) but cannot unlock before it: exactly 0.
    assert pmf["n_start"] == 15
    assert all(s != "exact" for s in pmf["entry_status"][10:14])
    assert pmf["entry_status"][14] == "exact" and pmf["value"][14] == 0.0
    assert "outer_gap" in pmf["why"]
    assert out["call_failed"]["status"] == "exact"  # the first call has no outer gap
    assert out["call_failed"]["value"] == pytest.approx(q ** 10, rel=1e-12)
    for name in ("attempts_tail", "mean_attempts"):
        assert out[name]["status"] != "exact", name
        lo, hi = out[name]["bounds"]
        assert 0 <= lo <= hi
    # The true tail lies in the rigorous bounds: q^14 (all of 11..14 migrate when they may) up to
    # q^10 (none does).
    lo, hi = out["attempts_tail"]["bounds"]
    assert lo == pytest.approx(q ** 14, rel=1e-9) and q ** 14 <= hi <= q ** 10
    # Every approximate entry names its assumption.
    for st, b in zip(pmf["entry_status"], pmf["entry_bounds"]):
        assert (st == "exact") == (b is None)
    # A timeout far beyond the budget's reach: everything but the attempts after the first
    # call's outer gap is exact, and those are approximate with tight bounds.
    out = exact.exact_for(_issue_case(timeout=120e9))
    assert out["attempts_pmf"]["exact_k"] == 10
    assert set(out["attempts_pmf"]["entry_status"][10:700]) == {"approximate"}
    assert out["mean_attempts"]["status"] == "approximate"
    assert "timeout" in out["mean_attempts"]["why"]


def test_random_copy_makes_the_success_end_uncertain():
    # Exponential copy (unbounded): every attempt's unlock can pass a 10 us timeout.
    out = exact.exact_for(comp("ptl_pin", copy=ExpHold(500.0), timeout=10 * US))
    e = out["first_attempt_success"]
    assert e["status"] != "exact" and "copy" in e["why"]
    lo, hi = e["bounds"]
    assert lo < hi == pytest.approx(1 - (-math.expm1(-50e-6)))
    # A bounded random copy that always fits: exact.
    out = exact.exact_for(comp("ptl_pin", copy=UniformHold(100.0, 900.0), timeout=10 * US))
    assert out["first_attempt_success"]["status"] == "exact"


def test_a_tabulated_hold_is_an_approximation():
    out = exact.exact_for(comp("ptl_pin", rate=1e-4, transient_hold=Lognormalish(1000.0)))
    for name in exact.QUANTITIES:
        assert out[name]["status"] == "approximate", name
        assert "transient_hold" in out[name]["why"], name
    assert out["attempts_pmf"]["exact_k"] == 0
    # Without transient references the hold does not matter.
    out = exact.exact_for(comp("ptl_pin", rate=0.0, transient_hold=Lognormalish(1000.0)))
    assert statuses(out) == {n: "exact" for n in exact.QUANTITIES}


def test_chain_refused_when_a_hold_can_span_two_checks():
    # ref, M = A = 3: checks 10.6 us apart within a call; 20 us holds span two of them.
    out = exact.exact_for(comp("ref", rate=1e-5, transient_hold=ConstHold(20 * US)))
    q = -math.expm1(-1e-5 * 20 * US)
    e = out["first_attempt_success"]
    assert e["status"] == "exact"
    assert e["value"] == pytest.approx((1 - q) * math.exp(-1.6), rel=1e-12)
    for name in ("call_failed", "attempts_tail", "mean_attempts"):
        assert out[name]["status"] == "refused"
        assert "can span consecutive refcount checks" in out[name]["why"]
    assert out["attempts_pmf"]["exact_k"] == 1
    # Holds no longer than the spacing: the chain with q = 1 - exp(-rho E[h]) is exact.
    out = exact.exact_for(comp("ref", rate=1e-5, transient_hold=ConstHold(10.6 * US)))
    p = base(M=3, A=3, q_transient=-math.expm1(-1e-5 * 10.6 * US))
    assert out["call_failed"]["status"] == "exact"
    assert out["call_failed"]["value"] == pytest.approx(attempt_distribution(p, 10).call_failed,
                                                        rel=1e-12)
    with pytest.raises(ValueError, match="can span consecutive refcount checks"):
        attempt_distribution(base(M=3, A=3, transient_rate=1e-5,
                                  transient_hold=ConstHold(20 * US)), kmax=5)


def test_exact_for_uses_the_closed_form_without_active_tasks():
    # No active task, 20 us holds over checks 3.3 us apart (M = 1, outer_gap = retry_gap).
    kw = dict(M=1, A=0, rate=2e-5, transient_hold=ConstHold(20 * US), outer_gap=ConstHold(US))
    out = exact.exact_for(comp("ref", **kw))
    assert statuses(out) == {n: "exact" for n in exact.QUANTITIES}
    t = base(M=1, A=0, outer_gap=US).check_times(1000)
    tc = exact.transient_first_uncovered(t, 2e-5, ConstHold(20 * US))
    assert out["attempts_pmf"]["value"] == pytest.approx(list(tc.pmf), rel=1e-12, abs=1e-300)
    assert out["call_failed"]["value"] == pytest.approx(tc.alive[10], rel=1e-12)
    # Correlated checks: far more likely to fail ten in a row than independent ones.
    q = -math.expm1(-2e-5 * 20 * US)
    assert out["call_failed"]["value"] > 10 * q ** 10
    # The same from attempt_distribution with the process parameters.
    ad = attempt_distribution(base(M=1, A=0, outer_gap=US, transient_rate=2e-5,
                                   transient_hold=ConstHold(20 * US)), kmax=50)
    assert ad.pmf == pytest.approx(tc.pmf[:50], rel=1e-12)
    assert ad.call_failed == pytest.approx(tc.alive[10], rel=1e-12)


# ---------------------------------------------------------------------------- transient closed form


def poisson_brute(t, rho, sample_hold, reach, n, seed):
    """First uncovered check (1-based; len(t) + 1 if none) of n independent realisations of the
    stationary Poisson process, simulated literally: arrivals on [t_1 - reach, t_n), each with its
    own hold, a check at F covered iff some s < F <= s + h."""
    rng = np.random.default_rng(seed)
    t = np.asarray(t, dtype=np.float64)
    lo, hi = t[0] - reach, t[-1]
    counts = rng.poisson(rho * (hi - lo), n)
    owner = np.repeat(np.arange(n), counts)
    s = rng.uniform(lo, hi, owner.size)
    h = sample_hold(rng, owner.size)
    cov = np.zeros((n, len(t)), dtype=bool)
    for j, F in enumerate(t):
        hit = (s < F) & (F <= s + h)
        cov[owner[hit], j] = True
    first = np.where(cov.all(axis=1), len(t), np.argmin(cov, axis=1))
    return np.bincount(first, minlength=len(t) + 1)


HOLDS = {
    "const": (lambda: ConstHold(2500.0), lambda r, m: np.full(m, 2500.0), 2500.0),
    "exp": (lambda: ExpHold(2000.0), lambda r, m: r.exponential(2000.0, m), 2000.0 * 45),
    "uniform": (lambda: UniformHold(500.0, 4000.0), lambda r, m: r.uniform(500.0, 4000.0, m), 4000.0),
}
# Uneven spacing: some checks closer than a hold, some farther.
T_UNEVEN = np.cumsum([1000.0, 1000, 500, 3000, 1000, 200, 1000, 1000, 6000, 800])


@pytest.mark.parametrize("name", list(HOLDS))
def test_closed_form_against_a_brute_force_poisson_process(name):
    mk, sample, reach = HOLDS[name]
    rho = 4e-4
    tc = exact.transient_first_uncovered(T_UNEVEN, rho, mk())
    n = 30000
    counts = poisson_brute(T_UNEVEN, rho, sample, reach, n, seed=20181119)
    exp_p = list(tc.pmf) + [tc.alive[-1]]
    assert sum(exp_p) == pytest.approx(1.0, abs=1e-12)
    for j, (cnt, pe) in enumerate(zip(counts, exp_p)):
        lo, hi = binomtest(int(cnt), n).proportion_ci(0.999)
        assert lo <= pe <= hi, (name, j + 1, cnt / n, pe, (lo, hi))
    # The checks are correlated: P(first two both covered) exceeds the independent q^2.
    q = -math.expm1(-rho * mk().mean_ns)
    assert tc.alive[2] > q * q * 1.05


@pytest.mark.parametrize("hold", [ConstHold(700.0), UniformHold(100.0, 1000.0), ExpHold(50.0)])
def test_closed_form_is_geometric_when_no_hold_spans_two_checks(hold):
    t = np.cumsum(np.r_[1300.0, np.tile([3300.0, 3300.0, 3300.0, 503300.0], 20)])
    rho = 2e-4
    tc = exact.transient_first_uncovered(t, rho, hold)
    q = -math.expm1(-rho * exact.hold_mean(hold))
    k = np.arange(len(t))
    assert tc.pmf == pytest.approx((1 - q) * q ** k, rel=1e-9)
    assert tc.alive == pytest.approx(q ** np.arange(len(t) + 1), rel=1e-9)
    if isinstance(hold, ConstHold):
        assert tc.reach == 1


def test_closed_form_two_checks_by_inclusion_exclusion():
    # Constant hold h > d: P(both covered) = 1 - 2 e^{-rho h} + e^{-rho (h + d)}.
    rho, h, d = 3e-4, 5000.0, 2000.0
    tc = exact.transient_first_uncovered([0.0, d], rho, ConstHold(h))
    assert tc.pmf[0] == pytest.approx(math.exp(-rho * h), rel=1e-13)
    both = 1 - 2 * math.exp(-rho * h) + math.exp(-rho * (h + d))
    assert tc.alive[2] == pytest.approx(both, rel=1e-12)
    # Check 1 covered, check 2 not: arrivals in [-h, d - h) and none in [d - h, d).
    assert tc.pmf[1] == pytest.approx(-math.expm1(-rho * d) * math.exp(-rho * h), rel=1e-12)


def test_closed_form_limits_and_monotonicity():
    t = T_UNEVEN
    hold = ConstHold(2500.0)
    # The first check is the stationary probability, whatever follows.
    for rho in (1e-7, 1e-4, 1e-2):
        tc = exact.transient_first_uncovered(t, rho, hold)
        assert tc.pmf[0] == pytest.approx(math.exp(-rho * 2500.0), rel=1e-12)
        assert np.all(np.diff(tc.alive) <= 0)  # P(all of 1..k covered) falls with k
        assert tc.pmf.sum() + tc.alive[-1] == pytest.approx(1.0, abs=1e-12)
    # More references: every run of covered checks is likelier.
    a1 = exact.transient_first_uncovered(t, 1e-4, hold).alive
    a2 = exact.transient_first_uncovered(t, 2e-4, hold).alive
    assert np.all(a2[1:] > a1[1:])
    # Longer holds, same mean number held: more correlation, longer runs (all covered likelier).
    short = exact.transient_first_uncovered(t, 4e-4, ConstHold(1000.0)).alive[-1]
    long_ = exact.transient_first_uncovered(t, 4e-5, ConstHold(10000.0)).alive[-1]
    assert long_ > short
    # No references.
    tc = exact.transient_first_uncovered(t, 0.0, hold)
    assert tc.pmf[0] == 1.0 and tc.alive[1] == 0.0
    # A hold far longer than all the checks: everything covered iff check 1 is and no gap opens;
    # P(all covered) tends to P(check 1 covered) as the rate falls with rho h fixed... and is
    # at least the probability of one arrival in [t_n - h, t_1).
    h = 1e9
    tc = exact.transient_first_uncovered(t, 1e-9, ConstHold(h))
    assert tc.alive[-1] >= -math.expm1(-1e-9 * (h - (t[-1] - t[0])))


def test_closed_form_keeps_tiny_masses_accurate():
    # Independent checks with q = 1e-8: P(all of 1..30 covered) = 1e-240, to full precision.
    t = np.arange(1, 31) * 10000.0
    hold = ConstHold(100.0)
    rho = -math.log1p(-1e-8) / 100.0
    tc = exact.transient_first_uncovered(t, rho, hold)
    q = -math.expm1(-rho * 100.0)
    assert tc.alive[30] == pytest.approx(q ** 30, rel=1e-10)
    assert tc.pmf[29] == pytest.approx(q ** 29 * (1 - q), rel=1e-10)
    # Correlated and rare (holds span up to four checks): P(all of 1..60 covered) is about 1e-64
    # and still positive; the masses add up to one.
    tc = exact.transient_first_uncovered(np.arange(1, 61) * 1000.0, 1e-7, ConstHold(3500.0))
    assert np.all(tc.pmf > 0) and np.all(np.isfinite(tc.alive))
    assert 1e-70 < tc.alive[-1] < 1e-60
    assert tc.pmf.sum() + tc.alive[-1] == pytest.approx(1.0, abs=1e-12)
    # Four checks per hold at most, rate 1e-7/ns: P(1..4 covered) is dominated by one arrival in
    # the 500 ns before check 1 that reaches check 4 (3500 ns hold): rho * 500 to first order.
    assert tc.alive[4] == pytest.approx(1e-7 * 500, rel=5e-3)


# ---------------------------------------------------------------------------- brute force


def brute_attempts(p: ExactParams, rng: random.Random, kmax: int):
    """One trial simulated event by event; returns the successful attempt (<= kmax) or None.

    Per task: either free (running normally since free_at; its accesses are a Poisson stream),
    or waiting until run_at (holding a reference for ref / flag_spin; without one for drop and
    ptl_pin). Everything before F is the same whether the attempt succeeds, so each task is
    followed along the failure timeline and the attempt's outcome decided at F."""
    INF = math.inf
    st = p.strategy
    mu = 1.0 / p.wake_mean
    tasks = [{"free_at": -INF, "run_at": None, "ref": False} for _ in range(p.A)]
    L = 0.0
    for k in range(1, kmax + 1):
        F = L + p.M * p.u + p.pre_freeze
        T = F + p.M * p.r
        Lnext = T + p.gap_after(k)
        f0 = L if p.flag_from == "lock" else L + p.M * p.u
        any_hold = False
        for idx, t in enumerate(tasks):
            i = idx + 1
            Ui, Ri = L + i * p.u, F + i * p.r
            hold = False
            a = None
            if t["run_at"] is not None and t["ref"]:  # asleep (or woken, not run) with a ref
                ra = t["run_at"]
                if ra < L:  # ran while the page was unlocked: put, return, free since ra
                    t.update(free_at=ra, run_at=None, ref=False)
                else:
                    hold = True  # holds continuously through [L, T]
                    if ra <= T:  # runs while locked: sleeps again, woken at T
                        t["run_at"] = T + rng.expovariate(mu)
                    any_hold = True
                    continue
            if t["run_at"] is not None:  # waiting without a reference (drop, ptl_pin)
                ra = t["run_at"]
                if ra < Ui:
                    t.update(free_at=ra, run_at=None)
                elif ra < Ri:
                    t.update(run_at=None, free_at=ra)
                    a = ra  # returns and retries while its PTE is a migration entry
                else:
                    continue  # no access while the PTE is a migration entry
            retry = a is not None  # a is a retry right after returning, not a Poisson access
            if a is None:
                fa = t["free_at"]
                if fa < Ui:
                    a = Ui + (rng.expovariate(p.lam) if p.lam > 0 else INF)
                elif fa < Ri:
                    a, retry = fa, True
                else:
                    continue
            # Fault loop (flag_spin may refault).
            while True:
                if a >= Ri:  # the PTE is present again: the access succeeds
                    if retry:
                        t["free_at"] = a
                    break
                x = a + p.fe
                if x >= Ri:
                    t["free_at"] = x
                    break
                if st == "flag_spin" and f0 <= x < F:
                    a = max(x + p.ptl_hold, F)  # spins until the flag clears, refaults
                    retry = True
                    continue
                if st in ("ref", "flag_spin"):
                    hold = hold or x < F
                    pp = x + p.ptl_hold
                    if pp < T:
                        t.update(run_at=T + rng.expovariate(mu), ref=True)
                    elif pp < Lnext:
                        t["free_at"] = pp
                    else:
                        raise NotImplementedError("ref window into the next attempt")
                elif st == "drop":
                    b = x + p.ptl_hold + p.drop_hold
                    hold = hold or (x < F <= b)
                    if b < T:
                        t.update(run_at=T + rng.expovariate(mu), ref=False)
                    elif b < Lnext:
                        t["free_at"] = b
                    else:
                        raise NotImplementedError("drop window into the next attempt")
                elif st == "ptl_pin":
                    pp = x + p.ptl_hold
                    if pp < T:
                        t.update(run_at=T + rng.expovariate(mu), ref=False)
                    else:
                        t["free_at"] = pp
                break
            any_hold = any_hold or hold
        if not any_hold and rng.random() >= p.q_transient:
            return k
        L = Lnext
    return None


BRUTE_CASES = [
    # ref: sleepers carried over retries (wake 3 us vs gap 1 us) and sometimes over the outer gap.
    dict(strategy="ref", M=2, A=2, wake_mean=3 * US, outer_gap=4 * US, passes=2),
    # ref with an idle mapper, a slower access rate and transient references.
    dict(strategy="ref", M=3, A=2, lam=0.5 / US, wake_mean=2 * US, outer_gap=3 * US, passes=3,
         q_transient=0.1),
    # drop: waiters still asleep at the next attempt refault at once when they wake.
    dict(strategy="drop", M=3, A=3, drop_hold=0.5 * US, wake_mean=2 * US, outer_gap=3 * US,
         passes=3),
    # flag_spin, flag from the end of the unmap: early faulters take references.
    dict(strategy="flag_spin", flag_from="unmap_end", M=3, A=3, wake_mean=3 * US,
         outer_gap=5 * US, passes=3),
    dict(strategy="ptl_pin", M=2, A=2, q_transient=0.3, passes=2),
]


@pytest.mark.parametrize("case", BRUTE_CASES, ids=lambda c: f"{c['strategy']}-M{c['M']}A{c['A']}")
def test_chain_against_brute_force(case):
    p = base(**case)
    kmax = 5
    n = 6000
    rng = random.Random(20181119 + zlib.crc32(repr(sorted(case.items())).encode()))
    counts = np.zeros(kmax + 1, dtype=int)  # counts[k-1]: attempts = k; counts[kmax]: > kmax
    for _ in range(n):
        k = brute_attempts(p, rng, kmax)
        counts[(k if k is not None else kmax + 1) - 1] += 1
    ad = attempt_distribution(p, kmax=kmax)
    exp_probs = list(ad.pmf) + [ad.tail]
    # 99.9% Clopper-Pearson interval of each observed frequency must contain the exact value.
    for j, (c, pe) in enumerate(zip(counts, exp_probs)):
        lo, hi = binomtest(int(c), n).proportion_ci(0.999)
        assert lo <= pe <= hi, (j + 1, c / n, pe, (lo, hi))
    # call_failed: the first `passes` attempts.
    c = int(counts[p.passes:].sum())
    lo, hi = binomtest(c, n).proportion_ci(0.999)
    assert lo <= ad.call_failed <= hi
