"""Scenario layer: configs validate with clear errors, compile to params.Compiled, hash stably.

Compiled distributions are checked through what they implement (params.CompiledDist: cdf, mean_ns,
max_ns): the engines sample floor(Y) with Y piecewise uniform (histogram, empirical, uniform: exactly
the specified distribution) or exponential, so the compiled mean of a continuous distribution is
its mean minus the mean fractional part, E[floor Y] (1/2 for a uniform on whole-ns bounds); the
tabulated lognormal's exactness is tests/test_sampling.py's subject.
"""

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

from mcexplore import params, rng
from mcexplore import strategies
from mcexplore.params import DIST_NAMES
from mcexplore.scenario import (
    DEFAULT_TIMING, TIMING_NAMES, LognormalDist, Scenario, ScenarioError, default_scenario_path,
    list_shipped, load_scenario, parse_distribution, parse_override,
)

REPO = Path(__file__).resolve().parent.parent


def floor_mean_uniform(lo: int, hi: int) -> float:
    """E[floor(Y)] for Y uniform on [lo, hi), whole-ns bounds: the mean of lo .. hi-1."""
    return (lo + hi - 1) / 2


def floor_mean_exp(mean: float) -> float:
    """E[floor(Y)] for Y exponential: sum over k >= 1 of e^{-k/mean}."""
    return 1.0 / math.expm1(1.0 / mean)


def check_leaves(d):
    """Structural properties of any compiled distribution."""
    assert 1 <= d.nleaf <= params.MAX_LEAVES
    assert d.cum.dtype == np.uint64 and d.tables.dtype == np.int64
    assert (np.diff(d.cum.astype(object)) > 0).all()  # every leaf has probability > 0
    assert int(d.cum[-1]) == 2**64 - 1  # the last leaf takes the rest
    assert d.weight.sum() == pytest.approx(1.0, abs=1e-15) and (d.weight > 0).all()
    assert (d.a >= 0).all() and (d.b >= 0).all() and 0 <= d.max_ns < 2**46


def page_cfg(**kw):
    d = {"page": {"kind": "file", "mapcount": 201}}
    d.update(kw)
    return d


def error_of(raw) -> str:
    with pytest.raises(ScenarioError) as ei:
        Scenario.from_dict(raw)
    return str(ei.value)


def assert_names(msg: str, *words):
    for w in words:
        assert w in msg, f"{w!r} not in {msg!r}"


# ---------------------------------------------------------------------------------------------
# Shipped configs


def test_shipped_configs_listed():
    assert {"thread-2018", "thread-2018-block"} <= set(list_shipped())
    assert default_scenario_path().name == "thread-2018.toml"
    assert default_scenario_path().is_file()


@pytest.mark.parametrize("name", ["thread-2018", "thread-2018-block"])
def test_shipped_config_loads_and_compiles_every_label(name):
    s = load_scenario(name)
    assert s.name == name
    labels = s.labels()
    assert set(strategies.names()) <= {s.strategy(lb).name for lb in labels}
    assert "pte_wait_norecheck" in labels
    for lb in labels:
        c = s.compile(lb)
        assert c.strategy == strategies.get(s.strategy(lb).name).code
        assert len(c.dists) == len(DIST_NAMES)
        for d in c.dists:
            check_leaves(d)
        assert c.passes == 10 and c.trylock_passes == 3 and c.max_attempts == 1000
        assert c.timeout_ns == 120 * 10**9
        assert c.transient_rate_per_ns == pytest.approx(1e-6)
    assert s.compile("pte_wait_norecheck").recheck is False
    assert s.compile("pte_wait").recheck is True
    assert s.compile("flag_spin").flag_from_unmap_end is False


def test_thread_2018_page():
    s = load_scenario("thread-2018")
    c = s.compile("ref")
    assert c.level == "page" and c.block is None
    assert c.page == params.PageClass(count=1, file=True, mapcount=201, active=201, access_mean_ns=1000.0)
    acc = c.dists[DIST_NAMES.index("access")]
    assert acc.nleaf == 1 and int(acc.kind[0]) == rng.LEAF_EXP and acc.exp_mean[0] == 1000.0
    assert acc.mean_ns == pytest.approx(floor_mean_exp(1000.0), rel=1e-12)
    # 1000/s held 1 us: one Poisson process, windows at least as long as the longest hold.
    from mcexplore import transient

    lay = transient.layout(c)
    assert lay.model == transient.MODEL_PROCESS and lay.hold_max_ns == 1000
    assert lay.window_ns == max(1000, math.ceil(math.sqrt(1000 / 1e-6)))
    # The count thresholds are Poisson(rate * W) with 64-bit resolution: P(no arrival) first,
    # computed from the side that float64 holds accurately (here 1 - P(no arrival) = 0.031).
    lam = 1e-6 * lay.window_ns
    # (equal up to float64 rounding of that tail, about 2**-52 of it: a few thousand units)
    assert abs(int(lay.thresholds[0]) - ((1 << 64) - round(-math.expm1(-lam) * 2**64))) < 2**12
    assert all(int(a) < int(b) for a, b in zip(lay.thresholds[:-1], lay.thresholds[1:]))


def test_thread_2018_block():
    s = load_scenario("thread-2018-block")
    c = s.compile("drop")
    assert c.level == "block" and c.batch_pages == 256
    assert sum(pc.count for pc in c.block) == 32768
    hot = [pc for pc in c.block if pc.access_mean_ns > 0]
    assert hot == [params.PageClass(count=1, file=True, mapcount=201, active=201, access_mean_ns=1000.0)]
    assert all(pc.mapcount <= 1 for pc in c.block if pc.access_mean_ns == 0)


