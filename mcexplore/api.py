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


def _progress(total: int, desc: str, enabled, leave: bool = False):
    """A live progress bar on stderr (trials done, rate, ETA) when ``enabled`` is True; None else.

    The library is quiet unless asked: only ``progress=True`` draws a bar (the CLI passes True when
    stderr is a terminal, or with --progress). The bar is drawn at once, not after a delay.
    """
    if not enabled:
        return None
    import sys

    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="trial", leave=leave, file=sys.stderr, delay=0,
                mininterval=0.2, dynamic_ncols=True)


# With a bar, trials run in batches sized to last about this long (a live bar and an honest ETA:
# an engine's default batch can hold a whole run); the batch size never changes a result.
_BAR_BATCH_S = 0.5
_BAR_FIRST_BATCH = 32


def _next_batch(cur: int, dt: float, cap: int) -> int:
    """The next batch under a bar: about _BAR_BATCH_S of work, growing at most 4x, at most ``cap``."""
    want = cur * 4 if dt <= 0 else int(cur * _BAR_BATCH_S / dt)
    return max(1, min(cap, cur * 4, want))


def _prepare(engine) -> None:
    """Let the engine do its one-time work (the native engine's first compile) before the clock and
    any bar start, so that a strategy's wall time, rate and ETA are its trials' own."""
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        prepare()


def run_compiled(compiled, *, trials: int, seed: int = 0, t0: int = 0, backend: str = "auto",
                 records: bool = False, batch: int | None = None, progress=None, desc: str = "",
                 leave: bool = False):
    """Run one compiled strategy on trials [t0, t0 + trials). Returns (engine name, StrategyRun).

    ``backend`` is a backend name or an Engine instance (the benchmark's one-thread native engine).
    ``progress=True`` draws a bar on stderr (``desc`` its label; ``leave`` keeps it when done);
    anything else draws nothing.
    """
    engine = get_engine(backend) if isinstance(backend, str) else backend
    fixed_batch = batch is not None
    cap = batch or engine.default_batch(compiled)
    agg = Aggregate()
    parts = []
    _prepare(engine)  # outside the timing, and before any bar
    bar = _progress(trials, desc or compiled.strategy_name, progress, leave)
    batch = cap if (bar is None or fixed_batch) else min(cap, _BAR_FIRST_BATCH)
    start = time.perf_counter()
    t = t0
    try:
        while t < t0 + trials:
            t1 = min(t0 + trials, t + batch)
            tb = time.perf_counter()
            if records:
                rec = engine.run_records(compiled, seed, t, t1)
                parts.append(rec)
                agg = agg.merge(Aggregate.from_records(rec))
            else:
                agg = agg.merge(engine.run_aggregate(compiled, seed, t, t1))
            if bar is not None:
                bar.update(t1 - t)
                if not fixed_batch:
                    batch = _next_batch(t1 - t, time.perf_counter() - tb, cap)
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
    strategy. ``progress=True``: one bar per strategy on stderr, kept when done (trials, rate,
    ETA); anything else: silent.
    """
    labels = list(labels) if labels else scenario.labels()
    compiled_by_label = {label: scenario.compile(label) for label in labels}
    result = None
    for i, (label, compiled) in enumerate(compiled_by_label.items(), 1):
        desc = f"{label} [{i}/{len(labels)}]" if len(labels) > 1 else label
        name, sr = run_compiled(compiled, trials=trials, seed=seed, t0=t0, backend=backend,
                                records=records, batch=batch, progress=progress, desc=desc,
                                leave=True)
        sr.label = label
        if result is None:
            result = RunResult(name, scenario.name, seed, trials, t0)
        result.runs[label] = sr
    return result
