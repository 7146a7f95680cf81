"""Sweeps on Dask (mcexplore.cluster, mcexplore.feeder, mcexplore.chunks): the same table bit for bit
for any cluster, worker count or chunk size; a worker killed mid-sweep costs only its chunk;
adaptive cells; resume that explains itself. LocalClusters of processes (no GPU needed; the
dask-cuda path is checked for its clean refusal)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

distributed = pytest.importorskip("distributed")

import mcexplore.api as api  # noqa: E402
import mcexplore.sweep as sweep_mod  # noqa: E402
from mcexplore.adaptive import StopRule, beta_binomial_cs  # noqa: E402
from mcexplore.chunks import MergeError, gaps, merge, disjoint  # noqa: E402
from mcexplore.cli import main  # noqa: E402
from mcexplore.cluster import ClusterError, DaskExecutor, InProcess, parse_cluster  # noqa: E402
from mcexplore.results import HIST_METRICS, OUTCOMES  # noqa: E402
from mcexplore.sweep import (SweepError, SweepInterrupted, SweepSpec, base_scenario, cell_scenario,  # noqa: E402
                             load_results, run_sweep)

SMALL = {"budget": {"max_attempts": 20, "timeout": "10ms"}, "page": {"active": 2, "mapcount": 3}}
AXES = [
    {"path": ["page.mapcount", "page.active"], "name": "mapcount", "values": [1, 3]},
    {"path": "page.access_rate", "values": ["0.1/us", "2/us"]},
]


def _spec(trials=60, strategies=("ref", "drop"), axes=AXES, **kw):
    return {"base": "thread-2018", "trials": trials, "seed": 7, "strategies": list(strategies),
            "set": SMALL, "axes": axes, **kw}


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def local2():
    """One LocalCluster of two worker processes for the module (starting one takes seconds)."""
    ex = DaskExecutor("local:2", threads_per_engine=1)
    yield ex
    ex.close()


# --------------------------------------------------------------------------- units

def test_cluster_specs_parse_and_bad_ones_are_named():
    assert parse_cluster(None) == ("inprocess", None)
    assert parse_cluster("local:3") == ("local", 3)
    assert parse_cluster("local")[0] == "local" and parse_cluster("local")[1] >= 1
    assert parse_cluster("cuda") == ("cuda", None)
    assert parse_cluster("tcp://10.0.0.1:8786") == ("address", "tcp://10.0.0.1:8786")
    for bad in ("local:0", "local:x", "gpu", "10.0.0.1:8786"):
        with pytest.raises(ClusterError, match=f"'{bad}' is not valid"):
            parse_cluster(bad)


def test_ranges_gaps_and_exact_merge():
    assert gaps([(10, 20), (30, 40)], 0, 50) == [(0, 10), (20, 30), (40, 50)]
    assert gaps([(0, 50)], 0, 50) == []
    assert disjoint([(0, 10), (5, 15), (10, 20)]) == [(0, 10), (10, 20)]
    from mcexplore.chunks import ChunkResult
    from mcexplore.results import Aggregate

    parts = [ChunkResult("k", a, b, "numpy", Aggregate(trials=b - a), 0.0) for a, b in ((0, 5), (5, 9))]
    assert merge(parts[::-1], 0, 9).trials == 9  # any arrival order
    with pytest.raises(MergeError, match="gap"):
        merge(parts[1:], 0, 9)
    with pytest.raises(MergeError, match="overlap"):
        merge(parts + [ChunkResult("k", 4, 9, "numpy", Aggregate(trials=5), 0.0)], 0, 9)


# --------------------------------------------------------------------------- the same table

def test_table_is_identical_for_any_cluster_workers_and_chunk_size(tmp_path, local2):
    ref = run_sweep(_spec(), tmp_path / "inproc", backend="numpy")
    assert ref.attrs["sweep"]["executor"] == "in-process"
    runs = {
        "local2": dict(executor=local2),
        "local2-small-chunks": dict(executor=local2, chunk_s=0.02),  # a few trials a chunk
        "tcp": dict(cluster=local2.client.scheduler.address),        # an existing scheduler
        "inproc-batch": dict(batch=7),
    }
    runs_summary = {}
    for name, kw in runs.items():
        t = run_sweep(_spec(), tmp_path / name, backend="numpy", **kw)
        runs_summary[name] = t.attrs["sweep"]
        pd.testing.assert_frame_equal(ref, t)
        assert _digest(tmp_path / name / "results.parquet") == _digest(tmp_path / "inproc" / "results.parquet"), name
    small = load_results(tmp_path / "local2-small-chunks")
    assert len(small) == 8
    assert runs_summary["local2-small-chunks"]["chunks"] > 2 * len(ref)  # rows really were cut up
    # the whole row on one engine gives the same numbers (not only the sweep paths among themselves)
    spec = SweepSpec.from_dict(_spec())
    r = ref[(ref.mapcount == 3) & (ref.access_rate_label == "2/us") & (ref.strategy == "ref")].iloc[0]
    s = cell_scenario(spec, base_scenario(spec), {"mapcount": 3, "access_rate": "2/us"})
    direct = api.run(s, trials=60, seed=int(r.seed), labels=["ref"], backend="numpy")["ref"].aggregate
    assert {o: int(r[o]) for o in OUTCOMES} == direct.counts
    assert ref[ref.strategy == "ref"].censored.sum() > 0  # something happens in this small world


def test_native_workers_match_numpy_in_process(tmp_path, local2):
    pytest.importorskip("mcexplore.engines.native")
    from mcexplore.engines.base import availability

    if not availability("native")[0]:
        pytest.skip("native engine not available (no C++ compiler)")
    a = run_sweep(_spec(), tmp_path / "numpy", backend="numpy")
    b = run_sweep(_spec(), tmp_path / "native", backend="native", executor=local2, chunk_s=0.01)
    cols = [c for c in a.columns if c != "backend"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    assert set(b.backend) == {"native"}


def test_killed_worker_costs_only_its_chunk(tmp_path, local2):
    """Kill a worker's process while it runs a chunk: the chunk runs again elsewhere, nothing is
    lost or counted twice (the table equals an uninterrupted run's)."""
    spec = _spec(trials=300, strategies=("ref",))
    ref = run_sweep(spec, tmp_path / "ref", backend="numpy")
    ex = local2
    killed = {}
    arrived = []  # (chunk name, pid)

    def on_chunk(r):
        arrived.append((f"mcx-{r.key}-{r.t0}-{r.t1}", r.pid, r.finished))
        if len(arrived) == 2 and not killed:
            processing = ex.client.processing()
            pids = ex.worker_pids()
            addr = max(processing, key=lambda a: len(processing[a]))
            killed.update(pid=pids[addr], keys=[k.rsplit("+", 1)[0] for k in processing[addr]],
                          done={n for n, *_ in arrived})
            os.kill(pids[addr], signal.SIGKILL)
            killed["at"] = time.time()

    t = run_sweep(spec, tmp_path / "killed", backend="numpy", executor=ex, chunk_s=0.2, on_chunk=on_chunk)
    ex.client.wait_for_workers(2, timeout=30)  # the nanny restarts it (for the next tests)
    pids_after = set(ex.worker_pids().values())
    assert killed and killed["keys"], "no worker was busy when the test killed one"
    assert killed["pid"] not in pids_after  # it is dead (the nanny started a new process)
    pd.testing.assert_frame_equal(ref, t)
    by_name = {}
    for name, pid, finished in arrived:
        assert name not in by_name, f"chunk {name} was counted twice"
        by_name[name] = (pid, finished)
    lost = [k for k in killed["keys"] if k not in killed["done"]]
    assert lost, "the killed worker had no chunk in flight"
    # A chunk the killed worker held comes from it only if it was done before the kill (its
    # result on the way); the others ran again on another process, and at least one did.
    for k in lost:
        pid, finished = by_name[k]
        assert pid != killed["pid"] or finished < killed["at"]
    assert any(by_name[k][0] != killed["pid"] for k in lost)


def test_a_worker_of_another_model_refuses_its_chunk(local2):
    from mcexplore.chunks import Chunk, VersionMismatch, run_chunks

    sc = base_scenario(SweepSpec.from_dict(_spec()))
    stale = Chunk("k", sc, "ref", 1, 0, 2, "numpy", model_version=sweep_mod.MODEL_VERSION + 1)
    with pytest.raises(VersionMismatch, match="install the same mcexplore on every worker"):
        run_chunks([stale])
    local2.submit("t", [stale])
    with pytest.raises(ClusterError, match=f"model version {sweep_mod.MODEL_VERSION + 1}"):
        local2.wait()


# --------------------------------------------------------------------------- adaptive cells

RULE = StopRule(until_upper_bound=0.05, outcome="call_failed", batch_trials=40, max_trials=400, level=0.95)


def test_adaptive_cells_stop_on_their_own_and_are_prefixes_of_a_fixed_run(tmp_path, local2):
    a = run_sweep(_spec(), tmp_path / "a", backend="numpy", rule=RULE)
    b = run_sweep(_spec(), tmp_path / "b", backend="numpy", rule=RULE, executor=local2, chunk_s=0.02)
    pd.testing.assert_frame_equal(a, b)
    assert a.trials.nunique() > 1  # easy cells stop early, hard ones get the trials
    assert set(a.stop_reason) <= {"upper_bound", "max_trials"} and (a.interval == "cs").all()
    spec = SweepSpec.from_dict(_spec())
    for _, r in a.iterrows():
        s = cell_scenario(spec, base_scenario(spec), {"mapcount": int(r.mapcount), "access_rate": r.access_rate_label})
        direct = api.run(s, trials=int(r.trials), seed=int(r.seed), labels=[r.strategy], backend="numpy")
        assert {o: int(r[o]) for o in OUTCOMES} == direct[r.strategy].aggregate.counts
        lo, hi = beta_binomial_cs(int(r.call_failed), int(r.trials), 0.95)
        if r.stop_reason == "upper_bound":  # the decision the row stopped on holds at its n
            assert (r.decision == "below" and r.cs_hi < 0.05) or (r.decision == "above" and r.cs_lo > 0.05)
        assert r.call_failed_lo == pytest.approx(lo) and r.call_failed_hi == pytest.approx(hi)
        assert r.trials % 40 == 0 or r.trials == 400


def test_adaptive_sweep_resumes_mid_row_from_saved_chunks(tmp_path, local2):
    ref = run_sweep(_spec(), tmp_path / "ref", backend="numpy", rule=RULE)
    n = []

    def stop(r):
        n.append(r)
        if len(n) == 12:
            raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted, match="rerun the same command"):
        run_sweep(_spec(), tmp_path / "x", backend="numpy", rule=RULE, executor=local2, chunk_s=0.02,
                  on_chunk=stop)
    assert list((tmp_path / "x" / "chunks").rglob("*.json"))  # finished chunks were kept
    t = run_sweep(_spec(), tmp_path / "x", backend="numpy", rule=RULE)
    assert t.attrs["sweep"]["chunks_resumed"] > 0
    pd.testing.assert_frame_equal(ref, t)
    assert not list((tmp_path / "x" / "chunks").rglob("*.json"))  # removed once their rows are saved


