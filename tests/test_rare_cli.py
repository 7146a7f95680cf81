"""The importance-sampling side of the CLI (docs/analysis.md, "Rare events"): ``run``, ``compare``
and ``sweep`` with ``--rare OUTCOME`` and ``--tilt PATH=VALUE``, their JSON, the sweep's rare table
(columns, resume, the riskmap on it) and every refusal as one line with exit status 2.

Tiny scenarios on the numpy backend: 2 PTEs, a 10 ms timeout, 20 attempts, and a drop_hold tail of
weight 0.3 so that call_failed is common enough for a 400-trial pilot round to reach the search's
20 hits (the tests check the plumbing, not the tilt's quality)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mcexplore.cli import main

BASE = ["--set", "page.mapcount=2", "--set", "page.active=2", "--set", "budget.timeout=10ms",
        "--set", "budget.max_attempts=20", "--set", "timing.drop_hold.components.0.weight=0.7",
        "--set", "timing.drop_hold.components.1.weight=0.3"]
FAST = ["-b", "numpy", "--pilot-trials", "400", "--ce-rounds", "2"]
SETS = {"page.mapcount": 2, "page.active": 2, "budget.timeout": "10ms", "budget.max_attempts": 20,
        "timing.drop_hold.components.0.weight": 0.7, "timing.drop_hold.components.1.weight": 0.3}


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(r):
    assert r.exit_code == 0, (r.output, r.exception)
    assert "Traceback" not in r.output
    return r.output


def assert_usage_error(r, *words):
    out = r.output
    assert r.exit_code == 2, (r.exit_code, out, r.exception)
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out
    for w in words:
        assert w in errors[0], (w, errors[0])


@pytest.fixture(scope="module")
def run_json():
    r = invoke("run", "thread-2018", "-s", "drop", "-s", "ptl_pin", *BASE, *FAST, "-n", "400",
               "--rare", "call_failed", "--json")
    return json.loads(ok(r))


# ---------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------

def test_run_rare_json_has_the_tilt_the_search_and_every_estimate(run_json):
    d = run_json
    assert d["backend"] == "numpy" and d["outcome"] == "call_failed" and d["trials"] == 400
    m = d["meta"]
    assert m["method"] == "importance-sampling" and m["rare"] == "call_failed"
    assert m["pilot_trials"] == 400 and m["ce_rounds"] == 2 and m["config_hash"]
    assert d["tilt"] and all(set(t) == {"path", "untilted", "tilted"} for t in d["tilt"])
    assert d["tilt_values"] and all(isinstance(v, float) and v > 0 for v in d["tilt_values"].values())
    assert [r["trials"] for r in d["cross_entropy"]] == [800] * len(d["cross_entropy"])
    assert d["cross_entropy"][0]["hits"] >= 20  # the plumbing's premise (see the module docstring)
    for label in ("drop", "ptl_pin"):
        s = d["strategies"][label]
        assert set(s["estimates"]) == {"migrated", "call_failed", "livelock", "censored", "uaf", "hang"}
        e = s["estimates"]["call_failed"]
        assert {"estimate", "lo", "hi", "se", "hits", "ess", "level", "warning", "n"} <= set(e)
        assert e["n"] == 400 and e["level"] == 0.95
        if e["hits"]:
            assert 0 <= e["lo"] <= e["estimate"] <= e["hi"]
        else:
            assert e["hi"] is None and e["warning"]  # no hit: no estimate, and it says so
        mw = s["mean_weight"]
        assert {"estimate", "lo", "hi"} <= set(mw)
    assert d["strategies"]["drop"]["estimates"]["call_failed"]["hits"] > 0


def test_run_rare_is_the_library_estimate():
    """The CLI is a thin shell: its numbers are mcexplore.rare.estimate's with the same arguments."""
    from mcexplore import rare
    from mcexplore.scenario import load_scenario

    r = invoke("run", "thread-2018", "-s", "drop", *BASE, *FAST, "-n", "300", "--seed", "4",
               "--rare", "call_failed", "--json")
    d = json.loads(ok(r))
    sc = load_scenario("thread-2018").set_many({**SETS, "strategies": ["drop"]})
    lib = rare.estimate(sc, ["drop"], trials=300, seed=4, outcome="call_failed", backend="numpy",
                        pilot_trials=400, rounds=2)
    e = lib.estimate("drop", "call_failed")
    got = d["strategies"]["drop"]["estimates"]["call_failed"]
    assert got["estimate"] == e.estimate and got["hits"] == e.hits and got["ess"] == e.ess
    assert d["tilt_values"] == pytest.approx(lib.tilt, rel=0, abs=0)


