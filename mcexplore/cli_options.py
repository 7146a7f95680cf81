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
- ``rare_options``: importance sampling (``mcexplore.rare``): ``--rare OUTCOME`` (the
  cross-entropy method chooses the tilt), ``--tilt PATH=VALUE`` (repeatable), ``--pilot-trials``
  and ``--ce-rounds``; ``rare_settings`` checks them and their combination with an adaptive rule;
- ``json_option``, ``format_option`` (``--format table|text|markdown``), ``progress_option``;
- for the plots: ``results_argument``, ``out_file_option``, ``where_option``,
  ``plot_outcome_option``.
"""

from __future__ import annotations

import math

import click

from . import strategies as _strategies
from .adaptive import DEFAULT_MAX_TRIALS, STOP_OUTCOMES
from .constants import OUTCOMES
from .engines.base import BACKEND_CHOICES, BACKENDS

DEFAULT_CONFIG = "thread-2018"
DEFAULT_TRIALS = 1000
LEVEL_RANGE = click.FloatRange(0.5, 0.9999)
SEED_MAX = 2**64 - 1  # seeds are 64-bit Philox keys
TRIAL_MAX = 2**63 - 2  # trial indices are int64 (a trial's range [t, t + 1) must fit)
TRIALS_VALID = "an integer in [1, 2**63 - 2]"


class Number(click.ParamType):
    """An int or float option checked against a range; the message echoes the value as written,
    "2 is not valid: must be in (0, 1)" (click prints "Invalid value for '--opt': ..."), exit 2."""

    def __init__(self, kind=float, lo=None, hi=None, lo_open=False, hi_open=False, valid=None):
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open = kind, lo, hi, lo_open, hi_open
        self.name = "integer" if kind is int else "float"
        self.valid = valid or self._describe()

    def _describe(self) -> str:
        what = "an integer" if self.kind is int else "a finite number"
        if self.lo is not None and self.hi is not None:
            return (f"{what} in {'(' if self.lo_open else '['}{self.lo:g}, "
                    f"{self.hi:g}{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{what} {'>' if self.lo_open else '>='} {self.lo:g}"
        return what

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            v = value
        else:
            try:
                v = int(str(value).strip()) if self.kind is int else float(str(value).strip())
            except ValueError:
                self.fail(f"{value} is not valid: must be {self.valid}", param, ctx)
        bad = self.kind is float and not math.isfinite(v)
        if self.lo is not None:
            bad = bad or (v <= self.lo if self.lo_open else v < self.lo)
        if self.hi is not None:
            bad = bad or (v >= self.hi if self.hi_open else v > self.hi)
        if bad:
            self.fail(f"{value} is not valid: must be {self.valid}", param, ctx)
        return v


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
                        type=Number(int, 1, TRIAL_MAX, valid=TRIALS_VALID), help=help)


def seed_option(f):
    return click.option("--seed", default=0, show_default=True,
                        type=Number(int, 0, SEED_MAX, valid="an integer in [0, 2**64)"),
                        help="Random seed, in [0, 2**64).")(f)


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
    return click.option("--level", default=0.95, show_default=True, type=Number(float, 0.5, 0.9999),
                        help="Confidence level of every interval.")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(f)


FORMATS = ("table", "text", "markdown")


def format_option(f=None, *, table="today's aligned output"):
    """``--format table|text|markdown`` (``fmt``): table (default) is ``table``; text is
    fixed-width, at most 80 columns, intervals included (for mailing lists); markdown renders
    tables (GitHub, docs). ``--json`` stays the machine-readable output."""
    def deco(g):
        return click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(FORMATS),
                            help=f"Output: table ({table}), text (80 columns, fixed-width, for mailing "
                                 "lists) or markdown (GitHub, docs).")(g)
    return deco(f) if f is not None else deco


def progress_option(default=None):
    """``--progress/--no-progress``: a live bar on stderr (trials done per strategy, rate, ETA).

    The command receives a bool: ``default`` if given, else True exactly when stderr is a terminal
    (so nothing is drawn when stderr is piped or captured, e.g. by click's CliRunner).
    """
    def resolve(ctx, param, value):
        if value is not None:
            return value
        import sys

        stream = sys.stderr
        return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())

    if default is None:
        return click.option("--progress/--no-progress", default=None, callback=resolve,
                            help="Live progress bar on stderr: trials done, rate, ETA "
                                 "(default: when stderr is a terminal).")
    return click.option("--progress/--no-progress", default=default, show_default=True,
                        help="Live progress bar on stderr: trials done, rate, ETA.")


def adaptive_options(f):
    """Options of an adaptive run; give the collected kwargs to ``adaptive.rule_from_options``."""
    return _apply(f, [
        click.option("--target-rel-error", "target_rel_error", type=Number(float, 0, lo_open=True), default=None, metavar="E",
                     help="Adaptive: stop when the anytime-valid confidence sequence's half-width "
                          "is at most E times the estimate (e.g. 0.1)."),
        click.option("--until-upper-bound", "until_upper_bound", type=Number(float, 0, 1, True, True), default=None, metavar="P",
                     help="Adaptive: stop when the confidence sequence's upper bound falls below P, or "
                          "its lower bound rises above P (a decision wrong with probability <= 1-level)."),
        click.option("--target-half-width", "target_half_width", type=Number(float, 0, 0.5, True, True), default=None,
                     metavar="H", help="Adaptive: stop when the confidence sequence's half-width is at most H "
                                       "(an absolute precision, e.g. 0.01)."),
        click.option("--max-trials", "max_trials", type=Number(int, 1, TRIAL_MAX, valid=TRIALS_VALID), default=None,
                     metavar="N", help=f"Adaptive: never run more than N trials per strategy (default {DEFAULT_MAX_TRIALS:,})."),
        click.option("--batch-trials", "batch_trials", type=Number(int, 1, TRIAL_MAX, valid=TRIALS_VALID), default=None,
                     metavar="N", help="Adaptive: trials per batch between checks (default: doubling from 1024)."),
        click.option("--stop-outcome", "stop_outcome", type=click.Choice(STOP_OUTCOMES), default=None,
                     help="Adaptive: the outcome whose probability the stopping rule is about "
                          "(default: livelock)."),
    ])


DEFAULT_PILOT_TRIALS = 2000
DEFAULT_CE_ROUNDS = 6
ADAPTIVE_FLAGS = {"target_rel_error": "--target-rel-error", "until_upper_bound": "--until-upper-bound",
                  "target_half_width": "--target-half-width", "max_trials": "--max-trials",
                  "batch_trials": "--batch-trials", "stop_outcome": "--stop-outcome"}


_TILT_HELP = ("Tilt a parameter (repeatable): a mixture weight (timing.drop_hold.components.1.weight=0.3), "
              "an exponential mean (timing.wake_latency.components.0.mean=60us), page.access_rate or "
              "transient.rate (e.g. 1/us).")


def tilt_option(help_more: str):
    """--tilt PATH=VALUE (repeatable) as ``tilts``; ``help_more``: what the command does with it."""
    return click.option("--tilt", "tilts", multiple=True, metavar="PATH=VALUE", help=f"{_TILT_HELP} {help_more}")


def rare_options(f):
    """Importance sampling (docs/analysis.md, "Rare events"): ``rare`` (an outcome or None),
    ``tilts`` (a tuple of PATH=VALUE), ``pilot_trials`` and ``ce_rounds`` (None unless given:
    ``rare_settings`` fills in the defaults and refuses them without --rare)."""
    return _apply(f, [
        click.option("--rare", "rare", type=click.Choice(OUTCOMES), default=None, metavar="OUTCOME",
                     help="Importance sampling for a rare OUTCOME (" + ", ".join(OUTCOMES) + "): "
                          "pilot rounds of the cross-entropy method choose a tilted world (mixture "
                          "weights and the transient rate; exponential means and the access rate when "
                          "--tilt starts them) where it is common, then -n trials there, reweighted, estimate its probability in the "
                          "untilted world with a normal interval, its effective sample size and a "
                          "mean-weight check. All strategies share the tilt (a comparison stays "
                          "paired). Page level only."),
        tilt_option("With --rare: where the search starts; without: the world the trials run in."),
        click.option("--pilot-trials", "pilot_trials", type=Number(int, 1, TRIAL_MAX, valid=TRIALS_VALID),
                     default=None, metavar="N",
                     help=f"With --rare: trials per strategy in each cross-entropy round (default "
                          f"{DEFAULT_PILOT_TRIALS}); on other seeds than the estimate's trials."),
        click.option("--ce-rounds", "ce_rounds", type=Number(int, 1, 100, valid="an integer in [1, 100]"),
                     default=None, metavar="R",
                     help=f"With --rare: cross-entropy rounds at most (default {DEFAULT_CE_ROUNDS})."),
    ])


def rare_settings(rare, tilts, pilot_trials, ce_rounds, adaptive: dict | None = None) -> dict | None:
    """The keyword arguments of ``mcexplore.rare.estimate`` that the options ask for (``outcome``,
    ``tilt``, ``pilot_trials``, ``rounds``), or None when neither --rare nor --tilt is given.
    Raises click.UsageError (exit 2, one line) for --pilot-trials/--ce-rounds without --rare and
    for importance sampling combined with an adaptive stopping rule (``adaptive``: those options'
    values)."""
    if rare is None:
        for v, name in ((pilot_trials, "--pilot-trials"), (ce_rounds, "--ce-rounds")):
            if v is not None:
                raise click.UsageError(f"{name} {v} is not valid without --rare OUTCOME: it sets the "
                                       "cross-entropy search that chooses the tilt")
    if rare is None and not tilts:
        return None
    given = [flag for k, flag in ADAPTIVE_FLAGS.items() if (adaptive or {}).get(k) is not None]
    if given:
        raise click.UsageError(
            f"{given[0]} cannot be combined with {'--rare' if rare else '--tilt'}: importance sampling "
            "runs a fixed number of trials (-n), and its normal interval is not a confidence sequence "
            "valid at a data-dependent stopping time")
    return {"outcome": rare, "tilt": list(tilts),
            "pilot_trials": DEFAULT_PILOT_TRIALS if pilot_trials is None else pilot_trials,
            "rounds": DEFAULT_CE_ROUNDS if ce_rounds is None else ce_rounds}


# --- plots -----------------------------------------------------------------------------------

def results_argument(f):
    return click.argument("results", type=click.Path(exists=True))(f)


def out_file_option(f):
    return click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
                        callback=out_path_callback, help="Output file; .png or .svg.")(f)


def out_path_callback(ctx, param, value):
    """click callback of an output file option: ``check_out_path`` at parse time (exit 2)."""
    if value:
        check_out_path("--out", value)
    return value


def where_option(f):
    return click.option("--where", "where", multiple=True, metavar="NAME=VALUE",
                        help="Keep rows where an axis has this value (as a number or as written "
                             "in the sweep file, e.g. access_rate=1/us); repeatable.")(f)


def plot_outcome_option(f):
    return click.option("--outcome", default="livelock", show_default=True,
                        type=click.Choice(STOP_OUTCOMES), help="The outcome whose probability is drawn.")(f)


# --- output paths ----------------------------------------------------------------------------

def check_out_path(option: str, path, is_dir: bool = False) -> None:
    """Fail (click.UsageError, exit 2) unless ``path`` can be written: a file (or, with ``is_dir``,
    a folder) whose nearest existing folder accepts a new file. Missing folders are fine (the
    writers create them). Checked before any run, so a bad path never costs a computed result."""
    import os
    import tempfile
    from pathlib import Path

    p = Path(path)

    def fail(why):
        raise click.UsageError(f"{option}: {str(path)!r} is not valid: {why}")

    if is_dir and p.exists() and not p.is_dir():
        fail("it is a file, not a folder")
    if not is_dir and p.is_dir():
        fail("it is a folder; give a file name")
    d = p if is_dir else (p.parent if str(p.parent) else Path("."))
    a = d
    while not a.exists() and a != a.parent:
        a = a.parent
    if not a.is_dir():
        fail(f"{str(a)!r} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mcexplore-probe-", dir=a)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        fail(f"cannot write in the folder {str(a)!r} ({e.strerror or e})")


def write_out(option: str, path, text: str) -> str | None:
    """Write ``text`` to ``path`` atomically; the one-line error message if that fails, else None
    (the caller prints its result first, then fails with the message)."""
    from .io import atomic_write_text

    try:
        atomic_write_text(path, text)
    except OSError as e:
        return (f"{option}: {str(path)!r} could not be written ({e.strerror or e}); "
                "the result is printed above")
    return None
