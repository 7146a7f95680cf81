"""Distributions of a config (MODEL.md 1.2): one pydantic model per ``dist`` kind, the
``Distribution`` union that a timing field holds, and their compilation to the engines'
``params.CompiledDist``.

Where it sits: above mcexplore.scenario.types (field types, _Model, FieldError), below the
scenario models (mcexplore.scenario.models: Timing and Transient hold these). It knows nothing of
scenarios; mcexplore.params does the tabulation and mixing.

A distribution is a duration ("1us": a constant) or a table with ``dist`` = const, uniform, exp,
lognormal, empirical, histogram or mixture; a mixture's components are the same tables plus a
``weight``, and may be mixtures themselves.
"""


import functools
import math
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import AfterValidator, BeforeValidator, Discriminator, Field, Tag, TypeAdapter, model_validator

from .. import params
from ..params import CompiledDist, Component
from ..units import UnitError, format_ns, parse_scaled
from .types import Duration, FieldError, PositiveDuration, Probability, Weight, _duration, _Model

DIST_KINDS = ("const", "uniform", "exp", "lognormal", "empirical", "histogram", "mixture")
# A lognormal is tabulated (params.table_component) from p = 2^-32 to 1 - 2^-32: the lowest 2^-32
# of its mass is uniform on [0, q(2^-32)), the highest a point mass at q(1 - 2^-32).
LOGNORMAL_P_CLIP = params.TAIL_P

def _knots_component(kp: np.ndarray, kv: np.ndarray) -> Component:
    """Piecewise uniform between knots (p, value): segment j is [v_j, v_j+1) with probability
    p_j+1 - p_j (sampled exactly; equal consecutive p make no segment, equal values a point mass)."""
    return params.segments_component(kv[:-1], kv[1:], np.diff(kp))


@functools.lru_cache(maxsize=64)
def _lognormal_component(median: float, sigma: float) -> Component:
    # Tabulating takes some 20 ms; a scenario compiles every strategy with the same timings.
    if sigma == 0:
        return params.const_component(median)
    from scipy.special import ndtri  # here: a scenario without a lognormal needs no scipy

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
        from scipy.special import ndtr, ndtri

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


class _OneDist(_Model):
    """A lone distribution (parse_distribution validates one through this)."""

    value: Distribution
