"""Units: parsing durations/rates written out, formatting them back, and their error messages."""

import math

import pytest

from mcexplore.units import (
    UnitError, format_ns, format_rate, parse_duration, parse_rate, parse_scaled,
)


@pytest.mark.parametrize("text, ns", [
    ("1.1us", 1100.0), ("4ms", 4e6), ("120s", 1.2e11), ("250ns", 250.0), ("0", 0.0), (0, 0.0),
    (0.0, 0.0), ("1.5 us", 1500.0), ("2µs", 2000.0), ("2μs", 2000.0), (" 3 ms ", 3e6),
    ("0.3us", 300.0), ("1e3ns", 1000.0), (".5ms", 5e5), ("0us", 0.0),
])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


def test_decimal_parsing_is_exact():
    # Floats would give 1100.0000000000002 for 1.1 * 1000.
    assert parse_duration("1.1us") == 1100.0
    assert parse_duration("0.7us") == 700.0


@pytest.mark.parametrize("bad, words", [
    ("-3us", "durations must be >= 0"),
    ("4 parsecs", "units: ns, us, ms, s"),
    ("1min", "units: ns, us, ms, s"),
    ("us", "units"),
    (5, "write the unit"),
    ("5", "write the unit"),
    (True, "units"),
    ([1], "units"),
    (float("nan"), "finite"),
    ("1e999s", "finite"),
])
def test_parse_duration_errors(bad, words):
    with pytest.raises(UnitError) as ei:
        parse_duration(bad)
    msg = str(ei.value)
    assert repr(bad) in msg and "is not valid" in msg and words in msg
    assert isinstance(ei.value, ValueError)


def test_positive_duration():
    assert parse_duration("1s", positive=True) == 1e9
    with pytest.raises(UnitError, match="must be > 0"):
        parse_duration("0s", positive=True)


@pytest.mark.parametrize("text, per_ns", [
    ("1/us", 1e-3), ("100/s", 1e-7), ("0/us", 0.0), ("2.5/ms", 2.5e-6), ("0", 0.0), (0, 0.0),
    ("1 / us", 1e-3), ("3/ns", 3.0), ("1000/s", 1e-6),
])
def test_parse_rate(text, per_ns):
    assert parse_rate(text) == pytest.approx(per_ns, rel=1e-15)


@pytest.mark.parametrize("bad, words", [
    ("-1/us", "rates must be >= 0"), ("1/fortnight", "/ns, /us, /ms, /s"), ("5", "a rate is"),
    (3, "write the unit"), ("1us", "a rate is"),
])
def test_parse_rate_errors(bad, words):
    with pytest.raises(UnitError) as ei:
        parse_rate(bad)
    assert repr(bad) in str(ei.value) and words in str(ei.value)


def test_parse_scaled_is_1024_based():
    assert parse_scaled("4K") == 4096
    assert parse_scaled("1M") == 1024 ** 2
    assert parse_scaled("2G") == 2 * 1024 ** 3
    assert parse_scaled(512) == 512
    assert parse_scaled("1.5K") == 1536
    with pytest.raises(UnitError, match="1024-based"):
        parse_scaled("4k")


@pytest.mark.parametrize("ns, text", [
    (4.5e6, "4.5ms"), (1.2e11, "120s"), (310, "310ns"), (0, "0ns"), (1234.5, "1.23us"),
    (999, "999ns"), (1000, "1us"), (3.6e12, "3600s"), (0.5, "0.5ns"),
])
def test_format_ns(ns, text):
    assert format_ns(ns) == text


@pytest.mark.parametrize("ns", [0.0, 1.0, 300.0, 1100.0, 1234.5678901234567, 4.5e6, 1.2e11, 0.25,
                                1e-3, 123456789.123, 5e5, 2 ** 40 + 0.5])
def test_exact_format_round_trips(ns):
    assert parse_duration(format_ns(ns, exact=True)) == ns


@pytest.mark.parametrize("text", ["1.1us", "4ms", "120s", "250ns", "0.3us", "0.5ms", "7.25s"])
def test_text_round_trips(text):
    ns = parse_duration(text)
    assert parse_duration(format_ns(ns, exact=True)) == ns
    assert parse_duration(format_ns(ns)) == pytest.approx(ns, rel=5e-3)


@pytest.mark.parametrize("per_ns, text", [(1e-3, "1/us"), (1e-7, "100/s"), (1e-6, "1/ms"),
                                          (0.0, "0/s"), (2.5e-6, "2.5/ms"), (3.0, "3/ns")])
def test_format_rate(per_ns, text):
    assert format_rate(per_ns) == text
    assert parse_rate(text) == per_ns


def test_format_rate_round_trips():
    for r in (1 / 3, 1e-9 / 7, 0.00123, math.pi * 1e-4):
        assert parse_rate(format_rate(r)) == r
