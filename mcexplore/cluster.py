"""Where a sweep's chunks run: in this process, or on Dask workers (one machine or many).

Where it sits: between mcexplore.chunks (what a task computes) and mcexplore.sweep (which decides
what to run and merges the results). An executor takes tasks (lists of chunks) and gives back
their results as they finish; it knows nothing of cells, rows or files.

Cluster specs (the CLI's ``--cluster``):

- none (the default): ``InProcess``, no Dask import at all;
- ``local`` / ``local:N``: a ``distributed.LocalCluster`` of N worker processes (default: one per
  core), one task at a time each; each worker's native engine gets cores / N threads
  (``$MCEXPLORE_THREADS``), so the machine is used once, not N times over;
- ``cuda``: ``dask_cuda.LocalCUDACluster``, one worker per visible GPU (each worker sees one
  device, so its ``auto`` backend is cupy on its own GPU);
- ``tcp://HOST:PORT``: an existing scheduler (``dask scheduler`` on one machine, ``dask worker`` /
  ``dask cuda worker`` on the others; docs/scale.md).

Dask is an optional extra (``pip install 'mcexplore[dask]'``, ``'mcexplore[dask-cuda]'``),
imported only by ``DaskExecutor``. A worker that dies mid-task costs only its task: the scheduler
gives the task to another worker (``distributed.scheduler.allowed-failures`` times at most), and a
task's results are used once, when it finishes.
"""

from __future__ import annotations

import os
import re
from collections import deque

from .chunks import Chunk, VersionMismatch, run_chunks


# Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers (to hand freed memory back to the
# OS). Setting any of glibc's thresholds turns off its dynamic mmap threshold, so every large
# temporary (an engine batch's records, numpy's lock-step arrays) is mmap'ed and unmapped again,
# page faults included: the engines ran about 30% slower in such workers. These restore a high
# mmap threshold; memory is still returned above 256 MiB free at the top of the heap.
WORKER_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)}


class ClusterError(RuntimeError):
    """A --cluster spec that is not valid or a cluster that cannot be reached or used (one line)."""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


_SPEC = re.compile(r"^(?:(?P<local>local)(?::(?P<n>[^:]*))?|(?P<cuda>cuda)|(?P<addr>(?:tcp|tls|inproc)://\S+))$")


def parse_cluster(spec: str | None) -> tuple[str, int | str | None]:
    """('inprocess', None), ('local', N), ('cuda', None) or ('address', 'tcp://...').

    >>> parse_cluster("local:2")
    ('local', 2)
    """
    if spec is None or spec == "":
        return "inprocess", None
    m = _SPEC.match(spec.strip())
    if not m:
        raise ClusterError(f"--cluster: {spec!r} is not valid: give local, local:N, cuda or "
                           "tcp://HOST:PORT (an existing Dask scheduler)")
    if m["local"]:
        if m["n"] is None:
            return "local", _cores()
        if not m["n"].isdigit() or int(m["n"]) < 1:
            raise ClusterError(f"--cluster: {spec!r} is not valid: N in local:N must be an integer >= 1")
        return "local", int(m["n"])
    if m["cuda"]:
        return "cuda", None
    return "address", m["addr"]


class InProcess:
    """Runs each task here, when its result is asked for (``wait``), in submission order."""

    name = "in-process"
    workers = 1
    in_process = True  # the engine spreads a row over the cores itself: rows go out whole

    def __init__(self):
        self._queue: deque = deque()

    def submit(self, tag, chunks: list[Chunk]) -> None:
        self._queue.append((tag, chunks))

    def pending(self) -> int:
        return len(self._queue)

    def wait(self):
        """(tag, [ChunkResult]) of the next task."""
        tag, chunks = self._queue.popleft()
        return tag, run_chunks(chunks)

    def close(self) -> None:
        self._queue.clear()

    def worker_pids(self) -> dict:
        return {"in-process": os.getpid()}


def _import_distributed(extra: str):
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"--cluster needs Dask, which is not installed: pip install 'mcexplore[{extra}]'") from None
    return distributed


class DaskExecutor:
    """Tasks on a Dask cluster: one it starts (local, cuda) or an existing scheduler's."""

    in_process = False

    def __init__(self, spec: str, *, threads_per_engine: int | None = None):
        kind, arg = parse_cluster(spec)
        if kind == "inprocess":
            raise ClusterError("DaskExecutor needs a --cluster spec")
        self.name = spec
        self._cluster = None
        distributed = _import_distributed("dask-cuda" if kind == "cuda" else "dask")
        self._distributed = distributed
        import logging

        if kind == "local":
            threads = threads_per_engine or max(1, _cores() // arg)
            self._cluster = distributed.LocalCluster(
                n_workers=arg, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR, env={"MCEXPLORE_THREADS": str(threads), **WORKER_MALLOC})
        elif kind == "cuda":
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError:
                raise ClusterError("--cluster cuda needs dask-cuda, which is not installed: "
                                   "pip install 'mcexplore[dask-cuda]'") from None
            try:
                self._cluster = LocalCUDACluster(dashboard_address=None, silence_logs=logging.ERROR)
            except Exception as e:  # no GPU, no driver: say so in one line
                raise ClusterError(f"--cluster cuda: no GPU cluster could be started here ({type(e).__name__}: {e})") from None
        try:
            # the connect timeout is Dask's (distributed.comm.timeouts.connect, 30 s by default)
            self.client = distributed.Client(self._cluster if self._cluster is not None else arg)
        except (OSError, TimeoutError) as e:
            self.close()
            raise ClusterError(f"--cluster: no Dask scheduler answered at {arg} ({e})") from None
        if kind == "address":
            self.client.wait_for_workers(1, timeout=60)
        self.workers = max(1, len(self.client.scheduler_info()["workers"]))
        # Errors come back as results, so a failed task's bookkeeping is dropped before it is raised.
        self._ac = distributed.as_completed(with_results=True, raise_errors=False)
        self._tags: dict = {}

    def submit(self, tag, chunks: list[Chunk]) -> None:
        fut = self.client.submit(run_chunks, chunks, key=f"{chunks[0].name}+{len(chunks)}", pure=False)
        self._tags[fut.key] = tag
        self._ac.add(fut)

    def pending(self) -> int:
        return len(self._tags)

    def wait(self):
        fut, res = next(self._ac)
        tag = self._tags.pop(fut.key)
        if fut.status == "error":  # raise_errors=False: the task's exception is the future's
            exc = fut.exception()
            if isinstance(exc, self._distributed.KilledWorker):
                raise ClusterError(f"a task killed every worker it was given to ({exc}); rows finished "
                                   "before it are saved: rerun to resume") from None
            if isinstance(exc, VersionMismatch):
                raise ClusterError(str(exc)) from None
            raise exc
        return tag, res

    def worker_pids(self) -> dict:
        """{worker address: pid} (for the tests' fault injection and for the report)."""
        return self.client.run(os.getpid)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def executor(spec: str | None, **kw):
    """InProcess for no spec, else a DaskExecutor (see the module docstring)."""
    kind, _ = parse_cluster(spec)
    return InProcess() if kind == "inprocess" else DaskExecutor(spec, **kw)
