"""Figures from sweep tables and aggregates: risk maps, probability curves, CDFs.

Where it sits: the top of the data flow, beside the CLI. Reads the tidy table that
mcexplore.sweep writes (or aggregates from mcexplore.api) and computes every interval with
mcexplore.stats, so a figure shows exactly what the counts support. Uses the non-interactive Agg
backend (except inside a Jupyter kernel, whose inline backend shows the figures); the output
format (PNG or SVG) follows the file name. matplotlib, seaborn and pandas are imported by the
functions that draw, not by importing this module, and the backend is chosen when the first figure
is drawn: importing mcexplore.plots changes no global state (no backend, rcParams or warning
filter).

- ``riskmap``: log10 of an outcome's probability over two axes, one panel per strategy (or other
  facet) on one shared, colour-blind-safe scale (viridis, reversed: darker is likelier). A cell
  with zero events has no point estimate on a log scale: it is not coloured on that scale (which
  would draw "nothing seen, < 0.03" darker than an observed 0.01) but in a neutral grey, hatched,
  and labelled with its one-sided upper bound (``proportion_ci``), "<3e-4". The scale spans the
  observed cells only. Cells with no trials stay blank. The figure widens with the number of
  columns so that the cell labels never overlap.
- ``curve``: an outcome's probability against one axis with interval bands, one line per strategy,
  each with its own marker; zero-count points are open markers at their upper bound. Strategies
  whose points coincide are dodged a little along x, and the legend names the series that are
  zero everywhere ("all zero: a, b, ...").
- ``cdf``: empirical CDFs of attempts, t_migrated or max_wait from the integer histograms, one
  line per strategy (each its own colour, dash pattern and marker). ``t_migrated`` is normalised
  by all trials, so its curve levels off at P(migrated) (a strategy that rarely migrates stays
  low); the others by their own counts. Identical curves are drawn widest first, so every one
  shows, and the legend says which coincide ("identical: a, b, ...").

Every figure carries its provenance on one line at its foot (a text with gid ``provenance``):
scenario, the ``where`` filters, trials per cell, seed, backend, version and confidence level, as
far as the table records them (``provenance``).
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .results import HIST_METRICS, OUTCOMES, hist_edges
from .stats import proportion_ci

if TYPE_CHECKING:
    import pandas as pd

PANEL = "panel"  # label of the axes that hold data (colour bars are not panels)
PROVENANCE = "provenance"  # gid of the figure text that gives the provenance
ZERO = "zero-count"  # gid of the artists that mark zero-count cells / points
ZERO_LABEL = "zero-label"  # gid of the "<bound" texts of zero-count cells
CELL_LABEL = "cell-label"  # gid of the value texts of observed cells
CMAP = "viridis_r"  # colour-blind safe and perceptually uniform; darker = likelier
NEUTRAL = "0.86"  # face colour of zero-count cells: on no colour scale
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
DASHES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 2, 4, 2)), (0, (8, 2)), (0, (2, 1)))
_EDGES = hist_edges()


class PlotError(ValueError):
    pass


_backend_chosen = False


def _pyplot():
    """matplotlib.pyplot, the first call switching to the non-interactive Agg backend (except in a
    Jupyter kernel, whose inline backend shows the figures): what importing this module used to do,
    done when the first figure is drawn."""
    global _backend_chosen
    if not _backend_chosen:
        if "ipykernel" not in sys.modules:
            import matplotlib

            matplotlib.use("Agg")
        _backend_chosen = True
    import matplotlib.pyplot as plt

    return plt


def axis_columns(table: pd.DataFrame) -> list[str]:
    """The sweep axes of a table: columns that have a ``<name>_label`` companion."""
    return [c for c in table.columns if f"{c}_label" in table.columns]


def _filter(table: pd.DataFrame, where: dict | None) -> pd.DataFrame:
    if not where:
        return table
    import pandas as pd

    t = table
    for k, v in where.items():
        if k not in t.columns:
            raise PlotError(f"--where {k}: no such column (columns: {', '.join(map(str, t.columns))})")
        m = t[k].astype(str) == str(v)
        if f"{k}_label" in t.columns:
            m |= t[f"{k}_label"].astype(str) == str(v)
        try:
            m |= np.isclose(pd.to_numeric(t[k], errors="coerce").to_numpy(dtype=float), float(v))
        except (TypeError, ValueError):
            pass
        t = t[m]
        if t.empty:
            raise PlotError(f"--where {k}={v}: no row matches")
    return t


def _check_fixed(t: pd.DataFrame, used: set):
    varying = [c for c in axis_columns(t) if c not in used and t[c].nunique() > 1]
    if varying:
        vals = {c: sorted(t[c].unique().tolist())[:6] for c in varying}
        raise PlotError("these axes vary but are not plotted: " +
                        "; ".join(f"{c} in {v}" for c, v in vals.items()) +
                        " (pick one value each with where={...} / --where NAME=VALUE)")


def _ticklabels(t: pd.DataFrame, col: str, values) -> list[str]:
    lab = f"{col}_label"
    if lab in t.columns:
        m = t.drop_duplicates(col).set_index(col)[lab]
        return [str(m.get(v, v)) for v in values]
    return [f"{v:g}" if isinstance(v, (int, float, np.number)) else str(v) for v in values]


def _pool(t: pd.DataFrame, keys: list[str], outcome: str) -> pd.DataFrame:
    if outcome not in OUTCOMES and outcome != "not_migrated":
        raise PlotError(f"outcome must be one of {', '.join(OUTCOMES)}, not_migrated; got {outcome!r}")
    t = t.copy()
    if outcome == "not_migrated":
        t["not_migrated"] = t["trials"] - t["migrated"]
    g = t.groupby(keys, sort=True)[["trials", outcome]].sum().reset_index()
    return g.rename(columns={outcome: "count"})


def _is_cells(t: pd.DataFrame, keys: list[str], outcome: str, level: float) -> pd.DataFrame:
    """The cells of a rare table (importance-sampling rows, ``--rare``): one row per ``keys``, with
    ``count`` (the hits in the tilted world), ``trials``, ``p`` (the estimate), ``lo``, ``hi`` (its
    normal interval at ``level``, recomputed from the row's exact sums), ``zero`` (no hit: no
    estimate, no bound) and ``warning`` (mcexplore.rare's, e.g. too few effective hits). Estimates
    of different cells are never pooled: each has its own tilt."""
    from .tables import _add_is_intervals

    have = sorted(set(t["rare_outcome"].astype(str)))
    if outcome not in have:
        raise PlotError(f"--outcome {outcome}: this table holds importance-sampling estimates of "
                        f"{', '.join(have)} only (give --outcome {have[0]})")
    if t.duplicated(keys).any():
        raise PlotError(f"rows repeat for the same {', '.join(keys)}: importance-sampling estimates of "
                        "different rows are not pooled (pick one value of each other column with --where)")
    t = _add_is_intervals(t, level)
    g = t[keys + ["trials"]].copy()
    g["count"] = t["hits"].astype(int).to_numpy()
    g["p"] = t[outcome].astype(float).to_numpy()
    g["lo"] = t[f"{outcome}_lo"].astype(float).to_numpy()
    g["hi"] = t[f"{outcome}_hi"].astype(float).to_numpy()
    g["zero"] = g["count"].to_numpy() == 0
    g["warning"] = t["warning"].astype(str).to_numpy() != ""
    return g.sort_values(keys).reset_index(drop=True)


def _cells(t: pd.DataFrame, keys: list[str], outcome: str, level: float) -> pd.DataFrame:
    """What a plot shows per ``keys``: counts pooled with their intervals, or a rare table's
    importance-sampling estimates (``_is_cells``)."""
    from .tables import is_rare_table

    if is_rare_table(t):
        return _is_cells(t, keys, outcome, level)
    return _intervals(_pool(t, keys, outcome), level)


def _intervals(g: pd.DataFrame, level: float) -> pd.DataFrame:
    prs = [proportion_ci(int(c), int(n), level) for c, n in zip(g["count"], g["trials"])]
    g = g.copy()
    g["p"] = [r.p for r in prs]
    g["lo"] = [r.lo for r in prs]
    g["hi"] = [r.hi for r in prs]
    g["zero"] = g["count"] == 0
    return g


def _uniq(t, col):
    if col not in t.columns:
        return None
    vals = list(dict.fromkeys(str(v) for v in t[col].dropna()))
    return ", ".join(vals) if vals else None


def provenance(table=None, where: dict | None = None, level: float | None = None, **extra) -> str:
    """One line saying where a figure's numbers come from: scenario, the ``where`` filters, trials
    per cell, seed (the sweep's base seed), backend, version and level, from the table's columns
    (a field the table lacks is left out, except the filters); ``extra`` fields are appended."""
    parts = []
    if table is not None:
        sc = _uniq(table, "scenario")
        if sc:
            parts.append(f"scenario {sc}")
    parts.append("where " + ", ".join(f"{k}={v}" for k, v in where.items()) if where else "where: all rows")
    if table is not None and "trials" in table.columns and len(table):
        tr = sorted({int(v) for v in table["trials"]})
        parts.append(f"{tr[0]:,} trials per cell" if len(tr) == 1 else f"{tr[0]:,}-{tr[-1]:,} trials per cell")
    if table is not None:
        seed = _uniq(table, "base_seed")
        if seed is not None:
            parts.append(f"seed {seed}")
        for col, name in (("backend", "backend"), ("version", "mcexplore")):
            v = _uniq(table, col)
            if v:
                parts.append(f"{name} {v}")
    for k, v in extra.items():
        if v is not None:
            parts.append(f"{k} {v}")
    if level is not None:
        parts.append(f"level {100 * level:g}%")
    return " | ".join(parts)


def _stamp(fig, text: str | None):
    """Put the provenance line at the foot of ``fig`` (inside the constrained layout)."""
    if text:
        fig.supxlabel(text, fontsize=6.5, color="0.3", gid=PROVENANCE)
    return fig


def _short(p: float) -> str:
    """A probability in at most 5 characters: 0.25, 0.03, 3e-4."""
    if p >= 0.0095:
        return f"{p:.2g}" if p < 1 else "1"
    m, e = f"{p:.0e}".split("e")
    return f"{m}e{int(e)}"


def save(fig, out, dpi: int = 100):
    """Save ``fig`` to ``out`` (PNG or SVG by extension)."""
    if out is not None:
        fig.savefig(out, dpi=dpi)
    return fig


def riskmap_cells(table: pd.DataFrame, x: str, y: str, facet: str, outcome: str, where: dict | None,
                  level: float):
    """What a risk map shows, drawn (``riskmap``) or as text (``textfmt.riskmap_grid``): the
    filtered table, one row per (facet, x, y) cell with its count, trials and interval, and the
    x values, y values and facets in display order."""
    t = _filter(table, where)
    for c in (x, y, facet):
        if c not in t.columns:
            raise PlotError(f"{c!r} is not a column of the table (axes: {', '.join(axis_columns(table))})")
    _check_fixed(t, {x, y, facet})
    g = _cells(t, [facet, x, y], outcome, level)
    xs, ys = sorted(t[x].unique()), sorted(t[y].unique())
    facets = list(dict.fromkeys(t[facet]))  # first-seen order (the sweep's strategy order)
    return t, g, xs, ys, facets


def riskmap(table: pd.DataFrame, x: str, y: str, facet: str = "strategy", outcome: str = "livelock",
            where: dict | None = None, level: float = 0.95, out=None, dpi: int = 100,
            annotate: bool | None = None, cmap: str = CMAP, title: str | None = None,
            provenance_text: str | None = None):
    """Heatmaps of log10 P(outcome) over (x, y), one panel per ``facet`` value, shared scale;
    zero-count cells neutral grey, hatched and labelled "<bound" (see the module docstring)."""
    plt = _pyplot()
    import matplotlib as mpl
    from matplotlib.patches import Rectangle

    t, g, xs, ys, facets = riskmap_cells(table, x, y, facet, outcome, where, level)
    rare = "warning" in g.columns  # importance-sampling estimates (a rare table)
    with np.errstate(divide="ignore", invalid="ignore"):
        g["value"] = np.log10(np.where(g["zero"], g["hi"], g["p"]).astype(float))
    seen = g["value"][np.isfinite(g["value"]) & ~g["zero"]]
    finite = seen if len(seen) else g["value"][np.isfinite(g["value"])]
    vmin, vmax = (float(finite.min()), float(finite.max())) if len(finite) else (-6.0, 0.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    if annotate is None:
        annotate = len(xs) * len(ys) <= 144
    n = len(facets)
    ncol = min(n, 4)
    nrow = math.ceil(n / ncol)
    # a cell is at least 0.42 in wide and 0.26 in high: room for a 5-character label at 6.5 pt
    pw, ph = max(3.6, 0.42 * len(xs) + 1.0), max(3.2, 0.26 * len(ys) + 1.2)
    fig, axes = plt.subplots(nrow, ncol, figsize=(pw * ncol + 1.2, ph * nrow + 1.0), squeeze=False,
                             layout="constrained")
    colormap = mpl.colormaps[cmap].with_extremes(bad=(0, 0, 0, 0))  # masked: drawn by the patches
    norm = mpl.colors.Normalize(vmin, vmax)
    fontsize = 6.5 if len(xs) > 6 else 7
    mesh = None
    for k, fv in enumerate(facets):
        ax = axes[k // ncol][k % ncol]
        ax.set_label(PANEL)
        sub = g[g[facet] == fv]
        Z = np.full((len(ys), len(xs)), np.nan)
        zero = np.zeros_like(Z, dtype=bool)
        warn = np.zeros_like(Z, dtype=bool)
        bound = np.full_like(Z, np.nan)
        for r in sub.itertuples(index=False):
            i, j = ys.index(getattr(r, y)), xs.index(getattr(r, x))
            Z[i, j] = r.value
            zero[i, j] = r.zero
            bound[i, j] = r.hi
            warn[i, j] = bool(getattr(r, "warning", False))
        # zero-count cells keep their bound as data (the table's value) but are masked: not coloured
        mesh = ax.pcolormesh(np.arange(len(xs) + 1), np.arange(len(ys) + 1),
                             np.ma.array(Z, mask=~np.isfinite(Z) | zero),
                             cmap=colormap, norm=norm, edgecolors="white", linewidth=0.5)
        for i, j in zip(*np.nonzero(zero)):
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=NEUTRAL, hatch="////", edgecolor="0.62",
                                   linewidth=0, gid=ZERO))
            ax.text(j + 0.5, i + 0.5, "none" if rare else "<" + _short(bound[i, j]), ha="center", va="center",
                    fontsize=fontsize, color="black", gid=ZERO_LABEL,
                    bbox=dict(boxstyle="square,pad=0.1", facecolor=NEUTRAL, edgecolor="none"))
        if annotate:
            for i in range(len(ys)):
                for j in range(len(xs)):
                    if np.isfinite(Z[i, j]) and not zero[i, j]:
                        rgb = colormap(norm(Z[i, j]))[:3]
                        lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
                        ax.text(j + 0.5, i + 0.5, _short(10 ** Z[i, j]) + ("*" if warn[i, j] else ""),
                                ha="center", va="center",
                                fontsize=fontsize, color="white" if lum < 0.45 else "black", gid=CELL_LABEL)
        ax.set_xlim(0, len(xs))
        ax.set_ylim(0, len(ys))
        ax.set_xticks(np.arange(len(xs)) + 0.5, _ticklabels(t, x, xs), rotation=45, ha="right", fontsize=8)
        ax.set_yticks(np.arange(len(ys)) + 0.5, _ticklabels(t, y, ys), fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(y if k % ncol == 0 else "")
        ax.set_title(str(fv) if facet == "strategy" else f"{facet} = {_ticklabels(t, facet, [fv])[0]}")
    for k in range(n, nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
        axes[k // ncol][k % ncol].remove()
    panels = [a for row in axes for a in row if a.get_label() == PANEL]
    if len(seen):
        cb = fig.colorbar(mesh, ax=panels, shrink=0.9)
        cb.set_label(f"log10 P({outcome}), observed cells")
        scale = "(not on the colour scale)"
    else:
        # No cell saw an event: a colour bar would show a range no cell uses.
        scale = "(no event seen in any cell: no colour scale)"
    if rare:
        fig.suptitle((title or f"P({outcome}) by {x} and {y}, importance sampling") +
                     "\ngrey hatched: no hit under the cell's tilt (no estimate)"
                     "\n*: a warning (see the table's warning column)",
                     fontsize=10)
    else:
        fig.suptitle((title or f"P({outcome}) by {x} and {y}") +
                     f"\ngrey hatched: no event seen, labelled with its {100 * level:g}% one-sided upper bound "
                     + scale, fontsize=10)
    _stamp(fig, provenance_text if provenance_text is not None else provenance(t, where, level))
    return save(fig, out, dpi)


def _coincide(series: dict) -> list[list]:
    """Groups (of two or more keys) of ``series`` whose values are equal: key -> hashable."""
    groups: dict = {}
    for k, v in series.items():
        groups.setdefault(v, []).append(k)
    return [ks for ks in groups.values() if len(ks) > 1]


def curve(table: pd.DataFrame, x: str, outcome: str = "livelock", hue: str = "strategy",
          where: dict | None = None, level: float = 0.95, out=None, dpi: int = 100,
          logx: bool | None = None, title: str | None = None, provenance_text: str | None = None):
    """P(outcome) against ``x`` with interval bands, one line (and marker) per ``hue`` value;
    coinciding lines dodged along x, all-zero lines named in the legend."""
    plt = _pyplot()
    import seaborn as sns
    from matplotlib.lines import Line2D

    t = _filter(table, where)
    for c in (x, hue):
        if c not in t.columns:
            raise PlotError(f"{c!r} is not a column of the table (axes: {', '.join(axis_columns(table))})")
    _check_fixed(t, {x, hue})
    g = _cells(t, [hue, x], outcome, level)
    hues = list(dict.fromkeys(t[hue]))
    colors = sns.color_palette("colorblind", len(hues))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    ax.set_label(PANEL)
    xv = g[x].astype(float)
    if logx is None:
        logx = bool((xv > 0).all() and xv.max() / xv.min() > 20)
    floor = max(float(g["hi"][g["hi"] > 0].min()) / 10 if (g["hi"] > 0).any() else 1e-9, 1e-300)
    per = {h: g[g[hue] == h].sort_values(x) for h in hues}
    # series drawn on top of each other: dodge them a little along x (at most 3% of the span)
    shape = {h: tuple(zip(s[x].astype(float), s["zero"], np.round(np.where(s["zero"], s["hi"], s["p"]), 12)))
             for h, s in per.items()}
    shift = dict.fromkeys(hues, 0.0)
    span = (math.log10(xv.max() / xv.min()) if logx else float(xv.max() - xv.min())) or 1.0
    for group in _coincide(shape):
        step = min(0.03 * span / max(len(group) - 1, 1), 0.012 * span)
        for k, h in enumerate(group):
            shift[h] = (k - (len(group) - 1) / 2) * step

    def dodge(h, sx):
        return sx * 10 ** shift[h] if logx else sx + shift[h]

    all_zero = [h for h in hues if per[h]["zero"].all()]
    for k, (h, col) in enumerate(zip(hues, colors)):
        s = per[h]
        marker = MARKERS[k % len(MARKERS)]
        sx = dodge(h, s[x].astype(float).to_numpy())
        ax.fill_between(sx, np.maximum(s["lo"], floor), s["hi"], color=col, alpha=0.12, linewidth=0)
        pos = ~s["zero"].to_numpy()
        ax.plot(sx[pos], s["p"].to_numpy()[pos], "-", marker=marker, color=col, markersize=5)
        if (~pos).any():
            ax.plot(sx[~pos], s["hi"].to_numpy()[~pos], linestyle="none", marker=marker, color=col,
                    markerfacecolor="none", markersize=7, markeredgewidth=1.3, gid=ZERO)
        ax.plot([], [], "-", marker=marker, color=col, label=str(h) + (" (all zero)" if h in all_zero else ""))
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    xs = sorted(t[x].unique())
    if len(xs) <= 12:
        ax.set_xticks([float(v) for v in xs], _ticklabels(t, x, xs))
        ax.minorticks_off() if not logx else ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel(x)
    ax.set_ylabel(f"P({outcome})")
    handles, labels = ax.get_legend_handles_labels()
    if g["zero"].any():
        handles.append(Line2D([], [], linestyle="none", marker="o", color="0.3", markerfacecolor="none"))
        labels.append(f"open marker: 0 events, at its {100 * level:g}% upper bound")
    if len(all_zero) > 1:
        handles.append(Line2D([], [], linestyle="none"))
        labels.append("all zero: " + ", ".join(map(str, all_zero)) + " (dodged)")
    ax.legend(handles, labels, fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"P({outcome}) vs {x}, {100 * level:g}% intervals")
    _stamp(fig, provenance_text if provenance_text is not None else provenance(t, where, level))
    return save(fig, out, dpi)


def _hists_from(source, metric: str, where=None) -> dict:
    """label -> (hist, trials) from a sweep table, {label: Aggregate|StrategyRun} or a RunResult."""
    from .tables import hist_from_json

    import pandas as pd

    if isinstance(source, pd.DataFrame):
        if f"hist_{metric}" not in source.columns:
            raise PlotError(f"the table has no hist_{metric} column: an importance-sampling table (sweep "
                            "--rare) keeps no histograms, only each row's weighted sums")
        t = _filter(source, where)
        out = {}
        for label in dict.fromkeys(t["strategy"]):
            s = t[t["strategy"] == label]
            h = sum((hist_from_json(v) for v in s[f"hist_{metric}"]), np.zeros(len(_EDGES) - 1, dtype=np.int64))
            out[label] = (h, int(s["trials"].sum()))
        return out
    runs = getattr(source, "runs", source)
    out = {}
    for label, a in runs.items():
        a = getattr(a, "aggregate", a)
        out[label] = (np.asarray(a.hists[metric]), int(a.trials))
    return out


def cdf(source, metric: str = "t_migrated", where: dict | None = None, out=None, dpi: int = 100,
        title: str | None = None, provenance_text: str | None = None):
    """Empirical CDFs of ``metric`` per strategy from histograms (see the module docstring)."""
    if metric not in HIST_METRICS:
        raise PlotError(f"metric must be one of {', '.join(HIST_METRICS)}, got {metric!r}")
    hs = _hists_from(source, metric, where)
    plt = _pyplot()
    import pandas as pd
    import seaborn as sns
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter
    colors = sns.color_palette("colorblind", max(len(hs), 1))
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    ax.set_label(PANEL)
    upper = _EDGES[1:]  # a bucket's values are < its upper edge
    curves = {}
    for label, (h, trials) in hs.items():
        tot = trials if metric == "t_migrated" else int(h.sum())
        if tot == 0 or h.sum() == 0:
            curves[label] = None
            continue
        nz = np.nonzero(h)[0]
        lo_b, hi_b = nz[0], nz[-1]
        xs = np.concatenate([[_EDGES[lo_b]], upper[lo_b:hi_b + 1]])
        ys = np.concatenate([[0.0], np.cumsum(h[lo_b:hi_b + 1]) / tot])
        curves[label] = (np.maximum(xs, 0.5), ys)
    same = _coincide({k: (tuple(v[0]), tuple(np.round(v[1], 12))) for k, v in curves.items() if v is not None})
    width = dict.fromkeys(curves, 1.6)
    for group in same:  # identical curves: the first widest, each next one thinner on top of it
        for k, label in enumerate(group):
            width[label] = 1.2 + 1.1 * (len(group) - 1 - k)
    for k, ((label, c), col) in enumerate(zip(curves.items(), colors)):
        style = dict(color=col, linestyle=DASHES[k % len(DASHES)], marker=MARKERS[k % len(MARKERS)],
                     markersize=4, linewidth=width[label])
        if c is None:
            ax.plot([], [], label=f"{label} (no values)", **style)
            continue
        ax.step(*c, where="post", label=str(label), markevery=max(len(c[0]) // 6, 1) or 1, zorder=2 + k, **style)
    ax.set_xscale("log")
    if metric != "attempts":
        from .units import format_ns

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_ns(v)))
    ax.set_xlabel({"t_migrated": "time to migrate", "max_wait": "longest wait of a trial",
                   "attempts": "attempts"}[metric])
    ax.set_ylabel("fraction of all trials" if metric == "t_migrated" else "fraction of trials")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    for group in same:
        handles.append(Line2D([], [], linestyle="none"))
        labels.append("identical: " + ", ".join(map(str, group)))
    ax.legend(handles, labels, fontsize=7)
    ax.set_title(title or f"CDF of {metric}")
    if provenance_text is None:
        if isinstance(source, pd.DataFrame):
            provenance_text = provenance(_filter(source, where), where)
        elif hasattr(source, "backend"):  # a RunResult
            provenance_text = provenance(None, where, scenario=getattr(source, "scenario_name", None),
                                         trials=getattr(source, "trials", None), seed=getattr(source, "seed", None),
                                         backend=source.backend, mcexplore=__version__)
        else:
            provenance_text = provenance(None, where, mcexplore=__version__)
    _stamp(fig, provenance_text)
    return save(fig, out, dpi)
