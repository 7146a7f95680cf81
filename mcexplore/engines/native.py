"""The native engine: the kernel sources compiled for the host CPU by a C++ compiler, via ctypes.

Where it sits: an ``Engine`` (mcexplore.engines.base) beside numpy and cupy. It compiles the same
single translation unit that the GPU runs (kernel_source.assemble) as C++17 with g++, into a
shared library cached under ``$MCEXPLORE_CACHE`` (default ``~/.cache/mcexplore``), named by the
sha256 cache key of the sources, options and compiler; a build is written to a temporary file and
moved into place with os.replace, so concurrent processes never load a half-written library.
Trials run on every core (``$MCEXPLORE_THREADS`` to choose), one trial at a time per thread; the
results are bit for bit those of the numpy and cupy engines (tests/test_parity.py). Draws are
batched across a page's tasks with the best SIMD the CPU has (kernels/drawcache.h;
``$MCEXPLORE_SIMD`` = auto, off, scalar, sse2, avx2 or avx512 to choose); that never changes a
result either.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..constants import ABI_VERSION, HOST_TILE_LANES, LANE_W, NFIELDS, Header, LaneStat, Sched, Simd
from ..params import Compiled
from ..results import Records
from . import kernel_source
from .base import BackendUnavailable, Engine
from .pack import pack

# -fvisibility-inlines-hidden: the engine's member functions are inline; without it every call
# between them in the shared library goes through the PLT.
CXX_OPTIONS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-pthread", "-ffp-contract=off",
               "-fno-strict-aliasing", "-fvisibility-inlines-hidden", "-Wall",
               "-Wno-unused-function")

# GCC only: the kernels compile one page-level trial per strategy (mcx_trial_page<SPEC>), which
# takes the unit past g++'s default inlining budget; without this the specialised trials stay
# uninlined and slower than one generic trial (with it, 7-16% faster on thread-2018; the first
# build takes about 9 s instead of 4 on a 2-core machine).
GCC_OPTIONS = ("--param", "inline-unit-growth=1000")


@functools.cache
def is_gcc(cxx: str) -> bool:
    """Whether ``cxx`` is GCC (its predefined macros: __GNUC__ without __clang__), whatever its name."""
    try:
        macros = subprocess.run([cxx, "-dM", "-E", "-x", "c++", os.devnull], capture_output=True,
                                text=True, timeout=30).stdout
    except Exception:  # pragma: no cover
        macros = ""
    return "__GNUC__" in macros and "__clang__" not in macros


# How the native engine batches draws (kernels/drawcache.h); values of mcx_simd_resolve.
SIMD = {m.name.lower(): int(m) for m in Simd}
SIMD_NAMES = {v: k for k, v in SIMD.items()}
# How it runs the tasks of a strategy without global order (kernels/lanes.h); never changes a result.
SCHED = {m.name.lower(): int(m) for m in Sched}
# The walk: on one CPU core the lane scheduler's grouping runs 13% more instructions than the walk
# (callgrind, thread-2018 ptl_pin, 300 trials: 73.9M against 65.5M, both in the per-strategy trial)
# for no gain in time; it now runs in the generic trial only (kernels/page.h), and is kept for its
# counters (lane_stats: what a tile that compacts its queues would do) and as a cross-check.
DEFAULT_SCHED = "walk"


class CompileError(RuntimeError):
    pass


def find_compiler() -> str | None:
    cxx = os.environ.get("CXX")
    if cxx:
        exe = shlex.split(cxx)[0]
        return shutil.which(exe) or (exe if os.path.isfile(exe) and os.access(exe, os.X_OK) else None)
    for cand in ("g++", "c++", "clang++"):
        p = shutil.which(cand)
        if p:
            return p
    return None


def cache_dir() -> Path:
    """$MCEXPLORE_CACHE, else ~/.cache/mcexplore; a per-user temporary folder if that is not writable."""
    d = os.environ.get("MCEXPLORE_CACHE")
    p = Path(d) if d else Path.home() / ".cache" / "mcexplore"
    try:
        p.mkdir(parents=True, exist_ok=True)
        if os.access(p, os.W_OK):
            return p
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"mcexplore-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"


_compiler_ids: dict[str, str] = {}


def compiler_id(cxx: str) -> str:
    if cxx not in _compiler_ids:
        try:
            v = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
            first = (v.stdout or v.stderr).splitlines()[0] if (v.stdout or v.stderr) else ""
        except Exception as e:  # pragma: no cover
            first = f"unknown ({e})"
        _compiler_ids[cxx] = f"{os.path.realpath(cxx)}|{first}"
    return _compiler_ids[cxx]


def compile_source(code: str, out_path: Path, cxx: str | None = None, options=CXX_OPTIONS) -> None:
    """Compile ``code`` (one translation unit) into the shared library ``out_path``, atomically."""
    cxx = cxx or find_compiler()
    if cxx is None:
        raise CompileError("no C++ compiler found (set $CXX or install g++)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mcx-build-", dir=out_path.parent) as tmp:
        src = Path(tmp) / "mcexplore_native.cpp"
        src.write_text(code, encoding="utf-8")
        tmp_lib = Path(tmp) / "lib.so"
        cmd = [cxx, *options, "-x", "c++", str(src), "-o", str(tmp_lib)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise CompileError(f"{' '.join(cmd)} failed (exit {r.returncode}):\n{r.stderr}")
        os.replace(tmp_lib, out_path)


class NativeLibrary:
    """The loaded shared library, with typed entry points."""

    def __init__(self, path: Path):
        self.path = path
        lib = ctypes.CDLL(str(path))
        P = np.ctypeslib.ndpointer(dtype=np.int64, flags="C_CONTIGUOUS")
        U32 = np.ctypeslib.ndpointer(dtype=np.uint32, flags="C_CONTIGUOUS")
        i64 = ctypes.c_int64
        lib.mcx_abi_version.restype = ctypes.c_int
        lib.mcx_abi_version.argtypes = []
        lib.mcx_philox.restype = None
        lib.mcx_philox.argtypes = [i64, U32, U32, U32]
        lib.mcx_sample_draws.restype = None
        lib.mcx_sample_draws.argtypes = [P, ctypes.c_uint64, i64, P, ctypes.c_int, P, U32]
        lib.mcx_sample_words.restype = None
        lib.mcx_sample_words.argtypes = [P, i64, U32, ctypes.c_int, P]
        lib.mcx_hist_buckets.restype = None
        lib.mcx_hist_buckets.argtypes = [P, i64, P]
        lib.mcx_simulate.restype = ctypes.c_int
        # The lane counters' pointer may be null (counting nothing): a plain pointer.
        lib.mcx_simulate.argtypes = [P, ctypes.c_uint64, i64, i64, P, ctypes.c_int, ctypes.c_int,
                                     ctypes.c_int, ctypes.c_void_p]
        lib.mcx_simulate_tile.restype = ctypes.c_int
        lib.mcx_simulate_tile.argtypes = [P, ctypes.c_uint64, i64, i64, P, ctypes.c_int, ctypes.c_void_p]
        lib.mcx_simd_resolve.restype = ctypes.c_int
        lib.mcx_simd_resolve.argtypes = [ctypes.c_int]
        lib.mcx_philox_lanes.restype = ctypes.c_int
        lib.mcx_philox_lanes.argtypes = [ctypes.c_int, i64, ctypes.c_uint32, ctypes.c_uint32,
                                         U32, U32, ctypes.c_uint32, ctypes.c_uint32, U32]
        abi = lib.mcx_abi_version()
        if abi != ABI_VERSION:
            # The cache key covers every source, so this is a library built from other sources.
            raise CompileError(f"{path} has ABI version {abi}, this mcexplore needs {ABI_VERSION}: "
                               "delete it to rebuild")
        self.lib = lib

    def philox(self, ctr, key):
        ctr = np.ascontiguousarray(ctr, dtype=np.uint32).reshape(-1, 4)
        key = np.ascontiguousarray(key, dtype=np.uint32).reshape(-1, 2)
        out = np.zeros_like(ctr)
        self.lib.mcx_philox(len(ctr), ctr, key, out)
        return out

    def sample_draws(self, params: np.ndarray, seed: int, keys, dist: int):
        """keys: (n, 6) int64 rows (trial, purpose, page, k, i, sub) -> (values, words (n, 4))."""
        keys = np.ascontiguousarray(keys, dtype=np.int64).reshape(-1, 6)
        n = len(keys)
        values = np.zeros(n, dtype=np.int64)
        words = np.zeros((n, 4), dtype=np.uint32)
        self.lib.mcx_sample_draws(np.ascontiguousarray(params, dtype=np.int64),
                                  int(seed) & 0xFFFFFFFFFFFFFFFF, n, keys, int(dist), values, words)
        return values, words

    def sample_words(self, params: np.ndarray, words, dist: int):
        """Sample distribution ``dist`` from given Philox words ((n, 4) uint32)."""
        words = np.ascontiguousarray(words, dtype=np.uint32).reshape(-1, 4)
        values = np.zeros(len(words), dtype=np.int64)
        self.lib.mcx_sample_words(np.ascontiguousarray(params, dtype=np.int64), len(words), words,
                                  int(dist), values)
        return values

    def simd_resolve(self, simd: str = "auto") -> str | None:
        """The draw batching that ``simd`` ("auto" or a key of SIMD) gets here; None if unsupported."""
        code = self.lib.mcx_simd_resolve(-1 if simd == "auto" else SIMD[simd])
        return SIMD_NAMES.get(code)

    def philox_lanes(self, simd: str, c0: int, c1: int, c2, c3, key):
        """Words (4, n) of Philox counters (c0, c1, c2[j], c3[j]) by lane implementation ``simd``."""
        c2 = np.ascontiguousarray(c2, dtype=np.uint32)
        c3 = np.ascontiguousarray(c3, dtype=np.uint32)
        out = np.zeros((4, len(c3)), dtype=np.uint32)
        rc = self.lib.mcx_philox_lanes(SIMD[simd], len(c3), c0, c1, c2, c3, int(key[0]),
                                       int(key[1]), out)
        if rc != 0:
            raise ValueError(f"lanes {simd!r} cannot run {len(c3)} lanes here")
        return out

    def hist_buckets(self, v):
        v = np.ascontiguousarray(v, dtype=np.int64)
        out = np.zeros_like(v)
        self.lib.mcx_hist_buckets(v, len(v), out)
        return out

    def simulate(self, params: np.ndarray, seed: int, t0: int, t1: int, nthreads: int = 0,
                 simd: str = "auto", sched: str = DEFAULT_SCHED, lane_stats: np.ndarray | None = None):
        """Records of trials [t0, t1) as a matrix: NFIELDS fields per row, then a tilted P's
        P[Header.IS_NSLOT] statistics (params.TiltLayout). lane_stats: an int64 array of
        len(LaneStat) that receives the lane scheduler's counters (kernels/lanes.h; counted only
        when given, and only by sched "lanes")."""
        out = np.zeros((max(0, t1 - t0), NFIELDS + int(params[Header.IS_NSLOT])), dtype=np.int64)
        rc = self.lib.mcx_simulate(np.ascontiguousarray(params, dtype=np.int64),
                                   int(seed) & 0xFFFFFFFFFFFFFFFF, int(t0), int(t1), out,
                                   int(nthreads), -1 if simd == "auto" else SIMD[simd],
                                   SCHED[sched], _counters(lane_stats))
        if rc == -2:
            raise RuntimeError(f"draw batching {simd!r} cannot run on this CPU")
        return _records(rc, "mcx_simulate", out, t0)

    def simulate_tile(self, params: np.ndarray, seed: int, t0: int, t1: int, lanes: int = LANE_W,
                      lane_stats: np.ndarray | None = None) -> np.ndarray:
        """Records (NFIELDS per row) of trials [t0, t1) by the device tile's code on the host: each
        trial run by ``lanes`` coroutines standing in for the lanes of a tile (kernels/lanes.h):
        LANE_W, a warp, or in a library built with -DMCX_HOST_TILE_WIDTHS
        (``CXX="g++ -DMCX_HOST_TILE_WIDTHS"``) also 8, a sub-warp tile, and 64, a tile of two warps
        (HOST_TILE_LANES). Slow: for tests of the tile formulation without a GPU, and for the
        tile's lane counters (lane_stats, as in ``simulate``)."""
        if lanes not in HOST_TILE_LANES:
            raise ValueError(f"lanes: {lanes!r} is not a tile width the host runs; valid: "
                             f"{', '.join(map(str, HOST_TILE_LANES))}")
        out = np.zeros((max(0, t1 - t0), NFIELDS), dtype=np.int64)
        rc = self.lib.mcx_simulate_tile(np.ascontiguousarray(params, dtype=np.int64),
                                        int(seed) & 0xFFFFFFFFFFFFFFFF, int(t0), int(t1), out,
                                        int(lanes), _counters(lane_stats))
        if rc == -4:
            raise ValueError("a tile runs page-level, untilted trials")
        if rc == -5:
            raise ValueError(f"lanes: {lanes} needs a library built with -DMCX_HOST_TILE_WIDTHS "
                             f"(CXX=\"g++ -DMCX_HOST_TILE_WIDTHS\"); this one runs {LANE_W}")
        return _records(rc, "mcx_simulate_tile", out, t0)


