"""Feeding rows of a sweep to an executor in chunks, fixed or adaptive, and saving each chunk.

Where it sits: below mcexplore.sweep (which plans the rows and builds the table) and above
mcexplore.cluster (where the chunks run) and mcexplore.chunks (the unit of work and its merge).
It knows rows only as (key, scenario, strategy, seed, trials or stop rule).

How chunks are cut (none of it changes a result, only how the work is spread):

- in this process, a row's trials go out whole (the engine uses every core itself);
- on a cluster, a row first runs a *probe* chunk to learn its cost per trial (the smallest seen
  on it so far), then the rest in chunks of about ``chunk_s`` seconds each; the probe is sized by
  the strategy's worst cost per trial on its other rows (a quarter of a task at that cost), so
  the cheap rows of a strategy go out whole, in one chunk, so one expensive row spreads over every
  worker and cheap rows do not pay a scheduler round trip per chunk: chunks are *bundled* into
  tasks of about ``chunk_s`` seconds. At most ``2 x workers`` tasks are out at once, so the
  chunks still to cut use the latest costs.
- an adaptive row (``StopRule``) runs batch after batch on the rule's data-independent schedule
  (trials [0, n1), [n1, n2), ...); each batch is cut like a fixed row's trials, and the next one
  is queued only once the batch is back and its confidence sequence says go on.

Each chunk result is saved atomically under ``chunk_dir/<key>/<t0>-<t1>.json`` as it arrives
(unless it is the whole row), so a killed sweep loses only the chunks in flight; the caller removes
a row's chunk folder once the row is saved.
"""

from __future__ import annotations

import json
import shutil
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .adaptive import StopRule, Stopper, outcome_count
from .chunks import Chunk, ChunkResult, disjoint, gaps, merge
from .io import atomic_write_bytes
from .results import Aggregate

PROBE_TRIALS = 8  # the first chunk of a row whose strategy's cost is not known yet
MAX_BUNDLE = 256  # chunks in one task at most


@dataclass
class RowJob:
    """One row (cell x strategy) to finish: trials [0, trials), or batches until ``rule`` stops."""

    key: str
    scenario: object
    label: str
    seed: int
    trials: int | None = None
    rule: StopRule | None = None
    backend: str = "auto"
    batch: int | None = None
    tag: object = None  # the caller's handle (the sweep's plan entry)
    results: list = field(default_factory=list)  # ChunkResults of the current target range
    queue: deque = field(default_factory=deque)  # (t0, t1) ranges not handed out yet
    out: int = 0  # chunks handed out, not back
    cost: float | None = None  # seconds per trial, measured on this row
    probing: bool = False
    end: int = 0  # the range being run is [0, end)
    done_agg: Aggregate = field(default_factory=Aggregate)  # merged trials [0, done_to)
    done_to: int = 0
    stopper: Stopper | None = None
    backends: set = field(default_factory=set)  # engines that ran its chunks
    wall_s: float = 0.0  # compute seconds, summed over its chunks


