"""Reading bpftrace's printed maps: the text that ``bpftrace script.bt`` writes on stdout at exit
(or ``print(@map)``), as the calibration kit's ``<name>.txt`` files hold it.

Where it sits: under mcexplore.calibration.importer, which turns these maps into scenario
distributions; it imports nothing of the project. The formats are those of bpftrace's text
output (checked against bpftrace 0.17):

    @count: 123                          a scalar (count(), sum(), a plain value)
    @x[2]: 5                             a map entry; keys are printed ", "-separated
    @x[file, busy]: 7                    (strings unquoted)
    @st: count 3, average 5, total 15    a stats()/string value: kept as text
    @h:                                  a hist() or lhist(): bucket lines follow
    [0]                    1 |@@@@   |   the value 0 (hist), [1] the value 1
    [2, 4)                 0 |       |   [lo, hi); lo and hi may carry 1024-based K, M, G, T, P,
    [4K, 8K)              12 |@@@@@@ |   E suffixes ("4K" = 4096)
    (..., 0)               3 |@      |   below the range (negative values, or below lhist's min)
    [100, ...)             2 |@      |   at or above lhist's max

Blank lines separate maps (bpftrace omits the one after a scalar); bpftrace's own "Attaching N
probes..." line (printed without -q) is skipped. Anything else is an error naming the file, the
line and what was expected (``BpfOutputError``): so are stack keys (``@[kstack]``, printed over
several lines) and bpftrace's JSON output (``-f json``), which the kit does not use.

Repeated keys: bpftrace 0.17 keys a map by the whole buffer of a string key, bytes after the
NUL included, so one key made of string ternaries can be printed several times
(``@refcount_check[file, ok]: 1`` eight times, seen in the kernel lab). Such entries are one
key's: counts and sums are added, histograms pooled bucket by bucket, and ``BpfMap.repeated``
says how often each was printed (the importer warns). Only a key with a string part (a part
that is not a whole number) can collide that way; an integer-keyed or unkeyed entry printed
twice means the map itself was printed twice (``print()``), and stays an error, as does a
repeated text value (``stats()``, a string), which cannot be added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50, "E": 1 << 60}
_NUM = r"-?\d+[KMGTPE]?"
_HEADER_RE = re.compile(r"^@(?P<name>[A-Za-z0-9_]*)(?:\[(?P<keys>.*)\])?:(?: (?P<value>.*))?$")
_BUCKET_RE = re.compile(
    rf"^(?:\[(?P<one>{_NUM})\]"                      # [0], [1]: a single value
    rf"|\[(?P<lo>{_NUM}), (?P<hi>{_NUM}|\.\.\.)\)"   # [lo, hi), [lo, ...)
    rf"|\(\.\.\., (?P<below>{_NUM})\))"              # (..., hi)
    r"\s+(?P<count>\d+)(?:\s+\|.*\|)?\s*$")
_ATTACHING_RE = re.compile(r"^Attaching \d+ probes?\.\.\.$")


class BpfOutputError(ValueError):
    """A line of bpftrace output that cannot be read: ``source:line: message``."""

    def __init__(self, source: str, line: int, message: str):
        self.source, self.line, self.message = source, line, message
        super().__init__(f"{source}:{line}: {message}")


def parse_bound(label: str) -> int:
    """A bucket label as bpftrace prints it: '512', '4K' (4096), '-3', '1M' (1024-based)."""
    m = re.fullmatch(r"(-?\d+)([KMGTPE]?)", label)
    if not m:
        raise ValueError(f"{label!r} is not a bucket bound (a whole number with an optional "
                         "1024-based K, M, G, T, P or E suffix)")
    return int(m.group(1)) * _SUFFIX[m.group(2)]


@dataclass(frozen=True)
class Bucket:
    """Values in [lo, hi) seen ``count`` times; ``lo`` None below the range, ``hi`` None above.
    ``lo_label`` and ``hi_label`` are the bounds as printed ("4K"; "[0]" is lo "0", hi "1")."""

    lo: int | None
    hi: int | None
    count: int
    lo_label: str | None = None
    hi_label: str | None = None

    @property
    def open(self) -> bool:
        return self.lo is None or self.hi is None


@dataclass(frozen=True)
class Histogram:
    """The buckets of one hist()/lhist() entry, in the order printed (increasing)."""

    buckets: tuple[Bucket, ...]
    line: int = 0   # the header's line, for messages

    @property
    def total(self) -> int:
        return sum(b.count for b in self.buckets)

    def nonzero(self) -> tuple[Bucket, ...]:
        return tuple(b for b in self.buckets if b.count > 0)


def pool_histograms(hists, what: str = "histograms") -> Histogram:
    """One histogram with the buckets of ``hists`` added (the same [lo, hi) counted together).
    Raises ValueError when buckets of different histograms overlap without being the same."""
    hists = list(hists)
    if len(hists) == 1:
        return hists[0]
    acc: dict[tuple, list] = {}
    for h in hists:
        for b in h.buckets:
            key = (b.lo, b.hi)
            if key in acc:
                acc[key][0] += b.count
            else:
                acc[key] = [b.count, b]
    order = sorted(acc, key=lambda k: (-float("inf") if k[0] is None else k[0]))
    out: list[Bucket] = []
    for k in order:
        c, b = acc[k]
        if out and (out[-1].hi is None or (b.lo is not None and b.lo < out[-1].hi)):
            p = out[-1]
            raise ValueError(f"{what}: buckets overlap ([{p.lo_label or '...'}, {p.hi_label or '...'}) "
                             f"and [{b.lo_label or '...'}, {b.hi_label or '...'})): cannot pool them")
        out.append(Bucket(b.lo, b.hi, c, b.lo_label, b.hi_label))
    return Histogram(tuple(out), min(h.line for h in hists))


@dataclass
class BpfMap:
    """A map as printed: entries keyed by the tuple of its printed keys (() for a plain @name).
    A value is an int (count, sum, scalar), a str (stats(), strings) or a Histogram."""

    name: str
    entries: dict[tuple[str, ...], int | str | Histogram] = field(default_factory=dict)
    line: int = 0   # the first header's line
    # key -> times printed, for the keys printed more than once (their entries are pooled)
    repeated: dict[tuple[str, ...], int] = field(default_factory=dict)

    def scalar(self, *keys: str, default=None):
        return self.entries.get(tuple(keys), default)

    @property
    def is_histogram(self) -> bool:
        return any(isinstance(v, Histogram) for v in self.entries.values())


def _keys(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    return tuple(k.strip() for k in text.split(", "))


def _has_string_part(keys: tuple[str, ...]) -> bool:
    return any(not re.fullmatch(r"-?\d+", k) for k in keys)


def _key_text(name: str, keys: tuple[str, ...]) -> str:
    return f"@{name}{'[' + ', '.join(keys) + ']' if keys else ''}"


def _value(text: str) -> int | str:
    t = text.strip()
    return int(t) if re.fullmatch(r"-?\d+", t) else t


def parse_bpftrace_output(text: str, source: str = "<bpftrace output>") -> dict[str, BpfMap]:
    """Every map printed in ``text``, by name (without the '@'). Raises BpfOutputError."""
    maps: dict[str, BpfMap] = {}
    hist: list[Bucket] | None = None      # the buckets of the histogram being read
    hist_at: tuple[BpfMap, tuple[str, ...], int] | None = None

    def close():
        nonlocal hist, hist_at
        if hist_at is not None:
            m, keys, at = hist_at
            h = Histogram(tuple(hist), at)
            prev = m.entries.get(keys)
            if isinstance(prev, Histogram):  # a repeated string key: pooled
                try:
                    h = pool_histograms([prev, h], _key_text(m.name, keys))
                except ValueError as e:
                    raise BpfOutputError(source, at, f"{e} (the key is printed again at this line)") from None
            m.entries[keys] = h
        hist, hist_at = None, None

    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip():
            close()
            continue
        if _ATTACHING_RE.match(line.strip()):
            continue
        if line.startswith("@"):
            close()
            m = _HEADER_RE.match(line)
            if not m:
                raise BpfOutputError(source, no, f"cannot read the map header {line!r}: expected "
                                     "'@name: VALUE', '@name[key, ...]: VALUE' or '@name:' before "
                                     "histogram buckets")
            name, keys, value = m.group("name"), _keys(m.group("keys")), m.group("value")
            bm = maps.setdefault(name, BpfMap(name, line=no))
            is_hist = value is None or not value.strip()
            if bm.entries and is_hist != bm.is_histogram:
                raise BpfOutputError(source, no, f"@{name} mixes histograms with plain values")
            v = None if is_hist else _value(value)
            if keys in bm.entries:
                prev = bm.entries[keys]
                if not _has_string_part(keys):
                    raise BpfOutputError(
                        source, no, f"{_key_text(name, keys)} is printed twice (first at line {bm.line}): "
                        "the map was printed more than once (a key without a string part cannot be "
                        "bpftrace 0.17's repeated string key)")
                if not is_hist and not (isinstance(prev, int) and isinstance(v, int)):
                    raise BpfOutputError(
                        source, no, f"{_key_text(name, keys)} is printed twice (first at line {bm.line}) "
                        f"with a value that cannot be added ({v!r})")
                bm.repeated[keys] = bm.repeated.get(keys, 1) + 1
                if not is_hist:
                    v = prev + v
            if is_hist:
                hist, hist_at = [], (bm, keys, no)
            else:
                bm.entries[keys] = v
            continue
        m = _BUCKET_RE.match(line.strip())
        if m is None:
            if line.lstrip().startswith(("[", "(")):
                raise BpfOutputError(source, no, f"cannot read the histogram bucket {line.strip()!r}: "
                                     "expected '[lo, hi)  COUNT |@@@|', '[N]  COUNT', "
                                     "'(..., hi)  COUNT' or '[lo, ...)  COUNT'")
            raise BpfOutputError(source, no, f"cannot read {line.strip()!r}: expected a map header "
                                 "('@name: VALUE' or '@name:' then histogram buckets), a histogram "
                                 "bucket ('[lo, hi)  COUNT |@@@|') or a blank line")
        if hist is None:
            raise BpfOutputError(source, no, f"the histogram bucket {line.strip()!r} belongs to no "
                                 "map: expected a '@name:' header line before it")
        try:
            if m.group("one") is not None:
                lo_l, hi_l = m.group("one"), str(parse_bound(m.group("one")) + 1)
            elif m.group("below") is not None:
                lo_l, hi_l = None, m.group("below")
            else:
                lo_l, hi_l = m.group("lo"), (None if m.group("hi") == "..." else m.group("hi"))
            lo = None if lo_l is None else parse_bound(lo_l)
            hi = None if hi_l is None else parse_bound(hi_l)
        except ValueError as e:
            raise BpfOutputError(source, no, f"bad bucket bound in {line.strip()!r}: {e}") from None
        if lo is not None and hi is not None and not hi > lo:
            raise BpfOutputError(source, no, f"the bucket {line.strip()!r} is empty or reversed "
                                 "(expected lo < hi)")
        if hist:
            prev = hist[-1]
            if prev.hi is None or lo is None or lo < prev.hi:
                raise BpfOutputError(source, no, f"the bucket {line.strip()!r} does not follow the one "
                                     "before it (buckets go up without overlap)")
        hist.append(Bucket(lo, hi, int(m.group("count")), lo_l, hi_l))
    close()
    return maps


def parse_bpftrace_file(path) -> dict[str, BpfMap]:
    """parse_bpftrace_output of a file; errors name the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise BpfOutputError(str(p), 0, f"cannot read the file ({e.strerror or e})") from None
    return parse_bpftrace_output(text, str(p))
