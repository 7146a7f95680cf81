"""Parameter sweeps: run a grid of scenarios and collect one tidy table, resumably.

Where it sits: above mcexplore.scenario (each cell is the base scenario with some fields set) and
mcexplore.api (each cell x strategy is one ``run``); below the CLI's ``sweep`` command and the
plots, which read the table it writes.

A sweep file (TOML)::

    base = "thread-2018"        # a shipped config name, or a path (relative to the sweep file)
    trials = 2000
    seed = 2018
    strategies = ["ref", "drop"]          # labels of the base; default: all of them
    overrides = ["budget.max_attempts=200"]   # fixed changes, as --set writes them (an axis of
                                              # the same field wins over them), and/or
    [set]                                     # the same as a table of dotted keys
    "budget.timeout" = "1s"

    [[axes]]                    # a grid of values of one or more dotted fields
    path = ["page.mapcount", "page.active"]   # several paths: all set to the same value
    name = "mapcount"                         # the table's column (default: last key of path[0])
    start = 1
    stop = 256
    num = 9
    scale = "log"               # or "linear"; or give values = [...] instead of start/stop/num
                                # (generated values are rounded to 4 significant digits)
    integer = true              # round and drop duplicates

    [[axes]]
    path = "page.access_rate"
    values = ["0.01/us", "0.1/us", "1/us"]

    [[axes]]                    # a derived quantity
    derived = "window"
    values = ["10us", "100us"]

Derived axis ``window``: the refcount-sensitive window of one attempt, from the first PTE becoming a
migration entry to the refcount check, W = M * mean(unmap_pte) + pre_freeze (MODEL.md 1.3: F_k -
L_k with M = page.mapcount). For each cell, after every other axis is applied, ``timing.pre_freeze``
is set to the constant W - M * mean(unmap_pte), the mean being that of the compiled
(tabulated) distribution the engines sample. A negative value is an error naming the cell (the
window cannot be shorter than the unmap itself). Page level only.

Table (``results.parquet``, or ``results.csv``): one row per cell x strategy, with each axis as a
numeric column (durations in ns, rates in events per second, counts as given) plus ``<axis>_label``
(the value as written in the config), ``strategy``, ``trials``, one count column per outcome,
``sum_<field>`` for the summed fields, ``max_wait_max``, ``hist_<metric>`` (sparse JSON
{bucket: count} of the integer histograms, see ``hist_from_json``), ``seed`` (the cell's),
``base_seed``, ``backend``, ``version``, ``config_hash`` (Scenario.config_hash(label)), ``cell``,
``key`` and ``wall_s``.

Seeding and resume: a cell's seed is a hash of (base seed, the cell's axis values by name), not of
its position, so a table does not depend on the order of the axes, the order in which cells run or
on interruptions. Each finished row is written atomically to ``out_dir/cells/<key>.json``, ``key``
being a hash of the cell's seed, the trial count and the strategy's config hash; a rerun with
``resume`` reuses every row whose file exists, so a killed sweep loses at most the row in progress.
The final table is rebuilt from those files and written atomically (temporary file + os.replace).
"""

from __future__ import annotations

import hashlib
import json
import time
import tomllib
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__
from .io import atomic_path, atomic_write_bytes
from .results import HIST_BINS, HIST_METRICS, OUTCOMES, SUMS, Aggregate

DERIVED = ("window",)


class SweepError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# Values with units
# ---------------------------------------------------------------------------------------------

def _kind(v) -> str:
    """'rate', 'duration' or 'number' for a config value."""
    if isinstance(v, bool):
        raise SweepError(f"{v!r} is not a valid axis value")
    if isinstance(v, (int, float, np.integer, np.floating)):
        return "number"
    if isinstance(v, str):
        return "rate" if "/" in v else "duration"
    raise SweepError(f"{v!r} is not a valid axis value: give numbers or strings with units")


def numeric(v) -> float | int:
    """A config value as a number: durations in ns, rates in events per second, numbers as is."""
    from .units import parse_duration, parse_rate

    k = _kind(v)
    if k == "number":
        return v.item() if hasattr(v, "item") else v
    try:
        return parse_rate(v) * 1e9 if k == "rate" else parse_duration(v)
    except ValueError as e:
        raise SweepError(str(e)) from None


