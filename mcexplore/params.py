"""The compiled form of a scenario: flat integers and tables that every engine consumes.

Where it sits: between the scenario layer (mcexplore.scenario validates a config and calls
``compile_*`` here) and the engines (numpy, native, cupy), which see nothing but these objects.
Everything is integer: times in int64 nanoseconds, probabilities as uint32 thresholds, and
distributions as mixtures of at most four components, each a constant, a 4097-point quantile table
(linear in between) or an exponential (see mcexplore.rng.sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .rng import KIND_CONST, KIND_EXP, KIND_TABLE, TABLE_POINTS

# Order of the distributions in the compiled arrays (the kernels use the same indices).
DIST_NAMES = (
    "unmap_pte", "pre_freeze", "freeze_hold", "copy", "remap_pte", "fault_entry", "ptl_hold",
    "drop_hold", "noref_gap", "lock_hold", "wake_latency", "free_delay", "retry_gap", "outer_gap",
    "access", "transient_hold",
)
DIST_INDEX = {n: i for i, n in enumerate(DIST_NAMES)}
MAX_COMPONENTS = 4
# Table values are clipped here so the 20-bit interpolation cannot overflow int64.
TABLE_CLIP_NS = 1 << 40

STRATEGIES = ("ref", "drop", "ptl_pin", "lock_noref", "flag_spin", "pte_wait")
STRATEGY_CODE = {s: i for i, s in enumerate(STRATEGIES)}


@dataclass
class CompiledDist:
    """A mixture of <= 4 components; ``thresh[c]`` is the cumulative weight * 2**32 (uint)."""

    ncomp: int
    thresh: np.ndarray  # uint64[4]; component c is chosen when x0 < thresh[c] (first such c)
    kind: np.ndarray  # int64[4]
    val: np.ndarray  # int64[4]: const value, or round(mean * ln 2) for exp
    off: np.ndarray  # int64[4]: offset of the component's table in ``tables``
    tables: np.ndarray  # int64[...]: this distribution's own tables
    mean_ns: float = 0.0  # for documentation and the exact solver

    @property
    def is_const(self) -> bool:
        return self.ncomp == 1 and int(self.kind[0]) == KIND_CONST


@dataclass
class Component:
    kind: int
    val: int = 0
    table: np.ndarray | None = None
    mean_ns: float = 0.0


def const_component(v_ns: float) -> Component:
    return Component(KIND_CONST, int(round(v_ns)), None, float(v_ns))


def table_component(quantile) -> Component:
    """A component from a quantile function q(p) (vectorized over p in [0, 1])."""
    p = np.arange(TABLE_POINTS, dtype=np.float64) / (TABLE_POINTS - 1)
    q = np.asarray(quantile(p), dtype=np.float64)
    q = np.clip(np.nan_to_num(q, nan=0.0, posinf=TABLE_CLIP_NS), 0, TABLE_CLIP_NS)
    t = np.round(q).astype(np.int64)
    t = np.maximum.accumulate(t)  # a quantile table is non-decreasing, whatever rounding did
    # Mean of the tabulated (piecewise-linear) quantile function, as the engines sample it.
    mean = float(np.mean((t[:-1] + t[1:]) / 2.0))
    return Component(KIND_TABLE, 0, t, mean)


def exp_component(mean_ns: float) -> Component:
    j = np.arange(TABLE_POINTS, dtype=np.float64)
    m = 0.5 + j / (2 * (TABLE_POINTS - 1))
    t = np.round(mean_ns * -np.log(m)).astype(np.int64)
    return Component(KIND_EXP, int(round(mean_ns * math.log(2.0))), t, float(mean_ns))


def compile_mixture(components: list[Component], weights: list[float] | None = None) -> CompiledDist:
    if not 1 <= len(components) <= MAX_COMPONENTS:
        raise ValueError(f"a distribution has 1 to {MAX_COMPONENTS} components, got {len(components)}")
    if weights is None:
        weights = [1.0] * len(components)
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    cum = np.cumsum(w)
    thresh = np.zeros(MAX_COMPONENTS, dtype=np.uint64)
    for c in range(len(components)):
        thresh[c] = np.uint64(min(1 << 32, int(round(cum[c] * 2**32))))
    thresh[len(components) - 1] = np.uint64(1 << 32)
    kind = np.zeros(MAX_COMPONENTS, dtype=np.int64)
    val = np.zeros(MAX_COMPONENTS, dtype=np.int64)
    off = np.zeros(MAX_COMPONENTS, dtype=np.int64)
    tables = []
    pos = 0
    for c, comp in enumerate(components):
        kind[c] = comp.kind
        val[c] = comp.val
        if comp.table is not None:
            off[c] = pos
            tables.append(comp.table)
            pos += len(comp.table)
    tab = np.concatenate(tables) if tables else np.zeros(1, dtype=np.int64)
    mean = float(sum(wc * comp.mean_ns for wc, comp in zip(w, components)))
    return CompiledDist(len(components), thresh, kind, val, off, tab.astype(np.int64), mean)


def const(v_ns: float) -> CompiledDist:
    return compile_mixture([const_component(v_ns)])


def exponential(mean_ns: float) -> CompiledDist:
    return compile_mixture([exp_component(mean_ns)])


def uniform(a_ns: float, b_ns: float) -> CompiledDist:
    return compile_mixture([table_component(lambda p: a_ns + (b_ns - a_ns) * p)])


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
    # "process" (the specification) or "independent" (a named approximation: one Bernoulli draw
    # per refcount check with probability transient_thresh / 2**64; see docs/model.md).
    transient_model: str = "process"
    transient_thresh: int = 0  # "independent" only: P(a reference held at a check) * 2**64
    # Block level (None: page level).
    block: list[PageClass] | None = None
    batch_pages: int = 256

    @property
    def strategy_name(self) -> str:
        return STRATEGIES[self.strategy]

    @property
    def level(self) -> str:
        return "page" if self.block is None else "block"


def transient_threshold(rate_per_ns: float, mean_hold_ns: float) -> int:
    """P(at least one transient reference held at a given instant), stationary M/G/inf: 1-e^{-rho h}."""
    p = -math.expm1(-rate_per_ns * mean_hold_ns) if rate_per_ns > 0 else 0.0
    return min(1 << 32, int(round(p * 2**32)))