def test_the_json_tilt_reruns_the_same_world_without_the_search(run_json):
    assert len(run_json["tilt_args"]) == len(run_json["tilt_values"])
    tilts = [a for t in run_json["tilt_args"] for a in ("--tilt", t)]
    r = invoke("run", "thread-2018", "-s", "drop", "-s", "ptl_pin", *BASE, "-b", "numpy", "-n", "400",
               *tilts, "--json")
    d = json.loads(ok(r))
    assert d["cross_entropy"] is None and d["outcome"] is None
    for label in ("drop", "ptl_pin"):
        assert (d["strategies"][label]["estimates"]["call_failed"]
                == run_json["strategies"][label]["estimates"]["call_failed"])


def test_run_rare_text_says_backend_tilt_rounds_estimate_ess_weight_and_warnings():
    r = invoke("run", "thread-2018", "-s", "drop", "-s", "ptl_pin", *BASE, *FAST, "-n", "300",
               "--rare", "call_failed", "--format", "text")
    out = ok(r)
    for word in ("importance sampling, backend numpy", "tilted world", " -> ", "cross-entropy search",
                 "round 1:", "== drop", "== ptl_pin", "call_failed", "hits", "ESS", "mean weight",
                 "other outcomes:", "backend: numpy"):
        assert word in out, word
    # ptl_pin never fails the first call: its estimate is "no hit", with the warning on its own line
    assert "no hit" in out
    assert any(ln.strip().startswith("warning (call_failed):") for ln in out.splitlines())
    assert max(len(ln) for ln in out.splitlines()) <= 80


def test_run_tilt_alone_runs_that_world_and_shows_every_outcome():
    r = invoke("run", "thread-2018", "-s", "drop", *BASE, "-b", "numpy", "-n", "200",
               "--tilt", "timing.drop_hold.components.1.weight=0.5", "--tilt", "transient.rate=2/ms")
    out = ok(r)
    assert "cross-entropy" not in out
    assert "timing.drop_hold.components.1.weight" in out and "transient.rate" in out
    for o in ("migrated", "call_failed", "livelock", "censored", "uaf", "hang"):
        assert f"  {o} " in out
    md = ok(invoke("run", "thread-2018", "-s", "drop", *BASE, "-b", "numpy", "-n", "100",
                   "--tilt", "timing.drop_hold.components.1.weight=0.5", "--format", "markdown"))
    assert "| tilted parameter | untilted | tilted |" in md and "### drop" in md


def test_run_rare_out_file_holds_the_json(tmp_path):
    out = tmp_path / "r.json"
    r = invoke("run", "thread-2018", "-s", "drop", *BASE, "-b", "numpy", "-n", "100",
               "--tilt", "timing.drop_hold.components.1.weight=0.5", "--json", "--out", out)
    assert json.loads(ok(r)) == json.loads(out.read_text())
    assert "NaN" not in out.read_text() and "Infinity" not in out.read_text()  # valid JSON


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------

def test_compare_rare_is_paired_under_one_tilt():
    args = ["compare", "thread-2018", "-s", "drop", "-s", "ptl_pin", *BASE, *FAST, "-n", "300",
            "--rare", "call_failed"]
    d = json.loads(ok(invoke(*args, "--json")))
    assert d["baseline"] == "drop" and d["labels"] == ["drop", "ptl_pin"]
    x = d["differences"]["ptl_pin"]["call_failed"]
    a = d["strategies"]["drop"]["estimates"]["call_failed"]["estimate"]
    b = d["strategies"]["ptl_pin"]["estimates"]["call_failed"]["estimate"]
    assert x["difference"] == pytest.approx(b - a, rel=1e-12, abs=1e-300)
    assert x["lo"] <= x["difference"] <= x["hi"] and x["se"] >= 0
    out = ok(invoke(*args))
    assert "paired differences vs A = drop" in out and "the pairing is kept" in out
    assert "B = ptl_pin" in out and "backend: numpy" in out


def test_compare_tilt_reports_only_the_asked_outcomes():
    out = ok(invoke("compare", "thread-2018", "-s", "drop", "-s", "ptl_pin", *BASE, "-b", "numpy", "-n", "100",
                    "--tilt", "timing.drop_hold.components.1.weight=0.5", "--outcome", "censored",
                    "--format", "text"))
    assert "B = ptl_pin      censored" in out and "call_failed " not in out.split("paired differences")[1]


# ---------------------------------------------------------------------------------------------
# refusals: one line, exit 2
# ---------------------------------------------------------------------------------------------

RUN = ["run", "thread-2018", "-s", "drop", *BASE, "-b", "numpy", "-n", "10"]