def _format(x: float, kind: str):
    from .units import format_ns, format_rate

    if kind == "duration":
        return format_ns(x, exact=True)
    if kind == "rate":
        return format_rate(x / 1e9, exact=True)
    return x


# ---------------------------------------------------------------------------------------------
# Spec
# ---------------------------------------------------------------------------------------------

@dataclass
class Axis:
    name: str
    values: list  # config values (strings with units or numbers)
    paths: list = field(default_factory=list)  # dotted paths set to the value (empty if derived)
    derived: str | None = None

    @classmethod
    def from_dict(cls, d: dict, i: int) -> "Axis":
        where = f"axes[{i}]"
        d = dict(d)
        known = {"path", "name", "values", "start", "stop", "num", "scale", "integer", "derived"}
        extra = set(d) - known
        if extra:
            raise SweepError(f"{where}: unknown key(s) {', '.join(sorted(extra))} (valid: {', '.join(sorted(known))})")
        derived = d.get("derived")
        if derived is not None:
            if derived not in DERIVED:
                raise SweepError(f"{where}: derived = {derived!r} is not known (known: {', '.join(DERIVED)})")
            if "path" in d:
                raise SweepError(f"{where}: give either path or derived, not both")
            paths = []
        else:
            p = d.get("path")
            if p is None:
                raise SweepError(f"{where}: give path = \"section.key\" (or a list of paths) or derived = \"window\"")
            paths = [p] if isinstance(p, str) else list(p)
            if not paths or not all(isinstance(x, str) and x for x in paths):
                raise SweepError(f"{where}: path must be a dotted key or a list of them")
        name = d.get("name") or (derived if derived else paths[0].split(".")[-1])
        if "values" in d:
            if any(k in d for k in ("start", "stop", "num", "scale")):
                raise SweepError(f"{where}: give values or start/stop/num, not both")
            values = list(d["values"])
            if d.get("integer"):
                values = [int(round(v)) if _kind(v) == "number" else v for v in values]
        else:
            values = cls._range(d, where)
        if not values:
            raise SweepError(f"{where}: no values")
        kinds = {_kind(v) for v in values}
        if len(kinds) > 1:
            raise SweepError(f"{where}: values mix {' and '.join(sorted(kinds))}")
        nums = [numeric(v) for v in values]
        if len(set(nums)) != len(nums):
            raise SweepError(f"{where}: values repeat")
        return cls(name, values, paths, derived)

    @staticmethod
    def _range(d: dict, where: str) -> list:
        for k in ("start", "stop", "num"):
            if k not in d:
                raise SweepError(f"{where}: give values = [...] or start, stop and num")
        kind = _kind(d["start"])
        if _kind(d["stop"]) != kind:
            raise SweepError(f"{where}: start and stop must be of the same kind")
        a, b = float(numeric(d["start"])), float(numeric(d["stop"]))
        num = int(d["num"])
        if num < 1:
            raise SweepError(f"{where}: num must be >= 1")
        scale = d.get("scale", "linear")
        if scale == "log":
            if a <= 0 or b <= 0:
                raise SweepError(f"{where}: a log scale needs start and stop > 0")
            xs = np.geomspace(a, b, num)
        elif scale == "linear":
            xs = np.linspace(a, b, num)
        else:
            raise SweepError(f"{where}: scale must be 'log' or 'linear', got {scale!r}")
        if d.get("integer"):
            out = []
            for x in xs:
                v = int(round(x))
                if v not in out:
                    out.append(v)
            if kind != "number":
                out = [_format(v, kind) for v in out]
            return out
        xs = [float(f"{x:.4g}") for x in xs]  # 4 significant digits: readable labels, exact ends
        if len(set(xs)) != len(xs):
            raise SweepError(f"{where}: num too large for 4 significant digits between start and stop")
        if kind == "number":
            return xs
        return [_format(x, kind) for x in xs]


