"""Tests of mcexplore.sweep: spec parsing, derived window, order- and interruption-independent
results, resume without recomputation. Tiny scenarios (mapcount <= 3, 20 attempts, 60 trials)."""

import json

import numpy as np
import pandas as pd
import pytest

import mcexplore.api as api
import mcexplore.chunks as chunks
import mcexplore.cluster as cluster
from mcexplore.results import HIST_METRICS, OUTCOMES
from mcexplore.sweep import (Axis, SweepError, SweepSpec, aggregate_from_row, cell_scenario,
                             cell_seed, base_scenario, hist_from_json, hist_to_json, load_results,
                             load_sweep, run_sweep, table_aggregates, window_pre_freeze_ns)

SMALL = {"budget": {"max_attempts": 20, "timeout": "10ms"}, "page": {"active": 2, "mapcount": 3}}


def _spec(axes, trials=60, strategies=("ref", "drop")):
    return {"base": "thread-2018", "trials": trials, "seed": 7, "strategies": list(strategies),
            "set": SMALL, "axes": axes}


AXES = [
    {"path": ["page.mapcount", "page.active"], "name": "mapcount", "values": [1, 3]},
    {"path": "page.access_rate", "values": ["0.1/us", "2/us"]},
]


def _canon(df):
    df = df[sorted(df.columns)]
    return df.sort_values(["mapcount", "access_rate", "strategy"]).reset_index(drop=True)


# --------------------------------------------------------------------------- spec

def test_axis_grids():
    a = Axis.from_dict({"path": "page.mapcount", "start": 1, "stop": 256, "num": 9, "scale": "log",
                        "integer": True}, 0)
    assert a.values == [1, 2, 4, 8, 16, 32, 64, 128, 256] and a.name == "mapcount"
    a = Axis.from_dict({"path": "page.mapcount", "start": 1, "stop": 4, "num": 10, "integer": True}, 0)
    assert a.values == [1, 2, 3, 4]  # rounded, duplicates dropped
    a = Axis.from_dict({"path": "timing.pre_freeze", "start": "1us", "stop": "1ms", "num": 4, "scale": "log"}, 0)
    assert a.values == ["1us", "10us", "100us", "1ms"]
    a = Axis.from_dict({"path": "timing.fault_entry", "start": "0.3us", "stop": "30us", "num": 5, "scale": "log"}, 0)
    assert a.values == ["300ns", "948.7ns", "3us", "9.487us", "30us"]  # 4 significant digits
    a = Axis.from_dict({"path": "page.access_rate", "values": ["0.1/us", "1/us"]}, 0)
    from mcexplore.sweep import numeric
    assert [numeric(v) for v in a.values] == pytest.approx([1e5, 1e6])  # events per second


@pytest.mark.parametrize("bad,msg", [
    ({"path": "page.mapcount"}, "values"),
    ({"path": "page.mapcount", "values": [1, "2us"]}, "mix"),
    ({"path": "page.mapcount", "values": [1, 1]}, "repeat"),
    ({"path": "page.mapcount", "values": [1], "start": 1}, "not both"),
    ({"derived": "nonsense", "values": ["1us"]}, "not known"),
    ({"path": "x", "values": [1], "colour": 1}, "unknown key"),
    ({"path": "x", "start": 0, "stop": 1, "num": 3, "scale": "log"}, "log scale"),
])
def test_axis_errors(bad, msg):
    with pytest.raises(SweepError, match=msg):
        Axis.from_dict(bad, 0)


