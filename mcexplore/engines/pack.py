"""Pack a ``Compiled`` into the flat int64 parameter block that the C++/CUDA kernels read.

Where it sits: between mcexplore.params (the compiled scenario) and the compiled engines
(mcexplore.engines.native, mcexplore.engines.cupy_engine). kernels/params.h is the reader; the two
must agree word for word, and both document the layout:

    P[0 .. HDR_WORDS)        header (H_* below): magic, version, length, strategy, options, budgets,
                             level, batch_pages, and the counts/offsets of the sections below
    P[class_off ..)          nclasses records of CLASS_WORDS words:
                             count, file, mapcount, active, access_dist, first_page, sim_off, 0
    P[dist_off ..)           ndists descriptors of DIST_WORDS words:
                             ncomp, thresh[4], kind[4], val[4], off[4] (absolute offsets into P), 0 x3
    P[tables_off ..)         every distribution's quantile tables, concatenated
    P[thr_off .. len)        transient references: the windows' Poisson count thresholds (uint64;
                             mcexplore.transient), with model, W, H, count and offset in the header

Distributions 0..14 are ``compiled.dists`` in DIST_NAMES order (any further entries of
``compiled.dists`` follow, which the sampling tests use). A class record's ``access_dist`` names
the distribution of its tasks' next access, -1 if they never touch the page: at page level the
single class is ``compiled.page`` and its access distribution is ``dists["access"]`` (index 14) when
``access_mean_ns > 0``, as in the numpy engine; at block level each class whose tasks touch the
page gets an exponential with its own mean, appended after the named ones.
"""

from __future__ import annotations

import numpy as np

from .. import transient
from ..params import DIST_INDEX, Compiled, CompiledDist, PageClass, exponential

MAGIC = 0x314D524150584D43  # b"CMXPARM1" read as a little-endian int64
VERSION = 1

H_MAGIC, H_VERSION, H_LEN, H_STRATEGY, H_RECHECK, H_FLAG_FROM_UNMAP_END = range(6)
H_PASSES, H_TRYLOCK_PASSES, H_TIMEOUT_NS, H_MAX_ATTEMPTS, H_TRANSIENT_MODEL = range(6, 11)
H_LEVEL, H_BATCH_PAGES, H_NCLASSES, H_CLASS_OFF, H_NDISTS, H_DIST_OFF = range(11, 17)
H_TABLES_OFF, H_NPAGES, H_MAX_MAPCOUNT, H_SCRATCH_WORDS = range(17, 21)
H_TRANSIENT_W, H_TRANSIENT_HMAX, H_TRANSIENT_NTHR, H_TRANSIENT_THR_OFF = range(21, 25)
HDR_WORDS = 32

C_COUNT, C_FILE, C_MAPCOUNT, C_ACTIVE, C_ACCESS_DIST, C_FIRST_PAGE, C_SIM_OFF = range(7)
CLASS_WORDS = 8

D_NCOMP, D_THRESH, D_KIND, D_VAL, D_OFF = 0, 1, 5, 9, 13
DIST_WORDS = 20


def classes_of(compiled: Compiled) -> list[PageClass]:
    return [compiled.page] if compiled.block is None else list(compiled.block)


def access_dist(cls: PageClass) -> CompiledDist | None:
    """Block level: the exponential access distribution of a hot class's tasks (None: cold).

    numpy_block gives each hot page's simulation ``exponential(class.access_mean_ns)``.
    """
    if is_hot(cls):
        return exponential(cls.access_mean_ns)
    return None


TASK_WORDS = 13  # MCX_TW in kernels/engine.h: per-task state words
SIM_WORDS = 18  # MCX_SIMW in kernels/engine.h: a saved page simulation (block level)


def is_hot(cls: PageClass) -> bool:
    """A page class whose tasks touch the page: simulated with its tasks (else the cold path)."""
    return cls.active > 0 and cls.access_mean_ns > 0


def sim_offsets(compiled: Compiled) -> list[int]:
    """Block level: scratch offset of each class's page simulations (-1 for a cold class)."""
    classes = classes_of(compiled)
    pos = sum(int(c.count) for c in classes) + int(compiled.batch_pages)
    out = []
    for cls in classes:
        if is_hot(cls):
            out.append(pos)
            pos += int(cls.count) * (SIM_WORDS + TASK_WORDS * int(cls.active))
        else:
            out.append(-1)
    return out


def scratch_words(compiled: Compiled) -> int:
    """Per-trial scratch (int64 words) the engine needs beyond registers (kernels/engine.h).

    Page level: TASK_WORDS per task that touches the page. Block level: one word per page, one
    per batch slot, and for every hot page a saved simulation with its tasks' words.
    """
    if compiled.block is None:
        pc = compiled.page
        return TASK_WORDS * (int(pc.active) if pc.access_mean_ns > 0 else 0)
    classes = classes_of(compiled)
    total = sum(int(c.count) for c in classes) + int(compiled.batch_pages)
    for cls in classes:
        if is_hot(cls):
            total += int(cls.count) * (SIM_WORDS + TASK_WORDS * int(cls.active))
    return total


