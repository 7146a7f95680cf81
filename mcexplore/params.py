"""The compiled form of a scenario: flat integers and tables that every engine consumes.

Where it sits: between the scenario layer (mcexplore.scenario validates a config and calls
``compile_*`` here) and the engines (numpy, native, cupy), which see nothing but these objects.
Everything is integer: times in int64 nanoseconds, probabilities as integer thresholds.

Distributions (docs/model.md, "Randomness"). A ``CompiledDist`` is a flat list of *leaves*, each
chosen with an exact 64-bit probability: leaf c is the first with u1 < cum[c], u1 = x0 << 32 | x1
(the last leaf takes the rest), so its probability is (cum[c] - cum[c-1]) / 2**64; a distribution
of one leaf reads no word for the choice. Within the leaf, u2 = x2 << 32 | x3 and values are in
fixed point, ns * 2**FP_BITS (FP_BITS = 16; an EXP leaf has its own), floored to whole ns at the end:

* SEG (lo, width): ``(lo + mulhi64(u2, width)) >> 16``, the floor of a value uniform on
  [lo, lo + width). A constant is a SEG of width 0 (lo = round(value) << 16). Histogram buckets,
  empirical segments and ``uniform`` are SEG leaves, so they are sampled exactly; a tabulated
  continuous distribution (lognormal, ``table_component(q)``) is a list of SEG leaves between
  breakpoints of a probability grid refined until the CDF is within ``_grid_tol`` of q's everywhere
  (see ``table_component``), with the outermost 2**-32 of mass per side at the clip quantile.
* EXP (val, table, fp): u = u2 (0 -> 1), z = clz64(u), s = u << z; the value is
  (z * val + T[i] - mulhi64(T[i] - T[i+1], s << 14)) >> fp, i = (s >> 50) & 0x1FFF, where T
  (8193 points) tabulates -mean * ln(m) * 2**fp on m in [1/2, 1] and val = T[0] =
  round(mean ln 2 * 2**fp): the exponential of -mean * ln(u / 2**64), cut only at u = 2**-64. The
  leaf's fixed point fp is its own, as fine as 64 * val < 2**62 allows (exp_shift).

Mixtures of any number of components, nested or not, flatten into one leaf list: weights are
multiplied in float64 and the cumulative thresholds computed from them with exact integer
arithmetic, so a weight of 1e-10 is 1e-10 to 64-bit resolution (a weight below 2**-65 rounds to no
leaf). With GUIDE_MIN_LEAVES leaves or more the kernels find the leaf through a guide table
(Chen and Asau): 2**G >= n entries, entry j the leaf of u1 = j << (64 - G), then a scan, O(1) on
average; with fewer they scan from leaf 0.

Clipping: segment ends and exponential means are clipped to [0, CLIP_NS] (2**40 ns, 18 minutes),
so fixed-point values stay below 2**62 and no int64 overflows anywhere; an exponential's largest
value is 64 * mean * ln 2 < 2**46 ns.

``CompiledDist.cdf`` gives the exact distribution the sampler implements (it is a finite table),
``mean_ns`` its mean, ``max_ns`` a bound on its values; tests/test_sampling.py compares them with the
specified distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import strategies
from .constants import DIST_NAMES
from .rng import EXP_TABLE_POINTS, FP_BITS, LEAF_EXP, LEAF_SEG, exp_leaf_value

# Order of the distributions in the compiled arrays: mcexplore.constants.Dist.
DIST_INDEX = {n: i for i, n in enumerate(DIST_NAMES)}

CLIP_NS = 1 << 40  # segment ends and exponential means are clipped to [0, CLIP_NS]
FP_ONE = 1 << FP_BITS
MAX_LEAVES = 1 << 18  # a sanity cap on the leaves of one compiled distribution
GUIDE_MIN_LEAVES = 5  # from this many leaves on, the kernels use the guide table
TAIL_P = 2.0 ** -32  # a tabulated distribution keeps this much mass per side at its clip quantile
_TWO64 = 1 << 64


def _to_fp(v, floor: bool = False) -> np.ndarray:
    """ns (float) -> fixed point int64 (rounded, or floored), clipped to [0, CLIP_NS] (NaN -> 0)."""
    v = np.nan_to_num(np.asarray(v, dtype=np.float64), nan=0.0, posinf=float(CLIP_NS), neginf=0.0)
    v = np.clip(v, 0.0, float(CLIP_NS)) * FP_ONE
    return (np.floor(v) if floor else np.round(v)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Components (groups of leaves before mixing)


@dataclass
class Component:
    """Leaves of one distribution before mixing: probabilities (summing to 1) and leaf words.

    kind: LEAF_SEG or LEAF_EXP; a: SEG lo / EXP val (fixed point); b: SEG width / EXP offset of
    its table in ``tables``; shift: the leaf's fixed point (FP_BITS for SEG, its own for EXP);
    exp_mean: an EXP leaf's mean in ns (0 for SEG); exact: False when a tabulated approximation is
    involved.
    """

    prob: np.ndarray
    kind: np.ndarray
    a: np.ndarray
    b: np.ndarray
    shift: np.ndarray
    exp_mean: np.ndarray
    tables: np.ndarray
    exact: bool = True


def _seg_component(lo_fp, hi_fp, prob, exact: bool = True) -> Component:
    lo_fp = np.asarray(lo_fp, dtype=np.int64).reshape(-1)
    hi_fp = np.maximum(np.asarray(hi_fp, dtype=np.int64).reshape(-1), lo_fp)
    prob = np.asarray(prob, dtype=np.float64).reshape(-1)
    if not (np.all(np.isfinite(prob)) and np.all(prob >= 0) and prob.sum() > 0):
        raise ValueError("segment probabilities must be finite, >= 0 and not all 0")
    keep = prob > 0
    n = int(keep.sum())
    return Component(prob[keep], np.full(n, LEAF_SEG, dtype=np.int64), lo_fp[keep],
                     (hi_fp - lo_fp)[keep], np.full(n, FP_BITS, dtype=np.int64), np.zeros(n),
                     np.zeros(0, dtype=np.int64), exact)


def const_component(v_ns: float) -> Component:
    """A constant, round(v_ns) whole ns (clipped to [0, CLIP_NS])."""
    v = int(round(min(max(float(v_ns), 0.0), float(CLIP_NS))))
    return _seg_component([v << FP_BITS], [v << FP_BITS], [1.0])


def uniform_component(a_ns: float, b_ns: float) -> Component:
    """Uniform on [a, b) (sampled values floor(Y): integers a..b-1 for integer a < b)."""
    if not b_ns >= a_ns:
        raise ValueError(f"uniform needs low <= high, got {a_ns} and {b_ns}")
    return _seg_component(_to_fp([a_ns]), _to_fp([b_ns]), [1.0])


def segments_component(lo_ns, hi_ns, prob) -> Component:
    """Piecewise uniform: segment j is [lo_j, hi_j) with probability prob_j (normalised here).

    Histogram buckets and the segments of an empirical CDF; zero-probability segments make no
    leaf, zero-width ones a point mass. Exact.
    """
    return _seg_component(_to_fp(lo_ns), _to_fp(hi_ns), prob)


EXP_MAX_SHIFT = 48


def exp_shift(mean_ns: float) -> int:
    """The fixed point of an EXP leaf: as fine as 64 * val < 2**62 allows (the largest value, 64
    halvings of the uniform, must fit), at most 2**-48 ns; 16 bits for a mean of 2**40 ns."""
    return int(min(EXP_MAX_SHIFT, 56 - math.ceil(math.log2(mean_ns * math.log(2.0)))))


def exp_component(mean_ns: float) -> Component:
    """Exponential with this mean (clipped to [0, CLIP_NS]); mean 0 is the constant 0.

    Fixed point 2**-exp_shift(mean) ns: the table's rounding then moves the CDF by at most
    density * 2**-(shift+1) ns, about 1e-17, so what is left is the linear interpolation of -ln m
    on 8192 cells: at most 2**-28 / (8 u) of probability at the uniform u (9.3e-10 at the median,
    4.7e-10 in the lower tail, a relative error below 2e-9 in the upper tail).
    """
    mean = min(max(float(mean_ns), 0.0), float(CLIP_NS))
    if mean == 0.0:
        return const_component(0.0)
    fp = exp_shift(mean)
    j = np.arange(EXP_TABLE_POINTS, dtype=np.float64)
    m = 0.5 + j / (2 * (EXP_TABLE_POINTS - 1))
    t = np.round(mean * -np.log(m) * 2.0 ** fp).astype(np.int64)
    t[-1] = 0
    t = np.minimum.accumulate(t)  # non-increasing, whatever rounding did
    return Component(np.ones(1), np.array([LEAF_EXP], dtype=np.int64), np.array([t[0]], dtype=np.int64),
                     np.zeros(1, dtype=np.int64), np.array([fp], dtype=np.int64), np.array([mean]), t, True)


# Tolerance of a tabulated distribution's CDF (table_component), as a function of the tail
# probability t = min(F, 1 - F): 0.25% of t in the far tails, 5e-10 (absolute) for t up to 1e-3,
# then 5e-7 t, at most 5e-8 in the body. (The tests hold the result to 1% and 1e-9 in the tails.)
GRID_TOL_REL = 0.0025
GRID_TOL_TAIL_ABS = 5e-10
GRID_TOL_BODY_REL = 5e-7
GRID_TOL_BODY_ABS = 5e-8


def _grid_tol(t):
    return np.minimum(GRID_TOL_REL * t,
                      np.maximum(GRID_TOL_TAIL_ABS, np.minimum(GRID_TOL_BODY_REL * t, GRID_TOL_BODY_ABS)))


def _qx(quantile, p) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(all="ignore"):
        x = np.broadcast_to(np.asarray(quantile(p), dtype=np.float64), p.shape)
    x = np.nan_to_num(x, nan=0.0, posinf=float(CLIP_NS), neginf=0.0)
    return np.clip(x, 0.0, float(CLIP_NS))


def _natural_split(a, b, fr):
    """Points at fractions fr of segments [a, b] of the probability axis, in the coordinate the
    grid refines in: log p below 1/4, log(1 - p) above 3/4, p in between. Shapes (n,) x (k,)."""
    a = a[:, None]
    b = b[:, None]
    fr = np.asarray(fr, dtype=np.float64)
    with np.errstate(all="ignore"):
        lower = a * (b / a) ** fr
        upper = 1.0 - (1.0 - a) * ((1.0 - b) / (1.0 - a)) ** fr
    arith = a + (b - a) * fr
    return np.where(b <= 0.25, lower, np.where(a >= 0.75, upper, arith))


def _grid(quantile, max_rounds: int = 64) -> np.ndarray:
    """Breakpoints 2**-32 = p_0 < ... < p_n = 1 - 2**-32 where the CDF that is linear between the
    points (q(p_i), p_i) is within _grid_tol of q's own (checked at three points inside every
    segment; a segment with no whole ns strictly inside it is exact where the sampled integers
    can tell, and is kept as it is)."""
    tail = [2.0 ** -k for k in range(32, 2, -1)]
    pts = np.unique(np.concatenate([tail, 0.25 + np.arange(33) / 64.0, [1.0 - t for t in reversed(tail)]]))
    pending = np.stack([pts[:-1], pts[1:]], axis=1)
    done = [pts]
    fr = np.array([0.25, 0.5, 0.75])
    total = len(pts)
    for _ in range(max_rounds):
        if not len(pending):
            break
        a, b = pending[:, 0], pending[:, 1]
        xa, xb = _qx(quantile, a), _qx(quantile, b)
        pt = _natural_split(a, b, fr)
        xt = _qx(quantile, pt)
        span = xb - xa
        with np.errstate(all="ignore"):
            flin = a[:, None] + (b - a)[:, None] * (xt - xa[:, None]) / np.where(span > 0, span, 1.0)[:, None]
        err = np.where(span[:, None] > 0, np.abs(flin - pt), 0.0)
        ratio = (err / _grid_tol(np.minimum(pt, 1.0 - pt))).max(axis=1)
        bad = (ratio > 1.0) & (np.floor(xa) + 1.0 < xb)
        if total >= MAX_LEAVES:
            break
        a, b, ratio = a[bad], b[bad], ratio[bad]
        k = np.clip(np.ceil(1.15 * np.sqrt(ratio)), 2, 64).astype(np.int64)
        kmax = int(k.max()) if len(k) else 2
        # Split segment i into k_i parts: fractions j / k_i, j = 1 .. k_i - 1.
        j = np.arange(1, kmax)
        frs = j[None, :] / k[:, None]
        new = _natural_split(a, b, frs)
        valid = (j[None, :] < k[:, None]) & (new > a[:, None]) & (new < b[:, None])
        rowid = np.broadcast_to(np.arange(len(a))[:, None], new.shape)[valid]
        inner = new[valid]
        done.append(inner)
        total += len(inner)
        # The new segments: consecutive points of each split row.
        e = np.concatenate([a, inner, b])
        r = np.concatenate([np.arange(len(a)), rowid, np.arange(len(a))])
        order = np.lexsort((e, r))
        e, r = e[order], r[order]
        same = (r[1:] == r[:-1]) & (e[1:] > e[:-1])
        pending = np.stack([e[:-1][same], e[1:][same]], axis=1)
    return np.unique(np.concatenate(done))


def table_component(quantile) -> Component:
    """A distribution with quantile function q(p) (vectorized over p in [0, 1]), tabulated.

    SEG leaves between the breakpoints of ``_grid`` (p from 2**-32 to 1 - 2**-32, log-spaced in
    both tails, refined until the CDF is within _grid_tol of q's); the outermost 2**-32 of mass on
    each side is the segment [q(0), q(2**-32)) (or [q(1 - 2**-32), q(1))) where that end of q is
    finite and at most CLIP_NS, else a point mass at the clip quantile. Values are clipped to
    [0, CLIP_NS] and made non-decreasing. Not ``exact``.
    """
    p = _grid(quantile)
    ends = _qx(quantile, np.array([0.0, 1.0]))
    with np.errstate(all="ignore"):
        raw = np.asarray(quantile(np.array([0.0, 1.0])), dtype=np.float64) * np.ones(2)
    finite = np.isfinite(raw) & (raw >= 0) & (raw <= CLIP_NS)
    xs = _qx(quantile, p)
    # Breakpoints are floored to fixed point (2**-16 ns), so that each stays in its whole ns (a
    # point just below 1100 ns must not become 1100 ns: the samples are floored). That moves each by
    # up to 2**-16 ns: where the density is high (a lognormal's lower tail within a few ns), enough
    # to shift the CDF by ~1e-8. So each breakpoint's probability is moved along the curve to where
    # the floored value sits, p + density * (floored - exact), the density taken from the
    # neighbours (first order; no move where q is flat, never past the midpoints to the neighbours).
    xfp = np.maximum.accumulate(_to_fp(xs, floor=True))
    shift = xfp / FP_ONE - xs
    pn = np.concatenate([[0.0], p, [1.0]])
    xn = np.concatenate([[xs[0]], xs, [xs[-1]]])
    dp = pn[2:] - pn[:-2]
    dx = xn[2:] - xn[:-2]
    with np.errstate(all="ignore"):
        dens = np.where(dx > 0, dp / np.where(dx > 0, dx, 1.0), 0.0)
    pc = p + dens * shift
    pc = np.clip(pc, (pn[:-2] + p) / 2, (p + pn[2:]) / 2)
    lo_end = _to_fp(ends[0], floor=True) if finite[0] else xfp[0]
    hi_end = _to_fp(ends[1], floor=True) if finite[1] else xfp[-1]
    x_all = np.maximum.accumulate(np.concatenate([[min(lo_end, xfp[0])], xfp, [max(hi_end, xfp[-1])]]))
    prob = np.concatenate([[pc[0]], np.diff(pc), [1.0 - pc[-1]]])
    return _seg_component(x_all[:-1], x_all[1:], prob, exact=False)


# --------------------------------------------------------------------------------------------
# Compiled distributions


def _cum_thresholds(omega: np.ndarray) -> list[int]:
    """Cumulative 64-bit thresholds round(2**64 * S_c / S_n) of non-negative float64 weights,
    S_c the exact sum of omega[0..c] (exact integer arithmetic on the floats' binary values)."""
    pos = omega > 0
    m, e = np.frexp(omega)
    mant = np.ldexp(m, 53).astype(np.int64)  # exact: omega = mant * 2**(e - 53)
    ex = np.where(pos, e.astype(np.int64) - 53, 0)
    e0 = int(ex[pos].min())
    shifts = np.where(pos, ex - e0, 0)
    total = 0
    cums = []
    for mi, si in zip(mant.tolist(), shifts.tolist()):
        total += mi << si
        cums.append(total)
    return [((c << 65) + total) // (2 * total) for c in cums]


def _leaf_means(kind, a, b, exp_mean) -> np.ndarray:
    """Mean of each leaf's sampled integers (the floor included)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    whole = (a >> FP_BITS).astype(np.float64)
    lo = a & (FP_ONE - 1)
    n = lo + np.where(kind == LEAF_SEG, b, 0)
    q = (n >> FP_BITS).astype(np.float64)
    r = (n & (FP_ONE - 1)).astype(np.float64)
    with np.errstate(all="ignore"):
        # sum_{j=lo}^{lo+W-1} floor(j / 2**16) / W, the j < 2**16 terms being 0.
        seg = whole + np.where(b > 0, (FP_ONE * q * (q - 1) / 2 + r * q) / np.where(b > 0, b, 1), 0.0)
        # E[floor(Y)] for Y exponential: sum_{k >= 1} e^{-k / mean}.
        ex = 1.0 / np.expm1(1.0 / np.where(exp_mean > 0, exp_mean, 1.0))
    return np.where(kind == LEAF_SEG, seg, ex)


@dataclass(eq=False)
class CompiledDist:
    """A distribution as the engines sample it: n leaves (see the module docstring).

    cum: uint64[n], cumulative thresholds (cum[n-1] is not read: the last leaf takes the rest);
    kind: int64[n] (LEAF_SEG, LEAF_EXP); a, b: int64[n] (SEG: lo, width; EXP: val, offset of its
    table in ``tables``), in fixed point ns * 2**shift; shift: int64[n] (FP_BITS for SEG leaves,
    exp_shift(mean) for EXP); tables: int64, the EXP tables; weight: float64[n], each leaf's
    probability (cum differences / 2**64); exp_mean: float64[n] (EXP leaves: the mean in ns);
    exact: whether the leaves are the specified distribution (up to the floor to whole ns).
    """

    cum: np.ndarray
    kind: np.ndarray
    a: np.ndarray
    b: np.ndarray
    shift: np.ndarray
    tables: np.ndarray
    weight: np.ndarray
    exp_mean: np.ndarray
    exact: bool = True
    # The mixture component each leaf came from (its index among the components compile_mixture
    # was given, nested mixtures flattened): what a tilt of the mixture's weights acts on.
    group: np.ndarray | None = None
    mean_ns: float = field(init=False)  # mean of the sampled integers
    max_ns: int = field(init=False)  # no sample exceeds this

    def __post_init__(self):
        if self.group is None:
            self.group = np.zeros(len(self.kind), dtype=np.int64)
        self.mean_ns = float(np.dot(self.weight, _leaf_means(self.kind, self.a, self.b, self.exp_mean)))
        seg = self.kind == LEAF_SEG
        top = np.where(seg, self.a + np.maximum(self.b - 1, 0), 64 * self.a) >> self.shift
        self.max_ns = int(top.max())
        # For rng.sample (numpy): the arrays it gathers from, ready in the types it needs.
        self._search = np.ascontiguousarray(self.cum[:-1])
        self._a_u = self.a.astype(np.uint64)
        self._bseg_u = np.where(seg, self.b, 0).astype(np.uint64)
        self._is_exp = ~seg
        self._has_exp = bool(self._is_exp.any())
        self._narrow = bool((self._bseg_u >> np.uint64(32) == 0).all())  # every width < 2**32

    # -- shape ---------------------------------------------------------------------------------

    @property
    def nleaf(self) -> int:
        return len(self.kind)

    @property
    def is_const(self) -> bool:
        return self.nleaf == 1 and int(self.kind[0]) == LEAF_SEG and int(self.b[0]) == 0

    @property
    def const_ns(self) -> int:
        """The value of a constant distribution (is_const), in ns."""
        return int(self.a[0]) >> FP_BITS

    @property
    def exp_mean_ns(self) -> float | None:
        """The mean (ns) when the distribution is one exponential, else None."""
        if self.nleaf == 1 and int(self.kind[0]) == LEAF_EXP:
            return float(self.exp_mean[0])
        return None

    @property
    def guide_bits(self) -> int:
        """G of the guide table (0: none, the kernels scan from leaf 0): 2**G >= nleaf."""
        n = self.nleaf
        return 0 if n < GUIDE_MIN_LEAVES else (n - 1).bit_length()

    def guide(self) -> np.ndarray:
        """The guide table: entry j is the leaf of u1 = j << (64 - G), the first c with u1 < cum[c]."""
        g = self.guide_bits
        if g == 0:
            return np.zeros(0, dtype=np.int64)
        j = np.arange(1 << g, dtype=np.uint64) << np.uint64(64 - g)
        return np.searchsorted(self.cum[:-1], j, side="right").astype(np.int64)

    def component(self) -> Component:
        """This distribution as a component of a mixture (its leaves, unchanged)."""
        return Component(self.weight.copy(), self.kind.copy(), self.a.copy(), self.b.copy(),
                         self.shift.copy(), self.exp_mean.copy(), self.tables.copy(), self.exact)

    # -- the distribution the sampler implements -----------------------------------------------

    def cdf(self, x) -> np.ndarray:
        """P(sampled value < x) for integer ns x (array), exactly as the tables give it.

        SEG leaf: the fraction of the 2**64 values of u2 with lo + mulhi64(u2, width) < x << 16,
        taken as m / width, m = clip(x << 16 - lo, 0, width) (the exact count ceil(m 2**64 / width)
        differs by less than 2**-64); EXP leaf: the values of u2 counted octave by octave (the
        sampled value is monotone in u2 within one). Summed in float64.
        """
        x = np.asarray(x)
        shape = x.shape
        xs = np.clip(np.asarray(x, dtype=np.float64).reshape(-1), -1.0, float(1 << 46))
        xi = np.ceil(xs).astype(np.int64)  # P(v < x) = P(v < ceil(x)) for integer v
        out = np.zeros(len(xi), dtype=np.float64)
        X = np.maximum(xi, 0) << FP_BITS
        for c in _chains(self.kind, self.a, self.b):
            out += self._chain_cdf(c, X)
        for c in np.nonzero(self.kind == LEAF_EXP)[0]:
            top = (64 * int(self.a[c]) >> int(self.shift[c])) + 1  # every value is below
            Xe = np.minimum(np.maximum(xi, 0), top) << int(self.shift[c])
            out += self.weight[c] * _exp_cdf(int(self.a[c]), self.tables, int(self.b[c]), Xe)
        out[xi <= 0] = 0.0
        return np.clip(out, 0.0, 1.0).reshape(shape)

    def _chain_cdf(self, c: np.ndarray, X: np.ndarray) -> np.ndarray:
        """P(v < X) of SEG leaves c (disjoint, in increasing order), weighted: the leaves wholly
        below X (prefix sum) plus the one X falls in."""
        a, w = self.a[c], self.b[c]
        key = np.where(w > 0, a + w, a + 1)  # the leaf is wholly below X iff key <= X
        cw = np.concatenate([[0.0], np.cumsum(self.weight[c])])
        k = np.searchsorted(key, X, side="right")
        kk = np.minimum(k, len(c) - 1)
        part = (k < len(c)) & (a[kk] < X) & (w[kk] > 0)
        frac = np.where(part, (X - a[kk]) / np.where(w[kk] > 0, w[kk], 1), 0.0)
        return cw[k] + self.weight[c][kk] * frac

    def survival_integral(self, x: float, y: float = math.inf) -> float:
        """∫_x^y P(Y >= u) du for the continuous Y the samples are the floor of (x <= y, y may be inf).

        SEG leaves: Y uniform on [lo, lo + width) (a point mass for width 0); EXP leaves: the
        analytic exponential of their mean.
        """
        x, y = float(x), float(y)
        if not x <= y:
            raise ValueError(f"survival_integral needs x <= y, got {x} and {y}")
        seg = self.kind == LEAF_SEG
        A = self.a / FP_ONE
        B = (self.a + np.where(seg, self.b, 0)) / FP_ONE
        below = np.clip(np.minimum(y, A) - x, 0.0, None)  # the part of [x, y] left of A: S = 1
        lo = np.maximum(x, A)
        hi = np.minimum(y, B)
        width = B - A
        with np.errstate(all="ignore"):
            ramp = np.where((hi > lo) & (width > 0),
                            ((B - lo) ** 2 - (B - hi) ** 2) / (2 * np.where(width > 0, width, 1.0)), 0.0)
            mu = np.where(seg, 1.0, self.exp_mean)
            x0 = max(x, 0.0)
            ex = np.clip(min(y, 0.0) - x, 0.0, None) + (
                mu * (np.exp(-x0 / mu) - (np.exp(-y / mu) if math.isfinite(y) else 0.0)) if y > 0 else 0.0)
        per = np.where(seg, below + ramp, ex)
        return float(np.dot(self.weight, per))


def _chains(kind, a, b) -> list[np.ndarray]:
    """The SEG leaves split into runs (in leaf order) of disjoint leaves in increasing order: the
    leaves of one table, histogram or empirical component form one run."""
    seg = np.nonzero(kind == LEAF_SEG)[0]
    if not len(seg):
        return []
    sa, sw = a[seg], b[seg]
    key = np.where(sw > 0, sa + sw, sa + 1)
    brk = np.nonzero(sa[1:] < key[:-1])[0] + 1
    return np.split(seg, brk)


def _exp_cdf(val: int, table: np.ndarray, off: int, X: np.ndarray) -> np.ndarray:
    """P(EXP leaf's fixed-point value < X) over the 2**64 values of u2 (u2 = 0 counts as 1)."""
    X = np.asarray(X, dtype=np.int64)
    z = np.arange(64, dtype=np.int64)[:, None]  # octave: u in [2**(63-z), 2**(64-z))
    zz = np.broadcast_to(z, (64, len(X)))
    n_oct = np.uint64(1) << (np.uint64(63) - z.astype(np.uint64))  # values of u in the octave
    lo = np.zeros((64, len(X)), dtype=np.uint64)
    hi = np.broadcast_to(n_oct, (64, len(X))).copy()
    top = np.uint64(1) << np.uint64(63)
    vals = np.full(zz.shape, val, dtype=np.int64)
    for _ in range(64):  # smallest k with v(z, k) < X (v non-increasing in k); hi = n_oct: none
        active = lo < hi
        if not active.any():
            break
        mid = lo + ((hi - lo) >> np.uint64(1))
        s = top + (np.minimum(mid, n_oct - np.uint64(1)) << zz.astype(np.uint64))
        v = exp_leaf_value(zz, s, vals, table, off)
        below = (v < X[None, :]) & active
        hi = np.where(below, mid, hi)
        lo = np.where(active & ~below, mid + np.uint64(1), lo)
    count = (np.broadcast_to(n_oct, lo.shape) - lo).astype(np.float64)
    total = count.sum(axis=0)
    # u2 = 0 is sampled as u = 1 (octave 63, k = 0).
    v1 = exp_leaf_value(np.array([63]), np.array([top], dtype=np.uint64), np.array([val]), table, off)[0]
    total += (v1 < X).astype(np.float64)
    return total / 2.0 ** 64


def compile_mixture(components: list, weights: list[float] | None = None) -> CompiledDist:
    """One CompiledDist from components (Component or CompiledDist: nested mixtures flatten) and
    their weights (any non-negative numbers, normalised here; default equal)."""
    comps = [c.component() if isinstance(c, CompiledDist) else c for c in components]
    if not comps:
        raise ValueError("a distribution has at least one component")
    w = np.ones(len(comps)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(comps):
        raise ValueError(f"{len(comps)} components but {len(w)} weights")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise ValueError(f"mixture weights must be finite, >= 0 and not all 0, got {list(w)}")
    w = w / w.sum()
    omega, kind, a, b, sh, mu, tabs, grp = [], [], [], [], [], [], [], []
    pos = 0
    for gi, (wc, comp) in enumerate(zip(w, comps)):
        grp.append(np.full(len(comp.kind), gi, dtype=np.int64))
        psum = float(np.sum(comp.prob))
        omega.append(wc * (comp.prob / psum))
        kind.append(comp.kind)
        a.append(comp.a)
        b.append(np.where(comp.kind == LEAF_EXP, comp.b + pos, comp.b))
        sh.append(comp.shift)
        mu.append(comp.exp_mean)
        tabs.append(comp.tables)
        pos += len(comp.tables)
    omega = np.concatenate(omega)
    kind, a, b, sh, mu, grp = (np.concatenate(v) for v in (kind, a, b, sh, mu, grp))
    tables = np.concatenate(tabs).astype(np.int64) if pos else np.zeros(0, dtype=np.int64)
    keep = omega > 0
    omega, kind, a, b, sh, mu, grp = omega[keep], kind[keep], a[keep], b[keep], sh[keep], mu[keep], grp[keep]
    cum = _cum_thresholds(omega)
    prev = [0] + cum[:-1]
    diff = [c - p for c, p in zip(cum, prev)]
    nz = np.array([d > 0 for d in diff])
    if nz.sum() > MAX_LEAVES:
        raise ValueError(f"a distribution compiles to at most {MAX_LEAVES} leaves, this one to {int(nz.sum())}")
    cum = [c for c, k in zip(cum, nz) if k]
    weight = np.array([d / 2.0 ** 64 for d, k in zip(diff, nz) if k], dtype=np.float64)
    cum_u = np.array([min(c, _TWO64 - 1) for c in cum], dtype=np.uint64)
    cum_u[-1] = np.uint64(_TWO64 - 1)
    return CompiledDist(cum_u, kind[nz].astype(np.int64), a[nz].astype(np.int64), b[nz].astype(np.int64),
                        sh[nz].astype(np.int64), tables, weight, mu[nz].astype(np.float64),
                        exact=all(c.exact for c in comps), group=grp[nz].astype(np.int64))


def const(v_ns: float) -> CompiledDist:
    return compile_mixture([const_component(v_ns)])


def exponential(mean_ns: float) -> CompiledDist:
    return compile_mixture([exp_component(mean_ns)])


def uniform(a_ns: float, b_ns: float) -> CompiledDist:
    return compile_mixture([uniform_component(a_ns, b_ns)])


@dataclass
class PageClass:
    """One kind of page of a block (page level: exactly one class with count 1)."""

    count: int = 1
    file: bool = True
    mapcount: int = 1
    active: int = 0
    access_mean_ns: float = 0.0  # 1 / lambda; 0 means the tasks never touch the page


@dataclass
class Compiled:
    """Everything one engine run needs, for one strategy."""

    strategy: int
    dists: list[CompiledDist]  # indexed by DIST_INDEX
    page: PageClass = field(default_factory=PageClass)
    recheck: bool = True  # pte_wait option
    flag_from_unmap_end: bool = False  # flag_spin option: flag set from U_{k,M} (else from L_k)
    passes: int = 10
    trylock_passes: int = 3
    timeout_ns: int = 120_000_000_000
    max_attempts: int = 1000
    # Transient references (MODEL.md 1.1): a Poisson process of this rate whose holds are
    # dists[DIST_INDEX["transient_hold"]]; see mcexplore.transient for how the engines draw it.
    transient_rate_per_ns: float = 0.0
    # Block level (None: page level).
    block: list[PageClass] | None = None
    batch_pages: int = 256
    # Importance sampling (None: no tilt): where each trial counts the draws its likelihood ratio
    # needs. ``dists`` and ``transient_rate_per_ns`` are then the tilted world's.
    tilt: "TiltLayout | None" = None

    @property
    def strategy_name(self) -> str:
        return strategies.by_code(self.strategy).name

    @property
    def level(self) -> str:
        return "page" if self.block is None else "block"



@dataclass(frozen=True)
class TiltLayout:
    """Where a tilted run's trials count what their likelihood ratio needs (mcexplore.tilt).

    A trial's record gets ``nslot`` int64 statistics after its fields, zero at the start:

    * ``dist_slots[d] = (count, total)``, two int64 arrays over the leaves of distribution d: each
      draw of d that lands in leaf l adds 1 to statistic ``count[l]`` and, when ``total[l] >= 0``,
      its sampled value (ns) to statistic ``total[l]``. Distributions not in the map count nothing.
    * ``transient_slot = s >= 0``: at each refcount check at F, every transient window w in
      floor((F - H) / W) .. floor((F - 1) / W) not counted at an earlier check of the trial adds 1
      to statistic s and its arrival count N_w to statistic s + 1 (windows are counted once each,
      in increasing order, whether or not the check needed them).

    The log likelihood ratio of a trial is ``sum_s coef[s] * stat[s]`` (mcexplore.tilt.log_weights);
    ``names[s]`` says what statistic s counts. The engines read only nslot, dist_slots and
    transient_slot.
    """

    nslot: int
    dist_slots: dict  # distribution index -> (count slots[nleaf], total slots[nleaf] or -1)
    transient_slot: int
    coef: tuple  # float64 per slot
    names: tuple  # str per slot
    window_ns: int = 0  # the transient windows' width W (when transient_slot >= 0)