def test_spec_errors():
    with pytest.raises(SweepError, match="base"):
        SweepSpec.from_dict({"trials": 1})
    with pytest.raises(SweepError, match="more than once"):
        SweepSpec.from_dict({"base": "thread-2018", "trials": 1,
                             "axes": [{"path": "page.mapcount", "values": [1]},
                                      {"path": "page.mapcount", "name": "m2", "values": [2]}]})
    with pytest.raises(SweepError, match="pre_freeze"):
        SweepSpec.from_dict({"base": "thread-2018", "trials": 1,
                             "axes": [{"derived": "window", "values": ["1ms"]},
                                      {"path": "timing.pre_freeze", "values": ["1us"]}]})
    # an axis wins over a fixed override of the same field
    s = SweepSpec.from_dict({"base": "thread-2018", "trials": 1, "overrides": ["page.mapcount=2", "timing.pre_freeze=\"1us\""],
                             "axes": [{"path": "page.mapcount", "values": [1]}, {"derived": "window", "values": ["1ms"]}]})
    assert s.overrides == []
    with pytest.raises(SweepError, match="unknown key"):
        SweepSpec.from_dict({"base": "thread-2018", "trials": 1, "axis": []})


def test_cell_seed_is_order_independent_and_distinct():
    assert cell_seed(1, {"a": 1, "b": "2us"}) == cell_seed(1, {"b": "2us", "a": 1})
    seeds = {cell_seed(1, {"a": a, "b": b}) for a in range(10) for b in range(10)}
    assert len(seeds) == 100
    assert cell_seed(2, {"a": 1}) != cell_seed(1, {"a": 1})
    assert 0 <= cell_seed(1, {"a": 1}) < 2**63


def test_window_axis_sets_pre_freeze():
    spec = SweepSpec.from_dict(_spec([{"path": ["page.mapcount", "page.active"], "name": "mapcount", "values": [1, 3]},
                                      {"derived": "window", "values": ["5us", "50us"]}]))
    base = base_scenario(spec)
    mean_unmap = base.dist("unmap_pte").compile().mean_ns
    for cell in spec.cells():
        s = cell_scenario(spec, base, cell)
        w = {"5us": 5000.0, "50us": 50000.0}[cell["window"]]
        pf = s.dist("pre_freeze").compile().mean_ns
        assert s.page.mapcount == cell["mapcount"]
        assert cell["mapcount"] * mean_unmap + pf == pytest.approx(w, abs=0.5)  # int ns rounding
        assert window_pre_freeze_ns(s, w) == pytest.approx(pf, abs=0.5)
    bad = SweepSpec.from_dict(_spec([{"path": ["page.mapcount", "page.active"], "name": "mapcount", "values": [3]},
                                     {"derived": "window", "values": ["2us"]}]))
    with pytest.raises(SweepError, match="shorter than mapcount"):
        cell_scenario(bad, base_scenario(bad), next(bad.cells()))


def test_hist_json_roundtrip():
    h = np.zeros(488, dtype=np.int64)
    h[[0, 7, 100, 487]] = [5, 1, 3, 2]
    assert np.array_equal(hist_from_json(hist_to_json(h)), h)
    assert hist_from_json("{}").sum() == 0


# --------------------------------------------------------------------------- runs