def pack(compiled: Compiled) -> np.ndarray:
    """The int64 parameter block of ``compiled`` (see the module docstring)."""
    classes = classes_of(compiled)
    dists = list(compiled.dists)
    class_access = []
    for cls in classes:
        if compiled.block is None:
            class_access.append(DIST_INDEX["access"] if cls.access_mean_ns > 0 else -1)
            continue
        d = access_dist(cls)
        if d is None:
            class_access.append(-1)
        else:
            class_access.append(len(dists))
            dists.append(d)

    class_off = HDR_WORDS
    dist_off = class_off + CLASS_WORDS * len(classes)
    tables_off = dist_off + DIST_WORDS * len(dists)
    total = tables_off + sum(int(len(d.tables)) for d in dists)
    P = np.zeros(total, dtype=np.int64)

    P[H_MAGIC] = MAGIC
    P[H_VERSION] = VERSION
    P[H_LEN] = total
    P[H_STRATEGY] = int(compiled.strategy)
    P[H_RECHECK] = int(bool(compiled.recheck))
    P[H_FLAG_FROM_UNMAP_END] = int(bool(compiled.flag_from_unmap_end))
    P[H_PASSES] = int(compiled.passes)
    P[H_TRYLOCK_PASSES] = int(compiled.trylock_passes)
    P[H_TIMEOUT_NS] = int(compiled.timeout_ns)
    P[H_MAX_ATTEMPTS] = int(compiled.max_attempts)
    P[H_LEVEL] = 0 if compiled.block is None else 1
    P[H_BATCH_PAGES] = int(compiled.batch_pages)
    P[H_NCLASSES] = len(classes)
    P[H_CLASS_OFF] = class_off
    P[H_NDISTS] = len(dists)
    P[H_DIST_OFF] = dist_off
    P[H_TABLES_OFF] = tables_off
    P[H_NPAGES] = sum(int(c.count) for c in classes)
    P[H_MAX_MAPCOUNT] = max((int(c.mapcount) for c in classes), default=0)
    P[H_SCRATCH_WORDS] = scratch_words(compiled)

    first = 0
    sim_off = sim_offsets(compiled) if compiled.block is not None else [-1] * len(classes)
    for j, cls in enumerate(classes):
        base = class_off + j * CLASS_WORDS
        P[base + C_COUNT] = int(cls.count)
        P[base + C_FILE] = int(bool(cls.file))
        P[base + C_MAPCOUNT] = int(cls.mapcount)
        P[base + C_ACTIVE] = int(cls.active)
        P[base + C_ACCESS_DIST] = class_access[j]
        P[base + C_FIRST_PAGE] = first
        P[base + C_SIM_OFF] = sim_off[j]
        first += int(cls.count)

    pos = tables_off
    for j, d in enumerate(dists):
        base = dist_off + j * DIST_WORDS
        P[base + D_NCOMP] = int(d.ncomp)
        for c in range(4):
            P[base + D_THRESH + c] = int(d.thresh[c])
            P[base + D_KIND + c] = int(d.kind[c])
            P[base + D_VAL + c] = int(d.val[c])
            P[base + D_OFF + c] = pos + int(d.off[c])
        n = int(len(d.tables))
        P[pos:pos + n] = np.asarray(d.tables, dtype=np.int64)
        pos += n
    assert pos == total
    return _with_transient(P, compiled)


def dist_index_of(compiled: Compiled, name_or_index) -> int:
    """Index in the packed block of a named distribution (DIST_NAMES) or a raw index."""
    from ..params import DIST_INDEX

    if isinstance(name_or_index, str):
        return DIST_INDEX[name_or_index]
    return int(name_or_index)


def _with_transient(P: np.ndarray, compiled: Compiled) -> np.ndarray:
    """The transient references' header words, and their Poisson thresholds appended to P."""
    lay = transient.layout(compiled)
    thr = np.zeros(0, dtype=np.uint64) if lay.thresholds is None else lay.thresholds
    off = len(P)
    P = np.concatenate([P, thr.view(np.int64)])
    P[H_LEN] = len(P)
    P[H_TRANSIENT_MODEL] = lay.model
    P[H_TRANSIENT_W] = lay.window_ns
    P[H_TRANSIENT_HMAX] = lay.hold_max_ns
    P[H_TRANSIENT_NTHR] = len(thr)
    P[H_TRANSIENT_THR_OFF] = off
    return P
