"""The command line, through click's CliRunner: run, replay, info, bench, and bad input."""

import json
import subprocess
import sys

import numpy as np
from click.testing import CliRunner

from mcexplore.cli import main
from mcexplore.replay import replay
from mcexplore.scenario import load_scenario
from mcexplore import api

SMALL = ["--set", "page.mapcount=4", "--set", "page.active=3", "--set", "budget.max_attempts=30"]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_prints_every_outcome_with_intervals_and_the_backend():
    r = invoke("run", "thread-2018", "-n", "50", "-b", "numpy", "-s", "ref", "-s", "drop", *SMALL)
    assert r.exit_code == 0, r.output
    for word in ("migrated", "call_failed", "livelock", "censored", "uaf", "hang", "attempts",
                 "t_migrated", "max_wait", "backend: numpy", "== ref", "== drop"):
        assert word in r.output


def test_run_json_is_keyed_by_strategy_then_outcome_with_raw_counts(tmp_path):
    out = tmp_path / "r.json"
    r = invoke("run", "thread-2018", "-n", "40", "-b", "numpy", "-s", "ref", "-s", "lock_noref",
               "--json", "--out", str(out), *SMALL)
    assert r.exit_code == 0
    js = json.loads(r.output)
    assert js["backend"] == "numpy" and json.loads(out.read_text()) == js
    for label in ("ref", "lock_noref"):
        e = js["results"][label]
        assert e["trials"] == 40
        for o in ("migrated", "call_failed", "livelock", "censored", "uaf", "hang"):
            assert 0 <= e[o]["lo"] <= e[o]["p"] <= e[o]["hi"] <= 1
            assert e[o]["p"] == e[o]["count"] / 40
    # the same numbers as the library API (the CLI is a thin shell)
    sc = load_scenario("thread-2018", [a for a in SMALL if a != "--set"] + ["strategies=ref,lock_noref"])
    res = api.run(sc, trials=40, seed=0, backend="numpy", progress=False)
    assert js["results"]["ref"]["livelock"]["count"] == res["ref"].aggregate.counts["livelock"]
    assert js["results"]["lock_noref"]["uaf"]["count"] == res["lock_noref"].aggregate.counts["uaf"]


def test_zero_counts_get_a_one_sided_upper_bound():
    r = invoke("run", "thread-2018", "-n", "30", "-b", "numpy", "-s", "ptl_pin", "--json", *SMALL)
    e = json.loads(r.output)["results"]["ptl_pin"]["uaf"]
    assert e["count"] == 0 and e["one_sided"] and e["lo"] == 0 and 0 < e["hi"] < 0.2


def test_bad_input_names_field_value_and_what_is_valid():
    r = CliRunner().invoke(main, ["run", "thread-2018", "--set", "page.active=500", "-b", "numpy"])
    assert r.exit_code == 2
    assert "page.active" in r.output and "500" in r.output
    r = CliRunner().invoke(main, ["run", "thread-2018", "--set", "timing.pre_freeze=3 parsecs"])
    assert r.exit_code == 2 and "timing.pre_freeze" in r.output and "parsecs" in r.output
    r = CliRunner().invoke(main, ["run", "thread-2018", "-s", "nosuch"])
    assert r.exit_code == 2 and "nosuch" in r.output and "ref" in r.output
    r = CliRunner().invoke(main, ["run", "no/such/file.toml"])
    assert r.exit_code == 2 and "no/such/file.toml" in r.output
    r = CliRunner().invoke(main, ["run", "thread-2018", "--backend", "gpu"])
    assert r.exit_code == 2 and "gpu" in r.output


def test_replay_explains_a_failing_trial_found_by_a_run():
    sc = load_scenario("thread-2018", ["page.mapcount=4", "page.active=3", "budget.max_attempts=30",
                                        "strategies=pte_wait_norecheck"])
    res = api.run(sc, trials=200, seed=3, backend="numpy", records=True, progress=False)
    run = res["pte_wait_norecheck"]
    hung = run.aggregate.examples["hang"]
    assert hung, "this scenario loses wake-ups"
    t = hung[0]
    rp = replay(sc, "pte_wait_norecheck", t, seed=3)
    # the replay runs the engine's own code: same outcome as in the batch
    assert rp.record == {k: int(v[t]) for k, v in run.records.columns.items()}
    text = rp.format()
    assert "HANG" in text and "wake-up lost" in text and "unlock_page: page migrated" in text
    r = invoke("replay", "thread-2018", "--trial", str(t), "--seed", "3", "-s", "pte_wait_norecheck",
               "--set", "page.mapcount=4", "--set", "page.active=3", "--set", "budget.max_attempts=30")
    assert r.exit_code == 0 and "HANG" in r.output