@dataclass
class SweepSpec:
    base: str
    trials: int
    seed: int = 0
    strategies: list | None = None
    overrides: list = field(default_factory=list)  # [(path, value)]
    axes: list = field(default_factory=list)
    source: str | None = None

    @classmethod
    def from_dict(cls, d: dict, base_dir: str | Path | None = None, source: str | None = None) -> "SweepSpec":
        d = dict(d)
        known = {"base", "trials", "seed", "strategies", "overrides", "set", "axes", "name", "description"}
        extra = set(d) - known
        if extra:
            raise SweepError(f"unknown key(s) {', '.join(sorted(extra))} (valid: {', '.join(sorted(known))})")
        if "base" not in d:
            raise SweepError("give base = \"<shipped config name or path>\"")
        base = str(d["base"])
        if base_dir is not None and (Path(base_dir) / base).is_file():
            base = str(Path(base_dir) / base)
        if "trials" not in d or int(d["trials"]) < 1:
            raise SweepError("give trials = N (>= 1)")
        from .scenario import parse_override

        ov = []
        for text in d.get("overrides", []):
            ov.append(parse_override(text))
        ov += _flatten(d.get("set", {}))
        strategies = d.get("strategies")
        if isinstance(strategies, str):
            strategies = [s.strip() for s in strategies.split(",") if s.strip()]
        axes = [Axis.from_dict(a, i) for i, a in enumerate(d.get("axes", []))]
        names = [a.name for a in axes]
        if len(set(names)) != len(names):
            raise SweepError(f"axis names repeat: {names} (give name = \"...\")")
        for what, paths in (("axes", [p for a in axes for p in a.paths]), ("overrides", [p for p, _ in ov])):
            dup = {p for p in paths if paths.count(p) > 1}
            if dup:
                raise SweepError(f"set more than once in {what}: {', '.join(sorted(dup))}")
        if any(a.derived == "window" for a in axes) and any("timing.pre_freeze" in a.paths for a in axes):
            raise SweepError("the window axis sets timing.pre_freeze: no other axis may")
        # an axis wins over a fixed override of the same field (the override is the default)
        axis_paths = {p for a in axes for p in a.paths}
        if any(a.derived == "window" for a in axes):
            axis_paths.add("timing.pre_freeze")
        ov = [(p, v) for p, v in ov if p not in axis_paths]
        return cls(base, int(d["trials"]), int(d.get("seed", 0)), strategies, ov, axes, source)

    @property
    def n_cells(self) -> int:
        return int(np.prod([len(a.values) for a in self.axes])) if self.axes else 1

    def cells(self):
        """Every cell as a dict axis name -> config value, in grid order (first axis slowest)."""
        for combo in product(*[a.values for a in self.axes]):
            yield {a.name: v for a, v in zip(self.axes, combo)}


def _flatten(d: dict, prefix: str = "") -> list:
    """A [set] table to (dotted path, value) pairs; a table holding `dist` or `value` is a value."""
    out = []
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and not ({"dist", "value"} & set(v)):
            out += _flatten(v, path + ".")
        else:
            out.append((path, v))
    return out


def load_sweep(path) -> SweepSpec:
    """A sweep file by path, or by the name of a shipped one ("sweep-thread-2018")."""
    p = Path(path)
    if not p.is_file():
        from .scenario import _shipped_dir

        name = str(path) if str(path).endswith(".toml") else f"{path}.toml"
        shipped = Path(str(_shipped_dir().joinpath(name)))
        if shipped.is_file():
            p = shipped
    try:
        d = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path}: no such sweep file") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: not valid TOML: {e}") from None
    return SweepSpec.from_dict(d, base_dir=p.parent, source=str(p))


# ---------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------

def _canon(v):
    return v.item() if hasattr(v, "item") else v