# --------------------------------------------------------------------------- resume explains itself

def test_resume_reports_reused_rows_older_model_and_stale_files(tmp_path, monkeypatch):
    out = tmp_path / "s"
    first = run_sweep(_spec(), out, backend="numpy")
    assert first.attrs["sweep"]["run"] == 8
    again = run_sweep(_spec(), out, backend="numpy")
    assert again.attrs["sweep"]["reused"] == 8 and again.attrs["sweep"]["run"] == 0
    (out / "cells" / ".abc.json.x1.tmp").write_text("half")  # left by a kill during a write
    (out / ".results.parquet.x2.tmp").write_text("half")
    monkeypatch.setattr(sweep_mod, "MODEL_VERSION", 999)  # a newer model: saved rows are stale
    newer = run_sweep(_spec(), out, backend="numpy")
    s = newer.attrs["sweep"]
    assert s["reused"] == 0 and s["run"] == 8 and s["recomputed_older_model"] == 8
    assert s["stale_tmp_removed"] == 2 and not list(out.rglob(".*.tmp"))
    assert (newer.model_version == 999).all()
    pd.testing.assert_frame_equal(first.drop(columns=["key", "model_version"]),
                                  newer.drop(columns=["key", "model_version"]))


def test_a_folder_is_written_by_one_sweep_at_a_time(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    lock = sweep_mod._lock(out)
    try:
        with pytest.raises(SweepError, match="being written by another sweep"):
            run_sweep(_spec(), out, backend="numpy")
    finally:
        lock.close()
    run_sweep(_spec(), out, backend="numpy")  # free again


def _write_sweep(path, **kw):
    from mcexplore.scenario.tomlwrite import _toml_value

    spec = _spec(**kw)
    spec["base"] = str(sweep_mod._shipped_dir().joinpath("thread-2018.toml"))
    path.write_text("".join(f"{k} = {_toml_value(v)}\n" for k, v in spec.items()))


@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")  # the module's cluster holds it
def test_cli_sweep_on_a_cluster_reports_what_it_did(tmp_path, monkeypatch):
    f = tmp_path / "sw.toml"
    _write_sweep(f)
    runner = CliRunner()
    r = runner.invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--backend", "numpy",
                             "--cluster", "local:2"])
    assert r.exit_code == 0, r.output
    assert "8 rows: 0 reused, 8 run" in r.output and "on local:2 (2 workers)" in r.output
    r = runner.invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--backend", "numpy"])
    assert r.exit_code == 0 and "8 reused, 0 run" in r.output
    monkeypatch.setattr(sweep_mod, "MODEL_VERSION", 999)
    r = runner.invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--backend", "numpy"])
    assert "8 recomputed: their saved rows came from an older model version" in r.output
    r = runner.invoke(main, ["sweep", str(f), "--out", str(tmp_path / "a"), "--backend", "numpy",
                             "--until-upper-bound", "0.05", "--stop-outcome", "call_failed", "--batch-trials", "40",
                             "--max-trials", "400"])
    assert r.exit_code == 0, r.output
    assert "adaptive (call_failed): trials per row min 40 / median" in r.output


