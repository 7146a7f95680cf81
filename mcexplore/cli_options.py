"""The options shared by the ``mcexplore`` commands, defined once (sqlite-utils style).

Where it sits: under mcexplore.cli and mcexplore.cli_analysis, which apply these decorators to
their commands, so that every command spells an option the same way (``-s/--strategy``,
``--set``, ``-b/--backend``, ``--level``, ...) with the same help. The choices come from the
registries, not from lists written here: backends from ``mcexplore.engines.base.BACKEND_CHOICES``
(the engine registry), strategies from ``mcexplore.strategies``, outcomes from
``mcexplore.results`` (through ``mcexplore.adaptive.STOP_OUTCOMES``: every outcome and
``not_migrated``).

Importing this module is cheap (click, numpy, the registries and mcexplore.adaptive's
constants; no pandas, scipy or matplotlib), so ``mcexplore --help`` stays fast.

Decorators:

- ``scenario_options``: the CONFIG argument, ``--set KEY=VALUE`` overrides and
  ``-s/--strategy`` (repeatable; comma lists and the ``--strategies A,B`` spelling accepted);
- ``run_options``: ``-n/--trials`` and ``--seed``; ``trials_option``, ``seed_option`` alone;
- ``backend_option`` (one engine, ``auto`` by default) and ``backends_option`` (several, for
  ``bench``);
- ``level_option``: ``--level``, the confidence level of every interval;
- ``adaptive_options``: the stopping rule of an adaptive run (``mcexplore.adaptive.StopRule``;
  pass the collected keyword arguments to ``mcexplore.adaptive.rule_from_options``);
- ``json_option``, ``progress_option``;
- for the plots: ``results_argument``, ``out_file_option``, ``where_option``,
  ``plot_outcome_option``.
"""

from __future__ import annotations

import click

from . import strategies as _strategies
from .adaptive import DEFAULT_MAX_TRIALS, STOP_OUTCOMES
from .engines.base import BACKEND_CHOICES, BACKENDS

DEFAULT_CONFIG = "thread-2018"
DEFAULT_TRIALS = 1000
LEVEL_RANGE = click.FloatRange(0.5, 0.9999)


def _apply(f, opts):
    for o in reversed(opts):
        f = o(f)
    return f


def _split_labels(ctx, param, value):
    """-s a -s b, -s a,b and --strategies a,b all give ("a", "b")."""
    out = []
    for v in value or ():
        out += [s.strip() for s in str(v).split(",") if s.strip()]
    return tuple(out)


def strategy_option(f):
    """``-s/--strategy LABEL``, repeatable; ``--strategies A,B`` is the same option."""
    return click.option(
        "--strategy", "-s", "--strategies", "strategies", multiple=True, metavar="LABEL",
        callback=_split_labels,
        help="A strategy label of the config (repeatable, or comma-separated: -s ref -s drop, "
             "--strategies ref,drop; default: every strategy in the config). The strategies: "
             f"{', '.join(_strategies.names())}; a config's [[strategies]] may add labelled "
             "variants (thread-2018 has pte_wait_norecheck).")(f)


def set_option(f):
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override a config field by its dotted path, e.g. --set page.mapcount=2 "
             "--set timing.pre_freeze=0.5us (repeatable).")(f)


def config_argument(f):
    return click.argument("config", required=False, default=DEFAULT_CONFIG)(f)


def scenario_options(f):
    """CONFIG (a file or a shipped scenario name; default thread-2018), --set, -s/--strategy."""
    return _apply(f, [config_argument, strategy_option, set_option])


def trials_option(default=DEFAULT_TRIALS, help="Trials per strategy."):
    return click.option("--trials", "-n", default=default, show_default=default is not None,
                        type=click.IntRange(min=1), help=help)


def seed_option(f):
    return click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")(f)


def run_options(f):
    """-n/--trials (default 1000) and --seed (default 0)."""
    return _apply(f, [trials_option(), seed_option])


def backend_option(f):
    """-b/--backend, one of the engine registry's backends or auto."""
    return click.option(
        "--backend", "-b", default="auto", show_default=True, type=click.Choice(BACKEND_CHOICES),
        help="Engine: auto picks cupy with a usable GPU, else native with a C++ compiler, else "
             "numpy (mcexplore info says which are usable here).")(f)


def backends_option(f):
    """-b/--backend, repeatable, without auto (bench measures named backends)."""
    return click.option(
        "--backend", "-b", "backends", multiple=True, type=click.Choice(tuple(BACKENDS)),
        help="Backend(s) to measure (repeatable; default: every available one).")(f)


def level_option(f):
    return click.option("--level", default=0.95, show_default=True, type=LEVEL_RANGE,
                        help="Confidence level of every interval.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(f)


def progress_option(default=None):
    if default is None:
        return click.option("--progress/--no-progress", default=None,
                            help="Progress bar (default: on a terminal).")
    return click.option("--progress/--no-progress", default=default, show_default=True,
                        help="Show a progress bar with ETA.")


def adaptive_options(f):
    """Options of an adaptive run; give the collected kwargs to ``adaptive.rule_from_options``."""
    return _apply(f, [
        click.option("--target-rel-error", "target_rel_error", type=float, default=None, metavar="E",
                     help="Adaptive: stop when the anytime-valid confidence sequence's half-width "
                          "is at most E times the estimate (e.g. 0.1)."),
        click.option("--until-upper-bound", "until_upper_bound", type=float, default=None, metavar="P",
                     help="Adaptive: stop when the confidence sequence's upper bound falls below P, or "
                          "its lower bound rises above P (a decision wrong with probability <= 1-level)."),
        click.option("--max-trials", "max_trials", type=int, default=None, metavar="N",
                     help=f"Adaptive: never run more than N trials per strategy (default {DEFAULT_MAX_TRIALS:,})."),
        click.option("--batch-trials", "batch_trials", type=int, default=None, metavar="N",
                     help="Adaptive: trials per batch between checks (default: doubling from 1024)."),
        click.option("--stop-outcome", "stop_outcome", type=click.Choice(STOP_OUTCOMES), default="livelock",
                     show_default=True, help="Adaptive: the outcome whose probability the stopping rule is about."),
    ])


# --- plots -----------------------------------------------------------------------------------

def results_argument(f):
    return click.argument("results", type=click.Path(exists=True))(f)


def out_file_option(f):
    return click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
                        help="Output file; .png or .svg.")(f)


def where_option(f):
    return click.option("--where", "where", multiple=True, metavar="NAME=VALUE",
                        help="Keep rows where an axis has this value (as a number or as written "
                             "in the sweep file, e.g. access_rate=1/us); repeatable.")(f)


def plot_outcome_option(f):
    return click.option("--outcome", default="livelock", show_default=True,
                        type=click.Choice(STOP_OUTCOMES), help="The outcome whose probability is drawn.")(f)
