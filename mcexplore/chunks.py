"""Chunks of trials: the unit of work a sweep hands out, and their exact merge.

Where it sits: above mcexplore.api (a chunk is one ``run_compiled`` call on trials [t0, t1) of one
strategy of one scenario), below mcexplore.cluster (which carries chunks to workers) and
mcexplore.sweep (which cuts rows into chunks and merges them back). Nothing here knows whether it
runs in this process or on a Dask worker on another machine.

Why a chunk merges exactly: every draw is a pure function of (seed, trial, ...), so trials
[0, n) give the same per-trial results however they are cut; counts, sums and histograms add,
maxima take the max, and the first example trials of [0, n) are the first ones of the chunks taken
in trial order (``merge`` sorts by t0 and refuses gaps and overlaps, so a chunk counted twice or
lost is an error, never a silently different table).
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from . import __version__
from .constants import MODEL_VERSION
from .results import Aggregate


@dataclass(frozen=True)
class Chunk:
    """Trials [t0, t1) of strategy ``label`` of ``scenario`` with ``seed``, for the row ``key``.

    The scenario travels whole (a few kB pickled); a worker compiles it once per strategy
    (``run_chunks`` keeps a small cache), so a chunk needs no shared files.
    """

    key: str
    scenario: object  # mcexplore.scenario.Scenario
    label: str
    seed: int
    t0: int
    t1: int
    backend: str = "auto"
    batch: int | None = None
    # What the sweep's rows are keyed by (set where the chunk is made): a worker with another
    # model refuses the chunk rather than mixing its numbers in.
    model_version: int = MODEL_VERSION
    version: str = __version__

    @property
    def trials(self) -> int:
        return self.t1 - self.t0

    @property
    def name(self) -> str:
        """A stable name (the Dask task key, the chunk file's name)."""
        return f"mcx-{self.key}-{self.t0}-{self.t1}"


@dataclass
class ChunkResult:
    """What a worker sends back: the chunk's aggregate and where and how long it ran."""

    key: str
    t0: int
    t1: int
    backend: str
    aggregate: Aggregate
    wall_s: float
    host: str = ""
    pid: int = 0
    finished: float = 0.0  # time.time() on the worker when the chunk was done

    def to_dict(self) -> dict:
        return {"key": self.key, "t0": self.t0, "t1": self.t1, "backend": self.backend,
                "aggregate": self.aggregate.to_dict(), "wall_s": self.wall_s, "host": self.host,
                "pid": self.pid, "finished": self.finished}

    @classmethod
    def from_dict(cls, d: dict) -> "ChunkResult":
        return cls(d["key"], int(d["t0"]), int(d["t1"]), d["backend"], Aggregate.from_dict(d["aggregate"]),
                   float(d["wall_s"]), d.get("host", ""), int(d.get("pid", 0)), float(d.get("finished", 0.0)))


_COMPILED: dict = {}
_COMPILED_MAX = 64  # strategies of different cells a worker keeps compiled


def _compiled(chunk: Chunk):
    k = (chunk.scenario.config_hash(chunk.label), chunk.label)
    c = _COMPILED.get(k)
    if c is None:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))
        c = _COMPILED[k] = chunk.scenario.compile(chunk.label)
    return c


class VersionMismatch(RuntimeError):
    """A worker whose mcexplore computes another model than the sweep's."""


def run_chunks(chunks: list[Chunk]) -> list[ChunkResult]:
    """Run chunks one after the other (a worker's task: several small chunks share one task, so
    the scheduler's cost per task is paid once)."""
    from .api import run_compiled

    out = []
    host, pid = socket.gethostname(), os.getpid()
    for ch in chunks:
        if ch.model_version != MODEL_VERSION:
            raise VersionMismatch(
                f"worker {host} (pid {pid}) runs mcexplore {__version__}, model version {MODEL_VERSION}; "
                f"the sweep was planned with mcexplore {ch.version}, model version {ch.model_version}: "
                "install the same mcexplore on every worker")
        t = time.perf_counter()
        name, sr = run_compiled(_compiled(ch), trials=ch.trials, seed=ch.seed, t0=ch.t0,
                                backend=ch.backend, batch=ch.batch, progress=False)
        out.append(ChunkResult(ch.key, ch.t0, ch.t1, name, sr.aggregate, time.perf_counter() - t, host, pid,
                               time.time()))
    return out


# ---------------------------------------------------------------------------------------------
# Trial ranges
# ---------------------------------------------------------------------------------------------

def gaps(done: list[tuple[int, int]], t0: int, t1: int) -> list[tuple[int, int]]:
    """The parts of [t0, t1) not covered by the (disjoint) ranges ``done``, in order."""
    out = []
    t = t0
    for a, b in sorted(done):
        if b <= t or a >= t1:
            continue
        if a > t:
            out.append((t, a))
        t = max(t, b)
    if t < t1:
        out.append((t, t1))
    return out


def disjoint(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The ranges, sorted, keeping the first of any that overlap (a saved chunk file of an earlier
    run with another chunk size may overlap one of this run: it is not counted twice)."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if a < b and (not out or a >= out[-1][1]):
            out.append((a, b))
    return out


class MergeError(RuntimeError):
    """Chunks that do not tile their range exactly (a gap or an overlap): a bug, never data."""


def merge(results: list[ChunkResult], t0: int, t1: int) -> Aggregate:
    """The aggregate of trials [t0, t1) from chunk results that tile it exactly, in trial order."""
    agg = Aggregate()
    t = t0
    for r in sorted(results, key=lambda r: r.t0):
        if r.t0 != t:
            what = "overlap" if r.t0 < t else "gap"
            raise MergeError(f"chunks of {r.key} do not tile [{t0}, {t1}): {what} at trial {min(t, r.t0)}")
        agg = agg.merge(r.aggregate)
        t = r.t1
    if t != t1:
        raise MergeError(f"chunks do not tile [{t0}, {t1}): they end at trial {t}")
    return agg
