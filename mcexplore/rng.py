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
which draws are consumed. One Philox block gives four 32-bit words x0..x3. A distribution uses
u1 = x0 << 32 | x1 to choose its leaf (only when it has more than one) and u2 = x2 << 32 | x3 inside
the leaf; transient references (mcexplore.transient) read u1 against 64-bit Poisson thresholds.

Sampling uses integer arithmetic only, so that the GPU and the host agree bit for bit: a compiled
distribution (mcexplore.params.CompiledDist) is a list of leaves with 64-bit cumulative thresholds,
each leaf uniform on a fixed-point segment (ns * 2**16; width 0 for a constant) or an exponential
(leading zeros of u2 plus a fixed-point mantissa table); the value is floored to whole ns at the end.
"""

from __future__ import annotations

import numpy as np

from . import constants as _K
from .constants import EXP_TABLE_BITS, FP_BITS, Leaf, Purpose

# Purposes (the top byte of counter word 1; fixed forever) under their short names.
UNMAP, REMAP, PRE_FREEZE, FREEZE_HOLD, COPY, FREE_DELAY, GAP, TRANSIENT = (
    Purpose.UNMAP, Purpose.REMAP, Purpose.PRE_FREEZE, Purpose.FREEZE_HOLD, Purpose.COPY, Purpose.FREE_DELAY,
    Purpose.GAP, Purpose.TRANSIENT)
ACCESS, FAULT_ENTRY, PTL_HOLD, DROP_HOLD, NOREF_GAP, LOCK_HOLD, WAKE, MIG_WAKE = (
    Purpose.ACCESS, Purpose.FAULT_ENTRY, Purpose.PTL_HOLD, Purpose.DROP_HOLD, Purpose.NOREF_GAP,
    Purpose.LOCK_HOLD, Purpose.WAKE, Purpose.MIG_WAKE)

PHILOX_M0 = np.uint64(_K.PHILOX_M0)
PHILOX_M1 = np.uint64(_K.PHILOX_M1)
PHILOX_W0 = np.uint64(_K.PHILOX_W0)
PHILOX_W1 = np.uint64(_K.PHILOX_W1)
_MASK32 = np.uint64(0xFFFFFFFF)
_PAGE_MASK = np.uint64((1 << _K.PAGE_BITS) - 1)
_SUB_MASK = np.uint64((1 << _K.SUB_BITS) - 1)
_S32 = np.uint64(32)

LEAF_SEG, LEAF_EXP = int(Leaf.SEG), int(Leaf.EXP)
EXP_TABLE_POINTS = (1 << EXP_TABLE_BITS) + 1


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
    c1 = (np.uint64(purpose) << np.uint64(_K.PAGE_BITS)) | (np.asarray(page, dtype=np.uint64) & _PAGE_MASK)
    c3 = (np.asarray(i, dtype=np.uint64) << np.uint64(_K.SUB_BITS)) | (np.asarray(sub, dtype=np.uint64) & _SUB_MASK)
    return philox4x32(trial, c1, np.asarray(k, dtype=np.uint64), c3,
                      seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF)


def mulhi64(a, b):
    """High 64 bits of the 128-bit product of uint64 values (kernels' mcx_mulhi64), from 32-bit pieces."""
    a = np.asarray(a, dtype=np.uint64)
    return _mulhi_arrays(a >> _S32, a & _MASK32, np.asarray(b, dtype=np.uint64))


def _clz64(u):
    """Leading zeros of uint64 values (64 for 0), exactly: the float64 exponent gives the bit length
    or one more (u rounded up to a power of two), which an integer shift then tells apart."""
    u = np.asarray(u, dtype=np.uint64)
    e = np.minimum(np.frexp(u.astype(np.float64))[1], 64)  # bit length, or bit length + 1
    low = (u >> np.maximum(e - 1, 0).astype(np.uint64)) == 0  # the bit length is e - 1
    return np.where(u == 0, 64, 64 - e + low).astype(np.int64)


def exp_leaf_value(z, s, val, table, off):
    """The fixed-point value of an EXP leaf for leading zeros z and normalised word s = u << z.

    v = z * val + T[i] - mulhi64(T[i] - T[i+1], s << 14) with i = (s >> 50) & 0x1FFF: T tabulates
    -mean*ln(m) * 2**fp on m = 1/2 + j/16384 (j = 0..8192) and val = T[0] = mean*ln2 * 2**fp
    (rounded), so that each leading zero adds exactly what halving the uniform adds. The 50 bits of
    s below the index interpolate (s << 14 is their 64-bit fraction). Non-increasing in s. The
    leaf's own fixed point fp (params.exp_component) is applied by the caller.
    """
    idx = ((s >> np.uint64(50)) & np.uint64(0x1FFF)).astype(np.int64) + off
    lo = table[idx]
    hi = table[idx + 1]
    d = mulhi64((lo - hi).astype(np.uint64), s << np.uint64(14)).astype(np.int64)
    return z * val + lo - d


def sample_leaf(dist, words):
    """``sample`` and the leaf each value came from: (int64 values, int64 leaf indices).

    The leaf is what a tilted run counts (params.TiltLayout): it is chosen from u1 exactly as
    ``sample`` chooses it (leaf 0 for a distribution of one leaf).
    """
    v = sample(dist, words)
    if dist.nleaf == 1:
        return v, np.zeros(v.shape, dtype=np.int64)
    x0, x1 = (np.asarray(w, dtype=np.uint64) for w in words[:2])
    u1 = _full((x0 << _S32) | x1, v.shape)
    return v, np.searchsorted(dist._search, u1, side="right").astype(np.int64)


def sample(dist, words):
    """Sample a compiled distribution (a params.CompiledDist) from Philox words -> int64 nanoseconds.

    Integer only, bit for bit kernels/sample.h (mcx_sample):

    * the leaf: with more than one leaf, u1 = x0 << 32 | x1 picks leaf c, the first with
      u1 < cum[c] (the last leaf takes the rest), so leaf c has probability
      (cum[c] - cum[c-1]) / 2**64; a distribution of one leaf reads neither x0 nor x1;
    * within the leaf, u2 = x2 << 32 | x3:
      SEG: v = (lo + mulhi64(u2, width)) >> FP_BITS, lo and width in ns * 2**FP_BITS;
      EXP: u = u2 (0 -> 1), z = clz64(u), s = u << z, v = exp_leaf_value(...) >> shift, the
      leaf's own fixed point (as fine as its values allow: 64 * val < 2**62).

    dist: a CompiledDist (cum, kind, a, b, shift, tables); words: the (x0, x1, x2, x3) of draw_words.
    """
    x0, x1, x2, x3 = (np.asarray(w, dtype=np.uint64) for w in words[:4])
    shape = np.broadcast(x0, x1, x2, x3).shape
    if dist.nleaf == 1:
        a0, b0 = int(dist.a[0]), int(dist.b[0])
        if int(dist.kind[0]) == LEAF_SEG:
            if b0 == 0:  # a constant: no word read
                return np.full(shape, a0 >> FP_BITS, dtype=np.int64)
            v = np.uint64(a0) + _mulhi_pieces(x2, x3, b0)
            return np.broadcast_to(v >> np.uint64(FP_BITS), shape).astype(np.int64)
        u2 = _full((x2 << _S32) | x3, shape)
        return _exp_value(u2, np.int64(a0), dist.tables, b0) >> int(dist.shift[0])
    c = np.searchsorted(dist._search, _full((x0 << _S32) | x1, shape), side="right")
    hi, lo = _full(x2, shape), _full(x3, shape)
    b = dist._bseg_u[c]  # EXP leaves: 0
    if dist._narrow:  # every width < 2**32: mulhi64 of (hi, lo) and b in three products
        hl = hi * b
        m = (hl >> _S32) + ((((lo * b) >> _S32) + (hl & _MASK32)) >> _S32)
    else:
        m = _mulhi_arrays(hi, lo, b)
    out = ((dist._a_u[c] + m) >> np.uint64(FP_BITS)).astype(np.int64)
    if dist._has_exp:
        e = dist._is_exp[c]
        if e.any():
            ce = c[e]
            u2 = (hi[e] << _S32) | lo[e]
            out[e] = _exp_value(u2, dist.a[ce], dist.tables, dist.b[ce]) >> dist.shift[ce]
    return out


def _full(x, shape):
    return x if x.shape == shape else np.broadcast_to(x, shape)


def _mulhi_pieces(hi, lo, b: int):
    """mulhi64(hi << 32 | lo, b) for 32-bit word arrays hi, lo and a Python int b < 2**64."""
    bl, bh = np.uint64(b & 0xFFFFFFFF), np.uint64(b >> 32)
    hl = hi * bl
    mid = ((lo * bl) >> _S32) + (hl & _MASK32)
    if bh == 0:
        return (hl >> _S32) + (mid >> _S32)
    lh = lo * bh
    mid = mid + (lh & _MASK32)
    return hi * bh + (lh >> _S32) + (hl >> _S32) + (mid >> _S32)


def _mulhi_arrays(hi, lo, b):
    """mulhi64(hi << 32 | lo, b) for 32-bit word arrays hi, lo and a uint64 array b."""
    bl, bh = b & _MASK32, b >> _S32
    hl = hi * bl
    lh = lo * bh
    mid = ((lo * bl) >> _S32) + (hl & _MASK32) + (lh & _MASK32)  # < 3 * 2**32: no overflow
    return hi * bh + (lh >> _S32) + (hl >> _S32) + (mid >> _S32)


def _exp_value(u2, val, table, off):
    """An EXP leaf's fixed-point value from its uniform u2 (0 counts as 1)."""
    u = u2 + (u2 == 0).astype(np.uint64)
    z = _clz64(u)
    return exp_leaf_value(z, u << z.astype(np.uint64), val, table, off)

