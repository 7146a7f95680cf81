"""The analysis commands of the ``mcexplore`` CLI: ``sweep``, ``compare`` and ``plot``.

Where it sits: beside mcexplore.cli (which registers ``COMMANDS`` with ``main.add_command``), over
mcexplore.sweep, mcexplore.compare and mcexplore.plots. Each command parses options, calls one
library function and prints. Input errors exit with status 2 and say what is valid.
``adaptive_options`` (re-exported from mcexplore.adaptive) is the decorator ``run`` uses for
adaptive runs; ``run_adaptive`` is the library function behind it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .adaptive import adaptive_options, rule_from_options, run_adaptive  # noqa: F401  (re-exported)
from .results import HIST_METRICS, OUTCOMES

BACKENDS = ["auto", "numpy", "native", "cupy"]


def _fail(msg: str):
    raise click.UsageError(msg)


def _kv(items, what="--where") -> dict:
    out = {}
    for it in items:
        if "=" not in it:
            _fail(f"{what} {it!r} is not valid: write NAME=VALUE")
        k, _, v = it.partition("=")
        out[k.strip()] = v.strip()
    return out


# ---------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------

@click.command("sweep", epilog="""\b
Examples:
  mcexplore sweep configs/sweep-thread-2018.toml --out runs/thread
  mcexplore sweep configs/sweep-timing-window.toml --out runs/window --backend numpy --trials 200 --csv
  mcexplore plot riskmap runs/thread --x mapcount --y access_rate --out risk.png
""")
@click.argument("sweep_file", metavar="SWEEP", type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory: results.parquet (or .csv) and cells/ (one file per finished row).")
@click.option("--backend", "-b", default="auto", show_default=True, type=click.Choice(BACKENDS),
              help="Engine for every cell.")
@click.option("--trials", "-n", type=click.IntRange(min=1), default=None,
              help="Trials per cell x strategy, instead of the sweep file's (a new count is a new cell).")
@click.option("--csv", "as_csv", is_flag=True, help="Write results.csv instead of results.parquet.")
@click.option("--no-resume", "no_resume", is_flag=True,
              help="Recompute every cell even if out/cells/ already holds it.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar with ETA.")
def sweep_cmd(sweep_file, out_dir, backend, trials, as_csv, no_resume, progress):
    """Run every cell x strategy of a sweep file and write one tidy table.

    Finished rows are saved one by one under OUT/cells/, so an interrupted sweep resumes where it
    stopped (rerun the same command). Each cell's seed is a hash of the base seed and the cell's
    values, so the table does not depend on axis order or interruptions. See docs/analysis.md.
    """
    from .engines.base import BackendUnavailable
    from .sweep import SweepError, load_sweep, run_sweep

    try:
        spec = load_sweep(sweep_file)
    except SweepError as e:
        _fail(str(e))
    if trials:
        spec.trials = trials
    t = time.perf_counter()
    try:
        df = run_sweep(spec, out_dir, backend=backend, resume=not no_resume, progress=progress,
                       fmt="csv" if as_csv else "parquet")
    except (SweepError, BackendUnavailable) as e:
        _fail(str(e))
    n_rows = len(df)
    path = Path(out_dir) / ("results.csv" if as_csv else "results.parquet")
    click.echo(f"{spec.n_cells} cells x {df.strategy.nunique()} strategies = {n_rows} rows, "
               f"{spec.trials} trials each, in {time.perf_counter() - t:.1f} s -> {path}")


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------

@click.command("compare", epilog="""\b
Examples:
  mcexplore compare thread-2018 --strategies ref,drop --trials 2000
  mcexplore compare thread-2018 --strategies ref,drop,ptl_pin --set page.mapcount=3 --set page.active=3
  mcexplore compare configs/thread-2018.toml --strategies pte_wait,pte_wait_norecheck --outcome hang --json
