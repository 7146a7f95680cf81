"""Self-describing sweep tables: intervals, units, provenance, a partitioned dataset, xarray.

Where it sits: below mcexplore.sweep, which calls ``write_results`` and ``write_dataset`` once a
sweep's rows are all in; above mcexplore.stats and mcexplore.adaptive (the intervals). Readers
(plots, report, notebooks, other tools) need nothing from mcexplore to understand the files.

The convention for units, everywhere (as in the run JSON's ``units`` map): units live in metadata,
never in column names, so the names stay the axis names a user wrote (``--x mapcount``). In a
Parquet file each column's Arrow field has ``unit`` in its metadata, and the file's schema metadata
``mcexplore`` holds ``{"units": {column: unit}, "provenance": {...}}``. The vocabulary is that of
the run JSON: ``ns``, ``1/s`` (an axis rate; MODEL.md's rates are in events per second here),
``trials``, ``probability``, ``attempts``, ``calls``, ``faults``, ``pages``, ``1`` (a plain count).

Intervals: for each outcome k, ``<k>_p``, ``<k>_lo``, ``<k>_hi`` at the sweep's level: Wilson's
score interval for a fixed-trial row (exact one-sided bounds at 0 or n events, as
mcexplore.stats.proportion_ci gives everywhere else); for an adaptive row (which stopped when its own data said
so) the beta-binomial confidence sequence (mcexplore.adaptive), which stays valid at a
data-dependent stopping time where Wilson's does not. ``interval`` names the one used. A rare
table (importance sampling, ``sweep --rare``) has no counts: each row's exact sums (``is_sums``)
give ``<outcome>`` (the estimate of its probability), ``_lo``, ``_hi``, ``_se`` (the normal
interval of mcexplore.rare), ``hits``, ``ess``, ``mean_weight`` (``_lo``, ``_hi``) and ``warning``,
with ``interval = "importance-sampling"``.

The dataset (``dataset/``, pyarrow.dataset, hive-partitioned ``strategy=<label>/``) holds the same
rows, with the histograms as lists of ``{lo, hi, count}`` buckets (edges in the metric's unit, only
non-empty buckets) instead of the table's sparse JSON of bucket indices.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from .results import HIST_BINS, HIST_METRICS, OUTCOMES, SUMS, Aggregate, hist_edges

SUM_UNITS = {"attempts": "attempts", "calls": "calls", "faults": "faults", "total_wait": "ns",
             "spin": "ns", "pages_left": "pages"}
HIST_UNITS = {"attempts": "attempts", "t_migrated": "ns", "max_wait": "ns"}
_KIND_UNITS = {"rate": "1/s", "duration": "ns", "number": "1"}
INTERVALS = {"wilson": "Wilson score interval, exact one-sided at 0 or n events (fixed trials; mcexplore.stats)",
             "cs": "beta-binomial mixture confidence sequence (adaptive rows; valid at any stopping time)",
             "importance-sampling": "normal interval of an importance-sampling estimate, from the empirical "
                                    "variance of the weighted hits w_i I_i (rare rows; mcexplore.rare)"}
IS_INTERVAL = "importance-sampling"
# The columns tables.add_intervals computes for a rare row (besides <outcome>, _lo, _hi, _se).
IS_COLUMNS = ("hits", "ess", "mean_weight", "mean_weight_lo", "mean_weight_hi")
IS_TEXT = ("rare_outcome", "is_sums", "tilt", "ce", "warning", "interval")


def units(spec, columns) -> dict:
    """{column: unit} of a sweep table's columns (those with a unit)."""
    u = {}
    for a in spec.axes:
        u[a.name] = _KIND_UNITS[a.kind]
    u["trials"] = "trials"
    rare = getattr(spec, "rare", None)
    if rare is not None and rare in columns and "is_sums" in columns:  # a rare table
        for s in ("", "_lo", "_hi", "_se"):
            u[f"{rare}{s}"] = "probability"
        u.update({"hits": "trials", "ess": "trials", "mean_weight": "1", "mean_weight_lo": "1",
                  "mean_weight_hi": "1", "pilot_trials": "trials", "ce_rounds": "1"})
        return {k: v for k, v in u.items() if k in columns}
    for o in OUTCOMES:
        u[o] = "trials"
        for s in ("p", "lo", "hi"):
            u[f"{o}_{s}"] = "probability"
    for s in SUMS:
        u[f"sum_{s}"] = SUM_UNITS[s]
    u["max_wait_max"] = "ns"
    for m in HIST_METRICS:
        u[f"hist_{m}"] = HIST_UNITS[m]
    u["cs_lo"] = u["cs_hi"] = "probability"
    return {k: v for k, v in u.items() if k in columns}


