"""Tests of mcexplore.compare: independent cross-checks of each statistic and fixed-seed coverage
simulations judged with a binomial interval on the observed rate."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from mcexplore.compare import (Comparison, PairedTable, compare_records, format_comparison,
                               mcnemar_exact_p, newcombe_diff_ci, paired_row, phi_coefficient,
                               variance_ratio)
from mcexplore.results import OUTCOMES


def _pairs(pA, pB, rho, n, rng):
    """Correlated indicator pairs: with probability rho the pair shares one uniform (as common
    random numbers do), otherwise independent uniforms."""
    u = rng.random(n)
    v = np.where(rng.random(n) < rho, u, rng.random(n))
    return u < pA, v < pB


def test_table_and_phi():
    a = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    b = np.array([1, 0, 1, 0, 1, 0, 0, 1])
    t = PairedTable.from_arrays(a, b)
    assert (t.n11, t.n10, t.n01, t.n00, t.n) == (2, 1, 2, 3, 8)
    assert phi_coefficient(t) == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert phi_coefficient(PairedTable(0, 0, 3, 5)) == 0.0  # empty margin
    with pytest.raises(ValueError):
        PairedTable.from_arrays([1, 0], [1])


@pytest.mark.parametrize("cells", [(5, 10, 3, 82), (0, 0, 4, 96), (20, 1, 0, 79), (1, 2, 3, 4)])
def test_unpaired_form_equals_statsmodels_newcombe(cells):
    """With phi = 0 the formula is Newcombe's independent-samples hybrid score interval, which
    statsmodels implements (confint_proportions_2indep, method='newcomb'): same numbers."""
    t = PairedTable(*cells)
    d, lo, hi = newcombe_diff_ci(t, paired=False)
    kA, kB = t.n11 + t.n10, t.n11 + t.n01
    slo, shi = confint_proportions_2indep(kB, t.n, kA, t.n, method="newcomb", compare="diff")
    assert d == pytest.approx(kB / t.n - kA / t.n)
    assert lo == pytest.approx(slo, abs=1e-12) and hi == pytest.approx(shi, abs=1e-12)


def test_paired_interval_narrower_with_positive_correlation():
    t = PairedTable(40, 2, 8, 950)  # strongly concordant
    _, lo, hi = newcombe_diff_ci(t)
    _, ulo, uhi = newcombe_diff_ci(t, paired=False)
    assert lo <= 6 / 1000 <= hi
    assert hi - lo < uhi - ulo


@pytest.mark.parametrize("pA,pB,rho,n", [(0.1, 0.15, 0.8, 500), (0.05, 0.01, 0.95, 400)])
def test_newcombe_paired_coverage(pA, pB, rho, n):
    """1000 fixed-seed replications: coverage of the true difference is not significantly below
    95 % (the test fails if a 99.8 % Clopper-Pearson interval on the observed coverage lies below
    0.95). Newcombe's interval is approximate; at these points it is at or above nominal."""
    rng = np.random.default_rng(2024)
    reps = 1000
    covered = 0
    for _ in range(reps):
        a, b = _pairs(pA, pB, rho, n, rng)
        _, lo, hi = newcombe_diff_ci(PairedTable.from_arrays(a, b))
        covered += lo <= pB - pA <= hi
    assert proportion_confint(covered, reps, alpha=0.002, method="beta")[1] >= 0.95, covered


def test_mcnemar_is_the_exact_binomial_test():
    for t in [PairedTable(10, 3, 12, 75), PairedTable(0, 0, 5, 95), PairedTable(4, 7, 7, 1)]:
        k, m = t.n01, t.n10 + t.n01
        assert mcnemar_exact_p(t) == pytest.approx(st.binomtest(k, m, 0.5).pvalue, rel=1e-9)
    assert mcnemar_exact_p(PairedTable(5, 0, 0, 5)) == 1.0


def test_variance_ratio_matches_simulated_variances():
    """The plug-in ratio estimates Var_unpaired / Var_paired. Simulate 2000 paired and 2000
    unpaired designs (n = 1000, fixed seed): the ratio of the sample variances of d has an
    F(1999, 1999) distribution (d is close to normal at this n), so its 99.9 % interval must contain the
    model's true ratio, and the average plug-in ratio must be within 5 % of it."""
    rng = np.random.default_rng(31)
    pA, pB, rho, n, reps = 0.1, 0.12, 0.9, 1000, 2000
    # the model's truth: P(A and B) = rho * min(pA, pB) + (1 - rho) * pA * pB
    p11 = rho * min(pA, pB) + (1 - rho) * pA * pB
    true_ratio = (pA * (1 - pA) + pB * (1 - pB)) / (pA * (1 - pA) + pB * (1 - pB) - 2 * (p11 - pA * pB))
    d_paired, d_unpaired, plug = [], [], []
    for _ in range(reps):
        a, b = _pairs(pA, pB, rho, n, rng)
        d_paired.append(b.mean() - a.mean())
        plug.append(variance_ratio(PairedTable.from_arrays(a, b)))
        d_unpaired.append((rng.random(n) < pB).mean() - (rng.random(n) < pA).mean())
    f = np.var(d_unpaired, ddof=1) / np.var(d_paired, ddof=1)
    lo = f / st.f.ppf(0.9995, reps - 1, reps - 1)
    hi = f / st.f.ppf(0.0005, reps - 1, reps - 1)
    assert lo <= true_ratio <= hi, (lo, true_ratio, hi)
    assert np.mean(plug) == pytest.approx(true_ratio, rel=0.05)
    assert true_ratio > 4  # common random numbers are worth a lot here


