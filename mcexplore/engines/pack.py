"""Pack a ``Compiled`` into the flat int64 parameter block that the C++/CUDA kernels read.

Where it sits: between mcexplore.params (the compiled scenario) and the compiled engines
(mcexplore.engines.native, mcexplore.engines.cupy_engine). kernels/params.h is the reader; the two
must agree word for word, and both document the layout:

    P[0 .. HDR_WORDS)        header (mcexplore.constants.Header): magic, version, length, strategy, options, budgets,
                             level, batch_pages, and the counts/offsets of the sections below
    P[class_off ..)          nclasses records of CLASS_WORDS words:
                             count, file, mapcount, active, access_dist, first_page, sim_off, 0
    P[dist_off ..)           ndists descriptors of DIST_WORDS words (constants.DistWord):
                             nleaf, guide_bits G, leaf_off, guide_off, then leaf 0 inline
                             (kind, a, b) and const (the value in ns of a constant distribution,
                             -1 for any other); offsets are absolute word indices into P
    P[tables_off ..)         per distribution, in order: its nleaf leaf records of LEAF_WORDS words
                             (cum as uint64, kind, a, b; an EXP leaf's kind is 1 | shift << 8,
                             shift its fixed point, and its b the absolute offset of its table),
                             its guide table (2**G leaf indices, G > 0 only) and its EXP tables
                             (8193 words each); see mcexplore.params for the meaning
    P[thr_off ..)            transient references: the windows' Poisson count thresholds (uint64;
                             mcexplore.transient), with model, W, H, count and offset in the header
    P[is_map_off .. len)     importance sampling (a tilted Compiled only; params.TiltLayout):
                             ndists words, the offset of distribution d's leaf table or -1 (not
                             counted), then each counted distribution's table of 2 * nleaf words,
                             (count slot, total slot or -1) per leaf; the header's IS_NSLOT (0:
                             untilted, nothing is counted), IS_MAP_OFF and IS_TRANSIENT_SLOT

Distributions 0..NAMED_DISTS-1 are ``compiled.dists`` in DIST_NAMES order (any further entries of
``compiled.dists`` follow, which the sampling tests use). A class record's ``access_dist`` names
the distribution of its tasks' next access, -1 if they never touch the page: at page level the
single class is ``compiled.page`` and its access distribution is ``dists["access"]`` (Dist.ACCESS) when
``access_mean_ns > 0``, as in the numpy engine; at block level each class whose tasks touch the
page gets an exponential with its own mean, appended after the named ones.
"""

from __future__ import annotations

import numpy as np

from .. import transient
from ..constants import (CLASS_WORDS, DIST_WORDS, HDR_WORDS, LEAF_WORDS, PARAMS_MAGIC, PARAMS_VERSION,  # noqa: F401
                         SIM_WORDS, TASK_WORDS, ClassWord, DistWord, Header, LeafWord)
from ..params import DIST_INDEX, LEAF_EXP, Compiled, CompiledDist, PageClass, exponential


def classes_of(compiled: Compiled) -> list[PageClass]:
    return [compiled.page] if compiled.block is None else list(compiled.block)