# ---------------------------------------------------------------------------------------------
# Histograms as JSON, rows as aggregates, reading a table
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


def is_sums_to_json(agg, outcome: str) -> str:
    """The exact sums of a rare row (mcexplore.rare.ISAggregate, one outcome) as JSON: the trials,
    the sums of all weights and of their squares, and the outcome's hits, weighted hits, their
    squares and largest weight; the sums are integers in units of 2**-1074, written as decimal
    strings ("inf" for a sum of squares that overflowed), so rows merge and any level's interval
    is computed from them exactly."""
    def big(v):
        return "inf" if v == float("inf") else str(int(v))

    return json.dumps({"outcome": outcome, "n": int(agg.n), "sw": big(agg.sw), "sw2": big(agg.sw2),
                       "hits": int(agg.hits[outcome]), "swi": big(agg.swi[outcome]),
                       "swi2": big(agg.swi2[outcome]), "wmax": float(agg.wmax[outcome])},
                      separators=(",", ":"))


def is_aggregate_from_json(text):
    """(outcome, ISAggregate) of a rare row's ``is_sums``; None for a row without an estimate."""
    if not isinstance(text, str) or not text:
        return None
    from .rare import ISAggregate

    d = json.loads(text)

    def big(v):
        return float("inf") if v == "inf" else int(v)

    o = d["outcome"]
    a = ISAggregate(n=int(d["n"]), sw=big(d["sw"]), sw2=big(d["sw2"]))
    a.hits[o], a.swi[o], a.swi2[o], a.wmax[o] = int(d["hits"]), big(d["swi"]), big(d["swi2"]), float(d["wmax"])
    return o, a


def is_rare_table(df) -> bool:
    """Whether a sweep table holds importance-sampling rows (``--rare``)."""
    return "is_sums" in df.columns


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
            c in ("strategy", "backend", "version", "config_hash", "scenario", "cell", "key") + IS_TEXT]
    df = pd.read_csv(p, dtype={c: str for c in text}, keep_default_na=False)
    if "is_sums" in df.columns:  # a rare table: its estimates may be empty (no hit: NaN)
        for c in df.columns:
            if c not in text:
                df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


# ---------------------------------------------------------------------------------------------
# Intervals, units, files
# ---------------------------------------------------------------------------------------------

def add_intervals(df: pd.DataFrame, level: float) -> pd.DataFrame:
    """The table with ``<outcome>_p/_lo/_hi`` and ``interval`` (see the module docstring)."""
    from .adaptive import beta_binomial_cs
    from .stats import proportion_ci

    if is_rare_table(df):
        return _add_is_intervals(df, level)
    df = df.copy()
    adaptive = df["stop_reason"].notna().to_numpy() if "stop_reason" in df else np.zeros(len(df), bool)
    n = df["trials"].to_numpy(dtype=np.int64)
    for o in OUTCOMES:
        c = df[o].to_numpy(dtype=np.int64)
        lo = np.empty(len(df))
        hi = np.empty(len(df))
        for i in range(len(df)):
            if adaptive[i]:
                lo[i], hi[i] = beta_binomial_cs(int(c[i]), int(n[i]), level)
            else:
                ci = proportion_ci(int(c[i]), int(n[i]), level)
                lo[i], hi[i] = ci.lo, ci.hi
        df[f"{o}_p"] = c / n
        df[f"{o}_lo"] = lo
        df[f"{o}_hi"] = hi
    df["interval"] = np.where(adaptive, "cs", "wilson")
    return df