@pytest.mark.parametrize("args,words", [
    (["--tilt", "no.such.path=1"], ["no.such.path", "not a tiltable parameter", "valid:"]),
    (["--tilt", "timing.drop_hold.components.1.weight=2"], ["weight", "'2'", "(0, 1)"]),
    (["--tilt", "timing.drop_hold.components.1.mean=3 parsecs"], ["parsecs", "not a valid mean"]),
    (["--tilt", "page.access_rate"], ["PATH=VALUE"]),
    (["--tilt", "transient.hold=2us"], ["transient.hold"]),
    (["--rare", "bogus"], ["--rare", "bogus"]),
    (["--rare", "call_failed", "--until-upper-bound", "0.01"], ["--until-upper-bound", "--rare"]),
    (["--tilt", "transient.rate=2/ms", "--target-rel-error", "0.1"], ["--target-rel-error", "--tilt"]),
    (["--pilot-trials", "100"], ["--pilot-trials", "without --rare"]),
    (["--ce-rounds", "3"], ["--ce-rounds", "without --rare"]),
    (["--rare", "call_failed", "--pilot-trials", "0"], ["--pilot-trials", "0"]),
])
def test_run_refuses_bad_rare_options(args, words):
    assert_usage_error(invoke(*RUN, *args), *words)


def test_block_level_is_refused():
    r = invoke("run", "thread-2018-block", "-b", "numpy", "-n", "10", "--rare", "call_failed")
    assert_usage_error(r, "page level only")
    r = invoke("compare", "thread-2018-block", "-s", "drop", "-s", "ptl_pin", "-b", "numpy", "-n", "10",
               "--tilt", "transient.rate=2/ms")
    assert_usage_error(r, "page level only")


def test_a_search_without_enough_hits_says_so():
    r = invoke(*RUN, "--rare", "uaf", "--pilot-trials", "50", "--ce-rounds", "1")
    assert_usage_error(r, "no tilt found", "--tilt")


# ---------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------

SWEEP = """\
base = "thread-2018"
trials = 200
seed = 3
strategies = ["drop", "ptl_pin"]
{extra}
[set]
"budget.max_attempts" = 20
"budget.timeout" = "10ms"
"page.mapcount" = 2
"page.active" = 2
"timing.drop_hold.components.0.weight" = 0.7
"timing.drop_hold.components.1.weight" = 0.3

[[axes]]
path = "page.access_rate"
values = ["0.5/us", "1/us"]
"""


def _sweep_file(tmp_path, extra="", name="s.toml"):
    p = tmp_path / name
    p.write_text(SWEEP.format(extra=extra))
    return p


def _rows(out):
    return [ln for ln in out.splitlines() if "reused" in ln][0]


def test_sweep_rare_rows_resume_and_never_mix_with_crude_rows(tmp_path):
    from mcexplore.tables import load_results, metadata

    spec, out = _sweep_file(tmp_path), tmp_path / "out"
    rare = ["sweep", spec, "--out", out, "-b", "numpy", "--rare", "call_failed", "--pilot-trials", "400",
            "--ce-rounds", "2"]
    o = ok(invoke(*rare))
    assert "2 cells x 2 strategies = 4 rows: 0 reused, 4 run" in o and "importance sampling for call_failed" in o
    t = load_results(out)
    for c in ("access_rate", "access_rate_label", "strategy", "trials", "call_failed", "call_failed_lo",
              "call_failed_hi", "interval", "hits", "ess", "mean_weight", "tilt", "warning", "rare_outcome",
              "seed", "key"):
        assert c in t.columns, c
    assert set(t["interval"]) == {"importance-sampling"} and set(t["rare_outcome"]) == {"call_failed"}
    assert t["call_failed"].dtype.kind == "f"
    drop = t[t.strategy == "drop"]
    assert (drop["hits"] > 0).all() and (drop["trials"] == 200).all()
    assert ((drop["call_failed_lo"] <= drop["call_failed"]) & (drop["call_failed"] <= drop["call_failed_hi"])).all()
    for tilt in t["tilt"]:
        assert isinstance(json.loads(tilt), dict)
    # the strategies of a cell share its tilt; the two cells chose their own
    assert t.groupby("access_rate")["tilt"].nunique().eq(1).all()
    meta = metadata(out / "results.parquet")
    assert meta["units"]["call_failed"] == "probability" and meta["provenance"]["rare"]["rare"] == "call_failed"

    # resume: the same command reuses every row, and the table is the same
    assert "4 reused, 0 run" in _rows(ok(invoke(*rare)))
    again = load_results(out)
    assert again.equals(t)
    # the same settings from the sweep file are the same rows
    spec2 = _sweep_file(tmp_path, 'rare = "call_failed"\npilot_trials = 400\nce_rounds = 2', "s2.toml")
    assert "4 reused, 0 run" in _rows(ok(invoke("sweep", spec2, "--out", out, "-b", "numpy")))
    # a crude sweep into the same folder shares no row with the rare one, and back
    assert "0 reused, 4 run" in _rows(ok(invoke("sweep", spec, "--out", out, "-b", "numpy")))
    assert "interval" in load_results(out) and set(load_results(out)["interval"]) == {"wilson"}
    assert "4 reused, 0 run" in _rows(ok(invoke(*rare)))
    # other search settings are other rows
    assert "0 reused, 4 run" in _rows(ok(invoke(*rare[:-1], "1")))

    # the risk map reads the estimates (--outcome defaults to the table's), in text and as an image
    ok(invoke(*rare))
    txt = ok(invoke("plot", "riskmap", out, "--x", "access_rate", "--y", "strategy", "--facet", "scenario",
                    "--format", "text"))
    assert "importance sampling" in txt and "P(call_failed)" in txt
    assert_usage_error(invoke("plot", "riskmap", out, "--x", "access_rate", "--y", "strategy", "--facet",
                              "scenario", "--outcome", "livelock", "--format", "text"), "call_failed only")
    assert "wrote" in ok(invoke("plot", "curve", out, "--x", "access_rate", "--out", tmp_path / "c.svg"))
    assert_usage_error(invoke("plot", "cdf", out, "--out", tmp_path / "d.svg"), "histograms")
    assert_usage_error(invoke("report", out, "--out", tmp_path / "r.html"), "importance-sampling")