@pytest.mark.parametrize("name", ["thread-2018", "thread-2018-block"])
def test_shipped_configs_write_out_and_mark_every_timing(name):
    path = REPO / "configs" / f"{name}.toml"
    raw = tomllib.loads(path.read_text())
    assert set(raw["timing"]) == set(TIMING_NAMES)
    s = load_scenario(path)
    est = set(s.estimates())
    for n in TIMING_NAMES:
        assert f"timing.{n}" in est and s.notes[f"timing.{n}"].why
    assert {"transient.rate", "transient.hold"} <= est


def test_defaults_are_the_shipped_estimates():
    shipped = load_scenario("thread-2018").to_dict(notes=False)["timing"]
    default = Scenario.from_dict(page_cfg()).to_dict()["timing"]
    assert shipped == default
    assert set(DEFAULT_TIMING) == set(TIMING_NAMES)


def test_short_config_works():
    s = Scenario.from_dict({"page": {"kind": "anon", "mapcount": 3, "active": 1}})
    assert s.labels() == list(strategies.names())
    c = s.compile("ptl_pin")
    assert c.page.file is False and c.page.active == 1 and c.page.mapcount == 3


def test_load_by_path_and_name_agree(tmp_path):
    by_name = load_scenario("thread-2018")
    by_path = load_scenario(REPO / "configs" / "thread-2018.toml")
    assert by_name.config_hash() == by_path.config_hash()
    assert load_scenario("thread-2018.toml").config_hash() == by_name.config_hash()


def test_load_unknown_name():
    with pytest.raises(ScenarioError) as ei:
        load_scenario("no-such-config")
    assert_names(str(ei.value), "'no-such-config'", "thread-2018")


def test_load_bad_toml_names_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[page\nkind = 1\n")
    with pytest.raises(ScenarioError) as ei:
        load_scenario(p)
    assert_names(str(ei.value), "bad.toml", "not valid TOML")


def test_load_names_file_and_field(tmp_path):
    p = tmp_path / "neg.toml"
    p.write_text('[page]\nkind = "file"\nmapcount = 2\n[timing]\npre_freeze = "-3us"\n')
    with pytest.raises(ScenarioError) as ei:
        load_scenario(p)
    assert str(ei.value) == (f"{p}: timing.pre_freeze: '-3us' is not valid: durations must be >= 0 "
                             "(units: ns, us, ms, s)")


# ---------------------------------------------------------------------------------------------
# Bad input: every message names the field, the value and what is valid


def test_unknown_key_top_level():
    assert_names(error_of(page_cfg(stratgies=["ref"])), "unknown key 'stratgies'", "the top level",
                 "valid keys:", "strategies", "timing")


def test_unknown_key_nested():
    msg = error_of({"page": {"kind": "file", "mapcount": 201, "mapcnt": 3}})
    assert msg == "unknown key 'mapcnt' in [page] (valid keys: kind, mapcount, active, access_rate)"


def test_unknown_key_in_distribution_and_component():
    assert error_of(page_cfg(timing={"copy": {"dist": "exp", "mean": "1us", "sd": 3}})) == \
        "unknown key 'sd' in [timing.copy] (valid keys: dist, mean)"
    msg = error_of(page_cfg(timing={"copy": {"dist": "mixture", "components": [
        {"weight": 1.0, "dist": "uniform", "low": "1us", "hi": "2us"}]}}))
    assert_names(msg, "unknown key 'hi'", "[timing.copy.components.0]", "low, high", "weight")


def test_unknown_key_in_block_class_and_wrapper():
    msg = error_of({"level": "block", "block": {"classes": [
        {"count": 1, "kind": "anon", "mapcount": 1, "hot": True}]}})
    assert_names(msg, "unknown key 'hot'", "[block.classes.0]", "count, kind, mapcount, active, access_rate")
    msg = error_of(page_cfg(timing={"copy": {"value": "1us", "estimate": True, "source": "x"}}))
    assert msg == "unknown key 'source' in [timing.copy] (valid keys: value, estimate, why)"


@pytest.mark.parametrize("field, value, words", [
    ("pre_freeze", "-3us", "durations must be >= 0 (units: ns, us, ms, s)"),
    ("pre_freeze", "3 parsecs", "units: ns, us, ms, s"),
    ("copy", 5, "write the unit"),
    ("copy", "5", "write the unit"),
    ("wake_latency", "1min", "units: ns, us, ms, s"),
])
def test_bad_durations(field, value, words):
    msg = error_of(page_cfg(timing={field: value}))
    assert msg.startswith(f"timing.{field}: {value!r} is not valid: ")
    assert words in msg


def test_bad_timeout():
    assert error_of(page_cfg(budget={"timeout": "4 parsecs"})).startswith(
        "budget.timeout: '4 parsecs' is not valid: a duration is")
    assert_names(error_of(page_cfg(budget={"timeout": "0s"})), "budget.timeout: '0s'", "must be > 0")


def test_negative_times_inside_distributions():
    assert_names(error_of(page_cfg(timing={"copy": {"dist": "exp", "mean": "-1us"}})),
                 "timing.copy.mean: '-1us'", ">= 0")
    assert_names(error_of(page_cfg(timing={"copy": {"dist": "uniform", "low": "2us", "high": "1us"}})),
                 "timing.copy.high: '1us'", "must be >= timing.copy.low (2us)")
    assert_names(error_of(page_cfg(transient={"hold": "-1ns"})), "transient.hold: '-1ns'", ">= 0")


def test_bad_rates():
    assert_names(error_of(page_cfg(page={"kind": "file", "mapcount": 1, "access_rate": "-1/us"})),
                 "page.access_rate: '-1/us'", "rates must be >= 0")
    assert_names(error_of(page_cfg(transient={"rate": "3/fortnight"})),
                 "transient.rate: '3/fortnight'", "/ns, /us, /ms, /s")


@pytest.mark.parametrize("points, where, words", [
    ([[0.0, "1us"], [1.5, "2us"]], "points.1.0: 1.5", "probabilities must be numbers in [0, 1]"),
    ([[-0.1, "1us"], [1.0, "2us"]], "points.0.0: -0.1", "[0, 1]"),
    ([[0.1, "1us"], [1.0, "2us"]], "points.0: 0.1", "the first point's probability must be 0"),
    ([[0.0, "1us"], [0.9, "2us"]], "points.1: 0.9", "the last point's probability must be 1"),
    ([[0.0, "1us"], [0.6, "2us"], [0.5, "3us"], [1.0, "4us"]], "points.2: 0.5", "non-decreasing"),
    ([[0.0, "3us"], [1.0, "2us"]], "points.1: '2us'", "values must be non-decreasing"),
    ([[0.0, "1us"]], "points: ", "at least 2"),
])
def test_bad_empirical(points, where, words):
    msg = error_of(page_cfg(timing={"fault_entry": {"dist": "empirical", "points": points}}))
    assert_names(msg, f"timing.fault_entry.{where}", words)


def test_bad_mixture_weights():
    comp = {"dist": "exp", "mean": "1us"}
    msg = error_of(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [{"weight": 1.5, **comp}]}}))
    assert_names(msg, "timing.ptl_hold.components.0.weight: 1.5 is not valid", "(0, 1]")
    msg = error_of(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [{"weight": -0.2, **comp}]}}))
    assert_names(msg, "components.0.weight: -0.2", "(0, 1]")
    msg = error_of(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [
        {"weight": 0.9, **comp}, {"weight": 0.2, **comp}]}}))
    assert_names(msg, "timing.ptl_hold.components: [0.9, 0.2]", "must sum to 1", "1.1")
    msg = error_of(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [{**comp}]}}))
    assert_names(msg, "timing.ptl_hold.components.0.weight: missing")
    # Any number of components.
    s = Scenario.from_dict(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [
        {"weight": 0.01, "dist": "const", "value": f"{j}us"} for j in range(100)]}}))
    c = s.compile("ref").dists[DIST_NAMES.index("ptl_hold")]
    assert c.nleaf == 100 and c.guide_bits == 7 and c.mean_ns == pytest.approx(49_500)


