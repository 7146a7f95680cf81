"""The CUDA engine: the kernel sources compiled by NVRTC through cupy.RawModule, one thread per trial.

Where it sits: an ``Engine`` (mcexplore.engines.base) beside numpy and native, preferred by
backend="auto" when a GPU is usable. ``cupy`` is imported lazily inside methods only, so importing
mcexplore (or this module) never needs it. The module is built from the same translation unit as
the native engine (kernel_source.assemble) with ``-std=c++17 --fmad=false`` and cached per process
by the sources' cache key (CuPy also keeps its own on-disk cache of compiled modules).

``run_records`` returns per-trial records; ``run_aggregate`` simulates into a device buffer and
reduces it on the device (kernels/mcexplore.cu: reduce_records), copying back only counts, sums, the max, the
histograms and per-block counts and first examples of each failure outcome, from which the host
picks the first examples in trial order: the result equals Aggregate.from_records of the same
trials exactly, whatever the chunk size or block schedule. Launches are chunked to fit device memory.
A tilted run (params.TiltLayout) has wider records, its statistics after the fields: its aggregate
is reduced from its records on the host.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from ..params import Compiled
from ..constants import (EXAMPLE_OUTCOMES, EXAMPLES, HIST_BINS, HIST_METRICS, IS_MAX_SLOTS, NFIELDS, OUTCOMES,
                         CLASS_WORDS, REDUCE_BLOCK, SUMS, TILE_LANES, ClassWord, Header)
from ..results import Aggregate, Records
from . import kernel_source
from .base import Engine
from .native import EngineConfigError, check_no_progress
from .pack import pack

# --maxrregcount=64: the trial loop is divergent and latency-bound, so occupancy matters more than
# spills: on an H200 it nearly doubled throughput over the default 136 registers per thread
# (thread-2018 drop 229k -> 437k trials/s, ref-short 46k -> 89k; 48 was no better, 32 worse;
# scripts/gpu-profile.py variants). Integer-only code: the cap cannot change a result.
NVRTC_OPTIONS = ("-std=c++17", "--fmad=false", "--maxrregcount=64")
KERNELS = ("mcx_philox_kernel", "sample_draws", "sample_words", "hist_buckets", "simulate_records",
           "reduce_records")  # and the tile kernels, tile_kernel(W) for W in TILE_LANES
RECORDS_BLOCK = 128
TILTED_AGG_CHUNK = 1 << 20  # trials per host reduction of a tilted run_aggregate
NEX = len(EXAMPLE_OUTCOMES)

def first_examples(blk_counts: np.ndarray, get_blk_ex, base: int) -> dict:
    """The first EXAMPLES trials of each failure outcome, in trial order, from per-block counts
    and per-block first examples (Aggregate.from_records picks the same ones)."""
    out = {}
    bx = None
    for e, o in enumerate(EXAMPLE_OUTCOMES):
        blocks = np.nonzero(blk_counts[:, e])[0]
        ex: list[int] = []
        if len(blocks):
            cs = np.cumsum(blk_counts[blocks, e])
            blocks = blocks[: int(np.searchsorted(cs, EXAMPLES)) + 1]
            if bx is None:
                bx = get_blk_ex()
            for b in blocks:
                cnt = int(min(blk_counts[b, e], EXAMPLES))
                ex.extend(int(base + x) for x in bx[b, e, :cnt])
        out[o] = ex[:EXAMPLES]
    return out


_lock = threading.Lock()
_modules: dict = {}


def nvrtc_options() -> tuple:
    """NVRTC options: NVRTC_OPTIONS plus ``$MCEXPLORE_NVRTC_OPTIONS`` (e.g. "-lineinfo" for
    compute-sanitizer, "-DMCX_PROCESS_INLINE"); all of them are part of the cache key."""
    import os
    import shlex

    return NVRTC_OPTIONS + tuple(shlex.split(os.environ.get("MCEXPLORE_NVRTC_OPTIONS", "")))


def tile_kernel(lanes: int) -> str:
    """The name of the tile kernel of ``lanes`` lanes (a template instance, requested by name)."""
    return f"simulate_records_tile<{lanes}>"


def get_module(overrides: dict | None = None, tile_lanes: int | None = None):
    """The compiled cupy.RawModule of the current sources (cached per process by the cache key),
    or with ``tile_lanes`` the module of that width's tile kernel (each width is a module of its
    own, without the per-trial kernel, -DMCX_TILE_ONLY: NVRTC compiles only the instances a module
    names, and a run uses one width)."""
    import cupy

    options = nvrtc_options() + (("-DMCX_TILE_ONLY",) if tile_lanes else ())
    src = kernel_source.load(options=options, compiler_id=f"nvrtc|cupy {cupy.__version__}",
                             overrides=overrides)
    dev = cupy.cuda.Device().id
    with _lock:
        mod = _modules.get((src.key, dev, tile_lanes))
        if mod is None:
            names = [tile_kernel(tile_lanes)] if tile_lanes else None
            mod = cupy.RawModule(code=src.code, options=options, name_expressions=names)
            mod.compile()
            _modules[(src.key, dev, tile_lanes)] = mod
        return mod


def installed_cupy_wheels() -> list[str]:
    """Which of the extras' CuPy distributions are installed (without importing cupy)."""
    from importlib import metadata

    found = []
    for dist in ("cupy-cuda12x", "cupy-cuda13x"):
        try:
            metadata.version(dist)
            found.append(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


# How the device runs a trial (``CupyEngine(sched=...)``, ``$MCEXPLORE_GPU_SCHED``; never changes a
# result): "trial", one thread per trial (every trial; the default), or "tile", one tile of lanes
# per trial, the trial's tasks split over its lanes (kernels/lanes.h, simulate_records_tile<W>):
# a warp; for a page of few tasks the narrowest power-of-two part of one that gives each task a
# lane, so that a warp runs several trials; for a page of over 1024 tasks several warps (a block),
# so that a lane owns at most 32 (tile_lanes). The tile runs page-level, untilted
# trials (lock_noref's global order too: the lanes share each pick); block level and tilted runs
# stay per trial. The tile is checked bit for bit on the host (tests/test_lanes.py runs its code
# with coroutines as lanes, at 32, 8 and 64 lanes) and by tests/test_gpu.py on a device; it becomes
# the default once a device has measured it.
GPU_SCHEDS = ("trial", "tile")
TILE_WARPS_PER_SM = 24  # persistent warps per multiprocessor (at 64 registers a lane, 32 would fit)
TILE_BLOCK = 128  # threads per block of simulate_records_tile up to a warp's width: 4 warps
TILE_TASKS_PER_LANE = 32  # most tasks a lane of a warp's tile owns before the tile takes more warps


def tile_lanes(P) -> int:
    """The tile width for P's page: up to 32 active tasks, the narrowest of TILE_LANES with a lane
    for each; then a warp, up to TILE_TASKS_PER_LANE tasks a lane; then as many warps as keep a
    lane at that many (the issue's "several warps per trial for M above about 1000"), at most the
    widest tile."""
    off, n = int(P[Header.CLASS_OFF]), int(P[Header.NCLASSES])
    tasks = max((int(P[off + k * CLASS_WORDS + ClassWord.ACTIVE]) for k in range(n)), default=0)
    if tasks <= 32:
        return next(w for w in TILE_LANES if w >= tasks)
    return next((w for w in TILE_LANES if w >= 32 and w * TILE_TASKS_PER_LANE >= tasks), TILE_LANES[-1])


class CupyEngine(Engine):
    name = "cupy"

    def __init__(self, chunk: int | None = None, sched: str | None = None):
        # Trials per launch (None: as many as fit a quarter of the free device memory, capped).
        self.chunk = chunk
        what = "MCEXPLORE_GPU_SCHED / sched" if sched is not None else "MCEXPLORE_GPU_SCHED"
        sched = sched if sched is not None else (os.environ.get("MCEXPLORE_GPU_SCHED", "").strip() or "trial")
        if sched not in GPU_SCHEDS:
            raise EngineConfigError(f"{what}: {sched!r} is not valid: choose one of {', '.join(GPU_SCHEDS)}")
        self.sched = sched
        self._P_cache: tuple | None = None

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        both = installed_cupy_wheels()
        if len(both) > 1:
            # The two wheels install the same `cupy` package over each other: the import then
            # loads whichever files won, usually against the wrong CUDA runtime.
            return False, (f"{' and '.join(both)} are both installed; they are mutually exclusive: "
                           f"keep the one matching your CUDA driver (pip uninstall the other)")
        try:
            import cupy
        except Exception as e:
            return False, f"cupy is not importable ({type(e).__name__}: {e})"
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:
            return False, f"no usable CUDA device ({type(e).__name__}: {e})"
        if n <= 0:
            return False, "no CUDA device"
        try:
            name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
            name = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:
            name = "CUDA device"
        return True, f"{name} (cupy {cupy.__version__})"

    # -- helpers -----------------------------------------------------------------------------
    def _params(self, compiled: Compiled):
        import cupy

        P = pack(compiled)
        if self._P_cache is not None and np.array_equal(self._P_cache[0], P):
            return P, self._P_cache[1]
        d = cupy.asarray(P)
        self._P_cache = (P, d)
        return P, d

    def _tiled(self, P) -> bool:
        """Whether this run takes the tile kernel (see GPU_SCHEDS)."""
        return self.sched == "tile" and not int(P[Header.LEVEL]) and not int(P[Header.IS_NSLOT])

    def _simulate(self, mod, compiled: Compiled, P, dP, seed: int, t0: int, m: int, out) -> None:
        """Records of trials [t0, t0 + m) into the device array out, by the kernel GPU_SCHEDS picks."""
        import cupy

        sw = int(P[Header.SCRATCH_WORDS])
        seed = np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF)
        if self._tiled(P):
            w = tile_lanes(P)
            sms = int(cupy.cuda.Device().attributes["MultiProcessorCount"])
            # Persistent tiles: enough warps to fill the device, no more tiles than trials. A tile
            # of several warps is a block of its own (its collectives are __syncthreads).
            tiles = max(1, min(m, sms * TILE_WARPS_PER_SM * 32 // w))
            block = TILE_BLOCK if w <= 32 else w
            per_block = block // w
            blocks = (tiles + per_block - 1) // per_block
            scratch = cupy.empty(max(1, blocks * per_block * sw), dtype=cupy.int64)
            nxt = cupy.zeros(1, dtype=cupy.uint64)
            get_module(tile_lanes=w).get_function(tile_kernel(w))(
                (blocks,), (block,), (dP, seed, np.int64(t0), np.int64(m), out, scratch, nxt))
        else:
            scratch = cupy.empty(max(1, m * sw), dtype=cupy.int64)
            mod.get_function("simulate_records")(
                ((m + RECORDS_BLOCK - 1) // RECORDS_BLOCK,), (RECORDS_BLOCK,),
                (dP, seed, np.int64(t0), np.int64(m), out, scratch))
        del scratch

    def _chunk(self, n: int, bytes_per_trial: int, cap: int) -> int:
        import cupy

        if self.chunk:
            return max(1, min(n, int(self.chunk)))
        free, _total = cupy.cuda.Device().mem_info
        fit = max(1024, int(free // 4) // max(1, bytes_per_trial))
        return max(1, min(n, cap, fit))

    # -- test entry points ---------------------------------------------------------------------
    def philox(self, ctr, key):
        import cupy

        ctr = np.ascontiguousarray(ctr, dtype=np.uint32).reshape(-1, 4)
        key = np.ascontiguousarray(key, dtype=np.uint32).reshape(-1, 2)
        n = len(ctr)
        out = cupy.zeros((n, 4), dtype=cupy.uint32)
        k = get_module().get_function("mcx_philox_kernel")
        k(((n + 127) // 128,), (128,), (np.int64(n), cupy.asarray(ctr), cupy.asarray(key), out))
        return cupy.asnumpy(out)

    def sample_draws(self, params: np.ndarray, seed: int, keys, dist: int):
        import cupy

        keys = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1, 6)
        n = len(keys)
        values = cupy.zeros(n, dtype=cupy.int64)
        words = cupy.zeros((n, 4), dtype=cupy.uint32)
        k = get_module().get_function("sample_draws")
        k(((n + 127) // 128,), (128,),
          (cupy.asarray(np.ascontiguousarray(params, dtype=np.int64)),
           np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF), np.int64(n), cupy.asarray(keys),
           np.int32(dist), values, words))
        return cupy.asnumpy(values), cupy.asnumpy(words)

    def sample_words(self, params: np.ndarray, words, dist: int):
        import cupy

        words = np.ascontiguousarray(words, dtype=np.uint32).reshape(-1, 4)
        n = len(words)
        values = cupy.zeros(n, dtype=cupy.int64)
        get_module().get_function("sample_words")(
            ((n + 127) // 128,), (128,),
            (cupy.asarray(np.ascontiguousarray(params, dtype=np.int64)), np.int64(n),
             cupy.asarray(words), np.int32(dist), values))
        return cupy.asnumpy(values)

    def hist_buckets(self, v):
        import cupy

        v = cupy.asarray(np.ascontiguousarray(v, dtype=np.int64))
        n = len(v)
        out = cupy.zeros(n, dtype=cupy.int64)
        get_module().get_function("hist_buckets")(((n + 127) // 128,), (128,), (v, np.int64(n), out))
        return cupy.asnumpy(out)

    # -- Engine --------------------------------------------------------------------------------
    def run_records(self, compiled: Compiled, seed: int, t0: int, t1: int) -> Records:
        import cupy

        n = t1 - t0
        P, dP = self._params(compiled)
        # A tilted run's statistics follow the fields (params.TiltLayout); simulate_records keeps
        # a record in a local array of MCX_NFIELDS + MCX_IS_MAX_SLOTS words.
        nslot = int(P[Header.IS_NSLOT])
        if not 0 <= nslot <= IS_MAX_SLOTS:
            raise ValueError(f"a tilt of {nslot} statistics: the engines count at most {IS_MAX_SLOTS}")
        width = NFIELDS + nslot
        if n <= 0:
            return Records.from_matrix(t0, np.zeros((0, width), dtype=np.int64), nslot)
        sw = int(P[Header.SCRATCH_WORDS])
        chunk = self._chunk(n, 8 * (width + sw), 1 << 24)
        mod = get_module()
        mats = []
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            out = cupy.empty((m, width), dtype=cupy.int64)
            self._simulate(mod, compiled, P, dP, seed, t0 + a, m, out)
            mat = cupy.asnumpy(out)
            check_no_progress(mat, t0 + a)
            mats.append(mat)
            del out
        return Records.from_matrix(t0, np.concatenate(mats), nslot)

    def run_aggregate(self, compiled: Compiled, seed: int, t0: int, t1: int) -> Aggregate:
        import cupy

        n = t1 - t0
        agg = Aggregate()
        agg.examples = {o: [] for o in EXAMPLE_OUTCOMES}
        if n <= 0:
            return agg
        P, dP = self._params(compiled)
        if int(P[Header.IS_NSLOT]):
            # reduce_records reads rows of NFIELDS words, a tilted run's are wider: reduce on the
            # host instead (a tilted run wants its records' statistics anyway).
            for a in range(t0, t1, TILTED_AGG_CHUNK):
                part = Aggregate.from_records(self.run_records(compiled, seed, a, min(t1, a + TILTED_AGG_CHUNK)))
                agg = part if agg.trials == 0 else agg.merge(part)
            return agg
        sw = int(P[Header.SCRATCH_WORDS])
        chunk = self._chunk(n, 8 * (NFIELDS + sw) + 1, 1 << 22)
        mod = get_module()
        red = mod.get_function("reduce_records")
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            nblocks = (m + REDUCE_BLOCK - 1) // REDUCE_BLOCK
            out = cupy.empty((m, NFIELDS), dtype=cupy.int64)
            self._simulate(mod, compiled, P, dP, seed, t0 + a, m, out)
            counts = cupy.zeros(len(OUTCOMES) + 1, dtype=cupy.uint64)
            sums = cupy.zeros(len(SUMS), dtype=cupy.uint64)
            mx = cupy.full(1, np.iinfo(np.int64).min, dtype=cupy.int64)
            hists = cupy.zeros(len(HIST_METRICS) * HIST_BINS, dtype=cupy.uint64)
            blk_counts = cupy.zeros(nblocks * NEX, dtype=cupy.int32)
            blk_ex = cupy.zeros(nblocks * NEX * EXAMPLES, dtype=cupy.int32)
            red((nblocks,), (REDUCE_BLOCK,),
                (out, np.int64(m), counts, sums, mx, hists, blk_counts, blk_ex))
            part = Aggregate(trials=m)
            c = cupy.asnumpy(counts).view(np.int64)
            if c[len(OUTCOMES)]:
                raise RuntimeError(f"simulation made no progress in {int(c[len(OUTCOMES)])} trial(s) of "
                                   f"[{t0 + a}, {t0 + a + m}) (zero-duration loop in the timing parameters?)")
            s = cupy.asnumpy(sums).view(np.int64)
            for j, o in enumerate(OUTCOMES):
                part.counts[o] = int(c[j])
            for j, q in enumerate(SUMS):
                part.sums[q] = int(s[j])
            part.max_wait_max = int(cupy.asnumpy(mx)[0])
            h = cupy.asnumpy(hists).view(np.int64).reshape(len(HIST_METRICS), HIST_BINS)
            for j, metric in enumerate(HIST_METRICS):
                part.hists[metric] = h[j].copy()
            part.examples = first_examples(cupy.asnumpy(blk_counts).reshape(nblocks, NEX),
                                           lambda: cupy.asnumpy(blk_ex).reshape(nblocks, NEX, EXAMPLES),
                                           t0 + a)
            agg = part if agg.trials == 0 else agg.merge(part)
            del out, counts, sums, mx, hists, blk_counts  # blk_ex is small; rebound next chunk
        return agg

    def default_batch(self, compiled: Compiled) -> int:
        # Large enough to fill the device, small enough that a batch of heavy trials (many
        # tasks, many attempts) still reports progress.
        if compiled.block is None:
            return max(1 << 16, min(1 << 24, (1 << 28) // max(1, int(compiled.page.mapcount))))
        return 1 << 16