def _records(rc: int, entry: str, out: np.ndarray, t0: int) -> np.ndarray:
    """``out``, the records an entry point wrote, once its return code says it ran."""
    if rc != 0:
        raise RuntimeError(f"{entry} failed ({rc}): parameter block of another version?")
    check_no_progress(out, t0)
    return out


def _counters(a: np.ndarray | None):
    """The address of a lane-counter array for the C side (None: count nothing)."""
    if a is None:
        return None
    if a.dtype != np.int64 or a.shape != (len(LaneStat),) or not a.flags.c_contiguous:
        raise ValueError(f"lane_stats: an int64 array of {len(LaneStat)} (got {a.dtype} {a.shape})")
    return a.ctypes.data


def check_no_progress(mat: np.ndarray, t0: int) -> None:
    """The kernels write a record of all -1 where the numpy engine raises (no progress)."""
    bad = np.nonzero(mat[:, 0] < 0)[0]
    if len(bad):
        raise RuntimeError(f"simulation made no progress in trial {t0 + int(bad[0])} (zero-duration "
                           "loop in the timing parameters?)")


_lock = threading.Lock()
_loaded: dict[str, NativeLibrary] = {}

# build() logs COMPILE_NOTICE (INFO, extra mcx_compile="start") before a compile and an INFO record
# with mcx_compile="done", mcx_seconds after it; nothing when the library is in the cache.
log = logging.getLogger("mcexplore.engines.native")
COMPILE_NOTICE = "compiling the native engine (first use, cached afterwards)"


