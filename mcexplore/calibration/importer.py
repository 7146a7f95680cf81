"""From a kit output to a scenario: ``calibrate(KIT_DIR, base)`` reads the bpftrace maps that the
calibration kit printed (mcexplore.calibration.bpfout), turns each measured map of
mcexplore.calibration.kit.MEASURES into a ``histogram`` distribution of its model field, and
returns the base scenario with those fields replaced (``Calibration.scenario``) and the TOML to
save (``Calibration.to_toml()``).

Where it sits: on top of mcexplore.calibration (kit, bpfout) and mcexplore.scenario; the CLI's
``mcexplore calibrate import`` calls it and prints ``Calibration.summary_lines()``.

Provenance uses the scenario format's own wrapper (configs/README.md, "Provenance"): a measured
field is written ``{value = {dist = "histogram", ...}, estimate = false, why = "measured: N
samples of @map (script.bt, kit 1) on host H, kernel K, DATE: how"}``; every other field keeps
its value and its note (an estimate stays an estimate, with its why). Buckets with no sample are
left out; samples in an open-ended bucket (below 0, or beyond an lhist's range) cannot be drawn
from and are dropped with a warning. A field with fewer than ``min_samples`` samples keeps its
estimate, with a warning. What the kit saw but the model does not take (migrate_pages outcome
counts, refcount-check results, rmap entries per walk, whole waits) goes into
``Calibration.observations``: printed, and written as comments at the top of the TOML.

The per-PTE maps are keyed by mapping class (kit.MULTI_MAPPED): the field takes the
multi-mapped class, the contended page's (``Measure.key``); with too few samples there, or an
unkeyed map (kit 1), all classes are pooled, with a warning that says how the two differ.
Keys that bpftrace 0.17 printed more than once (bpfout) are pooled with a warning. A measured
map left empty while the script's other measured maps filled is named with the probes it
relies on that no filled map shares: the sign of a function inlined in that kernel build.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..units import format_ns
from . import kit
from .bpfout import BpfMap, BpfOutputError, Histogram, parse_bpftrace_file, pool_histograms

if TYPE_CHECKING:  # the scenario package is imported when a calibration is made, not before
    from ..scenario import Scenario


class CalibrationError(ValueError):
    """A kit output that cannot be imported; the message names the file and what is wrong."""


@dataclass(frozen=True)
class KitMeta:
    """kit.json: where and when the kit ran."""

    kernel: str
    host: str
    date: str
    duration_s: float | None
    kit_version: str
    extra: dict = field(default_factory=dict)


@dataclass
class KitOutput:
    """A kit output directory, read: its kit.json and the maps of each script's .txt."""

    path: Path
    meta: KitMeta
    maps: dict[str, dict[str, BpfMap]]      # script -> map name -> map
    missing: list[str]                      # scripts of kit.SCRIPTS without a .txt
    repeated: list[str] = field(default_factory=list)   # warnings: keys printed more than once


@dataclass(frozen=True)
class FieldResult:
    """What became of one measured field: ``status`` is "measured", "too_few" or "missing"."""

    field: str
    measure: kit.Measure
    status: str
    samples: int = 0
    dropped: int = 0                        # samples in open-ended buckets, left out
    table: dict | None = None               # the histogram distribution written
    source: str = ""                        # which entries: "[8]" (a class), "" (all pooled)


