"""The ``mcexplore`` command line: a thin shell over the library API.

Where it sits: on top of everything. Each command parses options, calls one library function
(mcexplore.api, replay, exact, stats, bench, sweep, compare, plots) and prints. Shared options are
the decorators of mcexplore.cli_options, so every command spells them the same way. Errors in the
input exit with status 2 and a message naming the field, the value and what is valid.

Start-up: importing this module loads click, numpy and the registries only; each command imports
what it runs in its body (pandas, scipy, matplotlib only where a command needs them), so
``mcexplore --help`` stays fast. A module that fails to import fails loudly: no command is hidden.
"""

from __future__ import annotations

import json
import logging
import math
import sys

import click

from . import __version__
from .cli_analysis import COMMANDS as ANALYSIS_COMMANDS
from .cli_calibrate import COMMANDS as CALIBRATE_COMMANDS
from .cli_options import (adaptive_options, backend_option, backends_option, format_option, json_option,
                          level_option, progress_option, rare_options, run_options, scenario_options, seed_option,
                          tilt_option, trials_option)
from .cli_options import TRIAL_MAX, Number, check_out_path, rare_settings, write_out

EPILOG_RUN = """\b
Examples:
  mcexplore run thread-2018 --trials 2000
  mcexplore run configs/thread-2018.toml -s ref -s drop --set page.mapcount=3 --json
  mcexplore run thread-2018 -s ptl_pin --until-upper-bound 1e-3 --stop-outcome livelock
  mcexplore run thread-2018 -s drop --set page.mapcount=2 --rare call_failed -n 20000
  mcexplore run thread-2018 -s drop --tilt timing.drop_hold.components.1.weight=0.05 --json
"""


def _fail(msg: str):
    raise click.UsageError(msg)


def _load(config, overrides, strategies=()):
    from .scenario import ScenarioError, load_scenario

    try:
        sc = load_scenario(config, overrides)
        if strategies:
            sc = sc.with_strategies(list(strategies))
    except (ScenarioError, FileNotFoundError, ValueError) as e:
        _fail(str(e))
    return sc


def _engine_error(e):
    from .engines.base import BackendUnavailable

    if isinstance(e, BackendUnavailable):
        _fail(str(e))
    raise e


class _NoticeHandler(logging.Handler):
    """Prints the library's notices (the native engine's first compile) on stderr."""

    def emit(self, record):
        event = getattr(record, "mcx_compile", None)
        if event == "start":
            click.echo(f"{record.getMessage()}...", err=True)
        elif event == "done":
            click.echo(record.getMessage(), err=True)


def _install_notices():
    logger = logging.getLogger("mcexplore")
    if not any(isinstance(h, _NoticeHandler) for h in logger.handlers):
        logger.addHandler(_NoticeHandler())
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mcexplore")
def main():
    """mcexplore: Monte Carlo stress explorer for the page-migration vs fault-waiter race.

    \b
    Quick start:
      mcexplore run thread-2018 --trials 1000     # the default scenario, every strategy
      mcexplore replay thread-2018 --trial 3 -s ref
      mcexplore info
    """
    _install_notices()


def _fmt_p(pr) -> str:
    from .textfmt import fmt_interval

    return fmt_interval(pr, sig=4)


def _summary_json(result, level, scenario=None):
    """The run's JSON: ``meta`` (version, scenario, config hash, seed, backend, level, trials,
    the budget), ``units`` (what each number is in; docs/analysis.md, "Output formats") and
    ``results`` (label -> outcomes, quantiles, means, examples; the keys of before ``meta``)."""
    from .stats import summarize
    from .textfmt import RUN_UNITS

    meta = {"version": __version__, "scenario": result.scenario_name,
            "config_hash": scenario.config_hash() if scenario is not None else None,
            "seed": result.seed, "backend": result.backend, "level": level, "trials": result.trials,
            "method": "wilson"}
    if scenario is not None:
        meta["max_attempts"] = scenario.budget.max_attempts
        meta["timeout_ns"] = scenario.budget.timeout
    out = {"backend": result.backend, "scenario": result.scenario_name, "seed": result.seed,
           "level": level, "meta": meta, "units": dict(RUN_UNITS), "results": {}}
    for label, sr in result.runs.items():
        s = summarize(sr.aggregate, level)
        entry = {"trials": sr.aggregate.trials, "wall_s": sr.wall_s}
        for row in s.outcome_records():
            entry[row["outcome"]] = {"count": int(row["count"]), "p": row["p"], "lo": row["lo"],
                                     "hi": row["hi"], "one_sided": bool(row["one_sided"])}
        q = {}
        for row in s.quantile_records():
            val = {k: (None if (isinstance(v, float) and not math.isfinite(v)) else v)
                   for k, v in row.items() if k in ("value", "lo", "hi")}
            q.setdefault(row["metric"], {})[f"q{row['q']:g}"] = val
        entry["quantiles"] = q
        entry["means"] = {k: v for k, v in s.means.items()}
        entry["examples"] = sr.aggregate.examples
        out["results"][label] = entry
    return out


