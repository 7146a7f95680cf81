"""Scenarios: the typed, validated form of a TOML config, and its compilation for the engines.

Where it sits: the top of the data flow (mcexplore/__init__.py). A config (configs/*.toml, shipped
in the wheel as package ``mcexplore.configs``) is read here, checked field by field against the
model of MODEL.md (the project's spec) sections 1.1, 1.2, 1.6 and 1.7, and compiled per strategy into a
``mcexplore.params.Compiled``, which is all an engine ever sees. Sweeps and the CLI change one
field at a time with ``Scenario.set`` and key their results with ``Scenario.config_hash``.

Config schema in brief (configs/README.md has the full story):

    name, description, level = "page" | "block"
    [page]      kind = "anon"|"file", mapcount >= 1, active (<= mapcount, or "all"), access_rate
    [transient] rate ("1000/s"), hold (distribution)
    [timing]    one distribution per name of MODEL.md 1.2 (defaults: the estimates of 1.7)
    [budget]    passes, trylock_passes, timeout, max_attempts
    [block]     pages, batch_pages, classes = [{count, kind, mapcount, active, access_rate}, ...]
    strategies  = ["ref", {name = "pte_wait", label = "pte_wait_norecheck", recheck = false}, ...]

A distribution is a duration ("1us": a constant) or a table with ``dist`` = const, uniform, exp,
lognormal, empirical, histogram or mixture. Any value at all may be wrapped as
``{value = <the value>, estimate = true, why = "..."}`` to record where it came from; the wrapper is
taken off before validation and kept as a note keyed by the field's dotted path, so the models stay
plain and a measured table simply replaces an estimate (``Scenario.set`` drops the old note).

Errors: every problem becomes one line of a ``ScenarioError`` naming the dotted field path, the
bad value and what is valid, e.g.
``timing.pre_freeze: '-3us' is not valid: durations must be >= 0 (units: ns, us, ms, s)``.
"""

import functools
import hashlib
import importlib.resources
import json
import math
import re
import tomllib
import types
import typing
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import numpy as np
from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, PrivateAttr, Tag,
    TypeAdapter, ValidationError, field_validator, model_validator,
)
from scipy.special import ndtri, ndtr

from . import params, transient
from .params import (
    DIST_NAMES, STRATEGIES, STRATEGY_CODE, Compiled, CompiledDist, Component, PageClass,
)
from .units import (
    UnitError, format_ns, format_rate, parse_duration, parse_rate, parse_scaled,
)

__all__ = [
    "ScenarioError", "Note", "Scenario", "Page", "Transient", "Timing", "Budget", "Block",
    "BlockClass", "Strategy", "ConstDist", "UniformDist", "ExpDist", "LognormalDist",
    "EmpiricalDist", "HistogramDist", "MixtureDist", "Distribution", "parse_distribution",
    "load_scenario", "default_scenario_path", "list_shipped", "parse_override", "TIMING_NAMES",
    "DEFAULT_SCENARIO",
]

TIMING_NAMES = tuple(n for n in DIST_NAMES if n not in ("access", "transient_hold"))
DEFAULT_SCENARIO = "thread-2018"
DIST_KINDS = ("const", "uniform", "exp", "lognormal", "empirical", "histogram", "mixture")
# A lognormal is tabulated (params.table_component) from p = 2^-32 to 1 - 2^-32: the lowest 2^-32
# of its mass is uniform on [0, q(2^-32)), the highest a point mass at q(1 - 2^-32).
LOGNORMAL_P_CLIP = params.TAIL_P
_LABEL_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_MISSING = object()


class ScenarioError(ValueError):
    """A config, override or scenario change that is not valid; one line per problem."""

    def __init__(self, lines: list[str] | str, source: str | None = None):
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + line for line in self.lines))


class FieldError(ValueError):
    """Raised inside a model validator to blame a field below the model, not the model itself.

    ``reason`` may contain {0}, {1}... which are replaced by the dotted paths of ``refs`` (field
    names relative to the same model), so a message can say "must be <= page.mapcount (201)".
    """

    def __init__(self, loc, value, reason: str, refs: tuple = ()):
        self.loc = tuple(loc) if isinstance(loc, (tuple, list)) else (loc,)
        self.value = value
        self.reason = reason
        self.refs = refs
        super().__init__(reason)


# --------------------------------------------------------------------------------------------
# Scalar field types


def _duration(v):
    return parse_duration(v)


def _positive_duration(v):
    return parse_duration(v, positive=True)


def _probability(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0):
        raise UnitError(v, "probabilities must be numbers in [0, 1]")
    return float(v)


def _weight(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 < v <= 1.0):
        raise UnitError(v, "mixture weights must be in (0, 1] and sum to 1")
    return float(v)


def _active(v):
    if v == "all" or (isinstance(v, int) and not isinstance(v, bool) and v >= 0):
        return v
    raise UnitError(v, 'must be a number of tasks >= 0 (tasks 1..active touch the page) or "all"')