def test_sweep_table_and_order_and_chunking_independence(tmp_path):
    t1 = run_sweep(_spec(AXES), tmp_path / "a", backend="numpy", progress=False)
    assert len(t1) == 2 * 2 * 2
    assert (tmp_path / "a" / "results.parquet").is_file()
    assert len(list((tmp_path / "a" / "cells").glob("*.json"))) == 8
    for col in ["mapcount", "mapcount_label", "access_rate", "access_rate_label", "strategy", "trials",
                *OUTCOMES, "sum_attempts", "seed", "backend", "version", "model_version", "config_hash",
                *(f"hist_{m}" for m in HIST_METRICS), *(f"{o}_{s}" for o in OUTCOMES for s in ("p", "lo", "hi"))]:
        assert col in t1.columns, col
    # how long a row took is kept apart from the results (which must not depend on the machine)
    assert "wall_s" not in t1.columns
    timings = pd.read_csv(tmp_path / "a" / "timings.csv")
    assert sorted(timings.key) == sorted(t1.key) and (timings.wall_s > 0).all()
    assert (t1.trials == 60).all() and set(t1.backend) == {"numpy"}
    # the same cell has the same seed for both strategies (paired), cells differ
    assert t1.groupby(["mapcount", "access_rate"]).seed.nunique().eq(1).all()
    assert t1.seed.nunique() == 4
    # every row is the cell's scenario run with the cell's seed
    r = t1[(t1.mapcount == 3) & (t1.access_rate_label == "2/us") & (t1.strategy == "ref")].iloc[0]
    spec = SweepSpec.from_dict(_spec(AXES))
    s = cell_scenario(spec, base_scenario(spec), {"mapcount": 3, "access_rate": "2/us"})
    direct = api.run(s, trials=60, seed=int(r.seed), labels=["ref"], backend="numpy")["ref"].aggregate
    agg = aggregate_from_row(r)
    assert agg.counts == direct.counts and agg.sums == direct.sums
    assert all(np.array_equal(agg.hists[m], direct.hists[m]) for m in HIST_METRICS)
    assert r.config_hash == s.config_hash("ref")
    # axes listed the other way round, trials run in batches of 16: the same table
    t2 = run_sweep(_spec(AXES[::-1]), tmp_path / "b", backend="numpy", progress=False, batch=16, fmt="csv")
    assert (tmp_path / "b" / "results.csv").is_file()
    t2 = load_results(tmp_path / "b")
    pd.testing.assert_frame_equal(_canon(t1), _canon(t2), check_dtype=False)
    # something actually happens in this small world (else the comparisons above are vacuous)
    assert t1[t1.strategy == "ref"].censored.sum() > 0


class Boom(RuntimeError):
    pass


def test_interrupted_sweep_resumes_without_recomputing(tmp_path, monkeypatch):
    ref = run_sweep(_spec(AXES), tmp_path / "ref", backend="numpy", progress=False)
    seen = []

    def explode(row):
        seen.append(row["key"])
        if len(seen) == 3:
            raise Boom()

    with pytest.raises(Boom):
        run_sweep(_spec(AXES), tmp_path / "x", backend="numpy", progress=False, on_row=explode)
    assert len(list((tmp_path / "x" / "cells").glob("*.json"))) == 3
    assert not (tmp_path / "x" / "results.parquet").exists()
    assert not list((tmp_path / "x" / "cells").glob(".*tmp"))  # no temporary files left
    calls = []
    real = chunks.run_chunks

    def counting(chs):
        calls.extend(chs)
        return real(chs)

    monkeypatch.setattr(chunks, "run_chunks", counting)
    monkeypatch.setattr(cluster, "run_chunks", counting)
    res = run_sweep(_spec(AXES), tmp_path / "x", backend="numpy", progress=False)
    assert len(calls) == 8 - 3  # only the rows not finished before the interruption
    pd.testing.assert_frame_equal(_canon(ref), _canon(res), check_dtype=False)
    # a damaged cell file is recomputed; --no-resume recomputes everything
    f = next((tmp_path / "x" / "cells").glob("*.json"))
    f.write_text("{not json")
    calls.clear()
    run_sweep(_spec(AXES), tmp_path / "x", backend="numpy", progress=False)
    assert len(calls) == 1
    calls.clear()
    run_sweep(_spec(AXES), tmp_path / "x", backend="numpy", progress=False, resume=False)
    assert len(calls) == 8


def test_more_trials_is_a_new_cell(tmp_path):
    run_sweep(_spec(AXES[:1], trials=30), tmp_path, backend="numpy", progress=False)
    run_sweep(_spec(AXES[:1], trials=40), tmp_path, backend="numpy", progress=False)
    files = [json.loads(p.read_text())["row"] for p in (tmp_path / "cells").glob("*.json")]
    assert sorted(r["trials"] for r in files) == [30] * 4 + [40] * 4
    t = load_results(tmp_path)
    assert (t.trials == 40).all()