def build(overrides: dict | None = None, cxx: str | None = None) -> NativeLibrary:
    """Compile (or find in the cache) and load the native library of the current sources."""
    cxx = cxx or find_compiler()
    if cxx is None:
        raise CompileError("no C++ compiler found (set $CXX or install g++)")
    extra = shlex.split(os.environ.get("CXX", ""))[1:] if os.environ.get("CXX") else []
    options = tuple(extra) + CXX_OPTIONS + (GCC_OPTIONS if is_gcc(cxx) else ())
    src = kernel_source.load(options=options, compiler_id=compiler_id(cxx), overrides=overrides)
    with _lock:
        if src.key in _loaded:
            return _loaded[src.key]
        path = cache_dir() / f"mcexplore-native-{src.key[:32]}.so"
        if not path.is_file():
            # A notice through logging (the CLI prints it; a library user sees it only if asked).
            log.info(COMPILE_NOTICE, extra={"mcx_compile": "start", "mcx_path": str(path)})
            t = time.perf_counter()
            compile_source(src.code, path, cxx=cxx, options=options)
            dt = time.perf_counter() - t
            log.info("compiled the native engine in %.1f s", dt,
                     extra={"mcx_compile": "done", "mcx_seconds": dt, "mcx_path": str(path)})
        lib = NativeLibrary(path)
        _loaded[src.key] = lib
        return lib