@pytest.mark.parametrize("args,msg", [
    (["--cluster", "gpu"], "'gpu' is not valid: give local, local:N, cuda"),
    (["--cluster", "local:0"], "N in local:N must be an integer >= 1"),
    (["--chunk-s", "1"], "--chunk-s 1 is not valid without --cluster"),
    (["--target-rel-error", "0.1", "--until-upper-bound", "0.1"], "two adaptive rules"),
])
def test_cli_sweep_bad_cluster_options_exit_2(tmp_path, args, msg):
    f = tmp_path / "sw.toml"
    _write_sweep(f)
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output


def test_cli_cuda_cluster_refuses_cleanly_without_a_gpu(tmp_path):
    from mcexplore.engines.base import availability

    if availability("cupy")[0]:
        pytest.skip("a GPU is usable here: the cuda cluster is exercised by scripts/gpu-check.sh")
    f = tmp_path / "sw.toml"
    _write_sweep(f)
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--cluster", "cuda"])
    assert r.exit_code == 2 and "--cluster cuda" in r.output and "Traceback" not in r.output


def test_cli_unreachable_scheduler_exits_2(tmp_path):
    import dask

    f = tmp_path / "sw.toml"
    _write_sweep(f)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o"), "--backend", "numpy",
                                      "--cluster", "tcp://127.0.0.1:9"])
    assert r.exit_code == 2 and "no Dask scheduler answered at tcp://127.0.0.1:9" in r.output