def access_dist(cls: PageClass) -> CompiledDist | None:
    """Block level: the exponential access distribution of a hot class's tasks (None: cold).

    numpy_block gives each hot page's simulation ``exponential(class.access_mean_ns)``.
    """
    if is_hot(cls):
        return exponential(cls.access_mean_ns)
    return None


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
    """Per-trial scratch (int64 words) the engine needs beyond registers (kernels/page.h, block.h).

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
    total = tables_off + sum(dist_words(d) for d in dists)
    P = np.zeros(total, dtype=np.int64)

    P[Header.MAGIC] = PARAMS_MAGIC
    P[Header.VERSION] = PARAMS_VERSION
    P[Header.LEN] = total
    P[Header.STRATEGY] = int(compiled.strategy)
    P[Header.RECHECK] = int(bool(compiled.recheck))
    P[Header.FLAG_FROM_UNMAP_END] = int(bool(compiled.flag_from_unmap_end))
    P[Header.PASSES] = int(compiled.passes)
    P[Header.TRYLOCK_PASSES] = int(compiled.trylock_passes)
    P[Header.TIMEOUT_NS] = int(compiled.timeout_ns)
    P[Header.MAX_ATTEMPTS] = int(compiled.max_attempts)
    P[Header.LEVEL] = 0 if compiled.block is None else 1
    P[Header.BATCH_PAGES] = int(compiled.batch_pages)
    P[Header.NCLASSES] = len(classes)
    P[Header.CLASS_OFF] = class_off
    P[Header.NDISTS] = len(dists)
    P[Header.DIST_OFF] = dist_off
    P[Header.TABLES_OFF] = tables_off
    P[Header.NPAGES] = sum(int(c.count) for c in classes)
    P[Header.MAX_MAPCOUNT] = max((int(c.mapcount) for c in classes), default=0)
    P[Header.SCRATCH_WORDS] = scratch_words(compiled)

    first = 0
    sim_off = sim_offsets(compiled) if compiled.block is not None else [-1] * len(classes)
    for j, cls in enumerate(classes):
        base = class_off + j * CLASS_WORDS
        P[base + ClassWord.COUNT] = int(cls.count)
        P[base + ClassWord.FILE] = int(bool(cls.file))
        P[base + ClassWord.MAPCOUNT] = int(cls.mapcount)
        P[base + ClassWord.ACTIVE] = int(cls.active)
        P[base + ClassWord.ACCESS_DIST] = class_access[j]
        P[base + ClassWord.FIRST_PAGE] = first
        P[base + ClassWord.SIM_OFF] = sim_off[j]
        first += int(cls.count)

    pos = tables_off
    for j, d in enumerate(dists):
        pos = _pack_dist(P, dist_off + j * DIST_WORDS, pos, d)
    assert pos == total
    return _with_tilt(_with_transient(P, compiled), compiled, len(dists))


def dist_words(d: CompiledDist) -> int:
    """Words of the tables section that distribution d takes."""
    g = d.guide_bits
    return LEAF_WORDS * d.nleaf + ((1 << g) if g else 0) + int(len(d.tables))


def _kind_word(kind: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """A leaf's kind word: LEAF_SEG (0), or LEAF_EXP | shift << 8 (the EXP leaf's fixed point)."""
    return np.where(kind == LEAF_EXP, kind | (shift << 8), kind).astype(np.int64)


def _pack_dist(P: np.ndarray, base: int, pos: int, d: CompiledDist) -> int:
    """Write d's descriptor at base and its leaves, guide and tables from pos; returns the end."""
    n, g = d.nleaf, d.guide_bits
    leaf_off = pos
    guide_off = leaf_off + LEAF_WORDS * n
    tab_off = guide_off + ((1 << g) if g else 0)
    b = np.where(d.kind == LEAF_EXP, d.b + tab_off, d.b).astype(np.int64)
    rec = P[leaf_off:guide_off].reshape(n, LEAF_WORDS)
    rec[:, LeafWord.CUM] = d.cum.view(np.int64)
    rec[:, LeafWord.KIND] = _kind_word(d.kind, d.shift)
    rec[:, LeafWord.A] = d.a
    rec[:, LeafWord.B] = b
    if g:
        P[guide_off:tab_off] = d.guide()
    P[tab_off:tab_off + len(d.tables)] = np.asarray(d.tables, dtype=np.int64)
    P[base + DistWord.NLEAF] = n
    P[base + DistWord.GUIDE_BITS] = g
    P[base + DistWord.LEAF_OFF] = leaf_off
    P[base + DistWord.GUIDE_OFF] = guide_off if g else 0
    P[base + DistWord.KIND] = int(_kind_word(d.kind, d.shift)[0])
    P[base + DistWord.A] = int(d.a[0])
    P[base + DistWord.B] = int(b[0])
    P[base + DistWord.CONST] = d.const_ns if d.is_const else -1
    return tab_off + len(d.tables)


def _with_transient(P: np.ndarray, compiled: Compiled) -> np.ndarray:
    """The transient references' header words, and their Poisson thresholds appended to P."""
    lay = transient.layout(compiled)
    thr = np.zeros(0, dtype=np.uint64) if lay.thresholds is None else lay.thresholds
    off = len(P)
    P = np.concatenate([P, thr.view(np.int64)])
    P[Header.LEN] = len(P)
    P[Header.TRANSIENT_MODEL] = lay.model
    P[Header.TRANSIENT_W] = lay.window_ns
    P[Header.TRANSIENT_HMAX] = lay.hold_max_ns
    P[Header.TRANSIENT_NTHR] = len(thr)
    P[Header.TRANSIENT_THR_OFF] = off
    return P


def _with_tilt(P: np.ndarray, compiled: Compiled, ndists: int) -> np.ndarray:
    """The importance-sampling map appended to P (see the module docstring)."""
    lay = compiled.tilt
    P[Header.IS_TRANSIENT_SLOT] = -1
    if lay is None or lay.nslot == 0:
        return P
    off = len(P)
    words = [np.full(ndists, -1, dtype=np.int64)]
    pos = off + ndists
    for d in sorted(lay.dist_slots):
        count, total = (np.asarray(v, dtype=np.int64) for v in lay.dist_slots[d])
        words[0][d] = pos
        words.append(np.stack([count, total], axis=1).reshape(-1))
        pos += 2 * len(count)
    P = np.concatenate([P] + words)
    P[Header.LEN] = len(P)
    P[Header.IS_NSLOT] = lay.nslot
    P[Header.IS_MAP_OFF] = off
    P[Header.IS_TRANSIENT_SLOT] = lay.transient_slot
    return P