class ChunkStore:
    """Chunk results on disk: ``<dir>/<key>/<t0>-<t1>.json``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def load(self, key: str) -> list[ChunkResult]:
        d = self.root / key
        out: dict = {}  # (t0, t1) -> its result
        if d.is_dir():
            for f in d.glob("*.json"):
                try:
                    r = ChunkResult.from_dict(json.loads(f.read_text()))
                except (ValueError, KeyError, TypeError):
                    continue  # a damaged chunk file is run again
                if r.key == key and r.t1 > r.t0:
                    out.setdefault((r.t0, r.t1), r)
        return [out[rng] for rng in disjoint(list(out))]

    def save(self, r: ChunkResult) -> None:
        atomic_write_bytes(self.root / r.key / f"{r.t0}-{r.t1}.json", json.dumps(r.to_dict()).encode())

    def drop(self, key: str) -> None:
        shutil.rmtree(self.root / key, ignore_errors=True)


class Feeder:
    """Runs RowJobs on an executor; ``on_row(job, aggregate, backends)`` when a row is finished."""

    def __init__(self, executor, store: ChunkStore | None, *, chunk_s: float | None = None, on_row=None,
                 on_chunk=None):
        self.ex = executor
        self.store = store
        # In this process there is nothing to spread: whole ranges, no probes.
        self.chunk_s = None if executor.in_process else (chunk_s or 0.5)
        self.on_row = on_row
        self.on_chunk = on_chunk
        self.window = 1 if self.chunk_s is None else 2 * executor.workers
        self.label_cost: dict = {}  # strategy label -> the largest cost per trial of its rows
        self._row_costs: dict = {}  # strategy label -> {row key: its cost per trial}
        self.ready: deque = deque()
        self.tasks = 0
        self.chunks = 0

    # ---- starting a row (possibly from saved chunks)

    def add(self, job: RowJob, saved: list[ChunkResult] = ()) -> None:
        """Queue a row; ``saved`` are chunk results of an earlier run of it (from the store)."""
        saved = sorted(saved, key=lambda r: r.t0)
        if job.rule is not None:
            job.stopper = Stopper(job.rule)
        self._advance(job, list(saved))

    def _advance(self, job: RowJob, saved: list[ChunkResult]) -> None:
        """Set the next target range of ``job`` (using saved chunks of it first), or finish it.
        A fixed row has one range, [0, trials); an adaptive row one per batch."""
        while True:
            job.end = job.trials if job.rule is None else job.done_to + job.rule.next_batch(job.done_to)
            inside = [r for r in saved if r.t0 >= job.done_to and r.t1 <= job.end]
            job.results = inside
            todo = gaps([(r.t0, r.t1) for r in inside], job.done_to, job.end)
            if todo:
                job.queue = deque(todo)
                self.ready.append(job)
                return
            if self._complete_range(job):
                return

    def _complete_range(self, job: RowJob) -> bool:
        """Merge the finished range; True when the row is finished (the caller was told)."""
        agg = merge(job.results, job.done_to, job.end)
        job.done_agg = job.done_agg.merge(agg)
        job.done_to = job.end
        job.results = []
        if job.rule is not None:
            job.stopper.update(outcome_count(job.done_agg, job.rule.outcome), job.done_agg.trials)
            if not job.stopper.done:
                return False
        elif job.done_to < job.trials:
            return False
        self._finish(job)
        return True

    def _finish(self, job: RowJob) -> None:
        if self.on_row is not None:
            self.on_row(job, job.done_agg)
        if self.store is not None:
            self.store.drop(job.key)

    # ---- cutting chunks and bundling them into tasks

    def _take(self, job: RowJob, budget: float) -> tuple[Chunk, float]:
        a, b = job.queue[0]
        if self.chunk_s is None:
            n = b - a
            est = 0.0
        elif job.cost is None:
            # A probe sized so that even at the strategy's worst cost per trial seen so far it
            # takes a quarter of a task; when that covers the rest of the row it is just a chunk.
            known = self.label_cost.get(job.label)
            n = PROBE_TRIALS if known is None else max(1, int(self.chunk_s / (4 * known)))
            n = min(n, b - a)
            job.probing = n < b - a
            est = self.chunk_s if known is None else n * known
        else:
            n = max(1, min(b - a, int(max(budget, self.chunk_s / 4) / job.cost)))
            est = n * job.cost
        if a + n == b:
            job.queue.popleft()
        else:
            job.queue[0] = (a + n, b)
        job.out += 1
        return Chunk(job.key, job.scenario, job.label, job.seed, a, a + n, job.backend, job.batch), est

    def _fill(self) -> None:
        while self.ready and self.ex.pending() < self.window:
            bundle, est = [], 0.0
            limit = self.chunk_s or 0.0
            while self.ready and len(bundle) < MAX_BUNDLE:
                job = self.ready[0]
                ch, e = self._take(job, limit - est)
                bundle.append(ch)
                est += e
                if not job.queue or job.probing:
                    self.ready.popleft()  # back in the queue when its probe returns or never
                if self.chunk_s is None or est >= limit:
                    break
            self.ex.submit([c.key for c in bundle], bundle)
            self.tasks += 1
            self.chunks += len(bundle)

    def run(self, jobs: dict) -> None:
        """Until every queued row is finished. ``jobs``: key -> RowJob (those added)."""
        self._fill()
        while self.ex.pending():
            _, results = self.ex.wait()
            for r in results:
                job = jobs[r.key]
                job.out -= 1
                job.results.append(r)
                whole = r.t0 == job.done_to and r.t1 == job.end and job.rule is None and r.t1 == job.trials
                if self.store is not None and not whole:
                    self.store.save(r)
                if self.on_chunk is not None:
                    self.on_chunk(r)
                per = r.wall_s / max(1, r.t1 - r.t0)
                if job.probing:
                    job.probing = False
                    job.cost = per
                    if job.queue:
                        self.ready.appendleft(job)
                elif job.cost is None:
                    job.cost = per
                else:
                    # The smallest cost per trial seen: a chunk's wall includes a fixed cost per
                    # call, which the larger chunks amortise best, so chunks never shrink
                    # towards one trial each (which the fixed cost would otherwise drive them to).
                    job.cost = min(job.cost, per)
                # The strategy's cost for sizing the probes of its next rows: the largest of its
                # rows' own costs (not of single chunks, whose fixed cost inflates the smallest).
                costs = self._row_costs.setdefault(job.label, {})
                costs[job.key] = job.cost
                self.label_cost[job.label] = max(costs.values())
                if job.out == 0 and not job.queue:
                    if not self._complete_range(job):
                        self._advance(job, [])
            self._fill()