def cell_seed(base_seed: int, cell: dict) -> int:
    """63-bit seed from (base seed, the cell's axis values by name): independent of axis order."""
    text = json.dumps({"seed": int(base_seed), "cell": {k: _canon(v) for k, v in sorted(cell.items())}},
                      sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") & (2**63 - 1)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _apply(scenario, settings: list, what: str):
    """Set every (path, value), retrying in other orders: a cell may be valid only once all of its
    values are in (mapcount 1 with active 201 is not)."""
    from .scenario import ScenarioError

    pending = list(settings)
    while pending:
        rest, err = [], None
        for p, v in pending:
            try:
                scenario = scenario.set(p, v)
            except ScenarioError as e:
                rest.append((p, v))
                err = e
        if len(rest) == len(pending):
            raise SweepError(f"{what}: {err}")
        pending = rest
    return scenario


def window_pre_freeze_ns(scenario, window_ns: float) -> float:
    """pre_freeze giving a refcount-sensitive window W = M * mean(unmap_pte) + pre_freeze."""
    if scenario.level != "page":
        raise SweepError("the window axis is defined at page level only")
    m = scenario.page.mapcount
    mean_unmap = scenario.dist("unmap_pte").compile().mean_ns
    return window_ns - m * mean_unmap


def cell_scenario(spec: SweepSpec, base, cell: dict):
    """The base scenario with the cell's values set (derived axes last)."""
    from .units import format_ns

    settings = []
    for a in spec.axes:
        if a.derived is None:
            settings += [(p, cell[a.name]) for p in a.paths]
    what = "cell " + ", ".join(f"{k}={v}" for k, v in cell.items())
    s = _apply(base, settings, what) if settings else base
    for a in spec.axes:
        if a.derived == "window":
            w = numeric(cell[a.name])
            pf = window_pre_freeze_ns(s, w)
            if pf < 0:
                raise SweepError(f"{what}: window {cell[a.name]} is shorter than mapcount x mean(unmap_pte) = "
                                 f"{format_ns(w - pf)}: pre_freeze would be {format_ns(pf)}")
            s = _apply(s, [("timing.pre_freeze", format_ns(pf, exact=True))], what)
    return s


def base_scenario(spec: SweepSpec):
    from .scenario import ScenarioError, load_scenario

    try:
        s = load_scenario(spec.base)
    except ScenarioError as e:
        raise SweepError(f"base: {e}") from None
    if spec.overrides:
        s = _apply(s, spec.overrides, "overrides")
    if spec.strategies:
        try:
            s = s.with_strategies(spec.strategies)
        except ScenarioError as e:
            raise SweepError(f"strategies: {e}") from None
    return s


# ---------------------------------------------------------------------------------------------
# Histograms as JSON
# ---------------------------------------------------------------------------------------------

def hist_to_json(h) -> str:
    h = np.asarray(h, dtype=np.int64)
    nz = np.nonzero(h)[0]
    return json.dumps({str(int(i)): int(h[i]) for i in nz}, separators=(",", ":"))


def hist_from_json(s) -> np.ndarray:
    h = np.zeros(HIST_BINS, dtype=np.int64)
    if isinstance(s, str) and s:
        for k, v in json.loads(s).items():
            h[int(k)] = v
    return h


def aggregate_from_row(row) -> Aggregate:
    """An Aggregate (counts, sums, histograms; no examples) from one table row."""
    a = Aggregate(trials=int(row["trials"]))
    for o in OUTCOMES:
        a.counts[o] = int(row[o])
    for s in SUMS:
        a.sums[s] = int(row[f"sum_{s}"])
    a.max_wait_max = int(row["max_wait_max"])
    for m in HIST_METRICS:
        a.hists[m] = hist_from_json(row[f"hist_{m}"])
    return a


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def write_table(df: pd.DataFrame, path: Path):
    """Write a table atomically as Parquet or CSV (by extension)."""
    with atomic_path(path) as tmp:
        if Path(path).suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)


def load_results(path) -> pd.DataFrame:
    """A sweep table from results.parquet / results.csv, or from a directory holding one."""
    p = Path(path)
    if p.is_dir():
        for name in ("results.parquet", "results.csv"):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise FileNotFoundError(f"{path}: no results.parquet or results.csv in it")
    if p.suffix != ".csv":
        return pd.read_parquet(p)
    head = pd.read_csv(p, nrows=0).columns
    text = [c for c in head if c.endswith("_label") or c.startswith("hist_") or
            c in ("strategy", "backend", "version", "config_hash", "scenario", "cell", "key")]
    return pd.read_csv(p, dtype={c: str for c in text}, keep_default_na=False)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------

