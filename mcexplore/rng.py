"""Counter-based randomness shared by every engine: Philox4x32-10 and integer-only sampling.

Where it sits: below the engines. The numpy engine calls these functions directly; the CUDA/C++
kernels (kernels/philox.h, kernels/sample.h) implement the same arithmetic, and the parity tests
hold the two to the same bits.

Layout of one draw (docs/model.md, "Randomness"):

    key     = (seed & 0xffffffff, seed >> 32)
    counter = (trial & 0xffffffff,
               purpose << 24 | page & 0xffffff,
               k (attempt number, 1-based),
               i << 20 | sub & 0xfffff)          i: PTE/task index (1-based), 0 for the migrator

so every draw is a pure function of (seed, trial, purpose, page, k, i, sub), never of the order in
which draws are consumed. One Philox block gives four 32-bit words x0..x3: x0 chooses a mixture
component (and decides Bernoulli draws), x1 feeds a quantile table, (x1, x2) the 64-bit uniform of
an exponential.

Sampling uses integer arithmetic only, so that the GPU and the host agree bit for bit: quantile
tables of 4097 int64 nanosecond values are built once on the host (mcexplore.compile), and a
draw interpolates linearly between two of them with a 20-bit fraction.
"""

from __future__ import annotations

import numpy as np

# Purposes: the top byte of counter word 1. Fixed forever: changing one changes every result.
UNMAP = 1
REMAP = 2
PRE_FREEZE = 3
FREEZE_HOLD = 4
COPY = 5
FREE_DELAY = 6
GAP = 7
TRANSIENT = 8
ACCESS = 9
FAULT_ENTRY = 10
PTL_HOLD = 11
DROP_HOLD = 12
NOREF_GAP = 13
LOCK_HOLD = 14
WAKE = 15
MIG_WAKE = 16

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint64(0x9E3779B9)
PHILOX_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

# Component kinds of a compiled distribution (see mcexplore.compile).
KIND_CONST = 0
KIND_TABLE = 1
KIND_EXP = 2
TABLE_BITS = 12
TABLE_POINTS = (1 << TABLE_BITS) + 1
FRAC_BITS = 20


def philox4x32(c0, c1, c2, c3, k0, k1, rounds: int = 10):
    """Philox4x32-R on arrays (broadcast); returns four uint64 arrays holding 32-bit words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _MASK32 for c in (c0, c1, c2, c3))
    k0 = np.asarray(k0, dtype=np.uint64) & _MASK32
    k1 = np.asarray(k1, dtype=np.uint64) & _MASK32
    for r in range(rounds):
        if r:
            k0 = (k0 + PHILOX_W0) & _MASK32
            k1 = (k1 + PHILOX_W1) & _MASK32
        p0 = PHILOX_M0 * c0
        p1 = PHILOX_M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> _S32) ^ c1 ^ k0,
            p1 & _MASK32,
            (p0 >> _S32) ^ c3 ^ k1,
            p0 & _MASK32,
        )
    return c0, c1, c2, c3


def draw_words(seed: int, trial, purpose: int, page, k, i, sub):
    """The four words of the draw named by (seed, trial, purpose, page, k, i, sub)."""
    seed = int(seed)
    trial = np.asarray(trial, dtype=np.uint64)
    c1 = (np.uint64(purpose) << np.uint64(24)) | (np.asarray(page, dtype=np.uint64) & np.uint64(0xFFFFFF))
    c3 = (np.asarray(i, dtype=np.uint64) << np.uint64(20)) | (np.asarray(sub, dtype=np.uint64) & np.uint64(0xFFFFF))
    return philox4x32(trial, c1, np.asarray(k, dtype=np.uint64), c3,
                      seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)


def _clz64(u):
    """Leading zeros of uint64 values (64 for 0), by binary search: exact, unlike float log2."""
    u = u.copy()
    z = np.zeros(u.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        small = (u >> np.uint64(64 - s)) == 0
        z += np.where(small, s, 0)
        u = np.where(small, u << np.uint64(s), u)
    z += (u == 0).astype(np.int64)  # all 64 bits zero
    return z


def sample(dist, words):
    """Sample a compiled distribution (a CompiledDist) from Philox words -> int64 nanoseconds.

    dist: object with ncomp, thresh (uint64[4]), kind (int[4]), val (int64[4]), off (int64[4])
    and tables (int64 array). words: the (x0, x1, x2, x3) of draw_words.
    """
    x0, x1, x2, _ = words
    shape = np.broadcast(x0, x1).shape
    out = np.zeros(shape, dtype=np.int64)
    comp = np.zeros(shape, dtype=np.int64)
    for c in range(dist.ncomp - 1):
        comp += (x0 >= np.uint64(dist.thresh[c])).astype(np.int64)
    tables = dist.tables
    for c in range(dist.ncomp):
        sel = comp == c
        if not sel.any():
            continue
        kind = dist.kind[c]
        if kind == KIND_CONST:
            out = np.where(sel, np.int64(dist.val[c]), out)
        elif kind == KIND_TABLE:
            idx = (x1 >> np.uint64(FRAC_BITS)).astype(np.int64) + int(dist.off[c])
            frac = (x1 & np.uint64((1 << FRAC_BITS) - 1)).astype(np.int64)
            lo = tables[idx]
            hi = tables[idx + 1]
            v = lo + (((hi - lo) * frac) >> FRAC_BITS)
            out = np.where(sel, v, out)
        else:  # KIND_EXP
            u = (x1 << _S32) | x2
            u = np.where(u == 0, np.uint64(1), u)
            z = _clz64(u)
            shifted = u << z.astype(np.uint64)
            idx = ((shifted >> np.uint64(51)) & np.uint64(0xFFF)).astype(np.int64) + int(dist.off[c])
            frac = ((shifted >> np.uint64(31)) & np.uint64(0xFFFFF)).astype(np.int64)
            lo = tables[idx]
            hi = tables[idx + 1]
            v = z * np.int64(dist.val[c]) + lo - (((lo - hi) * frac) >> FRAC_BITS)
            out = np.where(sel, v, out)
    return out


def bernoulli(thresh: int, words):
    """True with probability thresh / 2**32, decided by word x0."""
    return words[0] < np.uint64(thresh)
