"""The analysis commands of the ``mcexplore`` CLI: ``sweep``, ``compare``, ``plot`` and ``report``.

Where it sits: beside mcexplore.cli (which registers ``COMMANDS`` with ``main.add_command``), over
mcexplore.sweep, mcexplore.compare and mcexplore.plots, which each command imports in its body (so
``mcexplore --help`` does not load pandas or matplotlib). The shared options are the decorators of
mcexplore.cli_options. Each command parses options, calls one library function and prints. Input
errors exit with status 2 and say what is valid.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .cli_options import (Number, adaptive_options, backend_option, format_option, json_option, level_option, out_file_option, plot_outcome_option,
                          progress_option, rare_options, results_argument, run_options, scenario_options, trials_option,
                          where_option)
from .cli_options import check_out_path, out_path_callback, rare_settings
from .results import HIST_METRICS, OUTCOMES


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
# importance sampling (run and compare with --rare / --tilt; docs/analysis.md, "Rare events")
# ---------------------------------------------------------------------------------------------

RARE_UNITS = {"estimate": "probability", "lo": "probability", "hi": "probability", "se": "probability",
              "hits": "trials", "ess": "trials", "n": "trials", "mean_weight": "1",
              "differences": "probability",
              "tilt_values": "each parameter's own unit: weight 1, mean ns, rate 1/ns"}


def rare_run(sc, settings: dict, *, trials: int, seed: int, backend: str, level: float, progress,
             baseline: str | None = None, labels=None):
    """``mcexplore.rare.estimate`` for the CLI: a TiltError, an unusable backend or a weight that
    overflows float64 becomes a one-line usage error (exit 2). With a progress bar the
    cross-entropy rounds are told on stderr as they finish."""
    from . import rare
    from .engines.base import BackendUnavailable
    from .tilt import TiltError

    log = (lambda line: click.echo(line, err=True)) if progress else None
    try:
        return rare.estimate(sc, labels, trials=trials, seed=seed, outcome=settings["outcome"],
                             tilt=settings["tilt"], backend=backend, level=level,
                             pilot_trials=settings["pilot_trials"], rounds=settings["rounds"],
                             baseline=baseline, log=log, progress=progress)
    except (TiltError, BackendUnavailable) as e:
        _fail(str(e))
    except OverflowError as e:
        _fail(f"importance sampling: {e}: the tilt is too strong for float64 weights (tilt less, or let "
              "--rare choose it)")


def rare_json(r, sc, settings: dict) -> dict:
    """The JSON of an importance-sampling run: ``RareResult.to_dict()`` with ``meta`` (version,
    scenario, config hash, seed, backend, level, trials, method, the search's settings, the budget),
    ``tilt_values`` (path -> value in the parameter's own unit), ``tilt_args`` (the same as
    PATH=VALUE strings: pass each back as --tilt to rerun in the same world without the search)
    and ``units``; non-finite numbers are null."""
    from . import __version__
    from .rare import json_safe

    d = r.to_dict()
    d["meta"] = {"version": __version__, "scenario": sc.name, "config_hash": sc.config_hash(),
                 "seed": r.seed, "backend": r.backend, "level": r.level, "trials": r.trials,
                 "method": "importance-sampling", "rare": settings["outcome"],
                 "pilot_trials": settings["pilot_trials"] if settings["outcome"] else None,
                 "ce_rounds": settings["rounds"] if settings["outcome"] else None,
                 "tilt_given": list(settings["tilt"]),
                 "max_attempts": sc.budget.max_attempts, "timeout_ns": sc.budget.timeout}
    d["tilt_values"] = dict(r.tilt)
    d["tilt_args"] = tilt_args(sc, r.tilt)
    d["units"] = dict(RARE_UNITS)
    return json_safe(d)


def tilt_args(sc, values: dict) -> list[str]:
    """A tilt ``{path: value}`` (each in its parameter's own unit) as the exact ``PATH=VALUE``
    strings --tilt reads back: weights as numbers, means in ns, rates per ns."""
    from .tilt import tiltable

    kinds = {p.path: p.kind for p in tiltable(sc)}
    unit = {"weight": "", "mean": "ns", "rate": "/ns"}
    return [f"{path}={float(v)!r}{unit[kinds.get(path, 'weight')]}" for path, v in values.items()]


def rare_echo(d: dict, fmt: str, outcomes=None) -> None:
    """Print an importance-sampling result: text (``table`` and ``text`` alike: it is fixed-width,
    80 columns) or Markdown."""
    from .textfmt import rare_markdown, rare_text

    if fmt == "markdown":
        click.echo(rare_markdown(d, outcomes))
    else:
        click.echo(rare_text(d, outcomes))
        click.echo(f"\nbackend: {d['backend']}")


# ---------------------------------------------------------------------------------------------
# sweep
# ---------------------------------------------------------------------------------------------

@click.command("sweep", epilog="""\b
Examples:
  mcexplore sweep configs/sweep-thread-2018.toml --out runs/thread
  mcexplore sweep configs/sweep-timing-window.toml --out runs/window --backend numpy --trials 200 --csv
  mcexplore sweep sweep-thread-2018 --out runs/thread --cluster local:2 --trials 100
  mcexplore sweep sweep-thread-2018 --out runs/adaptive --until-upper-bound 0.01 --stop-outcome livelock
  mcexplore sweep sweep-thread-2018 --out runs/big --cluster tcp://10.0.0.1:8786
  mcexplore sweep configs/sweep-timing-window.toml --out runs/rare --rare call_failed --trials 2000 --pilot-trials 500
  mcexplore plot riskmap runs/thread --x mapcount --y access_rate --out risk.png
""")
@click.argument("sweep_file", metavar="SWEEP", type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory: results.parquet (or .csv), dataset/ (by strategy), "
                   "timings.csv, and cells/ (one file per finished row).")
@backend_option
@trials_option(default=None, help="Trials per cell x strategy, instead of the sweep file's (a new "
                                  "count is a new cell).")
@click.option("--cluster", default=None, metavar="SPEC",
              help="Run the chunks on Dask: local[:N] (N worker processes), cuda (one worker per GPU) "
                   "or tcp://HOST:PORT (a running scheduler). Default: in this process. See docs/scale.md.")
@click.option("--chunk-s", "chunk_s", type=Number(float, 0.01, 3600), default=None, metavar="S",
              help="With --cluster: aim for tasks of about S seconds each (default 0.5).")
@adaptive_options
@level_option
@click.option("--csv", "as_csv", is_flag=True, help="Write results.csv instead of results.parquet.")
@click.option("--no-resume", "no_resume", is_flag=True,
              help="Recompute every cell even if out/cells/ already holds it.")
@progress_option()
@rare_options
def sweep_cmd(sweep_file, out_dir, backend, trials, cluster, chunk_s, level, as_csv, no_resume, progress,
              rare, tilts, pilot_trials, ce_rounds, **adaptive):
    """Run every cell x strategy of a sweep file and write one tidy table.

    Finished rows are saved one by one under OUT/cells/ (and finished chunks of a row under
    OUT/chunks/), so an interrupted sweep resumes where it stopped: rerun the same command. Each
    cell's seed is a hash of the base seed and the cell's values, so the table does not depend on
    axis order, interruptions, the cluster or the chunk sizes. With an adaptive rule
    (--target-rel-error or --until-upper-bound) each cell runs batches until its own question is
    answered. See docs/analysis.md and docs/scale.md.

    With --rare OUTCOME (or rare = "OUTCOME" in the sweep file, with optional tilt = [...],
    pilot_trials, ce_rounds): importance sampling, every cell running its own cross-entropy search
    (its strategies sharing the tilt) and then --trials trials per strategy; each row has the
    outcome's estimate with its normal interval, hits, ESS, the mean weight, the tilt and any
    warning. In this process only (not with --cluster: a cell's pilot rounds are sequential).
    """
    from .adaptive import rule_from_options
    from .cluster import ClusterError, parse_cluster
    from .engines.base import BackendUnavailable
    from .sweep import SweepError, SweepInterrupted, load_sweep, run_sweep

    try:
        spec = load_sweep(sweep_file)
        parse_cluster(cluster)
    except (SweepError, ClusterError) as e:
        _fail(str(e))
    if click.get_current_context().get_parameter_source("level") == click.core.ParameterSource.DEFAULT:
        level = spec.level  # the sweep file's (0.95 unless it says otherwise)
    try:
        rule = rule_from_options(level=level, **adaptive)
    except ValueError as e:
        _fail(str(e))
    if trials:
        spec.trials = trials
    spec.level = level
    _sweep_rare(spec, rare, tilts, pilot_trials, ce_rounds, cluster, adaptive)
    if chunk_s is not None and cluster is None:
        _fail(f"--chunk-s {chunk_s:g} is not valid without --cluster: in this process a row's trials "
              "run whole (the engine uses every core)")
    check_out_path("--out", out_dir, is_dir=True)
    t = time.perf_counter()
    try:
        df = run_sweep(spec, out_dir, backend=backend, resume=not no_resume, progress=progress,
                       fmt="csv" if as_csv else "parquet", cluster=cluster, chunk_s=chunk_s, rule=rule)
    except (SweepError, BackendUnavailable, ClusterError) as e:
        _fail(str(e))
    except SweepInterrupted as e:
        click.echo(str(e), err=True)
        raise SystemExit(130)
    except OSError as e:  # the folder went away or filled up during the sweep
        _fail(f"--out: {str(out_dir)!r} could not be written ({e.strerror or e}); finished rows are "
              "kept under its cells/ folder where they could be written")
    click.echo(_sweep_report(spec, df, rule, Path(out_dir) / ("results.csv" if as_csv else "results.parquet"),
                             time.perf_counter() - t))


def _sweep_rare(spec, rare, tilts, pilot_trials, ce_rounds, cluster, adaptive) -> None:
    """Apply --rare, --tilt, --pilot-trials, --ce-rounds to the sweep file's settings (the options
    win) and refuse what a rare sweep cannot do (one line each, exit 2)."""
    from .cli_options import ADAPTIVE_FLAGS

    if rare is not None:
        spec.rare = rare
    if tilts:
        spec.tilt = list(tilts)
    if pilot_trials is not None:
        spec.pilot_trials = pilot_trials
    if ce_rounds is not None:
        spec.ce_rounds = ce_rounds
    if spec.rare is None:
        for v, name in ((spec.tilt, "--tilt"), (spec.pilot_trials, "--pilot-trials"), (spec.ce_rounds, "--ce-rounds")):
            if v:
                shown = " ".join(v) if isinstance(v, list) else v
                _fail(f"{name} {shown} is not valid without --rare OUTCOME (or rare = \"OUTCOME\" in the "
                      "sweep file): in a sweep it sets each cell's cross-entropy search")
        return
    if cluster is not None:
        _fail(f"--cluster {cluster} is not valid with --rare: a rare sweep runs in this process only, "
              "because each cell's cross-entropy rounds are sequential (each round's tilt comes from "
              "the previous round's hits) and do not split into chunks")
    given = [flag for k, flag in ADAPTIVE_FLAGS.items() if adaptive.get(k) is not None]
    if given:
        _fail(f"{given[0]} cannot be combined with --rare: importance sampling runs a fixed number of "
              "trials per row (--trials), and its normal interval is not a confidence sequence")


def _sweep_report(spec, df, rule, path, wall) -> str:
    """What the sweep did: rows reused and run (and why rerun), where, how many trials."""
    s = df.attrs.get("sweep", {})
    lines = [f"{spec.n_cells} cells x {df.strategy.nunique()} strategies = {len(df)} rows: "
             f"{s.get('reused', 0)} reused, {s.get('run', 0)} run"
             + (f" ({s['recomputed_older_model']} recomputed: their saved rows came from an older model version)"
                if s.get("recomputed_older_model") else "")]
    if s.get("run") and spec.rare is not None:
        lines.append(f"  ran {s.get('trials_run', 0):,} trials in this process (the cross-entropy pilots "
                     "and the estimates)")
    elif s.get("run"):
        where = "in this process" if s.get("executor") in (None, "in-process") else \
            f"on {s['executor']} ({s['workers']} workers)"
        lines.append(f"  ran {s.get('trials_run', 0):,} trials {where}: {s.get('chunks', 0)} chunks in "
                     f"{s.get('tasks', 0)} tasks" + (f", {s['chunks_resumed']} chunks reused from an "
                                                     "interrupted run" if s.get("chunks_resumed") else ""))
    if s.get("stale_tmp_removed"):
        lines.append(f"  removed {s['stale_tmp_removed']} temporary files left by an earlier interrupted run")
    if rule is not None:
        n = df.trials
        lines.append(f"  adaptive ({rule.outcome}): trials per row min {n.min():,} / median {int(n.median()):,} "
                     f"/ max {n.max():,}, {int(n.sum()):,} in all; stopped by "
                     + ", ".join(f"{k} {v}" for k, v in df.stop_reason.value_counts().items()))
    elif spec.rare is not None:
        rs = spec.rare_settings
        warned = int((df["warning"].astype(str) != "").sum()) if "warning" in df else 0
        lines.append(f"  importance sampling for {rs['rare']}: each cell chose its tilt by cross-entropy "
                     f"(at most {rs['ce_rounds']} rounds of {rs['pilot_trials']} pilot trials per strategy), "
                     f"then {spec.trials} trials per row; {warned} rows with a warning (column warning)")
    else:
        lines.append(f"  {spec.trials} trials each")
    lines.append(f"  in {wall:.1f} s -> {path} (and dataset/ beside it)")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------

@click.command("compare", epilog="""\b
Examples:
  mcexplore compare thread-2018 -s ref -s drop --trials 2000
  mcexplore compare thread-2018 -s ref -s drop -s ptl_pin --set page.mapcount=3 --set page.active=3
  mcexplore compare configs/thread-2018.toml --strategies pte_wait,pte_wait_norecheck --outcome hang --json
  mcexplore compare thread-2018 -s ptl_pin -s drop --set page.mapcount=2 --rare call_failed -n 20000
""")
@scenario_options
@run_options
@backend_option
@level_option
@click.option("--outcome", "outcomes", multiple=True, type=click.Choice(OUTCOMES),
              help="Report only this outcome (repeatable; default: all; with --rare: that outcome).")
@json_option
@format_option
@progress_option()
@rare_options
def compare_cmd(config, overrides, strategies, trials, seed, backend, level, outcomes, as_json, progress, fmt,
                rare, tilts, pilot_trials, ce_rounds):
    """Paired comparison of strategies on common random numbers.

    Give at least two strategies (-s A -s B, or --strategies A,B); each is compared with the
    first. For each outcome: each strategy's probability with its interval, the paired difference
    (B - A) with Newcombe's paired interval, McNemar's exact test on the discordant trials, and
    how many unpaired trials per strategy would give the same precision (the same trials for all:
    common random numbers). See docs/analysis.md.

    With --rare OUTCOME (and/or --tilt PATH=VALUE): every strategy runs in one tilted world
    (the cross-entropy search pools their hits), on the same trials, so the pairing is kept: each
    strategy's importance-sampling estimate and the paired difference (B - A) with a normal
    interval from the per-trial weighted differences. See docs/analysis.md, "Rare events".
    """
    from .compare import compare, format_comparison
    from .engines.base import BackendUnavailable
    from .scenario import ScenarioError, load_scenario

    rs = rare_settings(rare, tilts, pilot_trials, ce_rounds)
    labels = list(dict.fromkeys(strategies))
    if len(labels) < 2:
        _fail("compare needs at least two labels: -s ref -s drop (or --strategies ref,drop)")
    try:
        sc = load_scenario(config, overrides).with_strategies(labels)
    except (ScenarioError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    if rs is not None:
        r = rare_run(sc, rs, trials=trials, seed=seed, backend=backend, level=level, progress=progress,
                     baseline=labels[0], labels=labels)
        d = rare_json(r, sc, rs)
        d["labels"] = labels
        if as_json:
            click.echo(json.dumps(d, indent=2))
        else:
            rare_echo(d, fmt, tuple(outcomes) or None)
        return
    try:
        c = compare(sc, labels, trials=trials, seed=seed, backend=backend, level=level,
                    outcomes=tuple(outcomes) or OUTCOMES, progress=progress)
    except BackendUnavailable as e:
        _fail(str(e))
    if as_json:
        d = c.to_dict()
        d["scenario"] = sc.name
        d["config_hash"] = sc.config_hash()
        click.echo(json.dumps(d, indent=2))
    elif fmt != "table":
        from .textfmt import compare_markdown, compare_text

        d = c.to_dict()
        d["scenario"] = sc.name
        d["config_hash"] = sc.config_hash()
        click.echo(compare_text(d) if fmt == "text" else compare_markdown(d))
    else:
        from .textfmt import LEGEND

        click.echo(f"scenario {sc.name} ({sc.config_hash()})")
        click.echo(LEGEND)
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
    from .tables import load_results

    try:
        return load_results(results)
    except (FileNotFoundError, OSError, ValueError) as e:
        _fail(f"{results}: cannot read results: {e}")


def _rare_outcome(table, outcome: str) -> str:
    """--outcome for a plot: a rare table (importance sampling) holds one outcome's estimates, so
    the default (--outcome not given) becomes that outcome."""
    from .tables import is_rare_table

    src = click.get_current_context().get_parameter_source("outcome")
    if is_rare_table(table) and src == click.core.ParameterSource.DEFAULT and len(table):
        return str(table["rare_outcome"].iloc[0])
    return outcome


def _plot(fn, *args, **kw):
    from .plots import PlotError

    check_out_path("--out", kw["out"])
    try:
        Path(kw["out"]).parent.mkdir(parents=True, exist_ok=True)
        fig = fn(*args, **kw)
    except PlotError as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"--out: {str(kw['out'])!r} could not be written ({e.strerror or e})")
    import matplotlib.pyplot as plt  # after fn: mcexplore.plots chose the backend

    plt.close(fig)
    click.echo(f"wrote {kw['out']}")


@plot.command("riskmap", epilog="""\b
Example:
  mcexplore plot riskmap runs/thread --x mapcount --y access_rate --outcome livelock --out risk.png
""")
@results_argument
@click.option("--x", "x", required=True, help="Axis column for the horizontal axis.")
@click.option("--y", "y", required=True, help="Axis column for the vertical axis.")
@click.option("--facet", default="strategy", show_default=True, help="One panel per value of this column.")
@plot_outcome_option
@where_option
@level_option
@click.option("--out", "-o", type=click.Path(dir_okay=False), callback=out_path_callback,
              help="Output file; .png or .svg (needed for the image, not for --format text/markdown).")
@format_option(table="the image written to --out")
def riskmap_cmd(results, x, y, facet, outcome, where, level, out, fmt):
    """Heatmaps of log10 P(outcome), one panel per strategy, one colour scale; zero-count cells
    are hatched and drawn at their one-sided upper bound. With --format text or markdown: the
    grid of probabilities with their bounds, printed (for mailing lists, GitHub, docs).

    On a rare sweep's table (sweep --rare) each cell is its importance-sampling estimate with its
    normal interval (recomputed at --level from the row's exact sums; --outcome defaults to the
    table's rare outcome); a cell without a hit is hatched, one with a warning starred."""
    from .plots import riskmap

    if fmt != "table":
        from .plots import PlotError
        from .textfmt import riskmap_grid, riskmap_markdown, riskmap_text

        table = _table(results)
        try:
            grid = riskmap_grid(table, x, y, facet=facet, outcome=_rare_outcome(table, outcome), where=_kv(where),
                                level=level)
        except PlotError as e:
            _fail(str(e))
        click.echo(riskmap_text(grid) if fmt == "text" else riskmap_markdown(grid))
        return
    if not out:
        _fail("--out is required to write the image (or give --format text or --format markdown)")

    table = _table(results)
    _plot(riskmap, table, x, y, facet=facet, outcome=_rare_outcome(table, outcome), where=_kv(where), level=level,
          out=out)


@plot.command("curve", epilog="""\b
Example:
  mcexplore plot curve runs/thread --x mapcount --where access_rate=1/us --out curve.png
""")
@results_argument
@click.option("--x", "x", required=True, help="Axis column for the horizontal axis.")
@plot_outcome_option
@where_option
@level_option
@out_file_option
def curve_cmd(results, x, outcome, where, level, out):
    """P(outcome) against one axis with interval bands, one line per strategy."""
    from .plots import curve

    table = _table(results)
    _plot(curve, table, x, outcome=_rare_outcome(table, outcome), where=_kv(where), level=level, out=out)


@plot.command("cdf", epilog="""\b
Example:
  mcexplore plot cdf runs/thread --metric max_wait --where mapcount=16 --where access_rate=1/us --out wait.png
""")
@results_argument
@click.option("--metric", default="t_migrated", show_default=True, type=click.Choice(HIST_METRICS),
              help="The metric whose histograms give the CDF.")
@where_option
@out_file_option
def cdf_cmd(results, metric, where, out):
    """CDFs of a metric per strategy from the stored histograms (rows matching --where pooled)."""
    from .plots import cdf

    _plot(cdf, _table(results), metric=metric, where=_kv(where), out=out)


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------

@click.command("report", epilog="""\b
Examples:
  mcexplore report out/sweep --out report.html
  mcexplore report out/sweep --sweep configs/sweep-thread-2018.toml --level 0.99 --out report.html
""")
@results_argument
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Output file: one self-contained HTML page (inline SVG figures, no network needed).")
@click.option("--sweep", "sweep_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="The sweep file that made the results: the page then says which of the scenario's "
                   "estimates the sweep sets.")
@level_option
def report_cmd(results, out, sweep_file, level):
    """One HTML page from a sweep's results: provenance, the risk maps (one per outcome, one panel
    per strategy), the comparison tables (counts, estimates and intervals per cell and strategy)
    and the scenario's estimates, marked as estimates."""
    from .report import ReportError, build_report
    from .sweep import SweepError

    try:
        build_report(results, out=out, level=level, sweep_file=sweep_file)
    except (ReportError, SweepError) as e:
        _fail(str(e))
    click.echo(f"wrote {out}")


COMMANDS = [sweep_cmd, compare_cmd, plot, report_cmd]
