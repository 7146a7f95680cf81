"""Replay: one trial's timeline, event by event, in simulated time.

Where it sits: beside the engines, above the scenario layer. It runs the numpy engine's own code
path on the single trial (same draws, same events) with tracing switched on, so any trial found in
a large run on any backend, identified by (config, seed, trial), can be explained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engines.numpy_block import simulate_block
from .engines.numpy_engine import simulate_page
from .results import Records


@dataclass
class Replay:
    label: str
    seed: int
    trial: int
    events: list  # (time ns, actor: 0 migrator / i task i, text), in time order
    record: dict  # the trial's outcome fields

    def format(self, fmt_time=None, limit: int | None = None) -> str:
        from .units import format_ns

        fmt_time = fmt_time or format_ns
        lines = [f"replay of trial {self.trial} (seed {self.seed}, strategy {self.label})"]
        ev = self.events if limit is None else self.events[:limit]
        for t, who, text in ev:
            actor = "migrator" if who == 0 else f"task {who}"
            lines.append(f"{fmt_time(t):>14}  {actor:<9} {text}")
        if limit is not None and len(self.events) > limit:
            lines.append(f"... {len(self.events) - limit} more events (use --limit to see more)")
        outcome = ", ".join(f"{k}={v}" for k, v in self.record.items())
        lines.append(f"outcome: {outcome}")
        return "\n".join(lines)


def replay_compiled(compiled, trial: int, seed: int = 0, label: str | None = None) -> Replay:
    trace: list = []
    trials = np.array([trial], dtype=np.int64)
    if compiled.block is not None:
        rec: Records = simulate_block(compiled, seed, trials, trace=trace)
    else:
        rec = simulate_page(compiled, seed, trials, trace=trace)
    # Stable sort: events at one instant keep the order in which the engine processed them
    # (the migrator's stage before the tasks; docs/model.md, "Ties").
    events = sorted(trace, key=lambda e: e[0])
    record = {k: int(v[0]) for k, v in rec.columns.items()}
    return Replay(label or compiled.strategy_name, seed, trial, events, record)


def replay(scenario, label: str, trial: int, seed: int = 0) -> Replay:
    return replay_compiled(scenario.compile(label), trial, seed, label)