def _add_is_intervals(df: pd.DataFrame, level: float) -> pd.DataFrame:
    """A rare table's estimate columns at ``level``, from each row's exact sums: ``<outcome>`` (the
    importance-sampling estimate of its probability), ``_lo``, ``_hi``, ``_se``, ``hits``, ``ess``,
    ``mean_weight`` with ``_lo``/``_hi`` (should contain 1), ``warning`` (mcexplore.rare's, e.g.
    too few effective hits; a row without sums keeps its own) and ``interval``."""
    df = df.copy()
    outs = {}
    for i, (text, warn) in enumerate(zip(df["is_sums"], df.get("warning", [""] * len(df)))):
        got = is_aggregate_from_json(text)
        if got is None:
            outs[i] = (df["rare_outcome"].iloc[i], None, warn or "no estimate")
            continue
        o, agg = got
        outs[i] = (o, agg, None)
    names = sorted({o for o, _, _ in outs.values()})
    cols: dict = {}
    for o in names:
        for s in ("", "_lo", "_hi", "_se"):
            cols[f"{o}{s}"] = np.full(len(df), np.nan)
    for c in IS_COLUMNS:
        cols[c] = np.full(len(df), np.nan)
    cols["hits"] = np.zeros(len(df), dtype=np.int64)
    warnings = [""] * len(df)
    for i, (o, agg, warn) in outs.items():
        if agg is None:
            warnings[i] = warn
            continue
        e = agg.estimate(o, level)
        wbar, wlo, whi = agg.weight_check(level)
        cols[o][i], cols[f"{o}_lo"][i], cols[f"{o}_hi"][i], cols[f"{o}_se"][i] = e.estimate, e.lo, e.hi, e.se
        cols["hits"][i], cols["ess"][i] = e.hits, e.ess
        cols["mean_weight"][i], cols["mean_weight_lo"][i], cols["mean_weight_hi"][i] = wbar, wlo, whi
        warnings[i] = e.warning or ""
    for c, v in cols.items():
        df[c] = v
    df["warning"] = warnings
    df["interval"] = IS_INTERVAL
    return df


def _arrow_table(df: pd.DataFrame, unit_map: dict, prov: dict):
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    fields = [f.with_metadata({"unit": unit_map[f.name]}) if f.name in unit_map else f for f in table.schema]
    meta = dict(table.schema.metadata or {})
    meta[b"mcexplore"] = json.dumps({"units": unit_map, "provenance": prov}, sort_keys=True).encode()
    return table.cast(pa.schema(fields, metadata=meta))


def write_results(df: pd.DataFrame, path: Path, spec, prov: dict) -> None:
    """The table (with its intervals: ``add_intervals``), written atomically as Parquet (units
    and provenance in the schema metadata) or CSV (which has no place for them: docs/scale.md
    lists them)."""
    import pyarrow.parquet as pq

    from .io import atomic_path

    with atomic_path(path) as tmp:
        if Path(path).suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            pq.write_table(_arrow_table(df, units(spec, df.columns), prov), tmp)


def hist_buckets(h, edges=None) -> list[dict]:
    """A histogram (bucket counts) as its non-empty buckets ``{lo, hi, count}``, edges in the
    metric's unit (bucket b holds the integers in [lo, hi)); ``edges``: ``hist_edges()``."""
    edges = hist_edges() if edges is None else edges
    h = np.asarray(h)
    return [{"lo": int(edges[b]), "hi": int(edges[b + 1]), "count": int(h[b])} for b in np.nonzero(h)[0]]


def dataset_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The dataset's rows: the table with the histograms as bucket lists."""
    out = df.copy()
    edges = hist_edges()
    for m in HIST_METRICS:
        if f"hist_{m}" not in df.columns:  # a rare table has no histograms
            continue
        out[f"hist_{m}"] = [hist_buckets(hist_from_json(s), edges) for s in df[f"hist_{m}"]]
    return out


