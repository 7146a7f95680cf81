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
  facet) on one shared colour scale. A cell with zero events has no point estimate on a log scale:
  it is drawn at its one-sided upper bound (``proportion_ci``) and hatched, so "< 3e-4" is never
  mistaken for "= 3e-4". Cells with no trials stay blank.
- ``curve``: an outcome's probability against one axis with interval bands, one line per strategy;
  zero-count points are drawn as open downward triangles at their upper bound.
- ``cdf``: empirical CDFs of attempts, t_migrated or max_wait from the integer histograms, one
  line per strategy. ``t_migrated`` is normalised by all trials, so its curve levels off at
  P(migrated) (a strategy that rarely migrates stays low); the others by their own counts.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import numpy as np

from .results import HIST_METRICS, OUTCOMES, hist_edges
from .stats import proportion_ci

if TYPE_CHECKING:
    import pandas as pd

PANEL = "panel"  # label of the axes that hold data (colour bars are not panels)
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


def _intervals(g: pd.DataFrame, level: float) -> pd.DataFrame:
    prs = [proportion_ci(int(c), int(n), level) for c, n in zip(g["count"], g["trials"])]
    g = g.copy()
    g["p"] = [r.p for r in prs]
    g["lo"] = [r.lo for r in prs]
    g["hi"] = [r.hi for r in prs]
    g["zero"] = g["count"] == 0
    return g


def save(fig, out, dpi: int = 100):
    """Save ``fig`` to ``out`` (PNG or SVG by extension)."""
    if out is not None:
        fig.savefig(out, dpi=dpi)
    return fig