def test_nested_mixture_and_unknown_dist():
    # Nested mixtures are valid; their errors name the nested path.
    inner = {"dist": "mixture", "components": [{"weight": 0.9, "dist": "const", "value": "1us"},
                                               {"weight": 0.1, "dist": "exp", "mean": "1ms"}]}
    s = Scenario.from_dict(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [
        {"weight": 0.5, **inner}, {"weight": 0.5, "dist": "uniform", "low": "1us", "high": "3us"}]}}))
    c = s.compile("ref").dists[DIST_NAMES.index("ptl_hold")]
    assert c.nleaf == 3 and c.weight == pytest.approx([0.45, 0.05, 0.5], rel=1e-15)
    assert s.timing.ptl_hold.mean_ns() == pytest.approx(0.45 * 1000 + 0.05 * 1e6 + 0.5 * 2000)
    assert Scenario.from_dict(s.to_dict()).config_hash() == s.config_hash()
    msg = error_of(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [
        {"weight": 1.0, "dist": "mixture", "components": []}]}}))
    assert_names(msg, "timing.ptl_hold.components.0.components: [] is not valid", "at least 1")
    msg = error_of(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [
        {"weight": 1.0, "dist": "mixture", "components": [{"weight": 0.5, "dist": "exp", "mean": "1us"}]}]}}))
    assert_names(msg, "timing.ptl_hold.components.0.components: [0.5] is not valid", "must sum to 1")
    msg = error_of(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [
        {"weight": 1.0, "dist": "mixture", "components": [{"weight": 1.0, "dist": "gamma"}]}]}}))
    assert_names(msg, "timing.ptl_hold.components.0.components.0.dist: 'gamma' is not valid",
                 "const, uniform, exp, lognormal, empirical, histogram, mixture")
    msg = error_of(page_cfg(timing={"ptl_hold": {"dist": "mixture", "components": [
        {"weight": 1.0, "dist": "mixture", "components": [{"weight": 1.0, "dist": "exp", "mean": "-1us"}]}]}}))
    assert_names(msg, "timing.ptl_hold.components.0.components.0.mean: '-1us' is not valid", ">= 0")
    msg = error_of(page_cfg(timing={"copy": {"dist": "gamma", "shape": 2}}))
    assert_names(msg, "timing.copy.dist: 'gamma' is not valid", "mixture")
    msg = error_of(page_cfg(timing={"copy": {"mean": "1us"}}))
    assert_names(msg, "timing.copy: {'mean': '1us'} is not valid", "dist = one of", "value = ...")


def test_bad_lognormal():
    assert_names(error_of(page_cfg(timing={"copy": {"dist": "lognormal", "median": "0us", "sigma": 1}})),
                 "timing.copy.median: '0us'", "must be > 0")
    assert_names(error_of(page_cfg(timing={"copy": {"dist": "lognormal", "median": "1us", "sigma": -1}})),
                 "timing.copy.sigma: -1", ">= 0")


def test_histogram_open_bucket_must_be_empty():
    msg = error_of(page_cfg(timing={"copy": {"dist": "histogram", "buckets": [[1, 2, 3], ["4K", "...", 2]]}}))
    assert_names(msg, "timing.copy.buckets.1: ['4K', '...', 2] is not valid",
                 "an open-ended bucket must have count 0")
    msg = error_of(page_cfg(timing={"copy": {"dist": "histogram", "buckets": [[1, 2, 3], ["4K", 2]]}}))
    assert_names(msg, "timing.copy.buckets.1: ['4K', 2]", "open-ended")


@pytest.mark.parametrize("buckets, words", [
    ([[1, 2, 0]], "at least one bucket needs a count > 0"),
    ([[2, 1, 3]], "lo < hi"),
    ([[1, 4, 3], [2, 8, 1]], "increasing order"),
    ([[1, 2, -1]], "count must be a number >= 0"),
    ([[1, "2X", 1]], "1024-based"),
    ([[1, 2, 3, 4]], "[lo, hi, count]"),
])
def test_bad_histogram(buckets, words):
    assert_names(error_of(page_cfg(timing={"copy": {"dist": "histogram", "buckets": buckets}})),
                 "timing.copy.buckets", words)


