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

from mcexplore import exact
from mcexplore.exact import ExactParams, NotExact, attempt_distribution, first_attempt_success

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


def test_exact_for_compiled():
    from mcexplore import params as P

    def comp(strategy="ref", **over):
        d = {n: P.const(0) for n in P.DIST_NAMES}
        d.update(unmap_pte=P.const(1000), remap_pte=P.const(1000), pre_freeze=P.const(300),
                 freeze_hold=P.const(200), copy=P.const(500), fault_entry=P.const(1000),
                 ptl_hold=P.const(200), drop_hold=P.const(200), wake_latency=P.exponential(30000),
                 retry_gap=P.const(1000), outer_gap=P.const(500000), access=P.exponential(1000))
        d.update(over)
        return P.Compiled(strategy=P.STRATEGY_CODE[strategy], dists=[d[n] for n in P.DIST_NAMES],
                          page=P.PageClass(file=True, mapcount=3, active=3, access_mean_ns=1000.0),
                          transient_thresh=P.transient_threshold(1e-6, 50.0))
    c = comp()
    out = exact.exact_for(c)
    q = c.transient_thresh / 2 ** 32
    p = base(M=3, A=3, q_transient=q)
    assert out["first_attempt_success"] == pytest.approx(first_attempt_success(p), rel=1e-12)
    ad = attempt_distribution(p, kmax=1000)
    assert out["call_failed"] == pytest.approx(ad.call_failed, rel=1e-12)
    assert out["mean_attempts"] == pytest.approx(ad.mean, rel=1e-12)
    assert len(out["attempts_pmf"]) == 1000
    assert "conditions" in out
    # A random unmap cost: nothing exact for ref.
    with pytest.raises(NotExact):
        exact.exact_for(comp(unmap_pte=P.uniform(500, 1500)))
    # ... but ptl_pin is geometric whatever the timing.
    out = exact.exact_for(comp("ptl_pin", unmap_pte=P.uniform(500, 1500)))
    assert out["first_attempt_success"] == pytest.approx(1 - q)
    assert out["call_failed"] == pytest.approx(q ** 10)
    # Random remap cost: attempt 1 only.
    out = exact.exact_for(comp(remap_pte=P.uniform(500, 1500)))
    assert set(out) == {"first_attempt_success", "conditions"}
    # lock_noref: attempt 1 only.
    out = exact.exact_for(comp("lock_noref"))
    assert set(out) == {"first_attempt_success", "conditions"}
    c = comp()
    c.block = [P.PageClass()]
    with pytest.raises(NotExact):
        exact.exact_for(c)


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
