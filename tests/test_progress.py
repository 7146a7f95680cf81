"""Progress and notices: a live bar per strategy when asked, silence otherwise, and the native
engine's first-compile notice exactly when a build happens (issue #12, "Silent long work")."""

import logging

from click.testing import CliRunner

from mcexplore import api
from mcexplore.cli import _install_notices, main
from mcexplore.cli_analysis import sweep_cmd
from mcexplore.engines import kernel_source, native
from mcexplore.scenario import load_scenario

SMALL = ["--set", "page.mapcount=4", "--set", "page.active=3", "--set", "budget.max_attempts=30"]
OVERRIDES = ["page.mapcount=4", "page.active=3", "budget.max_attempts=30"]


def _scenario(labels=("ref", "drop")):
    return load_scenario("thread-2018", OVERRIDES).with_strategies(list(labels))


def _invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# -- the library ------------------------------------------------------------------------------

def test_bar_when_asked_shows_each_strategy_with_its_count(capsys):
    api.run(_scenario(), trials=40, seed=0, backend="numpy", progress=True)
    err = capsys.readouterr().err
    assert "ref [1/2]" in err and "drop [2/2]" in err
    assert "40/40" in err and "trial/s" in err  # trials done, rate


def test_library_is_quiet_unless_asked(capsys):
    for progress in (None, False):
        api.run(_scenario(), trials=20, seed=0, backend="numpy", progress=progress)
    assert capsys.readouterr().err == ""


def test_bar_batches_never_change_a_result(capsys):
    quiet = api.run(_scenario(), trials=70, seed=5, backend="numpy", progress=False)
    shown = api.run(_scenario(), trials=70, seed=5, backend="numpy", progress=True)
    capsys.readouterr()
    for label in ("ref", "drop"):
        assert quiet[label].aggregate.counts == shown[label].aggregate.counts
        assert quiet[label].aggregate.sums == shown[label].aggregate.sums


def test_bar_batches_aim_at_half_a_second_and_grow_at_most_4x():
    assert api._next_batch(32, 0.0, 10_000) == 128
    assert api._next_batch(32, 0.01, 10_000) == 128      # fast: x4 at most
    assert api._next_batch(100, 1.0, 10_000) == 50       # slow: about 0.5 s
    assert api._next_batch(1000, 0.001, 2048) == 2048    # never past the engine's batch
    assert api._next_batch(1, 100.0, 2048) == 1


# -- the CLI ----------------------------------------------------------------------------------

def test_run_progress_flag_draws_the_bar_on_stderr_only():
    r = _invoke("run", "-n", "30", "-b", "numpy", "-s", "ref", "-s", "drop", *SMALL, "--progress")
    assert r.exit_code == 0
    assert "ref [1/2]" in r.stderr and "drop [2/2]" in r.stderr and "30/30" in r.stderr
    assert "trial/s" not in r.stdout


def test_run_and_compare_are_silent_piped_or_with_no_progress():
    # CliRunner's stderr is not a terminal: no bar by default, none with --no-progress.
    for extra in ([], ["--no-progress"]):
        r = _invoke("run", "-n", "20", "-b", "numpy", "-s", "ref", "-s", "drop", *SMALL, *extra)
        assert r.exit_code == 0 and r.stderr == "", r.stderr
        r = _invoke("compare", "-n", "20", "-b", "numpy", "-s", "ref", "-s", "drop", *SMALL, *extra)
        assert r.exit_code == 0 and r.stderr == "", r.stderr


def test_compare_progress_flag_draws_the_bar():
    r = _invoke("compare", "-n", "25", "-b", "numpy", "-s", "ref", "-s", "drop", *SMALL, "--progress")
    assert r.exit_code == 0
    assert "ref [1/2]" in r.stderr and "drop [2/2]" in r.stderr and "25/25" in r.stderr


def test_long_commands_have_the_progress_switch():
    for cmd in ("run", "compare", "sweep"):
        out = _invoke(cmd, "--help").output
        assert "--progress / --no-progress" in out, cmd


def test_sweep_is_silent_when_piped(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("""
base = "thread-2018"
trials = 10
seed = 1
strategies = ["drop"]
overrides = ["budget.max_attempts=20", "page.active=2", "page.mapcount=2"]
[[axes]]
path = "page.access_rate"
values = ["0.1/us", "1/us"]
""")
    r = CliRunner().invoke(sweep_cmd, [str(f), "--out", str(tmp_path / "o"), "-b", "numpy", "--csv"])
    assert r.exit_code == 0, r.output
    assert r.stderr == ""
    r = CliRunner().invoke(sweep_cmd, [str(f), "--out", str(tmp_path / "p"), "-b", "numpy", "--csv",
                                       "--progress"])
    assert r.exit_code == 0 and "2/2" in r.stderr


# -- the compile notice -----------------------------------------------------------------------

def test_compile_notice_exactly_when_a_build_happens(tmp_path, monkeypatch, caplog, capsys):
    monkeypatch.setenv("MCEXPLORE_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "_loaded", {})
    _install_notices()  # what `mcexplore` does: the notice goes to stderr
    src = kernel_source.source_files()
    overrides = {"philox.h": src["philox.h"] + "\n// tests/test_progress.py: a fresh build\n"}
    caplog.set_level(logging.INFO, logger="mcexplore")

    native.build(overrides=overrides)
    events = [getattr(r, "mcx_compile", None) for r in caplog.records]
    assert events == ["start", "done"]
    assert caplog.records[0].getMessage() == native.COMPILE_NOTICE
    assert caplog.records[1].mcx_seconds > 0
    err = capsys.readouterr().err
    assert "compiling the native engine (first use, cached afterwards)..." in err
    assert "compiled the native engine in " in err

    # Cached: in this process, and on disk for a new one.
    caplog.clear()
    native.build(overrides=overrides)
    monkeypatch.setattr(native, "_loaded", {})
    native.build(overrides=overrides)
    assert [r for r in caplog.records if hasattr(r, "mcx_compile")] == []
    assert capsys.readouterr().err == ""