def test_sweep_file_and_table_aggregates(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("""
base = "thread-2018"
trials = 40
seed = 3
strategies = "ref,ptl_pin"
overrides = ["budget.max_attempts=20", "budget.timeout=\\"10ms\\""]
[set.page]
active = 2
mapcount = 2
[[axes]]
path = "page.access_rate"
start = "0.1/us"
stop = "10/us"
num = 3
scale = "log"
""")
    spec = load_sweep(f)
    assert spec.n_cells == 3 and spec.strategies == ["ref", "ptl_pin"]
    t = run_sweep(f, tmp_path / "out", backend="numpy", progress=False)
    assert list(t.access_rate_label.unique()) == ["100/ms", "1/us", "10/us"]
    aggs = table_aggregates(t)
    assert set(aggs) == {"ref", "ptl_pin"} and aggs["ref"].trials == 120
    assert aggs["ref"].counts["censored"] == t[t.strategy == "ref"].censored.sum()


def test_sweep_cli(tmp_path):
    from click.testing import CliRunner

    from mcexplore.cli_analysis import sweep_cmd

    f = tmp_path / "s.toml"
    f.write_text("""
base = "thread-2018"
trials = 30
seed = 1
strategies = ["ref", "drop"]
overrides = ["budget.max_attempts=20", "budget.timeout=\\"10ms\\"", "page.active=2", "page.mapcount=2"]
[[axes]]
path = "page.access_rate"
values = ["0.1/us", "1/us"]
""")
    r = CliRunner().invoke(sweep_cmd, [str(f), "--out", str(tmp_path / "o"), "-b", "numpy", "--no-progress", "--csv"])
    assert r.exit_code == 0, r.output
    assert "4 rows" in r.output and (tmp_path / "o" / "results.csv").is_file()
    r = CliRunner().invoke(sweep_cmd, [str(f), "--out", str(tmp_path / "o"), "-b", "numpy", "--no-progress",
                                       "--trials", "20"])
    assert r.exit_code == 0 and (tmp_path / "o" / "results.parquet").is_file()
    assert (load_results(tmp_path / "o" / "results.parquet").trials == 20).all()
    f.write_text('base = "thread-2018"\ntrials = 3\n[[axes]]\npath = "page.mapcount"\n')
    r = CliRunner().invoke(sweep_cmd, [str(f), "--out", str(tmp_path / "p")])
    assert r.exit_code == 2 and "values" in r.output
    assert "Example" in CliRunner().invoke(sweep_cmd, ["--help"]).output


def test_shipped_sweep_files_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "configs"
    for name in ("sweep-thread-2018.toml", "sweep-timing-window.toml"):
        spec = load_sweep(root / name)
        assert spec.n_cells >= 4
        base = base_scenario(spec)
        for cell in spec.cells():  # every cell is a valid scenario (window never negative)
            cell_scenario(spec, base, cell)


# --------------------------------------------------------------------------- spec models

def test_spec_errors_name_the_field_the_value_and_what_is_valid(tmp_path):
    from mcexplore.scenario import ScenarioError

    def err(d):
        with pytest.raises(SweepError) as ei:
            SweepSpec.from_dict(d, source="s.toml")
        assert isinstance(ei.value, ScenarioError)  # what the CLI reports as exit 2
        return str(ei.value)

    base = {"base": "thread-2018", "trials": 1}
    ax = {"path": "page.mapcount", "values": [1]}
    assert err(dict(base, axes=[dict(ax, scale="cubic")])).startswith("s.toml: axes.0.")
    assert err(dict(base, axes=[{"path": "x", "start": 1, "stop": 2, "num": 3, "scale": "cubic"}])) == \
        "s.toml: axes.0.scale: 'cubic' is not valid: must be 'log' or 'linear'"
    assert err(dict(base, axes=[ax, dict(ax, colour=1)])) == (
        "s.toml: unknown key 'colour' in [axes.1] (valid keys: path, name, values, start, stop, num, "
        "scale, integer, derived)")
    assert err({"base": "thread-2018", "trials": 0}) == "s.toml: trials: 0 is not valid: must be >= 1"
    assert err(dict(base, overrides=["page.mapcount"])) == (
        "s.toml: overrides.0: 'page.mapcount' is not valid: write PATH=VALUE, as --set does "
        "(e.g. page.mapcount=2)")
    assert err(dict(base, axes=[{"path": "x", "values": ["1xs"]}])).startswith(
        "s.toml: axes.0.values.0: '1xs' is not valid: ")
    msg = err(dict(base, axes=[ax, dict(ax, name="m2")]))
    assert msg == "s.toml: axes.1.path: 'page.mapcount' is not valid: set more than once in axes (axes.0 sets it too)"
    # several problems of one file: one line each
    assert len(err({"trials": 0, "axes": [{"path": "x"}]}).splitlines()) == 3
    with pytest.raises(SweepError, match=r"^axes\.4\.values: missing"):
        Axis.from_dict({"path": "page.mapcount"}, 4)
    # a bad file through the CLI: exit 2, the message, no traceback
    from click.testing import CliRunner

    from mcexplore.cli_analysis import sweep_cmd

    f = tmp_path / "s.toml"
    f.write_text('base = "thread-2018"\ntrials = 3\n[[axes]]\npath = "page.mapcount"\nstart = 1\n'
                 'stop = 4\nnum = 2\nscale = "cubic"\n')
    r = CliRunner().invoke(sweep_cmd, [str(f), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "axes.0.scale: 'cubic' is not valid: must be 'log' or 'linear'" in r.output
    assert "Traceback" not in r.output


def test_axes_and_spec_are_in_normal_form():
    a = Axis.from_dict({"path": "page.mapcount", "start": 1, "stop": 4, "num": 4}, 0)
    assert a.values == [1.0, 2.0, 3.0, 4.0] and a.paths == ["page.mapcount"] and a.start is None
    assert Axis.from_dict(a.model_dump(), 0) == a  # validating it again changes nothing
    w = Axis.from_dict({"derived": "window", "values": ["1us"]}, 0)
    assert w.paths == [] and w.name == "window"
    s = SweepSpec.from_dict({"base": "thread-2018", "trials": 2, "strategies": "ref, drop",
                             "overrides": "budget.max_attempts=20", "set": {"budget": {"passes": 2}},
                             "axes": [{"path": "page.mapcount", "values": [1, 2]}]})
    assert s.strategies == ["ref", "drop"] and s.n_cells == 2
    assert s.overrides == [("budget.max_attempts", 20), ("budget.passes", 2)] and s.set == {}


def test_cells_are_set_at_once_with_set_many(monkeypatch):
    from mcexplore.scenario import Scenario

    # mapcount 1 is valid only once active is 1 too, whichever axis comes first
    spec = SweepSpec.from_dict({"base": "thread-2018", "trials": 1, "set": {"page": {"mapcount": 4, "active": 4}},
                                "axes": [{"path": "page.mapcount", "values": [1, 4]},
                                         {"path": "page.active", "values": [1]}]})
    calls = []
    real = Scenario.set_many

    def counting(self, changes):
        calls.append(list(changes))
        return real(self, changes)

    def no_set(self, path, value):
        raise AssertionError("cells are set with set_many, not one set() after another")

    monkeypatch.setattr(Scenario, "set_many", counting)
    monkeypatch.setattr(Scenario, "set", no_set)
    base = base_scenario(spec)
    calls.clear()
    for cell in spec.cells():
        s = cell_scenario(spec, base, cell)
        assert (s.page.mapcount, s.page.active) == (cell["mapcount"], 1)
    assert calls == [[("page.mapcount", 1), ("page.active", 1)], [("page.mapcount", 4), ("page.active", 1)]]
    # a cell that is not valid even with every value in: a SweepError naming the cell and the field
    bad = SweepSpec.from_dict({"base": "thread-2018", "trials": 1,
                               "axes": [{"path": "page.active", "values": [500]}]})
    with pytest.raises(SweepError, match=r"^cell active=500: page.active: 500 is not valid"):
        cell_scenario(bad, base_scenario(bad), next(bad.cells()))