def test_active_greater_than_mapcount():
    msg = error_of({"page": {"kind": "file", "mapcount": 201, "active": 300}})
    assert msg == "page.active: 300 is not valid: must be <= page.mapcount (201)"
    msg = error_of({"level": "block", "block": {"classes": [
        {"count": 1, "kind": "anon", "mapcount": 1}, {"count": 2, "kind": "file", "mapcount": 2, "active": 3}]}})
    assert msg == "block.classes.1.active: 3 is not valid: must be <= block.classes.1.mapcount (2)"


def test_bad_page_fields():
    assert_names(error_of({"page": {"kind": "anonymous", "mapcount": 2}}),
                 "page.kind: 'anonymous' is not valid", "'anon' or 'file'")
    assert_names(error_of({"page": {"kind": "file", "mapcount": 0}}), "page.mapcount: 0 is not valid", ">= 1")
    assert_names(error_of({"page": {"kind": "file", "mapcount": 2, "active": "some"}}),
                 "page.active: 'some' is not valid", '"all"')
    assert_names(error_of({"page": {"kind": "file"}}), "page.mapcount: missing")


def test_level_needs_its_table():
    assert_names(error_of({"level": "page"}), "page: missing", "[page]")
    assert_names(error_of(page_cfg(level="block")), "block: missing", "[block]")
    assert_names(error_of(page_cfg(level="chip")), "level: 'chip'", "'page' or 'block'")


def test_block_classes_must_fit():
    msg = error_of({"level": "block", "block": {"pages": 10, "classes": [{"count": 11, "kind": "anon", "mapcount": 1}]}})
    assert_names(msg, "block.classes: '11 pages' is not valid", "at most block.pages (10)")


def test_empty_strategy_list():
    assert error_of(page_cfg(strategies=[])) == (
        "strategies: [] is not valid: give at least one strategy "
        "(one of ref, drop, ptl_pin, lock_noref, flag_spin, pte_wait)")


def test_unknown_strategy():
    msg = error_of(page_cfg(strategies=["ref", "wait_harder"]))
    assert_names(msg, "strategies.1.name: 'wait_harder' is not valid", "'ref'", "'pte_wait'")


def test_option_on_wrong_strategy():
    msg = error_of(page_cfg(strategies=[{"name": "ref", "recheck": False}]))
    assert_names(msg, "strategies.0.recheck: false is not valid", "belongs to strategy 'pte_wait' only",
                 "'ref' takes no options")
    msg = error_of(page_cfg(strategies=[{"name": "pte_wait", "flag_from": "lock"}]))
    assert_names(msg, "strategies.0.flag_from: 'lock' is not valid", "'flag_spin' only")
    msg = error_of(page_cfg(strategies=[{"name": "flag_spin", "flag_from": "later"}]))
    assert_names(msg, "strategies.0.flag_from: 'later' is not valid", "'lock' or 'unmap_end'")


def test_duplicate_labels():
    msg = error_of(page_cfg(strategies=["pte_wait", {"name": "pte_wait", "recheck": False}]))
    assert_names(msg, "strategies.1.label: 'pte_wait' is not valid", "unique", "strategies.0")
    msg = error_of(page_cfg(strategies=[{"name": "ref", "label": "x"}, {"name": "drop", "label": "x"}]))
    assert_names(msg, "strategies.1.label: 'x'")
    assert_names(error_of(page_cfg(strategies=[{"name": "ref", "label": "a b"}])),
                 "strategies.0.label: 'a b'", "letters, digits")


def test_several_errors_are_all_reported():
    msg = error_of({"page": {"kind": "file", "mapcount": 0}, "timing": {"copy": "-1us"}, "bogus": 1})
    lines = msg.splitlines()
    assert len(lines) == 3
    assert any(l.startswith("page.mapcount") for l in lines)
    assert any(l.startswith("timing.copy") for l in lines)
    assert any("'bogus'" in l for l in lines)


# ---------------------------------------------------------------------------------------------
# Distributions compile, with table means within the discretisation bound of the analytic mean


def test_const():
    d = parse_distribution("1.1us")
    c = d.compile()
    assert c.is_const and c.const_ns == 1100 and c.mean_ns == 1100.0 == d.mean_ns() and c.max_ns == 1100
    assert c.exact and c.cdf(np.array([1100, 1101])).tolist() == [0.0, 1.0]
    assert parse_distribution({"dist": "const", "value": "1.1us"}) == d
    assert parse_distribution(0).mean_ns() == 0.0


def test_uniform_mean():
    d = parse_distribution({"dist": "uniform", "low": "0.1us", "high": "0.3us"})
    c = d.compile()
    # One segment [100, 300) ns: the samples are 100 .. 299, each with probability 1/200.
    assert c.nleaf == 1 and c.exact and c.max_ns == 299
    assert int(c.a[0]) == 100 << rng.FP_BITS and int(c.b[0]) == 200 << rng.FP_BITS
    assert c.cdf(np.array([100, 101, 200, 299, 300])).tolist() == [0.0, 0.005, 0.5, 0.995, 1.0]
    assert c.mean_ns == floor_mean_uniform(100, 300) == d.mean_ns() - 0.5