def _print_summary(result, level, echo=click.echo, js=None):
    from .results import OUTCOMES
    from .textfmt import LEGEND, censored_note
    from .units import format_ns

    js = js or _summary_json(result, level)
    echo(f"scenario {js['scenario']}, backend {js['backend']}, seed {js['seed']}, "
         f"{level * 100:g}% intervals (one-sided upper bound when the count is 0); quantiles "
         f"come from histograms with 8 buckets per power of two, their intervals from bucket edges")
    echo(LEGEND)
    for label, e in js["results"].items():
        echo("")
        echo(f"== {label}: {e['trials']} trials in {e['wall_s']:.2f}s")
        for o in OUTCOMES:
            echo(f"  {o:<12} {e[o]['count']:>9}  {_fmt_p(e[o])}")
        note = censored_note(e, js.get("meta"))
        if note:
            echo("  " + note)
        for m, qs in e["quantiles"].items():
            parts = []
            for qn, v in qs.items():
                if v["value"] is None:
                    continue
                f = (lambda x: f"{x:.0f}") if m == "attempts" else format_ns
                ci = ""
                if v["lo"] is not None and v["hi"] is not None:
                    ci = f" [{f(v['lo'])}, {f(v['hi'])}]"
                parts.append(f"{qn}={f(v['value'])}{ci}")
            if parts:
                echo(f"  {m:<12} " + "  ".join(parts))
        ex = {k: v[:3] for k, v in e["examples"].items() if v}
        if ex:
            echo("  replay e.g.: " + "; ".join(f"{k}: trial {v[0]}" for k, v in ex.items()))


@main.command(epilog=EPILOG_RUN)
@scenario_options
@run_options
@backend_option
@level_option
@json_option
@format_option
@click.option("--out", type=click.Path(dir_okay=False), help="Also write the JSON result to FILE.")
@progress_option()
@adaptive_options
@rare_options
def run(config, overrides, strategies, trials, seed, backend, level, as_json, fmt, out, progress,
        rare, tilts, pilot_trials, ce_rounds, **adaptive):
    """Run CONFIG (a file or a shipped scenario name) and report every outcome with intervals.

    With --rare OUTCOME (and/or --tilt PATH=VALUE): importance sampling for rare events. The trials
    run in a tilted world (chosen by the cross-entropy method for OUTCOME, from --pilot-trials per
    round, at most --ce-rounds rounds) and are reweighted to estimate the probabilities of the
    untilted one, far below 1/trials; the output gives the tilt, the search's rounds and per strategy
    the estimate with its normal interval, the hits, the effective sample size, the mean-weight
    check and every warning. Fixed trials only (no adaptive rule), page level only.
    See docs/analysis.md, "Rare events".
    """
    from . import api
    from .adaptive import rule_from_options, run_adaptive

    rs = rare_settings(rare, tilts, pilot_trials, ce_rounds, adaptive)
    sc = _load(config, overrides, strategies)
    if rs is not None:
        _run_rare(sc, rs, trials=trials, seed=seed, backend=backend, level=level, as_json=as_json,
                  fmt=fmt, out=out, progress=progress)
        return
    try:
        rule = rule_from_options(level=level, **adaptive)
    except ValueError as e:
        _fail(str(e))
    if out:
        check_out_path("--out", out)  # before the run: a bad path must not cost the result
    prog = progress  # progress_option: True on a terminal unless --no-progress
    try:
        if rule is not None:
            ar = run_adaptive(sc, rule, seed=seed, backend=backend, progress=prog)
            result = ar.run
        else:
            result = api.run(sc, trials=trials, seed=seed, backend=backend, progress=prog)
    except Exception as e:  # noqa: BLE001
        _engine_error(e)
    js = _summary_json(result, level, sc)
    if rule is not None:
        js["adaptive"] = ar.to_dict()
    write_error = write_out("--out", out, json.dumps(js, indent=2)) if out else None
    if as_json:
        click.echo(json.dumps(js, indent=2))
    elif fmt != "table":
        from .textfmt import run_markdown, run_text

        thr = rule.until_upper_bound if rule is not None else None
        click.echo(run_text(js, thr) if fmt == "text" else run_markdown(js, thr))
    else:
        _print_summary(result, level, js=js)
        if rule is not None:
            from .textfmt import adaptive_lines

            click.echo("\nadaptive stopping (anytime-valid confidence sequences):")
            for line in adaptive_lines(js["adaptive"], rule.until_upper_bound):
                click.echo("  " + line)
        click.echo(f"\nbackend: {result.backend}")
    if write_error:
        _fail(write_error)  # after printing: the computed result is never lost