Duration = Annotated[float, BeforeValidator(_duration)]
PositiveDuration = Annotated[float, BeforeValidator(_positive_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
Probability = Annotated[float, BeforeValidator(_probability)]
Weight = Annotated[float, BeforeValidator(_weight)]
Active = Annotated[Union[int, Literal["all"]], BeforeValidator(_active)]


class _Model(BaseModel):
    # frozen: a Scenario is a value; sweeps derive new ones with set() and never mutate.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


# --------------------------------------------------------------------------------------------
# Distributions (MODEL.md 1.2)


def _knots_component(kp: np.ndarray, kv: np.ndarray) -> Component:
    """Piecewise uniform between knots (p, value): segment j is [v_j, v_j+1) with probability
    p_j+1 - p_j (sampled exactly; equal consecutive p make no segment, equal values a point mass)."""
    return params.segments_component(kv[:-1], kv[1:], np.diff(kp))


@functools.lru_cache(maxsize=64)
def _lognormal_component(median: float, sigma: float) -> Component:
    # Tabulating takes some 20 ms; a scenario compiles every strategy with the same timings.
    if sigma == 0:
        return params.const_component(median)
    return params.table_component(lambda p: median * np.exp(sigma * ndtri(p)))


def _knots_mean(kp: np.ndarray, kv: np.ndarray) -> float:
    return float(np.sum(np.diff(kp) * (kv[:-1] + kv[1:]) / 2.0))


class _Dist(_Model):
    """Common interface: mean_ns(), weighted(), compile(), table(), to_config()."""

    def mean_ns(self) -> float:
        """The analytic mean of the distribution as written (before tabulation)."""
        raise NotImplementedError

    def component(self) -> Component:
        raise NotImplementedError

    def weighted(self) -> list[tuple[float, Component]]:
        """(weight, component) pairs of the compiled mixture (one pair unless a mixture; a nested
        mixture's pairs are flattened into its parent's, the weights multiplied)."""
        return [(1.0, self.component())]

    def compile(self) -> CompiledDist:
        comps = self.weighted()
        return params.compile_mixture([c for _, c in comps], [w for w, _ in comps])

    def table(self) -> dict:
        """The table form {dist = ..., ...} with units normalised (JSON-able)."""
        raise NotImplementedError

    def to_config(self):
        return self.table()


class ConstDist(_Dist):
    dist: Literal["const"] = "const"
    value: Duration

    def mean_ns(self) -> float:
        return self.value

    def component(self) -> Component:
        return params.const_component(self.value)

    def table(self) -> dict:
        return {"dist": "const", "value": format_ns(self.value, exact=True)}

    def to_config(self):
        return format_ns(self.value, exact=True)


class UniformDist(_Dist):
    dist: Literal["uniform"]
    low: Duration
    high: Duration

    @model_validator(mode="after")
    def _order(self):
        if self.high < self.low:
            raise FieldError("high", format_ns(self.high, exact=True),
                             f"must be >= {{0}} ({format_ns(self.low, exact=True)})", refs=("low",))
        return self

    def mean_ns(self) -> float:
        return (self.low + self.high) / 2.0

    def component(self) -> Component:
        return params.uniform_component(self.low, self.high)

    def table(self) -> dict:
        return {"dist": "uniform", "low": format_ns(self.low, exact=True),
                "high": format_ns(self.high, exact=True)}


class ExpDist(_Dist):
    dist: Literal["exp"]
    mean: Duration

    def mean_ns(self) -> float:
        return self.mean

    def component(self) -> Component:
        return params.exp_component(self.mean)

    def table(self) -> dict:
        return {"dist": "exp", "mean": format_ns(self.mean, exact=True)}


class LognormalDist(_Dist):
    dist: Literal["lognormal"]
    median: PositiveDuration
    sigma: float = Field(ge=0.0, le=10.0, allow_inf_nan=False)

    def mean_ns(self) -> float:
        return self.median * math.exp(self.sigma ** 2 / 2.0)

    def clipped_mean_ns(self) -> float:
        """Mean of the distribution as tabulated, before the floor to whole ns: the lowest 2^-32 of
        mass uniform on [0, q(2^-32)), the highest at q(1 - 2^-32) (for tests, docs)."""
        m, s, c = self.median, self.sigma, LOGNORMAL_P_CLIP
        if s == 0:
            return m
        za, zb = float(ndtri(c)), float(ndtri(1 - c))
        a, b = m * math.exp(s * za), m * math.exp(s * zb)
        inner = self.mean_ns() * (float(ndtr(zb - s)) - float(ndtr(za - s)))
        return a / 2 * c + b * c + inner

    def component(self) -> Component:
        return _lognormal_component(float(self.median), float(self.sigma))

    def table(self) -> dict:
        return {"dist": "lognormal", "median": format_ns(self.median, exact=True), "sigma": self.sigma}


class EmpiricalDist(_Dist):
    """CDF points (probability, value) from p = 0 to p = 1, linear in between."""

    dist: Literal["empirical"]
    points: list[tuple[Probability, Duration]] = Field(min_length=2)

    @model_validator(mode="after")
    def _shape(self):
        pts = self.points
        if pts[0][0] != 0.0:
            raise FieldError(("points", 0), pts[0][0], "the first point's probability must be 0")
        if pts[-1][0] != 1.0:
            raise FieldError(("points", len(pts) - 1), pts[-1][0], "the last point's probability must be 1")
        for i in range(1, len(pts)):
            if pts[i][0] < pts[i - 1][0]:
                raise FieldError(("points", i), pts[i][0],
                                 f"probabilities must be non-decreasing (previous: {pts[i - 1][0]})")
            if pts[i][1] < pts[i - 1][1]:
                raise FieldError(("points", i), format_ns(pts[i][1], exact=True),
                                 f"values must be non-decreasing (previous: {format_ns(pts[i - 1][1], exact=True)})")
        return self

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([p for p, _ in self.points], dtype=np.float64),
                np.array([v for _, v in self.points], dtype=np.float64))

    def mean_ns(self) -> float:
        return _knots_mean(*self.knots())

    def component(self) -> Component:
        return _knots_component(*self.knots())

    def table(self) -> dict:
        return {"dist": "empirical", "points": [[p, format_ns(v, exact=True)] for p, v in self.points]}


_OPEN = ("inf", "+inf", "-inf", "...")
_HIST_UNITS = {"ns": 1.0, "us": 1e3, "µs": 1e3, "μs": 1e3, "ms": 1e6, "s": 1e9}


def _bound(v, unit_ns: float) -> float | None:
    """A bucket bound in ns; None for an open end ('inf', '...', TOML inf)."""
    if (isinstance(v, str) and v.strip() in _OPEN) or (isinstance(v, float) and math.isinf(v)):
        return None
    return parse_scaled(v) * unit_ns


class HistogramDist(_Dist):
    """bpftrace hist()/lhist() buckets [lo, hi) with counts, uniform inside a bucket.

    A bucket is [lo, hi, count] or [lo, count] (open-ended); lo and hi are numbers in ``unit``,
    optionally with a 1024-based K/M/G suffix as bpftrace prints them; "inf" or "..." is an open end.
    """

    dist: Literal["histogram"]
    unit: Literal["ns", "us", "µs", "μs", "ms", "s"] = "ns"
    buckets: list[list[Any]] = Field(min_length=1)

    def parsed(self) -> list[tuple[float | None, float | None, float]]:
        unit_ns = _HIST_UNITS[self.unit]
        out = []
        prev_hi = None
        for i, b in enumerate(self.buckets):
            if len(b) not in (2, 3):
                raise FieldError(("buckets", i), b, "a bucket is [lo, hi, count] or [lo, count] (open-ended)")
            lo_raw, hi_raw, count = (b[0], "inf", b[1]) if len(b) == 2 else b
            try:
                lo, hi = _bound(lo_raw, unit_ns), _bound(hi_raw, unit_ns)
            except UnitError as e:
                raise FieldError(("buckets", i), b, e.reason) from None
            if isinstance(count, bool) or not isinstance(count, (int, float)) or not count >= 0 \
                    or math.isinf(count):
                raise FieldError(("buckets", i), b, "the count must be a number >= 0")
            if (lo is None or hi is None) and count != 0:
                raise FieldError(("buckets", i), b, "an open-ended bucket must have count 0 "
                                 "(its values are unknown, so they cannot be sampled)")
            if lo is not None and lo < 0:
                raise FieldError(("buckets", i), b, "bounds must be >= 0")
            if lo is not None and hi is not None and not hi > lo:
                raise FieldError(("buckets", i), b, "a bucket needs lo < hi")
            if i > 0 and (lo is None or prev_hi is None or lo < prev_hi):
                raise FieldError(("buckets", i), b, "buckets must be in increasing order, without overlap")
            prev_hi = hi
            out.append((lo, hi, float(count)))
        if sum(c for _, _, c in out) <= 0:
            raise FieldError("buckets", self.buckets, "at least one bucket needs a count > 0")
        return out

    @model_validator(mode="after")
    def _check(self):
        self.parsed()
        return self

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        full = [(lo, hi, c) for lo, hi, c in self.parsed() if c > 0]
        total = sum(c for _, _, c in full)
        kp, kv, cum = [], [], 0.0
        for lo, hi, c in full:
            kp += [cum / total, (cum + c) / total]
            kv += [lo, hi]
            cum += c
        kp[-1] = 1.0
        return np.array(kp), np.array(kv)

    def mean_ns(self) -> float:
        return _knots_mean(*self.knots())

    def component(self) -> Component:
        full = [(lo, hi, c) for lo, hi, c in self.parsed() if c > 0]
        return params.segments_component([b[0] for b in full], [b[1] for b in full],
                                         [b[2] for b in full])

    def table(self) -> dict:
        # Buckets are kept as written (with their unit): they are a measurement, and "4K" reads
        # better than 4096 next to the bpftrace output it came from.
        buckets = [[(("inf" if x > 0 else "-inf") if isinstance(x, float) and math.isinf(x) else x) for x in b] for b in self.buckets]
        return {"dist": "histogram", "unit": self.unit, "buckets": buckets}


def _component_class(base: type[_Dist], name: str | None = None) -> type[_Dist]:
    """A mixture component: the table of a distribution plus its weight."""

    def table(self) -> dict:
        return {"weight": self.weight, **base.table(self)}

    return type(name or base.__name__.replace("Dist", "Component"), (base,), {
        "__annotations__": {"weight": Weight},
        "__module__": __name__,
        "table": table,
        "to_config": table,
    })


ConstComponent = _component_class(ConstDist)
UniformComponent = _component_class(UniformDist)
ExpComponent = _component_class(ExpDist)
LognormalComponent = _component_class(LognormalDist)
EmpiricalComponent = _component_class(EmpiricalDist)
HistogramComponent = _component_class(HistogramDist)


def _tag(v):
    if isinstance(v, _Dist):
        return v.dist
    if isinstance(v, dict):
        d = v.get("dist")
        return d if isinstance(d, str) else None
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        return "bare"
    return None


class MixtureDist(_Dist):
    """Weighted components, any number of them; a component may itself be a mixture."""

    dist: Literal["mixture"]
    components: list["MixtureComponent"] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights(self):
        total = sum(c.weight for c in self.components)
        if abs(total - 1.0) > 1e-6:
            raise FieldError("components", [c.weight for c in self.components],
                             f"mixture weights must sum to 1 (they sum to {total:.6g})")
        return self

    def mean_ns(self) -> float:
        return sum(c.weight * c.mean_ns() for c in self.components)

    def component(self) -> Component:
        raise TypeError("a mixture is not a single component; use weighted() or compile()")

    def weighted(self) -> list[tuple[float, Component]]:
        return [(c.weight * w, comp) for c in self.components for w, comp in c.weighted()]

    def table(self) -> dict:
        return {"dist": "mixture", "components": [c.table() for c in self.components]}


# A mixture inside a mixture (its own name: the union below refers to it before it is complete).
NestedMixtureComponent = _component_class(MixtureDist, "NestedMixtureComponent")

MixtureComponent = Annotated[
    Union[
        Annotated[ConstComponent, Tag("const")],
        Annotated[UniformComponent, Tag("uniform")],
        Annotated[ExpComponent, Tag("exp")],
        Annotated[LognormalComponent, Tag("lognormal")],
        Annotated[EmpiricalComponent, Tag("empirical")],
        Annotated[HistogramComponent, Tag("histogram")],
        Annotated[NestedMixtureComponent, Tag("mixture")],
    ],
    Discriminator(_tag, custom_error_type="bad_component", custom_error_message="bad mixture component"),
]
MixtureDist.model_rebuild()
NestedMixtureComponent.model_rebuild()


def _bare_const(ns: float) -> ConstDist:
    return ConstDist.model_construct(dist="const", value=ns)


Distribution = Annotated[
    Union[
        Annotated[float, BeforeValidator(_duration), AfterValidator(_bare_const), Tag("bare")],
        Annotated[ConstDist, Tag("const")],
        Annotated[UniformDist, Tag("uniform")],
        Annotated[ExpDist, Tag("exp")],
        Annotated[LognormalDist, Tag("lognormal")],
        Annotated[EmpiricalDist, Tag("empirical")],
        Annotated[HistogramDist, Tag("histogram")],
        Annotated[MixtureDist, Tag("mixture")],
    ],
    Discriminator(_tag, custom_error_type="bad_dist", custom_error_message="bad distribution"),
]
_DIST_ADAPTER = TypeAdapter(Distribution)


# --------------------------------------------------------------------------------------------
# The scenario


class _PageLike(_Model):
    """What Page and BlockClass share: active <= mapcount, and the compiled PageClass."""

    @model_validator(mode="after")
    def _check_active(self):
        if self.active != "all" and self.active > self.mapcount:
            raise FieldError("active", self.active, "must be <= {0} (%d)" % self.mapcount, refs=("mapcount",))
        return self

    @property
    def n_active(self) -> int:
        """Tasks 1..n_active touch the page ("all": every task that maps it)."""
        return self.mapcount if self.active == "all" else self.active

    def _page_config(self) -> dict:
        return {"kind": self.kind, "mapcount": self.mapcount, "active": self.active,
                "access_rate": format_rate(self.access_rate)}

    def page_class(self) -> PageClass:
        return PageClass(count=getattr(self, "count", 1), file=self.kind == "file",
                         mapcount=self.mapcount, active=self.n_active,
                         access_mean_ns=1.0 / self.access_rate if self.access_rate > 0 else 0.0)


class Page(_PageLike):
    """The page of a page-level trial (MODEL.md 1.1)."""

    kind: Literal["anon", "file"]
    mapcount: int = Field(ge=1)
    # "all" follows mapcount, so a sweep over mapcount keeps every task active.
    active: Active = "all"
    access_rate: Rate = "1/us"

    def to_config(self) -> dict:
        return self._page_config()


class BlockClass(_PageLike):
    """``count`` pages alike in a block; unlike a page-level page, one may be unmapped."""

    count: int = Field(ge=1)
    kind: Literal["anon", "file"]
    mapcount: int = Field(ge=0)  # 0: page cache nobody maps
    active: Active = "all"
    access_rate: Rate = "0"  # block pages are cold unless said otherwise

    def to_config(self) -> dict:
        return {"count": self.count, **self._page_config()}


class Transient(_Model):
    """Short references from other kernel paths: Poisson(rate), each held for ``hold``."""

    rate: Rate = "1000/s"
    hold: Distribution = "1us"

    def to_config(self) -> dict:
        return {"rate": format_rate(self.rate), "hold": self.hold.to_config()}


_TAIL = [{"weight": 0.999, "dist": "uniform", "low": "0.1us", "high": "0.3us"},
         {"weight": 0.001, "dist": "exp", "mean": "1ms"}]
# The starting values of MODEL.md 1.7, identical to configs/thread-2018.toml (a test keeps them so).
DEFAULT_TIMING: dict[str, Any] = {
    "unmap_pte": "1us",
    "pre_freeze": "0.3us",
    "freeze_hold": "0.2us",
    "copy": "0.5us",
    "remap_pte": "1us",
    "fault_entry": {"dist": "empirical",
                    "points": [[0.0, "0.6us"], [0.5, "1us"], [0.9, "2us"], [0.99, "5us"], [1.0, "10us"]]},
    "ptl_hold": {"dist": "mixture", "components": _TAIL},
    "drop_hold": {"dist": "mixture", "components": _TAIL},
    "noref_gap": {"dist": "mixture", "components": _TAIL},
    "lock_hold": {"dist": "mixture", "components": _TAIL},
    "wake_latency": {"dist": "mixture", "components": [
        {"weight": 0.99, "dist": "exp", "mean": "30us"},
        {"weight": 0.01, "dist": "uniform", "low": "1ms", "high": "10ms"}]},
    "free_delay": "1us",
    "retry_gap": "1us",
    "outer_gap": "0.5ms",
}


# MODEL.md names a parameter "copy", which shadows the deprecated BaseModel.copy(); harmless here
# (this module uses model_copy), so the field keeps the spec's name and the warning is silenced.
warnings.filterwarnings("ignore", message='Field name "copy" in "Timing" shadows', category=UserWarning)


class Timing(_Model):
    """One distribution per timing parameter of MODEL.md 1.2 (not "access": that is the page's)."""

    unmap_pte: Distribution = Field(default=DEFAULT_TIMING["unmap_pte"])
    pre_freeze: Distribution = Field(default=DEFAULT_TIMING["pre_freeze"])
    freeze_hold: Distribution = Field(default=DEFAULT_TIMING["freeze_hold"])
    copy: Distribution = Field(default=DEFAULT_TIMING["copy"])
    remap_pte: Distribution = Field(default=DEFAULT_TIMING["remap_pte"])
    fault_entry: Distribution = Field(default=DEFAULT_TIMING["fault_entry"])
    ptl_hold: Distribution = Field(default=DEFAULT_TIMING["ptl_hold"])
    drop_hold: Distribution = Field(default=DEFAULT_TIMING["drop_hold"])
    noref_gap: Distribution = Field(default=DEFAULT_TIMING["noref_gap"])
    lock_hold: Distribution = Field(default=DEFAULT_TIMING["lock_hold"])
    wake_latency: Distribution = Field(default=DEFAULT_TIMING["wake_latency"])
    free_delay: Distribution = Field(default=DEFAULT_TIMING["free_delay"])
    retry_gap: Distribution = Field(default=DEFAULT_TIMING["retry_gap"])
    outer_gap: Distribution = Field(default=DEFAULT_TIMING["outer_gap"])

    def to_config(self) -> dict:
        return {n: getattr(self, n).to_config() for n in TIMING_NAMES}


class Budget(_Model):
    passes: int = Field(default=10, ge=1)
    trylock_passes: int = Field(default=3, ge=0)
    timeout: PositiveDuration = "120s"
    max_attempts: int = Field(default=1000, ge=1)

    def to_config(self) -> dict:
        return {"passes": self.passes, "trylock_passes": self.trylock_passes,
                "timeout": format_ns(self.timeout, exact=True), "max_attempts": self.max_attempts}


class Block(_Model):
    """A memory block (MODEL.md 1.6). Pages are laid out in class order; pages of the block not
    covered by a class are free and need no migration, so they are not simulated."""

    pages: int = Field(default=32768, ge=1)  # 128 MiB of 4 KiB pages
    batch_pages: int = Field(default=256, ge=1)
    classes: list[BlockClass] = Field(min_length=1)

    @model_validator(mode="after")
    def _fits(self):
        total = sum(c.count for c in self.classes)
        if total > self.pages:
            raise FieldError("classes", f"{total} pages",
                             "the classes' counts must add up to at most {0} (%d)" % self.pages, refs=("pages",))
        return self

    def to_config(self) -> dict:
        return {"pages": self.pages, "batch_pages": self.batch_pages,
                "classes": [c.to_config() for c in self.classes]}


class Strategy(_Model):
    """A waiting strategy of MODEL.md 1.4, with its options and a label naming its results."""

    OPTIONS: ClassVar[dict[str, str]] = {"recheck": "pte_wait", "flag_from": "flag_spin"}

    name: Literal["ref", "drop", "ptl_pin", "lock_noref", "flag_spin", "pte_wait"]
    label: str | None = None
    recheck: bool | None = None
    flag_from: Literal["lock", "unmap_end"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, v):
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _options(self):
        for opt, owner in self.OPTIONS.items():
            if getattr(self, opt) is not None and self.name != owner:
                raise FieldError(opt, getattr(self, opt),
                                 f"option '{opt}' belongs to strategy '{owner}' only; '{self.name}' "
                                 f"takes {self._options_of(self.name)}")
        if self.label is not None and not _LABEL_RE.match(self.label):
            raise FieldError("label", self.label, "a label is letters, digits, '_', '.' or '-' "
                             "(it names result columns and files)")
        defaults = {"label": self.name}
        if self.name == "pte_wait":
            defaults["recheck"] = True
        if self.name == "flag_spin":
            defaults["flag_from"] = "lock"
        for k, v in defaults.items():
            if getattr(self, k) is None:
                object.__setattr__(self, k, v)
        return self

    @classmethod
    def _options_of(cls, name: str) -> str:
        opts = [o for o, owner in cls.OPTIONS.items() if owner == name]
        return "only the option " + ", ".join(opts) if opts else "no options"

    def to_config(self, with_label: bool = True) -> dict:
        d = {"name": self.name}
        if with_label:
            d["label"] = self.label
        for opt, owner in self.OPTIONS.items():
            if self.name == owner:
                d[opt] = getattr(self, opt)
        return d


class Note(BaseModel):
    """Provenance of one config value: an estimate or not, and why it is what it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    estimate: bool = False
    why: str = ""


def _all_strategies() -> list[dict]:
    return [{"name": s} for s in STRATEGIES]


class Scenario(_Model):
    """A validated config. Build one with load_scenario() or Scenario.from_dict()."""

    name: str = "unnamed"
    description: str = ""
    level: Literal["page", "block"] = "page"
    page: Page | None = None
    transient: Transient = Field(default_factory=Transient)
    timing: Timing = Field(default_factory=Timing)
    budget: Budget = Field(default_factory=Budget)
    block: Block | None = None
    strategies: list[Strategy] = Field(default_factory=_all_strategies)

    _notes: dict[str, Note] = PrivateAttr(default_factory=dict)

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategy_list(cls, v):
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if isinstance(v, (list, tuple)) and len(v) == 0:
            raise ValueError("give at least one strategy (one of " + ", ".join(STRATEGIES) + ")")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.level == "page" and self.page is None:
            raise FieldError("page", _MISSING, "level = 'page' needs a [page] table "
                             "(kind, mapcount, active, access_rate)")
        if self.level == "block" and self.block is None:
            raise FieldError("block", _MISSING, "level = 'block' needs a [block] table "
                             "(pages, batch_pages, classes)")
        seen: dict[str, int] = {}
        for i, s in enumerate(self.strategies):
            if s.label in seen:
                raise FieldError(("strategies", i, "label"), s.label,
                                 f"labels must be unique (strategies.{seen[s.label]} has it too); "
                                 "give one of them another label = \"...\"")
            seen[s.label] = i
        try:
            transient.window(self.transient.rate, self.transient.hold.compile().max_ns,
                             self.budget.timeout)
        except transient.LayoutError as e:
            raise FieldError(("transient", "rate"), format_rate(self.transient.rate), str(e)) from None
        return self

    # ---- construction

    @classmethod
    def from_dict(cls, raw: Mapping, source: str | None = None) -> "Scenario":
        """Validate a config dict (as tomllib reads it); wrappers {value, estimate, why} allowed."""
        return _build(raw, {}, source)

    # ---- queries

    @property
    def notes(self) -> dict[str, Note]:
        """Provenance by dotted path ("timing.fault_entry" -> Note(estimate=True, why=...))."""
        return dict(self._notes)

    def estimates(self) -> list[str]:
        """Dotted paths of the values marked as estimates."""
        return [k for k, n in self._notes.items() if n.estimate]

    def labels(self) -> list[str]:
        return [s.label for s in self.strategies]

    def strategy(self, label: str | None = None) -> Strategy:
        if label is None:
            if len(self.strategies) != 1:
                raise ScenarioError(f"strategies: name one label of {', '.join(self.labels())}")
            return self.strategies[0]
        for s in self.strategies:
            if s.label == label:
                return s
        raise ScenarioError(f"strategies: {label!r} is not a label of this scenario "
                            f"(labels: {', '.join(self.labels())})")

    def dist(self, name: str):
        """The distribution of a timing name of DIST_NAMES ("access" is not one: see compile)."""
        return getattr(self.timing, name)

    # ---- derived scenarios

    def set(self, path: str, value) -> "Scenario":
        """A copy with the field at dotted ``path`` set to ``value`` (config form), validated.

        ``value`` is what a config would hold there ("0.5us", 2, {dist = "exp", mean = "1ms"}, a
        model instance...). The note of the changed value, if any, is dropped. For ``strategies``
        a list or a comma-separated string of labels of this scenario (kept with their options)
        or strategy names is accepted.
        """
        return self.set_many({path: value})

    def set_many(self, changes: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> "Scenario":
        """Like set() for several paths at once, validated together (say level and block)."""
        items = list(changes.items()) if isinstance(changes, Mapping) else list(changes)
        raw = self._raw()
        notes = dict(self._notes)
        for path, value in items:
            parts = _split_path(path)
            value = _to_plain(value)
            if parts == ["strategies"]:
                value = self._resolve_strategies(value)
            _assign(raw, parts, value)
            dotted = ".".join(parts)
            notes = {k: n for k, n in notes.items()
                     if not (k == dotted or k.startswith(dotted + ".") or dotted.startswith(k + "."))}
        return _build(raw, notes, None)

    def with_strategies(self, labels: Iterable[str] | str) -> "Scenario":
        """A copy keeping only the strategies with these labels, in this order."""
        if isinstance(labels, str):
            labels = [x.strip() for x in labels.split(",") if x.strip()]
        chosen = [self.strategy(lb).to_config() for lb in labels]
        return self.set("strategies", chosen)

    def _resolve_strategies(self, value):
        if isinstance(value, str):
            value = [x.strip() for x in value.split(",") if x.strip()]
        if not isinstance(value, list):
            return value
        mine = {s.label: s.to_config() for s in self.strategies}
        return [mine.get(v, v) if isinstance(v, str) else v for v in value]

    # ---- serialisation

    def _raw(self) -> dict:
        d: dict[str, Any] = {"name": self.name, "description": self.description, "level": self.level}
        if self.page is not None:
            d["page"] = self.page.to_config()
        d["transient"] = self.transient.to_config()
        d["timing"] = self.timing.to_config()
        d["budget"] = self.budget.to_config()
        if self.block is not None:
            d["block"] = self.block.to_config()
        d["strategies"] = [s.to_config() for s in self.strategies]
        return d

    def to_dict(self, notes: bool = True) -> dict:
        """JSON-able canonical form (units normalised, defaults written out); loads back as a
        config. With ``notes``, noted values are wrapped as {value, estimate, why} again."""
        d = self._raw()
        if notes:
            for path, note in self._notes.items():
                _wrap(d, path.split("."), note)
        return d

    def to_toml(self) -> str:
        """The canonical form as TOML (for `mcexplore show` and for saving a derived scenario)."""
        return _to_toml(self.to_dict())

    def config_hash(self, label: str | None = None) -> str:
        """First 16 hex digits of the sha256 of the canonical JSON of what the simulation depends
        on: not name, description or notes, and not the table the level does not use. With a
        ``label``: the world plus that one strategy's name and options (not its label), so one
        strategy's results keep their key whichever other strategies run beside it."""
        d = self.to_dict(notes=False)
        for k in ("name", "description"):
            d.pop(k)
        d.pop("block" if self.level == "page" else "page", None)
        if label is not None:
            d["strategies"] = [self.strategy(label).to_config(with_label=False)]
        text = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ---- compilation

    def compile(self, label: str | None = None) -> Compiled:
        """The engines' form for one strategy (``label`` may be omitted if there is only one)."""
        strat = self.strategy(label)
        if self.level == "page":
            page = self.page.page_class()
            block = None
            rate = self.page.access_rate
        else:
            block = [c.page_class() for c in self.block.classes]
            page = PageClass()
            # One "access" distribution per Compiled: at block level it is the hottest class's.
            # Each PageClass also carries its own access_mean_ns, which a block engine should use.
            rate = max((c.access_rate for c in self.block.classes if c.n_active > 0), default=0.0)
        access = params.exponential(1.0 / rate) if rate > 0 else params.const(0)
        named = {"access": access, "transient_hold": self.transient.hold.compile()}
        dists = [named[n] if n in named else getattr(self.timing, n).compile() for n in DIST_NAMES]
        return Compiled(
            strategy=STRATEGY_CODE[strat.name],
            dists=dists,
            page=page,
            recheck=bool(strat.recheck) if strat.name == "pte_wait" else True,
            flag_from_unmap_end=strat.flag_from == "unmap_end",
            passes=self.budget.passes,
            trylock_passes=self.budget.trylock_passes,
            timeout_ns=int(round(self.budget.timeout)),
            max_attempts=self.budget.max_attempts,
            transient_rate_per_ns=float(self.transient.rate),
            block=block,
            batch_pages=self.block.batch_pages if self.block is not None else 256,
        )

    def compile_all(self) -> dict[str, Compiled]:
        return {lb: self.compile(lb) for lb in self.labels()}


# --------------------------------------------------------------------------------------------
# Notes (provenance wrappers)

_WRAPPER_KEYS = ("value", "estimate", "why")


def _is_wrapper(d) -> bool:
    return isinstance(d, dict) and "value" in d and "dist" not in d


def _strip_notes(node, path: list, notes: dict, errors: list):
    """Take {value, estimate, why} wrappers off a raw config, recording them in ``notes``."""
    if _is_wrapper(node):
        where = ".".join(map(str, path))
        bad = [k for k in node if k not in _WRAPPER_KEYS]
        for k in bad:
            errors.append(f"unknown key {k!r} in [{where}] (valid keys: value, estimate, why)")
        est, why = node.get("estimate", False), node.get("why", "")
        if not isinstance(est, bool):
            errors.append(f"{where}.estimate: {est!r} is not valid: must be true or false")
        if not isinstance(why, str):
            errors.append(f"{where}.why: {why!r} is not valid: must be a string")
        if not bad and isinstance(est, bool) and isinstance(why, str):
            notes[where] = Note(estimate=est, why=why)
        return _strip_notes(node["value"], path, notes, errors)
    if isinstance(node, dict):
        return {k: _strip_notes(v, path + [k], notes, errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_strip_notes(v, path + [i], notes, errors) for i, v in enumerate(node)]
    return node


def _wrap(d, parts: list[str], note: Note):
    node = d
    for p in parts[:-1]:
        if isinstance(node, list) and p.isdigit() and int(p) < len(node):
            node = node[int(p)]
        elif isinstance(node, dict) and p in node:
            node = node[p]
        else:
            return
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = {"value": node[int(last)], "estimate": note.estimate, "why": note.why}
    elif isinstance(node, dict) and last in node:
        node[last] = {"value": node[last], "estimate": note.estimate, "why": note.why}


def _build(raw: Mapping, notes: dict, source: str | None) -> Scenario:
    errors: list[str] = []
    found: dict[str, Note] = {}
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"a config is a table of keys, not {type(raw).__name__}", source)
    clean = _strip_notes(dict(raw), [], found, errors)
    if errors:
        raise ScenarioError(errors, source)
    try:
        s = Scenario.model_validate(clean)
    except ValidationError as e:
        raise ScenarioError(_format_errors(e), source) from None
    s._notes = {**notes, **found}
    return s


# --------------------------------------------------------------------------------------------
# Error messages: pydantic's errors rewritten as "path: value is not valid: what is valid"


def _classify(tp):
    """('model', cls) | ('list', item) | ('union', {tag: type}) | ('other', tp)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        tags = {}
        for a in args:
            if typing.get_origin(a) is Annotated:
                for m in a.__metadata__:
                    if isinstance(m, Tag):
                        tags[m.tag] = typing.get_args(a)[0]
        if tags:
            return "union", tags
        rest = [a for a in args if a is not type(None)]
        return _classify(rest[0]) if len(rest) == 1 else ("other", tp)
    if origin is list:
        return "list", typing.get_args(tp)[0]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "model", tp
    return "other", tp


def _walk(loc, root) -> tuple[list[str], Any]:
    """Display path of a pydantic loc (union tags dropped) and the type found there."""
    tp: Any = root
    shown: list[str] = []
    for part in loc:
        kind, info = _classify(tp) if tp is not None else ("other", None)
        if kind == "union" and isinstance(part, str) and part in info:
            tp = info[part]
            continue
        if kind == "list" and isinstance(part, int):
            tp = info
        elif kind == "model" and isinstance(part, str) and part in info.model_fields:
            tp = info.model_fields[part].annotation
        else:
            tp = None
        shown.append(str(part))
    return shown, tp


def _keys_of(tp) -> list[str] | None:
    kind, info = _classify(tp) if tp is not None else ("other", None)
    return list(info.model_fields) if kind == "model" else None


def _show(v, limit: int = 100) -> str:
    s = ("true" if v else "false") if isinstance(v, bool) else repr(v)
    return s if len(s) <= limit else s[:limit - 3] + "..."


def _section(shown: list[str]) -> str:
    return f"[{'.'.join(shown)}]" if shown else "the top level"


def _simple_kinds(mixture: bool) -> str:
    kinds = DIST_KINDS if mixture else DIST_KINDS[:-1]
    return ", ".join(kinds)


_COMPARISONS = (("greater than or equal to", ">="), ("less than or equal to", "<="),
                ("greater than", ">"), ("less than", "<"))


def _format_error(err: dict, root) -> str:
    loc, typ, inp = tuple(err["loc"]), err["type"], err.get("input")
    if typ == "extra_forbidden":
        shown, tp = _walk(loc[:-1], root)
        keys = _keys_of(tp)
        valid = f" (valid keys: {', '.join(keys)})" if keys else ""
        return f"unknown key {loc[-1]!r} in {_section(shown)}{valid}"
    shown, tp = _walk(loc, root)
    path = ".".join(shown) or "(config)"
    if typ == "missing":
        return f"{path}: missing: this key is required"
    if typ in ("bad_dist", "bad_component"):
        comp = typ == "bad_component"
        kinds = _simple_kinds(mixture=True)  # a mixture component may be a mixture itself
        what = "a mixture component" if comp else "a distribution"
        if isinstance(inp, dict) and "dist" in inp:
            return f"{path}.dist: {_show(inp['dist'])} is not valid: {what} must be one of {kinds}"
        if comp:
            return (f"{path}: {_show(inp)} is not valid: a mixture component is a table "
                    f"{{weight = ..., dist = one of {kinds}, ...}}")
        return (f"{path}: {_show(inp)} is not valid: a distribution is a duration such as '1us' "
                f"or a table with dist = one of {kinds} (or {{value = ..., estimate = ..., why = ...}})")
    if typ == "value_error":
        e = err.get("ctx", {}).get("error")
        if isinstance(e, FieldError):
            shown2, _ = _walk(loc + e.loc, root)
            prefix = ".".join(shown)
            refs = [f"{prefix}.{r}" if prefix else r for r in e.refs]
            reason = e.reason.format(*refs)
            p2 = ".".join(shown2)
            if e.value is _MISSING:
                return f"{p2}: missing: {reason}"
            return f"{p2}: {_show(e.value)} is not valid: {reason}"
        if isinstance(e, UnitError):
            return f"{path}: {_show(e.value)} is not valid: {e.reason}"
        reason = str(e) if e is not None else err["msg"]
        return f"{path}: {_show(inp)} is not valid: {reason}"
    msg = err["msg"]
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        msg = "must be a table"
    elif msg.startswith("Input should be "):
        msg = "must be " + msg[len("Input should be "):]
        for words, sign in _COMPARISONS:
            msg = msg.replace(words, sign)
    elif msg.startswith("List should have"):
        msg = "must have" + msg[len("List should have"):]
    return f"{path}: {_show(inp)} is not valid: {msg}"


def _format_errors(exc: ValidationError, root=None) -> list[str]:
    lines: list[str] = []
    for err in exc.errors():
        line = _format_error(err, root or Scenario)
        if line not in lines:
            lines.append(line)
    return lines


# --------------------------------------------------------------------------------------------
# Paths, overrides


def _split_path(path: str) -> list[str]:
    parts = [p.strip() for p in str(path).strip().split(".")]
    if not parts or any(not p for p in parts):
        raise ScenarioError(f"{path!r} is not a valid path: write dotted keys, e.g. page.mapcount")
    return parts


def _to_plain(value):
    if isinstance(value, Scenario):
        raise ScenarioError("cannot set a field to a whole scenario")
    if hasattr(value, "to_config") and isinstance(value, BaseModel):
        return value.to_config()
    if isinstance(value, Note):
        return value.model_dump()
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _assign(raw: dict, parts: list[str], value) -> None:
    """Set raw[parts...] = value, checking each key against the models (not the raw dict, which
    may lack defaulted keys)."""
    tp: Any = Scenario
    node: Any = raw
    for i, part in enumerate(parts):
        where = ".".join(parts[:i])
        last = i == len(parts) - 1
        kind, info = _classify(tp) if tp is not None else ("other", None)
        if kind == "union":  # a distribution: its table says which kind
            member = info.get(_tag(node)) if node is not None else None
            kind, info = _classify(member) if member is not None else ("other", None)
        if kind == "model":
            if part not in info.model_fields:
                raise ScenarioError(f"{'.'.join(parts)}: unknown key {part!r} in {_section(parts[:i])} "
                                    f"(valid keys: {', '.join(info.model_fields)})")
            if last:
                node[part] = value
                return
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            tp, node = info.model_fields[part].annotation, child
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(f"{'.'.join(parts)}: {part!r} is not an index of {where} "
                                    f"(0 to {len(node) - 1})")
            if last:
                node[int(part)] = value
                return
            tp, node = (info if kind == "list" else None), node[int(part)]
        else:
            raise ScenarioError(f"{'.'.join(parts)}: {where} is {_show(node)}, not a table; "
                                f"set {where} itself")


def parse_override(text: str) -> tuple[str, Any]:
    """'page.mapcount=2' -> ('page.mapcount', 2); the value is TOML if it parses, else a string."""
    if "=" not in text:
        raise ScenarioError(f"override {text!r} is not valid: write PATH=VALUE, e.g. page.mapcount=2")
    path, _, value = text.partition("=")
    path, value = path.strip(), value.strip()
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return path, parsed


class _OneDist(_Model):
    value: Distribution


def parse_distribution(value) -> _Dist:
    """A distribution from its config form ("1us", {dist = "exp", mean = "30us"}, ...)."""
    errors: list[str] = []
    clean = {"value": _strip_notes(value, ["value"], {}, errors)}
    if errors:
        raise ScenarioError(errors)
    try:
        return _OneDist.model_validate(clean).value
    except ValidationError as e:
        raise ScenarioError(_format_errors(e, _OneDist)) from None


# --------------------------------------------------------------------------------------------
# Files


def _shipped_dir():
    """The configs shipped in the wheel (package mcexplore.configs), or the repo's configs/."""
    try:
        return importlib.resources.files("mcexplore.configs")
    except ModuleNotFoundError:
        # Running from a checkout whose editable install predates the package mapping.
        return Path(__file__).resolve().parent.parent / "configs"


def list_shipped() -> list[str]:
    """Names of the shipped scenarios (load them with load_scenario(name)); sweep files
    (``sweep-*.toml``, read by mcexplore.sweep.load_sweep) are not scenarios."""
    return sorted(p.name[:-5] for p in _shipped_dir().iterdir()
                  if p.name.endswith(".toml") and not p.name.startswith("sweep-"))


def default_scenario_path() -> Path:
    return Path(str(_shipped_dir().joinpath(DEFAULT_SCENARIO + ".toml")))


def _locate(path_or_name) -> tuple[str, str, str]:
    """(text, source for messages, default name)."""
    p = Path(path_or_name)
    if p.is_file():
        return p.read_text(encoding="utf-8"), str(p), p.stem
    name = str(path_or_name)
    name = name[:-5] if name.endswith(".toml") else name
    shipped = list_shipped()
    if name in shipped:
        res = _shipped_dir().joinpath(name + ".toml")
        return res.read_text(encoding="utf-8"), f"{name}.toml (shipped)", name
    raise ScenarioError(f"{str(path_or_name)!r} is neither a config file nor a shipped config "
                        f"(shipped: {', '.join(shipped)})")


def load_scenario(path_or_name=DEFAULT_SCENARIO, overrides: Iterable[str] = ()) -> Scenario:
    """Read a TOML config (a path, or the name of a shipped one) and apply "path=VALUE" overrides."""
    text, source, stem = _locate(path_or_name)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"not valid TOML: {e}", source) from None
    raw.setdefault("name", stem)
    s = _build(raw, {}, source)
    if isinstance(overrides, str):
        overrides = [overrides]
    overrides = list(overrides)
    if not overrides:
        return s
    # Applied together, so that e.g. level=block and block.classes=[...] can go in one call; a
    # bad path is blamed on its own override, a bad value on the field it reaches.
    changes = []
    for ov in overrides:
        try:
            path, value = parse_override(ov)
            _assign(s._raw(), _split_path(path), value)  # checks the path alone
        except ScenarioError as e:
            raise ScenarioError(e.lines, f"override {ov!r}") from None
        changes.append((path, value))
    where = f"override {overrides[0]!r}" if len(overrides) == 1 else \
        "overrides " + ", ".join(repr(o) for o in overrides)
    try:
        return s.set_many(changes)
    except ScenarioError as e:
        raise ScenarioError(e.lines, where) from None


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not (isinstance(v, float) and math.isinf(v)) else ("inf" if v > 0 else "-inf")
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _to_toml(d: dict) -> str:
    lines = []
    for k, v in d.items():
        if not isinstance(v, dict) and k != "strategies":
            lines.append(f"{k} = {_toml_value(v)}")
    for k, v in d.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
    for s in d.get("strategies", []):
        lines += ["", "[[strategies]]"] + [f"{kk} = {_toml_value(vv)}" for kk, vv in s.items()]
    return "\n".join(lines) + "\n"
