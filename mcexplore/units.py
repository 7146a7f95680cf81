"""Durations and rates written out with their units, as configs and the CLI spell them.

Where it sits: at the bottom of the scenario layer. mcexplore.scenario parses every time and rate of
a config through here, and the CLI formats times for people with ``format_ns``. Internally a
duration is a float number of nanoseconds and a rate a float number of events per nanosecond; the
engines later round to int64 nanoseconds (mcexplore.params).

Units: ns, us (also µs, μs), ms, s. A bare number is refused unless it is 0, because "0.5" in a
config is far more likely to mean 0.5 ms or 0.5 us than 0.5 ns. Numbers are read as decimals, so
"1.1us" is exactly 1100.0 ns rather than 1100.0000000000002, and the exact formatter
(``format_ns(ns, exact=True)``) writes back a string that parses to the same float: configs
normalised by the scenario layer hash the same however they were spelt.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "UnitError", "DURATION_UNITS", "RATE_UNITS", "parse_duration", "parse_rate", "parse_scaled",
    "format_ns", "format_rate",
]

# Nanoseconds per unit. Ordered from the largest so formatting can pick the first that fits.
DURATION_UNITS: dict[str, int] = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_ALIASES = {"µs": "us", "μs": "us"}  # micro sign U+00B5 and Greek mu U+03BC
RATE_UNITS = ("/ns", "/us", "/ms", "/s")
_UNIT_LIST = "ns, us, ms, s"

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_DURATION_RE = re.compile(rf"^\s*({_NUM})\s*([a-zA-Zµμ]*)\s*$")
_RATE_RE = re.compile(rf"^\s*({_NUM})\s*/\s*([a-zA-Zµμ]+)\s*$")
# 1024-based suffixes, as bpftrace prints histogram bounds ("[4K, 8K)").
_SCALE = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
_SCALED_RE = re.compile(rf"^\s*({_NUM})\s*([KMG]?)\s*$")


class UnitError(ValueError):
    """A value that is not a valid duration/rate; ``reason`` says what is valid.

    The scenario layer puts the field name in front of ``value`` and ``reason``; standalone, the
    message is "<value> is not valid: <reason>".
    """

    def __init__(self, value, reason: str):
        self.value = value
        self.reason = reason
        super().__init__(f"{value!r} is not valid: {reason}")


def _unit(u: str) -> str | None:
    u = _ALIASES.get(u, u)
    return u if u in DURATION_UNITS else None


def _decimal(num: str) -> Decimal:
    d = Decimal(num)
    if not d.is_finite():
        raise InvalidOperation
    return d


def parse_duration(value, *, positive: bool = False) -> float:
    """'1.1us', '4ms', '120s', '250ns', '1.5 us', '0' or 0 -> nanoseconds (float, >= 0).

    ``positive``: also refuse 0 (a timeout, say).
    """
    if isinstance(value, bool):
        raise UnitError(value, f"a duration is a number with a unit, e.g. '1.5us' (units: {_UNIT_LIST})")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise UnitError(value, f"durations must be finite (units: {_UNIT_LIST})")
        if value != 0:
            raise UnitError(value, f"write the unit, e.g. '{value}us': a bare number is only allowed "
                                   f"for 0 (units: {_UNIT_LIST})")
        ns = 0.0
    elif isinstance(value, str):
        m = _DURATION_RE.match(value)
        unit = _unit(m.group(2)) if m and m.group(2) else None
        if not m or (m.group(2) and unit is None):
            raise UnitError(value, f"a duration is a number with a unit, e.g. '1.5us' (units: {_UNIT_LIST})")
        try:
            d = _decimal(m.group(1))
        except InvalidOperation:
            raise UnitError(value, f"a duration is a number with a unit (units: {_UNIT_LIST})") from None
        if unit is None and d != 0:
            raise UnitError(value, f"write the unit, e.g. '{m.group(1)}us': a bare number is only allowed "
                                   f"for 0 (units: {_UNIT_LIST})")
        ns = float(d * DURATION_UNITS[unit or "ns"])
    else:
        raise UnitError(value, f"a duration is a string such as '1.5us' (units: {_UNIT_LIST})")
    if ns < 0:
        raise UnitError(value, f"durations must be >= 0 (units: {_UNIT_LIST})")
    if positive and ns == 0:
        raise UnitError(value, f"must be > 0 (units: {_UNIT_LIST})")
    if not math.isfinite(ns):
        raise UnitError(value, f"durations must be finite (units: {_UNIT_LIST})")
    return ns


def parse_rate(value) -> float:
    """'1/us', '100/s', '2.5/ms', '0/us', '0' or 0 -> events per nanosecond (float, >= 0)."""
    valid = "a rate is a count per unit, e.g. '1/us' or '100/s' (units: /ns, /us, /ms, /s)"
    if isinstance(value, bool):
        raise UnitError(value, valid)
    if isinstance(value, (int, float)):
        if value != 0:
            raise UnitError(value, f"write the unit, e.g. '{value}/us': a bare number is only allowed for 0 "
                                   f"(units: /ns, /us, /ms, /s)")
        return 0.0
    if not isinstance(value, str):
        raise UnitError(value, valid)
    if value.strip() in ("0", "0.0"):
        return 0.0
    m = _RATE_RE.match(value)
    unit = _unit(m.group(2)) if m else None
    if not m or unit is None:
        raise UnitError(value, valid)
    try:
        d = _decimal(m.group(1))
    except InvalidOperation:
        raise UnitError(value, valid) from None
    if d < 0:
        raise UnitError(value, "rates must be >= 0 (units: /ns, /us, /ms, /s)")
    return float(d / DURATION_UNITS[unit])


def parse_scaled(value) -> float:
    """A histogram bucket bound: 512, '4K', '1M' (K, M, G are 1024-based, as bpftrace prints them)."""
    if isinstance(value, bool):
        raise UnitError(value, "a bucket bound is a number, optionally with a 1024-based K, M or G suffix")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise UnitError(value, "a bucket bound must be finite")
        return float(value)
    if isinstance(value, str):
        m = _SCALED_RE.match(value)
        if m:
            return float(_decimal(m.group(1)) * _SCALE[m.group(2)])
    raise UnitError(value, "a bucket bound is a number, optionally with a 1024-based K, M or G suffix "
                           "(e.g. 512, '4K', '1M')")


def _plain(d: Decimal) -> str:
    s = format(d.normalize(), "f")
    return "0" if s in ("-0", "0") else s


def format_ns(ns: float, exact: bool = False) -> str:
    """Nanoseconds for people: 4500000 -> '4.5ms', 1.2e11 -> '120s', 310 -> '310ns'.

    Picks the largest unit the value reaches. By default 3 significant digits (whole numbers from
    100 up); ``exact=True`` writes every digit so that ``parse_duration`` gives back the same float.
    """
    ns = float(ns)
    if not math.isfinite(ns):
        return str(ns)
    if ns == 0:
        return "0ns"
    mag = abs(ns)
    unit = next((u for u, f in DURATION_UNITS.items() if mag >= f), "ns")
    if exact:
        return _plain(Decimal(repr(ns)) / DURATION_UNITS[unit]) + unit
    x = ns / DURATION_UNITS[unit]
    s = f"{x:.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return s + unit


def format_rate(per_ns: float, exact: bool = True) -> str:
    """Events per ns -> '1/us', '100/s': the shortest unit in which at least one event occurs."""
    per_ns = float(per_ns)
    if per_ns == 0:
        return "0/s"
    for unit in ("ns", "us", "ms", "s"):
        if per_ns * DURATION_UNITS[unit] >= 1 or unit == "s":
            break
    if exact:
        return _plain(Decimal(repr(per_ns)) * DURATION_UNITS[unit]) + "/" + unit
    return f"{per_ns * DURATION_UNITS[unit]:.3g}/{unit}"