def test_exp_mean_as_sampled():
    d = parse_distribution({"dist": "exp", "mean": "1ms"})
    c = d.compile()
    assert c.exact and d.mean_ns() == 1e6
    # The sampler returns floor(z * val + table(m)) / 2^16: z = leading zeros of a uniform 64-bit
    # word, m its mantissa in [1/2, 1) indexing the table of -mean ln m. The CDF it implements is
    # the exponential's to the linear interpolation of -ln m on cells h = 2^-13 wide: relative to
    # the value, at most h / 2 = 6.1e-5 (for values much below mean * h, where -ln m ~ 1 - m), plus
    # one fixed-point unit (2^-16 ns: 1.5e-5 of 1 ns), and h^2 / 8 of the mean elsewhere.
    x = np.array([0, 1, 1000, 10**5, 10**6, 5 * 10**6, 20 * 10**6])
    F = -np.expm1(-x / 1e6)
    assert np.allclose(c.cdf(x), F, rtol=2.0 ** -14 + 2.0 ** -16 / np.maximum(x, 1), atol=0)
    assert np.allclose(c.cdf(x[3:]), F[3:], rtol=1e-7, atol=0)
    assert c.mean_ns == pytest.approx(floor_mean_exp(1e6), rel=1e-12)
    assert c.max_ns == (64 * int(c.a[0])) >> int(c.shift[0])  # u = 1: 64 halvings, 44.4 means
    assert abs(c.max_ns - 64 * math.log(2) * 1e6) <= 1


def test_lognormal_mean():
    d = parse_distribution({"dist": "lognormal", "median": "1us", "sigma": 0.5})
    assert isinstance(d, LognormalDist)
    c = d.compile()
    assert not c.exact and c.nleaf > 100
    # The tabulated distribution (clipped to [2^-32, 1 - 2^-32]) has the clipped mean, less the
    # floor's mean fractional part (1/2 for a density this smooth on whole ns).
    assert c.mean_ns == pytest.approx(d.clipped_mean_ns() - 0.5, abs=0.01)
    # and the clipping itself costs almost nothing.
    assert d.clipped_mean_ns() == pytest.approx(d.mean_ns(), rel=1e-9)
    assert d.mean_ns() == pytest.approx(1000 * math.exp(0.125))
    assert abs(c.cdf(np.array([1000]))[0] - 0.5) < 1e-7  # the median


def test_empirical_mean_and_shape():
    d = parse_distribution({"dist": "empirical",
                            "points": [[0.0, "0.6us"], [0.5, "1us"], [0.9, "2us"], [0.99, "5us"], [1.0, "10us"]]})
    expected = 0.5 * 800 + 0.4 * 1500 + 0.09 * 3500 + 0.01 * 7500
    assert d.mean_ns() == pytest.approx(expected)
    c = d.compile()
    # Four uniform segments, sampled exactly: the floor takes 1/2 off the mean.
    assert c.nleaf == 4 and c.exact and c.max_ns == 9999
    assert c.mean_ns == pytest.approx(expected - 0.5, abs=1e-9)
    F = c.cdf(np.array([600, 1000, 2000, 5000, 10_000, 1500]))
    assert F == pytest.approx([0.0, 0.5, 0.9, 0.99, 1.0, 0.7], abs=1e-15)


def test_empirical_with_an_atom():
    # Equal probabilities make a jump in the quantile function: an atom at no value, here a gap.
    d = parse_distribution({"dist": "empirical", "points": [[0.0, "1us"], [0.5, "1us"], [0.5, "3us"], [1.0, "3us"]]})
    assert d.mean_ns() == pytest.approx(2000.0)
    c = d.compile()
    # Two point masses (zero-width segments), nothing in between.
    assert c.nleaf == 2 and (c.b == 0).all() and c.mean_ns == 2000.0
    assert c.cdf(np.array([1000, 1001, 2000, 3000, 3001])).tolist() == [0.0, 0.5, 0.5, 0.5, 1.0]


def test_histogram_1024_based_and_mean():
    d = parse_distribution({"dist": "histogram",
                            "buckets": [["1K", "2K", 3], ["2K", "4K", 1], ["4K", "inf", 0]]})
    kp, kv = d.knots()
    assert list(kv) == [1024, 2048, 2048, 4096]
    expected = (3 * 1536 + 1 * 3072) / 4
    assert d.mean_ns() == pytest.approx(expected)
    c = d.compile()
    assert c.nleaf == 2 and c.exact and c.max_ns == 4095  # the open bucket makes no leaf
    assert c.mean_ns == pytest.approx(expected - 0.5, abs=1e-9)
    assert c.cdf(np.array([1024, 1536, 2048, 3072, 4096])).tolist() == [0.0, 0.375, 0.75, 0.875, 1.0]
    m = parse_distribution({"dist": "histogram", "unit": "us", "buckets": [[0, 1, 0], ["1M", "2M", 5]]})
    assert m.knots()[1].tolist() == [1024**2 * 1e3, 2 * 1024**2 * 1e3]


def test_histogram_with_gap_and_leading_open_bucket():
    d = parse_distribution({"dist": "histogram", "unit": "us",
                            "buckets": [["...", 0, 0], [0, 1, 1], [4, 8, 1], [8, "...", 0]]})
    assert d.mean_ns() == pytest.approx((500 + 6000) / 2)
    c = d.compile()
    assert c.mean_ns == pytest.approx(d.mean_ns() - 0.5, abs=1e-9)
    # Nothing in the gap [1, 4) us.
    assert c.cdf(np.array([1000, 2500, 4000])).tolist() == [0.5, 0.5, 0.5]
    # TOML's inf is written back as a string, so the canonical form stays strict JSON.
    t = parse_distribution({"dist": "histogram", "buckets": [[-math.inf, 0, 0], [0, 10, 1], [10, math.inf, 0]]})
    assert json.loads(json.dumps(t.to_config(), allow_nan=False))["buckets"][2] == [10, "inf", 0]
    assert parse_distribution(t.to_config()).mean_ns() == 5.0


def test_mixture_mean():
    d = parse_distribution({"dist": "mixture", "components": [
        {"weight": 0.999, "dist": "uniform", "low": "0.1us", "high": "0.3us"},
        {"weight": 0.001, "dist": "exp", "mean": "1ms"}]})
    assert d.mean_ns() == pytest.approx(0.999 * 200 + 0.001 * 1e6)
    c = d.compile()
    assert c.nleaf == 2 and c.exact
    # The leaf thresholds are the weights to 64 bits.
    assert abs(int(c.cum[0]) - 0.999 * 2**64) <= 2**12 and c.weight[1] == pytest.approx(0.001, rel=1e-14)
    assert c.mean_ns == pytest.approx(0.999 * floor_mean_uniform(100, 300) + 0.001 * floor_mean_exp(1e6),
                                      rel=1e-12)