""")
@click.argument("config", default="thread-2018")
@click.option("--strategies", "-s", "strategies", required=True, metavar="A,B[,C...]",
              help="Strategy labels, comma-separated; each is compared with the first.")
@click.option("--trials", "-n", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Trials per strategy (the same trials for all: common random numbers).")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config field by its dotted path (repeatable).")
@click.option("--backend", "-b", default="auto", show_default=True, type=click.Choice(BACKENDS))
@click.option("--level", default=0.95, show_default=True, type=click.FloatRange(0.5, 0.9999),
              help="Confidence level of every interval.")
@click.option("--outcome", "outcomes", multiple=True, type=click.Choice(OUTCOMES),
              help="Report only this outcome (repeatable; default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare_cmd(config, strategies, trials, seed, overrides, backend, level, outcomes, as_json):
    """Paired comparison of strategies on common random numbers.

    For each outcome: each strategy's probability with its interval, the paired difference
    (B - A) with Newcombe's paired interval, McNemar's exact test on the discordant trials, and
    how many unpaired trials per strategy would give the same precision. See docs/analysis.md.
    """
    from .compare import compare, format_comparison
    from .engines.base import BackendUnavailable
    from .scenario import ScenarioError, load_scenario

    labels = [s.strip() for s in strategies.split(",") if s.strip()]
    if len(labels) < 2:
        _fail("--strategies needs at least two labels, e.g. --strategies ref,drop")
    try:
        sc = load_scenario(config, overrides).with_strategies(labels)
    except (ScenarioError, FileNotFoundError) as e:
        _fail(str(e))
    try:
        c = compare(sc, labels, trials=trials, seed=seed, backend=backend, level=level,
                    outcomes=tuple(outcomes) or OUTCOMES, progress=None if not as_json else False)
    except BackendUnavailable as e:
        _fail(str(e))
    if as_json:
        d = c.to_dict()
        d["scenario"] = sc.name
        d["config_hash"] = sc.config_hash()
        click.echo(json.dumps(d, indent=2))
    else:
        click.echo(f"scenario {sc.name} ({sc.config_hash()})")
        click.echo(format_comparison(c))


# ---------------------------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------------------------

@click.group("plot", epilog="""\b
Examples:
  mcexplore plot riskmap runs/thread --x mapcount --y access_rate --out risk.png
  mcexplore plot curve runs/thread --x mapcount --where access_rate=1/us --out curve.svg
  mcexplore plot cdf runs/thread --metric t_migrated --where mapcount=16 --where access_rate=1/us --out cdf.png
""")
def plot():
    """Figures from a sweep's results (a results.parquet/.csv file or its directory)."""


def _table(results):
    from .sweep import load_results

    try:
        return load_results(results)
    except (FileNotFoundError, OSError, ValueError) as e:
        _fail(f"{results}: cannot read results: {e}")


def _plot(fn, *args, **kw):
    import matplotlib.pyplot as plt

    from .plots import PlotError

    try:
        fig = fn(*args, **kw)
    except PlotError as e:
        _fail(str(e))
    plt.close(fig)
    click.echo(f"wrote {kw['out']}")


_out = click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
                    help="Output file; .png or .svg.")
_where = click.option("--where", "where", multiple=True, metavar="NAME=VALUE",
                      help="Keep rows where an axis has this value (as a number or as written "
                           "in the sweep file, e.g. access_rate=1/us); repeatable.")
_outcome = click.option("--outcome", default="livelock", show_default=True,
                        type=click.Choice(OUTCOMES + ("not_migrated",)))
_level = click.option("--level", default=0.95, show_default=True, type=click.FloatRange(0.5, 0.9999))


@plot.command("riskmap", epilog="""\b
Example:
  mcexplore plot riskmap runs/thread --x mapcount --y access_rate --outcome livelock --out risk.png
""")
@click.argument("results", type=click.Path(exists=True))
@click.option("--x", "x", required=True, help="Axis column for the horizontal axis.")
@click.option("--y", "y", required=True, help="Axis column for the vertical axis.")
@click.option("--facet", default="strategy", show_default=True, help="One panel per value of this column.")
@_outcome
@_where
@_level
@_out
def riskmap_cmd(results, x, y, facet, outcome, where, level, out):
    """Heatmaps of log10 P(outcome), one panel per strategy, one colour scale; zero-count cells
    are hatched and drawn at their one-sided upper bound."""
    from .plots import riskmap

    _plot(riskmap, _table(results), x, y, facet=facet, outcome=outcome, where=_kv(where), level=level, out=out)


@plot.command("curve", epilog="""\b
Example:
  mcexplore plot curve runs/thread --x mapcount --where access_rate=1/us --out curve.png
""")
@click.argument("results", type=click.Path(exists=True))
@click.option("--x", "x", required=True, help="Axis column for the horizontal axis.")
@_outcome
@_where
@_level
@_out
def curve_cmd(results, x, outcome, where, level, out):
    """P(outcome) against one axis with interval bands, one line per strategy."""
    from .plots import curve

    _plot(curve, _table(results), x, outcome=outcome, where=_kv(where), level=level, out=out)


@plot.command("cdf", epilog="""\b
Example:
  mcexplore plot cdf runs/thread --metric max_wait --where mapcount=16 --where access_rate=1/us --out wait.png
""")
@click.argument("results", type=click.Path(exists=True))
@click.option("--metric", default="t_migrated", show_default=True, type=click.Choice(HIST_METRICS))
@_where
@_out
def cdf_cmd(results, metric, where, out):
    """CDFs of a metric per strategy from the stored histograms (rows matching --where pooled)."""
    from .plots import cdf

    _plot(cdf, _table(results), metric=metric, where=_kv(where), out=out)


COMMANDS = [sweep_cmd, compare_cmd, plot]
