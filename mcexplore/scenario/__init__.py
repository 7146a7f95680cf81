"""Scenarios: the typed, validated form of a TOML config, and its compilation for the engines.

Where it sits: the top of the data flow (mcexplore/__init__.py). A config (configs/*.toml, shipped
in the wheel as package ``mcexplore.configs``) is read here, checked field by field against the
model of MODEL.md (the project's spec) sections 1.1, 1.2, 1.6 and 1.7, and compiled per strategy into a
``mcexplore.params.Compiled``, which is all an engine ever sees. Sweeps and the CLI change fields
with ``Scenario.set`` / ``set_many`` and key their results with ``Scenario.config_hash``.

Config schema in brief (configs/README.md has the full story):

    name, description, level = "page" | "block"
    [page]      kind = "anon"|"file", mapcount >= 1, active (<= mapcount, or "all"), access_rate
    [transient] rate ("1000/s"), hold (distribution)
    [timing]    one distribution per name of MODEL.md 1.2 (defaults: the estimates of 1.7)
    [budget]    passes, trylock_passes, timeout, max_attempts
    [block]     pages, batch_pages, classes = [{count, kind, mapcount, active, access_rate}, ...]
    strategies  = ["ref", {name = "pte_wait", label = "pte_wait_norecheck", recheck = false}, ...]

Strategy names and options are those of the strategy registry (mcexplore.strategies).

A distribution is a duration ("1us": a constant) or a table with ``dist`` = const, uniform, exp,
lognormal, empirical, histogram or mixture. Any value at all may be wrapped as
``{value = <the value>, estimate = true, why = "..."}`` to record where it came from; the wrapper is
taken off before validation and kept as a note keyed by the field's dotted path, so the models stay
plain and a measured table simply replaces an estimate (``Scenario.set`` drops the old note).

Errors: every problem becomes one line of a ``ScenarioError`` naming the dotted field path, the
bad value and what is valid, e.g.
``timing.pre_freeze: '-3us' is not valid: durations must be >= 0 (units: ns, us, ms, s)``.

The package, its modules in dependency order (each imports only those above it):

    types          ScenarioError, FieldError, the scalar field types, the base model _Model
    tomlwrite      a config dict written as TOML
    notes          Note and the {value, estimate, why} wrappers
    distributions  the distribution models and the Distribution union
    errors         the error rewriter: pydantic's errors as "path: value is not valid: ..."
                   (mcexplore.sweep's spec models use it too)
    paths          dotted paths (_assign), overrides (parse_override), parse_distribution
    world          the compiled World: everything of a Compiled but the strategy
    models         Page, BlockClass, Transient, Timing, Budget, Block, Strategy, Scenario
    files          shipped configs, load_scenario

This module re-exports the public names (``__all__``) and the private helpers other modules use.
"""

from .distributions import (
    DIST_KINDS, LOGNORMAL_P_CLIP, ConstComponent, ConstDist, Distribution, EmpiricalComponent,
    EmpiricalDist, ExpComponent, ExpDist, HistogramComponent, HistogramDist, LognormalComponent,
    LognormalDist, MixtureComponent, MixtureDist, NestedMixtureComponent, UniformComponent,
    UniformDist, _Dist, _DIST_ADAPTER, _OneDist, _lognormal_component, _tag,
)
from .errors import _format_error, _format_errors
from .files import (
    DEFAULT_SCENARIO, _locate, _shipped_dir, default_scenario_path, list_shipped, load_scenario,
)
from .models import (
    DEFAULT_TIMING, TIMING_NAMES, Block, BlockClass, Budget, Page, Scenario, Strategy, Timing,
    Transient, _all_strategies, _build,
)
from .notes import Note, _strip_notes, _wrap
from .paths import _assign, _split_path, _to_plain, parse_distribution, parse_override
from .tomlwrite import _to_toml, _toml_value
from .types import (
    Active, Duration, FieldError, PositiveDuration, Probability, Rate, ScenarioError, Weight,
    _MISSING, _Model,
)
from .world import World

__all__ = [
    "ScenarioError", "Note", "Scenario", "Page", "Transient", "Timing", "Budget", "Block",
    "BlockClass", "Strategy", "ConstDist", "UniformDist", "ExpDist", "LognormalDist",
    "EmpiricalDist", "HistogramDist", "MixtureDist", "Distribution", "parse_distribution",
    "load_scenario", "default_scenario_path", "list_shipped", "parse_override", "TIMING_NAMES",
    "DEFAULT_SCENARIO", "FieldError", "World",
]