def test_sweep_rare_refusals(tmp_path):
    spec, out = _sweep_file(tmp_path), tmp_path / "out"
    base = ["sweep", spec, "--out", out, "-b", "numpy"]
    assert_usage_error(invoke(*base, "--rare", "call_failed", "--cluster", "local:2"),
                       "--cluster", "in this process only")
    assert_usage_error(invoke(*base, "--rare", "call_failed", "--until-upper-bound", "0.1"),
                       "--until-upper-bound", "--rare")
    assert_usage_error(invoke(*base, "--tilt", "transient.rate=2/ms"), "--tilt", "without --rare")
    assert_usage_error(invoke(*base, "--rare", "call_failed", "--tilt", "no.such=1"),
                       "cell access_rate=0.5/us", "no.such")
    bad = _sweep_file(tmp_path, 'rare = "bogus"', "bad.toml")
    assert_usage_error(invoke("sweep", bad, "--out", out), "rare", "bogus")
    bad = _sweep_file(tmp_path, "pilot_trials = 100", "bad2.toml")
    assert_usage_error(invoke("sweep", bad, "--out", out), "pilot_trials", "rare")
    # nothing was computed by any of them
    assert not (out / "results.parquet").exists()


def test_sweep_spec_reads_the_rare_keys():
    from mcexplore.sweep import RARE_CE_ROUNDS, RARE_PILOT_TRIALS, SweepSpec

    s = SweepSpec.from_dict({"base": "thread-2018", "trials": 5, "rare": "uaf",
                             "tilt": "transient.rate=2/ms"})
    assert s.rare_settings == {"rare": "uaf", "tilt": ["transient.rate=2/ms"],
                               "pilot_trials": RARE_PILOT_TRIALS, "ce_rounds": RARE_CE_ROUNDS}
    assert SweepSpec.from_dict({"base": "thread-2018", "trials": 5}).rare_settings is None


def test_the_defaults_are_the_library_s():
    import inspect

    from mcexplore import rare, sweep
    from mcexplore.cli_options import DEFAULT_CE_ROUNDS, DEFAULT_PILOT_TRIALS

    sig = inspect.signature(rare.estimate).parameters
    assert sig["pilot_trials"].default == DEFAULT_PILOT_TRIALS == sweep.RARE_PILOT_TRIALS
    assert sig["rounds"].default == DEFAULT_CE_ROUNDS == sweep.RARE_CE_ROUNDS


def test_replay_in_a_tilted_world_prints_the_trials_weight():
    from mcexplore import tilt
    from mcexplore.replay import replay_compiled
    from mcexplore.scenario import load_scenario

    w = "timing.drop_hold.components.1.weight=0.5"
    out = ok(invoke("replay", "thread-2018", "--trial", 2, "-s", "drop", *BASE, "--tilt", w, "--limit", 3))
    sc = load_scenario("thread-2018").set_many(SETS)
    want = replay_compiled(tilt.tilted_compiled(sc, "drop", [w]), 2, 0, "drop").weight
    assert f"likelihood ratio (weight) {want!r}" in out
    assert_usage_error(invoke("replay", "thread-2018", "--trial", 2, "-s", "drop", "--tilt", "timing.copy=1us"),
                       "timing.copy", "not a tiltable parameter")
