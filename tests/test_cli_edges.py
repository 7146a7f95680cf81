"""Bad input at the edges of the CLI (issue #12): every one is a one-line error naming the value
and what is valid, exit status 2, no traceback, and no computed result lost. A fuzz test drives
the commands with random bad options; explicit tests pin each case of the issue."""

import json
import os
import random
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mcexplore import io as mcx_io
from mcexplore.adaptive import StopRule, rule_from_options
from mcexplore.cli import main
from mcexplore.engines import base as engine_base
from mcexplore.scenario import ScenarioError, load_scenario

SET = ["--set", "page.mapcount=2", "--set", "page.active=2"]
TINY = [*SET, "-n", "5", "-b", "numpy"]
SWEEP = "configs/sweep-thread-2018.toml"


def _native_ok():
    return engine_base.availability("native")[0]


@pytest.fixture
def fresh_engines(monkeypatch):
    """Engines built anew (the registry caches instances), so $MCEXPLORE_* is read again."""
    monkeypatch.setattr(engine_base, "_instances", {})


def invoke(args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def assert_usage_error(r, bad):
    out = r.output
    assert r.exit_code == 2, (r.exit_code, out, r.exception)
    assert "Traceback" not in out
    assert str(bad) in out, out
    errors = [line for line in out.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, out


@pytest.fixture
def tmp_bits(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    results = tmp_path / "results.csv"  # exists; never read (the --out check comes first)
    results.write_text("x\n1\n")
    return tmp_path, afile, results


# ---------------------------------------------------------------------------------------------
# the fuzz test
# ---------------------------------------------------------------------------------------------

BAD_INT_GE1 = ["0", "-5", "abc", "1.5", str(2**63), "1e3x"]
BAD = {
    "--seed": ["-1", str(2**64), str(2**64 + 12345), "abc", "1.5", str(-2**70)],
    "-n": BAD_INT_GE1,
    "--trial": ["-1", str(10**20), "abc", "2.5"],
    "--limit": ["0", "-3", "x"],
    "--level": ["0", "1", "1.5", "abc", "nan", "-0.3"],
    "--target-rel-error": ["0", "-1", "nan", "inf", "abc"],
    "--until-upper-bound": ["0", "1", "2", "-0.1", "nan", "abc"],
    "--max-trials": ["0", "-1", "abc", "1.5"],
    "--batch-trials": ["0", "-2", "abc"],
    "-b": ["bogus", "gpu", "NUMPY"],
    "--stop-outcome": ["bogus", "Livelock"],
    "--outcome": ["bogus", "LIVELOCK"],
    "--metric": ["bogus"],
    "page.mapcount": ["0", "-1", "abc", "100000000"],
    "MCEXPLORE_THREADS": ["abc", "0", "-2", "1.5"],
    "MCEXPLORE_SIMD": ["bogus", "AVX2", "sse9"],
}
# command -> the bad options it is fuzzed with
COMMANDS = {
    "run": ["--seed", "-n", "--level", "--target-rel-error", "--until-upper-bound", "--max-trials",
            "--batch-trials", "-b", "--stop-outcome", "page.mapcount", "--out", "no-rule",
            "two-rules", "MCEXPLORE_THREADS", "MCEXPLORE_SIMD"],
    "compare": ["--seed", "-n", "--level", "-b", "--outcome", "page.mapcount"],
    "replay": ["--seed", "--trial", "--limit", "page.mapcount"],
    "exact": ["page.mapcount"],
    "sweep": ["-n", "-b", "--out"],
    "plot riskmap": ["--level", "--outcome", "--out"],
    "plot curve": ["--level", "--outcome", "--out"],
    "plot cdf": ["--metric", "--out"],
    "bench": ["--seed", "-n", "-b", "page.mapcount"],
    "info": ["unknown-option"],
}


def _base(cmd, tmp, results):
    return {
        "run": ["run", *TINY],
        "compare": ["compare", "-s", "ref", "-s", "drop", *TINY],
        "replay": ["replay", "--trial", "0", "-s", "ref", *SET],
        "exact": ["exact", "-s", "ref", *SET],
        "sweep": ["sweep", SWEEP, "--out", tmp / "sweep-out", "-b", "numpy", "-n", "5"],
        "plot riskmap": ["plot", "riskmap", results, "--x", "mapcount", "--y", "access_rate",
                         "--out", tmp / "r.png"],
        "plot curve": ["plot", "curve", results, "--x", "mapcount", "--out", tmp / "c.png"],
        "plot cdf": ["plot", "cdf", results, "--out", tmp / "d.png"],
        "bench": ["bench", "-b", "numpy", "-n", "5", *SET],
        "info": ["info"],
    }[cmd]


def _with(args, opt, value):
    """args with option ``opt`` set to ``value`` (replacing it if present)."""
    args = list(args)
    if opt in args:
        args[args.index(opt) + 1] = value
        return args
    return args + [opt, value]


def fuzz_cases(n=100, seed=1234):
    rnd = random.Random(seed)
    cases = []
    cmds = list(COMMANDS)
    while len(cases) < n:
        cmd = rnd.choice(cmds)
        opt = rnd.choice(COMMANDS[cmd])
        if opt.startswith("MCEXPLORE_") and not _native_ok():
            continue
        cases.append((cmd, opt, rnd.choice(BAD.get(opt, ["-"])), rnd.randrange(10**6)))
    return cases


def _build(cmd, opt, value, salt, tmp, afile, results):
    """(args, env, the text that must be echoed)."""
    args, env = _base(cmd, tmp, results), None
    if opt == "page.mapcount":
        args = args + ["--set", f"page.mapcount={value}"]
        if value == "100000000":
            args = args + ["--set", "page.active=2"]
        return args, env, value
    if opt == "--out":
        bad = str(afile / f"sub{salt}" / ("out.json" if cmd == "run" else "out.png"))
        if cmd == "sweep":
            bad = str(afile / f"dir{salt}")
        return _with(args, "--out", bad), env, bad
    if opt == "no-rule":
        return args + ["--stop-outcome", "hang"], env, "hang"
    if opt == "two-rules":
        return args + ["--target-rel-error", "0.5", "--until-upper-bound", "0.1"], env, "0.5"
    if opt == "unknown-option":
        bad = f"--bogus{salt}"
        return args + [bad], env, bad
    if opt.startswith("MCEXPLORE_"):
        return _with(args, "-b", "native"), {opt: value}, value
    if opt == "--batch-trials":
        args = args + ["--target-rel-error", "0.5"]
    return _with(args, opt, value), env, value


@pytest.mark.parametrize("cmd,opt,value,salt", fuzz_cases())
def test_fuzz_bad_options_exit_2_with_the_value_and_no_traceback(cmd, opt, value, salt, tmp_bits,
                                                                 fresh_engines):
    tmp, afile, results = tmp_bits
    args, env, bad = _build(cmd, opt, value, salt, tmp, afile, results)
    r = invoke(args, env=env)
    assert_usage_error(r, bad)
    assert not (tmp / "sweep-out").exists()  # nothing ran


def test_the_fuzz_covers_every_command_and_many_options():
    cases = fuzz_cases()
    assert {c for c, *_ in cases} == set(COMMANDS)
    assert len({(c, o) for c, o, *_ in cases}) >= 30


# ---------------------------------------------------------------------------------------------
# each case of the issue
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,bad,says", [
    (["--until-upper-bound", "2"], "2", "must be a finite number in (0, 1)"),
    (["--target-rel-error", "0"], "0", "must be a finite number > 0"),
    (["--target-rel-error", "0.5", "--batch-trials", "0"], "0", "--batch-trials"),
    (["--max-trials", "0"], "0", "--max-trials"),
    (["--seed", "-1"], "-1", "[0, 2**64)"),
    (["--seed", str(2**64)], str(2**64), "[0, 2**64)"),
    (["--stop-outcome", "hang"], "hang", "without an adaptive rule"),
    (["--target-rel-error", "0.5", "--until-upper-bound", "0.1"], "0.5", "two adaptive rules"),
    (["--level", "nan"], "nan", "[0.5, 0.9999]"),
])
def test_run_refuses_bad_adaptive_and_seed_options(args, bad, says):
    r = invoke(["run", *TINY, *args])
    assert_usage_error(r, bad)
    assert says in r.output


def test_a_seed_at_the_top_of_the_range_is_accepted_and_printed_as_given():
    r = invoke(["run", *TINY, "-s", "ref", "--seed", str(2**64 - 1), "--json"])
    assert r.exit_code == 0, r.output
    assert str(2**64 - 1) in r.output


def test_replay_refuses_a_trial_past_int64():
    r = invoke(["replay", "--trial", str(10**20), *SET])
    assert_usage_error(r, str(10**20))
    assert "[0, 2**63 - 2]" in r.output


def test_stop_rule_and_rule_from_options_name_the_field():
    with pytest.raises(ValueError, match=r"until_upper_bound: 2 is not valid: must be in \(0, 1\)"):
        StopRule(until_upper_bound=2)
    with pytest.raises(ValueError, match="target_rel_error: nan"):
        StopRule(target_rel_error=float("nan"))
    with pytest.raises(ValueError, match="two adaptive rules"):
        rule_from_options(target_rel_error=0.1, until_upper_bound=0.01)
    with pytest.raises(ValueError, match="--stop-outcome hang is not valid without an adaptive rule"):
        rule_from_options(stop_outcome="hang")
    assert rule_from_options(stop_outcome=None, batch_trials=None) is None
    assert rule_from_options(max_trials=10, stop_outcome="hang").outcome == "hang"


def test_run_out_into_a_file_as_folder_fails_before_the_run(tmp_bits, monkeypatch):
    tmp, afile, _ = tmp_bits
    from mcexplore import api

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("ran before checking --out")

    monkeypatch.setattr(api, "run", boom)
    bad = str(afile / "x.json")
    r = invoke(["run", *TINY, "--out", bad])
    assert_usage_error(r, bad)
    assert "is a file, not a folder" in r.output


def test_run_out_into_a_missing_folder_creates_it(tmp_path):
    out = tmp_path / "new" / "deeper" / "r.json"
    r = invoke(["run", *TINY, "-s", "ref", "--out", out])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["results"]["ref"]["trials"] == 5


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anywhere")
def test_run_out_into_a_read_only_folder_fails_before_the_run(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = invoke(["run", *TINY, "--out", ro / "r.json"])
        assert_usage_error(r, str(ro / "r.json"))
        assert "cannot write" in r.output
    finally:
        ro.chmod(0o755)


def test_run_prints_its_result_when_the_write_fails(tmp_path, monkeypatch):
    def fail(path, text):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mcx_io, "atomic_write_text", fail)
    out = tmp_path / "r.json"
    r = invoke(["run", *TINY, "-s", "ref", "--out", out])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "== ref: 5 trials" in r.output  # the result, printed before the error
    assert str(out) in r.output and "Permission denied" in r.output


def test_sweep_and_plot_out_checked_before_anything(tmp_bits):
    tmp, afile, results = tmp_bits
    r = invoke(["sweep", SWEEP, "--out", afile, "-b", "numpy", "-n", "5"])
    assert_usage_error(r, str(afile))
    r = invoke(["sweep", SWEEP, "--out", afile / "d", "-b", "numpy", "-n", "5"])
    assert_usage_error(r, str(afile / "d"))
    for cmd in (["riskmap", "--x", "a", "--y", "b"], ["curve", "--x", "a"], ["cdf"]):
        bad = afile / "p.png"
        r = invoke(["plot", cmd[0], results, *cmd[1:], "--out", bad])
        assert_usage_error(r, str(bad))


@pytest.mark.skipif(not _native_ok(), reason="no C++ compiler")
@pytest.mark.parametrize("var,value,says", [
    ("MCEXPLORE_SIMD", "bogus", "choose one of auto, off, scalar"),
    ("MCEXPLORE_SCHED", "tile", "choose one of walk, lanes"),
    ("MCEXPLORE_THREADS", "abc", "must be an integer >= 1"),
    ("MCEXPLORE_THREADS", "0", "must be an integer >= 1"),
    ("MCEXPLORE_THREADS", "-3", "must be an integer >= 1"),
])
def test_native_engine_settings_from_the_environment(var, value, says, fresh_engines):
    for cmd in (["run", *SET, "-n", "5", "-b", "native"], ["bench", *SET, "-n", "5", "-b", "native"],
                ["compare", "-s", "ref", "-s", "drop", *SET, "-n", "5", "-b", "native"]):
        r = invoke(cmd, env={var: value})
        assert_usage_error(r, value)
        assert var in r.output and says in r.output


@pytest.mark.skipif(not _native_ok(), reason="no C++ compiler")
def test_native_engine_settings_in_a_real_process():
    env = dict(os.environ, MCEXPLORE_THREADS="abc")
    p = subprocess.run([sys.executable, "-m", "mcexplore.cli", "run", *SET, "-n", "5", "-b", "native"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "MCEXPLORE_THREADS: 'abc' is not valid" in p.stderr


def test_native_engine_arguments_are_checked():
    from mcexplore.engines.native import EngineConfigError, NativeEngine

    with pytest.raises(EngineConfigError, match="nthreads: 0 is not valid"):
        NativeEngine(nthreads=0)
    with pytest.raises(ValueError, match="MCEXPLORE_SIMD / simd: 'avx9' is not valid"):
        NativeEngine(simd="avx9")
    with pytest.raises(EngineConfigError, match="MCEXPLORE_SCHED / sched: 'warp' is not valid: choose one of walk, lanes"):
        NativeEngine(sched="warp")


def test_gpu_scheduler_setting_is_checked(monkeypatch):
    """Checked where the engine is made, whether or not cupy is installed."""
    from mcexplore.engines.cupy_engine import CupyEngine
    from mcexplore.engines.native import EngineConfigError

    with pytest.raises(EngineConfigError, match="MCEXPLORE_GPU_SCHED / sched: 'warp' is not valid: choose one of trial, tile"):
        CupyEngine(sched="warp")
    monkeypatch.setenv("MCEXPLORE_GPU_SCHED", "lanes")
    with pytest.raises(EngineConfigError, match="MCEXPLORE_GPU_SCHED: 'lanes' is not valid"):
        CupyEngine()
    monkeypatch.setenv("MCEXPLORE_GPU_SCHED", "tile")
    assert CupyEngine().sched == "tile"


@pytest.mark.parametrize("sets,field,value", [
    (["page.mapcount=100000000"], "page.mapcount", "100000000"),
    (["page.mapcount=100000000", "page.active=2"], "page.mapcount", "100000000"),
    (["page.mapcount=3000000", "page.active=3000000"], "page.mapcount", "3000000"),
])
def test_huge_pages_are_refused_with_the_memory_figure(sets, field, value):
    with pytest.raises(ScenarioError, match=rf"{field}: {value} is not valid: .* per trial, .* GiB per batch"):
        load_scenario("thread-2018", sets)
    args = ["run", "-n", "5", "-b", "numpy"]
    for s in sets:
        args += ["--set", s]
    r = invoke(args)
    assert_usage_error(r, value)
    assert "per batch of 64 trials" in r.output


def test_large_but_sane_pages_still_load():
    sc = load_scenario("thread-2018", ["page.mapcount=100000", "page.active=1000"])
    assert sc.page.mapcount == 100000