@dataclass
class Calibration:
    kit_output: KitOutput
    base_name: str
    scenario: "Scenario"
    fields: list[FieldResult]
    observations: list[str]
    warnings: list[str]
    min_samples: int = kit.MIN_SAMPLES

    @property
    def measured(self) -> list[str]:
        return [f.field for f in self.fields if f.status == "measured"]

    def summary_lines(self) -> list[str]:
        m = self.kit_output.meta
        dur = f", {m.duration_s:g} s recorded" if m.duration_s is not None else ""
        lines = [f"kit output {self.kit_output.path} (kit {m.kit_version}): kernel {m.kernel}, "
                 f"host {m.host}, {m.date}{dur}; base scenario {self.base_name}",
                 "measured (histograms, estimate = false):"]
        done = [f for f in self.fields if f.status == "measured"]
        for f in done:
            extra = f", {f.dropped} out of range dropped" if f.dropped else ""
            lines.append(f"  {f.field:<20} {f.samples:>9} samples, mean {format_ns(_table_mean(f.table))}"
                         f"  ({f.measure.script}.bt @{f.measure.map}{f.source}{extra})")
        if not done:
            lines.append("  (none)")
        lines.append("kept at their estimate:")
        for f in self.fields:
            if f.status == "too_few":
                lines.append(f"  {f.field:<20} only {f.samples} samples (< {self.min_samples}) of "
                             f"@{f.measure.map} ({f.measure.script}.bt)")
            elif f.status == "missing":
                lines.append(f"  {f.field:<20} no sample of @{f.measure.map} ({f.measure.script}.bt)")
        for path, why in kit.UNMEASURED.items():
            lines.append(f"  {path:<20} not measurable: {why}")
        lines.append("observations (not model inputs):")
        lines += [f"  {o}" for o in self.observations] or ["  (none)"]
        return lines

    def to_toml(self) -> str:
        """The calibrated scenario as TOML, the summary above it as comments."""
        head = ["# Calibrated by `mcexplore calibrate import` from a bpftrace kit output "
                "(docs/calibration.md)."]
        # A host name or kernel string with a line break must not end a comment early.
        head += ["# " + " ".join(ln.splitlines()) if ln else "#" for ln in self.summary_lines()]
        return "\n".join(head) + "\n\n" + self.scenario.to_toml()