def test_paired_row_edge_cases():
    z = np.zeros(100, dtype=bool)
    r = paired_row(z, z)
    assert r["diff"] == 0 and r["diff_lo"] < 0 < r["diff_hi"] and math.isnan(r["variance_ratio"])
    assert r["one_sided_a"] and r["hi_a"] == pytest.approx(1 - 0.05 ** (1 / 100))
    x = np.arange(100) % 7 == 0
    r = paired_row(x, x)  # identical: no discordant pair, paired variance 0
    assert r["diff"] == 0 and r["mcnemar_p"] == 1.0 and r["variance_ratio"] == math.inf


def _frame(cols):
    df = pd.DataFrame({o: np.zeros(len(next(iter(cols.values()))), dtype=np.int64) for o in OUTCOMES})
    for k, v in cols.items():
        df[k] = np.asarray(v, dtype=np.int64)
    return df


def test_compare_records_many_strategies_and_formatting():
    rng = np.random.default_rng(0)
    u = rng.random(400)
    recs = {"ref": _frame({"livelock": u < 0.5}), "drop": _frame({"livelock": u < 0.05}),
            "ptl_pin": _frame({"livelock": u < 0.02})}
    t = compare_records(recs)
    assert list(t.b.unique()) == ["drop", "ptl_pin"] and (t.a == "ref").all()
    assert len(t) == 2 * len(OUTCOMES)
    row = t[(t.b == "drop") & (t.outcome == "livelock")].iloc[0]
    assert row.n01 == 0 and row.n10 == row.count_a - row.count_b  # nested events: all A-only
    assert row.diff_lo <= row["diff"] <= row.diff_hi < 0 and row.mcnemar_p < 1e-6
    assert row.width_ratio > 1
    c = Comparison("ref", list(recs), 400, 1, "numpy", 0.95, t)
    text = format_comparison(c, outcomes=["livelock"])
    assert "drop vs ref" in text and "ptl_pin vs ref" in text
    assert c.to_dict()["rows"][0]["a"] == "ref"
    with pytest.raises(ValueError):
        compare_records({"a": recs["ref"], "b": recs["ref"].iloc[:10]})


# --------------------------------------------------------------------------- with the engine

SMALL = ["page.active=2", "page.mapcount=3", "budget.max_attempts=20", "budget.timeout=10ms"]


def test_compare_runs_paired_records():
    from mcexplore.api import run
    from mcexplore.compare import compare
    from mcexplore.scenario import load_scenario

    sc = load_scenario("thread-2018", SMALL)
    c = compare(sc, ["ref", "drop", "ptl_pin"], trials=300, seed=5, backend="numpy")
    assert c.baseline == "ref" and set(c.table.b) == {"drop", "ptl_pin"}
    # the marginals are exactly those of an ordinary run with the same seed (common random numbers)
    r = run(sc, trials=300, seed=5, labels=["ref", "drop"], backend="numpy")
    row = c.table[(c.table.b == "drop") & (c.table.outcome == "censored")].iloc[0]
    assert row.count_a == r["ref"].aggregate.counts["censored"]
    assert row.count_b == r["drop"].aggregate.counts["censored"]
    assert row.n10 + row.n11 == row.count_a and row.n01 + row.n11 == row.count_b
    assert row.count_a > row.count_b  # drop fixes most of ref's failures in this small world
    assert row.diff_hi < 0 and row.mcnemar_p < 0.01


def test_compare_cli():
    from click.testing import CliRunner

    from mcexplore.cli_analysis import compare_cmd

    args = ["thread-2018", "--strategies", "ref,drop", "-n", "200", "-b", "numpy", "--seed", "3"]
    for s in SMALL:
        args += ["--set", s]
    res = CliRunner().invoke(compare_cmd, args + ["--json", "--outcome", "censored"])
    assert res.exit_code == 0, res.output
    import json

    d = json.loads(res.output)
    assert d["baseline"] == "ref" and d["trials"] == 200 and len(d["rows"]) == 1
    assert d["rows"][0]["outcome"] == "censored" and d["rows"][0]["b"] == "drop"
    res = CliRunner().invoke(compare_cmd, args)
    assert res.exit_code == 0 and "drop vs ref" in res.output and "McNemar" in res.output
    res = CliRunner().invoke(compare_cmd, ["thread-2018", "--strategies", "ref"])
    assert res.exit_code == 2 and "two labels" in res.output
    res = CliRunner().invoke(compare_cmd, ["thread-2018", "--strategies", "ref,nope", "-n", "10"])
    assert res.exit_code == 2 and "nope" in res.output
    res = CliRunner().invoke(compare_cmd, ["--help"])
    assert "Example" in res.output