def test_compiled_mixture_samples_its_mean():
    """End to end through rng.sample: the Philox sampler sees the distribution compiled here."""
    d = load_scenario("thread-2018").timing.wake_latency
    c = d.compile()
    n = 200_000
    words = rng.draw_words(12345, np.arange(n), rng.WAKE, 0, 1, 0, 0)
    x = rng.sample(c, words).astype(np.float64)
    se = x.std() / math.sqrt(n)
    assert abs(x.mean() - c.mean_ns) < 5 * se
    assert abs(c.mean_ns - d.mean_ns()) <= 0.5  # the floor to whole ns


def test_provenance_wrapper_on_a_distribution():
    d = parse_distribution({"value": {"dist": "exp", "mean": "30us"}, "estimate": True, "why": "guess"})
    assert d.mean_ns() == 30_000


# ---------------------------------------------------------------------------------------------
# Compilation details


def test_zero_access_rate_compiles_to_const_zero():
    s = Scenario.from_dict({"page": {"kind": "file", "mapcount": 2, "access_rate": "0/us"}})
    c = s.compile("ref")
    acc = c.dists[DIST_NAMES.index("access")]
    assert acc.is_const and acc.const_ns == 0 and c.page.access_mean_ns == 0.0


def test_dists_in_dist_names_order():
    s = Scenario.from_dict(page_cfg(timing={n: f"{i + 1}us" for i, n in enumerate(TIMING_NAMES)}))
    c = s.compile("ref")
    for i, n in enumerate(TIMING_NAMES):
        assert c.dists[DIST_NAMES.index(n)].const_ns == (i + 1) * 1000


def test_transient_process_too_dense_to_draw_is_refused():
    assert_names(error_of(page_cfg(transient={"rate": "1/ns", "hold": "1s"})),
                 "transient.rate: '1/ns'", "lower the rate or the longest hold")


def test_transient_zero_rate():
    from mcexplore import transient

    s = Scenario.from_dict(page_cfg(transient={"rate": "0/s"}))
    assert transient.layout(s.compile("ref")).model == transient.MODEL_NONE


def test_strategy_options_compile():
    s = Scenario.from_dict(page_cfg(strategies=[
        {"name": "flag_spin", "label": "fs_unmap", "flag_from": "unmap_end"}, "flag_spin",
        {"name": "pte_wait", "label": "pw", "recheck": False}]))
    assert s.labels() == ["fs_unmap", "flag_spin", "pw"]
    assert s.compile("fs_unmap").flag_from_unmap_end is True
    assert s.compile("flag_spin").flag_from_unmap_end is False
    assert s.compile("pw").recheck is False
    with pytest.raises(ScenarioError, match="'nope' is not a label"):
        s.compile("nope")


def test_strategies_as_comma_string():
    s = Scenario.from_dict(page_cfg(strategies="ref, drop"))
    assert s.labels() == ["ref", "drop"]


def test_with_strategies():
    s = load_scenario("thread-2018")
    t = s.with_strategies(["pte_wait_norecheck", "ref"])
    assert t.labels() == ["pte_wait_norecheck", "ref"]
    assert t.strategy("pte_wait_norecheck").recheck is False
    assert t.config_hash("ref") == s.config_hash("ref")
    assert t.config_hash() != s.config_hash()
    with pytest.raises(ScenarioError, match="labels: ref, drop"):
        s.with_strategies(["refx"])


# ---------------------------------------------------------------------------------------------
# Overrides, set, to_dict, hashing


def test_parse_override():
    assert parse_override("page.mapcount=2") == ("page.mapcount", 2)
    assert parse_override("timing.pre_freeze = 0.5us") == ("timing.pre_freeze", "0.5us")
    assert parse_override("page.kind=anon") == ("page.kind", "anon")
    assert parse_override('timing.copy={dist="exp", mean="1ms"}') == ("timing.copy", {"dist": "exp", "mean": "1ms"})
    assert parse_override("strategies=ref,drop") == ("strategies", "ref,drop")
    with pytest.raises(ScenarioError, match="PATH=VALUE"):
        parse_override("page.mapcount")


def test_overrides_change_compiled_values():
    base = load_scenario("thread-2018")
    s = load_scenario("thread-2018", ["page.mapcount=2", "timing.pre_freeze=0.5us", "budget.max_attempts=50",
                                      "strategies=ref,drop", "page.kind=anon",
                                      "timing.wake_latency.components.0.mean=50us",
                                      'timing.copy={dist="exp", mean="2us"}'])
    c = s.compile("drop")
    assert c.page.mapcount == 2 and c.page.active == 2 and c.page.file is False  # active = "all"
    assert c.dists[DIST_NAMES.index("pre_freeze")].const_ns == 500
    assert c.dists[DIST_NAMES.index("copy")].exp_mean.tolist() == [2000.0]
    assert c.max_attempts == 50
    assert s.labels() == ["ref", "drop"]
    assert s.timing.wake_latency.components[0].mean == 50_000
    # The overridden values lose their "estimate" notes; the others keep them.
    assert "timing.pre_freeze" not in s.notes and "timing.wake_latency" not in s.notes
    assert "timing.unmap_pte" in s.notes
    assert base.compile("ref").page.mapcount == 201  # the original is unchanged


def test_override_keeps_labelled_strategies():
    s = load_scenario("thread-2018", ["strategies=ref,pte_wait_norecheck"])
    assert s.labels() == ["ref", "pte_wait_norecheck"]
    assert s.compile("pte_wait_norecheck").recheck is False