def test_cli_level_is_the_files_unless_given(tmp_path):
    from mcexplore.tables import metadata

    f = tmp_path / "sw.toml"
    _write_sweep(f, level=0.99)
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "a"), "--backend", "numpy"])
    assert r.exit_code == 0, r.output
    assert metadata(tmp_path / "a" / "results.parquet")["provenance"]["level"] == 0.99
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "b"), "--backend", "numpy",
                                  "--level", "0.9"])
    assert metadata(tmp_path / "b" / "results.parquet")["provenance"]["level"] == 0.9


def test_cli_ctrl_c_says_how_to_resume(tmp_path, monkeypatch):
    f = tmp_path / "sw.toml"
    _write_sweep(f)

    def interrupted(*a, **k):
        raise SweepInterrupted(3, 8, tmp_path / "o")

    monkeypatch.setattr(sweep_mod, "run_sweep", interrupted)
    r = CliRunner().invoke(main, ["sweep", str(f), "--out", str(tmp_path / "o")])
    assert r.exit_code == 130
    assert "3 of 8 rows are saved" in r.output and "rerun the same command to resume" in r.output


def test_default_sweep_never_imports_dask(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from mcexplore.sweep import run_sweep
        run_sweep({_spec(trials=5)!r}, {str(tmp_path / 'o')!r}, backend="numpy")
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed", "xarray"))
        assert not bad, bad
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- self-describing results

def test_dataset_units_provenance_and_buckets(tmp_path):
    from mcexplore import tables
    from mcexplore.results import hist_edges

    t = run_sweep(_spec(level=0.99), tmp_path / "s", backend="numpy")
    root = tmp_path / "s" / "dataset"
    assert sorted(p.name for p in root.iterdir()) == ["strategy=drop", "strategy=ref"]
    d = tables.read_dataset(root)
    assert len(d) == len(t) and set(d.strategy.astype(str)) == {"ref", "drop"}
    import pyarrow.parquet as pq

    for path in (tmp_path / "s" / "results.parquet", next(root.rglob("*.parquet"))):
        schema = pq.read_schema(path)
        assert schema.field("access_rate").metadata[b"unit"] == b"1/s"
        assert schema.field("sum_total_wait").metadata[b"unit"] == b"ns"
        assert schema.field("livelock_hi").metadata[b"unit"] == b"probability"
        meta = tables.metadata(path)
        prov = meta["provenance"]
        assert prov["mcexplore_version"] and prov["model_version"] == sweep_mod.MODEL_VERSION
        assert prov["backend"] == ["numpy"] and prov["seed"] == 7 and prov["level"] == 0.99
        assert prov["scenario_hash"] == base_scenario(SweepSpec.from_dict(_spec())).config_hash()
        assert meta["units"]["mapcount"] == "1"
    edges = hist_edges()
    merged = d.merge(t, on="key", suffixes=("_ds", ""))
    for _, r in merged.iterrows():
        buckets = r["hist_attempts_ds"]
        assert sum(b["count"] for b in buckets) == r.trials  # every trial in one bucket
        h = sweep_mod.hist_from_json(r["hist_attempts"])
        for b in buckets:  # keyed by edges: the bucket holding lo has that count
            i = int(np.searchsorted(edges, b["lo"], side="right") - 1)
            assert h[i] == b["count"] and edges[i + 1] == b["hi"]
    # intervals at the sweep's level: the Wilson interval of each count
    from mcexplore.stats import proportion_ci

    r = t.iloc[3]
    ci = proportion_ci(int(r.censored), int(r.trials), 0.99)
    assert (r.censored_lo, r.censored_hi) == pytest.approx((ci.lo, ci.hi))
    assert r.censored_p == r.censored / r.trials


def test_xarray_helper(tmp_path):
    pytest.importorskip("xarray")
    from mcexplore.tables import to_xarray

    t = run_sweep(_spec(), tmp_path / "s", backend="numpy")
    ds = to_xarray(tmp_path / "s")
    assert dict(ds.sizes) == {"mapcount": 2, "access_rate": 2, "strategy": 2}
    assert ds["access_rate"].attrs["units"] == "1/s" and ds["livelock_p"].attrs["units"] == "probability"
    for _, r in t.iterrows():
        sel = ds.sel(mapcount=r.mapcount, access_rate=r.access_rate, strategy=r.strategy)
        assert int(sel.censored) == r.censored and float(sel.censored_hi) == r.censored_hi
    assert list(ds["access_rate_label"].values) == ["0.1/us", "2/us"]
    assert ds.attrs["mcexplore_version"] and json.loads(ds.attrs["backend"]) == ["numpy"]