def write_dataset(df: pd.DataFrame, root: Path, spec, prov: dict) -> None:
    """The hive-partitioned dataset (by strategy) of the table (with its intervals) under
    ``root``, replaced as a whole: written beside it and renamed in, so a reader sees the old
    dataset or the new one, never a mix."""
    import pyarrow.dataset as ds

    root = Path(root)
    frame = dataset_frame(df)
    table = _arrow_table(frame, units(spec, frame.columns), prov)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".new", dir=root.parent))
    try:
        ds.write_dataset(table, tmp, format="parquet", partitioning=["strategy"],
                         partitioning_flavor="hive", basename_template="part-{i}.parquet",
                         existing_data_behavior="overwrite_or_ignore")
        old = None
        if root.exists():
            old = root.parent / f".{root.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(root, old)
        os.replace(tmp, root)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_dataset(root):
    """The dataset as a pandas DataFrame (``strategy`` back as a column)."""
    import pyarrow.dataset as ds

    return ds.dataset(Path(root), format="parquet", partitioning="hive").to_table().to_pandas()


def metadata(path) -> dict:
    """``{"units": ..., "provenance": ...}`` of a results.parquet or a dataset file."""
    import pyarrow.parquet as pq

    p = Path(path)
    if p.is_dir():
        p = next(p.rglob("*.parquet"))
    meta = pq.read_schema(p).metadata or {}
    return json.loads(meta[b"mcexplore"]) if b"mcexplore" in meta else {}


def to_xarray(table, variables=None):
    """A grid sweep's table as an ``xarray.Dataset`` with one dimension per axis plus ``strategy``
    (needs xarray: ``pip install 'mcexplore[xarray]'``). ``table``: a DataFrame or a path that
    ``sweep.load_results`` reads. Variables: trials, every outcome's count and ``_p/_lo/_hi``,
    the sums (or those named); each has its unit in ``attrs["units"]``, the dataset the
    provenance in ``attrs``."""
    try:
        import xarray  # noqa: F401  (pandas' to_xarray uses it)
    except ImportError:
        raise ImportError("to_xarray needs xarray: pip install 'mcexplore[xarray]'") from None
    meta = {}
    if not isinstance(table, pd.DataFrame):
        p = Path(table)
        pq_path = p / "results.parquet" if p.is_dir() else p
        if pq_path.suffix == ".parquet" and pq_path.is_file():
            meta = metadata(pq_path)
        table = load_results(table)
    axes = [c[: -len("_label")] for c in table.columns if c.endswith("_label")]
    if variables is None and is_rare_table(table):  # the rare outcome's estimate columns
        variables = [v for v in ["trials"] + [f"{o}{s}" for o in OUTCOMES for s in ("", "_lo", "_hi", "_se")]
                     + list(IS_COLUMNS) if v in table.columns]
    if variables is None:
        variables = ["trials"] + [f"{o}{s}" for o in OUTCOMES for s in ("", "_p", "_lo", "_hi")] + \
                    [f"sum_{s}" for s in SUMS]
    missing = [v for v in variables if v not in table.columns]
    if missing:
        raise KeyError(f"not columns of the table: {', '.join(missing)}")
    dims = axes + ["strategy"]
    if table.duplicated(dims).any():
        raise ValueError(f"not a grid: rows repeat for the same {', '.join(dims)}")
    ds_ = table.set_index(dims)[variables].to_xarray()
    unit_map = meta.get("units", {})
    for v in list(ds_.data_vars) + axes:
        if v in unit_map:
            ds_[v].attrs["units"] = unit_map[v]
    for a in axes:
        labels = table.drop_duplicates(a).set_index(a)[f"{a}_label"]
        ds_ = ds_.assign_coords({f"{a}_label": (a, [labels[x] for x in ds_[a].values])})
    if meta.get("provenance"):
        prov = meta["provenance"]
        ds_.attrs.update({k: json.dumps(v) if isinstance(v, (dict, list)) else ("" if v is None else v)
                          for k, v in prov.items()})
    return ds_