@pytest.mark.parametrize("override, words", [
    ("page.mapcnt=2", ["page.mapcnt: unknown key 'mapcnt' in [page]", "valid keys: kind, mapcount, active, access_rate"]),
    ("pagee.mapcount=2", ["unknown key 'pagee' in the top level", "valid keys: name"]),
    ("timing.copy.mean=1us", ["timing.copy is '500ns', not a table"]),
    ("timing.wake_latency.components.7.mean=1us", ["'7' is not an index", "(0 to 1)"]),
    ("page.mapcount=-2", ["page.mapcount: -2 is not valid", ">= 1"]),
    ("page.mapcount=many", ["page.mapcount: 'many' is not valid"]),
    ("timing.pre_freeze=0.5", ["timing.pre_freeze: 0.5 is not valid", "write the unit"]),
    ("timing.copy=1 parsec", ["timing.copy: '1 parsec' is not valid", "units: ns, us, ms, s"]),
    ("strategies=ref,foo", ["strategies.1.name: 'foo' is not valid"]),
    ("level=block", ["block: missing"]),
    ("page..kind=anon", ["not a valid path"]),
])
def test_bad_overrides(override, words):
    with pytest.raises(ScenarioError) as ei:
        load_scenario("thread-2018", [override])
    msg = str(ei.value)
    assert msg.startswith(f"override {override!r}: ")
    assert_names(msg, *words)


def test_set_validates_and_copies():
    s = load_scenario("thread-2018")
    t = s.set("page.mapcount", 50)
    assert t.page.mapcount == 50 and s.page.mapcount == 201
    u = t.set("timing.fault_entry", parse_distribution({"dist": "exp", "mean": "1us"}))
    assert u.timing.fault_entry.mean == 1000.0
    with pytest.raises(ScenarioError, match="page.active: 60 is not valid"):
        t.set("page.active", 60)
    v = s.set("timing.copy", {"value": "0.7us", "estimate": False, "why": "measured"})
    assert v.notes["timing.copy"].why == "measured" and "timing.copy" not in v.estimates()
    w = s.set_many({"level": "block", "block": {"classes": [{"count": 3, "kind": "anon", "mapcount": 1}]}})
    assert w.compile("ref").block[0].count == 3
    with pytest.raises(ScenarioError, match="block: missing"):
        s.set("level", "block")


def test_overrides_apply_together():
    s = load_scenario("thread-2018", ["level=block", "block.classes=[{count=2, kind='anon', mapcount=1}]"])
    assert s.level == "block" and s.compile("ref").block[0].count == 2
    with pytest.raises(ScenarioError) as ei:
        load_scenario("thread-2018", ["page.mapcount=2", "page.active=3"])
    assert str(ei.value).startswith("overrides 'page.mapcount=2', 'page.active=3': page.active: 3 is not valid")


def test_to_dict_round_trip_and_json():
    for name in ("thread-2018", "thread-2018-block"):
        s = load_scenario(name)
        d = s.to_dict()
        json.dumps(d)
        t = Scenario.from_dict(d)
        assert t.to_dict() == d and t.notes == s.notes and t.config_hash() == s.config_hash()
        u = Scenario.from_dict(tomllib.loads(s.to_toml()))
        assert u.to_dict() == d


def test_units_are_normalised():
    a = Scenario.from_dict(page_cfg(timing={"outer_gap": "0.5ms"}, transient={"rate": "1000/s"}))
    b = Scenario.from_dict(page_cfg(timing={"outer_gap": "500 us"}, transient={"rate": "1/ms"}))
    assert a.to_dict()["timing"]["outer_gap"] == "500us"
    assert a.to_dict() == b.to_dict() and a.config_hash() == b.config_hash()


def test_config_hash_changes_with_a_field_not_with_key_order():
    s = load_scenario("thread-2018")
    h = s.config_hash()
    assert len(h) == 16 and int(h, 16) >= 0
    assert s.set("page.mapcount", 200).config_hash() != h
    assert s.set("timing.copy", "0.6us").config_hash() != h
    assert s.set("budget.max_attempts", 999).config_hash() != h
    assert s.set("strategies.6.recheck", True).config_hash() != h
    # Not part of the simulation: name, description, notes.
    assert s.set("name", "other").set("description", "x").config_hash() == h
    assert Scenario.from_dict(s.to_dict(notes=False)).config_hash() == h
    # Key order.
    d = s.to_dict()
    rev = {k: (dict(reversed(list(v.items()))) if isinstance(v, dict) else v) for k, v in reversed(list(d.items()))}
    assert list(rev) != list(d)
    assert Scenario.from_dict(rev).config_hash() == h


def test_config_hash_per_label():
    s = load_scenario("thread-2018")
    assert len({s.config_hash(lb) for lb in s.labels()}) == len(s.labels())
    relabelled = s.set("strategies.0.label", "v4_19")
    assert relabelled.config_hash("v4_19") == s.config_hash("ref")


def test_scenario_is_immutable():
    s = load_scenario("thread-2018")
    with pytest.raises(Exception):
        s.page.mapcount = 3


# ---------------------------------------------------------------------------------------------
# The package, the compiled world, the strategy registry


def _fresh_compiled(s, label):
    """What compile(label) gave before the world was shared: every distribution compiled anew."""
    import dataclasses

    c = s.compile(label)
    named = {"access": c.dists[DIST_NAMES.index("access")], "transient_hold": s.transient.hold.compile()}
    dists = [named[n] if n in named else s.dist(n).compile() for n in DIST_NAMES]
    return dataclasses.replace(c, dists=dists)


def _same_dist(a, b):
    import dataclasses

    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        assert np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y, f.name