def riskmap(table: pd.DataFrame, x: str, y: str, facet: str = "strategy", outcome: str = "livelock",
            where: dict | None = None, level: float = 0.95, out=None, dpi: int = 100,
            annotate: bool | None = None, cmap: str = "rocket_r", title: str | None = None):
    """Heatmaps of log10 P(outcome) over (x, y), one panel per ``facet`` value, shared scale."""
    plt = _pyplot()
    import seaborn as sns
    from matplotlib.patches import Rectangle

    t = _filter(table, where)
    for c in (x, y, facet):
        if c not in t.columns:
            raise PlotError(f"{c!r} is not a column of the table (axes: {', '.join(axis_columns(table))})")
    _check_fixed(t, {x, y, facet})
    g = _intervals(_pool(t, [facet, x, y], outcome), level)
    g["value"] = np.log10(np.where(g["zero"], g["hi"], g["p"]).astype(float))
    xs, ys = sorted(t[x].unique()), sorted(t[y].unique())
    facets = list(dict.fromkeys(t[facet]))  # first-seen order (the sweep's strategy order)
    finite = g["value"][np.isfinite(g["value"])]
    vmin, vmax = (float(finite.min()), float(finite.max())) if len(finite) else (-6.0, 0.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    if annotate is None:
        annotate = len(xs) * len(ys) <= 64
    n = len(facets)
    ncol = min(n, 4)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol + 1.2, 3.2 * nrow + 0.6), squeeze=False,
                             layout="constrained")
    colormap = sns.color_palette(cmap, as_cmap=True)
    mesh = None
    for k, fv in enumerate(facets):
        ax = axes[k // ncol][k % ncol]
        ax.set_label(PANEL)
        sub = g[g[facet] == fv]
        Z = np.full((len(ys), len(xs)), np.nan)
        zero = np.zeros_like(Z, dtype=bool)
        for r in sub.itertuples(index=False):
            i, j = ys.index(getattr(r, y)), xs.index(getattr(r, x))
            Z[i, j] = r.value
            zero[i, j] = r.zero
        mesh = ax.pcolormesh(np.arange(len(xs) + 1), np.arange(len(ys) + 1), np.ma.masked_invalid(Z),
                             cmap=colormap, vmin=vmin, vmax=vmax, edgecolors="white", linewidth=0.5)
        for i, j in zip(*np.nonzero(zero)):
            ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="0.35", linewidth=0,
                                   gid="zero-count"))
        if annotate:
            for i in range(len(ys)):
                for j in range(len(xs)):
                    if np.isfinite(Z[i, j]):
                        txt = ("<" if zero[i, j] else "") + f"{10 ** Z[i, j]:.1g}"
                        shade = (Z[i, j] - vmin) / (vmax - vmin)
                        ax.text(j + 0.5, i + 0.5, txt, ha="center", va="center", fontsize=7,
                                color="white" if shade > 0.6 else "black")
        ax.set_xticks(np.arange(len(xs)) + 0.5, _ticklabels(t, x, xs), rotation=45, ha="right", fontsize=8)
        ax.set_yticks(np.arange(len(ys)) + 0.5, _ticklabels(t, y, ys), fontsize=8)
        ax.set_xlabel(x)
        ax.set_ylabel(y if k % ncol == 0 else "")
        ax.set_title(str(fv) if facet == "strategy" else f"{facet} = {_ticklabels(t, facet, [fv])[0]}")
    for k in range(n, nrow * ncol):
        axes[k // ncol][k % ncol].set_visible(False)
        axes[k // ncol][k % ncol].remove()
    cb = fig.colorbar(mesh, ax=[a for row in axes for a in row if a.get_label() == PANEL], shrink=0.9)
    cb.set_label(f"log10 P({outcome})")
    fig.suptitle((title or f"P({outcome}) by {x} and {y}") +
                 f"\nhatched: no event seen, drawn at its {100 * level:g}% one-sided upper bound", fontsize=10)
    return save(fig, out, dpi)


def curve(table: pd.DataFrame, x: str, outcome: str = "livelock", hue: str = "strategy",
          where: dict | None = None, level: float = 0.95, out=None, dpi: int = 100,
          logx: bool | None = None, title: str | None = None):
    """P(outcome) against ``x`` with interval bands, one line per ``hue`` value."""
    plt = _pyplot()
    import seaborn as sns

    t = _filter(table, where)
    for c in (x, hue):
        if c not in t.columns:
            raise PlotError(f"{c!r} is not a column of the table (axes: {', '.join(axis_columns(table))})")
    _check_fixed(t, {x, hue})
    g = _intervals(_pool(t, [hue, x], outcome), level)
    hues = list(dict.fromkeys(t[hue]))
    colors = sns.color_palette("colorblind", len(hues))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    ax.set_label(PANEL)
    xv = g[x].astype(float)
    if logx is None:
        logx = bool((xv > 0).all() and xv.max() / xv.min() > 20)
    floor = max(float(g["hi"][g["hi"] > 0].min()) / 10 if (g["hi"] > 0).any() else 1e-9, 1e-300)
    for h, col in zip(hues, colors):
        s = g[g[hue] == h].sort_values(x)
        sx = s[x].astype(float).to_numpy()
        ax.fill_between(sx, np.maximum(s["lo"], floor), s["hi"], color=col, alpha=0.15, linewidth=0)
        pos = ~s["zero"].to_numpy()
        ax.plot(sx[pos], s["p"].to_numpy()[pos], "o-", color=col, label=str(h), markersize=4)
        if (~pos).any():
            ax.plot(sx[~pos], s["hi"].to_numpy()[~pos], "v", color=col, markerfacecolor="none",
                    markersize=7, gid="zero-count")
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    xs = sorted(t[x].unique())
    if len(xs) <= 12:
        ax.set_xticks([float(v) for v in xs], _ticklabels(t, x, xs))
        ax.minorticks_off() if not logx else ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_xlabel(x)
    ax.set_ylabel(f"P({outcome})")
    if g["zero"].any():
        ax.plot([], [], "v", color="0.3", markerfacecolor="none", label=f"0 events: {100 * level:g}% upper bound")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"P({outcome}) vs {x}, {100 * level:g}% intervals")
    return save(fig, out, dpi)


def _hists_from(source, metric: str, where=None) -> dict:
    """label -> (hist, trials) from a sweep table, {label: Aggregate|StrategyRun} or a RunResult."""
    from .sweep import hist_from_json

    import pandas as pd

    if isinstance(source, pd.DataFrame):
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
        title: str | None = None):
    """Empirical CDFs of ``metric`` per strategy from histograms (see the module docstring)."""
    if metric not in HIST_METRICS:
        raise PlotError(f"metric must be one of {', '.join(HIST_METRICS)}, got {metric!r}")
    hs = _hists_from(source, metric, where)
    plt = _pyplot()
    import seaborn as sns
    from matplotlib.ticker import FuncFormatter
    colors = sns.color_palette("colorblind", max(len(hs), 1))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), layout="constrained")
    ax.set_label(PANEL)
    upper = _EDGES[1:]  # a bucket's values are < its upper edge
    for (label, (h, trials)), col in zip(hs.items(), colors):
        tot = trials if metric == "t_migrated" else int(h.sum())
        if tot == 0 or h.sum() == 0:
            ax.plot([], [], color=col, label=f"{label} (no values)")
            continue
        nz = np.nonzero(h)[0]
        lo_b, hi_b = nz[0], nz[-1]
        xs = np.concatenate([[_EDGES[lo_b]], upper[lo_b:hi_b + 1]])
        ys = np.concatenate([[0.0], np.cumsum(h[lo_b:hi_b + 1]) / tot])
        ax.step(np.maximum(xs, 0.5), ys, where="post", color=col, label=str(label))
    ax.set_xscale("log")
    if metric != "attempts":
        from .units import format_ns

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_ns(v)))
    ax.set_xlabel({"t_migrated": "time to migrate", "max_wait": "longest wait of a trial",
                   "attempts": "attempts"}[metric])
    ax.set_ylabel("fraction of all trials" if metric == "t_migrated" else "fraction of trials")
    ax.set_ylim(0, 1.02)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"CDF of {metric}")
    return save(fig, out, dpi)
