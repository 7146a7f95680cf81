"""Replay: one trial's timeline, event by event, in simulated time.

Where it sits: beside the engines, above the scenario layer. It runs the numpy engine's own
dispatch (``NumpyEngine.run_records``) on the single trial, same draws and same events, with an
observer (numpy_page's docstring: ``observer(kind, rows, who, t, details)``) that turns each
observation into a line of the timeline, so any trial found in a large run on any backend,
identified by (config, seed, trial), can be explained. The engines know nothing of this text: the
English of every observation kind is the table ``TEXT`` here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engines.numpy_engine import NumpyEngine
from .results import Records


def _check(d) -> str:
    if d["ok"]:
        return "refcount check passes"
    if d["holders"]:
        return f"refcount check FAILS: references held by tasks {d['holders']}"
    return "refcount check FAILS: a transient reference"


# What each observation kind says (a str.format template of its details, or a function of them).
TEXT = {
    # the migrator, at page level or on a hot page
    "lock_unmap": "attempt {attempt}: lock_page, try_to_unmap {ptes} PTE(s)",
    "unmap_pte": "unmap PTE {pte}: migration entry",
    "refcount_check": _check,
    "freeze": "page_ref_freeze until {until}",
    "copy": "copy page contents",
    "restore_pte": lambda d: f"restore PTE {d['pte']} (" + ("new page" if d["ok"] else "old page") + ")",
    "unlock": lambda d: "unlock_page" + (": page migrated" if d["ok"] else " (-EAGAIN)"),
    "trylock_fail": "trylock_page fails (a waiter holds the lock): -EAGAIN",
    "freed": "old page freed",
    "uaf": "USE-AFTER-FREE: a waiter touches the freed old page",
    # a task
    "access_fault": "access hits a migration entry (wait starts)",
    "no_fault": "fault handler: PTE already restored, returns (no fault)",
    "fault": "fault: holds the PTL on a migration entry",
    "get": "get_page_unless_zero: holds a page reference",
    "get_frozen": "get_page_unless_zero fails (count frozen): will refault",
    "flag_seen": "sees the migration flag: drops the PTL and spins",
    "ptl_put": "page already unlocked: put_page",
    "wake_put": "put_page: drops its reference",
    "drop_put": "put_page after enqueueing (put_and_wait)",
    "enqueue_page": "enqueues on the page's wait queue under the PTL (no reference)",
    "enqueue_pte": lambda d: "enqueues on the PTE wait queue " + (
        "under the PTL" if d["under_ptl"] else "(after dropping the PTL)"),
    "ptl_drop": "drops the PTL, holding no reference",
    "sleep_unlock": "sleeps until the migrator unlocks the page",
    "wake": "woken task runs",
    "return": "returns from the fault (wait ends)",
    "lock_take": "lock_page: takes the page lock (no reference)",
    "lock_sleep": "lock_page: another waiter holds it, sleeps",
    "lock_release": "unlock_page",
    "wake_lost": "wake-up lost: its PTE was restored before it enqueued",
    "hang": "HANG: its wake-up was lost and no restore of its PTE will come",
    # block level
    "call": "call {call}: isolate {pages} page(s), migrate_pages (pages {first}..{last})",
    "abandoned": "max_attempts used, abandoned",
    "cold_attempt": lambda d: f"attempt {d['attempt']} (no waiters): " + (
        "moved" if d["ok"] else "refcount check FAILS: a transient reference"),
}


def render(kind: str, details: dict) -> str:
    """The timeline's text of one observation (details: scalars); a page's events at block level
    start with "page N: "."""
    fmt = TEXT[kind]
    text = fmt(details) if callable(fmt) else fmt.format(**details)
    if details.get("page") is not None:
        text = f"page {details['page']}: " + text
    return text


def _item(v, j):
    if isinstance(v, np.ndarray) and v.ndim:
        v = v[j]
    elif isinstance(v, list):
        v = v[j]
    return v.item() if isinstance(v, np.generic) else v


class Observations:
    """An observer that keeps every observation, one per (row, actor, time), in the order the
    engine made them: ``items`` holds (row, time, who, kind, details)."""

    def __init__(self):
        self.items: list = []

    def __call__(self, kind, rows, who, t, details):
        for j, (r, w, tt) in enumerate(zip(rows.tolist(), who.tolist(), t.tolist())):
            self.items.append((r, tt, w, kind, {k: _item(v, j) for k, v in details.items()}))

    def events(self, row: int = 0) -> list:
        """Trial row ``row``'s timeline: (time, actor, text) in time order; events at one instant
        keep the order in which the engine made them (the migrator's stage before the tasks;
        docs/model.md, "Ties")."""
        ev = [(t, w, render(kind, d)) for r, t, w, kind, d in self.items if r == row]
        return sorted(ev, key=lambda e: e[0])


# The per-trial fields that are times (ns), printed with units on the outcome line.
TIME_FIELDS = ("t_migrated", "max_wait", "total_wait", "spin", "end_time")


@dataclass
class Replay:
    label: str
    seed: int
    trial: int
    events: list  # (time ns, actor: 0 migrator / i task i, text), in time order
    record: dict  # the trial's outcome fields
    # A tilted world's trial (mcexplore.tilt): its statistics by name, and its likelihood ratio
    # computed from them on the host (the weight of this trial in an importance-sampling estimate).
    stats: dict | None = None
    weight: float | None = None

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
        def val(k, v):  # the time fields (MODEL.md 1.5) in ns, with units; t_migrated -1: none
            if k in TIME_FIELDS:
                return "-" if v < 0 else fmt_time(v)
            return str(v)

        outcome = ", ".join(f"{k}={val(k, v)}" for k, v in self.record.items())
        lines.append(f"outcome: {outcome}")
        if self.stats is not None:
            counted = ", ".join(f"{k}={v}" for k, v in self.stats.items())
            lines.append(f"tilted world: {counted}; likelihood ratio (weight) {self.weight!r}")
        return "\n".join(lines)


def replay_compiled(compiled, trial: int, seed: int = 0, label: str | None = None) -> Replay:
    obs = Observations()
    rec: Records = NumpyEngine().run_records(compiled, seed, trial, trial + 1, observer=obs)
    record = {k: int(v[0]) for k, v in rec.columns.items()}
    stats = weight = None
    if compiled.tilt is not None:
        from .tilt import weights

        stats = dict(zip(compiled.tilt.names, rec.stats[0].tolist()))
        weight = float(weights(compiled.tilt, rec.stats)[0])
    return Replay(label or compiled.strategy_name, seed, trial, obs.events(0), record, stats, weight)


def replay(scenario, label: str, trial: int, seed: int = 0) -> Replay:
    return replay_compiled(scenario.compile(label), trial, seed, label)