def _row(spec, cell, seed, label, scen, agg, backend, wall, key, cell_id) -> dict:
    row = {}
    for a in spec.axes:
        row[a.name] = numeric(cell[a.name])
        row[f"{a.name}_label"] = str(cell[a.name])
    row.update({"strategy": label, "trials": agg.trials})
    row.update({o: int(agg.counts[o]) for o in OUTCOMES})
    row.update({f"sum_{s}": int(agg.sums[s]) for s in SUMS})
    row["max_wait_max"] = int(agg.max_wait_max)
    row.update({f"hist_{m}": hist_to_json(agg.hists[m]) for m in HIST_METRICS})
    row.update({"seed": seed, "base_seed": spec.seed, "backend": backend, "version": __version__,
                "config_hash": scen.config_hash(label), "scenario": scen.name, "cell": cell_id,
                "key": key, "wall_s": wall})
    return row


def plan(spec: SweepSpec):
    """Every (cell, seed, scenario, label, key, cell id) of the sweep, in grid order; validates all
    cells before anything runs."""
    base = base_scenario(spec)
    out = []
    for cell in spec.cells():
        seed = cell_seed(spec.seed, cell)
        scen = cell_scenario(spec, base, cell)
        cell_id = _hash({"seed": seed, "cell": {k: _canon(v) for k, v in cell.items()}})
        for label in scen.labels():
            key = _hash({"seed": seed, "trials": spec.trials, "config": scen.config_hash(label)})
            out.append((cell, seed, scen, label, key, cell_id))
    return out


def run_sweep(spec, out_dir, backend: str = "auto", resume: bool = True, progress: bool = True,
              fmt: str = "parquet", batch: int | None = None, on_row=None) -> pd.DataFrame:
    """Run every cell x strategy of ``spec`` (a SweepSpec, a dict or a sweep file path) and write
    ``out_dir/results.<fmt>``; returns the table. ``on_row(row)`` is called after each row is saved
    (finished or reused)."""
    from .api import run

    if not isinstance(spec, SweepSpec):
        spec = load_sweep(spec) if isinstance(spec, (str, Path)) else SweepSpec.from_dict(spec)
    if fmt not in ("parquet", "csv"):
        raise SweepError(f"fmt must be 'parquet' or 'csv', got {fmt!r}")
    out_dir = Path(out_dir)
    cells_dir = out_dir / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    todo = plan(spec)
    rows = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="sweep", unit="cell", smoothing=0.1)
    try:
        for cell, seed, scen, label, key, cell_id in todo:
            f = cells_dir / f"{key}.json"
            row = None
            if resume and f.is_file():
                try:
                    row = json.loads(f.read_text())["row"]
                except (ValueError, KeyError):
                    row = None  # a damaged file is recomputed
            if row is None:
                t = time.perf_counter()
                res = run(scen, trials=spec.trials, seed=seed, labels=[label], backend=backend,
                          batch=batch, progress=False)
                agg = res[label].aggregate
                row = _row(spec, cell, seed, label, scen, agg, res.backend, time.perf_counter() - t, key, cell_id)
                atomic_write_bytes(f, json.dumps({"row": row, "examples": agg.examples}).encode())
            rows.append(row)
            if bar is not None:
                bar.update(1)
            if on_row is not None:
                on_row(row)
    finally:
        if bar is not None:
            bar.close()
    df = pd.DataFrame(rows)
    write_table(df, out_dir / f"results.{fmt}")
    return df


def table_aggregates(table: pd.DataFrame, by=("strategy",)) -> dict:
    """Merge the rows of a table by the ``by`` columns: {key: Aggregate}."""
    out = {}
    by = list(by)
    for key, g in table.groupby(by, sort=False):
        key = key[0] if isinstance(key, tuple) and len(key) == 1 else key
        agg = Aggregate()
        for _, r in g.iterrows():
            agg = agg.merge(aggregate_from_row(r))
        out[key] = agg
    return out