def test_replay_timeline_is_in_time_order_and_names_the_actors():
    sc = load_scenario("thread-2018", ["page.mapcount=3", "page.active=2", "strategies=ref"])
    rp = replay(sc, "ref", 0, seed=0)
    ts = [t for t, _, _ in rp.events]
    assert ts == sorted(ts)
    kinds = {text.split(":")[0] for _, _, text in rp.events}
    assert any("refcount check" in k for k in kinds)
    assert {who for _, who, _ in rp.events} >= {0, 1}


def test_info_lists_backends_and_why_not():
    r = invoke("info")
    assert r.exit_code == 0
    assert "numpy" in r.output and "native" in r.output and "cupy" in r.output
    assert "auto picks:" in r.output


def test_bench_prints_throughput():
    r = invoke("bench", "thread-2018", "-b", "numpy", "-n", "20", "-s", "ptl_pin", *SMALL)
    assert r.exit_code == 0, r.output
    assert "trials/s" in r.output and "attempts/s" in r.output


def test_bench_compares_one_native_thread_with_numpy_on_the_same_trials():
    from mcexplore.bench import run_bench
    from mcexplore.scenario import load_scenario

    sc = load_scenario("thread-2018", ["page.mapcount=4", "page.active=3", "budget.max_attempts=30",
                                       'strategies=["ptl_pin", "drop"]'])
    lines = []
    rows = run_bench(sc, backends=["numpy", "native"], echo=lines.append, numpy_budget_s=0.5,
                     min_time_s=0.05)
    by = {(r["backend"], r["threads"], r["strategy"]): r for r in rows}
    for label in sc.labels():
        np_row, one = by[("numpy", 1, label)], by[("native", 1, label)]
        assert one["trials"] == np_row["trials"] and one["per_core_speedup"] > 0
        assert one["simd"] in ("off", "scalar", "sse2", "avx2", "avx512")
    assert any(line.startswith("per-core speed-up") for line in lines)


def test_every_command_has_help_with_an_example():
    for name, cmd in main.commands.items():
        r = invoke(name, "--help")
        assert r.exit_code == 0
        assert "Example" in r.output or "mcexplore " + name in r.output, name


def test_exact_command_prints_exact_values_and_says_what_is_not_exact():
    args = ["exact", "thread-2018", "--json", "--set", "page.mapcount=3", "--set", "page.active=2",
            "--set", "timing.fault_entry=1us", "--set", "timing.ptl_hold=0.2us",
            "--set", "timing.drop_hold=0.2us", "--set", "transient.rate=0/s",
            "--set", 'timing.wake_latency={dist="exp", mean="30us"}', "-s", "ref", "-s", "lock_noref"]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    js = json.loads(r.output)
    first = js["ref"]["first_attempt_success"]
    assert first["status"] == "exact" and abs(first["value"] - np.exp(-1.6)) < 1e-12  # e^-(1.3 + 0.3)
    assert js["ref"]["call_failed"]["status"] == "exact"
    assert js["lock_noref"]["call_failed"]["status"] == "refused"
    assert "lock_noref" in js["lock_noref"]["call_failed"]["why"]
    r = invoke("exact", "thread-2018", "-s", "ref")  # the shipped timings are not exactly solvable
    assert r.exit_code == 0 and "refused: ref: attempt 1 needs constant fault_entry" in r.output


def test_cupy_backend_without_a_gpu_fails_clearly():
    from mcexplore.engines.cupy_engine import CupyEngine

    ok, why = CupyEngine.availability()
    if ok:
        import pytest
        pytest.skip("a GPU is usable here")
    r = CliRunner().invoke(main, ["run", "thread-2018", "-n", "5", "-b", "cupy", "-s", "ref"])
    assert r.exit_code == 2
    assert "cupy" in r.output and "not usable" in r.output