def read_meta(path) -> KitMeta:
    p = Path(path) / kit.META_FILE
    if not p.is_file():
        raise CalibrationError(f"{p}: missing: a kit output directory holds kit.json (kernel, host, "
                               "date, duration_s, kit_version), written by `mcexplore calibrate "
                               "record` or record.sh")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CalibrationError(f"{p}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise CalibrationError(f"{p}: expected a JSON object with keys {', '.join(kit.META_KEYS)}")
    for k in ("kernel", "host", "date"):
        if not isinstance(raw.get(k), str) or not raw[k].strip():
            raise CalibrationError(f"{p}: {k}: {raw.get(k)!r} is not valid: must be a non-empty string")
    dur = raw.get("duration_s")
    if dur is not None and (isinstance(dur, bool) or not isinstance(dur, (int, float))
                            or not math.isfinite(dur) or dur < 0):
        raise CalibrationError(f"{p}: duration_s: {dur!r} is not valid: must be a number of seconds >= 0")
    extra = {k: v for k, v in raw.items() if k not in kit.META_KEYS}
    return KitMeta(kernel=raw["kernel"], host=raw["host"], date=raw["date"],
                   duration_s=None if dur is None else float(dur),
                   kit_version=str(raw.get("kit_version", "?")), extra=extra)


def read_kit(path) -> KitOutput:
    """Read a kit output directory (kit.json and ``<script>.txt``); raises CalibrationError."""
    d = Path(path)
    if not d.is_dir():
        raise CalibrationError(f"{d}: not a directory: KIT_OUTPUT is the directory that `mcexplore "
                               "calibrate record` (or record.sh) wrote")
    meta = read_meta(d)
    maps, missing, repeated = {}, [], []
    for s in kit.SCRIPTS:
        f = d / f"{s}.txt"
        if not f.is_file():
            missing.append(s)
            continue
        try:
            maps[s] = parse_bpftrace_file(f)
        except BpfOutputError as e:
            raise CalibrationError(str(e)) from None
        for m in maps[s].values():
            if m.repeated:
                keys = ", ".join(f"[{', '.join(k)}] {n} times" for k, n in m.repeated.items())
                repeated.append(f"{s}.txt: @{m.name} prints the same key more than once ({keys}): "
                                "bpftrace 0.17 keys a map by the whole buffer of a string key; "
                                "the entries are one key's and were summed")
    if not maps:
        raise CalibrationError(f"{d}: no kit output: expected one of "
                               + ", ".join(f"{s}.txt" for s in kit.SCRIPTS))
    return KitOutput(d, meta, maps, missing, repeated)


def _pooled(m: BpfMap, source: str, keys=None) -> Histogram:
    """The histogram of a map; a keyed one is pooled across its keys (same buckets added), or
    across ``keys`` only."""
    if not m.is_histogram:
        v = next(iter(m.entries.values()), None)
        raise CalibrationError(f"{source}: @{m.name} is a plain value ({v!r}), expected a histogram")
    hists = [h for k, h in m.entries.items() if keys is None or k in keys]
    if not hists:
        return Histogram((), m.line)
    try:
        return pool_histograms(hists, f"@{m.name}: its keys'")
    except ValueError as e:
        raise CalibrationError(f"{source}: {e}") from None


def _label(lbl: str, value: int):
    # Bounds stay as bpftrace printed them ("4K"), which the scenario's histogram reads (K, M, G
    # are 1024-based there too); plain numbers as numbers, a T/P/E suffix written out.
    if lbl.isdigit():
        return int(lbl)
    return lbl if re.fullmatch(r"\d+[KMG]", lbl) else value


def histogram_table(h: Histogram, unit: str = "ns") -> tuple[dict | None, int, int]:
    """(a ``histogram`` distribution table, samples kept, samples dropped) of a bpftrace
    histogram: the buckets with samples, their bounds as printed; open-ended buckets (whose
    values are unknown) dropped. The table is None when no sample is left."""
    # A negative bucket (an lhist with min < 0) is no duration either.
    kept = [b for b in h.nonzero() if not b.open and b.lo >= 0]
    dropped = sum(b.count for b in h.nonzero()) - sum(b.count for b in kept)
    if not kept:
        return None, 0, dropped
    buckets = [[_label(b.lo_label, b.lo), _label(b.hi_label, b.hi), b.count] for b in kept]
    return {"dist": "histogram", "unit": unit, "buckets": buckets}, sum(b.count for b in kept), dropped


def _table_mean(table: dict) -> float:
    from ..scenario import parse_distribution

    return parse_distribution(table).mean_ns()


def _hist_mean(h: Histogram, integer: bool = False) -> tuple[int, float | None]:
    """(samples, mean) over the closed buckets, each at its middle; with ``integer`` (a count,
    not a time) a bucket one wide holds the single value lo."""
    closed = [b for b in h.nonzero() if not b.open]
    n = sum(b.count for b in closed)
    if not n:
        return 0, None
    mid = [(b.lo if integer and b.hi - b.lo == 1 else (b.lo + b.hi) / 2) for b in closed]
    return n, sum(b.count * v for b, v in zip(closed, mid)) / n


def _refcount_checks(m: BpfMap) -> list[tuple[str, int]]:
    """@refcount_check's counts by "kind result": kit 2's integer keys (1/0, 0/-11) and kit 1's
    words (file/anon, ok/busy) read alike."""
    acc: dict[str, int] = {}
    for keys, v in m.entries.items():
        if not isinstance(v, int):
            continue
        kind = kit.REFCOUNT_KINDS.get(keys[0], keys[0]) if keys else "?"
        res = keys[1] if len(keys) > 1 else "?"
        res = kit.REFCOUNT_RESULTS.get(res, res if not res.lstrip("-").isdigit() else f"rc {res}")
        name = f"{kind} {res}"
        acc[name] = acc.get(name, 0) + v
    return sorted(acc.items())


def _samples(h: Histogram) -> tuple[int, float | None]:
    table, n, _ = histogram_table(h)
    return n, (_table_mean(table) if table else None)


def _select(m: kit.Measure, bm: BpfMap, maps: dict[str, BpfMap], min_samples: int,
            warnings: list[str]) -> tuple[Histogram, str]:
    """The histogram that feeds ``m`` and which entries it is ("[8]" or "" for all pooled)."""
    src = f"{m.script}.txt"
    if m.key is None:
        return _pooled(bm, src), ""
    cls = f"[{', '.join(m.key)}]"
    entries_map = maps.get(kit.ENTRIES_MAPS.get(m.map, ""))
    if set(bm.entries) == {()}:  # kit 1: not keyed by class
        mixed = ""
        if entries_map is not None and entries_map.is_histogram:
            eh = _pooled(entries_map, src)
            thr = int(m.key[0])
            few = sum(b.count for b in eh.nonzero() if b.hi is not None and b.hi <= thr)
            many = sum(b.count for b in eh.nonzero() if b.lo is not None and b.lo >= thr)
            if few and many:
                mixed = (f": @{entries_map.name} says {few} walks visited fewer than {thr} rmap "
                         f"entries and {many} at least {thr}, so it mixes single-mapped pages, whose "
                         "per-PTE cost is mostly the walk's fixed part, with multi-mapped ones")
        if mixed:
            warnings.append(f"{m.field}: @{m.map} is not keyed by mapping class (kit 1 output){mixed}; "
                            f"all its samples are used (record with kit {kit.KIT_VERSION}, or set the "
                            "field from the contended page's own walks)")
        return _pooled(bm, src), ""
    sel = _pooled(bm, src, keys={tuple(m.key)})
    n_sel, mean_sel = _samples(sel)
    if n_sel >= min_samples:
        return sel, cls
    allh = _pooled(bm, src)
    n_all, mean_all = _samples(allh)
    if n_all == n_sel:
        return sel, cls
    seen = f", mean {format_ns(mean_sel)}" if n_sel else ""
    other = f", mean {format_ns(mean_all)}" if n_all else ""
    warnings.append(f"{m.field}: only {n_sel} samples of @{m.map}{cls} (walks of {m.key[0]} or more "
                    f"rmap entries: the multi-mapped pages the model's per-PTE cost is about{seen}); "
                    f"all mapping classes pooled instead ({n_all} samples{other}), which mixes in "
                    "pages mapped fewer times")
    return allh, ""


def _probes(m: kit.Measure, version: str) -> tuple[str, ...]:
    return kit.KIT1_PROBES.get(m.field, m.probes) if version == "1" else m.probes


def _silent_probes(m: kit.Measure, filled: list[kit.Measure], out: KitOutput) -> str:
    """The functions ``m`` relies on that no filled map of its script shares, as the kernel
    names them (kit.json "probes"), for the warning about an empty map."""
    version = out.meta.kit_version
    if not m.probes or not filled or version not in kit.READS_KIT_VERSIONS:
        return ""
    proven = {p for f in filled for p in _probes(f, version)}
    silent = [p for p in _probes(m, version) if p not in proven]
    if not silent:
        return ""
    names = out.meta.extra.get("probes")
    names = names if isinstance(names, dict) else {}
    fns = " or ".join(f"{names.get(p, p)}()" for p in silent)
    return (f"; @{', @'.join(f.map for f in filled)} filled, so a probe on {fns} may have "
            "attached without firing: inlined in this kernel build? (docs/calibration.md, "
            "\"Inlined functions\")")


def _observations(out: KitOutput) -> list[str]:
    lines = []
    for o in kit.OBSERVATIONS:
        m = out.maps.get(o.script, {}).get(o.map)
        if m is None or not m.entries:
            continue
        if o.script == "offline" and o.map in ("calls", "succeeded", "failed"):
            continue  # one line per reason below
        if m.is_histogram:
            h = _pooled(m, f"{o.script}.txt")
            n, mean = _hist_mean(h, integer=not o.map.endswith("_ns"))
            if not n:
                continue
            closed = [b for b in h.nonzero() if not b.open]
            fmt = format_ns if o.map.endswith("_ns") else (lambda v: f"{v:.4g}")
            lines.append(f"{o.what}: {n} samples in [{fmt(closed[0].lo)}, {fmt(closed[-1].hi)}), "
                         f"mean about {fmt(mean)} (@{o.map})")
        elif o.map == "refcount_check":
            lines.append(f"{o.what}: " + ", ".join(f"{k} {v}" for k, v in _refcount_checks(m))
                         + f" (@{o.map})")
        else:
            total = sum(v for v in m.entries.values() if isinstance(v, int))
            lines.append(f"{o.what}: {total} (@{o.map})")
    off = out.maps.get("offline", {})
    calls = off.get("calls")
    if calls is not None:
        succ, fail = off.get("succeeded"), off.get("failed")
        for keys, n in sorted(calls.entries.items(), key=lambda kv: kv[0]):
            if not isinstance(n, int) or n <= 0:
                continue
            reason = keys[0] if keys else "?"
            rname = kit.MIGRATE_REASONS.get(int(reason), reason) if reason.lstrip("-").isdigit() else reason
            s = succ.scalar(*keys, default=0) if succ else 0
            f = fail.scalar(*keys, default=0) if fail else 0
            lines.append(f"migrate_pages ({rname}): {n} calls, {s} pages migrated, {f} not migrated "
                         f"({s / n:.3g} succeeded and {f / n:.3g} failed per call)")
    return lines


def calibrate(kit_dir, base="thread-2018", min_samples: int = kit.MIN_SAMPLES,
              name: str | None = None) -> Calibration:
    """The base scenario (a shipped name or a path) with every field the kit measured well
    enough replaced by its histogram. Raises CalibrationError (the kit output) or ScenarioError
    (the base, or a measured table the scenario refuses)."""
    from ..scenario import Scenario, load_scenario

    out = read_kit(kit_dir)
    base_sc = load_scenario(base)
    meta = out.meta
    warnings: list[str] = []
    if meta.kit_version not in kit.READS_KIT_VERSIONS:
        warnings.append(f"{kit.META_FILE}: kit_version {meta.kit_version!r}, this importer reads "
                        f"kit {', '.join(map(repr, kit.READS_KIT_VERSIONS))}: check the maps' "
                        "meaning in docs/calibration.md")
    elif meta.kit_version != kit.KIT_VERSION:
        warnings.append(f"{kit.META_FILE}: kit_version {meta.kit_version!r} (this kit is "
                        f"{kit.KIT_VERSION!r}): read with that version's maps (docs/calibration.md, "
                        "\"Kit versions\")")
    for s in out.missing:
        warnings.append(f"{s}.txt: missing; the fields it measures keep their estimate")
    warnings += out.repeated
    results: list[FieldResult] = []
    d = base_sc.to_dict(notes=True)

    def has_samples(m: kit.Measure) -> bool:
        bm = out.maps.get(m.script, {}).get(m.map)
        return bool(bm and bm.entries and bm.is_histogram and _pooled(bm, "").total)

    for m in kit.MEASURES:
        if m.script in out.missing:
            results.append(FieldResult(m.field, m, "missing"))
            continue
        bm = out.maps[m.script].get(m.map)
        if bm is None or not bm.entries:
            results.append(FieldResult(m.field, m, "missing"))
            filled = [f for f in kit.MEASURES if f.script == m.script and f is not m and has_samples(f)]
            needs = f"; it needs {m.needs}" if m.needs else ""
            warnings.append(f"{m.field}: {m.script}.txt has no @{m.map} (no sample seen{needs}"
                            f"{_silent_probes(m, filled, out)}); keeps its estimate")
            continue
        hist, source = _select(m, bm, out.maps[m.script], min_samples, warnings)
        table, n, dropped = histogram_table(hist, m.unit)
        if dropped:
            warnings.append(f"{m.field}: {dropped} samples of @{m.map} fell in an open-ended bucket "
                            "(values unknown) and were left out")
        if n < min_samples:
            results.append(FieldResult(m.field, m, "too_few", n, dropped))
            warnings.append(f"{m.field}: only {n} samples of @{m.map}{source} (< {min_samples}); "
                            "keeps its estimate")
            continue
        how = m.how if meta.kit_version != "1" else kit.KIT1_HOW.get(m.field, m.how)
        if m.key is not None and not source:  # the class was not used: say so, not the class
            how = re.sub(r", walks of at least \d+ entries \(multi-mapped pages\)", "", how)
            how += " (all mapping classes)" if set(bm.entries) != {()} else ""
        why = (f"measured: {n} samples of @{m.map}{source} ({m.script}.bt, kit {meta.kit_version}) "
               f"on host {meta.host}, kernel {meta.kernel}, {meta.date}: {how}")
        section, key = m.field.split(".")
        d[section][key] = {"value": table, "estimate": False, "why": why}
        results.append(FieldResult(m.field, m, "measured", n, dropped, table, source))
    d["name"] = name or f"{base_sc.name}-{meta.host}"
    desc = base_sc.description or base_sc.name
    d["description"] = f"{desc}; timings measured on {meta.host} (kernel {meta.kernel}, {meta.date})"
    sc = Scenario.from_dict(d, source=f"calibrated {base_sc.name}")
    return Calibration(out, base_sc.name, sc, results, _observations(out), warnings, min_samples)