def _run_rare(sc, rs, *, trials, seed, backend, level, as_json, fmt, out, progress):
    """``run`` with --rare/--tilt: importance sampling (mcexplore.rare), printed or as JSON."""
    from .cli_analysis import rare_echo, rare_json, rare_run

    if out:
        check_out_path("--out", out)
    r = rare_run(sc, rs, trials=trials, seed=seed, backend=backend, level=level, progress=progress)
    js = rare_json(r, sc, rs)
    write_error = write_out("--out", out, json.dumps(js, indent=2)) if out else None
    if as_json:
        click.echo(json.dumps(js, indent=2))
    else:
        rare_echo(js, fmt)
    if write_error:
        _fail(write_error)


@main.command(epilog="""\b
Examples:
  mcexplore replay thread-2018 --trial 12 -s ref --set page.mapcount=3 --set page.active=2
  mcexplore replay configs/thread-2018.toml --trial 0 -s pte_wait_norecheck --limit 200
  mcexplore replay thread-2018 --trial 3 -s drop --tilt timing.drop_hold.components.1.weight=0.2
""")
@scenario_options
@click.option("--trial", "-t", required=True, help="Trial index, in [0, 2**63 - 2].",
              type=Number(int, 0, TRIAL_MAX, valid="an integer in [0, 2**63 - 2]"))
@seed_option
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Print at most N events.")
@tilt_option("Replay the trial of that tilted world (as run --tilt, or the tilt_args of a --rare "
             "run's JSON): the timeline, its statistics and its weight.")
def replay(config, overrides, strategies, trial, seed, limit, tilts):
    """Print one trial's timeline, event by event, in simulated time.

    It runs the numpy engine's own code path on that one trial, so a trial found by any backend
    (same config, seed and trial index) is replayed exactly. In a tilted world (--tilt) it also
    prints the trial's importance-sampling statistics and its likelihood ratio, the same float64
    the estimate gave it.
    """
    from .replay import replay as do_replay
    from .replay import replay_compiled

    sc = _load(config, overrides)
    labels = list(strategies) or sc.labels()[:1]
    for label in labels:
        if label not in sc.labels():
            _fail(f"--strategy: {label!r} is not valid: choose one of {', '.join(sc.labels())}")
        try:
            if tilts:
                from .tilt import tilted_compiled

                r = replay_compiled(tilted_compiled(sc, label, list(tilts)), trial, seed, label)
            else:
                r = do_replay(sc, label, trial, seed)
        except ValueError as e:
            _fail(str(e))
        click.echo(r.format(limit=limit))


@main.command(epilog="""\b
Examples:
  mcexplore exact thread-2018 --set page.mapcount=3 --set page.active=2 \\
      --set timing.wake_latency='{dist="exp", mean="30us"}' --set timing.fault_entry=1us
""")
@scenario_options
@json_option
def exact(config, overrides, strategies, as_json):
    """Exact solutions (closed forms, small Markov chains) where the model has them.

    Every number is labelled: exact (for the model as specified), approximate (the assumption
    named, with rigorous bounds where known) or refused (the reason given). See docs/exact.md.
    """
    from .exact import NotExact, exact_for, format_exact

    sc = _load(config, overrides, strategies)
    out = {}
    for label in sc.labels():
        try:
            out[label] = exact_for(sc.compile(label))
        except NotExact as e:
            out[label] = {"not_exact": str(e)}
    if as_json:
        click.echo(json.dumps(out, indent=2, default=float))
        return
    for label, d in out.items():
        click.echo(format_exact(d, label))