def test_block_level_replay_shows_calls_pages_and_the_hot_pages_tasks():
    overrides = ["level=block", "budget.max_attempts=25", "strategies=ref",
                 "block.batch_pages=4", "block.pages=9",
                 'block.classes=[{count=4, kind="file", mapcount=1}, '
                 '{count=1, kind="file", mapcount=4, active=3, access_rate="1/us"}, '
                 '{count=4, kind="anon", mapcount=1}]']
    sc = load_scenario("thread-2018-block", overrides)
    res = api.run(sc, trials=30, seed=1, backend="numpy", records=True, progress=False)["ref"]
    t = 7
    rp = replay(sc, "ref", t, seed=1)
    assert rp.record == {k: int(v[t]) for k, v in res.records.columns.items()}
    text = rp.format()
    assert "call 1: isolate 4 page(s)" in text and "page 4: refcount check" in text
    assert "page 0: attempt 1 (no waiters)" in text and "task 1" in text


def test_adaptive_run_reports_its_stopping_decision():
    r = invoke("run", "thread-2018", "-b", "numpy", "-s", "pte_wait_norecheck", "--stop-outcome", "hang",
               "--target-rel-error", "0.3", "--batch-trials", "256", *SMALL)
    assert r.exit_code == 0, r.output
    assert "pte_wait_norecheck:" in r.output and "stopped by" in r.output and "P(hang)" in r.output
    r = invoke("run", "thread-2018", "-b", "numpy", "-s", "ptl_pin", "--stop-outcome", "hang",
               "--until-upper-bound", "0.02", "--batch-trials", "256", *SMALL)
    assert r.exit_code == 0 and "below 0.02" in r.output


def test_compare_takes_repeatable_strategy_like_every_command_and_the_comma_alias():
    args = ["compare", "thread-2018", "-n", "30", "-b", "numpy", "--json", "--outcome", "censored", *SMALL]
    a = invoke(*args, "-s", "ref", "-s", "drop")
    b = invoke(*args, "--strategies", "ref,drop")
    c = invoke(*args, "-s", "ref,drop")
    assert a.exit_code == 0, a.output
    assert json.loads(a.output) == json.loads(b.output) == json.loads(c.output)
    assert json.loads(a.output)["baseline"] == "ref"
    r = CliRunner().invoke(main, ["compare", "thread-2018", "-s", "ref"])
    assert r.exit_code == 2 and "two labels" in r.output
    r = CliRunner().invoke(main, ["compare", "thread-2018", "-s", "ref", "-s", "nosuch", "-n", "5"])
    assert r.exit_code == 2 and "nosuch" in r.output


def test_backend_and_strategy_choices_come_from_the_registries():
    from mcexplore import strategies
    from mcexplore.engines.base import BACKEND_CHOICES

    for cmd in ("run", "compare", "sweep"):
        out = invoke(cmd, "--help").output
        assert "|".join(BACKEND_CHOICES) in out.replace("\n", "").replace(" ", ""), cmd
    out = " ".join(invoke("run", "--help").output.split())
    assert all(name in out for name in strategies.names())


def test_a_broken_command_module_fails_loudly():
    """An ImportError in a command module is not swallowed (no command silently disappears)."""
    code = ("import sys; sys.modules['mcexplore.cli_analysis'] = None\n"
            "try:\n    import mcexplore.cli\nexcept ImportError:\n    print('raised')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "raised"


def test_the_cli_imports_no_heavy_library_until_a_command_needs_it():
    """Start-up (issue #9): --help loads neither pandas, scipy, matplotlib, seaborn, statsmodels,
    pyarrow nor tqdm; nor does importing mcexplore.plots, .stats, .compare, .adaptive or .results.
    (What this costs in seconds: scripts/bench-startup.py; a test times nothing.)"""
    heavy = ("pandas", "scipy", "matplotlib", "seaborn", "statsmodels", "pyarrow", "tqdm")
    code = ("import sys, runpy\n"
            "import mcexplore.cli, mcexplore.plots, mcexplore.stats, mcexplore.compare, mcexplore.adaptive, "
            "mcexplore.results, mcexplore.bench\n"
            "sys.argv = ['mcexplore', '--help']\n"
            "try:\n    mcexplore.cli.main()\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