class NativeEngine(Engine):
    name = "native"

    def __init__(self, nthreads: int | None = None, simd: str | None = None,
                 overrides: dict | None = None, sched: str | None = None,
                 lane_stats: bool = False):
        """overrides: kernel source name -> text replacing it in the build (tests: a library built
        from modified sources, e.g. a planted bug or a toy strategy; kernel_source.source_files).
        sched: the task scheduler (SCHED; default $MCEXPLORE_SCHED, else DEFAULT_SCHED). lane_stats: count
        lane utilisation (kernels/lanes.h; sched "lanes"): each run_records adds its counters to
        ``self.lane_counts`` (LaneStat order)."""
        self.nthreads = nthreads if nthreads is not None else _env_threads()
        if isinstance(self.nthreads, bool) or not isinstance(self.nthreads, int) or self.nthreads < 1:
            raise EngineConfigError(f"nthreads: {self.nthreads!r} is not valid: must be an integer >= 1")
        what = "MCEXPLORE_SIMD / simd" if simd is not None else "MCEXPLORE_SIMD"
        simd = simd if simd is not None else (os.environ.get("MCEXPLORE_SIMD", "").strip() or "auto")
        if simd != "auto" and simd not in SIMD:
            raise EngineConfigError(f"{what}: {simd!r} is not valid: choose one of auto, {', '.join(SIMD)}")
        self.simd = simd
        what = "MCEXPLORE_SCHED / sched" if sched is not None else "MCEXPLORE_SCHED"
        sched = sched if sched is not None else (os.environ.get("MCEXPLORE_SCHED", "").strip() or DEFAULT_SCHED)
        if sched not in SCHED:
            raise EngineConfigError(f"{what}: {sched!r} is not valid: choose one of {', '.join(SCHED)}")
        self.sched = sched
        self.lane_stats = bool(lane_stats)
        self.lane_counts = np.zeros(len(LaneStat), dtype=np.int64)
        self.overrides = dict(overrides) if overrides else None
        self._lib: NativeLibrary | None = None

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        try:
            cxx = find_compiler()
        except Exception as e:  # pragma: no cover
            return False, f"{type(e).__name__}: {e}"
        if cxx is None:
            return False, "no C++ compiler found: install g++ or set $CXX"
        return True, f"C++ compiler {cxx}"

    @property
    def lib(self) -> NativeLibrary:
        if self._lib is None:
            self._lib = build(overrides=self.overrides)
        return self._lib

    def prepare(self) -> None:
        """Build (or load from the cache) the library now (mcexplore.api calls it before timing)."""
        self.lib

    def run_records(self, compiled: Compiled, seed: int, t0: int, t1: int) -> Records:
        P = pack(compiled)
        counts = np.zeros(len(LaneStat), dtype=np.int64) if self.lane_stats else None
        mat = self.lib.simulate(P, seed, t0, t1, self.nthreads, self.simd, self.sched, counts)
        if counts is not None:
            self.lane_counts += counts
        return Records.from_matrix(t0, mat, int(P[Header.IS_NSLOT]))

    def default_batch(self, compiled: Compiled) -> int:
        # Batches of roughly equal work, so that progress is reported every few seconds.
        if compiled.block is None:
            return max(1024, min(1 << 16, (1 << 22) // max(1, int(compiled.page.mapcount))))
        return 1 << 10


class EngineConfigError(BackendUnavailable, ValueError):
    """A bad engine setting ($MCEXPLORE_THREADS, $MCEXPLORE_SIMD): the CLI prints it as one line
    and exits 2, as for any unusable backend."""


def _env_threads() -> int:
    """$MCEXPLORE_THREADS (an integer >= 1), else every core this process may use."""
    env = os.environ.get("MCEXPLORE_THREADS", "").strip()
    if not env:
        return _cpu_count()
    try:
        n = int(env)
    except ValueError:
        n = None
    if n is None or n < 1:
        raise EngineConfigError(f"MCEXPLORE_THREADS: {env!r} is not valid: must be an integer >= 1 "
                                f"(unset: every core, {_cpu_count()} here)")
    return n


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1
