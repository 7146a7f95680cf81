"""mcexplore.bench: which runs it makes and what it reports (it measures; nothing here is timed)."""

from __future__ import annotations

from mcexplore import bench
from mcexplore.scenario import load_scenario

SMALL = ["page.mapcount=4", "page.active=3", "budget.max_attempts=30", 'strategies=["ptl_pin"]']


def test_every_backend_row_and_the_gpu_line(monkeypatch):
    """A stand-in for the GPU (the numpy engine under the name cupy) takes the cupy path."""
    from mcexplore.engines import base
    from mcexplore.engines.numpy_engine import NumpyEngine

    class FakeGpu(NumpyEngine):
        name = "cupy"

    real_get, real_avail = base.get_engine, base.availability
    monkeypatch.setattr(base, "get_engine", lambda n="auto": FakeGpu() if n == "cupy" else real_get(n))
    monkeypatch.setattr(base, "availability", lambda n: (True, "stand-in") if n == "cupy" else real_avail(n))
    monkeypatch.setattr(bench, "availability", base.availability)
    monkeypatch.setitem(bench.THROUGHPUT_TRIALS, "cupy", 64)
    lines = []
    rows = bench.run_bench(load_scenario("thread-2018", SMALL), echo=lines.append,
                           numpy_budget_s=0.2, min_time_s=0.01)
    got = {(r["backend"], r["threads"]) for r in rows}
    assert ("numpy", 1) in got and ("native", 1) in got and ("cupy", 0) in got
    assert any(line.startswith("cupy over numpy, ptl_pin") for line in lines)


def test_trials_fixes_every_count():
    rows = bench.run_bench(load_scenario("thread-2018", SMALL), backends=["numpy", "native"],
                           trials=40, echo=None, min_time_s=0.01)
    assert {r["trials"] for r in rows} == {40}


def test_an_unavailable_backend_is_reported_not_raised(monkeypatch):
    monkeypatch.setattr(bench, "availability", lambda n: (False, "no device here"))
    lines = []
    assert bench.run_bench(load_scenario("thread-2018", SMALL), backends=["cupy"],
                           echo=lines.append) == []
    assert lines == ["cupy: unavailable (no device here)"]
