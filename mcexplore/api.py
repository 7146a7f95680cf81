"""The library API that the CLI, sweeps and notebooks call: run a scenario, get aggregates.

Where it sits: above the engines (through mcexplore.engines.base) and the scenario layer; below
statistics presentation, sweeps, plots and the CLI. Trials are split into batches; since every draw
is a pure function of (seed, trial, ...), the batch size never changes a result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .engines.base import get_engine
from .results import Aggregate, Records


@dataclass
class StrategyRun:
    label: str
    aggregate: Aggregate
    records: Records | None = None
    wall_s: float = 0.0


@dataclass
class RunResult:
    backend: str
    scenario_name: str
    seed: int
    trials: int
    t0: int = 0
    runs: dict = field(default_factory=dict)  # label -> StrategyRun

    def __getitem__(self, label: str) -> StrategyRun:
        return self.runs[label]

    @property
    def labels(self) -> list[str]:
        return list(self.runs)


def _progress(total: int, desc: str, enabled):
    """A progress bar unless ``enabled`` is False; it appears only once a run has lasted 2 s."""
    if enabled is False:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="trial", delay=2.0, leave=False)


def run_compiled(compiled, *, trials: int, seed: int = 0, t0: int = 0, backend: str = "auto",
                 records: bool = False, batch: int | None = None, progress=None, desc: str = ""):
    """Run one compiled strategy on trials [t0, t0 + trials). Returns (engine name, StrategyRun).

    ``backend`` is a backend name or an Engine instance (the benchmark's one-thread native engine).
    """
    engine = get_engine(backend) if isinstance(backend, str) else backend
    batch = batch or engine.default_batch(compiled)
    agg = Aggregate()
    parts = []
    bar = _progress(trials, desc or compiled.strategy_name, progress)
    start = time.perf_counter()
    t = t0
    try:
        while t < t0 + trials:
            t1 = min(t0 + trials, t + batch)
            if records:
                rec = engine.run_records(compiled, seed, t, t1)
                parts.append(rec)
                agg = agg.merge(Aggregate.from_records(rec))
            else:
                agg = agg.merge(engine.run_aggregate(compiled, seed, t, t1))
            if bar is not None:
                bar.update(t1 - t)
            t = t1
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - start
    rec = Records.concat(parts) if parts else None
    return engine.name, StrategyRun(compiled.strategy_name, agg, rec, wall)


def run(scenario, *, trials: int, seed: int = 0, labels=None, backend: str = "auto",
        records: bool = False, batch: int | None = None, progress=None, t0: int = 0) -> RunResult:
    """Run every strategy of ``scenario`` (or those in ``labels``) on common random numbers.

    Every strategy sees the same trials with the same seed, so their comparison is paired. Every
    label is compiled before anything runs (an unknown label fails at once), through the
    scenario's one compiled world (``Scenario.world``): the distributions are built once, not per
    strategy.
    """
    labels = list(labels) if labels else scenario.labels()
    compiled_by_label = {label: scenario.compile(label) for label in labels}
    result = None
    for label, compiled in compiled_by_label.items():
        name, sr = run_compiled(compiled, trials=trials, seed=seed, t0=t0, backend=backend,
                                records=records, batch=batch, progress=progress, desc=label)
        sr.label = label
        if result is None:
            result = RunResult(name, scenario.name, seed, trials, t0)
        result.runs[label] = sr
    return result