@pytest.mark.parametrize("name", ["thread-2018", "thread-2018-block"])
def test_every_label_shares_one_compiled_world(name):
    s = load_scenario(name)
    a, b = s.compile("ref"), s.compile("pte_wait_norecheck")
    assert a.strategy != b.strategy and b.recheck is False
    assert all(x is y for x, y in zip(a.dists, b.dists))  # the same objects, not equal copies
    assert a.dists is not b.dists  # but each Compiled has a list of its own
    assert a.page is b.page
    if a.block is not None:
        assert all(x is y for x, y in zip(a.block, b.block)) and a.block is not b.block
    every = s.compile_all()
    assert all(d is e for c in every.values() for d, e in zip(c.dists, a.dists))
    assert s.world() is s.world() and s.world().dist("unmap_pte") is a.dists[0]
    # ... and they are what compiling each distribution anew gives
    for lb in s.labels():
        fresh = _fresh_compiled(s, lb)
        for x, y in zip(s.compile(lb).dists, fresh.dists):
            _same_dist(x, y)


def test_shared_world_gives_the_same_results():
    from mcexplore import api

    s = load_scenario("thread-2018", ["page.mapcount=3", "page.active=2", "budget.max_attempts=20",
                                      'budget.timeout="10ms"'])
    together = api.run(s, trials=40, seed=11, backend="numpy")
    for lb in s.labels():
        alone = api.run(load_scenario("thread-2018", ["page.mapcount=3", "page.active=2",
                                                      "budget.max_attempts=20", 'budget.timeout="10ms"']),
                        trials=40, seed=11, labels=[lb], backend="numpy")[lb].aggregate
        from mcexplore.engines.numpy_engine import NumpyEngine

        direct = NumpyEngine().run_aggregate(_fresh_compiled(s, lb), 11, 0, 40)
        for agg in (alone, direct):
            assert together[lb].aggregate.counts == agg.counts and together[lb].aggregate.sums == agg.sums


def test_world_follows_the_fields_it_depends_on():
    import pickle

    s = load_scenario("thread-2018")
    w = s.world()
    # Derived scenarios that change no world field keep the world; any other change rebuilds it.
    assert s.with_strategies("ref,drop").world() is w
    assert s.set("name", "x").set("description", "y").world() is w
    t = s.set("timing.copy", "0.6us")
    assert t.world() is not w and t.world().dist("copy").mean_ns == 600 and w.dist("copy").mean_ns == 500
    assert s.set("page.mapcount", 5).compile("ref").page.mapcount == 5
    # Whether a scenario has compiled yet never changes equality; pickles rebuild their world.
    fresh = load_scenario("thread-2018")
    assert fresh == s and s == fresh
    back = pickle.loads(pickle.dumps(s))
    assert back == s and back.world() is not w
    _same_dist(back.world().dist("wake_latency"), w.dist("wake_latency"))


def test_set_many_is_validated_once_at_the_end():
    s = Scenario.from_dict(page_cfg(page={"kind": "file", "mapcount": 4, "active": 4}))
    with pytest.raises(ScenarioError, match="page.active: 4 is not valid"):
        s.set("page.mapcount", 1)  # alone, mapcount 1 with active 4 is not valid
    for order in ([("page.mapcount", 1), ("page.active", 1)], [("page.active", 1), ("page.mapcount", 1)]):
        t = s.set_many(order)
        assert (t.page.mapcount, t.page.active) == (1, 1)
    assert s.set_many({"page.mapcount": 1, "page.active": 1}) == t
    assert s.set_many([("page.mapcount", 6), ("page.mapcount", 5)]).page.mapcount == 5  # last wins
    with pytest.raises(ScenarioError, match="unknown key 'nope'"):
        s.set_many([("page.mapcount", 1), ("page.nope", 1)])


def test_strategy_names_and_options_come_from_the_registry():
    import dataclasses

    from mcexplore import strategies

    toy = strategies.Strategy("toy", len(strategies.names()), "a toy", "none", "a test",
                              "mcexplore.engines.numpy_strategies:Ref")
    with strategies.use(strategies.registry().add(toy)):
        s = Scenario.from_dict(page_cfg(strategies=["ref", "toy"]))
        assert s.compile("toy").strategy == toy.code
        assert "toy" in Scenario.from_dict(page_cfg()).labels()  # the default: every strategy
        assert "'pte_wait' or 'toy'" in error_of(page_cfg(strategies=["nope"]))
        assert "(one of ref, drop, ptl_pin, lock_noref, flag_spin, pte_wait, toy)" in \
            error_of(page_cfg(strategies=[]))
        assert_names(error_of(page_cfg(strategies=[{"name": "toy", "recheck": True}])),
                     "strategies.0.recheck: true is not valid", "'pte_wait' only", "'toy' takes no options")
    assert_names(error_of(page_cfg(strategies=["toy"])), "strategies.0.name: 'toy' is not valid")
    # An option's values and default are the registry's: a registry whose pte_wait rechecks only
    # on request.
    rows = tuple(dataclasses.replace(r, options=(strategies.Option("recheck", (False, True), "doc"),))
                 if r.name == "pte_wait" else r for r in strategies.registry().rows)
    with strategies.use(strategies.Registry(rows)):
        assert Scenario.from_dict(page_cfg(strategies=["pte_wait"])).strategy().recheck is False
        assert Scenario.from_dict(page_cfg(strategies=["pte_wait"])).compile().recheck is False
    assert Scenario.from_dict(page_cfg(strategies=["pte_wait"])).strategy().recheck is True
    assert Scenario.from_dict(page_cfg(strategies=["flag_spin"])).strategy().flag_from == "lock"


def test_importing_the_scenario_package_leaves_warning_filters_alone():
    import subprocess
    import sys

    code = ("import warnings, numpy, scipy.special, pydantic, pandas\n"
            "before = list(warnings.filters)\n"
            "import mcexplore.scenario, mcexplore.sweep\n"
            "assert list(warnings.filters) == before, [f for f in warnings.filters if f not in before]\n")
    r = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True,
                       text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_package_re_exports_what_other_modules_import():
    import mcexplore.scenario as sc

    for name in sc.__all__ + ["FieldError", "_shipped_dir", "_format_errors", "_MISSING", "World"]:
        assert hasattr(sc, name), name
    assert not (REPO / "mcexplore" / "scenario.py").exists()