@main.command(epilog="\b\nExample:\n  mcexplore info")
def info():
    """Version, the backends available here and why the others are not, and the native engine's
    settings: threads ($MCEXPLORE_THREADS), SIMD level ($MCEXPLORE_SIMD), cache folder
    ($MCEXPLORE_CACHE) and compiler ($CXX). A bad $MCEXPLORE_SIMD or $MCEXPLORE_THREADS is reported
    with the reason, and the command exits with status 2."""
    import os

    from .engines.base import BACKENDS, availability

    click.echo(f"mcexplore {__version__} (Python {sys.version.split()[0]})")
    chosen = None
    for name in BACKENDS:
        ok, why = availability(name)
        if ok and chosen is None:
            chosen = name
        click.echo(f"  {name:<7} {'available' if ok else 'unavailable'}: {why}")
    click.echo(f"auto picks: {chosen}")
    from .engines import native

    problems = []
    env_threads = os.environ.get("MCEXPLORE_THREADS")
    threads = None
    if env_threads:
        try:
            threads = int(env_threads)
            if threads < 1:
                raise ValueError
        except ValueError:
            problems.append(f"MCEXPLORE_THREADS={env_threads!r} is not valid: give a whole number >= 1")
            threads = None
    cores = native._cpu_count()
    where = f"from $MCEXPLORE_THREADS; {cores} cores" if threads else "every core; $MCEXPLORE_THREADS to choose"
    click.echo(f"threads: {threads or cores} ({where})")
    simd = os.environ.get("MCEXPLORE_SIMD", "auto")
    valid = ("auto",) + tuple(native.SIMD)
    if simd not in valid:
        problems.append(f"MCEXPLORE_SIMD={simd!r} is not valid: choose one of {', '.join(valid)}")
        click.echo(f"SIMD level: invalid $MCEXPLORE_SIMD {simd!r} (choose one of {', '.join(valid)})")
    else:
        resolved, why = None, ""
        if availability("native")[0]:
            try:
                resolved = native.build().simd_resolve(simd)
                why = "not supported by this CPU" if resolved is None else ""
            except Exception as e:  # noqa: BLE001 (a build failure is a reason, not a crash)
                why = f"native library not built: {e}"
        else:
            why = "no native engine here"
        click.echo(f"SIMD level: {resolved or '-'} (requested {simd}" + (f"; {why}" if why else "")
                   + "; $MCEXPLORE_SIMD to choose)")
    click.echo(f"cache folder: {native.cache_dir()} ($MCEXPLORE_CACHE to choose)")
    cxx = native.find_compiler()
    if cxx:
        ident = native.compiler_id(cxx).split("|", 1)[-1]
        click.echo(f"compiler: {cxx} ({ident})")
    else:
        click.echo("compiler: none found (install g++ or set $CXX)")
    if problems:
        _fail("; ".join(problems))


@main.command(epilog="""\b
Examples:
  mcexplore bench                     # numpy and native, the thread-2018 scenario
  mcexplore bench --backend cupy --trials 1000000
  mcexplore bench -b native --lanes   # with the lane utilisation of each strategy
""")
@scenario_options
@backends_option
@trials_option(default=None, help="Trials of every run (default: numpy up to 1000 within about 10 s, "
                                  "the same for native on one thread; more for the all-core and GPU runs).")
@seed_option
@click.option("--lanes", "lanes", is_flag=True,
              help="Also count lane utilisation on native/1's trials: how full the lane scheduler's "
                   "steps and the device tile's schedule keep 32 lanes (docs/kernels.md, "
                   "\"Schedulers\"; the tile's code runs on the host, lane by lane: slow for ref).")
@json_option
def bench(config, overrides, strategies, backends, trials, seed, lanes, as_json):
    """Measure throughput: trials/s, attempts/s and faults/s per backend and strategy.

    numpy and the native engine on one thread run the same trials, so their ratio is the native
    engine's per-core speed-up; native then runs on every core and cupy on the GPU.
    """
    from .bench import run_bench

    sc = _load(config, overrides, strategies)
    try:
        rows = run_bench(sc, backends=list(backends) or None, trials=trials, seed=seed, lanes=lanes,
                         echo=None if as_json else click.echo)  # prints a header and a legend of its columns
    except Exception as e:  # noqa: BLE001 (a bad engine setting: one line, exit 2; others re-raised)
        _engine_error(e)
    if as_json:
        click.echo(json.dumps(rows, indent=2))


for _cmd in ANALYSIS_COMMANDS + CALIBRATE_COMMANDS:
    main.add_command(_cmd)

if __name__ == "__main__":  # pragma: no cover
    main()
